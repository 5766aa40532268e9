// Residue constants and all-atom construction: golden cases (module_cases.h5 structure_module and the
// full-model outputs.h5 rebuilt from their traj + torsions) and invariants of the construction.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <numbers>
#include <random>

#include "golden_util.h"
#include "io/hdf5_file.h"
#include "structure/all_atom.h"
#include "structure/residue_constants.h"
#include "test_util.h"

namespace axfold {
namespace {

using test::to_f64;

// Compares ours with golden, prints one line, and checks max|a-b| <= rtol * max|golden| (and <= atol when
// atol >= 0).
void golden_check(const std::string& set, const std::string& what, const Tensor& ours, const Tensor& golden,
                  double rtol = 1e-4, double atol = -1) {
    ASSERT_EQ(ours.shape(), golden.shape()) << set << " " << what;
    auto res = test::compare(to_f64(ours), to_f64(golden), 0, 0, what, 0);
    bool ok = res.max_abs <= rtol * res.max_ref && (atol < 0 || res.max_abs <= atol);
    std::printf("golden %-16s %-60s rel %.3e  max abs %.3e %s\n", set.c_str(), what.c_str(), res.rel(), res.max_abs,
                ok ? "ok" : "FAIL");
    EXPECT_TRUE(ok) << set << " " << what << ": max abs " << res.max_abs << ", max |golden| " << res.max_ref;
}

void exact_check(const std::string& set, const std::string& what, const Tensor& ours, const Tensor& golden) {
    ASSERT_EQ(ours.shape(), golden.shape()) << set << " " << what;
    auto a = to_f64(ours), g = to_f64(golden);
    int64_t bad = 0;
    for (size_t i = 0; i < a.size(); ++i) bad += a[i] != g[i];
    std::printf("golden %-16s %-60s mismatches %lld %s\n", set.c_str(), what.c_str(), static_cast<long long>(bad),
                bad == 0 ? "ok" : "FAIL");
    EXPECT_EQ(bad, 0) << set << " " << what;
}

// Rebuilds sidechain_frames and atom14 positions of every structure-module layer from traj [L, N, 7] and
// angles_sin_cos [L, N, 7, 2], and compares them with the golden ones.
void check_layers(const std::string& set, const std::string& prefix, const Tensor& aatype, const Tensor& traj,
                  const Tensor& angles, const Tensor& golden_frames, const Tensor& golden_atom14) {
    const int64_t L = traj.size(0);
    for (int64_t l = 0; l < L; ++l) {
        Tensor tl = traj.select(0, l);
        Tensor rot = quaternion_to_rotation(tl.slice(1, 0, 4).contiguous());
        Tensor trans = tl.slice(1, 4, 7).contiguous();
        Tensor frames = torsion_angles_to_frames(aatype, rot, trans, angles.select(0, l).contiguous());
        Tensor atom14 = frames_and_literature_positions_to_atom14_pos(aatype, frames);
        std::string sfx = "[" + std::to_string(l) + "]";
        golden_check(set, prefix + "sidechain_frames" + sfx, frames, golden_frames.select(0, l).contiguous());
        golden_check(set, prefix + "atom14_positions" + sfx, atom14, golden_atom14.select(0, l).contiguous(), 1e-4,
                     1e-3);
    }
}

TEST(AllAtom, golden_structure_module_geometry) {
    int ran = 0;
    for (const std::string& set : test::golden_sets("module_cases.h5")) {
        io::Hdf5File f(set + "/module_cases.h5");
        if (!f.has("structure_module")) continue;
        std::string name = std::filesystem::path(set).filename().string();
        const std::string g = "structure_module/";
        Tensor aatype = f.read(g + "inputs/aatype");
        Tensor traj = f.read_f32(g + "outputs/traj");
        Tensor angles = f.read_f32(g + "outputs/angles_sin_cos");
        check_layers(name, "structure_module/", aatype, traj, angles, f.read_f32(g + "outputs/sidechain_frames"),
                     f.read_f32(g + "outputs/atom14_positions"));

        Tensor golden_atom14 = f.read_f32(g + "outputs/atom14_positions");
        Tensor last = golden_atom14.select(0, golden_atom14.size(0) - 1).contiguous();
        golden_check(name, "structure_module/final_atom_positions", atom14_to_atom37(last, aatype),
                     f.read_f32(g + "outputs/final_atom_positions"), 1e-4, 1e-3);
        // And the whole chain from the last layer's traj, as the structure module does it.
        Tensor tl = traj.select(0, traj.size(0) - 1);
        Tensor frames =
            torsion_angles_to_frames(aatype, quaternion_to_rotation(tl.slice(1, 0, 4).contiguous()),
                                     tl.slice(1, 4, 7).contiguous(), angles.select(0, angles.size(0) - 1).contiguous());
        golden_check(name, "structure_module/final_atom_positions(from traj)",
                     atom14_to_atom37(frames_and_literature_positions_to_atom14_pos(aatype, frames), aatype),
                     f.read_f32(g + "outputs/final_atom_positions"), 1e-4, 1e-3);
        exact_check(name, "structure_module/final_atom_mask", atom37_mask(aatype),
                    f.read_f32(g + "outputs/final_atom_mask"));
        exact_check(name, "structure_module/atom14_atom_exists", atom14_mask(aatype),
                    f.read_f32(g + "outputs/atom14_atom_exists"));
        ++ran;
    }
    if (ran == 0) GTEST_SKIP() << "no golden set with a structure_module case under " << test::golden_dir();
}

TEST(AllAtom, golden_full_model_geometry) {
    int ran = 0;
    for (const std::string& set : test::golden_sets("outputs.h5")) {
        if (!std::filesystem::exists(set + "/features.h5")) continue;
        io::Hdf5File out(set + "/outputs.h5");
        io::Hdf5File feat(set + "/features.h5");
        std::string name = std::filesystem::path(set).filename().string();
        Tensor aatype = feat.read("aatype");
        if (aatype.dim() == 2) aatype = aatype.select(0, 0).contiguous();  // leading iteration axis
        const std::string sm = "structure_module/";
        check_layers(name, "outputs/structure_module/", aatype, out.read_f32(sm + "traj"),
                     out.read_f32(sm + "angles_sin_cos"), out.read_f32(sm + "sidechain_frames"),
                     out.read_f32(sm + "atom14_positions"));
        golden_check(name, "outputs/final_atom_positions",
                     atom14_to_atom37(out.read_f32("final_atom14_positions"), aatype),
                     out.read_f32("final_atom_positions"), 1e-4, 1e-3);
        exact_check(name, "outputs/final_atom_mask", atom37_mask(aatype), out.read_f32("final_atom_mask"));
        exact_check(name, "outputs/atom14_atom_exists", atom14_mask(aatype), out.read_f32("atom14_atom_exists"));
        for (int r = 0; out.has("recycles/" + std::to_string(r)); ++r) {
            std::string rg = "recycles/" + std::to_string(r) + "/";
            if (!out.has_dataset(rg + "pseudo_beta") || !out.has_dataset(rg + "final_atom_positions")) continue;
            exact_check(name, "outputs/" + rg + "pseudo_beta",
                        pseudo_beta(aatype, out.read_f32(rg + "final_atom_positions")),
                        out.read_f32(rg + "pseudo_beta"));
        }
        ++ran;
    }
    if (ran == 0) GTEST_SKIP() << "no golden set with outputs.h5 under " << test::golden_dir();
}

// ---------------------------------------------------------------------------------------------------

Tensor random_quaternions(int64_t n, std::mt19937& rng) {
    Tensor q = test::randn({n, 4}, rng);
    for (int64_t i = 0; i < n; ++i) q.f32()[4 * i] += 0.1f;  // keep away from zero norm
    return q;
}

TEST(AllAtom, quaternion_rotation_is_orthonormal) {
    std::mt19937 rng(11);
    const int64_t n = 64;
    Tensor q = random_quaternions(n, rng);
    Tensor r = quaternion_to_rotation(q);
    ASSERT_EQ(r.shape(), (Shape{n, 3, 3}));
    // Scaling the quaternion does not change the rotation (it is normalised inside).
    Tensor q3 = q.clone();
    for (int64_t i = 0; i < q3.numel(); ++i) q3.f32()[i] *= 3.7f;
    Tensor r3 = quaternion_to_rotation(q3);
    for (int64_t i = 0; i < n; ++i) {
        double m[3][3];
        for (int a = 0; a < 3; ++a)
            for (int b = 0; b < 3; ++b) {
                m[a][b] = r.at({i, a, b});
                EXPECT_NEAR(r3.at({i, a, b}), m[a][b], 1e-6);
            }
        for (int a = 0; a < 3; ++a)
            for (int b = 0; b < 3; ++b) {
                double d = m[0][a] * m[0][b] + m[1][a] * m[1][b] + m[2][a] * m[2][b];
                EXPECT_NEAR(d, a == b ? 1.0 : 0.0, 1e-6);
            }
        double det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
                     m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
                     m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
        EXPECT_NEAR(det, 1.0, 1e-6);
    }
    // Known case: 90 degrees about z maps x to y.
    Tensor qz = Tensor::from_vector({4}, {std::sqrt(0.5f), 0.f, 0.f, std::sqrt(0.5f)});
    Tensor rz = quaternion_to_rotation(qz);
    ASSERT_EQ(rz.shape(), (Shape{3, 3}));
    EXPECT_NEAR(rz.at({1, 0}), 1.f, 1e-6);
    EXPECT_NEAR(rz.at({0, 1}), -1.f, 1e-6);
    EXPECT_NEAR(rz.at({2, 2}), 1.f, 1e-6);
    EXPECT_THROW(quaternion_to_rotation(Tensor::zeros({2, 4})), Error);
}

TEST(ResidueConstants, tables) {
    const auto& rg = rc::rigid_group_tables();
    const auto& ix = rc::atom_index_tables();
    // Heavy-atom counts of the 20 residues (AF2 residue_atoms) and UNK.
    const int counts[21] = {5, 11, 8, 8, 6, 9, 9, 4, 10, 8, 8, 9, 8, 11, 7, 6, 7, 14, 12, 7, 0};
    for (int r = 0; r < rc::kNumRestypesWithX; ++r) {
        float n14 = 0, n37 = 0;
        for (int a = 0; a < rc::kAtom14; ++a) n14 += rg.atom14_mask[r][a];
        for (int a = 0; a < rc::kAtom37; ++a) n37 += rg.atom37_mask[r][a];
        EXPECT_EQ(n14, counts[r]) << rc::kRestype3[r];
        EXPECT_EQ(n37, counts[r]) << rc::kRestype3[r];
        EXPECT_EQ(static_cast<int>(rc::rigid_group_atom_positions(r).size()), counts[r]);
        for (int a = 0; a < rc::kAtom14; ++a) {
            if (rg.atom14_mask[r][a] == 0.f) continue;
            int a37 = ix.atom14_to_atom37[r][a];
            EXPECT_EQ(ix.atom37_to_atom14[r][a37], a);
            EXPECT_EQ(rg.atom37_mask[r][a37], 1.f);
            EXPECT_EQ(rg.atom37_to_rigid_group[r][a37], rg.atom14_to_rigid_group[r][a]);
        }
        // Rotation blocks of existing groups are orthonormal; absent chi groups are all zero.
        for (int g = 0; g < rc::kNumRigidGroups; ++g) {
            bool exists = r < rc::kNumRestypes && (g < 4 || rc::kChiAnglesMask[r][g - 4] != 0.f);
            const float(*m)[4] = rg.default_frame[r][g];
            for (int a = 0; a < 3; ++a)
                for (int b = 0; b < 3; ++b) {
                    double d = double(m[0][a]) * m[0][b] + double(m[1][a]) * m[1][b] + double(m[2][a]) * m[2][b];
                    EXPECT_NEAR(d, exists && a == b ? 1.0 : 0.0, 1e-6) << r << " " << g;
                }
        }
    }
    EXPECT_EQ(rc::atom37_index("OXT"), 36);
    EXPECT_EQ(rc::atom14_index(17, "CH2"), 13);
    EXPECT_EQ(rc::atom14_index(7, "CB"), -1);
    EXPECT_EQ(ix.chi_angles_atom_indices[1][3][3], rc::atom37_index("CZ"));
    EXPECT_EQ(ix.atom14_ambiguous_swap_index[3][6], 7);  // ASP OD1 <-> OD2
    EXPECT_EQ(ix.atom14_is_ambiguous[13][9], 1.f);       // PHE CE2
    EXPECT_EQ(ix.atom14_is_ambiguous[1][9], 0.f);
    EXPECT_EQ(rc::van_der_waals_radius('S'), 1.8);
    EXPECT_THROW(rc::van_der_waals_radius('H'), Error);
}

struct P3 {
    double x, y, z;
};
P3 pos(const Tensor& atom14, int64_t i, int a) {
    return {atom14.at({i, a, 0}), atom14.at({i, a, 1}), atom14.at({i, a, 2})};
}
double dist(P3 a, P3 b) {
    return std::sqrt((a.x - b.x) * (a.x - b.x) + (a.y - b.y) * (a.y - b.y) + (a.z - b.z) * (a.z - b.z));
}
P3 sub(P3 a, P3 b) {
    return {a.x - b.x, a.y - b.y, a.z - b.z};
}
P3 cross(P3 a, P3 b) {
    return {a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x};
}
double dot(P3 a, P3 b) {
    return a.x * b.x + a.y * b.y + a.z * b.z;
}
// IUPAC dihedral p0-p1-p2-p3.
double dihedral(P3 p0, P3 p1, P3 p2, P3 p3) {
    P3 b1 = sub(p1, p0), b2 = sub(p2, p1), b3 = sub(p3, p2);
    P3 n1 = cross(b1, b2), n2 = cross(b2, b3);
    return std::atan2(std::sqrt(dot(b2, b2)) * dot(b1, n2), dot(n1, n2));
}
double angle_diff(double a, double b) {
    return std::remainder(a - b, 2 * std::numbers::pi);
}

// Every residue type with random backbone frames and torsions: bonds and intra-group distances are the
// literature ones, and the built dihedrals are the requested torsions.
TEST(AllAtom, construction_preserves_literature_geometry) {
    std::mt19937 rng(5);
    std::uniform_real_distribution<double> u(-std::numbers::pi, std::numbers::pi);
    const int64_t reps = 3, n = 20 * reps;
    Tensor aatype = Tensor::empty({n}, DType::I64);
    for (int64_t i = 0; i < n; ++i) aatype.data<int64_t>()[i] = i % 20;
    Tensor rot = quaternion_to_rotation(random_quaternions(n, rng));
    Tensor trans = test::randn({n, 3}, rng, 10.f);
    Tensor ang = Tensor::empty({n, 7, 2});
    std::vector<double> angle(n * 7);
    for (int64_t i = 0; i < n * 7; ++i) {
        angle[i] = u(rng);
        ang.f32()[2 * i] = static_cast<float>(std::sin(angle[i]));
        ang.f32()[2 * i + 1] = static_cast<float>(std::cos(angle[i]));
    }
    Tensor frames = torsion_angles_to_frames(aatype, rot, trans, ang);
    ASSERT_EQ(frames.shape(), (Shape{n, 8, 4, 4}));
    Tensor atom14 = frames_and_literature_positions_to_atom14_pos(aatype, frames);
    ASSERT_EQ(atom14.shape(), (Shape{n, 14, 3}));
    const auto& rg = rc::rigid_group_tables();
    const auto& ix = rc::atom_index_tables();
    auto lit = [&](int r, int a) {
        const float* p = rg.atom14_rigid_group_positions[r][a];
        return P3{p[0], p[1], p[2]};
    };
    const double tol = 2e-4;  // float32 positions around |t| ~ 30 Å
    for (int64_t i = 0; i < n; ++i) {
        const int r = static_cast<int>(i % 20);
        const std::string res = rc::kRestype3[r];
        // Ideal backbone bonds (Engh & Huber) and their literature values.
        const int N = 0, CA = 1, C = 2, O = 3, CB = 4;
        EXPECT_NEAR(dist(pos(atom14, i, N), pos(atom14, i, CA)), dist(lit(r, N), lit(r, CA)), tol) << res;
        EXPECT_NEAR(dist(pos(atom14, i, N), pos(atom14, i, CA)), 1.46, 0.02) << res;
        EXPECT_NEAR(dist(pos(atom14, i, CA), pos(atom14, i, C)), 1.525, 0.01) << res;
        EXPECT_NEAR(dist(pos(atom14, i, C), pos(atom14, i, O)), 1.231, 0.01) << res;
        EXPECT_NEAR(dist(pos(atom14, i, C), pos(atom14, i, O)), dist({0, 0, 0}, lit(r, O)), tol) << res;
        if (r != 7) {
            EXPECT_NEAR(dist(pos(atom14, i, CA), pos(atom14, i, CB)), dist(lit(r, CA), lit(r, CB)), tol) << res;
            EXPECT_NEAR(dist(pos(atom14, i, CA), pos(atom14, i, CB)), 1.53, 0.02) << res;  // ILE/VAL 1.545
        }
        // Atoms in the same rigid group keep their literature distances.
        for (int a = 0; a < 14; ++a)
            for (int b = a + 1; b < 14; ++b) {
                if (rg.atom14_mask[r][a] == 0.f || rg.atom14_mask[r][b] == 0.f) continue;
                if (rg.atom14_to_rigid_group[r][a] != rg.atom14_to_rigid_group[r][b]) continue;
                EXPECT_NEAR(dist(pos(atom14, i, a), pos(atom14, i, b)), dist(lit(r, a), lit(r, b)), tol)
                    << res << " " << rc::kRestypeAtom14Names[r][a] << "-" << rc::kRestypeAtom14Names[r][b];
            }
        // Side-chain bonds: each atom of chi group k sits at its literature distance from the chi's
        // axis-end atom (the group frame's origin), and the chi dihedral is the requested angle.
        for (int k = 0; k < 4; ++k) {
            if (rc::kChiAnglesMask[r][k] == 0.f) continue;
            int at[4];
            for (int j = 0; j < 4; ++j) at[j] = ix.atom37_to_atom14[r][ix.chi_angles_atom_indices[r][k][j]];
            for (int a = 0; a < 14; ++a) {
                if (rg.atom14_mask[r][a] == 0.f || rg.atom14_to_rigid_group[r][a] != 4 + k) continue;
                EXPECT_NEAR(dist(pos(atom14, i, a), pos(atom14, i, at[2])), dist({0, 0, 0}, lit(r, a)), tol)
                    << res << " chi" << k + 1 << " " << rc::kRestypeAtom14Names[r][a];
            }
            double chi =
                dihedral(pos(atom14, i, at[0]), pos(atom14, i, at[1]), pos(atom14, i, at[2]), pos(atom14, i, at[3]));
            EXPECT_NEAR(angle_diff(chi, angle[i * 7 + 3 + k]), 0.0, 1e-3) << res << " chi" << k + 1;
        }
        // psi places O trans to the psi-defining N(i+1): dihedral N-CA-C-O = psi + pi.
        double nco = dihedral(pos(atom14, i, N), pos(atom14, i, CA), pos(atom14, i, C), pos(atom14, i, O));
        EXPECT_NEAR(angle_diff(nco, angle[i * 7 + 2] + std::numbers::pi), 0.0, 1e-3) << res;
        // Backbone group atoms sit where the backbone frame puts the literature positions.
        for (int a : {N, CA, C}) {
            P3 l = lit(r, a), p = pos(atom14, i, a);
            for (int c = 0; c < 3; ++c) {
                double want =
                    rot.at({i, c, 0}) * l.x + rot.at({i, c, 1}) * l.y + rot.at({i, c, 2}) * l.z + trans.at({i, c});
                EXPECT_NEAR(c == 0 ? p.x : c == 1 ? p.y : p.z, want, 1e-4);
            }
        }
        // Absent atoms are zero.
        for (int a = 0; a < 14; ++a) {
            if (rg.atom14_mask[r][a] != 0.f) continue;
            for (int c = 0; c < 3; ++c) EXPECT_EQ(atom14.at({i, a, c}), 0.f);
        }
    }
}

TEST(AllAtom, atom37_layout_and_pseudo_beta) {
    std::mt19937 rng(9);
    const int64_t n = 25;
    Tensor aatype = Tensor::empty({n}, DType::I64);
    for (int64_t i = 0; i < n; ++i) aatype.data<int64_t>()[i] = i % 21;  // includes GLY (7) and UNK (20)
    Tensor atom14 = test::randn({n, 14, 3}, rng, 5.f);
    Tensor atom37 = atom14_to_atom37(atom14, aatype);
    ASSERT_EQ(atom37.shape(), (Shape{n, 37, 3}));
    Tensor m37 = atom37_mask(aatype), m14 = atom14_mask(aatype);
    const auto& ix = rc::atom_index_tables();
    for (int64_t i = 0; i < n; ++i) {
        int r = static_cast<int>(i % 21);
        for (int a = 0; a < 14; ++a) {
            EXPECT_EQ(m14.at({i, a}), *rc::kRestypeAtom14Names[r][a] ? 1.f : 0.f);
            if (m14.at({i, a}) == 0.f) continue;
            for (int c = 0; c < 3; ++c) EXPECT_EQ(atom37.at({i, ix.atom14_to_atom37[r][a], c}), atom14.at({i, a, c}));
        }
        for (int a = 0; a < 37; ++a) {
            if (m37.at({i, a}) != 0.f) continue;
            for (int c = 0; c < 3; ++c) EXPECT_EQ(atom37.at({i, a, c}), 0.f);
        }
    }
    Tensor pb = pseudo_beta(aatype, atom37);
    ASSERT_EQ(pb.shape(), (Shape{n, 3}));
    for (int64_t i = 0; i < n; ++i) {
        int src = i % 21 == 7 ? rc::kAtomCA : rc::kAtomCB;
        for (int c = 0; c < 3; ++c) EXPECT_EQ(pb.at({i, c}), atom37.at({i, src, c})) << i;
    }
    EXPECT_NE(pb.at({7, 0}), atom37.at({7, rc::kAtomCB, 0}));  // glycine really took CA (CB is zero there)

    // UNK has no atoms in AF2's tables.
    for (int a = 0; a < 37; ++a) EXPECT_EQ(m37.at({20, a}), 0.f);
    // Bad input is an error.
    Tensor bad = Tensor::empty({2}, DType::I64);
    bad.data<int64_t>()[0] = 3;
    bad.data<int64_t>()[1] = 21;
    EXPECT_THROW(atom37_mask(bad), Error);
    EXPECT_THROW(atom14_to_atom37(test::randn({n, 13, 3}, rng), aatype), Error);
    EXPECT_THROW(pseudo_beta(aatype, test::randn({n, 14, 3}, rng)), Error);
}

TEST(AllAtom, unk_and_absent_groups_follow_af2) {
    std::mt19937 rng(3);
    Tensor aatype = Tensor::empty({2}, DType::I64);
    aatype.data<int64_t>()[0] = 0;   // ALA: no chi groups
    aatype.data<int64_t>()[1] = 20;  // UNK: no groups at all
    Tensor rot = quaternion_to_rotation(random_quaternions(2, rng));
    Tensor trans = test::randn({2, 3}, rng, 5.f);
    Tensor ang = test::randn({2, 7, 2}, rng);
    Tensor frames = torsion_angles_to_frames(aatype, rot, trans, ang);
    for (int64_t i = 0; i < 2; ++i)
        for (int g = 0; g < 8; ++g) {
            bool zero = i == 1 || g >= 4;
            for (int a = 0; a < 3; ++a) {
                if (zero) {
                    for (int b = 0; b < 3; ++b) EXPECT_EQ(frames.at({i, g, a, b}), 0.f) << i << " " << g;
                }
                // Groups with identity or zero default frames sit at the backbone origin.
                if (zero || g < 2) {
                    EXPECT_NEAR(frames.at({i, g, a, 3}), trans.at({i, a}), 1e-5) << i << " " << g;
                }
            }
            EXPECT_EQ(frames.at({i, g, 3, 3}), 1.f);
        }
    Tensor atom14 = frames_and_literature_positions_to_atom14_pos(aatype, frames);
    for (int a = 0; a < 14; ++a)
        for (int c = 0; c < 3; ++c) EXPECT_EQ(atom14.at({1, a, c}), 0.f);
}

}  // namespace
}  // namespace axfold
