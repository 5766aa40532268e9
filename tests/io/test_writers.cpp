// Tests for the output writers: PDB and mmCIF structures (parsed back column by column / token by
// token), AlphaFold JSON files (exact strings, and json.load when python3 is present), atomic writes
// (no temporary left behind, the previous file kept on failure), and gemmi validation when installed.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "io/atomic_file.h"
#include "io/json_writer.h"
#include "io/structure_writer.h"
#include "structure/residue_constants.h"
#include "test_util.h"

namespace axfold::io {
namespace {

namespace fs = std::filesystem;

// ------------------------------------------------------------------ helpers

void write_text(const std::string& path, const std::string& s) {
    std::ofstream f(path, std::ios::binary);
    f << s;
}

// Names in `dir` containing ".tmp." (leftover temporaries of write_file_atomic).
std::vector<std::string> temporaries(const fs::path& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.path().filename().string().find(".tmp.") != std::string::npos) out.push_back(e.path().string());
    return out;
}

bool have_command(const std::string& cmd) {
    return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0;
}

// Python json.load of a file, when python3 is installed: 1 valid, 0 invalid, -1 no python3.
int python_json_ok(const std::string& path) {
    if (!have_command("python3 -c 'import json'")) return -1;
    const std::string cmd = "python3 -c 'import json,sys; json.load(open(sys.argv[1]))' '" + path + "'";
    return std::system(cmd.c_str()) == 0 ? 1 : 0;
}

Tensor int_tensor(const std::vector<int64_t>& v) {
    Tensor t = Tensor::empty({static_cast<int64_t>(v.size())}, DType::I64);
    for (size_t i = 0; i < v.size(); ++i) t.data<int64_t>()[i] = v[i];
    return t;
}

Tensor f64_tensor(const Shape& shape, const std::vector<double>& v) {
    Tensor t = Tensor::zeros(shape, DType::F64);
    EXPECT_EQ(static_cast<int64_t>(v.size()), t.numel());
    for (size_t i = 0; i < v.size(); ++i) t.data<double>()[i] = v[i];
    return t;
}

int atom_index(const char* name) {
    for (int a = 0; a < rc::kAtom37; ++a)
        if (std::string(rc::kAtomTypes[a]) == name) return a;
    ADD_FAILURE() << "no atom37 name " << name;
    return 0;
}

// A small chain with several residue types, a gap in the numbering (residue numbers 1, 2, 3, 5, 6, 7)
// and one residue without any atoms; random coordinates and per-atom B-factors.
struct TestChain {
    std::vector<int> aatype = {0, 7, 17, 12, 15, 20};  // ALA GLY TRP MET SER UNK
    std::vector<int64_t> residue_index = {0, 1, 2, 4, 5, 6};
    std::vector<std::vector<const char*>> atoms = {
        {"N", "CA", "C", "O", "CB"},
        {"N", "CA", "C", "O"},
        {"N", "CA", "C", "O", "CB", "CG", "CD1", "CD2", "NE1", "CE2", "CE3", "CZ2", "CZ3", "CH2"},
        {},  // MET without atoms: in the sequence, not in the atom sites
        {"N", "CA", "C", "O", "CB", "OG"},
        {"N", "CA", "C", "O", "CB", "OXT"}};
    ProteinStructure p;
    std::vector<double> plddt;  // per residue (the CA B-factor)

    explicit TestChain(uint32_t seed) {
        const int64_t n = static_cast<int64_t>(aatype.size());
        std::mt19937 rng(seed);
        std::uniform_real_distribution<float> coord(-60.f, 160.f), conf(5.f, 99.f), jitter(-3.f, 3.f);
        p.aatype = int_tensor(std::vector<int64_t>(aatype.begin(), aatype.end()));
        p.residue_index = int_tensor(residue_index);
        p.atom_positions = Tensor::zeros({n, rc::kAtom37, 3});
        p.atom_mask = Tensor::zeros({n, rc::kAtom37});
        p.b_factors = Tensor::zeros({n, rc::kAtom37});
        // Files list atoms in atom37 order (N, CA, C, CB, O, ...).
        for (auto& names : atoms)
            std::sort(names.begin(), names.end(),
                      [](const char* a, const char* b) { return atom_index(a) < atom_index(b); });
        for (int64_t i = 0; i < n; ++i) {
            plddt.push_back(conf(rng));
            // Absent atoms get garbage (even NaN) that must never reach the files.
            for (int a = 0; a < rc::kAtom37; ++a) {
                for (int d = 0; d < 3; ++d) p.atom_positions.at({i, a, d}) = NAN;
                p.b_factors.at({i, a}) = 1e9f;
            }
            for (const char* name : atoms[i]) {
                const int a = atom_index(name);
                p.atom_mask.at({i, a}) = 1.f;
                for (int d = 0; d < 3; ++d) p.atom_positions.at({i, a, d}) = coord(rng);
                p.b_factors.at({i, a}) = a == rc::kAtomCA ? static_cast<float>(plddt[i]) : conf(rng) + jitter(rng);
            }
            plddt[i] = p.b_factors.at({i, rc::kAtomCA});
        }
    }
    int64_t num_atoms() const {
        int64_t k = 0;
        for (const auto& v : atoms) k += static_cast<int64_t>(v.size());
        return k;
    }
};

// One ATOM record split by PDB columns.
struct PdbAtom {
    int serial;
    std::string name, altloc, resname, chain, icode, element, charge;
    int resseq;
    double x, y, z, occupancy, b;
};

std::vector<PdbAtom> parse_pdb_atoms(const std::string& text) {
    std::vector<PdbAtom> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("ATOM  ", 0) != 0) continue;
        EXPECT_EQ(line.size(), 80u) << line;
        if (line.size() < 80) continue;
        PdbAtom a;
        a.serial = std::stoi(line.substr(6, 5));
        EXPECT_EQ(line[11], ' ');
        a.name = line.substr(12, 4);
        a.altloc = line.substr(16, 1);
        a.resname = line.substr(17, 3);
        EXPECT_EQ(line[20], ' ');
        a.chain = line.substr(21, 1);
        a.resseq = std::stoi(line.substr(22, 4));
        a.icode = line.substr(26, 1);
        EXPECT_EQ(line.substr(27, 3), "   ");
        a.x = std::stod(line.substr(30, 8));
        a.y = std::stod(line.substr(38, 8));
        a.z = std::stod(line.substr(46, 8));
        a.occupancy = std::stod(line.substr(54, 6));
        a.b = std::stod(line.substr(60, 6));
        EXPECT_EQ(line.substr(66, 10), std::string(10, ' '));
        a.element = line.substr(76, 2);
        a.charge = line.substr(78, 2);
        out.push_back(a);
    }
    return out;
}

