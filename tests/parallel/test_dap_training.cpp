// A whole-model training step under DAP (the extra-MSA and Evoformer stacks forward and backward over the
// ranks) equals the one-rank step: the loss terms, and every parameter gradient of the small model on the
// golden loss case, on 1, 2, 3 and 4 ranks; and data parallel x DAP averages the replicas' gradients.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "golden_util.h"
#include "io/params.h"
#include "parallel/comm.h"
#include "template_model_util.h"
#include "training/optimizer.h"
#include "training/training.h"

using namespace axfold;

namespace {

const std::string kSmall = std::string(AXFOLD_TEST_DATA_DIR) + "/golden/small";

using test::max_abs;

// Every gradient of `ours` equals `ref` within 1e-4 of the tensor's largest value (float32 sums in another
// order, through the structure module's iterations); a gradient zero in exact arithmetic against the model's
// largest. Returns how many tensors of the two stacks were compared.
int expect_same_gradients(const ModelWeights& ref_w, const ModelWeights& ours_w, const std::string& what) {
    ModelWeights a = ref_w, b = ours_w;
    std::vector<std::pair<std::string, Tensor>> ref, ours;
    a.visit([&](const std::string& n, Tensor& t) {
        if (t.defined()) ref.emplace_back(n, t);
    });
    b.visit([&](const std::string& n, Tensor& t) {
        if (t.defined()) ours.emplace_back(n, t);
    });
    EXPECT_EQ(ref.size(), ours.size()) << what;
    if (ref.size() != ours.size()) return 0;
    double model_max = 0;
    for (const auto& [n, t] : ref) model_max = std::max(model_max, max_abs(t));
    int stack_tensors = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
        EXPECT_EQ(ref[i].first, ours[i].first);
        const auto x = host_float64(ours[i].second), y = host_float64(ref[i].second);
        double diff = 0;
        for (size_t e = 0; e < x.size(); ++e) diff = std::max(diff, std::fabs(x[e] - y[e]));
        const double scale = max_abs(ref[i].second);
        if (scale < 1e-6 * model_max)
            EXPECT_LE(diff, 1e-5 * model_max) << ref[i].first << " (zero in exact arithmetic)" << what;
        else
            EXPECT_LE(diff, 1e-4 * scale) << ref[i].first << what;
        if (ref[i].first.rfind("evoformer/", 0) == 0 || ref[i].first.rfind("extra_msa_stack/", 0) == 0) ++stack_tensors;
    }
    return stack_tensors;
}

}  // namespace

double max_relative_difference(const ModelWeights& ref_w, const ModelWeights& ours_w);

TEST(DapTraining, StepMatchesOneRank) {
    Comm& comm = world_comm();
    const io::Hdf5File cases(kSmall + "/loss_cases.h5");
    auto store = std::make_shared<ParamStore>(ParamStore::load(kSmall + "/params.npz"));
    const Model model = Model::from_store(store, "model_3_ptm", static_cast<int>(cases.shape("outputs/sm/frames")[0]));
    const FeatureDict features = test::read_group(cases, "features"), batch = test::read_group(cases, "batch");
    Context c1, c2;
    TrainingStep one = training_step(model, features, batch, LossConfig{}, c1);
    TrainingStep dap = training_step(model, features, batch, LossConfig{}, c2, nullptr, &comm);
    const std::string on = " on " + std::to_string(comm.size()) + " ranks";
    EXPECT_NEAR(dap.loss.total, one.loss.total, 1e-5 * std::fabs(one.loss.total)) << "total loss" << on;
    for (const auto& [name, value] : one.loss.terms)
        EXPECT_NEAR(dap.loss.terms.at(name), value, 1e-4 * std::fabs(value) + 1e-7) << name << on;
    const int stack_tensors = expect_same_gradients(one.grads, dap.grads, on);
    EXPECT_GT(stack_tensors, 50);
    // With training dropout in the stacks: the same masks on every layout.
    TrainingStep one_d = training_step(model, features, batch, LossConfig{}, c1, nullptr, nullptr, 7);
    TrainingStep dap_d = training_step(model, features, batch, LossConfig{}, c2, nullptr, &comm, 7);
    EXPECT_NEAR(dap_d.loss.total, one_d.loss.total, 1e-5 * std::fabs(one_d.loss.total)) << "dropout" << on;
    EXPECT_GT(std::fabs(one_d.loss.total - one.loss.total), 1e-6 * std::fabs(one.loss.total)) << "dropout is off";
    expect_same_gradients(one_d.grads, dap_d.grads, " (dropout)" + on);
    // bfloat16 checkpoints (--precision bf16's): the shards rounded as one rank rounds the whole (the recycled
    // iteration in float32 for both, so that only the checkpoints differ from the float32 step).
    const RecycledInputs rec = recycled_inputs(model, features, c1);
    c1.activation_dtype = c2.activation_dtype = DType::BF16;
    TrainingStep one_b = training_step(model, features, batch, LossConfig{}, c1, &rec);
    TrainingStep dap_b = training_step(model, features, batch, LossConfig{}, c2, &rec, &comm);
    EXPECT_GT(max_relative_difference(one.grads, one_b.grads), 1e-4) << "bf16 checkpoints changed nothing";
    expect_same_gradients(one_b.grads, dap_b.grads, " (bf16 checkpoints)" + on);
}

