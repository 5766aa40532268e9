#include "training/ground_truth.h"

#include <cmath>
#include <map>

#include "structure/residue_constants.h"
#include "structure/torsion_angles.h"

namespace axfold {

namespace {

// Three-letter SEQRES monomers to one letter: the 20 standard residues, and the modified residues AF2's
// parser (Biopython's SCOP table) maps to their parents that structures commonly hold.
char one_letter(const std::string& mon) {
    static const std::map<std::string, char> modified = {
        {"MSE", 'M'}, {"SEP", 'S'}, {"TPO", 'T'}, {"PTR", 'Y'}, {"MLY", 'K'}, {"CSO", 'C'}, {"HYP", 'P'},
        {"KCX", 'K'}, {"LLP", 'K'}, {"CME", 'C'}, {"OCS", 'C'}, {"CSD", 'C'}, {"PCA", 'E'}, {"SEC", 'C'},
        {"PYL", 'K'}, {"ASX", 'B'}, {"GLX", 'Z'}};
    for (int r = 0; r < rc::kNumRestypes; ++r)
        if (mon == rc::kRestype3[r]) return rc::kRestypes[r];
    const auto it = modified.find(mon);
    return it == modified.end() ? 'X' : it->second;
}

// Rigid from three points (OpenFold Rigid.from_3_points, eps 1e-8): x axis from p_neg_x to origin, the xy
// plane through p_xy; rotation columns e0, e1, e2; translation the origin. Into a 4x4 (float64).
void frame_from_3_points(const double* p_neg_x, const double* origin, const double* p_xy, double out[4][4]) {
    constexpr double eps = 1e-8;
    double e0[3], e1[3], e2[3];
    for (int c = 0; c < 3; ++c) {
        e0[c] = origin[c] - p_neg_x[c];
        e1[c] = p_xy[c] - origin[c];
    }
    double d = std::sqrt(e0[0] * e0[0] + e0[1] * e0[1] + e0[2] * e0[2] + eps);
    for (double& v : e0) v /= d;
    const double dot = e0[0] * e1[0] + e0[1] * e1[1] + e0[2] * e1[2];
    for (int c = 0; c < 3; ++c) e1[c] -= e0[c] * dot;
    d = std::sqrt(e1[0] * e1[0] + e1[1] * e1[1] + e1[2] * e1[2] + eps);
    for (double& v : e1) v /= d;
    e2[0] = e0[1] * e1[2] - e0[2] * e1[1];
    e2[1] = e0[2] * e1[0] - e0[0] * e1[2];
    e2[2] = e0[0] * e1[1] - e0[1] * e1[0];
    for (int r = 0; r < 3; ++r) {
        out[r][0] = e0[r];
        out[r][1] = e1[r];
        out[r][2] = e2[r];
        out[r][3] = origin[r];
        out[3][r] = 0;
    }
    out[3][3] = 1;
}

// The rotation part of f right-multiplied by diag(1, s1, s2) with column 0 scaled by s0: f o (diag, 0).
void scale_columns(double f[4][4], double s0, double s1, double s2) {
    for (int r = 0; r < 3; ++r) {
        f[r][0] *= s0;
        f[r][1] *= s1;
        f[r][2] *= s2;
    }
}

}  // namespace

ChainAtoms chain_atoms(const io::MmcifChain& chain, int64_t begin, int64_t end) {
    const int64_t L = static_cast<int64_t>(chain.seqres.size());
    if (end < 0) end = L;
    AXF_CHECK(begin >= 0 && begin < end && end <= L, "%s chain %s: residues [%lld, %lld) of a %lld-residue SEQRES",
              chain.path.c_str(), chain.chain_id.c_str(), (long long)begin, (long long)end, (long long)L);
    const int64_t N = end - begin;
    ChainAtoms out;
    out.resolution = chain.resolution;
    out.aatype = Tensor::empty({N}, DType::I64);
    out.all_atom_positions = Tensor::zeros({N, rc::kAtom37, 3});
    out.all_atom_mask = Tensor::zeros({N, rc::kAtom37});
    for (int64_t i = 0; i < N; ++i) {
        const char aa = one_letter(chain.seqres[static_cast<size_t>(begin + i)]);
        out.sequence += aa;
        out.aatype.data<int64_t>()[i] = rc::restype_index(aa);
    }
    float* pos = out.all_atom_positions.f32();
    float* mask = out.all_atom_mask.f32();
    for (const io::MmcifAtom& a : chain.atoms) {
        if (a.seqres_index < begin || a.seqres_index >= end) continue;
        int k = rc::atom37_index(a.name);
        if (k < 0 && a.name == "SE" && a.residue_name == "MSE") k = rc::atom37_index("SD");
        if (k < 0) continue;
        const int64_t i = a.seqres_index - begin;
        float* p = pos + (i * rc::kAtom37 + k) * 3;
        p[0] = static_cast<float>(a.x);
        p[1] = static_cast<float>(a.y);
        p[2] = static_cast<float>(a.z);
        mask[i * rc::kAtom37 + k] = 1.f;
    }
    // AF2: arginines whose NH2 is nearer CD than NH1 have the two names swapped.
    const int cd = rc::atom37_index("CD"), nh1 = rc::atom37_index("NH1"), nh2 = rc::atom37_index("NH2");
    for (int64_t i = 0; i < N; ++i) {
        if (out.sequence[static_cast<size_t>(i)] != 'R') continue;
        const float* m = mask + i * rc::kAtom37;
        if (!(m[cd] > 0 && m[nh1] > 0 && m[nh2] > 0)) continue;
        float* r = pos + i * rc::kAtom37 * 3;
        auto dist = [&](int a, int b) {
            double s = 0;
            for (int c = 0; c < 3; ++c) s += double(r[a * 3 + c] - r[b * 3 + c]) * (r[a * 3 + c] - r[b * 3 + c]);
            return std::sqrt(s);
        };
        if (dist(nh1, cd) > dist(nh2, cd))
            for (int c = 0; c < 3; ++c) std::swap(r[nh1 * 3 + c], r[nh2 * 3 + c]);
    }
    return out;
}

FeatureDict ground_truth_features(const Tensor& aatype_t, const Tensor& all_atom_positions,
                                  const Tensor& all_atom_mask) {
    AXF_CHECK(aatype_t.dim() == 1, "ground truth: aatype %s, expected [N]", aatype_t.desc().c_str());
    const int64_t N = aatype_t.size(0);
    AXF_CHECK(all_atom_positions.shape() == Shape({N, rc::kAtom37, 3}) && all_atom_mask.shape() == Shape({N, rc::kAtom37}),
              "ground truth: positions %s and mask %s for %lld residues (expected [N, 37, 3] and [N, 37])",
              all_atom_positions.desc().c_str(), all_atom_mask.desc().c_str(), (long long)N);
    const std::vector<int64_t> aa = host_int64(aatype_t);
    for (int64_t a : aa)
        AXF_CHECK(a >= 0 && a < rc::kNumRestypesWithX, "ground truth: aatype %lld outside 0..20", (long long)a);
    const std::vector<double> pos = host_float64(all_atom_positions), msk = host_float64(all_atom_mask);
    const rc::RigidGroupTables& rg = rc::rigid_group_tables();
    const rc::AtomIndexTables& ix = rc::atom_index_tables();
    FeatureDict f;
    f["all_atom_positions"] = to_f32(all_atom_positions).contiguous();
    f["all_atom_mask"] = to_f32(all_atom_mask).contiguous();

    // atom37 / atom14 existence, ground truth in atom14 and its alternative naming (make_atom14_positions).
    Tensor a37 = Tensor::zeros({N, rc::kAtom37}), a14 = Tensor::zeros({N, rc::kAtom14}),
           gt_exists = Tensor::zeros({N, rc::kAtom14}), alt_exists = Tensor::zeros({N, rc::kAtom14}),
           ambiguous = Tensor::zeros({N, rc::kAtom14}), gt_pos = Tensor::zeros({N, rc::kAtom14, 3}),
           alt_pos = Tensor::zeros({N, rc::kAtom14, 3});
    for (int64_t i = 0; i < N; ++i) {
        const int r = static_cast<int>(aa[i]);
        for (int k = 0; k < rc::kAtom37; ++k) a37.f32()[i * rc::kAtom37 + k] = rg.atom37_mask[r][k];
        for (int s = 0; s < rc::kAtom14; ++s) {
            const float exists = rg.atom14_mask[r][s];
            const int k = ix.atom14_to_atom37[r][s];
            const float m = exists * static_cast<float>(msk[i * rc::kAtom37 + k]);
            const int t = ix.atom14_ambiguous_swap_index[r][s];  // the slot this atom takes when renamed
            a14.f32()[i * rc::kAtom14 + s] = exists;
            gt_exists.f32()[i * rc::kAtom14 + s] = m;
            alt_exists.f32()[i * rc::kAtom14 + t] = m;
            ambiguous.f32()[i * rc::kAtom14 + s] = ix.atom14_is_ambiguous[r][s];
            for (int c = 0; c < 3; ++c) {
                const float v = m * static_cast<float>(pos[(i * rc::kAtom37 + k) * 3 + c]);
                gt_pos.f32()[(i * rc::kAtom14 + s) * 3 + c] = v;
                alt_pos.f32()[(i * rc::kAtom14 + t) * 3 + c] = v;
            }
        }
    }
    f["atom37_atom_exists"] = a37;
    f["atom14_atom_exists"] = a14;
    f["atom14_gt_exists"] = gt_exists;
    f["atom14_gt_positions"] = gt_pos;
    f["atom14_alt_gt_exists"] = alt_exists;
    f["atom14_alt_gt_positions"] = alt_pos;
    f["atom14_atom_is_ambiguous"] = ambiguous;

    // Rigid groups (atom37_to_frames): each group's frame from three base atoms (backbone C, CA, N; psi CA, C, O;
    // chi k its chi atoms 2..4), the backbone frame turned by pi about its y axis, and for the last chi of the
    // residues with swappable atoms the alternative frame turned by pi about its x axis.
    Tensor frames = Tensor::zeros({N, rc::kNumRigidGroups, 4, 4}), alt_frames = Tensor::zeros({N, rc::kNumRigidGroups, 4, 4}),
           gexists = Tensor::zeros({N, rc::kNumRigidGroups}), group_exists = Tensor::zeros({N, rc::kNumRigidGroups}),
           gambig = Tensor::zeros({N, rc::kNumRigidGroups});
    const int kC = rc::kAtomC, kCA = rc::kAtomCA, kN = rc::kAtomN, kO = rc::kAtomO;
    for (int64_t i = 0; i < N; ++i) {
        const int r = static_cast<int>(aa[i]);
        int ambiguous_group = -1;
        for (int s = 0; s < rc::kAtom14; ++s)
            if (ix.atom14_is_ambiguous[r][s] > 0) {
                float chis = 0;
                for (int c = 0; c < 4; ++c) chis += rc::kChiAnglesMask[r][c];
                ambiguous_group = static_cast<int>(chis) - 1 + 4;
                break;
            }
        for (int g = 0; g < rc::kNumRigidGroups; ++g) {
            int base[3] = {0, 0, 0};  // atom37 indices ("" is index 0, as OpenFold's lookup table has it)
            float exists = 0;
            if (g == 0) {
                base[0] = kC, base[1] = kCA, base[2] = kN;
                exists = 1;
            } else if (g == 3) {
                base[0] = kCA, base[1] = kC, base[2] = kO;
                exists = 1;
            } else if (g >= 4 && rc::kChiAnglesMask[r][g - 4] > 0) {
                for (int a = 0; a < 3; ++a) base[a] = ix.chi_angles_atom_indices[r][g - 4][a + 1];
                exists = 1;
            }
            double fr[4][4];
            frame_from_3_points(&pos[(i * rc::kAtom37 + base[0]) * 3], &pos[(i * rc::kAtom37 + base[1]) * 3],
                                &pos[(i * rc::kAtom37 + base[2]) * 3], fr);
            if (g == 0) scale_columns(fr, -1, 1, -1);
            double alt[4][4];
            std::copy(&fr[0][0], &fr[0][0] + 16, &alt[0][0]);
            if (g == ambiguous_group) scale_columns(alt, 1, -1, -1);
            float atoms = 1;
            for (int a = 0; a < 3; ++a) atoms = std::min(atoms, static_cast<float>(msk[i * rc::kAtom37 + base[a]]));
            const int64_t o = i * rc::kNumRigidGroups + g;
            for (int e = 0; e < 16; ++e) {
                frames.f32()[o * 16 + e] = static_cast<float>((&fr[0][0])[e]);
                alt_frames.f32()[o * 16 + e] = static_cast<float>((&alt[0][0])[e]);
            }
            group_exists.f32()[o] = exists;
            gexists.f32()[o] = atoms * exists;
            gambig.f32()[o] = g == ambiguous_group ? 1.f : 0.f;
        }
    }
    f["rigidgroups_gt_frames"] = frames;
    f["rigidgroups_alt_gt_frames"] = alt_frames;
    f["rigidgroups_gt_exists"] = gexists;
    f["rigidgroups_group_exists"] = group_exists;
    f["rigidgroups_group_is_ambiguous"] = gambig;
    f["backbone_rigid_tensor"] = frames.select(1, 0).contiguous();
    f["backbone_rigid_mask"] = gexists.select(1, 0).contiguous();

    // Torsions (chis only, get_chi_angles) and the pseudo-beta.
    const TorsionAngles ta = atom37_to_torsion_angles(aatype_t, f["all_atom_positions"], f["all_atom_mask"]);
    f["chi_angles_sin_cos"] = to_f32(ta.sin_cos.slice(1, 3, 7)).contiguous();
    f["chi_mask"] = to_f32(ta.mask.slice(1, 3, 7)).contiguous();
    const PseudoBeta pb = pseudo_beta_with_mask(aatype_t, f["all_atom_positions"], f["all_atom_mask"]);
    f["pseudo_beta"] = to_f32(pb.positions).contiguous();
    f["pseudo_beta_mask"] = to_f32(pb.mask).contiguous();
    return f;
}

}  // namespace axfold
