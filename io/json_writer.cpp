// AlphaFold JSON outputs (AFDB confidence/PAE, ranking_debug, timings, ColabFold scores).
#include "io/json_writer.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <set>

namespace axfold::io {
namespace {

// Host float64 copy of a float tensor of the given shape.
std::vector<double> host_values(const Tensor& t, const char* what, const Shape& expected) {
    AXF_CHECK(t.defined(), "%s is not set", what);
    AXF_CHECK(t.shape() == expected, "%s has shape %s, expected %s", what, shape_str(t.shape()).c_str(),
              shape_str(expected).c_str());
    AXF_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::F64, "%s must be float32 or float64, got %s", what,
              t.desc().c_str());
    return host_float64(t);
}

int64_t vector_length(const Tensor& t, const char* what) {
    AXF_CHECK(t.defined(), "%s is not set", what);
    AXF_CHECK(t.dim() == 1, "%s has shape %s, expected [N]", what, shape_str(t.shape()).c_str());
    return t.size(0);
}

// Python's repr of a float: the shortest digits that round-trip, written in fixed notation when the decimal
// exponent lies in [-4, 16) (with ".0" when integral) and as d.ddde+XX otherwise. std::to_chars's shortest form
// picks whichever notation is shorter (3e-04 for 0.0003, 1e+15 for 1000000000000000.0), so only its digits
// and exponent are used.
template <class T>
std::string shortest(T v) {
    char buf[64];
    const auto res = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
    std::string s(buf, res.ptr);  // [-]d[.ddd]e(+|-)XX
    const bool neg = s[0] == '-';
    if (neg) s.erase(0, 1);
    const size_t e = s.find('e');
    const int exp = std::stoi(s.substr(e + 1));
    std::string digits;
    for (char c : s.substr(0, e))
        if (c != '.') digits += c;
    std::string out = neg ? "-" : "";
    const int n = static_cast<int>(digits.size());
    if (exp >= -4 && exp < 16) {
        if (exp < 0) {
            out.append("0.").append(static_cast<size_t>(-exp - 1), '0').append(digits);
        } else if (n <= exp + 1) {
            out.append(digits).append(static_cast<size_t>(exp + 1 - n), '0').append(".0");
        } else {
            out.append(digits, 0, static_cast<size_t>(exp + 1)).append(1, '.');
            out.append(digits, static_cast<size_t>(exp + 1), std::string::npos);
        }
    } else {
        out.append(digits, 0, 1);
        if (n > 1) out.append(1, '.').append(digits, 1, std::string::npos);
        char eb[16];
        std::snprintf(eb, sizeof eb, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
        out.append(eb);
    }
    return out;
}

// A list of rounded values: [a,b,...] with the given separator.
void append_rounded_list(std::string& out, const double* v, int64_t n, int decimals, const char* sep,
                         const char* what) {
    out += '[';
    for (int64_t i = 0; i < n; ++i) {
        if (i) out += sep;
        out += json_rounded(v[i], decimals, what);
    }
    out += ']';
}

void append_rounded_matrix(std::string& out, const std::vector<double>& m, int64_t n, int decimals, const char* sep,
                           const char* what) {
    out += '[';
    for (int64_t i = 0; i < n; ++i) {
        if (i) out += sep;
        append_rounded_list(out, m.data() + i * n, n, decimals, sep, what);
    }
    out += ']';
}

// Python json.dumps(dict, indent=4) of a flat {str: number} object, indented by `level` levels.
void append_indented_object(std::string& out, const std::vector<std::pair<std::string, double>>& kv, int level,
                            const char* what) {
    if (kv.empty()) {
        out += "{}";
        return;
    }
    const std::string pad((level + 1) * 4, ' ');
    out += "{\n";
    for (size_t i = 0; i < kv.size(); ++i) {
        out += pad + json_string(kv[i].first) + ": " + json_number(kv[i].second, what);
        out += i + 1 < kv.size() ? ",\n" : "\n";
    }
    out += std::string(level * 4, ' ') + "}";
}

void check_unique(const std::vector<std::pair<std::string, double>>& kv, const char* what) {
    std::set<std::string> seen;
    for (const auto& [k, v] : kv) AXF_CHECK(seen.insert(k).second, "%s: duplicate name \"%s\"", what, k.c_str());
}

}  // namespace

std::string json_number(double v, const char* what) {
    AXF_CHECK(std::isfinite(v), "%s: value %g cannot be written to JSON (NaN and Inf are not JSON numbers)", what, v);
    return shortest(v);
}

std::string json_number(float v, const char* what) {
    AXF_CHECK(std::isfinite(v), "%s: value %g cannot be written to JSON (NaN and Inf are not JSON numbers)", what,
              static_cast<double>(v));
    return shortest(v);
}

std::string json_rounded(double v, int decimals, const char* what) {
    AXF_CHECK(std::isfinite(v), "%s: value %g cannot be written to JSON (NaN and Inf are not JSON numbers)", what, v);
    AXF_CHECK(decimals >= 0 && decimals <= 15, "json_rounded: decimals %d outside 0..15", decimals);
    const double scale = std::pow(10.0, decimals);
    return shortest(std::nearbyint(v * scale) / scale);  // np.round: rint(x * 10^d) / 10^d
}

std::string json_string(const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            case '\b':
                out += "\\b";
                break;
            case '\f':
                out += "\\f";
                break;
            default:
                if (c < 0x20 || c == 0x7f) {
                    out += strfmt("\\u%04x", c);
                } else {
                    out += static_cast<char>(c);
                }
        }
    }
    return out + "\"";
}

