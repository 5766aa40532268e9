// AlphaFold2's training losses (AF2 supplement 1.9; OpenFold v1.0.1 `openfold/utils/loss.py`, whose names,
// masks and epsilons these follow): distogram, masked MSA, experimentally resolved, pLDDT (lDDT-Cα), predicted
// TM (aligned error), FAPE (backbone over every structure-module layer, side chains on the last with the ground
// truth renamed by Algorithm 26), supervised chi and structural violations. Each term is unweighted;
// `LossConfig` holds AF2's fine-tuning weights (AlphaFoldLoss's total is sum(weight * term) * sqrt(min(seq_length,
// N))).
//
// The losses read the model's outputs and the ground-truth features of a training example (the layout of the
// golden `loss_cases.h5`: `batch/` without the iteration axis). They run on the host whatever the outputs'
// device (they are O(N^2) sums: a GPU would buy nothing). Each term also returns its gradient with respect to the
// outputs it reads (float64, the unweighted term's), and alphafold_loss their weighted sum: the start of the
// backward pass.
// DISCREPANCY: the losses and their gradients are evaluated in float64 where AF2 and OpenFold compute in float32,
// so each is an exact function of the stored values.
#pragma once

#include <map>
#include <vector>
#include <string>

#include "kernels/tensor.h"

