// Golden gradient cases (small/grad_cases.h5, golden README "grad_cases.h5"): a case's inputs, cotangents and
// parameters, and the comparison of our backward's gradients with the float64 golden ones (1e-3 of the
// largest golden value per tensor; gradients zero in exact arithmetic against the case's scale).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>

#include "golden_util.h"

namespace axfold::test {

// The case's parameters bound like the forward golden test binds them.
struct GradCase {
    io::Hdf5File file;
    std::string name, scope;
    ParamStore params;
    GradCase(const std::string& set, const std::string& case_name)
        : file(set + "/grad_cases.h5"), name(case_name),
          params(ParamStore::load(std::filesystem::exists(set + "/params.npz") ? set + "/params.npz"
                                                                               : set + "/params.h5")) {
        io::Hdf5File modules(set + "/module_cases.h5");
        scope = modules.read_string_attr(case_name, "params_relative_to");
        if (!scope.empty() && scope.back() == '/') scope.pop_back();
    }
    Tensor read(const std::string& path) const { return file.read_f32(name + "/" + path); }
    ParamLookup lookup() const {
        return [this](const std::string& key) { return params.get(key); };
    }
};

// max|ours - golden| <= 1e-3 max|golden|, with the golden nonzero (a zero gradient tests nothing).
inline void expect_grad(const Tensor& ours, const Tensor& golden, const std::string& what) {
    const auto res = test::compare(host_float64(ours), host_float64(golden), 0, 0, what, 0);
    std::printf("  %-52s rel %.2e\n", what.c_str(), res.rel());
    EXPECT_LE(res.rel(), 1e-3) << what;
    EXPECT_GT(res.max_ref, 0.0) << what;
}

// Every parameter gradient of a weights struct against grad_params/<key without "//">. A gradient that is zero
// in exact arithmetic (the golden float64 value is round-off, below 1e-9 of the case's largest parameter
// gradient: e.g. a pair-bias norm's offset, which shifts every logit of a softmax row alike) must be float32
// round-off too: below 1e-5 of that largest gradient.
template <class W> void expect_param_grads(W& grads, const GradCase& c) {
    double case_max = 0;
    for (const std::string& path : c.file.list(c.name + "/grad_params"))
        for (double v : host_float64(c.file.read(path))) case_max = std::max(case_max, std::fabs(v));
    grads.visit([&](const std::string& key, Tensor& t) {
        // "input_layer_norm//scale" -> "input_layer_norm/scale"; "//weights" -> "weights".
        const size_t at = key.find("//");
        const std::string path =
            at == std::string::npos ? key : (at == 0 ? "" : key.substr(0, at) + "/") + key.substr(at + 2);
        const Tensor golden = c.read("grad_params/" + path);
        double golden_max = 0, ours_max = 0;
        for (double v : host_float64(golden)) golden_max = std::max(golden_max, std::fabs(v));
        if (golden_max < 1e-9 * case_max) {
            for (double v : host_float64(t)) ours_max = std::max(ours_max, std::fabs(v));
            std::printf("  %-52s zero in exact arithmetic: max %.2e (%.2e of the case's largest)\n",
                        (c.name + " d" + path).c_str(), ours_max, ours_max / case_max);
            EXPECT_LE(ours_max, 1e-5 * case_max) << path;
            return;
        }
        expect_grad(t, golden, c.name + " d" + path);
    });
}


}  // namespace axfold::test
