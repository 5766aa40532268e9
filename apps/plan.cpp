// `axfold plan`: the memory plan the planner would pick for a protein, without running anything.
#include <cstdio>

#include "apps/commands.h"
#include "evoformer/memory_plan.h"
#include "kernels/device.h"
#include "kernels/ops.h"
#include "structure/model_params.h"

namespace axfold::apps {

namespace {
// fp32 bytes of the AF2 monomer parameters at these depths; with `stacks_only`, just the extra-MSA and
// Evoformer stacks' (what --device cuda copies to the GPU).
size_t param_bytes(int64_t evoformer_blocks, int64_t extra_msa_blocks, bool stacks_only = false) {
    ModelDims d;
    d.evoformer_blocks = evoformer_blocks;
    d.extra_msa_blocks = extra_msa_blocks;
    size_t bytes = 0;
    for (auto& [k, s] : model_param_shapes(ModelPreset::from_name("model_3_ptm"), d))
        if (!stacks_only || k.find("/evoformer_iteration/") != std::string::npos ||
            k.find("/extra_msa_stack/") != std::string::npos)
            bytes += shape_numel(s) * 4;
    return bytes;
}
}  // namespace

size_t model_fixed_bytes(int64_t n_res, int64_t n_seq, int64_t n_extra, int64_t evoformer_blocks,
                         int64_t extra_msa_blocks) {
    const size_t params = param_bytes(evoformer_blocks, extra_msa_blocks);
    const size_t N = n_res, S = n_seq, E = n_extra;
    // The features of 4 iterations (msa_feat and the extra MSA dominate), the recycled first row, masks, and
    // about 150 MB of code and libraries. (The recycled pair is held only through the embedders, and the
    // extra-MSA activations only until their stack is done: model_peak_bytes and the trunk's activations
    // count them.)
    const size_t features = 4 * (S * N * 49 + 5 * E * N + 2 * S * N + N * 22) * 4;  // 4 iterations
    return params + features + N * N * 4 + (size_t(150) << 20);
}

size_t post_trunk_bytes(int64_t n_res, int64_t n_seq, int64_t c_z, bool pae, size_t held_during_sm) {
    const size_t N = n_res, n2 = N * N, S = n_seq;
    // Structure module: LN(pair) copy, IPA 2-D bias and logits (12 heads); heads: distogram logits
    // (symmetrised in place), PAE logits and probabilities (64 bins each), all [N, N, .] fp32, and the row
    // offsets (8 bytes per row) the CPU softmax walks over the [N, N, 64] probabilities, the PAE map
    // [N, N], and the masked-MSA logits [S, N, 23].
    const size_t sm = n2 * c_z * 4 + 2 * n2 * 12 * 4;
    const size_t heads = n2 * 64 * 4 + S * N * 23 * 4 + (pae ? 2 * n2 * 64 * 4 + n2 * 8 + n2 * 4 : 0);
    return std::max(sm + held_during_sm, heads);
}

size_t embedder_bytes(int64_t n_res, int64_t n_extra, int64_t chunk) {
    const size_t N = n_res, E = n_extra, rows = chunk > 0 ? std::min<size_t>(N, chunk) : N;
    // Recycling: the [N, N, 15] distance one-hot, and LN(prev_pair) over a block of rows. Extra-MSA
    // embedder: its activations [E, N, 64] (which stay for the stack) and the [E, N, 25] one-hot.
    // Input embedder: a block of rows of the [N, N, 65] relative-position one-hot.
    const size_t recycling = N * N * 15 * 4 + rows * N * 128 * 4;
    // (+ the iteration's copies of extra_msa as int64 and of the two deletion features as fp32.)
    const size_t extra = E * N * (64 + 25) * 4 + E * N * 16;
    const size_t relpos = rows * N * 65 * 4;
    return std::max({recycling, extra, relpos});
}

ModelMemoryPhases model_memory_phases(const ChunkPlan& trunk, int64_t n_res, int64_t n_seq, int64_t n_extra,
                                      int64_t evoformer_blocks, int64_t extra_msa_blocks, size_t fixed, bool pae,
                                      int threads, int act_bytes) {
    const size_t params = param_bytes(evoformer_blocks, extra_msa_blocks);
    const size_t n2 = static_cast<size_t>(n_res) * n_res;
    const size_t pair = n2 * 128 * 4, stored_pair = n2 * 128 * static_cast<size_t>(act_bytes);
    // Each phase starts from an empty workspace arena (Model::predict trims it between phases); the BLAS
    // library's per-thread buffers (as in plan_blocks) stay through all of them.
    const size_t blas = static_cast<size_t>(std::max(1, threads)) * (size_t(24) << 20);
    ModelMemoryPhases ph;
    // Loading: the .npz is read whole, then its arrays are parsed, so parameters exist twice for a moment.
    ph.load = fixed + params;
    // Embedders: the float32 pair being built, the recycled pair, and the embedders' own buffers.
    ph.embedders = fixed + pair + stored_pair + embedder_bytes(n_res, n_extra, trunk.chunk_size) + blas;
    // bfloat16: the pair is rounded into a new buffer (after the extra-MSA activations) before the stacks.
    if (act_bytes != 4) ph.convert = fixed + pair + stored_pair + static_cast<size_t>(n_extra) * n_res * 64 * act_bytes + blas;
    ph.trunk = trunk.predicted_peak_bytes;
    // After the trunk: structure module and heads on the float32 pair (plus, with bfloat16 activations and
    // through the structure module, the trunk's own pair, which is the next iteration's recycled pair).
    ph.heads = fixed + pair + post_trunk_bytes(n_res, n_seq, 128, pae, act_bytes == 4 ? 0 : stored_pair) + blas;
    return ph;
}

namespace {
// The Evoformer and extra-MSA blocks of a model at these sizes, as the planner sees them.
std::pair<BlockSizes, BlockSizes> trunk_blocks(const ModelConfig& cfg, int64_t n_res, int64_t n_cluster_rows,
                                               int64_t n_extra, int threads, DType act) {
    BlockSizes evo, extra;
    evo.n_seq = n_cluster_rows + (cfg.preset.templates ? 4 : 0);  // template angle rows join the MSA
    evo.n_res = n_res;
    evo.threads = threads;
    evo.dims.c_m = cfg.c_m;
    evo.dims.c_z = cfg.c_z;
    extra.n_seq = n_extra;
    extra.n_res = n_res;
    extra.dims = EvoformerDims::af2_extra_msa();
    extra.dims.c_m = cfg.c_e;
    extra.dims.c_z = cfg.c_z;
    extra.is_extra_msa = true;
    extra.threads = threads;
    evo.act_bytes = extra.act_bytes = static_cast<int>(dtype_size(act));
    return {evo, extra};
}
}  // namespace

ChunkPlan plan_prediction(const ModelConfig& cfg, int64_t n_res, int64_t n_cluster_rows, int64_t n_extra,
                          const std::string& max_memory, int64_t chunk_size, size_t* predicted_peak, DType act,
                          ModelMemoryPhases* phases) {
    const auto [evo, extra] = trunk_blocks(cfg, n_res, n_cluster_rows, n_extra, num_threads(), act);
    // The main MSA activations are allocated (float32) before the extra-MSA stack runs, so they are resident
    // during it as well (counted twice during the Evoformer phase: conservative).
    const size_t msa = static_cast<size_t>(evo.n_seq) * n_res * cfg.c_m * 4;
    const size_t fixed =
        model_fixed_bytes(n_res, evo.n_seq, n_extra, cfg.evoformer_blocks, cfg.extra_msa_blocks) + msa;
    const size_t budget = max_memory.empty() ? 0 : parse_bytes(max_memory);
    const ChunkPlan plan = plan_blocks({evo, extra}, fixed, budget, chunk_size);
    const ModelMemoryPhases ph = model_memory_phases(plan, n_res, evo.n_seq, n_extra, cfg.evoformer_blocks,
                                                     cfg.extra_msa_blocks, fixed, cfg.preset.ptm, evo.threads,
                                                     evo.act_bytes);
    const size_t peak = ph.peak();
    if (phases) *phases = ph;
    AXF_CHECK(budget == 0 || peak <= budget,
              "memory budget %s is too small: this prediction needs %s (%s phase)", format_bytes(budget).c_str(),
              format_bytes(peak).c_str(), ph.peak_phase());
    if (predicted_peak) *predicted_peak = peak;
    return plan;
}

ChunkPlan plan_device_trunk(const ModelConfig& cfg, int64_t n_res, int64_t n_cluster_rows, int64_t n_extra,
                            const std::string& max_memory, int64_t chunk_size, DType act) {
    // One thread: one cuBLAS workspace (32 MiB), about the CPU model's per-thread BLAS term.
    const auto [evo, extra] = trunk_blocks(cfg, n_res, n_cluster_rows, n_extra, 1, act);
    const size_t weights = param_bytes(cfg.evoformer_blocks, cfg.extra_msa_blocks, true);
    const size_t masks = static_cast<size_t>(n_res) * (n_res + std::max(evo.n_seq, n_extra)) * 4;
    size_t budget = 0;
    if (!max_memory.empty()) {
        budget = parse_bytes(max_memory);
    } else {
        size_t free_bytes = 0, total = 0;
        device_memory_info(&free_bytes, &total);
        budget = free_bytes / 10 * 9;
    }
    return plan_blocks({evo, extra}, weights + masks, budget, chunk_size);
}

int plan_main(const PlanOptions& o) {
    AXF_CHECK(o.n_res > 0 && o.n_seq > 0 && o.n_extra > 0, "plan: sizes must be positive");
    AXF_CHECK(o.device == "cpu" || o.device == "cuda", "plan: --device %s: expected cpu or cuda", o.device.c_str());
    const DType act = activation_dtype(parse_precision(o.precision));
    if (o.device == "cuda") {  // the GPU's share of a --device cuda run (plan_device_trunk)
        AXF_CHECK(!o.max_memory.empty() || cuda_available(),
                  "plan --device cuda: give the GPU's memory with --max-memory (no GPU is visible here)");
        ModelConfig cfg;
        cfg.preset = ModelPreset::from_name("model_3_ptm");
        const ChunkPlan p = plan_device_trunk(cfg, o.n_res, o.n_seq, o.n_extra, o.max_memory, o.chunk_size, act);
        std::printf("GPU plan for N_res=%lld, %lld MSA rows, %lld extra rows (AF2 widths; trunk on the GPU, %s "
                    "activations)%s:\n",
                    (long long)o.n_res, (long long)o.n_seq, (long long)o.n_extra, dtype_name(act),
                    o.max_memory.empty() ? "" : (" within " + format_bytes(parse_bytes(o.max_memory))).c_str());
        std::printf("  chunk size          %lld%s\n", (long long)p.chunk_size, p.chunk_size == 0 ? " (unchunked)" : "");
        for (auto& [name, bytes] : p.modules) std::printf("  %-36s %s\n", name.c_str(), format_bytes(bytes).c_str());
        std::printf("  predicted device peak %s (stack weights, masks, MSA + pair, workspace)\n",
                    format_bytes(p.predicted_peak_bytes).c_str());
        return 0;
    }
    if (o.threads > 0) set_num_threads(o.threads);
    ModelConfig cfg;
    cfg.preset = ModelPreset::from_name("model_3_ptm");
    ModelMemoryPhases ph;
    size_t peak = 0;
    const ChunkPlan p = plan_prediction(cfg, o.n_res, o.n_seq, o.n_extra, o.max_memory, o.chunk_size, &peak, act, &ph);
    std::printf("plan for N_res=%lld, %lld MSA rows, %lld extra rows (AF2 widths, %d threads, %s activations)%s:\n",
                (long long)o.n_res, (long long)o.n_seq, (long long)o.n_extra, num_threads(), dtype_name(act),
                o.max_memory.empty() ? "" : (" within " + format_bytes(parse_bytes(o.max_memory))).c_str());
    std::printf("  chunk size          %lld%s\n", (long long)p.chunk_size, p.chunk_size == 0 ? " (unchunked)" : "");
    for (auto& [name, bytes] : p.modules) std::printf("  %-36s %s\n", name.c_str(), format_bytes(bytes).c_str());
    std::printf("  phase peaks: load %s, embedders %s, %strunk %s, structure module and heads %s\n",
                format_bytes(ph.load).c_str(), format_bytes(ph.embedders).c_str(),
                ph.convert ? ("bfloat16 conversion " + format_bytes(ph.convert) + ", ").c_str() : "",
                format_bytes(ph.trunk).c_str(), format_bytes(ph.heads).c_str());
    std::printf("  predicted peak      %s (%s)\n", format_bytes(peak).c_str(), ph.peak_phase());
    return 0;
}

}  // namespace axfold::apps
