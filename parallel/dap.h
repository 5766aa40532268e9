// Dynamic Axial Parallelism building blocks (after FastFold, Cheng et al. 2022): how an axis of n
// elements is padded and split over P ranks, the re-sharding of a 3-D activation between "rows sharded"
// and "columns sharded" by one all-to-all, and the backward (adjoint) rule of every collective DAP uses.
//
// Layout: an axis of n elements is padded to n_pad = P * ceil(n / P); rank p holds [p * local, (p+1) * local)
// of it, of which `real` elements (possibly 0) are < n. Padding is zero and masked; modules run on the
// real elements only.
//
// Adjoints (the training rules, which the DAP backward of evoformer/evoformer_dap.h follows):
//   shard (take this rank's block)      <->  all-gather
//   all-gather                          <->  reduce-scatter (sum): every rank consumed the gathered tensor
//                                            (FastFold's DAP only splits the gradient here, which drops the
//                                            other ranks' contributions)
//   rows->cols all-to-all               <->  cols->rows all-to-all (the inverse permutation)
#pragma once

#include <functional>
#include <memory>

#include "parallel/comm.h"

namespace axfold {

struct DapAxis {
    int64_t n = 0, n_pad = 0, local = 0, begin = 0, real = 0;
    DapAxis() = default;
    DapAxis(int64_t n_, int ranks, int rank) {
        n = n_;
        local = (n + ranks - 1) / ranks;
        n_pad = local * ranks;
        begin = local * rank;
        real = std::max<int64_t>(0, std::min<int64_t>(local, n - begin));
    }
    // Real elements of rank q's block.
    int64_t real_of(int q) const { return std::max<int64_t>(0, std::min<int64_t>(local, n - local * q)); }
};

// A started re-sharding or gather: wait() completes the collective and any unpacking after it.
class DapPending {
public:
    DapPending() = default;
    DapPending(std::unique_ptr<CommHandle> h, std::function<void()> finish)
        : handle_(std::move(h)), finish_(std::move(finish)) {}
    DapPending(DapPending&&) = default;
    DapPending& operator=(DapPending&&) = default;
    bool active() const { return handle_ != nullptr; }
    void wait() {
        if (!handle_) return;
        handle_->wait();
        handle_.reset();
        if (finish_) finish_();
        finish_ = nullptr;
    }

private:
    std::unique_ptr<CommHandle> handle_;
    std::function<void()> finish_;
};

// rows [a, P * b, C] (this rank's rows, every column) -> cols [P * a, b, C] (every row, this rank's
// columns). `send` is a contiguous scratch of rows' size; it and rows must stay untouched until wait().
DapPending dap_rows_to_cols_start(Comm& comm, const Tensor& rows, const Tensor& cols, const Tensor& send);
// cols [P * a, b, C] -> rows [a, P * b, C]; `recv` is a contiguous scratch of cols' size, unpacked into
// rows at wait().
DapPending dap_cols_to_rows_start(Comm& comm, const Tensor& cols, const Tensor& rows, const Tensor& recv);

// Synchronous forms and their adjoints: the adjoint of rows_to_cols maps a gradient with respect to cols
// to the gradient with respect to rows (an all-to-all the other way), and conversely.
void dap_rows_to_cols(Comm& comm, const Tensor& rows, const Tensor& cols);
void dap_cols_to_rows(Comm& comm, const Tensor& cols, const Tensor& rows);
void dap_rows_to_cols_backward(Comm& comm, const Tensor& grad_cols, const Tensor& grad_rows);
void dap_cols_to_rows_backward(Comm& comm, const Tensor& grad_rows, const Tensor& grad_cols);

// Gather along dim 0: local [a, ...] -> full [P * a, ...]; its adjoint sums every rank's gradient of the
// full tensor and keeps this rank's block.
void dap_gather(Comm& comm, const Tensor& local, const Tensor& full);
void dap_gather_backward(Comm& comm, const Tensor& grad_full, const Tensor& grad_local);
// Shard along dim 0: full [P * a, ...] (replicated) -> this rank's block; its adjoint all-gathers.
void dap_shard(Comm& comm, const Tensor& full, const Tensor& local);
void dap_shard_backward(Comm& comm, const Tensor& grad_local, const Tensor& grad_full);

// Zeroes t[from0:, ...] and t[:, from1:, ...] (the padding of a 2-D or 3-D activation; any strides).
void dap_zero_tail(const Tensor& t, int64_t from0, int64_t from1);

}  // namespace axfold
