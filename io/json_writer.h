// AlphaFold user-facing JSON outputs: AFDB-style confidence and PAE files (AF2 common/confidence.py),
// ranking_debug.json and timings.json (AF2 run_alphafold.py), and ColabFold's scores file.
//
// Layouts and number formats follow the Python writers so that files diff cleanly against theirs:
// compact separators for confidence/PAE (json.dumps(..., separators=(',', ':'))), 4-space indentation
// for ranking_debug/timings (json.dumps(..., indent=4)), Python's default ", " / ": " for ColabFold's
// scores (json.dump). Rounded values are np.round(x, d) printed the way Python prints a float (shortest
// repr: 39.5, not 39.50). Every number is finite: NaN or Inf input is an error, since Python's
// json.loads of a strict parser would reject it.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "kernels/tensor.h"

namespace axfold::io {

// AFDB confidence_<name>.json: {"residueNumber":[1..N],"confidenceScore":[2 decimals],
// "confidenceCategory":["D" <50, "L" <70, "M" <90, "H"]}; categories from the unrounded pLDDT.
// pLDDT must lie in [0, 100].
std::string confidence_json(const Tensor& plddt /* [N] float32|float64 */);

// AFDB pae_<name>.json: [{"predicted_aligned_error":[[1 decimal]],"max_predicted_aligned_error":x}].
std::string pae_json(const Tensor& pae /* [N, N] float32|float64 */, float max_pae);

// ranking_debug.json: {metric: {name: score}, "order": [names best first]}. metric is "plddts" (AF2
// monomer and monomer_ptm), "iptm+ptm" (AF2 multimer) or "ptm". Ties keep the input order (Python's
// stable sorted(..., reverse=True)). Names must be unique; scores finite; at least one model.
std::string ranking_debug_json(const std::vector<std::pair<std::string, double>>& scores, const std::string& metric);

// timings.json: {"stage": seconds, ...} in the given order; stage names unique.
std::string timings_json(const std::vector<std::pair<std::string, double>>& stages);

// ColabFold <job>_scores_rank_NNN_<model>.json: {"plddt": [2 decimals], "max_pae": x,
// "pae": [[2 decimals]], "ptm": 2 decimals}. "max_pae" and "pae" are left out when pae is null, "ptm"
// when ptm is null (models without the PAE head); "iptm" (2 decimals) for AlphaFold-Multimer models.
std::string colabfold_scores_json(const Tensor& plddt /* [N] */, const Tensor* pae /* [N, N] or null */, float max_pae,
                                  const double* ptm /* or null */, const double* iptm = nullptr /* multimer */);

// Building blocks, exposed for other writers and tests.
// Python repr of a finite double ("31.75", "100.0", "1e-05"); throws on NaN/Inf naming `what`.
std::string json_number(double v, const char* what);
// Python repr of a finite float at float precision (31.1f -> "31.1").
std::string json_number(float v, const char* what);
// repr(float(np.round(v, decimals))).
std::string json_rounded(double v, int decimals, const char* what);
// A JSON string literal (quotes, backslash and control characters escaped; UTF-8 passed through).
std::string json_string(const std::string& s);

}  // namespace axfold::io
