// All-atom construction (see all_atom.h). Host loops in float64 over the residue-constant tables.
#include "structure/all_atom.h"

#include <cmath>
#include <vector>

#include "kernels/error.h"
#include "structure/residue_constants.h"

namespace axfold {

namespace {

Tensor host_f32(const Tensor& t, const char* fn, const char* what) {
    AXF_CHECK(t.defined(), "%s: %s is undefined", fn, what);
    AXF_CHECK(t.dtype() == DType::F32, "%s: %s must be float32, got %s", fn, what, t.desc().c_str());
    Tensor h = t.device() == Device::CPU ? t : t.to(Device::CPU);
    return h.contiguous();
}

// aatype as host int values, each checked to be in [0, 21).
std::vector<int> host_aatype(const Tensor& aatype, const char* fn) {
    AXF_CHECK(aatype.defined() && aatype.dim() == 1, "%s: aatype must be [N], got %s", fn,
              aatype.defined() ? aatype.desc().c_str() : "undefined");
    Tensor h = (aatype.device() == Device::CPU ? aatype : aatype.to(Device::CPU)).contiguous();
    std::vector<int> out(static_cast<size_t>(h.numel()));
    for (size_t i = 0; i < out.size(); ++i) {
        int64_t v;
        if (h.dtype() == DType::I64) {
            v = h.data<int64_t>()[i];
        } else if (h.dtype() == DType::I32) {
            v = h.data<int32_t>()[i];
        } else {
            AXF_FAIL("%s: aatype must be int64 or int32, got %s", fn, h.desc().c_str());
        }
        AXF_CHECK(v >= 0 && v < rc::kNumRestypesWithX, "%s: aatype[%zu] = %lld is outside [0, 21)", fn, i,
                  static_cast<long long>(v));
        out[i] = static_cast<int>(v);
    }
    return out;
}

void check_shape(const Tensor& t, const Shape& expect, const char* fn, const char* what) {
    AXF_CHECK(t.shape() == expect, "%s: %s must be %s, got %s", fn, what, shape_str(expect).c_str(), t.desc().c_str());
}

Tensor to_device(const Tensor& host, Device d) {
    return d == Device::CPU ? host : host.to(d);
}

void check_finite(const float* p, int64_t n, const char* fn, const char* what) {
    for (int64_t i = 0; i < n; ++i)
        AXF_CHECK(std::isfinite(p[i]), "%s: %s has a non-finite value at flat index %lld", fn, what,
                  static_cast<long long>(i));
}

// A rigid transform x -> R x + t in float64.
struct Rigid {
    double r[3][3];
    double t[3];
};

Rigid compose(const Rigid& a, const Rigid& b) {
    Rigid c;
    for (int i = 0; i < 3; ++i) {
        for (int j = 0; j < 3; ++j) c.r[i][j] = a.r[i][0] * b.r[0][j] + a.r[i][1] * b.r[1][j] + a.r[i][2] * b.r[2][j];
        c.t[i] = a.r[i][0] * b.t[0] + a.r[i][1] * b.t[1] + a.r[i][2] * b.t[2] + a.t[i];
    }
    return c;
}

}  // namespace

void quaternion_to_rotation_backward(const double q[4], const double dR[3][3], double dq[4]) {
    const double w = q[0], x = q[1], y = q[2], z = q[3];
    // dR/dw, dR/dx, dR/dy, dR/dz, each a 3 x 3 matrix (row-major), halved.
    const double d[4][9] = {{w, -z, y, z, w, -x, -y, x, w},
                            {x, y, z, y, -x, -w, z, w, -x},
                            {-y, x, w, x, y, z, -w, z, -y},
                            {-z, -w, x, w, -z, y, x, y, z}};
    for (int c = 0; c < 4; ++c) {
        double g = 0;
        for (int k = 0; k < 9; ++k) g += dR[k / 3][k % 3] * 2.0 * d[c][k];
        dq[c] += g;
    }
}

Tensor quaternion_to_rotation(const Tensor& q) {
    const char* fn = "quaternion_to_rotation";
    AXF_CHECK(q.defined() && q.dim() >= 1 && q.size(-1) == 4, "%s: q must be [..., 4], got %s", fn,
              q.defined() ? q.desc().c_str() : "undefined");
    Tensor h = host_f32(q, fn, "q");
    Shape out_shape(h.shape().begin(), h.shape().end() - 1);
    out_shape.push_back(3);
    out_shape.push_back(3);
    Tensor out = Tensor::empty(out_shape);
    const float* qp = h.f32();
    float* o = out.f32();
    const int64_t n = h.numel() / 4;
    for (int64_t i = 0; i < n; ++i) {
        double w = qp[4 * i], x = qp[4 * i + 1], y = qp[4 * i + 2], z = qp[4 * i + 3];
        double norm = std::sqrt(w * w + x * x + y * y + z * z);
        AXF_CHECK(std::isfinite(norm) && norm > 0, "%s: quaternion %lld is zero or not finite", fn,
                  static_cast<long long>(i));
        w /= norm, x /= norm, y /= norm, z /= norm;
        const double r[9] = {
            w * w + x * x - y * y - z * z, 2 * (x * y - w * z),           2 * (x * z + w * y),
            2 * (x * y + w * z),           w * w - x * x + y * y - z * z, 2 * (y * z - w * x),
            2 * (x * z - w * y),           2 * (y * z + w * x),           w * w - x * x - y * y + z * z};
        for (int k = 0; k < 9; ++k) o[9 * i + k] = static_cast<float>(r[k]);
    }
    return to_device(out, q.device());
}

Tensor torsion_angles_to_frames(const Tensor& aatype, const Tensor& backbone_rot, const Tensor& backbone_trans,
                                const Tensor& angles_sin_cos) {
    const char* fn = "torsion_angles_to_frames";
    std::vector<int> aa = host_aatype(aatype, fn);
    const int64_t n = static_cast<int64_t>(aa.size());
    check_shape(backbone_rot, {n, 3, 3}, fn, "backbone_rot");
    check_shape(backbone_trans, {n, 3}, fn, "backbone_trans");
    check_shape(angles_sin_cos, {n, rc::kNumTorsions, 2}, fn, "angles_sin_cos");
    Tensor rot = host_f32(backbone_rot, fn, "backbone_rot");
    Tensor trans = host_f32(backbone_trans, fn, "backbone_trans");
    Tensor ang = host_f32(angles_sin_cos, fn, "angles_sin_cos");
    check_finite(rot.f32(), rot.numel(), fn, "backbone_rot");
    check_finite(trans.f32(), trans.numel(), fn, "backbone_trans");
    check_finite(ang.f32(), ang.numel(), fn, "angles_sin_cos");

    const rc::RigidGroupTables& tab = rc::rigid_group_tables();
    Tensor out = Tensor::empty({n, rc::kNumRigidGroups, 4, 4});
    const float* rp = rot.f32();
    const float* tp = trans.f32();
    const float* ap = ang.f32();
    float* o = out.f32();
    for (int64_t i = 0; i < n; ++i) {
        Rigid bb;
        for (int a = 0; a < 3; ++a) {
            for (int b = 0; b < 3; ++b) bb.r[a][b] = rp[9 * i + 3 * a + b];
            bb.t[a] = tp[3 * i + a];
        }
        Rigid local[rc::kNumRigidGroups];
        for (int g = 0; g < rc::kNumRigidGroups; ++g) {
            // Backbone group: identity torsion (sin 0, cos 1); group g > 0 takes torsion g - 1.
            double s = g == 0 ? 0.0 : ap[(i * rc::kNumTorsions + g - 1) * 2];
            double c = g == 0 ? 1.0 : ap[(i * rc::kNumTorsions + g - 1) * 2 + 1];
            const float(*d)[4] = tab.default_frame[aa[i]][g];
            // default_frame ∘ makeRotX: columns 1 and 2 of R_d mix by [[c, -s], [s, c]].
            Rigid& l = local[g];
            for (int a = 0; a < 3; ++a) {
                l.r[a][0] = d[a][0];
                l.r[a][1] = d[a][1] * c + d[a][2] * s;
                l.r[a][2] = -d[a][1] * s + d[a][2] * c;
                l.t[a] = d[a][3];
            }
        }
        for (int g = 5; g < rc::kNumRigidGroups; ++g) local[g] = compose(local[g - 1], local[g]);
        for (int g = 0; g < rc::kNumRigidGroups; ++g) {
            Rigid w = compose(bb, local[g]);
            float* m = o + (i * rc::kNumRigidGroups + g) * 16;
            for (int a = 0; a < 3; ++a) {
                for (int b = 0; b < 3; ++b) m[4 * a + b] = static_cast<float>(w.r[a][b]);
                m[4 * a + 3] = static_cast<float>(w.t[a]);
            }
            m[12] = m[13] = m[14] = 0.f;
            m[15] = 1.f;
        }
    }
    return to_device(out, backbone_rot.device());
}

Tensor frames_and_literature_positions_to_atom14_pos(const Tensor& aatype, const Tensor& frames) {
    const char* fn = "frames_and_literature_positions_to_atom14_pos";
    std::vector<int> aa = host_aatype(aatype, fn);
    const int64_t n = static_cast<int64_t>(aa.size());
    check_shape(frames, {n, rc::kNumRigidGroups, 4, 4}, fn, "frames");
    Tensor f = host_f32(frames, fn, "frames");
    check_finite(f.f32(), f.numel(), fn, "frames");
    const rc::RigidGroupTables& tab = rc::rigid_group_tables();
    Tensor out = Tensor::empty({n, rc::kAtom14, 3});
    const float* fp = f.f32();
    float* o = out.f32();
    for (int64_t i = 0; i < n; ++i) {
        const int r = aa[i];
        for (int k = 0; k < rc::kAtom14; ++k) {
            float* dst = o + (i * rc::kAtom14 + k) * 3;
            if (tab.atom14_mask[r][k] == 0.f) {
                dst[0] = dst[1] = dst[2] = 0.f;
                continue;
            }
            const float* m = fp + (i * rc::kNumRigidGroups + tab.atom14_to_rigid_group[r][k]) * 16;
            const float* p = tab.atom14_rigid_group_positions[r][k];
            for (int a = 0; a < 3; ++a)
                dst[a] = static_cast<float>(double(m[4 * a]) * p[0] + double(m[4 * a + 1]) * p[1] +
                                            double(m[4 * a + 2]) * p[2] + m[4 * a + 3]);
        }
    }
    return to_device(out, frames.device());
}

Tensor atom14_to_atom37(const Tensor& atom14, const Tensor& aatype) {
    const char* fn = "atom14_to_atom37";
    std::vector<int> aa = host_aatype(aatype, fn);
    const int64_t n = static_cast<int64_t>(aa.size());
    AXF_CHECK(atom14.defined() && atom14.dim() >= 2 && atom14.size(0) == n && atom14.size(1) == rc::kAtom14,
              "%s: atom14 must be [%lld, 14, ...], got %s", fn, static_cast<long long>(n),
              atom14.defined() ? atom14.desc().c_str() : "undefined");
    Tensor h = host_f32(atom14, fn, "atom14");
    Shape out_shape = h.shape();
    out_shape[1] = rc::kAtom37;
    Tensor out = Tensor::empty(out_shape);
    const int64_t inner = n > 0 ? h.numel() / (n * rc::kAtom14) : 0;
    const rc::RigidGroupTables& rg = rc::rigid_group_tables();
    const rc::AtomIndexTables& ix = rc::atom_index_tables();
    const float* src = h.f32();
    float* o = out.f32();
    for (int64_t i = 0; i < n; ++i) {
        const int r = aa[i];
        for (int a = 0; a < rc::kAtom37; ++a) {
            float* dst = o + (i * rc::kAtom37 + a) * inner;
            const float* s = src + (i * rc::kAtom14 + ix.atom37_to_atom14[r][a]) * inner;
            const bool exists = rg.atom37_mask[r][a] != 0.f;
            for (int64_t c = 0; c < inner; ++c) dst[c] = exists ? s[c] : 0.f;
        }
    }
    return to_device(out, atom14.device());
}

Tensor atom37_mask(const Tensor& aatype) {
    std::vector<int> aa = host_aatype(aatype, "atom37_mask");
    const int64_t n = static_cast<int64_t>(aa.size());
    const rc::RigidGroupTables& tab = rc::rigid_group_tables();
    Tensor out = Tensor::empty({n, rc::kAtom37});
    for (int64_t i = 0; i < n; ++i)
        for (int a = 0; a < rc::kAtom37; ++a) out.f32()[i * rc::kAtom37 + a] = tab.atom37_mask[aa[i]][a];
    return to_device(out, aatype.device());
}

Tensor atom14_mask(const Tensor& aatype) {
    std::vector<int> aa = host_aatype(aatype, "atom14_mask");
    const int64_t n = static_cast<int64_t>(aa.size());
    const rc::RigidGroupTables& tab = rc::rigid_group_tables();
    Tensor out = Tensor::empty({n, rc::kAtom14});
    for (int64_t i = 0; i < n; ++i)
        for (int a = 0; a < rc::kAtom14; ++a) out.f32()[i * rc::kAtom14 + a] = tab.atom14_mask[aa[i]][a];
    return to_device(out, aatype.device());
}

Tensor pseudo_beta(const Tensor& aatype, const Tensor& atom37) {
    const char* fn = "pseudo_beta";
    std::vector<int> aa = host_aatype(aatype, fn);
    const int64_t n = static_cast<int64_t>(aa.size());
    check_shape(atom37, {n, rc::kAtom37, 3}, fn, "atom37");
    Tensor h = host_f32(atom37, fn, "atom37");
    Tensor out = Tensor::empty({n, 3});
    constexpr int kGly = 7;
    for (int64_t i = 0; i < n; ++i) {
        const int a = aa[i] == kGly ? rc::kAtomCA : rc::kAtomCB;
        for (int c = 0; c < 3; ++c) out.f32()[i * 3 + c] = h.f32()[(i * rc::kAtom37 + a) * 3 + c];
    }
    return to_device(out, atom37.device());
}

namespace {
// Gradients of C = A o B (C.R = A.R B.R, C.t = A.R B.t + A.t), added into dA and dB.
void compose_backward(const Rigid& a, const Rigid& b, const Rigid& dc, Rigid& da, Rigid& db) {
    for (int i = 0; i < 3; ++i) {
        for (int j = 0; j < 3; ++j) {
            double ga = 0, gb = 0;
            for (int k = 0; k < 3; ++k) {
                ga += dc.r[i][k] * b.r[j][k];  // dC.R B.R^T
                gb += a.r[k][i] * dc.r[k][j];  // A.R^T dC.R
            }
            da.r[i][j] += ga + dc.t[i] * b.t[j];
            db.r[i][j] += gb;
        }
        da.t[i] += dc.t[i];
        for (int k = 0; k < 3; ++k) db.t[i] += a.r[k][i] * dc.t[k];
    }
}
Rigid zero_rigid() {
    Rigid z;
    for (int i = 0; i < 3; ++i) {
        for (int j = 0; j < 3; ++j) z.r[i][j] = 0;
        z.t[i] = 0;
    }
    return z;
}
}  // namespace

TorsionFramesGrad torsion_angles_to_frames_backward(const Tensor& aatype, const Tensor& backbone_rot,
                                                    const Tensor& backbone_trans, const Tensor& angles_sin_cos,
                                                    const Tensor& dframes) {
    const char* fn = "torsion_angles_to_frames_backward";
    std::vector<int> aa = host_aatype(aatype, fn);
    const int64_t n = static_cast<int64_t>(aa.size());
    check_shape(backbone_rot, {n, 3, 3}, fn, "backbone_rot");
    check_shape(backbone_trans, {n, 3}, fn, "backbone_trans");
    check_shape(angles_sin_cos, {n, rc::kNumTorsions, 2}, fn, "angles_sin_cos");
    check_shape(dframes, {n, rc::kNumRigidGroups, 4, 4}, fn, "dframes");
    const std::vector<double> rp = host_float64(backbone_rot), tp = host_float64(backbone_trans),
                              ap = host_float64(angles_sin_cos), df = host_float64(dframes);
    const rc::RigidGroupTables& tab = rc::rigid_group_tables();
    TorsionFramesGrad g{Tensor::zeros({n, 3, 3}), Tensor::zeros({n, 3}), Tensor::zeros({n, rc::kNumTorsions, 2})};
    for (int64_t i = 0; i < n; ++i) {
        // The forward's local frames (unchained l, chained L) and the backbone frame.
        Rigid bb, l[rc::kNumRigidGroups], L[rc::kNumRigidGroups];
        for (int a = 0; a < 3; ++a) {
            for (int b = 0; b < 3; ++b) bb.r[a][b] = rp[9 * i + 3 * a + b];
            bb.t[a] = tp[3 * i + a];
        }
        double sv[rc::kNumRigidGroups], cv[rc::kNumRigidGroups];
        for (int grp = 0; grp < rc::kNumRigidGroups; ++grp) {
            sv[grp] = grp == 0 ? 0.0 : ap[(i * rc::kNumTorsions + grp - 1) * 2];
            cv[grp] = grp == 0 ? 1.0 : ap[(i * rc::kNumTorsions + grp - 1) * 2 + 1];
            const float(*d)[4] = tab.default_frame[aa[i]][grp];
            for (int a = 0; a < 3; ++a) {
                l[grp].r[a][0] = d[a][0];
                l[grp].r[a][1] = d[a][1] * cv[grp] + d[a][2] * sv[grp];
                l[grp].r[a][2] = -d[a][1] * sv[grp] + d[a][2] * cv[grp];
                l[grp].t[a] = d[a][3];
            }
            L[grp] = l[grp];
        }
        for (int grp = 5; grp < rc::kNumRigidGroups; ++grp) L[grp] = compose(L[grp - 1], l[grp]);
        // World frames W = bb o L: back to bb and L.
        Rigid dbb = zero_rigid(), dL[rc::kNumRigidGroups], dl[rc::kNumRigidGroups];
        for (int grp = 0; grp < rc::kNumRigidGroups; ++grp) {
            dL[grp] = zero_rigid();
            dl[grp] = zero_rigid();
            Rigid dw;
            const double* m = &df[(i * rc::kNumRigidGroups + grp) * 16];
            for (int a = 0; a < 3; ++a) {
                for (int b = 0; b < 3; ++b) dw.r[a][b] = m[4 * a + b];
                dw.t[a] = m[4 * a + 3];
            }
            compose_backward(bb, L[grp], dw, dbb, dL[grp]);
        }
        // The chi chain, last link first: L[g] = L[g - 1] o l[g] for g = 5..7; L[g] = l[g] otherwise.
        for (int grp = rc::kNumRigidGroups - 1; grp >= 5; --grp) compose_backward(L[grp - 1], l[grp], dL[grp], dL[grp - 1], dl[grp]);
        for (int grp = 0; grp < 5; ++grp) dl[grp] = dL[grp];
        // Each local frame's rotation mixes the default frame's columns 1 and 2 by (sin, cos).
        for (int grp = 1; grp < rc::kNumRigidGroups; ++grp) {
            const float(*d)[4] = tab.default_frame[aa[i]][grp];
            double ds = 0, dcos = 0;
            for (int a = 0; a < 3; ++a) {
                ds += dl[grp].r[a][1] * d[a][2] - dl[grp].r[a][2] * d[a][1];
                dcos += dl[grp].r[a][1] * d[a][1] + dl[grp].r[a][2] * d[a][2];
            }
            g.angles_sin_cos.f32()[(i * rc::kNumTorsions + grp - 1) * 2] = static_cast<float>(ds);
            g.angles_sin_cos.f32()[(i * rc::kNumTorsions + grp - 1) * 2 + 1] = static_cast<float>(dcos);
        }
        for (int a = 0; a < 3; ++a) {
            for (int b = 0; b < 3; ++b) g.backbone_rot.f32()[9 * i + 3 * a + b] = static_cast<float>(dbb.r[a][b]);
            g.backbone_trans.f32()[3 * i + a] = static_cast<float>(dbb.t[a]);
        }
    }
    return g;
}

Tensor frames_and_literature_positions_to_atom14_pos_backward(const Tensor& aatype, const Tensor& datom14) {
    const char* fn = "frames_and_literature_positions_to_atom14_pos_backward";
    std::vector<int> aa = host_aatype(aatype, fn);
    const int64_t n = static_cast<int64_t>(aa.size());
    check_shape(datom14, {n, rc::kAtom14, 3}, fn, "datom14");
    const std::vector<double> dp = host_float64(datom14);
    const rc::RigidGroupTables& tab = rc::rigid_group_tables();
    std::vector<double> df(n * rc::kNumRigidGroups * 16, 0.0);
    for (int64_t i = 0; i < n; ++i)
        for (int k = 0; k < rc::kAtom14; ++k) {
            if (tab.atom14_mask[aa[i]][k] == 0.f) continue;
            double* m = &df[(i * rc::kNumRigidGroups + tab.atom14_to_rigid_group[aa[i]][k]) * 16];
            const float* p = tab.atom14_rigid_group_positions[aa[i]][k];
            for (int a = 0; a < 3; ++a) {
                const double g = dp[(i * rc::kAtom14 + k) * 3 + a];
                for (int b = 0; b < 3; ++b) m[4 * a + b] += g * p[b];
                m[4 * a + 3] += g;
            }
        }
    return Tensor::from_vector({n, rc::kNumRigidGroups, 4, 4}, std::vector<float>(df.begin(), df.end()));
}

Tensor atom14_to_atom37_backward(const Tensor& datom37, const Tensor& aatype) {
    const char* fn = "atom14_to_atom37_backward";
    std::vector<int> aa = host_aatype(aatype, fn);
    const int64_t n = static_cast<int64_t>(aa.size());
    AXF_CHECK(datom37.dim() >= 2 && datom37.size(0) == n && datom37.size(1) == rc::kAtom37,
              "%s: datom37 must be [%lld, 37, ...], got %s", fn, static_cast<long long>(n), datom37.desc().c_str());
    const std::vector<double> src = host_float64(datom37);
    const int64_t inner = n > 0 ? static_cast<int64_t>(src.size()) / (n * rc::kAtom37) : 0;
    Shape shape = datom37.shape();
    shape[1] = rc::kAtom14;
    std::vector<float> out(n * rc::kAtom14 * inner, 0.f);
    const rc::RigidGroupTables& rg = rc::rigid_group_tables();
    const rc::AtomIndexTables& ix = rc::atom_index_tables();
    for (int64_t i = 0; i < n; ++i)
        for (int a = 0; a < rc::kAtom37; ++a) {
            if (rg.atom37_mask[aa[i]][a] == 0.f) continue;
            for (int64_t c = 0; c < inner; ++c)
                out[(i * rc::kAtom14 + ix.atom37_to_atom14[aa[i]][a]) * inner + c] +=
                    static_cast<float>(src[(i * rc::kAtom37 + a) * inner + c]);
        }
    return Tensor::from_vector(shape, out);
}

}  // namespace axfold
