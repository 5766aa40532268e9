// Invariant point attention (AF2 supplement, Algorithm 22). Parameter scope
// `structure_module/fold_iteration/invariant_point_attention`.
//
// Frames are the structure module's internal ones (translations in nm-like units, not yet scaled by 10).
// Every step is an op on the device of s (frames to and from the global frame: apply_frames; the point
// logits: weighted_sq_distances), so IPA runs where the model runs.
#pragma once

#include "evoformer/weights.h"
#include "kernels/ops.h"

namespace axfold {

struct InvariantPointAttentionWeights {
    LinearWeights q_scalar;           // [C_s, H*c]
    LinearWeights kv_scalar;          // [C_s, H*(c + c_v)]
    LinearWeights q_point_local;      // [C_s, 3*H*P_qk] (x | y | z thirds)
    LinearWeights kv_point_local;     // [C_s, 3*H*(P_qk + P_v)]
    Tensor trainable_point_weights;   // [H] (softplus applied)
    LinearWeights attention_2d;       // [C_z, H]
    LinearWeights output_projection;  // [H*(c_v + 4*P_v + C_z), C_s]
    template <class F> void visit(F&& f) {
        q_scalar.visit(scoped("q_scalar", f));
        kv_scalar.visit(scoped("kv_scalar", f));
        q_point_local.visit(scoped("q_point_local", f));
        kv_point_local.visit(scoped("kv_point_local", f));
        f("//trainable_point_weights", trainable_point_weights);
        attention_2d.visit(scoped("attention_2d", f));
        output_projection.visit(scoped("output_projection", f));
    }
    int64_t no_heads() const { return trainable_point_weights.size(0); }
    int64_t c_hidden() const { return q_scalar.weights.size(1) / no_heads(); }
    int64_t c_v() const { return kv_scalar.weights.size(1) / no_heads() - c_hidden(); }
    int64_t no_qk_points() const { return q_point_local.weights.size(1) / (3 * no_heads()); }
    int64_t no_v_points() const { return kv_point_local.weights.size(1) / (3 * no_heads()) - no_qk_points(); }
};

// AF-Multimer's IPA parameters under `scope` (`{q,k,v}_scalar_projection//weights` [C_s, H, c] without bias,
// `{q,k,v}_point_projection/point_projection` [C_s, H, 3P] and bias [H, 3P], each head's x, y, z a third of its
// last axis; attention_2d, trainable_point_weights, output_projection as the monomer's) rearranged into the
// monomer's layout (copies, on the host), which computes AF-Multimer's attention: its logits and output features
// are the monomer's (golden README, "IPA (multimer)"). The point norms use sqrt(eps + |x|^2) where AF-Multimer
// uses sqrt(max(|x|^2, 1e-16)): equal to float32 rounding unless a point lies within 1e-4 of its frame's origin.
InvariantPointAttentionWeights load_multimer_ipa_weights(const ParamLookup& get, const std::string& scope);

// s [N, C_s], z [N, N, C_z], rot [N, 3, 3], trans [N, 3], mask [N], all on one device with the weights;
// out [N, C_s] = (accumulate ? out : 0) + IPA update. mask bias is inf * (m_i m_j - 1), AF2 inf = 1e5.
// Attention runs in chunks of ctx.chunk_size query rows. With z_norm, z is the raw pair and each chunk's
// rows are layer-normed on the fly (the structure module's pair_layer_norm), so no normalised copy of the
// pair is needed.
void invariant_point_attention_forward(const InvariantPointAttentionWeights& w, const Tensor& s, const Tensor& z,
                                       const Tensor& rot, const Tensor& trans, const Tensor& mask, const Tensor& out,
                                       bool accumulate, Context& ctx, float inf = 1e5f, float eps = 1e-8f,
                                       const LayerNormWeights* z_norm = nullptr);

// The backward twin (training): for the update u = IPA(s, z, frames) and dupdate = dL/du [N, C_s], writes
// ds [N, C_s] and dz [N, N, C_z] (assigned; dz may be undefined), drot [N, 3, 3] and dtrans [N, 3] (host, assigned;
// may be null), and adds the parameter gradients into grads. The forward is recomputed unchunked (a training
// crop's [H, N, N] weights) with the forward's own helpers, so its rounding is the forward's; everything O(H N^2)
// runs in ops on s's device (the attention's GEMMs and softmax backward, the point term's sums as GEMMs), the
// O(N H P) frame algebra of the points on the host in float64. The raw pair only (no z_norm).
void invariant_point_attention_backward(const InvariantPointAttentionWeights& w, const Tensor& s, const Tensor& z,
                                        const Tensor& rot, const Tensor& trans, const Tensor& mask,
                                        const Tensor& dupdate, const Tensor& ds, const Tensor& dz, Tensor* drot,
                                        Tensor* dtrans, InvariantPointAttentionWeights& grads, Context& ctx,
                                        float inf = 1e5f, float eps = 1e-8f);

}  // namespace axfold
