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

}  // namespace axfold
