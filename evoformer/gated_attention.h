// Gated multi-head self-attention over one axis of a 3-D activation (AF2 Attention, Algorithm 7 core
// as used by Algorithms 7, 8, 13 and 14), computed without transposing the activation in memory.
#pragma once

#include "evoformer/weights.h"
#include "kernels/ops.h"

namespace axfold {

// x [A0, A1, c_in] (already layer-normed, contiguous). Attends along axis 1 (rows of A0 are the batch),
// or along axis 0 when `along_axis0` (columns of A1 are the batch).
// mask [A0, A1]: key mask in x's layout. bias [H, Q, K] (in the attending frame) or undefined.
// out [A0, A1, c_out] = (accumulate ? out : 0) + attention output.
void gated_self_attention(const AttentionWeights& w, const Tensor& x, bool along_axis0, const Tensor& mask,
                          const Tensor& bias, float inf, Tensor& out, bool accumulate, Context& ctx);

}  // namespace axfold
