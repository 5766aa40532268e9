// `axfold bench evoformer`: times Evoformer blocks at AF2 monomer widths on random inputs.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>

#include "apps/commands.h"
#include "evoformer/evoformer_stack.h"
#include "evoformer/param_shapes.h"
#include "kernels/ops.h"

namespace axfold::apps {

namespace {

size_t peak_rss_bytes() {
    struct rusage ru {};
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<size_t>(ru.ru_maxrss) * 1024;
}

Tensor random_tensor(const Shape& shape, std::mt19937& rng, float stddev) {
    Tensor t = Tensor::empty(shape);
    std::normal_distribution<float> d(0.f, stddev);
    for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = d(rng);
    return t;
}

}  // namespace

int bench_evoformer_main(const BenchEvoformerOptions& o) {
    AXF_CHECK(o.n_seq > 0 && o.n_res > 0 && o.blocks > 0, "bench evoformer: --n-seq, --n-res and --blocks must be positive");
    set_num_threads(o.threads);
    const EvoformerDims d = EvoformerDims::af2_evoformer();
    std::map<std::string, Tensor> params;
    for (auto& [key, shape] : evoformer_block_param_shapes(d, false)) params[key] = init_param(key, shape, 1234);
    EvoformerBlockWeights w;
    bind_params(w, "", [&](const std::string& k) { return params.at(k); });

    std::mt19937 rng(7);
    const int64_t S = o.n_seq, R = o.n_res;
    Tensor m = random_tensor({S, R, d.c_m}, rng, 1.f), z = random_tensor({R, R, d.c_z}, rng, 1.f);
    Tensor msa_mask = Tensor::full({S, R}, 1.f), pair_mask = Tensor::full({R, R}, 1.f);
    Context ctx;
    // One untimed block sizes the workspace arena.
    evoformer_block_forward(w, m, z, msa_mask, pair_mask, ctx);
    std::vector<double> times;
    std::vector<std::pair<std::string, double>> stages;  // per sub-module seconds, summed over blocks
    for (int b = 0; b < o.blocks; ++b) {
        auto t0 = std::chrono::steady_clock::now();
        auto last = t0;
        size_t k = 0;
        auto observe = [&](const char* name, const Tensor&) {
            auto now = std::chrono::steady_clock::now();
            if (stages.size() <= k) stages.push_back({name, 0.0});
            stages[k++].second += std::chrono::duration<double>(now - last).count();
            last = now;
        };
        evoformer_block_forward(w, m, z, msa_mask, pair_mask, ctx, {}, o.breakdown ? BlockObserver(observe) : nullptr);
        auto end = std::chrono::steady_clock::now();
        if (o.breakdown) {
            if (stages.size() <= k) stages.push_back({"pair_after_transition", 0.0});
            stages[k].second += std::chrono::duration<double>(end - last).count();
        }
        times.push_back(std::chrono::duration<double>(end - t0).count());
    }
    for (auto& [name, sec] : stages)
        std::fprintf(stderr, "  %-48s %.3f s/block\n", name.c_str(), sec / o.blocks);
    std::sort(times.begin(), times.end());
    const double median = times[times.size() / 2];
    const double s = static_cast<double>(S), r = static_cast<double>(R);
    const double flop = 2.39e6 * s * r + 3072 * s * r * r + 1024 * s * s * r + 1.25e6 * r * r + 1536 * r * r * r;
    const double gflops = flop / median / 1e9;
    const size_t rss = peak_rss_bytes();
    if (o.json) {
        std::printf(
            "{\"benchmark\": \"evoformer\", \"n_seq\": %lld, \"n_res\": %lld, \"threads\": %d, \"blocks\": %d, "
            "\"seconds_per_block\": %.6f, \"gflop_per_s\": %.2f, \"peak_rss_bytes\": %zu, "
            "\"workspace_bytes\": %zu}\n",
            (long long)S, (long long)R, num_threads(), o.blocks, median, gflops, rss, ctx.ws.high_water_bytes());
    } else {
        std::printf(
            "evoformer block S=%lld R=%lld threads=%d blocks=%d: median %.3f s/block, %.1f GFLOP/s, "
            "peak RSS %.1f MiB (workspace %.1f MiB)\n",
            (long long)S, (long long)R, num_threads(), o.blocks, median, gflops, rss / 1048576.0,
            ctx.ws.high_water_bytes() / 1048576.0);
    }
    return 0;
}

}  // namespace axfold::apps
