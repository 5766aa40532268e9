#include "evoformer/memory_plan.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

#include "kernels/error.h"

namespace axfold {

namespace {

constexpr size_t kF = sizeof(float);
// Workspace allocations are rounded up to 64 bytes.
size_t al(int64_t floats) { return (static_cast<size_t>(std::max<int64_t>(floats, 1)) * kF + 63) / 64 * 64; }
int64_t chunk_of(int64_t chunk, int64_t n) { return chunk > 0 && chunk < n ? chunk : n; }
// The CUDA attention's logits chunk, in floats (kernels/cuda/attention.cu: kLogitsBudget).
constexpr int64_t kCudaLogits = int64_t(64) << 20;

}  // namespace

std::vector<std::pair<std::string, size_t>> block_workspace_bytes(const BlockSizes& b, int64_t chunk) {
    const EvoformerDims& d = b.dims;
    const int64_t S = b.n_seq, N = b.n_res, T = std::max(1, b.threads);
    const int64_t cm = d.c_m, cz = d.c_z;
    std::vector<std::pair<std::string, size_t>> r;
    // Pair bias [H, N, N] plus one chunk of LN(z) rows and their projection. (The bias is built contiguous,
    // so the CUDA attention's copy of a permuted bias never happens here.)
    auto pair_bias = [&](int64_t H) {
        const int64_t ci = chunk_of(chunk, N);
        return al(H * N * N) + al(ci * N * cz) + al(ci * N * H);
    };
    // One chunk of gated self-attention: x, q, k, v, o (+ gate) and the logits: each thread's rows on the CPU,
    // one chunk of up to 64 Mi floats on CUDA (kernels/cuda/attention.cu), where a transposed mask is also
    // copied contiguous ([rows, keys]). (The output projection goes through x where it cannot be written
    // straight into the activation.)
    auto attention = [&](int64_t nb, int64_t other, int64_t cin, int64_t hc, int64_t H) {
        const int64_t bc = chunk_of(chunk, nb);
        const int64_t logits = b.cuda ? std::min(bc * H * other * other, std::max(H * other * other, kCudaLogits))
                                      : T * other * other;
        return al(bc * other * cin) + 5 * al(bc * other * hc) + al(logits) + (b.cuda ? al(bc * other) : 0);
    };
    const int64_t msa_hc = d.msa_heads * d.msa_head_dim, pair_hc = d.pair_heads * d.pair_head_dim;
    r.push_back({"msa_row_attention", pair_bias(d.msa_heads) + attention(S, N, cm, msa_hc, d.msa_heads)});
    if (b.is_extra_msa) {
        const int64_t bc = chunk_of(chunk, N), gh = d.global_heads * d.global_head_dim;
        // x, q_avg, ones, msum, q, k, v, logits, wavg, gate (the update goes through x)
        const size_t s = al(S * bc * cm) + al(bc * cm) + al(S) + al(bc) + al(bc * gh) +
                         2 * al(S * bc * d.global_head_dim) + al(bc * d.global_heads * S) + al(bc * gh) +
                         al(S * bc * gh);
        r.push_back({"msa_column_global_attention", s});
    } else {
        r.push_back({"msa_column_attention", attention(N, S, cm, msa_hc, d.msa_heads)});
    }
    {
        const int64_t rows = chunk > 0 ? std::min(S, chunk) * N : S * N;
        r.push_back({"msa_transition", al(rows * cm) + al(rows * d.transition_factor * cm)});
    }
    {
        const int64_t c = d.opm_dim;
        int64_t ci = chunk > 0 ? chunk : std::max<int64_t>(1, (int64_t(1) << 23) / std::max<int64_t>(1, N * c * c));
        ci = std::min(ci, N);
        const int64_t sc = chunk > 0 ? std::min(S, chunk) : S;
        const size_t proj = al(sc * N * cm);  // normalised rows while projecting
        const size_t outer = al(N * N) + 2 * al(ci * c * N * c) + al(ci * N * cz);
        size_t s = 2 * al(S * N * c) + std::max(proj, outer);
        r.push_back({"outer_product_mean", s});
    }
    {
        const int64_t C = d.tri_mul_dim, M = N * N;
        const int64_t rows = chunk > 0 ? std::min(M, chunk * N) : M;
        const int64_t chans = chunk > 0 ? std::clamp<int64_t>(C * chunk / N, 1, C) : C;
        const size_t proj = 2 * al(chans * M) + al(rows * cz) + al(chans * rows);
        const size_t outp = 3 * al(rows * cz);
        r.push_back({"triangle_multiplication", al(C * M) + std::max(proj, outp)});
    }
    r.push_back({"triangle_attention", pair_bias(d.pair_heads) + attention(N, N, cz, pair_hc, d.pair_heads)});
    {
        const int64_t rows = chunk > 0 ? std::min(N, chunk) * N : N * N;
        r.push_back({"pair_transition", al(rows * cz) + al(rows * d.transition_factor * cz)});
    }
    return r;
}

size_t block_gemm_copy_bytes(const BlockSizes& b, int64_t chunk) {
    if (!b.bf16_gemm_copies) return 0;
    const EvoformerDims& d = b.dims;
    const int64_t S = b.n_seq, N = b.n_res, cm = d.c_m, cz = d.c_z, M = N * N;
    const int64_t hc = std::max(d.msa_heads * d.msa_head_dim, d.pair_heads * d.pair_head_dim);
    // The largest operands of each module's GEMMs, in elements (weights are small): attention projections'
    // input rows and the value GEMM's probabilities (one logits chunk); the transitions' hidden rows; the outer
    // product's operands and its projection's input; triangle multiplication's two channel-major operands.
    const int64_t bs = chunk_of(chunk, S), bn = chunk_of(chunk, N);
    auto logits = [](int64_t B, int64_t H, int64_t L) { return std::min(B * H * L * L, std::max(H * L * L, kCudaLogits)); };
    int64_t e = std::max({bs * N * std::max(cm, hc), bn * S * std::max(cm, hc), bn * N * std::max(cz, hc),
                          logits(bs, d.msa_heads, N), logits(bn, d.msa_heads, S), logits(bn, d.pair_heads, N)});
    const int64_t srows = chunk > 0 ? std::min(S, chunk) * N : S * N, prows = chunk > 0 ? std::min(N, chunk) * N : M;
    e = std::max({e, srows * d.transition_factor * cm, prows * d.transition_factor * cz});
    const int64_t c = d.opm_dim;
    int64_t ci = chunk > 0 ? chunk : std::max<int64_t>(1, (int64_t(1) << 23) / std::max<int64_t>(1, N * c * c));
    ci = std::min(ci, N);
    e = std::max({e, ci * c * S + S * N * c, ci * N * c * c});
    const int64_t chans = chunk > 0 ? std::clamp<int64_t>(d.tri_mul_dim * chunk / N, 1, d.tri_mul_dim) : d.tri_mul_dim;
    e = std::max(e, 2 * chans * M);
    return static_cast<size_t>(e) * 2;
}

size_t block_peak_workspace_bytes(const BlockSizes& b, int64_t chunk) {
    size_t m = 0;
    for (auto& [name, bytes] : block_workspace_bytes(b, chunk)) m = std::max(m, bytes);
    return m;
}

size_t block_activation_bytes(const BlockSizes& b) {
    return (static_cast<size_t>(b.n_seq) * b.n_res * b.dims.c_m + static_cast<size_t>(b.n_res) * b.n_res * b.dims.c_z) *
           static_cast<size_t>(b.act_bytes);
}

std::vector<int64_t> chunk_candidates(int64_t n) {
    std::vector<int64_t> c = {0};
    int64_t p = 1;
    while (p * 2 < n) p *= 2;
    for (; p >= 1; p /= 2) c.push_back(p);
    return c;
}

ChunkPlan plan_blocks(const std::vector<BlockSizes>& blocks, size_t fixed_bytes, size_t budget, int64_t forced_chunk) {
    AXF_CHECK(!blocks.empty(), "plan: no blocks");
    int64_t n = 0;
    size_t acts = 0;
    for (const auto& b : blocks) {
        n = std::max({n, b.n_res, b.n_seq});
        acts = std::max(acts, block_activation_bytes(b));
    }
    // The BLAS library's per-thread packing buffers, allocated by the first GEMMs (measured: ~20 MB per
    // thread with OpenBLAS; benchmarks underpredicted their peak by 41-44 MB on 2 threads without it).
    const size_t blas_bytes = static_cast<size_t>(std::max(1, blocks.front().threads)) * (size_t(24) << 20);
    auto make = [&](int64_t chunk) {
        ChunkPlan p;
        p.chunk_size = chunk;
        size_t copies = 0;  // bf16 GEMM operand copies on CUDA: from the device pool, beside the arena
        for (const auto& b : blocks) copies = std::max(copies, block_gemm_copy_bytes(b, chunk));
        for (const auto& b : blocks) {
            auto mods = block_workspace_bytes(b, chunk);
            for (auto& m : mods) {
                if (b.is_extra_msa) m.first = "extra_msa/" + m.first;
                p.modules.push_back(m);
                p.predicted_workspace_bytes = std::max(p.predicted_workspace_bytes, m.second);
            }
        }
        p.predicted_peak_bytes = fixed_bytes + acts + p.predicted_workspace_bytes + blas_bytes + copies;
        return p;
    };
    if (forced_chunk >= 0) return make(forced_chunk);
    std::vector<int64_t> cands = chunk_candidates(n);
    if (budget == 0) return make(0);
    ChunkPlan smallest;
    for (int64_t c : cands) {
        ChunkPlan p = make(c);
        if (p.predicted_peak_bytes <= budget) return p;
        smallest = p;
    }
    AXF_FAIL("memory budget %s is too small: the smallest plan (chunk size %lld) needs %s; pass --max-memory %s or more",
             format_bytes(budget).c_str(), (long long)smallest.chunk_size,
             format_bytes(smallest.predicted_peak_bytes).c_str(), format_bytes(smallest.predicted_peak_bytes).c_str());
}

size_t parse_bytes(const std::string& s) {
    AXF_CHECK(!s.empty(), "empty memory size");
    size_t i = 0;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
    AXF_CHECK(i > 0, "memory size '%s': expected a number with an optional K, M, G or T suffix", s.c_str());
    double v = std::stod(s.substr(0, i));
    std::string suf = s.substr(i);
    if (!suf.empty() && (suf.back() == 'B' || suf.back() == 'b')) suf.pop_back();
    if (!suf.empty() && (suf.back() == 'i')) suf.pop_back();
    double mult = 1;
    if (suf == "K" || suf == "k") mult = 1024.0;
    else if (suf == "M" || suf == "m") mult = 1024.0 * 1024;
    else if (suf == "G" || suf == "g") mult = 1024.0 * 1024 * 1024;
    else if (suf == "T" || suf == "t") mult = 1024.0 * 1024 * 1024 * 1024;
    else AXF_CHECK(suf.empty(), "memory size '%s': unknown suffix '%s' (use K, M, G or T)", s.c_str(), suf.c_str());
    return static_cast<size_t>(v * mult);
}

std::string format_bytes(size_t b) {
    char buf[64];
    if (b >= (size_t(1) << 30))
        std::snprintf(buf, sizeof buf, "%.2fG", b / double(size_t(1) << 30));
    else
        std::snprintf(buf, sizeof buf, "%.1fM", b / double(size_t(1) << 20));
    return buf;
}

}  // namespace axfold
