// NCCL communicator for CUDA tensors (DAP with the trunk on GPUs: gpu_dap_comm, model/run.h). Collectives run
// on a communication stream that first waits for the work already queued on the legacy default stream (where
// kernels/ launches), so a started collective overlaps later kernels; wait() synchronises its event.
// The ncclUniqueId travels over a bootstrap communicator (the MPI world; one rank in the one-GPU test).
// Grouped send/recv implement all-to-all.
//
// LIMITATION: compiled wherever CUDA and NCCL are found, but never run on a GPU: DAP over NCCL needs two GPUs
// (the lent machines have one), and the one-rank test on one GPU (tests/parallel/test_nccl_gpu.cpp, gpu-check's
// `nccl` step) was written after the last GPU run (docs/GPU.md, "Still unverified").
#include "parallel/comm.h"

#ifdef AXFOLD_HAVE_NCCL

#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <cstdio>
#include <cstring>

namespace axfold {

namespace {

[[noreturn]] void nccl_fail(ncclResult_t r, const char* what) {
    throw Error(strfmt("NCCL error in %s: %s", what, ncclGetErrorString(r)));
}
inline void nccl_check(ncclResult_t r, const char* what) {
    if (r != ncclSuccess) nccl_fail(r, what);
}
[[noreturn]] void cuda_fail(cudaError_t e, const char* what) {
    throw Error(strfmt("CUDA error in %s: %s", what, cudaGetErrorString(e)));
}
inline void cuda_check(cudaError_t e, const char* what) {
    if (e != cudaSuccess) cuda_fail(e, what);
}

ncclDataType_t nccl_type(DType t, const char* what) {
    switch (t) {
        case DType::F32: return ncclFloat32;
        case DType::F64: return ncclFloat64;
        case DType::I32: return ncclInt32;
        case DType::I64: return ncclInt64;
        case DType::U8: return ncclUint8;
        case DType::BF16: break;  // activations move as bytes; nothing sums them
    }
    nccl_fail(ncclInvalidArgument, what);
}

class NcclHandle final : public CommHandle {
public:
    NcclHandle(cudaEvent_t ev, CommStats* stats) : ev_(ev), stats_(stats) {}
    ~NcclHandle() override {
        if (!waited_) cudaEventSynchronize(ev_);
        cudaEventDestroy(ev_);
    }
    void wait() override {
        if (waited_) return;
        waited_ = true;
        auto t0 = std::chrono::steady_clock::now();
        cuda_check(cudaEventSynchronize(ev_), "cudaEventSynchronize");
        stats_->exposed_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }

private:
    cudaEvent_t ev_;
    CommStats* stats_;
    bool waited_ = false;
};

class NcclComm final : public Comm {
public:
    NcclComm(Comm& bootstrap, int device) : rank_(bootstrap.rank()), size_(bootstrap.size()) {
        cuda_check(cudaSetDevice(device), "cudaSetDevice");
        ncclUniqueId id;
        Tensor idt = Tensor::empty({static_cast<int64_t>(sizeof(id))}, DType::U8);
        if (rank_ == 0) {
            nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId");
            std::memcpy(idt.raw(), &id, sizeof(id));
        }
        bootstrap.broadcast(idt, 0)->wait();
        std::memcpy(&id, idt.raw(), sizeof(id));
        nccl_check(ncclCommInitRank(&comm_, size_, id, rank_), "ncclCommInitRank");
        cuda_check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    }
    ~NcclComm() override {
        cudaStreamSynchronize(stream_);
        ncclCommDestroy(comm_);
        cudaStreamDestroy(stream_);
    }
    int rank() const override { return rank_; }
    int size() const override { return size_; }
    std::string backend() const override { return "nccl"; }
    bool takes_device_buffers() const override { return true; }

