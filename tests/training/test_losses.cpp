// AF2's training losses against the golden loss cases (small/loss_cases.h5: OpenFold v1.0.1 AlphaFoldLoss
// evaluated in float64 on the small model's float32 outputs for PDB 2Q2K): every implemented term, its
// sub-terms and intermediates (Algorithm 26's renaming, lDDT-Cα and its bins), and the cross-entropy terms'
// gradients against d(total)/d(logits). Our losses also run in float64 on the same stored values, so the
// tolerance is far below the golden README's 1e-5 for a float32 implementation.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "golden_util.h"
#include "io/hdf5_file.h"
#include "training/losses.h"

using namespace axfold;

namespace {

struct LossCase {
    io::Hdf5File file;
    explicit LossCase(const std::string& path) : file(path) {}
    Tensor batch(const std::string& name) const { return file.read("batch/" + name); }
    Tensor out(const std::string& name) const { return file.read("outputs/" + name); }
    double scalar(const std::string& path) const { return host_float64(file.read(path))[0]; }
    double loss(const std::string& name) const { return scalar("losses/" + name); }
    // d total / d term: the term's weight times sqrt(min(seq_length, N)) (golden README).
    double total_scale() const { return loss("total") / loss("unscaled_total"); }
    // A group's datasets by their names within it ("outputs" -> "sm/frames", ...).
    std::map<std::string, Tensor> group(const std::string& g) const {
        std::map<std::string, Tensor> m;
        for (const std::string& k : file.list(g)) m[k.substr(g.size() + 1)] = file.read(k);
        return m;
    }
    // Algorithm 26 on the last layer's atom14 positions.
    RenamedGroundTruth renamed() const {
        const Tensor positions = out("sm/positions");
        return compute_renamed_ground_truth(positions.select(0, positions.size(0) - 1), batch("atom14_gt_positions"),
                                            batch("atom14_alt_gt_positions"), batch("atom14_gt_exists"),
                                            batch("atom14_alt_gt_exists"), batch("atom14_atom_is_ambiguous"));
    }
};

// Runs fn on every golden set's loss cases; returns how many there were.
int for_each_loss_case(const std::function<void(const LossCase&)>& fn) {
    const std::vector<std::string> sets = test::golden_sets("loss_cases.h5");
    for (const std::string& set : sets) {
        std::printf("golden %s\n", set.c_str());
        fn(LossCase(set + "/loss_cases.h5"));
    }
    return static_cast<int>(sets.size());
}

void expect_term(double ours, double golden, const std::string& what) {
    std::printf("  %-38s ours %.12g  golden %.12g  rel %.2e\n", what.c_str(), ours, golden,
                std::fabs(ours - golden) / std::max(std::fabs(golden), 1e-300));
    EXPECT_LE(std::fabs(ours - golden), 1e-9 * std::fabs(golden)) << what;
}

// A gradient of one unweighted term against the golden d(total)/d(output) / (weight * scale).
void expect_grad(const Tensor& ours, const Tensor& golden_total, double weight_times_scale, const std::string& what) {
    std::vector<double> g = host_float64(golden_total);
    for (double& v : g) v /= weight_times_scale;
    const auto res = test::compare(host_float64(ours), g, 0, 0, what, 0);
    std::printf("  %-38s gradient rel %.2e\n", what.c_str(), res.rel());
    EXPECT_LE(res.rel(), 1e-9) << what;
    EXPECT_GT(res.max_ref, 0.0) << what << ": a zero gradient tests nothing";
}

}  // namespace

