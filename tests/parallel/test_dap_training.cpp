// A whole-model training step under DAP (the extra-MSA and Evoformer stacks forward and backward over the
// ranks) equals the one-rank step: the loss terms, and every parameter gradient of the small model on the
// golden loss case, on 1, 2 and 3 ranks.
#include <gtest/gtest.h>

#include <cmath>

#include "golden_util.h"
#include "io/params.h"
#include "parallel/comm.h"
#include "structure/training.h"

using namespace axfold;

namespace {

const std::string kSmall = std::string(AXFOLD_TEST_DATA_DIR) + "/golden/small";

std::map<std::string, Tensor> group(const io::Hdf5File& f, const std::string& g) {
    std::map<std::string, Tensor> m;
    for (const std::string& k : f.list(g)) m[k.substr(g.size() + 1)] = f.read(k);
    return m;
}

double max_abs(const Tensor& t) {
    double m = 0;
    for (double v : host_float64(t)) m = std::max(m, std::fabs(v));
    return m;
}

}  // namespace

TEST(DapTraining, StepMatchesOneRank) {
    Comm& comm = world_comm();
    const io::Hdf5File cases(kSmall + "/loss_cases.h5");
    auto store = std::make_shared<ParamStore>(ParamStore::load(kSmall + "/params.npz"));
    const Model model = Model::from_store(store, "model_3_ptm", static_cast<int>(cases.shape("outputs/sm/frames")[0]));
    const FeatureDict features = group(cases, "features"), batch = group(cases, "batch");
    Context c1, c2;
    TrainingStep one = training_step(model, features, batch, LossConfig{}, c1);
    TrainingStep dap = training_step(model, features, batch, LossConfig{}, c2, nullptr, &comm);
    const std::string on = " on " + std::to_string(comm.size()) + " ranks";
    EXPECT_NEAR(dap.loss.total, one.loss.total, 1e-5 * std::fabs(one.loss.total)) << "total loss" << on;
    for (const auto& [name, value] : one.loss.terms)
        EXPECT_NEAR(dap.loss.terms.at(name), value, 1e-4 * std::fabs(value) + 1e-7) << name << on;
    // Every parameter gradient: 1e-4 of the tensor's largest value (float32 sums in another order, through the
    // structure module's iterations); a gradient zero in exact arithmetic against the model's largest.
    std::vector<std::pair<std::string, Tensor>> ref, ours;
    one.grads.visit([&](const std::string& n, Tensor& t) {
        if (t.defined()) ref.emplace_back(n, t);
    });
    dap.grads.visit([&](const std::string& n, Tensor& t) {
        if (t.defined()) ours.emplace_back(n, t);
    });
    ASSERT_EQ(ref.size(), ours.size());
    double model_max = 0;
    for (const auto& [n, t] : ref) model_max = std::max(model_max, max_abs(t));
    int stack_tensors = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
        ASSERT_EQ(ref[i].first, ours[i].first);
        const double scale = max_abs(ref[i].second);
        const auto a = host_float64(ours[i].second), b = host_float64(ref[i].second);
        double diff = 0;
        for (size_t e = 0; e < a.size(); ++e) diff = std::max(diff, std::fabs(a[e] - b[e]));
        if (scale < 1e-6 * model_max)
            EXPECT_LE(diff, 1e-5 * model_max) << ref[i].first << " (zero in exact arithmetic)" << on;
        else
            EXPECT_LE(diff, 1e-4 * scale) << ref[i].first << on;
        if (ref[i].first.rfind("evoformer/", 0) == 0 || ref[i].first.rfind("extra_msa_stack/", 0) == 0) ++stack_tensors;
    }
    EXPECT_GT(stack_tensors, 50);
}
