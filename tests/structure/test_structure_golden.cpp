// Structure-module and head cases of every golden set against the independent AF2 implementation.
#include "golden_util.h"
#include "structure/all_atom.h"
#include "structure/heads.h"
#include "structure/structure_module.h"

using namespace axfold;
using test::GoldenCase;

namespace {

const std::string kRoot = "alphafold/alphafold_iteration";

std::map<std::string, test::GoldenRunner> structure_runners() {
    std::map<std::string, test::GoldenRunner> r;
    r["invariant_point_attention"] = [](const GoldenCase& c, Context& ctx) {
        InvariantPointAttentionWeights w;
        bind_params(w, kRoot + "/structure_module/fold_iteration/invariant_point_attention", c.lookup());
        Tensor s = c.input("inputs_1d"), mask = c.input("mask");
        Tensor out = Tensor::empty(s.shape());
        invariant_point_attention_forward(w, s, c.input("inputs_2d"), quaternion_to_rotation(c.input("quaternion")),
                                          c.input("translation"), mask, out, false, ctx);
        return std::map<std::string, Tensor>{{"outputs/update", out}, {"mask:outputs/update", mask}};
    };
    r["backbone_update"] = [](const GoldenCase& c, Context& ctx) {
        LinearWeights w;
        bind_params(w, kRoot + "/structure_module/fold_iteration/affine_update", c.lookup());
        Tensor q = c.input("quaternion").clone(), t = c.input("translation").clone(), upd;
        // Inputs are normalised before use (golden README).
        for (int64_t n = 0; n < q.size(0); ++n) {
            float s = 0;
            for (int k = 0; k < 4; ++k) s += q.at({n, k}) * q.at({n, k});
            for (int k = 0; k < 4; ++k) q.at({n, k}) /= std::sqrt(s);
        }
        backbone_update(w, c.input("act"), q, t, &upd, ctx);
        return std::map<std::string, Tensor>{{"outputs/affine_update", upd},
                                             {"outputs/new_quaternion", q},
                                             {"outputs/new_translation", t},
                                             {"outputs/new_rotation", quaternion_to_rotation(q)}};
    };
    r["angle_resnet"] = [](const GoldenCase& c, Context& ctx) {
        AngleResnetWeights w;
        bind_params(w, kRoot + "/structure_module/fold_iteration/rigid_sidechain", c.lookup());
        Tensor act = c.input("act");
        Tensor un = Tensor::empty({act.size(0), 7, 2}), an = Tensor::empty({act.size(0), 7, 2});
        angle_resnet_forward(w, act, c.input("initial_act"), un, an, ctx);
        return std::map<std::string, Tensor>{{"outputs/unnormalized_angles_sin_cos", un},
                                             {"outputs/angles_sin_cos", an}};
    };
    r["structure_module"] = [](const GoldenCase& c, Context& ctx) {
        StructureModuleWeights w;
        bind_params(w, kRoot + "/structure_module", c.lookup());
        StructureModuleConfig cfg;
        cfg.num_layers = static_cast<int>(c.golden("outputs/traj").size(0));
        Tensor mask = c.input("seq_mask");
        StructureModuleOutputs o = structure_module_forward(w, cfg, c.input("single"), c.input("pair"),
                                                            c.input_raw("aatype"), mask, ctx);
        const int64_t L = cfg.num_layers;
        Tensor ml = test::lead_mask(mask, L), m1 = mask.contiguous();
        return std::map<std::string, Tensor>{
            {"outputs/traj", o.traj}, {"mask:outputs/traj", ml},
            {"outputs/sidechain_frames", o.sidechain_frames}, {"mask:outputs/sidechain_frames", ml},
            {"outputs/angles_sin_cos", o.angles_sin_cos}, {"mask:outputs/angles_sin_cos", ml},
            {"outputs/unnormalized_angles_sin_cos", o.unnormalized_angles_sin_cos},
            {"mask:outputs/unnormalized_angles_sin_cos", ml},
            {"outputs/atom14_positions", o.atom14_positions}, {"mask:outputs/atom14_positions", ml},
            {"outputs/states", o.states}, {"mask:outputs/states", ml},
            {"outputs/act", o.act}, {"mask:outputs/act", m1},
            {"outputs/final_atom14_positions", o.final_atom14_positions},
            {"mask:outputs/final_atom14_positions", m1},
            {"outputs/final_atom_positions", o.final_atom_positions}, {"mask:outputs/final_atom_positions", m1},
            {"outputs/final_atom_mask", o.final_atom_mask},
            {"outputs/atom14_atom_exists", o.atom14_atom_exists}};
    };
    r["heads"] = [](const GoldenCase& c, Context& ctx) {
        HeadsWeights w;
        w.has_pae = c.params.has(kRoot + "/predicted_aligned_error_head/logits//weights");
        bind_params(w, kRoot, c.lookup());
        HeadsOutputs o = heads_forward(w, c.input("msa"), c.input("pair"), c.input("single"),
                                       c.input("structure_module"), ctx);
        std::map<std::string, Tensor> got{{"outputs/predicted_lddt_logits", o.predicted_lddt_logits},
                                          {"outputs/plddt", o.plddt},
                                          {"outputs/distogram_logits", o.distogram_logits},
                                          {"outputs/masked_msa_logits", o.masked_msa_logits},
                                          {"outputs/experimentally_resolved_logits", o.experimentally_resolved_logits}};
        if (o.has_pae) {
            got["outputs/predicted_aligned_error_logits"] = o.predicted_aligned_error_logits;
            got["outputs/predicted_aligned_error"] = o.predicted_aligned_error;
            got["outputs/ptm"] = Tensor::full({}, o.ptm);
            got["outputs/max_predicted_aligned_error"] = Tensor::full({}, o.max_predicted_aligned_error);
        }
        return got;
    };
    return r;
}

}  // namespace

TEST(Structure, golden_module_cases_match) {
    int ran = test::run_golden_cases(structure_runners());
    ASSERT_GT(ran, 0) << "no golden structure cases found under " << test::golden_dir();
}
