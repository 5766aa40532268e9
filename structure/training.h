// One training step's gradients for the whole model (AF2 supplement 1.11): the iterations before the last run
// as in prediction and only feed the recycling embedder (stop-gradient); the last iteration is run again keeping
// what the backward passes need, its outputs go into alphafold_loss, and the losses' gradients flow back through
// the heads, the structure module, the single projection, the Evoformer and extra-MSA stacks and the
// embedders, into a gradient for every parameter (structure/losses.h, docs/TRAINING.md).
//
// DAP: with a communicator of more than one rank, the extra-MSA and Evoformer stacks run forward and backward
// distributed over its ranks (evoformer_dap.h); every rank ends with the same loss and gradients.
//
// Limits: models without templates (model_3..5), the host, no dropout; every module's backward outside the
// stacks holds its internals for the whole crop.
#pragma once

#include <map>
#include <string>

#include "structure/losses.h"
#include "structure/model.h"

namespace axfold {

struct TrainingStep {
    AlphaFoldLoss loss;                      // every term, the totals, d total / d output
    ModelWeights grads;                      // d total / d parameter, the model's weights' layout
    std::map<std::string, Tensor> outputs;   // the last iteration's outputs under the loss's names
};

// What the differentiated last iteration recycles from the earlier ones (stop-gradient): the first MSA row
// [N, C_m], the pair [N, N, C_z] and the pseudo-beta positions [N, 3] (zeros for a single iteration).
struct RecycledInputs {
    Tensor msa_first_row, pair, pseudo_beta;
};
RecycledInputs recycled_inputs(const Model& model, const FeatureDict& features, Context& ctx, Comm* comm = nullptr);

// features: processed training features with a leading iteration axis (all of them run); batch: the last
// iteration's ground truth (alphafold_loss's names, no iteration axis). recycled: the earlier iterations'
// outputs when already known (else computed: recycled_inputs). comm: DAP over its ranks (nullptr: one rank).
TrainingStep training_step(const Model& model, const FeatureDict& features, const FeatureDict& batch,
                           const LossConfig& config, Context& ctx, const RecycledInputs* recycled = nullptr,
                           Comm* comm = nullptr);

// A zero gradient of the model's weights' layout (the stacks' blocks included).
ModelWeights zeros_like_model(const ModelWeights& w);

}  // namespace axfold
