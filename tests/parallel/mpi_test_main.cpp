// GoogleTest main for tests that run on every rank of an MPI job (or alone): all ranks run every test in
// the same order, and the job fails when any rank fails.
#include <gtest/gtest.h>

#include "parallel/comm.h"

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    axfold::Comm& comm = axfold::world_comm();
    // Every rank prints its own report (a failure may be seen by one rank only).
    const int rc = RUN_ALL_TESTS();
    axfold::Tensor failed = axfold::Tensor::full({1}, rc != 0 ? 1.f : 0.f);
    comm.all_reduce_sum(failed)->wait();
    if (rc != 0) std::fprintf(stderr, "rank %d of %d: tests failed\n", comm.rank(), comm.size());
    const bool any = failed.f32()[0] > 0;
    axfold::finalize_world_comm();
    return any ? 1 : 0;
}