// Minimal CIF reader: tokens separated by whitespace, '...' / "..." quoted tokens, ;-text fields, and
// '#' comments. Returns every item (loop columns and key-value pairs) as tag -> values.
std::map<std::string, std::vector<std::string>> parse_cif(const std::string& text, std::string* block) {
    std::vector<std::string> tokens;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (!line.empty() && line[0] == ';') {
            std::string field = line.substr(1);
            while (std::getline(in, line) && !(line.size() >= 1 && line[0] == ';')) field += "\n" + line;
            tokens.push_back(field);
            continue;
        }
        size_t i = 0;
        while (i < line.size()) {
            if (line[i] == ' ' || line[i] == '\t') {
                ++i;
            } else if (line[i] == '#') {
                break;
            } else if (line[i] == '\'' || line[i] == '"') {
                const char q = line[i];
                size_t j = i + 1;
                while (j < line.size() && !(line[j] == q && (j + 1 == line.size() || line[j + 1] == ' '))) ++j;
                tokens.push_back(line.substr(i + 1, j - i - 1));
                i = j + 1;
            } else {
                size_t j = i;
                while (j < line.size() && line[j] != ' ' && line[j] != '\t') ++j;
                tokens.push_back(line.substr(i, j - i));
                i = j;
            }
        }
    }
    std::map<std::string, std::vector<std::string>> items;
    size_t t = 0;
    if (t < tokens.size() && tokens[t].rfind("data_", 0) == 0) *block = tokens[t++].substr(5);
    while (t < tokens.size()) {
        if (tokens[t] == "loop_") {
            ++t;
            std::vector<std::string> tags;
            while (t < tokens.size() && tokens[t][0] == '_') tags.push_back(tokens[t++]);
            size_t col = 0;
            while (t < tokens.size() && tokens[t] != "loop_" && tokens[t][0] != '_') {
                items[tags[col]].push_back(tokens[t++]);
                col = (col + 1) % tags.size();
            }
            EXPECT_EQ(col, 0u) << "loop of " << tags[0] << " has a partial row";
        } else {
            EXPECT_EQ(tokens[t][0], '_') << "unexpected token " << tokens[t];
            EXPECT_LT(t + 1, tokens.size());
            if (t + 1 >= tokens.size()) break;
            EXPECT_EQ(items.count(tokens[t]), 0u) << "duplicate item " << tokens[t];
            items[tokens[t]].push_back(tokens[t + 1]);
            t += 2;
        }
    }
    return items;
}

// ------------------------------------------------------------------ PDB

TEST(StructureWriter, PdbMatchesAf2Format) {
    // Expected text produced with AF2 protein.to_pdb's f-strings (Python) for these values.
    ProteinStructure p;
    p.aatype = int_tensor({0, 7});
    p.residue_index = int_tensor({0, 2});
    std::vector<double> pos(2 * 37 * 3, 0.0), mask(2 * 37, 0.0), bf(2 * 37, 0.0);
    auto set = [&](int i, int a, double x, double y, double z, double b) {
        pos[(i * 37 + a) * 3 + 0] = x;
        pos[(i * 37 + a) * 3 + 1] = y;
        pos[(i * 37 + a) * 3 + 2] = z;
        mask[i * 37 + a] = 1.0;
        bf[i * 37 + a] = b;
    };
    set(0, 0, -1.2345, 5.678, 12.0, 87.654);
    set(0, 1, 1000.5, -999.999, 0.0004, 87.654);
    set(1, 36, -0.0004, 2.5, -10.25, 5.0);
    p.atom_positions = f64_tensor({2, 37, 3}, pos);
    p.atom_mask = f64_tensor({2, 37}, mask);
    p.b_factors = f64_tensor({2, 37}, bf);
    const std::string expected =
        "MODEL     1\n"
        "ATOM      1  N   ALA A   1      -1.234   5.678  12.000  1.00 87.65           N  \n"
        "ATOM      2  CA  ALA A   1    1000.500-999.999   0.000  1.00 87.65           C  \n"
        "ATOM      3  OXT GLY A   3      -0.000   2.500 -10.250  1.00  5.00           O  \n"
        "TER       4      GLY A   3\n"
        "ENDMDL\n"
        "END\n";
    EXPECT_EQ(to_pdb(p), expected);
}

