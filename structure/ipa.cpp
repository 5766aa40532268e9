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

namespace {

// What IPA's attention reads, for the forward and the backward alike: the projections of s, the points in the
// global frame, their views per head, the point logits' weight per head and the mask term.
struct IpaInternals {
    int64_t N, H, C, Cv, P, Pv;
    Tensor qs, kvs;    // [N, H*C], [N, H*(C+Cv)]
    Tensor qpl, kvpl;  // local points [N, 3*H*P], [N, 3*H*(P+Pv)] (x | y | z)
    Tensor qp, kvp;    // global points [N, H*P, 3], [N, H*(P+Pv), 3]: each head's P key points, then its Pv values
    Tensor q3, k3, v3;       // [H, N, C], [H, C, N], [H, N, Cv]
    Tensor qp3, kp3, vp;     // [H, N, P*3], [H, N, P*3], [H, N, Pv*3]
    Tensor point_weight;     // [H]: -softplus(w_h) * point_w0 / 2
    std::vector<double> softplus;
    Tensor mask2d;           // [N, N]: m_i m_j
    float scalar_w, point_w0, attn2d_w;
};

IpaInternals ipa_internals(const InvariantPointAttentionWeights& w, const Tensor& s, const Tensor& rot,
                           const Tensor& trans, const Tensor& mask, Workspace& ws) {
    IpaInternals in;
    const int64_t N = in.N = s.size(0), H = in.H = w.no_heads(), C = in.C = w.c_hidden(), Cv = in.Cv = w.c_v(),
                  P = in.P = w.no_qk_points(), Pv = in.Pv = w.no_v_points();
    in.qs = linear(s, w.q_scalar.weights, w.q_scalar.bias, ws);
    in.kvs = linear(s, w.kv_scalar.weights, w.kv_scalar.bias, ws);
    in.qpl = linear(s, w.q_point_local.weights, w.q_point_local.bias, ws);
    in.kvpl = linear(s, w.kv_point_local.weights, w.kv_point_local.bias, ws);
    in.qp = ws.alloc({N, H * P, 3});
    in.kvp = ws.alloc({N, H * (P + Pv), 3});
    apply_frames(rot, trans, in.qpl.view({N, 3, H * P}).permute({0, 2, 1}), in.qp, false);
    apply_frames(rot, trans, in.kvpl.view({N, 3, H * (P + Pv)}).permute({0, 2, 1}), in.kvp, false);
    in.qp3 = in.qp.view({N, H, P * 3}).permute({1, 0, 2});
    const Tensor kvp3 = in.kvp.view({N, H, (P + Pv) * 3});
    in.kp3 = kvp3.slice(2, 0, P * 3).permute({1, 0, 2});
    in.vp = kvp3.slice(2, P * 3, (P + Pv) * 3).permute({1, 0, 2});
    in.q3 = in.qs.view({N, H, C}).permute({1, 0, 2});
    in.k3 = in.kvs.view({N, H, C + Cv}).slice(2, 0, C).permute({1, 2, 0});
    in.v3 = in.kvs.view({N, H, C + Cv}).slice(2, C, C + Cv).permute({1, 0, 2});
    in.scalar_w = std::sqrt(1.f / (3.f * static_cast<float>(std::max<int64_t>(C, 1))));
    const float point_var = static_cast<float>(std::max<int64_t>(P, 1)) * 9.f / 2.f;
    in.point_w0 = std::sqrt(1.f / (3.f * point_var));
    in.attn2d_w = std::sqrt(1.f / 3.f);
    // The point logits' weight per head (a few floats, from the host).
    const Tensor tpw = w.trainable_point_weights.to(Device::CPU).contiguous();
    std::vector<float> pw(static_cast<size_t>(H));
    in.softplus.resize(static_cast<size_t>(H));
    for (int64_t h = 0; h < H; ++h) {
        const float x = tpw.f32()[h];
        const float sp = x > 20.f ? x : std::log1p(std::exp(x));
        in.softplus[h] = sp;
        pw[h] = -0.5f * (in.point_w0 * sp);
    }
    in.point_weight = Tensor::from_vector({H}, pw).to(s.device());
    // The mask term's m_i m_j (the softmax adds inf * (m_i m_j - 1)).
    in.mask2d = ws.alloc({N, N});
    copy(in.mask2d, mask.unsqueeze(1).expand({N, N}));
    mul(in.mask2d, mask.unsqueeze(0).expand({N, N}));
    return in;
}

// The attention weights of query rows i0..i1 into a [H, i1 - i0, N]: the softmax over j of the scalar, point and
// 2-D terms; zc holds those rows of the (normalised) pair.
void ipa_attention_weights(const InvariantPointAttentionWeights& w, const IpaInternals& in, const Tensor& zc,
                           int64_t i0, int64_t i1, float inf, const Tensor& a, Workspace& ws) {
    WorkspaceScope scope(ws);
    const int64_t H = in.H, ci = i1 - i0, N = in.N;
    Tensor b2d = linear(zc, w.attention_2d.weights, w.attention_2d.bias, ws);  // [ci, N, H]
    Tensor bias = ws.alloc({H, ci, N});
    matmul(in.q3.slice(1, i0, i1), in.k3, a, in.scalar_w, 0.f);
    weighted_sq_distances(in.qp3.slice(1, i0, i1), in.kp3, in.point_weight, bias);
    add(bias, b2d.permute({2, 0, 1}), in.attn2d_w);
    softmax(a, 1.f, in.mask2d.slice(0, i0, i1).unsqueeze(0).expand({H, ci, N}), bias, inf);
}

// The output features [N, H*Cv | H*Pv x | y | z | norm | H*Cz] from the attention's outputs: the value points
// back in each residue's frame, with their norms sqrt(eps + |x|^2).
void ipa_features(const IpaInternals& in, const Tensor& o_scalar, const Tensor& o_point, const Tensor& o_2d,
                  const Tensor& rot, const Tensor& trans, float eps, const Tensor& feat) {
    const int64_t N = in.N, H = in.H, Cv = in.Cv, HPv = in.H * in.Pv, F = feat.size(1);
    copy(feat.slice(1, 0, H * Cv), o_scalar.view({N, H * Cv}));
    copy(feat.slice(1, H * Cv + 4 * HPv, F), o_2d.view({N, F - H * Cv - 4 * HPv}));
    apply_frames(rot, trans, o_point.view({N, HPv, 3}),
                 feat.slice(1, H * Cv, H * Cv + 3 * HPv).unflatten(1, {3, HPv}).permute({0, 2, 1}), true,
                 feat.slice(1, H * Cv + 3 * HPv, H * Cv + 4 * HPv), eps);
}

}  // namespace

