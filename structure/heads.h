// Output heads of the AF2 monomer network (AF2 supplement 1.9): pLDDT (Algorithm 29), distogram,
// masked MSA, experimentally resolved, and predicted aligned error with pTM (1.9.7, `_ptm` models).
// Parameter scopes `*_head` under `alphafold/alphafold_iteration`.
#pragma once

#include "evoformer/weights.h"
#include "kernels/ops.h"

namespace axfold {

struct HeadsWeights {
    LayerNormWeights lddt_input_layer_norm;  // predicted_lddt_head/input_layer_norm [C_s]
    LinearWeights lddt_act_0, lddt_act_1;    // [C_s, c], [c, c]
    LinearWeights lddt_logits;               // [c, 50]
    LinearWeights distogram_half_logits;     // [C_z, 64]
    LinearWeights experimentally_resolved;   // [C_s, 37]
    LinearWeights masked_msa;                // [C_m, 23]
    LinearWeights predicted_aligned_error;   // [C_z, 64]; only in _ptm models
    bool has_pae = false;
    template <class F> void visit(F&& f) {
        lddt_input_layer_norm.visit(scoped("predicted_lddt_head/input_layer_norm", f));
        lddt_act_0.visit(scoped("predicted_lddt_head/act_0", f));
        lddt_act_1.visit(scoped("predicted_lddt_head/act_1", f));
        lddt_logits.visit(scoped("predicted_lddt_head/logits", f));
        distogram_half_logits.visit(scoped("distogram_head/half_logits", f));
        experimentally_resolved.visit(scoped("experimentally_resolved_head/logits", f));
        masked_msa.visit(scoped("masked_msa_head/logits", f));
        if (has_pae) predicted_aligned_error.visit(scoped("predicted_aligned_error_head/logits", f));
    }
};

struct HeadsOutputs {
    Tensor predicted_lddt_logits;           // [N, 50]
    Tensor plddt;                           // [N], 0..100
    Tensor distogram_logits;                // [N, N, 64] (half + half^T); kept logits only
    Tensor distogram_bin_edges;             // [63]
    Tensor masked_msa_logits;               // [S, N, 23]
    Tensor experimentally_resolved_logits;  // [N, 37]
    // With the PAE head:
    Tensor predicted_aligned_error_logits;  // [N, N, 64]; kept logits only
    Tensor aligned_confidence_probs;        // [N, N, 64]; kept logits only
    Tensor predicted_aligned_error;         // [N, N], Angstrom
    float max_predicted_aligned_error = 0.f;
    float ptm = 0.f;
    bool has_pae = false;
    // AF-Multimer (heads_forward with asym_id): ipTM, pTM over the pairs of different chains, and AF-Multimer's
    // ranking confidence 0.8 ipTM + 0.2 pTM.
    bool has_iptm = false;
    float iptm = 0.f, weighted_ptm_score = 0.f;
};

// msa [S, N, C_m] (cluster rows only), pair [N, N, C_z] (float32 or bfloat16), single [N, C_s] (Evoformer
// single representation), sm_act [N, C_s] (structure-module activation). The pair heads run in row blocks
// (ctx.chunk_size, else ~64 MiB of logits); without keep_pair_logits the [N, N, 64] distogram logits and PAE
// logits and probabilities are not kept (the distogram is not computed at all): the PAE map, its maximum
// and pTM are, from the same blocks.
// asym_id [N] int64 (AF-Multimer's chain of each residue): also ipTM (the pTM formula with each alignment row i
// summing over the residues j of other chains, weighted 1 / (1e-8 + their count); d0 from every residue).
HeadsOutputs heads_forward(const HeadsWeights& w, const Tensor& msa, const Tensor& pair, const Tensor& single,
                           const Tensor& sm_act, Context& ctx, bool keep_pair_logits = true,
                           const Tensor& asym_id = Tensor());

// Cotangents of the heads' outputs for heads_backward; an undefined tensor (or ptm 0) contributes nothing.
struct HeadsCotangents {
    Tensor predicted_lddt_logits;           // [N, 50]
    Tensor plddt;                           // [N]
    Tensor distogram_logits;                // [N, N, 64]
    Tensor masked_msa_logits;               // [S, N, 23]
    Tensor experimentally_resolved_logits;  // [N, 37]
    Tensor predicted_aligned_error_logits;  // [N, N, 64]
    Tensor predicted_aligned_error;         // [N, N]
    float ptm = 0.f;                        // through the best alignment row only (AF2's maximum)
};
// The heads' backward (training): dmsa, dpair, dsingle, dsm_act = dL/d(inputs) (assigned; undefined to skip),
// the parameter gradients added into grads. pLDDT, the PAE map and pTM pass their gradients back through their
// softmax expectations. Inputs float32; the pair heads run unchunked ([N, N, 64] at once: a training crop).
void heads_backward(const HeadsWeights& w, const Tensor& msa, const Tensor& pair, const Tensor& single,
                    const Tensor& sm_act, const HeadsCotangents& d, const Tensor& dmsa, const Tensor& dpair,
                    const Tensor& dsingle, const Tensor& dsm_act, HeadsWeights& grads, Context& ctx);
// Rows of a [N, N, .] head per block: chunk_size (Context::chunk_size), else blocks of about 64 MiB of
// 64-bin logits. The memory planner counts blocks of this size.
int64_t head_block_rows(int64_t chunk_size, int64_t N);

// pLDDT from logits [N, B]: 100 * sum softmax * bin centres ((b + 0.5) / B).
Tensor compute_plddt(const Tensor& logits);
// pTM from PAE logits [N, N, B] with breaks linspace(0, max_bin, B - 1) (AF2 predicted_tm_score, all
// residues weighted 1, d0 = 1.24 (max(N, 19) - 15)^(1/3) - 1.8, maximised over alignment rows).
float compute_ptm(const Tensor& pae_logits, float max_bin = 31.f);
// The same from the softmax probabilities [N, N, B].
float ptm_from_probs(const Tensor& probs, float max_bin = 31.f);

}  // namespace axfold
