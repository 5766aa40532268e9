// The ground truth of a training example from an experimental structure: AF2's training data pipeline as
// OpenFold runs it (make_mmcif_features, then make_atom14_masks and make_atom14_positions, atom37_to_frames,
// atom37_to_torsion_angles with get_chi_angles, make_pseudo_beta, get_backbone_frames). What alphafold_loss
// reads besides the MSA and sequence features (training/losses.h: loss_batch_features()).
#pragma once

#include <string>

#include "io/mmcif.h"
#include "model/model.h"

namespace axfold {

// A chain's residues [begin, end) of its SEQRES as AF2's atom37 arrays (make_mmcif_features with
// templates.py's _get_atom_positions): atoms with atom37 names; selenomethionine's SE as SD; arginine's NH1
// and NH2 swapped where NH2 is the one nearer CD (AF2's naming fix). aatype from the SEQRES (AF2 indices,
// X = 20 for unknown monomers; modified residues as their parents where the table knows them: MSE -> MET).
struct ChainAtoms {
    std::string sequence;      // one letter per residue
    Tensor aatype;             // [N] int64
    Tensor all_atom_positions; // [N, 37, 3] float32, 0 where absent
    Tensor all_atom_mask;      // [N, 37] float32
    double resolution = 0;
};
// end < 0: to the end of the SEQRES.
ChainAtoms chain_atoms(const io::MmcifChain& chain, int64_t begin = 0, int64_t end = -1);

// The ground-truth features from aatype [N] and the atom37 arrays (float32 outputs, OpenFold's names):
// all_atom_positions, all_atom_mask, atom37_atom_exists, atom14_atom_exists, atom14_gt_exists,
// atom14_gt_positions, atom14_alt_gt_exists, atom14_alt_gt_positions, atom14_atom_is_ambiguous,
// rigidgroups_gt_frames, rigidgroups_alt_gt_frames [N, 8, 4, 4], rigidgroups_gt_exists,
// rigidgroups_group_exists, rigidgroups_group_is_ambiguous [N, 8], backbone_rigid_tensor [N, 4, 4],
// backbone_rigid_mask, chi_angles_sin_cos [N, 4, 2], chi_mask [N, 4], pseudo_beta [N, 3], pseudo_beta_mask.
FeatureDict ground_truth_features(const Tensor& aatype, const Tensor& all_atom_positions, const Tensor& all_atom_mask);

}  // namespace axfold
