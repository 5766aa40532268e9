// A target's report for people (ColabFold's plots, AlphaFold DB's colours): report.html, self-contained (inline SVG
// and PNG data URIs, no network), with the ranking table, the pLDDT per residue of every prediction, the best
// prediction's PAE heatmap and the MSA coverage (sequences per position, rows coloured by identity to the query);
// and plddt.png and pae.png beside it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace axfold::io {

struct ReportPrediction {
    std::string name;
    double ranking_confidence = 0, mean_plddt = 0, ptm = 0, iptm = 0;
    bool has_ptm = false, has_iptm = false;
    std::vector<float> plddt;  // [N]
};

struct ReportInput {
    std::string target;
    std::string ranking_metric;                 // "mean pLDDT" or "0.8 ipTM + 0.2 pTM"
    std::vector<int64_t> chain_lengths;         // in the model's residue order (one entry for a monomer)
    std::vector<ReportPrediction> predictions;  // best first
    std::vector<float> pae;                     // the best prediction's [N, N], empty without a PAE head
    float max_pae = 0;
    std::vector<std::vector<uint8_t>> msa;  // rows of N tokens, the query first, 21 = gap; may be empty
};

// The pixel size of pae.png for N residues: N x N (past 2,000 residues, blocks of ceil(N / 2000) averaged) blown up by
// an integer factor to at least 400 pixels.
int pae_image_size(int64_t n);

// Writes dir/report.html, dir/plddt.png and (with a PAE) dir/pae.png, each atomically.
void write_report(const std::string& dir, const ReportInput& in);

}  // namespace axfold::io
