// Comm: the communicator interface behind DAP (Dynamic Axial Parallelism). One rank, MPI and NCCL
// implement it; every collective is started asynchronously (it returns a handle, `wait` completes it) so
// communication overlaps with independent compute. Single-rank runs take the same code path as DAP runs.
//
// Conventions: tensors are contiguous, of one dtype (f32, f64, or any dtype for the pure data movements)
// and of the communicator's device (CPU for single/MPI, CUDA for NCCL). "Blocks along dim 0": a tensor of
// P * a rows is P blocks of a rows, block q belonging to rank q. Input and output buffers must stay alive
// and untouched until the handle has been waited for.
//
// Progress: the MPI communicator runs every collective on a communication thread
// (MPI_THREAD_MULTIPLE) that starts it with the non-blocking MPI call and drives it with MPI_Test, so a
// collective advances while the calling thread computes; `stats()` records how long each one was in
// flight and how long the caller was left waiting for it (the exposed communication time).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "kernels/tensor.h"

namespace axfold {

class CommHandle {
public:
    virtual ~CommHandle() = default;
    // Blocks until the collective has completed; rethrows its error, if any. Idempotent.
    virtual void wait() = 0;
};

enum class CollectiveKind : int { AllToAll = 0, AllGather, ReduceScatter, AllReduce, Broadcast, Count };
const char* collective_name(CollectiveKind k);  // "all_to_all", ...

// Per-communicator counters; reset with reset(). bytes: what this rank sends under the usual algorithms
// (all-to-all: (P-1)/P of its buffer; ring all-gather: P-1 shards; reduce-scatter: (P-1)/P of its input;
// all-reduce: twice that; broadcast: the root's buffer), the figures scripts/dap_model.py uses.
struct CommStats {
    std::array<uint64_t, static_cast<int>(CollectiveKind::Count)> bytes{}, calls{};
    double in_flight_seconds = 0;  // summed over collectives: start to completion (communication thread)
    double exposed_seconds = 0;    // time callers spent blocked in wait()
    void reset() { *this = CommStats{}; }
    uint64_t total_bytes() const;
};

class Comm {
public:
    virtual ~Comm() = default;
    virtual int rank() const = 0;
    virtual int size() const = 0;
    virtual std::string backend() const = 0;  // "single", "mpi", "nccl"
    // Whether the collectives take GPU tensors: NCCL's; MPI's only under device emulation (kernels/device.h),
    // where it stands in for NCCL; one rank's copies take any device.
    virtual bool takes_device_buffers() const = 0;

    // in, out [P * a, ...]: block q of `in` goes to rank q; block q of `out` comes from rank q.
    virtual std::unique_ptr<CommHandle> all_to_all(const Tensor& in, const Tensor& out) = 0;
    // out [P * a, ...] = concat over ranks of in [a, ...] along dim 0.
    virtual std::unique_ptr<CommHandle> all_gather(const Tensor& in, const Tensor& out) = 0;
    // out [a, ...] = sum over ranks r of block rank() of r's in [P * a, ...] (the adjoint of all_gather).
    virtual std::unique_ptr<CommHandle> reduce_scatter_sum(const Tensor& in, const Tensor& out) = 0;
    // Sum over ranks, in place.
    virtual std::unique_ptr<CommHandle> all_reduce_sum(const Tensor& t) = 0;
    // t = root's t on every rank.
    virtual std::unique_ptr<CommHandle> broadcast(const Tensor& t, int root) = 0;
    virtual void barrier() = 0;
    // A communicator of the ranks that pass the same `color`, ranked by `key` (then by rank): MPI_Comm_split.
    // Collective over this communicator, called with nothing in flight on it. Data parallel x DAP splits the
    // world into DAP groups and data-parallel groups this way. The NCCL communicator does not split: build
    // one per group with make_nccl_comm over the split MPI communicator.
    virtual std::unique_ptr<Comm> split(int color, int key) = 0;
    // Ends every rank of the job (MPI_Abort); on one rank, std::abort after flushing.
    [[noreturn]] virtual void abort(int code) = 0;

    CommStats& stats() { return stats_; }
    const CommStats& stats() const { return stats_; }

protected:
    CommStats stats_;
};

// The single-rank communicator: collectives are copies and complete immediately.
std::unique_ptr<Comm> make_single_comm();

// Whether this build has the MPI communicator, and whether the process was started by an MPI launcher
// (mpirun/mpiexec, srun with PMI/PMIx: OMPI_COMM_WORLD_SIZE, PMI_SIZE, PMIX_RANK, ...; or AXFOLD_MPI=1).
bool mpi_available();
bool launched_by_mpi_launcher();
// MPI_COMM_WORLD (initialises MPI with MPI_THREAD_MULTIPLE; finalises it when the last MPI Comm dies).
// Throws when built without MPI.
std::unique_ptr<Comm> make_mpi_comm();
// NCCL over CUDA tensors on `cuda_device`, bootstrapped (unique id broadcast) over `bootstrap`; one rank
// per GPU. Throws when built without NCCL.
bool nccl_available();
std::unique_ptr<Comm> make_nccl_comm(Comm& bootstrap, int cuda_device);

// The process-wide communicator of the apps: MPI when started by a launcher and built with MPI, else the
// single rank. Created on first use; finalize_world_comm() ends it (call before returning from main).
Comm& world_comm();
bool world_comm_created();
void finalize_world_comm();

// Top-level error path of a possibly multi-rank program: prints "axfold [rank r/P] <what>: error: <msg>"
// on stderr and, when more than one rank runs, ends the whole job (MPI_Abort) so no rank is left waiting
// in a collective. Returns (single rank) so main can return `code`.
void report_fatal_error(const char* what, const char* message, int code);
// The multi-rank half of it: with more than one rank prints the message with the rank and ends the job;
// with one rank (or no world communicator yet) does nothing, so the caller prints in its own format.
void end_job_if_parallel(const char* what, const char* message, int code);

}  // namespace axfold
