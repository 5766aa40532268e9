// PDB and PDBx/mmCIF writers for predicted structures (AF2 protein.to_pdb / protein.to_mmcif).
#include "io/structure_writer.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <set>
#include <vector>

#include "io/atomic_file.h"
#include "structure/residue_constants.h"

namespace axfold::io {
namespace {

constexpr int kA = rc::kAtom37;

// Host copies of the structure's tensors after shape, dtype and value checks.
struct HostStructure {
    int64_t n = 0;
    std::vector<int64_t> aatype, residue_index;  // [N]
    std::vector<double> pos;                     // [N, 37, 3]
    std::vector<double> mask;                    // [N, 37]
    std::vector<double> bf;                      // [N, 37]
    std::vector<int64_t> chain, entity;          // [N], 0-based
    std::vector<std::string> chain_ids;          // per chain
    bool present(int64_t i, int a) const { return mask[i * kA + a] >= 0.5; }
    double x(int64_t i, int a, int d) const { return pos[(i * kA + a) * 3 + d]; }
    double b(int64_t i, int a) const { return bf[i * kA + a]; }
};

void check_shape(const Tensor& t, const char* field, const Shape& expected) {
    AXF_CHECK(t.defined(), "ProteinStructure.%s is not set (expected shape %s)", field, shape_str(expected).c_str());
    AXF_CHECK(t.shape() == expected, "ProteinStructure.%s has shape %s, expected %s", field,
              shape_str(t.shape()).c_str(), shape_str(expected).c_str());
}

std::vector<int64_t> host_ints(const Tensor& t, const char* field, const Shape& expected) {
    check_shape(t, field, expected);
    AXF_CHECK(t.dtype() == DType::I64 || t.dtype() == DType::I32, "ProteinStructure.%s must be int64 or int32, got %s",
              field, t.desc().c_str());
    return host_int64(t);
}

std::vector<double> host_floats(const Tensor& t, const char* field, const Shape& expected) {
    check_shape(t, field, expected);
    AXF_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::F64,
              "ProteinStructure.%s must be float32 or float64, got %s", field, t.desc().c_str());
    return host_float64(t);
}

// AF2's protein.PDB_CHAIN_IDS: the names of chains 0, 1, ...
constexpr const char* kChainIds = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

// The chains and entities of a structure: one chain named p.chain_id, or chain_index's runs named A, B, ...
void load_chains(const ProteinStructure& p, HostStructure& s) {
    if (!p.chain_index.defined()) {
        s.chain.assign(static_cast<size_t>(s.n), 0);
        s.entity.assign(static_cast<size_t>(s.n), 0);
        s.chain_ids = {p.chain_id};
        return;
    }
    s.chain = host_ints(p.chain_index, "chain_index", {s.n});
    s.entity = p.entity_index.defined() ? host_ints(p.entity_index, "entity_index", {s.n}) : s.chain;
    // Renumbered in order of appearance; a chain's residues must be consecutive and share one entity.
    std::vector<int64_t> seen_chain, seen_entity;
    auto index_of = [](std::vector<int64_t>& seen, int64_t v) {
        const auto it = std::find(seen.begin(), seen.end(), v);
        if (it != seen.end()) return static_cast<int64_t>(it - seen.begin());
        seen.push_back(v);
        return static_cast<int64_t>(seen.size() - 1);
    };
    for (int64_t i = 0; i < s.n; ++i) {
        const int64_t c = index_of(seen_chain, s.chain[i]);
        AXF_CHECK(i == 0 || c == s.chain[i - 1] || c == static_cast<int64_t>(seen_chain.size()) - 1,
                  "ProteinStructure.chain_index[%lld] = %lld returns to a chain that ended before residue %lld: a "
                  "chain's residues must be consecutive",
                  (long long)i, (long long)s.chain[i], (long long)i);
        const int64_t e = index_of(seen_entity, s.entity[i]);
        AXF_CHECK(i == 0 || c != s.chain[i - 1] || e == s.entity[i - 1],
                  "ProteinStructure.entity_index[%lld] = %lld changes within a chain", (long long)i,
                  (long long)s.entity[i]);
        s.chain[i] = c;
        s.entity[i] = e;
    }
    const size_t max_chains = std::strlen(kChainIds);
    AXF_CHECK(seen_chain.size() <= max_chains,
              "ProteinStructure has %zu chains, more than the %zu chain IDs of PDB "
              "files (A-Z, a-z, 0-9)",
              seen_chain.size(), max_chains);
    for (size_t c = 0; c < seen_chain.size(); ++c) s.chain_ids.push_back(std::string(1, kChainIds[c]));
}

HostStructure load(const ProteinStructure& p) {
    HostStructure s;
    AXF_CHECK(p.aatype.defined(), "ProteinStructure.aatype is not set");
    AXF_CHECK(p.aatype.dim() == 1, "ProteinStructure.aatype has shape %s, expected [N]",
              shape_str(p.aatype.shape()).c_str());
    s.n = p.aatype.size(0);
    AXF_CHECK(s.n > 0, "ProteinStructure has no residues (aatype has shape [0])");
    s.aatype = host_ints(p.aatype, "aatype", {s.n});
    s.residue_index = host_ints(p.residue_index, "residue_index", {s.n});
    s.pos = host_floats(p.atom_positions, "atom_positions", {s.n, kA, 3});
    s.mask = host_floats(p.atom_mask, "atom_mask", {s.n, kA});
    s.bf = host_floats(p.b_factors, "b_factors", {s.n, kA});
    for (int64_t i = 0; i < s.n; ++i) {
        AXF_CHECK(s.aatype[i] >= 0 && s.aatype[i] < rc::kNumRestypesWithX,
                  "ProteinStructure.aatype[%lld] = %lld is outside the AF2 residue types 0..20", (long long)i,
                  (long long)s.aatype[i]);
        for (int a = 0; a < kA; ++a) {
            const double m = s.mask[i * kA + a];
            AXF_CHECK(std::isfinite(m), "ProteinStructure.atom_mask[%lld, %d] (%s) is %g", (long long)i, a,
                      rc::kAtomTypes[a], m);
            if (!s.present(i, a)) continue;
            for (int d = 0; d < 3; ++d)
                AXF_CHECK(std::isfinite(s.x(i, a, d)),
                          "ProteinStructure.atom_positions[%lld, %d, %d] (residue %lld %s, atom %s) is %g",
                          (long long)i, a, d, (long long)(s.residue_index[i] + 1), rc::kRestype3[s.aatype[i]],
                          rc::kAtomTypes[a], s.x(i, a, d));
            AXF_CHECK(std::isfinite(s.b(i, a)), "ProteinStructure.b_factors[%lld, %d] (residue %lld %s, atom %s) is %g",
                      (long long)i, a, (long long)(s.residue_index[i] + 1), rc::kRestype3[s.aatype[i]],
                      rc::kAtomTypes[a], s.b(i, a));
        }
    }
    load_chains(p, s);
    return s;
}

void append(std::string& out, const char* fmt, auto... args) {
    out += strfmt(fmt, args...);
}

// ------------------------------------------------------------------ PDB

// Fixed-width PDB columns: a value outside (lo, hi) would print wider than its column and shift the rest.
void check_pdb_field(double v, double lo, double hi, const char* what, int64_t res, int a) {
    AXF_CHECK(v > lo && v < hi,
              "cannot write PDB: %s %.3f of residue %lld atom %s does not fit the PDB column; write mmCIF instead",
              what, v, (long long)res, rc::kAtomTypes[a]);
}

// ------------------------------------------------------------------ mmCIF

bool is_cif_reserved(const std::string& v) {
    std::string l(v.size(), ' ');
    std::transform(v.begin(), v.end(), l.begin(), [](unsigned char c) { return std::tolower(c); });
    return l.rfind("data_", 0) == 0 || l.rfind("save_", 0) == 0 || l == "loop_" || l == "global_" || l == "stop_";
}

// A CIF value as a token: bare where possible, else quoted, else a ;-text field on its own lines (any
// value containing a newline; one trailing newline is dropped, so "text\n" forces a text field).
// "?" (unknown) and "." (inapplicable) stay bare: callers pass them as CIF null values.
std::string cif_value(std::string v) {
    if (v.empty()) return "''";
    bool needs_quote = is_cif_reserved(v) || std::string("_#$'\";[]").find(v[0]) != std::string::npos;
    bool has_newline = false;
    for (char c : v) {
        if (c == ' ' || c == '\t') needs_quote = true;
        if (c == '\n' || c == '\r') has_newline = true;
    }
    if (!needs_quote && !has_newline) return v;
    if (has_newline) {
        if (v.back() == '\n') v.pop_back();
        return "\n;" + v + "\n;\n";
    }
    // A quote character ends a quoted value only when followed by whitespace.
    auto quotable = [&](char q) {
        for (size_t i = 0; i + 1 < v.size(); ++i)
            if (v[i] == q && (v[i + 1] == ' ' || v[i + 1] == '\t')) return false;
        return v.back() != q;
    };
    if (quotable('\'')) return "'" + v + "'";
    if (quotable('"')) return "\"" + v + "\"";
    return "\n;" + v + "\n;\n";
}

std::string sanitize_name(const std::string& name) {
    std::string s;
    for (unsigned char c : name) s += (c > 32 && c < 127) ? static_cast<char>(std::toupper(c)) : '_';
    return s.empty() ? std::string("AXFOLD_MODEL") : s;
}

const char* chem_comp_name(int restype) {
    static constexpr const char* kNames[rc::kNumRestypesWithX] = {
        "ALANINE", "ARGININE",  "ASPARAGINE", "ASPARTIC ACID", "CYSTEINE", "GLUTAMINE",  "GLUTAMIC ACID",
        "GLYCINE", "HISTIDINE", "ISOLEUCINE", "LEUCINE",       "LYSINE",   "METHIONINE", "PHENYLALANINE",
        "PROLINE", "SERINE",    "THREONINE",  "TRYPTOPHAN",    "TYROSINE", "VALINE",     "UNKNOWN"};
    return kNames[restype];
}

// Key-value pairs of a one-row category.
void cif_pairs(std::string& out, const std::vector<std::pair<std::string, std::string>>& kv) {
    size_t w = 0;
    for (const auto& [k, v] : kv) w = std::max(w, k.size());
    for (const auto& [k, v] : kv) {
        const std::string val = cif_value(v);
        if (!val.empty() && val[0] == '\n') {
            out += k + val;
        } else {
            out += k + std::string(w + 1 - k.size(), ' ') + val + "\n";
        }
    }
    out += "#\n";
}

void cif_loop_header(std::string& out, const std::string& category, const std::vector<const char*>& items) {
    out += "loop_\n";
    for (const char* it : items) out += category + "." + it + "\n";
}

// One-letter sequence as a ;-text field body, 80 characters a line.
std::string wrap80(const std::string& seq) {
    std::string s;
    for (size_t i = 0; i < seq.size(); i += 80) {
        if (i) s += "\n";
        s += seq.substr(i, 80);
    }
    return s;
}

// A category's rows: `key value` pairs for one row (as AF2 writes single-row categories), a loop for several.
void cif_rows(std::string& out, const std::string& category, const std::vector<const char*>& columns,
              const std::vector<std::vector<std::string>>& rows) {
    if (rows.size() == 1) {
        std::vector<std::pair<std::string, std::string>> kv;
        for (size_t c = 0; c < columns.size(); ++c) kv.push_back({category + "." + columns[c], rows[0][c]});
        cif_pairs(out, kv);
        return;
    }
    cif_loop_header(out, category, columns);
    for (const auto& row : rows) {
        for (size_t c = 0; c < row.size(); ++c) {
            const std::string v = cif_value(row[c]);
            out += (c == 0 || v[0] == '\n' ? "" : " ") + v;
        }
        out += "\n";
    }
    out += "#\n";
}

}  // namespace

