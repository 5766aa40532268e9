// Gated multi-head self-attention over one axis of a 3-D activation (AF2 Attention, the core of
// Algorithms 7, 8, 13 and 14), with the input layer norm, computed without transposing the activation
// in memory and in chunks of the batch axis (ctx.chunk_size) so its temporaries stay bounded.
#pragma once

#include "evoformer/weights.h"
#include "kernels/ops.h"

namespace axfold {

// act [A0, A1, c_in] (raw; `norm` is applied per chunk). Attends along axis 1 (each row of A0 is a batch
// element), or along axis 0 when `along_axis0` (each column of A1 is one).
// mask [A0, A1]: key mask in act's layout. bias [H, Q, K] (in the attending frame) or undefined.
// out [A0, A1, c_out] = (accumulate ? out : 0) + attention output. out may be act itself: every chunk
// reads only its own batch elements, and the bias must have been computed before the call.
void gated_self_attention(const AttentionWeights& w, const LayerNormWeights& norm, const Tensor& act,
                          bool along_axis0, const Tensor& mask, const Tensor& bias, float inf, float eps,
                          const Tensor& out, bool accumulate, Context& ctx);

// The backward twin: dout = dL/d(update) [A0, A1, c_out] (out's layout, any strides); writes dact = (or, with
// accumulate_dact, +=) dL/dact, adds the parameter gradients into grads and grads_norm, and, when defined, adds
// dL/dbias [H, Q, K] into dbias. Recomputes the forward chunk by chunk.
void gated_self_attention_backward(const AttentionWeights& w, const LayerNormWeights& norm, const Tensor& act,
                                   bool along_axis0, const Tensor& mask, const Tensor& bias, float inf, float eps,
                                   const Tensor& dout, const Tensor& dact, bool accumulate_dact, AttentionWeights& grads,
                                   LayerNormWeights& grads_norm, const Tensor& dbias, Context& ctx);

// Batch elements per chunk for `n` elements: ctx.chunk_size, or all of them when 0.
inline int64_t chunk_rows(const Context& ctx, int64_t n) {
    return ctx.chunk_size > 0 && ctx.chunk_size < n ? ctx.chunk_size : n;
}

}  // namespace axfold
