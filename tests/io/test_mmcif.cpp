// mmCIF reader: a real PDB entry (2Q2K, ParR bound to DNA) checked against lines of the file, and small inline
// files for the CIF syntax (quotes, text fields, comments), altlocs, models and malformed input.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "io/mmcif.h"
#include "kernels/error.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace axfold;
using namespace axfold::io;

namespace {

// PDB 2Q2K (X-ray, 3.0 Å): DNA chain F (entity 1) and protein chains A and B (entity 2, label_asym B and C),
// a HEPES (EPE) in author chain A. From aqlaboratory/openfold @ ce0029e, tests/test_data/mmcifs, via
// shared/realdata/mmcif.
const std::string k2q2k = std::string(AXFOLD_TEST_DATA_DIR) + "/realdata/2q2k.cif";

// Writes `content` to <dir>/<name>.cif and returns its path.
std::string tmp_cif(const test::TempDir& dir, const std::string& name, const std::string& content) {
    const fs::path p = dir / (name + ".cif");
    std::ofstream(p) << content;
    return p.string();
}

std::string replaced(std::string s, const std::string& from, const std::string& to) {
    const size_t at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return at == std::string::npos ? s : s.replace(at, from.size(), to);
}

const MmcifAtom* find_atom(const MmcifChain& c, int64_t index, const std::string& name) {
    for (const MmcifAtom& a : c.atoms)
        if (a.seqres_index == index && a.name == name) return &a;
    return nullptr;
}

// The tables every inline case shares: entity 1 is a protein (MSE GLY SER/THR, position 3 hetero), entity 2 RNA.
// No _chem_comp and no label_entity_id column: protein-ness comes from _entity_poly.type and the chain's entity
// from _struct_asym. The text field holds what would break the parse if it were read as tokens.
const std::string kHead = R"(data_TEST
# a comment with a 'quote and "another
_entry.id   'it''s # not a comment'
_refine.ls_d_res_high ?
_reflns.d_resolution_high 2.5
loop_
_entity_poly.entity_id
_entity_poly.type
_entity_poly.pdbx_seq_one_letter_code
1 'polypeptide(L)'
;(MSE)G
'S _fake.tag loop_ data_x
;
2 polyribonucleotide AU
#
loop_
_entity_poly_seq.entity_id
_entity_poly_seq.num
_entity_poly_seq.mon_id
_entity_poly_seq.hetero
1 1 MSE n
1 2 GLY n
1 3 SER y
1 3 THR y
2 1 A n
2 2 U n
loop_
_struct_asym.id
_struct_asym.entity_id
A 1
B 2
C 3
loop_
_atom_site.group_PDB
_atom_site.id
_atom_site.label_atom_id
_atom_site.label_alt_id
_atom_site.label_comp_id
_atom_site.label_asym_id
_atom_site.label_seq_id
_atom_site.Cartn_x
_atom_site.Cartn_y
_atom_site.Cartn_z
_atom_site.occupancy
_atom_site.auth_asym_id
_atom_site.pdbx_PDB_model_num
)";

}  // namespace

