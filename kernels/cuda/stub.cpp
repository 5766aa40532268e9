// Linked when axfold is built without CUDA: every device entry point says so plainly.
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "kernels/cuda/ops_cuda.h"
#include "kernels/device.h"

namespace axfold {

namespace {
[[noreturn]] void no_cuda() { AXF_FAIL("axfold was built without CUDA (reconfigure with AXFOLD_CUDA=ON on a machine with nvcc)"); }
}  // namespace

void* device_alloc(size_t) { no_cuda(); }
void device_free(void*) {}
void device_memset(void*, int, size_t) { no_cuda(); }
void device_copy(void*, Device, const void*, Device, size_t) { no_cuda(); }
bool cuda_available() { return false; }
bool cuda_built() { return false; }
int cuda_device_count() { return 0; }
void device_synchronize() {}
void device_release_cached() {}
void device_memory_info(size_t*, size_t*) { no_cuda(); }
size_t device_bytes_in_use() { return 0; }
size_t device_peak_bytes() { return 0; }

void* host_alloc_pinned(size_t bytes, bool* pinned) {
    *pinned = false;
    void* p = std::aligned_alloc(64, (std::max<size_t>(bytes, 1) + 63) / 64 * 64);
    AXF_CHECK(p, "out of host memory allocating %zu bytes", bytes);
    return p;
}
void host_free_pinned(void* ptr, bool) { std::free(ptr); }
CopyEvent::~CopyEvent() = default;
CopyEvent& CopyEvent::operator=(CopyEvent&& o) noexcept {
    event_ = o.event_;
    o.event_ = nullptr;
    return *this;
}
void CopyEvent::order_default_stream() const {}
void CopyEvent::wait() const {}
CopyEvent copy_async(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes) {
    if ((dst_dev != Device::CPU || src_dev != Device::CPU) && !device_emulated()) no_cuda();
    if (bytes) std::memcpy(dst, src, bytes);
    return CopyEvent();
}

namespace cuda {
void matmul(const Tensor&, const Tensor&, const Tensor&, float, float) { no_cuda(); }
void layer_norm(const Tensor&, const Tensor&, const Tensor&, float, const Tensor&) { no_cuda(); }
void softmax(const Tensor&, float, const Tensor&, const Tensor&, float) { no_cuda(); }
void softmax_backward(const Tensor&, const Tensor&, float, const Tensor&) { no_cuda(); }
void sigmoid_mul_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&) { no_cuda(); }
void relu_backward(const Tensor&, const Tensor&, const Tensor&) { no_cuda(); }
void layer_norm_backward(const Tensor&, const Tensor&, float, const Tensor&, const Tensor&, const Tensor&,
                         const Tensor&) {
    no_cuda();
}
void attention(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, float, float, const Tensor&,
               Workspace&) {
    no_cuda();
}
void attention_fused(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, float, float,
                     const Tensor&) {
    no_cuda();
}
void unary(const Tensor&, Unary, float) { no_cuda(); }
void binary(const Tensor&, const Tensor&, Binary, float) { no_cuda(); }
void copy(const Tensor&, const Tensor&) { no_cuda(); }
void add_to_bf16(const Tensor&, const Tensor&, float) { no_cuda(); }
void convert(const Tensor&, const Tensor&) { no_cuda(); }
void attention_flash_tc(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, float, float,
                        const Tensor&) {
    no_cuda();
}
void gather_rows(const Tensor&, const Tensor&, const Tensor&, bool) { no_cuda(); }
void apply_frames(const Tensor&, const Tensor&, const Tensor&, const Tensor&, bool, const Tensor&, float) {
    no_cuda();
}
void weighted_sq_distances(const Tensor&, const Tensor&, const Tensor&, const Tensor&) { no_cuda(); }
void add_transpose(const Tensor&) { no_cuda(); }
void adam_update(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const AdamCoefficients&) { no_cuda(); }
void moving_average_update(const Tensor&, const Tensor&, double) { no_cuda(); }
double sum_of_squares(const Tensor&) { no_cuda(); }
}  // namespace cuda

}  // namespace axfold
