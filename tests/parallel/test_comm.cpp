// Every collective of the world communicator (single rank, or MPI under mpiexec -n 2 / -n 3), blocking
// and started together then waited for in another order, on f32 and f64.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "parallel/comm.h"

using namespace axfold;

namespace {

// A value that names (source rank, destination block, element).
double tag(int src, int64_t block, int64_t i) { return src * 1000.0 + block * 100.0 + i; }

template <class T> void fill_tagged(const Tensor& t, int src, int64_t blocks) {
    const int64_t per = t.numel() / blocks;
    for (int64_t b = 0; b < blocks; ++b)
        for (int64_t i = 0; i < per; ++i) t.data<T>()[b * per + i] = static_cast<T>(tag(src, b, i));
}

template <class T> void check_collectives(DType dt) {
    Comm& c = world_comm();
    const int P = c.size(), r = c.rank();
    const int64_t a = 3, w = 5;  // block rows, row width
    // all_to_all: block q of rank r's input reaches rank q as its block r.
    Tensor in = Tensor::empty({P * a, w}, dt), out = Tensor::empty({P * a, w}, dt);
    fill_tagged<T>(in, r, P);
    c.all_to_all(in, out)->wait();
    for (int q = 0; q < P; ++q)
        for (int64_t i = 0; i < a * w; ++i)
            ASSERT_EQ(out.data<T>()[q * a * w + i], static_cast<T>(tag(q, r, i))) << "all_to_all from rank " << q;
    // all_gather
    Tensor mine = Tensor::empty({a, w}, dt), all = Tensor::empty({P * a, w}, dt);
    fill_tagged<T>(mine, r, 1);
    c.all_gather(mine, all)->wait();
    for (int q = 0; q < P; ++q)
        for (int64_t i = 0; i < a * w; ++i) ASSERT_EQ(all.data<T>()[q * a * w + i], static_cast<T>(tag(q, 0, i)));
    // reduce_scatter_sum: block r summed over ranks.
    Tensor rs = Tensor::empty({a, w}, dt);
    c.reduce_scatter_sum(in, rs)->wait();
    for (int64_t i = 0; i < a * w; ++i) {
        double want = 0;
        for (int q = 0; q < P; ++q) want += tag(q, r, i);
        ASSERT_EQ(rs.data<T>()[i], static_cast<T>(want));
    }
    // all_reduce_sum
    Tensor ar = Tensor::empty({a, w}, dt);
    fill_tagged<T>(ar, r, 1);
    c.all_reduce_sum(ar)->wait();
    for (int64_t i = 0; i < a * w; ++i) {
        double want = 0;
        for (int q = 0; q < P; ++q) want += tag(q, 0, i);
        ASSERT_EQ(ar.data<T>()[i], static_cast<T>(want));
    }
    // broadcast from the last rank
    Tensor bc = Tensor::empty({a, w}, dt);
    fill_tagged<T>(bc, r, 1);
    c.broadcast(bc, P - 1)->wait();
    for (int64_t i = 0; i < a * w; ++i) ASSERT_EQ(bc.data<T>()[i], static_cast<T>(tag(P - 1, 0, i)));
}

}  // namespace

TEST(Comm, CollectivesF32) { check_collectives<float>(DType::F32); }
TEST(Comm, CollectivesF64) { check_collectives<double>(DType::F64); }

TEST(Comm, StartedTogetherWaitedInAnyOrder) {
    Comm& c = world_comm();
    const int P = c.size(), r = c.rank();
    std::vector<Tensor> ins, outs;
    std::vector<std::unique_ptr<CommHandle>> hs;
    for (int k = 0; k < 6; ++k) {
        ins.push_back(Tensor::full({P * 4, 7}, static_cast<float>(r * 10 + k)));
        outs.push_back(Tensor::empty({P * 4, 7}));
        hs.push_back(k % 2 ? c.all_to_all(ins.back(), outs.back()) : c.all_gather(ins.back().slice(0, 0, 4), outs.back()));
    }
    for (int k = 5; k >= 0; --k) {
        hs[k]->wait();
        hs[k]->wait();  // idempotent
        for (int q = 0; q < P; ++q) EXPECT_EQ(outs[k].f32()[q * 4 * 7], static_cast<float>(q * 10 + k));
    }
    c.barrier();
}

TEST(Comm, NonBlockingProgressesWhileComputing) {
    // A 16 MiB all-to-all started before 0.3 s of compute that makes no MPI call: with the communication
    // thread it completes during the compute, and the wait is short. Printed, not asserted (timing).
    Comm& c = world_comm();
    const int P = c.size();
    Tensor in = Tensor::full({P * 1024, 1024}, 1.f), out = Tensor::empty({P * 1024, 1024});
    c.barrier();
    c.stats().reset();
    auto t0 = std::chrono::steady_clock::now();
    auto h = c.all_to_all(in, out);
    volatile double acc = 0;
    while (std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(300)) acc = acc + 1e-9;
    h->wait();
    EXPECT_EQ(out.f32()[out.numel() - 1], 1.f);
    if (c.rank() == 0)
        std::printf("all_to_all of %.1f MiB/rank during 0.3 s of compute: in flight %.4f s, exposed (wait) %.6f s\n",
                    in.numel() * 4.0 / 1048576.0, c.stats().in_flight_seconds, c.stats().exposed_seconds);
    c.stats().reset();
}

TEST(Comm, ShapeErrorsAreReported) {
    Comm& c = world_comm();
    const int P = c.size();
    Tensor in = Tensor::empty({P * 2 + 1, 3}), out = Tensor::empty({P * 2 + 1, 3});
    if (P > 1) {
        EXPECT_THROW(c.all_to_all(in, out), Error);
    }
    EXPECT_THROW(c.all_gather(Tensor::empty({2, 3}), Tensor::empty({P * 2, 4})), Error);
}

// split: the ranks of one color form a communicator ordered by key; its collectives see only them.
TEST(Comm, SplitIntoGroups) {
    Comm& c = world_comm();
    const int P = c.size(), r = c.rank();
    const int color = r % 2, key = -r;  // reversed order within a group
    std::unique_ptr<Comm> g = c.split(color, key);
    int members = 0, below = 0;  // ranks of this color, and those with a larger rank (a smaller key)
    for (int q = 0; q < P; ++q)
        if (q % 2 == color) {
            ++members;
            if (q > r) ++below;
        }
    EXPECT_EQ(g->size(), members);
    EXPECT_EQ(g->rank(), below);
    Tensor t = Tensor::full({2}, static_cast<float>(r + 1));
    g->all_reduce_sum(t)->wait();
    float want = 0;
    for (int q = color; q < P; q += 2) want += static_cast<float>(q + 1);
    EXPECT_EQ(t.f32()[0], want);
    EXPECT_EQ(t.f32()[1], want);
    // The parent still works after the split.
    Tensor u = Tensor::full({1}, 1.f);
    c.all_reduce_sum(u)->wait();
    EXPECT_EQ(u.f32()[0], static_cast<float>(P));
}
