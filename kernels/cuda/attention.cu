// Attention core on CUDA, two paths.
//
// Unfused (default): per chunk of the batch, logits = q k^T by cuBLAS (batched over (b, h)), the fused masked
// softmax kernel (scale, bias[h,q,k], inf * (mask[b,k] - 1)), then out = w v by cuBLAS, writing straight
// into out's [B, Q, H, C] layout. The logits live in the workspace; the batch is chunked so that they stay
// under kLogitsBudget floats (one batch element at least).
//
// Fused, when AXFOLD_FUSED_ATTENTION=1 and C <= 64: with TF32 or bf16 GEMMs the tensor-core flash kernel
// (flash_attention.cu); with fp32 GEMMs attention_fused: one warp per (b, h, query row),
// lanes striding over the keys with an online softmax (running max, sum and weighted value sum per lane,
// merged across the warp at the end), so the logits never reach memory. Each lane keeps q and its value
// accumulator in registers (C each). Logits are formed as in the CPU op: scale * (q.k) + bias + inf * (mask - 1).
// Opt-in: the fp32 kernel passed its parity tests on an H200 but is 7-12x slower than the unfused path (CUDA
// cores), and the flash kernel has not run on a GPU yet (docs/GPU.md).
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/cuda/attention_args.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/ops_cuda.h"
#include "kernels/cuda/strided.cuh"

