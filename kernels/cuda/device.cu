// Device memory for Tensor storage and workspace chunks, the CUDA/cuBLAS error helpers and the cuBLAS
// handle.
//
// Allocation goes through the device's default stream-ordered memory pool (cudaMallocAsync on stream 0)
// with its release threshold raised to "never", so freed blocks stay cached in the pool: once a run has
// reached its high-water mark, later Tensor::empty / Workspace chunks on the device are served from the
// pool without cudaMalloc or an implicit device synchronisation. Devices without memory-pool support
// fall back to plain cudaMalloc/cudaFree.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "kernels/cuda/cuda_check.h"
#include "kernels/device.h"

namespace axfold {

void cuda_fail(cudaError_t e, const char* what, const char* file, int line) {
    throw_error(file, line, strfmt("CUDA error in %s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e)));
}

void cublas_fail(cublasStatus_t s, const char* what, const char* file, int line) {
    throw_error(file, line, strfmt("cuBLAS error in %s: %s (%s)", what, cublasGetStatusString(s),
                                   cublasGetStatusName(s)));
}

namespace {

// Decided once per process, on the device current at first allocation.
bool use_pool() {
    static const bool pool = [] {
        int dev = 0, supported = 0;
        cudaMemPool_t mp = nullptr;
        uint64_t threshold = UINT64_MAX;
        const bool ok = cudaGetDevice(&dev) == cudaSuccess &&
                        cudaDeviceGetAttribute(&supported, cudaDevAttrMemoryPoolsSupported, dev) == cudaSuccess &&
                        supported != 0 && cudaDeviceGetDefaultMemPool(&mp, dev) == cudaSuccess &&
                        cudaMemPoolSetAttribute(mp, cudaMemPoolAttrReleaseThreshold, &threshold) == cudaSuccess;
        (void)cudaGetLastError();  // a failed probe must not surface later as a kernel launch error
        return ok;
    }();
    return pool;
}

// Bytes held by live allocations (benchmarks report the high-water mark).
struct Usage {
    std::mutex mu;
    std::unordered_map<void*, size_t> sizes;
    size_t in_use = 0, peak = 0;
};
Usage& usage() {
    static Usage* u = new Usage;  // never destroyed: frees may come from static destructors
    return *u;
}

}  // namespace

void* device_alloc(size_t bytes) {
    void* p = nullptr;
    if (use_pool())
        AXF_CUDA(cudaMallocAsync(&p, bytes, 0));
    else
        AXF_CUDA(cudaMalloc(&p, bytes));
    Usage& u = usage();
    std::lock_guard<std::mutex> lock(u.mu);
    u.sizes[p] = bytes;
    u.in_use += bytes;
    u.peak = std::max(u.peak, u.in_use);
    return p;
}

size_t device_bytes_in_use() {
    std::lock_guard<std::mutex> lock(usage().mu);
    return usage().in_use;
}

size_t device_peak_bytes() {
    std::lock_guard<std::mutex> lock(usage().mu);
    return usage().peak;
}

void device_synchronize() {
    if (!device_emulated()) AXF_CUDA(cudaDeviceSynchronize());
}

void device_memory_info(size_t* free_bytes, size_t* total_bytes) { AXF_CUDA(cudaMemGetInfo(free_bytes, total_bytes)); }

// Called from destructors: never throws. A failure here (e.g. at process exit, after the context is
// gone) is cleared so that it is not reported by the next, unrelated launch check.
void device_free(void* ptr) {
    if (!ptr) return;
    {
        Usage& u = usage();
        std::lock_guard<std::mutex> lock(u.mu);
        auto it = u.sizes.find(ptr);
        if (it != u.sizes.end()) {
            u.in_use -= it->second;
            u.sizes.erase(it);
        }
    }
    cudaError_t e = use_pool() ? cudaFreeAsync(ptr, 0) : cudaFree(ptr);
    if (e != cudaSuccess) (void)cudaGetLastError();
}

void device_memset(void* ptr, int value, size_t bytes) {
    if (bytes) AXF_CUDA(cudaMemsetAsync(ptr, value, bytes, 0));
}

namespace {
cudaMemcpyKind memcpy_kind(Device dst, Device src) {
    if (dst == Device::CUDA) return src == Device::CUDA ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice;
    return src == Device::CUDA ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost;
}
}  // namespace

void device_copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes) {
    if (bytes == 0) return;
    AXF_CUDA(cudaMemcpy(dst, src, bytes, memcpy_kind(dst_dev, src_dev)));
}

bool cuda_built() { return true; }

void device_release_cached() {
    if (!use_pool() || !cuda_available()) return;
    AXF_CUDA(cudaDeviceSynchronize());  // frees queued in stream order have completed
    int dev = 0;
    cudaMemPool_t mp = nullptr;
    AXF_CUDA(cudaGetDevice(&dev));
    AXF_CUDA(cudaDeviceGetDefaultMemPool(&mp, dev));
    AXF_CUDA(cudaMemPoolTrimTo(mp, 0));
}

void* host_alloc_pinned(size_t bytes, bool* pinned) {
    void* p = nullptr;
    *pinned = cuda_available() && cudaHostAlloc(&p, std::max<size_t>(bytes, 1), cudaHostAllocDefault) == cudaSuccess;
    if (*pinned) return p;
    (void)cudaGetLastError();
    p = std::aligned_alloc(64, (std::max<size_t>(bytes, 1) + 63) / 64 * 64);
    AXF_CHECK(p, "out of host memory allocating %zu bytes", bytes);
    return p;
}

void host_free_pinned(void* ptr, bool pinned) {
    if (!ptr) return;
    if (!pinned) {
        std::free(ptr);
        return;
    }
    if (cudaFreeHost(ptr) != cudaSuccess) (void)cudaGetLastError();  // a destructor: never throws, leaves no error behind
}

namespace {
// The side stream of copy_async: non-blocking, so it does not synchronise with the legacy default stream.
cudaStream_t copy_stream() {
    static const cudaStream_t s = [] {
        cudaStream_t st = nullptr;
        AXF_CUDA(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
        return st;
    }();
    return s;
}
}  // namespace

CopyEvent::~CopyEvent() {
    if (!event_) return;
    const cudaError_t a = cudaEventSynchronize(static_cast<cudaEvent_t>(event_));
    const cudaError_t b = cudaEventDestroy(static_cast<cudaEvent_t>(event_));
    if (a != cudaSuccess || b != cudaSuccess) (void)cudaGetLastError();  // never throws, leaves no error behind
}

CopyEvent& CopyEvent::operator=(CopyEvent&& o) noexcept {
    if (this != &o) {
        CopyEvent old(event_);  // waits for and destroys the previous event
        event_ = o.event_;
        o.event_ = nullptr;
    }
    return *this;
}

void CopyEvent::order_default_stream() const {
    if (event_) AXF_CUDA(cudaStreamWaitEvent(0, static_cast<cudaEvent_t>(event_), 0));
}

void CopyEvent::wait() const {
    if (event_) AXF_CUDA(cudaEventSynchronize(static_cast<cudaEvent_t>(event_)));
}

CopyEvent copy_async(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes) {
    if ((dst_dev == Device::CPU && src_dev == Device::CPU) || device_emulated()) {
        if (bytes) std::memcpy(dst, src, bytes);
        return CopyEvent();
    }
    cudaEvent_t queued = nullptr, done = nullptr;
    AXF_CUDA(cudaEventCreateWithFlags(&queued, cudaEventDisableTiming));
    AXF_CUDA(cudaEventRecord(queued, 0));  // everything on the default stream so far (the source's producers)
    AXF_CUDA(cudaStreamWaitEvent(copy_stream(), queued, 0));
    AXF_CUDA(cudaEventDestroy(queued));  // released once the wait is satisfied
    AXF_CUDA(cudaMemcpyAsync(dst, src, bytes, memcpy_kind(dst_dev, src_dev), copy_stream()));
    AXF_CUDA(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
    AXF_CUDA(cudaEventRecord(done, copy_stream()));
    return CopyEvent(done);
}

int cuda_device_count() {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return n;
}

bool cuda_available() { return cuda_device_count() > 0; }

namespace cuda {

cublasHandle_t cublas_handle() {
    // 32 MiB: NVIDIA's recommended cuBLAS workspace for Hopper (more than enough for Ampere); the device plans
    // count it (evoformer/memory_plan.h: kCublasWorkspaceBytes).
    constexpr size_t kWorkspaceBytes = size_t(32) << 20;
    static const cublasHandle_t handle = [] {
        cublasHandle_t h = nullptr;
        AXF_CUBLAS(cublasCreate(&h));
        AXF_CUBLAS(cublasSetStream(h, 0));
        AXF_CUBLAS(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
        AXF_CUBLAS(cublasSetWorkspace(h, device_alloc(kWorkspaceBytes), kWorkspaceBytes));
        return h;
    }();
    return handle;
}

int multiprocessor_count() {
    int dev = 0, n = 0;
    AXF_CUDA(cudaGetDevice(&dev));
    AXF_CUDA(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
    return n;
}

}  // namespace cuda

}  // namespace axfold
