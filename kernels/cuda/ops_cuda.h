// CUDA implementations of kernels/ops.h. Built from the .cu files in this folder when AXFOLD_CUDA is on;
// otherwise stub.cpp provides versions that throw "built without CUDA".
#pragma once

#include "kernels/ops.h"

namespace axfold::cuda {

void layer_norm(const Tensor& x, const Tensor& scale, const Tensor& offset, float eps, const Tensor& y);
void softmax(const Tensor& x, float scale, const Tensor& mask, const Tensor& bias, float inf);

}  // namespace axfold::cuda
