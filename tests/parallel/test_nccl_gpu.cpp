// The NCCL communicator and DAP with device shards on one GPU (label gpu; skips without a device or NCCL). NCCL
// refuses two ranks on one GPU, but a one-rank communicator runs every call of the multi-GPU path: the unique-id
// bootstrap, grouped send/recv (all-to-all to itself), the collectives on the communication stream ordered
// after the default stream by events, the handles' waits; and DAP's scatter of host activations into device
// shards, its re-sharding buffers on the device and the gather back, in a stack of each kind.
#include <gtest/gtest.h>

#include <cmath>

#include "evoformer/evoformer_dap.h"
#include "io/params.h"
#include "kernels/device.h"
#include "parallel/comm.h"
#include "test_util.h"

using namespace axfold;

namespace {

#define REQUIRE_NCCL_GPU()                                                        \
    do {                                                                          \
        if (!cuda_available()) GTEST_SKIP() << "no CUDA device";                  \
        if (!nccl_available()) GTEST_SKIP() << "built without NCCL";              \
    } while (0)

std::unique_ptr<Comm> one_rank_nccl() {
    static std::unique_ptr<Comm> bootstrap = make_single_comm();
    return make_nccl_comm(*bootstrap, 0);
}

double rel_diff(const Tensor& a, const Tensor& b) {
    return test::compare(test::to_f64(a), test::to_f64(b), 0, 0, "", 0).rel();
}

}  // namespace

TEST(NcclOneRank, CollectivesOnDeviceTensors) {
    REQUIRE_NCCL_GPU();
    std::unique_ptr<Comm> c = one_rank_nccl();
    ASSERT_EQ(c->size(), 1);
    EXPECT_EQ(c->backend(), "nccl");
    std::mt19937 rng(5);
    const Tensor h = test::randn({6, 5}, rng);
    Tensor in = h.to(Device::CUDA), out = Tensor::zeros({6, 5}, DType::F32, Device::CUDA);
    scale(in, 2.f);  // queued on the default stream before the collective: it must see the result
    auto a2a = c->all_to_all(in, out);
    Tensor gathered = Tensor::zeros({6, 5}, DType::F32, Device::CUDA);
    auto ag = c->all_gather(in, gathered);  // started together, waited in the other order
    ag->wait();
    a2a->wait();
    Tensor rs = Tensor::zeros({6, 5}, DType::F32, Device::CUDA), ar = in.clone(), bc = in.clone();
    c->reduce_scatter_sum(in, rs)->wait();
    c->all_reduce_sum(ar)->wait();
    c->broadcast(bc, 0)->wait();
    c->barrier();
    for (const Tensor* t : {&out, &gathered, &rs, &ar, &bc}) {
        const Tensor r = t->to(Device::CPU);
        for (int64_t i = 0; i < h.numel(); ++i) ASSERT_EQ(r.f32()[i], 2.f * h.f32()[i]);
    }
    // bfloat16 activations move as bytes.
    Tensor b16 = Tensor::empty({6, 5}, DType::BF16, Device::CUDA), b16o = Tensor::zeros({6, 5}, DType::BF16, Device::CUDA);
    copy(b16, in);
    c->all_to_all(b16, b16o)->wait();
    EXPECT_EQ(rel_diff(to_dtype(b16o, DType::F32).to(Device::CPU), to_dtype(b16, DType::F32).to(Device::CPU)), 0.0);
    EXPECT_THROW(c->all_gather(h, h), Error);  // host tensors are refused
}

// A DAP stack with device shards over the one-rank NCCL communicator equals the single-device stack.
TEST(NcclOneRank, DapStackWithDeviceShards) {
    REQUIRE_NCCL_GPU();
    std::unique_ptr<Comm> c = one_rank_nccl();
    const ParamStore params = ParamStore::load(std::string(AXFOLD_TEST_DATA_DIR) + "/golden/small/params.npz");
    ParamLookup get = [&](const std::string& k) { return params.get(k); };
    for (bool extra : {false, true}) {
        EvoformerStackWeights st = load_evoformer_stack(
            get, std::string("alphafold/alphafold_iteration/evoformer/") + (extra ? "extra_msa_stack" : "evoformer_iteration"),
            extra);
        for (EvoformerBlockWeights& b : st.blocks)
            b.visit([](const std::string&, Tensor& t) {
                if (t.defined()) t = t.to(Device::CUDA);
            });
        const auto& w = st.blocks[0];
        const int64_t Cm = w.msa_transition.input_layer_norm.scale.size(0), Cz = w.pair_transition.input_layer_norm.scale.size(0);
        std::mt19937 rng(77);
        const Tensor m0 = test::randn({9, 11, Cm}, rng), z0 = test::randn({11, 11, Cz}, rng);
        const Tensor mm = test::random_mask({9, 11}, rng), pm = test::random_mask({11, 11}, rng);
        Tensor md = m0.to(Device::CUDA), zd = z0.to(Device::CUDA), m = m0.clone(), z = z0.clone();
        Context c1(Device::CUDA), c2(Device::CUDA);
        evoformer_stack_forward(st, md, zd, mm.to(Device::CUDA), pm.to(Device::CUDA), c1);
        dap_evoformer_stack_forward(st, *c, m, z, mm, pm, c2);  // host activations in, device shards, host out
        EXPECT_LE(rel_diff(m, md.to(Device::CPU)), 1e-5) << (extra ? "extra-MSA" : "Evoformer");
        EXPECT_LE(rel_diff(z, zd.to(Device::CPU)), 1e-5) << (extra ? "extra-MSA" : "Evoformer");
    }
}
