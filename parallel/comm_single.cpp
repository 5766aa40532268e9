#include "parallel/comm.h"

namespace axfold {

namespace {

class DoneHandle final : public CommHandle {
public:
    void wait() override {}
};

class SingleComm final : public Comm {
public:
    int rank() const override { return 0; }
    int size() const override { return 1; }
    std::unique_ptr<CommHandle> all_reduce_sum(Tensor&) override { return std::make_unique<DoneHandle>(); }
    std::unique_ptr<CommHandle> all_gather(const Tensor& in, Tensor& out) override {
        AXF_CHECK(in.shape() == out.shape(), "all_gather on one rank: %s into %s", in.desc().c_str(),
                  out.desc().c_str());
        if (in.raw() != out.raw()) out.copy_from(in);
        return std::make_unique<DoneHandle>();
    }
    void barrier() override {}
};

}  // namespace

std::unique_ptr<Comm> make_single_comm() { return std::make_unique<SingleComm>(); }

}  // namespace axfold
