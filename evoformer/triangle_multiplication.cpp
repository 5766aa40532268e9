#include "evoformer/triangle_multiplication.h"

#include <algorithm>

namespace axfold {

void triangle_multiplication_forward(const TriangleMultiplicationWeights& w, bool incoming, const Tensor& z,
                                     const Tensor& pair_mask, const Tensor& out, bool accumulate, Context& ctx,
                                     const TrunkConstants& k) {
    Workspace& ws = ctx.ws;
    WorkspaceScope scope(ws);
    AXF_CHECK(z.dim() == 3 && z.size(0) == z.size(1) && z.is_contiguous(),
              "triangle_multiplication: pair %s must be a contiguous [N, N, C_z]", z.desc().c_str());
    const int64_t N = z.size(0), Cz = z.size(2), C = w.c_hidden(), M = N * N;
    AXF_CHECK(pair_mask.dim() == 2 && pair_mask.size(0) == N && pair_mask.size(1) == N,
              "triangle_multiplication: mask %s for pair %s", pair_mask.desc().c_str(), z.desc().c_str());
    AXF_CHECK(out.is_contiguous() && out.shape() == z.shape(), "triangle_multiplication: output %s for pair %s",
              out.desc().c_str(), z.desc().c_str());
    const Tensor z2 = z.view({M, Cz});
    const Tensor mask_flat = pair_mask.contiguous().view({1, M});
    // Chunking: rows of the flattened pair in blocks of chunk_size * N (layer norms, projections,
    // output), channels in blocks of the same memory fraction (projections and contraction).
    const int64_t rows = ctx.chunk_size > 0 ? std::min(M, ctx.chunk_size * N) : M;
    const int64_t chans = ctx.chunk_size > 0 ? std::clamp<int64_t>(C * ctx.chunk_size / N, 1, C) : C;

    // Gated, masked projections computed channel-major, [c, rows] = W^T x^T, so each channel is directly
    // one GEMM operand of the triangle contraction and no transposition of the pair is materialised.
    Tensor prod = ws.alloc({C, N, N});
    for (int64_t c0 = 0; c0 < C; c0 += chans) {
        WorkspaceScope cscope(ws);
        const int64_t c1 = std::min(C, c0 + chans), cn = c1 - c0;
        Tensor left = ws.alloc({cn, M}), right = ws.alloc({cn, M});
        for (int64_t r0 = 0; r0 < M; r0 += rows) {
            WorkspaceScope rscope(ws);
            const int64_t r1 = std::min(M, r0 + rows), rn = r1 - r0;
            Tensor x = layer_norm(z2.slice(0, r0, r1), w.layer_norm_input.scale, w.layer_norm_input.offset, k.eps, ws);
            const Tensor xt = x.transpose(0, 1);  // [C_z, rn], column-major view
            auto project = [&](const LinearWeights& lin, const Tensor& dst) {
                copy(dst, lin.bias.slice(0, c0, c1).view({cn, 1}).expand({cn, rn}));
                matmul(lin.weights.slice(1, c0, c1).transpose(0, 1), xt, dst, 1.f, 1.f);
            };
            Tensor g = ws.alloc({cn, rn});
            for (int side = 0; side < 2; ++side) {
                const Tensor dst = (side == 0 ? left : right).slice(1, r0, r1);
                project(w.side_projection(side), dst);
                mul(dst, mask_flat.slice(1, r0, r1).expand({cn, rn}));
                project(w.side_gate(side), g);
                sigmoid_mul(dst, g);
            }
        }
        const Tensor l3 = left.view({cn, N, N}), r3 = right.view({cn, N, N}), p3 = prod.slice(0, c0, c1);
        if (incoming)
            matmul(r3.transpose(1, 2), l3, p3);  // sum_k right[k,i] left[k,j]
        else
            matmul(l3, r3.transpose(1, 2), p3);  // sum_k left[i,k] right[j,k]
    }
    const Tensor act = prod.view({C, M}).transpose(0, 1);  // [M, C] view of channel-major memory
    layer_norm(act, w.center_layer_norm.scale, w.center_layer_norm.offset, k.eps, act);
    const Tensor out2 = out.view({M, Cz});
    for (int64_t r0 = 0; r0 < M; r0 += rows) {
        WorkspaceScope rscope(ws);
        const int64_t r1 = std::min(M, r0 + rows);
        Tensor upd = linear(act.slice(0, r0, r1), w.output_projection.weights, w.output_projection.bias, ws);
        // The gate reads z rows r0..r1 before this block writes them (out may be z).
        Tensor x = layer_norm(z2.slice(0, r0, r1), w.layer_norm_input.scale, w.layer_norm_input.offset, k.eps, ws);
        Tensor gate = linear(x, w.gating_linear.weights, w.gating_linear.bias, ws);
        sigmoid_mul(upd, gate);
        const Tensor dst = out2.slice(0, r0, r1);
        write_update(dst, upd, accumulate);
    }
}

void triangle_multiplication_backward_block(const TriangleMultiplicationWeights& w, const Tensor& z,
                                            const Tensor& mask, const Tensor& dupdate, const Tensor& dz,
                                            bool accumulate_dz, TriangleMultiplicationWeights& grads,
                                            const TriangleProduct& product, Context& ctx, const TrunkConstants& k) {
    AXF_CHECK(!w.fused, "triangle multiplication backward: fused (AF-Multimer) weights are not supported yet");
    Workspace& ws = ctx.ws;
    WorkspaceScope scope(ws);
    AXF_CHECK(z.dim() == 3 && z.is_contiguous() && dupdate.is_contiguous() && dz.is_contiguous() &&
                  dupdate.shape() == z.shape() && dz.shape() == z.shape(),
              "triangle_multiplication backward: pair %s, dupdate %s, dz %s (contiguous, one shape)", z.desc().c_str(),
              dupdate.desc().c_str(), dz.desc().c_str());
    const int64_t A = z.size(0), B = z.size(1), Cz = z.size(2), C = w.left_projection.weights.size(1), M = A * B;
    AXF_CHECK(mask.dim() == 2 && mask.size(0) == A && mask.size(1) == B,
              "triangle_multiplication backward: mask %s for pair %s", mask.desc().c_str(), z.desc().c_str());
    const Tensor z2 = z.view({M, Cz}), du = dupdate.view({M, Cz});
    const Tensor mask_rows = mask.contiguous().view({M, 1}).expand({M, C});

    // Forward internals, row-major [M, .]: x = LN(z); pre-gate projections p and gates g of both sides;
    // left = mask p_l sigmoid(g_l), right alike; prod (channel-major [c, A, B]) and its layer norm a.
    Tensor x = layer_norm(z2, w.layer_norm_input.scale, w.layer_norm_input.offset, k.eps, ws);
    Tensor pm[2], g[2], side[2];
    const LinearWeights* proj[2] = {&w.left_projection, &w.right_projection};
    const LinearWeights* gate[2] = {&w.left_gate, &w.right_gate};
    for (int s = 0; s < 2; ++s) {
        pm[s] = linear(x, proj[s]->weights, proj[s]->bias, ws);
        mul(pm[s], mask_rows);
        g[s] = linear(x, gate[s]->weights, gate[s]->bias, ws);
        side[s] = ws.alloc({C, A, B});  // channel-major: each channel one GEMM operand
        Tensor v = ws.alloc({M, C});
        copy(v, pm[s]);
        sigmoid_mul(v, g[s]);
        copy(side[s].view({C, M}), v.transpose(0, 1));
    }
    Tensor prod = ws.alloc({C, A, B});
    product.forward(side[0], side[1], prod);
    Tensor prod_rows = ws.alloc({M, C});
    copy(prod_rows, prod.view({C, M}).transpose(0, 1));
    Tensor a = layer_norm(prod_rows, w.center_layer_norm.scale, w.center_layer_norm.offset, k.eps, ws);
    Tensor u0 = linear(a, w.output_projection.weights, w.output_projection.bias, ws);
    Tensor og = linear(x, w.gating_linear.weights, w.gating_linear.bias, ws);

    // u = u0 sigmoid(og).
    Tensor du0 = ws.alloc({M, Cz}), dog = ws.alloc({M, Cz}), dx = ws.alloc({M, Cz});
    sigmoid_mul_backward(u0, og, du, du0, dog);
    linear_backward(x, w.gating_linear.weights, dog, dx, false, grads.gating_linear.weights, grads.gating_linear.bias,
                    ws);
    Tensor da = ws.alloc({M, C});
    linear_backward(a, w.output_projection.weights, du0, da, false, grads.output_projection.weights,
                    grads.output_projection.bias, ws);
    Tensor dprod_rows = ws.alloc({M, C});
    layer_norm_backward(prod_rows, w.center_layer_norm.scale, k.eps, da, dprod_rows, grads.center_layer_norm.scale,
                        grads.center_layer_norm.offset);
    Tensor dprod = ws.alloc({C, A, B});
    copy(dprod.view({C, M}), dprod_rows.transpose(0, 1));
    Tensor dside[2] = {ws.alloc({C, A, B}), ws.alloc({C, A, B})};
    auto finish_right = product.backward(side[0], side[1], dprod, dside[0]);
    // side = (mask p) sigmoid(g): back to the projections and the gates, then to x. The left side first, so
    // the right side's gradient may still be in flight meanwhile.
    for (int s = 0; s < 2; ++s) {
        if (s == 1) finish_right(dside[1]);
        Tensor dv = ws.alloc({M, C}), dpm = ws.alloc({M, C}), dg = ws.alloc({M, C});
        copy(dv, dside[s].view({C, M}).transpose(0, 1));
        sigmoid_mul_backward(pm[s], g[s], dv, dpm, dg);
        mul(dpm, mask_rows);
        LinearWeights& gp = s == 0 ? grads.left_projection : grads.right_projection;
        LinearWeights& gg = s == 0 ? grads.left_gate : grads.right_gate;
        linear_backward(x, proj[s]->weights, dpm, dx, true, gp.weights, gp.bias, ws);
        linear_backward(x, gate[s]->weights, dg, dx, true, gg.weights, gg.bias, ws);
    }
    layer_norm_backward(z2, w.layer_norm_input.scale, k.eps, dx, dz.view({M, Cz}), accumulate_dz,
                        grads.layer_norm_input.scale, grads.layer_norm_input.offset, ws);
}

void triangle_multiplication_backward(const TriangleMultiplicationWeights& w, bool incoming, const Tensor& z,
                                      const Tensor& pair_mask, const Tensor& dupdate, const Tensor& dz,
                                      bool accumulate_dz, TriangleMultiplicationWeights& grads, Context& ctx,
                                      const TrunkConstants& k) {
    AXF_CHECK(z.dim() == 3 && z.size(0) == z.size(1), "triangle_multiplication backward: pair %s must be [N, N, C_z]",
              z.desc().c_str());
    // The contraction, per channel: outgoing P = L R^T (dL = dP R, dR = dP^T L); incoming P = R^T L
    // (dR = L dP^T, dL = R dP).
    TriangleProduct product;
    product.forward = [incoming](const Tensor& L, const Tensor& R, const Tensor& prod) {
        if (incoming)
            matmul(R.transpose(1, 2), L, prod);  // sum_k right[k,i] left[k,j]
        else
            matmul(L, R.transpose(1, 2), prod);  // sum_k left[i,k] right[j,k]
    };
    product.backward = [incoming](const Tensor& L, const Tensor& R, const Tensor& dprod,
                                  const Tensor& dL) -> std::function<void(const Tensor&)> {
        if (incoming)
            matmul(R, dprod, dL);
        else
            matmul(dprod, R, dL);
        return [incoming, L, dprod](const Tensor& dR) {
            if (incoming)
                matmul(L, dprod.transpose(1, 2), dR);
            else
                matmul(dprod.transpose(1, 2), L, dR);
        };
    };
    triangle_multiplication_backward_block(w, z, pair_mask, dupdate, dz, accumulate_dz, grads, product, ctx, k);
}

}  // namespace axfold
