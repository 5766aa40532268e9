// Outer product mean (AF2 supplement, Algorithm 10): the MSA's per-column statistics become a pair
// update. Parameter scope `outer_product_mean`.
#pragma once

#include <functional>

#include "evoformer/weights.h"
#include "kernels/ops.h"

namespace axfold {

struct OuterProductMeanWeights {
    LayerNormWeights layer_norm_input;  // [C_m]
    LinearWeights left_projection;      // [C_m, c]
    LinearWeights right_projection;     // [C_m, c]
    Tensor output_w;                    // [c, c, C_z]
    Tensor output_b;                    // [C_z]
    template <class F> void visit(F&& f) {
        layer_norm_input.visit(scoped("layer_norm_input", f));
        left_projection.visit(scoped("left_projection", f));
        right_projection.visit(scoped("right_projection", f));
        f("//output_w", output_w);
        f("//output_b", output_b);
    }
};

// m [S, N_res, C_m], msa_mask [S, N_res]; out [N_res, N_res, C_z] (accumulate: the pair, in place).
// The outer products are formed for blocks of `chunk_rows` residues i at a time (0 = automatic) so the
// [i, j, c, c] intermediate stays bounded.
void outer_product_mean_forward(const OuterProductMeanWeights& w, const Tensor& m, const Tensor& msa_mask,
                                const Tensor& out, bool accumulate, Context& ctx, const TrunkConstants& k = {},
                                int64_t chunk_rows = 0);

// The two halves of outer_product_mean_forward, for callers that hold only some residues (DAP):
// masked projections of m [S, N, C_m] into left and right [S, N, c] (contiguous; either may be undefined
// to skip it), and the outer products of left [S, N_i, c] with right [S, N_j, c] (contiguous), divided by
// norm [N_i, N_j] (+ opm_eps), into out [N_i, N_j, C_z] (any row strides).
void outer_product_mean_project(const OuterProductMeanWeights& w, const Tensor& m, const Tensor& msa_mask,
                                const Tensor& left, const Tensor& right, Context& ctx, const TrunkConstants& k = {});
void outer_product_mean_combine(const OuterProductMeanWeights& w, const Tensor& left, const Tensor& right,
                                const Tensor& norm, const Tensor& out, bool accumulate, Context& ctx,
                                const TrunkConstants& k = {}, int64_t chunk_rows = 0);

// The backward twin of outer_product_mean_forward: for the update u and dupdate = dL/du [N_res, N_res, C_z]
// (contiguous), writes dm = (or, with accumulate_dm, +=) dL/dm [S, N_res, C_m] and adds the parameter
// gradients into grads (zeros_like_weights(w) to start). Recomputes the projections; the outer products are
// formed again block by block of residues i, as the forward forms them.
void outer_product_mean_backward(const OuterProductMeanWeights& w, const Tensor& m, const Tensor& msa_mask,
                                 const Tensor& dupdate, const Tensor& dm, bool accumulate_dm,
                                 OuterProductMeanWeights& grads, Context& ctx, const TrunkConstants& k = {},
                                 int64_t chunk_rows = 0);

// The backward's two halves (DAP runs them on its shards, with the right projection's gradient reduced over
// ranks between them). combine: for left [S, N_i, c], right [S, N_j, c], norm [N_i, N_j] and dupdate
// [N_i, N_j, C_z], writes dleft and ADDS into dright (both contiguous, their projections' shapes).
// project: dleft and dright [S, N, c] (masked in place) into dm [S, N, C_m] (= or +=); `right_ready`, when
// given, is called after the left projection's backward and before dright is read.
void outer_product_mean_combine_backward(const OuterProductMeanWeights& w, const Tensor& left, const Tensor& right,
                                         const Tensor& norm, const Tensor& dupdate, const Tensor& dleft,
                                         const Tensor& dright, OuterProductMeanWeights& grads, Context& ctx,
                                         const TrunkConstants& k = {}, int64_t chunk_rows = 0);
void outer_product_mean_project_backward(const OuterProductMeanWeights& w, const Tensor& m, const Tensor& msa_mask,
                                         const Tensor& dleft, const Tensor& dright, const Tensor& dm,
                                         bool accumulate_dm, OuterProductMeanWeights& grads, Context& ctx,
                                         const TrunkConstants& k = {},
                                         const std::function<void()>& right_ready = nullptr);

}  // namespace axfold
