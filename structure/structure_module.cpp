#include "structure/structure_module.h"

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

void angle_resnet_forward(const AngleResnetWeights& w, const Tensor& act, const Tensor& initial_act,
                          Tensor& unnormalized, Tensor& normalized, Context& ctx, float eps) {
    Workspace& ws = ctx.ws;
    WorkspaceScope scope(ws);
    const int64_t N = act.size(0);
    auto relu_copy = [&](const Tensor& x) {
        Tensor y = ws.alloc(x.shape());
        copy(y, x);
        relu(y);
        return y;
    };
    Tensor a = linear(relu_copy(act), w.input_projection.weights, w.input_projection.bias, ws);
    linear(relu_copy(initial_act), w.input_projection_1.weights, w.input_projection_1.bias, a, 1.f);
    const LinearWeights* blocks[2][2] = {{&w.resblock1, &w.resblock2}, {&w.resblock1_1, &w.resblock2_1}};
    for (auto& blk : blocks) {
        Tensor h = linear(relu_copy(a), blk[0]->weights, blk[0]->bias, ws);
        relu(h);
        linear(h, blk[1]->weights, blk[1]->bias, a, 1.f);  // residual
    }
    Tensor un = linear(relu_copy(a), w.unnormalized_angles.weights, w.unnormalized_angles.bias, ws);  // [N, 14]
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
    o.traj = Tensor::empty({L, N, 7});
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
        layer_norm(act, f.attention_layer_norm.scale, f.attention_layer_norm.offset, 1e-5f, act);
        linear(act, f.transition.weights, f.transition.bias, h1);
        relu(h1);
        linear(h1, f.transition_1.weights, f.transition_1.bias, h2);
        relu(h2);
        linear(h2, f.transition_2.weights, f.transition_2.bias, act, 1.f);
        layer_norm(act, f.transition_layer_norm.scale, f.transition_layer_norm.offset, 1e-5f, act);
        backbone_update(f.affine_update, act, quat, trans, nullptr, ctx);

        Tensor un = o.unnormalized_angles_sin_cos.select(0, l), an = o.angles_sin_cos.select(0, l);
        angle_resnet_forward(f.rigid_sidechain, act, initial_act, un, an, ctx, cfg.eps);
        Tensor trans_a = trans.clone();
        scale(trans_a, cfg.position_scale);
        rot = quaternion_to_rotation(quat);  // the updated frames: this layer's atoms, the next layer's IPA
        Tensor frames = torsion_angles_to_frames(aatype_h, rot, trans_a, an);
        Tensor atom14 = frames_and_literature_positions_to_atom14_pos(aatype_h, frames);
        Tensor sf = o.sidechain_frames.select(0, l), ap = o.atom14_positions.select(0, l);
        copy(sf, frames);
        copy(ap, atom14);
        Tensor tr = o.traj.select(0, l);
        Tensor tr_q = tr.slice(1, 0, 4), tr_t = tr.slice(1, 4, 7);
        copy(tr_q, quat);
        copy(tr_t, trans_a);
        o.states.select(0, l).copy_from(act);
    }
    o.act = host_copy(act);
    o.final_atom14_positions = o.atom14_positions.select(0, L - 1).clone();
    o.final_atom_positions = atom14_to_atom37(o.final_atom14_positions, aatype_h);
    o.final_atom_mask = atom37_mask(aatype_h);
    o.atom14_atom_exists = atom14_mask(aatype_h);
    return o;
}

}  // namespace axfold
