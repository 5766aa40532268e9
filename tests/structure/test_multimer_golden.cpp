// AlphaFold-Multimer's structure-side modules against the multimer golden sets' module cases (golden README,
// "Multimer sets"): IPA, the backbone update and the structure module with rotation-matrix frames, and the heads
// with pTM over all pairs and ipTM over pairs of different chains.
#include "golden_util.h"
#include "structure/heads.h"
#include "structure/structure_module.h"

using namespace axfold;
using test::GoldenCase;

namespace {

const std::string kStructure = "alphafold/alphafold_iteration/structure_module";

std::map<std::string, test::GoldenRunner> multimer_structure_runners() {
    std::map<std::string, test::GoldenRunner> r;
    r["invariant_point_attention"] = [](const GoldenCase& c, Context& ctx) {
        const InvariantPointAttentionWeights w =
            load_multimer_ipa_weights(c.lookup(), kStructure + "/fold_iteration/invariant_point_attention");
        const Tensor s = c.input("inputs_1d"), mask = c.input("mask");
        Tensor out = Tensor::empty(s.shape());
        invariant_point_attention_forward(w, s, c.input("inputs_2d"), c.input("rotation"), c.input("translation"), mask,
                                          out, false, ctx);
        // Rows with mask 0 attend to nothing: ill-conditioned in the reference (golden README).
        return std::map<std::string, Tensor>{{"outputs/update", out}, {"mask:outputs/update", mask}};
    };
    r["backbone_update"] = [](const GoldenCase& c, Context& ctx) {
        LinearWeights w;
        bind_params(w, kStructure + "/fold_iteration/quat_rigid/rigid", c.lookup());
        Tensor rot = c.input("rotation").clone(), t = c.input("translation").clone();
        backbone_update_rotation(w, c.input("act"), rot, t, ctx);
        return std::map<std::string, Tensor>{
            {"outputs/affine_update", linear(c.input("act"), w.weights, w.bias, ctx.ws).clone()},
            {"outputs/new_rotation", rot},
            {"outputs/new_translation", t}};
    };
    r["structure_module"] = [](const GoldenCase& c, Context& ctx) {
        const StructureModuleWeights w = load_structure_module(c.lookup(), kStructure, true);
        StructureModuleConfig cfg;
        cfg.multimer = true;
        cfg.position_scale = 20.f;
        cfg.num_layers = static_cast<int>(c.golden("outputs/traj").size(0));
        const Tensor mask = c.input("seq_mask");
        const StructureModuleOutputs o =
            structure_module_forward(w, cfg, c.input("single"), c.input("pair"), c.input_raw("aatype"), mask, ctx);
        const Tensor ml = test::lead_mask(mask, cfg.num_layers);
        // Residues with mask 0 are ill-conditioned in the reference (golden README).
        return std::map<std::string, Tensor>{{"outputs/traj", o.traj},
                                             {"mask:outputs/traj", ml},
                                             {"outputs/sidechain_frames", o.sidechain_frames},
                                             {"mask:outputs/sidechain_frames", ml},
                                             {"outputs/angles_sin_cos", o.angles_sin_cos},
                                             {"mask:outputs/angles_sin_cos", ml},
                                             {"outputs/unnormalized_angles_sin_cos", o.unnormalized_angles_sin_cos},
                                             {"mask:outputs/unnormalized_angles_sin_cos", ml},
                                             {"outputs/atom14_positions", o.atom14_positions},
                                             {"mask:outputs/atom14_positions", ml},
                                             {"outputs/act", o.act},
                                             {"mask:outputs/act", mask}};
    };
    r["heads"] = [](const GoldenCase& c, Context& ctx) {
        HeadsWeights w;
        w.has_pae = true;
        bind_params(w, "alphafold/alphafold_iteration", c.lookup());
        const HeadsOutputs h = heads_forward(w, c.input("msa"), c.input("pair"), c.input("single"),
                                             c.input("structure_module"), ctx, true, c.input_raw("asym_id"));
        EXPECT_TRUE(h.has_iptm);
        return std::map<std::string, Tensor>{
            {"outputs/predicted_lddt_logits", h.predicted_lddt_logits},
            {"outputs/plddt", h.plddt},
            {"outputs/distogram_logits", h.distogram_logits},
            {"outputs/masked_msa_logits", h.masked_msa_logits},
            {"outputs/experimentally_resolved_logits", h.experimentally_resolved_logits},
            {"outputs/predicted_aligned_error_logits", h.predicted_aligned_error_logits},
            {"outputs/aligned_confidence_probs", h.aligned_confidence_probs},
            {"outputs/predicted_aligned_error", h.predicted_aligned_error},
            {"outputs/max_predicted_aligned_error", Tensor::full({}, h.max_predicted_aligned_error)},
            {"outputs/ptm", Tensor::full({}, h.ptm)},
            {"outputs/iptm", Tensor::full({}, h.iptm)},
            {"outputs/weighted_ptm_score", Tensor::full({}, h.weighted_ptm_score)}};
    };
    return r;
}

}  // namespace

TEST(Multimer, golden_structure_module_cases_match) {
    if (test::run_multimer_golden_cases(multimer_structure_runners()) == 0)
        GTEST_SKIP() << "no multimer golden set under " << test::golden_dir();
}

// ipTM reads only the pairs of different chains: with every residue in one chain there is no interface (0), and
// moving the chain boundary changes it while pTM stays.
TEST(Multimer, iptm_reads_only_pairs_of_different_chains) {
    std::mt19937 rng(8);
    const int64_t N = 12, S = 3, Cm = 8, Cz = 6, Cs = 8;
    HeadsWeights w;
    w.has_pae = true;
    w.lddt_input_layer_norm = {test::randn({Cs}, rng), test::randn({Cs}, rng)};
    w.lddt_act_0 = {test::randn({Cs, 4}, rng), test::randn({4}, rng)};
    w.lddt_act_1 = {test::randn({4, 4}, rng), test::randn({4}, rng)};
    w.lddt_logits = {test::randn({4, 50}, rng), test::randn({50}, rng)};
    w.distogram_half_logits = {test::randn({Cz, 64}, rng), test::randn({64}, rng)};
    w.experimentally_resolved = {test::randn({Cs, 37}, rng), test::randn({37}, rng)};
    w.masked_msa = {test::randn({Cm, 22}, rng), test::randn({22}, rng)};
    w.predicted_aligned_error = {test::randn({Cz, 64}, rng), test::randn({64}, rng)};
    const Tensor msa = test::randn({S, N, Cm}, rng), pair = test::randn({N, N, Cz}, rng),
                 single = test::randn({N, Cs}, rng), sm = test::randn({N, Cs}, rng);
    auto run = [&](int64_t split) {
        Tensor asym = Tensor::empty({N}, DType::I64);
        for (int64_t i = 0; i < N; ++i) asym.data<int64_t>()[i] = i < split ? 1 : 2;
        Context ctx;
        ctx.chunk_size = 5;  // row blocks that straddle the chain boundary
        return heads_forward(w, msa, pair, single, sm, ctx, false, asym);
    };
    const HeadsOutputs one = run(N), a = run(4), b = run(8);
    EXPECT_EQ(one.iptm, 0.f);
    EXPECT_GT(a.iptm, 0.f);
    EXPECT_NE(a.iptm, b.iptm);
    EXPECT_EQ(a.ptm, b.ptm);
    EXPECT_FLOAT_EQ(a.weighted_ptm_score, 0.8f * a.iptm + 0.2f * a.ptm);
}
