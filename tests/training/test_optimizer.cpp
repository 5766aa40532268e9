// The optimizer (training/optimizer.h): the learning-rate schedule at its corners, Adam's update with
// clipping against a float64 reference over every parameter of the small model, the state's save/load
// round trip, and a few updates on the golden loss case lowering the loss.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>

#include "golden_util.h"
#include "io/params.h"
#include "test_util.h"
#include "training/optimizer.h"
#include "training/training.h"

using namespace axfold;

namespace {

const std::string kSmall = std::string(AXFOLD_TEST_DATA_DIR) + "/golden/small";

std::shared_ptr<ParamStore> small_store() {
    return std::make_shared<ParamStore>(ParamStore::load(kSmall + "/params.npz"));
}

std::vector<Tensor> tensors(const ModelWeights& w) {
    ModelWeights c = w;
    std::vector<Tensor> out;
    c.visit([&](const std::string&, Tensor& t) {
        if (t.defined()) out.push_back(t);
    });
    return out;
}

// A gradient of the model's layout with N(0, sd) entries.
ModelWeights random_grads(const ModelWeights& w, std::mt19937& rng, float sd) {
    ModelWeights g = zeros_like_model(w);
    std::normal_distribution<float> d(0.f, sd);
    for (Tensor& t : tensors(g))
        for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = d(rng);
    return g;
}

}  // namespace

// OpenFold's AlphaFoldLRScheduler at scheduler step d = update - 1: d / 1000 of the rate during the warm-up,
// then x0.95^((d - 50000) // 50000 + 1) past 50000.
TEST(Optimizer, ScheduleWarmsUpThenDecays) {
    AdamConfig c;  // 1e-3, warm-up 1000, x0.95 after 50000 and every 50000 after
    EXPECT_DOUBLE_EQ(scheduled_learning_rate(c, 1), 0.0);
    EXPECT_DOUBLE_EQ(scheduled_learning_rate(c, 2), 1e-6);
    EXPECT_DOUBLE_EQ(scheduled_learning_rate(c, 501), 5e-4);
    EXPECT_DOUBLE_EQ(scheduled_learning_rate(c, 1001), 1e-3);
    EXPECT_DOUBLE_EQ(scheduled_learning_rate(c, 50001), 1e-3);
    EXPECT_DOUBLE_EQ(scheduled_learning_rate(c, 50002), 0.95e-3);
    EXPECT_DOUBLE_EQ(scheduled_learning_rate(c, 100000), 0.95e-3);
    EXPECT_DOUBLE_EQ(scheduled_learning_rate(c, 100001), 0.95 * 0.95e-3);
    c.warmup_steps = 0;
    EXPECT_DOUBLE_EQ(scheduled_learning_rate(c, 1), 1e-3);
    EXPECT_THROW(scheduled_learning_rate(c, 0), Error);
}

// Three updates, the first two clipped (|g| above clip_norm), the third not, against the formulas in float64.
TEST(Optimizer, AdamMatchesFloat64Reference) {
    auto store = small_store();
    const Model model = Model::from_store(store, "model_3_ptm", 2);
    ModelWeights params = model.weights();
    AdamConfig c;
    c.learning_rate = 1e-2;
    c.warmup_steps = 4;
    c.clip_norm = 5.0;
    Adam adam(c, params);
    std::vector<std::vector<double>> p, m, v;
    for (const Tensor& t : tensors(params)) {
        p.emplace_back(t.f32(), t.f32() + t.numel());
        m.emplace_back(t.numel(), 0.0);
        v.emplace_back(t.numel(), 0.0);
    }
    std::mt19937 rng(3);
    int64_t clipped = 0;
    for (int s = 1; s <= 3; ++s) {
        const ModelWeights g = random_grads(params, rng, s < 3 ? 0.1f : 1e-4f);
        const AdamStats st = adam.update(params, g);
        const std::vector<Tensor> gt = tensors(g);
        double norm = 0;
        for (const Tensor& t : gt)
            for (int64_t i = 0; i < t.numel(); ++i) norm += double(t.f32()[i]) * t.f32()[i];
        norm = std::sqrt(norm);
        EXPECT_NEAR(st.grad_norm, norm, 1e-9 * norm);
        const double scale = norm > c.clip_norm ? c.clip_norm / norm : 1.0;
        clipped += scale < 1;
        EXPECT_NEAR(st.clip_scale, scale, 1e-12);
        const double lr = c.learning_rate * std::min(1.0, (s - 1) / 4.0);
        EXPECT_DOUBLE_EQ(st.learning_rate, lr);
        const double c1 = 1 - std::pow(c.beta1, s), c2 = 1 - std::pow(c.beta2, s);
        for (size_t k = 0; k < gt.size(); ++k)
            for (int64_t i = 0; i < gt[k].numel(); ++i) {
                const double ge = scale * gt[k].f32()[i];
                m[k][i] = c.beta1 * m[k][i] + (1 - c.beta1) * ge;
                v[k][i] = c.beta2 * v[k][i] + (1 - c.beta2) * ge * ge;
                p[k][i] -= lr * (m[k][i] / c1) / (std::sqrt(v[k][i] / c2) + c.eps);
            }
    }
    EXPECT_EQ(clipped, 2);
    double worst = 0;
    int64_t n = 0;
    const std::vector<Tensor> pt = tensors(params);
    for (size_t k = 0; k < pt.size(); ++k)
        for (int64_t i = 0; i < pt[k].numel(); ++i, ++n)
            worst = std::max(worst, std::fabs(pt[k].f32()[i] - p[k][i]) / (1e-3 + std::fabs(p[k][i])));
    EXPECT_LE(worst, 1e-6) << "over " << n << " parameters";
    // The parameter store itself moved (the weights view it).
    const Model reloaded = Model::from_store(store, "model_3_ptm", 2);
    EXPECT_EQ(tensors(reloaded.weights())[0].f32()[0], pt[0].f32()[0]);
}