TEST(Losses, golden_cross_entropy_terms_and_gradients) {
    const int ran = for_each_loss_case([](const LossCase& c) {
        const LossConfig cfg;
        const double scale = c.total_scale(), resolution = c.scalar("batch/resolution");
        Tensor g;
        expect_term(distogram_loss(c.out("distogram_logits"), c.batch("pseudo_beta"), c.batch("pseudo_beta_mask"),
                                   cfg.distogram, &g),
                    c.loss("distogram"), "distogram");
        expect_grad(g, c.file.read("grad_total/distogram_logits"), cfg.distogram.weight * scale, "distogram");
        expect_term(masked_msa_loss(c.out("masked_msa_logits"), c.batch("true_msa"), c.batch("bert_mask"),
                                    cfg.masked_msa, &g),
                    c.loss("masked_msa"), "masked_msa");
        expect_grad(g, c.file.read("grad_total/masked_msa_logits"), cfg.masked_msa.weight * scale, "masked_msa");
        expect_term(experimentally_resolved_loss(c.out("experimentally_resolved_logits"), c.batch("atom37_atom_exists"),
                                                 c.batch("all_atom_mask"), resolution, cfg.experimentally_resolved, &g),
                    c.loss("experimentally_resolved"), "experimentally_resolved");
        expect_grad(g, c.file.read("grad_total/experimentally_resolved_logits"),
                    cfg.experimentally_resolved.weight * scale, "experimentally_resolved");
        Tensor lddt;
        expect_term(plddt_loss(c.out("lddt_logits"), c.out("final_atom_positions"), c.batch("all_atom_positions"),
                               c.batch("all_atom_mask"), resolution, cfg.plddt_loss, &g, &lddt),
                    c.loss("plddt_loss"), "plddt_loss");
        expect_grad(g, c.file.read("grad_total/lddt_logits"), cfg.plddt_loss.weight * scale, "plddt_loss");
        const auto l = test::compare(host_float64(lddt), host_float64(c.file.read("intermediates/lddt_ca_score")), 1e-12,
                                     0, "lddt_ca_score");
        EXPECT_EQ(l.bad, 0);
        expect_term(tm_loss(c.out("tm_logits"), c.out("final_affine_tensor"), c.batch("backbone_rigid_tensor"),
                            c.batch("backbone_rigid_mask"), resolution, cfg.tm, &g),
                    c.loss("tm"), "tm");
        expect_grad(g, c.file.read("grad_total/tm_logits"), cfg.tm.weight * scale, "tm");
        // Outside the resolution range the gated terms vanish.
        EXPECT_EQ(tm_loss(c.out("tm_logits"), c.out("final_affine_tensor"), c.batch("backbone_rigid_tensor"),
                          c.batch("backbone_rigid_mask"), 3.5, cfg.tm),
                  0.0);
    });
    if (ran == 0) GTEST_SKIP() << "no loss_cases.h5 under " << test::golden_dir();
}

