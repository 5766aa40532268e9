// Template features the AF2 network reads, computed from the raw template features of a feature dict
// (`features.pkl`: template_aatype one-hot in HHblits order, template_all_atom_positions,
// template_all_atom_masks, template_sum_probs):
//   torsion angles of the template atoms (AF2 `all_atom.atom37_to_torsion_angles`, OpenFold
//     `data_transforms.atom37_to_torsion_angles`), evaluated in float64;
//   pseudo-beta positions and masks (AF2 `pseudo_beta_fn`);
//   the raw -> processed transform (AF2 `fix_templates_aatype`, `make_template_mask`, `make_pseudo_beta`,
//     template selection and padding to max_templates as `make_fixed_size` does).
//
// DISCREPANCY: the torsions are computed in float64 (float32 in, float32 out). OpenFold's pipeline runs them
// in float32, where the pre-omega torsion of the first residue of a template segment (previous CA and C
// absent, i.e. 0) is rounding noise; the network consumes that value although its mask is 0, and the golden
// features hold the float64 value (golden README, "Template torsions").
// DISCREPANCY: like OpenFold (and unlike AF2's `placeholder_for_undefined`), undefined torsions keep their
// computed value; their mask is 0.
// Host loops (tiny per-residue gathers, no ops), as in all_atom.h.
#pragma once

#include <map>
#include <string>

#include "kernels/tensor.h"

namespace axfold {

struct TorsionAngles {
    Tensor sin_cos;      // [..., N, 7, 2] (pre-omega, phi, psi, chi1..chi4) as (sin, cos); psi negated (AF2)
    Tensor alt_sin_cos;  // [..., N, 7, 2] chis flipped by pi where the chi is pi-periodic
    Tensor mask;         // [..., N, 7]
};

// aatype [..., N] (0..21; 21 = gap, treated as UNK), positions [..., N, 37, 3], mask [..., N, 37]. The
// previous residue of residue 0 of each leading index is absent (zeros).
TorsionAngles atom37_to_torsion_angles(const Tensor& aatype, const Tensor& all_atom_positions,
                                       const Tensor& all_atom_mask);

// Pseudo-beta (CB, CA for glycine) and its mask for [..., N] residues: positions [..., N, 3], mask [..., N].
struct PseudoBeta {
    Tensor positions, mask;
};
PseudoBeta pseudo_beta_with_mask(const Tensor& aatype, const Tensor& all_atom_positions, const Tensor& all_atom_mask);

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

}  // namespace axfold