// The largest difference between two gradients over the model's tensors, each relative to its tensor's largest
// value (a gradient zero in exact arithmetic: to the model's largest).
double max_relative_difference(const ModelWeights& ref_w, const ModelWeights& ours_w) {
    ModelWeights a = ref_w, b = ours_w;
    std::vector<Tensor> ref, ours;
    a.visit([&](const std::string&, Tensor& t) { ref.push_back(t); });
    b.visit([&](const std::string&, Tensor& t) { ours.push_back(t); });
    double model_max = 0, worst = 0;
    for (const Tensor& t : ref) model_max = std::max(model_max, max_abs(t));
    for (size_t i = 0; i < ref.size(); ++i) {
        const auto x = host_float64(ours[i]), y = host_float64(ref[i]);
        double diff = 0;
        for (size_t e = 0; e < x.size(); ++e) diff = std::max(diff, std::fabs(x[e] - y[e]));
        const double scale = max_abs(ref[i]);
        worst = std::max(worst, diff / (scale < 1e-6 * model_max ? 10 * model_max : scale));
    }
    return worst;
}

// A template model (model_1_ptm, tiny widths, random templates): the template embedding and the angle rows run
// on every rank around the distributed stacks, and the gradients equal one rank's, without and with dropout (the
// template pair stacks' too). This random tiny network amplifies float32 round-off far more than the golden
// weights (docs/TRAINING.md, "DAP against one rank"), so the bound is what one rank itself shows when every
// parameter moves by one ulp: DAP may differ from one rank by twice that (and at least 1e-4); a defect differs
// by far more.
TEST(DapTraining, TemplateModelStepMatchesOneRank) {
    Comm& comm = world_comm();
    std::mt19937 rng(21);
    const io::Hdf5File cases(kSmall + "/loss_cases.h5");
    const Model model = test::tiny_template_model(8);
    const FeatureDict base = test::read_group(cases, "features"), batch = test::read_group(cases, "batch");
    const FeatureDict features =
        test::with_templates(base, test::random_raw_templates(3, base.at("aatype").size(1), rng));
    // One rank's own sensitivity: the step with every parameter one ulp away (random direction), in place in the
    // store the model's weights view, then restored.
    auto ulp_moved = [&](uint64_t dropout_seed) {
        ModelWeights w = model.weights();
        std::vector<std::vector<float>> saved;
        w.visit([&](const std::string&, Tensor& t) {
            saved.emplace_back(t.f32(), t.f32() + t.numel());
            for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = std::nextafter(t.f32()[i], rng() % 2 ? 1e30f : -1e30f);
        });
        Context c;
        TrainingStep s = training_step(model, features, batch, LossConfig{}, c, nullptr, nullptr, dropout_seed);
        size_t k = 0;
        w.visit([&](const std::string&, Tensor& t) { std::copy(saved[k].begin(), saved[k].end(), t.f32()), ++k; });
        return s;
    };
    for (uint64_t dropout_seed : {uint64_t(0), uint64_t(7)}) {
        Context c1, c2;
        const TrainingStep one =
            training_step(model, features, batch, LossConfig{}, c1, nullptr, nullptr, dropout_seed);
        const TrainingStep dap = training_step(model, features, batch, LossConfig{}, c2, nullptr, &comm, dropout_seed);
        const TrainingStep moved = ulp_moved(dropout_seed);
        const std::string on =
            std::string(dropout_seed ? " with dropout" : "") + " on " + std::to_string(comm.size()) + " ranks";
        const double dap_diff = max_relative_difference(one.grads, dap.grads),
                     ulp_diff = max_relative_difference(one.grads, moved.grads);
        std::printf("  templates%s: DAP against one rank %.2e, one rank's 1-ulp sensitivity %.2e\n", on.c_str(),
                    dap_diff, ulp_diff);
        EXPECT_LE(dap_diff, std::max(1e-4, 2 * ulp_diff)) << on;
        EXPECT_NEAR(dap.loss.total, one.loss.total, 1e-5 * std::fabs(one.loss.total)) << on;
        int template_tensors = 0;
        ModelWeights g = dap.grads;
        g.visit([&](const std::string& n, Tensor& t) {
            if (n.rfind("template_", 0) == 0 && max_abs(t) > 0) ++template_tensors;
        });
        EXPECT_GT(template_tensors, 40) << on;
    }
}

