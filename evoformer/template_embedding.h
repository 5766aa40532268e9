// Template embedding of the AF2 monomer network (AF2 supplement 1.7.1, Algorithms 16 and 17; AF2
// `TemplateEmbedding`, `SingleTemplateEmbedding`, `TemplatePairStack` and the template torsion rows of
// `EmbeddingsAndEvoformer`):
//   per template: pair features (distogram of the pseudo-beta positions, masks, residue types) ->
//     `embedding2d` -> template pair stack (triangle attention around the starting and ending node,
//     triangle multiplication outgoing and incoming, pair transition; any block count) ->
//     `output_layer_norm`;
//   template pointwise attention: each pair position (i, j) attends from the pair activation over the T
//     template activations at (i, j) (no gating, bias 1e9 * (template_mask - 1)); the result, times
//     (sum(template_mask) > 0), is added to the pair activations;
//   template angle rows: `template_projection(relu(template_single_embedding(feat)))` with feat = concat(
//     one_hot(template_aatype, 22), torsion sin/cos [14], alt sin/cos [14], torsion mask [7]), appended
//     to the MSA after the cluster rows with mask rows = torsion mask of psi.
// Parameter scopes under `alphafold/alphafold_iteration/evoformer/`: `template_embedding/...`,
// `template_single_embedding`, `template_projection`.
//
// Note: the template pair and angle features are built by host loops (like the recycling
// distogram): they are one-hot/distogram tables read from small integer and coordinate features, with no
// op to express them. Everything after the features runs in kernels/ ops.
// Memory: the [N, N, 88] pair features exist a block of rows at a time (sent to the device per block when
// the model runs on one), and the pointwise attention runs over blocks of rows, so besides the templates'
// activations [T, N, N, c_t] the embedding holds only blocks (Context::chunk_size rows, else ~64 MiB).
#pragma once

#include <functional>
#include <vector>

#include "evoformer/transition.h"
#include "evoformer/triangle_attention.h"
#include "evoformer/triangle_multiplication.h"
#include "evoformer/weights.h"
#include "kernels/ops.h"

