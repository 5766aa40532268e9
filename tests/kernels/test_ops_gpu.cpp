// CUDA ops equal the CPU ops (label gpu; skips itself without a GPU).
#include <gtest/gtest.h>

#include "kernels/device.h"
#include "kernels/ops.h"
#include "test_util.h"

using namespace axfold;

TEST(GpuOps, LayerNormAndSoftmaxMatchCpu) {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
    std::mt19937 rng(11);
    Tensor x = test::randn({64, 96}, rng, 2.f), g = test::randn({96}, rng), b = test::randn({96}, rng);
    Tensor y = Tensor::empty({64, 96});
    layer_norm(x, g, b, 1e-5f, y);
    Tensor xd = x.to(Device::CUDA), yd = Tensor::empty({64, 96}, DType::F32, Device::CUDA);
    layer_norm(xd, g.to(Device::CUDA), b.to(Device::CUDA), 1e-5f, yd);
    test::expect_close(yd.to(Device::CPU), test::to_f64(y), 1e-5, 1e-5, "cuda layer_norm");

    Tensor s = test::randn({8, 4, 300}, rng), mask = test::random_mask({8, 1, 300}, rng);
    Tensor bias = test::randn({1, 4, 300}, rng);
    Tensor sd = s.to(Device::CUDA);
    softmax(s, 0.5f, mask.expand({8, 4, 300}), bias.expand({8, 4, 300}), 1e9f);
    Tensor md = mask.to(Device::CUDA), bd = bias.to(Device::CUDA);
    softmax(sd, 0.5f, md.expand({8, 4, 300}), bd.expand({8, 4, 300}), 1e9f);
    test::expect_close(sd.to(Device::CPU), test::to_f64(s), 1e-6, 1e-4, "cuda softmax");
}
