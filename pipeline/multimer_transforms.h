// AlphaFold-Multimer's model-side feature transforms (AF2 `model/modules_multimer.py`: make_msa_profile,
// sample_msa, make_masked_msa, nearest_neighbor_clusters, create_msa_feat, create_extra_msa_feature): the merged
// complex features of pipeline/msa_pairing.h in, the inputs Model::predict consumes out, with a leading iteration
// axis R (sampled anew for every recycling iteration). Per iteration r (random stream from (seed, r)):
//   sample_msa          rows ordered by Gumbel-perturbed logits: (clip(Σ msa_mask, 0, 1) − 1)·1e6 +
//                       cluster_bias_mask·1e6, so the query row comes first and empty rows last; the first
//                       max_msa_clusters rows are the cluster centres, the rest the extra MSA
//   make_masked_msa     where uniform < 0.15 and bert_mask: a draw from 0.1 uniform over the 20 amino acids, 0.1
//                       msa_profile, 0.1 unchanged, 0.7 mask token 22 (each + 1e-6, as AF2's logits); times
//                       msa_mask; bert_mask = bert_mask · masked position, true_msa the unmasked rows
//   nearest_neighbor_clusters   agreement of every extra row with every centre (one-hot 23 weighted 1 for
//                       residues, 0 for gaps and the mask token, times both masks); soft assignment
//                       softmax(1e3 · agreement) over the centres, scaled by Σ_r msa_mask·extra_mask as AF2 does;
//                       cluster_profile = (centre one-hot + Σ assigned extra one-hots) / (1 + Σ assignment),
//                       cluster_deletion_mean likewise with the deletion counts
//   create_msa_feat     msa_feat [S, N, 49] = one-hot(23) | clip(d, 0, 1) | atan(d/3)·2/π | cluster_profile |
//                       atan(cluster_deletion_mean/3)·2/π; extra_msa, extra_deletion_matrix (raw counts) and
//                       extra_msa_mask = the first max_extra_msa extra rows.
//
// DISCREPANCY: the random draws come from our own generator (splitmix64), not JAX's; the distributions are AF2's.
// DISCREPANCY (with OpenFold, which made the golden sets): OpenFold keeps only max_extra_msa extra rows before
// clustering; we cluster over every extra row, as AF2 does, and then keep the first max_extra_msa.
#pragma once

#include "pipeline/msa_pairing.h"
#include "pipeline/transforms.h"

namespace axfold::pipeline {

struct ClusterSummary {
    Tensor cluster_profile;        // [S, N, 23]
    Tensor cluster_deletion_mean;  // [S, N]
};

// AF2 nearest_neighbor_clusters: msa [S, N] (AF order, may hold the mask token 22), extra_msa [E, N]; masks and
// deletion counts [S, N] / [E, N] float.
ClusterSummary nearest_neighbor_clusters(const Tensor& msa, const Tensor& msa_mask, const Tensor& deletion_matrix,
                                         const Tensor& extra_msa, const Tensor& extra_msa_mask,
                                         const Tensor& extra_deletion_matrix);

// AF2 create_msa_feat: [S, N, 49].
Tensor create_msa_feat(const Tensor& msa, const Tensor& deletion_matrix, const ClusterSummary& clusters);

// The model inputs for a multimer model (config: max_msa_clusters = AF2's num_msa, max_extra_msa, num_iterations,
// seed, masked-MSA probabilities; templates always, the four slots of the merged features): aatype, residue_index,
// asym_id, entity_id, sym_id, seq_mask, target_feat [R, N, 21], msa_feat, msa_mask, extra_msa,
// extra_deletion_matrix, extra_msa_mask, template_aatype, template_all_atom_positions, template_all_atom_mask,
// atom maps; and msa, true_msa, bert_mask, deletion_matrix, cluster_profile, cluster_deletion_mean, msa_profile,
// seq_length, num_alignments.
ProcessedFeatures process_multimer_features(const MergedFeatures& merged, const TransformConfig& config);

}  // namespace axfold::pipeline
