// Processed template features from the raw ones of a feature dict (`features.pkl`: template_aatype one-hot in
// HHblits order, template_all_atom_positions, template_all_atom_masks, template_sum_probs): AF2
// `fix_templates_aatype`, `make_template_mask`, `make_pseudo_beta`, template selection and padding to
// max_templates as `make_fixed_size` does, and the torsion angles of structure/torsion_angles.h.
#pragma once

#include <map>
#include <string>

#include "kernels/tensor.h"

namespace axfold::pipeline {

// HHblits amino-acid index (ACDEFGHIKLMNPQRSTVWY then X, gap) -> AF2 index (ARNDCQEGHILKMFPSTWYV, X = 20,
// gap = 21) (AF2 `MAP_HHBLITS_AATYPE_TO_OUR_AATYPE`).
int hhblits_to_af2_aatype(int hhblits_index);

// The processed template features (no iteration axis) from the raw ones: `template_aatype` [T0, N, 22]
// (one-hot, HHblits order), `template_all_atom_positions` [T0, N, 37, 3], `template_all_atom_masks` or
// `template_all_atom_mask` [T0, N, 37], optional `template_sum_probs` [T0] or [T0, 1]. The templates are
// ordered by decreasing sum_probs (stable: the search's order among ties; AF2 keeps the search's order,
// which is already by decreasing score), the first `max_templates` kept and the rest padded with zeros
// (template_mask 0). Returns template_aatype [T, N] int64, template_all_atom_positions,
// template_all_atom_mask, template_sum_probs [T, 1], template_mask [T], template_pseudo_beta [T, N, 3],
// template_pseudo_beta_mask [T, N], template_torsion_angles_sin_cos, template_alt_torsion_angles_sin_cos
// [T, N, 7, 2], template_torsion_angles_mask [T, N, 7]. No raw template (T0 = 0, or no template_aatype):
// max_templates all-zero templates.
std::map<std::string, Tensor> make_template_features(const std::map<std::string, Tensor>& raw, int64_t num_res,
                                                     int64_t max_templates = 4);

}  // namespace axfold::pipeline
