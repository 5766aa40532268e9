// Tensor-core flash attention (TF32 WMMA, fp32 accumulation): the fused attention of `attention` when
// AXFOLD_FUSED_ATTENTION=1 and the GEMMs run in reduced precision (--precision tf32 or bf16), where rounding
// the operands is already the op's contract. The logits never reach memory.
//
// A block of 2 warps takes 32 query rows of one (batch, head); each warp owns 16 rows. Per tile of 32 keys:
// K and V tiles go to shared memory (zero-padded to the head width kC in {16, 32, 64}, and beyond the last key);
// each warp forms its 16 x 32 scores with WMMA (q row-major, K^T as a column-major B operand), then an online
// softmax over them, a lane per key: the logits in the CPU op's order with explicit rounding (scale * q.k, +
// bias, + inf * (mask - 1)), the row maximum and sum by warp reductions, the running output rescaled; then
// O += P V with WMMA, O kept in shared memory (the accumulator fragments' layout is opaque, so the per-row
// rescale happens there). Operands are rounded to TF32 (cvt.rna: to nearest, ties away from zero, where the CPU's
// emulation rounds ties to even) as they enter the tensor cores, the probabilities unnormalised (and the row
// sums add the rounded values); the division by the row sum comes last. Under --precision bf16 (kBf16) q, K, V
// and the probabilities are rounded to bfloat16 instead (to nearest-even, as the CPU's emulation and cuBLAS's
// operand copies round them), when they are stored in shared memory; bfloat16 values are exact in TF32, so the
// tensor cores' TF32 conversion then changes nothing.
#include <mma.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/cuda/attention_args.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/ops_cuda.h"
#include "kernels/cuda/strided.cuh"

namespace axfold::cuda {

namespace {

using namespace nvcuda;

constexpr int kRowsPerWarp = 16;
constexpr int kWarps = 2;
constexpr int kBlockRows = kRowsPerWarp * kWarps;  // query rows per block
constexpr int kKeys = 32;                           // keys per tile (one per lane in the softmax)
constexpr int kScoreLd = kKeys + 4;                 // shared-memory row pitch of the scores (a multiple of 4)

using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major>;
using FragBCol = wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::col_major>;
using FragBRow = wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major>;
using FragAcc = wmma::fragment<wmma::accumulator, 16, 16, 8, float>;

template <class Frag> __device__ __forceinline__ void to_tf32(Frag& f) {
#pragma unroll
    for (int t = 0; t < f.num_elements; ++t) f.x[t] = wmma::__float_to_tf32(f.x[t]);
}

// An operand as it is stored for the tensor cores: bfloat16-rounded under kBf16, else as it is (the fragments
// round it to TF32).
template <bool kBf16> __device__ __forceinline__ float operand(float x) {
    if constexpr (kBf16)
        return __uint_as_float(static_cast<uint32_t>(bf16_round(x)) << 16);
    else
        return x;
}

template <int kC, bool kBf16>
__global__ void __launch_bounds__(kWarps * 32) flash_attention_tc_kernel(AttentionArgs a, int64_t q_tiles) {
    constexpr int ld = kC + 4;  // row pitch of q, K, V and O in shared memory (a multiple of 4 floats)
    __shared__ __align__(32) float sQ[kBlockRows * ld];
    __shared__ __align__(32) float sK[kKeys * ld];
    __shared__ __align__(32) float sV[kKeys * ld];
    __shared__ __align__(32) float sO[kBlockRows * ld];
    __shared__ __align__(32) float sS[kBlockRows * kScoreLd];
    __shared__ float sM[kBlockRows], sL[kBlockRows];  // each row's running maximum and sum

    const int tid = threadIdx.x, warp = tid / 32, lane = tid & 31;
    const int64_t tile = blockIdx.x % q_tiles, bh = blockIdx.x / q_tiles;
    const int64_t h = bh % a.H, b = bh / a.H, q0 = tile * kBlockRows;
    const float* kbase = a.k + b * a.kb + h * a.kh;
    const float* vbase = a.v + b * a.vb + h * a.vh;

    for (int e = tid; e < kBlockRows * kC; e += kWarps * 32) {
        const int r = e / kC, c = e % kC;
        const int64_t i = q0 + r;
        sQ[r * ld + c] = (i < a.Q && c < a.C) ? operand<kBf16>(a.q[b * a.qb + i * a.qq + h * a.qh + c]) : 0.f;
        sO[r * ld + c] = 0.f;
    }
    if (tid < kBlockRows) {
        sM[tid] = -INFINITY;
        sL[tid] = 0.f;
    }
    float* sSw = sS + warp * kRowsPerWarp * kScoreLd;
    float* sOw = sO + warp * kRowsPerWarp * ld;
    const float* sQw = sQ + warp * kRowsPerWarp * ld;

    for (int64_t j0 = 0; j0 < a.K; j0 += kKeys) {
        __syncthreads();  // the previous tile's K and V are no longer read (and sQ, sO are written, first time)
        for (int e = tid; e < kKeys * kC; e += kWarps * 32) {
            const int r = e / kC, c = e % kC;
            const int64_t j = j0 + r;
            const bool in = j < a.K && c < a.C;
            sK[r * ld + c] = in ? operand<kBf16>(kbase[j * a.kk + c]) : 0.f;
            sV[r * ld + c] = in ? operand<kBf16>(vbase[j * a.vk + c]) : 0.f;
        }
        __syncthreads();
        // Scores S = q K^T for this warp's 16 rows and the tile's 32 keys.
#pragma unroll
        for (int nt = 0; nt < kKeys / 16; ++nt) {
            FragAcc acc;
            wmma::fill_fragment(acc, 0.f);
#pragma unroll
            for (int kc = 0; kc < kC / 8; ++kc) {
                FragA fa;
                FragBCol fb;
                wmma::load_matrix_sync(fa, sQw + kc * 8, ld);
                wmma::load_matrix_sync(fb, sK + nt * 16 * ld + kc * 8, ld);
                to_tf32(fa);
                to_tf32(fb);
                wmma::mma_sync(acc, fa, fb, acc);
            }
            wmma::store_matrix_sync(sSw + nt * 16, acc, kScoreLd, wmma::mem_row_major);
        }
        __syncwarp();
        // Online softmax, a lane per key, row by row.
        const int64_t j = j0 + lane;
        const bool key = j < a.K;
        const float mask_term = (key && a.mask) ? __fmul_rn(a.inf, a.mask[b * a.mb + j * a.mk] - 1.f) : 0.f;
#pragma unroll 2
        for (int r = 0; r < kRowsPerWarp; ++r) {
            const int row = warp * kRowsPerWarp + r;
            const int64_t i = q0 + row;
            float logit = -INFINITY;
            if (key) {
                logit = __fmul_rn(a.scale, sSw[r * kScoreLd + lane]);
                if (a.bias && i < a.Q) logit = __fadd_rn(logit, a.bias[h * a.bh + i * a.bq + j * a.bk]);
                if (a.mask) logit = __fadd_rn(logit, mask_term);
            }
            const float m_old = sM[row];
            const float m_new = fmaxf(m_old, warp_max(logit));
            // -inf while every logit so far is -inf (a -inf bias): then nothing has accumulated and p is 0.
            const float m_use = m_new == -INFINITY ? 0.f : m_new;
            const float corr = expf(m_old - m_use);  // 0 on the first tile
            // Rounded here as the tensor cores will read it (TF32, or bfloat16), so the normaliser sums the same
            // weights.
            float p = 0.f;
            if (key) {
                const float e = expf(logit - m_use);
                p = kBf16 ? operand<true>(e) : wmma::__float_to_tf32(e);
            }
            sSw[r * kScoreLd + lane] = p;
            const float l_new = sL[row] * corr + warp_sum(p);  // every lane has the same values
            __syncwarp();  // every lane has read sM[row] and sL[row]
            if (lane == 0) {
                sM[row] = m_new;
                sL[row] = l_new;
            }
            for (int c = lane; c < kC; c += 32) sOw[r * ld + c] *= corr;
        }
        __syncwarp();
        // O += P V.
#pragma unroll
        for (int nt = 0; nt < kC / 16; ++nt) {
            FragAcc acc;
            wmma::load_matrix_sync(acc, sOw + nt * 16, ld, wmma::mem_row_major);
#pragma unroll
            for (int kc = 0; kc < kKeys / 8; ++kc) {
                FragA fa;
                FragBRow fb;
                wmma::load_matrix_sync(fa, sSw + kc * 8, kScoreLd);  // already TF32 values
                wmma::load_matrix_sync(fb, sV + kc * 8 * ld + nt * 16, ld);
                to_tf32(fb);
                wmma::mma_sync(acc, fa, fb, acc);
            }
            wmma::store_matrix_sync(sOw + nt * 16, acc, ld, wmma::mem_row_major);
        }
        __syncwarp();
    }
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
        const int64_t i = q0 + warp * kRowsPerWarp + r;
        if (i >= a.Q) continue;  // warp-uniform
        float* orow = a.out + b * a.ob + i * a.oq + h * a.oh;
        const float l = sL[warp * kRowsPerWarp + r];
        for (int c = lane; c < a.C; c += 32) orow[c] = sOw[r * ld + c] / l;
    }
}

}  // namespace

