// Workspace: a bump arena for temporaries. Modules take a mark before their work and release it after,
// so one block's scratch is reused by the next and nothing is allocated inside hot loops once the arena
// has grown to the high-water mark of a run.
#pragma once

#include <cstddef>
#include <vector>

#include "kernels/tensor.h"

namespace axfold {

class Workspace {
public:
    explicit Workspace(Device device = Device::CPU) : device_(device) {}
    Workspace(const Workspace&) = delete;
    Workspace& operator=(const Workspace&) = delete;

    struct Mark {
        size_t chunk, offset;
    };
    Mark mark() const { return {current_, offset_}; }
    void release(Mark m);

    // Uninitialised tensor valid until the enclosing mark is released.
    Tensor alloc(const Shape& shape, DType dtype = DType::F32);
    Tensor zeros(const Shape& shape);

    // Grows the arena to at least `bytes` in one block (the planner's predicted peak), so later
    // allocations neither grow it nor fragment it. Call with nothing allocated.
    void reserve(size_t bytes);
    // Returns the arena's memory to the system (nothing may be allocated). Pages a phase touched otherwise
    // stay resident through every later phase; callers trim between phases whose peaks the planner adds
    // separately (trunk, structure module, heads). The next allocation takes one block of the reserved
    // size again.
    void trim();

    size_t capacity_bytes() const;
    size_t high_water_bytes() const { return high_water_; }
    Device device() const { return device_; }

private:
    struct Chunk {
        Tensor mem;  // owning u8 tensor
        size_t bytes;
    };
    Device device_;
    std::vector<Chunk> chunks_;
    size_t current_ = 0, offset_ = 0, in_use_ = 0, high_water_ = 0;
    size_t reserved_ = 0;  // the largest reserve() asked for
};

// RAII mark/release.
class WorkspaceScope {
public:
    explicit WorkspaceScope(Workspace& ws) : ws_(ws), mark_(ws.mark()) {}
    ~WorkspaceScope() { ws_.release(mark_); }
    WorkspaceScope(const WorkspaceScope&) = delete;
    WorkspaceScope& operator=(const WorkspaceScope&) = delete;

private:
    Workspace& ws_;
    Workspace::Mark mark_;
};

}  // namespace axfold