TEST(Losses, golden_fape_renaming_and_supervised_chi) {
    const int ran = for_each_loss_case([](const LossCase& c) {
        const LossConfig cfg;
        const LossConfig::Fape& f = cfg.fape;
        const Tensor frames = c.out("sm/frames");
        const double unclamped = backbone_fape(frames, c.batch("backbone_rigid_tensor"), c.batch("backbone_rigid_mask"),
                                               0.0, f.backbone_loss_unit_distance, f.eps);
        const double clamped = backbone_fape(frames, c.batch("backbone_rigid_tensor"), c.batch("backbone_rigid_mask"),
                                             f.backbone_clamp_distance, f.backbone_loss_unit_distance, f.eps);
        expect_term(unclamped, c.loss("sub_terms/fape_backbone_unclamped"), "fape_backbone_unclamped");
        expect_term(clamped, c.loss("sub_terms/fape_backbone_clamped"), "fape_backbone_clamped");
        EXPECT_LT(clamped, unclamped);
        const double use_clamped = c.scalar("batch/use_clamped_fape");
        const double backbone = use_clamped * clamped + (1 - use_clamped) * unclamped;
        expect_term(backbone, c.loss("sub_terms/fape_backbone"), "fape_backbone");

        // Algorithm 26 on the last layer's atom14 positions, then the side-chain FAPE.
        const Tensor positions = c.out("sm/positions"), sc_frames = c.out("sm/sidechain_frames");
        const int64_t L = positions.size(0);
        const RenamedGroundTruth r = c.renamed();
        for (const char* k : {"alt_naming_is_better", "renamed_atom14_gt_positions", "renamed_atom14_gt_exists"}) {
            const Tensor& ours = std::string(k) == "alt_naming_is_better"   ? r.alt_naming_is_better
                                 : std::string(k) == "renamed_atom14_gt_exists" ? r.renamed_atom14_gt_exists
                                                                                : r.renamed_atom14_gt_positions;
            EXPECT_EQ(test::compare(host_float64(ours), host_float64(c.file.read(std::string("intermediates/") + k)),
                                    0, 0, k)
                          .bad,
                      0)
                << k;
        }
        double better = 0;
        for (double v : host_float64(r.alt_naming_is_better)) better += v;
        std::printf("  renaming: %g of %lld residues take the alternative naming\n", better,
                    (long long)r.alt_naming_is_better.numel());
        const double sidechain = sidechain_fape(sc_frames.select(0, L - 1), positions.select(0, L - 1),
                                                c.batch("rigidgroups_gt_frames"), c.batch("rigidgroups_alt_gt_frames"),
                                                c.batch("rigidgroups_gt_exists"), r, f.sidechain_clamp_distance,
                                                f.sidechain_length_scale, f.eps);
        expect_term(sidechain, c.loss("sub_terms/fape_sidechain"), "fape_sidechain");
        expect_term(f.backbone_weight * backbone + f.sidechain_weight * sidechain, c.loss("fape"), "fape");

        double chi_part = 0;
        const double chi = supervised_chi_loss(c.out("sm/angles"), c.out("sm/unnormalized_angles"), c.batch("aatype"),
                                               c.batch("seq_mask"), c.batch("chi_mask"), c.batch("chi_angles_sin_cos"),
                                               cfg.supervised_chi, &chi_part);
        expect_term(chi, c.loss("supervised_chi"), "supervised_chi");
        expect_term(chi_part, c.loss("sub_terms/supervised_chi_chi_part"), "supervised_chi_chi_part");
    });
    if (ran == 0) GTEST_SKIP() << "no loss_cases.h5 under " << test::golden_dir();
}

// Structural violations of the last layer's atom14 positions: every per-residue and per-atom intermediate, the
// term and its clash part.
TEST(Losses, golden_structural_violations) {
    const int ran = for_each_loss_case([](const LossCase& c) {
        const Tensor positions = c.out("sm/positions");
        const Tensor last = positions.select(0, positions.size(0) - 1);
        const StructuralViolations v = find_structural_violations(last, c.batch("atom14_atom_exists"),
                                                                  c.batch("residue_index"), c.batch("aatype"));
        const std::string br = "intermediates/violation/between_residues/";
        expect_term(v.bonds_c_n_loss_mean, c.scalar(br + "bonds_c_n_loss_mean"), "bonds_c_n_loss_mean");
        expect_term(v.angles_ca_c_n_loss_mean, c.scalar(br + "angles_ca_c_n_loss_mean"), "angles_ca_c_n_loss_mean");
        expect_term(v.angles_c_n_ca_loss_mean, c.scalar(br + "angles_c_n_ca_loss_mean"), "angles_c_n_ca_loss_mean");
        expect_term(v.clashes_mean_loss, c.scalar(br + "clashes_mean_loss"), "clashes_mean_loss");
        const std::pair<const Tensor*, std::string> per[] = {
            {&v.connections_per_residue_loss_sum, br + "connections_per_residue_loss_sum"},
            {&v.connections_per_residue_violation_mask, br + "connections_per_residue_violation_mask"},
            {&v.clashes_per_atom_loss_sum, br + "clashes_per_atom_loss_sum"},
            {&v.clashes_per_atom_clash_mask, br + "clashes_per_atom_clash_mask"},
            {&v.within_residues_per_atom_loss_sum, "intermediates/violation/within_residues/per_atom_loss_sum"},
            {&v.within_residues_per_atom_violations, "intermediates/violation/within_residues/per_atom_violations"},
            {&v.total_per_residue_violations_mask, "intermediates/violation/total_per_residue_violations_mask"}};
        for (const auto& [ours, path] : per) {
            const auto g = host_float64(c.file.read(path));
            const auto res = test::compare(host_float64(*ours), g, 1e-12, 1e-9, path);
            double nonzero = 0;
            for (double x : g) nonzero += x != 0;
            std::printf("  %-72s max |diff| %.2e (%g nonzero)\n", path.c_str(), res.max_abs, nonzero);
            EXPECT_EQ(res.bad, 0) << path;
        }
        double clash = 0;
        const double violation = violation_loss(v, c.batch("atom14_atom_exists"), 1e-6, &clash);
        expect_term(clash, c.loss("sub_terms/violation_clash"), "violation_clash");
        expect_term(violation, c.loss("violation"), "violation");

    });
    if (ran == 0) GTEST_SKIP() << "no loss_cases.h5 under " << test::golden_dir();
}

