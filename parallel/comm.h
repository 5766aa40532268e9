// Comm: the communicator interface behind DAP. One rank, MPI and NCCL implement it; every collective
// can be started asynchronously (start returns a handle, wait completes it) so communication overlaps
// with independent compute. Single-rank runs take the same code path as DAP runs.
#pragma once

#include <memory>

#include "kernels/tensor.h"

namespace axfold {

class CommHandle {
public:
    virtual ~CommHandle() = default;
    virtual void wait() = 0;
};

class Comm {
public:
    virtual ~Comm() = default;
    virtual int rank() const = 0;
    virtual int size() const = 0;
    // Sum over ranks, in place.
    virtual std::unique_ptr<CommHandle> all_reduce_sum(Tensor& t) = 0;
    // out = concat over ranks of `in` along dim 0 (out.size(0) == size() * in.size(0)).
    virtual std::unique_ptr<CommHandle> all_gather(const Tensor& in, Tensor& out) = 0;
    virtual void barrier() = 0;
};

// The single-rank communicator: collectives are copies and complete immediately.
std::unique_ptr<Comm> make_single_comm();

}  // namespace axfold
