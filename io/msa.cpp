// FASTA, A3M and Stockholm parsers; see msa.h.
#include "io/msa.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "kernels/error.h"

namespace axfold::io {

namespace {

std::string read_text(const std::string& path, const char* what) {
    std::error_code ec;
    AXF_CHECK(std::filesystem::exists(path, ec), "%s file '%s' not found", what, path.c_str());
    AXF_CHECK(!std::filesystem::is_directory(path, ec), "%s file '%s' is a directory", what, path.c_str());
    std::ifstream in(path, std::ios::binary);
    AXF_CHECK(in.good(), "cannot open %s file '%s'", what, path.c_str());
    std::stringstream ss;
    ss << in.rdbuf();
    AXF_CHECK(!in.bad(), "error reading %s file '%s'", what, path.c_str());
    return ss.str();
}

// Splits into lines (\n, \r\n), trimming surrounding whitespace and dropping NUL bytes.
std::vector<std::string> split_lines(const std::string& text) {
    std::vector<std::string> lines;
    std::string cur;
    auto flush = [&] {
        size_t b = 0, e = cur.size();
        while (b < e && std::isspace(static_cast<unsigned char>(cur[b]))) ++b;
        while (e > b && std::isspace(static_cast<unsigned char>(cur[e - 1]))) --e;
        lines.push_back(cur.substr(b, e - b));
        cur.clear();
    };
    for (char c : text) {
        if (c == '\n') {
            flush();
        } else if (c != '\0') {
            cur.push_back(c);
        }
    }
    if (!cur.empty()) flush();
    return lines;
}

std::string printable(char c) {
    if (std::isprint(static_cast<unsigned char>(c))) return std::string("'") + c + "'";
    return strfmt("byte 0x%02x", static_cast<unsigned>(static_cast<unsigned char>(c)));
}

// A record with the line number of every sequence chunk, so errors point at the offending line.
struct RawRecord {
    std::string description;
    int header_line = 0;
    std::vector<std::pair<int, std::string>> chunks;  // (1-based line, text without whitespace)
};

std::vector<RawRecord> parse_records(const std::string& text, const std::string& source, const char* format) {
    const std::vector<std::string> lines = split_lines(text);
    std::vector<RawRecord> recs;
    for (size_t i = 0; i < lines.size(); ++i) {
        const std::string& l = lines[i];
        const int line_no = static_cast<int>(i) + 1;
        if (l.empty() || l[0] == '#') continue;
        if (l[0] == '>') {
            recs.push_back({l.substr(1), line_no, {}});
            continue;
        }
        AXF_CHECK(!recs.empty(), "%s:%d: %s sequence data before the first '>' header line", source.c_str(), line_no,
                  format);
        std::string s;
        for (char c : l)
            if (!std::isspace(static_cast<unsigned char>(c))) s.push_back(c);
        recs.back().chunks.push_back({line_no, s});
    }
    AXF_CHECK(!recs.empty(), "%s: no %s records (empty file, or no '>' header line)", source.c_str(), format);
    for (const RawRecord& r : recs) {
        size_t len = 0;
        for (const auto& c : r.chunks) len += c.second.size();
        AXF_CHECK(len > 0, "%s:%d: %s record '%s' has no sequence", source.c_str(), r.header_line, format,
                  r.description.c_str());
    }
    return recs;
}

bool has_suffix(const std::string& s, const std::string& suf) {
    return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

std::string lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

}  // namespace

std::string uniprot_species(const std::string& description) {
    const size_t b = description.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) return "";
    std::string id = description.substr(b, description.find_first_of(" \t\r\n", b) - b);
    id = id.substr(0, id.find('/'));
    auto alnum = [](const std::string& s, size_t lo, size_t hi) {
        if (s.size() < lo || s.size() > hi) return false;
        for (char c : s)
            if (!std::isalnum(static_cast<unsigned char>(c))) return false;
        return true;
    };
    auto digits = [](const std::string& s) {
        return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
    };
    auto split = [](const std::string& s, char sep) {
        std::vector<std::string> parts(1);
        for (char c : s) {
            if (c == sep) {
                parts.emplace_back();
            } else {
                parts.back().push_back(c);
            }
        }
        return parts;
    };
    const std::vector<std::string> fields = split(id, '|');
    if (fields.size() != 3 || (fields[0] != "tr" && fields[0] != "sp")) return "";
    const std::vector<std::string> acc = split(fields[1], '_');  // an isoform suffix _d is ignored
    if (!alnum(acc[0], 6, 10) || acc.size() > 2 || (acc.size() == 2 && (acc[1].size() != 1 || !digits(acc[1]))))
        return "";
    const std::vector<std::string> name = split(fields[2], '_');  // NAME_SPECIES, BFD adds _digits
    if (name.size() < 2 || name.size() > 3 || !alnum(name[0], 1, 1000) || !alnum(name[1], 1, 5)) return "";
    if (name.size() == 3 && !digits(name[2])) return "";
    return name[1];
}

int hhblits_index(char c) {
    switch (c) {
        case 'A':
            return 0;
        case 'B':
            return 2;
        case 'C':
            return 1;
        case 'D':
            return 2;
        case 'E':
            return 3;
        case 'F':
            return 4;
        case 'G':
            return 5;
        case 'H':
            return 6;
        case 'I':
            return 7;
        case 'J':
            return 20;
        case 'K':
            return 8;
        case 'L':
            return 9;
        case 'M':
            return 10;
        case 'N':
            return 11;
        case 'O':
            return 20;
        case 'P':
            return 12;
        case 'Q':
            return 13;
        case 'R':
            return 14;
        case 'S':
            return 15;
        case 'T':
            return 16;
        case 'U':
            return 1;
        case 'V':
            return 17;
        case 'W':
            return 18;
        case 'X':
            return 20;
        case 'Y':
            return 19;
        case 'Z':
            return 3;
        case '-':
            return 21;
        default:
            return -1;
    }
}

std::vector<FastaRecord> parse_fasta(const std::string& text, const std::string& source, bool chain_separators) {
    std::vector<FastaRecord> out;
    for (const RawRecord& r : parse_records(text, source, "FASTA")) {
        FastaRecord f{r.description, {}, r.header_line};
        for (const auto& [line, chunk] : r.chunks) {
            for (char c : chunk) {
                const char u = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
                AXF_CHECK((u >= 'A' && u <= 'Z') || (chain_separators && u == ':'),
                          "%s:%d: FASTA sequence '%s' holds %s, expected amino-acid letters%s", source.c_str(), line,
                          r.description.c_str(), printable(c).c_str(), chain_separators ? " or ':'" : "");
                f.sequence.push_back(u);
            }
        }
        out.push_back(std::move(f));
    }
    return out;
}

std::vector<FastaRecord> read_fasta(const std::string& path, bool chain_separators) {
    return parse_fasta(read_text(path, "FASTA"), path, chain_separators);
}

Msa parse_a3m(const std::string& text, const std::string& source) {
    Msa msa;
    msa.source = source;
    size_t width = 0;
    int first_line = 0;
    for (const RawRecord& r : parse_records(text, source, "A3M")) {
        std::string aligned;
        std::vector<int32_t> del;
        int32_t count = 0;
        for (const auto& [line, chunk] : r.chunks) {
            for (char c : chunk) {
                if (std::islower(static_cast<unsigned char>(c))) {
                    ++count;
                } else if (c == '.') {
                    continue;  // gap in an insert column
                } else {
                    AXF_CHECK(hhblits_index(c) >= 0,
                              "%s:%d: A3M row '%s' holds %s, expected amino-acid letters, '-' or lower-case insertions",
                              source.c_str(), line, r.description.c_str(), printable(c).c_str());
                    aligned.push_back(c);
                    del.push_back(count);
                    count = 0;
                }
            }
        }
        if (msa.sequences.empty()) {
            width = aligned.size();
            first_line = r.header_line;
            AXF_CHECK(width > 0, "%s:%d: the A3M query row '%s' has no match columns (all lower case?)", source.c_str(),
                      r.header_line, r.description.c_str());
        }
        AXF_CHECK(aligned.size() == width,
                  "%s:%d: A3M row '%s' has %zu match columns (upper case or '-'), but the query (line %d) has %zu",
                  source.c_str(), r.header_line, r.description.c_str(), aligned.size(), first_line, width);
        msa.sequences.push_back(std::move(aligned));
        msa.deletion_matrix.push_back(std::move(del));
        msa.descriptions.push_back(r.description);
    }
    return msa;
}

bool has_colabfold_header(const std::string& path) {
    std::ifstream in(path);
    std::string line;
    if (!std::getline(in, line)) return false;
    if (!line.empty() && line[0] == '\0') line.erase(0, line.find_first_not_of('\0'));
    return line.size() > 1 && line[0] == '#' && line.find('\t') != std::string::npos;
}

ColabFoldMsa parse_colabfold_a3m(const std::string& text, const std::string& source) {
    const size_t start = text.find_first_not_of('\0');
    const size_t eol = text.find('\n', start);
    const std::string header = text.substr(start, eol == std::string::npos ? std::string::npos : eol - start);
    auto numbers = [&](const std::string& field, const char* what) {
        std::vector<int64_t> v;
        std::stringstream ss(field);
        for (std::string item; std::getline(ss, item, ',');) {
            char* end = nullptr;
            const long long x = std::strtoll(item.c_str(), &end, 10);
            AXF_CHECK(!item.empty() && *end == '\0' && x > 0,
                      "%s:1: ColabFold header '%s': %s '%s' is not a positive integer", source.c_str(), header.c_str(),
                      what, item.c_str());
            v.push_back(x);
        }
        return v;
    };
    const size_t tab = header.find('\t');
    AXF_CHECK(header.size() > 1 && header[0] == '#' && tab != std::string::npos,
              "%s:1: expected ColabFold's complex header '#len1,len2<TAB>card1,card2', found '%s'", source.c_str(),
              header.c_str());
    ColabFoldMsa out;
    out.lengths = numbers(header.substr(1, tab - 1), "length");
    out.cardinalities = numbers(header.substr(tab + 1), "copy number");
    const size_t k = out.lengths.size();
    AXF_CHECK(k == out.cardinalities.size(), "%s:1: ColabFold header '%s' gives %zu lengths but %zu copy numbers",
              source.c_str(), header.c_str(), k, out.cardinalities.size());
    const Msa all = parse_a3m(text, source);  // every row: the chains' match columns side by side
    AXF_CHECK(all.depth() > 0, "%s: no query record after the ColabFold header", source.c_str());
    int64_t width = 0;
    for (int64_t n : out.lengths) width += n;
    AXF_CHECK(static_cast<int64_t>(all.sequences[0].size()) == width,
              "%s: the ColabFold header gives chain lengths summing to %lld, but the query row '%s' has %zu residues",
              source.c_str(), (long long)width, all.descriptions[0].c_str(), all.sequences[0].size());
    out.paired.resize(k);
    out.unpaired.resize(k);
    std::vector<int64_t> offset(k + 1, 0);
    for (size_t n = 0; n < k; ++n) {
        offset[n + 1] = offset[n] + out.lengths[n];
        out.queries.push_back(all.sequences[0].substr(offset[n], out.lengths[n]));
        out.paired[n].source = out.unpaired[n].source = source;
    }
    const bool several = k > 1;
    std::set<std::pair<std::string, std::string>> seen;
    for (int64_t r = 0; r < all.depth(); ++r) {
        const std::string& row = all.sequences[r];
        if (!seen.insert({all.descriptions[r], row}).second) continue;
        std::vector<bool> has(k, false);
        size_t with_residues = 0;
        for (size_t n = 0; n < k; ++n) {
            for (int64_t j = offset[n]; j < offset[n + 1]; ++j) has[n] = has[n] || row[j] != '-';
            with_residues += has[n];
        }
        const bool paired = several && with_residues > 1;
        for (size_t n = 0; n < k; ++n) {
            if (!paired && !has[n]) continue;
            Msa& m = paired ? out.paired[n] : out.unpaired[n];
            m.sequences.push_back(row.substr(offset[n], out.lengths[n]));
            m.deletion_matrix.emplace_back(all.deletion_matrix[r].begin() + offset[n],
                                           all.deletion_matrix[r].begin() + offset[n + 1]);
            m.descriptions.push_back(all.descriptions[r]);
        }
    }
    for (size_t n = 0; n < k; ++n) {  // each chain's unpaired MSA starts with its query
        Msa& u = out.unpaired[n];
        if (u.depth() == 0 || u.sequences[0] != out.queries[n]) {
            u.sequences.insert(u.sequences.begin(), out.queries[n]);
            u.deletion_matrix.insert(u.deletion_matrix.begin(), std::vector<int32_t>(out.queries[n].size(), 0));
            u.descriptions.insert(u.descriptions.begin(), "query");
        }
    }
    return out;
}

ColabFoldMsa read_colabfold_a3m(const std::string& path) {
    return parse_colabfold_a3m(read_text(path, "A3M"), path);
}

Msa parse_stockholm(const std::string& text, const std::string& source) {
    const std::vector<std::string> lines = split_lines(text);
    std::vector<std::string> names;
    std::map<std::string, size_t> index;
    std::vector<std::string> rows;
    std::vector<int> first_line;
    bool saw_header = false;
    for (size_t i = 0; i < lines.size(); ++i) {
        const std::string& l = lines[i];
        const int line_no = static_cast<int>(i) + 1;
        if (l.rfind("# STOCKHOLM", 0) == 0) saw_header = true;
        if (l.empty() || l[0] == '#' || l.rfind("//", 0) == 0) continue;
        std::istringstream ss(l);
        std::string name, seq, extra;
        ss >> name >> seq;
        AXF_CHECK(!seq.empty() && !(ss >> extra),
                  "%s:%d: malformed Stockholm line (expected '<name> <aligned sequence>'): '%.60s'", source.c_str(),
                  line_no, l.c_str());
        for (char c : seq) {
            const char u = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
            AXF_CHECK(u == '.' || hhblits_index(u) >= 0,
                      "%s:%d: Stockholm row '%s' holds %s, expected amino-acid letters, '-' or '.'", source.c_str(),
                      line_no, name.c_str(), printable(c).c_str());
        }
        auto it = index.find(name);
        if (it == index.end()) {
            index[name] = names.size();
            names.push_back(name);
            rows.push_back(seq);
            first_line.push_back(line_no);
        } else {
            rows[it->second] += seq;
        }
    }
    AXF_CHECK(!rows.empty(), "%s: no Stockholm sequences%s", source.c_str(),
              saw_header ? "" : " (empty file, or not Stockholm: no '# STOCKHOLM 1.0' header)");
    Msa msa;
    msa.source = source;
    const std::string& query = rows[0];
    for (size_t k = 0; k < rows.size(); ++k) {
        AXF_CHECK(rows[k].size() == query.size(),
                  "%s:%d: Stockholm row '%s' has %zu columns in total, but the first row '%s' has %zu (truncated "
                  "block?)",
                  source.c_str(), first_line[k], names[k].c_str(), rows[k].size(), names[0].c_str(), query.size());
        std::string aligned;
        std::vector<int32_t> del;
        int32_t count = 0;
        for (size_t c = 0; c < query.size(); ++c) {
            const bool query_gap = query[c] == '-' || query[c] == '.';
            char r = static_cast<char>(std::toupper(static_cast<unsigned char>(rows[k][c])));
            if (r == '.') r = '-';
            if (query_gap) {
                if (r != '-') ++count;
            } else {
                aligned.push_back(r);
                del.push_back(count);
                count = 0;
            }
        }
        if (k == 0)
            AXF_CHECK(!aligned.empty(), "%s:%d: the Stockholm query row '%s' is all gaps", source.c_str(),
                      first_line[0], names[0].c_str());
        msa.sequences.push_back(std::move(aligned));
        msa.deletion_matrix.push_back(std::move(del));
        msa.descriptions.push_back(names[k]);
    }
    return msa;
}

namespace {

// Whether an alignment's name says Stockholm (.sto, .stockholm, .sth); A3M when it says .a3m.
bool stockholm_by_name(const std::string& path) {
    const std::string l = lower(path);
    return has_suffix(l, ".sto") || has_suffix(l, ".stockholm") || has_suffix(l, ".sth");
}

}  // namespace

Msa read_msa(const std::string& path) {
    const std::string text = read_text(path, "alignment");
    if (stockholm_by_name(path)) return parse_stockholm(text, path);
    if (has_suffix(lower(path), ".a3m")) return parse_a3m(text, path);
    size_t b = 0;
    while (b < text.size() && std::isspace(static_cast<unsigned char>(text[b]))) ++b;
    if (text.compare(b, 11, "# STOCKHOLM") == 0) return parse_stockholm(text, path);
    return parse_a3m(text, path);
}

int64_t count_msa_rows(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    AXF_CHECK(in, "cannot open alignment '%s'", path.c_str());
    bool stockholm = stockholm_by_name(path);
    std::set<std::string> names;
    int64_t records = 0;
    bool first = true;
    for (std::string line; std::getline(in, line);) {
        if (first && line.find_first_not_of(" \t\r") != std::string::npos) {
            stockholm = stockholm || line.compare(line.find_first_not_of(" \t\r"), 11, "# STOCKHOLM") == 0;
            first = false;
        }
        if (!stockholm) {
            records += !line.empty() && line[0] == '>';
            continue;
        }
        if (line.rfind("//", 0) == 0) break;
        if (line.empty() || line[0] == '#' || std::isspace(static_cast<unsigned char>(line[0]))) continue;
        names.insert(line.substr(0, line.find_first_of(" \t")));
    }
    return stockholm ? static_cast<int64_t>(names.size()) : records;
}

int64_t default_max_hits(const std::string& path) {
    const std::string name = lower(std::filesystem::path(path).filename().string());
    if (name.find("uniref90") != std::string::npos) return 10000;
    if (name.find("mgnify") != std::string::npos) return 501;
    if (name.find("uniprot") != std::string::npos) return 50000;
    return 0;
}

Msa crop_msa(const Msa& msa, int64_t begin, int64_t end) {
    Msa out;
    out.source = msa.source;
    out.descriptions = msa.descriptions;
    for (int64_t r = 0; r < msa.depth(); ++r) {
        const std::string& row = msa.sequences[static_cast<size_t>(r)];
        AXF_CHECK(begin >= 0 && begin < end && end <= static_cast<int64_t>(row.size()),
                  "%s: columns [%lld, %lld) of an alignment %zu columns wide", msa.source.c_str(), (long long)begin,
                  (long long)end, row.size());
        out.sequences.push_back(row.substr(static_cast<size_t>(begin), static_cast<size_t>(end - begin)));
        const std::vector<int32_t>& d = msa.deletion_matrix[static_cast<size_t>(r)];
        out.deletion_matrix.emplace_back(d.begin() + begin, d.begin() + end);
    }
    return out;
}

Msa truncate_msa(const Msa& msa, int64_t max_rows) {
    if (max_rows <= 0 || msa.depth() <= max_rows) return msa;
    Msa out;
    out.source = msa.source;
    out.sequences.assign(msa.sequences.begin(), msa.sequences.begin() + max_rows);
    out.deletion_matrix.assign(msa.deletion_matrix.begin(), msa.deletion_matrix.begin() + max_rows);
    out.descriptions.assign(msa.descriptions.begin(), msa.descriptions.begin() + max_rows);
    return out;
}

void check_msa_query(const Msa& msa, const std::string& query) {
    AXF_CHECK(msa.depth() > 0, "%s: the alignment has no rows", msa.source.c_str());
    const std::string& q = msa.sequences[0];
    AXF_CHECK(q.size() == query.size(),
              "%s: the alignment's query row '%s' has %zu residues, but the FASTA sequence has %zu (alignment of "
              "another sequence?)",
              msa.source.c_str(), msa.descriptions[0].c_str(), q.size(), query.size());
    for (size_t i = 0; i < q.size(); ++i) {
        AXF_CHECK(q[i] == query[i],
                  "%s: the alignment's query row '%s' differs from the FASTA sequence at residue %zu ('%c' vs '%c'; "
                  "alignment of another sequence?)",
                  msa.source.c_str(), msa.descriptions[0].c_str(), i + 1, q[i], query[i]);
    }
}

}  // namespace axfold::io