TEST(StructureWriter, PdbRoundTrip) {
    const TestChain c(std::random_device{}());
    const test::TempDir dir;
    const std::string path = (dir / "unrelaxed_model_1.pdb").string();
    write_pdb(path, c.p);
    EXPECT_TRUE(temporaries(dir.path()).empty());
    const std::string text = test::read_text(path);
    ASSERT_EQ(text, to_pdb(c.p));
    EXPECT_EQ(text.rfind("MODEL     1\n", 0), 0u);
    char ter[64];
    std::snprintf(ter, sizeof(ter), "\nTER   %5lld      UNK A   7\nENDMDL\nEND\n", (long long)(c.num_atoms() + 1));
    ASSERT_GE(text.size(), std::strlen(ter));
    EXPECT_EQ(text.substr(text.size() - std::strlen(ter)), ter);

    const std::vector<PdbAtom> atoms = parse_pdb_atoms(text);
    ASSERT_EQ(static_cast<int64_t>(atoms.size()), c.num_atoms());
    size_t k = 0;
    for (size_t i = 0; i < c.aatype.size(); ++i) {
        for (const char* name : c.atoms[i]) {
            const PdbAtom& a = atoms[k++];
            const int ai = atom_index(name);
            EXPECT_EQ(a.serial, static_cast<int>(k));
            char padded[8];
            std::snprintf(padded, sizeof(padded), " %-3s", name);
            EXPECT_EQ(a.name, padded);
            EXPECT_EQ(a.altloc, " ");
            EXPECT_EQ(a.resname, rc::kRestype3[c.aatype[i]]);
            EXPECT_EQ(a.chain, "A");
            EXPECT_EQ(a.resseq, c.residue_index[i] + 1);
            EXPECT_EQ(a.icode, " ");
            EXPECT_NEAR(a.x, c.p.atom_positions.at({(int64_t)i, ai, 0}), 1e-3);
            EXPECT_NEAR(a.y, c.p.atom_positions.at({(int64_t)i, ai, 1}), 1e-3);
            EXPECT_NEAR(a.z, c.p.atom_positions.at({(int64_t)i, ai, 2}), 1e-3);
            EXPECT_EQ(a.occupancy, 1.0);
            EXPECT_NEAR(a.b, c.p.b_factors.at({(int64_t)i, ai}), 0.005 + 1e-6);
            const char element[3] = {' ', name[0], '\0'};
            EXPECT_EQ(a.element, element);
            EXPECT_EQ(a.charge, "  ");
        }
    }
}

TEST(StructureWriter, RejectsBadInput) {
    TestChain c(7);
    // Shapes and dtypes.
    {
        ProteinStructure p = c.p;
        p.atom_positions = Tensor::zeros({6, 37, 2});
        EXPECT_THROW(to_pdb(p), Error);
        EXPECT_THROW(to_mmcif(p, "x"), Error);
    }
    {
        ProteinStructure p = c.p;
        p.b_factors = Tensor::zeros({5, 37});
        EXPECT_THROW(to_pdb(p), Error);
    }
    {
        ProteinStructure p = c.p;
        p.atom_mask = Tensor::zeros({6, 37}, DType::I32);
        EXPECT_THROW(to_pdb(p), Error);
    }
    {
        ProteinStructure p = c.p;
        p.aatype = Tensor::zeros({6});  // float aatype
        EXPECT_THROW(to_pdb(p), Error);
    }
    {
        ProteinStructure p = c.p;
        p.residue_index = Tensor();
        EXPECT_THROW(to_pdb(p), Error);
    }
    {
        ProteinStructure p = c.p;
        p.aatype = int_tensor({0, 7, 17, 12, 21, 20});  // 21 is not a residue type
        EXPECT_THROW(to_pdb(p), Error);
    }
    // NaN in a present atom is an error naming the atom; NaN in absent atoms (TestChain) is fine.
    {
        ProteinStructure p = c.p;
        p.atom_positions = c.p.atom_positions.clone();
        p.atom_positions.at({2, rc::kAtomCB, 1}) = NAN;
        try {
            (void)to_pdb(p);
            ADD_FAILURE() << "NaN coordinate accepted";
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find("TRP"), std::string::npos) << e.what();
            EXPECT_NE(std::string(e.what()).find("CB"), std::string::npos) << e.what();
        }
        EXPECT_THROW(to_mmcif(p, "x"), Error);
    }
    {
        ProteinStructure p = c.p;
        p.b_factors = c.p.b_factors.clone();
        p.b_factors.at({0, rc::kAtomCA}) = INFINITY;
        EXPECT_THROW(to_pdb(p), Error);
    }
    // Columns that would overflow in PDB.
    {
        ProteinStructure p = c.p;
        p.atom_positions = c.p.atom_positions.clone();
        p.atom_positions.at({0, rc::kAtomN, 0}) = -1000.f;
        EXPECT_THROW(to_pdb(p), Error);
        EXPECT_NO_THROW(to_mmcif(p, "x"));
    }
    // Chain ids: one character in PDB; letters and digits in mmCIF.
    {
        ProteinStructure p = c.p;
        p.chain_id = "AB";
        EXPECT_THROW(to_pdb(p), Error);
        EXPECT_NO_THROW(to_mmcif(p, "x"));
        p.chain_id = "A B";
        EXPECT_THROW(to_mmcif(p, "x"), Error);
    }
    // mmCIF numbering must increase.
    {
        ProteinStructure p = c.p;
        p.residue_index = int_tensor({0, 1, 2, 2, 5, 6});
        EXPECT_THROW(to_mmcif(p, "x"), Error);
        EXPECT_NO_THROW(to_pdb(p));
    }
    // No residues.
    {
        ProteinStructure p;
        p.aatype = int_tensor({});
        EXPECT_THROW(to_pdb(p), Error);
    }
    // A failed write leaves no file behind.
    const test::TempDir dir;
    ProteinStructure p = c.p;
    p.chain_id = "AB";
    EXPECT_THROW(write_pdb((dir / "x.pdb").string(), p), Error);
    EXPECT_FALSE(file_exists((dir / "x.pdb").string()));
    EXPECT_TRUE(temporaries(dir.path()).empty());
}

