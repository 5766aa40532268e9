// Torsion angles and pseudo-beta positions from atom37 coordinates: what the template embedding reads of a
// template's atoms (AF2 `all_atom.atom37_to_torsion_angles` and `pseudo_beta_fn`; OpenFold
// `data_transforms.atom37_to_torsion_angles`), evaluated in float64. The feature pipeline computes them for
// processed template features (pipeline/template_features.h); the model computes them when the features
// lack them, as AF2 does inside its model; the training ground truth takes the pseudo-beta.
//
// DISCREPANCY: the torsions are computed in float64 (float32 in, float32 out). OpenFold's pipeline runs them
// in float32, where the pre-omega torsion of the first residue of a template segment (previous CA and C
// absent, i.e. 0) is rounding noise; the network consumes that value although its mask is 0, and the golden
// features hold the float64 value (golden README, "Template torsions").
// DISCREPANCY: like OpenFold (and unlike AF2's `placeholder_for_undefined`), undefined torsions keep their
// computed value; their mask is 0.
// Host loops (tiny per-residue gathers, no ops), as in all_atom.h.
#pragma once

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

}  // namespace axfold
