// The structure module's pieces' backward against the golden gradient cases: the backbone update (the linear
// update, the quaternion composition and renormalisation, the translation through the old rotation; the input
// quaternion normalised first, so its gradient is tangent to its sphere) and the angle resnet (with the
// (sin, cos) normalisation).
#include <gtest/gtest.h>

#include "grad_golden_util.h"
#include "structure/all_atom.h"
#include "structure/ipa.h"
#include "structure/structure_module.h"

using namespace axfold;

namespace {
const std::string kSm = "alphafold/alphafold_iteration/structure_module/fold_iteration";
}

TEST(Backward, golden_backbone_update) {
    int ran = 0;
    for (const std::string& set : test::golden_sets("grad_cases.h5")) {
        const test::GradCase c(set, "backbone_update");
        if (!c.file.has(c.name)) continue;
        std::printf("golden %s backbone_update\n", std::filesystem::path(set).filename().c_str());
        LinearWeights w;
        bind_params(w, kSm + "/affine_update", c.lookup());
        const Tensor act = c.read("inputs/act"), q = c.read("inputs/quaternion"), t = c.read("inputs/translation");
        LinearWeights g = zeros_like_weights(w);
        Tensor dact = Tensor::empty(act.shape()), dq = Tensor::empty(q.shape()), dt = Tensor::empty(t.shape());
        Context ctx;
        backbone_update_backward(w, act, q, t, c.read("cotangents/affine_update"), c.read("cotangents/new_quaternion"),
                                 c.read("cotangents/new_rotation"), c.read("cotangents/new_translation"), dact, dq, dt,
                                 g, ctx);
        test::expect_grad(dact, c.read("grad_inputs/act"), "backbone_update dact");
        test::expect_grad(dq, c.read("grad_inputs/quaternion"), "backbone_update dquaternion");
        test::expect_grad(dt, c.read("grad_inputs/translation"), "backbone_update dtranslation");
        test::expect_param_grads(g, c);
        ++ran;
    }
    if (ran == 0) GTEST_SKIP() << "no grad_cases.h5 under " << test::golden_dir();
}

TEST(Backward, golden_angle_resnet) {
    int ran = 0;
    for (const std::string& set : test::golden_sets("grad_cases.h5")) {
        const test::GradCase c(set, "angle_resnet");
        if (!c.file.has(c.name)) continue;
        std::printf("golden %s angle_resnet\n", std::filesystem::path(set).filename().c_str());
        AngleResnetWeights w;
        bind_params(w, kSm + "/rigid_sidechain", c.lookup());
        const Tensor act = c.read("inputs/act"), init = c.read("inputs/initial_act");
        AngleResnetWeights g = zeros_like_weights(w);
        Tensor dact = Tensor::empty(act.shape()), dinit = Tensor::empty(init.shape());
        Context ctx;
        angle_resnet_backward(w, act, init, c.read("cotangents/unnormalized_angles_sin_cos"),
                              c.read("cotangents/angles_sin_cos"), dact, dinit, g, ctx);
        test::expect_grad(dact, c.read("grad_inputs/act"), "angle_resnet dact");
        test::expect_grad(dinit, c.read("grad_inputs/initial_act"), "angle_resnet dinitial_act");
        test::expect_param_grads(g, c);
        ++ran;
    }
    if (ran == 0) GTEST_SKIP() << "no grad_cases.h5 under " << test::golden_dir();
}

