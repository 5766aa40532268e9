#include "structure/ipa.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace axfold {

InvariantPointAttentionWeights load_multimer_ipa_weights(const ParamLookup& get, const std::string& scope) {
    auto param = [&](const std::string& rel) { return get(join_key(scope, rel)).to(Device::CPU).contiguous(); };
    const Tensor qs = param("q_scalar_projection//weights"), ks = param("k_scalar_projection//weights"),
                 vs = param("v_scalar_projection//weights");
    AXF_CHECK(qs.dim() == 3 && ks.shape() == qs.shape() && vs.dim() == 3 && vs.size(0) == qs.size(0) &&
                  vs.size(1) == qs.size(1),
              "%s: scalar projections q %s, k %s, v %s: expected [C_s, H, c]", scope.c_str(),
              shape_str(qs.shape()).c_str(), shape_str(ks.shape()).c_str(), shape_str(vs.shape()).c_str());
    const int64_t Cs = qs.size(0), H = qs.size(1), C = qs.size(2), Cv = vs.size(2);
    InvariantPointAttentionWeights w;
    w.q_scalar = {qs.view({Cs, H * C}), Tensor(), false};
    Tensor kv = Tensor::empty({Cs, H, C + Cv});  // each head's keys, then its values
    kv.slice(2, 0, C).copy_from(ks);
    kv.slice(2, C, C + Cv).copy_from(vs);
    w.kv_scalar = {kv.view({Cs, H * (C + Cv)}), Tensor(), false};
    // Points: [C_s, H, 3, P] per head -> [C_s, 3, H, P] (x | y | z thirds over every head's points).
    auto points = [&](const char* name, int64_t& P) {
        const std::string s = std::string(name) + "_point_projection/point_projection";
        const Tensor wt = param(s + "//weights"), b = param(s + "//bias");
        AXF_CHECK(wt.dim() == 3 && wt.size(0) == Cs && wt.size(1) == H && wt.size(2) % 3 == 0 &&
                      b.shape() == Shape({H, wt.size(2)}),
                  "%s: %s weights %s, bias %s: expected [C_s, H, 3P] and [H, 3P]", scope.c_str(), s.c_str(),
                  shape_str(wt.shape()).c_str(), shape_str(b.shape()).c_str());
        P = wt.size(2) / 3;
        return std::pair<Tensor, Tensor>{wt.view({Cs, H, 3, P}).permute({0, 2, 1, 3}),
                                         b.view({H, 3, P}).permute({1, 0, 2})};
    };
    int64_t P = 0, Pk = 0, Pv = 0;
    const auto [qw, qb] = points("q", P);
    const auto [kw, kb] = points("k", Pk);
    const auto [vw, vb] = points("v", Pv);
    AXF_CHECK(Pk == P, "%s: %lld query points but %lld key points", scope.c_str(), (long long)P, (long long)Pk);
    w.q_point_local = {qw.contiguous().view({Cs, 3 * H * P}), qb.contiguous().view({3 * H * P})};
    Tensor kvw = Tensor::empty({Cs, 3, H, P + Pv}), kvb = Tensor::empty({3, H, P + Pv});  // keys, then values
    kvw.slice(3, 0, P).copy_from(kw);
    kvw.slice(3, P, P + Pv).copy_from(vw);
    kvb.slice(2, 0, P).copy_from(kb);
    kvb.slice(2, P, P + Pv).copy_from(vb);
    w.kv_point_local = {kvw.view({Cs, 3 * H * (P + Pv)}), kvb.view({3 * H * (P + Pv)})};
    w.trainable_point_weights = param("//trainable_point_weights");
    bind_params(w.attention_2d, join_key(scope, "attention_2d"), get);
    bind_params(w.output_projection, join_key(scope, "output_projection"), get);
    return w;
}

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