TEST(MmcifReal, Chain2q2kAgainstTheFile) {
    // Protein chains only: DNA chain F is not one, and the EPE in author chain A adds nothing.
    EXPECT_EQ(mmcif_protein_chains(k2q2k), (std::vector<std::string>{"A", "B"}));

    const MmcifChain a = read_mmcif_chain(k2q2k, "A");
    EXPECT_EQ(a.path, k2q2k);
    EXPECT_EQ(a.chain_id, "A");
    EXPECT_DOUBLE_EQ(a.resolution, 3.0);  // _refine.ls_d_res_high 3.00
    // _entity_poly_seq of entity 2 (MGSSHHHHHHSSGLVPGSHMDKKE...GENP): num 1 MET, 20 MET, 23 LYS, 53 ALA, 70 PRO.
    ASSERT_EQ(a.seqres.size(), 70u);
    EXPECT_EQ(a.seqres[0], "MET");
    EXPECT_EQ(a.seqres[4], "HIS");
    EXPECT_EQ(a.seqres[19], "MET");
    EXPECT_EQ(a.seqres[22], "LYS");
    EXPECT_EQ(a.seqres[52], "ALA");
    EXPECT_EQ(a.seqres[69], "PRO");
    // Label asym B, model 1: 383 ATOM rows with label_seq_id 23..67 (the EPE HETATM rows have label_seq_id '.').
    EXPECT_EQ(a.atoms.size(), 383u);
    int64_t lo = 1000, hi = -1;
    for (const MmcifAtom& at : a.atoms) {
        lo = std::min(lo, at.seqres_index);
        hi = std::max(hi, at.seqres_index);
        EXPECT_NE(at.residue_name, "EPE");
        EXPECT_FALSE(at.hetatm);
        EXPECT_EQ(at.residue_name, a.seqres[static_cast<size_t>(at.seqres_index)]);
    }
    EXPECT_EQ(lo, 22);
    EXPECT_EQ(hi, 66);
    // Line 1296: ATOM 409 C CA . LYS B 2 23 ? 13.618 24.436 37.967 1.00 71.29 ? 4 LYS A CA 1
    const MmcifAtom* ca = find_atom(a, 22, "CA");
    ASSERT_NE(ca, nullptr);
    EXPECT_EQ(ca->residue_name, "LYS");
    EXPECT_DOUBLE_EQ(ca->x, 13.618);
    EXPECT_DOUBLE_EQ(ca->y, 24.436);
    EXPECT_DOUBLE_EQ(ca->z, 37.967);
    EXPECT_DOUBLE_EQ(ca->occupancy, 1.0);
    // The last atom of the chain (ATOM 790 O . GLY B 2 67 ? 32.509 14.404 42.957) comes last.
    EXPECT_EQ(a.atoms.back().name, "O");
    EXPECT_EQ(a.atoms.back().seqres_index, 66);
    EXPECT_DOUBLE_EQ(a.atoms.back().z, 42.957);

    const MmcifChain b = read_mmcif_chain(k2q2k, "B");
    EXPECT_EQ(b.seqres, a.seqres);
    EXPECT_EQ(b.atoms.size(), 379u);  // label asym C

    test::expect_error([] { read_mmcif_chain(k2q2k, "F"); }, {"'F'", "2q2k.cif", "not a protein chain", "A, B"});
}

TEST(MmcifSyntax, QuotesTextFieldsCommentsHetero) {
    const test::TempDir dir;
    const std::string path = tmp_cif(dir, "syntax", kHead + R"(HETATM 1 SE . MSE A 1 1.5 -2.25 3e1 1.00 P 1
ATOM 2 "H5'" . GLY A 2 4.0 5.0 6.0 ? P 1   # a quoted name ending in a quote
ATOM 3 CA . SER A 3 7.0 8.0 9.0 0.5 P 1
ATOM 4 CA . THR A 3 7.1 8.1 9.1 0.5 P 1
ATOM 5 CG2 . THR A 3 7.2 8.2 9.2 0.5 P 1
ATOM 6 "O5'" . A B 1 0 0 0 1 R 1
ATOM 7 P . U B 2 0 0 0 1 R 1
HETATM 8 O . HOH C . 9 9 9 1 P 1
)");
    EXPECT_EQ(mmcif_protein_chains(path), std::vector<std::string>{"P"});  // not the RNA chain R
    const MmcifChain c = read_mmcif_chain(path, "P");
    EXPECT_DOUBLE_EQ(c.resolution, 2.5);                                   // _refine is '?', so _reflns
    EXPECT_EQ(c.seqres, (std::vector<std::string>{"MSE", "GLY", "SER"}));  // the first of SER/THR
    ASSERT_EQ(c.atoms.size(), 3u);  // no water, and of position 3 only the SEQRES monomer's atoms
    EXPECT_EQ(c.atoms[0].name, "SE");
    EXPECT_EQ(c.atoms[0].residue_name, "MSE");
    EXPECT_TRUE(c.atoms[0].hetatm);
    EXPECT_EQ(c.atoms[0].seqres_index, 0);
    EXPECT_DOUBLE_EQ(c.atoms[0].x, 1.5);
    EXPECT_DOUBLE_EQ(c.atoms[0].y, -2.25);
    EXPECT_DOUBLE_EQ(c.atoms[0].z, 30.0);
    EXPECT_EQ(c.atoms[1].name, "H5'");
    EXPECT_EQ(c.atoms[1].seqres_index, 1);
    EXPECT_FALSE(c.atoms[1].hetatm);
    EXPECT_DOUBLE_EQ(c.atoms[1].occupancy, 1.0);  // '?'
    EXPECT_EQ(c.atoms[2].residue_name, "SER");
    EXPECT_DOUBLE_EQ(c.atoms[2].x, 7.0);
    test::expect_error([&] { read_mmcif_chain(path, "R"); }, {"'R'", path, "not a protein chain"});
}

