#include "structure/ipa.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace axfold {

void invariant_point_attention_forward(const InvariantPointAttentionWeights& w, const Tensor& s, const Tensor& z,
                                       const Tensor& rot_in, const Tensor& trans_in, const Tensor& mask_in,
                                       const Tensor& out, bool accumulate, Context& ctx, float inf, float eps,
                                       const LayerNormWeights* z_norm) {
    Workspace& ws = ctx.ws;
    WorkspaceScope scope(ws);
    const int64_t N = s.size(0), H = w.no_heads(), C = w.c_hidden(), Cv = w.c_v(), P = w.no_qk_points(),
                  Pv = w.no_v_points(), Cz = z.size(2);
    AXF_CHECK(z.dim() == 3 && z.size(0) == N && z.size(1) == N, "ipa: pair %s for single %s", z.desc().c_str(),
              s.desc().c_str());
    AXF_CHECK(rot_in.numel() == N * 9 && trans_in.numel() == N * 3 && mask_in.numel() == N,
              "ipa: frames %s / %s or mask %s do not match %lld residues", rot_in.desc().c_str(),
              trans_in.desc().c_str(), mask_in.desc().c_str(), (long long)N);
    const Device dev = s.device();
    const Tensor rot = rot_in.contiguous().view({N, 3, 3}), trans = trans_in.contiguous().view({N, 3});
    const Tensor mask = mask_in.contiguous().view({N});

    Tensor qs = linear(s, w.q_scalar.weights, w.q_scalar.bias, ws);     // [N, H*C]
    Tensor kvs = linear(s, w.kv_scalar.weights, w.kv_scalar.bias, ws);  // [N, H*(C+Cv)]
    Tensor qpl = linear(s, w.q_point_local.weights, w.q_point_local.bias, ws);     // [N, 3*H*P] (x | y | z)
    Tensor kvpl = linear(s, w.kv_point_local.weights, w.kv_point_local.bias, ws);  // [N, 3*H*(P+Pv)]

    // Points in the global frame, [N, H, points, 3] in memory: qp, and kvp holding each head's P key points
    // followed by its Pv value points.
    Tensor qp = ws.alloc({N, H * P, 3}), kvp = ws.alloc({N, H * (P + Pv), 3});
    apply_frames(rot, trans, qpl.view({N, 3, H * P}).permute({0, 2, 1}), qp, false);
    apply_frames(rot, trans, kvpl.view({N, 3, H * (P + Pv)}).permute({0, 2, 1}), kvp, false);
    const Tensor qp3 = qp.view({N, H, P * 3}).permute({1, 0, 2});                      // [H, N, P*3]
    const Tensor kvp3 = kvp.view({N, H, (P + Pv) * 3});
    const Tensor kp3 = kvp3.slice(2, 0, P * 3).permute({1, 0, 2});                    // [H, N, P*3]
    const Tensor vp = kvp3.slice(2, P * 3, (P + Pv) * 3).permute({1, 0, 2});          // [H, N, Pv*3]

    // Attention in chunks of query rows i (ctx.chunk_size): logits [H, ci, N], the 2-D bias and the
    // attention over the pair need only the rows i of the pair, normalised here when z_norm is given.
    const float scalar_w = std::sqrt(1.f / (3.f * static_cast<float>(std::max<int64_t>(C, 1))));
    const float point_var = static_cast<float>(std::max<int64_t>(P, 1)) * 9.f / 2.f;
    const float point_w0 = std::sqrt(1.f / (3.f * point_var));
    const float attn2d_w = std::sqrt(1.f / 3.f);
    const Tensor q3 = qs.view({N, H, C}).permute({1, 0, 2});                           // [H, N, C]
    const Tensor k3 = kvs.view({N, H, C + Cv}).slice(2, 0, C).permute({1, 2, 0});    // [H, C, N]
    const Tensor v3 = kvs.view({N, H, C + Cv}).slice(2, C, C + Cv).permute({1, 0, 2});  // [H, N, Cv]
    // The point logits' weight per head, -softplus(w_h) * point_w0 / 2 (a few floats, from the host).
    const Tensor tpw = w.trainable_point_weights.to(Device::CPU).contiguous();
    std::vector<float> pw(static_cast<size_t>(H));
    for (int64_t h = 0; h < H; ++h) {
        const float x = tpw.f32()[h];
        pw[h] = -0.5f * (point_w0 * (x > 20.f ? x : std::log1p(std::exp(x))));  // softplus
    }
    const Tensor point_weight = Tensor::from_vector({H}, pw).to(dev);
    // The mask term's m_i m_j (the softmax adds inf * (m_i m_j - 1)).
    Tensor mask2d = ws.alloc({N, N});
    copy(mask2d, mask.unsqueeze(1).expand({N, N}));
    mul(mask2d, mask.unsqueeze(0).expand({N, N}));
    Tensor o_scalar = ws.alloc({N, H, Cv});
    Tensor o_point = ws.alloc({N, H, Pv * 3});
    Tensor o_2d = ws.alloc({N, H, Cz});
    const int64_t cs = ctx.chunk_size > 0 && ctx.chunk_size < N ? ctx.chunk_size : N;
    for (int64_t i0 = 0; i0 < N; i0 += cs) {
        WorkspaceScope chunk(ws);
        const int64_t i1 = std::min(N, i0 + cs), ci = i1 - i0;
        Tensor zc = z_norm ? layer_norm(z.slice(0, i0, i1), z_norm->scale, z_norm->offset, 1e-5f, ws)
                           : z.slice(0, i0, i1);
        Tensor b2d = linear(zc, w.attention_2d.weights, w.attention_2d.bias, ws);  // [ci, N, H]
        Tensor logits = ws.alloc({H, ci, N}), bias = ws.alloc({H, ci, N});
        matmul(q3.slice(1, i0, i1), k3, logits, scalar_w, 0.f);
        weighted_sq_distances(qp3.slice(1, i0, i1), kp3, point_weight, bias);
        add(bias, b2d.permute({2, 0, 1}), attn2d_w);
        softmax(logits, 1.f, mask2d.slice(0, i0, i1).unsqueeze(0).expand({H, ci, N}), bias, inf);
        matmul(logits, v3, o_scalar.permute({1, 0, 2}).slice(1, i0, i1));
        matmul(logits, vp, o_point.permute({1, 0, 2}).slice(1, i0, i1));
        matmul(logits.permute({1, 0, 2}), zc, o_2d.slice(0, i0, i1));
    }

    // Features [N, H*Cv | H*Pv x | y | z | norm | H*Cz]; the value points back in each residue's frame.
    const int64_t F = H * Cv + 4 * H * Pv + H * Cz, HPv = H * Pv;
    Tensor feat = ws.alloc({N, F});
    copy(feat.slice(1, 0, H * Cv), o_scalar.view({N, H * Cv}));
    copy(feat.slice(1, H * Cv + 4 * HPv, F), o_2d.view({N, H * Cz}));
    apply_frames(rot, trans, o_point.view({N, HPv, 3}),
                 feat.slice(1, H * Cv, H * Cv + 3 * HPv).unflatten(1, {3, HPv}).permute({0, 2, 1}), true,
                 feat.slice(1, H * Cv + 3 * HPv, H * Cv + 4 * HPv), eps);
    linear(feat, w.output_projection.weights, w.output_projection.bias, out, accumulate ? 1.f : 0.f);
}

}  // namespace axfold