// Saving after two updates and loading into a fresh optimizer continues exactly as the original.
TEST(Optimizer, StateRoundTripsThroughHdf5) {
    auto s1 = small_store(), s2 = small_store();
    ModelWeights p1 = Model::from_store(s1, "model_3_ptm", 2).weights(),
                 p2 = Model::from_store(s2, "model_3_ptm", 2).weights();
    AdamConfig c;
    c.warmup_steps = 0;
    Adam a1(c, p1);
    std::mt19937 rng(5);
    for (int s = 0; s < 2; ++s) a1.update(p1, random_grads(p1, rng, 0.01f));
    const test::TempDir dir;
    const std::string path = (dir / "adam_state.h5").string();
    {
        io::Hdf5Writer w(path);
        a1.save(w, "optimizer");
        w.commit();
    }
    // p2 := p1, and a fresh optimizer loads the state.
    const std::vector<Tensor> t1 = tensors(p1), t2 = tensors(p2);
    for (size_t k = 0; k < t1.size(); ++k) t2[k].copy_from(t1[k]);
    Adam a2(c, p2);
    a2.load(io::Hdf5File(path), "optimizer");
    EXPECT_EQ(a2.step(), 2);
    const ModelWeights g = random_grads(p1, rng, 0.01f);
    a1.update(p1, g);
    a2.update(p2, g);
    for (size_t k = 0; k < t1.size(); ++k)
        for (int64_t i = 0; i < t1[k].numel(); ++i) ASSERT_EQ(t1[k].f32()[i], t2[k].f32()[i]) << k << " " << i;
    // A missing state is refused, naming the dataset.
    try {
        Adam(c, p2).load(io::Hdf5File(path), "missing");
        FAIL() << "loaded a missing group";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("missing/step"), std::string::npos) << e.what();
    }
}

// Training on the golden loss case: four Adam updates (no warm-up) lower the total loss.
TEST(Optimizer, UpdatesLowerTheLoss) {
    const io::Hdf5File cases(kSmall + "/loss_cases.h5");
    auto store = small_store();
    const Model model = Model::from_store(store, "model_3_ptm", static_cast<int>(cases.shape("outputs/sm/frames")[0]));
    const FeatureDict features = test::read_group(cases, "features"), batch = test::read_group(cases, "batch");
    ModelWeights params = model.weights();
    AdamConfig c;
    c.learning_rate = 3e-4;
    c.warmup_steps = 0;
    Adam adam(c, params);
    Context ctx;
    std::vector<double> losses;
    for (int s = 0; s < 5; ++s) {
        const TrainingStep step = training_step(model, features, batch, LossConfig{}, ctx);
        losses.push_back(step.loss.total);
        std::printf("  update %d: loss %.6f\n", s, step.loss.total);
        if (s < 4) adam.update(params, step.grads);
    }
    EXPECT_LT(losses.back(), losses.front());
    for (size_t s = 1; s < losses.size(); ++s) EXPECT_LT(losses[s], losses[s - 1] + 1e-3 * std::fabs(losses[0])) << s;
}

// The moving average: ema = d ema + (1 - d) p for every tensor, in place.
TEST(Optimizer, MovingAverage) {
    auto s1 = small_store(), s2 = small_store();
    ModelWeights ema = Model::from_store(s1, "model_3_ptm", 2).weights(),
                 params = Model::from_store(s2, "model_3_ptm", 2).weights();
    std::mt19937 rng(9);
    const ModelWeights step = random_grads(params, rng, 1.f);
    const std::vector<Tensor> e = tensors(ema), p = tensors(params), d = tensors(step);
    std::vector<std::vector<float>> e0;
    for (size_t k = 0; k < p.size(); ++k) {
        add(p[k], d[k]);  // the parameters moved away from the average
        e0.emplace_back(e[k].f32(), e[k].f32() + e[k].numel());
    }
    update_moving_average(ema, params, 0.9);
    double worst = 0;
    for (size_t k = 0; k < p.size(); ++k)
        for (int64_t i = 0; i < p[k].numel(); ++i)
            worst = std::max(worst, std::fabs(e[k].f32()[i] - (0.9 * e0[k][i] + 0.1 * p[k].f32()[i])));
    EXPECT_LE(worst, 1e-6);
    EXPECT_THROW(update_moving_average(ema, params, 1.0), Error);
}
