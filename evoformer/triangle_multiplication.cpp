#include "evoformer/triangle_multiplication.h"

namespace axfold {

void triangle_multiplication_forward(const TriangleMultiplicationWeights& w, bool incoming, const Tensor& z,
                                     const Tensor& pair_mask, Tensor& out, bool accumulate, Context& ctx,
                                     const TrunkConstants& k) {
    Workspace& ws = ctx.ws;
    WorkspaceScope scope(ws);
    AXF_CHECK(z.dim() == 3 && z.size(0) == z.size(1), "triangle_multiplication: pair %s must be [N, N, C_z]",
              z.desc().c_str());
    const int64_t N = z.size(0), Cz = z.size(2), C = w.left_projection.weights.size(1);
    AXF_CHECK(pair_mask.dim() == 2 && pair_mask.size(0) == N && pair_mask.size(1) == N,
              "triangle_multiplication: mask %s for pair %s", pair_mask.desc().c_str(), z.desc().c_str());
    Tensor x = layer_norm(z, w.layer_norm_input.scale, w.layer_norm_input.offset, k.eps, ws);
    const Tensor xt = x.view({N * N, Cz}).transpose(0, 1);  // [C_z, N*N], column-major view
    const Tensor mask_row = pair_mask.contiguous().view({1, N * N}).expand({C, N * N});
    // Projections computed channel-major, [C, N*N] = W^T x^T, so each channel is directly one GEMM
    // operand of the triangle contraction and no transposition of the pair is materialised.
    auto project_cm = [&](const LinearWeights& lin) {
        Tensor p = ws.alloc({C, N * N});
        copy(p, lin.bias.view({C, 1}).expand({C, N * N}));
        matmul(lin.weights.transpose(0, 1), xt, p, 1.f, 1.f);
        return p;
    };
    auto projection = [&](const LinearWeights& proj, const LinearWeights& gate) {
        Tensor p = project_cm(proj);
        mul(p, mask_row);
        WorkspaceScope gate_scope(ws);
        Tensor g = project_cm(gate);
        sigmoid_mul(p, g);
        return p.view({C, N, N});
    };
    Tensor left = projection(w.left_projection, w.left_gate);
    Tensor right = projection(w.right_projection, w.right_gate);
    Tensor prod = ws.alloc({C, N, N});
    if (incoming)
        matmul(right.transpose(1, 2), left, prod);  // sum_k right[k,i] left[k,j]
    else
        matmul(left, right.transpose(1, 2), prod);  // sum_k left[i,k] right[j,k]
    Tensor act = prod.view({C, N * N}).transpose(0, 1);  // [N*N, C] view of channel-major memory
    layer_norm(act, w.center_layer_norm.scale, w.center_layer_norm.offset, k.eps, act);
    Tensor upd = ws.alloc({N, N, Cz});
    linear(act, w.output_projection.weights, w.output_projection.bias, upd);
    Tensor gate = linear(x, w.gating_linear.weights, w.gating_linear.bias, ws);
    sigmoid_mul(upd, gate);
    if (accumulate)
        add(out, upd);
    else
        copy(out, upd);
}

}  // namespace axfold
