#include <gtest/gtest.h>

#include "kernels/offload.h"
#include "kernels/tensor.h"
#include "kernels/workspace.h"
#include "test_util.h"

using namespace axfold;

TEST(Tensor, ViewsShareStorageAndIndexCorrectly) {
    std::mt19937 rng(1);
    Tensor t = test::randn({2, 3, 4}, rng);
    Tensor p = t.permute({2, 0, 1});
    EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
    EXPECT_FALSE(p.is_contiguous());
    for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 3; ++j)
            for (int k = 0; k < 4; ++k) EXPECT_EQ(p.at({k, i, j}), t.at({i, j, k}));
    Tensor c = p.contiguous();
    EXPECT_TRUE(c.is_contiguous());
    for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 3; ++j)
            for (int k = 0; k < 4; ++k) EXPECT_EQ(c.at({k, i, j}), t.at({i, j, k}));
    Tensor s = t.slice(1, 1, 3).select(2, 2);
    EXPECT_EQ(s.shape(), (Shape{2, 2}));
    EXPECT_EQ(s.at({1, 0}), t.at({1, 1, 2}));
    s.at({1, 0}) = 42.f;  // views write through
    EXPECT_EQ(t.at({1, 1, 2}), 42.f);
    Tensor e = t.select(1, 0).unsqueeze(1).expand({2, 5, 4});
    EXPECT_EQ(e.stride(1), 0);
    EXPECT_EQ(e.at({1, 4, 3}), t.at({1, 0, 3}));
}

TEST(Tensor, UnflattenSplitsAStridedDim) {
    std::mt19937 rng(2);
    Tensor t = test::randn({4, 10}, rng);
    Tensor cols = t.slice(1, 2, 8);          // [4, 6], row stride 10: view() would refuse it
    Tensor u = cols.unflatten(1, {3, 2});    // [4, 3, 2]
    EXPECT_EQ(u.shape(), (Shape{4, 3, 2}));
    for (int i = 0; i < 4; ++i)
        for (int a = 0; a < 3; ++a)
            for (int b = 0; b < 2; ++b) EXPECT_EQ(u.at({i, a, b}), t.at({i, 2 + a * 2 + b}));
    Tensor p = t.transpose(0, 1).unflatten(1, {2, 2});  // a transposed dim splits with its own stride
    for (int j = 0; j < 10; ++j)
        for (int a = 0; a < 2; ++a)
            for (int b = 0; b < 2; ++b) EXPECT_EQ(p.at({j, a, b}), t.at({a * 2 + b, j}));
    EXPECT_THROW(cols.unflatten(1, {4, 2}), Error);
}

TEST(Tensor, BadViewsAreClearErrors) {
    Tensor t = Tensor::zeros({2, 3});
    EXPECT_THROW(t.view({4, 2}), Error);
    EXPECT_THROW(t.transpose(0, 1).view({6}), Error);
    EXPECT_THROW(t.slice(1, 2, 5), Error);
    EXPECT_THROW(t.select(0, 2), Error);
    EXPECT_THROW(t.data<double>(), Error);
    try {
        t.view({4, 2});
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("[4, 2]"), std::string::npos) << e.what();
    }
}

TEST(Offload, ParkReleaseRestoreKeepsTheValues) {
    std::mt19937 rng(3);
    Tensor t = test::randn({5, 7}, rng);
    const Tensor want = t.clone();
    Tensor view = t.slice(0, 1, 3);
    ParkedTensor p(t);
    EXPECT_TRUE(p.parked());
    EXPECT_EQ(p.bytes(), size_t(5 * 7 * 4));
    t = Tensor();
    EXPECT_THROW(p.release(), Error);  // `view` would keep the memory
    view = Tensor();
    p.release();
    const Tensor back = p.restore();
    EXPECT_FALSE(p.parked());
    ASSERT_EQ(back.shape(), want.shape());
    for (int64_t i = 0; i < want.numel(); ++i) EXPECT_EQ(back.f32()[i], want.f32()[i]);
    // Parked again (the next iteration's MSA): the pinned buffer is reused, the values are the new tensor's.
    Tensor again = test::randn({5, 7}, rng);
    const Tensor want2 = again.clone();
    p.park(again);
    EXPECT_THROW(p.park(want2), Error);  // still holding `again`
    again = Tensor();
    p.release();
    EXPECT_THROW(p.park(want2.clone()), Error);  // released but never restored: its values would be lost
    const Tensor back2 = p.restore();
    for (int64_t i = 0; i < want2.numel(); ++i) EXPECT_EQ(back2.f32()[i], want2.f32()[i]);
    EXPECT_THROW(ParkedTensor(want.transpose(0, 1)), Error);  // parks contiguous tensors only
    const Tensor pinned = Tensor::empty_pinned({3, 2}, DType::I64);
    EXPECT_EQ(pinned.device(), Device::CPU);
    EXPECT_EQ(pinned.numel(), 6);
}

TEST(Workspace, MarkReleaseReusesMemory) {
    Workspace ws;
    auto m = ws.mark();
    Tensor a = ws.alloc({100});
    void* pa = a.raw();
    ws.release(m);
    Tensor b = ws.alloc({100});
    EXPECT_EQ(b.raw(), pa);
    Tensor big = ws.alloc({int64_t(1) << 23});  // forces a second chunk
    big.f32()[0] = 1.f;
    EXPECT_NE(big.raw(), b.raw());
    EXPECT_GE(ws.high_water_bytes(), size_t(4) << 23);
}

// Device emulation (kernels/device.h): device tensors live in host memory and ops on them take the CPU kernels,
// with the CPU's results to the bit; host code that reaches their elements throws, naming the tensor; transfers
// and the workspace work as on a GPU.
TEST(DeviceEmulation, OpsRunOnTheHostAndHostAccessIsRefused) {
    if (cuda_available()) GTEST_SKIP() << "a real device is present";
    std::mt19937 rng(3);
    const Tensor x = test::randn({5, 4}, rng), w = test::randn({4, 3}, rng), b = test::randn({3}, rng);
    Tensor want = Tensor::empty({5, 3});
    linear(x, w, b, want);
    relu(want);
    DeviceEmulation emulation;
    {
        Workspace ws(Device::CUDA);
        const Tensor y = linear_relu(x.to(Device::CUDA), w.to(Device::CUDA), b.to(Device::CUDA), ws);
        EXPECT_EQ(y.device(), Device::CUDA);
        test::expect_error([&] { (void)y.f32(); }, {"reaches float32[5, 3] cuda, a device tensor, outside an op"});
        EXPECT_THROW((void)y.at({0, 0}), Error);
        EXPECT_THROW((void)Tensor::zeros({2}, DType::F32, Device::CUDA).raw(), Error);
        const Tensor back = y.to(Device::CPU);
        for (int64_t i = 0; i < want.numel(); ++i) EXPECT_EQ(back.f32()[i], want.f32()[i]) << i;
        EXPECT_EQ(test::to_f64(y.permute({1, 0}).contiguous()), test::to_f64(want.permute({1, 0})));
    }
    EXPECT_THROW(DeviceEmulation again, Error);  // does not nest
}