// AlphaFoldLoss from the outputs and batch by name: every term, sub-term and both totals.
TEST(Losses, golden_alphafold_loss_total) {
    const int ran = for_each_loss_case([](const LossCase& c) {
        std::map<std::string, Tensor> outputs = c.group("outputs"), batch = c.group("batch");
        const AlphaFoldLoss l = alphafold_loss(outputs, batch);
        EXPECT_EQ(l.terms.size(), 8u);
        for (const auto& [name, value] : l.terms) expect_term(value, c.loss(name), name);
        for (const auto& [name, value] : l.sub_terms) expect_term(value, c.loss("sub_terms/" + name), name);
        expect_term(l.unscaled_total, c.loss("unscaled_total"), "unscaled_total");
        expect_term(l.total, c.loss("total"), "total");
        batch.erase("true_msa");
        try {
            alphafold_loss(outputs, batch);
            ADD_FAILURE() << "a missing feature was accepted";
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find("'true_msa'"), std::string::npos) << e.what();
        }
    });
    if (ran == 0) GTEST_SKIP() << "no loss_cases.h5 under " << test::golden_dir();
}

// The structural terms' gradients with respect to the structure module's outputs against grad_terms (one
// unweighted term each), then every d(total)/d(output) of AlphaFoldLoss against grad_total.
TEST(Losses, golden_structure_gradients) {
    const int ran = for_each_loss_case([](const LossCase& c) {
        const LossConfig cfg;
        const LossConfig::Fape& f = cfg.fape;
        // last_layer: ours is the last layer's gradient; the file's earlier layers must then be zero.
        auto check = [&](const Tensor& ours, const std::string& golden_path, bool last_layer = false) {
            Tensor golden = c.file.read(golden_path);
            if (last_layer) {
                const int64_t layers = golden.size(0);
                for (int64_t l = 0; l + 1 < layers; ++l)
                    for (double v : host_float64(golden.select(0, l))) ASSERT_EQ(v, 0.0) << golden_path << " layer " << l;
                golden = golden.select(0, layers - 1);
            }
            const auto res = test::compare(host_float64(ours), host_float64(golden), 0, 0, golden_path, 0);
            std::printf("  %-58s gradient rel %.2e\n", golden_path.c_str(), res.rel());
            EXPECT_LE(res.rel(), 1e-9) << golden_path;
            EXPECT_GT(res.max_ref, 0.0) << golden_path << ": a zero gradient tests nothing";
        };
        Tensor g;
        backbone_fape(c.out("sm/frames"), c.batch("backbone_rigid_tensor"), c.batch("backbone_rigid_mask"), 0.0,
                      f.backbone_loss_unit_distance, f.eps, &g);
        check(g, "grad_terms/fape_backbone/sm/frames");  // use_clamped_fape is 0 here
        backbone_fape(c.out("sm/frames"), c.batch("backbone_rigid_tensor"), c.batch("backbone_rigid_mask"),
                      f.backbone_clamp_distance, f.backbone_loss_unit_distance, f.eps, &g);
        check(g, "grad_terms/fape_backbone_clamped/sm/frames");

        const Tensor positions = c.out("sm/positions"), sc_frames = c.out("sm/sidechain_frames");
        const int64_t L = positions.size(0);
        const RenamedGroundTruth r = c.renamed();
        Tensor dframes, dpos;
        sidechain_fape(sc_frames.select(0, L - 1), positions.select(0, L - 1), c.batch("rigidgroups_gt_frames"),
                       c.batch("rigidgroups_alt_gt_frames"), c.batch("rigidgroups_gt_exists"), r,
                       f.sidechain_clamp_distance, f.sidechain_length_scale, f.eps, &dframes, &dpos);
        check(dframes, "grad_terms/fape_sidechain/sm/sidechain_frames", true);
        check(dpos, "grad_terms/fape_sidechain/sm/positions", true);
        Tensor da, du;
        supervised_chi_loss(c.out("sm/angles"), c.out("sm/unnormalized_angles"), c.batch("aatype"), c.batch("seq_mask"),
                            c.batch("chi_mask"), c.batch("chi_angles_sin_cos"), cfg.supervised_chi, nullptr, &da, &du);
        check(da, "grad_terms/supervised_chi/sm/angles");
        check(du, "grad_terms/supervised_chi/sm/unnormalized_angles");
        Tensor dv;
        find_structural_violations(positions.select(0, L - 1), c.batch("atom14_atom_exists"), c.batch("residue_index"),
                                   c.batch("aatype"), 12.0, 1.5, &dv, cfg.violation.eps);
        check(dv, "grad_terms/violation/sm/positions", true);

        std::map<std::string, Tensor> outputs = c.group("outputs"), batch = c.group("batch");
        const AlphaFoldLoss l = alphafold_loss(outputs, batch, cfg, true);
        EXPECT_EQ(l.gradients.size(), c.file.list("grad_total").size());
        for (const auto& [name, grad] : l.gradients) {
            const std::vector<double> want = host_float64(c.file.read("grad_total/" + name));
            const auto res = test::compare(host_float64(grad), want, 0, 0, name, 0);
            std::printf("  grad_total/%-47s rel %.2e (max |golden| %.3g)\n", name.c_str(), res.rel(), res.max_ref);
            EXPECT_LE(res.max_abs, 1e-9 * std::max(res.max_ref, 1e-300)) << name;
        }
    });
    if (ran == 0) GTEST_SKIP() << "no loss_cases.h5 under " << test::golden_dir();
}

