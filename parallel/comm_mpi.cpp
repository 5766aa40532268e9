// MPI communicator. Every collective is handed to one communication thread that issues the
// non-blocking MPI call (MPI_Ialltoall, MPI_Iallgather, ...) in program order, so all ranks post
// collectives in the same order, and then drives them with MPI_Test while the caller computes: OpenMPI
// progresses non-blocking collectives only inside MPI calls, so without this thread a collective started
// before a long GEMM would not move until the wait. The thread polls with a short sleep while no one
// waits (so it does not steal a core from compute on a machine with one core per rank) and spins while a
// caller is blocked in wait().
//
// Errors: the communicator returns MPI errors (MPI_ERRORS_RETURN); they become axfold::Error, thrown in the
// thread that waits for the collective.
#include "parallel/comm.h"

#include "kernels/device.h"

#ifdef AXFOLD_HAVE_MPI

#include <mpi.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace axfold {

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void mpi_fail(int rc, const char* what) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    throw Error(strfmt("MPI error in %s: %s", what, std::string(msg, static_cast<size_t>(len)).c_str()));
}

inline void mpi_check(int rc, const char* what) {
    if (rc != MPI_SUCCESS) mpi_fail(rc, what);
}

// The reduction datatype of a tensor (sums need the element type).
MPI_Datatype reduce_type(const Tensor& t, const char* what) {
    switch (t.dtype()) {
        case DType::F32: return MPI_FLOAT;
        case DType::F64: return MPI_DOUBLE;
        case DType::I32: return MPI_INT32_T;
        case DType::I64: return MPI_INT64_T;
        default: throw Error(strfmt("%s: dtype %s cannot be summed", what, dtype_name(t.dtype())));
    }
}

// Element count as an MPI int.
int mpi_count(int64_t n, const char* what) {
    AXF_CHECK(n >= 0 && n <= INT_MAX, "%s: %lld elements per rank exceed MPI's int count", what, (long long)n);
    return static_cast<int>(n);
}

std::atomic<int> live_comms{0};
bool we_initialised = false;
int thread_level = MPI_THREAD_SINGLE;  // what MPI_Init_thread provided (or MPI_Query_thread found)

struct Op {
    std::function<int(MPI_Request*)> start;  // issues the non-blocking call
    std::vector<Tensor> keep;                // keeps the buffers' storage alive while in flight
    const char* what = "";
    MPI_Request req = MPI_REQUEST_NULL;
    bool done = false;
    std::exception_ptr error;
    Clock::time_point t_start;
    double seconds = 0;
};

// A buffer's address for MPI: host memory, or an emulated device's (kernels/device.h: under emulation MPI
// stands in for NCCL). A GPU's memory is refused: DAP and the gradient's collectives on GPUs run over NCCL.
void* mpi_buffer(const Tensor& t, const char* op) {
    AXF_CHECK(t.device() == Device::CPU || device_emulated(),  // (takes_device_buffers)
              "%s: %s is GPU memory, which the MPI communicator does not take (use the NCCL one)", op,
              t.desc().c_str());
    const KernelAccess transfer;
    return t.raw();
}

class MpiComm;

class MpiHandle final : public CommHandle {
public:
    MpiHandle(MpiComm* c, std::shared_ptr<Op> op) : comm_(c), op_(std::move(op)) {}
    ~MpiHandle() override;
    void wait() override;

private:
    MpiComm* comm_;
    std::shared_ptr<Op> op_;
    bool waited_ = false;
};

class MpiComm final : public Comm {
public:
    MpiComm() : MpiComm(MPI_COMM_WORLD, true) {}

