#include "structure/torsion_angles.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "structure/residue_constants.h"

namespace axfold {

namespace {

Tensor host_f32(const Tensor& t, const char* what) {
    AXF_CHECK(t.dtype() == DType::F32, "%s must be float32, got %s", what, t.desc().c_str());
    return t.to(Device::CPU).contiguous();
}

struct V3 {
    double x, y, z;
};
V3 sub(V3 a, V3 b) { return {a.x - b.x, a.y - b.y, a.z - b.z}; }
double dot(V3 a, V3 b) { return a.x * b.x + a.y * b.y + a.z * b.z; }

// OpenFold Rigid.from_3_points(p_neg_x_axis, origin, p_xy_plane, eps=1e-8).invert().apply(p): the
// coordinates of p in the frame; returns (cos, sin) components = (y, z).
void torsion_from_atoms(const V3 a[4], double& sin_out, double& cos_out) {
    const double eps = 1e-8;
    const V3 p_neg_x = a[1], origin = a[2], p_xy = a[0];
    V3 e0 = sub(origin, p_neg_x), e1 = sub(p_xy, origin);
    double d = std::sqrt(dot(e0, e0) + eps);
    e0 = {e0.x / d, e0.y / d, e0.z / d};
    const double c = dot(e0, e1);
    e1 = {e1.x - e0.x * c, e1.y - e0.y * c, e1.z - e0.z * c};
    d = std::sqrt(dot(e1, e1) + eps);
    e1 = {e1.x / d, e1.y / d, e1.z / d};
    const V3 e2 = {e0.y * e1.z - e0.z * e1.y, e0.z * e1.x - e0.x * e1.z, e0.x * e1.y - e0.y * e1.x};
    const V3 rel = sub(a[3], origin);
    const double s = dot(e2, rel), co = dot(e1, rel);
    const double n = std::sqrt(s * s + co * co + eps);
    sin_out = s / n;
    cos_out = co / n;
}

}  // namespace

TorsionAngles atom37_to_torsion_angles(const Tensor& aatype, const Tensor& all_atom_positions,
                                       const Tensor& all_atom_mask) {
    const int D = aatype.dim();
    AXF_CHECK(D >= 1, "atom37_to_torsion_angles: aatype %s must be [..., N]", aatype.desc().c_str());
    Shape pos_shape = aatype.shape(), mask_shape = aatype.shape();
    pos_shape.push_back(37);
    pos_shape.push_back(3);
    mask_shape.push_back(37);
    AXF_CHECK(all_atom_positions.shape() == pos_shape && all_atom_mask.shape() == mask_shape,
              "atom37_to_torsion_angles: positions %s and mask %s for aatype %s (expected %s and %s)",
              all_atom_positions.desc().c_str(), all_atom_mask.desc().c_str(), aatype.desc().c_str(),
              shape_str(pos_shape).c_str(), shape_str(mask_shape).c_str());
    const std::vector<int64_t> aa = host_int64(aatype);
    const Tensor pos = host_f32(all_atom_positions, "all_atom_positions");
    const Tensor msk = host_f32(all_atom_mask, "all_atom_mask");
    const int64_t N = aatype.size(-1), B = N > 0 ? aatype.numel() / N : 0;
    Shape sc_shape = aatype.shape(), m_shape = aatype.shape();
    sc_shape.push_back(7);
    sc_shape.push_back(2);
    m_shape.push_back(7);
    TorsionAngles out{Tensor::zeros(sc_shape), Tensor::zeros(sc_shape), Tensor::zeros(m_shape)};
    const rc::AtomIndexTables& tab = rc::atom_index_tables();
    const float* P = pos.f32();
    const float* M = msk.f32();
    auto atom = [&](int64_t res, int a) {
        const float* p = P + (res * 37 + a) * 3;
        return V3{p[0], p[1], p[2]};
    };
    const V3 zero{0, 0, 0};
    constexpr int N_ = rc::kAtomN, CA = rc::kAtomCA, C = rc::kAtomC, O = rc::kAtomO;
    for (int64_t b = 0; b < B; ++b)
        for (int64_t i = 0; i < N; ++i) {
            const int64_t r = b * N + i;
            AXF_CHECK(aa[r] >= 0 && aa[r] <= 21, "aatype %lld at flat index %lld is outside 0..21", (long long)aa[r],
                      (long long)r);
            const int t = static_cast<int>(std::min<int64_t>(aa[r], 20));
            const float* m = M + r * 37;
            const bool has_prev = i > 0;
            const float* pm = has_prev ? M + (r - 1) * 37 : nullptr;
            auto prev_atom = [&](int a) { return has_prev ? atom(r - 1, a) : zero; };
            auto prev_mask = [&](int a) { return has_prev ? pm[a] : 0.f; };
            V3 atoms[7][4] = {
                {prev_atom(CA), prev_atom(C), atom(r, N_), atom(r, CA)},
                {prev_atom(C), atom(r, N_), atom(r, CA), atom(r, C)},
                {atom(r, N_), atom(r, CA), atom(r, C), atom(r, O)},
            };
            float mask[7];
            mask[0] = prev_mask(CA) * prev_mask(C) * (m[N_] * m[CA]);
            mask[1] = prev_mask(C) * (m[N_] * m[CA] * m[C]);
            mask[2] = (m[N_] * m[CA] * m[C]) * m[O];
            for (int k = 0; k < 4; ++k) {
                float cm = 1.f;
                for (int j = 0; j < 4; ++j) {
                    const int a = tab.chi_angles_atom_indices[t][k][j];
                    atoms[3 + k][j] = atom(r, a);
                    cm *= m[a];
                }
                mask[3 + k] = rc::kChiAnglesMask[t][k] * cm;
            }
            float* sc = out.sin_cos.f32() + r * 14;
            float* alt = out.alt_sin_cos.f32() + r * 14;
            float* om = out.mask.f32() + r * 7;
            for (int k = 0; k < 7; ++k) {
                double s, c;
                torsion_from_atoms(atoms[k], s, c);
                if (k == 2) {  // psi is defined through O: AF2 negates it
                    s = -s;
                    c = -c;
                }
                const double mirror = k >= 3 ? 1.0 - 2.0 * rc::kChiPiPeriodic[t][k - 3] : 1.0;
                sc[2 * k] = static_cast<float>(s);
                sc[2 * k + 1] = static_cast<float>(c);
                alt[2 * k] = static_cast<float>(s * mirror);
                alt[2 * k + 1] = static_cast<float>(c * mirror);
                om[k] = mask[k];
            }
        }
    return out;
}

PseudoBeta pseudo_beta_with_mask(const Tensor& aatype, const Tensor& all_atom_positions, const Tensor& all_atom_mask) {
    Shape pos_shape = aatype.shape(), mask_shape = aatype.shape();
    pos_shape.push_back(37);
    pos_shape.push_back(3);
    mask_shape.push_back(37);
    AXF_CHECK(all_atom_positions.shape() == pos_shape && all_atom_mask.shape() == mask_shape,
              "pseudo_beta: positions %s and mask %s for aatype %s", all_atom_positions.desc().c_str(),
              all_atom_mask.desc().c_str(), aatype.desc().c_str());
    const std::vector<int64_t> aa = host_int64(aatype);
    const Tensor pos = host_f32(all_atom_positions, "all_atom_positions");
    const Tensor msk = host_f32(all_atom_mask, "all_atom_mask");
    Shape pb_shape = aatype.shape();
    pb_shape.push_back(3);
    PseudoBeta out{Tensor::zeros(pb_shape), Tensor::zeros(aatype.shape())};
    constexpr int kGly = 7;
    for (size_t r = 0; r < aa.size(); ++r) {
        const int a = aa[r] == kGly ? rc::kAtomCA : rc::kAtomCB;
        for (int c = 0; c < 3; ++c) out.positions.f32()[r * 3 + c] = pos.f32()[(r * 37 + a) * 3 + c];
        out.mask.f32()[r] = msk.f32()[r * 37 + a];
    }
    return out;
}

}  // namespace axfold
