// Template torsion angles and pseudo-beta (structure/torsion_angles.h) against the golden `templates_seed5`
// set (its module case `template_torsion_angles`), plus invariants on random atoms. The set lives in
// ../shared/golden (AXFOLD_GOLDEN_DIR); with the bundled tests/data/golden only the invariants run.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>

#include "golden_util.h"
#include "structure/torsion_angles.h"

using namespace axfold;
using test::GoldenCase;

TEST(TemplateFeatures, golden_template_torsion_angles_match) {
    std::map<std::string, test::GoldenRunner> r;
    r["template_torsion_angles"] = [](const GoldenCase& c, Context&) {
        TorsionAngles t = atom37_to_torsion_angles(
            c.input_raw("template_aatype"), c.input("template_all_atom_positions"), c.input("template_all_atom_mask"));
        return std::map<std::string, Tensor>{{"outputs/torsion_angles_sin_cos", t.sin_cos},
                                             {"outputs/alt_torsion_angles_sin_cos", t.alt_sin_cos},
                                             {"outputs/torsion_angles_mask", t.mask}};
    };
    // float64 evaluation on the same float32 atoms: only the final float32 rounding differs, including
    // at the entries that are ill-conditioned in float32.
    test::GoldenTolerance tol;
    tol.rel_angles = 1e-5;
    if (test::run_golden_cases(r, tol) == 0)
        GTEST_SKIP() << "no template_torsion_angles case under " << test::golden_dir();
}

// A rigid motion of the atoms leaves every torsion unchanged; pi-periodic chis flip sign in the alt
// angles; the pre-omega and phi of residue 0 are masked; a missing atom masks exactly its torsions.
TEST(TemplateFeatures, torsion_angle_invariants) {
    std::mt19937 rng(5);
    const int64_t N = 9;
    Tensor aatype = Tensor::empty({N}, DType::I64);
    const int64_t types[N] = {0, 3, 4, 13, 19, 7, 1, 6, 18};  // ALA ASP CYS PHE VAL GLY ARG GLU TYR
    for (int64_t i = 0; i < N; ++i) aatype.data<int64_t>()[i] = types[i];
    Tensor pos = test::randn({N, 37, 3}, rng, 3.f);
    Tensor mask = Tensor::full({N, 37}, 1.f);
    TorsionAngles a = atom37_to_torsion_angles(aatype, pos, mask);
    // Rotation about a random axis and a translation.
    const double ang = 0.7, ax[3] = {0.48, -0.6, 0.64};
    double R[3][3];
    const double c = std::cos(ang), s = std::sin(ang), C = 1 - c;
    const double x = ax[0], y = ax[1], z = ax[2];
    const double Rm[3][3] = {{c + x * x * C, x * y * C - z * s, x * z * C + y * s},
                             {y * x * C + z * s, c + y * y * C, y * z * C - x * s},
                             {z * x * C - y * s, z * y * C + x * s, c + z * z * C}};
    std::memcpy(R, Rm, sizeof(R));
    Tensor moved = Tensor::empty(pos.shape());
    for (int64_t k = 0; k < N * 37; ++k)
        for (int i = 0; i < 3; ++i) {
            double v = 5.0 * (i + 1);
            for (int j = 0; j < 3; ++j) v += R[i][j] * pos.f32()[k * 3 + j];
            moved.f32()[k * 3 + i] = static_cast<float>(v);
        }
    TorsionAngles b = atom37_to_torsion_angles(aatype, moved, mask);
    // Residue 0's pre-omega and phi use the absent previous residue's atoms, fixed at the origin.
    for (Tensor* t : {&a.sin_cos, &b.sin_cos})
        for (int k = 0; k < 2; ++k) t->at({0, k, 0}) = t->at({0, k, 1}) = 0.f;
    EXPECT_EQ(test::compare(test::to_f64(b.sin_cos), test::to_f64(a.sin_cos), 1e-5, 0, "rigid motion", 3).bad, 0);
    EXPECT_EQ(a.mask.at({0, 0}), 0.f);
    EXPECT_EQ(a.mask.at({0, 1}), 0.f);
    EXPECT_EQ(a.mask.at({1, 0}), 1.f);
    // ASP chi2 is pi-periodic: alt = -angle; chi1 unchanged.
    EXPECT_FLOAT_EQ(a.alt_sin_cos.at({1, 4, 0}), -a.sin_cos.at({1, 4, 0}));
    EXPECT_FLOAT_EQ(a.alt_sin_cos.at({1, 3, 0}), a.sin_cos.at({1, 3, 0}));
    EXPECT_EQ(a.mask.at({0, 3}), 0.f);  // ALA has no chi
    EXPECT_EQ(a.mask.at({6, 6}), 1.f);  // ARG has chi4
    // Unit length where the frame is well defined.
    for (int64_t i = 1; i < N; ++i)
        for (int k = 0; k < 3; ++k)
            EXPECT_NEAR(std::hypot(a.sin_cos.at({i, k, 0}), a.sin_cos.at({i, k, 1})), 1.0, 1e-5);
    // Dropping O masks psi only.
    Tensor m2 = mask.clone();
    m2.at({4, 4}) = 0.f;
    TorsionAngles d = atom37_to_torsion_angles(aatype, pos, m2);
    EXPECT_EQ(d.mask.at({4, 2}), 0.f);
    EXPECT_EQ(d.mask.at({4, 1}), 1.f);
    // Pseudo-beta: CA for glycine, CB otherwise.
    PseudoBeta pb = pseudo_beta_with_mask(aatype, pos, mask);
    EXPECT_EQ(pb.positions.at({5, 0}), pos.at({5, 1, 0}));
    EXPECT_EQ(pb.positions.at({4, 2}), pos.at({4, 3, 2}));
}
