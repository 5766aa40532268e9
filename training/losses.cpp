#include "training/losses.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <tuple>
#include <vector>

#include "structure/all_atom.h"
#include "structure/residue_constants.h"

namespace axfold {

namespace {

// The values of t (any dtype and device) as float64, after checking its shape.
std::vector<double> values(const Tensor& t, const Shape& shape, const char* what) {
    AXF_CHECK(t.defined() && t.shape() == shape, "loss input %s is %s, expected %s", what,
              t.defined() ? t.desc().c_str() : "undefined", shape_str(shape).c_str());
    return host_float64(t);
}

Tensor f64_tensor(const std::vector<double>& v, const Shape& shape) {
    Tensor t = Tensor::empty(shape, DType::F64);
    std::copy(v.begin(), v.end(), t.data<double>());
    return t;
}

bool in_resolution_range(double r, double lo, double hi) { return r >= lo && r <= hi; }

// Per row of `logits` ([rows, bins]): the cross entropy against class label[row], weighted by w[row]; the
// gradient of sum_row w * CE (w * (softmax - one_hot)) into grad when given. Returns the weighted sum.
double weighted_cross_entropy(const std::vector<double>& logits, int64_t bins, const std::vector<int64_t>& label,
                              const std::vector<double>& w, std::vector<double>* grad) {
    const int64_t rows = static_cast<int64_t>(label.size());
    double sum = 0;
    if (grad) grad->assign(logits.size(), 0.0);
    for (int64_t r = 0; r < rows; ++r) {
        const double* x = logits.data() + r * bins;
        double mx = -INFINITY;
        for (int64_t b = 0; b < bins; ++b) mx = std::max(mx, x[b]);
        double z = 0;
        for (int64_t b = 0; b < bins; ++b) z += std::exp(x[b] - mx);
        const double log_z = mx + std::log(z);
        sum += w[r] * (log_z - x[label[r]]);
        if (grad && w[r] != 0) {
            double* g = grad->data() + r * bins;
            for (int64_t b = 0; b < bins; ++b) g[b] = w[r] * std::exp(x[b] - log_z);
            g[label[r]] -= w[r];
        }
    }
    return sum;
}

// Number of squared edges (linspace(lo, hi, n)^2) a squared distance exceeds: its bin.
int64_t bin_of(double sq, double lo, double hi, int64_t n) {
    int64_t bin = 0;
    for (int64_t k = 0; k < n; ++k) {
        const double e = lo + (hi - lo) * static_cast<double>(k) / static_cast<double>(n - 1);
        if (sq > e * e) ++bin;
    }
    return bin;
}

// A rigid transform: x_global = R x_local + t.
struct Frame {
    double R[3][3], t[3];
    // R^-1 (x - t) with R^-1 = R^T (a rotation matrix as OpenFold's Rotation(rot_mats) inverts it).
    void to_local(const double* x, double* out) const {
        double d[3] = {x[0] - t[0], x[1] - t[1], x[2] - t[2]};
        for (int a = 0; a < 3; ++a) out[a] = R[0][a] * d[0] + R[1][a] * d[1] + R[2][a] * d[2];
    }
};

// OpenFold quat_to_rot: the quadratic form of (w, x, y, z), not renormalised.
Frame frame_from_tensor7(const double* q) {
    const double w = q[0], x = q[1], y = q[2], z = q[3];
    Frame f;
    f.R[0][0] = w * w + x * x - y * y - z * z;
    f.R[0][1] = 2 * (x * y - w * z);
    f.R[0][2] = 2 * (x * z + w * y);
    f.R[1][0] = 2 * (x * y + w * z);
    f.R[1][1] = w * w - x * x + y * y - z * z;
    f.R[1][2] = 2 * (y * z - w * x);
    f.R[2][0] = 2 * (x * z - w * y);
    f.R[2][1] = 2 * (y * z + w * x);
    f.R[2][2] = w * w - x * x - y * y + z * z;
    for (int a = 0; a < 3; ++a) f.t[a] = q[4 + a];
    return f;
}

Frame frame_from_4x4(const double* m) {
    Frame f;
    for (int a = 0; a < 3; ++a) {
        for (int b = 0; b < 3; ++b) f.R[a][b] = m[a * 4 + b];
        f.t[a] = m[a * 4 + 3];
    }
    return f;
}

// The gradient of a loss with respect to a frame: its rotation matrix and translation.
struct FrameGrad {
    double R[3][3] = {}, t[3] = {};
};

// OpenFold compute_fape: per frame f and point p, the distance between the point in the predicted and in the
// true frame (sqrt(d^2 + eps), clamped when clamp > 0), / length_scale, masked, normalised over frames then
// points. With dframes / dpoints, adds the gradient with respect to the predicted frames and points (a clamped
// distance has none).
double compute_fape(const std::vector<Frame>& pred_frames, const std::vector<Frame>& true_frames,
                    const std::vector<double>& frames_mask, const std::vector<double>& pred_points,
                    const std::vector<double>& true_points, const std::vector<double>& points_mask, double clamp,
                    double length_scale, double eps, std::vector<FrameGrad>* dframes = nullptr,
                    std::vector<double>* dpoints = nullptr) {
    const size_t F = pred_frames.size(), P = points_mask.size();
    double frames_norm = eps, points_norm = eps;
    for (double m : frames_mask) frames_norm += m;
    for (double m : points_mask) points_norm += m;
    double total = 0;
    for (size_t f = 0; f < F; ++f) {
        if (frames_mask[f] == 0) continue;
        const Frame& pf = pred_frames[f];
        double row = 0;
        for (size_t p = 0; p < P; ++p) {
            if (points_mask[p] == 0) continue;
            double a[3], b[3];
            pf.to_local(&pred_points[p * 3], a);
            true_frames[f].to_local(&true_points[p * 3], b);
            double d2 = 0;
            for (int k = 0; k < 3; ++k) d2 += (a[k] - b[k]) * (a[k] - b[k]);
            const double err = std::sqrt(d2 + eps);
            const bool clamped = clamp > 0 && err > clamp;
            const double w = frames_mask[f] * points_mask[p] / length_scale;
            row += (clamped ? clamp : err) * w;
            if (!dframes || clamped) continue;
            // d/da of w * err / (frames_norm * points_norm), a = R^T (x - t).
            double g[3], x_t[3], Rg[3] = {0, 0, 0};
            const double scale = w / (frames_norm * points_norm * err);
            for (int k = 0; k < 3; ++k) {
                g[k] = scale * (a[k] - b[k]);
                x_t[k] = pred_points[p * 3 + k] - pf.t[k];
            }
            for (int j = 0; j < 3; ++j)
                for (int k = 0; k < 3; ++k) Rg[j] += pf.R[j][k] * g[k];
            FrameGrad& df = (*dframes)[f];
            for (int j = 0; j < 3; ++j) {
                (*dpoints)[p * 3 + j] += Rg[j];
                df.t[j] -= Rg[j];
                for (int k = 0; k < 3; ++k) df.R[j][k] += x_t[j] * g[k];
            }
        }
        total += row / frames_norm;
    }
    return total / points_norm;
}

}  // namespace

double distogram_loss(const Tensor& logits, const Tensor& pseudo_beta, const Tensor& pseudo_beta_mask,
                      const LossConfig::Distogram& c, Tensor* dlogits) {
    const int64_t N = pseudo_beta.size(0), B = c.no_bins;
    const std::vector<double> x = values(logits, {N, N, B}, "distogram_logits");
    const std::vector<double> pb = values(pseudo_beta, {N, 3}, "pseudo_beta");
    const std::vector<double> pm = values(pseudo_beta_mask, {N}, "pseudo_beta_mask");
    std::vector<int64_t> label(N * N);
    std::vector<double> w(N * N);
    double denom = c.eps;
    for (int64_t i = 0; i < N; ++i)
        for (int64_t j = 0; j < N; ++j) {
            double d2 = 0;
            for (int k = 0; k < 3; ++k) d2 += (pb[i * 3 + k] - pb[j * 3 + k]) * (pb[i * 3 + k] - pb[j * 3 + k]);
            label[i * N + j] = bin_of(d2, c.min_bin, c.max_bin, B - 1);
            w[i * N + j] = pm[i] * pm[j];
            denom += w[i * N + j];
        }
    for (double& v : w) v /= denom;
    std::vector<double> g;
    const double loss = weighted_cross_entropy(x, B, label, w, dlogits ? &g : nullptr);
    if (dlogits) *dlogits = f64_tensor(g, {N, N, B});
    return loss;
}

double masked_msa_loss(const Tensor& logits, const Tensor& true_msa, const Tensor& bert_mask,
                       const LossConfig::MaskedMsa& c, Tensor* dlogits) {
    AXF_CHECK(logits.dim() == 3 && logits.size(2) == 23, "masked_msa_logits %s, expected [S, N, 23]",
              logits.desc().c_str());
    const int64_t S = logits.size(0), N = logits.size(1);
    const std::vector<double> x = values(logits, {S, N, 23}, "masked_msa_logits");
    const std::vector<double> msa = values(true_msa, {S, N}, "true_msa");
    const std::vector<double> m = values(bert_mask, {S, N}, "bert_mask");
    // OpenFold: scale * sum(err * mask) / (eps + scale * sum(mask)) with scale 0.5.
    double denom = c.eps;
    for (double v : m) denom += 0.5 * v;
    std::vector<int64_t> label(S * N);
    std::vector<double> w(S * N);
    for (int64_t r = 0; r < S * N; ++r) {
        AXF_CHECK(msa[r] >= 0 && msa[r] <= 22, "true_msa holds %g at flat index %lld, expected 0..22", msa[r],
                  (long long)r);
        label[r] = static_cast<int64_t>(msa[r]);
        w[r] = 0.5 * m[r] / denom;
    }
    std::vector<double> g;
    const double loss = weighted_cross_entropy(x, 23, label, w, dlogits ? &g : nullptr);
    if (dlogits) *dlogits = f64_tensor(g, {S, N, 23});
    return loss;
}

double experimentally_resolved_loss(const Tensor& logits, const Tensor& atom37_atom_exists, const Tensor& all_atom_mask,
                                    double resolution, const LossConfig::ExperimentallyResolved& c, Tensor* dlogits) {
    const int64_t N = logits.size(0);
    const std::vector<double> x = values(logits, {N, 37}, "experimentally_resolved_logits");
    const std::vector<double> exists = values(atom37_atom_exists, {N, 37}, "atom37_atom_exists");
    const std::vector<double> y = values(all_atom_mask, {N, 37}, "all_atom_mask");
    const double gate = in_resolution_range(resolution, c.min_resolution, c.max_resolution) ? 1.0 : 0.0;
    double denom = c.eps;
    for (double e : exists) denom += e;
    double loss = 0;
    std::vector<double> g(x.size(), 0.0);
    for (size_t k = 0; k < x.size(); ++k) {
        // -y log(sigmoid(x)) - (1 - y) log(sigmoid(-x)), with log(sigmoid(x)) = -log1p(exp(-x)) computed stably.
        const double log_p = -std::log1p(std::exp(-std::fabs(x[k]))) + std::min(x[k], 0.0);
        const double log_not_p = log_p - x[k];
        loss += exists[k] * (-y[k] * log_p - (1 - y[k]) * log_not_p);
        g[k] = gate * exists[k] / denom * (1.0 / (1.0 + std::exp(-x[k])) - y[k]);
    }
    if (dlogits) *dlogits = f64_tensor(g, {N, 37});
    return gate * loss / denom;
}

namespace {

// Per residue i: the weight of its scored pairs (true Cα distance below cutoff, both Cα present) and the weighted
// sum of their lDDT scores (the fractions of 0.5, 1, 2, 4 Å thresholds the distance's error stays within).
void lddt_ca_sums(const Tensor& predicted_atom37, const Tensor& true_atom37, const Tensor& all_atom_mask, double cutoff,
                  double eps, std::vector<double>& norm, std::vector<double>& sum) {
    const int64_t N = all_atom_mask.size(0);
    const std::vector<double> pred = values(predicted_atom37, {N, 37, 3}, "predicted atom positions");
    const std::vector<double> gt = values(true_atom37, {N, 37, 3}, "all_atom_positions");
    const std::vector<double> mask = values(all_atom_mask, {N, 37}, "all_atom_mask");
    const int ca = rc::kAtomCA;
    auto dist = [&](const std::vector<double>& p, int64_t i, int64_t j) {
        double d2 = 0;
        for (int k = 0; k < 3; ++k) {
            const double d = p[(i * 37 + ca) * 3 + k] - p[(j * 37 + ca) * 3 + k];
            d2 += d * d;
        }
        return std::sqrt(eps + d2);
    };
    norm.assign(static_cast<size_t>(N), 0.0);
    sum.assign(static_cast<size_t>(N), 0.0);
    for (int64_t i = 0; i < N; ++i) {
        for (int64_t j = 0; j < N; ++j) {
            if (j == i) continue;
            const double dt = dist(gt, i, j);
            const double scored = (dt < cutoff ? 1.0 : 0.0) * mask[i * 37 + ca] * mask[j * 37 + ca];
            if (scored == 0) continue;
            const double l1 = std::fabs(dt - dist(pred, i, j));
            const double s = 0.25 * ((l1 < 0.5) + (l1 < 1.0) + (l1 < 2.0) + (l1 < 4.0));
            norm[static_cast<size_t>(i)] += scored;
            sum[static_cast<size_t>(i)] += scored * s;
        }
    }
}

}  // namespace

Tensor lddt_ca(const Tensor& predicted_atom37, const Tensor& true_atom37, const Tensor& all_atom_mask, double cutoff,
               double eps) {
    std::vector<double> norm, sum;
    lddt_ca_sums(predicted_atom37, true_atom37, all_atom_mask, cutoff, eps, norm, sum);
    std::vector<double> score(norm.size());
    for (size_t i = 0; i < norm.size(); ++i) score[i] = (eps + sum[i]) / (eps + norm[i]);
    return f64_tensor(score, {static_cast<int64_t>(score.size())});
}

double lddt_ca_global(const Tensor& predicted_atom37, const Tensor& true_atom37, const Tensor& all_atom_mask,
                      double cutoff, double eps) {
    std::vector<double> norm, sum;
    lddt_ca_sums(predicted_atom37, true_atom37, all_atom_mask, cutoff, eps, norm, sum);
    double n = 0, t = 0;
    for (size_t i = 0; i < norm.size(); ++i) {
        n += norm[i];
        t += sum[i];
    }
    return (eps + t) / (eps + n);
}

double plddt_loss(const Tensor& logits, const Tensor& final_atom_positions, const Tensor& all_atom_positions,
                  const Tensor& all_atom_mask, double resolution, const LossConfig::Plddt& c, Tensor* dlogits,
                  Tensor* lddt_score) {
    const int64_t N = all_atom_mask.size(0), B = c.no_bins;
    const std::vector<double> x = values(logits, {N, B}, "lddt_logits");
    const std::vector<double> mask = values(all_atom_mask, {N, 37}, "all_atom_mask");
    const Tensor score = lddt_ca(final_atom_positions, all_atom_positions, all_atom_mask, c.cutoff, c.eps);
    const double* s = score.data<double>();
    const double gate = in_resolution_range(resolution, c.min_resolution, c.max_resolution) ? 1.0 : 0.0;
    double denom = c.eps;
    for (int64_t i = 0; i < N; ++i) denom += mask[i * 37 + rc::kAtomCA];
    std::vector<int64_t> label(N);
    std::vector<double> w(N);
    for (int64_t i = 0; i < N; ++i) {
        label[i] = std::min<int64_t>(static_cast<int64_t>(std::floor(s[i] * static_cast<double>(B))), B - 1);
        w[i] = gate * mask[i * 37 + rc::kAtomCA] / denom;
    }
    std::vector<double> g;
    const double loss = weighted_cross_entropy(x, B, label, w, dlogits ? &g : nullptr);
    if (dlogits) *dlogits = f64_tensor(g, {N, B});
    if (lddt_score) *lddt_score = score;
    return loss;
}

double tm_loss(const Tensor& logits, const Tensor& final_affine_tensor, const Tensor& backbone_rigid_tensor,
               const Tensor& backbone_rigid_mask, double resolution, const LossConfig::Tm& c, Tensor* dlogits) {
    const int64_t N = backbone_rigid_mask.size(0), B = c.no_bins;
    const std::vector<double> x = values(logits, {N, N, B}, "tm_logits");
    const std::vector<double> affine = values(final_affine_tensor, {N, 7}, "final_affine_tensor");
    const std::vector<double> gt = values(backbone_rigid_tensor, {N, 4, 4}, "backbone_rigid_tensor");
    const std::vector<double> mask = values(backbone_rigid_mask, {N}, "backbone_rigid_mask");
    std::vector<Frame> pred(N), truth(N);
    std::vector<double> quat_norm2(N);
    for (int64_t i = 0; i < N; ++i) {
        pred[i] = frame_from_tensor7(&affine[i * 7]);
        truth[i] = frame_from_4x4(&gt[i * 16]);
        quat_norm2[i] = 0;
        for (int k = 0; k < 4; ++k) quat_norm2[i] += affine[i * 7 + k] * affine[i * 7 + k];
    }
    const double gate = in_resolution_range(resolution, c.min_resolution, c.max_resolution) ? 1.0 : 0.0;
    double denom = c.eps;
    for (int64_t i = 0; i < N; ++i)
        for (int64_t j = 0; j < N; ++j) denom += 0.5 * mask[i] * mask[j];
    std::vector<int64_t> label(N * N);
    std::vector<double> w(N * N);
    for (int64_t i = 0; i < N; ++i)
        for (int64_t j = 0; j < N; ++j) {
            // The predicted frame is inverted as its quaternion (conjugate / |q|^2, OpenFold's Rigid of a
            // tensor_7): R(q)^T / |q|^2 for the quadratic form R(q); the true one by its transpose.
            double a[3], b[3];
            pred[i].to_local(&pred[j].t[0], a);
            for (double& v : a) v /= quat_norm2[i] * quat_norm2[i];
            truth[i].to_local(&truth[j].t[0], b);
            double d2 = 0;
            for (int k = 0; k < 3; ++k) d2 += (a[k] - b[k]) * (a[k] - b[k]);
            label[i * N + j] = bin_of(d2, 0.0, c.max_bin, B - 1);
            w[i * N + j] = gate * 0.5 * mask[i] * mask[j] / denom;
        }
    std::vector<double> g;
    const double loss = weighted_cross_entropy(x, B, label, w, dlogits ? &g : nullptr);
    if (dlogits) *dlogits = f64_tensor(g, {N, N, B});
    return loss;
}

double backbone_fape(const Tensor& traj, const Tensor& backbone_rigid_tensor, const Tensor& backbone_rigid_mask,
                     double clamp_distance, double length_scale, double eps, Tensor* dtraj) {
    AXF_CHECK(traj.dim() == 3 && traj.size(2) == 7, "backbone FAPE: traj %s, expected [L, N, 7]", traj.desc().c_str());
    const int64_t L = traj.size(0), N = traj.size(1);
    const std::vector<double> t = values(traj, {L, N, 7}, "sm/frames");
    const std::vector<double> gt = values(backbone_rigid_tensor, {N, 4, 4}, "backbone_rigid_tensor");
    const std::vector<double> mask = values(backbone_rigid_mask, {N}, "backbone_rigid_mask");
    std::vector<Frame> truth(N);
    std::vector<double> true_points(N * 3);
    for (int64_t i = 0; i < N; ++i) {
        truth[i] = frame_from_4x4(&gt[i * 16]);
        for (int k = 0; k < 3; ++k) true_points[i * 3 + k] = truth[i].t[k];
    }
    std::vector<double> grad(dtraj ? t.size() : 0, 0.0);
    double sum = 0;
    for (int64_t l = 0; l < L; ++l) {
        std::vector<Frame> pred(N);
        std::vector<double> points(N * 3);
        for (int64_t i = 0; i < N; ++i) {
            pred[i] = frame_from_tensor7(&t[(l * N + i) * 7]);
            for (int k = 0; k < 3; ++k) points[i * 3 + k] = pred[i].t[k];
        }
        std::vector<FrameGrad> dframes(dtraj ? N : 0);
        std::vector<double> dpoints(dtraj ? N * 3 : 0, 0.0);
        sum += compute_fape(pred, truth, mask, points, true_points, mask, clamp_distance, length_scale, eps,
                            dtraj ? &dframes : nullptr, dtraj ? &dpoints : nullptr);
        if (!dtraj) continue;
        // Each translation is a frame's origin and a point; the rotation comes from the quaternion. / L: the mean.
        for (int64_t i = 0; i < N; ++i) {
            double* g = &grad[(l * N + i) * 7];
            double G[3][3];
            for (int j = 0; j < 3; ++j)
                for (int k = 0; k < 3; ++k) G[j][k] = dframes[i].R[j][k] / static_cast<double>(L);
            quaternion_to_rotation_backward(&t[(l * N + i) * 7], G, g);
            for (int k = 0; k < 3; ++k) g[4 + k] += (dframes[i].t[k] + dpoints[i * 3 + k]) / static_cast<double>(L);
        }
    }
    if (dtraj) *dtraj = f64_tensor(grad, {L, N, 7});
    return sum / static_cast<double>(L);
}

RenamedGroundTruth compute_renamed_ground_truth(const Tensor& atom14_pred_positions, const Tensor& atom14_gt_positions,
                                                const Tensor& atom14_alt_gt_positions, const Tensor& atom14_gt_exists,
                                                const Tensor& atom14_alt_gt_exists,
                                                const Tensor& atom14_atom_is_ambiguous, double eps) {
    const int64_t N = atom14_gt_exists.size(0);
    const std::vector<double> pred = values(atom14_pred_positions, {N, 14, 3}, "atom14 predicted positions");
    const std::vector<double> gt = values(atom14_gt_positions, {N, 14, 3}, "atom14_gt_positions");
    const std::vector<double> alt = values(atom14_alt_gt_positions, {N, 14, 3}, "atom14_alt_gt_positions");
    const std::vector<double> exists = values(atom14_gt_exists, {N, 14}, "atom14_gt_exists");
    const std::vector<double> alt_exists = values(atom14_alt_gt_exists, {N, 14}, "atom14_alt_gt_exists");
    const std::vector<double> ambiguous = values(atom14_atom_is_ambiguous, {N, 14}, "atom14_atom_is_ambiguous");
    auto dist = [&](const std::vector<double>& p, int64_t i, int a, int64_t j, int b) {
        double d2 = 0;
        for (int k = 0; k < 3; ++k) {
            const double d = p[(i * 14 + a) * 3 + k] - p[(j * 14 + b) * 3 + k];
            d2 += d * d;
        }
        return std::sqrt(eps + d2);
    };
    RenamedGroundTruth r;
    r.alt_naming_is_better = Tensor::zeros({N}, DType::F64);
    r.renamed_atom14_gt_positions = Tensor::empty({N, 14, 3}, DType::F64);
    r.renamed_atom14_gt_exists = Tensor::empty({N, 14}, DType::F64);
    for (int64_t i = 0; i < N; ++i) {
        // Distances from residue i's ambiguous atoms to every unambiguous atom of the chain.
        double per_res = 0, alt_per_res = 0;
        for (int a = 0; a < 14; ++a) {
            if (exists[i * 14 + a] * ambiguous[i * 14 + a] == 0) continue;
            for (int64_t j = 0; j < N; ++j)
                for (int b = 0; b < 14; ++b) {
                    const double m = exists[j * 14 + b] * (1.0 - ambiguous[j * 14 + b]);
                    if (m == 0) continue;
                    const double dp = dist(pred, i, a, j, b);
                    per_res += m * std::sqrt(eps + (dp - dist(gt, i, a, j, b)) * (dp - dist(gt, i, a, j, b)));
                    alt_per_res += m * std::sqrt(eps + (dp - dist(alt, i, a, j, b)) * (dp - dist(alt, i, a, j, b)));
                }
        }
        const double better = alt_per_res < per_res ? 1.0 : 0.0;
        r.alt_naming_is_better.data<double>()[i] = better;
        for (int a = 0; a < 14; ++a) {
            for (int k = 0; k < 3; ++k)
                r.renamed_atom14_gt_positions.data<double>()[(i * 14 + a) * 3 + k] =
                    (1 - better) * gt[(i * 14 + a) * 3 + k] + better * alt[(i * 14 + a) * 3 + k];
            r.renamed_atom14_gt_exists.data<double>()[i * 14 + a] =
                (1 - better) * exists[i * 14 + a] + better * alt_exists[i * 14 + a];
        }
    }
    return r;
}

double sidechain_fape(const Tensor& sidechain_frames, const Tensor& atom14_positions,
                      const Tensor& rigidgroups_gt_frames, const Tensor& rigidgroups_alt_gt_frames,
                      const Tensor& rigidgroups_gt_exists, const RenamedGroundTruth& renamed, double clamp_distance,
                      double length_scale, double eps, Tensor* dframes, Tensor* dpositions) {
    const int64_t N = rigidgroups_gt_exists.size(0);
    const std::vector<double> frames = values(sidechain_frames, {N, 8, 4, 4}, "sm/sidechain_frames (last layer)");
    const std::vector<double> pos = values(atom14_positions, {N, 14, 3}, "sm/positions (last layer)");
    const std::vector<double> gt = values(rigidgroups_gt_frames, {N, 8, 4, 4}, "rigidgroups_gt_frames");
    const std::vector<double> alt = values(rigidgroups_alt_gt_frames, {N, 8, 4, 4}, "rigidgroups_alt_gt_frames");
    const std::vector<double> exists = values(rigidgroups_gt_exists, {N, 8}, "rigidgroups_gt_exists");
    const std::vector<double> better = values(renamed.alt_naming_is_better, {N}, "alt_naming_is_better");
    const std::vector<double> gt_pos = values(renamed.renamed_atom14_gt_positions, {N, 14, 3}, "renamed positions");
    const std::vector<double> gt_exists = values(renamed.renamed_atom14_gt_exists, {N, 14}, "renamed atom mask");
    std::vector<Frame> pred(N * 8), truth(N * 8);
    for (int64_t f = 0; f < N * 8; ++f) {
        pred[f] = frame_from_4x4(&frames[f * 16]);
        double m[16];
        const double b = better[f / 8];
        for (int k = 0; k < 16; ++k) m[k] = (1 - b) * gt[f * 16 + k] + b * alt[f * 16 + k];
        truth[f] = frame_from_4x4(m);
    }
    const bool grads = dframes || dpositions;
    std::vector<FrameGrad> df(grads ? N * 8 : 0);
    std::vector<double> dp(grads ? N * 14 * 3 : 0, 0.0);
    const double loss = compute_fape(pred, truth, exists, pos, gt_pos, gt_exists, clamp_distance, length_scale, eps,
                                     grads ? &df : nullptr, grads ? &dp : nullptr);
    if (dframes) {
        std::vector<double> g(N * 8 * 16, 0.0);  // the bottom row of each 4 x 4 frame has no gradient
        for (int64_t f = 0; f < N * 8; ++f)
            for (int j = 0; j < 3; ++j) {
                for (int k = 0; k < 3; ++k) g[f * 16 + j * 4 + k] = df[f].R[j][k];
                g[f * 16 + j * 4 + 3] = df[f].t[j];
            }
        *dframes = f64_tensor(g, {N, 8, 4, 4});
    }
    if (dpositions) *dpositions = f64_tensor(dp, {N, 14, 3});
    return loss;
}

double supervised_chi_loss(const Tensor& angles, const Tensor& unnormalized_angles, const Tensor& aatype,
                           const Tensor& seq_mask, const Tensor& chi_mask, const Tensor& chi_angles_sin_cos,
                           const LossConfig::SupervisedChi& c, double* chi_part, Tensor* dangles,
                           Tensor* dunnormalized) {
    AXF_CHECK(angles.dim() == 4 && angles.size(2) == 7 && angles.size(3) == 2, "supervised chi: angles %s, expected "
              "[L, N, 7, 2]", angles.desc().c_str());
    const int64_t L = angles.size(0), N = angles.size(1);
    const std::vector<double> a = values(angles, {L, N, 7, 2}, "sm/angles");
    const std::vector<double> u = values(unnormalized_angles, {L, N, 7, 2}, "sm/unnormalized_angles");
    const std::vector<double> aa = values(aatype, {N}, "aatype");
    const std::vector<double> sm = values(seq_mask, {N}, "seq_mask");
    const std::vector<double> cm = values(chi_mask, {N, 4}, "chi_mask");
    const std::vector<double> chi = values(chi_angles_sin_cos, {N, 4, 2}, "chi_angles_sin_cos");
    constexpr double kMaskedMeanEps = 1e-4;  // OpenFold masked_mean
    double chi_norm = kMaskedMeanEps, norm_norm = kMaskedMeanEps;
    for (int64_t i = 0; i < N; ++i) {
        for (int k = 0; k < 4; ++k) chi_norm += static_cast<double>(L) * cm[i * 4 + k];
        norm_norm += static_cast<double>(L) * 7 * sm[i];
    }
    std::vector<double> ga(dangles ? a.size() : 0, 0.0), gu(dunnormalized ? u.size() : 0, 0.0);
    double chi_sum = 0, norm_sum = 0;
    for (int64_t i = 0; i < N; ++i) {
        const int r = static_cast<int>(aa[i]);
        AXF_CHECK(r >= 0 && r < rc::kNumRestypesWithX, "aatype holds %g at residue %lld, expected 0..20", aa[i],
                  (long long)i);
        for (int64_t l = 0; l < L; ++l) {
            for (int k = 0; k < 4; ++k) {
                const int64_t at = ((l * N + i) * 7 + 3 + k) * 2;
                const double* p = &a[at];
                const double* t = &chi[(i * 4 + k) * 2];
                const double shift = 1.0 - 2.0 * rc::kChiPiPeriodic[r][k];
                double e = 0, e_shift = 0;
                for (int s = 0; s < 2; ++s) {
                    e += (t[s] - p[s]) * (t[s] - p[s]);
                    e_shift += (shift * t[s] - p[s]) * (shift * t[s] - p[s]);
                }
                chi_sum += cm[i * 4 + k] * std::min(e, e_shift);
                // The nearer target takes the gradient (a tie, a chi that is not pi-periodic, has one target).
                const double target_shift = e_shift < e ? shift : 1.0;
                if (dangles)
                    for (int s = 0; s < 2; ++s)
                        ga[at + s] = c.chi_weight * cm[i * 4 + k] / chi_norm * -2.0 * (target_shift * t[s] - p[s]);
            }
            for (int k = 0; k < 7; ++k) {
                const int64_t at = ((l * N + i) * 7 + k) * 2;
                const double* v = &u[at];
                const double n = std::sqrt(v[0] * v[0] + v[1] * v[1] + c.eps);
                norm_sum += sm[i] * std::fabs(n - 1.0);
                if (dunnormalized) {
                    const double sign = n > 1.0 ? 1.0 : n < 1.0 ? -1.0 : 0.0;
                    for (int s = 0; s < 2; ++s) gu[at + s] = c.angle_norm_weight * sm[i] / norm_norm * sign * v[s] / n;
                }
            }
        }
    }
    if (chi_part) *chi_part = c.chi_weight * chi_sum / chi_norm;
    if (dangles) *dangles = f64_tensor(ga, {L, N, 7, 2});
    if (dunnormalized) *dunnormalized = f64_tensor(gu, {L, N, 7, 2});
    return c.chi_weight * chi_sum / chi_norm + c.angle_norm_weight * norm_sum / norm_norm;
}

namespace {

// |x - y| with eps under the root, as OpenFold takes the violation terms' distances.
double distance_eps(const double* x, const double* y, double eps) {
    double d2 = 0;
    for (int k = 0; k < 3; ++k) d2 += (x[k] - y[k]) * (x[k] - y[k]);
    return std::sqrt(eps + d2);
}

// What the violation terms read, as float64, and the gradient of violation_loss with respect to the positions,
// which they build term by term: d/d(x) of each distance or cosine, times the loss's derivative with respect to
// it. The normalisers (link counts, atom count) do not depend on the positions.
struct ViolationInputs {
    int64_t n = 0;
    std::vector<double> pos;     // [N, 14, 3]
    std::vector<double> exists;  // [N, 14]
    std::vector<double> ri;      // [N], residue_index
    std::vector<int> aa;         // [N], aatype
    bool with_grad = false;
    std::vector<double> grad;  // [N, 14, 3], with_grad only

