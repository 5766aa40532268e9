#include "evoformer/dropout.h"

#include <vector>

namespace axfold {

namespace {

uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

}  // namespace

DropoutSpec dropout_spec(DropoutSite site) {
    switch (site) {
        case DropoutSite::MsaRowAttention: return {0.15f, false};
        case DropoutSite::TriangleAttentionEnding: return {0.25f, true};
        default: return {0.25f, false};
    }
}

uint64_t derive_dropout_key(uint64_t key, uint64_t index) {
    if (key == 0) return 0;
    const uint64_t k = mix(key + 0x9E3779B97F4A7C15ull * (index + 1));
    return k == 0 ? 1 : k;
}

void apply_dropout(const Tensor& u, uint64_t key, DropoutSite site, int64_t a_offset, int64_t b_offset) {
    if (key == 0 || site == DropoutSite::None) return;
    AXF_CHECK(u.dim() == 3 && u.size(2) <= 4096 && u.dtype() == DType::F32 && u.is_contiguous(),
              "dropout: %s, expected a contiguous float32 [A, B, C] update", u.desc().c_str());
    const DropoutSpec spec = dropout_spec(site);
    const int64_t A = u.size(0), B = u.size(1), C = u.size(2);
    const uint64_t site_key = mix(key ^ (0xD1B54A32D192ED03ull * static_cast<uint64_t>(site)));
    // keep iff the hash's top 24 bits fall below (1 - rate) * 2^24.
    const uint64_t threshold = static_cast<uint64_t>((1.0 - spec.rate) * 16777216.0);
    const float scale = 1.f / (1.f - spec.rate);
    auto factor = [&](int64_t index, int64_t c) {
        const uint64_t h = mix(site_key + 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(index * 4096 + c + 1));
        return (h >> 40) < threshold ? scale : 0.f;
    };
    // The mask along the kept axis, drawn once on the host and broadcast over the other on u's device.
    const int64_t K = spec.per_column ? A : B, offset = spec.per_column ? a_offset : b_offset;
    Tensor mask = Tensor::empty({K, C});
    for (int64_t i = 0; i < K; ++i)
        for (int64_t c = 0; c < C; ++c) mask.f32()[i * C + c] = factor(i + offset, c);
    mask = mask.to(u.device()).view(spec.per_column ? Shape{A, 1, C} : Shape{1, B, C});
    mul(u, mask.expand(u.shape()));
}

void apply_elementwise_dropout(const Tensor& u, uint64_t key, float rate) {
    if (key == 0) return;
    AXF_CHECK(u.dtype() == DType::F32 && u.is_contiguous(), "dropout: %s, expected a contiguous float32 tensor",
              u.desc().c_str());
    AXF_CHECK(rate >= 0.f && rate < 1.f, "dropout: rate %g outside [0, 1)", rate);
    const uint64_t threshold = static_cast<uint64_t>((1.0 - rate) * 16777216.0), k = mix(key);
    const float scale = 1.f / (1.f - rate);
    Tensor mask = Tensor::empty(u.shape());
    for (int64_t i = 0; i < u.numel(); ++i)
        mask.f32()[i] = (mix(k + 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(i + 1)) >> 40) < threshold ? scale : 0.f;
    mul(u, mask.to(u.device()));
}

}  // namespace axfold