namespace axfold {

// OpenFold's loss_config (AF2 fine-tuning, with the pTM term).
struct LossConfig {
    struct Distogram {
        double min_bin = 2.3125, max_bin = 21.6875, eps = 1e-8, weight = 0.3;
        int no_bins = 64;
    } distogram;
    struct ExperimentallyResolved {
        double min_resolution = 0.1, max_resolution = 3.0, eps = 1e-8, weight = 0.01;
    } experimentally_resolved;
    struct Fape {
        double backbone_clamp_distance = 10.0, backbone_loss_unit_distance = 10.0, backbone_weight = 0.5;
        double sidechain_clamp_distance = 10.0, sidechain_length_scale = 10.0, sidechain_weight = 0.5;
        double eps = 1e-4, weight = 1.0;
    } fape;
    struct MaskedMsa {
        double eps = 1e-8, weight = 2.0;
    } masked_msa;
    struct Plddt {
        double cutoff = 15.0, min_resolution = 0.1, max_resolution = 3.0, eps = 1e-8, weight = 0.01;
        int no_bins = 50;
    } plddt_loss;
    struct SupervisedChi {
        double chi_weight = 0.5, angle_norm_weight = 0.01, eps = 1e-8, weight = 1.0;
    } supervised_chi;
    struct Tm {
        double max_bin = 31, min_resolution = 0.1, max_resolution = 3.0, eps = 1e-8, weight = 0.1;
        int no_bins = 64;
    } tm;
    struct Violation {
        double clash_overlap_tolerance = 1.5, violation_tolerance_factor = 12.0, eps = 1e-6, weight = 1.0;
    } violation;
};

// Cross entropy of distogram_logits [N, N, no_bins] against the bins of the true pseudo-beta distances
// (squared edges linspace(min_bin, max_bin, no_bins - 1)^2), masked mean over pairs of present pseudo-betas.
double distogram_loss(const Tensor& logits, const Tensor& pseudo_beta /* [N, 3] */,
                      const Tensor& pseudo_beta_mask /* [N] */, const LossConfig::Distogram& c = {},
                      Tensor* dlogits = nullptr);

// Cross entropy of masked_msa_logits [S, N, 23] against true_msa [S, N] (0..22) where bert_mask [S, N] is 1.
double masked_msa_loss(const Tensor& logits, const Tensor& true_msa, const Tensor& bert_mask,
                       const LossConfig::MaskedMsa& c = {}, Tensor* dlogits = nullptr);

// Sigmoid cross entropy of experimentally_resolved_logits [N, 37] against all_atom_mask [N, 37] over the atoms
// the residue types have (atom37_atom_exists [N, 37]); 0 outside the resolution range.
double experimentally_resolved_loss(const Tensor& logits, const Tensor& atom37_atom_exists, const Tensor& all_atom_mask,
                                    double resolution, const LossConfig::ExperimentallyResolved& c = {},
                                    Tensor* dlogits = nullptr);

// lDDT-Cα [N] of predicted against true Cα positions (atom37 [N, 37, 3] each; all_atom_mask [N, 37]): per
// residue, the fraction of true distances below `cutoff` to other present Cα preserved within 0.5, 1, 2 and
// 4 Å.
Tensor lddt_ca(const Tensor& predicted_atom37, const Tensor& true_atom37, const Tensor& all_atom_mask,
               double cutoff = 15.0, double eps = 1e-8);
// The whole chain's lDDT-Cα (OpenFold's validation metric, lddt with per_residue=False): the scored pairs' mean
// score over all residues at once.
double lddt_ca_global(const Tensor& predicted_atom37, const Tensor& true_atom37, const Tensor& all_atom_mask,
                      double cutoff = 15.0, double eps = 1e-8);

// Cross entropy of lddt_logits [N, no_bins] against min(floor(lDDT-Cα * no_bins), no_bins - 1) of the final
// atom positions, mean over residues with a true Cα; 0 outside the resolution range. lddt_score [N] (out):
// the lDDT-Cα.
double plddt_loss(const Tensor& logits, const Tensor& final_atom_positions, const Tensor& all_atom_positions,
                  const Tensor& all_atom_mask, double resolution, const LossConfig::Plddt& c = {},
                  Tensor* dlogits = nullptr, Tensor* lddt_score = nullptr);

// Cross entropy of tm_logits [N, N, no_bins] against the bins (squared edges linspace(0, max_bin, no_bins - 1)^2)
// of the squared aligned error: frame i of final_affine_tensor [N, 7] (quaternion w, x, y, z, translation)
// against frame i of backbone_rigid_tensor [N, 4, 4], each applied inverted to every translation j; masked by
// pairs of backbone_rigid_mask [N]; 0 outside the resolution range.
double tm_loss(const Tensor& logits, const Tensor& final_affine_tensor, const Tensor& backbone_rigid_tensor,
               const Tensor& backbone_rigid_mask, double resolution, const LossConfig::Tm& c = {},
               Tensor* dlogits = nullptr);

// FAPE of the backbone frames of every structure-module layer, traj [L, N, 7] (the rotation is the quaternion's
// quadratic form, not renormalised, as OpenFold uses it), against backbone_rigid_tensor [N, 4, 4] with mask
// [N]: the frames' own translations as the points, mean over layers. clamp_distance <= 0: unclamped.
// dtraj (out): its gradient with respect to traj [L, N, 7].
double backbone_fape(const Tensor& traj, const Tensor& backbone_rigid_tensor, const Tensor& backbone_rigid_mask,
                     double clamp_distance, double length_scale = 10.0, double eps = 1e-4, Tensor* dtraj = nullptr);

// Algorithm 26: per residue, whether the ground truth's alternative naming of its ambiguous atoms (ASP, GLU,
// PHE, TYR) matches the predicted atom14 positions [N, 14, 3] better, and the ground truth renamed so.
struct RenamedGroundTruth {
    Tensor alt_naming_is_better;          // [N] (0 or 1)
    Tensor renamed_atom14_gt_positions;   // [N, 14, 3]
    Tensor renamed_atom14_gt_exists;      // [N, 14]
};
RenamedGroundTruth compute_renamed_ground_truth(const Tensor& atom14_pred_positions, const Tensor& atom14_gt_positions,
                                                const Tensor& atom14_alt_gt_positions, const Tensor& atom14_gt_exists,
                                                const Tensor& atom14_alt_gt_exists,
                                                const Tensor& atom14_atom_is_ambiguous, double eps = 1e-10);

// FAPE of the side chains: sidechain_frames [N, 8, 4, 4] and atom14 positions [N, 14, 3] of the last layer
// against the ground-truth frames (rigidgroups_gt_frames, or rigidgroups_alt_gt_frames where
// alt_naming_is_better, [N, 8, 4, 4]; rigidgroups_gt_exists [N, 8]) and the renamed ground-truth atoms.
// dframes, dpositions (out): its gradients with respect to the frames and the positions.
double sidechain_fape(const Tensor& sidechain_frames, const Tensor& atom14_positions,
                      const Tensor& rigidgroups_gt_frames, const Tensor& rigidgroups_alt_gt_frames,
                      const Tensor& rigidgroups_gt_exists, const RenamedGroundTruth& renamed,
                      double clamp_distance = 10.0, double length_scale = 10.0, double eps = 1e-4,
                      Tensor* dframes = nullptr, Tensor* dpositions = nullptr);

// Supervised chi: chi_weight * masked mean over (L, residues, chis with chi_mask [N, 4]) of the squared sin/cos
// error of angles [L, N, 7, 2] (torsions 3..6) against chi_angles_sin_cos [N, 4, 2], the pi-periodic chis of
// aatype [N] compared with the better of the two; + angle_norm_weight * mean over (L, residues with seq_mask
// [N], 7 torsions) of |norm(unnormalized_angles [L, N, 7, 2]) - 1|. chi_part (out): the first term (with its
// chi_weight).
// dangles, dunnormalized (out): its gradients.
double supervised_chi_loss(const Tensor& angles, const Tensor& unnormalized_angles, const Tensor& aatype,
                           const Tensor& seq_mask, const Tensor& chi_mask, const Tensor& chi_angles_sin_cos,
                           const LossConfig::SupervisedChi& c = {}, double* chi_part = nullptr,
                           Tensor* dangles = nullptr, Tensor* dunnormalized = nullptr);

// Structural violations of predicted atom14 positions [N, 14, 3] (AF2 find_structural_violations, Algorithm
// 28's terms): between consecutive residues (residue_index steps of 1) the C-N bond and the CA-C-N and C-N-CA
// angles against their literature values (flat-bottomed: only beyond violation_tolerance_factor standard
// deviations); clashes between atoms of different residues (closer than their van der Waals radii less
// clash_overlap_tolerance; the peptide C-N bond and atom14 slot 5 pairs, CYS SG disulfides, excepted, as in AF2);
// within each residue, distances outside atom14_dists_bounds. Field names are OpenFold's.
struct StructuralViolations {
    double bonds_c_n_loss_mean = 0, angles_ca_c_n_loss_mean = 0, angles_c_n_ca_loss_mean = 0;
    double clashes_mean_loss = 0;
    Tensor connections_per_residue_loss_sum;         // [N]
    Tensor connections_per_residue_violation_mask;   // [N]
    Tensor clashes_per_atom_loss_sum;                // [N, 14]
    Tensor clashes_per_atom_clash_mask;              // [N, 14]
    Tensor within_residues_per_atom_loss_sum;        // [N, 14]
    Tensor within_residues_per_atom_violations;      // [N, 14]
    Tensor total_per_residue_violations_mask;        // [N]
};
// dloss (out): the gradient of violation_loss(result, atom14_atom_exists, loss_eps) with respect to the
// positions [N, 14, 3].
StructuralViolations find_structural_violations(const Tensor& atom14_pred_positions, const Tensor& atom14_atom_exists,
                                                const Tensor& residue_index, const Tensor& aatype,
                                                double violation_tolerance_factor = 12.0,
                                                double clash_overlap_tolerance = 1.5, Tensor* dloss = nullptr,
                                                double loss_eps = 1e-6);
// The violation loss: the three between-residue means + (clash and within-residue per-atom losses summed) /
// (eps + number of atoms). clash (out): that last term.
double violation_loss(const StructuralViolations& v, const Tensor& atom14_atom_exists, double eps = 1e-6,
                      double* clash = nullptr);

// AlphaFoldLoss: every term from the model's outputs and a training example's ground truth, by name.
//   outputs: distogram_logits, masked_msa_logits, experimentally_resolved_logits, lddt_logits, tm_logits (its
//     term is skipped without it), final_atom_positions, final_affine_tensor, sm/frames, sm/sidechain_frames,
//     sm/positions, sm/angles, sm/unnormalized_angles (the golden loss cases' names and shapes);
//   batch: the ground-truth features of AF2's training pipeline (aatype, residue_index, seq_mask, seq_length,
//     resolution, use_clamped_fape, pseudo_beta(_mask), true_msa, bert_mask, all_atom_positions/mask,
//     atom37_atom_exists, atom14_*, rigidgroups_*, backbone_rigid_tensor/mask, chi_angles_sin_cos, chi_mask),
//     without an iteration axis.
// A missing tensor is an error naming it.
struct AlphaFoldLoss {
    std::map<std::string, double> terms;      // unweighted: distogram, experimentally_resolved, fape, ...
    std::map<std::string, double> sub_terms;  // fape_backbone, fape_sidechain, supervised_chi_chi_part, ...
    double unscaled_total = 0;                // sum(weight * term)
    double total = 0;                         // unscaled_total * sqrt(min(seq_length, N)), the root in float32
    // With gradients: d total / d output (float64, the output's shape) for every output the loss reads; the
    // backward pass through the model starts from these.
    std::map<std::string, Tensor> gradients;
};
AlphaFoldLoss alphafold_loss(const std::map<std::string, Tensor>& outputs, const std::map<std::string, Tensor>& batch,
                             const LossConfig& config = {}, bool with_gradients = false);
// The ground-truth features alphafold_loss reads from `batch` (for checking an input file up front).
const std::vector<std::string>& loss_batch_features();

}  // namespace axfold
