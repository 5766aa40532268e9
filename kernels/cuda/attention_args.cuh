// The attention core's operands as kernel arguments (pointers and element strides), shared by the fused kernels
// of attention.cu (CUDA cores) and flash_attention.cu (tensor cores). Shapes: q and out [B, Q, H, C], k and v
// [B, K, H, C] with contiguous last dims; mask [B, K] and bias [H, Q, K] optional, any strides.
#pragma once

#include <cstdint>

#include "kernels/tensor.h"

namespace axfold::cuda {

struct AttentionArgs {
    const float *q, *k, *v, *mask, *bias;
    float* out;
    int64_t qb, qq, qh, kb, kk, kh, vb, vk, vh, ob, oq, oh;  // element strides (batch, row, head)
    int64_t mb, mk, bh, bq, bk;                            // mask [B, K], bias [H, Q, K] strides
    int64_t B, Q, H, K;
    int C;
    float scale, inf;
};

inline AttentionArgs attention_args(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                                    const Tensor& bias, float scale, float inf, const Tensor& out) {
    AttentionArgs a{};
    a.q = q.f32();
    a.k = k.f32();
    a.v = v.f32();
    a.out = out.f32();
    a.mask = mask.defined() ? mask.f32() : nullptr;
    a.bias = bias.defined() ? bias.f32() : nullptr;
    a.qb = q.stride(0), a.qq = q.stride(1), a.qh = q.stride(2);
    a.kb = k.stride(0), a.kk = k.stride(1), a.kh = k.stride(2);
    a.vb = v.stride(0), a.vk = v.stride(1), a.vh = v.stride(2);
    a.ob = out.stride(0), a.oq = out.stride(1), a.oh = out.stride(2);
    if (a.mask) a.mb = mask.stride(0), a.mk = mask.stride(1);
    if (a.bias) a.bh = bias.stride(0), a.bq = bias.stride(1), a.bk = bias.stride(2);
    a.B = q.size(0), a.Q = q.size(1), a.H = q.size(2), a.K = k.size(1);
    a.C = static_cast<int>(q.size(3));
    a.scale = scale;
    a.inf = inf;
    return a;
}

}  // namespace axfold::cuda