void invariant_point_attention_forward(const InvariantPointAttentionWeights& w, const Tensor& s, const Tensor& z,
                                       const Tensor& rot_in, const Tensor& trans_in, const Tensor& mask_in,
                                       const Tensor& out, bool accumulate, Context& ctx, float inf, float eps,
                                       const LayerNormWeights* z_norm) {
    Workspace& ws = ctx.ws;
    WorkspaceScope scope(ws);
    const int64_t N = s.size(0), H = w.no_heads(), Cv = w.c_v(), Pv = w.no_v_points(), Cz = z.size(2);
    AXF_CHECK(z.dim() == 3 && z.size(0) == N && z.size(1) == N, "ipa: pair %s for single %s", z.desc().c_str(),
              s.desc().c_str());
    AXF_CHECK(rot_in.numel() == N * 9 && trans_in.numel() == N * 3 && mask_in.numel() == N,
              "ipa: frames %s / %s or mask %s do not match %lld residues", rot_in.desc().c_str(),
              trans_in.desc().c_str(), mask_in.desc().c_str(), (long long)N);
    const Tensor rot = rot_in.contiguous().view({N, 3, 3}), trans = trans_in.contiguous().view({N, 3});
    const IpaInternals in = ipa_internals(w, s, rot, trans, mask_in.contiguous().view({N}), ws);
    // Attention in chunks of query rows i (ctx.chunk_size): logits [H, ci, N], the 2-D bias and the attention over
    // the pair need only the rows i of the pair, normalised here when z_norm is given.
    Tensor o_scalar = ws.alloc({N, H, Cv}), o_point = ws.alloc({N, H, Pv * 3}), o_2d = ws.alloc({N, H, Cz});
    const int64_t cs = ctx.chunk_size > 0 && ctx.chunk_size < N ? ctx.chunk_size : N;
    for (int64_t i0 = 0; i0 < N; i0 += cs) {
        WorkspaceScope chunk(ws);
        const int64_t i1 = std::min(N, i0 + cs);
        Tensor zc = z_norm ? layer_norm(z.slice(0, i0, i1), z_norm->scale, z_norm->offset, 1e-5f, ws)
                           : z.slice(0, i0, i1);
        Tensor a = ws.alloc({H, i1 - i0, N});
        ipa_attention_weights(w, in, zc, i0, i1, inf, a, ws);
        matmul(a, in.v3, o_scalar.permute({1, 0, 2}).slice(1, i0, i1));
        matmul(a, in.vp, o_point.permute({1, 0, 2}).slice(1, i0, i1));
        matmul(a.permute({1, 0, 2}), zc, o_2d.slice(0, i0, i1));
    }
    Tensor feat = ws.alloc({N, H * Cv + 4 * H * Pv + H * Cz});
    ipa_features(in, o_scalar, o_point, o_2d, rot, trans, eps, feat);
    linear(feat, w.output_projection.weights, w.output_projection.bias, out, accumulate ? 1.f : 0.f);
}

