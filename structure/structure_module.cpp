#include "structure/structure_module.h"

#include "evoformer/dropout.h"

#include <cmath>

#include "structure/all_atom.h"

namespace axfold {

void backbone_update(const LinearWeights& w, const Tensor& act, Tensor& quaternion, Tensor& translation,
                     Tensor* affine_update_out, Context& ctx) {
    WorkspaceScope scope(ctx.ws);
    const int64_t N = act.size(0);
    AXF_CHECK(quaternion.is_contiguous() && translation.is_contiguous() && quaternion.size(-1) == 4 &&
                  quaternion.device() == Device::CPU && translation.device() == Device::CPU,
              "backbone_update: quaternion %s / translation %s must be contiguous host tensors",
              quaternion.desc().c_str(), translation.desc().c_str());
    // The [N, 6] update is computed on act's device; the frame algebra (O(N)) runs on the host.
    const Tensor upd = host_copy(linear(act, w.weights, w.bias, ctx.ws));  // [N, 6]
    Tensor rot = quaternion_to_rotation(quaternion);  // rotation of the old frame
    float* q = quaternion.f32();
    float* t = translation.f32();
    const float* u = upd.f32();
    const float* r = rot.f32();
    for (int64_t n = 0; n < N; ++n) {
        const float* un = u + n * 6;
        float* qn = q + n * 4;
        const float w0 = qn[0], x = qn[1], y = qn[2], z = qn[3], b = un[0], c = un[1], d = un[2];
        // q * (0, b, c, d), Hamilton product.
        float nq[4] = {w0 - x * b - y * c - z * d, x + w0 * b + y * d - z * c, y + w0 * c - x * d + z * b,
                       z + w0 * d + x * c - y * b};
        float norm = std::sqrt(nq[0] * nq[0] + nq[1] * nq[1] + nq[2] * nq[2] + nq[3] * nq[3]);
        for (int k = 0; k < 4; ++k) qn[k] = nq[k] / norm;
        const float* rn = r + n * 9;
        for (int k = 0; k < 3; ++k) t[n * 3 + k] += rn[k * 3] * un[3] + rn[k * 3 + 1] * un[4] + rn[k * 3 + 2] * un[5];
    }
    if (affine_update_out) *affine_update_out = upd;
}

void backbone_update_rotation(const LinearWeights& w, const Tensor& act, Tensor& rotation, Tensor& translation,
                              Context& ctx) {
    WorkspaceScope scope(ctx.ws);
    const int64_t N = act.size(0);
    AXF_CHECK(rotation.is_contiguous() && translation.is_contiguous() && rotation.numel() == N * 9 &&
                  translation.numel() == N * 3 && rotation.device() == Device::CPU &&
                  translation.device() == Device::CPU,
              "backbone_update_rotation: rotation %s / translation %s must be contiguous host tensors for %lld residues",
              rotation.desc().c_str(), translation.desc().c_str(), (long long)N);
    const Tensor upd = host_copy(linear(act, w.weights, w.bias, ctx.ws));  // [N, 6]
    float* r = rotation.f32();
    float* t = translation.f32();
    for (int64_t n = 0; n < N; ++n) {
        const float* u = upd.f32() + n * 6;
        float* rn = r + n * 9;
        // dR: the rotation of the unit quaternion (1, b, c, d) / norm.
        const float norm = std::sqrt(1.f + u[0] * u[0] + u[1] * u[1] + u[2] * u[2]);
        const float a = 1.f / norm, b = u[0] / norm, c = u[1] / norm, d = u[2] / norm;
        const float dr[9] = {a * a + b * b - c * c - d * d, 2 * (b * c - a * d),           2 * (b * d + a * c),
                             2 * (b * c + a * d),           a * a - b * b + c * c - d * d, 2 * (c * d - a * b),
                             2 * (b * d - a * c),           2 * (c * d + a * b),           a * a - b * b - c * c + d * d};
        for (int k = 0; k < 3; ++k) t[n * 3 + k] += rn[k * 3] * u[3] + rn[k * 3 + 1] * u[4] + rn[k * 3 + 2] * u[5];
        float nr[9];
        for (int i = 0; i < 3; ++i)
            for (int j = 0; j < 3; ++j)
                nr[i * 3 + j] = rn[i * 3] * dr[j] + rn[i * 3 + 1] * dr[3 + j] + rn[i * 3 + 2] * dr[6 + j];
        std::copy(nr, nr + 9, rn);
    }
}

StructureModuleWeights load_structure_module(const ParamLookup& get, const std::string& scope, bool multimer) {
    StructureModuleWeights w;
    if (!multimer) {
        bind_params(w, scope, get);
        return w;
    }
    bind_params(w.single_layer_norm, join_key(scope, "single_layer_norm"), get);
    bind_params(w.initial_projection, join_key(scope, "initial_projection"), get);
    bind_params(w.pair_layer_norm, join_key(scope, "pair_layer_norm"), get);
    FoldIterationWeights& f = w.fold_iteration;
    const std::string fs = join_key(scope, "fold_iteration");
    f.invariant_point_attention = load_multimer_ipa_weights(get, join_key(fs, "invariant_point_attention"));
    bind_params(f.attention_layer_norm, join_key(fs, "attention_layer_norm"), get);
    bind_params(f.transition, join_key(fs, "transition"), get);
    bind_params(f.transition_1, join_key(fs, "transition_1"), get);
    bind_params(f.transition_2, join_key(fs, "transition_2"), get);
    bind_params(f.transition_layer_norm, join_key(fs, "transition_layer_norm"), get);
    bind_params(f.affine_update, join_key(fs, "quat_rigid/rigid"), get);
    bind_params(f.rigid_sidechain, join_key(fs, "rigid_sidechain"), get);
    return w;
}

namespace {

// relu(x) as a new workspace tensor (x unchanged).
Tensor relu_copy(Workspace& ws, const Tensor& x) {
    Tensor y = ws.alloc(x.shape());
    copy(y, x);
    relu(y);
    return y;
}

}  // namespace

void angle_resnet_forward(const AngleResnetWeights& w, const Tensor& act, const Tensor& initial_act,
                          Tensor& unnormalized, Tensor& normalized, Context& ctx, float eps) {
    Workspace& ws = ctx.ws;
    WorkspaceScope scope(ws);
    const int64_t N = act.size(0);
    Tensor a = linear(relu_copy(ws, act), w.input_projection.weights, w.input_projection.bias, ws);
    linear(relu_copy(ws, initial_act), w.input_projection_1.weights, w.input_projection_1.bias, a, 1.f);
    const LinearWeights* blocks[2][2] = {{&w.resblock1, &w.resblock2}, {&w.resblock1_1, &w.resblock2_1}};
    for (auto& blk : blocks) {
        Tensor h = linear(relu_copy(ws, a), blk[0]->weights, blk[0]->bias, ws);
        relu(h);
        linear(h, blk[1]->weights, blk[1]->bias, a, 1.f);  // residual
    }
    Tensor un = linear(relu_copy(ws, a), w.unnormalized_angles.weights, w.unnormalized_angles.bias, ws);  // [N, 14]
    unnormalized.copy_from(un.view({N, 7, 2}));  // the outputs are host tensors: normalised there
    AXF_CHECK(normalized.device() == Device::CPU && normalized.is_contiguous(),
              "angle_resnet: normalized output %s must be a contiguous host tensor", normalized.desc().c_str());
    normalized.copy_from(unnormalized);
    float* p = normalized.f32();
    for (int64_t i = 0; i < N * 7; ++i) {
        float s = p[2 * i] * p[2 * i] + p[2 * i + 1] * p[2 * i + 1];
        float inv = 1.f / std::sqrt(std::max(s, eps));
        p[2 * i] *= inv;
        p[2 * i + 1] *= inv;
    }
}

void backbone_update_backward(const LinearWeights& w, const Tensor& act, const Tensor& quaternion,
                              const Tensor& translation, const Tensor& daffine_update, const Tensor& dnew_quaternion,
                              const Tensor& dnew_rotation, const Tensor& dnew_translation, const Tensor& dact,
                              const Tensor& dquaternion, const Tensor& dtranslation, LinearWeights& grads, Context& ctx) {
    WorkspaceScope scope(ctx.ws);
    const int64_t N = act.size(0);
    AXF_CHECK(quaternion.numel() == N * 4 && translation.numel() == N * 3, "backbone_update backward: quaternion %s, "
              "translation %s for act %s", quaternion.desc().c_str(), translation.desc().c_str(), act.desc().c_str());
    const std::vector<double> q_in = host_float64(quaternion);
    const std::vector<double> upd = host_float64(linear(act, w.weights, w.bias, ctx.ws));  // (b, c, d, tx, ty, tz)
    auto cot = [&](const Tensor& t, int64_t n) { return t.defined() ? host_float64(t) : std::vector<double>(n, 0.0); };
    const std::vector<double> du_out = cot(daffine_update, N * 6), dq_out = cot(dnew_quaternion, N * 4),
                              dr_out = cot(dnew_rotation, N * 9), dt_out = cot(dnew_translation, N * 3);
    std::vector<float> dupd(N * 6), dq(N * 4), dt(N * 3);
    for (int64_t n = 0; n < N; ++n) {
        // The forward: qn = q / |q|; p = qn + qn (0, b, c, d); new_q = p / |p|; new_t = t + R(qn) (tx, ty, tz).
        double qn[4], qnorm = 0;
        for (int k = 0; k < 4; ++k) qnorm += q_in[n * 4 + k] * q_in[n * 4 + k];
        qnorm = std::sqrt(qnorm);
        for (int k = 0; k < 4; ++k) qn[k] = q_in[n * 4 + k] / qnorm;
        const double* u = &upd[n * 6];
        const double w0 = qn[0], x = qn[1], y = qn[2], z = qn[3], b = u[0], c = u[1], d = u[2];
        const double p[4] = {w0 - x * b - y * c - z * d, x + w0 * b + y * d - z * c, y + w0 * c - x * d + z * b,
                             z + w0 * d + x * c - y * b};
        const double pnorm = std::sqrt(p[0] * p[0] + p[1] * p[1] + p[2] * p[2] + p[3] * p[3]);
        double nq[4];
        for (int k = 0; k < 4; ++k) nq[k] = p[k] / pnorm;
        // d new_q: its own cotangent plus the rotation's, through the quadratic form.
        double dnq[4], dR[3][3];
        for (int k = 0; k < 4; ++k) dnq[k] = dq_out[n * 4 + k];
        for (int k = 0; k < 9; ++k) dR[k / 3][k % 3] = dr_out[n * 9 + k];
        quaternion_to_rotation_backward(nq, dR, dnq);
        // Through the normalisation p / |p|.
        double dot = 0, dp[4];
        for (int k = 0; k < 4; ++k) dot += nq[k] * dnq[k];
        for (int k = 0; k < 4; ++k) dp[k] = (dnq[k] - nq[k] * dot) / pnorm;
        // p = qn + qn (0, b, c, d) (the Hamilton product): d qn and d (b, c, d).
        const double dp_dq[4][4] = {{0, b, c, d}, {-b, 0, -d, c}, {-c, d, 0, -b}, {-d, -c, b, 0}};  // [qn][p]
        const double dp_du[3][4] = {{-x, w0, z, -y}, {-y, -z, w0, x}, {-z, y, -x, w0}};             // [b,c,d][p]
        double dqn[4];
        for (int a = 0; a < 4; ++a) {
            dqn[a] = dp[a];
            for (int k = 0; k < 4; ++k) dqn[a] += dp_dq[a][k] * dp[k];
        }
        for (int a = 0; a < 3; ++a) {
            double g = du_out[n * 6 + a];
            for (int k = 0; k < 4; ++k) g += dp_du[a][k] * dp[k];
            dupd[n * 6 + a] = static_cast<float>(g);
        }
        // new_t = t + R(qn) v: dt = dnew_t, dv = R(qn)^T dnew_t, dR(qn) = dnew_t v^T.
        double Rq[3][3] = {{w0 * w0 + x * x - y * y - z * z, 2 * (x * y - w0 * z), 2 * (x * z + w0 * y)},
                           {2 * (x * y + w0 * z), w0 * w0 - x * x + y * y - z * z, 2 * (y * z - w0 * x)},
                           {2 * (x * z - w0 * y), 2 * (y * z + w0 * x), w0 * w0 - x * x - y * y + z * z}};
        double dRq[3][3];
        for (int j = 0; j < 3; ++j) {
            double g = du_out[n * 6 + 3 + j];
            for (int k = 0; k < 3; ++k) {
                g += Rq[k][j] * dt_out[n * 3 + k];
                dRq[j][k] = dt_out[n * 3 + j] * u[3 + k];
            }
            dupd[n * 6 + 3 + j] = static_cast<float>(g);
            dt[n * 3 + j] = static_cast<float>(dt_out[n * 3 + j]);
        }
        quaternion_to_rotation_backward(qn, dRq, dqn);
        // qn = q / |q|.
        double dot2 = 0;
        for (int k = 0; k < 4; ++k) dot2 += qn[k] * dqn[k];
        for (int k = 0; k < 4; ++k) dq[n * 4 + k] = static_cast<float>((dqn[k] - qn[k] * dot2) / qnorm);
    }
    if (dquaternion.defined()) dquaternion.copy_from(Tensor::from_vector({N, 4}, dq).view(dquaternion.shape()));
    if (dtranslation.defined()) dtranslation.copy_from(Tensor::from_vector({N, 3}, dt).view(dtranslation.shape()));
    const Tensor du = Tensor::from_vector({N, 6}, dupd).to(act.device());
    Tensor da = dact.defined() ? dact : ctx.ws.alloc(act.shape());
    linear_backward(act.contiguous(), w.weights, du, da, false, grads.weights, grads.bias, ctx.ws);
}

void angle_resnet_backward(const AngleResnetWeights& w, const Tensor& act, const Tensor& initial_act,
                           const Tensor& dunnormalized, const Tensor& dnormalized, const Tensor& dact,
                           const Tensor& dinitial_act, AngleResnetWeights& grads, Context& ctx, float eps) {
    Workspace& ws = ctx.ws;
    WorkspaceScope scope(ws);
    const int64_t N = act.size(0);
    // The forward, keeping the residual stream before each block and after the last.
    const Tensor ra = relu_copy(ws, act), ri = relu_copy(ws, initial_act);
    Tensor a0 = linear(ra, w.input_projection.weights, w.input_projection.bias, ws);
    linear(ri, w.input_projection_1.weights, w.input_projection_1.bias, a0, 1.f);
    const LinearWeights* blocks[2][2] = {{&w.resblock1, &w.resblock2}, {&w.resblock1_1, &w.resblock2_1}};
    LinearWeights* gblocks[2][2] = {{&grads.resblock1, &grads.resblock2}, {&grads.resblock1_1, &grads.resblock2_1}};
    Tensor a[3] = {a0, ws.alloc(a0.shape()), ws.alloc(a0.shape())};
    for (int k = 0; k < 2; ++k) {
        copy(a[k + 1], a[k]);
        Tensor h = linear(relu_copy(ws, a[k]), blocks[k][0]->weights, blocks[k][0]->bias, ws);
        relu(h);
        linear(h, blocks[k][1]->weights, blocks[k][1]->bias, a[k + 1], 1.f);
    }
    const Tensor ra2 = relu_copy(ws, a[2]);
    const std::vector<double> un = host_float64(linear(ra2, w.unnormalized_angles.weights, w.unnormalized_angles.bias, ws));
    // d(unnormalized): its own cotangent plus the normalisation's, v / sqrt(max(|v|^2, eps)) per (sin, cos) pair.
    const std::vector<double> dun_out = dunnormalized.defined() ? host_float64(dunnormalized) : std::vector<double>(N * 14, 0.0);
    const std::vector<double> dn_out = dnormalized.defined() ? host_float64(dnormalized) : std::vector<double>(N * 14, 0.0);
    std::vector<float> dun(N * 14);
    for (int64_t i = 0; i < N * 7; ++i) {
        const double v0 = un[2 * i], v1 = un[2 * i + 1], s = v0 * v0 + v1 * v1;
        const double n = std::sqrt(std::max(s, static_cast<double>(eps))), y0 = v0 / n, y1 = v1 / n;
        const double g0 = dn_out[2 * i], g1 = dn_out[2 * i + 1];
        const double dot = s > eps ? y0 * g0 + y1 * g1 : 0.0;  // below eps the norm is a constant
        dun[2 * i] = static_cast<float>(dun_out[2 * i] + (g0 - y0 * dot) / n);
        dun[2 * i + 1] = static_cast<float>(dun_out[2 * i + 1] + (g1 - y1 * dot) / n);
    }
    Tensor da = ws.alloc(a0.shape());
    linear_backward(ra2, w.unnormalized_angles.weights, Tensor::from_vector({N, 14}, dun).to(act.device()), da, false,
                    grads.unnormalized_angles.weights, grads.unnormalized_angles.bias, ws);
    relu_backward(ra2, da, da);
    for (int k = 1; k >= 0; --k) {  // a[k + 1] = a[k] + W2 relu(W1 relu(a[k]))
        const Tensor rk = relu_copy(ws, a[k]);
        Tensor h = linear(rk, blocks[k][0]->weights, blocks[k][0]->bias, ws);
        relu(h);
        Tensor dh = ws.alloc(h.shape()), drk = ws.alloc(rk.shape());
        linear_backward(h, blocks[k][1]->weights, da, dh, false, gblocks[k][1]->weights, gblocks[k][1]->bias, ws);
        relu_backward(h, dh, dh);
        linear_backward(rk, blocks[k][0]->weights, dh, drk, false, gblocks[k][0]->weights, gblocks[k][0]->bias, ws);
        relu_backward(rk, drk, drk);
        add(da, drk);
    }
    Tensor d_ra = dact.defined() ? dact : ws.alloc(act.shape());
    linear_backward(ra, w.input_projection.weights, da, d_ra, false, grads.input_projection.weights,
                    grads.input_projection.bias, ws);
    relu_backward(ra, d_ra, d_ra);
    Tensor d_ri = dinitial_act.defined() ? dinitial_act : ws.alloc(initial_act.shape());
    linear_backward(ri, w.input_projection_1.weights, da, d_ri, false, grads.input_projection_1.weights,
                    grads.input_projection_1.bias, ws);
    relu_backward(ri, d_ri, d_ri);
}

StructureModuleOutputs structure_module_forward(const StructureModuleWeights& w, const StructureModuleConfig& cfg,
                                                const Tensor& single, const Tensor& pair, const Tensor& aatype,
                                                const Tensor& seq_mask, Context& ctx) {
    Workspace& ws = ctx.ws;
    WorkspaceScope scope(ws);
    const int64_t N = single.size(0), Cs = single.size(1), L = cfg.num_layers;
    AXF_CHECK(L >= 1, "structure module: %d layers", cfg.num_layers);
    AXF_CHECK(pair.dim() == 3 && pair.size(0) == N && pair.size(1) == N, "structure module: pair %s for single %s",
              pair.desc().c_str(), single.desc().c_str());
    StructureModuleOutputs o;
    o.traj = cfg.multimer ? Tensor::zeros({L, N, 4, 4}) : Tensor::empty({L, N, 7});
    o.sidechain_frames = Tensor::empty({L, N, 8, 4, 4});
    o.angles_sin_cos = Tensor::empty({L, N, 7, 2});
    o.unnormalized_angles_sin_cos = Tensor::empty({L, N, 7, 2});
    o.atom14_positions = Tensor::empty({L, N, 14, 3});
    o.states = Tensor::empty({L, N, Cs});

    // The activations, the pair and every GEMM stay on single's device (the model's); the frames
    // (quaternions, translations) and the all-atom construction are O(N) host work: each layer sends the
    // rotations and translations up and brings the [N, 6] update and [N, 14] angles down.
    const Device dev = single.device();
    const FoldIterationWeights& f = w.fold_iteration;
    Tensor initial_act = layer_norm(single, w.single_layer_norm.scale, w.single_layer_norm.offset, 1e-5f, ws);
    Tensor act = linear(initial_act, w.initial_projection.weights, w.initial_projection.bias, ws);
    // The pair's layer norm is applied by IPA per chunk of rows (no normalised copy of the pair).
    Tensor quat = Tensor::zeros({N, 4}), trans = Tensor::zeros({N, 3});
    for (int64_t n = 0; n < N; ++n) quat.f32()[n * 4] = 1.f;
    const Tensor mask = seq_mask.contiguous().to(dev);
    const Tensor aatype_h = aatype.to(Device::CPU);
    Tensor h1 = ws.alloc({N, f.transition.weights.size(1)}), h2 = ws.alloc({N, f.transition_1.weights.size(1)});
    Tensor rot = quaternion_to_rotation(quat);  // the current frames' rotations (host)
    for (int64_t l = 0; l < L; ++l) {
        invariant_point_attention_forward(f.invariant_point_attention, act, pair, rot.to(dev), trans.to(dev), mask, act,
                                          true, ctx, cfg.ipa_inf, cfg.eps, &w.pair_layer_norm);
        apply_elementwise_dropout(act, derive_dropout_key(cfg.dropout_key, 2 * l), cfg.dropout_rate);
        layer_norm(act, f.attention_layer_norm.scale, f.attention_layer_norm.offset, 1e-5f, act);
        linear(act, f.transition.weights, f.transition.bias, h1);
        relu(h1);
        linear(h1, f.transition_1.weights, f.transition_1.bias, h2);
        relu(h2);
        linear(h2, f.transition_2.weights, f.transition_2.bias, act, 1.f);
        apply_elementwise_dropout(act, derive_dropout_key(cfg.dropout_key, 2 * l + 1), cfg.dropout_rate);
        layer_norm(act, f.transition_layer_norm.scale, f.transition_layer_norm.offset, 1e-5f, act);
        if (cfg.multimer)
            backbone_update_rotation(f.affine_update, act, rot, trans, ctx);
        else
            backbone_update(f.affine_update, act, quat, trans, nullptr, ctx);

        Tensor un = o.unnormalized_angles_sin_cos.select(0, l), an = o.angles_sin_cos.select(0, l);
        angle_resnet_forward(f.rigid_sidechain, act, initial_act, un, an, ctx, cfg.eps);
        Tensor trans_a = trans.clone();
        scale(trans_a, cfg.position_scale);
        if (!cfg.multimer) rot = quaternion_to_rotation(quat);  // the updated frames: this layer's atoms, next IPA
        Tensor frames = torsion_angles_to_frames(aatype_h, rot, trans_a, an);
        Tensor atom14 = frames_and_literature_positions_to_atom14_pos(aatype_h, frames);
        Tensor sf = o.sidechain_frames.select(0, l), ap = o.atom14_positions.select(0, l);
        copy(sf, frames);
        copy(ap, atom14);
        Tensor tr = o.traj.select(0, l);
        if (cfg.multimer) {  // [N, 4, 4]: [R t; 0 1]
            tr.slice(1, 0, 3).slice(2, 0, 3).copy_from(rot.view({N, 3, 3}));
            tr.slice(1, 0, 3).select(2, 3).copy_from(trans_a);
            fill(tr.select(1, 3).select(1, 3), 1.f);
        } else {
            copy(tr.slice(1, 0, 4), quat);
            copy(tr.slice(1, 4, 7), trans_a);
        }
        o.states.select(0, l).copy_from(act);
    }
    o.act = host_copy(act);
    o.final_atom14_positions = o.atom14_positions.select(0, L - 1).clone();
    o.final_atom_positions = atom14_to_atom37(o.final_atom14_positions, aatype_h);
    o.final_atom_mask = atom37_mask(aatype_h);
    o.atom14_atom_exists = atom14_mask(aatype_h);
    return o;
}

void structure_module_backward(const StructureModuleWeights& w, const StructureModuleConfig& cfg, const Tensor& single,
                               const Tensor& pair, const Tensor& aatype, const Tensor& seq_mask,
                               const StructureModuleCotangents& d, const Tensor& dsingle, const Tensor& dpair,
                               StructureModuleWeights& grads, Context& ctx) {
    AXF_CHECK(!cfg.multimer, "structure module backward: AlphaFold-Multimer's module is not supported yet");
    Workspace& ws = ctx.ws;
    WorkspaceScope scope(ws);
    const int64_t N = single.size(0), L = cfg.num_layers;
    const Device dev = single.device();
    const FoldIterationWeights& f = w.fold_iteration;
    FoldIterationWeights& gf = grads.fold_iteration;
    const Tensor aa = aatype.to(Device::CPU), mask = seq_mask.contiguous().to(dev);
    auto cot = [&](const Tensor& t, int64_t l) { return t.defined() ? t.select(0, l) : Tensor(); };

    // The forward, keeping per layer: act_in (before IPA), act_a (after IPA), act_c (before the transition's
    // norm), act_out; the frames before (q, t) and after; the angles; and the world frames of the atoms.
    const Tensor zn = layer_norm(pair.contiguous(), w.pair_layer_norm.scale, w.pair_layer_norm.offset, 1e-5f, ws);
    Tensor initial_act = layer_norm(single.contiguous(), w.single_layer_norm.scale, w.single_layer_norm.offset, 1e-5f, ws);
    Tensor act = linear(initial_act, w.initial_projection.weights, w.initial_projection.bias, ws);
    struct Layer {
        Tensor act_in, act_a, act_b, act_c, act_out, q, t, q_new, t_new, an;
    };
    std::vector<Layer> layers(L);
    Tensor quat = Tensor::zeros({N, 4}), trans = Tensor::zeros({N, 3});
    for (int64_t n = 0; n < N; ++n) quat.f32()[n * 4] = 1.f;
    for (int64_t l = 0; l < L; ++l) {
        Layer& y = layers[l];
        y.act_in = act.clone();
        y.q = quat.clone();
        y.t = trans.clone();
        invariant_point_attention_forward(f.invariant_point_attention, act, zn, quaternion_to_rotation(quat).to(dev),
                                          trans.to(dev), mask, act, true, ctx, cfg.ipa_inf, cfg.eps);
        apply_elementwise_dropout(act, derive_dropout_key(cfg.dropout_key, 2 * l), cfg.dropout_rate);
        y.act_a = act.clone();
        layer_norm(act, f.attention_layer_norm.scale, f.attention_layer_norm.offset, 1e-5f, act);
        y.act_b = act.clone();
        Tensor h1 = linear(act, f.transition.weights, f.transition.bias, ws);
        relu(h1);
        Tensor h2 = linear(h1, f.transition_1.weights, f.transition_1.bias, ws);
        relu(h2);
        linear(h2, f.transition_2.weights, f.transition_2.bias, act, 1.f);
        apply_elementwise_dropout(act, derive_dropout_key(cfg.dropout_key, 2 * l + 1), cfg.dropout_rate);
        y.act_c = act.clone();
        layer_norm(act, f.transition_layer_norm.scale, f.transition_layer_norm.offset, 1e-5f, act);
        y.act_out = act.clone();
        backbone_update(f.affine_update, act, quat, trans, nullptr, ctx);
        y.q_new = quat.clone();
        y.t_new = trans.clone();
        Tensor un = Tensor::empty({N, 7, 2}), an = Tensor::empty({N, 7, 2});
        angle_resnet_forward(f.rigid_sidechain, act, initial_act, un, an, ctx, cfg.eps);
        y.an = an;
    }

    // Backward, the last layer first. Carried between layers: d act and d t (the rotation is stop-gradient).
    Tensor dact = Tensor::zeros({N, single.size(1)}, DType::F32, dev);
    if (d.act.defined()) copy(dact, d.act.to(dev));
    Tensor dt_carry = Tensor::zeros({N, 3});
    Tensor dzn = Tensor::zeros(zn.shape(), DType::F32, dev);
    Tensor dinitial = Tensor::zeros(initial_act.shape(), DType::F32, dev);
    for (int64_t l = L - 1; l >= 0; --l) {
        const Layer& y = layers[l];
        // This layer's outputs: states, angles, the frames and atoms built from the new frame (scaled).
        if (d.states.defined()) add(dact, cot(d.states, l).to(dev));
        Tensor datom14 = d.atom14_positions.defined() ? cot(d.atom14_positions, l).to(Device::CPU).clone()
                                                      : Tensor::zeros({N, 14, 3});
        if (l == L - 1) {
            if (d.final_atom14_positions.defined()) add(datom14, d.final_atom14_positions.to(Device::CPU));
            if (d.final_atom_positions.defined())
                add(datom14, atom14_to_atom37_backward(d.final_atom_positions.to(Device::CPU), aa));
        }
        Tensor dframes = frames_and_literature_positions_to_atom14_pos_backward(aa, datom14);
        if (d.sidechain_frames.defined()) add(dframes, cot(d.sidechain_frames, l).to(Device::CPU));
        const Tensor rot_new = quaternion_to_rotation(y.q_new);
        Tensor trans_a = y.t_new.clone();
        scale(trans_a, cfg.position_scale);
        const TorsionFramesGrad tg = torsion_angles_to_frames_backward(aa, rot_new, trans_a, y.an, dframes);
        Tensor dan = tg.angles_sin_cos;
        if (d.angles_sin_cos.defined()) add(dan, cot(d.angles_sin_cos, l).to(Device::CPU));
        Tensor dtrans_a = tg.backbone_trans;
        Tensor dq_new = Tensor::zeros({N, 4});
        if (d.traj.defined()) {
            const Tensor tr = cot(d.traj, l).to(Device::CPU).contiguous();
            dq_new.copy_from(tr.slice(1, 0, 4));
            add(dtrans_a, tr.slice(1, 4, 7));
        }
        {  // R_new = R(q_new): its rotation gradient into the quaternion
            const std::vector<double> qv = host_float64(y.q_new), dRv = host_float64(tg.backbone_rot);
            for (int64_t n = 0; n < N; ++n) {
                double q4[4], dR[3][3], g4[4] = {0, 0, 0, 0};
                for (int k = 0; k < 4; ++k) q4[k] = qv[n * 4 + k];
                for (int k = 0; k < 9; ++k) dR[k / 3][k % 3] = dRv[n * 9 + k];
                quaternion_to_rotation_backward(q4, dR, g4);
                for (int k = 0; k < 4; ++k) dq_new.f32()[n * 4 + k] += static_cast<float>(g4[k]);
            }
        }
        // d t_new: the scaled copy's, plus what the later layers used it for.
        Tensor dt_new = dt_carry.clone();
        scale(dtrans_a, cfg.position_scale);
        add(dt_new, dtrans_a);
        // The angle resnet reads act_out and initial_act.
        Tensor dact_r = ws.alloc(dact.shape()), dinit_r = ws.alloc(dinitial.shape());
        angle_resnet_backward(f.rigid_sidechain, y.act_out, initial_act,
                              d.unnormalized_angles_sin_cos.defined() ? cot(d.unnormalized_angles_sin_cos, l) : Tensor(),
                              dan, dact_r, dinit_r, gf.rigid_sidechain, ctx, cfg.eps);
        add(dact, dact_r);
        add(dinitial, dinit_r);
        // The backbone update: act_out and the old translation (the old rotation is stop-gradient).
        Tensor dact_b = ws.alloc(dact.shape()), dq_old = Tensor::empty({N, 4}), dt_old = Tensor::empty({N, 3});
        backbone_update_backward(f.affine_update, y.act_out, y.q, y.t, Tensor(), dq_new, Tensor(), dt_new, dact_b,
                                 dq_old, dt_old, gf.affine_update, ctx);
        add(dact, dact_b);
        dt_carry = dt_old;
        // act_out = LN(act_c); act_c = act_b + transition(act_b); act_b = LN(act_a).
        Tensor dc = ws.alloc(dact.shape());
        layer_norm_backward(y.act_c, f.transition_layer_norm.scale, 1e-5f, dact, dc, gf.transition_layer_norm.scale,
                            gf.transition_layer_norm.offset);
        apply_elementwise_dropout(dc, derive_dropout_key(cfg.dropout_key, 2 * l + 1), cfg.dropout_rate);
        {
            Tensor h1 = linear(y.act_b, f.transition.weights, f.transition.bias, ws);
            relu(h1);
            Tensor h2 = linear(h1, f.transition_1.weights, f.transition_1.bias, ws);
            relu(h2);
            Tensor dh2 = ws.alloc(h2.shape()), dh1 = ws.alloc(h1.shape()), db = ws.alloc(dact.shape());
            linear_backward(h2, f.transition_2.weights, dc, dh2, false, gf.transition_2.weights, gf.transition_2.bias, ws);
            relu_backward(h2, dh2, dh2);
            linear_backward(h1, f.transition_1.weights, dh2, dh1, false, gf.transition_1.weights, gf.transition_1.bias, ws);
            relu_backward(h1, dh1, dh1);
            linear_backward(y.act_b, f.transition.weights, dh1, db, false, gf.transition.weights, gf.transition.bias, ws);
            add(dc, db);  // the residual
        }
        Tensor da = ws.alloc(dact.shape());
        layer_norm_backward(y.act_a, f.attention_layer_norm.scale, 1e-5f, dc, da, gf.attention_layer_norm.scale,
                            gf.attention_layer_norm.offset);
        apply_elementwise_dropout(da, derive_dropout_key(cfg.dropout_key, 2 * l), cfg.dropout_rate);
        // act_a = act_in + IPA(act_in, zn, frames): the frames' rotation is stop-gradient, the translation not.
        Tensor ds = ws.alloc(dact.shape()), dz = ws.alloc(zn.shape()), drot, dtrans;
        invariant_point_attention_backward(f.invariant_point_attention, y.act_in, zn, quaternion_to_rotation(y.q).to(dev),
                                           y.t.to(dev), mask, da, ds, dz, &drot, &dtrans, gf.invariant_point_attention,
                                           ctx, cfg.ipa_inf, cfg.eps);
        add(dzn, dz);
        add(dt_carry, dtrans);
        copy(dact, da);
        add(dact, ds);
    }
    // act_0 = initial_act W + b; initial_act = LN(single); zn = LN(pair).
    Tensor dinit_p = ws.alloc(dinitial.shape());
    linear_backward(initial_act, w.initial_projection.weights, dact, dinit_p, false, grads.initial_projection.weights,
                    grads.initial_projection.bias, ws);
    add(dinitial, dinit_p);
    layer_norm_backward(single.contiguous(), w.single_layer_norm.scale, 1e-5f, dinitial, dsingle,
                        grads.single_layer_norm.scale, grads.single_layer_norm.offset);
    layer_norm_backward(pair.contiguous(), w.pair_layer_norm.scale, 1e-5f, dzn, dpair, grads.pair_layer_norm.scale,
                        grads.pair_layer_norm.offset);
}

}  // namespace axfold
