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
    const Tensor rot = rot_in.contiguous(), trans = trans_in.contiguous(), mask = mask_in.contiguous();
    const float* R = rot.f32();
    const float* T = trans.f32();
    const float* M = mask.f32();

    Tensor qs = linear(s, w.q_scalar.weights, w.q_scalar.bias, ws);     // [N, H*C]
    Tensor kvs = linear(s, w.kv_scalar.weights, w.kv_scalar.bias, ws);  // [N, H*(C+Cv)]
    Tensor qpl = linear(s, w.q_point_local.weights, w.q_point_local.bias, ws);     // [N, 3*H*P]
    Tensor kvpl = linear(s, w.kv_point_local.weights, w.kv_point_local.bias, ws);  // [N, 3*H*(P+Pv)]

    // Points in the global frame: qp [H, N, P, 3], kp [H, N, P, 3], vp [H, N, Pv*3].
    Tensor qp = ws.alloc({H, N, P, 3}), kp = ws.alloc({H, N, P, 3}), vp = ws.alloc({H, N, Pv * 3});
    auto to_global = [&](const float* local, int64_t third, int64_t idx, int64_t n, float* g) {
        const float x = local[idx], y = local[third + idx], zz = local[2 * third + idx];
        const float* r = R + n * 9;
        for (int d = 0; d < 3; ++d) g[d] = r[d * 3 + 0] * x + r[d * 3 + 1] * y + r[d * 3 + 2] * zz + T[n * 3 + d];
    };
    for (int64_t n = 0; n < N; ++n) {
        const float* ql = qpl.f32() + n * 3 * H * P;
        const float* kl = kvpl.f32() + n * 3 * H * (P + Pv);
        for (int64_t h = 0; h < H; ++h) {
            for (int64_t p = 0; p < P; ++p) to_global(ql, H * P, h * P + p, n, qp.f32() + ((h * N + n) * P + p) * 3);
            for (int64_t p = 0; p < P + Pv; ++p) {
                float* dst = p < P ? kp.f32() + ((h * N + n) * P + p) * 3 : vp.f32() + (h * N + n) * Pv * 3 + (p - P) * 3;
                to_global(kl, H * (P + Pv), h * (P + Pv) + p, n, dst);
            }
        }
    }

    // Attention in chunks of query rows i (ctx.chunk_size): logits [H, ci, N], the 2-D bias and the
    // attention over the pair need only the rows i of the pair, normalised here when z_norm is given.
    const float scalar_w = std::sqrt(1.f / (3.f * static_cast<float>(std::max<int64_t>(C, 1))));
    const float point_var = static_cast<float>(std::max<int64_t>(P, 1)) * 9.f / 2.f;
    const float point_w0 = std::sqrt(1.f / (3.f * point_var));
    const float attn2d_w = std::sqrt(1.f / 3.f);
    const Tensor q3 = qs.view({N, H, C}).permute({1, 0, 2});                           // [H, N, C]
    const Tensor k3 = kvs.view({N, H, C + Cv}).slice(2, 0, C).permute({1, 2, 0});    // [H, C, N]
    const Tensor v3 = kvs.view({N, H, C + Cv}).slice(2, C, C + Cv).permute({1, 0, 2});  // [H, N, Cv]
    const Tensor tpw = w.trainable_point_weights.contiguous();
    std::vector<float> pw(static_cast<size_t>(H));
    for (int64_t h = 0; h < H; ++h) {
        const float x = tpw.f32()[h];
        pw[h] = point_w0 * (x > 20.f ? x : std::log1p(std::exp(x)));  // softplus
    }
    Tensor o_scalar = ws.alloc({N, H, Cv});
    Tensor o_point = ws.alloc({H, N, Pv * 3});
    Tensor o_2d = ws.alloc({N, H, Cz});
    const int64_t cs = ctx.chunk_size > 0 && ctx.chunk_size < N ? ctx.chunk_size : N;
    for (int64_t i0 = 0; i0 < N; i0 += cs) {
        WorkspaceScope chunk(ws);
        const int64_t i1 = std::min(N, i0 + cs), ci = i1 - i0;
        Tensor zc = z_norm ? layer_norm(z.slice(0, i0, i1), z_norm->scale, z_norm->offset, 1e-5f, ws)
                           : z.slice(0, i0, i1);
        Tensor b2d = linear(zc, w.attention_2d.weights, w.attention_2d.bias, ws);  // [ci, N, H]
        Tensor logits = ws.alloc({H, ci, N});
        matmul(q3.slice(1, i0, i1), k3, logits, scalar_w, 0.f);
        float* L = logits.f32();
#pragma omp parallel for schedule(static)
        for (int64_t h = 0; h < H; ++h) {
            for (int64_t i = i0; i < i1; ++i) {
                const float* qi = qp.f32() + (h * N + i) * P * 3;
                for (int64_t j = 0; j < N; ++j) {
                    const float* kj = kp.f32() + (h * N + j) * P * 3;
                    float d2 = 0.f;
                    for (int64_t e = 0; e < P * 3; ++e) {
                        const float d = qi[e] - kj[e];
                        d2 += d * d;
                    }
                    float& l = L[(h * ci + (i - i0)) * N + j];
                    l += -0.5f * pw[h] * d2 + attn2d_w * b2d.f32()[((i - i0) * N + j) * H + h] -
                         inf * (1.f - M[i] * M[j]);
                }
            }
        }
        softmax(logits, 1.f, Tensor(), Tensor(), 0.f);
        matmul(logits, v3, o_scalar.permute({1, 0, 2}).slice(1, i0, i1));
        matmul(logits, vp, o_point.slice(1, i0, i1));
        matmul(logits.permute({1, 0, 2}), zc, o_2d.slice(0, i0, i1));
    }

    // Features [N, H*Cv | H*Pv x | y | z | norm | H*Cz].
    const int64_t F = H * Cv + 4 * H * Pv + H * Cz;
    Tensor feat = ws.alloc({N, F});
    copy(feat.slice(1, 0, H * Cv), o_scalar.view({N, H * Cv}));
    copy(feat.slice(1, H * Cv + 4 * H * Pv, F), o_2d.view({N, H * Cz}));
    float* fp = feat.f32();
    for (int64_t n = 0; n < N; ++n) {
        const float* r = R + n * 9;
        for (int64_t h = 0; h < H; ++h)
            for (int64_t p = 0; p < Pv; ++p) {
                const float* g = o_point.f32() + (h * N + n) * Pv * 3 + p * 3;
                float d[3] = {g[0] - T[n * 3], g[1] - T[n * 3 + 1], g[2] - T[n * 3 + 2]};
                float loc[3];
                for (int a = 0; a < 3; ++a) loc[a] = r[0 * 3 + a] * d[0] + r[1 * 3 + a] * d[1] + r[2 * 3 + a] * d[2];
                float* row = fp + n * F + H * Cv;
                const int64_t idx = h * Pv + p;
                row[idx] = loc[0];
                row[H * Pv + idx] = loc[1];
                row[2 * H * Pv + idx] = loc[2];
                row[3 * H * Pv + idx] = std::sqrt(eps + loc[0] * loc[0] + loc[1] * loc[1] + loc[2] * loc[2]);
            }
    }
    linear(feat, w.output_projection.weights, w.output_projection.bias, out, accumulate ? 1.f : 0.f);
}

}  // namespace axfold
