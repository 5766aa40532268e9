// One training step's gradients for the whole model (AF2 supplement 1.11): the iterations before the last run
// as in prediction and only feed the recycling embedder (stop-gradient); the last iteration is run again keeping
// what the backward passes need, its outputs go into alphafold_loss, and the losses' gradients flow back through
// the heads, the structure module, the single projection, the Evoformer and extra-MSA stacks and the
// embedders, into a gradient for every parameter (training/losses.h, docs/TRAINING.md).
//
// DAP: with a communicator of more than one rank, the extra-MSA and Evoformer stacks run forward and backward
// distributed over its ranks (evoformer_dap.h); every rank ends with the same loss and gradients.
//
// Template models (model_1, model_2) train their template embedding and angle rows when the features hold
// templates.
//
// Device: ctx.device; on a GPU the model runs there, the losses on the host (docs/TRAINING.md, "Training on a
// GPU"), and TrainingStep::grads stays on the device.
//
// LIMITATION: AlphaFold-Multimer models; every module's backward outside the stacks holds its internals for the
// whole crop.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/model.h"
#include "parallel/comm.h"
#include "training/losses.h"

namespace axfold {

struct TrainingStep {
    AlphaFoldLoss loss;                     // every term, the totals, d total / d output
    ModelWeights grads;                     // d total / d parameter, the model's weights' layout
    std::map<std::string, Tensor> outputs;  // the last iteration's outputs under the loss's names (host)
    // Seconds per stage, in order: recycling, embedders (with the templates), extra_msa_stack, evoformer,
    // structure_module, heads, loss, then the backward passes (heads, structure module with the single
    // projection, evoformer, extra-MSA stack, templates when the model has them, embedders) and, with replicas,
    // replica_average (the wait for the data-parallel average's last parts).
    std::vector<std::pair<std::string, double>> timings;
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
// dropout_seed: AF2's training dropout in the Evoformer, extra-MSA and template pair stacks and the structure
// module (evoformer/dropout.h), drawn from this seed; 0: none. replicas (data parallel; nullptr or one rank:
// none): the gradient returned is the average over its ranks' steps (each on its own example), its all-reduces
// started part by part as the backward finishes each part (ReplicaAverage, training/optimizer.h), so that they
// overlap the rest of the backward; the losses stay this rank's. The recycled iterations run without dropout.
TrainingStep training_step(const Model& model, const FeatureDict& features, const FeatureDict& batch,
                           const LossConfig& config, Context& ctx, const RecycledInputs* recycled = nullptr,
                           Comm* comm = nullptr, uint64_t dropout_seed = 0, Comm* replicas = nullptr);

// A zero gradient of the model's weights' layout (the stacks' blocks included).
ModelWeights zeros_like_model(const ModelWeights& w);

// Data parallel x DAP: the world's ranks in groups of `dap_size` consecutive ranks, each group one replica
// training on its own example with DAP inside it; `replicas` joins the ranks of equal position across groups
// (the gradient's average runs over it). world.size() must be a multiple of dap_size.
struct TrainingGroups {
    std::unique_ptr<Comm> dap, replicas;
    int replica = 0, num_replicas = 1;
};
TrainingGroups split_training_groups(Comm& world, int dap_size);

// One training example: an HDF5 file with the processed model features under `features/` (leading iteration
// axis, as training_step reads them) and the ground truth under `batch/` (loss_batch_features(), no iteration
// axis): the layout of the golden loss cases. Checks that every ground-truth feature is there (the error names
// the file and what is missing); the features are checked by training_step.
struct TrainingExample {
    std::string path;
    FeatureDict features, batch;
};
TrainingExample load_training_example(const std::string& path);
// Everything training_step and the loss will read, checked up front: the features (validate_features), and
// every ground-truth tensor finite and with the features' residue count on its residue axis. The error names
// the file, the dataset, what was expected and what was found.
void validate_training_example(const TrainingExample& example, const ModelConfig& config);

}  // namespace axfold
