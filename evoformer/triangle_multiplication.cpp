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
    Tensor mask3 = pair_mask.unsqueeze(2).expand({N, N, C});
    // Gated, masked projections, stored channel-major [C, N, N] so each channel is one GEMM operand.
    auto projection = [&](const LinearWeights& proj, const LinearWeights& gate) {
        Tensor p = linear(x, proj.weights, proj.bias, ws);
        mul(p, mask3);
        Tensor g = linear(x, gate.weights, gate.bias, ws);
        sigmoid_mul(p, g);
        Tensor cm = ws.alloc({C, N, N});
        copy(cm, p.permute({2, 0, 1}));
        return cm;
    };
    Tensor left = projection(w.left_projection, w.left_gate);
    Tensor right = projection(w.right_projection, w.right_gate);
    Tensor prod = ws.alloc({C, N, N});
    if (incoming)
        matmul(right.transpose(1, 2), left, prod);  // sum_k right[k,i] left[k,j]
    else
        matmul(left, right.transpose(1, 2), prod);  // sum_k left[i,k] right[j,k]
    Tensor act = ws.alloc({N, N, C});
    copy(act, prod.permute({1, 2, 0}));
    layer_norm(act, w.center_layer_norm.scale, w.center_layer_norm.offset, k.eps, act);
    Tensor upd = linear(act, w.output_projection.weights, w.output_projection.bias, ws);  // [N, N, C_z]
    Tensor gate = linear(x, w.gating_linear.weights, w.gating_linear.bias, ws);
    sigmoid_mul(upd, gate);
    (void)Cz;
    if (accumulate)
        add(out, upd);
    else
        copy(out, upd);
}

}  // namespace axfold