// Invariant point attention: gradients into the single and pair representations, the frames' translations
// and (through the rotation of the normalised quaternion) the quaternions, and every parameter (the trainable
// point weights' softplus included).
TEST(Backward, golden_invariant_point_attention) {
    int ran = 0;
    for (const std::string& set : test::golden_sets("grad_cases.h5")) {
        const test::GradCase c(set, "invariant_point_attention");
        if (!c.file.has(c.name)) continue;
        std::printf("golden %s invariant_point_attention\n", std::filesystem::path(set).filename().c_str());
        InvariantPointAttentionWeights w;
        bind_params(w, kSm + "/invariant_point_attention", c.lookup());
        const Tensor s = c.read("inputs/inputs_1d"), z = c.read("inputs/inputs_2d"), q = c.read("inputs/quaternion");
        const int64_t N = s.size(0);
        // The rotation of the normalised quaternion, as the module uses it.
        Tensor qn = q.clone();
        for (int64_t n = 0; n < N; ++n) {
            float norm = 0;
            for (int k = 0; k < 4; ++k) norm += qn.at({n, k}) * qn.at({n, k});
            for (int k = 0; k < 4; ++k) qn.at({n, k}) /= std::sqrt(norm);
        }
        InvariantPointAttentionWeights g = zeros_like_weights(w);
        Tensor ds = Tensor::empty(s.shape()), dz = Tensor::empty(z.shape()), drot, dtrans;
        Context ctx;
        invariant_point_attention_backward(w, s, z, quaternion_to_rotation(qn), c.read("inputs/translation"),
                                           c.read("inputs/mask"), c.read("cotangents/update"), ds, dz, &drot, &dtrans,
                                           g, ctx);
        // dR -> d(normalised quaternion) -> dq, tangent to q's sphere.
        Tensor dq = Tensor::empty({N, 4});
        for (int64_t n = 0; n < N; ++n) {
            double qd[4], dR[3][3], dqn[4] = {0, 0, 0, 0}, len = 0, dot = 0;
            for (int k = 0; k < 4; ++k) {
                qd[k] = qn.at({n, k});
                len += (double)q.at({n, k}) * q.at({n, k});
            }
            for (int k = 0; k < 9; ++k) dR[k / 3][k % 3] = drot.at({n, k / 3, k % 3});
            quaternion_to_rotation_backward(qd, dR, dqn);
            for (int k = 0; k < 4; ++k) dot += qd[k] * dqn[k];
            for (int k = 0; k < 4; ++k) dq.at({n, k}) = static_cast<float>((dqn[k] - qd[k] * dot) / std::sqrt(len));
        }
        test::expect_grad(ds, c.read("grad_inputs/inputs_1d"), "ipa dinputs_1d");
        test::expect_grad(dz, c.read("grad_inputs/inputs_2d"), "ipa dinputs_2d");
        test::expect_grad(dtrans, c.read("grad_inputs/translation"), "ipa dtranslation");
        test::expect_grad(dq, c.read("grad_inputs/quaternion"), "ipa dquaternion");
        test::expect_param_grads(g, c);
        ++ran;
    }
    if (ran == 0) GTEST_SKIP() << "no grad_cases.h5 under " << test::golden_dir();
}

// The whole structure module (2 layers, shared weights): cotangents on every output (per-layer frames, angles,
// atoms, states; the final activation and atom positions), gradients into the raw single and pair
// representations and every parameter, through the stop-gradient rotations between layers.
TEST(Backward, golden_structure_module) {
    int ran = 0;
    for (const std::string& set : test::golden_sets("grad_cases.h5")) {
        const test::GradCase c(set, "structure_module");
        if (!c.file.has(c.name)) continue;
        std::printf("golden %s structure_module\n", std::filesystem::path(set).filename().c_str());
        StructureModuleWeights w;
        bind_params(w, "alphafold/alphafold_iteration/structure_module", c.lookup());
        StructureModuleConfig cfg;
        cfg.num_layers = static_cast<int>(c.read("cotangents/traj").size(0));
        const Tensor single = c.read("inputs/single"), pair = c.read("inputs/pair");
        StructureModuleCotangents d;
        d.traj = c.read("cotangents/traj");
        d.sidechain_frames = c.read("cotangents/sidechain_frames");
        d.angles_sin_cos = c.read("cotangents/angles_sin_cos");
        d.unnormalized_angles_sin_cos = c.read("cotangents/unnormalized_angles_sin_cos");
        d.atom14_positions = c.read("cotangents/atom14_positions");
        d.states = c.read("cotangents/states");
        d.act = c.read("cotangents/act");
        d.final_atom14_positions = c.read("cotangents/final_atom14_positions");
        d.final_atom_positions = c.read("cotangents/final_atom_positions");
        StructureModuleWeights g = zeros_like_weights(w);
        Tensor ds = Tensor::empty(single.shape()), dz = Tensor::empty(pair.shape());
        Context ctx;
        structure_module_backward(w, cfg, single, pair, c.file.read(c.name + "/inputs/aatype"), c.read("inputs/seq_mask"),
                                  d, ds, dz, g, ctx);
        test::expect_grad(ds, c.read("grad_inputs/single"), "structure_module dsingle");
        test::expect_grad(dz, c.read("grad_inputs/pair"), "structure_module dpair");
        test::expect_param_grads(g, c);
        ++ran;
    }
    if (ran == 0) GTEST_SKIP() << "no grad_cases.h5 under " << test::golden_dir();
}

