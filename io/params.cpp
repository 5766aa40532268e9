// AlphaFold2 parameter store: .npz / params.h5 loading, lookup with helpful misses, saving.
#include "io/params.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "io/hdf5_file.h"
#include "io/npz.h"

namespace axfold {

namespace {

constexpr char kNpzKeyAttr[] = "npz_key";

Tensor to_f32_cpu(const Tensor& t) {
    return host_cast(t, DType::F32);
}

// Weights are finite and below 1e9 in magnitude (a bound meant to lie far above any trained weight; 3e38 from
// a corrupt file would otherwise surface as a degenerate rotation deep in the structure module).
void check_values(const Tensor& t, const std::string& key, const std::string& file) {
    constexpr float kMax = 1e9f;
    const float* p = t.f32();
    const int64_t n = t.numel();
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < n; ++i) {
        if (!(std::fabs(p[i]) <= kMax)) {  // NaN fails too
            if (first < 0) first = i;
            ++bad;
        }
    }
    AXF_CHECK(bad == 0,
              "parameter '%s' in '%s' has %lld values that are not finite or exceed %g in magnitude (the first, %g, "
              "at flat index %lld); the file is corrupt or the weights diverged",
              key.c_str(), file.c_str(), static_cast<long long>(bad), kMax, bad ? p[first] : 0.0f,
              static_cast<long long>(first));
}

size_t edit_distance(const std::string& a, const std::string& b) {
    std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
        cur[0] = i;
        for (size_t j = 1; j <= b.size(); ++j) {
            cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
        }
        std::swap(prev, cur);
    }
    return prev[b.size()];
}

size_t common_prefix(const std::string& a, const std::string& b) {
    size_t n = 0;
    while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
    return n;
}

// The '//' separating Haiku scope and parameter name cannot be an HDF5 path; it becomes one '/'.
std::string key_to_h5_path(const std::string& key) {
    std::string p;
    for (size_t i = 0; i < key.size(); ++i) {
        if (key[i] == '/' && i + 1 < key.size() && key[i + 1] == '/') continue;
        p += key[i];
    }
    return p;
}

// Every AlphaFold2 key is "<module path>//<name>", so the dataset path gives it back exactly; the npz_key attribute
// is written for other readers and not read here (a string attribute of an untrusted file is one thing libhdf5
// 1.10 reads unchecked: docs/RELIABILITY.md).
std::string h5_path_to_key(const std::string& path) {
    const size_t slash = path.rfind('/');
    if (slash == std::string::npos) return path;
    return path.substr(0, slash) + "/" + path.substr(slash);
}

enum class Format { Npz, Hdf5 };

Format detect_format(const std::string& path) {
    std::error_code ec;
    AXF_CHECK(std::filesystem::exists(path, ec), "parameter file '%s' not found", path.c_str());
    AXF_CHECK(std::filesystem::is_regular_file(path, ec), "parameter file '%s' is not a regular file", path.c_str());
    std::FILE* f = std::fopen(path.c_str(), "rb");
    AXF_CHECK(f, "cannot open parameter file '%s': %s", path.c_str(), std::strerror(errno));
    unsigned char magic[8] = {};
    const size_t n = std::fread(magic, 1, sizeof(magic), f);
    std::fclose(f);
    AXF_CHECK(n > 0, "parameter file '%s' is empty (0 bytes); expected AlphaFold2 params (.npz or .h5)", path.c_str());
    if (n >= 4 && std::memcmp(magic, "PK\x03\x04", 4) == 0) return Format::Npz;
    if (n >= 4 && std::memcmp(magic, "PK\x05\x06", 4) == 0) return Format::Npz;  // empty zip
    if (n == 8 && std::memcmp(magic, "\x89HDF\r\n\x1a\n", 8) == 0) return Format::Hdf5;
    std::string hex;
    for (size_t i = 0; i < n; ++i) hex += strfmt("%02x", magic[i]);
    AXF_FAIL(
        "parameter file '%s' is neither a NumPy .npz (zip, starts with 504b0304) nor HDF5 (starts with "
        "894844460d0a1a0a); its first bytes are %s",
        path.c_str(), hex.c_str());
}

}  // namespace

std::map<std::string, Shape> read_param_shapes(const std::string& path) {
    std::map<std::string, Shape> out;
    if (detect_format(path) == Format::Npz) {
        out = io::read_npz_shapes(path);
    } else {
        io::Hdf5File h5(path);
        for (const std::string& ds : h5.list("/", true)) out[h5_path_to_key(ds)] = h5.shape(ds);
    }
    AXF_CHECK(!out.empty(), "parameter file '%s' holds no arrays", path.c_str());
    return out;
}