TEST(MmcifAltloc, HighestOccupancyFirstOnTies) {
    const test::TempDir dir;
    const std::string path = tmp_cif(dir, "altloc", kHead + R"(ATOM 1 N . GLY A 2 0.5 0.5 0.5 1 P 1
ATOM 2 CA A GLY A 2 1.0 1.0 1.0 0.4 P 1
ATOM 3 CA B GLY A 2 2.0 2.0 2.0 0.6 P 1
ATOM 4 C A GLY A 2 3.0 3.0 3.0 0.5 P 1
ATOM 5 C B GLY A 2 4.0 4.0 4.0 0.5 P 1
ATOM 6 O B GLY A 2 5.0 5.0 5.0 0.7 P 1
ATOM 7 O A GLY A 2 6.0 6.0 6.0 0.3 P 1
)");
    const MmcifChain c = read_mmcif_chain(path, "P");
    ASSERT_EQ(c.atoms.size(), 4u);
    const MmcifAtom* ca = find_atom(c, 1, "CA");
    ASSERT_NE(ca, nullptr);
    EXPECT_DOUBLE_EQ(ca->x, 2.0);  // B, occupancy 0.6
    EXPECT_DOUBLE_EQ(ca->occupancy, 0.6);
    EXPECT_DOUBLE_EQ(find_atom(c, 1, "C")->x, 3.0);  // a tie: the first listed
    EXPECT_DOUBLE_EQ(find_atom(c, 1, "O")->x, 5.0);  // B listed first and higher
    EXPECT_EQ(c.atoms[1].name, "CA");                // in order of first appearance
}

TEST(MmcifModels, OnlyTheFirstModel) {
    const test::TempDir dir;
    // Model 2 is listed first; model 1 (the smallest number) is the first model.
    const std::string path = tmp_cif(dir, "models", kHead + R"(ATOM 1 N . GLY A 2 20 20 20 1 P 2
ATOM 2 CA . GLY A 2 21 21 21 1 P 2
ATOM 3 C . GLY A 2 22 22 22 1 P 2
ATOM 4 N . GLY A 2 10 10 10 1 P 1
ATOM 5 CA . GLY A 2 11 11 11 1 P 1
ATOM 6 CA . MSE A 1 12 12 12 1 Q 2
)");
    EXPECT_EQ(mmcif_protein_chains(path), std::vector<std::string>{"P"});  // Q is only in model 2
    const MmcifChain c = read_mmcif_chain(path, "P");
    ASSERT_EQ(c.atoms.size(), 2u);
    EXPECT_DOUBLE_EQ(c.atoms[0].x, 10.0);
    EXPECT_DOUBLE_EQ(c.atoms[1].x, 11.0);
}

TEST(MmcifResolution, FirstSetKeyWins) {
    const test::TempDir dir;
    const std::string atoms = "ATOM 1 CA . GLY A 2 1 1 1 1 P 1\n";
    auto resolution = [&](const std::string& name, const std::string& head) {
        return read_mmcif_chain(tmp_cif(dir, name, head + atoms), "P").resolution;
    };
    EXPECT_DOUBLE_EQ(resolution("res_refine", replaced(kHead, "_refine.ls_d_res_high ?", "_refine.ls_d_res_high 1.80")),
                     1.8);  // _refine before _reflns (2.5)
    EXPECT_DOUBLE_EQ(
        resolution("res_em", replaced(kHead, "_reflns.d_resolution_high 2.5",
                                      "_reflns.d_resolution_high 2.5\n_em_3d_reconstruction.resolution 3.4")),
        3.4);  // _em_3d_reconstruction before _reflns
    EXPECT_DOUBLE_EQ(
        resolution("res_none", replaced(kHead, "_reflns.d_resolution_high 2.5", "_reflns.d_resolution_high .")), 0.0);
    EXPECT_DOUBLE_EQ(resolution("res_missing", replaced(kHead, "_reflns.d_resolution_high 2.5", "")), 0.0);
}

