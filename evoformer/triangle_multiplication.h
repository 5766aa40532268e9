// Triangular multiplicative update using "outgoing" (AF2 supplement, Algorithm 11) and "incoming"
// (Algorithm 12) edges. Parameter scopes `triangle_multiplication_outgoing` / `_incoming`.
//
// AF-Multimer v3 fuses each pair of projections and gates into one weight (TriangleMultiplicationWeights::fused),
// which computes the same; the forward (one rank and DAP) reads it (LIMITATION: no backward).
// Note: AF2's code (and so its parameters) swaps the roles of the left and right projections in
// the incoming update relative to the paper; we follow the parameters:
//   outgoing: x[i,j,c] = sum_k left[i,k,c] right[j,k,c]
//   incoming: x[i,j,c] = sum_k left[k,j,c] right[k,i,c]
#pragma once

#include <functional>

#include "evoformer/weights.h"
#include "kernels/ops.h"

namespace axfold {

struct TriangleMultiplicationWeights {
    LayerNormWeights layer_norm_input;   // [C_z]; AF-Multimer v3: `left_norm_input`
    LinearWeights left_projection;       // [C_z, c]
    LinearWeights right_projection;      // [C_z, c]
    LinearWeights left_gate;             // [C_z, c]
    LinearWeights right_gate;            // [C_z, c]
    LayerNormWeights center_layer_norm;  // [c]; AF-Multimer v3: `center_norm`
    LinearWeights output_projection;     // [c, C_z]
    LinearWeights gating_linear;         // [C_z, C_z]
    // AF-Multimer v3 fuses the two sides: `projection` and `gate` [C_z, 2c], the left half first (AF2's
    // fuse_projection_weights); the four side weights above are then unused and undefined.
    bool fused = false;
    LinearWeights projection, gate;  // [C_z, 2c], fused only
    template <class F>
    void visit(F&& f) {
        layer_norm_input.visit(scoped(fused ? "left_norm_input" : "layer_norm_input", f));
        if (fused) {
            projection.visit(scoped("projection", f));
            gate.visit(scoped("gate", f));
        } else {
            left_projection.visit(scoped("left_projection", f));
            right_projection.visit(scoped("right_projection", f));
            left_gate.visit(scoped("left_gate", f));
            right_gate.visit(scoped("right_gate", f));
        }
        center_layer_norm.visit(scoped(fused ? "center_norm" : "center_layer_norm", f));
        output_projection.visit(scoped("output_projection", f));
        gating_linear.visit(scoped("gating_linear", f));
    }
    // The left (side 0) or right (side 1) projection or gate [C_z, c]: views of the fused halves, or the side's own.
    LinearWeights side_projection(int side) const {
        return side_of(side == 0 ? left_projection : right_projection, projection, side);
    }
    LinearWeights side_gate(int side) const { return side_of(side == 0 ? left_gate : right_gate, gate, side); }
    int64_t c_hidden() const { return fused ? projection.weights.size(1) / 2 : left_projection.weights.size(1); }

private:
    LinearWeights side_of(const LinearWeights& own, const LinearWeights& both, int side) const {
        if (!fused) return own;
        const int64_t c = both.weights.size(1) / 2;
        LinearWeights h;
        h.weights = both.weights.slice(1, side * c, (side + 1) * c);
        h.bias = both.bias.slice(0, side * c, (side + 1) * c);
        return h;
    }
};

// z [N_res, N_res, C_z], pair_mask [N_res, N_res]; out as in msa_attention.h (out may be z).
void triangle_multiplication_forward(const TriangleMultiplicationWeights& w, bool incoming, const Tensor& z,
                                     const Tensor& pair_mask, const Tensor& out, bool accumulate, Context& ctx,
                                     const TrunkConstants& k = {});

// The backward twin: for the update u and dupdate = dL/du [N_res, N_res, C_z] (contiguous), writes dz = (or,
// with accumulate_dz, +=) dL/dz and adds the parameter gradients into grads (zeros_like_weights(w) to start).
// The forward's internals are recomputed; this version holds them for the whole pair at once (about
// N^2 (2 C_z + 9 c) floats), which a training crop affords.
void triangle_multiplication_backward(const TriangleMultiplicationWeights& w, bool incoming, const Tensor& z,
                                      const Tensor& pair_mask, const Tensor& dupdate, const Tensor& dz,
                                      bool accumulate_dz, TriangleMultiplicationWeights& grads, Context& ctx,
                                      const TrunkConstants& k = {});

// The backward on a block of the pair z [A, B, C_z] (mask [A, B]) whose triangle contraction the caller
// supplies: everything else in the module is row-wise. The DAP backward (evoformer_dap.h) gathers the right
// projection in `forward` and reduce-scatters its gradient in `backward`.
struct TriangleProduct {
    // prod [c, A, B] from this block's left and right projections (channel-major [c, A, B]).
    std::function<void(const Tensor& left, const Tensor& right, const Tensor& prod)> forward;
    // Writes dleft from dprod and returns what writes dright; that is called after the left projection's
    // backward has run, so dright's communication may overlap it.
    std::function<std::function<void(const Tensor& dright)>(const Tensor& left, const Tensor& right,
                                                            const Tensor& dprod, const Tensor& dleft)>
        backward;
};
void triangle_multiplication_backward_block(const TriangleMultiplicationWeights& w, const Tensor& z, const Tensor& mask,
                                            const Tensor& dupdate, const Tensor& dz, bool accumulate_dz,
                                            TriangleMultiplicationWeights& grads, const TriangleProduct& product,
                                            Context& ctx, const TrunkConstants& k = {});

}  // namespace axfold