// Training dropout in the structure module (element-wise, after IPA's and the transition's residuals): one
// layer (no stop-gradient rotation between layers), the golden case's inputs and its cotangents on the states
// and the final activation; the gradient into the single representation predicts central differences of the
// dropped-out forward for two dropout keys, and dropout changes the forward. (Step 1e-4: larger steps cross
// the transitions' ReLU kinks, which moves the differences by up to 10 %; the activations are small enough for
// float32 there.)
TEST(Backward, structure_module_with_dropout_matches_central_differences) {
    const std::string set = std::string(AXFOLD_TEST_DATA_DIR) + "/golden/small";
    const test::GradCase c(set, "structure_module");
    StructureModuleWeights w;
    bind_params(w, "alphafold/alphafold_iteration/structure_module", c.lookup());
    StructureModuleConfig cfg;
    cfg.num_layers = 1;
    const Tensor single = c.read("inputs/single"), pair = c.read("inputs/pair"), seq_mask = c.read("inputs/seq_mask");
    const Tensor aatype = c.file.read(c.name + "/inputs/aatype");
    auto first = [&](const char* k) { return c.read(std::string("cotangents/") + k).slice(0, 0, 1).contiguous(); };
    StructureModuleCotangents d;
    d.states = first("states");
    d.act = c.read("cotangents/act");
    Context ctx;
    auto dot = [](const Tensor& a, const Tensor& b) {
        const std::vector<double> x = host_float64(a), y = host_float64(b);
        double v = 0;
        for (size_t i = 0; i < x.size(); ++i) v += x[i] * y[i];
        return v;
    };
    auto objective = [&](const Tensor& s, const StructureModuleConfig& cf) {
        const StructureModuleOutputs o = structure_module_forward(w, cf, s, pair, aatype, seq_mask, ctx);
        return dot(o.states, d.states) + dot(o.act, d.act);
    };
    std::mt19937 rng(3);
    const Tensor v = test::randn(single.shape(), rng);
    const double eps = 1e-4;
    auto shifted = [&](double step) {
        Tensor s = single.clone();
        for (int64_t i = 0; i < s.numel(); ++i) s.f32()[i] += static_cast<float>(step) * v.f32()[i];
        return s;
    };
    for (uint64_t key : {uint64_t(31), uint64_t(1000)}) {
        cfg.dropout_key = key;
        StructureModuleWeights g = zeros_like_weights(w);
        Tensor ds = Tensor::empty(single.shape()), dz = Tensor::empty(pair.shape());
        structure_module_backward(w, cfg, single, pair, aatype, seq_mask, d, ds, dz, g, ctx);
        const double fd = (objective(shifted(eps), cfg) - objective(shifted(-eps), cfg)) / (2 * eps), an = dot(ds, v);
        std::printf("  structure module with dropout (key %llu): analytic %.6g, central difference %.6g\n",
                    (unsigned long long)key, an, fd);
        EXPECT_NEAR(fd, an, 1e-2 * std::fabs(an)) << key;
        EXPECT_GT(std::fabs(an), 1.0);
        StructureModuleConfig off = cfg;
        off.dropout_key = 0;
        EXPECT_NE(objective(single, cfg), objective(single, off));
    }
}
