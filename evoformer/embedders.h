// Input embeddings of the AF2 network (AF2 supplement 1.5):
//   input embedder (Algorithm 3) with relative positions (Algorithm 4, one-hot of the clipped offset; for
//     AF-Multimer, the chain-aware 73-channel encoding of multimer_relpos_features),
//   recycling embedder (Algorithm 32): layer norms of the previous first MSA row and pair, and a
//     distogram of the previous pseudo-beta positions,
//   extra-MSA embedder (one-hot MSA, has_deletion, deletion_value -> c_e),
//   single projection of the first MSA row (`single_activations`).
// Parameter scope: `alphafold/alphafold_iteration/evoformer/...`.
#pragma once

#include "evoformer/weights.h"
#include "kernels/ops.h"

namespace axfold {

struct InputEmbedderWeights {
    LinearWeights preprocess_1d;      // [22, C_m] (AF-Multimer: [21, C_m], no has_break channel)
    LinearWeights preprocess_msa;     // [49, C_m]
    LinearWeights left_single;        // [22, C_z] (21)
    LinearWeights right_single;       // [22, C_z] (21)
    LinearWeights pair_activiations;  // [65, C_z] (sic, AF2's key); monomer only
    // AF-Multimer: `~_relative_encoding/position_activations` [73, C_z] in place of pair_activiations.
    bool multimer = false;
    LinearWeights position_activations;
    template <class F> void visit(F&& f) {
        preprocess_1d.visit(scoped("preprocess_1d", f));
        preprocess_msa.visit(scoped("preprocess_msa", f));
        left_single.visit(scoped("left_single", f));
        right_single.visit(scoped("right_single", f));
        if (multimer)
            position_activations.visit(scoped("~_relative_encoding/position_activations", f));
        else
            pair_activiations.visit(scoped("pair_activiations", f));
    }
    int64_t max_relative_feature() const { return (pair_activiations.weights.size(0) - 1) / 2; }
};

// AF-Multimer's chain features [N] int64 (merged residue order): the chain (asym_id), its sequence (entity_id)
// and its copy of that sequence (sym_id).
struct ChainIds {
    Tensor asym_id, entity_id, sym_id;
};
// AF-Multimer's relative encoding (max_relative_idx 32, max_relative_chain 2): for rows i in [row_begin, row_end)
// and every j, one_hot(d, 66) with d = clip(ri_i - ri_j + 32, 0, 64) in one chain, else 65; then
// [entity_i == entity_j]; then one_hot(c, 6) with c = clip(sym_i - sym_j + 2, 0, 4) in one entity, else 5.
// [rows, N, 73] float32 (host).
constexpr int64_t kMultimerRelposChannels = 73;
Tensor multimer_relpos_features(const Tensor& residue_index, const ChainIds& chains, int64_t row_begin = 0,
                                int64_t row_end = -1);

struct RecyclingEmbedderWeights {
    LinearWeights prev_pos_linear;              // [15, C_z]
    LayerNormWeights prev_msa_first_row_norm;   // [C_m]
    LayerNormWeights prev_pair_norm;            // [C_z]
    template <class F> void visit(F&& f) {
        prev_pos_linear.visit(scoped("prev_pos_linear", f));
        prev_msa_first_row_norm.visit(scoped("prev_msa_first_row_norm", f));
        prev_pair_norm.visit(scoped("prev_pair_norm", f));
    }
};

struct ExtraMsaEmbedderWeights {
    LinearWeights extra_msa_activations;  // [25, C_e]
    template <class F> void visit(F&& f) { extra_msa_activations.visit(scoped("extra_msa_activations", f)); }
};

struct SingleActivationsWeights {
    LinearWeights single_activations;  // [C_m, C_s]
    template <class F> void visit(F&& f) { single_activations.visit(scoped("single_activations", f)); }
};

// Devices: the activations, the weights and the float features live on one device (the model's: every
// GEMM and every [N, N, .] or [E, N, .] tensor is built there); integer features (residue_index, extra_msa)
// and positions may be anywhere: the bins and tokens are computed on the host and sent up as int64 indices.
//
// target_feat [N, 22], residue_index [N] (int64 or float), msa_feat [S, N, 49]
// -> msa [S, N, C_m], pair [N, N, C_z] (both written; the pair may be a bfloat16 activation). The pair is built
// in blocks of rows (ctx.chunk_size, else ~64 MiB of relative-position one-hot, which the planner counts,
// although only the bins exist now). AF-Multimer (w.multimer): target_feat [N, 21] and `chains` required; its
// relative features are built a block of rows at a time on the host.
void input_embedder_forward(const InputEmbedderWeights& w, const Tensor& target_feat, const Tensor& residue_index,
                            const Tensor& msa_feat, Tensor& msa, Tensor& pair, Context& ctx,
                            const ChainIds* chains = nullptr);

// Recycling distogram (15 bins, lower edges linspace(3.25, 20.75, 15), compared on squared distances).
// positions [N, 3] -> [rows, N, num_bins] for rows i in [row_begin, row_end) (default: all).
Tensor recycling_dgram(const Tensor& positions, int64_t num_bins, float min_bin, float max_bin, int64_t row_begin = 0,
                       int64_t row_end = -1);
// Its bins: int64 [rows * N] (host), the bin of each pair or -1 where none holds the squared distance.
Tensor recycling_dgram_index(const Tensor& positions, int64_t num_bins, float min_bin, float max_bin,
                             int64_t row_begin = 0, int64_t row_end = -1);

// Adds the recycling updates in place: msa_first_row [N, C_m] += LN(prev_msa_first_row);
// pair [N, N, C_z] += prev_pos_linear(dgram(prev_pseudo_beta)) + LN(prev_pair).
// prev_pseudo_beta [N, 3] (CB, CA for glycine, of the previous iteration's atom37 positions). pair and
// prev_pair may be bfloat16 activations; the pair update runs in blocks of rows.
void recycling_embedder_forward(const RecyclingEmbedderWeights& w, const Tensor& prev_msa_first_row,
                                const Tensor& prev_pair, const Tensor& prev_pseudo_beta, Tensor& msa_first_row,
                                Tensor& pair, Context& ctx);

// extra_msa [E, N] tokens 0..22, extra_has_deletion and extra_deletion_value [E, N] -> [E, N, C_e] (float32
// or bfloat16), in blocks of rows (ctx.chunk_size, else ~64 MiB of the one-hot feature).
void extra_msa_embedder_forward(const ExtraMsaEmbedderWeights& w, const Tensor& extra_msa,
                                const Tensor& extra_has_deletion, const Tensor& extra_deletion_value,
                                Tensor& extra_msa_act, Context& ctx);
// Rows the embedders build at a time: chunk_size (Context::chunk_size), else blocks of about 64 MiB of the
// widest per-row temporary (`row_floats` floats a row). The memory planner counts blocks of this size.
int64_t embed_block_rows(int64_t chunk_size, int64_t n, int64_t row_floats);
// The [E, N, 25] feature itself (one-hot over 23 classes, has_deletion, deletion_value).
Tensor extra_msa_feat(const Tensor& extra_msa, const Tensor& extra_has_deletion, const Tensor& extra_deletion_value);

// The relative-position one-hot [rows, N, 2*max_rel+1] of clip(ri_i - ri_j, -max_rel, max_rel) for rows i
// in [row_begin, row_end) (default: all).
Tensor relpos_one_hot(const Tensor& residue_index, int64_t max_relative_feature, int64_t row_begin = 0,
                      int64_t row_end = -1);
// Its bins: int64 [rows * N] (host), clip(ri_i - ri_j, -max_rel, max_rel) + max_rel.
Tensor relpos_index(const Tensor& residue_index, int64_t max_relative_feature, int64_t row_begin = 0,
                    int64_t row_end = -1);

// Backward twins (training): dL/d(outputs) in, dL/d(the differentiable float inputs) out (assigned; undefined
// to skip), parameter gradients added into grads. Integer inputs and the recycled positions (which enter only
// through hard bins) have none. The one-hot features are built again (relative positions, distogram bins,
// extra-MSA tokens: [N, N, 65], [N, N, 15] and [E, N, 25], a training crop's sizes).
void input_embedder_backward(const InputEmbedderWeights& w, const Tensor& target_feat, const Tensor& residue_index,
                             const Tensor& msa_feat, const Tensor& dmsa, const Tensor& dpair, const Tensor& dtarget_feat,
                             const Tensor& dmsa_feat, InputEmbedderWeights& grads, Context& ctx);
// dmsa_first_row_update [N, C_m] and dpair_update [N, N, C_z]: the gradients of what the forward added.
void recycling_embedder_backward(const RecyclingEmbedderWeights& w, const Tensor& prev_msa_first_row,
                                 const Tensor& prev_pair, const Tensor& prev_pseudo_beta,
                                 const Tensor& dmsa_first_row_update, const Tensor& dpair_update,
                                 const Tensor& dprev_msa_first_row, const Tensor& dprev_pair,
                                 RecyclingEmbedderWeights& grads, Context& ctx);
void extra_msa_embedder_backward(const ExtraMsaEmbedderWeights& w, const Tensor& extra_msa,
                                 const Tensor& extra_has_deletion, const Tensor& extra_deletion_value,
                                 const Tensor& dextra_msa_act, const Tensor& dextra_has_deletion,
                                 const Tensor& dextra_deletion_value, ExtraMsaEmbedderWeights& grads, Context& ctx);

}  // namespace axfold
