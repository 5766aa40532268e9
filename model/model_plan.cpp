// The whole model's memory plan (model/model_plan.h).
#include "model/model_plan.h"

#include <algorithm>

#include "evoformer/embedders.h"
#include "evoformer/template_embedding.h"
#include "kernels/device.h"
#include "kernels/ops.h"
#include "model/model_params.h"
#include "structure/heads.h"

namespace axfold {

ParamBytes model_param_bytes(const ModelPreset& preset, int64_t evoformer_blocks, int64_t extra_msa_blocks) {
    ModelDims d;
    d.evoformer_blocks = evoformer_blocks;
    d.extra_msa_blocks = extra_msa_blocks;
    ParamBytes b;
    for (auto& [k, s] : model_param_shapes(preset, d)) {
        const size_t bytes = shape_numel(s) * 4;
        b.all += bytes;
        if (k.find("/evoformer_iteration/") != std::string::npos) b.evoformer += bytes;
        if (k.find("/extra_msa_stack/") != std::string::npos) b.extra_msa += bytes;
    }
    return b;
}

namespace {
// fp32 bytes of the AF2 monomer parameters at these depths; with `stacks_only`, just the extra-MSA and
// Evoformer stacks' (what --device cuda copies to the GPU).
size_t param_bytes(int64_t evoformer_blocks, int64_t extra_msa_blocks, bool stacks_only = false) {
    const ParamBytes b =
        model_param_bytes(ModelPreset::from_name("model_3_ptm"), evoformer_blocks, extra_msa_blocks);
    return stacks_only ? b.evoformer + b.extra_msa : b.all;
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

size_t post_trunk_bytes(int64_t n_res, int64_t n_seq, int64_t c_z, bool pae, int64_t chunk, bool keep_pair_logits) {
    const size_t N = n_res, n2 = N * N, S = n_seq;
    const size_t ci = chunk > 0 ? std::min<size_t>(N, chunk) : N;          // the structure module's IPA row blocks
    const size_t hr = static_cast<size_t>(head_block_rows(chunk, n_res));  // the heads' row blocks
    // Structure module: per block of IPA query rows, LN(pair rows), the 2-D bias, the logits and the point-logit
    // bias (12 heads); the pair mask m_i m_j.
    const size_t sm = ci * N * (c_z + 3 * 12) * 4 + N * N * 4;
    // Heads: masked-MSA logits [S, N, 23], the PAE map [N, N]; per block of rows, the pair rows widened to
    // float32 (bfloat16 activations), the 64-bin logits and the softmax's row offsets (8 bytes a row); kept
    // logits: the [N, N, 64] distogram, PAE logits and probabilities.
    size_t heads = S * N * 23 * 4 + hr * N * c_z * 4;
    if (pae) heads += n2 * 4 + hr * N * (64 * 4 + 8);
    if (keep_pair_logits) heads += n2 * 64 * 4 * (pae ? 3 : 1);
    return std::max(sm, heads);
}

size_t embedder_bytes(int64_t n_res, int64_t n_extra, int64_t chunk, int act_bytes) {
    const size_t N = n_res, E = n_extra, a = static_cast<size_t>(act_bytes);
    // Rows per block, as the embedders take them.
    auto rows = [&](size_t n, size_t row_floats) {
        return static_cast<size_t>(embed_block_rows(chunk, static_cast<int64_t>(n), static_cast<int64_t>(row_floats)));
    };
    const size_t tmp = a == 4 ? 0 : 1;  // bfloat16 outputs: each block is formed in float32 first
    // Input embedder: a block of the [N, N, 65] relative-position one-hot (+ the float32 pair rows).
    const size_t rp = rows(N, N * 65), relpos = rp * N * (65 + tmp * 128) * 4;
    // Recycling: per block of rows, the distance one-hot [rows, N, 15], LN(prev_pair) and the update rows.
    const size_t rr = rows(N, N * 128), recycling = rr * N * (15 + 128 + tmp * 128) * 4;
    // Extra-MSA embedder: its activations [E, N, 64] (which stay for the stack), a block of the [E, N, 25]
    // one-hot (+ float32 rows), and the iteration's copies of extra_msa (int64) and the deletion features.
    const size_t re = rows(E, N * 25), extra = E * N * 64 * a + re * N * (25 + tmp * 64) * 4 + E * N * 16;
    return std::max({recycling, extra, relpos});
}

size_t template_embedding_bytes(const BlockSizes& trunk, int64_t chunk, int64_t c_t, bool keep_update, bool multimer) {
    const size_t N = trunk.n_res, n2 = N * N, T = kPlannedTemplates, Ct = c_t, Cz = trunk.dims.c_z;
    const size_t act = multimer ? (2 * Ct + Cz) * n2 * 4 : T * n2 * Ct * 4;
    auto rows = [&](size_t row_floats) {
        return static_cast<size_t>(embed_block_rows(chunk, trunk.n_res, static_cast<int64_t>(row_floats)));
    };
    const size_t C = TemplatePairFeatConfig{}.channels();  // 88, the multimer's features too
    const size_t features = rows(N * C) * N * (C + (multimer ? Cz : 0)) * 4;
    // Pointwise attention per block of rows: q and o, T keys and values, the update, and the attention's
    // [T]-wide logits.
    const ModelDims md;
    const size_t H = md.template_pointwise_heads, hc = H * md.template_pointwise_head_dim;
    const size_t pw_row = (2 * T + 2) * hc + Cz + Ct;
    const size_t pointwise = multimer ? 0 : rows(N * pw_row) * N * (pw_row + H * T) * 4;
    // The template pair stack: the trunk's pair modules at the template widths.
    BlockSizes stack = trunk;
    stack.dims.c_z = c_t;
    stack.dims.pair_heads = md.template_pair_heads;
    stack.dims.pair_head_dim = md.template_pair_head_dim;
    stack.dims.tri_mul_dim = md.template_tri_mul_dim;
    stack.dims.transition_factor = md.template_transition_factor;
    stack.act_bytes = 4;
    size_t pair_ws = 0;
    for (const auto& [name, bytes] : block_workspace_bytes(stack, chunk))
        if (name == "triangle_attention" || name == "triangle_multiplication" || name == "pair_transition")
            pair_ws = std::max(pair_ws, bytes);
    return act + std::max({features, pointwise, pair_ws}) + (keep_update ? n2 * Cz * 4 : 0);
}

ModelMemoryPhases model_memory_phases(const ChunkPlan& trunk, int64_t n_res, int64_t n_seq, int64_t n_extra,
                                      int64_t evoformer_blocks, int64_t extra_msa_blocks, size_t fixed, bool pae,
                                      int threads, int act_bytes, bool keep_pair_logits) {
    const size_t params = param_bytes(evoformer_blocks, extra_msa_blocks);
    const size_t n2 = static_cast<size_t>(n_res) * n_res;
    const size_t stored_pair = n2 * 128 * static_cast<size_t>(act_bytes);
    // Each phase starts from an empty workspace arena (Model::predict trims it between phases); the BLAS
    // library's per-thread buffers (as in plan_blocks) stay through all of them.
    const size_t blas = static_cast<size_t>(std::max(1, threads)) * (size_t(24) << 20);
    ModelMemoryPhases ph;
    // Loading: the .npz is read whole, then its arrays are parsed, so parameters exist twice for a moment.
    ph.load = fixed + params;
    // Embedders: the pair being built and the recycled pair (both as the trunk stores them), and the
    // embedders' own buffers. (The template embedding is a phase of its own: plan_prediction.)
    ph.embedders = fixed + 2 * stored_pair + embedder_bytes(n_res, n_extra, trunk.chunk_size, act_bytes) + blas;
    ph.trunk = trunk.predicted_peak_bytes;
    // After the trunk: structure module and heads on the trunk's pair as it was stored.
    ph.heads =
        fixed + stored_pair + post_trunk_bytes(n_res, n_seq, 128, pae, trunk.chunk_size, keep_pair_logits) + blas;
    return ph;
}

namespace {
// The Evoformer and extra-MSA blocks of a model at these sizes, as the planner sees them.
std::pair<BlockSizes, BlockSizes> trunk_blocks(const ModelConfig& cfg, int64_t n_res, int64_t n_cluster_rows,
                                               int64_t n_extra, int threads, DType act) {
    BlockSizes evo, extra;
    evo.n_seq = n_cluster_rows + (cfg.preset.templates ? kPlannedTemplates : 0);  // template angle rows join the MSA
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

namespace {
// plan_blocks picks the fastest chunk size for the trunk alone; another phase (the template embedding's, the
// heads') may still be over budget at it, and fit at a smaller one. Returns `plan` if its whole-model peak fits
// (or nothing is to be fitted), else the fastest smaller chunk size whose peak does, else `plan` (whose peak
// the caller reports). phases_of(plan) gives a plan's phases.
template <class PhasesOf>
ChunkPlan fit_whole_model(const ChunkPlan& plan, const std::vector<BlockSizes>& blocks, size_t fixed, size_t budget,
                          int64_t forced_chunk, int64_t n_res, PhasesOf&& phases_of) {
    if (budget == 0 || forced_chunk >= 0 || phases_of(plan).peak() <= budget) return plan;
    for (int64_t c : chunk_candidates(n_res)) {
        if (c == 0 || (plan.chunk_size != 0 && c >= plan.chunk_size)) continue;  // not smaller than the trunk's
        ChunkPlan smaller = plan_blocks(blocks, fixed, budget, c);
        smaller.offload_msa = plan.offload_msa;
        if (phases_of(smaller).peak() <= budget) return smaller;
    }
    return plan;
}
}  // namespace

ChunkPlan plan_prediction(const ModelConfig& cfg, int64_t n_res, int64_t n_cluster_rows, int64_t n_extra,
                          const std::string& max_memory, int64_t chunk_size, size_t* predicted_peak, DType act,
                          int kept_iterations, ModelMemoryPhases* phases) {
    // Named copies, not a structured binding: clang 14 cannot capture those in the lambdas below.
    const std::pair<BlockSizes, BlockSizes> blocks =
        trunk_blocks(cfg, n_res, n_cluster_rows, n_extra, num_threads(), act);
    const BlockSizes &evo = blocks.first, &extra = blocks.second;
    // The main MSA activations are allocated (float32) before the extra-MSA stack runs, so they are resident
    // during it as well (counted twice during the Evoformer phase: conservative).
    const size_t msa = static_cast<size_t>(evo.n_seq) * n_res * cfg.c_m * 4;
    // Kept iterations (--save-outputs): the earlier iterations' pairs stay (each IterationRecord holds its
    // pair as the trunk stored it; the last iteration's is the pair every phase already counts).
    size_t kept = kept_iterations > 1 ? static_cast<size_t>(kept_iterations - 1) * n_res * n_res * cfg.c_z *
                                            static_cast<size_t>(evo.act_bytes)
                                      : 0;
    // Template models also keep each iteration's template pair update ([N, N, c_z] float32).
    if (cfg.preset.templates && kept_iterations > 0)
        kept += static_cast<size_t>(kept_iterations) * n_res * n_res * cfg.c_z * 4;
    const size_t fixed =
        model_fixed_bytes(n_res, evo.n_seq, n_extra, cfg.evoformer_blocks, cfg.extra_msa_blocks) + msa + kept;
    const size_t budget = max_memory.empty() ? 0 : parse_bytes(max_memory);
    auto phases_of = [&](const ChunkPlan& plan) {
        ModelMemoryPhases ph =
            model_memory_phases(plan, n_res, evo.n_seq, n_extra, cfg.evoformer_blocks, cfg.extra_msa_blocks, fixed,
                                cfg.preset.ptm, evo.threads, evo.act_bytes, kept_iterations > 0);
        if (cfg.preset.templates) {
            // Beside the template embedding: the float32 pair it updates and the BLAS library's per-thread
            // buffers (the extra-MSA activations are built after it).
            const size_t N = n_res;
            ph.templates =
                fixed + N * N * cfg.c_z * 4 +
                template_embedding_bytes(evo, plan.chunk_size, cfg.c_t > 0 ? cfg.c_t : 64, false, cfg.preset.multimer) +
                static_cast<size_t>(std::max(1, evo.threads)) * (size_t(24) << 20);
        }
        return ph;
    };
    const ChunkPlan plan = fit_whole_model(plan_blocks({evo, extra}, fixed, budget, chunk_size), {evo, extra}, fixed,
                                           budget, chunk_size, n_res, phases_of);
    const ModelMemoryPhases ph = phases_of(plan);
    const size_t peak = ph.peak();
    if (phases) *phases = ph;
    AXF_CHECK(budget == 0 || peak <= budget, "memory budget %s is too small: this prediction needs %s (%s phase)",
              format_bytes(budget).c_str(), format_bytes(peak).c_str(), ph.peak_phase());
    if (predicted_peak) *predicted_peak = peak;
    return plan;
}

ChunkPlan plan_device_model(const ModelConfig& cfg, int64_t n_res, int64_t n_cluster_rows, int64_t n_extra,
                            const std::string& max_memory, int64_t chunk_size, size_t* predicted_peak, DType act,
                            bool keep_pair_logits, ModelMemoryPhases* phases, const std::string& offload) {
    AXF_CHECK(offload == "auto" || offload == "on" || offload == "off", "--offload %s: expected auto, on or off",
              offload.c_str());
    // One thread (plan_blocks' 24 MiB per-thread BLAS term stays: conservative beside cuBLAS's own 32 MiB).
    std::pair<BlockSizes, BlockSizes> blocks = trunk_blocks(cfg, n_res, n_cluster_rows, n_extra, 1, act);
    BlockSizes &evo = blocks.first, &extra = blocks.second;
    for (BlockSizes* b : {&evo, &extra}) {
        b->cuda = true;
        b->bf16_gemm_copies = matmul_precision() == MatmulPrecision::Bf16;
    }
    const size_t N = static_cast<size_t>(n_res), S = static_cast<size_t>(evo.n_seq), E = static_cast<size_t>(n_extra);
    const size_t a = dtype_size(act);
    // Resident through every phase: every parameter (copied once per prediction), the masks, the float32 MSA
    // (built by the embedders, read by the structure module and the heads), cuBLAS's workspace, and 256 MiB of
    // device memory the module terms do not explain: on an H200 the full model at N=256 (128 MSA rows, 1024
    // extra) peaked ~150 MB above stack weights + activations + workspace + cuBLAS, while one Evoformer block
    // and the model at N=1024 stayed within them (docs/GPU.md).
    const size_t weights = param_bytes(cfg.evoformer_blocks, cfg.extra_msa_blocks);
    const size_t masks = (S * N + N * N + E * N) * 4;
    const size_t msa = S * N * static_cast<size_t>(cfg.c_m) * 4;
    const size_t fixed = weights + masks + msa + kCublasWorkspaceBytes + (size_t(256) << 20);
    size_t budget = 0;
    if (!max_memory.empty()) {
        budget = parse_bytes(max_memory);
    } else {
        size_t free_bytes = 0, total = 0;
        device_memory_info(&free_bytes, &total);
        budget = free_bytes / 10 * 9;
    }
    // Parked, the MSA leaves the extra-MSA stack's peak; the Evoformer's activations count it themselves (the
    // fixed bytes with the MSA count it twice there: conservative).
    auto fits = [&](size_t fixed_bytes, ChunkPlan* out) {
        try {
            *out = plan_blocks({evo, extra}, fixed_bytes, budget, chunk_size);
            return true;
        } catch (const Error&) {
            return false;
        }
    };
    ChunkPlan plan, parked;
    const bool kept_fits = offload != "on" && fits(fixed, &plan);
    const bool parked_fits = offload != "off" && fits(fixed - msa, &parked);
    // "auto": park when only parking fits, or when it fits a faster (larger; 0 = unchunked) chunk size.
    auto faster = [](int64_t a, int64_t b) { return (a == 0 ? INT64_MAX : a) > (b == 0 ? INT64_MAX : b); };
    if (parked_fits && (!kept_fits || faster(parked.chunk_size, plan.chunk_size))) {
        plan = parked;
        plan.offload_msa = true;
    } else if (!kept_fits) {
        plan = plan_blocks({evo, extra}, offload == "on" ? fixed - msa : fixed, budget, chunk_size);  // the error
    }
    const size_t stored_pair = N * N * static_cast<size_t>(cfg.c_z) * a;
    auto phases_of = [&](const ChunkPlan& p) {
        ModelMemoryPhases ph;
        ph.load = 0;  // parameters and features are read on the host
        // Embedders: the pair being built and the recycled pair, their blocks, and the iteration's msa_feat.
        ph.embedders = fixed + 2 * stored_pair + embedder_bytes(n_res, n_extra, p.chunk_size, static_cast<int>(a)) +
                       S * N * 49 * 4;
        ph.trunk = p.predicted_peak_bytes;
        // Structure module and heads on the stored pair; the kept [N, N, 64] head tensors are formed on the device.
        ph.heads = fixed + stored_pair +
                   post_trunk_bytes(n_res, evo.n_seq, cfg.c_z, cfg.preset.ptm, p.chunk_size, keep_pair_logits);
        if (cfg.preset.templates)  // the float32 pair and the template embedding (the extra MSA is embedded after it)
            ph.templates = fixed + N * N * cfg.c_z * 4 +
                           template_embedding_bytes(evo, p.chunk_size, cfg.c_t > 0 ? cfg.c_t : 64, keep_pair_logits,
                                                    cfg.preset.multimer);
        return ph;
    };
    plan = fit_whole_model(plan, {evo, extra}, plan.offload_msa ? fixed - msa : fixed, budget, chunk_size, n_res,
                           phases_of);
    const ModelMemoryPhases ph = phases_of(plan);
    const size_t peak = ph.peak();
    AXF_CHECK(peak <= budget, "GPU memory budget %s is too small: this prediction needs %s on the device (%s phase)",
              format_bytes(budget).c_str(), format_bytes(peak).c_str(), ph.peak_phase());
    if (phases) *phases = ph;
    if (predicted_peak) *predicted_peak = peak;
    return plan;
}

}  // namespace axfold