// ------------------------------------------------------------------ mmCIF

TEST(StructureWriter, MmcifRoundTrip) {
    const TestChain c(std::random_device{}());
    const test::TempDir dir;
    const std::string path = (dir / "unrelaxed_model_1_ptm.cif").string();
    write_mmcif(path, c.p, "model_1_ptm");
    EXPECT_TRUE(temporaries(dir.path()).empty());
    const std::string text = test::read_text(path);
    ASSERT_EQ(text, to_mmcif(c.p, "model_1_ptm"));

    std::string block;
    auto items = parse_cif(text, &block);
    EXPECT_EQ(block, "MODEL_1_PTM");
    EXPECT_EQ(items["_entry.id"], std::vector<std::string>{"MODEL_1_PTM"});
    EXPECT_EQ(items["_struct_asym.id"], std::vector<std::string>{"A"});
    EXPECT_EQ(items["_entity_poly.type"], std::vector<std::string>{"polypeptide(L)"});
    EXPECT_EQ(items["_entity_poly.pdbx_seq_one_letter_code_can"], std::vector<std::string>{"AGWXMSX"});
    EXPECT_EQ(items["_entity_poly.pdbx_seq_one_letter_code"], std::vector<std::string>{"AGW(UNK)MS(UNK)"});
    EXPECT_EQ(items["_entity_poly_seq.num"], (std::vector<std::string>{"1", "2", "3", "4", "5", "6", "7"}));
    EXPECT_EQ(items["_entity_poly_seq.mon_id"],
              (std::vector<std::string>{"ALA", "GLY", "TRP", "UNK", "MET", "SER", "UNK"}));
    EXPECT_EQ(items["_atom_type.symbol"], (std::vector<std::string>{"C", "N", "O"}));
    const std::set<std::string> comps(items["_chem_comp.id"].begin(), items["_chem_comp.id"].end());
    EXPECT_EQ(comps, (std::set<std::string>{"ALA", "GLY", "TRP", "MET", "SER", "UNK"}));

    // _atom_site, atom by atom.
    const std::vector<std::string> columns = {"group_PDB",         "id",
                                              "type_symbol",       "label_atom_id",
                                              "label_alt_id",      "label_comp_id",
                                              "label_asym_id",     "label_entity_id",
                                              "label_seq_id",      "pdbx_PDB_ins_code",
                                              "Cartn_x",           "Cartn_y",
                                              "Cartn_z",           "occupancy",
                                              "B_iso_or_equiv",    "pdbx_formal_charge",
                                              "auth_seq_id",       "auth_comp_id",
                                              "auth_asym_id",      "auth_atom_id",
                                              "pdbx_PDB_model_num"};
    for (const auto& col : columns)
        ASSERT_EQ(static_cast<int64_t>(items["_atom_site." + col].size()), c.num_atoms()) << col;
    auto site = [&](const char* col, size_t k) { return items[std::string("_atom_site.") + col][k]; };
    size_t k = 0;
    for (size_t i = 0; i < c.aatype.size(); ++i) {
        const std::string num = std::to_string(c.residue_index[i] + 1);
        const std::string res = rc::kRestype3[c.aatype[i]];
        for (const char* name : c.atoms[i]) {
            const int ai = atom_index(name);
            EXPECT_EQ(site("group_PDB", k), "ATOM");
            EXPECT_EQ(site("id", k), std::to_string(k + 1));
            EXPECT_EQ(site("type_symbol", k), std::string(1, name[0]));
            EXPECT_EQ(site("label_atom_id", k), name);
            EXPECT_EQ(site("auth_atom_id", k), name);
            EXPECT_EQ(site("label_alt_id", k), ".");
            EXPECT_EQ(site("label_comp_id", k), res);
            EXPECT_EQ(site("auth_comp_id", k), res);
            EXPECT_EQ(site("label_asym_id", k), "A");
            EXPECT_EQ(site("auth_asym_id", k), "A");
            EXPECT_EQ(site("label_entity_id", k), "1");
            EXPECT_EQ(site("label_seq_id", k), num);
            EXPECT_EQ(site("auth_seq_id", k), num);
            EXPECT_EQ(site("pdbx_PDB_model_num", k), "1");
            EXPECT_EQ(site("pdbx_PDB_ins_code", k), ".");
            EXPECT_NEAR(std::stod(site("Cartn_x", k)), c.p.atom_positions.at({(int64_t)i, ai, 0}), 1e-3);
            EXPECT_NEAR(std::stod(site("Cartn_y", k)), c.p.atom_positions.at({(int64_t)i, ai, 1}), 1e-3);
            EXPECT_NEAR(std::stod(site("Cartn_z", k)), c.p.atom_positions.at({(int64_t)i, ai, 2}), 1e-3);
            EXPECT_EQ(site("occupancy", k), "1.00");
            EXPECT_NEAR(std::stod(site("B_iso_or_equiv", k)), c.p.b_factors.at({(int64_t)i, ai}), 0.005 + 1e-6);
            ++k;
        }
    }

    // ModelCIF pLDDT: metric 1 global, metric 2 local, one local row per residue with atoms.
    EXPECT_EQ(items["_ma_qa_metric.id"], (std::vector<std::string>{"1", "2"}));
    EXPECT_EQ(items["_ma_qa_metric.name"], (std::vector<std::string>{"pLDDT", "pLDDT"}));
    EXPECT_EQ(items["_ma_qa_metric.type"], (std::vector<std::string>{"pLDDT", "pLDDT"}));
    EXPECT_EQ(items["_ma_qa_metric.mode"], (std::vector<std::string>{"global", "local"}));
    const auto& seq_ids = items["_ma_qa_metric_local.label_seq_id"];
    const auto& values = items["_ma_qa_metric_local.metric_value"];
    ASSERT_EQ(seq_ids.size(), 5u);
    ASSERT_EQ(values.size(), 5u);
    double sum = 0.0;
    size_t row = 0;
    for (size_t i = 0; i < c.aatype.size(); ++i) {
        if (c.atoms[i].empty()) continue;
        EXPECT_EQ(items["_ma_qa_metric_local.ordinal_id"][row], std::to_string(row + 1));
        EXPECT_EQ(items["_ma_qa_metric_local.model_id"][row], "1");
        EXPECT_EQ(items["_ma_qa_metric_local.label_asym_id"][row], "A");
        EXPECT_EQ(seq_ids[row], std::to_string(c.residue_index[i] + 1));
        EXPECT_EQ(items["_ma_qa_metric_local.label_comp_id"][row], rc::kRestype3[c.aatype[i]]);
        EXPECT_EQ(items["_ma_qa_metric_local.metric_id"][row], "2");
        EXPECT_NEAR(std::stod(values[row]), c.plddt[i], 0.005 + 1e-6);
        sum += c.plddt[i];
        ++row;
    }
    ASSERT_EQ(items["_ma_qa_metric_global.metric_value"].size(), 1u);
    EXPECT_EQ(items["_ma_qa_metric_global.metric_id"], std::vector<std::string>{"1"});
    EXPECT_NEAR(std::stod(items["_ma_qa_metric_global.metric_value"][0]), sum / 5.0, 0.005 + 1e-6);
}

