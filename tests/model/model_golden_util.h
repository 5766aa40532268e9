// Shared by the full-model golden tests (CPU and GPU): the preset a golden set was made with, and the
// golden README's tolerances for full-model outputs.
#pragma once

#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <map>
#include <string>

#include "golden_util.h"
#include "io/features.h"
#include "io/hdf5_file.h"
#include "model/model.h"

namespace axfold::test {

inline std::string preset_of(const std::string& set) {
    std::ifstream in(set + "/config.json");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::smatch m;
    if (std::regex_search(text, m, std::regex("\"openfold_preset\": \"(model_[1-5](_ptm)?)\""))) return m[1];
    if (std::regex_search(text, m, std::regex("\"preset\": \"(model_[1-5]_multimer_v3)\""))) return m[1];
    return "";
}

// Tolerances of the golden README for full-model outputs.
struct Tol {
    double rel = 1e-3, atol = 0;
};
inline Tol tolerance_for(const std::string& name) {
    if (name.find("final_atom_positions") != std::string::npos || name.find("atom14_positions") != std::string::npos)
        return {0, 1e-2};
    if (name == "plddt") return {0, 1e-2};
    if (name == "ptm" || name == "iptm" || name == "weighted_ptm_score") return {0, 1e-4};
    return {1e-3, 0};
}

// A golden set's model (its parameters and preset, with the structure-module depth of its outputs) and
// its features.
struct GoldenModel {
    Model model;
    FeatureDict features;
};
inline GoldenModel load_golden_model(const std::string& set, const io::Hdf5File& golden) {
    const std::string params =
        std::filesystem::exists(set + "/params.npz") ? set + "/params.npz" : set + "/params.h5";
    const int layers = static_cast<int>(golden.shape("structure_module/traj")[0]);
    return {Model::load(params, preset_of(set), layers), io::read_features_h5(set + "/features.h5")};
}

// Calls fn(name, golden outputs.h5, model and features) for every golden set with full-model outputs;
// returns how many there were.
template <class F> int for_each_golden_model(F&& fn) {
    int ran = 0;
    for (const std::string& set : golden_sets("outputs.h5")) {
        const io::Hdf5File golden(set + "/outputs.h5");
        fn(std::filesystem::path(set).filename().string(), golden, load_golden_model(set, golden));
        ++ran;
    }
    return ran;
}

// Every output in the golden outputs.h5 against ours (prediction_output_tensors), each within its
// tolerance; prints one line per output and returns how many were compared.
inline int expect_matches_golden(const std::map<std::string, Tensor>& ours, const io::Hdf5File& golden,
                                 const std::string& name, const std::string& label) {
    int compared = 0;
    for (const std::string& key : golden.list("/", true)) {
        auto it = ours.find(key);
        if (it == ours.end()) {
            ADD_FAILURE() << name << ": golden output " << key << " has no counterpart";
            continue;
        }
        Tensor g = golden.read_f32(key);
        EXPECT_EQ(it->second.shape(), g.shape()) << name << "/" << key;
        if (it->second.shape() != g.shape()) continue;
        auto res = compare(to_f64(it->second), to_f64(g), 0, 0, key, 0);
        Tol t = tolerance_for(key.substr(key.rfind('/') + 1));
        const bool ok = t.atol > 0 ? res.max_abs <= t.atol : res.rel() <= t.rel;
        std::printf("golden %-16s %s %-46s rel %.3e  max abs %.3e %s\n", name.c_str(), label.c_str(), key.c_str(),
                    res.rel(), res.max_abs, ok ? "ok" : "FAIL");
        EXPECT_TRUE(ok) << name << "/" << key << ": rel " << res.rel() << ", max abs " << res.max_abs;
        ++compared;
    }
    return compared;
}

}  // namespace axfold::test