std::string confidence_json(const Tensor& plddt) {
    const int64_t n = vector_length(plddt, "confidence_json: plddt");
    const std::vector<double> v = host_values(plddt, "confidence_json: plddt", {n});
    for (int64_t i = 0; i < n; ++i)
        AXF_CHECK(v[i] >= 0.0 && v[i] <= 100.0, "confidence_json: pLDDT of residue %lld is %g, outside [0, 100]",
                  (long long)(i + 1), v[i]);
    std::string out;
    out.reserve(static_cast<size_t>(n) * 16 + 96);
    out += "{\"residueNumber\":[";
    for (int64_t i = 0; i < n; ++i) {
        if (i) out += ',';
        out += std::to_string(i + 1);
    }
    out += "],\"confidenceScore\":";
    append_rounded_list(out, v.data(), n, 2, ",", "confidence_json: plddt");
    out += ",\"confidenceCategory\":[";
    for (int64_t i = 0; i < n; ++i) {
        const char* cat = v[i] < 50.0 ? "\"D\"" : v[i] < 70.0 ? "\"L\"" : v[i] < 90.0 ? "\"M\"" : "\"H\"";
        out += (i ? "," : "");
        out += cat;
    }
    out += "]}";
    return out;
}

std::string pae_json(const Tensor& pae, float max_pae) {
    AXF_CHECK(pae.defined() && pae.dim() == 2 && pae.size(0) == pae.size(1),
              "pae_json: pae has shape %s, expected [N, N]",
              pae.defined() ? shape_str(pae.shape()).c_str() : "(unset)");
    const int64_t n = pae.size(0);
    const std::vector<double> v = host_values(pae, "pae_json: pae", {n, n});
    std::string out;
    out.reserve(static_cast<size_t>(n * n) * 5 + 96);
    out += "[{\"predicted_aligned_error\":";
    append_rounded_matrix(out, v, n, 1, ",", "pae_json: pae");
    out += ",\"max_predicted_aligned_error\":" + json_number(max_pae, "pae_json: max_pae") + "}]";
    return out;
}

std::string ranking_debug_json(const std::vector<std::pair<std::string, double>>& scores, const std::string& metric) {
    AXF_CHECK(metric == "plddts" || metric == "iptm+ptm" || metric == "ptm",
              "ranking_debug_json: metric \"%s\" is not one of \"plddts\", \"iptm+ptm\", \"ptm\"", metric.c_str());
    AXF_CHECK(!scores.empty(), "ranking_debug_json: no models to rank");
    check_unique(scores, "ranking_debug_json");
    std::vector<size_t> order(scores.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    for (const auto& [name, score] : scores) (void)json_number(score, "ranking_debug_json: score");
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return scores[a].second > scores[b].second; });
    std::string out = "{\n    " + json_string(metric) + ": ";
    append_indented_object(out, scores, 1, "ranking_debug_json: score");
    out += ",\n    \"order\": [\n";
    for (size_t i = 0; i < order.size(); ++i) {
        out += "        " + json_string(scores[order[i]].first);
        out += i + 1 < order.size() ? ",\n" : "\n";
    }
    out += "    ]\n}";
    return out;
}

std::string timings_json(const std::vector<std::pair<std::string, double>>& stages) {
    check_unique(stages, "timings_json");
    std::string out;
    append_indented_object(out, stages, 0, "timings_json: seconds");
    return out;
}

std::string colabfold_scores_json(const Tensor& plddt, const Tensor* pae, float max_pae, const double* ptm,
                                  const double* iptm) {
    const int64_t n = vector_length(plddt, "colabfold_scores_json: plddt");
    const std::vector<double> pl = host_values(plddt, "colabfold_scores_json: plddt", {n});
    std::string out = "{\"plddt\": ";
    append_rounded_list(out, pl.data(), n, 2, ", ", "colabfold_scores_json: plddt");
    if (pae != nullptr) {
        const std::vector<double> pa = host_values(*pae, "colabfold_scores_json: pae", {n, n});
        out += ", \"max_pae\": " + json_number(max_pae, "colabfold_scores_json: max_pae");
        out += ", \"pae\": ";
        append_rounded_matrix(out, pa, n, 2, ", ", "colabfold_scores_json: pae");
    }
    if (ptm != nullptr) out += ", \"ptm\": " + json_rounded(*ptm, 2, "colabfold_scores_json: ptm");
    if (iptm != nullptr) out += ", \"iptm\": " + json_rounded(*iptm, 2, "colabfold_scores_json: iptm");
    return out + "}";
}

}  // namespace axfold::io
