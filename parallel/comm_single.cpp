#include <cstdio>
#include <cstdlib>

#include "parallel/comm.h"

namespace axfold {

const char* collective_name(CollectiveKind k) {
    switch (k) {
        case CollectiveKind::AllToAll: return "all_to_all";
        case CollectiveKind::AllGather: return "all_gather";
        case CollectiveKind::ReduceScatter: return "reduce_scatter";
        case CollectiveKind::AllReduce: return "all_reduce";
        case CollectiveKind::Broadcast: return "broadcast";
        default: return "?";
    }
}

uint64_t CommStats::total_bytes() const {
    uint64_t s = 0;
    for (uint64_t b : bytes) s += b;
    return s;
}

namespace {

class DoneHandle final : public CommHandle {
public:
    void wait() override {}
};

void check_pair(const char* what, const Tensor& in, const Tensor& out) {
    AXF_CHECK(in.shape() == out.shape() && in.dtype() == out.dtype(), "%s on one rank: %s into %s", what,
              in.desc().c_str(), out.desc().c_str());
}

class SingleComm final : public Comm {
public:
    int rank() const override { return 0; }
    int size() const override { return 1; }
    std::string backend() const override { return "single"; }
    bool takes_device_buffers() const override { return true; }
    std::unique_ptr<CommHandle> all_to_all(const Tensor& in, const Tensor& out) override {
        return copy_op("all_to_all", in, out);
    }
    std::unique_ptr<CommHandle> all_gather(const Tensor& in, const Tensor& out) override {
        return copy_op("all_gather", in, out);
    }
    std::unique_ptr<CommHandle> reduce_scatter_sum(const Tensor& in, const Tensor& out) override {
        return copy_op("reduce_scatter_sum", in, out);
    }
    std::unique_ptr<CommHandle> all_reduce_sum(const Tensor&) override { return std::make_unique<DoneHandle>(); }
    std::unique_ptr<CommHandle> broadcast(const Tensor&, int root) override {
        AXF_CHECK(root == 0, "broadcast from rank %d on a single-rank communicator", root);
        return std::make_unique<DoneHandle>();
    }
    void barrier() override {}
    std::unique_ptr<Comm> split(int, int) override { return make_single_comm(); }
    [[noreturn]] void abort(int code) override {
        std::fflush(stdout);
        std::fflush(stderr);
        std::_Exit(code == 0 ? 1 : code);
    }

private:
    std::unique_ptr<CommHandle> copy_op(const char* what, const Tensor& in, const Tensor& out) {
        check_pair(what, in, out);
        if (in.raw() != out.raw()) out.copy_from(in);
        return std::make_unique<DoneHandle>();
    }
};

}  // namespace

std::unique_ptr<Comm> make_single_comm() { return std::make_unique<SingleComm>(); }

}  // namespace axfold
