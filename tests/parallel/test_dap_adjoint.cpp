// The backward rule of every DAP collective, checked by central finite differences in float64 on tiny
// shapes: L = sum over ranks of <w_rank, f(x)_rank> with fresh random w; the analytic gradient from the
// adjoint collective must match (L(x + h e) - L(x - h e)) / 2h for every element e of every rank's input.
#include <gtest/gtest.h>

#include <functional>
#include <random>

#include "parallel/dap.h"

using namespace axfold;

namespace {

Tensor randn64(const Shape& s, std::mt19937& rng) {
    Tensor t = Tensor::empty(s, DType::F64);
    std::normal_distribution<double> d;
    for (int64_t i = 0; i < t.numel(); ++i) t.data<double>()[i] = d(rng);
    return t;
}

double global_dot(Comm& c, const Tensor& a, const Tensor& b) {
    double s = 0;
    for (int64_t i = 0; i < a.numel(); ++i) s += a.data<double>()[i] * b.data<double>()[i];
    Tensor d = Tensor::empty({1}, DType::F64);
    d.data<double>()[0] = s;
    c.all_reduce_sum(d)->wait();
    return d.data<double>()[0];
}

// f maps x (this rank's input) to y (this rank's output). `replicated`: x is one variable held by every
// rank (perturbed on all ranks at once); otherwise each rank's x is its own variable.
void check_adjoint(const Shape& xs, const Shape& ys, bool replicated,
                   const std::function<void(const Tensor&, const Tensor&)>& f,
                   const std::function<void(const Tensor&, const Tensor&)>& backward, const char* what) {
    Comm& c = world_comm();
    std::mt19937 rng_shared(11), rng_rank(100 + c.rank());
    Tensor x = randn64(xs, replicated ? rng_shared : rng_rank);
    Tensor w = randn64(ys, rng_rank);
    Tensor y = Tensor::empty(ys, DType::F64), g = Tensor::empty(xs, DType::F64);
    backward(w, g);  // dL/dx on this rank
    const double h = 1e-3;
    int bad = 0;
    for (int owner = 0; owner < (replicated ? 1 : c.size()); ++owner) {
        for (int64_t e = 0; e < x.numel(); ++e) {
            const bool mine = replicated || owner == c.rank();
            double& xe = x.data<double>()[e];
            const double x0 = xe;
            if (mine) xe = x0 + h;
            f(x, y);
            const double lp = global_dot(c, w, y);
            if (mine) xe = x0 - h;
            f(x, y);
            const double lm = global_dot(c, w, y);
            if (mine) xe = x0;
            const double fd = (lp - lm) / (2 * h);
            Tensor an = Tensor::empty({1}, DType::F64);
            an.data<double>()[0] = (replicated || owner == c.rank()) ? g.data<double>()[e] : 0.0;
            if (!replicated) c.all_reduce_sum(an)->wait();  // the owner's analytic value
            const double a = an.data<double>()[0];
            if (std::fabs(a - fd) > 1e-8 * (1 + std::fabs(fd)) && bad++ < 5)
                ADD_FAILURE() << what << ": element " << e << " of rank " << owner << ": adjoint " << a
                              << " vs finite difference " << fd;
        }
    }
    EXPECT_EQ(bad, 0) << what;
}

}  // namespace

TEST(DapAdjoint, AllGatherIsReduceScatter) {
    Comm& c = world_comm();
    const int64_t P = c.size();
    check_adjoint({2, 3}, {P * 2, 3}, false, [&](const Tensor& x, const Tensor& y) { dap_gather(c, x, y); },
                  [&](const Tensor& gy, const Tensor& gx) { dap_gather_backward(c, gy, gx); }, "all_gather");
}

TEST(DapAdjoint, ShardIsAllGather) {
    Comm& c = world_comm();
    const int64_t P = c.size();
    check_adjoint({P * 2, 3}, {2, 3}, true, [&](const Tensor& x, const Tensor& y) { dap_shard(c, x, y); },
                  [&](const Tensor& gy, const Tensor& gx) { dap_shard_backward(c, gy, gx); }, "shard");
}

TEST(DapAdjoint, RowsToColsIsColsToRows) {
    Comm& c = world_comm();
    const int64_t P = c.size();
    check_adjoint({2, P * 2, 2}, {P * 2, 2, 2}, false, [&](const Tensor& x, const Tensor& y) { dap_rows_to_cols(c, x, y); },
                  [&](const Tensor& gy, const Tensor& gx) { dap_rows_to_cols_backward(c, gy, gx); }, "rows_to_cols");
}

TEST(DapAdjoint, ColsToRowsIsRowsToCols) {
    Comm& c = world_comm();
    const int64_t P = c.size();
    check_adjoint({P * 1, 3, 2}, {1, P * 3, 2}, false, [&](const Tensor& x, const Tensor& y) { dap_cols_to_rows(c, x, y); },
                  [&](const Tensor& gy, const Tensor& gx) { dap_cols_to_rows_backward(c, gy, gx); }, "cols_to_rows");
}

TEST(DapAdjoint, ReshardRoundTripIsIdentity) {
    Comm& c = world_comm();
    const int64_t P = c.size();
    std::mt19937 rng(5 + c.rank());
    Tensor x = randn64({3, P * 2, 4}, rng), y = Tensor::empty({P * 3, 2, 4}, DType::F64),
           back = Tensor::empty({3, P * 2, 4}, DType::F64);
    dap_rows_to_cols(c, x, y);
    dap_cols_to_rows(c, y, back);
    for (int64_t i = 0; i < x.numel(); ++i) ASSERT_EQ(x.data<double>()[i], back.data<double>()[i]);
}
