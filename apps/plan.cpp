// `axfold plan`: the memory plan the planner would pick for a protein, without running anything.
#include <cstdio>

#include "apps/commands.h"
#include "evoformer/memory_plan.h"
#include "structure/model_params.h"

namespace axfold::apps {

size_t model_fixed_bytes(int64_t n_res, int64_t n_seq, int64_t n_extra, int64_t evoformer_blocks,
                         int64_t extra_msa_blocks) {
    ModelDims d;
    d.evoformer_blocks = evoformer_blocks;
    d.extra_msa_blocks = extra_msa_blocks;
    size_t params = 0;
    for (auto& [k, s] : model_param_shapes(ModelPreset::from_name("model_3_ptm"), d)) params += shape_numel(s) * 4;
    const size_t N = n_res, S = n_seq, E = n_extra;
    const size_t pair = N * N * 128 * 4;
    // One iteration's features (msa_feat dominates), the extra-MSA activations, the recycled pair and
    // first row, masks, and about 150 MB of code, libraries and BLAS buffers.
    const size_t features = (S * N * 49 + 4 * E * N + 2 * S * N + N * 22) * 4;
    const size_t extra_act = E * N * 64 * 4;
    return params + features + extra_act + pair + N * N * 4 + (size_t(150) << 20);
}

int plan_main(const PlanOptions& o) {
    AXF_CHECK(o.n_res > 0 && o.n_seq > 0 && o.n_extra > 0, "plan: sizes must be positive");
    BlockSizes evo, extra;
    evo.n_seq = o.n_seq;
    evo.n_res = o.n_res;
    evo.threads = o.threads > 0 ? o.threads : 1;
    extra.n_seq = o.n_extra;
    extra.n_res = o.n_res;
    extra.dims = EvoformerDims::af2_extra_msa();
    extra.is_extra_msa = true;
    extra.threads = evo.threads;
    const size_t fixed = model_fixed_bytes(o.n_res, o.n_seq, o.n_extra, 48, 4);
    const size_t budget = o.max_memory.empty() ? 0 : parse_bytes(o.max_memory);
    ChunkPlan p = plan_blocks({evo, extra}, fixed, budget, o.chunk_size);
    std::printf("plan for N_res=%lld, %lld MSA rows, %lld extra rows (AF2 widths, %d threads)%s:\n",
                (long long)o.n_res, (long long)o.n_seq, (long long)o.n_extra, evo.threads,
                budget ? (" within " + format_bytes(budget)).c_str() : "");
    std::printf("  chunk size          %lld%s\n", (long long)p.chunk_size, p.chunk_size == 0 ? " (unchunked)" : "");
    std::printf("  fixed               %s (parameters, features, recycled state, runtime)\n", format_bytes(fixed).c_str());
    std::printf("  MSA + pair          %s\n", format_bytes(std::max(block_activation_bytes(evo), block_activation_bytes(extra))).c_str());
    for (auto& [name, bytes] : p.modules) std::printf("  %-36s %s\n", name.c_str(), format_bytes(bytes).c_str());
    std::printf("  predicted peak      %s\n", format_bytes(p.predicted_peak_bytes).c_str());
    return 0;
}

}  // namespace axfold::apps
