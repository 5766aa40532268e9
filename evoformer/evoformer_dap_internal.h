// Internal to evoformer_dap_forward.cpp and evoformer_dap_backward.cpp (not part of any API): the shard views
// and the gathered pair bias that both directions of the DAP Evoformer block use (see evoformer_dap.h).
#pragma once

#include <algorithm>

#include "evoformer/evoformer_dap.h"

namespace axfold::detail {

// This rank's real elements of an unpadded tensor along dim d (empty, not out of range, when none).
inline Tensor own(const Tensor& t, int d, const DapAxis& ax) {
    const int64_t b = std::min(ax.begin, ax.n);
    return t.slice(d, b, b + ax.real);
}

// Rows [0, n0) and columns [0, n1) of a 3-D activation.
inline Tensor real_view(const Tensor& t, int64_t n0, int64_t n1) {
    return t.slice(0, 0, n0).slice(1, 0, n1);
}

// Pair bias [H, N, N] (attending frame) from this rank's rows zr [n_local_real, N, C_z] of the pair in that
// frame: b[q, k] = LN(z)[q, k] @ W for the local queries q, all-gathered over ranks. From the workspace.
// (The backward replays it; its adjoint is gathered_bias_backward.)
Tensor gathered_bias(DapActivations& a, const LayerNormWeights& norm, const Tensor& W, const Tensor& zr, Context& ctx,
                     const TrunkConstants& k);

}  // namespace axfold::detail