TEST(StructureWriter, MmcifQuotesAndSanitizesNames) {
    const TestChain c(3);
    std::string block;
    auto items = parse_cif(to_mmcif(c.p, "my model #1"), &block);
    EXPECT_EQ(block, "MY_MODEL_#1");
    EXPECT_EQ(items["_entry.id"], std::vector<std::string>{"MY_MODEL_#1"});
    EXPECT_EQ(items["_ma_model_list.model_name"], std::vector<std::string>{"my model #1"});
    EXPECT_EQ(items["_chem_comp.type"].size(), 6u);
}

// gemmi, when installed (CLI `gemmi` or a Python with the gemmi module), reads our mmCIF and PDB.
TEST(StructureWriter, GemmiReadsOutput) {
    std::string python;
    for (const char* py : {"python3", "/usr/bin/python3"})
        if (have_command(std::string(py) + " -c 'import gemmi'")) {
            python = py;
            break;
        }
    if (python.empty()) GTEST_SKIP() << "gemmi Python module not installed";
    const TestChain c(std::random_device{}());
    const test::TempDir dir;
    write_mmcif((dir / "m.cif").string(), c.p, "model_1");
    write_pdb((dir / "m.pdb").string(), c.p);
    const std::string script = (dir / "check.py").string();
    write_text(script,
               "import sys, gemmi\n"
               "cif, pdb, n, first = sys.argv[1], sys.argv[2], int(sys.argv[3]), [float(v) for v in sys.argv[4:7]]\n"
               "doc = gemmi.cif.read(cif)\n"
               "doc.check_for_missing_values(); doc.check_for_duplicates()\n"
               "b = doc.sole_block()\n"
               "assert len(b.find_values('_ma_qa_metric_local.metric_value')) == 5\n"
               "for path in (cif, pdb):\n"
               "    st = gemmi.read_structure(path)\n"
               "    atoms = [a for r in st[0]['A'] for a in r]\n"
               "    assert len(st) == 1 and len(atoms) == n, (path, len(st), len(atoms))\n"
               "    p = atoms[0].pos\n"
               "    assert abs(p.x - first[0]) < 1e-3 and abs(p.y - first[1]) < 1e-3 and abs(p.z - first[2]) < 1e-3\n"
               "    names = [r.name for r in st[0]['A']]\n"
               "    assert names == ['ALA', 'GLY', 'TRP', 'SER', 'UNK'], names\n"
               "    assert [r.seqid.num for r in st[0]['A']] == [1, 2, 3, 6, 7]\n"
               "st = gemmi.read_structure(cif)\n"
               "st.setup_entities()\n"
               "assert st.entities[0].full_sequence == ['ALA', 'GLY', 'TRP', 'UNK', 'MET', 'SER', 'UNK'], "
               "st.entities[0].full_sequence\n");
    char first[128];
    std::snprintf(first, sizeof(first), "%.4f %.4f %.4f", c.p.atom_positions.at({0, 0, 0}),
                  c.p.atom_positions.at({0, 0, 1}), c.p.atom_positions.at({0, 0, 2}));
    const std::string cmd = python + " " + script + " " + (dir / "m.cif").string() + " " + (dir / "m.pdb").string() +
                            " " + std::to_string(c.num_atoms()) + " " + first;
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

// ------------------------------------------------------------------ JSON

TEST(JsonWriter, Numbers) {
    EXPECT_EQ(json_number(31.75, "x"), "31.75");
    EXPECT_EQ(json_number(100.0, "x"), "100.0");
    EXPECT_EQ(json_number(0.1 + 0.2, "x"), "0.30000000000000004");
    EXPECT_EQ(json_number(1e-5, "x"), "1e-05");
    EXPECT_EQ(json_number(1e16, "x"), "1e+16");
    EXPECT_EQ(json_number(31.1f, "x"), "31.1");
    // Python's repr switches to exponents outside [1e-4, 1e16), whichever notation is shorter.
    EXPECT_EQ(json_number(3e-4, "x"), "0.0003");
    EXPECT_EQ(json_number(-1.25e-4, "x"), "-0.000125");
    EXPECT_EQ(json_number(1.5e-7, "x"), "1.5e-07");
    EXPECT_EQ(json_number(1e15, "x"), "1000000000000000.0");
    EXPECT_EQ(json_number(1.2345678901234568e17, "x"), "1.2345678901234568e+17");
    EXPECT_EQ(json_number(123456.789, "x"), "123456.789");
    EXPECT_EQ(json_number(0.0, "x"), "0.0");
    EXPECT_EQ(json_number(-0.0, "x"), "-0.0");
    EXPECT_EQ(json_number(1e100, "x"), "1e+100");
    EXPECT_EQ(json_rounded(87.6549, 2, "x"), "87.65");
    EXPECT_EQ(json_rounded(70.001, 2, "x"), "70.0");
    EXPECT_EQ(json_rounded(0.25, 1, "x"), "0.2");  // np.round: half to even
    EXPECT_EQ(json_string("a\"b\\c\n\x01"), "\"a\\\"b\\\\c\\n\\u0001\"");
    EXPECT_THROW(json_number(std::nan(""), "x"), Error);
    EXPECT_THROW(json_number(INFINITY, "x"), Error);
    EXPECT_THROW(json_rounded(-INFINITY, 2, "x"), Error);
}

TEST(JsonWriter, Confidence) {
    const Tensor plddt = Tensor::from_vector({6}, {49.999f, 50.f, 69.994f, 70.f, 89.996f, 95.5f});
    const std::string s = confidence_json(plddt);
    EXPECT_EQ(s,
              "{\"residueNumber\":[1,2,3,4,5,6],\"confidenceScore\":[50.0,50.0,69.99,70.0,90.0,95.5],"
              "\"confidenceCategory\":[\"D\",\"L\",\"L\",\"M\",\"M\",\"H\"]}");
    const test::TempDir dir;
    write_file_atomic((dir / "confidence_model_1.json").string(), s);
    EXPECT_NE(python_json_ok((dir / "confidence_model_1.json").string()), 0);
    EXPECT_THROW(confidence_json(Tensor::from_vector({2}, {50.f, NAN})), Error);
    EXPECT_THROW(confidence_json(Tensor::from_vector({2}, {50.f, 100.5f})), Error);
    EXPECT_THROW(confidence_json(Tensor::zeros({2, 2})), Error);
}

TEST(JsonWriter, Pae) {
    const Tensor pae = Tensor::from_vector({2, 2}, {0.25f, 31.75f, 1.05f, 3.f});
    const std::string s = pae_json(pae, 31.75f);
    EXPECT_EQ(s, "[{\"predicted_aligned_error\":[[0.2,31.8],[1.0,3.0]],\"max_predicted_aligned_error\":31.75}]");
    const test::TempDir dir;
    write_file_atomic((dir / "pae.json").string(), s);
    EXPECT_NE(python_json_ok((dir / "pae.json").string()), 0);

    // Random matrix, transposed (strided) view: values land in row-major order, to 1 decimal.
    std::mt19937 rng(std::random_device{}());
    std::uniform_real_distribution<float> u(0.f, 31.75f);
    const int64_t n = 7;
    Tensor m = Tensor::zeros({n, n});
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j) m.at({i, j}) = u(rng);
    const std::string t = pae_json(m.transpose(0, 1), 31.75f);
    std::string digits = t.substr(t.find("[[") + 2);
    for (char& ch : digits)
        if (ch == '[' || ch == ']' || ch == ',') ch = ' ';
    std::istringstream in(digits);
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j) {
            double v;
            ASSERT_TRUE(in >> v);
            EXPECT_NEAR(v, m.at({j, i}), 0.05 + 1e-6);
        }
    EXPECT_THROW(pae_json(Tensor::zeros({2, 3}), 31.75f), Error);
    EXPECT_THROW(pae_json(pae, NAN), Error);
    Tensor bad = pae.clone();
    bad.at({1, 0}) = INFINITY;
    EXPECT_THROW(pae_json(bad, 31.75f), Error);
}