namespace {

void check_resseq(int64_t resnum, const std::string& what) {
    AXF_CHECK(resnum >= -999 && resnum <= 9999,
              "%s: residue number %lld (residue_index %lld) does not fit PDB's 4-column resSeq field (-999..9999)",
              what.c_str(), (long long)resnum, (long long)(resnum - 1));
}

}  // namespace

void check_pdb_residue_numbers(const Tensor& residue_index, const std::string& source) {
    const Tensor ri = host_cast(residue_index, DType::I64);
    for (int64_t i = 0; i < ri.numel(); ++i) check_resseq(ri.data<int64_t>()[i] + 1, source);
}

std::string to_pdb(const ProteinStructure& p) {
    const HostStructure s = load(p);
    for (const std::string& id : s.chain_ids)
        AXF_CHECK(id.size() == 1 && std::isgraph(static_cast<unsigned char>(id[0])),
                  "cannot write PDB: chain id '%s' must be one printable character", id.c_str());
    auto chain_end = [&](std::string& out, int64_t serial, int64_t i) {
        append(out, "%-6s%5lld      %3s %1c%4lld\n", "TER", (long long)serial, rc::kRestype3[s.aatype[i]],
               s.chain_ids[s.chain[i]][0], (long long)(s.residue_index[i] + 1));
    };

    std::string out;
    out.reserve(static_cast<size_t>(s.n) * 15 * 81 + 64);
    out += "MODEL     1\n";
    int64_t serial = 1;
    for (int64_t i = 0; i < s.n; ++i) {
        if (i > 0 && s.chain[i] != s.chain[i - 1]) chain_end(out, serial++, i - 1);  // AF2: TER takes a serial
        const char chain = s.chain_ids[s.chain[i]][0];
        const int64_t resnum = s.residue_index[i] + 1;
        check_resseq(resnum, "cannot write PDB");
        const char* resname = rc::kRestype3[s.aatype[i]];
        for (int a = 0; a < kA; ++a) {
            if (!s.present(i, a)) continue;
            AXF_CHECK(serial <= 99999,
                      "cannot write PDB: more than 99999 atoms do not fit the serial column; write mmCIF instead");
            for (int d = 0; d < 3; ++d) check_pdb_field(s.x(i, a, d), -999.9995, 9999.9995, "coordinate", resnum, a);
            check_pdb_field(s.b(i, a), -99.995, 999.995, "B-factor", resnum, a);
            const char* atom = rc::kAtomTypes[a];
            // AF2: names of length 4 start in column 13, shorter ones in column 14.
            char name[6];
            std::snprintf(name, sizeof(name), std::strlen(atom) == 4 ? "%s" : " %s", atom);
            const char element[2] = {rc::atom_element(a), '\0'};
            append(out, "%-6s%5lld %-4s%1s%3s %1c%4lld%1s   %8.3f%8.3f%8.3f%6.2f%6.2f          %2s%2s\n", "ATOM",
                   (long long)serial, name, "", resname, chain, (long long)resnum, "", s.x(i, a, 0), s.x(i, a, 1),
                   s.x(i, a, 2), 1.00, s.b(i, a), element, "");
            ++serial;
        }
    }
    chain_end(out, serial, s.n - 1);
    out += "ENDMDL\nEND\n";
    return out;
}

