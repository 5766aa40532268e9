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
// Free and total bytes of the current device (cudaMemGetInfo; memory cached in axfold's pool counts as
// used); throws without CUDA.
void device_memory_info(size_t* free_bytes, size_t* total_bytes);
// Bytes of device memory held by axfold's live allocations, and their high-water mark (0 without CUDA).
size_t device_bytes_in_use();
size_t device_peak_bytes();

}  // namespace axfold