TEST(JsonWriter, RankingDebugAndTimings) {
    const std::string s = ranking_debug_json({{"model_1", 85.5}, {"model_2", 91.25}, {"model_3", 85.5}}, "plddts");
    EXPECT_EQ(s,
              "{\n"
              "    \"plddts\": {\n"
              "        \"model_1\": 85.5,\n"
              "        \"model_2\": 91.25,\n"
              "        \"model_3\": 85.5\n"
              "    },\n"
              "    \"order\": [\n"
              "        \"model_2\",\n"
              "        \"model_1\",\n"
              "        \"model_3\"\n"
              "    ]\n"
              "}");
    const std::string m = ranking_debug_json({{"model_1_multimer_v3_pred_0", 0.8123}}, "iptm+ptm");
    EXPECT_NE(m.find("\"iptm+ptm\": {\n        \"model_1_multimer_v3_pred_0\": 0.8123\n    }"), std::string::npos) << m;
    EXPECT_THROW(ranking_debug_json({{"a", 1.0}, {"a", 2.0}}, "plddts"), Error);
    EXPECT_THROW(ranking_debug_json({{"a", NAN}}, "plddts"), Error);
    EXPECT_THROW(ranking_debug_json({{"a", 1.0}}, "plddt"), Error);
    EXPECT_THROW(ranking_debug_json({}, "plddts"), Error);

    const std::string t = timings_json({{"features", 12.5}, {"predict_and_compile_model_1", 100.0}});
    EXPECT_EQ(t, "{\n    \"features\": 12.5,\n    \"predict_and_compile_model_1\": 100.0\n}");
    EXPECT_EQ(timings_json({}), "{}");
    EXPECT_THROW(timings_json({{"features", INFINITY}}), Error);

    const test::TempDir dir;
    write_file_atomic((dir / "ranking_debug.json").string(), s);
    write_file_atomic((dir / "timings.json").string(), t);
    EXPECT_NE(python_json_ok((dir / "ranking_debug.json").string()), 0);
    EXPECT_NE(python_json_ok((dir / "timings.json").string()), 0);
}

