// `axfold bench evoformer`: times Evoformer blocks at AF2 monomer widths on random inputs.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <random>
#include <sstream>

#include "apps/predict.h"
#include "evoformer/evoformer_dap.h"
#include "evoformer/evoformer_stack.h"
#include "evoformer/memory_plan.h"
#include "evoformer/param_shapes.h"
#include "io/params.h"
#include "kernels/device.h"
#include "kernels/ops.h"
#include "model/model_params.h"
#include "training/ground_truth.h"
#include "training/optimizer.h"
#include "training/training.h"
#include "training/training_plan.h"

namespace axfold::apps {

namespace {

size_t current_rss_bytes() {
    long pages = 0, resident = 0;
    if (FILE* f = std::fopen("/proc/self/statm", "r")) {
        if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
        std::fclose(f);
    }
    return static_cast<size_t>(resident) * 4096;
}

Tensor random_tensor(const Shape& shape, std::mt19937& rng, float stddev) {
    Tensor t = Tensor::empty(shape);
    std::normal_distribution<float> d(0.f, stddev);
    for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = d(rng);
    return t;
}

}  // namespace

int bench_evoformer_main(const BenchEvoformerOptions& o) {
    AXF_CHECK(o.n_seq > 0 && o.n_res > 0 && o.blocks > 0,
              "bench evoformer: --n-seq, --n-res and --blocks must be positive");
    const RunTarget target = configure_run(o.run);
    if (!target.note.empty()) std::fprintf(stderr, "axfold: %s\n", target.note.c_str());
    const Device device = target.device;
    const DType act_dtype = target.activations;
    // DAP: under an MPI launcher the block runs over every rank (rank 0 reports); --dap forces it on one (on
    // the CPU). On GPUs the block's collectives go over NCCL (gpu_dap_comm, made before anything touches a
    // device: it selects this rank's GPU); the timings are gathered over the MPI world either way.
    Comm& comm = world_comm();
    const std::unique_ptr<Comm> nccl = device == Device::CUDA ? gpu_dap_comm(comm) : nullptr;
    Comm& dap_comm = nccl ? *nccl : comm;
    const EvoformerDims d = EvoformerDims::af2_evoformer();
    std::map<std::string, Tensor> params;
    for (auto& [key, shape] : evoformer_block_param_shapes(d, false))
        params[key] = init_param(key, shape, 1234).to(device);
    EvoformerBlockWeights w;
    bind_params(w, "", [&](const std::string& k) { return params.at(k); });

    std::mt19937 rng(7);
    const int64_t S = o.n_seq, R = o.n_res;
    Tensor m = random_tensor({S, R, d.c_m}, rng, 1.f).to(device), z = random_tensor({R, R, d.c_z}, rng, 1.f).to(device);
    Tensor msa_mask = Tensor::full({S, R}, 1.f).to(device), pair_mask = Tensor::full({R, R}, 1.f).to(device);
    Context ctx(device);
    BlockSizes bs;
    bs.n_seq = S;
    bs.n_res = R;
    bs.threads = num_threads();
    bs.cuda = device == Device::CUDA;
    bs.bf16_gemm_copies = bs.cuda && matmul_precision() == MatmulPrecision::Bf16;
    // Fixed: what the process holds besides the block's activations and workspace (code, libraries,
    // weights, masks, and the BLAS library's own buffers, which a first GEMM allocates).
    {
        Tensor a = Tensor::full({256, 256}, 1.f), c = Tensor::empty({256, 256});
        matmul(a, a, c);
    }
    // On a GPU: the block's weights, the masks and cuBLAS's workspace beside the MSA, pair and workspace.
    const size_t rss_now = current_rss_bytes(), activations = block_activation_bytes(bs);
    size_t device_fixed = kCublasWorkspaceBytes + (msa_mask.numel() + pair_mask.numel()) * 4;
    for (auto& [key, t] : params) device_fixed += static_cast<size_t>(t.numel()) * 4;
    const size_t fixed = device == Device::CPU ? (rss_now > activations ? rss_now - activations : 0) : device_fixed;
    // bfloat16 activations (--precision bf16 or --activations bf16): the block's MSA and pair are stored in
    // bfloat16 (the float32 originals freed).
    m = to_dtype(m, act_dtype);
    z = to_dtype(z, act_dtype);
    bs.act_bytes = static_cast<int>(dtype_size(act_dtype));
    ctx.activation_dtype = act_dtype;
    const size_t budget = o.run.max_memory.empty() ? 0 : parse_bytes(o.run.max_memory);
    const ChunkPlan plan = plan_blocks({bs}, fixed, budget, o.run.chunk_size);
    ctx.chunk_size = plan.chunk_size;
    ctx.ws.reserve(plan.predicted_workspace_bytes);
    const bool dap = comm.size() > 1 || o.dap;
    AXF_CHECK(!(o.dap && comm.size() == 1 && device != Device::CPU),
              "bench evoformer: --dap on one rank runs on the CPU only (on GPUs DAP needs NCCL and two or more ranks)");
    DapActivations act;
    if (dap) act = dap_scatter(dap_comm, m, z, msa_mask, pair_mask);
    // --backward: the block's backward (its forward replayed, then every sub-module's backward) from random
    // output gradients, one rank or DAP.
    AXF_CHECK(!o.backward || (device == Device::CPU && act_dtype == DType::F32 && !o.breakdown),
              "bench evoformer: --backward runs on the CPU with float32 activations, without --breakdown");
    Tensor dm0, dz0;
    DapActivations grad;
    EvoformerBlockWeights grads;
    if (o.backward) {
        dm0 = random_tensor({S, R, d.c_m}, rng, 1.f);
        dz0 = random_tensor({R, R, d.c_z}, rng, 1.f);
        grads = zeros_like_weights(w);
        if (dap) grad = dap_scatter(dap_comm, dm0, dz0, msa_mask, pair_mask);
    }
    auto run_block = [&](const BlockObserver& observe) {
        if (o.backward) {
            if (dap) {
                dap_evoformer_block_backward(w, act, grad, grads, ctx);
            } else {
                Tensor dm = dm0.clone(), dz = dz0.clone();
                evoformer_block_backward(w, m, z, msa_mask, pair_mask, dm, dz, grads, ctx);
            }
            return;
        }
        if (dap)
            dap_evoformer_block_forward(w, act, ctx, {}, observe);
        else
            evoformer_block_forward(w, m, z, msa_mask, pair_mask, ctx, {}, observe);
    };
    // One untimed block sizes the workspace arena.
    run_block(nullptr);
    if (device != Device::CPU) device_synchronize();
    if (dap) {
        dap_m_to_rows(act);
        comm.barrier();
    }
    dap_comm.stats().reset();
    std::vector<double> times;
    std::vector<std::pair<std::string, double>> stages;  // per sub-module seconds, summed over blocks
    // Blocks run back to back, as in a stack: a block's last re-sharding (m back to rows) is waited for
    // by the next block, so it is timed there.
    for (int b = 0; b < o.blocks; ++b) {
        auto t0 = std::chrono::steady_clock::now();
        auto last = t0;
        size_t k = 0;
        auto observe = [&](const char* name, const Tensor&) {
            if (device != Device::CPU) device_synchronize();  // time the sub-module's queued kernels
            auto now = std::chrono::steady_clock::now();
            if (stages.size() <= k) stages.push_back({name, 0.0});
            stages[k++].second += std::chrono::duration<double>(now - last).count();
            last = now;
        };
        run_block(o.breakdown ? BlockObserver(observe) : nullptr);
        if (dap && b == o.blocks - 1) dap_m_to_rows(act);
        if (device != Device::CPU) device_synchronize();  // CUDA work is queued asynchronously
        auto end = std::chrono::steady_clock::now();
        if (o.breakdown) {
            if (stages.size() <= k) stages.push_back({"pair_after_transition", 0.0});
            stages[k].second += std::chrono::duration<double>(end - last).count();
        }
        times.push_back(std::chrono::duration<double>(end - t0).count());
    }
    const CommStats cs = dap_comm.stats();
    // The slowest rank's time of each block.
    Tensor mine = Tensor::zeros({1, o.blocks}), all = Tensor::empty({comm.size(), o.blocks});
    for (int b = 0; b < o.blocks; ++b) mine.f32()[b] = static_cast<float>(times[b]);
    comm.all_gather(mine, all)->wait();
    Tensor exposed = Tensor::full({1}, static_cast<float>(cs.exposed_seconds));
    comm.all_reduce_sum(exposed)->wait();
    for (int b = 0; b < o.blocks; ++b)
        for (int r = 0; r < comm.size(); ++r) times[b] = std::max<double>(times[b], all.f32()[r * o.blocks + b]);
    if (comm.rank() != 0) return 0;
    std::fflush(stdout);
    const size_t rss = peak_rss_bytes();  // before the ceiling's GEMM below allocates
    if (o.breakdown) {
        // Each sub-module's GFLOP/s (its share of the block's count below) against this machine's GEMM
        // ceiling: a 2048^3 GEMM at the run's precision, best of three, timed after the blocks.
        const double s = static_cast<double>(S), r = static_cast<double>(R);
        const std::map<std::string, double> module_flop = {
            {"msa_after_row_attention", 655360 * s * r + 1024 * s * r * r + 2048 * r * r},
            {"msa_after_column_attention", 655360 * s * r + 1024 * s * s * r},
            {"msa_after_transition", 1048576 * s * r},
            {"pair_after_outer_product_mean", 32768 * s * r + 2048 * s * r * r + 262144 * r * r},
            {"pair_after_triangle_multiplication_outgoing", 196608 * r * r + 256 * r * r * r},
            {"pair_after_triangle_multiplication_incoming", 196608 * r * r + 256 * r * r * r},
            {"pair_after_triangle_attention_starting_node", 164864 * r * r + 512 * r * r * r},
            {"pair_after_triangle_attention_ending_node", 164864 * r * r + 512 * r * r * r},
            {"pair_after_transition", 262144 * r * r},
        };
        const Tensor ga = Tensor::full({2048, 2048}, 0.5f).to(device),
                     gb = Tensor::full({2048, 2048}, 0.25f).to(device);
        Tensor gc = Tensor::empty({2048, 2048}, DType::F32, device);
        double best = 1e30;
        for (int rep = 0; rep < 4; ++rep) {
            const auto t0 = std::chrono::steady_clock::now();
            matmul(ga, gb, gc);
            if (device != Device::CPU) device_synchronize();
            if (rep > 0)
                best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        }
        const double ceiling = 2.0 * 2048 * 2048 * 2048 / best / 1e9;
        std::fprintf(stderr,
                     "  sub-module                                       s/block   GFLOP/s  of the %s GEMM ceiling "
                     "(%.1f GFLOP/s)\n",
                     precision_name(matmul_precision()), ceiling);
        for (auto& [name, sec] : stages) {
            const auto f = module_flop.find(name);
            const double per_block = sec / o.blocks;
            if (f == module_flop.end() || per_block <= 0) {
                std::fprintf(stderr, "  %-48s %.3f\n", name.c_str(), per_block);
                continue;
            }
            const double g = f->second / per_block / 1e9;
            std::fprintf(stderr, "  %-48s %.3f  %8.1f  %5.1f %%\n", name.c_str(), per_block, g, 100 * g / ceiling);
        }
    }
    std::sort(times.begin(), times.end());
    const double median = times[times.size() / 2];
    const double s = static_cast<double>(S), r = static_cast<double>(R);
    // The forward's FLOPs; a backward counts three times them (the forward replayed, and a backward of about
    // twice the forward).
    const double flop = (o.backward ? 3 : 1) *
                        (2.39e6 * s * r + 3072 * s * r * r + 1024 * s * s * r + 1.25e6 * r * r + 1536 * r * r * r);
    const double gflops = flop / median / 1e9;
    const double nb = static_cast<double>(o.blocks);
    // Communication per block and rank: bytes this rank sent per collective kind; exposed = time the
    // block waited for collectives (mean over ranks), in flight = time they took start to completion.
    std::string bytes_json, bytes_text;
    for (int kind = 0; kind < static_cast<int>(CollectiveKind::Count); ++kind) {
        const double bpb = static_cast<double>(cs.bytes[kind]) / nb;
        const double calls = static_cast<double>(cs.calls[kind]) / nb;
        if (cs.calls[kind] == 0) continue;
        const char* name = collective_name(static_cast<CollectiveKind>(kind));
        bytes_json += strfmt("%s\"%s\": %.0f", bytes_json.empty() ? "" : ", ", name, bpb);
        bytes_text += strfmt("%s%s %.0fx %.2f MiB", bytes_text.empty() ? "" : ", ", name, calls, bpb / 1048576.0);
    }
    const double exposed_s = exposed.f32()[0] / comm.size() / nb, in_flight_s = cs.in_flight_seconds / nb;
    const double bytes_pb = static_cast<double>(cs.total_bytes()) / nb;
    // The planner models the forward only: a backward reports no predictions (0 in JSON).
    const size_t predicted_peak = o.backward ? 0 : plan.predicted_peak_bytes,
                 predicted_ws = o.backward ? 0 : plan.predicted_workspace_bytes;
    if (o.json) {
        std::printf(
            "{\"benchmark\": \"%s\", \"n_seq\": %lld, \"n_res\": %lld, \"threads\": %d, \"blocks\": %d, "
            "\"ranks\": %d, \"dap\": %s, \"comm_backend\": \"%s\", "
            "\"seconds_per_block\": %.6f, \"gflop_per_s\": %.2f, \"peak_rss_bytes\": %zu, "
            "\"workspace_bytes\": %zu, \"chunk_size\": %lld, \"predicted_peak_bytes\": %zu, "
            "\"predicted_workspace_bytes\": %zu, \"comm_bytes\": {%s}, \"comm_bytes_per_block\": %.0f, "
            "\"exposed_comm_seconds\": %.6f, \"comm_in_flight_seconds\": %.6f, \"device\": \"%s\", "
            "\"precision\": \"%s\", \"activations\": \"%s\", \"device_peak_bytes\": %zu, \"fused_attention\": %s}\n",
            o.backward ? "evoformer_backward" : "evoformer", (long long)S, (long long)R, num_threads(), o.blocks,
            comm.size(), dap ? "true" : "false", dap_comm.backend().c_str(), median, gflops, rss,
            ctx.ws.high_water_bytes(), (long long)plan.chunk_size, predicted_peak, predicted_ws, bytes_json.c_str(),
            bytes_pb, exposed_s, in_flight_s, device_name(device), o.run.precision.c_str(), dtype_name(act_dtype),
            device_peak_bytes(), device != Device::CPU && fused_attention_requested() ? "true" : "false");
    } else {
        std::printf(
            "evoformer block%s S=%lld R=%lld %s %s threads=%d ranks=%d%s blocks=%d chunk=%lld: median %.3f s/block, "
            "%.1f GFLOP/s, peak RSS %.1f MiB (predicted %.1f MiB; workspace %.1f MiB, predicted %.1f MiB)%s\n",
            o.backward ? " backward" : "", (long long)S, (long long)R, device_name(device), o.run.precision.c_str(),
            num_threads(), comm.size(), dap ? " (DAP)" : "", o.blocks, (long long)plan.chunk_size, median, gflops,
            rss / 1048576.0, predicted_peak / 1048576.0, ctx.ws.high_water_bytes() / 1048576.0,
            predicted_ws / 1048576.0, o.backward ? " [no predictions: the planner models the forward]" : "");
        if (dap)
            std::printf("  communication per block and rank: %.2f MiB (%s); in flight %.4f s, exposed %.4f s\n",
                        bytes_pb / 1048576.0, bytes_text.c_str(), in_flight_s, exposed_s);
    }
    return 0;
}

namespace {

// `bench model --training`: one update as `axfold train` makes it (the last iteration's training_step, Adam, the
// moving average) on a random ground truth: a random walk of 3.8 A steps with every atom near its residue's point,
// random MSA targets with AF2's 15 % BERT mask. Peak RSS against plan --training; on a GPU (the parameters, Adam's
// state and the moving average there, as `axfold train --device cuda`) a first update warms up and the second is
// timed, with the device's peak memory.
int bench_training(const Model& model, const FeatureDict& f, const BenchModelOptions& o, Device device,
                   DType activations) {
    AXF_CHECK(o.run_blocks < 0 && o.chains == 0,
              "bench model --training: every block, monomers (the training step's limits)");
    const int64_t R = f.at("aatype").size(0), N = o.n_res, S = o.n_seq;
    std::mt19937 rng(5);
    std::normal_distribution<float> step(0.f, 3.8f / std::sqrt(3.f)), jitter(0.f, 1.f);
    std::uniform_real_distribution<float> u(0.f, 1.f);
    const Tensor aatype = f.at("aatype").select(0, R - 1).contiguous();
    Tensor pos = Tensor::empty({N, 37, 3});
    float x[3] = {0.f, 0.f, 0.f};
    for (int64_t i = 0; i < N; ++i) {
        for (float& c : x) c += step(rng);
        for (int64_t a = 0; a < 37; ++a)
            for (int k = 0; k < 3; ++k) pos.f32()[(i * 37 + a) * 3 + k] = x[k] + jitter(rng);
    }
    FeatureDict batch = ground_truth_features(aatype, pos, Tensor::full({N, 37}, 1.f));
    batch["aatype"] = aatype;
    batch["residue_index"] = f.at("residue_index").select(0, R - 1).contiguous();
    batch["seq_mask"] = Tensor::full({N}, 1.f);
    Tensor true_msa = Tensor::empty({S, N}, DType::I64), bert = Tensor::empty({S, N});
    for (int64_t e = 0; e < S * N; ++e) {
        true_msa.data<int64_t>()[e] = static_cast<int64_t>(rng() % 21);
        bert.f32()[e] = u(rng) < 0.15f ? 1.f : 0.f;
    }
    batch["true_msa"] = true_msa;
    batch["bert_mask"] = bert;
    batch["resolution"] = Tensor::full({}, 2.f);
    batch["seq_length"] = to_int64(Tensor::full({}, static_cast<float>(N)));
    batch["use_clamped_fape"] = Tensor::full({}, 1.f);
    // The optimizer's state and the moving average exist through the update, as in `axfold train`.
    const Model trained = model.on(device);
    ModelWeights params = trained.weights(), ema = zeros_like_model(params);
    Adam adam(AdamConfig{}, params);
    // Under mpirun the ranks train the example together (DAP), as `axfold train --dap <ranks>`.
    Comm& comm = world_comm();
    const TrainingMemoryPlan plan = plan_training(model.config(), N, S, o.n_extra, true, comm.size(), activations);
    Context ctx(device);
    ctx.activation_dtype = activations;
    TrainingStep st;
    AdamStats stats;
    double secs = 0;
    for (int update = 0; update < (device == Device::CPU ? 1 : 2); ++update) {
        const auto t0 = std::chrono::steady_clock::now();
        st = training_step(trained, f, batch, LossConfig{}, ctx, nullptr, &comm, 1);
        stats = adam.update(params, st.grads);
        update_moving_average(ema, params, 0.999);
        if (device != Device::CPU) device_synchronize();
        secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    Tensor mine = Tensor::empty({1}, DType::F64), all = Tensor::empty({comm.size()}, DType::F64);
    mine.data<double>()[0] = static_cast<double>(peak_rss_bytes());
    comm.all_gather(mine, all)->wait();
    double rss = 0;  // the ranks' largest
    for (int r = 0; r < comm.size(); ++r) rss = std::max(rss, all.data<double>()[r]);
    if (comm.rank() != 0) return 0;
    std::printf("training update N=%lld S=%lld E=%lld blocks %lld+%lld %s %s threads=%d ranks=%d: %.2f s (",
                (long long)N, (long long)S, (long long)o.n_extra, (long long)o.evoformer_blocks,
                (long long)o.extra_msa_blocks, device_name(device), precision_name(matmul_precision()), num_threads(),
                comm.size(), secs);
    for (size_t i = 0; i < st.timings.size(); ++i)
        std::printf("%s%s %.2f", i ? ", " : "", st.timings[i].first.c_str(), st.timings[i].second);
    std::printf("), loss %.4g, |g| %.4g, peak RSS %.1f MiB", st.loss.total, stats.grad_norm, rss / 1048576.0);
    if (device != Device::CPU) std::printf(", peak device memory %.1f MiB", device_peak_bytes() / 1048576.0);
    std::printf(" (plan --training: %.1f MiB; per rank)\n", plan.peak() / 1048576.0);
    return 0;
}

}  // namespace

int bench_model_main(const BenchModelOptions& o) {
    AXF_CHECK(o.n_res > 0 && o.n_seq > 0 && o.n_extra > 0, "bench model: sizes must be positive");
    const RunTarget target = configure_run(o.run);
    if (!target.note.empty()) std::fprintf(stderr, "axfold: %s\n", target.note.c_str());
    const Device device = target.device;
    AXF_CHECK(o.templates >= 0 && o.chains >= 0 && o.chains <= o.n_res,
              "bench model: --templates %d and --chains %d must be >= 0 (chains at most --n-res)", o.templates,
              o.chains);
    // model_1_ptm with templates (its template embedding and angle rows), model_3_ptm without; AlphaFold-Multimer
    // (model_1_multimer_v3, always 4 template slots) with --chains.
    // --model-name picks the preset instead (a multimer name on 2 chains unless --chains says otherwise).
    const bool named_multimer = !o.model_name.empty() && ModelPreset::from_name(o.model_name).multimer;
    AXF_CHECK(o.model_name.empty() || named_multimer || o.chains == 0,
              "bench model: --chains needs an AlphaFold-Multimer model, not %s", o.model_name.c_str());
    const int chains = named_multimer && o.chains == 0 ? 2 : o.chains;
    AXF_CHECK(chains <= o.n_res, "bench model: %d chains for %lld residues", chains, (long long)o.n_res);
    const bool multimer = chains > 0;
    ModelPreset preset = ModelPreset::from_name(!o.model_name.empty() ? o.model_name
                                                : multimer            ? "model_1_multimer_v3"
                                                : o.templates > 0     ? "model_1_ptm"
                                                                      : "model_3_ptm");
    const int templates = multimer ? 4 : (preset.templates && o.templates == 0 ? 4 : o.templates);
    AXF_CHECK(preset.templates || templates == 0, "bench model: %s has no template embedding (--templates %d)",
              preset.name.c_str(), templates);
    ModelDims d;
    d.evoformer_blocks = o.evoformer_blocks;
    d.extra_msa_blocks = o.extra_msa_blocks;
    auto store = std::make_shared<ParamStore>();
    for (auto& [k, t] : init_model_params(preset, d, 1)) store->insert(k, t);
    Model model = Model::from_store(store, preset.name);

    // Random but well-formed features: one-hot residue types and MSA tokens, all masks 1.
    const int64_t R = o.num_recycle + 1, N = o.n_res, S = o.n_seq, E = o.n_extra;
    std::mt19937 rng(3);
    std::uniform_int_distribution<int> aa(0, 19), tok(0, 21);
    FeatureDict f;
    Tensor aatype = Tensor::empty({R, N}, DType::I64), ri = Tensor::empty({R, N}, DType::I64);
    const int64_t tf_channels = multimer ? 21 : 22;  // AF-Multimer's target_feat has no has_break channel
    Tensor tf = Tensor::zeros({R, N, tf_channels}), msa_feat = Tensor::zeros({R, S, N, 49});
    Tensor extra = Tensor::empty({R, E, N}, DType::I64);
    for (int64_t i = 0; i < N; ++i) {
        int a = aa(rng);
        for (int64_t r = 0; r < R; ++r) {
            aatype.data<int64_t>()[r * N + i] = a;
            // Chain c holds residues [c N / K, (c + 1) N / K), numbered from 0.
            ri.data<int64_t>()[r * N + i] = multimer ? i - ((i * chains / N) * N + chains - 1) / chains : i;
            tf.f32()[(r * N + i) * tf_channels + (multimer ? 0 : 1) + a] = 1.f;
        }
    }
    for (int64_t e = 0; e < R * S * N; ++e) msa_feat.f32()[e * 49 + tok(rng)] = 1.f;
    for (int64_t e = 0; e < R * E * N; ++e) extra.data<int64_t>()[e] = tok(rng);
    f["aatype"] = aatype;
    f["residue_index"] = ri;
    f["target_feat"] = tf;
    f["msa_feat"] = msa_feat;
    f["seq_mask"] = Tensor::full({R, N}, 1.f);
    f["msa_mask"] = Tensor::full({R, S, N}, 1.f);
    f["extra_msa"] = extra;
    if (multimer) {  // chains of n_res / chains residues, each its own entity
        f["extra_deletion_matrix"] = Tensor::zeros({R, E, N});
        Tensor asym = Tensor::empty({R, N}, DType::I64);
        for (int64_t e = 0; e < R * N; ++e) asym.data<int64_t>()[e] = 1 + (e % N) * chains / N;
        f["asym_id"] = asym;
        f["entity_id"] = asym.clone();
        f["sym_id"] = to_int64(Tensor::full({R, N}, 1.f));  // one copy of each
    } else {
        f["extra_has_deletion"] = Tensor::zeros({R, E, N});
        f["extra_deletion_value"] = Tensor::zeros({R, E, N});
    }
    f["extra_msa_mask"] = Tensor::full({R, E, N}, 1.f);
    if (templates > 0) {
        // Templates: a random walk of 3.8 A steps as every atom's position (all present), so the pseudo-beta
        // distances fill the distogram's bins; the torsions are computed by the model.
        const int64_t T = templates;
        std::normal_distribution<float> step(0.f, 3.8f / std::sqrt(3.f));
        Tensor pos = Tensor::empty({R, T, N, 37, 3}), pb = Tensor::empty({R, T, N, 3});
        Tensor taa = Tensor::empty({R, T, N}, DType::I64);
        for (int64_t t = 0; t < T; ++t) {
            float x[3] = {0.f, 0.f, 0.f};
            for (int64_t i = 0; i < N; ++i) {
                for (float& c : x) c += step(rng);
                const int a = aa(rng);
                for (int64_t r = 0; r < R; ++r) {
                    taa.data<int64_t>()[(r * T + t) * N + i] = a;
                    for (int k = 0; k < 3; ++k) pb.f32()[((r * T + t) * N + i) * 3 + k] = x[k];
                    for (int64_t atom = 0; atom < 37; ++atom)
                        for (int k = 0; k < 3; ++k)
                            pos.f32()[(((r * T + t) * N + i) * 37 + atom) * 3 + k] = x[k] + 0.5f * step(rng);
                }
            }
        }
        f["template_aatype"] = taa;
        f["template_all_atom_positions"] = pos;
        f["template_all_atom_mask"] = Tensor::full({R, T, N, 37}, 1.f);
        if (!multimer) {  // AF-Multimer's model derives these from the atoms
            f["template_pseudo_beta"] = pb;
            f["template_pseudo_beta_mask"] = Tensor::full({R, T, N}, 1.f);
            f["template_mask"] = Tensor::full({R, T}, 1.f);
        }
    }

    if (o.training) return bench_training(model, f, o, device, target.activations);
    Context ctx(device);
    axfold::PredictOptions po;  // as `axfold predict` without --save-outputs
    const RunPlan run = prepare_prediction(model, f, "bench model", o.run, target, o.num_recycle, false, ctx, po);
    const ChunkPlan& plan = run.chunks;
    const size_t predicted_peak = run.predicted_peak;
    po.run_blocks = o.run_blocks;
    const auto t0 = std::chrono::steady_clock::now();  // after the checks and the plan
    Prediction p = model.predict(f, po, ctx);
    const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const size_t rss = peak_rss_bytes();
    if (o.json) {
        std::printf(
            "{\"benchmark\": \"model\", \"n_res\": %lld, \"n_seq\": %lld, \"n_extra\": %lld, "
            "\"evoformer_blocks\": %lld, \"extra_msa_blocks\": %lld, \"run_blocks\": %d, \"iterations\": %d, "
            "\"threads\": %d, \"templates\": %d, \"chains\": %d",
            (long long)N, (long long)S, (long long)E, (long long)d.evoformer_blocks, (long long)d.extra_msa_blocks,
            o.run_blocks, p.iterations, num_threads(), templates, chains);
        for (auto& [stage, sec] : p.timings)
            std::printf(", \"%s_seconds_per_iteration\": %.4f", stage.c_str(), sec / p.iterations);
        std::printf(
            ", \"seconds_per_iteration\": %.4f, \"peak_rss_bytes\": %zu, \"chunk_size\": %lld, "
            "\"predicted_peak_bytes\": %zu, \"device\": \"%s\", \"precision\": \"%s\", \"activations\": \"%s\", "
            "\"device_peak_bytes\": %zu, \"offload_msa\": %s}\n",
            total / p.iterations, rss, (long long)plan.chunk_size, predicted_peak, device_name(device),
            o.run.precision.c_str(), dtype_name(target.activations), device_peak_bytes(),
            po.offload_msa ? "true" : "false");
    } else {
        std::printf("model N=%lld S=%lld E=%lld T=%d blocks %lld+%lld%s threads=%d: %.3f s per iteration (",
                    (long long)N, (long long)S, (long long)E, templates, (long long)d.evoformer_blocks,
                    (long long)d.extra_msa_blocks,
                    o.run_blocks >= 0 ? strfmt(" (first %d of each run)", o.run_blocks).c_str() : "", num_threads(),
                    total / p.iterations);
        for (size_t i = 0; i < p.timings.size(); ++i)
            std::printf("%s%s %.3f s", i ? ", " : "", p.timings[i].first.c_str(), p.timings[i].second / p.iterations);
        std::printf("), chunk %lld, peak RSS %.1f MiB (predicted %.1f MiB)\n", (long long)plan.chunk_size,
                    rss / 1048576.0, predicted_peak / 1048576.0);
    }
    return 0;
}

int bench_kernels_main(const BenchKernelsOptions& o) {
    AXF_CHECK(o.rows > 0 && o.cols > 0 && o.reps > 0, "bench kernels: --rows, --cols and --reps must be positive");
    set_num_threads(o.threads);
    const Device device = select_device(o.device);
    std::mt19937 rng(5);
    const int64_t R = o.rows, C = o.cols;
    const double n = static_cast<double>(R * C);
    Tensor x = random_tensor({R, C}, rng, 1.f).to(device), y = random_tensor({R, C}, rng, 1.f).to(device);
    Tensor bias = random_tensor({R, C}, rng, 1.f).to(device);
    Tensor mask = Tensor::full({1, C}, 1.f).to(device).expand({R, C});
    Tensor g = random_tensor({C}, rng, 1.f).to(device), b = random_tensor({C}, rng, 1.f).to(device);
    Tensor dx = Tensor::empty({R, C}, DType::F32, device), dgate = Tensor::empty({R, C}, DType::F32, device);
    Tensor dg = Tensor::zeros({C}, DType::F32, device);
    Tensor db = Tensor::zeros({C}, DType::F32, device);
    // On a GPU, a timed sample is `reps` launches back to back, one synchronisation, divided by reps (a lone
    // launch would time the launch and the synchronisation too); the median of 5 samples. On the CPU, the
    // median of reps single calls. `reset` (untimed) runs before each sample.
    auto median_seconds = [&](const std::function<void()>& fn, const std::function<void()>& reset) {
        fn();  // warm-up (first touch, pool growth)
        if (device != Device::CPU) device_synchronize();
        const int samples = device == Device::CPU ? o.reps : 5, calls = device == Device::CPU ? 1 : o.reps;
        std::vector<double> t;
        for (int r = 0; r < samples; ++r) {
            reset();
            if (device != Device::CPU) device_synchronize();
            auto t0 = std::chrono::steady_clock::now();
            for (int c = 0; c < calls; ++c) fn();
            if (device != Device::CPU) device_synchronize();
            t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / calls);
        }
        std::sort(t.begin(), t.end());
        return t[t.size() / 2];
    };
    // Bytes each kernel must move at least (fp32 reads + writes of the [R, C] operands; broadcast
    // parameters and masks are negligible). In-place kernels get a fresh x before each sample: repeated
    // gating would shrink it into float32's subnormal range, whose arithmetic is many times slower on CPUs.
    struct Row {
        const char* name;
        double bytes;
        std::function<void()> fn;
        bool in_place;
    };
    const std::vector<Row> kernels = {
        {"copy", 8 * n, [&] { copy(y, x); }, false},
        {"softmax_mask_bias", 12 * n, [&] { softmax(x, 0.125f, mask, bias, 1e9f); }, true},
        {"layer_norm", 8 * n, [&] { layer_norm(x, g, b, 1e-5f, y); }, false},
        {"sigmoid_mul", 12 * n, [&] { sigmoid_mul(x, bias); }, true},
        {"residual_add", 12 * n, [&] { add(x, y); }, true},
        {"softmax_backward", 12 * n, [&] { softmax_backward(x, y, 0.125f, dx); }, false},
        {"layer_norm_backward", 12 * n, [&] { layer_norm_backward(x, g, 1e-5f, y, dx, dg, db); }, false},
        {"sigmoid_mul_backward", 20 * n, [&] { sigmoid_mul_backward(x, bias, y, dx, dgate); }, false},
    };
    Tensor x0 = x.clone();
    std::vector<std::pair<const char*, double>> gbps;
    for (const Row& k : kernels) {
        copy(x, x0);
        const auto reset = [&] {
            if (k.in_place) copy(x, x0);
        };
        gbps.push_back({k.name, k.bytes / median_seconds(k.fn, reset) / 1e9});
    }
    const double copy_gbps = gbps[0].second;
    if (o.json) {
        std::printf("{\"benchmark\": \"kernels\", \"device\": \"%s\", \"rows\": %lld, \"cols\": %lld, \"threads\": %d",
                    device_name(device), (long long)R, (long long)C, num_threads());
        for (auto& [name, v] : gbps)
            std::printf(", \"%s_gb_per_s\": %.2f, \"%s_of_copy\": %.3f", name, v, name, v / copy_gbps);
        std::printf("}\n");
    } else {
        std::printf("kernels on %s, [%lld, %lld] fp32, %d threads (GB/s; fraction of copy):\n", device_name(device),
                    (long long)R, (long long)C, num_threads());
        for (auto& [name, v] : gbps) std::printf("  %-22s %8.2f GB/s  %5.1f %%\n", name, v, 100 * v / copy_gbps);
    }
    return 0;
}

int bench_gemm_main(const BenchGemmOptions& o) {
    AXF_CHECK(o.reps > 0, "bench gemm: --reps must be positive");
    set_num_threads(o.threads);
    std::mt19937 rng(7);
    // The Evoformer block's GEMMs at S = 128, R = 256 (AF2 widths), as the modules issue them, and a large
    // square product: the best this machine's GEMM does, the ceiling every other figure is a fraction of.
    // The last row is the fused attention core (the attention op, softmax included) at the triangle
    // attention's shape: batch = rows x heads (256 x 4), m = queries, n = keys, k = head width; its flops
    // are the logits' and values' products.
    struct Shape3 {
        const char* name;
        int64_t batch, m, n, k;
        bool a_transposed, b_transposed;
        bool attention_core = false;
    };
    std::vector<Shape3> shapes = {
        {"square_2048", 1, 2048, 2048, 2048, false, false},
        {"msa_projection", 1, 32768, 256, 256, false, false},
        {"msa_transition_in", 1, 32768, 1024, 256, false, false},
        {"msa_transition_out", 1, 32768, 256, 1024, false, false},
        {"pair_projection", 1, 65536, 128, 128, false, false},
        {"pair_transition_in", 1, 65536, 512, 128, false, false},
        {"pair_transition_out", 1, 65536, 128, 512, false, false},
        {"outer_product", 1, 8192, 8192, 128, true, false},
        {"outer_product_projection", 1, 65536, 128, 1024, false, false},
        {"triangle_product", 128, 256, 256, 256, false, false},
        {"attention_logits", 256, 256, 256, 32, false, true},
        {"attention_values", 256, 256, 32, 256, false, false},
        {"attention_core", 256 * 4, 256, 256, 32, false, false, true},
    };
    if (!o.shapes.empty()) {
        std::vector<Shape3> chosen = {shapes[0]};
        std::istringstream list(o.shapes);
        for (std::string name; std::getline(list, name, ',');) {
            auto it = std::find_if(shapes.begin(), shapes.end(), [&](const Shape3& s) { return name == s.name; });
            AXF_CHECK(it != shapes.end(), "bench gemm: --shapes names '%s', which is not one of its shapes",
                      name.c_str());
            if (it != shapes.begin()) chosen.push_back(*it);
        }
        shapes = chosen;
    }
    auto median_seconds = [&](const std::function<void()>& fn) {
        fn();
        std::vector<double> t;
        for (int r = 0; r < o.reps; ++r) {
            const auto t0 = std::chrono::steady_clock::now();
            fn();
            t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        }
        std::sort(t.begin(), t.end());
        return t[t.size() / 2];
    };
    struct Result {
        const char* name;
        double fp32, bf16;
    };
    std::vector<Result> results;
    const MatmulPrecision before = matmul_precision();
    Workspace ws;
    for (const Shape3& s : shapes) {
        if (s.attention_core) {
            const int64_t B = s.batch / 4, H = 4;
            const Tensor q = random_tensor({B, s.m, H, s.k}, rng, 1.f), k = random_tensor({B, s.n, H, s.k}, rng, 1.f);
            const Tensor v = random_tensor({B, s.n, H, s.k}, rng, 1.f), bias = random_tensor({H, s.m, s.n}, rng, 1.f);
            const Tensor mask = Tensor::full({B, s.n}, 1.f), out = Tensor::empty({B, s.m, H, s.k});
            const double flop = 4.0 * s.batch * s.m * s.n * s.k;
            Result r{s.name, 0, 0};
            for (MatmulPrecision p : {MatmulPrecision::Fp32, MatmulPrecision::Bf16}) {
                set_matmul_precision(p);
                const double t = median_seconds([&] { attention(q, k, v, mask, bias, 0.125f, 1e9f, out, ws); });
                (p == MatmulPrecision::Fp32 ? r.fp32 : r.bf16) = flop / t / 1e9;
            }
            results.push_back(r);
            continue;
        }
        const Tensor a = s.a_transposed ? random_tensor({s.batch, s.k, s.m}, rng, 1.f).transpose(1, 2)
                                        : random_tensor({s.batch, s.m, s.k}, rng, 1.f);
        const Tensor b = s.b_transposed ? random_tensor({s.batch, s.n, s.k}, rng, 1.f).transpose(1, 2)
                                        : random_tensor({s.batch, s.k, s.n}, rng, 1.f);
        Tensor c = Tensor::empty({s.batch, s.m, s.n});
        const double flop = 2.0 * s.batch * s.m * s.n * s.k;
        Result r{s.name, 0, 0};
        for (MatmulPrecision p : {MatmulPrecision::Fp32, MatmulPrecision::Bf16}) {
            set_matmul_precision(p);
            const double gflops = flop / median_seconds([&] { matmul(a, b, c); }) / 1e9;
            (p == MatmulPrecision::Fp32 ? r.fp32 : r.bf16) = gflops;
        }
        results.push_back(r);
    }
    set_matmul_precision(before);
    const double ceiling = results[0].fp32;
    if (o.json) {
        std::printf("{\"benchmark\": \"gemm\", \"threads\": %d, \"bf16_gemm\": \"%s\"", num_threads(),
                    cpu_bf16_gemm_backend());
        for (const Result& r : results)
            std::printf(", \"%s_fp32_gflops\": %.1f, \"%s_bf16_gflops\": %.1f", r.name, r.fp32, r.name, r.bf16);
        std::printf("}\n");
    } else {
        std::printf("gemm on cpu, %d threads, bf16 GEMMs: %s (GFLOP/s; fraction of the fp32 square_2048 ceiling):\n",
                    num_threads(), cpu_bf16_gemm_backend());
        std::printf("  %-26s %17s %17s\n", "shape (batch x m x n x k)", "fp32", "bf16");
        for (size_t i = 0; i < results.size(); ++i) {
            const Shape3& s = shapes[i];
            const Result& r = results[i];
            std::printf("  %-26s %8.1f (%5.1f %%) %8.1f (%5.1f %%)   %lld x %lld x %lld x %lld\n", r.name, r.fp32,
                        100 * r.fp32 / ceiling, r.bf16, 100 * r.bf16 / ceiling, (long long)s.batch, (long long)s.m,
                        (long long)s.n, (long long)s.k);
        }
    }
    return 0;
}

}  // namespace axfold::apps
