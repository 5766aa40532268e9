// AlphaFold2's model-side feature transforms for monomer inference (AF2 `model/tf/input_pipeline.py`,
// `data_transforms.py`; OpenFold `data/data_transforms.py`): raw features (raw_features.h) in, the
// processed FeatureDict that Model::predict consumes out, with a leading iteration axis R (the MSA is
// resampled for every recycling iteration, as AF2's `resample_msa_in_recycling`).
//
// Once: MSA alphabet HHblits -> AF order (MAP_HHBLITS_AATYPE_TO_OUR_AATYPE), one-hot aatype -> index, seq and
// MSA masks, HHblits profile (mean 22-class one-hot over all rows), atom14/atom37 maps, basic template
// features. Per iteration r (random stream from (seed, r)):
//   sample_msa         row 0 kept, the rest shuffled; the first max_msa_clusters rows become cluster centres,
//                      the remainder the extra MSA
//   make_masked_msa    each centre position with p = replace_fraction: 0.1 uniform over the 20 amino acids,
//                      0.1 from the profile, 0.1 unchanged, 0.7 mask token 22 (bert_mask, true_msa kept)
//   nearest_neighbor_clusters   each extra row to the centre with most identical residues (one-hot over 23;
//                      gaps and the mask token of the centre weigh 0, gap_agreement_weight = 0; ties to the
//                      lowest index, as tf.argmax)
//   summarize_clusters cluster_profile = (centre one-hot + assigned extra one-hots) / (1e-6 + count),
//                      cluster_deletion_mean likewise
//   crop_extra_msa     a random max_extra_msa of the extra rows
//   make_msa_feat      msa_feat [S, N, 49] = one-hot(23) | clip(del, 0, 1) | atan(del/3)*2/pi | cluster
//                      profile (23) | atan(cluster del mean/3)*2/pi; target_feat [N, 22] = between-segment
//                      flag | one-hot(aatype, 21); extra_msa, extra_has_deletion, extra_deletion_value
//   make_fixed_size    pad to max_msa_clusters / max_extra_msa rows (and max_templates) with zero masks
//
// DISCREPANCY: the random draws come from our own generator (splitmix64), so the samples differ from AF2's
// TensorFlow ones for the same seed; the distributions are AF2's. Deterministic for a given seed, whatever
// the thread count.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "kernels/tensor.h"
#include "pipeline/raw_features.h"

namespace axfold::pipeline {

using ProcessedFeatures = std::map<std::string, Tensor>;  // = axfold::FeatureDict
struct TransformConfig;

// Templates: with use_templates, the processed dict gets pipeline/template_features.h's
// make_template_features (issue #5) of the raw template_* arrays, tiled over R: template_aatype [R, T, N]
// (AF order), template_all_atom_positions, template_all_atom_mask, template_sum_probs, template_mask,
// template_pseudo_beta(_mask), template_(alt_)torsion_angles_sin_cos, template_torsion_angles_mask, with
// T = max_templates (zero templates with mask 0 when the raw features have none). A hook, called last with
// the raw features and the processed dict, can add or replace template features.
using TemplateFeatureHook = std::function<void(const RawFeatures&, ProcessedFeatures&, const TransformConfig&)>;

struct TransformConfig {
    int64_t max_msa_clusters = 512;  // cluster rows S of msa_feat (AF2: 512, minus max_templates with templates)
    int64_t max_extra_msa = 5120;    // extra rows E
    int num_iterations = 4;          // R = num_recycle + 1
    uint64_t seed = 0;
    double masked_msa_replace_fraction = 0.15;
    double uniform_prob = 0.1, profile_prob = 0.1, same_prob = 0.1;  // the rest goes to the mask token
    bool pad_to_fixed_size = true;  // AF2 pads S and E to the maxima (zero masks); false: real rows only
    bool use_templates = false;
    int64_t max_templates = 4;
    bool keep_intermediates = false;  // also output extra_cluster_assignment [R, E] (-1 for padding rows)
    TemplateFeatureHook template_hook;

    // AF2's settings for a model name: max_extra_msa 5120 (1024 for model_2/5), max_msa_clusters 512 (508 for the
    // template models 1 and 2), templates for models 1 and 2; AlphaFold-Multimer 508 / 2048 with templates. The
    // iterations are num_recycle + 1; num_recycle < 0 takes AF2's default, 3 recycles (20 for AlphaFold-Multimer,
    // whose early stop usually ends them sooner).
    static TransformConfig for_model(const std::string& model_name, uint64_t seed = 0, int num_recycle = -1);
};

// Raw features in, processed features out (every input validate_features checks, plus msa_row_mask,
// extra_msa_row_mask, bert_mask, true_msa, seq_length, atom maps and the template features above).
ProcessedFeatures process_features(const RawFeatures& raw, const TransformConfig& config);

// AF2 make_atom14_masks for aatype [N] (AF order): atom14_atom_exists [N, 14], atom37_atom_exists [N, 37],
// residx_atom14_to_atom37 [N, 14] and residx_atom37_to_atom14 [N, 37] int64.
std::map<std::string, Tensor> make_atom14_masks(const Tensor& aatype);

// AF2 MAP_HHBLITS_AATYPE_TO_OUR_AATYPE: HHblits index 0..21 -> AF index (gap 21 stays 21).
int hhblits_to_af(int hhblits_index);

}  // namespace axfold::pipeline
