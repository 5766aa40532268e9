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
