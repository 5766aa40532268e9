// The process-wide communicator of the apps and the top-level fatal-error path.
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "parallel/comm.h"

namespace axfold {

namespace {
std::unique_ptr<Comm>& world_slot() {
    static std::unique_ptr<Comm> c;
    return c;
}
std::mutex world_mutex;
}  // namespace

bool launched_by_mpi_launcher() {
    if (const char* f = std::getenv("AXFOLD_MPI")) return std::string(f) == "1";
    for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK", "MV2_COMM_WORLD_SIZE",
                          "MPI_LOCALNRANKS"})
        if (std::getenv(v)) return true;
    return false;
}

Comm& world_comm() {
    std::lock_guard<std::mutex> lock(world_mutex);
    auto& c = world_slot();
    if (!c) {
        if (launched_by_mpi_launcher()) {
            AXF_CHECK(mpi_available(),
                      "started by an MPI launcher, but this axfold was built without MPI (configure with "
                      "AXFOLD_MPI=ON and libopenmpi-dev installed), or unset AXFOLD_MPI");
            c = make_mpi_comm();
        } else {
            c = make_single_comm();
        }
    }
    return *c;
}

bool world_comm_created() { return world_slot() != nullptr; }

void finalize_world_comm() {
    std::lock_guard<std::mutex> lock(world_mutex);
    world_slot().reset();
}

void end_job_if_parallel(const char* what, const char* message, int code) {
    Comm* c = world_slot().get();
    if (c && c->size() > 1) {
        std::fprintf(stderr, "axfold [rank %d/%d] %s: error: %s\naxfold [rank %d/%d]: ending every rank of the job\n",
                     c->rank(), c->size(), what, message, c->rank(), c->size());
        c->abort(code == 0 ? 1 : code);
    }
}

void report_fatal_error(const char* what, const char* message, int code) {
    end_job_if_parallel(what, message, code);
    std::fprintf(stderr, "axfold %s: error: %s\n", what, message);
}

}  // namespace axfold