// Bad input names what is wrong.
TEST(Losses, shapes_are_checked) {
    const Tensor logits = Tensor::zeros({4, 4, 64}), pb = Tensor::zeros({5, 3}), pm = Tensor::zeros({5});
    try {
        distogram_loss(logits, pb, pm);
        FAIL() << "accepted distogram logits for 4 residues with 5 pseudo-beta positions";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("distogram_logits"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("[5, 5, 64]"), std::string::npos) << e.what();
    }
}

// The whole chain's lDDT-Cα: three Cα on a line, the third predicted 1.5 A too far: the pairs with it keep 2 of
// the 4 thresholds (0.5), the first pair all 4; (2 x 1 + 4 x 0.5) / 6 over the ordered pairs. A perfect
// prediction scores 1; a residue without its Cα is not scored.
TEST(Losses, lddt_ca_global_by_hand) {
    Tensor truth = Tensor::zeros({3, 37, 3}), pred = Tensor::zeros({3, 37, 3}), mask = Tensor::zeros({3, 37});
    const int ca = 1;
    for (int i = 0; i < 3; ++i) {
        truth.f32()[(i * 37 + ca) * 3] = 3.8f * static_cast<float>(i);
        pred.f32()[(i * 37 + ca) * 3] = 3.8f * static_cast<float>(i) + (i == 2 ? 1.5f : 0.f);
        mask.f32()[i * 37 + ca] = 1.f;
    }
    EXPECT_NEAR(lddt_ca_global(pred, truth, mask), 4.0 / 6.0, 1e-9);
    EXPECT_NEAR(lddt_ca_global(truth, truth, mask), 1.0, 1e-9);
    mask.f32()[2 * 37 + ca] = 0.f;
    EXPECT_NEAR(lddt_ca_global(pred, truth, mask), 1.0, 1e-9);
}
