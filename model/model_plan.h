// Memory plan of a whole prediction: the chunk size of the trunk (evoformer/memory_plan.h) chosen so that every
// phase of Model::predict (parameter loading, embedders, template embedding, trunk, structure module and heads)
// fits a budget, on the CPU (the whole process) or on a GPU (the device's share of --device cuda). `axfold
// predict`, `axfold plan`, the benchmarks and the C API plan with it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "evoformer/memory_plan.h"
#include "kernels/tensor.h"
#include "model/model.h"

namespace axfold {

// fp32 bytes of a preset's parameters at these depths: all of them, and the Evoformer and extra-MSA stacks' own.
struct ParamBytes {
    size_t all = 0, evoformer = 0, extra_msa = 0;
};
ParamBytes model_param_bytes(const ModelPreset& preset, int64_t evoformer_blocks, int64_t extra_msa_blocks);
// Bytes a full-model run holds through every phase (parameters, features, masks, runtime): planner input.
size_t model_fixed_bytes(int64_t n_res, int64_t n_seq, int64_t n_extra, int64_t evoformer_blocks,
                         int64_t extra_msa_blocks);
// Workspace of the structure module and heads on the final pair (the peak after the trunk) at the trunk's
// chunk size; keep_pair_logits: PredictOptions::keep_pair_logits.
size_t post_trunk_bytes(int64_t n_res, int64_t n_seq, int64_t c_z, bool pae, int64_t chunk, bool keep_pair_logits);
// Bytes the embedders hold besides the pair and MSA: the larger of the recycling, extra-MSA and
// relative-position buffers (at `chunk` rows per block), for activations of act_bytes (4 or 2).
size_t embedder_bytes(int64_t n_res, int64_t n_extra, int64_t chunk, int act_bytes);
// Predicted peak of each phase of a prediction (Model::predict trims the workspace between them).
struct ModelMemoryPhases {
    size_t load = 0, embedders = 0, templates = 0, trunk = 0, heads = 0;  // templates: 0 without
    size_t peak() const { return std::max({load, embedders, templates, trunk, heads}); }
    const char* peak_phase() const {
        const size_t p = peak();
        return p == trunk       ? "trunk"
               : p == heads     ? "structure module and heads"
               : p == embedders ? "embedders"
               : p == templates ? "templates"
                                : "parameter loading";
    }
};
// AF2's template count (max_templates), which the plans of template models assume.
constexpr int64_t kPlannedTemplates = 4;
// The template embedding's own bytes (template models): the templates' activations [T, N, N, c_t] and the
// largest of its blocks (a block of the [N, N, 88] features, a block of the pointwise attention, the
// template pair stack's workspace: `trunk`'s pair modules at the template widths), plus the [N, N, c_z]
// update when it is kept (`keep_update`, predict --save-outputs).
// AlphaFold-Multimer (multimer): one template's activations at a time with their running sum and the [N, N, c_z]
// update, its [N, N, 88] features and query rows a block at a time, no pointwise attention.
size_t template_embedding_bytes(const BlockSizes& trunk, int64_t chunk, int64_t c_t, bool keep_update,
                                bool multimer = false);
// The phases of a whole prediction whose trunk runs under `trunk`; act_bytes: 4 (float32 activations) or 2.
ModelMemoryPhases model_memory_phases(const ChunkPlan& trunk, int64_t n_res, int64_t n_seq, int64_t n_extra,
                                      int64_t evoformer_blocks, int64_t extra_msa_blocks, size_t fixed, bool pae,
                                      int threads, int act_bytes, bool keep_pair_logits);
// The chunk plan of a prediction (trunk) and its predicted whole-model peak; throws when `max_memory` is
// too small, naming what would fit. `act`: Context::activation_dtype; kept_iterations: how many iterations
// `predict --save-outputs` keeps (0 without it: no [N, N, 64] head tensors, no earlier pairs).
ChunkPlan plan_prediction(const ModelConfig& cfg, int64_t n_res, int64_t n_cluster_rows, int64_t n_extra,
                          const std::string& max_memory, int64_t chunk_size, size_t* predicted_peak,
                          DType act = DType::F32, int kept_iterations = 0, ModelMemoryPhases* phases = nullptr);
// With the model on a GPU (--device cuda) the device holds every parameter, the representations and the
// recycled state, and each phase's working memory (embedders, trunk stacks, structure module and heads); the
// features and the outputs live in host memory. The trunk's chunk plan that fits `max_memory` (without one, 90 %
// of the device's free memory) and the whole model's predicted device peak; throws when it does not fit.
// Offload (`offload`: "auto", "on" or "off"): parking the MSA in host memory during the extra-MSA stack takes
// it out of that stack's peak; "auto" parks it only when that lets a faster chunk size fit (ChunkPlan::offload_msa).
ChunkPlan plan_device_model(const ModelConfig& cfg, int64_t n_res, int64_t n_cluster_rows, int64_t n_extra,
                            const std::string& max_memory, int64_t chunk_size, size_t* predicted_peak,
                            DType act = DType::F32, bool keep_pair_logits = false, ModelMemoryPhases* phases = nullptr,
                            const std::string& offload = "auto");

}  // namespace axfold
