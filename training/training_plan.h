// Memory plan of one training update (`axfold train`, one replica: training_step with Adam and the
// parameters' moving average), for choosing a crop size: the earlier iterations run as a prediction
// (model_plan.h), then the last iteration keeps what its backward needs, and the peak comes during the Evoformer
// stack's backward, which keeps every block's input (activation checkpointing per block) and one block's
// internals. Everything is float32 and unchunked, as training_step runs. On a GPU the same tensors would live on
// the device (the training step runs on the host for now: the device plan is a projection, docs/TRAINING.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "model/model.h"

namespace axfold {

struct TrainingMemoryPlan {
    // What the backward's peak holds, largest first by construction order: the optimizer state, the gradient,
    // the features, the last iteration's kept representations, the heads' outputs and the losses' gradients, the
    // Evoformer stack's checkpoints and one block's backward.
    std::vector<std::pair<std::string, size_t>> terms;
    size_t recycling = 0;  // the earlier iterations (a prediction's peak) beside the optimizer state
    size_t backward = 0;   // the sum of terms
    size_t peak() const { return std::max(recycling, backward); }
};

// One Evoformer (or extra-MSA) block's backward beyond its inputs: the forward replay's states between the
// sub-modules, the cotangents and the largest sub-module's backward internals (unchunked float32), for S rows
// of width c_m and N residues of pair width c_z; under DAP over `dap` ranks, one rank's: the shards (1/P of the
// rows) with the tensors every rank gathers whole (the pair biases and their gradients, the triangle
// multiplications' right projections and theirs).
size_t block_backward_bytes(int64_t n_seq, int64_t n_res, int64_t c_m, int64_t c_z, bool is_extra_msa, int dap = 1);

// The plan for a crop of n_res residues, n_seq cluster rows (template rows added for template models),
// n_extra extra rows. ema: `axfold train` keeps the moving average (--ema-decay > 0). dap: ranks per example
// (`axfold train --dap`), one rank's share: the stacks' checkpoints and block internals are sharded, the rest
// of the model runs replicated. activations: bfloat16 (--precision bf16) keeps the stacks' checkpoints in half
// the bytes.
TrainingMemoryPlan plan_training(const ModelConfig& cfg, int64_t n_res, int64_t n_seq, int64_t n_extra,
                                 bool ema = true, int dap = 1, DType activations = DType::F32);

}  // namespace axfold