    const double* p(int64_t i, int a) const { return &pos[(i * 14 + a) * 3]; }
    double* g(int64_t i, int a) { return &grad[(i * 14 + a) * 3]; }
    // d|x - y|_eps: s * (x - y) / |x - y|_eps into x, minus that into y.
    void add_distance_grad(double s, int64_t i, int a, int64_t j, int b, double d) {
        if (!with_grad || s == 0) return;
        for (int k = 0; k < 3; ++k) {
            const double v = s * (p(i, a)[k] - p(j, b)[k]) / d;
            g(i, a)[k] += v;
            g(j, b)[k] -= v;
        }
    }
    // d(u . w)/d(x_head - x_tail) for u = (x_head - x_tail) / l (l = |x_head - x_tail|_eps), w fixed:
    // w / l - (x_head - x_tail) (u . w) / l^2, times s, into head, minus into tail.
    void add_unit_grad(double s, int64_t hi, int ha, int64_t ti, int ta, const double* u, double l, const double* w) {
        if (!with_grad || s == 0) return;
        const double uw = u[0] * w[0] + u[1] * w[1] + u[2] * w[2];
        for (int k = 0; k < 3; ++k) {
            const double v = s * (w[k] - u[k] * uw) / l;
            g(hi, ha)[k] += v;
            g(ti, ta)[k] -= v;
        }
    }
};

// What the gradient of one link's three terms (C-N bond, CA-C-N and C-N-CA angles) needs.
struct BondLink {
    int64_t i;               // the link from residue i to i + 1
    double c_n, ca_c, n_ca;  // bond lengths
    double derr[3];          // d(the term's masked sum) / d err: the mask where violated, else 0
    double dvalue[3];        // d err / d(bond length or cosine)
    double c_ca_u[3], c_n_u[3], n_ca_u[3];
};

// The gradient of the three between-residue means: each link's terms' d err, over the term's mask count
// (count: the link counts + eps, the means' denominators), through its bond length or cosine.
void between_residue_bond_grad(const std::vector<BondLink>& links, const double count[3], ViolationInputs& x) {
    for (const BondLink& l : links) {
        const int64_t i = l.i;
        // C-N bond length.
        x.add_distance_grad(l.derr[0] / count[0] * l.dvalue[0], i, 2, i + 1, 0, l.c_n);
        // cos(CA-C-N) = u(CA - C) . u(N' - C).
        const double s1 = l.derr[1] / count[1] * l.dvalue[1];
        x.add_unit_grad(s1, i, 1, i, 2, l.c_ca_u, l.ca_c, l.c_n_u);
        x.add_unit_grad(s1, i + 1, 0, i, 2, l.c_n_u, l.c_n, l.c_ca_u);
        // cos(C-N-CA) = -u(N' - C) . u(CA' - N').
        const double s2 = l.derr[2] / count[2] * l.dvalue[2];
        const double minus_n_ca[3] = {-l.n_ca_u[0], -l.n_ca_u[1], -l.n_ca_u[2]};
        const double minus_c_n[3] = {-l.c_n_u[0], -l.c_n_u[1], -l.c_n_u[2]};
        x.add_unit_grad(s2, i + 1, 0, i, 2, l.c_n_u, l.c_n, minus_n_ca);
        x.add_unit_grad(s2, i + 1, 1, i + 1, 0, l.n_ca_u, l.n_ca, minus_c_n);
    }
}

// AF2 all_atom.between_residue_bond_loss: the C-N bond and the CA-C-N and C-N-CA angles between consecutive
// residues (atom14 slots N 0, CA 1, C 2): their three means and the per-residue loss sums and violation masks.
void between_residue_bond_loss(ViolationInputs& x, double violation_tolerance_factor, StructuralViolations& v) {
    const int64_t N = x.n;
    const std::vector<double>& ri = x.ri;
    const std::vector<double>& exists = x.exists;
    const std::vector<int>& aa = x.aa;
    constexpr double kEps = 1e-6;
    constexpr double kCN[2] = {1.329, 1.341}, kCNStd[2] = {0.014, 0.016};  // after a non-proline, a proline
    constexpr double kCosCACN = -0.4473, kCosCNCA = -0.5203, kCosCNCAStd = 0.0353;
    const double tol = violation_tolerance_factor;
    std::vector<double> per_pair_loss(std::max<int64_t>(N - 1, 0)), per_pair_violation(std::max<int64_t>(N - 1, 0));
    double sums[3] = {0, 0, 0}, norms[3] = {0, 0, 0};
    std::vector<BondLink> links;
    for (int64_t i = 0; i + 1 < N; ++i) {
        const double no_gap = ri[i + 1] - ri[i] == 1.0 ? 1.0 : 0.0;
        const double* ca = x.p(i, 1);
        const double* c = x.p(i, 2);
        const double* n_next = x.p(i + 1, 0);
        const double* ca_next = x.p(i + 1, 1);
        const int pro = aa[i + 1] == rc::restype_index('P') ? 1 : 0;
        const double c_n = distance_eps(c, n_next, kEps), ca_c = distance_eps(ca, c, kEps),
                     n_ca = distance_eps(n_next, ca_next, kEps);
        double c_ca_u[3], c_n_u[3], n_ca_u[3];
        for (int k = 0; k < 3; ++k) {
            c_ca_u[k] = (ca[k] - c[k]) / ca_c;
            c_n_u[k] = (n_next[k] - c[k]) / c_n;
            n_ca_u[k] = (ca_next[k] - n_next[k]) / n_ca;
        }
        double cos_ca_c_n = 0, cos_c_n_ca = 0;
        for (int k = 0; k < 3; ++k) {
            cos_ca_c_n += c_ca_u[k] * c_n_u[k];
            cos_c_n_ca += -c_n_u[k] * n_ca_u[k];
        }
        // OpenFold selects the C-N bond's ideal length and deviation with a boolean tensor, which makes them
        // float32, and forms the tolerance (factor x deviation) in float32 too; the angles' constants stay
        // float64. (Reproduces the golden losses exactly; float64 constants differ by 6e-10.) AF2 gives the
        // CA-C-N angle the C-N bond length's standard deviation.
        const double cn = static_cast<float>(kCN[pro]);
        const double err[3] = {std::sqrt(kEps + (c_n - cn) * (c_n - cn)),
                               std::sqrt(kEps + (cos_ca_c_n - kCosCACN) * (cos_ca_c_n - kCosCACN)),
                               std::sqrt(kEps + (cos_c_n_ca - kCosCNCA) * (cos_c_n_ca - kCosCNCA))};
        const double threshold[3] = {static_cast<float>(static_cast<float>(tol) * static_cast<float>(kCNStd[pro])),
                                     tol * kCNStd[0], tol * kCosCNCAStd};
        const double mask[3] = {exists[i * 14 + 2] * exists[(i + 1) * 14] * no_gap,
                                exists[i * 14 + 1] * exists[i * 14 + 2] * exists[(i + 1) * 14] * no_gap,
                                exists[i * 14 + 2] * exists[(i + 1) * 14] * exists[(i + 1) * 14 + 1] * no_gap};
        for (int t = 0; t < 3; ++t) {
            const double loss = std::max(0.0, err[t] - threshold[t]);
            sums[t] += mask[t] * loss;
            norms[t] += mask[t];
            per_pair_loss[i] += loss;
            per_pair_violation[i] = std::max(per_pair_violation[i], mask[t] * (err[t] > threshold[t] ? 1.0 : 0.0));
        }
        if (!x.with_grad) continue;
        // d(mean)/d(err) is mask / (count + eps), the counts known only after the loop: gradients with respect to
        // err (per link and term) are kept and scaled by between_residue_bond_grad.
        BondLink link{};
        link.i = i;
        link.c_n = c_n;
        link.ca_c = ca_c;
        link.n_ca = n_ca;
        const double dvalue[3] = {(c_n - cn) / err[0], (cos_ca_c_n - kCosCACN) / err[1],
                                  (cos_c_n_ca - kCosCNCA) / err[2]};
        for (int k = 0; k < 3; ++k) {
            link.derr[k] = err[k] > threshold[k] ? mask[k] : 0.0;
            link.dvalue[k] = dvalue[k];
            link.c_ca_u[k] = c_ca_u[k];
            link.c_n_u[k] = c_n_u[k];
            link.n_ca_u[k] = n_ca_u[k];
        }
        links.push_back(link);
    }
    v.bonds_c_n_loss_mean = sums[0] / (norms[0] + kEps);
    v.angles_ca_c_n_loss_mean = sums[1] / (norms[1] + kEps);
    v.angles_c_n_ca_loss_mean = sums[2] / (norms[2] + kEps);
    const double count[3] = {norms[0] + kEps, norms[1] + kEps, norms[2] + kEps};
    between_residue_bond_grad(links, count, x);
    v.connections_per_residue_loss_sum = Tensor::zeros({N}, DType::F64);
    v.connections_per_residue_violation_mask = Tensor::zeros({N}, DType::F64);
    double* conn = v.connections_per_residue_loss_sum.data<double>();
    double* conn_mask = v.connections_per_residue_violation_mask.data<double>();
    for (int64_t i = 0; i + 1 < N; ++i) {  // each link's loss half to either residue, its violation to both
        conn[i] += 0.5 * per_pair_loss[i];
        conn[i + 1] += 0.5 * per_pair_loss[i];
        conn_mask[i] = std::max(conn_mask[i], per_pair_violation[i]);
        conn_mask[i + 1] = std::max(conn_mask[i + 1], per_pair_violation[i]);
    }
}

// AF2 all_atom.between_residue_clash_loss: atoms of different residues closer than their van der Waals radii
// (atom14_atom_radius [N, 14]) less clash_overlap_tolerance; per_pair: d violation_loss / d(one pair's error).
void between_residue_clash_loss(ViolationInputs& x, const std::vector<double>& atom14_atom_radius,
                                double clash_overlap_tolerance, double per_pair, StructuralViolations& v) {
    const int64_t N = x.n;
    const std::vector<double>& ri = x.ri;
    const std::vector<double>& exists = x.exists;
    const std::vector<double>& radius = atom14_atom_radius;
    v.clashes_per_atom_loss_sum = Tensor::zeros({N, 14}, DType::F64);
    v.clashes_per_atom_clash_mask = Tensor::zeros({N, 14}, DType::F64);
    double* clash_sum = v.clashes_per_atom_loss_sum.data<double>();
    double* clash_mask = v.clashes_per_atom_clash_mask.data<double>();
    constexpr int kSG = 5;  // CYS SG's atom14 slot: AF2 exempts this slot pair for every residue pair
    double clash_total = 0, clash_norm = 0;
    for (int64_t i = 0; i < N; ++i)
        for (int64_t j = 0; j < N; ++j) {
            if (!(ri[i] < ri[j])) continue;
            const bool neighbours = ri[i] + 1 == ri[j];
            for (int a = 0; a < 14; ++a)
                for (int b = 0; b < 14; ++b) {
                    double m = exists[i * 14 + a] * exists[j * 14 + b];
                    if (neighbours && a == 2 && b == 0) m = 0;  // the peptide bond
                    if (a == kSG && b == kSG) m = 0;
                    if (m == 0) continue;
                    const double d = distance_eps(x.p(i, a), x.p(j, b), 1e-10);
                    const double lower = m * (radius[i * 14 + a] + radius[j * 14 + b]);
                    const double err = m * std::max(0.0, lower - clash_overlap_tolerance - d);
                    clash_total += err;
                    clash_norm += m;
                    clash_sum[i * 14 + a] += err;
                    clash_sum[j * 14 + b] += err;
                    if (err > 0) x.add_distance_grad(-per_pair * m, i, a, j, b, d);
                    if (d < lower - clash_overlap_tolerance) {
                        clash_mask[i * 14 + a] = std::max(clash_mask[i * 14 + a], m);
                        clash_mask[j * 14 + b] = std::max(clash_mask[j * 14 + b], m);
                    }
                }
        }
    v.clashes_mean_loss = clash_total / (1e-6 + clash_norm);
}

// AF2 all_atom.within_residue_violations: distances within each residue outside [lower, upper] of the
// stereo-chemical tables; per_pair: d violation_loss / d(one pair's error).
void within_residue_violations(ViolationInputs& x, const rc::Atom14DistBounds& bounds, double per_pair,
                               StructuralViolations& v) {
    const int64_t N = x.n;
    const std::vector<double>& exists = x.exists;
    const std::vector<int>& aa = x.aa;
    v.within_residues_per_atom_loss_sum = Tensor::zeros({N, 14}, DType::F64);
    v.within_residues_per_atom_violations = Tensor::zeros({N, 14}, DType::F64);
    double* within_sum = v.within_residues_per_atom_loss_sum.data<double>();
    double* within_viol = v.within_residues_per_atom_violations.data<double>();
    for (int64_t i = 0; i < N; ++i)
        for (int a = 0; a < 14; ++a)
            for (int b = 0; b < 14; ++b) {
                const double m = a == b ? 0.0 : exists[i * 14 + a] * exists[i * 14 + b];
                if (m == 0) continue;
                const double d = distance_eps(x.p(i, a), x.p(i, b), 1e-10);
                const double lower = bounds.lower[aa[i]][a][b], upper = bounds.upper[aa[i]][a][b];
                const double loss = m * (std::max(0.0, lower - d) + std::max(0.0, d - upper));
                within_sum[i * 14 + a] += loss;
                within_sum[i * 14 + b] += loss;
                const double dd = (lower - d > 0 ? -1.0 : 0.0) + (d - upper > 0 ? 1.0 : 0.0);
                x.add_distance_grad(per_pair * m * dd, i, a, i, b, d);
                if (d < lower || d > upper) {
                    within_viol[i * 14 + a] = std::max(within_viol[i * 14 + a], m);
                    within_viol[i * 14 + b] = std::max(within_viol[i * 14 + b], m);
                }
            }
}

}  // namespace

// AF2 all_atom.find_structural_violations: the three terms above, and per residue whether any is violated.
StructuralViolations find_structural_violations(const Tensor& atom14_pred_positions, const Tensor& atom14_atom_exists,
                                                const Tensor& residue_index, const Tensor& aatype,
                                                double violation_tolerance_factor, double clash_overlap_tolerance,
                                                Tensor* dloss, double loss_eps) {
    ViolationInputs x;
    const int64_t N = x.n = atom14_atom_exists.size(0);
    x.pos = values(atom14_pred_positions, {N, 14, 3}, "atom14 predicted positions");
    x.exists = values(atom14_atom_exists, {N, 14}, "atom14_atom_exists");
    x.ri = values(residue_index, {N}, "residue_index");
    const std::vector<double> aa_f = values(aatype, {N}, "aatype");
    x.aa.resize(N);
    for (int64_t i = 0; i < N; ++i) {
        x.aa[i] = static_cast<int>(aa_f[i]);
        AXF_CHECK(x.aa[i] >= 0 && x.aa[i] < rc::kNumRestypesWithX, "aatype holds %g at residue %lld, expected 0..20",
                  aa_f[i], (long long)i);
    }
    x.with_grad = dloss != nullptr;
    x.grad.assign(dloss ? x.pos.size() : 0, 0.0);
    StructuralViolations v;
    between_residue_bond_loss(x, violation_tolerance_factor, v);

    // The clash and within-residue per-atom sums enter the loss as their total / (eps + number of atoms); each
    // pair's error is in two atoms' sums.
    double atoms = 0;
    for (double e : x.exists) atoms += e;
    const double per_pair = 2.0 / (loss_eps + atoms);
    const rc::AtomIndexTables& idx = rc::atom_index_tables();
    std::vector<double> radius(N * 14);
    for (int64_t i = 0; i < N; ++i)
        for (int a = 0; a < 14; ++a)
            radius[i * 14 + a] =
                x.exists[i * 14 + a] * rc::van_der_waals_radius(rc::atom_element(idx.atom14_to_atom37[x.aa[i]][a]));
    between_residue_clash_loss(x, radius, clash_overlap_tolerance, per_pair, v);
    const std::unique_ptr<rc::Atom14DistBounds> bounds =
        rc::atom14_dists_bounds(clash_overlap_tolerance, violation_tolerance_factor);
    within_residue_violations(x, *bounds, per_pair, v);

    v.total_per_residue_violations_mask = Tensor::zeros({N}, DType::F64);
    const double* conn_mask = v.connections_per_residue_violation_mask.data<double>();
    const double* clash_mask = v.clashes_per_atom_clash_mask.data<double>();
    const double* within_viol = v.within_residues_per_atom_violations.data<double>();
    for (int64_t i = 0; i < N; ++i) {
        double m = conn_mask[i];
        for (int a = 0; a < 14; ++a) m = std::max({m, clash_mask[i * 14 + a], within_viol[i * 14 + a]});
        v.total_per_residue_violations_mask.data<double>()[i] = m;
    }
    if (dloss) *dloss = f64_tensor(x.grad, {N, 14, 3});
    return v;
}

double violation_loss(const StructuralViolations& v, const Tensor& atom14_atom_exists, double eps, double* clash) {
    const std::vector<double> exists = host_float64(atom14_atom_exists);
    const std::vector<double> a = host_float64(v.clashes_per_atom_loss_sum), b = host_float64(v.within_residues_per_atom_loss_sum);
    AXF_CHECK(a.size() == exists.size() && b.size() == exists.size(), "violation loss: %zu atoms, %zu and %zu per-atom "
              "losses", exists.size(), a.size(), b.size());
    double atoms = 0, sum = 0;
    for (size_t k = 0; k < exists.size(); ++k) {
        atoms += exists[k];
        sum += a[k] + b[k];
    }
    const double l_clash = sum / (eps + atoms);
    if (clash) *clash = l_clash;
    return v.bonds_c_n_loss_mean + v.angles_ca_c_n_loss_mean + v.angles_c_n_ca_loss_mean + l_clash;
}

const std::vector<std::string>& loss_batch_features() {
    static const std::vector<std::string> names = {
        "aatype", "all_atom_mask", "all_atom_positions", "atom14_alt_gt_exists", "atom14_alt_gt_positions",
        "atom14_atom_exists", "atom14_atom_is_ambiguous", "atom14_gt_exists", "atom14_gt_positions",
        "atom37_atom_exists", "backbone_rigid_mask", "backbone_rigid_tensor", "bert_mask", "chi_angles_sin_cos",
        "chi_mask", "pseudo_beta", "pseudo_beta_mask", "residue_index", "rigidgroups_alt_gt_frames",
        "rigidgroups_gt_exists", "rigidgroups_gt_frames", "seq_mask", "true_msa", "resolution", "seq_length",
        "use_clamped_fape"};
    return names;
}

AlphaFoldLoss alphafold_loss(const std::map<std::string, Tensor>& outputs, const std::map<std::string, Tensor>& batch,
                             const LossConfig& c, bool with_gradients) {
    auto out = [&](const char* name) -> const Tensor& {
        const auto it = outputs.find(name);
        AXF_CHECK(it != outputs.end(), "AlphaFold loss: model output '%s' is missing", name);
        return it->second;
    };
    auto in = [&](const char* name) -> const Tensor& {
        const auto it = batch.find(name);
        AXF_CHECK(it != batch.end(), "AlphaFold loss: ground-truth feature '%s' is missing", name);
        return it->second;
    };
    auto scalar = [&](const char* name) {
        const std::vector<double> v = host_float64(in(name));
        AXF_CHECK(v.size() == 1, "AlphaFold loss: feature '%s' is %s, expected a scalar", name, in(name).desc().c_str());
        return v[0];
    };
    AlphaFoldLoss r;
    // Gradients of the unweighted terms, by output; weighted and summed into r.gradients at the end.
    std::vector<std::tuple<std::string, double, Tensor>> parts;  // output, weight, d term / d output
    Tensor* g = nullptr;
    Tensor grad;
    auto take = [&](const char* output, double weight) {
        if (with_gradients) parts.emplace_back(output, weight, grad);
    };
    if (with_gradients) g = &grad;
    const double resolution = scalar("resolution");
    r.terms["distogram"] =
        distogram_loss(out("distogram_logits"), in("pseudo_beta"), in("pseudo_beta_mask"), c.distogram, g);
    take("distogram_logits", c.distogram.weight);
    r.terms["experimentally_resolved"] = experimentally_resolved_loss(
        out("experimentally_resolved_logits"), in("atom37_atom_exists"), in("all_atom_mask"), resolution,
        c.experimentally_resolved, g);
    take("experimentally_resolved_logits", c.experimentally_resolved.weight);
    r.terms["masked_msa"] = masked_msa_loss(out("masked_msa_logits"), in("true_msa"), in("bert_mask"), c.masked_msa, g);
    take("masked_msa_logits", c.masked_msa.weight);
    r.terms["plddt_loss"] = plddt_loss(out("lddt_logits"), out("final_atom_positions"), in("all_atom_positions"),
                                       in("all_atom_mask"), resolution, c.plddt_loss, g);
    take("lddt_logits", c.plddt_loss.weight);
    if (outputs.count("tm_logits")) {
        r.terms["tm"] = tm_loss(out("tm_logits"), out("final_affine_tensor"), in("backbone_rigid_tensor"),
                                in("backbone_rigid_mask"), resolution, c.tm, g);
        take("tm_logits", c.tm.weight);
    }

    const LossConfig::Fape& f = c.fape;
    const double use_clamped = batch.count("use_clamped_fape") ? scalar("use_clamped_fape") : 1.0;
    const double clamped = backbone_fape(out("sm/frames"), in("backbone_rigid_tensor"), in("backbone_rigid_mask"),
                                         f.backbone_clamp_distance, f.backbone_loss_unit_distance, f.eps, g);
    take("sm/frames", f.weight * f.backbone_weight * use_clamped);
    const double unclamped = backbone_fape(out("sm/frames"), in("backbone_rigid_tensor"), in("backbone_rigid_mask"), 0.0,
                                           f.backbone_loss_unit_distance, f.eps, g);
    take("sm/frames", f.weight * f.backbone_weight * (1 - use_clamped));
    const double backbone = use_clamped * clamped + (1 - use_clamped) * unclamped;
    const Tensor& positions = out("sm/positions");
    AXF_CHECK(positions.dim() == 4 && positions.size(0) > 0, "AlphaFold loss: sm/positions %s, expected [L, N, 14, 3]",
              positions.desc().c_str());
    const int64_t last = positions.size(0) - 1;
    const RenamedGroundTruth renamed = compute_renamed_ground_truth(
        positions.select(0, last), in("atom14_gt_positions"), in("atom14_alt_gt_positions"), in("atom14_gt_exists"),
        in("atom14_alt_gt_exists"), in("atom14_atom_is_ambiguous"));
    const Tensor& sc_frames = out("sm/sidechain_frames");
    AXF_CHECK(sc_frames.dim() == 5 && sc_frames.size(0) == positions.size(0), "AlphaFold loss: sm/sidechain_frames %s "
              "for sm/positions %s", sc_frames.desc().c_str(), positions.desc().c_str());
    Tensor dframes, dpositions;
    const double sidechain = sidechain_fape(sc_frames.select(0, last), positions.select(0, last),
                                            in("rigidgroups_gt_frames"), in("rigidgroups_alt_gt_frames"),
                                            in("rigidgroups_gt_exists"), renamed, f.sidechain_clamp_distance,
                                            f.sidechain_length_scale, f.eps, with_gradients ? &dframes : nullptr,
                                            with_gradients ? &dpositions : nullptr);
    // The last layer's gradients, placed into the [L, ...] outputs.
    auto last_layer = [&](const Tensor& last_grad, const Tensor& like) {
        Tensor full = Tensor::zeros(like.shape(), DType::F64);
        full.select(0, last).copy_from(last_grad);
        return full;
    };
    if (with_gradients) {
        parts.emplace_back("sm/sidechain_frames", f.weight * f.sidechain_weight, last_layer(dframes, sc_frames));
        parts.emplace_back("sm/positions", f.weight * f.sidechain_weight, last_layer(dpositions, positions));
    }
    r.terms["fape"] = f.backbone_weight * backbone + f.sidechain_weight * sidechain;
    r.sub_terms["fape_backbone"] = backbone;
    r.sub_terms["fape_backbone_clamped"] = clamped;
    r.sub_terms["fape_backbone_unclamped"] = unclamped;
    r.sub_terms["fape_sidechain"] = sidechain;

    double chi_part = 0;
    Tensor dangles, dunnormalized;
    r.terms["supervised_chi"] = supervised_chi_loss(
        out("sm/angles"), out("sm/unnormalized_angles"), in("aatype"), in("seq_mask"), in("chi_mask"),
        in("chi_angles_sin_cos"), c.supervised_chi, &chi_part, with_gradients ? &dangles : nullptr,
        with_gradients ? &dunnormalized : nullptr);
    r.sub_terms["supervised_chi_chi_part"] = chi_part;
    if (with_gradients) {
        parts.emplace_back("sm/angles", c.supervised_chi.weight, dangles);
        parts.emplace_back("sm/unnormalized_angles", c.supervised_chi.weight, dunnormalized);
    }

    Tensor dviolation;
    const StructuralViolations v = find_structural_violations(
        positions.select(0, last), in("atom14_atom_exists"), in("residue_index"), in("aatype"),
        c.violation.violation_tolerance_factor, c.violation.clash_overlap_tolerance,
        with_gradients ? &dviolation : nullptr, c.violation.eps);
    if (with_gradients) parts.emplace_back("sm/positions", c.violation.weight, last_layer(dviolation, positions));
    double clash = 0;
    r.terms["violation"] = violation_loss(v, in("atom14_atom_exists"), c.violation.eps, &clash);
    r.sub_terms["violation_bonds_c_n_loss_mean"] = v.bonds_c_n_loss_mean;
    r.sub_terms["violation_angles_ca_c_n_loss_mean"] = v.angles_ca_c_n_loss_mean;
    r.sub_terms["violation_angles_c_n_ca_loss_mean"] = v.angles_c_n_ca_loss_mean;
    r.sub_terms["violation_clash"] = clash;

    const std::map<std::string, double> weights = {
        {"distogram", c.distogram.weight},   {"experimentally_resolved", c.experimentally_resolved.weight},
        {"fape", c.fape.weight},             {"masked_msa", c.masked_msa.weight},
        {"plddt_loss", c.plddt_loss.weight}, {"supervised_chi", c.supervised_chi.weight},
        {"tm", c.tm.weight},                 {"violation", c.violation.weight}};
    for (const auto& [name, value] : r.terms) r.unscaled_total += weights.at(name) * value;
    // AF2 scales by the square root of the (cropped) sequence length, computed in float32.
    const double n_res = static_cast<double>(in("aatype").numel());
    const float root = std::sqrt(static_cast<float>(std::min(scalar("seq_length"), n_res)));
    r.total = r.unscaled_total * static_cast<double>(root);
    // d total / d output: every output the loss reads, zero where no term has a gradient (the pLDDT and TM
    // targets, final_atom_positions and final_affine_tensor, are computed without one, as in AF2).
    if (with_gradients) {
        for (const char* name : {"distogram_logits", "masked_msa_logits", "experimentally_resolved_logits",
                                 "lddt_logits", "final_atom_positions", "final_affine_tensor", "sm/frames",
                                 "sm/sidechain_frames", "sm/positions", "sm/angles", "sm/unnormalized_angles"})
            r.gradients[name] = Tensor::zeros(out(name).shape(), DType::F64);
        if (outputs.count("tm_logits")) r.gradients["tm_logits"] = Tensor::zeros(out("tm_logits").shape(), DType::F64);
        for (const auto& [name, weight, part] : parts) {
            Tensor& dst = r.gradients.at(name);
            const double w = weight * static_cast<double>(root);
            const std::vector<double> src = host_float64(part);
            double* d = dst.data<double>();
            for (size_t k = 0; k < src.size(); ++k) d[k] += w * src[k];
        }
    }
    return r;
}

}  // namespace axfold
