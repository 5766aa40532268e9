// AlphaFold-Multimer's template embedding (AF2 `modules_multimer.TemplateEmbedding`, golden README "Template
// embedder"): per template slot, a pair activation from the template's distogram, masks, residue types, the unit
// vectors of CA_j in the backbone frame of residue i and the query pair, run through the template pair stack
// (triangle multiplications first, fused weights) and its output layer norm; the slots averaged (empty ones
// included), ReLU, `output_linear`. The distogram, the pseudo-beta mask, the unit vectors and the backbone mask
// hold only for residue pairs of one chain. Also the template rows of the MSA (`template_single_embedding`,
// `template_projection` on one_hot(aatype, 22) ++ sin(chi) m ++ cos(chi) m ++ m of the four chis).
// Parameter scope `alphafold/alphafold_iteration/evoformer/template_embedding`.
//
// Note: the pair features are built a block of rows at a time on the host (as the monomer's), and their eight
// linear maps run as one [88, c_t] linear (the `template_pair_embedding_0..7` weights stacked at load), which
// sums in another order than AF2's eight: float32 rounding.
#pragma once

#include <vector>

#include "evoformer/template_embedding.h"

namespace axfold {

struct MultimerTemplateEmbeddingWeights {
    LinearWeights pair_features;            // [88, c_t]: template_pair_embedding_0..7 stacked, their biases summed
    LayerNormWeights query_embedding_norm;  // [c_z]
    LinearWeights query_embedding;          // template_pair_embedding_8 [c_z, c_t], without bias (in pair_features')
    std::vector<TemplatePairStackBlockWeights> template_pair_stack;
    LayerNormWeights output_layer_norm;  // [c_t]
    LinearWeights output_linear;         // [c_t, c_z]
    int64_t c_t() const { return pair_features.weights.size(1); }
    template <class F>
    void visit(F&& f) {  // our names (pair_features is a copy of eight AF2 weights)
        pair_features.visit(scoped("pair_features", f));
        query_embedding_norm.visit(scoped("query_embedding_norm", f));
        query_embedding.visit(scoped("query_embedding", f));
        for (size_t i = 0; i < template_pair_stack.size(); ++i)
            template_pair_stack[i].visit(scoped("template_pair_stack/" + std::to_string(i), f));
        output_layer_norm.visit(scoped("output_layer_norm", f));
        output_linear.visit(scoped("output_linear", f));
    }
};

// `scope` = ".../evoformer/template_embedding"; the block count is the stacked leading axis.
MultimerTemplateEmbeddingWeights load_multimer_template_embedding(const ParamLookup& get, const std::string& scope);

struct MultimerTemplateInputs {
    Tensor template_aatype;              // [T, N] int (AF order, 0..21; empty slots 0)
    Tensor template_all_atom_positions;  // [T, N, 37, 3]
    Tensor template_all_atom_mask;       // [T, N, 37]
    Tensor template_pseudo_beta;         // [T, N, 3]
    Tensor template_pseudo_beta_mask;    // [T, N]
    Tensor asym_id;                      // [N] int
};

// pair [N, N, c_z] (the query, float32), pair_mask [N, N] (seq_mask_i seq_mask_j); out [N, N, c_z] =
// (accumulate ? out : 0) + the embedding (out may be pair: the update is formed whole before it is added).
// Observer names, per template: "template_pair_act_embedded", "template_pair_act_after_stack" (after the output
// layer norm); then "template_pair_mean_before_relu" (template index -1).
void multimer_template_embedding_forward(const MultimerTemplateEmbeddingWeights& w, const MultimerTemplateInputs& in,
                                         const Tensor& pair, const Tensor& pair_mask, Tensor& out, bool accumulate,
                                         Context& ctx, const TrunkConstants& k = {},
                                         const TemplateObserver& observe = nullptr);

// The template rows' features [T, N, 34]: one_hot(aatype, 22) ++ sin(chi) m ++ cos(chi) m ++ m for the four chis,
// from the torsion angles (sin, cos) [T, N, 7, 2] and their mask [T, N, 7] (chis at 3..6); the rows' MSA mask is
// the chi1 mask. The rows themselves: template_angle_embedder_forward with these features.
Tensor multimer_template_single_feat(const Tensor& template_aatype, const Tensor& torsion_sin_cos,
                                     const Tensor& torsion_mask);

}  // namespace axfold
