// mmCIF (PDBx) reader for one protein chain; see mmcif.h.
#include "io/mmcif.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "kernels/error.h"

namespace axfold::io {

namespace {

// ---- CIF syntax ------------------------------------------------------------------------------------

std::string read_text(const std::string& path) {
    std::error_code ec;
    AXF_CHECK(std::filesystem::exists(path, ec), "mmCIF file '%s' not found", path.c_str());
    AXF_CHECK(!std::filesystem::is_directory(path, ec), "mmCIF file '%s' is a directory", path.c_str());
    std::ifstream in(path, std::ios::binary);
    AXF_CHECK(in.good(), "cannot open mmCIF file '%s'", path.c_str());
    std::stringstream ss;
    ss << in.rdbuf();
    AXF_CHECK(!in.bad(), "error reading mmCIF file '%s'", path.c_str());
    std::string text = ss.str();
    // Values are kept as 32-bit offsets into the text.
    AXF_CHECK(text.size() < std::numeric_limits<uint32_t>::max(),
              "mmCIF file '%s' is too large (%zu bytes, 4 GiB at most)", path.c_str(), text.size());
    return text;
}

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

char lower(char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string to_lower(std::string_view s) {
    std::string r(s);
    for (char& c : r) c = lower(c);
    return r;
}

bool starts_with_ci(std::string_view s, std::string_view prefix) {
    if (s.size() < prefix.size()) return false;
    for (size_t i = 0; i < prefix.size(); ++i)
        if (lower(s[i]) != prefix[i]) return false;
    return true;
}

bool contains_ci(std::string_view s, std::string_view needle) {
    return to_lower(s).find(needle) != std::string::npos;
}

// One value: a view into the file text. Unquoted '.' and '?' are unset (CIF's inapplicable and unknown).
struct Value {
    uint32_t off = 0, len = 0;
    bool unset = false;
};

struct Token {
    enum Kind { kEnd, kPlain, kQuoted, kText } kind = kEnd;
    uint32_t off = 0, len = 0;
    int line = 0;
};

// Splits CIF text into tokens in one pass, counting lines for error messages.
class Tokenizer {
public:
    Tokenizer(const std::string& text, const std::string& path) : t_(text), path_(path) {}

    Token next() {
        const size_t n = t_.size();
        while (pos_ < n) {
            const char c = t_[pos_];
            if (c == '\n') {
                ++line_;
                ++pos_;
            } else if (is_space(c)) {
                ++pos_;
            } else if (c == '#') {
                while (pos_ < n && t_[pos_] != '\n') ++pos_;
            } else if (c == ';' && (pos_ == 0 || t_[pos_ - 1] == '\n')) {
                return text_field();
            } else if (c == '\'' || c == '"') {
                return quoted(c);
            } else {
                const size_t b = pos_;
                while (pos_ < n && !is_space(t_[pos_])) ++pos_;
                return make(Token::kPlain, b, pos_ - b, line_);
            }
        }
        return make(Token::kEnd, n, 0, line_);
    }

private:
    Token make(Token::Kind k, size_t off, size_t len, int line) const {
        return Token{k, static_cast<uint32_t>(off), static_cast<uint32_t>(len), line};
    }

    // A quote closes only where whitespace or the end of the line follows it, so "O5'" is one value.
    Token quoted(char q) {
        const size_t n = t_.size(), b = pos_ + 1;
        size_t i = b;
        for (; i < n && t_[i] != '\n'; ++i)
            if (t_[i] == q && (i + 1 == n || is_space(t_[i + 1]))) break;
        AXF_CHECK(i < n && t_[i] == q, "%s:%d: quoted value (%c) is not closed on its line", path_.c_str(), line_, q);
        pos_ = i + 1;
        return make(Token::kQuoted, b, i - b, line_);
    }

    // ;text field: everything after the opening ';' up to the newline before the next line starting with ';'.
    Token text_field() {
        const int start_line = line_;
        const size_t b = pos_ + 1;
        const size_t e = t_.find("\n;", pos_);
        AXF_CHECK(e != std::string::npos, "%s:%d: text field (';' at the start of the line) is never closed",
                  path_.c_str(), start_line);
        line_ += static_cast<int>(std::count(t_.begin() + static_cast<std::ptrdiff_t>(pos_),
                                             t_.begin() + static_cast<std::ptrdiff_t>(e + 1), '\n'));
        pos_ = e + 2;
        AXF_CHECK(pos_ == t_.size() || is_space(t_[pos_]),
                  "%s:%d: the ';' closing the text field from line %d must be followed by whitespace", path_.c_str(),
                  line_, start_line);
        size_t end = e;
        if (end > b && t_[end - 1] == '\r') --end;
        return make(Token::kText, b, end - b, start_line);
    }

    const std::string& t_;
    const std::string& path_;
    size_t pos_ = 0;
    int line_ = 1;
};

// One category of the block: a loop_ table, or the single row its `_category.item value` pairs make.
struct Category {
    std::string name;                // lower case, without '_'
    std::vector<std::string> items;  // lower case
    std::vector<Value> values;       // [rows, items] row-major
    bool loop = false;
    int line = 0;  // where it starts

    size_t rows() const { return items.empty() ? 0 : values.size() / items.size(); }
    int column(std::string_view item) const {
        for (size_t i = 0; i < items.size(); ++i)
            if (items[i] == item) return static_cast<int>(i);
        return -1;
    }
    const Value& at(size_t row, int col) const { return values[row * items.size() + static_cast<size_t>(col)]; }
};

// The first data_ block of a CIF file, keeping the values of the categories asked for.
struct CifBlock {
    std::string path, text;
    std::vector<Category> categories;

    const Category* find(std::string_view name) const {
        for (const Category& c : categories)
            if (c.name == name) return &c;
        return nullptr;
    }
    std::string_view str(const Value& v) const { return std::string_view(text).substr(v.off, v.len); }
    std::string string(const Value& v) const { return std::string(str(v)); }
    int line_of(const Value& v) const {
        return 1 + static_cast<int>(std::count(text.begin(), text.begin() + v.off, '\n'));
    }
};

// A plain token that cannot be a value: a tag or a reserved word.
bool is_tag_or_keyword(const std::string& text, const Token& t) {
    if (t.kind != Token::kPlain) return false;
    const std::string_view s = std::string_view(text).substr(t.off, t.len);
    return s[0] == '_' || starts_with_ci(s, "data_") || starts_with_ci(s, "loop_") || starts_with_ci(s, "save_") ||
           starts_with_ci(s, "global_") || starts_with_ci(s, "stop_");
}

// "_atom_site.Cartn_x" -> ("atom_site", "cartn_x"); a tag without '.' is a category of its own.
std::pair<std::string, std::string> split_tag(std::string_view tag) {
    const size_t dot = tag.find('.');
    if (dot == std::string_view::npos) return {to_lower(tag.substr(1)), ""};
    return {to_lower(tag.substr(1, dot - 1)), to_lower(tag.substr(dot + 1))};
}

CifBlock parse_cif(const std::string& path, const std::vector<std::string_view>& wanted) {
    CifBlock b;
    b.path = path;
    b.text = read_text(path);
    const std::string& text = b.text;
    const char* p = path.c_str();
    auto view = [&](const Token& t) { return std::string_view(text).substr(t.off, t.len); };
    auto value = [&](const Token& t) {
        const bool unset = t.kind == Token::kPlain && t.len == 1 && (text[t.off] == '.' || text[t.off] == '?');
        return Value{t.off, t.len, unset};
    };
    auto is_wanted = [&](const std::string& cat) {
        return std::find(wanted.begin(), wanted.end(), cat) != wanted.end();
    };
    auto category = [&](const std::string& name) -> Category* {
        for (Category& c : b.categories)
            if (c.name == name) return &c;
        return nullptr;
    };

    Tokenizer tz(text, path);
    Token tok = tz.next();
    AXF_CHECK(tok.kind != Token::kEnd, "'%s' is not an mmCIF file: it is empty (no data_ block)", p);
    AXF_CHECK(tok.kind == Token::kPlain && starts_with_ci(view(tok), "data_"),
              "%s:%d: not an mmCIF file: expected a data_ block header, found '%.*s'", p, tok.line,
              static_cast<int>(std::min<uint32_t>(tok.len, 40)), text.data() + tok.off);
    tok = tz.next();
    while (tok.kind != Token::kEnd) {
        const std::string_view s = view(tok);
        const std::string shown(s.substr(0, 40));
        AXF_CHECK(tok.kind == Token::kPlain && is_tag_or_keyword(text, tok), "%s:%d: value '%s' without a tag", p,
                  tok.line, shown.c_str());
        if (starts_with_ci(s, "data_")) break;  // only the first block
        AXF_CHECK(!starts_with_ci(s, "save_") && !starts_with_ci(s, "global_") && !starts_with_ci(s, "stop_"),
                  "%s:%d: '%s' (save frames, global_ and stop_) is not supported in mmCIF data files", p, tok.line,
                  shown.c_str());
        if (starts_with_ci(s, "loop_")) {
            const int loop_line = tok.line;
            std::vector<std::string> items;
            std::string cat;
            for (tok = tz.next(); tok.kind == Token::kPlain && view(tok)[0] == '_'; tok = tz.next()) {
                auto [c, item] = split_tag(view(tok));
                AXF_CHECK(items.empty() || c == cat, "%s:%d: loop_ from line %d mixes categories '_%s' and '_%s'", p,
                          tok.line, loop_line, cat.c_str(), c.c_str());
                cat = c;
                items.push_back(item);
            }
            AXF_CHECK(!items.empty(), "%s:%d: loop_ without tags", p, loop_line);
            Category* dst = nullptr;
            if (is_wanted(cat)) {
                AXF_CHECK(category(cat) == nullptr, "%s:%d: category '_%s' is defined twice (again in the loop_ here)",
                          p, loop_line, cat.c_str());
                b.categories.push_back(Category{cat, items, {}, true, loop_line});
                dst = &b.categories.back();
            }
            size_t count = 0;
            for (; tok.kind != Token::kEnd && !is_tag_or_keyword(text, tok); tok = tz.next(), ++count)
                if (dst) dst->values.push_back(value(tok));
            AXF_CHECK(count % items.size() == 0,
                      "%s:%d: loop_ of '_%s' has %zu values, not a multiple of its %zu columns (a truncated or "
                      "malformed table; it ends before line %d)",
                      p, loop_line, cat.c_str(), count, items.size(), tok.line);
            continue;
        }
        // `_category.item value`
        const Token tag = tok;
        tok = tz.next();
        AXF_CHECK(tok.kind != Token::kEnd && !is_tag_or_keyword(text, tok), "%s:%d: tag '%s' has no value", p, tag.line,
                  shown.c_str());
        auto [cat, item] = split_tag(s);
        if (is_wanted(cat)) {
            Category* c = category(cat);
            if (!c) {
                b.categories.push_back(Category{cat, {}, {}, false, tag.line});
                c = &b.categories.back();
            }
            AXF_CHECK(!c->loop, "%s:%d: '%s' adds an item to category '_%s', which is a loop_ at line %d", p, tag.line,
                      shown.c_str(), cat.c_str(), c->line);
            AXF_CHECK(c->column(item) < 0, "%s:%d: '%s' is given twice", p, tag.line, shown.c_str());
            c->items.push_back(item);
            c->values.push_back(value(tok));
        }
        tok = tz.next();
    }
    return b;
}

// ---- values ----------------------------------------------------------------------------------------

bool parse_int(std::string_view s, int64_t& out) {
    if (!s.empty() && s[0] == '+') s.remove_prefix(1);
    const auto r = std::from_chars(s.data(), s.data() + s.size(), out);
    return r.ec == std::errc() && r.ptr == s.data() + s.size() && !s.empty();
}

// CIF numbers may carry a standard uncertainty in parentheses: "1.234(5)".
bool parse_double(std::string_view s, double& out) {
    if (!s.empty() && s[0] == '+') s.remove_prefix(1);
    if (!s.empty() && s.back() == ')') {
        const size_t open = s.rfind('(');
        if (open == std::string_view::npos) return false;
        s = s.substr(0, open);
    }
    if (s.empty()) return false;
    const auto r = std::from_chars(s.data(), s.data() + s.size(), out);
    // from_chars reads "nan" and "inf" too: a coordinate, occupancy or resolution must be finite.
    return r.ec == std::errc() && r.ptr == s.data() + s.size() && std::isfinite(out);
}

const char* kWanted[] = {"atom_site", "entity_poly_seq", "entity_poly", "struct_asym",
                         "chem_comp", "refine",          "reflns",      "em_3d_reconstruction"};

std::string join(const std::vector<std::string>& v) {
    if (v.empty()) return "none";
    std::string s;
    for (const std::string& x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
}

// A polymer entity: its _entity_poly_seq rows and whether AF2 would take it as protein.
struct Entity {
    std::vector<std::pair<int64_t, std::string_view>> monomers;  // (num, mon_id) in file order
    std::string_view poly_type;                                  // _entity_poly.type
    bool protein = false;
};

// The parts of an mmCIF file that AF2's parser reads, and the first model's _atom_site rows.
class Mmcif {
public:
    explicit Mmcif(const std::string& path)
        : b_(parse_cif(path, std::vector<std::string_view>(std::begin(kWanted), std::end(kWanted)))) {
        const char* p = b_.path.c_str();
        atoms_ = b_.find("atom_site");
        AXF_CHECK(atoms_ && atoms_->rows() > 0, "'%s' has no _atom_site table (no coordinates)", p);
        auto need = [&](const char* item) {
            const int c = atoms_->column(item);
            AXF_CHECK(c >= 0, "'%s': _atom_site (line %d) has no '%s' column", p, atoms_->line, item);
            return c;
        };
        c_label_asym_ = need("label_asym_id");
        c_seq_ = need("label_seq_id");
        c_atom_ = need("label_atom_id");
        c_comp_ = need("label_comp_id");
        c_x_ = need("cartn_x");
        c_y_ = need("cartn_y");
        c_z_ = need("cartn_z");
        c_auth_asym_ = atoms_->column("auth_asym_id");
        if (c_auth_asym_ < 0) c_auth_asym_ = c_label_asym_;  // no author ids: the label ids are the only ones
        c_entity_ = atoms_->column("label_entity_id");
        c_group_ = atoms_->column("group_pdb");
        c_occ_ = atoms_->column("occupancy");
        read_entities();
        select_first_model();
    }

    Mmcif(const Mmcif&) = delete;  // entities_ and friends hold views into b_.text
    Mmcif& operator=(const Mmcif&) = delete;

    const CifBlock& block() const { return b_; }
    const Category& atoms() const { return *atoms_; }
    const std::vector<size_t>& model_rows() const { return model_rows_; }
    std::string_view at(size_t row, int col) const { return b_.str(atoms_->at(row, col)); }
    std::string_view auth_asym(size_t row) const { return at(row, c_auth_asym_); }
    std::string_view label_asym(size_t row) const { return at(row, c_label_asym_); }

    // The entity of an _atom_site row (nullptr for non-polymers and unknown entities).
    const Entity* entity_of(size_t row) const {
        std::string_view id;
        if (c_entity_ >= 0 && !atoms_->at(row, c_entity_).unset) {
            id = at(row, c_entity_);
        } else {
            const auto it = asym_entity_.find(label_asym(row));
            if (it == asym_entity_.end()) return nullptr;
            id = it->second;
        }
        const auto it = entities_.find(id);
        return it == entities_.end() ? nullptr : &it->second;
    }
    std::string_view entity_id_of(size_t row) const {
        if (c_entity_ >= 0 && !atoms_->at(row, c_entity_).unset) return at(row, c_entity_);
        const auto it = asym_entity_.find(label_asym(row));
        return it == asym_entity_.end() ? std::string_view("?") : it->second;
    }

    double resolution() const {
        static const std::pair<const char*, const char*> keys[] = {
            {"refine", "ls_d_res_high"}, {"em_3d_reconstruction", "resolution"}, {"reflns", "d_resolution_high"}};
        for (const auto& [cat, item] : keys) {
            const Category* c = b_.find(cat);
            const int col = c ? c->column(item) : -1;
            if (col < 0 || c->rows() == 0 || c->at(0, col).unset) continue;
            double r = 0;
            if (parse_double(b_.str(c->at(0, col)), r)) return r;
        }
        return 0;
    }

    int c_label_asym_ = -1, c_auth_asym_ = -1, c_seq_ = -1, c_atom_ = -1, c_comp_ = -1, c_x_ = -1, c_y_ = -1, c_z_ = -1,
        c_entity_ = -1, c_group_ = -1, c_occ_ = -1;

private:
    void read_entities() {
        const char* p = b_.path.c_str();
        if (const Category* seq = b_.find("entity_poly_seq")) {
            const int ce = seq->column("entity_id"), cn = seq->column("num"), cm = seq->column("mon_id");
            AXF_CHECK(ce >= 0 && cn >= 0 && cm >= 0,
                      "'%s': _entity_poly_seq (line %d) needs entity_id, num and mon_id columns", p, seq->line);
            for (size_t r = 0; r < seq->rows(); ++r) {
                const Value& num = seq->at(r, cn);
                int64_t n = 0;
                AXF_CHECK(parse_int(b_.str(num), n), "%s:%d: _entity_poly_seq.num '%s' is not an integer", p,
                          b_.line_of(num), b_.string(num).c_str());
                Entity& e = entities_[b_.str(seq->at(r, ce))];
                e.monomers.emplace_back(n, b_.str(seq->at(r, cm)));
            }
        }
        if (const Category* poly = b_.find("entity_poly")) {
            const int ce = poly->column("entity_id"), ct = poly->column("type");
            if (ce >= 0 && ct >= 0)
                for (size_t r = 0; r < poly->rows(); ++r) {
                    const auto it = entities_.find(b_.str(poly->at(r, ce)));
                    if (it != entities_.end()) it->second.poly_type = b_.str(poly->at(r, ct));
                }
        }
        // AF2: a polymer with any peptide-like monomer (_chem_comp.type "L-peptide linking", ...) is protein.
        std::unordered_set<std::string_view> peptide_comps;
        if (const Category* cc = b_.find("chem_comp")) {
            const int ci = cc->column("id"), ct = cc->column("type");
            if (ci >= 0 && ct >= 0)
                for (size_t r = 0; r < cc->rows(); ++r)
                    if (contains_ci(b_.str(cc->at(r, ct)), "peptide")) peptide_comps.insert(b_.str(cc->at(r, ci)));
        }
        for (auto& [id, e] : entities_) {
            e.protein = contains_ci(e.poly_type, "polypeptide") ||
                        std::any_of(e.monomers.begin(), e.monomers.end(),
                                    [&](const auto& mon) { return peptide_comps.count(mon.second) > 0; });
        }
        if (const Category* sa = b_.find("struct_asym")) {
            const int ci = sa->column("id"), ce = sa->column("entity_id");
            if (ci >= 0 && ce >= 0)
                for (size_t r = 0; r < sa->rows(); ++r) asym_entity_[b_.str(sa->at(r, ci))] = b_.str(sa->at(r, ce));
        }
    }

    // The model with the smallest pdbx_PDB_model_num; the first listed when the numbers are not all integers.
    void select_first_model() {
        const size_t rows = atoms_->rows();
        model_rows_.reserve(rows);
        const int cm = atoms_->column("pdbx_pdb_model_num");
        if (cm < 0) {
            for (size_t r = 0; r < rows; ++r) model_rows_.push_back(r);
            return;
        }
        bool all_int = true;
        int64_t first = std::numeric_limits<int64_t>::max();
        for (size_t r = 0; r < rows && all_int; ++r) {
            int64_t m = 0;
            all_int = !atoms_->at(r, cm).unset && parse_int(at(r, cm), m);
            first = std::min(first, m);
        }
        const std::string_view first_str = at(0, cm);
        for (size_t r = 0; r < rows; ++r) {
            int64_t m = 0;
            if (all_int ? (parse_int(at(r, cm), m) && m == first) : at(r, cm) == first_str) model_rows_.push_back(r);
        }
    }

    CifBlock b_;
    const Category* atoms_ = nullptr;
    std::unordered_map<std::string_view, Entity> entities_;
    std::unordered_map<std::string_view, std::string_view> asym_entity_;  // label_asym_id -> entity id
    std::vector<size_t> model_rows_;                                      // _atom_site rows of the first model
};

// Author chain ids of the first model in order of first appearance, and those of protein entities.
void list_chains(const Mmcif& m, std::vector<std::string>& all, std::vector<std::string>& protein) {
    std::string_view last_asym, last_auth;
    bool first = true;
    for (size_t r : m.model_rows()) {
        const std::string_view auth = m.auth_asym(r), asym = m.label_asym(r);
        // Rows come grouped by chain: look up only where the chain changes.
        if (!first && asym == last_asym && auth == last_auth) continue;
        first = false;
        last_asym = asym;
        last_auth = auth;
        const Entity* e = m.entity_of(r);
        if (std::find(all.begin(), all.end(), auth) == all.end()) all.emplace_back(auth);
        if (e && e->protein && std::find(protein.begin(), protein.end(), auth) == protein.end())
            protein.emplace_back(auth);
    }
}

}  // namespace

std::vector<std::string> mmcif_protein_chains(const std::string& path) {
    const Mmcif m(path);
    std::vector<std::string> all, protein;
    list_chains(m, all, protein);
    return protein;
}

MmcifChain read_mmcif_chain(const std::string& path, const std::string& chain_id) {
    const Mmcif m(path);
    const CifBlock& b = m.block();
    const Category& site = m.atoms();
    const char* p = path.c_str();

    // The chain's polymer: the label_asym_id of its first protein atom in the first model.
    const Entity* entity = nullptr;
    std::string_view asym, entity_id;
    bool present = false;
    for (size_t r : m.model_rows()) {
        if (m.auth_asym(r) != chain_id) continue;
        present = true;
        const Entity* e = m.entity_of(r);
        if (e && e->protein) {
            entity = e;
            asym = m.label_asym(r);
            entity_id = m.entity_id_of(r);
            break;
        }
    }
    if (!entity) {
        std::vector<std::string> all, protein;
        list_chains(m, all, protein);
        AXF_CHECK(present, "'%s' has no chain '%s' in its first model (author chain ids: %s; protein chains: %s)", p,
                  chain_id.c_str(), join(all).c_str(), join(protein).c_str());
        AXF_FAIL(
            "chain '%s' of '%s' is not a protein chain (none of its entities has a peptide _entity_poly.type "
            "or _chem_comp.type; author chain ids: %s; protein chains: %s)",
            chain_id.c_str(), p, join(all).c_str(), join(protein).c_str());
    }

    MmcifChain out;
    out.path = path;
    out.chain_id = chain_id;
    out.resolution = m.resolution();

    // SEQRES in num order; the first listed monomer stands for a hetero position.
    std::vector<std::pair<int64_t, std::string_view>> mons = entity->monomers;
    std::stable_sort(mons.begin(), mons.end(), [](const auto& a, const auto& c) { return a.first < c.first; });
    mons.erase(std::unique(mons.begin(), mons.end(), [](const auto& a, const auto& c) { return a.first == c.first; }),
               mons.end());
    const int64_t start = mons.front().first;
    for (size_t i = 0; i < mons.size(); ++i) {
        AXF_CHECK(mons[i].first == start + static_cast<int64_t>(i),
                  "'%s': _entity_poly_seq of entity %.*s (chain '%s') skips from num %lld to %lld; SEQRES numbers "
                  "must be contiguous",
                  p, static_cast<int>(entity_id.size()), entity_id.data(), chain_id.c_str(),
                  static_cast<long long>(mons[i - 1].first), static_cast<long long>(mons[i].first));
        out.seqres.emplace_back(mons[i].second);
    }
    const int64_t n_res = static_cast<int64_t>(out.seqres.size());

    // Every first-model atom of the polymer with a SEQRES position, grouped by position.
    std::vector<std::vector<MmcifAtom>> by_res(static_cast<size_t>(n_res));
    auto number = [&](size_t r, int col, const char* what) {
        const Value& v = site.at(r, col);
        double d = 0;
        AXF_CHECK(!v.unset && parse_double(b.str(v), d), "%s:%d: _atom_site.%s '%s' is not a number", p, b.line_of(v),
                  what, b.string(v).c_str());
        return d;
    };
    for (size_t r : m.model_rows()) {
        if (m.label_asym(r) != asym || m.auth_asym(r) != chain_id) continue;
        const Value& sv = site.at(r, m.c_seq_);
        if (sv.unset) continue;
        int64_t seq = 0;
        AXF_CHECK(parse_int(b.str(sv), seq), "%s:%d: _atom_site.label_seq_id '%s' is not an integer", p, b.line_of(sv),
                  b.string(sv).c_str());
        const int64_t idx = seq - start;
        AXF_CHECK(idx >= 0 && idx < n_res,
                  "%s:%d: _atom_site.label_seq_id %lld of chain '%s' is outside its SEQRES (_entity_poly_seq.num "
                  "%lld..%lld)",
                  p, b.line_of(sv), static_cast<long long>(seq), chain_id.c_str(), static_cast<long long>(start),
                  static_cast<long long>(start + n_res - 1));
        MmcifAtom a;
        a.name = std::string(m.at(r, m.c_atom_));
        a.residue_name = std::string(m.at(r, m.c_comp_));
        a.seqres_index = idx;
        // Coordinates in Angstrom: a structure spans at most a few thousand; 1e30 is a corrupt file, not an atom.
        auto coordinate = [&](int col, const char* what) {
            const double d = number(r, col, what);
            AXF_CHECK(std::fabs(d) <= 1e6, "%s:%d: _atom_site.%s %g is not a coordinate (|x| <= 1e6 Angstrom)", p,
                      b.line_of(site.at(r, col)), what, d);
            return d;
        };
        a.x = coordinate(m.c_x_, "Cartn_x");
        a.y = coordinate(m.c_y_, "Cartn_y");
        a.z = coordinate(m.c_z_, "Cartn_z");
        if (m.c_occ_ >= 0 && !site.at(r, m.c_occ_).unset) a.occupancy = number(r, m.c_occ_, "occupancy");
        a.hetatm = m.c_group_ >= 0 && m.at(r, m.c_group_) == "HETATM";
        by_res[static_cast<size_t>(idx)].push_back(std::move(a));
    }

    for (int64_t i = 0; i < n_res; ++i) {
        std::vector<MmcifAtom>& cand = by_res[static_cast<size_t>(i)];
        // A microheterogeneous position: keep the atoms of the SEQRES monomer when it was modelled.
        const std::string& mon = out.seqres[static_cast<size_t>(i)];
        const bool has_mon =
            std::any_of(cand.begin(), cand.end(), [&](const MmcifAtom& a) { return a.residue_name == mon; });
        const size_t first = out.atoms.size();
        for (MmcifAtom& a : cand) {
            if (has_mon && a.residue_name != mon) continue;
            // Alternative locations: the highest occupancy wins, the first listed on ties (Biopython).
            auto same = std::find_if(out.atoms.begin() + static_cast<std::ptrdiff_t>(first), out.atoms.end(),
                                     [&](const MmcifAtom& o) { return o.name == a.name; });
            if (same == out.atoms.end())
                out.atoms.push_back(std::move(a));
            else if (a.occupancy > same->occupancy)
                *same = std::move(a);
        }
    }
    return out;
}

}  // namespace axfold::io