void invariant_point_attention_backward(const InvariantPointAttentionWeights& w, const Tensor& s, const Tensor& z,
                                        const Tensor& rot, const Tensor& trans, const Tensor& mask,
                                        const Tensor& dupdate, const Tensor& ds, const Tensor& dz, Tensor* drot,
                                        Tensor* dtrans, InvariantPointAttentionWeights& grads, Context& ctx, float inf,
                                        float eps) {
    Workspace& ws = ctx.ws;
    WorkspaceScope scope(ws);
    const int64_t N = s.size(0), H = w.no_heads(), C = w.c_hidden(), Cv = w.c_v(), P = w.no_qk_points(),
                  Pv = w.no_v_points(), Cz = z.size(2), HP = H * P, HPv = H * Pv;
    AXF_CHECK(z.dim() == 3 && z.size(0) == N && z.size(1) == N && dupdate.shape() == s.shape() && ds.shape() == s.shape(),
              "ipa backward: single %s, pair %s, dupdate %s, ds %s", s.desc().c_str(), z.desc().c_str(),
              dupdate.desc().c_str(), ds.desc().c_str());
    const Device dev = s.device();
    const Tensor sc = s.contiguous(), zc = z.contiguous();
    // Host float64 copies of what the attention needs.
    const std::vector<double> R = host_float64(rot), T = host_float64(trans), M = host_float64(mask);
    const std::vector<double> Z = host_float64(zc);
    const std::vector<double> qs = host_float64(linear(sc, w.q_scalar.weights, w.q_scalar.bias, ws));     // [N, H*C]
    const std::vector<double> kvs = host_float64(linear(sc, w.kv_scalar.weights, w.kv_scalar.bias, ws));  // [N, H*(C+Cv)]
    const std::vector<double> qpl = host_float64(linear(sc, w.q_point_local.weights, w.q_point_local.bias, ws));
    const std::vector<double> kvpl = host_float64(linear(sc, w.kv_point_local.weights, w.kv_point_local.bias, ws));
    const std::vector<double> b2d = host_float64(linear(zc, w.attention_2d.weights, w.attention_2d.bias, ws));  // [N,N,H]
    const std::vector<double> tpw = host_float64(w.trainable_point_weights);
    const double scalar_w = std::sqrt(1.0 / (3.0 * static_cast<double>(std::max<int64_t>(C, 1))));
    const double point_w0 = std::sqrt(1.0 / (3.0 * static_cast<double>(std::max<int64_t>(P, 1)) * 9.0 / 2.0));
    const double attn2d_w = std::sqrt(1.0 / 3.0);
    std::vector<double> pw(H), softplus(H);
    for (int64_t h = 0; h < H; ++h) {
        softplus[h] = tpw[h] > 20.0 ? tpw[h] : std::log1p(std::exp(tpw[h]));
        pw[h] = -0.5 * point_w0 * softplus[h];
    }
    // Points in the global frame: local point p of residue n (x | y | z thirds of the projection).
    auto to_global = [&](const std::vector<double>& local, int64_t K, std::vector<double>& g) {
        g.assign(N * K * 3, 0.0);
        for (int64_t n = 0; n < N; ++n)
            for (int64_t p = 0; p < K; ++p)
                for (int d = 0; d < 3; ++d) {
                    double v = T[n * 3 + d];
                    for (int e = 0; e < 3; ++e) v += R[n * 9 + d * 3 + e] * local[n * 3 * K + e * K + p];
                    g[(n * K + p) * 3 + d] = v;
                }
    };
    std::vector<double> qp, kvp;  // [N, HP, 3], [N, H(P+Pv), 3]
    to_global(qpl, HP, qp);
    to_global(kvpl, H * (P + Pv), kvp);
    auto q_at = [&](int64_t n, int64_t h, int64_t c) { return qs[n * H * C + h * C + c]; };
    auto k_at = [&](int64_t n, int64_t h, int64_t c) { return kvs[n * H * (C + Cv) + h * (C + Cv) + c]; };
    auto v_at = [&](int64_t n, int64_t h, int64_t c) { return kvs[n * H * (C + Cv) + h * (C + Cv) + C + c]; };
    auto qp_at = [&](int64_t n, int64_t h, int64_t p) { return &qp[(n * HP + h * P + p) * 3]; };
    auto kp_at = [&](int64_t n, int64_t h, int64_t p) { return &kvp[(n * H * (P + Pv) + h * (P + Pv) + p) * 3]; };
    auto vp_at = [&](int64_t n, int64_t h, int64_t p) { return &kvp[(n * H * (P + Pv) + h * (P + Pv) + P + p) * 3]; };

    // The attention weights a[h, i, j] and the features.
    std::vector<double> a(H * N * N), sqd(H * N * N);
    for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < N; ++i) {
            double* row = &a[(h * N + i) * N];
            double mx = -INFINITY;
            for (int64_t j = 0; j < N; ++j) {
                double dot = 0, d2 = 0;
                for (int64_t c = 0; c < C; ++c) dot += q_at(i, h, c) * k_at(j, h, c);
                for (int64_t p = 0; p < P; ++p)
                    for (int d = 0; d < 3; ++d) {
                        const double e = qp_at(i, h, p)[d] - kp_at(j, h, p)[d];
                        d2 += e * e;
                    }
                sqd[(h * N + i) * N + j] = d2;
                row[j] = scalar_w * dot + pw[h] * d2 + attn2d_w * b2d[(i * N + j) * H + h] +
                         static_cast<double>(inf) * (M[i] * M[j] - 1.0);
                mx = std::max(mx, row[j]);
            }
            double sum = 0;
            for (int64_t j = 0; j < N; ++j) sum += row[j] = std::exp(row[j] - mx);
            for (int64_t j = 0; j < N; ++j) row[j] /= sum;
        }
    const int64_t F = H * Cv + 4 * HPv + H * Cz;
    std::vector<double> feat(N * F, 0.0), og(N * HPv * 3, 0.0), local(N * HPv * 3), norm(N * HPv);
    for (int64_t i = 0; i < N; ++i)
        for (int64_t h = 0; h < H; ++h)
            for (int64_t j = 0; j < N; ++j) {
                const double aij = a[(h * N + i) * N + j];
                for (int64_t c = 0; c < Cv; ++c) feat[i * F + h * Cv + c] += aij * v_at(j, h, c);
                for (int64_t p = 0; p < Pv; ++p)
                    for (int d = 0; d < 3; ++d) og[((i * H + h) * Pv + p) * 3 + d] += aij * vp_at(j, h, p)[d];
                for (int64_t c = 0; c < Cz; ++c) feat[i * F + H * Cv + 4 * HPv + h * Cz + c] += aij * Z[(i * N + j) * Cz + c];
            }
    for (int64_t i = 0; i < N; ++i)
        for (int64_t p = 0; p < HPv; ++p) {
            double e[3], l2 = 0;
            for (int d = 0; d < 3; ++d) e[d] = og[(i * HPv + p) * 3 + d] - T[i * 3 + d];
            for (int d = 0; d < 3; ++d) {
                double v = 0;
                for (int k = 0; k < 3; ++k) v += R[i * 9 + k * 3 + d] * e[k];
                local[(i * HPv + p) * 3 + d] = v;
                feat[i * F + H * Cv + d * HPv + p] = v;
                l2 += v * v;
            }
            norm[i * HPv + p] = std::sqrt(static_cast<double>(eps) + l2);
            feat[i * F + H * Cv + 3 * HPv + p] = norm[i * HPv + p];
        }

    // out = feat Wout + bout.
    const Tensor featd = Tensor::from_vector({N, F}, std::vector<float>(feat.begin(), feat.end())).to(dev);
    Tensor dfeat_t = ws.alloc({N, F});
    linear_backward(featd, w.output_projection.weights, dupdate.contiguous(), dfeat_t, false,
                    grads.output_projection.weights, grads.output_projection.bias, ws);
    const std::vector<double> dfeat = host_float64(dfeat_t);
    std::vector<double> dR(N * 9, 0.0), dT(N * 3, 0.0);
    // The value points back in each frame: local = R^T (g - t), norm = sqrt(|local|^2 + eps).
    std::vector<double> dog(N * HPv * 3, 0.0);
    for (int64_t i = 0; i < N; ++i)
        for (int64_t p = 0; p < HPv; ++p) {
            double dl[3];
            const double dn = dfeat[i * F + H * Cv + 3 * HPv + p];
            for (int d = 0; d < 3; ++d)
                dl[d] = dfeat[i * F + H * Cv + d * HPv + p] + dn * local[(i * HPv + p) * 3 + d] / norm[i * HPv + p];
            for (int k = 0; k < 3; ++k) {
                double g = 0;
                for (int d = 0; d < 3; ++d) g += R[i * 9 + k * 3 + d] * dl[d];
                dog[(i * HPv + p) * 3 + k] = g;
                dT[i * 3 + k] -= g;
                for (int d = 0; d < 3; ++d) dR[i * 9 + k * 3 + d] += (og[(i * HPv + p) * 3 + k] - T[i * 3 + k]) * dl[d];
            }
        }
    // Through the attention: d a, and the gradients of v, the value points and the pair.
    std::vector<double> dqs(N * H * C, 0.0), dkvs(N * H * (C + Cv), 0.0), dqp(N * HP * 3, 0.0),
        dkvp(N * H * (P + Pv) * 3, 0.0), db2d(N * N * H, 0.0), dZ(N * N * Cz, 0.0), dpw(H, 0.0);
    for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < N; ++i) {
            const double* arow = &a[(h * N + i) * N];
            std::vector<double> da(N);
            double dot = 0;
            for (int64_t j = 0; j < N; ++j) {
                double g = 0;
                for (int64_t c = 0; c < Cv; ++c) {
                    const double dfc = dfeat[i * F + h * Cv + c];
                    g += dfc * v_at(j, h, c);
                    dkvs[j * H * (C + Cv) + h * (C + Cv) + C + c] += arow[j] * dfc;
                }
                for (int64_t p = 0; p < Pv; ++p)
                    for (int d = 0; d < 3; ++d) {
                        const double dg = dog[((i * H + h) * Pv + p) * 3 + d];
                        g += dg * vp_at(j, h, p)[d];
                        dkvp[(j * H * (P + Pv) + h * (P + Pv) + P + p) * 3 + d] += arow[j] * dg;
                    }
                for (int64_t c = 0; c < Cz; ++c) {
                    const double d2d = dfeat[i * F + H * Cv + 4 * HPv + h * Cz + c];
                    g += d2d * Z[(i * N + j) * Cz + c];
                    dZ[(i * N + j) * Cz + c] += arow[j] * d2d;
                }
                da[j] = g;
                dot += g * arow[j];
            }
            for (int64_t j = 0; j < N; ++j) {
                const double dl = arow[j] * (da[j] - dot);  // d logits
                if (dl == 0) continue;
                for (int64_t c = 0; c < C; ++c) {
                    dqs[i * H * C + h * C + c] += scalar_w * dl * k_at(j, h, c);
                    dkvs[j * H * (C + Cv) + h * (C + Cv) + c] += scalar_w * dl * q_at(i, h, c);
                }
                for (int64_t p = 0; p < P; ++p)
                    for (int d = 0; d < 3; ++d) {
                        const double e = 2.0 * pw[h] * dl * (qp_at(i, h, p)[d] - kp_at(j, h, p)[d]);
                        dqp[(i * HP + h * P + p) * 3 + d] += e;
                        dkvp[(j * H * (P + Pv) + h * (P + Pv) + p) * 3 + d] -= e;
                    }
                dpw[h] += dl * sqd[(h * N + i) * N + j];
                db2d[(i * N + j) * H + h] += attn2d_w * dl;
            }
        }
    // pw = -0.5 point_w0 softplus(tpw): softplus' = sigmoid.
    std::vector<float> dtpw(H);
    for (int64_t h = 0; h < H; ++h)
        dtpw[h] = static_cast<float>(dpw[h] * -0.5 * point_w0 * (tpw[h] > 20.0 ? 1.0 : 1.0 / (1.0 + std::exp(-tpw[h]))));
    add(grads.trainable_point_weights, Tensor::from_vector({H}, dtpw).to(grads.trainable_point_weights.device()));
    // Global points g = R local + t: d local = R^T dg, dR += dg local^T, dt += dg.
    auto from_global = [&](const std::vector<double>& dg, const std::vector<double>& loc, int64_t K) {
        std::vector<float> dloc(N * 3 * K);
        for (int64_t n = 0; n < N; ++n)
            for (int64_t p = 0; p < K; ++p)
                for (int e = 0; e < 3; ++e) {
                    double v = 0;
                    for (int d = 0; d < 3; ++d) {
                        const double g = dg[(n * K + p) * 3 + d];
                        v += R[n * 9 + d * 3 + e] * g;
                        dR[n * 9 + d * 3 + e] += g * loc[n * 3 * K + e * K + p];
                        if (e == 0) dT[n * 3 + d] += g;
                    }
                    dloc[n * 3 * K + e * K + p] = static_cast<float>(v);
                }
        return dloc;
    };
    const std::vector<float> dqpl = from_global(dqp, qpl, HP), dkvpl = from_global(dkvp, kvpl, H * (P + Pv));
    // The projections from s, and the pair's gradient (attention over the pair + the 2-D bias's linear).
    auto to_dev = [&](const std::vector<double>& v, const Shape& shape) {
        return Tensor::from_vector(shape, std::vector<float>(v.begin(), v.end())).to(dev);
    };
    linear_backward(sc, w.q_scalar.weights, to_dev(dqs, {N, H * C}), ds, false, grads.q_scalar.weights,
                    grads.q_scalar.bias, ws);
    linear_backward(sc, w.kv_scalar.weights, to_dev(dkvs, {N, H * (C + Cv)}), ds, true, grads.kv_scalar.weights,
                    grads.kv_scalar.bias, ws);
    linear_backward(sc, w.q_point_local.weights, Tensor::from_vector({N, 3 * HP}, dqpl).to(dev), ds, true,
                    grads.q_point_local.weights, grads.q_point_local.bias, ws);
    linear_backward(sc, w.kv_point_local.weights, Tensor::from_vector({N, 3 * H * (P + Pv)}, dkvpl).to(dev), ds, true,
                    grads.kv_point_local.weights, grads.kv_point_local.bias, ws);
    Tensor dzt = dz.defined() ? dz : ws.alloc(z.shape());
    copy(dzt, to_dev(dZ, {N, N, Cz}));
    linear_backward(zc, w.attention_2d.weights, to_dev(db2d, {N, N, H}), dzt, true, grads.attention_2d.weights,
                    grads.attention_2d.bias, ws);
    auto host_out = [&](const std::vector<double>& v, const Shape& shape) {
        return Tensor::from_vector(shape, std::vector<float>(v.begin(), v.end()));
    };
    if (drot) *drot = host_out(dR, {N, 3, 3});
    if (dtrans) *dtrans = host_out(dT, {N, 3});
}

}  // namespace axfold
