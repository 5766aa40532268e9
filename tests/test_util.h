// Helpers shared by the tests: random tensors, float64 conversion, tolerance checks that print the first
// mismatches and a relative-norm summary, seeded generators that print their seed with every failure, and
// per-test temporary directories.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "kernels/device.h"
#include "kernels/ops.h"
#include "kernels/tensor.h"

namespace axfold::test {

// Whether the device tests run: on a CUDA device, or without one under DeviceEmulation (kernels/device.h) when
// AXFOLD_TEST_EMULATE_DEVICE=1 (the ctest runs labelled `emulated`): the device code paths' glue, checked on the
// CPU. The emulation stays on for the rest of the process.
inline bool device_or_emulation() {
    if (cuda_available()) return true;
    static const bool emulated = [] {
        const char* e = std::getenv("AXFOLD_TEST_EMULATE_DEVICE");
        if (!e || std::string(e) != "1") return false;
        static DeviceEmulation emulation;
        return true;
    }();
    return emulated;
}
#define AXF_SKIP_WITHOUT_DEVICE() \
    if (!::axfold::test::device_or_emulation()) GTEST_SKIP() << "no CUDA device (AXFOLD_TEST_EMULATE_DEVICE=1 emulates one)"


inline Tensor randn(const Shape& shape, std::mt19937& rng, float stddev = 1.f) {
    Tensor t = Tensor::empty(shape);
    std::normal_distribution<float> d(0.f, stddev);
    float* p = t.f32();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = d(rng);
    return t;
}

// 0/1 mask with roughly `zero_frac` zeros.
inline Tensor random_mask(const Shape& shape, std::mt19937& rng, float zero_frac = 0.15f) {
    Tensor t = Tensor::empty(shape);
    std::uniform_real_distribution<float> u(0.f, 1.f);
    float* p = t.f32();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = u(rng) < zero_frac ? 0.f : 1.f;
    return t;
}

// Values of any tensor (any dtype, any device, any strides) as float64, row-major.
inline std::vector<double> to_f64(const Tensor& t) {
    return host_float64(t);
}

// max |a - b| / max |b| over every element (INFINITY when a holds a non-finite value; max |a - b| when b is 0).
inline double rel_diff(const Tensor& a, const Tensor& b) {
    const std::vector<double> x = to_f64(a), y = to_f64(b);
    double m = 0, r = 0;
    for (size_t i = 0; i < x.size(); ++i) {
        if (!std::isfinite(x[i])) return INFINITY;
        m = std::max(m, std::fabs(x[i] - y[i]));
        r = std::max(r, std::fabs(y[i]));
    }
    return r > 0 ? m / r : m;
}

inline double max_abs(const Tensor& t) {
    double m = 0;
    for (double v : to_f64(t)) m = std::max(m, std::fabs(v));
    return m;
}

struct CompareResult {
    double max_abs = 0, max_ref = 0, rel_norm = 0;
    int64_t bad = 0;
    double rel() const { return max_ref > 0 ? max_abs / max_ref : max_abs; }
};

// |a - r| <= atol + rtol * |r| elementwise; prints the first few mismatches.
inline CompareResult compare(const std::vector<double>& a, const std::vector<double>& r, double atol, double rtol,
                             const std::string& what, int print = 5) {
    CompareResult res;
    EXPECT_EQ(a.size(), r.size()) << what;
    double num = 0, den = 0;
    for (size_t i = 0; i < std::min(a.size(), r.size()); ++i) {
        double d = std::fabs(a[i] - r[i]);
        if (!(d <= atol + rtol * std::fabs(r[i]))) {
            if (res.bad < print) std::printf("  %s[%zu]: got %.8g, expected %.8g\n", what.c_str(), i, a[i], r[i]);
            ++res.bad;
        }
        res.max_abs = std::max(res.max_abs, std::isnan(d) ? INFINITY : d);
        res.max_ref = std::max(res.max_ref, std::fabs(r[i]));
        num += d * d;
        den += r[i] * r[i];
    }
    res.rel_norm = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
    return res;
}

inline void expect_close(const Tensor& a, const std::vector<double>& r, double atol, double rtol,
                         const std::string& what) {
    auto res = compare(to_f64(a), r, atol, rtol, what);
    EXPECT_EQ(res.bad, 0) << what << ": max abs err " << res.max_abs << ", rel norm " << res.rel_norm;
}

// Sets the process's GEMM precision for a scope and restores the previous one, whatever the test asserted.
using PrecisionScope = MatmulPrecisionScope;

// "seed 42": the text SeededRng traces; for SCOPED_TRACE(test::seed_message(seed)) beside a plain generator.
inline std::string seed_message(uint64_t seed) {
    return "seed " + std::to_string(seed);
}

// A std::mt19937 whose seed is printed with every failure in its scope (a gtest ScopedTrace at the line that
// made it) and recorded as the test's "seed" property (the XML report), so a failing random case can be
// reproduced. Use it wherever a std::mt19937 goes:
//     test::SeededRng rng(42);   // or: auto rng = test::seeded_rng(42);
//     Tensor x = test::randn({4, 8}, rng);
// Neither copyable nor movable (the trace belongs to its scope).
class SeededRng : public std::mt19937 {
public:
    // The caller's file and line by __builtin_FILE/LINE (GCC and clang): clang 14 lacks std::source_location.
    explicit SeededRng(uint32_t seed, const char* file = __builtin_FILE(), int line = __builtin_LINE())
        : std::mt19937(seed), seed_(seed), trace_(file, line, seed_message(seed)) {
        ::testing::Test::RecordProperty("seed", std::to_string(seed));
    }
    SeededRng(const SeededRng&) = delete;
    SeededRng& operator=(const SeededRng&) = delete;
    uint32_t seed_value() const { return seed_; }  // not seed(): std::mt19937::seed(v) reseeds

private:
    uint32_t seed_;
    ::testing::ScopedTrace trace_;
};
// The same, traced at the caller's line.
inline SeededRng seeded_rng(uint32_t seed, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
    return SeededRng(seed, file, line);
}

// Runs fn and expects an axfold::Error whose message contains every needle (the file, the dataset, the value).
template <class F>
void expect_error(F&& fn, const std::vector<std::string>& needles) {
    try {
        fn();
        ADD_FAILURE() << "no axfold::Error thrown";
    } catch (const Error& e) {
        const std::string msg = e.what();
        for (const std::string& n : needles)
            EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
    }
}

// A file's bytes.
inline std::string read_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Whether a temporary of `path` is left beside it (path + ".tmp", or + ".tmp.<pid>" as the atomic writers name them).
inline bool has_temporary(const std::string& path) {
    const std::filesystem::path p(path);
    const std::string prefix = p.filename().string() + ".tmp";
    if (!std::filesystem::is_directory(p.parent_path())) return false;
    for (const auto& e : std::filesystem::directory_iterator(p.parent_path()))
        if (e.path().filename().string().rfind(prefix, 0) == 0) return true;
    return false;
}

// A fresh directory under std::filesystem::temp_directory_path(), named after the running test
// ("axfold_<suite>_<test>_XXXXXX", made by mkdtemp, so parallel ctest runs and repeated tests never share one),
// removed with everything in it when the object goes out of scope.
class TempDir {
public:
    TempDir() {
        std::string name = "axfold";
        if (const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info())
            name = name + "_" + info->test_suite_name() + "_" + info->name();
        for (char& c : name)
            if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') c = '_';
        if (name.size() > 120) name.resize(120);  // one path component stays well under NAME_MAX
        std::string templ = (std::filesystem::temp_directory_path() / (name + "_XXXXXX")).string();
        if (::mkdtemp(templ.data()) == nullptr)
            throw std::system_error(errno, std::generic_category(), "TempDir: cannot create " + templ);
        path_ = templ;
    }
    ~TempDir() {
        std::error_code ec;  // a destructor does not throw; a leftover directory is harmless
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::filesystem::path& path() const { return path_; }
    std::string str() const { return path_.string(); }
    // A path inside the directory (not created): dir / "out.h5".
    std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

private:
    std::filesystem::path path_;
};

}  // namespace axfold::test
