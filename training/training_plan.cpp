#include "training/training_plan.h"

#include <algorithm>

#include "kernels/error.h"
#include "model/model_plan.h"

namespace axfold {

size_t block_backward_bytes(int64_t n_seq, int64_t n_res, int64_t c_m, int64_t c_z, bool is_extra_msa, int dap) {
    const size_t S = n_seq, N = n_res, f = 4, P = static_cast<size_t>(std::max(dap, 1));
    // A rank's shards: the MSA by rows or columns, the pair by rows (either way 1/P of the elements).
    const size_t m = S * N * c_m * f / P, z = N * N * c_z * f / P;
    const size_t zfull = N * N * c_z * f;
    // attention_backward recomputes the probabilities and their gradient a block of batch elements at a time,
    // at most 64 Mi floats each.
    auto logits = [&](size_t elements) { return 2 * std::min(elements, size_t(64) << 20) * f; };
    const size_t heads = 8, pair_heads = 4;
    // A gated attention's backward holds about 17 activation-sized tensors (the input's copy, its norm, q, k, v,
    // the output, the gate, their cotangents: evoformer/gated_attention.cpp) besides the logits.
    const size_t row = 17 * m + logits(S * heads * N * N / P) + 2 * heads * N * N * f + 2 * z;
    const size_t column = is_extra_msa ? 12 * m : 17 * m + logits(N * heads * S * S / P);  // global: no S^2
    const size_t triangle_attention = 17 * z + logits(N * pair_heads * N * N / P) + 2 * pair_heads * N * N * f;
    // N^2 (2 c_z + 9 c), c = c_z (triangle_multiplication.h); under DAP the right projection and its gradient
    // whole.
    const size_t triangle_multiplication = 11 * z + (P > 1 ? 2 * zfull : 0);
    const size_t outer_product_mean = 16 * z;       // [N, N, 32 x 32] and its cotangent
    const size_t transition = 10 * std::max(m, z);  // the 4x hidden layer, its cotangent and the rest
    const size_t module =
        std::max({row, column, triangle_attention, triangle_multiplication, outer_product_mean, transition});
    // The replay's states between sub-modules (3 MSA and 5 pair copies), its running copies and two cotangents;
    // under DAP 4 MSA and 6 pair shards, and the cotangents in both layouts with an exchange buffer each
    // (evoformer_dap_backward.cpp).
    return (P > 1 ? 7 * m + 9 * z : 5 * m + 7 * z) + module;
}

TrainingMemoryPlan plan_training(const ModelConfig& cfg, int64_t n_res, int64_t n_seq, int64_t n_extra, bool ema,
                                 int dap, DType activations) {
    AXF_CHECK(dap >= 1, "training plan: --dap %d, expected >= 1", dap);
    const ParamBytes params = model_param_bytes(cfg.preset, cfg.evoformer_blocks, cfg.extra_msa_blocks);
    const size_t P = params.all;
    const size_t N = n_res, E = n_extra, f = 4;
    const size_t S = n_seq + (cfg.preset.templates ? kPlannedTemplates : 0);  // the template angle rows
    const size_t m = S * N * cfg.c_m * f, z = N * N * cfg.c_z * f, x = E * N * cfg.c_e * f;
    TrainingMemoryPlan p;
    const size_t fixed = model_fixed_bytes(n_res, n_seq, n_extra, cfg.evoformer_blocks, cfg.extra_msa_blocks);
    const size_t optimizer = (ema ? 3 : 2) * P;
    // The earlier iterations: a prediction (unchunked, float32) beside Adam's moments and the moving average.
    size_t prediction = 0;
    plan_prediction(cfg, n_res, n_seq, n_extra, "", 0, &prediction);
    p.recycling = prediction + optimizer;
    // The last iteration's backward.
    p.terms.push_back({"parameters, features, code", fixed});
    p.terms.push_back({ema ? "Adam's moments, moving average" : "Adam's moments", optimizer});
    p.terms.push_back({"gradient", P});
    // Kept from the forward: the MSA, its copy before the Evoformer and its cotangent; the pair, its copies
    // before each stack (and the templates' query) and cotangents; the extra MSA, its copy and cotangent.
    p.terms.push_back({"last iteration's representations", 3 * m + (cfg.preset.templates ? 7 : 6) * z + 3 * x});
    // The pair heads' logits, their float64 loss gradients and float32 cotangents (distogram; PAE with pTM),
    // the masked-MSA logits alike.
    const size_t pair_heads = cfg.preset.ptm ? 2 : 1;
    p.terms.push_back({"heads' outputs, loss gradients", (pair_heads * N * N * 64 + S * N * 23) * 16});
    // The stacks run backward one after the other: each keeps its blocks' inputs (a rank's shards under DAP)
    // and one block's internals.
    const size_t half = activations == DType::BF16 ? 2 : 1;  // bfloat16 checkpoints
    const std::string kept = half > 1 ? " checkpoints (blocks x inputs, bf16)" : " checkpoints (blocks x inputs)";
    const size_t evo_kept = cfg.evoformer_blocks * (m + z) / dap / half,
                 extra_kept = cfg.extra_msa_blocks * (x + z) / dap / half;
    // Under DAP each block's packed parameter gradient stays in its all-reduce until the stack's end.
    const size_t evo_block =
                     block_backward_bytes(S, N, cfg.c_m, cfg.c_z, false, dap) + (dap > 1 ? params.evoformer : 0),
                 extra_block =
                     block_backward_bytes(E, N, cfg.c_e, cfg.c_z, true, dap) + (dap > 1 ? params.extra_msa : 0);
    if (evo_kept + evo_block >= extra_kept + extra_block) {
        p.terms.push_back({"Evoformer" + kept, evo_kept});
        p.terms.push_back({"one Evoformer block's backward", evo_block});
    } else {
        p.terms.push_back({"extra-MSA" + kept, extra_kept});
        p.terms.push_back({"one extra-MSA block's backward", extra_block});
    }
    size_t counted = 0;
    for (const auto& [name, bytes] : p.terms) counted += bytes;
    // What the terms miss (the losses' float64 temporaries, the allocator's slack; under DAP also the modules'
    // gathered tensors and the exchanges' buffers; with bfloat16 checkpoints the GEMMs' rounded operand copies):
    // measured with `bench model --training` (docs/TRAINING.md) at 1.4-3.9 % of the terms on one rank, 9.2-12.1 %
    // under DAP 2, and with bf16 on the CPU 9.2 % on one rank and 13.6 % under DAP 2: planned as 5 %, 12 %, 10 %
    // and 15 %.
    const size_t pct = dap > 1 ? (half > 1 ? 15 : 12) : (half > 1 ? 10 : 5);
    const size_t slack = counted * pct / 100;
    p.terms.push_back({strfmt(dap > 1 ? "temporaries, allocator slack, DAP buffers (%zu %%)"
                                      : "temporaries and allocator slack (%zu %%)",
                              pct),
                       slack});
    p.backward = counted + slack;
    return p;
}

}  // namespace axfold
