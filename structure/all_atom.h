// All-atom construction from backbone frames and torsion angles (AF2 supplement 1.8, Algorithms 24
// "computeAllAtomCoordinates" and 25 "makeRotX"; AF2 `all_atom.py` / OpenFold `utils/feats.py`).
//
// Conventions (see shared/golden/README.md): quaternions are (w, x, y, z); rotations act on column vectors
// (x_global = R x_local + t); a 4x4 frame is [[R, t], [0, 0, 0, 1]]; torsions are (omega, phi, psi,
// chi1..chi4) as (sin, cos); rigid groups are (backbone, pre-omega, phi, psi, chi1..chi4); aatype is
// 0..20 in AF2 order (20 = UNK, which AF2 gives no atoms and all-zero default frames). All tensors are
// float32 except aatype (int64 or int32). Positions are in Å.
//
// DISCREPANCY: the arithmetic is float64 (float32 in and out) where AF2's is float32: on the host it costs
// nothing, and the results differ from AF2's by float32 rounding only.
// Note: these functions run as host loops instead of kernels/ ops: the tensors are tiny ([N_res, 14..37, 3])
// and the per-residue table gathers have no op. Inputs on another device are copied to the host and the
// result is copied back to that device.
#pragma once

#include "kernels/tensor.h"

namespace axfold {

// Rotation matrices from quaternions (AF2 `quat_to_rot` quadratic form, R00 = w²+x²−y²−z²,
// R01 = 2(xy−wz), ...). q is normalised first (OpenFold's Rotation(quats, normalize_quats=True)); a zero
// quaternion is an error.
Tensor quaternion_to_rotation(const Tensor& q /* [..., 4] (w, x, y, z) */);  // -> [..., 3, 3]
// Its backward for one quaternion: dq += d(sum_jk dR_jk R(q)_jk)/dq for the quadratic form R(q) (the rotation
// of a unit quaternion; not renormalised).
void quaternion_to_rotation_backward(const double q[4], const double dR[3][3], double dq[4]);

// Global frames of the 8 rigid groups (AF2 `torsion_angles_to_frames`, Algorithm 24 lines 1-10): each
// group's frame is default_frame[aatype, g] ∘ makeRotX(angle_g) with an identity (sin 0, cos 1) prepended
// for the backbone group; chi2..chi4 are chained onto chi1..chi3; everything is then mapped to global by
// the backbone frame. Groups a residue lacks get a zero rotation block and the backbone translation (AF2).
// The (sin, cos) pairs are used as given (not renormalised), as in AF2.
Tensor torsion_angles_to_frames(const Tensor& aatype,          // [N] int64
                                const Tensor& backbone_rot,    // [N, 3, 3]
                                const Tensor& backbone_trans,  // [N, 3] Å
                                const Tensor& angles_sin_cos   // [N, 7, 2]
);                                                             // -> [N, 8, 4, 4]

// atom14 positions from the group frames and the literature positions (AF2
// `frames_and_literature_positions_to_atom14_pos`, Algorithm 24 line 11); zero for atoms the residue
// type lacks (multiplied by restype_atom14_mask).
Tensor frames_and_literature_positions_to_atom14_pos(const Tensor& aatype,  // [N] int64
                                                     const Tensor& frames   // [N, 8, 4, 4]
);                                                                          // -> [N, 14, 3]

// atom14 -> atom37 layout (AF2 `atom14_to_atom37`: gather by restype_atom37_to_atom14, times the atom37
// mask). Works on any trailing shape: [N, 14, ...] -> [N, 37, ...]; zeros where the atom is absent.
Tensor atom14_to_atom37(const Tensor& atom14,  // [N, 14, ...]
                        const Tensor& aatype   // [N] int64
);                                             // -> [N, 37, ...]

// Which atoms exist for each residue (AF2 `atom37_atom_exists` / `atom14_atom_exists`); float32 0/1.
Tensor atom37_mask(const Tensor& aatype /* [N] */);  // -> [N, 37]

// Backward twins of the all-atom construction (training; host float64, O(N)). Each takes the forward's inputs
// and the cotangent of its output and returns the cotangents of its differentiable inputs (float32 host).
// torsion_angles_to_frames: dframes [N, 8, 4, 4] (the bottom rows have no gradient) -> d backbone_rot [N, 3, 3],
// d backbone_trans [N, 3], d angles_sin_cos [N, 7, 2].
struct TorsionFramesGrad {
    Tensor backbone_rot, backbone_trans, angles_sin_cos;
};
TorsionFramesGrad torsion_angles_to_frames_backward(const Tensor& aatype, const Tensor& backbone_rot,
                                                    const Tensor& backbone_trans, const Tensor& angles_sin_cos,
                                                    const Tensor& dframes);
// frames_and_literature_positions_to_atom14_pos: datom14 [N, 14, 3] -> dframes [N, 8, 4, 4].
Tensor frames_and_literature_positions_to_atom14_pos_backward(const Tensor& aatype, const Tensor& datom14);
// atom14_to_atom37: datom37 [N, 37, C] -> datom14 [N, 14, C].
Tensor atom14_to_atom37_backward(const Tensor& datom37, const Tensor& aatype);
Tensor atom14_mask(const Tensor& aatype /* [N] */);  // -> [N, 14]

// Pseudo-beta positions (AF2 `pseudo_beta_fn`): CB, or CA for glycine (restype 7). UNK has no atoms in
// AF2's tables, so its pseudo-beta is whatever the atom37 CB slot holds (zero for model outputs).
Tensor pseudo_beta(const Tensor& aatype,  // [N] int64
                   const Tensor& atom37   // [N, 37, 3]
);                                        // -> [N, 3]

}  // namespace axfold
