#include "evoformer/template_embedding.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

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
    std::vector<int64_t> aa;       // [N]
    std::vector<float> bb;         // [N] backbone mask: N, CA and C present
    std::vector<float> lower, upper;  // [B] squared-distance bin edges
    Tensor pb, pbm;                // [N, 3], [N] (host float32)
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
    auto attentions = [&] {
        triangle_attention_forward(w.triangle_attention_starting_node, false, act, pair_mask, act, true, ctx, k);
        note("pair_after_triangle_attention_starting_node");
        triangle_attention_forward(w.triangle_attention_ending_node, true, act, pair_mask, act, true, ctx, k);
        note("pair_after_triangle_attention_ending_node");
    };
    if (!w.multimer) attentions();
    triangle_multiplication_forward(w.triangle_multiplication_outgoing, false, act, pair_mask, act, true, ctx, k);
    note("pair_after_triangle_multiplication_outgoing");
    triangle_multiplication_forward(w.triangle_multiplication_incoming, true, act, pair_mask, act, true, ctx, k);
    note("pair_after_triangle_multiplication_incoming");
    if (w.multimer) attentions();
    transition_forward(w.pair_transition, act, act, true, ctx, k);
}

void template_pointwise_attention_forward(const AttentionWeights& w, const Tensor& pair, const Tensor& template_act,
                                          const Tensor& template_mask, Tensor& out, bool accumulate, Context& ctx,
                                          const TrunkConstants& k) {
    AXF_CHECK(pair.dim() == 3 && pair.size(0) == pair.size(1), "template pointwise attention: pair %s must be [N, N, c_z]",
              pair.desc().c_str());
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
        const int64_t nb = std::min(rows, N - i0), P = nb * N;
        Tensor q = linear(pair.slice(0, i0, i0 + nb), w.query_w, Tensor(), ws).view({P, 1, H, C});
        Tensor kk = ws.alloc({T, P, H * C}), v = ws.alloc({T, P, H * C});
        for (int64_t t = 0; t < T; ++t) {
            const Tensor x = template_act.select(0, t).slice(0, i0, i0 + nb);  // [nb, N, c_t]
            linear(x, w.key_w, Tensor(), kk.select(0, t).view({nb, N, H * C}));
            linear(x, w.value_w, Tensor(), v.select(0, t).view({nb, N, H * C}));
        }
        Tensor o = ws.alloc({P, 1, H, C});
        attention(q, kk.view({T, P, H, C}).permute({1, 0, 2, 3}), v.view({T, P, H, C}).permute({1, 0, 2, 3}),
                  mask_t.expand({P, T}), Tensor(), 1.f / std::sqrt(static_cast<float>(C)), k.inf, o, ws);
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
    // The [N, N, 88] features exist a block of rows at a time: built on the host, sent to the device when the
    // model runs on one, and embedded into their rows of the template's activations.
    const int64_t C = cfg.channels(), rows = embed_block_rows(ctx.chunk_size, N, N * C);
    const bool on_host = pair.device() == Device::CPU;
    for (int64_t t = 0; t < T; ++t) {
        Tensor a = act.select(0, t);
        {
            WorkspaceScope feat_scope(ws);
            const PairFeatSource src = pair_feat_source(in.template_aatype.select(0, t),
                                                        in.template_all_atom_mask.select(0, t),
                                                        in.template_pseudo_beta.select(0, t),
                                                        in.template_pseudo_beta_mask.select(0, t), cfg);
            Tensor host_block = on_host ? ws.alloc({rows, N, C}) : Tensor::empty({rows, N, C});
            Tensor dev_block = on_host ? host_block : ws.alloc({rows, N, C});
            for (int64_t i0 = 0; i0 < N; i0 += rows) {
                const int64_t nb = std::min(rows, N - i0);
                write_pair_feat(src, i0, i0 + nb, host_block.f32(), nullptr, nullptr);
                Tensor feat = dev_block.slice(0, 0, nb);
                if (!on_host) feat.copy_from(host_block.slice(0, 0, nb));
                linear(feat, w.embedding2d.weights, w.embedding2d.bias, a.slice(0, i0, i0 + nb));
            }
        }
        if (observe) observe("template_pair_act_embedded", t, a);
        for (const auto& b : w.template_pair_stack) template_pair_stack_block_forward(b, a, pair_mask, ctx, k);
        layer_norm(a, w.output_layer_norm.scale, w.output_layer_norm.offset, k.eps, a);
        if (observe) observe("template_pair_act_after_stack", t, a);
    }
    // In place (out == pair) too: the pointwise attention forms each row block's queries before its update.
    template_pointwise_attention_forward(w.attention, pair, act, in.template_mask, out, accumulate, ctx, k);
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
        AXF_CHECK(aa[r] >= 0 && aa[r] < A, "template_aatype %lld at [%lld, %lld] is outside 0..%lld",
                  (long long)aa[r], (long long)(r / N), (long long)(r % N), (long long)(A - 1));
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

Tensor template_msa_mask(const Tensor& torsion_mask) {
    AXF_CHECK(torsion_mask.dim() == 3 && torsion_mask.size(2) == 7, "template_torsion_angles_mask %s, expected [T, N, 7]",
              torsion_mask.desc().c_str());
    return torsion_mask.select(2, 2).contiguous();
}

}  // namespace axfold
