// Golden-case harness: finds the sets under AXFOLD_GOLDEN_DIR (default tests/data/golden), runs each
// case of module_cases.h5 that a registered runner knows, prints one line per case and output with its
// relative error (max|a-b| / max|golden|), and fails above the golden README's tolerance.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "evoformer/weights.h"
#include "io/hdf5_file.h"
#include "io/params.h"
#include "kernels/ops.h"
#include "test_util.h"

namespace axfold::test {

// Every dataset under `group` of f, keyed by its path below the group (the features/ and batch/ of a loss case).
inline std::map<std::string, Tensor> read_group(const io::Hdf5File& f, const std::string& group) {
    std::map<std::string, Tensor> m;
    for (const std::string& k : f.list(group)) m[k.substr(group.size() + 1)] = f.read(k);
    return m;
}

inline std::string golden_dir() {
    const char* env = std::getenv("AXFOLD_GOLDEN_DIR");
    return env && *env ? env : std::string(AXFOLD_TEST_DATA_DIR) + "/golden";
}

// Whether a set is AlphaFold-Multimer's (its config.json says "is_multimer": true): another network, with its own
// parameter names and modules, which the monomer tests do not read.
inline bool is_multimer_set(const std::filesystem::path& set) {
    std::ifstream in(set / "config.json");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str().find("\"is_multimer\": true") != std::string::npos;
}

// Set directories holding `file`, sorted by name: the monomer sets, or (multimer) AlphaFold-Multimer's.
inline std::vector<std::string> golden_sets(const std::string& file, bool multimer = false) {
    std::vector<std::string> sets;
    std::filesystem::path root(golden_dir());
    if (!std::filesystem::is_directory(root)) return sets;
    for (auto& e : std::filesystem::directory_iterator(root))
        if (e.is_directory() && std::filesystem::exists(e.path() / file) && is_multimer_set(e.path()) == multimer)
            sets.push_back(e.path().string());
    std::sort(sets.begin(), sets.end());
    return sets;
}

struct GoldenCase {
    const io::Hdf5File& file;
    std::string name;   // group name
    std::string scope;  // params_relative_to without the trailing '/'
    const ParamStore& params;
    Tensor input(const std::string& n) const { return file.read_f32(name + "/inputs/" + n); }
    Tensor input_raw(const std::string& n) const { return file.read(name + "/inputs/" + n); }
    bool has_output(const std::string& n) const { return file.has_dataset(name + "/outputs/" + n); }
    Tensor golden(const std::string& path) const { return file.read_f32(name + "/" + path); }
    ParamLookup lookup() const {
        return [this](const std::string& key) { return params.get(key); };
    }
};

// Returns a map "outputs/<name>" or "intermediates/<name>" -> our tensor.
using GoldenRunner = std::function<std::map<std::string, Tensor>(const GoldenCase&, Context&)>;

struct GoldenTolerance {
    double rel = 1e-4;         // of max|golden|, per tensor
    double rel_angles = 5e-4;  // outputs whose name contains "angles"
};

// mask [N] repeated over a leading axis (structure-module layers): [lead, N], for "mask:<output>" entries.
inline Tensor lead_mask(const Tensor& mask, int64_t lead) {
    Tensor m = Tensor::empty({lead, mask.numel()});
    for (int64_t l = 0; l < lead; ++l) m.select(0, l).copy_from(mask.contiguous().view({mask.numel()}));
    return m;
}

// Compares a runner's outputs with the case's golden tensors (1e-4 of max|golden| per tensor; angles 5e-4).
inline void expect_case_matches(const std::string& set_name, const GoldenCase& c,
                                const std::map<std::string, Tensor>& got, const GoldenTolerance& tol) {
    const std::string& name = c.name;
    EXPECT_FALSE(got.empty()) << name;
    for (const auto& [out, t] : got) {
        if (out.rfind("mask:", 0) == 0) continue;
        Tensor g = c.golden(out);
        EXPECT_EQ(t.shape(), g.shape()) << set_name << "/" << name << "/" << out;
        if (t.shape() != g.shape()) continue;
        std::vector<double> a = to_f64(t), b = to_f64(g);
        // Optional "mask:<output>" (a prefix of the output's shape): elements under a 0 are
        // ill-conditioned in the reference (golden README) and left out of the comparison.
        auto mk = got.find("mask:" + out);
        if (mk != got.end()) {
            std::vector<double> m = to_f64(mk->second);
            const size_t inner = a.size() / std::max<size_t>(m.size(), 1);
            for (size_t i = 0; i < a.size(); ++i)
                if (m[i / inner] == 0.0) a[i] = b[i] = 0.0;
        }
        auto res = compare(a, b, 0, 0, name + "/" + out, 0);
        double rel = res.rel();
        const double limit = out.find("angles") != std::string::npos ? tol.rel_angles : tol.rel;
        std::printf("golden %-16s %-36s %-50s rel %.3e %s\n", set_name.c_str(), name.c_str(), out.c_str(), rel,
                    rel <= limit ? "ok" : "FAIL");
        EXPECT_LE(rel, limit) << set_name << "/" << name << "/" << out;
    }
}

// Runs every case of every set that has a runner; returns the number of cases run.
inline int run_golden_cases(const std::map<std::string, GoldenRunner>& runners, GoldenTolerance tol = {}) {
    int ran = 0;
    for (const std::string& set : golden_sets("module_cases.h5")) {
        io::Hdf5File f(set + "/module_cases.h5");
        std::string pfile = std::filesystem::exists(set + "/params.npz") ? set + "/params.npz" : set + "/params.h5";
        ParamStore params = ParamStore::load(pfile);
        std::string set_name = std::filesystem::path(set).filename().string();
        for (const auto& [name, runner] : runners) {
            if (!f.has(name)) continue;
            std::string scope = f.read_string_attr(name, "params_relative_to");
            if (!scope.empty() && scope.back() == '/') scope.pop_back();
            GoldenCase c{f, name, scope, params};
            Context ctx;
            expect_case_matches(set_name, c, runner(c, ctx), tol);
            ++ran;
        }
    }
    return ran;
}

// AlphaFold-Multimer set directories holding `file`, sorted by name.
inline std::vector<std::string> multimer_golden_sets(const std::string& file) {
    return golden_sets(file, true);
}

// The multimer module cases: each case holds its own parameters under params/ (the AF2 key without
// "alphafold/alphafold_iteration/", '/' for '//', one layer of a stack), which the runner reads by full AF2 key
// (GoldenCase::scope is empty).
inline int run_multimer_golden_cases(const std::map<std::string, GoldenRunner>& runners, GoldenTolerance tol = {}) {
    int ran = 0;
    for (const std::string& set : multimer_golden_sets("module_cases.h5")) {
        io::Hdf5File f(set + "/module_cases.h5");
        const std::string set_name = std::filesystem::path(set).filename().string();
        for (const auto& [name, runner] : runners) {
            if (!f.has(name)) continue;
            ParamStore params;
            const std::string group = name + "/params";
            for (const std::string& k : f.list(group)) {
                const std::string rel = k.substr(group.size() + 1);
                const size_t slash = rel.rfind('/');
                std::string key = "alphafold/alphafold_iteration/";
                key.append(rel, 0, slash).append("//").append(rel, slash + 1, std::string::npos);
                params.insert(key, f.read(k));
            }
            GoldenCase c{f, name, "", params};
            Context ctx;
            expect_case_matches(set_name, c, runner(c, ctx), tol);
            ++ran;
        }
    }
    return ran;
}

}  // namespace axfold::test