TEST(MmcifErrors, AbsentChainAndMalformedFiles) {
    const test::TempDir dir;
    const std::string ok =
        tmp_cif(dir, "absent", kHead + "ATOM 1 CA . GLY A 2 1 1 1 1 P 1\nATOM 2 P . A B 1 0 0 0 1 R 1\n");
    test::expect_error([&] { read_mmcif_chain(ok, "Z"); },
                       {ok, "no chain 'Z'", "author chain ids: P, R", "protein chains: P"});

    // A truncated loop: the last row lacks its model number.
    const std::string trunc =
        tmp_cif(dir, "trunc", kHead + "ATOM 1 CA . GLY A 2 1 1 1 1 P 1\nATOM 2 C . GLY A 2 1 1 1 1 P\n");
    test::expect_error([&] { read_mmcif_chain(trunc, "P"); },
                       {trunc, "loop_", "_atom_site", "not a multiple of its 13 columns"});
    test::expect_error([&] { mmcif_protein_chains(trunc); }, {trunc, "not a multiple"});

    const std::string loop_line = tmp_cif(dir, "loopline", "data_x\n#\nloop_\n_a.b\n_a.c\n1 2\n3\n_d.e 4\n");
    test::expect_error([&] { mmcif_protein_chains(loop_line); }, {loop_line + ":3:", "3 values"});
    const std::string quote = tmp_cif(dir, "quote", "data_x\n_a.b 'it's open\n_a.c 1\n");
    test::expect_error([&] { mmcif_protein_chains(quote); }, {quote + ":2:", "not closed"});
    const std::string text = tmp_cif(dir, "text", "data_x\n_a.b\n;never\nclosed\n");
    test::expect_error([&] { mmcif_protein_chains(text); }, {text + ":3:", "never closed"});
    const std::string untagged = tmp_cif(dir, "untagged", "data_x\n_a.b 1 2\n");
    test::expect_error([&] { mmcif_protein_chains(untagged); }, {untagged + ":2:", "'2' without a tag"});
    const std::string no_value = tmp_cif(dir, "novalue", "data_x\n_a.b\n_a.c 1\n");
    test::expect_error([&] { mmcif_protein_chains(no_value); }, {no_value + ":2:", "'_a.b' has no value"});
    const std::string not_cif = tmp_cif(dir, "notcif", ">query\nMKV\n");
    test::expect_error([&] { mmcif_protein_chains(not_cif); }, {not_cif + ":1:", "expected a data_ block"});
    const std::string no_atoms = tmp_cif(dir, "noatoms", "data_x\n_entry.id X\n");
    test::expect_error([&] { mmcif_protein_chains(no_atoms); }, {no_atoms, "no _atom_site"});
    const std::string bad_x =
        tmp_cif(dir, "badx", kHead + "ATOM 1 CA . GLY A 2 1 1 1 1 P 1\nATOM 2 C . GLY A 2 x1 1 1 1 P 1\n");
    test::expect_error([&] { read_mmcif_chain(bad_x, "P"); }, {bad_x + ":48:", "Cartn_x 'x1'"});
    const std::string huge_z =
        tmp_cif(dir, "hugez", kHead + "ATOM 1 CA . GLY A 2 1 1 1 1 P 1\nATOM 2 C . GLY A 2 1 1 1e30 1 P 1\n");
    test::expect_error([&] { read_mmcif_chain(huge_z, "P"); }, {huge_z + ":48:", "Cartn_z 1e+30"});
    const std::string bad_seq = tmp_cif(dir, "badseq", kHead + "ATOM 1 CA . GLY A 4 1 1 1 1 P 1\n");
    test::expect_error([&] { read_mmcif_chain(bad_seq, "P"); }, {bad_seq + ":47:", "outside its SEQRES"});
    test::expect_error([] { read_mmcif_chain("/nonexistent/x.cif", "A"); }, {"/nonexistent/x.cif", "not found"});
}