    std::unique_ptr<CommHandle> all_to_all(const Tensor& in, const Tensor& out) override {
        check(in, out, "all_to_all");
        const size_t block = in.numel() * dtype_size(in.dtype()) / size_;
        begin();
        nccl_check(ncclGroupStart(), "ncclGroupStart");
        for (int q = 0; q < size_; ++q) {
            nccl_check(ncclSend(static_cast<char*>(in.raw()) + q * block, block, ncclUint8, q, comm_, stream_), "ncclSend");
            nccl_check(ncclRecv(static_cast<char*>(out.raw()) + q * block, block, ncclUint8, q, comm_, stream_), "ncclRecv");
        }
        nccl_check(ncclGroupEnd(), "ncclGroupEnd");
        count(CollectiveKind::AllToAll, block * (size_ - 1));
        return end();
    }
    std::unique_ptr<CommHandle> all_gather(const Tensor& in, const Tensor& out) override {
        check(in, out, "all_gather");
        begin();
        nccl_check(ncclAllGather(in.raw(), out.raw(), in.numel() * dtype_size(in.dtype()), ncclUint8, comm_, stream_),
                   "ncclAllGather");
        count(CollectiveKind::AllGather, in.numel() * dtype_size(in.dtype()) * (size_ - 1));
        return end();
    }
    std::unique_ptr<CommHandle> reduce_scatter_sum(const Tensor& in, const Tensor& out) override {
        check(in, out, "reduce_scatter_sum");
        begin();
        nccl_check(ncclReduceScatter(in.raw(), out.raw(), out.numel(), nccl_type(in.dtype(), "reduce_scatter_sum"),
                                     ncclSum, comm_, stream_),
                   "ncclReduceScatter");
        count(CollectiveKind::ReduceScatter, in.numel() * dtype_size(in.dtype()) * (size_ - 1) / size_);
        return end();
    }
    std::unique_ptr<CommHandle> all_reduce_sum(const Tensor& t) override {
        check(t, t, "all_reduce_sum");
        begin();
        nccl_check(ncclAllReduce(t.raw(), t.raw(), t.numel(), nccl_type(t.dtype(), "all_reduce_sum"), ncclSum, comm_,
                                 stream_),
                   "ncclAllReduce");
        count(CollectiveKind::AllReduce, 2 * t.numel() * dtype_size(t.dtype()) * (size_ - 1) / size_);
        return end();
    }
    std::unique_ptr<CommHandle> broadcast(const Tensor& t, int root) override {
        check(t, t, "broadcast");
        begin();
        nccl_check(ncclBroadcast(t.raw(), t.raw(), t.numel() * dtype_size(t.dtype()), ncclUint8, root, comm_, stream_),
                   "ncclBroadcast");
        if (rank_ == root) count(CollectiveKind::Broadcast, t.numel() * dtype_size(t.dtype()));
        return end();
    }
    std::unique_ptr<Comm> split(int, int) override {
        throw Error("the NCCL communicator does not split: split the MPI communicator it was bootstrapped from "
                    "and build one NCCL communicator per group (make_nccl_comm)");
    }
    void barrier() override {
        Tensor one = Tensor::zeros({1}).to(Device::CUDA);
        all_reduce_sum(one)->wait();
    }
    [[noreturn]] void abort(int code) override {
        ncclCommAbort(comm_);
        std::fflush(stderr);
        std::_Exit(code == 0 ? 1 : code);
    }

private:
    void check(const Tensor& a, const Tensor& b, const char* what) {
        AXF_CHECK(a.device() == Device::CUDA && b.device() == Device::CUDA && a.is_contiguous() && b.is_contiguous() &&
                      a.dtype() == b.dtype(),
                  "%s: %s and %s must be contiguous CUDA tensors of one dtype", what, a.desc().c_str(), b.desc().c_str());
    }
    void begin() {
        cudaEvent_t ready;
        cuda_check(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming), "cudaEventCreate");
        cuda_check(cudaEventRecord(ready, cudaStreamLegacy), "cudaEventRecord");
        cuda_check(cudaStreamWaitEvent(stream_, ready, 0), "cudaStreamWaitEvent");
        cudaEventDestroy(ready);
    }
    std::unique_ptr<CommHandle> end() {
        cudaEvent_t done;
        cuda_check(cudaEventCreateWithFlags(&done, cudaEventDisableTiming), "cudaEventCreate");
        cuda_check(cudaEventRecord(done, stream_), "cudaEventRecord");
        return std::make_unique<NcclHandle>(done, &stats_);
    }
    void count(CollectiveKind k, uint64_t bytes) {
        stats_.bytes[static_cast<int>(k)] += bytes;
        stats_.calls[static_cast<int>(k)] += 1;
    }

    int rank_, size_;
    ncclComm_t comm_ = nullptr;
    cudaStream_t stream_ = nullptr;
};

}  // namespace

bool nccl_available() { return true; }
std::unique_ptr<Comm> make_nccl_comm(Comm& bootstrap, int cuda_device) {
    return std::make_unique<NcclComm>(bootstrap, cuda_device);
}

}  // namespace axfold

#else

namespace axfold {
bool nccl_available() { return false; }
std::unique_ptr<Comm> make_nccl_comm(Comm&, int) {
    throw Error("this axfold was built without NCCL (needs the CUDA toolkit and NCCL at configure time)");
}
}  // namespace axfold

#endif
