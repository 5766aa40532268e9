#include "evoformer/template_embedding.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "evoformer/dropout.h"
#include "evoformer/embedders.h"

namespace axfold {

namespace {

Tensor host_f32(const Tensor& t, const char* what) {
    AXF_CHECK(t.dtype() == DType::F32, "%s must be float32, got %s", what, t.desc().c_str());
    return t.to(Device::CPU).contiguous();
}

constexpr int kAtomN = 0, kAtomCA = 1, kAtomC = 2;  // atom37 order

}  // namespace

TemplateEmbeddingWeights load_template_embedding(const ParamLookup& get, const std::string& scope) {
    TemplateEmbeddingWeights w;
    const std::string single = scope + "/single_template_embedding";
    const std::string stack = single + "/template_pair_stack/__layer_stack_no_state";
    bind_params(w.embedding2d, single + "/embedding2d", get);
    bind_params(w.output_layer_norm, single + "/output_layer_norm", get);
    w.attention.gating = false;
    bind_params(w.attention, scope + "/attention", get);
    const std::string probe = stack + "/pair_transition/input_layer_norm//scale";
    Tensor p = get(probe);
    AXF_CHECK(p.dim() == 2, "parameter %s has shape %s: expected a stacked [blocks, c_t] array", probe.c_str(),
              shape_str(p.shape()).c_str());
    w.template_pair_stack.resize(static_cast<size_t>(p.size(0)));
    for (size_t l = 0; l < w.template_pair_stack.size(); ++l)
        bind_params(w.template_pair_stack[l], stack, get, static_cast<int>(l));
    AXF_CHECK(w.embedding2d.weights.dim() == 2 && w.embedding2d.weights.size(0) == TemplatePairFeatConfig{}.channels(),
              "parameter %s/embedding2d//weights has shape %s: expected [%lld, c_t]", single.c_str(),
              shape_str(w.embedding2d.weights.shape()).c_str(), (long long)TemplatePairFeatConfig{}.channels());
    AXF_CHECK(w.attention.key_w.size(0) == w.c_t(), "template pointwise attention key_w %s does not match c_t %lld",
              shape_str(w.attention.key_w.shape()).c_str(), (long long)w.c_t());
    return w;
}

namespace {

// One template's pair-feature inputs, checked and on the host, for building the features row block by row block.
struct PairFeatSource {
    int64_t N = 0, B = 0, C = 0;
    std::vector<int64_t> aa;          // [N]
    std::vector<float> bb;            // [N] backbone mask: N, CA and C present
    std::vector<float> lower, upper;  // [B] squared-distance bin edges
    Tensor pb, pbm;                   // [N, 3], [N] (host float32)
};

PairFeatSource pair_feat_source(const Tensor& template_aatype, const Tensor& template_all_atom_mask,
                                const Tensor& template_pseudo_beta, const Tensor& template_pseudo_beta_mask,
                                const TemplatePairFeatConfig& cfg) {
    PairFeatSource s;
    s.aa = host_int64(template_aatype);
    const int64_t N = s.N = static_cast<int64_t>(s.aa.size());
    AXF_CHECK(template_all_atom_mask.dim() == 2 && template_all_atom_mask.size(0) == N &&
                  template_all_atom_mask.size(1) == 37,
              "template_all_atom_mask %s, expected [%lld, 37]", template_all_atom_mask.desc().c_str(), (long long)N);
    AXF_CHECK(template_pseudo_beta.dim() == 2 && template_pseudo_beta.size(0) == N && template_pseudo_beta.size(1) == 3,
              "template_pseudo_beta %s, expected [%lld, 3]", template_pseudo_beta.desc().c_str(), (long long)N);
    AXF_CHECK(template_pseudo_beta_mask.numel() == N, "template_pseudo_beta_mask %s, expected [%lld]",
              template_pseudo_beta_mask.desc().c_str(), (long long)N);
    AXF_CHECK(!cfg.use_unit_vector, "template unit vectors are not implemented (AF2 monomer does not use them)");
    const int64_t A = TemplatePairFeatConfig::kAatypeClasses;
    s.B = cfg.num_bins;
    s.C = cfg.channels();
    for (int64_t i = 0; i < N; ++i)
        AXF_CHECK(s.aa[i] >= 0 && s.aa[i] < A, "template_aatype %lld at residue %lld is outside 0..%lld",
                  (long long)s.aa[i], (long long)i, (long long)(A - 1));
    const Tensor am = host_f32(template_all_atom_mask, "template_all_atom_mask");
    s.pb = host_f32(template_pseudo_beta, "template_pseudo_beta");
    s.pbm = host_f32(template_pseudo_beta_mask, "template_pseudo_beta_mask");
    s.lower.resize(s.B);
    s.upper.resize(s.B);
    for (int64_t b = 0; b < s.B; ++b) {
        float e = cfg.min_bin + (cfg.max_bin - cfg.min_bin) * static_cast<float>(b) / static_cast<float>(s.B - 1);
        s.lower[b] = e * e;
    }
    for (int64_t b = 0; b < s.B; ++b) s.upper[b] = b + 1 < s.B ? s.lower[b + 1] : 1e8f;
    s.bb.resize(N);
    const float* m = am.f32();
    for (int64_t i = 0; i < N; ++i) s.bb[i] = m[i * 37 + kAtomN] * m[i * 37 + kAtomCA] * m[i * 37 + kAtomC];
    return s;
}

// Rows [i0, i1) of the features into out [(i1 - i0) * N * C] (and the 2-D masks into pb2d / bb2d when given).
void write_pair_feat(const PairFeatSource& s, int64_t i0, int64_t i1, float* out, float* pb2d, float* bb2d) {
    const int64_t N = s.N, B = s.B, C = s.C, A = TemplatePairFeatConfig::kAatypeClasses;
    const float* p = s.pb.f32();
    const float* pm = s.pbm.f32();
    std::memset(out, 0, sizeof(float) * static_cast<size_t>((i1 - i0) * N * C));
    for (int64_t i = i0; i < i1; ++i)
        for (int64_t j = 0; j < N; ++j) {
            const float bb2 = s.bb[i] * s.bb[j], pb2 = pm[i] * pm[j];
            const int64_t r = (i - i0) * N + j;
            if (pb2d) pb2d[r] = pb2;
            if (bb2d) bb2d[r] = bb2;
            float* f = out + r * C;
            float d2 = 0.f;
            for (int c = 0; c < 3; ++c) {
                float diff = p[i * 3 + c] - p[j * 3 + c];
                d2 += diff * diff;
            }
            for (int64_t b = 0; b < B; ++b) f[b] = (d2 > s.lower[b] && d2 < s.upper[b]) ? bb2 : 0.f;
            f[B] = pb2 * bb2;
            f[B + 1 + s.aa[j]] = bb2;
            f[B + 1 + A + s.aa[i]] = bb2;
            // f[B + 1 + 2A .. + 3): unit vector, zero (use_template_unit_vector = False)
            f[C - 1] = bb2 * bb2;
        }
}

// Template t's [N, N, 88] pair features a block of rows at a time: built on the host, sent to `device` when the
// model runs on one, and handed to fn(feat [rows, N, 88], first row, end row).
void for_each_pair_feat_block(const TemplatePairInputs& in, int64_t t, const TemplatePairFeatConfig& cfg, Device device,
                              Context& ctx, const std::function<void(const Tensor&, int64_t, int64_t)>& fn) {
    Workspace& ws = ctx.ws;
    WorkspaceScope scope(ws);
    const PairFeatSource src =
        pair_feat_source(in.template_aatype.select(0, t), in.template_all_atom_mask.select(0, t),
                         in.template_pseudo_beta.select(0, t), in.template_pseudo_beta_mask.select(0, t), cfg);
    const int64_t N = src.N, C = src.C, rows = embed_block_rows(ctx.chunk_size, N, N * C);
    const bool on_host = device == Device::CPU;
    Tensor host_block = on_host ? ws.alloc({rows, N, C}) : Tensor::empty({rows, N, C});
    Tensor dev_block = on_host ? host_block : ws.alloc({rows, N, C});
    for (int64_t i0 = 0; i0 < N; i0 += rows) {
        const int64_t nb = std::min(rows, N - i0);
        write_pair_feat(src, i0, i0 + nb, host_block.f32(), nullptr, nullptr);
        Tensor feat = dev_block.slice(0, 0, nb);
        if (!on_host) feat.copy_from(host_block.slice(0, 0, nb));
        fn(feat, i0, i0 + nb);
    }
}

// The pointwise attention over pair rows [i0, i0 + nb) (P = nb N positions, each attending over the T templates):
// the queries [P, 1, H, C], the keys and values [P, T, H, C] (views of [T, P, H C] buffers) and the output o
// [P, 1, H, C], all in ws.
struct PointwiseBlock {
    Tensor q, k, v, o;
};
PointwiseBlock pointwise_attention_block(const AttentionWeights& w, const Tensor& pair, const Tensor& template_act,
                                         const Tensor& mask_t, int64_t i0, int64_t nb, float inf, Workspace& ws) {
    const int64_t N = pair.size(1), T = template_act.size(0), H = w.no_heads(), C = w.c_hidden(), P = nb * N;
    PointwiseBlock b;
    b.q = linear(pair.slice(0, i0, i0 + nb), w.query_w, Tensor(), ws).view({P, 1, H, C});
    Tensor k = ws.alloc({T, P, H * C}), v = ws.alloc({T, P, H * C});
    for (int64_t t = 0; t < T; ++t) {
        const Tensor x = template_act.select(0, t).slice(0, i0, i0 + nb);  // [nb, N, c_t]
        linear(x, w.key_w, Tensor(), k.select(0, t).view({nb, N, H * C}));
        linear(x, w.value_w, Tensor(), v.select(0, t).view({nb, N, H * C}));
    }
    b.k = k.view({T, P, H, C}).permute({1, 0, 2, 3});
    b.v = v.view({T, P, H, C}).permute({1, 0, 2, 3});
    b.o = ws.alloc({P, 1, H, C});
    attention(b.q, b.k, b.v, mask_t.expand({P, T}), Tensor(), 1.f / std::sqrt(static_cast<float>(C)), inf, b.o, ws);
    return b;
}

// The constants of template t's block b: with training dropout, a key of its own.
TrunkConstants template_block_constants(const TrunkConstants& k, int64_t t, size_t b) {
    TrunkConstants kb = k;
    if (k.dropout_key) kb.dropout_key = derive_dropout_key(derive_dropout_key(k.dropout_key, t), b);
    return kb;
}

}  // namespace

Tensor template_pair_feat(const Tensor& template_aatype, const Tensor& template_all_atom_mask,
                          const Tensor& template_pseudo_beta, const Tensor& template_pseudo_beta_mask,
                          const TemplatePairFeatConfig& cfg, Tensor* pb_mask_2d, Tensor* bb_mask_2d) {
    const PairFeatSource s =
        pair_feat_source(template_aatype, template_all_atom_mask, template_pseudo_beta, template_pseudo_beta_mask, cfg);
    const int64_t N = s.N;
    Tensor feat = Tensor::empty({N, N, s.C});
    if (pb_mask_2d) *pb_mask_2d = Tensor::empty({N, N});
    if (bb_mask_2d) *bb_mask_2d = Tensor::empty({N, N});
    write_pair_feat(s, 0, N, feat.f32(), pb_mask_2d ? pb_mask_2d->f32() : nullptr,
                    bb_mask_2d ? bb_mask_2d->f32() : nullptr);
    return feat;
}

void template_pair_stack_block_forward(const TemplatePairStackBlockWeights& w, Tensor& act, const Tensor& pair_mask,
                                       Context& ctx, const TrunkConstants& k, const TemplateObserver& observe) {
    auto note = [&](const char* name) {
        if (observe) observe(name, -1, act);
    };
    // Dropped out in training as the Evoformer's pair stack is (evoformer/dropout.h).
    auto residual = [&](DropoutSite site, auto&& update) { residual_update(act, k.dropout_key, site, ctx, update); };
    auto attentions = [&] {
        residual(DropoutSite::TriangleAttentionStarting, [&](const Tensor& out, bool acc) {
            triangle_attention_forward(w.triangle_attention_starting_node, false, act, pair_mask, out, acc, ctx, k);
        });
        note("pair_after_triangle_attention_starting_node");
        residual(DropoutSite::TriangleAttentionEnding, [&](const Tensor& out, bool acc) {
            triangle_attention_forward(w.triangle_attention_ending_node, true, act, pair_mask, out, acc, ctx, k);
        });
        note("pair_after_triangle_attention_ending_node");
    };
    if (!w.multimer) attentions();
    residual(DropoutSite::TriangleMultiplicationOutgoing, [&](const Tensor& out, bool acc) {
        triangle_multiplication_forward(w.triangle_multiplication_outgoing, false, act, pair_mask, out, acc, ctx, k);
    });
    note("pair_after_triangle_multiplication_outgoing");
    residual(DropoutSite::TriangleMultiplicationIncoming, [&](const Tensor& out, bool acc) {
        triangle_multiplication_forward(w.triangle_multiplication_incoming, true, act, pair_mask, out, acc, ctx, k);
    });
    note("pair_after_triangle_multiplication_incoming");
    if (w.multimer) attentions();
    transition_forward(w.pair_transition, act, act, true, ctx, k);
}

void template_pointwise_attention_forward(const AttentionWeights& w, const Tensor& pair, const Tensor& template_act,
                                          const Tensor& template_mask, Tensor& out, bool accumulate, Context& ctx,
                                          const TrunkConstants& k) {
    AXF_CHECK(pair.dim() == 3 && pair.size(0) == pair.size(1),
              "template pointwise attention: pair %s must be [N, N, c_z]", pair.desc().c_str());
    const int64_t N = pair.size(0), T = template_act.size(0), H = w.no_heads(), C = w.c_hidden();
    AXF_CHECK(template_act.dim() == 4 && template_act.size(1) == N && template_act.size(2) == N &&
                  template_act.size(3) == w.key_w.size(0),
              "template pointwise attention: template_act %s for pair %s and key_w %s", template_act.desc().c_str(),
              pair.desc().c_str(), shape_str(w.key_w.shape()).c_str());
    AXF_CHECK(template_mask.dim() == 1 && template_mask.size(0) == T, "template_mask %s, expected [%lld]",
              template_mask.desc().c_str(), (long long)T);
    AXF_CHECK(out.shape() == pair.shape(), "template pointwise attention: out %s for pair %s", out.desc().c_str(),
              pair.desc().c_str());
    AXF_CHECK(out.dtype() == DType::F32, "template pointwise attention: out %s must be float32", out.desc().c_str());
    AXF_CHECK(!w.gating, "template pointwise attention has no gating in AF2");
    const Tensor tm = host_f32(template_mask, "template_mask");
    float sum = 0.f;
    for (int64_t t = 0; t < T; ++t) sum += tm.f32()[t];
    if (!(sum > 0.f)) {  // AF2: embedding *= (sum(template_mask) > 0)
        if (!accumulate) fill(out, 0.f);
        return;
    }
    Workspace& ws = ctx.ws;
    WorkspaceScope scope(ws);
    const int64_t Ct = template_act.size(3), Cz = out.size(2);
    const Tensor mask_t = template_mask.to(pair.device()).contiguous().view({1, T});
    // Blocks of rows i: each position (i, j) attends on its own, so a block's queries, keys and values
    // ([rows * N, T, H, C]) are all it needs, and a block's update may go into `out` even when out is the
    // pair (its queries are formed before). Per block: q, o and the update (H*C, H*C, c_z) and T keys and
    // values; the update is added after it is formed, so writing in place rounds as writing elsewhere.
    const int64_t rows = embed_block_rows(ctx.chunk_size, N, N * ((2 * T + 2) * H * C + Cz + Ct));
    for (int64_t i0 = 0; i0 < N; i0 += rows) {
        WorkspaceScope block(ws);
        const int64_t nb = std::min(rows, N - i0);
        const Tensor o = pointwise_attention_block(w, pair, template_act, mask_t, i0, nb, k.inf, ws).o;
        Tensor dst = out.slice(0, i0, i0 + nb);
        if (accumulate) {
            Tensor u = ws.alloc({nb, N, Cz});
            linear(o.view({nb, N, H * C}), w.output_w, w.output_b, u);
            add(dst, u);
        } else {
            linear(o.view({nb, N, H * C}), w.output_w, w.output_b, dst);
        }
    }
}

void template_embedding_forward(const TemplateEmbeddingWeights& w, const TemplatePairInputs& in, const Tensor& pair,
                                const Tensor& pair_mask, Tensor& out, bool accumulate, Context& ctx,
                                const TrunkConstants& k, const TemplatePairFeatConfig& cfg,
                                const TemplateObserver& observe) {
    const int64_t N = pair.size(0), T = in.template_aatype.size(0), Ct = w.c_t();
    AXF_CHECK(in.template_aatype.dim() == 2 && in.template_aatype.size(1) == N,
              "template_aatype %s for a pair of %lld residues", in.template_aatype.desc().c_str(), (long long)N);
    AXF_CHECK(in.template_all_atom_mask.dim() == 3 && in.template_all_atom_mask.size(0) == T &&
                  in.template_pseudo_beta.dim() == 3 && in.template_pseudo_beta.size(0) == T &&
                  in.template_pseudo_beta_mask.dim() == 2 && in.template_pseudo_beta_mask.size(0) == T,
              "template features disagree on the template count: aatype %s, all_atom_mask %s, pseudo_beta %s, "
              "pseudo_beta_mask %s",
              in.template_aatype.desc().c_str(), in.template_all_atom_mask.desc().c_str(),
              in.template_pseudo_beta.desc().c_str(), in.template_pseudo_beta_mask.desc().c_str());
    Workspace& ws = ctx.ws;
    WorkspaceScope scope(ws);
    Tensor act = ws.alloc({T, N, N, Ct});
    for (int64_t t = 0; t < T; ++t) {
        Tensor a = act.select(0, t);
        for_each_pair_feat_block(in, t, cfg, pair.device(), ctx, [&](const Tensor& feat, int64_t i0, int64_t i1) {
            linear(feat, w.embedding2d.weights, w.embedding2d.bias, a.slice(0, i0, i1));
        });
        if (observe) observe("template_pair_act_embedded", t, a);
        for (size_t b = 0; b < w.template_pair_stack.size(); ++b)
            template_pair_stack_block_forward(w.template_pair_stack[b], a, pair_mask, ctx,
                                              template_block_constants(k, t, b));
        layer_norm(a, w.output_layer_norm.scale, w.output_layer_norm.offset, k.eps, a);
        if (observe) observe("template_pair_act_after_stack", t, a);
    }
    // In place (out == pair) too: the pointwise attention forms each row block's queries before its update.
    template_pointwise_attention_forward(w.attention, pair, act, in.template_mask, out, accumulate, ctx, k);
}

void template_pair_stack_block_backward(const TemplatePairStackBlockWeights& w, const Tensor& act,
                                        const Tensor& pair_mask, Tensor& dact, TemplatePairStackBlockWeights& grads,
                                        Context& ctx, const TrunkConstants& k) {
    AXF_CHECK(!w.multimer, "template pair stack backward: AlphaFold-Multimer's block is not supported");
    AXF_CHECK(act.dtype() == DType::F32 && dact.shape() == act.shape() && dact.is_contiguous(),
              "template pair stack backward: act %s (float32), dact %s (contiguous, its shape)", act.desc().c_str(),
              dact.desc().c_str());
    // The forward again, keeping the states between the residual updates: zs[i] is the input of step i
    // (starting-node attention, ending-node attention, outgoing and incoming multiplications, transition).
    std::vector<Tensor> zs{act};
    Tensor a = act.clone();
    template_pair_stack_block_forward(w, a, pair_mask, ctx, k,
                                      [&](const char*, int64_t, const Tensor& t) { zs.push_back(t.clone()); });
    AXF_CHECK(zs.size() == 5, "template pair stack backward: %zu states observed", zs.size());
    // Each step x' = x + f(x): dx = dx' + J_f^T du with du = dx' (through the forward's dropout mask when training
    // drops out), copied so that the step's backward may accumulate into dx.
    Tensor du = Tensor::empty(act.shape(), DType::F32, act.device());
    auto update_cotangent = [&](DropoutSite site) {
        copy(du, dact);
        apply_dropout(du, k.dropout_key, site);
        return du;
    };
    transition_backward(w.pair_transition, zs[4], update_cotangent(DropoutSite::None), dact, true,
                        grads.pair_transition, ctx, k);
    triangle_multiplication_backward(w.triangle_multiplication_incoming, true, zs[3], pair_mask,
                                     update_cotangent(DropoutSite::TriangleMultiplicationIncoming), dact, true,
                                     grads.triangle_multiplication_incoming, ctx, k);
    triangle_multiplication_backward(w.triangle_multiplication_outgoing, false, zs[2], pair_mask,
                                     update_cotangent(DropoutSite::TriangleMultiplicationOutgoing), dact, true,
                                     grads.triangle_multiplication_outgoing, ctx, k);
    triangle_attention_backward(w.triangle_attention_ending_node, true, zs[1], pair_mask,
                                update_cotangent(DropoutSite::TriangleAttentionEnding), dact, true,
                                grads.triangle_attention_ending_node, ctx, k);
    triangle_attention_backward(w.triangle_attention_starting_node, false, zs[0], pair_mask,
                                update_cotangent(DropoutSite::TriangleAttentionStarting), dact, true,
                                grads.triangle_attention_starting_node, ctx, k);
}

void template_pointwise_attention_backward(const AttentionWeights& w, const Tensor& pair, const Tensor& template_act,
                                           const Tensor& template_mask, const Tensor& dout, const Tensor& dpair,
                                           const Tensor& dtemplate_act, AttentionWeights& grads, Context& ctx,
                                           const TrunkConstants& k) {
    const int64_t N = pair.size(0), T = template_act.size(0), H = w.no_heads(), C = w.c_hidden();
    const int64_t Ct = template_act.size(3), Cz = pair.size(2);
    AXF_CHECK(dout.shape() == pair.shape() && dpair.shape() == pair.shape() && dpair.is_contiguous() &&
                  dtemplate_act.shape() == template_act.shape() && dtemplate_act.is_contiguous() &&
                  template_act.is_contiguous() && pair.is_contiguous(),
              "template pointwise attention backward: pair %s, template_act %s, dout %s, dpair %s, dtemplate_act %s "
              "(contiguous, the inputs' shapes)",
              pair.desc().c_str(), template_act.desc().c_str(), dout.desc().c_str(), dpair.desc().c_str(),
              dtemplate_act.desc().c_str());
    const Tensor tm = host_f32(template_mask, "template_mask");
    float sum = 0.f;
    for (int64_t t = 0; t < T; ++t) sum += tm.f32()[t];
    if (!(sum > 0.f)) return;  // the embedding was multiplied by 0
    Workspace& ws = ctx.ws;
    WorkspaceScope scope(ws);
    const Tensor mask_t = template_mask.to(pair.device()).contiguous().view({1, T});
    const float scale = 1.f / std::sqrt(static_cast<float>(C));
    const int64_t rows = embed_block_rows(ctx.chunk_size, N, N * ((4 * T + 5) * H * C + 2 * Cz + 2 * Ct));
    for (int64_t i0 = 0; i0 < N; i0 += rows) {
        WorkspaceScope block(ws);
        const int64_t nb = std::min(rows, N - i0), P = nb * N;
        // The forward's q, k, v and attention output for this block of rows, then backward: out = o Wo + bo, the
        // attention, the projections.
        const Tensor x = pair.slice(0, i0, i0 + nb);
        const PointwiseBlock f = pointwise_attention_block(w, pair, template_act, mask_t, i0, nb, k.inf, ws);
        auto per_position = [&](const Tensor& t) { return t.view({T, P, H, C}).permute({1, 0, 2, 3}); };
        Tensor dy = ws.alloc({nb, N, Cz});
        copy(dy, dout.slice(0, i0, i0 + nb));
        Tensor dO = ws.alloc({P, 1, H, C});
        linear_backward(f.o.view({nb, N, H * C}), w.output_w, dy, dO.view({nb, N, H * C}), false, grads.output_w,
                        grads.output_b, ws);
        Tensor dq = ws.alloc({P, 1, H, C}), dk = ws.alloc({T, P, H * C}), dv = ws.alloc({T, P, H * C});
        attention_backward(f.q, f.k, f.v, mask_t.expand({P, T}), Tensor(), scale, k.inf, dO, dq, per_position(dk),
                           per_position(dv), Tensor(), ws);
        linear_backward(x, w.query_w, dq.view({nb, N, H, C}), dpair.slice(0, i0, i0 + nb), true, grads.query_w,
                        Tensor(), ws);
        for (int64_t t = 0; t < T; ++t) {
            const Tensor a = template_act.select(0, t).slice(0, i0, i0 + nb);
            const Tensor da = dtemplate_act.select(0, t).slice(0, i0, i0 + nb);
            linear_backward(a, w.key_w, dk.select(0, t).view({nb, N, H, C}), da, true, grads.key_w, Tensor(), ws);
            linear_backward(a, w.value_w, dv.select(0, t).view({nb, N, H, C}), da, true, grads.value_w, Tensor(), ws);
        }
    }
}

void template_embedding_backward(const TemplateEmbeddingWeights& w, const TemplatePairInputs& in, const Tensor& pair,
                                 const Tensor& pair_mask, const Tensor& dout, const Tensor& dpair,
                                 TemplateEmbeddingWeights& grads, Context& ctx, const TrunkConstants& k,
                                 const TemplatePairFeatConfig& cfg) {
    const int64_t N = pair.size(0), T = in.template_aatype.size(0), Ct = w.c_t();
    Workspace& ws = ctx.ws;
    WorkspaceScope scope(ws);
    // Template t's embedded features, and its stack's blocks applied to them, keeping each block's input.
    auto stack = [&](int64_t t, Tensor a, std::vector<Tensor>* inputs) {
        for_each_pair_feat_block(in, t, cfg, pair.device(), ctx, [&](const Tensor& feat, int64_t i0, int64_t i1) {
            linear(feat, w.embedding2d.weights, w.embedding2d.bias, a.slice(0, i0, i1));
        });
        for (size_t b = 0; b < w.template_pair_stack.size(); ++b) {
            if (inputs) inputs->push_back(a.clone());
            template_pair_stack_block_forward(w.template_pair_stack[b], a, pair_mask, ctx,
                                              template_block_constants(k, t, b));
        }
    };
    // The pointwise attention's inputs (the stacks' outputs after the layer norm) and its backward.
    Tensor act = ws.alloc({T, N, N, Ct}), dact = ws.alloc({T, N, N, Ct});
    for (int64_t t = 0; t < T; ++t) {
        Tensor a = act.select(0, t);
        stack(t, a, nullptr);
        layer_norm(a, w.output_layer_norm.scale, w.output_layer_norm.offset, k.eps, a);
    }
    fill(dact, 0.f);
    template_pointwise_attention_backward(w.attention, pair, act, in.template_mask, dout, dpair, dact, grads.attention,
                                          ctx, k);
    // Each template's stack again, backward: the layer norm, the blocks in reverse, the feature embedding.
    for (int64_t t = 0; t < T; ++t) {
        WorkspaceScope one(ws);
        Tensor a = act.select(0, t);  // reused: its attention input is no longer needed
        std::vector<Tensor> inputs;
        stack(t, a, &inputs);
        Tensor da = ws.alloc({N, N, Ct});
        layer_norm_backward(a, w.output_layer_norm.scale, k.eps, dact.select(0, t), da, grads.output_layer_norm.scale,
                            grads.output_layer_norm.offset);
        for (size_t b = w.template_pair_stack.size(); b-- > 0;)
            template_pair_stack_block_backward(w.template_pair_stack[b], inputs[b], pair_mask, da,
                                               grads.template_pair_stack[b], ctx, template_block_constants(k, t, b));
        for_each_pair_feat_block(in, t, cfg, pair.device(), ctx, [&](const Tensor& feat, int64_t i0, int64_t i1) {
            linear_backward(feat, w.embedding2d.weights, da.slice(0, i0, i1), Tensor(), false,
                            grads.embedding2d.weights, grads.embedding2d.bias, ws);
        });
    }
}

Tensor template_angle_feat(const Tensor& template_aatype, const Tensor& sin_cos, const Tensor& alt_sin_cos,
                           const Tensor& torsion_mask) {
    const std::vector<int64_t> aa = host_int64(template_aatype);
    AXF_CHECK(template_aatype.dim() == 2, "template_aatype %s, expected [T, N]", template_aatype.desc().c_str());
    const int64_t T = template_aatype.size(0), N = template_aatype.size(1), A = TemplatePairFeatConfig::kAatypeClasses;
    const Shape sc{T, N, 7, 2};
    AXF_CHECK(sin_cos.shape() == sc && alt_sin_cos.shape() == sc && torsion_mask.shape() == Shape({T, N, 7}),
              "template torsion features: sin_cos %s, alt %s, mask %s for template_aatype %s (expected [T, N, 7, 2] "
              "and [T, N, 7])",
              sin_cos.desc().c_str(), alt_sin_cos.desc().c_str(), torsion_mask.desc().c_str(),
              template_aatype.desc().c_str());
    const Tensor s = host_f32(sin_cos, "template_torsion_angles_sin_cos");
    const Tensor a = host_f32(alt_sin_cos, "template_alt_torsion_angles_sin_cos");
    const Tensor m = host_f32(torsion_mask, "template_torsion_angles_mask");
    const int64_t C = A + 14 + 14 + 7;
    Tensor feat = Tensor::zeros({T, N, C});
    float* o = feat.f32();
    for (int64_t r = 0; r < T * N; ++r) {
        AXF_CHECK(aa[r] >= 0 && aa[r] < A, "template_aatype %lld at [%lld, %lld] is outside 0..%lld", (long long)aa[r],
                  (long long)(r / N), (long long)(r % N), (long long)(A - 1));
        float* f = o + r * C;
        f[aa[r]] = 1.f;
        for (int i = 0; i < 14; ++i) f[A + i] = s.f32()[r * 14 + i];
        for (int i = 0; i < 14; ++i) f[A + 14 + i] = a.f32()[r * 14 + i];
        for (int i = 0; i < 7; ++i) f[A + 28 + i] = m.f32()[r * 7 + i];
    }
    return feat;
}

void template_angle_embedder_forward(const TemplateAngleEmbedderWeights& w, const Tensor& feat, Tensor& act,
                                     Context& ctx) {
    WorkspaceScope scope(ctx.ws);
    AXF_CHECK(feat.dim() == 3 && feat.size(2) == w.template_single_embedding.weights.size(0),
              "template angle feat %s does not match template_single_embedding %s", feat.desc().c_str(),
              shape_str(w.template_single_embedding.weights.shape()).c_str());
    Tensor h = linear(feat, w.template_single_embedding.weights, w.template_single_embedding.bias, ctx.ws);
    relu(h);
    linear(h, w.template_projection.weights, w.template_projection.bias, act);
}

void template_angle_embedder_backward(const TemplateAngleEmbedderWeights& w, const Tensor& feat, const Tensor& dact,
                                      TemplateAngleEmbedderWeights& grads, Context& ctx) {
    Workspace& ws = ctx.ws;
    WorkspaceScope scope(ws);
    Tensor h = linear(feat, w.template_single_embedding.weights, w.template_single_embedding.bias, ws);
    relu(h);
    Tensor dy = ws.alloc(dact.shape()), dh = ws.alloc(h.shape());
    copy(dy, dact);
    linear_backward(h, w.template_projection.weights, dy, dh, false, grads.template_projection.weights,
                    grads.template_projection.bias, ws);
    relu_backward(h, dh, dh);
    linear_backward(feat, w.template_single_embedding.weights, dh, Tensor(), false,
                    grads.template_single_embedding.weights, grads.template_single_embedding.bias, ws);
}

Tensor template_msa_mask(const Tensor& torsion_mask) {
    AXF_CHECK(torsion_mask.dim() == 3 && torsion_mask.size(2) == 7,
              "template_torsion_angles_mask %s, expected [T, N, 7]", torsion_mask.desc().c_str());
    return torsion_mask.select(2, 2).contiguous();
}

}  // namespace axfold
