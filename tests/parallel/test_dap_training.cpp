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
}

// A template model (model_1_ptm, tiny widths, random templates): the template embedding and the angle rows run
// on every rank around the distributed stacks, and their gradients equal one rank's.
TEST(DapTraining, TemplateModelStepMatchesOneRank) {
    Comm& comm = world_comm();
    std::mt19937 rng(21);
    const io::Hdf5File cases(kSmall + "/loss_cases.h5");
    const Model model = test::tiny_template_model(8);
    const FeatureDict base = test::read_group(cases, "features"), batch = test::read_group(cases, "batch");
    const FeatureDict features =
        test::with_templates(base, test::random_raw_templates(3, base.at("aatype").size(1), rng));
    Context c1, c2;
    const TrainingStep one = training_step(model, features, batch, LossConfig{}, c1);
    const TrainingStep dap = training_step(model, features, batch, LossConfig{}, c2, nullptr, &comm);
    const std::string on = " (templates) on " + std::to_string(comm.size()) + " ranks";
    EXPECT_NEAR(dap.loss.total, one.loss.total, 1e-5 * std::fabs(one.loss.total)) << on;
    expect_same_gradients(one.grads, dap.grads, on);
    int template_tensors = 0;
    ModelWeights g = dap.grads;
    g.visit([&](const std::string& n, Tensor& t) {
        if (n.rfind("template_", 0) == 0 && test::max_abs(t) > 0) ++template_tensors;
    });
    EXPECT_GT(template_tensors, 40) << on;
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
        // Not trivially equal: the replicas' examples give different gradients.
        if (g.num_replicas > 1) {
            const TrainingStep s0 = training_step(model, features, batch_of(0), LossConfig{}, c1);
            const TrainingStep s1 = training_step(model, features, batch_of(1), LossConfig{}, c1);
            EXPECT_NE(s0.loss.terms.at("masked_msa"), s1.loss.terms.at("masked_msa"));
        }
    }
}
