// A job in which one rank fails: `throw` (bad input seen by the last rank only: it throws before the
// collective the others wait in, and the top-level handler ends the job) or `kill` (the last rank dies by
// SIGKILL; the launcher ends the others). Run by expect_job_ends.sh, which checks that the job ends, with
// a message, within a bounded time.
#include <csignal>
#include <cstdio>
#include <cstring>

#include "parallel/comm.h"

using namespace axfold;

int main(int argc, char** argv) {
    const char* mode = argc > 1 ? argv[1] : "throw";
    try {
        Comm& c = world_comm();
        Tensor t = Tensor::full({1024}, 1.f);
        c.barrier();
        if (c.rank() == c.size() - 1) {
            if (std::strcmp(mode, "kill") == 0) std::raise(SIGKILL);
            AXF_CHECK(false, "bad input seen by rank %d only (test)", c.rank());
        }
        c.all_reduce_sum(t)->wait();  // never completes: the last rank does not join
        c.barrier();
        std::fprintf(stderr, "dap_failure: the job went on after a failed rank\n");
        finalize_world_comm();
        return 0;
    } catch (const Error& e) {
        report_fatal_error("dap_failure", e.what(), 3);
        return 3;
    }
}