    // A duplicate of `parent` (dup), or `parent` itself, adopted (a communicator split() made).
    MpiComm(MPI_Comm parent, bool dup) {
        int inited = 0;
        MPI_Initialized(&inited);
        if (!inited) {
            int provided = 0;
            mpi_check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided), "MPI_Init_thread");
            thread_level = provided;
            we_initialised = true;
            AXF_CHECK(provided >= MPI_THREAD_SERIALIZED,
                      "this MPI library provides thread level %d; axfold's communication thread needs at least "
                      "MPI_THREAD_SERIALIZED (an OpenMPI built with thread support)",
                      provided);
        }
        ++live_comms;
        if (!we_initialised) MPI_Query_thread(&thread_level);
        if (dup)
            mpi_check(MPI_Comm_dup(parent, &comm_), "MPI_Comm_dup");
        else
            comm_ = parent;
        MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
        MPI_Comm_rank(comm_, &rank_);
        MPI_Comm_size(comm_, &size_);
        worker_ = std::thread([this] { run(); });
    }

    ~MpiComm() override {
        {
            std::lock_guard<std::mutex> lock(mu_);
            stop_ = true;
        }
        cv_.notify_all();
        if (worker_.joinable()) worker_.join();
        MPI_Comm_free(&comm_);
        if (--live_comms == 0 && we_initialised) {
            int finalized = 0;
            MPI_Finalized(&finalized);
            if (!finalized) MPI_Finalize();
        }
    }

    int rank() const override { return rank_; }
    int size() const override { return size_; }
    std::string backend() const override { return "mpi"; }
    bool takes_device_buffers() const override { return device_emulated(); }

    std::unique_ptr<CommHandle> all_to_all(const Tensor& in, const Tensor& out) override {
        check_blocks("all_to_all", in, out, 1, 1);
        const int n = mpi_count(static_cast<int64_t>(in.numel() * dtype_size(in.dtype())) / size_, "all_to_all");
        void* s = mpi_buffer(in, __func__);
        void* r = mpi_buffer(out, __func__);
        MPI_Comm c = comm_;
        count(CollectiveKind::AllToAll, in.numel() * dtype_size(in.dtype()) * (size_ - 1) / size_);
        return submit("all_to_all", {in, out},
                      [=](MPI_Request* q) { return MPI_Ialltoall(s, n, MPI_BYTE, r, n, MPI_BYTE, c, q); });
    }

    std::unique_ptr<CommHandle> all_gather(const Tensor& in, const Tensor& out) override {
        check_blocks("all_gather", in, out, 1, size_);
        const int n = mpi_count(static_cast<int64_t>(in.numel() * dtype_size(in.dtype())), "all_gather");
        void* s = mpi_buffer(in, __func__);
        void* r = mpi_buffer(out, __func__);
        MPI_Comm c = comm_;
        count(CollectiveKind::AllGather, in.numel() * dtype_size(in.dtype()) * (size_ - 1));
        return submit("all_gather", {in, out},
                      [=](MPI_Request* q) { return MPI_Iallgather(s, n, MPI_BYTE, r, n, MPI_BYTE, c, q); });
    }

    std::unique_ptr<CommHandle> reduce_scatter_sum(const Tensor& in, const Tensor& out) override {
        check_blocks("reduce_scatter_sum", out, in, 1, size_);
        MPI_Datatype t = reduce_type(in, "reduce_scatter_sum");
        const int n = mpi_count(out.numel(), "reduce_scatter_sum");
        void* s = mpi_buffer(in, __func__);
        void* r = mpi_buffer(out, __func__);
        MPI_Comm c = comm_;
        count(CollectiveKind::ReduceScatter, in.numel() * dtype_size(in.dtype()) * (size_ - 1) / size_);
        return submit("reduce_scatter_sum", {in, out},
                      [=](MPI_Request* q) { return MPI_Ireduce_scatter_block(s, r, n, t, MPI_SUM, c, q); });
    }

    std::unique_ptr<CommHandle> all_reduce_sum(const Tensor& t) override {
        AXF_CHECK(t.is_contiguous(), "all_reduce_sum: %s must be contiguous", t.desc().c_str());
        MPI_Datatype dt = reduce_type(t, "all_reduce_sum");
        const int n = mpi_count(t.numel(), "all_reduce_sum");
        void* p = mpi_buffer(t, "all_reduce_sum");
        MPI_Comm c = comm_;
        count(CollectiveKind::AllReduce, 2 * t.numel() * dtype_size(t.dtype()) * (size_ - 1) / size_);
        return submit("all_reduce_sum", {t},
                      [=](MPI_Request* q) { return MPI_Iallreduce(MPI_IN_PLACE, p, n, dt, MPI_SUM, c, q); });
    }

    std::unique_ptr<CommHandle> broadcast(const Tensor& t, int root) override {
        AXF_CHECK(t.is_contiguous(), "broadcast: %s must be contiguous", t.desc().c_str());
        AXF_CHECK(root >= 0 && root < size_, "broadcast from rank %d of %d", root, size_);
        const int n = mpi_count(static_cast<int64_t>(t.numel() * dtype_size(t.dtype())), "broadcast");
        void* p = mpi_buffer(t, "broadcast");
        MPI_Comm c = comm_;
        if (rank_ == root) count(CollectiveKind::Broadcast, t.numel() * dtype_size(t.dtype()));
        return submit("broadcast", {t}, [=](MPI_Request* q) { return MPI_Ibcast(p, n, MPI_BYTE, root, c, q); });
    }

    std::unique_ptr<Comm> split(int color, int key) override {
        AXF_CHECK(color >= 0, "split: color %d, expected >= 0", color);
        // Two communicators mean two communication threads calling MPI at once.
        AXF_CHECK(thread_level == MPI_THREAD_MULTIPLE,
                  "split: this MPI library provides thread level %d, and a second communicator needs "
                  "MPI_THREAD_MULTIPLE (an OpenMPI built with thread support)",
                  thread_level);
        // MPI_Comm_split runs on the communication thread, in order with the collectives started before it,
        // so every rank issues them in the same order whatever is still in flight.
        MPI_Comm c = comm_, part = MPI_COMM_NULL;
        submit("split", {}, [c, color, key, &part](MPI_Request* q) {
            *q = MPI_REQUEST_NULL;
            return MPI_Comm_split(c, color, key, &part);
        })->wait();
        return std::make_unique<MpiComm>(part, false);  // (which sets MPI_ERRORS_RETURN on it)
    }

    void barrier() override {
        MPI_Comm c = comm_;
        submit("barrier", {}, [=](MPI_Request* q) { return MPI_Ibarrier(c, q); })->wait();
    }

    [[noreturn]] void abort(int code) override {
        std::fflush(stdout);
        std::fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, code == 0 ? 1 : code);
        std::_Exit(code == 0 ? 1 : code);
    }

    // Blocks until op completes (called by MpiHandle::wait).
    void wait_for(Op& op) {
        auto t0 = Clock::now();
        std::unique_lock<std::mutex> lock(mu_);
        if (!op.done) {
            ++waiters_;
            cv_.notify_all();  // the worker spins while someone waits
            done_cv_.wait(lock, [&] { return op.done; });
            --waiters_;
        }
        stats_.exposed_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
        stats_.in_flight_seconds += op.seconds;
        if (op.error) std::rethrow_exception(op.error);
    }