void invariant_point_attention_backward(const InvariantPointAttentionWeights& w, const Tensor& s, const Tensor& z,
                                        const Tensor& rot_in, const Tensor& trans_in, const Tensor& mask_in,
                                        const Tensor& dupdate, const Tensor& ds, const Tensor& dz, Tensor* drot,
                                        Tensor* dtrans, InvariantPointAttentionWeights& grads, Context& ctx, float inf,
                                        float eps) {
    Workspace& ws = ctx.ws;
    WorkspaceScope scope(ws);
    const int64_t N = s.size(0), H = w.no_heads(), C = w.c_hidden(), Cv = w.c_v(), P = w.no_qk_points(),
                  Pv = w.no_v_points(), Cz = z.size(2), HP = H * P, HPv = H * Pv, K = P + Pv;
    AXF_CHECK(z.dim() == 3 && z.size(0) == N && z.size(1) == N && dupdate.shape() == s.shape() && ds.shape() == s.shape(),
              "ipa backward: single %s, pair %s, dupdate %s, ds %s", s.desc().c_str(), z.desc().c_str(),
              dupdate.desc().c_str(), ds.desc().c_str());
    const Device dev = s.device();
    const Tensor sc = s.contiguous(), zc = z.contiguous();
    const Tensor rot = rot_in.contiguous().view({N, 3, 3}).to(dev), trans = trans_in.contiguous().view({N, 3}).to(dev);

    // The forward again, unchunked (a training crop): the attention weights a [H, N, N], its outputs, the features.
    const IpaInternals in = ipa_internals(w, sc, rot, trans, mask_in.contiguous().view({N}).to(dev), ws);
    Tensor a = ws.alloc({H, N, N});
    ipa_attention_weights(w, in, zc, 0, N, inf, a, ws);
    Tensor o_scalar = ws.alloc({N, H, Cv}), o_point = ws.alloc({N, H, Pv * 3}), o_2d = ws.alloc({N, H, Cz});
    matmul(a, in.v3, o_scalar.permute({1, 0, 2}));
    matmul(a, in.vp, o_point.permute({1, 0, 2}));
    matmul(a.permute({1, 0, 2}), zc, o_2d);
    const int64_t F = H * Cv + 4 * HPv + H * Cz, Fp = H * Cv;  // Fp: where the value points' columns start
    Tensor feat = ws.alloc({N, F});
    ipa_features(in, o_scalar, o_point, o_2d, rot, trans, eps, feat);

    // out = feat Wout + bout.
    Tensor dfeat = ws.alloc({N, F});
    linear_backward(feat, w.output_projection.weights, dupdate.contiguous(), dfeat, false,
                    grads.output_projection.weights, grads.output_projection.bias, ws);

    // The value points back in each frame, on the host in float64 (O(N H Pv)): local = R^T (g - t),
    // norm = sqrt(|local|^2 + eps); d g = R d local, d t -= d g, d R += (g - t) d local^T.
    const std::vector<double> R = host_float64(rot), T = host_float64(trans), og = host_float64(o_point);
    const std::vector<double> fp = host_float64(feat.slice(1, Fp, Fp + 4 * HPv)),
                              dfp = host_float64(dfeat.slice(1, Fp, Fp + 4 * HPv));
    std::vector<double> dR(N * 9, 0.0), dT(N * 3, 0.0);
    std::vector<float> dog(N * HPv * 3);  // [N, H, Pv * 3]
    for (int64_t i = 0; i < N; ++i)
        for (int64_t p = 0; p < HPv; ++p) {
            const double* f = &fp[i * 4 * HPv];
            const double* df = &dfp[i * 4 * HPv];
            double dl[3];
            for (int d = 0; d < 3; ++d) dl[d] = df[d * HPv + p] + df[3 * HPv + p] * f[d * HPv + p] / f[3 * HPv + p];
            for (int k = 0; k < 3; ++k) {
                double g = 0;
                for (int d = 0; d < 3; ++d) g += R[i * 9 + k * 3 + d] * dl[d];
                dog[(i * HPv + p) * 3 + k] = static_cast<float>(g);
                dT[i * 3 + k] -= g;
                for (int d = 0; d < 3; ++d) dR[i * 9 + k * 3 + d] += (og[(i * HPv + p) * 3 + k] - T[i * 3 + k]) * dl[d];
            }
        }
    const Tensor do_point = Tensor::from_vector({N, H, Pv * 3}, dog).to(dev).permute({1, 0, 2});  // [H, N, Pv*3]

    // Through the attention's three outputs (ops): d a [H, N, N], and the values' and the pair's gradients.
    const Tensor do_scalar = dfeat.slice(1, 0, Fp).unflatten(1, {H, Cv}).permute({1, 0, 2});  // [H, N, Cv]
    const Tensor do_2d = dfeat.slice(1, Fp + 4 * HPv, F).unflatten(1, {H, Cz});                // [N, H, Cz]
    Tensor da = ws.alloc({H, N, N});
    matmul(do_scalar, in.v3.transpose(1, 2), da);
    matmul(do_point, in.vp.transpose(1, 2), da, 1.f, 1.f);
    matmul(do_2d, zc.transpose(1, 2), da.permute({1, 0, 2}), 1.f, 1.f);
    Tensor dqs = ws.alloc({N, H * C}), dkvs = ws.alloc({N, H * (C + Cv)}), dvp = ws.alloc({H, N, Pv * 3});
    const Tensor dkvs3 = dkvs.view({N, H, C + Cv});
    matmul(a.transpose(1, 2), do_scalar, dkvs3.slice(2, C, C + Cv).permute({1, 0, 2}));
    matmul(a.transpose(1, 2), do_point, dvp);
    Tensor dzt = dz.defined() ? dz : ws.alloc(z.shape());
    matmul(a.permute({1, 2, 0}), do_2d, dzt);  // dz[i] = a[:, i, :]^T do_2d[i]
    softmax_backward(a, da, 1.f, da);          // d logits, in place
    const Tensor& dl = da;
    // The scalar term scalar_w q_i.k_j.
    matmul(dl, in.kvs.view({N, H, C + Cv}).slice(2, 0, C).permute({1, 0, 2}), dqs.view({N, H, C}).permute({1, 0, 2}),
           in.scalar_w, 0.f);
    matmul(dl.transpose(1, 2), in.q3, dkvs3.slice(2, 0, C).permute({1, 0, 2}), in.scalar_w, 0.f);
    // The 2-D term attn2d_w (z_ij W + b)_h.
    Tensor db2d = ws.alloc({N, N, H});
    copy(db2d, dl.permute({1, 2, 0}));
    scale(db2d, in.attn2d_w);
    linear_backward(zc, w.attention_2d.weights, db2d, dzt, true, grads.attention_2d.weights, grads.attention_2d.bias,
                    ws);
    // The point term pw_h |qp_i - kp_j|^2: d qp_i = 2 pw_h (sum_j dl_ij qp_i - (dl kp)_i), d kp_j = 2 pw_h
    // (sum_i dl_ij kp_j - (dl^T qp)_j), d pw_h = sum_ij dl_ij |qp_i - kp_j|^2: the sums as GEMMs on the device,
    // the O(N H P) rest on the host.
    Tensor ones = ws.alloc({std::max(N, H)}), dlkp = ws.alloc({H, N, P * 3}), dltqp = ws.alloc({H, N, P * 3}),
           rows = ws.alloc({H, N, 1}), cols = ws.alloc({H, N, 1}), sqd = ws.alloc({H, N, N}),
           dpw_rows = ws.alloc({H, N, 1});
    fill(ones, 1.f);
    const Tensor ones_n = ones.slice(0, 0, N).view({N, 1}), ones_h = ones.slice(0, 0, H);
    matmul(dl, in.kp3, dlkp);
    matmul(dl.transpose(1, 2), in.qp3, dltqp);
    matmul(dl, ones_n, rows);
    matmul(dl.transpose(1, 2), ones_n, cols);
    weighted_sq_distances(in.qp3, in.kp3, ones_h, sqd);
    mul(sqd, dl);
    matmul(sqd, ones_n, dpw_rows);
    const std::vector<double> qp = host_float64(in.qp), kvp = host_float64(in.kvp), hdlkp = host_float64(dlkp),
                              hdltqp = host_float64(dltqp), hrows = host_float64(rows), hcols = host_float64(cols),
                              hdvp = host_float64(dvp), hdpw = host_float64(dpw_rows);
    std::vector<double> dqp(N * HP * 3), dkvp(N * H * K * 3), dpw(H, 0.0);
    for (int64_t h = 0; h < H; ++h) {
        const double pw2 = 2.0 * (-0.5 * static_cast<double>(in.point_w0) * in.softplus[h]);
        for (int64_t n = 0; n < N; ++n) {
            const int64_t hn = h * N + n;
            dpw[h] += hdpw[hn];
            for (int64_t e = 0; e < P * 3; ++e) {  // e = p * 3 + d
                dqp[(n * HP + h * P) * 3 + e] = pw2 * (hrows[hn] * qp[(n * HP + h * P) * 3 + e] - hdlkp[hn * P * 3 + e]);
                dkvp[(n * H * K + h * K) * 3 + e] =
                    pw2 * (hcols[hn] * kvp[(n * H * K + h * K) * 3 + e] - hdltqp[hn * P * 3 + e]);
            }
            for (int64_t e = 0; e < Pv * 3; ++e) dkvp[(n * H * K + h * K + P) * 3 + e] = hdvp[hn * Pv * 3 + e];
        }
    }
    // pw = -0.5 point_w0 softplus(tpw): softplus' = sigmoid.
    const std::vector<double> tpw = host_float64(w.trainable_point_weights);
    std::vector<float> dtpw(H);
    for (int64_t h = 0; h < H; ++h)
        dtpw[h] = static_cast<float>(dpw[h] * -0.5 * in.point_w0 * (tpw[h] > 20.0 ? 1.0 : 1.0 / (1.0 + std::exp(-tpw[h]))));
    add(grads.trainable_point_weights, Tensor::from_vector({H}, dtpw).to(grads.trainable_point_weights.device()));
    // Global points g = R local + t: d local = R^T dg, dR += dg local^T, dt += dg.
    const std::vector<double> qpl = host_float64(in.qpl), kvpl = host_float64(in.kvpl);
    auto from_global = [&](const std::vector<double>& dg, const std::vector<double>& loc, int64_t Kp) {
        std::vector<float> dloc(N * 3 * Kp);
        for (int64_t n = 0; n < N; ++n)
            for (int64_t p = 0; p < Kp; ++p)
                for (int e = 0; e < 3; ++e) {
                    double v = 0;
                    for (int d = 0; d < 3; ++d) {
                        const double g = dg[(n * Kp + p) * 3 + d];
                        v += R[n * 9 + d * 3 + e] * g;
                        dR[n * 9 + d * 3 + e] += g * loc[n * 3 * Kp + e * Kp + p];
                        if (e == 0) dT[n * 3 + d] += g;
                    }
                    dloc[n * 3 * Kp + e * Kp + p] = static_cast<float>(v);
                }
        return Tensor::from_vector({N, 3 * Kp}, dloc).to(dev);
    };
    // The projections from s.
    linear_backward(sc, w.q_scalar.weights, dqs, ds, false, grads.q_scalar.weights, grads.q_scalar.bias, ws);
    linear_backward(sc, w.kv_scalar.weights, dkvs, ds, true, grads.kv_scalar.weights, grads.kv_scalar.bias, ws);
    linear_backward(sc, w.q_point_local.weights, from_global(dqp, qpl, HP), ds, true, grads.q_point_local.weights,
                    grads.q_point_local.bias, ws);
    linear_backward(sc, w.kv_point_local.weights, from_global(dkvp, kvpl, H * K), ds, true,
                    grads.kv_point_local.weights, grads.kv_point_local.bias, ws);
    auto host_out = [&](const std::vector<double>& v, const Shape& shape) {
        return Tensor::from_vector(shape, std::vector<float>(v.begin(), v.end()));
    };
    if (drot) *drot = host_out(dR, {N, 3, 3});
    if (dtrans) *dtrans = host_out(dT, {N, 3});
}

}  // namespace axfold
