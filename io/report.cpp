// A target's report; see report.h.
#include "io/report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>

#include "io/atomic_file.h"
#include "io/json_writer.h"
#include "io/png.h"
#include "kernels/error.h"

namespace axfold::io {

namespace {

constexpr int kGap = 21;
const Rgb kPalette[] = {{31, 119, 180}, {255, 127, 14},  {44, 160, 44},   {214, 39, 40},  {148, 103, 189},
                        {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207}};

std::string hex(Rgb c) {
    return strfmt("#%02x%02x%02x", c.r, c.g, c.b);
}

std::string escape(const std::string& s) {
    std::string out;
    for (char c : s) {
        switch (c) {
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '&':
                out += "&amp;";
                break;
            case '"':
                out += "&quot;";
                break;
            default:
                out.push_back(c);
        }
    }
    return out;
}

// pLDDT per residue as a raster plot: AlphaFold's confidence bands behind, one line per prediction.
Image plddt_image(const ReportInput& in, int64_t n) {
    const int W = 800, H = 300;
    Image img(W, H);
    for (int y = 0; y < H; ++y) {
        const double v = 100.0 * (H - 1 - y) / (H - 1);
        Rgb band = plddt_colour(v);
        band = {static_cast<uint8_t>(255 - (255 - band.r) / 6), static_cast<uint8_t>(255 - (255 - band.g) / 6),
                static_cast<uint8_t>(255 - (255 - band.b) / 6)};
        img.fill_rect(0, y, W, y + 1, band);
    }
    auto px = [&](int64_t i) { return n > 1 ? static_cast<int>(std::lround(i * (W - 1.0) / (n - 1))) : W / 2; };
    auto py = [&](double v) {
        return static_cast<int>(std::lround((H - 1) * (1.0 - std::clamp(v, 0.0, 100.0) / 100)));
    };
    for (size_t m = in.predictions.size(); m-- > 0;) {  // the best prediction drawn last, on top
        const std::vector<float>& p = in.predictions[m].plddt;
        for (int64_t i = 1; i < n; ++i) img.line(px(i - 1), py(p[i - 1]), px(i), py(p[i]), kPalette[m % 10]);
    }
    int64_t start = 0;
    for (size_t c = 0; c + 1 < in.chain_lengths.size(); ++c) {  // chain boundaries
        start += in.chain_lengths[c];
        for (int y = 0; y < H; y += 4) img.set(px(start), y, {0, 0, 0});
    }
    return img;
}

// Residues per pixel for N residues: 1 up to 2000, then N / 2000 rounded up (each pixel the mean of its block).
int64_t pae_bin(int64_t n) {
    return n <= 2000 ? 1 : (n + 1999) / 2000;
}

Image pae_image(const ReportInput& in, int64_t n) {
    const int64_t bin = pae_bin(n), m = (n + bin - 1) / bin;  // pixels (before blowing up) per side
    const int s = pae_image_size(n), f = s / static_cast<int>(m);
    Image img(s, s);
    for (int64_t a = 0; a < m; ++a)
        for (int64_t b = 0; b < m; ++b) {
            double sum = 0;
            int64_t count = 0;
            for (int64_t i = a * bin; i < std::min(n, (a + 1) * bin); ++i)
                for (int64_t j = b * bin; j < std::min(n, (b + 1) * bin); ++j, ++count) sum += in.pae[i * n + j];
            img.fill_rect(static_cast<int>(b) * f, static_cast<int>(a) * f, static_cast<int>(b + 1) * f,
                          static_cast<int>(a + 1) * f, pae_colour(sum / static_cast<double>(count), in.max_pae));
        }
    return img;
}

// ColabFold's coverage picture (placed over the coverage plot's residue axis: 50..880 of 900 units): rows sorted by
// identity to the query (highest on top), residues coloured by the row's identity, gaps white; at most 1000 rows
// (evenly picked).
Image coverage_image(const ReportInput& in, int64_t n, std::vector<int64_t>& per_position) {
    const std::vector<uint8_t>& q = in.msa[0];
    std::vector<double> identity(in.msa.size());
    per_position.assign(static_cast<size_t>(n), 0);
    for (size_t r = 0; r < in.msa.size(); ++r) {
        int64_t same = 0;
        for (int64_t j = 0; j < n; ++j) {
            same += in.msa[r][j] == q[j];
            per_position[j] += in.msa[r][j] != kGap;
        }
        identity[r] = static_cast<double>(same) / static_cast<double>(n);
    }
    std::vector<size_t> order(in.msa.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return identity[a] > identity[b]; });
    const size_t rows = std::min<size_t>(order.size(), 1000);
    Image img(static_cast<int>(n), static_cast<int>(rows));
    for (size_t y = 0; y < rows; ++y) {
        const size_t r = order[y * order.size() / rows];
        for (int64_t j = 0; j < n; ++j)
            if (in.msa[r][j] != kGap) img.set(static_cast<int>(j), static_cast<int>(y), identity_colour(identity[r]));
    }
    return img;
}

std::string img_tag(const Image& img, const std::string& alt, const std::string& style) {
    return "<img alt=\"" + alt + "\" style=\"" + style + "\" src=\"data:image/png;base64," + base64(encode_png(img)) +
           "\">";
}

// A plot's frame in SVG units: x from residue 0 to n - 1 over [50, 880], y from `top` (at 10) to 0 (at 210).
struct Frame {
    int64_t n;
    double top;
    double x(double i) const { return 50.0 + (n > 1 ? i * 830.0 / static_cast<double>(n - 1) : 415.0); }
    double y(double v) const { return 210.0 - 200.0 * std::clamp(v / top, 0.0, 1.0); }
};

std::string svg_open(const char* id) {
    return strfmt(
        "<svg id=\"%s\" viewBox=\"0 0 900 245\" width=\"100%%\" xmlns=\"http://www.w3.org/2000/svg\" "
        "font-size=\"12\" font-family=\"sans-serif\">",
        id);
}

// Residue ticks (about 8, round numbers) and the x label.
std::string x_axis(const Frame& f, const std::string& label) {
    std::string s = "<line x1=\"50\" x2=\"880\" y1=\"210\" y2=\"210\" stroke=\"black\"/>";
    const double raw = std::max(1.0, static_cast<double>(f.n) / 8.0);
    const double mag = std::pow(10.0, std::floor(std::log10(raw)));
    const double step = raw / mag < 2 ? mag : raw / mag < 5 ? 2 * mag : 5 * mag;
    for (double i = 0; i < static_cast<double>(f.n); i += step)
        s += strfmt(
            "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"210\" y2=\"214\" stroke=\"black\"/><text x=\"%.1f\" "
            "y=\"226\" text-anchor=\"middle\">%.0f</text>",
            f.x(i), f.x(i), f.x(i), i + 1);
    return s + "<text x=\"465\" y=\"242\" text-anchor=\"middle\">" + label + "</text>";
}

// pLDDT per residue as SVG: AlphaFold's confidence bands, one polyline of N points per prediction.
std::string plddt_svg(const ReportInput& in, int64_t n) {
    const Frame f{n, 100.0};
    std::string s = svg_open("plddt");
    const std::pair<double, double> bands[] = {{100, 90}, {90, 70}, {70, 50}, {50, 0}};
    for (const auto& [hi, lo] : bands)
        s += strfmt("<rect x=\"50\" width=\"830\" y=\"%.1f\" height=\"%.1f\" fill=\"%s\" fill-opacity=\"0.15\"/>",
                    f.y(hi), f.y(lo) - f.y(hi), hex(plddt_colour(lo + 0.5)).c_str());
    for (int v : {0, 50, 70, 90, 100})
        s += strfmt("<text x=\"44\" y=\"%.1f\" text-anchor=\"end\">%d</text>", f.y(v) + 4, v);
    s += "<text x=\"14\" y=\"110\" transform=\"rotate(-90 14 110)\" text-anchor=\"middle\">pLDDT</text>";
    s += x_axis(f, "residue");
    int64_t start = 0;
    for (size_t c = 0; c + 1 < in.chain_lengths.size(); ++c) {  // chain boundaries
        start += in.chain_lengths[c];
        s += strfmt("<line x1=\"%.1f\" x2=\"%.1f\" y1=\"10\" y2=\"210\" stroke=\"black\" stroke-dasharray=\"3 3\"/>",
                    f.x(start - 0.5), f.x(start - 0.5));
    }
    for (size_t m = in.predictions.size(); m-- > 0;) {  // the best prediction drawn last, on top
        std::string pts;
        for (int64_t i = 0; i < n; ++i)
            pts += strfmt("%s%.1f,%.1f", i ? " " : "", f.x(i), f.y(in.predictions[m].plddt[i]));
        s += "<polyline class=\"plddt-line\" data-model=\"" + escape(in.predictions[m].name) +
             "\" fill=\"none\" stroke=\"" + hex(kPalette[m % 10]) + "\" stroke-width=\"" + (m == 0 ? "2" : "1") +
             "\" points=\"" + pts + "\"><title>" + escape(in.predictions[m].name) + "</title></polyline>";
    }
    return s + "</svg>";
}

// Sequences with a residue at each position (ColabFold's black coverage line).
std::string coverage_svg(const std::vector<int64_t>& per_position, size_t rows) {
    const Frame f{static_cast<int64_t>(per_position.size()), std::max<double>(1.0, static_cast<double>(rows))};
    std::string pts;
    for (int64_t j = 0; j < f.n; ++j) pts += strfmt("%s%.1f,%.1f", j ? " " : "", f.x(j), f.y(per_position[j]));
    return svg_open("coverage") + "<polyline fill=\"none\" stroke=\"black\" stroke-width=\"1.5\" points=\"" + pts +
           "\"/>" +
           strfmt(
               "<text x=\"44\" y=\"14\" text-anchor=\"end\">%zu</text><text x=\"44\" y=\"214\" "
               "text-anchor=\"end\">0</text>",
               rows) +
           "<text x=\"14\" y=\"110\" transform=\"rotate(-90 14 110)\" text-anchor=\"middle\">sequences</text>" +
           x_axis(f, "residue") + "</svg>";
}

}  // namespace

