// The ground truth of a training example (training/ground_truth.h) against the golden loss case's batch/,
// which OpenFold's training pipeline made from PDB 2Q2K chain A, residues 18..41 (golden README
// "loss_cases.h5"): every feature from the golden atom37 arrays, and the atom37 arrays themselves from the
// mmCIF file (tests/data/realdata/2q2k.cif).
#include <gtest/gtest.h>

#include <cmath>

#include "golden_util.h"
#include "io/mmcif.h"
#include "training/ground_truth.h"

using namespace axfold;

namespace {
const std::string kSmall = std::string(AXFOLD_TEST_DATA_DIR) + "/golden/small";
const std::string k2q2k = std::string(AXFOLD_TEST_DATA_DIR) + "/realdata/2q2k.cif";

// max |a - b| (float64) and whether the shapes agree.
double max_diff(const Tensor& a, const Tensor& b) {
    if (a.shape() != b.shape()) return INFINITY;
    const auto x = host_float64(a), y = host_float64(b);
    double m = 0;
    for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::fabs(x[i] - y[i]));
    return m;
}
}  // namespace

TEST(GroundTruth, golden_batch_from_atom37) {
    const io::Hdf5File cases(kSmall + "/loss_cases.h5");
    const FeatureDict batch = test::read_group(cases, "batch");
    const FeatureDict gt = ground_truth_features(batch.at("aatype"), batch.at("all_atom_positions"), batch.at("all_atom_mask"));
    // Masks and existence flags exactly; positions and frames to float32 round-off of coordinates of ~30 A.
    int compared = 0;
    for (const auto& [name, t] : gt) {
        ASSERT_TRUE(batch.count(name)) << name;
        const bool exact = name.find("exists") != std::string::npos || name.find("mask") != std::string::npos ||
                           name.find("ambiguous") != std::string::npos;
        const double d = max_diff(t, batch.at(name)), scale = test::max_abs(batch.at(name));
        std::printf("  %-32s max diff %.2e (largest value %.2f)\n", name.c_str(), d, scale);
        // The chi angles' sin/cos come from atom coordinates of ~45 A through two cross products: OpenFold's
        // float32 arithmetic carries ~eps32 x 45 A / 1.5 A per step, a few 1e-6, against our float64 (the
        // golden README measures its float32 torsions' noise at up to 1.6e-5 relative).
        const double tol = name == "chi_angles_sin_cos" ? 1e-5 : 2e-6 * std::max(1.0, scale);
        if (exact)
            EXPECT_EQ(d, 0.0) << name;
        else
            EXPECT_LE(d, tol) << name;
        ++compared;
    }
    EXPECT_EQ(compared, 20);
    // Not vacuous: the crop has residues with swappable atoms, chis and missing atoms.
    EXPECT_GT(test::max_abs(gt.at("atom14_atom_is_ambiguous")), 0);
    EXPECT_GT(test::max_abs(gt.at("chi_mask")), 0);
    EXPECT_GT(max_diff(gt.at("rigidgroups_gt_frames"), gt.at("rigidgroups_alt_gt_frames")), 0.5);
}

TEST(GroundTruth, golden_atom37_from_mmcif) {
    const io::Hdf5File cases(kSmall + "/loss_cases.h5");
    const FeatureDict batch = test::read_group(cases, "batch");
    const io::MmcifChain chain = io::read_mmcif_chain(k2q2k, "A");
    const ChainAtoms atoms = chain_atoms(chain, 18, 42);
    EXPECT_EQ(atoms.sequence, "HMDKKETKHLLKIKKEDYPQIFDF");  // the golden README's
    EXPECT_EQ(max_diff(atoms.aatype, batch.at("aatype")), 0.0);
    EXPECT_EQ(max_diff(atoms.all_atom_mask, batch.at("all_atom_mask")), 0.0);
    EXPECT_LE(max_diff(atoms.all_atom_positions, batch.at("all_atom_positions")), 1e-5);
    EXPECT_DOUBLE_EQ(atoms.resolution, 3.0);
    // Residues 18..21 are unresolved: no atoms.
    for (int i = 0; i < 4; ++i) EXPECT_EQ(atoms.all_atom_mask.f32()[i * 37 + 1], 0.f) << i;
    // A range outside the SEQRES is an error naming the file and the chain.
    try {
        chain_atoms(chain, 60, 80);
        FAIL() << "cropped past the SEQRES";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("2q2k.cif chain A"), std::string::npos) << e.what();
    }
}