TEST(JsonWriter, ColabfoldScores) {
    const Tensor plddt = Tensor::from_vector({2}, {91.234f, 50.f});
    const Tensor pae = Tensor::from_vector({2, 2}, {0.125f, 2.f, 3.456f, 0.f});
    const double ptm = 0.7777;
    const std::string s = colabfold_scores_json(plddt, &pae, 31.75f, &ptm);
    EXPECT_EQ(s, "{\"plddt\": [91.23, 50.0], \"max_pae\": 31.75, \"pae\": [[0.12, 2.0], [3.46, 0.0]], \"ptm\": 0.78}");
    EXPECT_EQ(colabfold_scores_json(plddt, nullptr, 31.75f, nullptr), "{\"plddt\": [91.23, 50.0]}");
    const test::TempDir dir;
    write_file_atomic((dir / "scores.json").string(), s);
    EXPECT_NE(python_json_ok((dir / "scores.json").string()), 0);
    const Tensor wrong = Tensor::zeros({3, 3});
    EXPECT_THROW(colabfold_scores_json(plddt, &wrong, 31.75f, nullptr), Error);
    const double nan_ptm = NAN;
    EXPECT_THROW(colabfold_scores_json(plddt, nullptr, 31.75f, &nan_ptm), Error);
}

// ------------------------------------------------------------------ atomic writes

TEST(AtomicFile, WritesAndReplaces) {
    const test::TempDir dir;
    const std::string path = (dir / "out.txt").string();
    EXPECT_FALSE(file_exists(path));
    write_file_atomic(path, "first");
    EXPECT_TRUE(file_exists(path));
    EXPECT_EQ(test::read_text(path), "first");
    write_file_atomic(path, std::string(100000, 'x'));
    EXPECT_EQ(test::read_text(path), std::string(100000, 'x'));
    write_file_atomic(path, "");
    EXPECT_EQ(test::read_text(path), "");
    EXPECT_TRUE(temporaries(dir.path()).empty());
    EXPECT_FALSE(file_exists(dir.path().string()));  // a directory is not a file
}

