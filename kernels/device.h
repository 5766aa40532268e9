// Device memory primitives behind Tensor. Implemented in kernels/cuda/ when built with CUDA, otherwise
// by a stub that throws "built without CUDA".
#pragma once

#include <cstddef>

#include "kernels/tensor.h"

namespace axfold {

void* device_alloc(size_t bytes);
void device_free(void* ptr);
void device_memset(void* ptr, int value, size_t bytes);
void device_copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes);
bool cuda_available();  // built with CUDA and a device is present
bool cuda_built();      // built with the CUDA backend (a device may still be absent)
int cuda_device_count();  // visible CUDA devices (0 without CUDA)
void device_synchronize();  // waits for all queued device work (benchmarks' timers); no-op without CUDA
// Synchronises, then returns the memory pool's cached unused blocks to the driver (cudaMemPoolTrimTo): called
// between phases whose allocations differ in size, so one phase's freed blocks do not sit beside the next
// phase's (the pool otherwise keeps them: its release threshold is "never"). No-op without CUDA.
void device_release_cached();
// Free and total bytes of the current device (cudaMemGetInfo; memory cached in axfold's pool counts as
// used); throws without CUDA.
void device_memory_info(size_t* free_bytes, size_t* total_bytes);
// Bytes of device memory held by axfold's live allocations, and their high-water mark (0 without CUDA).
size_t device_bytes_in_use();
size_t device_peak_bytes();

// Page-locked host memory (cudaHostAlloc), which asynchronous copies need; *pinned says whether it is (plain
// aligned host memory without CUDA or without a device). Free with host_free_pinned(ptr, *pinned).
void* host_alloc_pinned(size_t bytes, bool* pinned);
void host_free_pinned(void* ptr, bool pinned);

// Completion of one asynchronous copy (copy_async). Destroying it waits for the copy if it is still running.
class CopyEvent {
public:
    CopyEvent() = default;
    explicit CopyEvent(void* event) : event_(event) {}
    ~CopyEvent();
    CopyEvent(CopyEvent&& o) noexcept : event_(o.event_) { o.event_ = nullptr; }
    CopyEvent& operator=(CopyEvent&& o) noexcept;
    CopyEvent(const CopyEvent&) = delete;
    CopyEvent& operator=(const CopyEvent&) = delete;
    // Work queued on the default stream from now on runs after the copy; the host does not block.
    void order_default_stream() const;
    // Blocks the host until the copy is done.
    void wait() const;

private:
    void* event_ = nullptr;  // cudaEvent_t; null: nothing pending
};
// A copy between device memory and pinned host memory on the copy stream, a side stream of its own, started after
// everything queued on the default stream so far: it overlaps the compute queued after it. The source must not be
// written, nor the destination read, until the returned event is ordered or waited for. Host to host: done at once.
CopyEvent copy_async(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes);

// Device emulation, for tests on machines without a GPU. While a DeviceEmulation lives, Device::CUDA tensors
// (and workspaces) are allocated in host memory, transfers are host copies, and every op on them runs its CPU
// kernel; host code outside the ops that reaches a device tensor's elements (Tensor::data) throws, naming the
// tensor. A device code path that passes under emulation keeps to ops and explicit transfers, as it must on a
// GPU; what emulation cannot show is the CUDA kernels themselves (the GPU checks compare those with the CPU
// ops). Process-wide and not nested; device tensors made under it must be gone before it ends.
class DeviceEmulation {
public:
    DeviceEmulation();
    ~DeviceEmulation();
    DeviceEmulation(const DeviceEmulation&) = delete;
    DeviceEmulation& operator=(const DeviceEmulation&) = delete;
};
bool device_emulated();
// An op's CPU kernel at work (kernels/ops.cpp): emulated device tensors may be touched while one lives.
class KernelAccess {
public:
    KernelAccess();
    ~KernelAccess();
    KernelAccess(const KernelAccess&) = delete;
    KernelAccess& operator=(const KernelAccess&) = delete;
};

}  // namespace axfold
