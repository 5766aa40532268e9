#include "evoformer/param_shapes.h"

namespace axfold {

namespace {

void add_ln(ParamShapes& p, const std::string& s, int64_t c) {
    p.push_back({s + "//scale", {c}});
    p.push_back({s + "//offset", {c}});
}
void add_linear(ParamShapes& p, const std::string& s, int64_t in, int64_t out) {
    p.push_back({s + "//weights", {in, out}});
    p.push_back({s + "//bias", {out}});
}
void add_attention(ParamShapes& p, const std::string& s, int64_t c, int64_t h, int64_t d) {
    p.push_back({s + "//query_w", {c, h, d}});
    p.push_back({s + "//key_w", {c, h, d}});
    p.push_back({s + "//value_w", {c, h, d}});
    p.push_back({s + "//gating_w", {c, h, d}});
    p.push_back({s + "//gating_b", {h, d}});
    p.push_back({s + "//output_w", {h, d, c}});
    p.push_back({s + "//output_b", {c}});
}
void add_transition(ParamShapes& p, const std::string& s, int64_t c, int64_t n) {
    add_ln(p, s + "/input_layer_norm", c);
    add_linear(p, s + "/transition1", c, n * c);
    add_linear(p, s + "/transition2", n * c, c);
}
void add_tri_mul(ParamShapes& p, const std::string& s, int64_t cz, int64_t c, bool fused = false) {
    if (fused) {  // AF-Multimer v3: both sides' projections and gates side by side
        add_ln(p, s + "/left_norm_input", cz);
        add_linear(p, s + "/projection", cz, 2 * c);
        add_linear(p, s + "/gate", cz, 2 * c);
        add_ln(p, s + "/center_norm", c);
        add_linear(p, s + "/output_projection", c, cz);
        add_linear(p, s + "/gating_linear", cz, cz);
        return;
    }
    add_ln(p, s + "/layer_norm_input", cz);
    add_linear(p, s + "/left_projection", cz, c);
    add_linear(p, s + "/right_projection", cz, c);
    add_linear(p, s + "/left_gate", cz, c);
    add_linear(p, s + "/right_gate", cz, c);
    add_ln(p, s + "/center_layer_norm", c);
    add_linear(p, s + "/output_projection", c, cz);
    add_linear(p, s + "/gating_linear", cz, cz);
}
void add_tri_att(ParamShapes& p, const std::string& s, int64_t cz, int64_t h, int64_t d) {
    add_ln(p, s + "/query_norm", cz);
    p.push_back({s + "//feat_2d_weights", {cz, h}});
    add_attention(p, s + "/attention", cz, h, d);
}

}  // namespace

ParamShapes template_pair_block_param_shapes(int64_t c_t, int64_t h, int64_t d, int64_t c, int64_t n, bool fused) {
    ParamShapes p;
    add_tri_att(p, "triangle_attention_starting_node", c_t, h, d);
    add_tri_att(p, "triangle_attention_ending_node", c_t, h, d);
    add_tri_mul(p, "triangle_multiplication_outgoing", c_t, c, fused);
    add_tri_mul(p, "triangle_multiplication_incoming", c_t, c, fused);
    add_transition(p, "pair_transition", c_t, n);
    return p;
}

ParamShapes evoformer_block_param_shapes(const EvoformerDims& d, bool is_extra_msa, bool multimer) {
    ParamShapes p;
    const std::string row = "msa_row_attention_with_pair_bias";
    add_ln(p, row + "/query_norm", d.c_m);
    add_ln(p, row + "/feat_2d_norm", d.c_z);
    p.push_back({row + "//feat_2d_weights", {d.c_z, d.msa_heads}});
    add_attention(p, row + "/attention", d.c_m, d.msa_heads, d.msa_head_dim);
    if (is_extra_msa) {
        const std::string g = "msa_column_global_attention";
        add_ln(p, g + "/query_norm", d.c_m);
        p.push_back({g + "/attention//query_w", {d.c_m, d.global_heads, d.global_head_dim}});
        p.push_back({g + "/attention//key_w", {d.c_m, d.global_head_dim}});
        p.push_back({g + "/attention//value_w", {d.c_m, d.global_head_dim}});
        p.push_back({g + "/attention//gating_w", {d.c_m, d.global_heads, d.global_head_dim}});
        p.push_back({g + "/attention//gating_b", {d.global_heads, d.global_head_dim}});
        p.push_back({g + "/attention//output_w", {d.global_heads, d.global_head_dim, d.c_m}});
        p.push_back({g + "/attention//output_b", {d.c_m}});
    } else {
        add_ln(p, "msa_column_attention/query_norm", d.c_m);
        add_attention(p, "msa_column_attention/attention", d.c_m, d.msa_heads, d.msa_head_dim);
    }
    add_transition(p, "msa_transition", d.c_m, d.transition_factor);
    add_ln(p, "outer_product_mean/layer_norm_input", d.c_m);
    add_linear(p, "outer_product_mean/left_projection", d.c_m, d.opm_dim);
    add_linear(p, "outer_product_mean/right_projection", d.c_m, d.opm_dim);
    p.push_back({"outer_product_mean//output_w", {d.opm_dim, d.opm_dim, d.c_z}});
    p.push_back({"outer_product_mean//output_b", {d.c_z}});
    add_tri_mul(p, "triangle_multiplication_outgoing", d.c_z, d.tri_mul_dim, multimer);
    add_tri_mul(p, "triangle_multiplication_incoming", d.c_z, d.tri_mul_dim, multimer);
    add_tri_att(p, "triangle_attention_starting_node", d.c_z, d.pair_heads, d.pair_head_dim);
    add_tri_att(p, "triangle_attention_ending_node", d.c_z, d.pair_heads, d.pair_head_dim);
    add_transition(p, "pair_transition", d.c_z, d.transition_factor);
    return p;
}

}  // namespace axfold

#include <cmath>
#include <random>

namespace axfold {

namespace {
bool ends_with(const std::string& s, const std::string& t) {
    return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
}
}  // namespace

Tensor init_param(const std::string& key, const Shape& shape, uint64_t seed) {
    Tensor t = Tensor::empty(shape);
    float* p = t.f32();
    const int64_t n = t.numel();
    if (ends_with(key, "//scale")) {
        for (int64_t i = 0; i < n; ++i) p[i] = 1.f;
    } else if (ends_with(key, "//offset") || ends_with(key, "//bias") || ends_with(key, "//output_b")) {
        for (int64_t i = 0; i < n; ++i) p[i] = 0.f;
    } else if (ends_with(key, "//gating_b")) {
        for (int64_t i = 0; i < n; ++i) p[i] = 1.f;
    } else {
        int64_t fan_in = shape.empty() ? 1 : shape[0];
        if (ends_with(key, "//output_w") && shape.size() >= 2) fan_in = n / shape.back();
        std::mt19937_64 rng(seed ^ std::hash<std::string>{}(key));
        std::normal_distribution<float> d(0.f, 1.f / std::sqrt(static_cast<float>(std::max<int64_t>(fan_in, 1))));
        for (int64_t i = 0; i < n; ++i) p[i] = d(rng);
    }
    return t;
}

}  // namespace axfold