TEST(AtomicFile, FailuresKeepThePreviousFile) {
    const test::TempDir dir;
    // The path is a directory.
    const std::string sub = (dir / "sub").string();
    fs::create_directory(sub);
    write_text(sub + "/keep", "kept");
    try {
        write_file_atomic(sub, "new");
        ADD_FAILURE() << "writing over a directory succeeded";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(sub), std::string::npos) << e.what();
    }
    EXPECT_TRUE(fs::is_directory(sub));
    EXPECT_EQ(test::read_text(sub + "/keep"), "kept");
    EXPECT_TRUE(temporaries(dir.path()).empty());

    // The directory does not exist: the message names the path and the errno text.
    const std::string missing = (dir / "no/such/dir/out.json").string();
    try {
        write_file_atomic(missing, "x");
        ADD_FAILURE() << "writing into a missing directory succeeded";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find(std::strerror(ENOENT)), std::string::npos) << e.what();
    }

    // The write itself fails midway (file size limit, which applies to root too): the previous file
    // stays as it was and the temporary is removed.
    const std::string path = (dir / "ranking_debug.json").string();
    write_file_atomic(path, "previous");
    {
        struct rlimit old {};
        ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
        auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
        struct rlimit lim = old;
        lim.rlim_cur = 4096;
        ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &lim), 0);
        bool threw = false;
        std::string msg;
        try {
            write_file_atomic(path, std::string(100000, 'y'));
        } catch (const Error& e) {
            threw = true;
            msg = e.what();
        }
        ::setrlimit(RLIMIT_FSIZE, &old);
        std::signal(SIGXFSZ, old_handler);
        EXPECT_TRUE(threw);
        EXPECT_NE(msg.find(path), std::string::npos) << msg;
        EXPECT_NE(msg.find(std::strerror(EFBIG)), std::string::npos) << msg;
    }
    EXPECT_EQ(test::read_text(path), "previous");
    EXPECT_TRUE(temporaries(dir.path()).empty());

    // A read-only directory (permission checks do not apply to root).
    if (::geteuid() != 0) {
        const std::string ro = (dir / "ro").string();
        fs::create_directory(ro);
        write_text(ro + "/model.pdb", "old");
        fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec);
        EXPECT_THROW(write_file_atomic(ro + "/model.pdb", "new"), Error);
        fs::permissions(ro, fs::perms::owner_all);
        EXPECT_EQ(test::read_text(ro + "/model.pdb"), "old");
        EXPECT_TRUE(temporaries(ro).empty());
    }
}

}  // namespace
}  // namespace axfold::io

namespace axfold::io {
namespace {

// Complexes: AF2's to_pdb with chain_index (a TER closing each chain, taking a serial number), and an mmCIF with an
// entity per sequence; chains of one entity must be that sequence, and chains must be consecutive.
TEST(StructureWriter, ChainsOfAComplex) {
    ProteinStructure p;
    p.aatype = int_tensor({0, 7, 0, 7, 2});
    p.residue_index = int_tensor({0, 1, 0, 1, 0});
    p.chain_index = int_tensor({5, 5, 6, 6, 9});  // any ids: renumbered A, B, C in order
    p.entity_index = int_tensor({1, 1, 1, 1, 2});
    std::vector<double> pos(5 * 37 * 3, 0.0), mask(5 * 37, 0.0), bf(5 * 37, 50.0);
    for (int i = 0; i < 5; ++i) {
        mask[i * 37 + 1] = 1.0;  // CA only
        pos[(i * 37 + 1) * 3] = i;
    }
    p.atom_positions = f64_tensor({5, 37, 3}, pos);
    p.atom_mask = f64_tensor({5, 37}, mask);
    p.b_factors = f64_tensor({5, 37}, bf);
    const std::string pdb = to_pdb(p);
    EXPECT_NE(pdb.find("ATOM      2  CA  GLY A   2"), std::string::npos) << pdb;
    EXPECT_NE(pdb.find("TER       3      GLY A   2\nATOM      4  CA  ALA B   1"), std::string::npos) << pdb;
    EXPECT_NE(pdb.find("TER       6      GLY B   2\nATOM      7  CA  ASN C   1"), std::string::npos) << pdb;
    EXPECT_NE(pdb.find("TER       8      ASN C   1\nENDMDL"), std::string::npos) << pdb;
    const std::string cif = to_mmcif(p, "complex");
    EXPECT_NE(cif.find("_struct_asym.id\n_struct_asym.entity_id\nA 1\nB 1\nC 2\n"), std::string::npos) << cif;
    EXPECT_NE(cif.find("ATOM 3 C CA . ALA B 1 1 "), std::string::npos) << cif;
    ProteinStructure bad = p;
    bad.aatype = int_tensor({0, 7, 0, 8, 2});  // B is not entity 1's sequence
    test::expect_error([&] { to_mmcif(bad, "x"); }, {"chain B", "entity 1"});
    bad = p;
    bad.chain_index = int_tensor({5, 6, 5, 6, 9});
    test::expect_error([&] { to_pdb(bad); }, {"chain_index[2]", "consecutive"});
}

}  // namespace
}  // namespace axfold::io
