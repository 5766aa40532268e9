#include "parallel/dap.h"

#include "kernels/ops.h"

namespace axfold {

namespace {

void check_reshard(Comm& comm, const Tensor& rows, const Tensor& cols, const Tensor& scratch, const char* what) {
    const int64_t P = comm.size();
    AXF_CHECK(rows.dim() >= 2 && cols.dim() == rows.dim() && rows.size(1) % P == 0 &&
                  cols.size(0) == P * rows.size(0) && cols.size(1) * P == rows.size(1),
              "%s on %lld ranks: rows %s and cols %s do not match", what, (long long)P, rows.desc().c_str(),
              cols.desc().c_str());
    for (int d = 2; d < rows.dim(); ++d)
        AXF_CHECK(rows.size(d) == cols.size(d), "%s: rows %s and cols %s differ in dim %d", what, rows.desc().c_str(),
                  cols.desc().c_str(), d);
    AXF_CHECK(scratch.is_contiguous() && scratch.numel() == rows.numel() && cols.is_contiguous() &&
                  scratch.dtype() == rows.dtype(),
              "%s: scratch %s for %s (and cols %s must be contiguous)", what, scratch.desc().c_str(),
              rows.desc().c_str(), cols.desc().c_str());
}

// scratch viewed [P, a, b, ...] (block q: rows' columns of rank q).
Tensor blocks_view(const Tensor& scratch, const Tensor& cols, int64_t P) {
    Shape s = cols.shape();
    s[0] /= P;
    s.insert(s.begin(), P);
    return scratch.view(s);
}

}  // namespace

DapPending dap_rows_to_cols_start(Comm& comm, const Tensor& rows, const Tensor& cols, const Tensor& send) {
    check_reshard(comm, rows, cols, send, "dap_rows_to_cols");
    const int64_t P = comm.size(), b = cols.size(1);
    const Tensor blocks = blocks_view(send, cols, P);
    for (int64_t q = 0; q < P; ++q) copy(blocks.select(0, q), rows.slice(1, q * b, (q + 1) * b));
    return DapPending(comm.all_to_all(send.view(cols.shape()), cols), nullptr);
}

DapPending dap_cols_to_rows_start(Comm& comm, const Tensor& cols, const Tensor& rows, const Tensor& recv) {
    check_reshard(comm, rows, cols, recv, "dap_cols_to_rows");
    const int64_t P = comm.size(), b = cols.size(1);
    const Tensor blocks = blocks_view(recv, cols, P);
    auto h = comm.all_to_all(cols, recv.view(cols.shape()));
    return DapPending(std::move(h), [blocks, rows, P, b] {
        for (int64_t q = 0; q < P; ++q) copy(rows.slice(1, q * b, (q + 1) * b), blocks.select(0, q));
    });
}

void dap_rows_to_cols(Comm& comm, const Tensor& rows, const Tensor& cols) {
    Tensor send = Tensor::empty(rows.shape(), rows.dtype(), rows.device());
    dap_rows_to_cols_start(comm, rows, cols, send).wait();
}

void dap_cols_to_rows(Comm& comm, const Tensor& cols, const Tensor& rows) {
    Tensor recv = Tensor::empty(cols.shape(), cols.dtype(), cols.device());
    dap_cols_to_rows_start(comm, cols, rows, recv).wait();
}

void dap_rows_to_cols_backward(Comm& comm, const Tensor& grad_cols, const Tensor& grad_rows) {
    dap_cols_to_rows(comm, grad_cols, grad_rows);
}

void dap_cols_to_rows_backward(Comm& comm, const Tensor& grad_rows, const Tensor& grad_cols) {
    dap_rows_to_cols(comm, grad_rows, grad_cols);
}

void dap_gather(Comm& comm, const Tensor& local, const Tensor& full) { comm.all_gather(local, full)->wait(); }

void dap_gather_backward(Comm& comm, const Tensor& grad_full, const Tensor& grad_local) {
    comm.reduce_scatter_sum(grad_full, grad_local)->wait();
}

void dap_shard(Comm& comm, const Tensor& full, const Tensor& local) {
    const int64_t a = local.size(0);
    AXF_CHECK(full.size(0) == a * comm.size(), "dap_shard: %s into blocks of %s", full.desc().c_str(),
              local.desc().c_str());
    local.copy_from(full.slice(0, a * comm.rank(), a * (comm.rank() + 1)));
}

void dap_shard_backward(Comm& comm, const Tensor& grad_local, const Tensor& grad_full) {
    comm.all_gather(grad_local, grad_full)->wait();
}

void dap_zero_tail(const Tensor& t, int64_t from0, int64_t from1) {
    auto zero = [](const Tensor& v) {
        if (v.numel() == 0) return;
        Shape ones(v.dim(), 1);
        copy(v, Tensor::zeros(ones, v.dtype(), v.device()).expand(v.shape()));
    };
    if (from0 < t.size(0)) zero(t.slice(0, from0, t.size(0)));
    if (t.dim() > 1 && from1 < t.size(1)) zero(t.slice(1, from1, t.size(1)));
}

}  // namespace axfold