ParamStore ParamStore::load(const std::string& path) {
    ParamStore store;
    store.path_ = path;
    if (detect_format(path) == Format::Npz) {
        for (auto& [key, t] : io::read_npz(path)) {
            Tensor f = to_f32_cpu(t);
            check_values(f, key, path);
            store.params_.emplace(key, std::move(f));
        }
    } else {
        io::Hdf5File h5(path);
        for (const std::string& ds : h5.list("/", true)) {
            const std::string key = h5_path_to_key(ds);
            Tensor f = h5.read_f32(ds);
            check_values(f, key, path);
            AXF_CHECK(store.params_.emplace(key, std::move(f)).second,
                      "'%s' holds two datasets for parameter '%s' (the second at '%s')", path.c_str(), key.c_str(),
                      ds.c_str());
        }
    }
    AXF_CHECK(!store.params_.empty(), "parameter file '%s' holds no arrays", path.c_str());
    return store;
}

bool ParamStore::has(const std::string& key) const {
    return params_.count(key) > 0;
}

const Tensor& ParamStore::get(const std::string& key, const Shape& expected_shape) const {
    const std::string file = path_.empty() ? std::string("<in-memory parameters>") : path_;
    auto it = params_.find(key);
    if (it == params_.end()) {
        AXF_CHECK(!params_.empty(), "parameter '%s' not found: '%s' holds no parameters", key.c_str(), file.c_str());
        const std::string* best = nullptr;
        size_t best_d = 0, best_p = 0;
        for (const auto& [k, t] : params_) {
            const size_t d = edit_distance(key, k), p = common_prefix(key, k);
            if (!best || d < best_d || (d == best_d && p > best_p)) {
                best = &k;
                best_d = d;
                best_p = p;
            }
        }
        AXF_FAIL(
            "parameter '%s' not found in '%s' (%zu arrays); nearest existing key: '%s'. Is this a parameter "
            "file for the same AlphaFold2 model preset?",
            key.c_str(), file.c_str(), params_.size(), best->c_str());
    }
    if (!expected_shape.empty()) {
        AXF_CHECK(it->second.shape() == expected_shape,
                  "parameter '%s' in '%s' has shape %s, expected %s (wrong model preset or channel sizes?)",
                  key.c_str(), file.c_str(), shape_str(it->second.shape()).c_str(), shape_str(expected_shape).c_str());
    }
    return it->second;
}

std::vector<std::string> ParamStore::keys() const {
    std::vector<std::string> k;
    k.reserve(params_.size());
    for (const auto& [key, t] : params_) k.push_back(key);
    return k;  // std::map iterates in sorted order
}

int64_t ParamStore::num_scalars() const {
    int64_t n = 0;
    for (const auto& [key, t] : params_) n += t.numel();
    return n;
}

std::map<std::string, Shape> ParamStore::shapes() const {
    std::map<std::string, Shape> out;
    for (const auto& [key, t] : params_) out.emplace_hint(out.end(), key, t.shape());
    return out;
}

void ParamStore::insert(const std::string& key, Tensor t) {
    AXF_CHECK(!key.empty(), "ParamStore::insert: empty key");
    AXF_CHECK(t.defined(), "ParamStore::insert: undefined tensor for '%s'", key.c_str());
    params_[key] = to_f32_cpu(t);
}

void ParamStore::save_h5(const std::string& path) const {
    std::map<std::string, std::string> owner;  // HDF5 path -> key
    for (const auto& [key, t] : params_) {
        auto [it, fresh] = owner.emplace(key_to_h5_path(key), key);
        AXF_CHECK(fresh, "cannot save parameters to '%s': keys '%s' and '%s' both map to HDF5 path '%s'", path.c_str(),
                  it->second.c_str(), key.c_str(), it->first.c_str());
    }
    io::Hdf5Writer w(path);
    w.write_string_attr("/", "description",
                        "AlphaFold2 parameters, one dataset per npz key. HDF5 collapses the '//' separating Haiku "
                        "module scope and parameter name into one group level, so each dataset also carries "
                        "attribute 'npz_key' with the exact npz key.");
    for (const auto& [key, t] : params_) {
        const std::string p = key_to_h5_path(key);
        w.write(p, t);
        w.write_string_attr(p, kNpzKeyAttr, key);
    }
    w.commit();
}

void ParamStore::save_npz(const std::string& path) const {
    io::write_npz(path, params_);
}

}  // namespace axfold
