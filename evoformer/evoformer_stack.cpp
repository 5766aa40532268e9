#include "evoformer/evoformer_stack.h"

namespace axfold {

EvoformerStackWeights load_evoformer_stack(const ParamLookup& get, const std::string& scope, bool is_extra_msa) {
    const std::string probe = scope + "/msa_row_attention_with_pair_bias/query_norm//scale";
    Tensor p = get(probe);
    AXF_CHECK(p.dim() == 2, "parameter %s has shape %s: expected a stacked [blocks, C_m] array", probe.c_str(),
              shape_str(p.shape()).c_str());
    EvoformerStackWeights s;
    s.blocks.resize(static_cast<size_t>(p.size(0)));
    for (size_t l = 0; l < s.blocks.size(); ++l) {
        s.blocks[l].is_extra_msa = is_extra_msa;
        bind_params(s.blocks[l], scope, get, static_cast<int>(l));
    }
    return s;
}

void evoformer_block_forward(const EvoformerBlockWeights& w, Tensor& m, Tensor& z, const Tensor& msa_mask,
                             const Tensor& pair_mask, Context& ctx, const TrunkConstants& k,
                             const BlockObserver& observe) {
    auto note = [&](const char* name, const Tensor& t) {
        if (observe) observe(name, t);
    };
    msa_row_attention_forward(w.msa_row_attention_with_pair_bias, m, z, msa_mask, m, true, ctx, k);
    note("msa_after_row_attention", m);
    if (w.is_extra_msa)
        msa_column_global_attention_forward(w.msa_column_global_attention, m, msa_mask, m, true, ctx, k);
    else
        msa_column_attention_forward(w.msa_column_attention, m, msa_mask, m, true, ctx, k);
    note("msa_after_column_attention", m);
    transition_forward(w.msa_transition, m, m, true, ctx, k);
    note("msa_after_transition", m);
    outer_product_mean_forward(w.outer_product_mean, m, msa_mask, z, true, ctx, k);
    note("pair_after_outer_product_mean", z);
    triangle_multiplication_forward(w.triangle_multiplication_outgoing, false, z, pair_mask, z, true, ctx, k);
    note("pair_after_triangle_multiplication_outgoing", z);
    triangle_multiplication_forward(w.triangle_multiplication_incoming, true, z, pair_mask, z, true, ctx, k);
    note("pair_after_triangle_multiplication_incoming", z);
    triangle_attention_forward(w.triangle_attention_starting_node, false, z, pair_mask, z, true, ctx, k);
    note("pair_after_triangle_attention_starting_node", z);
    triangle_attention_forward(w.triangle_attention_ending_node, true, z, pair_mask, z, true, ctx, k);
    note("pair_after_triangle_attention_ending_node", z);
    transition_forward(w.pair_transition, z, z, true, ctx, k);
}

void evoformer_stack_forward(const EvoformerStackWeights& w, Tensor& m, Tensor& z, const Tensor& msa_mask,
                             const Tensor& pair_mask, Context& ctx, const TrunkConstants& k) {
    for (const auto& b : w.blocks) evoformer_block_forward(b, m, z, msa_mask, pair_mask, ctx, k);
}

}  // namespace axfold