int pae_image_size(int64_t n) {
    AXF_CHECK(n > 0, "PAE image for %lld residues", (long long)n);
    const int64_t m = (n + pae_bin(n) - 1) / pae_bin(n);
    return static_cast<int>(m * std::max<int64_t>(1, (400 + m - 1) / m));
}

void write_report(const std::string& dir, const ReportInput& in) {
    AXF_CHECK(!in.predictions.empty(), "report for %s: no predictions", in.target.c_str());
    const int64_t n = static_cast<int64_t>(in.predictions[0].plddt.size());
    for (const ReportPrediction& p : in.predictions)
        AXF_CHECK(static_cast<int64_t>(p.plddt.size()) == n, "report for %s: %s has %zu pLDDT values, expected %lld",
                  in.target.c_str(), p.name.c_str(), p.plddt.size(), (long long)n);
    AXF_CHECK(in.pae.empty() || static_cast<int64_t>(in.pae.size()) == n * n,
              "report for %s: PAE of %zu values for %lld residues", in.target.c_str(), in.pae.size(), (long long)n);
    namespace fs = std::filesystem;
    const Image plddt = plddt_image(in, n);
    write_png((fs::path(dir) / "plddt.png").string(), plddt);

    std::string html =
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>axfold: " + escape(in.target) +
        "</title><style>body{font-family:sans-serif;margin:2em;max-width:1000px}table{border-collapse:collapse}"
        "td,th{padding:2px 10px;border-bottom:1px solid #ddd;text-align:right}td:first-child,th:first-child{text-align:"
        "left}img{image-rendering:pixelated}.legend span{display:inline-block;padding:0 6px;margin-right:6px}</style>"
        "</head><body>\n<h1>" +
        escape(in.target) + "</h1>\n";
    int64_t total = 0;
    for (int64_t l : in.chain_lengths) total += l;
    html += strfmt("<p>%lld residues in %zu chain%s; %zu prediction%s ranked by %s.</p>\n", (long long)total,
                   in.chain_lengths.size(), in.chain_lengths.size() == 1 ? "" : "s", in.predictions.size(),
                   in.predictions.size() == 1 ? "" : "s", escape(in.ranking_metric).c_str());
    html +=
        "<h2>Ranking</h2>\n<table id=\"ranking\"><tr><th>rank</th><th>prediction</th><th>ranking confidence</th>"
        "<th>mean pLDDT</th><th>pTM</th><th>ipTM</th></tr>\n";
    for (size_t r = 0; r < in.predictions.size(); ++r) {
        const ReportPrediction& p = in.predictions[r];
        html += strfmt(
            "<tr><td>%zu</td><td><span style=\"color:%s\">&#9632;</span> %s</td><td>%.4f</td><td>%.2f</td>"
            "<td>%s</td><td>%s</td></tr>\n",
            r, hex(kPalette[r % 10]).c_str(), escape(p.name).c_str(), p.ranking_confidence, p.mean_plddt,
            p.has_ptm ? strfmt("%.4f", p.ptm).c_str() : "-", p.has_iptm ? strfmt("%.4f", p.iptm).c_str() : "-");
    }
    html += "</table>\n<h2>pLDDT per residue</h2>\n" + plddt_svg(in, n) +
            "\n<p class=\"legend\"><span style=\"background:#0053d6;color:white\">&gt; 90 very high</span><span "
            "style=\"background:#65cbf3\">&gt; 70 confident</span><span style=\"background:#ffdb13\">&gt; 50 low</span>"
            "<span style=\"background:#ff7d45\">&le; 50 very low</span></p>\n";
    if (!in.pae.empty()) {
        const Image pae = pae_image(in, n);
        write_png((fs::path(dir) / "pae.png").string(), pae);
        html += "<h2>Predicted aligned error of " + escape(in.predictions[0].name) +
                strfmt(
                    "</h2>\n<p>Expected position error (&Aring;) of residue <i>j</i> (columns) when aligned on "
                    "residue <i>i</i> (rows): dark green 0 &Aring;, white %.1f &Aring;.</p>\n",
                    in.max_pae) +
                img_tag(pae, "PAE heatmap", "width:400px;height:400px;border:1px solid #999");
    }
    if (!in.msa.empty()) {
        std::vector<int64_t> per_position;
        const Image cov = coverage_image(in, n, per_position);
        html += strfmt(
                    "\n<h2>MSA coverage</h2>\n<p>%zu sequences; rows sorted by identity to the query, coloured from "
                    "red (identical) to blue (0 %%), gaps white.</p>\n",
                    in.msa.size()) +
                img_tag(cov, "MSA coverage", "margin-left:5.56%;width:92.2%;height:240px;border:1px solid #999") +
                coverage_svg(per_position, in.msa.size());
    }
    html += "\n<p><small>axfold</small></p></body></html>\n";
    write_file_atomic((fs::path(dir) / "report.html").string(), html);
}

}  // namespace axfold::io