void attention_flash_tc(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const Tensor& bias,
                        float scale, float inf, const Tensor& out) {
    const int64_t C = q.size(3);
    AXF_CHECK(C >= 1 && C <= 64, "tensor-core attention: head width %lld not in 1..64", (long long)C);
    for (const Tensor* t : {&q, &k, &v, &out})
        AXF_CHECK(t->stride(3) == 1 || C == 1, "tensor-core attention: %s needs a contiguous last dim",
                  t->desc().c_str());
    AXF_CHECK(k.size(1) > 0, "tensor-core attention: no keys (the caller handles K = 0)");
    const AttentionArgs a = attention_args(q, k, v, mask, bias, scale, inf, out);
    const int64_t q_tiles = (a.Q + kBlockRows - 1) / kBlockRows;
    const int64_t blocks = a.B * a.H * q_tiles;
    if (blocks == 0) return;
    AXF_CHECK(blocks <= INT32_MAX, "tensor-core attention: %lld blocks exceed the CUDA grid", (long long)blocks);
    const unsigned grid = static_cast<unsigned>(blocks);
    const bool bf16 = matmul_precision() == MatmulPrecision::Bf16;
    auto launch = [&](auto kernel) {
        kernel<<<grid, kWarps * 32>>>(a, q_tiles);
        AXF_CUDA_LAUNCH();
    };
    if (C <= 16)
        bf16 ? launch(flash_attention_tc_kernel<16, true>) : launch(flash_attention_tc_kernel<16, false>);
    else if (C <= 32)
        bf16 ? launch(flash_attention_tc_kernel<32, true>) : launch(flash_attention_tc_kernel<32, false>);
    else
        bf16 ? launch(flash_attention_tc_kernel<64, true>) : launch(flash_attention_tc_kernel<64, false>);
}

}  // namespace axfold::cuda
