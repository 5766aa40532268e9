// Structure module (AF2 supplement 1.8, Algorithm 20): IPA, transition, backbone update (Algorithm 23),
// angle resnet (Algorithm 20 lines 11-14) and all-atom construction (Algorithm 24), iterated with shared
// weights. Parameter scope `alphafold/alphafold_iteration/structure_module`.
#pragma once

#include "structure/ipa.h"

namespace axfold {

struct AngleResnetWeights {
    LinearWeights input_projection;    // [C_s, c] on relu(act)
    LinearWeights input_projection_1;  // [C_s, c] on relu(initial_act)
    LinearWeights resblock1, resblock2, resblock1_1, resblock2_1;  // [c, c]
    LinearWeights unnormalized_angles;  // [c, 14]
    template <class F> void visit(F&& f) {
        input_projection.visit(scoped("input_projection", f));
        input_projection_1.visit(scoped("input_projection_1", f));
        resblock1.visit(scoped("resblock1", f));
        resblock2.visit(scoped("resblock2", f));
        resblock1_1.visit(scoped("resblock1_1", f));
        resblock2_1.visit(scoped("resblock2_1", f));
        unnormalized_angles.visit(scoped("unnormalized_angles", f));
    }
};

struct FoldIterationWeights {
    InvariantPointAttentionWeights invariant_point_attention;
    LayerNormWeights attention_layer_norm;
    LinearWeights transition, transition_1, transition_2;
    LayerNormWeights transition_layer_norm;
    LinearWeights affine_update;  // [C_s, 6]
    AngleResnetWeights rigid_sidechain;
    template <class F> void visit(F&& f) {
        invariant_point_attention.visit(scoped("invariant_point_attention", f));
        attention_layer_norm.visit(scoped("attention_layer_norm", f));
        transition.visit(scoped("transition", f));
        transition_1.visit(scoped("transition_1", f));
        transition_2.visit(scoped("transition_2", f));
        transition_layer_norm.visit(scoped("transition_layer_norm", f));
        affine_update.visit(scoped("affine_update", f));
        rigid_sidechain.visit(scoped("rigid_sidechain", f));
    }
};

struct StructureModuleWeights {
    LayerNormWeights single_layer_norm;  // [C_s]
    LinearWeights initial_projection;    // [C_s, C_s]
    LayerNormWeights pair_layer_norm;    // [C_z]
    FoldIterationWeights fold_iteration;
    template <class F> void visit(F&& f) {
        single_layer_norm.visit(scoped("single_layer_norm", f));
        initial_projection.visit(scoped("initial_projection", f));
        pair_layer_norm.visit(scoped("pair_layer_norm", f));
        fold_iteration.visit(scoped("fold_iteration", f));
    }
};

struct StructureModuleConfig {
    int num_layers = 8;             // fold iterations (shared weights)
    float position_scale = 10.f;    // internal units -> Angstrom (AF-Multimer: 20)
    // AF-Multimer: frames are rotation matrices, updated by R' = R dR(normalize(1, b, c, d)), t' = t + R dt
    // (backbone_update_rotation), and traj holds them as [L, N, 4, 4] homogeneous matrices.
    bool multimer = false;
    float ipa_inf = 1e5f;
    float eps = 1e-8f;              // IPA point norm and angle normalisation
    // Training dropout (AF2: rate 0.1, element-wise, on the activation after IPA's residual and after the
    // transition's, before their layer norms; evoformer/dropout.h); off when the key is 0.
    uint64_t dropout_key = 0;
    float dropout_rate = 0.1f;
};

// Outputs in the layout of the golden `structure_module/*` datasets.
struct StructureModuleOutputs {
    Tensor traj;                          // [L, N, 7] quaternion (w,x,y,z), translation (Angstrom); multimer [L, N, 4, 4]
    Tensor sidechain_frames;              // [L, N, 8, 4, 4]
    Tensor angles_sin_cos;                // [L, N, 7, 2]
    Tensor unnormalized_angles_sin_cos;   // [L, N, 7, 2]
    Tensor atom14_positions;              // [L, N, 14, 3]
    Tensor states;                        // [L, N, C_s]
    Tensor act;                           // [N, C_s] final activation (representations/structure_module)
    Tensor final_atom14_positions;        // [N, 14, 3]
    Tensor final_atom_positions;          // [N, 37, 3]
    Tensor final_atom_mask;               // [N, 37]
    Tensor atom14_atom_exists;            // [N, 14]
};

// Backbone update (Algorithm 23): upd = affine_update(act) [N, 6] = (b, c, d, t);
// q' = normalize(q + q * (0, b, c, d)), t' = t + R(q) t_upd. quaternion [N, 4], translation [N, 3] in place:
// host tensors (the GEMM runs on act's device, the frame algebra on the host); the update comes back on the host.
void backbone_update(const LinearWeights& w, const Tensor& act, Tensor& quaternion, Tensor& translation,
                     Tensor* affine_update_out, Context& ctx);

// AF-Multimer's backbone update (`quat_rigid/rigid`): upd = (b, c, d, t) as above; R' = R dR with dR the rotation
// of normalize((1, b, c, d)), t' = t + R t_upd. rotation [N, 3, 3], translation [N, 3] host tensors, in place.
void backbone_update_rotation(const LinearWeights& w, const Tensor& act, Tensor& rotation, Tensor& translation,
                              Context& ctx);

// The structure module's weights under `scope`; multimer: AF-Multimer's (IPA by load_multimer_ipa_weights, the
// backbone update under `fold_iteration/quat_rigid/rigid`).
StructureModuleWeights load_structure_module(const ParamLookup& get, const std::string& scope, bool multimer);

// Angle resnet: act, initial_act [N, C_s] (on the weights' device) -> unnormalized and normalized (sin, cos)
// [N, 7, 2] (host tensors; normalized contiguous).
void angle_resnet_forward(const AngleResnetWeights& w, const Tensor& act, const Tensor& initial_act,
                          Tensor& unnormalized, Tensor& normalized, Context& ctx, float eps = 1e-8f);

// Backward twins (training). backbone_update_backward: the forward's inputs (act, the quaternion q before it is
// normalised and the translation, [N, 4] and [N, 3] host tensors) and the cotangents of its outputs (any may be
// undefined: the [N, 6] update, the new unit quaternion, its rotation [N, 3, 3], the new translation) ->
// dact (assigned), dquaternion (tangent to q's sphere: q is normalised before use), dtranslation; the linear's
// gradients added into grads.
void backbone_update_backward(const LinearWeights& w, const Tensor& act, const Tensor& quaternion,
                              const Tensor& translation, const Tensor& daffine_update, const Tensor& dnew_quaternion,
                              const Tensor& dnew_rotation, const Tensor& dnew_translation, const Tensor& dact,
                              const Tensor& dquaternion, const Tensor& dtranslation, LinearWeights& grads, Context& ctx);
// angle_resnet_backward: cotangents of the unnormalized and normalized (sin, cos) [N, 7, 2] (either may be
// undefined) -> dact, dinitial_act (assigned); parameter gradients added into grads.
void angle_resnet_backward(const AngleResnetWeights& w, const Tensor& act, const Tensor& initial_act,
                           const Tensor& dunnormalized, const Tensor& dnormalized, const Tensor& dact,
                           const Tensor& dinitial_act, AngleResnetWeights& grads, Context& ctx, float eps = 1e-8f);

// Cotangents of the structure module's outputs (any may be undefined).
struct StructureModuleCotangents {
    Tensor traj, sidechain_frames, angles_sin_cos, unnormalized_angles_sin_cos, atom14_positions, states;  // [L, ...]
    Tensor act, final_atom14_positions, final_atom_positions;
};
// The whole module's backward: the forward replayed keeping each layer's states, then the layers in reverse
// (the structure module's pieces' backward twins, the all-atom construction's, and the layer norms'). The
// rotation passed from one layer to the next is stop-gradient (AF2); the translation keeps its gradient.
// dsingle, dpair (assigned) and the parameter gradients (added into grads).
void structure_module_backward(const StructureModuleWeights& w, const StructureModuleConfig& cfg, const Tensor& single,
                               const Tensor& pair, const Tensor& aatype, const Tensor& seq_mask,
                               const StructureModuleCotangents& d, const Tensor& dsingle, const Tensor& dpair,
                               StructureModuleWeights& grads, Context& ctx);

// single [N, C_s], pair [N, N, C_z] (Evoformer outputs, before the module's layer norms) on the weights'
// device, where IPA, the transitions and every GEMM run; aatype [N], seq_mask [N] anywhere. The frames and
// the all-atom construction (O(N)) run on the host; the outputs are host tensors.
StructureModuleOutputs structure_module_forward(const StructureModuleWeights& w, const StructureModuleConfig& cfg,
                                                const Tensor& single, const Tensor& pair, const Tensor& aatype,
                                                const Tensor& seq_mask, Context& ctx);

}  // namespace axfold