namespace axfold {

// One block of `template_pair_stack/__layer_stack_no_state` (stacked, leading layer axis).
struct TemplatePairStackBlockWeights {
    // AF-Multimer: the triangle multiplications first (outgoing, incoming), with fused weights, then the
    // attentions and the transition.
    bool multimer = false;
    TriangleAttentionWeights triangle_attention_starting_node;
    TriangleAttentionWeights triangle_attention_ending_node;
    TriangleMultiplicationWeights triangle_multiplication_outgoing;
    TriangleMultiplicationWeights triangle_multiplication_incoming;
    TransitionWeights pair_transition;
    template <class F> void visit(F&& f) {
        triangle_attention_starting_node.visit(scoped("triangle_attention_starting_node", f));
        triangle_attention_ending_node.visit(scoped("triangle_attention_ending_node", f));
        triangle_multiplication_outgoing.visit(scoped("triangle_multiplication_outgoing", f));
        triangle_multiplication_incoming.visit(scoped("triangle_multiplication_incoming", f));
        pair_transition.visit(scoped("pair_transition", f));
    }
};

// `template_embedding/`: the single-template embedding (shared by all templates) and the pointwise
// attention.
struct TemplateEmbeddingWeights {
    LinearWeights embedding2d;                                  // [88, c_t]
    std::vector<TemplatePairStackBlockWeights> template_pair_stack;  // blocks
    LayerNormWeights output_layer_norm;                         // [c_t]
    AttentionWeights attention;  // query_w [c_z, H, c], key_w/value_w [c_t, H, c], output_w [H, c, c_z]; no gating
    int64_t c_t() const { return embedding2d.weights.size(1); }
    template <class F> void visit(F&& f) {
        embedding2d.visit(scoped("embedding2d", f));
        for (size_t i = 0; i < template_pair_stack.size(); ++i)
            template_pair_stack[i].visit(scoped("template_pair_stack/" + std::to_string(i), f));
        output_layer_norm.visit(scoped("output_layer_norm", f));
        attention.visit(scoped("attention", f));
    }
};

// `template_single_embedding` [57, c_m] and `template_projection` [c_m, c_m].
struct TemplateAngleEmbedderWeights {
    LinearWeights template_single_embedding;
    LinearWeights template_projection;
    template <class F> void visit(F&& f) {
        template_single_embedding.visit(scoped("template_single_embedding", f));
        template_projection.visit(scoped("template_projection", f));
    }
};

// Loads `scope` = ".../evoformer/template_embedding"; the block count is the stacked leading axis.
TemplateEmbeddingWeights load_template_embedding(const ParamLookup& get, const std::string& scope);

// Template distogram and feature sizes (AF2 monomer config; golden README "Constants").
struct TemplatePairFeatConfig {
    int64_t num_bins = 39;
    float min_bin = 3.25f, max_bin = 50.75f;  // lower edges linspace(min, max, num_bins) on squared distances
    bool use_unit_vector = false;             // AF2 monomer: the unit vector channels are zero
    static constexpr int64_t kAatypeClasses = 22;
    int64_t channels() const { return num_bins + 1 + 2 * kAatypeClasses + 3 + 1; }  // 88
};

// Pair features of one template: concat(dgram [B], pb_mask_2d [1], one_hot(aatype_j) [22],
// one_hot(aatype_i) [22], unit vector [3] (0), bb_mask_2d [1]) * bb_mask_2d, with bb_mask = N, CA and C
// present. Optional outputs pb_mask_2d / bb_mask_2d [N, N].
Tensor template_pair_feat(const Tensor& template_aatype,            // [N] int (0..21)
                          const Tensor& template_all_atom_mask,     // [N, 37]
                          const Tensor& template_pseudo_beta,       // [N, 3]
                          const Tensor& template_pseudo_beta_mask,  // [N]
                          const TemplatePairFeatConfig& cfg = {}, Tensor* pb_mask_2d = nullptr,
                          Tensor* bb_mask_2d = nullptr);  // -> [N, N, 88]

// Called with the stage names of the golden intermediates and the template index.
using TemplateObserver = std::function<void(const char* name, int64_t template_index, const Tensor& t)>;

// One template pair stack block in place: act [N, N, c_t], pair_mask [N, N]. Observer names:
// "pair_after_triangle_attention_starting_node", ..._ending_node, "pair_after_triangle_multiplication_outgoing",
// ..._incoming (template index -1).
void template_pair_stack_block_forward(const TemplatePairStackBlockWeights& w, Tensor& act, const Tensor& pair_mask,
                                       Context& ctx, const TrunkConstants& k = {},
                                       const TemplateObserver& observe = nullptr);

// Pointwise attention (Algorithm 17): pair [N, N, c_z] (query, not normed), template_act [T, N, N, c_t],
// template_mask [T]. out [N, N, c_z] (float32) = (accumulate ? out : 0) + (sum(template_mask) > 0) * attention;
// out may be pair (a block's queries are formed before its update), with the same rounding as elsewhere.
void template_pointwise_attention_forward(const AttentionWeights& w, const Tensor& pair, const Tensor& template_act,
                                          const Tensor& template_mask, Tensor& out, bool accumulate, Context& ctx,
                                          const TrunkConstants& k = {});

// The processed template features the pair embedding reads (one iteration, T templates).
struct TemplatePairInputs {
    Tensor template_aatype;             // [T, N] int (0..21)
    Tensor template_all_atom_mask;      // [T, N, 37]
    Tensor template_pseudo_beta;        // [T, N, 3]
    Tensor template_pseudo_beta_mask;   // [T, N]
    Tensor template_mask;               // [T]
};

// Full template pair embedding (Algorithm 16 lines 1-4 + pointwise attention): pair [N, N, c_z] is the
// query; out [N, N, c_z] = (accumulate ? out : 0) + embedding (out may be pair: each update is computed
// before it is added, and in place rounds as into another tensor then `add`). Observer names:
// "template_pair_act_embedded" and "template_pair_act_after_stack" ([N, N, c_t] per template; the latter
// after the output layer norm).
void template_embedding_forward(const TemplateEmbeddingWeights& w, const TemplatePairInputs& in, const Tensor& pair,
                                const Tensor& pair_mask, Tensor& out, bool accumulate, Context& ctx,
                                const TrunkConstants& k = {}, const TemplatePairFeatConfig& cfg = {},
                                const TemplateObserver& observe = nullptr);

// Backward twins (training; AF2 monomer templates). Each recomputes its forward and adds the parameter gradients
// into grads (zeros_like_weights(w) to start). k.dropout_key (0: none): AF2's training dropout in the template
// pair stacks (evoformer/dropout.h), a key per template and block drawn from it; the forward takes the same k.
//
// One template pair stack block: act is the block's input; dact = dL/d(the block's output) on entry, dL/d(act)
// on exit (in place).
void template_pair_stack_block_backward(const TemplatePairStackBlockWeights& w, const Tensor& act,
                                        const Tensor& pair_mask, Tensor& dact, TemplatePairStackBlockWeights& grads,
                                        Context& ctx, const TrunkConstants& k = {});
// The pointwise attention: dout = dL/d(its output) [N, N, c_z]; adds dL/dpair (through the queries) into dpair
// and dL/d(template_act) into dtemplate_act [T, N, N, c_t] (both contiguous float32).
void template_pointwise_attention_backward(const AttentionWeights& w, const Tensor& pair, const Tensor& template_act,
                                           const Tensor& template_mask, const Tensor& dout, const Tensor& dpair,
                                           const Tensor& dtemplate_act, AttentionWeights& grads, Context& ctx,
                                           const TrunkConstants& k = {});
// The whole template pair embedding: dout = dL/d(the embedding added to the pair) [N, N, c_z]; adds dL/dpair
// (the pointwise attention's queries) into dpair. The templates' activations after their stacks are recomputed
// ([T, N, N, c_t]), then each template's stack again, one template at a time, keeping its blocks' inputs.
void template_embedding_backward(const TemplateEmbeddingWeights& w, const TemplatePairInputs& in, const Tensor& pair,
                                 const Tensor& pair_mask, const Tensor& dout, const Tensor& dpair,
                                 TemplateEmbeddingWeights& grads, Context& ctx, const TrunkConstants& k = {},
                                 const TemplatePairFeatConfig& cfg = {});

// Template angle features [T, N, 57] = concat(one_hot(aatype, 22), sin_cos [14], alt_sin_cos [14], mask [7]).
Tensor template_angle_feat(const Tensor& template_aatype,                       // [T, N] int
                           const Tensor& template_torsion_angles_sin_cos,      // [T, N, 7, 2]
                           const Tensor& template_alt_torsion_angles_sin_cos,  // [T, N, 7, 2]
                           const Tensor& template_torsion_angles_mask);        // [T, N, 7]

// act [T, N, c_m] = template_projection(relu(template_single_embedding(feat [T, N, 57]))), written into
// `act` (e.g. the template rows of the MSA activations).
void template_angle_embedder_forward(const TemplateAngleEmbedderWeights& w, const Tensor& feat, Tensor& act,
                                     Context& ctx);

// Its backward: dact = dL/d(act) [T, N, c_m]; the parameter gradients added into grads (the features carry none).
void template_angle_embedder_backward(const TemplateAngleEmbedderWeights& w, const Tensor& feat, const Tensor& dact,
                                      TemplateAngleEmbedderWeights& grads, Context& ctx);

// MSA mask rows of the template rows: torsion mask of psi (index 2) -> [T, N].
Tensor template_msa_mask(const Tensor& template_torsion_angles_mask /* [T, N, 7] */);

}  // namespace axfold