std::string to_mmcif(const ProteinStructure& p, const std::string& name) {
    const HostStructure s = load(p);
    for (const std::string& id : s.chain_ids) {
        AXF_CHECK(!id.empty(), "cannot write mmCIF: empty chain id");
        for (unsigned char c : id)
            AXF_CHECK(std::isalnum(c), "cannot write mmCIF: chain id '%s' must be ASCII letters and digits",
                      id.c_str());
    }
    for (int64_t i = 0; i < s.n; ++i) {
        AXF_CHECK(s.residue_index[i] >= 0, "cannot write mmCIF: residue_index[%lld] = %lld is negative", (long long)i,
                  (long long)s.residue_index[i]);
        AXF_CHECK(i == 0 || s.chain[i] != s.chain[i - 1] || s.residue_index[i] > s.residue_index[i - 1],
                  "cannot write mmCIF: residue_index must increase strictly within a chain, but residue_index[%lld] = "
                  "%lld follows %lld",
                  (long long)i, (long long)s.residue_index[i], (long long)s.residue_index[i - 1]);
    }
    const std::string block = sanitize_name(name);
    // Chains (their first residue) and entities (their first chain): in order of appearance.
    const int64_t num_chains = static_cast<int64_t>(s.chain_ids.size());
    std::vector<int64_t> chain_begin(num_chains + 1, s.n), chain_entity(num_chains, 0);
    for (int64_t i = s.n - 1; i >= 0; --i) {
        chain_begin[s.chain[i]] = i;
        chain_entity[s.chain[i]] = s.entity[i];
    }
    const int64_t num_entities = *std::max_element(s.entity.begin(), s.entity.end()) + 1;
    auto chain_end = [&](int64_t c) {
        int64_t e = chain_begin[c];
        while (e < s.n && s.chain[e] == c) ++e;
        return e;
    };
    // Each entity's sequence, numbered 1..its first chain's last residue; numbers without a residue are UNK (as
    // AF2's _get_entity_poly_seq).
    std::vector<std::vector<int>> seqs(num_entities);
    std::vector<std::string> strands(num_entities);
    std::set<int> comps;
    for (int64_t c = 0; c < num_chains; ++c) {
        const int64_t e = chain_entity[c], b = chain_begin[c], end = chain_end(c);
        strands[e] += (strands[e].empty() ? "" : ",") + s.chain_ids[c];
        if (!seqs[e].empty()) {  // a further copy of the entity: its residues must be the entity's sequence
            for (int64_t i = b; i < end; ++i)
                AXF_CHECK(
                    s.residue_index[i] < static_cast<int64_t>(seqs[e].size()) &&
                        seqs[e][s.residue_index[i]] == static_cast<int>(s.aatype[i]),
                    "cannot write mmCIF: chain %s (residue %lld, %s) differs from the sequence of its entity %lld "
                    "(chain %s)",
                    s.chain_ids[c].c_str(), (long long)(s.residue_index[i] + 1), rc::kRestype3[s.aatype[i]],
                    (long long)(e + 1), strands[e].substr(0, strands[e].find(',')).c_str());
            continue;
        }
        const int64_t last_num = s.residue_index[end - 1] + 1;
        AXF_CHECK(last_num <= 100000000, "cannot write mmCIF: residue number %lld is implausibly large",
                  (long long)last_num);
        seqs[e].assign(static_cast<size_t>(last_num), 20);
        for (int64_t i = b; i < end; ++i) seqs[e][s.residue_index[i]] = static_cast<int>(s.aatype[i]);
    }
    std::vector<std::vector<std::string>> entity_rows, poly_rows, poly_seq_rows, asym_rows, target_rows, instance_rows;
    for (int64_t e = 0; e < num_entities; ++e) {
        std::string one_letter, one_letter_can;
        for (int r : seqs[e]) {
            one_letter += r == 20 ? std::string("(UNK)") : std::string(1, rc::kRestypes[r]);
            one_letter_can += rc::kRestypes[r];
            comps.insert(r);
        }
        const std::string id = std::to_string(e + 1);
        entity_rows.push_back({id, "polymer"});
        poly_rows.push_back(
            {id, "polypeptide(L)", "no", "no", wrap80(one_letter) + "\n", wrap80(one_letter_can) + "\n", strands[e]});
        for (size_t k = 0; k < seqs[e].size(); ++k)
            poly_seq_rows.push_back({id, std::to_string(k + 1), rc::kRestype3[seqs[e][k]], "n"});
        target_rows.push_back({id, "1", "."});
    }
    for (int64_t c = 0; c < num_chains; ++c) {
        asym_rows.push_back({s.chain_ids[c], std::to_string(chain_entity[c] + 1)});
        instance_rows.push_back({s.chain_ids[c], std::to_string(chain_entity[c] + 1), "."});
    }

    std::string out;
    out.reserve(static_cast<size_t>(s.n) * 14 * 110 + 4096);
    out += "data_" + block + "\n#\n";
    cif_pairs(out, {{"_entry.id", block}});
    cif_pairs(out, {{"_audit_conform.dict_name", "mmcif_ma.dic"},
                    {"_audit_conform.dict_version", "1.3.9"},
                    {"_audit_conform.dict_location",
                     "https://raw.githubusercontent.com/ihmwg/ModelCIF/master/dist/mmcif_ma.dic"}});

    // Chemical components, in AF2 residue order; GLY is 'peptide linking' as in AF2 and the CCD.
    cif_loop_header(out, "_chem_comp", {"id", "type", "name"});
    for (int r : comps)
        out += std::string(rc::kRestype3[r]) + " " + cif_value(r == 7 ? "peptide linking" : "L-peptide linking") + " " +
               cif_value(chem_comp_name(r)) + "\n";
    out += "#\n";

    cif_rows(out, "_entity", {"id", "type"}, entity_rows);
    cif_rows(out, "_entity_poly",
             {"entity_id", "type", "nstd_linkage", "nstd_monomer", "pdbx_seq_one_letter_code",
              "pdbx_seq_one_letter_code_can", "pdbx_strand_id"},
             poly_rows);
    cif_loop_header(out, "_entity_poly_seq", {"entity_id", "num", "mon_id", "hetero"});
    for (const auto& r : poly_seq_rows) out += r[0] + " " + r[1] + " " + r[2] + " " + r[3] + "\n";
    out += "#\n";
    cif_rows(out, "_struct_asym", {"id", "entity_id"}, asym_rows);

    // ModelCIF description of the model (AF2 mmcif_metadata, our software in place of DeepMind's release).
    cif_pairs(out, {{"_software.pdbx_ordinal", "1"},
                    {"_software.name", "axfold"},
                    {"_software.version", "?"},
                    {"_software.type", "package"},
                    {"_software.description", "Structure prediction (AlphaFold2 model)"},
                    {"_software.classification", "other"},
                    {"_software.date", "?"}});
    cif_pairs(out, {{"_ma_software_group.ordinal_id", "1"},
                    {"_ma_software_group.group_id", "1"},
                    {"_ma_software_group.software_id", "1"}});
    cif_pairs(out, {{"_ma_data.id", "1"}, {"_ma_data.name", "Model"}, {"_ma_data.content_type", "model coordinates"}});
    cif_rows(out, "_ma_target_entity", {"entity_id", "data_id", "origin"}, target_rows);
    cif_rows(out, "_ma_target_entity_instance", {"asym_id", "entity_id", "details"}, instance_rows);
    cif_pairs(out, {{"_ma_model_list.ordinal_id", "1"},
                    {"_ma_model_list.model_id", "1"},
                    {"_ma_model_list.model_group_id", "1"},
                    {"_ma_model_list.model_name", name.empty() ? std::string("Model") : name},
                    {"_ma_model_list.model_group_name", "axfold AlphaFold2 model"},
                    {"_ma_model_list.data_id", "1"},
                    {"_ma_model_list.model_type", "Ab initio model"}});
    cif_loop_header(out, "_ma_protocol_step", {"ordinal_id", "protocol_id", "step_id", "method_type"});
    out += "1 1 1 'coevolution MSA'\n2 1 2 'template search'\n3 1 3 modeling\n#\n";

    // Atom sites.
    std::set<char> elements;
    std::vector<double> res_plddt(static_cast<size_t>(s.n), 0.0);
    std::vector<bool> res_present(static_cast<size_t>(s.n), false);
    cif_loop_header(out, "_atom_site", {"group_PDB",         "id",
                                        "type_symbol",       "label_atom_id",
                                        "label_alt_id",      "label_comp_id",
                                        "label_asym_id",     "label_entity_id",
                                        "label_seq_id",      "pdbx_PDB_ins_code",
                                        "Cartn_x",           "Cartn_y",
                                        "Cartn_z",           "occupancy",
                                        "B_iso_or_equiv",    "pdbx_formal_charge",
                                        "auth_seq_id",       "auth_comp_id",
                                        "auth_asym_id",      "auth_atom_id",
                                        "pdbx_PDB_model_num"});
    int64_t serial = 1;
    for (int64_t i = 0; i < s.n; ++i) {
        const long long num = static_cast<long long>(s.residue_index[i] + 1);
        const char* resname = rc::kRestype3[s.aatype[i]];
        double bsum = 0.0;
        int count = 0;
        for (int a = 0; a < kA; ++a) {
            if (!s.present(i, a)) continue;
            const char* atom = rc::kAtomTypes[a];
            const char element = rc::atom_element(a);
            elements.insert(element);
            const std::string& chain = s.chain_ids[s.chain[i]];
            append(out, "ATOM %lld %c %s . %s %s %lld %lld . %.3f %.3f %.3f 1.00 %.2f ? %lld %s %s %s 1\n",
                   (long long)serial, element, atom, resname, chain.c_str(), (long long)(s.entity[i] + 1), num,
                   s.x(i, a, 0), s.x(i, a, 1), s.x(i, a, 2), s.b(i, a), num, resname, chain.c_str(), atom);
            ++serial;
            bsum += s.b(i, a);
            ++count;
        }
        // Per-residue pLDDT: the CA B-factor (AF2 writes one value per residue on every atom); the mean
        // over present atoms where CA is missing.
        if (count > 0) {
            res_present[i] = true;
            res_plddt[i] = s.present(i, rc::kAtomCA) ? s.b(i, rc::kAtomCA) : bsum / count;
        }
    }
    out += "#\n";
    cif_loop_header(out, "_atom_type", {"symbol"});
    for (char e : elements) out += std::string(1, e) + "\n";
    out += "#\n";

    // ModelCIF pLDDT: metric 1 global, metric 2 local (numbering as AF2's mmcif_metadata and AFDB files).
    cif_loop_header(out, "_ma_qa_metric", {"id", "name", "type", "mode", "software_group_id"});
    out += "1 pLDDT pLDDT global 1\n2 pLDDT pLDDT local 1\n#\n";
    double gsum = 0.0;
    int64_t gcount = 0;
    for (int64_t i = 0; i < s.n; ++i) {
        if (!res_present[i]) continue;
        gsum += res_plddt[i];
        ++gcount;
    }
    cif_pairs(out, {{"_ma_qa_metric_global.ordinal_id", "1"},
                    {"_ma_qa_metric_global.model_id", "1"},
                    {"_ma_qa_metric_global.metric_id", "1"},
                    {"_ma_qa_metric_global.metric_value", strfmt("%.2f", gcount ? gsum / gcount : 0.0)}});
    cif_loop_header(
        out, "_ma_qa_metric_local",
        {"ordinal_id", "model_id", "label_asym_id", "label_seq_id", "label_comp_id", "metric_id", "metric_value"});
    int64_t ordinal = 1;
    for (int64_t i = 0; i < s.n; ++i) {
        if (!res_present[i]) continue;
        append(out, "%lld 1 %s %lld %s 2 %.2f\n", (long long)ordinal++, s.chain_ids[s.chain[i]].c_str(),
               (long long)(s.residue_index[i] + 1), rc::kRestype3[s.aatype[i]], res_plddt[i]);
    }
    out += "#\n";
    return out;
}

void write_pdb(const std::string& path, const ProteinStructure& p) {
    write_file_atomic(path, to_pdb(p));
}

void write_mmcif(const std::string& path, const ProteinStructure& p, const std::string& name) {
    write_file_atomic(path, to_mmcif(p, name));
}

}  // namespace axfold::io