// Data parallel x DAP: for every split of the ranks into DAP groups (1 x P, P x 1, and 2 x 2 on four ranks),
// replica q trains on its own example (the golden case with a different masked-MSA mask per replica) with DAP
// inside its group, and the gradient averaged over replicas equals the mean of the one-rank gradients of
// those examples.
TEST(DataParallelTimesDap, AveragedGradientEqualsTheMeanOfOneRankGradients) {
    Comm& world = world_comm();
    const io::Hdf5File cases(kSmall + "/loss_cases.h5");
    auto store = std::make_shared<ParamStore>(ParamStore::load(kSmall + "/params.npz"));
    const Model model = Model::from_store(store, "model_3_ptm", static_cast<int>(cases.shape("outputs/sm/frames")[0]));
    const FeatureDict features = test::read_group(cases, "features"), base = test::read_group(cases, "batch");
    auto batch_of = [&](int q) {
        FeatureDict b = base;
        Tensor mask = to_f32(b.at("bert_mask")).contiguous().clone();
        for (int64_t i = 0; i < mask.numel(); ++i)
            if ((i + q) % 3 == 0) mask.f32()[i] = 0.f;
        b["bert_mask"] = mask;
        return b;
    };
    for (int dap = 1; dap <= world.size(); ++dap) {
        if (world.size() % dap) continue;
        TrainingGroups g = split_training_groups(world, dap);
        ASSERT_EQ(g.num_replicas * dap, world.size());
        ASSERT_EQ(g.dap->size(), dap);
        ASSERT_EQ(g.replicas->size(), g.num_replicas);
        // The reference: every replica's example on one rank, averaged.
        Context c1;
        ModelWeights mean = zeros_like_model(model.weights());
        for (int q = 0; q < g.num_replicas; ++q) {
            const TrainingStep s = training_step(model, features, batch_of(q), LossConfig{}, c1);
            ModelWeights sg = s.grads;
            std::vector<Tensor> src, dst;
            sg.visit([&](const std::string&, Tensor& t) { src.push_back(t); });
            mean.visit([&](const std::string&, Tensor& t) { dst.push_back(t); });
            for (size_t i = 0; i < src.size(); ++i) add(dst[i], src[i], 1.f / static_cast<float>(g.num_replicas));
        }
        Context c2;
        TrainingStep mine = training_step(model, features, batch_of(g.replica), LossConfig{}, c2, nullptr, g.dap.get());
        average_over_replicas(mine.grads, *g.replicas);
        const std::string on = " (" + std::to_string(g.num_replicas) + " replicas x DAP " + std::to_string(dap) + ")";
        EXPECT_GT(expect_same_gradients(mean, mine.grads, on), 50);
        // The same average started part by part inside the backward (training_step's replicas).
        const TrainingStep bucketed = training_step(model, features, batch_of(g.replica), LossConfig{}, c2, nullptr,
                                                    g.dap.get(), 0, g.replicas.get());
        EXPECT_GT(expect_same_gradients(mean, bucketed.grads, " (bucketed)" + on), 50);
        // Not trivially equal: the replicas' examples give different gradients.
        if (g.num_replicas > 1) {
            const TrainingStep s0 = training_step(model, features, batch_of(0), LossConfig{}, c1);
            const TrainingStep s1 = training_step(model, features, batch_of(1), LossConfig{}, c1);
            EXPECT_NE(s0.loss.terms.at("masked_msa"), s1.loss.terms.at("masked_msa"));
        }
    }
}

// A template model's replicas, one example with templates and one without: every replica averages the same parts
// (the template gradient is zero without templates), and the average equals the mean of the one-rank gradients.
TEST(DataParallelTimesDap, TemplateModelReplicasWithAndWithoutTemplates) {
    Comm& world = world_comm();
    if (world.size() < 2) GTEST_SKIP() << "needs two ranks";
    std::mt19937 rng(22);
    const io::Hdf5File cases(kSmall + "/loss_cases.h5");
    const Model model = test::tiny_template_model(8);
    const FeatureDict base = test::read_group(cases, "features"), batch = test::read_group(cases, "batch");
    const FeatureDict with = test::with_templates(base, test::random_raw_templates(3, base.at("aatype").size(1), rng));
    TrainingGroups g = split_training_groups(world, 1);
    auto features_of = [&](int q) -> const FeatureDict& { return q % 2 ? base : with; };
    Context c1, c2;
    ModelWeights mean = zeros_like_model(model.weights());
    for (int q = 0; q < g.num_replicas; ++q) {
        ModelWeights sg = training_step(model, features_of(q), batch, LossConfig{}, c1).grads;
        std::vector<Tensor> src, dst;
        sg.visit([&](const std::string&, Tensor& t) { src.push_back(t); });
        mean.visit([&](const std::string&, Tensor& t) { dst.push_back(t); });
        for (size_t i = 0; i < src.size(); ++i) add(dst[i], src[i], 1.f / static_cast<float>(g.num_replicas));
    }
    const TrainingStep mine = training_step(model, features_of(g.replica), batch, LossConfig{}, c2, nullptr,
                                            g.dap.get(), 0, g.replicas.get());
    expect_same_gradients(mean, mine.grads, " (template model, " + std::to_string(g.num_replicas) + " replicas)");
}
