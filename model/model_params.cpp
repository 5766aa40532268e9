#include "model/model_params.h"

#include "evoformer/embedders.h"

namespace axfold {

namespace {
const std::string kRoot = "alphafold/alphafold_iteration";

bool ends_with(const std::string& s, const std::string& t) {
    return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
}
}  // namespace

namespace {

// AlphaFold-Multimer v3's parameters (golden README "Multimer sets": names and shapes of
// params_model_1_multimer_v3.npz).
ParamShapes multimer_param_shapes(const ModelDims& d) {
    ParamShapes p;
    const EvoformerDims& e = d.evoformer;
    const int64_t cm = e.c_m, cz = e.c_z, cs = d.c_s, ce = d.extra_msa.c_m, ct = d.c_t;
    auto lin = [&](const std::string& s, Shape in, Shape out) {
        Shape w = in;
        w.insert(w.end(), out.begin(), out.end());
        p.push_back({s + "//weights", w});
        p.push_back({s + "//bias", out});
    };
    auto ln = [&](const std::string& s, int64_t c) {
        p.push_back({s + "//scale", {c}});
        p.push_back({s + "//offset", {c}});
    };
    auto stacked = [&](const std::string& scope, const ParamShapes& block, int64_t n) {
        for (auto [k, sh] : block) {
            sh.insert(sh.begin(), n);
            p.push_back({join_key(scope, k), sh});
        }
    };
    const std::string evo = kRoot + "/evoformer";
    lin(evo + "/preprocess_1d", {21}, {cm});
    lin(evo + "/preprocess_msa", {49}, {cm});
    lin(evo + "/left_single", {21}, {cz});
    lin(evo + "/right_single", {21}, {cz});
    lin(evo + "/~_relative_encoding/position_activations", {kMultimerRelposChannels}, {cz});
    lin(evo + "/prev_pos_linear", {15}, {cz});
    ln(evo + "/prev_msa_first_row_norm", cm);
    ln(evo + "/prev_pair_norm", cz);
    lin(evo + "/extra_msa_activations", {25}, {ce});
    lin(evo + "/single_activations", {cm}, {cs});
    stacked(evo + "/evoformer_iteration", evoformer_block_param_shapes(e, false, true), d.evoformer_blocks);
    EvoformerDims x = d.extra_msa;
    x.c_z = cz;
    stacked(evo + "/extra_msa_stack", evoformer_block_param_shapes(x, true, true), d.extra_msa_blocks);
    // Templates: the rows' embedder, the pair embedding's nine linears (1-D weights for the one-channel features).
    lin(evo + "/template_single_embedding", {34}, {cm});
    lin(evo + "/template_projection", {cm}, {cm});
    const std::string te = evo + "/template_embedding", st = te + "/single_template_embedding";
    const Shape feature_in[9] = {{39}, {}, {22}, {22}, {}, {}, {}, {}, {cz}};
    for (int k = 0; k < 9; ++k) lin(st + "/template_pair_embedding_" + std::to_string(k), feature_in[k], {ct});
    ln(st + "/query_embedding_norm", cz);
    ln(st + "/output_layer_norm", ct);
    stacked(st + "/template_embedding_iteration",
            template_pair_block_param_shapes(ct, d.template_pair_heads, d.template_pair_head_dim,
                                             d.template_tri_mul_dim, d.template_transition_factor, true),
            d.template_pair_blocks);
    lin(te + "/output_linear", {ct}, {cz});
    // Structure module: IPA's per-head projections (no bias on the scalar ones), the quaternion update.
    const std::string sm = kRoot + "/structure_module", fi = sm + "/fold_iteration";
    const std::string ipa = fi + "/invariant_point_attention";
    const int64_t H = d.ipa_heads, c = d.ipa_c, P = d.ipa_qk_points, Pv = d.ipa_v_points;
    ln(sm + "/single_layer_norm", cs);
    lin(sm + "/initial_projection", {cs}, {cs});
    ln(sm + "/pair_layer_norm", cz);
    for (const char* q : {"q", "k", "v"}) p.push_back({ipa + "/" + q + "_scalar_projection//weights", {cs, H, c}});
    for (const auto& [q, n] : {std::pair<const char*, int64_t>{"q", P}, {"k", P}, {"v", Pv}})
        lin(ipa + "/" + q + "_point_projection/point_projection", {cs}, {H, 3 * n});
    p.push_back({ipa + "//trainable_point_weights", {H}});
    lin(ipa + "/attention_2d", {cz}, {H});
    lin(ipa + "/output_projection", {H * (c + 4 * Pv + cz)}, {cs});
    ln(fi + "/attention_layer_norm", cs);
    for (const char* t : {"transition", "transition_1", "transition_2"}) lin(fi + "/" + t, {cs}, {cs});
    ln(fi + "/transition_layer_norm", cs);
    lin(fi + "/quat_rigid/rigid", {cs}, {6});
    const std::string rs = fi + "/rigid_sidechain";
    const int64_t ca = d.angle_resnet_c;
    lin(rs + "/input_projection", {cs}, {ca});
    lin(rs + "/input_projection_1", {cs}, {ca});
    for (const char* b : {"resblock1", "resblock2", "resblock1_1", "resblock2_1"}) lin(rs + "/" + b, {ca}, {ca});
    lin(rs + "/unnormalized_angles", {ca}, {14});
    ln(kRoot + "/predicted_lddt_head/input_layer_norm", cs);
    lin(kRoot + "/predicted_lddt_head/act_0", {cs}, {d.lddt_c});
    lin(kRoot + "/predicted_lddt_head/act_1", {d.lddt_c}, {d.lddt_c});
    lin(kRoot + "/predicted_lddt_head/logits", {d.lddt_c}, {50});
    lin(kRoot + "/distogram_head/half_logits", {cz}, {64});
    lin(kRoot + "/experimentally_resolved_head/logits", {cs}, {37});
    lin(kRoot + "/masked_msa_head/logits", {cm}, {22});
    lin(kRoot + "/predicted_aligned_error_head/logits", {cz}, {64});
    return p;
}

}  // namespace

ParamShapes model_param_shapes(const ModelPreset& preset, const ModelDims& d) {
    if (preset.multimer) return multimer_param_shapes(d);
    ParamShapes p;
    const EvoformerDims& e = d.evoformer;
    const int64_t cm = e.c_m, cz = e.c_z, cs = d.c_s, ce = d.extra_msa.c_m;
    auto lin = [&](const std::string& s, int64_t in, int64_t out) {
        p.push_back({s + "//weights", {in, out}});
        p.push_back({s + "//bias", {out}});
    };
    auto ln = [&](const std::string& s, int64_t c) {
        p.push_back({s + "//scale", {c}});
        p.push_back({s + "//offset", {c}});
    };
    const std::string evo = kRoot + "/evoformer";
    lin(evo + "/preprocess_1d", 22, cm);
    lin(evo + "/preprocess_msa", 49, cm);
    lin(evo + "/left_single", 22, cz);
    lin(evo + "/right_single", 22, cz);
    lin(evo + "/pair_activiations", 65, cz);
    lin(evo + "/prev_pos_linear", 15, cz);
    ln(evo + "/prev_msa_first_row_norm", cm);
    ln(evo + "/prev_pair_norm", cz);
    lin(evo + "/extra_msa_activations", 25, ce);
    lin(evo + "/single_activations", cm, cs);
    auto stacked = [&](const std::string& scope, const ParamShapes& block, int64_t n) {
        for (auto [k, s] : block) {
            s.insert(s.begin(), n);
            p.push_back({join_key(scope, k), s});
        }
    };
    stacked(evo + "/evoformer_iteration", evoformer_block_param_shapes(e, false), d.evoformer_blocks);
    EvoformerDims x = d.extra_msa;
    x.c_z = cz;
    stacked(evo + "/extra_msa_stack", evoformer_block_param_shapes(x, true), d.extra_msa_blocks);
    const std::string sm = kRoot + "/structure_module";
    ln(sm + "/single_layer_norm", cs);
    lin(sm + "/initial_projection", cs, cs);
    ln(sm + "/pair_layer_norm", cz);
    const std::string fi = sm + "/fold_iteration", ipa = fi + "/invariant_point_attention";
    const int64_t H = d.ipa_heads, c = d.ipa_c, P = d.ipa_qk_points, Pv = d.ipa_v_points;
    lin(ipa + "/q_scalar", cs, H * c);
    lin(ipa + "/kv_scalar", cs, H * 2 * c);
    lin(ipa + "/q_point_local", cs, H * P * 3);
    lin(ipa + "/kv_point_local", cs, H * (P + Pv) * 3);
    p.push_back({ipa + "//trainable_point_weights", {H}});
    lin(ipa + "/attention_2d", cz, H);
    lin(ipa + "/output_projection", H * (c + 4 * Pv + cz), cs);
    ln(fi + "/attention_layer_norm", cs);
    lin(fi + "/transition", cs, cs);
    lin(fi + "/transition_1", cs, cs);
    lin(fi + "/transition_2", cs, cs);
    ln(fi + "/transition_layer_norm", cs);
    lin(fi + "/affine_update", cs, 6);
    const std::string rs = fi + "/rigid_sidechain";
    const int64_t ca = d.angle_resnet_c;
    lin(rs + "/input_projection", cs, ca);
    lin(rs + "/input_projection_1", cs, ca);
    for (const char* b : {"resblock1", "resblock2", "resblock1_1", "resblock2_1"}) lin(rs + "/" + b, ca, ca);
    lin(rs + "/unnormalized_angles", ca, 14);
    ln(kRoot + "/predicted_lddt_head/input_layer_norm", cs);
    lin(kRoot + "/predicted_lddt_head/act_0", cs, d.lddt_c);
    lin(kRoot + "/predicted_lddt_head/act_1", d.lddt_c, d.lddt_c);
    lin(kRoot + "/predicted_lddt_head/logits", d.lddt_c, 50);
    lin(kRoot + "/distogram_head/half_logits", cz, 64);
    lin(kRoot + "/experimentally_resolved_head/logits", cs, 37);
    lin(kRoot + "/masked_msa_head/logits", cm, 23);
    if (preset.ptm) lin(kRoot + "/predicted_aligned_error_head/logits", cz, 64);
    if (preset.templates) {
        const int64_t ct = d.c_t, nb = d.template_pair_blocks;
        lin(evo + "/template_single_embedding", 57, cm);
        lin(evo + "/template_projection", cm, cm);
        const std::string te = evo + "/template_embedding", st = te + "/single_template_embedding";
        lin(st + "/embedding2d", 88, ct);
        ln(st + "/output_layer_norm", ct);
        const std::string stack = st + "/template_pair_stack/__layer_stack_no_state";
        auto attention = [&](const std::string& s, int64_t cq, int64_t ckv, int64_t h, int64_t hd, bool gating,
                             int64_t layers) {
            auto add = [&](const std::string& k, Shape shape) {
                if (layers > 0) shape.insert(shape.begin(), layers);
                p.push_back({s + "//" + k, shape});
            };
            add("query_w", {cq, h, hd});
            add("key_w", {ckv, h, hd});
            add("value_w", {ckv, h, hd});
            if (gating) {
                add("gating_w", {cq, h, hd});
                add("gating_b", {h, hd});
            }
            add("output_w", {h, hd, cq});
            add("output_b", {cq});
        };
        auto slin = [&](const std::string& s, int64_t in, int64_t out) {
            p.push_back({s + "//weights", {nb, in, out}});
            p.push_back({s + "//bias", {nb, out}});
        };
        auto sln = [&](const std::string& s, int64_t c) {
            p.push_back({s + "//scale", {nb, c}});
            p.push_back({s + "//offset", {nb, c}});
        };
        for (const char* node : {"triangle_attention_starting_node", "triangle_attention_ending_node"}) {
            const std::string s = stack + "/" + node;
            sln(s + "/query_norm", ct);
            p.push_back({s + "//feat_2d_weights", {nb, ct, d.template_pair_heads}});
            attention(s + "/attention", ct, ct, d.template_pair_heads, d.template_pair_head_dim, true, nb);
        }
        for (const char* dir : {"triangle_multiplication_outgoing", "triangle_multiplication_incoming"}) {
            const std::string s = stack + "/" + dir;
            const int64_t m = d.template_tri_mul_dim;
            sln(s + "/layer_norm_input", ct);
            for (const char* proj : {"left_projection", "right_projection", "left_gate", "right_gate"})
                slin(s + "/" + proj, ct, m);
            sln(s + "/center_layer_norm", m);
            slin(s + "/output_projection", m, ct);
            slin(s + "/gating_linear", ct, ct);
        }
        sln(stack + "/pair_transition/input_layer_norm", ct);
        slin(stack + "/pair_transition/transition1", ct, d.template_transition_factor * ct);
        slin(stack + "/pair_transition/transition2", d.template_transition_factor * ct, ct);
        attention(te + "/attention", cz, ct, d.template_pointwise_heads, d.template_pointwise_head_dim, false, 0);
    }
    return p;
}

ModelDims infer_model_dims(const std::map<std::string, Shape>& shapes, const ModelPreset& preset,
                           const std::string& file) {
    // The shape of `key`, which must have `rank` dimensions, each at least 1.
    auto at = [&](const std::string& key, int rank) -> const Shape& {
        auto it = shapes.find(key);
        AXF_CHECK(it != shapes.end(), "%s: parameter '%s' is missing (%s needs it)", file.c_str(), key.c_str(),
                  preset.name.c_str());
        AXF_CHECK(static_cast<int>(it->second.size()) == rank,
                  "%s: parameter '%s' has shape %s, expected %d dimensions", file.c_str(), key.c_str(),
                  shape_str(it->second).c_str(), rank);
        for (int64_t n : it->second)
            AXF_CHECK(n >= 1, "%s: parameter '%s' has shape %s, expected no empty dimension", file.c_str(), key.c_str(),
                      shape_str(it->second).c_str());
        return it->second;
    };
    const bool fused = preset.multimer;  // AlphaFold-Multimer v3's triangle multiplications
    auto tri_mul_dim = [&](const std::string& s) {
        return fused ? at(s + "/triangle_multiplication_outgoing/projection//weights", 3)[2] / 2
                     : at(s + "/triangle_multiplication_outgoing/left_projection//weights", 3)[2];
    };
    // One stack's widths; returns its layer count.
    auto stack_dims = [&](const std::string& s, bool extra, EvoformerDims& e) {
        const Shape& q = at(s + "/msa_row_attention_with_pair_bias/attention//query_w", 4);
        e.c_m = q[1], e.msa_heads = q[2], e.msa_head_dim = q[3];
        e.c_z = at(s + "/msa_row_attention_with_pair_bias//feat_2d_weights", 3)[1];
        const Shape& t = at(s + "/triangle_attention_starting_node/attention//query_w", 4);
        e.pair_heads = t[2], e.pair_head_dim = t[3];
        e.tri_mul_dim = tri_mul_dim(s);
        e.opm_dim = at(s + "/outer_product_mean/left_projection//weights", 3)[2];
        e.transition_factor = at(s + "/msa_transition/transition1//weights", 3)[2] / e.c_m;
        if (extra) {
            const Shape& g = at(s + "/msa_column_global_attention/attention//query_w", 4);
            e.global_heads = g[2], e.global_head_dim = g[3];
        }
        return q[0];
    };
    ModelDims d;
    const std::string evo = kRoot + "/evoformer";
    d.evoformer_blocks = stack_dims(evo + "/evoformer_iteration", false, d.evoformer);
    d.extra_msa_blocks = stack_dims(evo + "/extra_msa_stack", true, d.extra_msa);
    d.c_s = at(evo + "/single_activations//weights", 2)[1];
    const std::string fi = kRoot + "/structure_module/fold_iteration", ipa = fi + "/invariant_point_attention";
    d.ipa_heads = at(ipa + "//trainable_point_weights", 1)[0];
    if (preset.multimer) {
        d.ipa_c = at(ipa + "/q_scalar_projection//weights", 3)[2];
        d.ipa_qk_points = at(ipa + "/q_point_projection/point_projection//weights", 3)[2] / 3;
        d.ipa_v_points = at(ipa + "/v_point_projection/point_projection//weights", 3)[2] / 3;
    } else {
        d.ipa_c = at(ipa + "/q_scalar//weights", 2)[1] / d.ipa_heads;
        d.ipa_qk_points = at(ipa + "/q_point_local//weights", 2)[1] / (3 * d.ipa_heads);
        d.ipa_v_points = at(ipa + "/kv_point_local//weights", 2)[1] / (3 * d.ipa_heads) - d.ipa_qk_points;
    }
    d.angle_resnet_c = at(fi + "/rigid_sidechain/input_projection//weights", 2)[1];
    d.lddt_c = at(kRoot + "/predicted_lddt_head/act_0//weights", 2)[1];
    if (preset.templates) {
        const std::string te = evo + "/template_embedding", st = te + "/single_template_embedding";
        const std::string stack =
            st + (preset.multimer ? "/template_embedding_iteration" : "/template_pair_stack/__layer_stack_no_state");
        d.c_t = at(st + (preset.multimer ? "/template_pair_embedding_0//weights" : "/embedding2d//weights"), 2)[1];
        const Shape& t = at(stack + "/triangle_attention_starting_node/attention//query_w", 4);
        d.template_pair_blocks = t[0], d.template_pair_heads = t[2], d.template_pair_head_dim = t[3];
        d.template_tri_mul_dim = tri_mul_dim(stack);
        d.template_transition_factor = at(stack + "/pair_transition/transition1//weights", 3)[2] / d.c_t;
        if (!preset.multimer) {
            const Shape& p = at(te + "/attention//query_w", 3);
            d.template_pointwise_heads = p[1], d.template_pointwise_head_dim = p[2];
        }
    }
    return d;
}

void check_param_shapes(const std::map<std::string, Shape>& shapes, const ModelPreset& preset,
                        const std::string& file) {
    const ModelDims d = infer_model_dims(shapes, preset, file);
    const std::string widths = strfmt(
        "widths read from the file: c_m %lld, c_z %lld, c_s %lld, extra-MSA c_m %lld, %lld Evoformer and %lld "
        "extra-MSA blocks",
        (long long)d.evoformer.c_m, (long long)d.evoformer.c_z, (long long)d.c_s, (long long)d.extra_msa.c_m,
        (long long)d.evoformer_blocks, (long long)d.extra_msa_blocks);
    for (const auto& [key, want] : model_param_shapes(preset, d)) {
        auto it = shapes.find(key);
        AXF_CHECK(it != shapes.end(), "%s: parameter '%s' is missing (%s reads it, shape %s)", file.c_str(),
                  key.c_str(), preset.name.c_str(), shape_str(want).c_str());
        AXF_CHECK(it->second == want, "%s: parameter '%s' has shape %s, expected %s (%s)", file.c_str(), key.c_str(),
                  shape_str(it->second).c_str(), shape_str(want).c_str(), widths.c_str());
    }
}

std::map<std::string, Tensor> init_model_params(const ModelPreset& preset, const ModelDims& d, uint64_t seed) {
    std::map<std::string, Tensor> out;
    for (const auto& [key, shape] : model_param_shapes(preset, d)) {
        Tensor t = init_param(key, shape, seed);
        if (ends_with(key, "//trainable_point_weights")) t.fill(0.541324854612918f);  // softplus^-1(1), AF2's init
        // Layers whose output is added to a residual stream: scaled down so that 48 random blocks stay O(1).
        const bool residual_out = ends_with(key, "attention//output_w") || ends_with(key, "transition2//weights") ||
                                  ends_with(key, "output_projection//weights") ||
                                  ends_with(key, "outer_product_mean//output_w");
        if (residual_out) scale(t, 0.1f);
        out[key] = t;
    }
    return out;
}

}  // namespace axfold
