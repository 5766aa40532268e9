// Pieces both feature transforms share (pipeline/transforms.cpp for monomers, pipeline/multimer_transforms.cpp
// for AlphaFold-Multimer): MSA constants, the deletion value, the random stream and the stacking of per-iteration
// tensors. Internal to pipeline/.
#pragma once

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include "kernels/tensor.h"

namespace axfold::pipeline {

constexpr int kMaskToken = 22;  // MSA classes: 20 amino acids, X 20, gap 21, mask 22
constexpr int kMsaFeat = 49;    // msa_feat channels

// A tensor's values as float32, on the host.
inline std::vector<float> f32_values(const Tensor& t) {
    const Tensor c = host_cast(t, DType::F32);
    return std::vector<float>(c.f32(), c.f32() + c.numel());
}

// AF2's deletion value atan(d / 3) * 2 / pi.
inline float deletion_value(double d) {
    return static_cast<float>(std::atan(d / 3.0) * (2.0 / std::numbers::pi));
}

// splitmix64: a small, well-mixed generator whose stream is fully defined by its seed.
class Rng {
public:
    explicit Rng(uint64_t seed) : s_(seed) {}
    uint64_t next() {
        uint64_t z = (s_ += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
    uint64_t below(uint64_t n) { return next() % n; }  // bias < n / 2^64
    template <class T>
    void shuffle(std::vector<T>& v) {
        for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[below(i)]);
    }

private:
    uint64_t s_;
};

// The seed of iteration `iteration`'s step `step` (independent streams).
inline uint64_t stream_seed(uint64_t seed, uint64_t iteration, uint64_t step) {
    Rng r(seed ^ (0xa0761d6478bd642full * (iteration + 1)) ^ (0xe7037ed1a0b428dbull * (step + 1)));
    return r.next();
}

// Stacks per-iteration tensors of one shape along a new leading axis [R, ...].
template <class T>
Tensor stack(const std::vector<Tensor>& per_iter) {
    Shape shape = per_iter[0].shape();
    shape.insert(shape.begin(), static_cast<int64_t>(per_iter.size()));
    Tensor out = Tensor::empty(shape, dtype_of<T>());
    const int64_t n = per_iter[0].numel();
    for (size_t r = 0; r < per_iter.size(); ++r)
        std::copy_n(per_iter[r].data<T>(), n, out.data<T>() + static_cast<int64_t>(r) * n);
    return out;
}

inline Tensor tile(const Tensor& t, int R) {
    std::vector<Tensor> v(static_cast<size_t>(R), t);
    return t.dtype() == DType::I64 ? stack<int64_t>(v) : stack<float>(v);
}

}  // namespace axfold::pipeline