namespace axfold::cuda {

namespace {
constexpr int64_t kLogitsBudget = int64_t(64) << 20;  // floats (256 MiB)

constexpr int kFusedWarps = 8;

template <int kC> __global__ void attention_fused_kernel(AttentionArgs a) {
    const int64_t w = static_cast<int64_t>(blockIdx.x) * kFusedWarps + threadIdx.x / 32;
    const int lane = threadIdx.x & 31;
    if (w >= a.B * a.H * a.Q) return;  // warp-uniform
    const int64_t i = w % a.Q, h = (w / a.Q) % a.H, b = w / (a.Q * a.H);
    const float* qr = a.q + b * a.qb + i * a.qq + h * a.qh;
    float qv[kC], acc[kC];
#pragma unroll
    for (int c = 0; c < kC; ++c) {
        qv[c] = c < a.C ? qr[c] : 0.f;
        acc[c] = 0.f;
    }
    float m = -INFINITY, l = 0.f;
    const float* kbase = a.k + b * a.kb + h * a.kh;
    const float* vbase = a.v + b * a.vb + h * a.vh;
    for (int64_t j = lane; j < a.K; j += 32) {
        const float* kr = kbase + j * a.kk;
        float dot = 0.f;
#pragma unroll
        for (int c = 0; c < kC; ++c)
            if (c < a.C) dot += qv[c] * kr[c];
        // Explicit rounding in the CPU's order, as in the softmax kernel: next to -1e9 (ulp 64) a contracted
        // FMA would move masked logits by 64.
        float logit = __fmul_rn(a.scale, dot);
        if (a.bias) logit = __fadd_rn(logit, a.bias[h * a.bh + i * a.bq + j * a.bk]);
        if (a.mask) logit = __fadd_rn(logit, __fmul_rn(a.inf, a.mask[b * a.mb + j * a.mk] - 1.f));
        if (logit > m) {  // rescale what was accumulated under the old maximum
            const float corr = expf(m - logit);
            l *= corr;
#pragma unroll
            for (int c = 0; c < kC; ++c) acc[c] *= corr;
            m = logit;
        }
        // A lane whose logits so far are all -inf (a -inf bias) has m = -inf: its weight is 0, not exp(NaN).
        const float p = logit == -INFINITY ? 0.f : expf(logit - m);
        l += p;
        const float* vr = vbase + j * a.vk;
#pragma unroll
        for (int c = 0; c < kC; ++c)
            if (c < a.C) acc[c] += p * vr[c];
    }
    // Merge the lanes: each lane's sums are relative to its own maximum.
    const float mx = warp_max(m);
    const float f = m == -INFINITY ? 0.f : expf(m - mx);
    const float total = warp_sum(l * f);
    float* orow = a.out + b * a.ob + i * a.oq + h * a.oh;
#pragma unroll
    for (int c = 0; c < kC; ++c) {
        const float s = warp_sum(acc[c] * f);
        if (lane == 0 && c < a.C) orow[c] = s / total;
    }
}
}  // namespace

void attention_fused(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const Tensor& bias,
                     float scale, float inf, const Tensor& out) {
    const int64_t C = q.size(3);
    AXF_CHECK(C >= 1 && C <= 64, "fused attention: head width %lld not in 1..64", (long long)C);
    const AttentionArgs a = attention_args(q, k, v, mask, bias, scale, inf, out);
    const int64_t warps = a.B * a.H * a.Q;
    if (warps == 0) return;
    const int64_t blocks = (warps + kFusedWarps - 1) / kFusedWarps;
    AXF_CHECK(blocks <= INT32_MAX, "fused attention: %lld query rows exceed the CUDA grid", (long long)warps);
    const unsigned grid = static_cast<unsigned>(blocks);
    if (C <= 8)
        attention_fused_kernel<8><<<grid, kFusedWarps * 32>>>(a);
    else if (C <= 16)
        attention_fused_kernel<16><<<grid, kFusedWarps * 32>>>(a);
    else if (C <= 32)
        attention_fused_kernel<32><<<grid, kFusedWarps * 32>>>(a);
    else
        attention_fused_kernel<64><<<grid, kFusedWarps * 32>>>(a);
    AXF_CUDA_LAUNCH();
}

void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const Tensor& bias,
               float scale, float inf, const Tensor& out, Workspace& ws) {
    AXF_CHECK(ws.device() == Device::CUDA, "attention on CUDA needs a CUDA workspace, got a %s one",
              device_name(ws.device()));
    const int64_t B = q.size(0), Q = q.size(1), H = q.size(2), K = k.size(1);
    if (out.numel() == 0) return;
    WorkspaceScope scope(ws);
    // Every batch element reads the whole bias, so a permuted view would make each of those reads a strided
    // gather: copy it once instead. (The model's modules build their biases contiguous; callers of the op
    // need not.)
    Tensor bias_c = bias;
    if (bias.defined() && B > 1 && !bias.is_contiguous()) {
        bias_c = ws.alloc({H, Q, K});
        cuda::copy(bias_c, bias);
    }
    // A transposed mask (the attentions along the other axis read it so) would keep every softmax row of the
    // unfused path off the 16-byte loads, which need unit stride: a contiguous [B, K] copy costs B K floats.
    Tensor mask_c = mask;
    if (mask.defined() && mask.stride(1) != 1 && K > 1) {
        mask_c = ws.alloc({B, K});
        cuda::copy(mask_c, mask);
    }
    if (fused_attention_requested() && q.size(3) <= 64 && K > 0) {
        if (matmul_precision() == MatmulPrecision::Fp32)
            attention_fused(q, k, v, mask_c, bias_c, scale, inf, out);  // CUDA cores, fp32 throughout
        else
            attention_flash_tc(q, k, v, mask_c, bias_c, scale, inf, out);  // tensor cores, TF32 operands
        return;
    }
    const int64_t per_batch = std::max<int64_t>(H * Q * K, 1);
    const int64_t chunk = std::clamp<int64_t>(kLogitsBudget / per_batch, 1, B);
    Tensor logits = ws.alloc({chunk, H, Q, K});  // [chunk, H, Q, K] contiguous
    for (int64_t b0 = 0; b0 < B; b0 += chunk) {
        const int64_t nb = std::min(chunk, B - b0);
        Tensor L = logits.slice(0, 0, nb);                          // [nb, H, Q, K]
        Tensor qb = q.slice(0, b0, b0 + nb).permute({0, 2, 1, 3});  // [nb, H, Q, C] row-major
        Tensor kt = k.slice(0, b0, b0 + nb).permute({0, 2, 3, 1});  // [nb, H, C, K] column-major
        Tensor vb = v.slice(0, b0, b0 + nb).permute({0, 2, 1, 3});  // [nb, H, K, C] row-major
        Tensor ob = out.slice(0, b0, b0 + nb).permute({0, 2, 1, 3});  // [nb, H, Q, C] row-major
        Tensor m, bb;
        if (mask_c.defined()) m = mask_c.slice(0, b0, b0 + nb).unsqueeze(1).unsqueeze(1).expand({nb, H, Q, K});
        if (bias_c.defined()) bb = bias_c.unsqueeze(0).expand({nb, H, Q, K});
        cuda::matmul(qb, kt, L, 1.f, 0.f);
        if (L.numel()) cuda::softmax(L, scale, m, bb, inf);
        cuda::matmul(L, vb, ob, 1.f, 0.f);
    }
}

}  // namespace axfold::cuda