private:
    void check_blocks(const char* what, const Tensor& small, const Tensor& big, int64_t small_mult, int64_t big_mult) {
        AXF_CHECK(small.is_contiguous() && big.is_contiguous() && small.device() == big.device() &&
                      small.dtype() == big.dtype(),
                  "%s: %s and %s must be contiguous tensors of one dtype and device", what, small.desc().c_str(),
                  big.desc().c_str());
        AXF_CHECK(small.dim() >= 1 && small.dim() == big.dim() && small.size(0) * big_mult == big.size(0) * small_mult &&
                      (small.size(0) * big_mult) % size_ == 0,
                  "%s on %d ranks: %s and %s do not match (dim 0 must split into %d blocks)", what, size_,
                  small.desc().c_str(), big.desc().c_str(), size_);
        for (int d = 1; d < small.dim(); ++d)
            AXF_CHECK(small.size(d) == big.size(d), "%s: %s and %s differ in dim %d", what, small.desc().c_str(),
                      big.desc().c_str(), d);
    }

    void count(CollectiveKind k, uint64_t bytes) {
        stats_.bytes[static_cast<int>(k)] += bytes;
        stats_.calls[static_cast<int>(k)] += 1;
    }

    std::unique_ptr<CommHandle> submit(const char* what, std::vector<Tensor> keep,
                                       std::function<int(MPI_Request*)> start) {
        auto op = std::make_shared<Op>();
        op->what = what;
        op->keep = std::move(keep);
        op->start = std::move(start);
        {
            std::lock_guard<std::mutex> lock(mu_);
            queue_.push_back(op);
        }
        cv_.notify_all();
        return std::make_unique<MpiHandle>(this, op);
    }

    // The communication thread.
    void run() {
        std::vector<std::shared_ptr<Op>> active;
        int idle_polls = 0;
        for (;;) {
            std::deque<std::shared_ptr<Op>> fresh;
            bool spin = false;
            {
                std::unique_lock<std::mutex> lock(mu_);
                if (active.empty()) cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
                if (stop_ && queue_.empty() && active.empty()) return;
                fresh.swap(queue_);
                spin = waiters_ > 0;
            }
            for (auto& op : fresh) {
                op->t_start = Clock::now();
                int rc = op->start(&op->req);
                if (rc != MPI_SUCCESS) {
                    try {
                        mpi_fail(rc, op->what);
                    } catch (...) {
                        op->error = std::current_exception();
                    }
                    finish(*op);
                    continue;
                }
                active.push_back(op);
            }
            bool progressed = false;
            for (size_t i = 0; i < active.size();) {
                int flag = 0;
                int rc = MPI_Test(&active[i]->req, &flag, MPI_STATUS_IGNORE);
                if (rc != MPI_SUCCESS) {
                    try {
                        mpi_fail(rc, active[i]->what);
                    } catch (...) {
                        active[i]->error = std::current_exception();
                    }
                    flag = 1;
                }
                if (flag) {
                    finish(*active[i]);
                    active.erase(active.begin() + static_cast<long>(i));
                    progressed = true;
                } else {
                    // MPI requires collectives to complete in the order they were started on some
                    // transports; testing the oldest first is enough to progress all of them.
                    ++i;
                }
            }
            if (!active.empty() && !spin && !progressed) {
                // Nobody waits: poll gently (5..100 us) so compute keeps the core.
                idle_polls = std::min(idle_polls + 1, 20);
                std::this_thread::sleep_for(std::chrono::microseconds(5 * idle_polls));
            } else {
                idle_polls = 0;
            }
        }
    }

    void finish(Op& op) {
        op.seconds = std::chrono::duration<double>(Clock::now() - op.t_start).count();
        {
            std::lock_guard<std::mutex> lock(mu_);
            op.done = true;
            op.keep.clear();
        }
        done_cv_.notify_all();
    }

    MPI_Comm comm_ = MPI_COMM_NULL;
    int rank_ = 0, size_ = 1;
    std::thread worker_;
    std::mutex mu_;
    std::condition_variable cv_, done_cv_;
    std::deque<std::shared_ptr<Op>> queue_;
    int waiters_ = 0;
    bool stop_ = false;
};

void MpiHandle::wait() {
    if (waited_) return;
    waited_ = true;
    comm_->wait_for(*op_);
}

MpiHandle::~MpiHandle() {
    // A handle dropped during unwinding (an error elsewhere) must not block: the job is about to end
    // (report_fatal_error aborts it), and the op's shared storage stays alive in the worker.
    if (!waited_ && std::uncaught_exceptions() == 0) {
        try {
            wait();
        } catch (...) {
        }
    }
}

}  // namespace

bool mpi_available() { return true; }
std::unique_ptr<Comm> make_mpi_comm() { return std::make_unique<MpiComm>(); }

}  // namespace axfold

#else  // !AXFOLD_HAVE_MPI

namespace axfold {
bool mpi_available() { return false; }
std::unique_ptr<Comm> make_mpi_comm() {
    throw Error("this axfold was built without MPI (configure with AXFOLD_MPI=ON and libopenmpi-dev installed)");
}
}  // namespace axfold

#endif
