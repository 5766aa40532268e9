// Parameter shapes of the trunk modules for given widths, in AF2 layout and names (relative to the
// block scope, without the stacked layer axis). Used to make random parameter files (init-params,
// benchmarks) with exactly the structure of the official ones.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "kernels/tensor.h"

namespace axfold {

struct EvoformerDims {
    int64_t c_m = 256, c_z = 128;
    int64_t msa_heads = 8, msa_head_dim = 32;    // row and column attention
    int64_t pair_heads = 4, pair_head_dim = 32;  // triangle attention
    int64_t tri_mul_dim = 128, opm_dim = 32, transition_factor = 4;
    int64_t global_heads = 8, global_head_dim = 8;  // extra-MSA stack attention
    static EvoformerDims af2_evoformer() { return {}; }
    static EvoformerDims af2_extra_msa() {
        EvoformerDims d;
        d.c_m = 64;
        d.msa_heads = 8;
        d.msa_head_dim = 8;
        return d;
    }
};

using ParamShapes = std::vector<std::pair<std::string, Shape>>;

// Every parameter of one Evoformer (or extra-MSA) block, keys relative to the block scope. multimer:
// AlphaFold-Multimer v3's (fused triangle multiplications).
ParamShapes evoformer_block_param_shapes(const EvoformerDims& d, bool is_extra_msa, bool multimer = false);
// One template pair stack block (relative keys): triangle attentions with h x d heads, triangle multiplications of
// width c (fused: AlphaFold-Multimer v3), a transition of factor n.
ParamShapes template_pair_block_param_shapes(int64_t c_t, int64_t h, int64_t d, int64_t c, int64_t n, bool fused);

}  // namespace axfold

#include <cstdint>

namespace axfold {

// A random parameter for `key` with AF2-like scaling so activations stay O(1): weights ~ N(0, 1/fan_in)
// (fan_in = all but the last axis for output_w, the first axis otherwise), layer-norm scales 1,
// offsets and biases 0, gating biases 1. Deterministic in `seed`.
Tensor init_param(const std::string& key, const Shape& shape, uint64_t seed);

}  // namespace axfold
