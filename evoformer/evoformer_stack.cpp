#include "evoformer/evoformer_stack.h"

#include <string>

#include "evoformer/dropout.h"

namespace axfold {

EvoformerBlockWeights load_evoformer_block(const ParamLookup& get, const std::string& scope, bool is_extra_msa,
                                           bool multimer, int layer) {
    EvoformerBlockWeights b;
    b.is_extra_msa = is_extra_msa;
    b.outer_product_mean_first = multimer;
    b.triangle_multiplication_outgoing.fused = b.triangle_multiplication_incoming.fused = multimer;
    bind_params(b, scope, get, layer);
    return b;
}

EvoformerStackWeights load_evoformer_stack(const ParamLookup& get, const std::string& scope, bool is_extra_msa,
                                           bool multimer) {
    const std::string probe = scope + "/msa_row_attention_with_pair_bias/query_norm//scale";
    Tensor p = get(probe);
    AXF_CHECK(p.dim() == 2, "parameter %s has shape %s: expected a stacked [blocks, C_m] array", probe.c_str(),
              shape_str(p.shape()).c_str());
    EvoformerStackWeights s;
    for (int64_t l = 0; l < p.size(0); ++l)
        s.blocks.push_back(load_evoformer_block(get, scope, is_extra_msa, multimer, static_cast<int>(l)));
    return s;
}

void evoformer_block_forward(const EvoformerBlockWeights& w, Tensor& m, Tensor& z, const Tensor& msa_mask,
                             const Tensor& pair_mask, Context& ctx, const TrunkConstants& k,
                             const BlockObserver& observe) {
    auto note = [&](const char* name, const Tensor& t) {
        if (observe) observe(name, t);
    };
    auto residual = [&](Tensor& x, DropoutSite site, auto&& update) {
        residual_update(x, k.dropout_key, site, ctx, update);
    };
    auto outer_product_mean = [&] {
        outer_product_mean_forward(w.outer_product_mean, m, msa_mask, z, true, ctx, k);
        note("pair_after_outer_product_mean", z);
    };
    if (w.outer_product_mean_first) outer_product_mean();
    residual(m, DropoutSite::MsaRowAttention, [&](const Tensor& out, bool acc) {
        msa_row_attention_forward(w.msa_row_attention_with_pair_bias, m, z, msa_mask, out, acc, ctx, k);
    });
    note("msa_after_row_attention", m);
    if (w.is_extra_msa)
        msa_column_global_attention_forward(w.msa_column_global_attention, m, msa_mask, m, true, ctx, k);
    else
        msa_column_attention_forward(w.msa_column_attention, m, msa_mask, m, true, ctx, k);
    note("msa_after_column_attention", m);
    transition_forward(w.msa_transition, m, m, true, ctx, k);
    note("msa_after_transition", m);
    if (!w.outer_product_mean_first) outer_product_mean();
    residual(z, DropoutSite::TriangleMultiplicationOutgoing, [&](const Tensor& out, bool acc) {
        triangle_multiplication_forward(w.triangle_multiplication_outgoing, false, z, pair_mask, out, acc, ctx, k);
    });
    note("pair_after_triangle_multiplication_outgoing", z);
    residual(z, DropoutSite::TriangleMultiplicationIncoming, [&](const Tensor& out, bool acc) {
        triangle_multiplication_forward(w.triangle_multiplication_incoming, true, z, pair_mask, out, acc, ctx, k);
    });
    note("pair_after_triangle_multiplication_incoming", z);
    residual(z, DropoutSite::TriangleAttentionStarting, [&](const Tensor& out, bool acc) {
        triangle_attention_forward(w.triangle_attention_starting_node, false, z, pair_mask, out, acc, ctx, k);
    });
    note("pair_after_triangle_attention_starting_node", z);
    residual(z, DropoutSite::TriangleAttentionEnding, [&](const Tensor& out, bool acc) {
        triangle_attention_forward(w.triangle_attention_ending_node, true, z, pair_mask, out, acc, ctx, k);
    });
    note("pair_after_triangle_attention_ending_node", z);
    transition_forward(w.pair_transition, z, z, true, ctx, k);
}

void evoformer_block_backward(const EvoformerBlockWeights& w, const Tensor& m, const Tensor& z, const Tensor& msa_mask,
                              const Tensor& pair_mask, Tensor& dm, Tensor& dz, EvoformerBlockWeights& grads,
                              Context& ctx, const TrunkConstants& k) {
    AXF_CHECK(!w.outer_product_mean_first, "evoformer block backward: AlphaFold-Multimer's block is not supported yet");
    AXF_CHECK(m.dtype() == DType::F32 && z.dtype() == DType::F32 && dm.shape() == m.shape() &&
                  dz.shape() == z.shape() && dm.is_contiguous() && dz.is_contiguous(),
              "evoformer block backward: m %s, z %s (float32), dm %s, dz %s (contiguous, their shapes)",
              m.desc().c_str(), z.desc().c_str(), dm.desc().c_str(), dz.desc().c_str());
    // The forward again, keeping each sub-module's input (the states between the residual updates).
    std::vector<Tensor> ms, zs;  // ms[i]: the MSA before MSA step i; zs[i]: the pair before pair step i
    Tensor mc = m.clone(), zc = z.clone();
    evoformer_block_forward(w, mc, zc, msa_mask, pair_mask, ctx, k, [&](const char* name, const Tensor& t) {
        if (std::string(name).rfind("msa_", 0) == 0)
            ms.push_back(t.clone());
        else
            zs.push_back(t.clone());
    });
    // ms = {after row attention, after column attention, after transition}; zs = {after the outer product mean,
    // the two multiplications, the two attentions}: prepend the inputs to get each step's input.
    ms.insert(ms.begin(), m);
    zs.insert(zs.begin(), z);
    AXF_CHECK(ms.size() == 4 && zs.size() == 6, "evoformer block backward: %zu MSA and %zu pair states observed",
              ms.size(), zs.size());
    // Each residual step x' = x + f(x): dx = dx' + J_f^T dx' (d(update) is dx' itself, copied so the update's
    // backward may accumulate into dx).
    Tensor d = Tensor::empty(z.shape(), DType::F32, z.device());
    // The update's cotangent is the output's, through the dropout mask when training drops (an empty site:
    // none).
    auto pair_step = [&](auto&& backward, DropoutSite site = DropoutSite::None) {
        copy(d, dz);
        apply_dropout(d, k.dropout_key, site);
        backward(d);
    };
    pair_step([&](const Tensor& du) {
        transition_backward(w.pair_transition, zs[5], du, dz, true, grads.pair_transition, ctx, k);
    });
    pair_step(
        [&](const Tensor& du) {
            triangle_attention_backward(w.triangle_attention_ending_node, true, zs[4], pair_mask, du, dz, true,
                                        grads.triangle_attention_ending_node, ctx, k);
        },
        DropoutSite::TriangleAttentionEnding);
    pair_step(
        [&](const Tensor& du) {
            triangle_attention_backward(w.triangle_attention_starting_node, false, zs[3], pair_mask, du, dz, true,
                                        grads.triangle_attention_starting_node, ctx, k);
        },
        DropoutSite::TriangleAttentionStarting);
    pair_step(
        [&](const Tensor& du) {
            triangle_multiplication_backward(w.triangle_multiplication_incoming, true, zs[2], pair_mask, du, dz, true,
                                             grads.triangle_multiplication_incoming, ctx, k);
        },
        DropoutSite::TriangleMultiplicationIncoming);
    pair_step(
        [&](const Tensor& du) {
            triangle_multiplication_backward(w.triangle_multiplication_outgoing, false, zs[1], pair_mask, du, dz, true,
                                             grads.triangle_multiplication_outgoing, ctx, k);
        },
        DropoutSite::TriangleMultiplicationOutgoing);
    // z1 = z0 + OPM(m3): the pair's gradient passes on unchanged and reaches the MSA.
    outer_product_mean_backward(w.outer_product_mean, ms[3], msa_mask, dz, dm, true, grads.outer_product_mean, ctx, k);
    Tensor dmu = Tensor::empty(m.shape(), DType::F32, m.device());
    copy(dmu, dm);
    transition_backward(w.msa_transition, ms[2], dmu, dm, true, grads.msa_transition, ctx, k);
    copy(dmu, dm);
    if (w.is_extra_msa)
        msa_column_global_attention_backward(w.msa_column_global_attention, ms[1], msa_mask, dmu, dm, true,
                                             grads.msa_column_global_attention, ctx, k);
    else
        msa_column_attention_backward(w.msa_column_attention, ms[1], msa_mask, dmu, dm, true,
                                      grads.msa_column_attention, ctx, k);
    copy(dmu, dm);
    apply_dropout(dmu, k.dropout_key, DropoutSite::MsaRowAttention);
    msa_row_attention_backward(w.msa_row_attention_with_pair_bias, ms[0], zs[0], msa_mask, dmu, dm, true, dz, true,
                               grads.msa_row_attention_with_pair_bias, ctx, k);
}

void evoformer_stack_backward(const EvoformerStackWeights& w, const Tensor& m, const Tensor& z, const Tensor& msa_mask,
                              const Tensor& pair_mask, Tensor& dm, Tensor& dz,
                              std::vector<EvoformerBlockWeights>& grads, Context& ctx, const TrunkConstants& k,
                              const BlockGradientDone& block_done) {
    AXF_CHECK(grads.size() == w.blocks.size(), "evoformer stack backward: %zu gradient blocks for %zu blocks",
              grads.size(), w.blocks.size());
    // Each block's input, from one replay of the forward (activation checkpointing per block). Under bfloat16
    // activations (ctx.activation_dtype) they are kept rounded, half the memory, while the replay runs on in
    // float32; each block's backward recomputes its internals from its rounded input, as bf16 training does.
    const DType kept = ctx.activation_dtype;
    std::vector<Tensor> ms, zs;
    Tensor mb = m.clone(), zb = z.clone();
    for (size_t b = 0; b < w.blocks.size(); ++b) {
        if (b > 0) evoformer_block_forward(w.blocks[b - 1], mb, zb, msa_mask, pair_mask, ctx, block_constants(k, b - 1));
        const bool last = b + 1 == w.blocks.size();
        ms.push_back(kept != DType::F32 ? to_dtype(mb, kept) : last ? mb : mb.clone());
        zs.push_back(kept != DType::F32 ? to_dtype(zb, kept) : last ? zb : zb.clone());
    }
    mb = zb = Tensor();
    for (size_t b = w.blocks.size(); b-- > 0;) {
        evoformer_block_backward(w.blocks[b], to_dtype(ms[b], DType::F32), to_dtype(zs[b], DType::F32), msa_mask,
                                 pair_mask, dm, dz, grads[b], ctx, block_constants(k, b));
        ms[b] = zs[b] = Tensor();
        if (block_done) block_done(b);
    }
}

TrunkConstants block_constants(const TrunkConstants& k, size_t block) {
    TrunkConstants kb = k;
    kb.dropout_key = derive_dropout_key(k.dropout_key, block);
    return kb;
}

void evoformer_stack_forward(const EvoformerStackWeights& w, Tensor& m, Tensor& z, const Tensor& msa_mask,
                             const Tensor& pair_mask, Context& ctx, const TrunkConstants& k) {
    for (size_t b = 0; b < w.blocks.size(); ++b)
        evoformer_block_forward(w.blocks[b], m, z, msa_mask, pair_mask, ctx, block_constants(k, b));
}

}  // namespace axfold
