// `axfold plan`: the memory plan the planner would pick for a protein, without running anything.
#include <cstdio>

#include "apps/commands.h"
#include "kernels/device.h"
#include "kernels/ops.h"
#include "model/model_plan.h"
#include "model/run.h"
#include "training/training_plan.h"

namespace axfold::apps {

namespace {

// `plan --training`: one update's terms (training/training_plan.h). On the host it is what `axfold train` holds;
// with --device cuda the same tensors on the GPU (a projection: no GPU run has measured it yet). --precision bf16
// keeps the stacks' checkpoints in bfloat16.
int plan_training_main(const PlanOptions& o) {
    const RunSettings& r = o.run;
    const DType act = activation_dtype(parse_precision(r.precision), r.activations);
    set_num_threads(r.threads);
    ModelConfig cfg;
    cfg.preset = ModelPreset::from_name(o.model_name);
    AXF_CHECK(!cfg.preset.multimer, "plan --training: AlphaFold-Multimer models do not train yet");
    const TrainingMemoryPlan p = plan_training(cfg, o.n_res, o.n_seq, o.n_extra, o.ema, o.dap, act);
    const bool cuda = r.device == "cuda";
    std::printf(
        "training plan for a crop of %lld residues, %lld MSA rows, %lld extra rows (%s, AF2 widths, %s activations, "
        "%s%s):\n",
        (long long)o.n_res, (long long)o.n_seq, (long long)o.n_extra, cfg.preset.name.c_str(),
        act == DType::BF16 ? "bfloat16 checkpoints, float32" : "float32",
        o.dap > 1 ? strfmt("one rank of DAP %d", o.dap).c_str() : "one rank",
        cuda ? "; on the GPU: a projection, not yet measured there" : "");
    for (const auto& [name, bytes] : p.terms) std::printf("  %-42s %s\n", name.c_str(), format_bytes(bytes).c_str());
    std::printf(
        "  phase peaks: earlier iterations (a prediction, with the optimizer state) %s, last iteration's "
        "backward %s\n",
        format_bytes(p.recycling).c_str(), format_bytes(p.backward).c_str());
    std::printf("  predicted %speak %s\n", cuda ? "device " : "", format_bytes(p.peak()).c_str());
    if (!r.max_memory.empty())
        AXF_CHECK(p.peak() <= parse_bytes(r.max_memory),
                  "plan --training: %s predicted for a crop of %lld residues, more than --max-memory %s",
                  format_bytes(p.peak()).c_str(), (long long)o.n_res, r.max_memory.c_str());
    return 0;
}

// Whether n residues fit --max-memory under o's settings (the plan of `plan` without its printout).
bool fits(const PlanOptions& o, int64_t n) {
    const RunSettings& r = o.run;
    ModelConfig cfg;
    cfg.preset = ModelPreset::from_name(o.model_name);
    if (o.training)
        return plan_training(cfg, n, o.n_seq, o.n_extra, o.ema, o.dap,
                             activation_dtype(parse_precision(r.precision), r.activations))
                   .peak() <= parse_bytes(r.max_memory);
    const DType act = select_precision(r.precision, r.activations, Device::CPU);
    size_t peak = 0;
    try {  // the planners throw when no chunk size fits the budget
        if (r.device == "cuda")
            plan_device_model(cfg, n, o.n_seq, o.n_extra, r.max_memory, r.chunk_size, &peak, act, o.save_outputs,
                              nullptr, r.offload);
        else
            plan_prediction(cfg, n, o.n_seq, o.n_extra, r.max_memory, r.chunk_size, &peak, act, o.save_outputs ? 4 : 0);
    } catch (const Error&) {
        return false;
    }
    return true;
}

}  // namespace

int plan_main(const PlanOptions& opts) {
    PlanOptions o = opts;
    const RunSettings& r = o.run;
    AXF_CHECK(r.device == "cpu" || r.device == "cuda", "--device %s: expected cpu or cuda", r.device.c_str());
    if (o.longest) {  // the longest protein (or crop) that fits, then its plan
        AXF_CHECK(!r.max_memory.empty(), "plan --longest: give the budget with --max-memory");
        set_num_threads(r.threads);
        AXF_CHECK(fits(o, 1), "plan --longest: not even one residue fits --max-memory %s", r.max_memory.c_str());
        int64_t lo = 1, hi = 2;  // fits(lo), and hi does not once found
        while (hi <= (int64_t(1) << 20) && fits(o, hi)) lo = hi, hi *= 2;
        while (hi - lo > 1) {
            const int64_t mid = lo + (hi - lo) / 2;
            (fits(o, mid) ? lo : hi) = mid;
        }
        std::printf("longest %s within %s: %lld residues\n", o.training ? "training crop" : "protein",
                    r.max_memory.c_str(), (long long)lo);
        o.n_res = lo;
    }
    AXF_CHECK(o.n_res > 0 && o.n_seq > 0 && o.n_extra > 0, "plan: sizes must be positive");
    if (o.training) return plan_training_main(o);
    // Planned, not run: no device is needed, and the device plan counts bf16 GEMM operand copies.
    const DType act = select_precision(r.precision, r.activations, Device::CPU);
    if (r.device == "cuda") {  // the GPU's share of a --device cuda run (plan_device_model)
        AXF_CHECK(!r.max_memory.empty() || cuda_available(),
                  "plan --device cuda: give the GPU's memory with --max-memory (no GPU is visible here)");
        ModelConfig cfg;
        cfg.preset = ModelPreset::from_name(o.model_name);
        ModelMemoryPhases ph;
        size_t peak = 0;
        const ChunkPlan p = plan_device_model(cfg, o.n_res, o.n_seq, o.n_extra, r.max_memory, r.chunk_size, &peak, act,
                                              o.save_outputs, &ph, r.offload);
        std::printf(
            "GPU plan for N_res=%lld, %lld MSA rows, %lld extra rows (AF2 widths; the model on the GPU, %s "
            "activations)%s:\n",
            (long long)o.n_res, (long long)o.n_seq, (long long)o.n_extra, dtype_name(act),
            r.max_memory.empty() ? "" : (" within " + format_bytes(parse_bytes(r.max_memory))).c_str());
        std::printf("  chunk size          %lld%s\n", (long long)p.chunk_size, p.chunk_size == 0 ? " (unchunked)" : "");
        std::printf("  offload             %s\n",
                    p.offload_msa ? "the MSA parked in host memory during the extra-MSA stack" : "none");
        for (auto& [name, bytes] : p.modules) std::printf("  %-36s %s\n", name.c_str(), format_bytes(bytes).c_str());
        std::printf("  phase peaks: embedders %s,%s trunk %s, structure module and heads %s\n",
                    format_bytes(ph.embedders).c_str(),
                    ph.templates ? (" templates " + format_bytes(ph.templates) + ",").c_str() : "",
                    format_bytes(ph.trunk).c_str(), format_bytes(ph.heads).c_str());
        std::printf("  predicted device peak %s (%s; weights, masks, MSA, pair, workspace)\n",
                    format_bytes(peak).c_str(), ph.peak_phase());
        return 0;
    }
    set_num_threads(r.threads);
    ModelConfig cfg;
    cfg.preset = ModelPreset::from_name(o.model_name);
    ModelMemoryPhases ph;
    size_t peak = 0;
    const ChunkPlan p = plan_prediction(cfg, o.n_res, o.n_seq, o.n_extra, r.max_memory, r.chunk_size, &peak, act,
                                        o.save_outputs ? 4 : 0, &ph);
    std::printf("plan for N_res=%lld, %lld MSA rows, %lld extra rows (AF2 widths, %d threads, %s activations)%s:\n",
                (long long)o.n_res, (long long)o.n_seq, (long long)o.n_extra, num_threads(), dtype_name(act),
                r.max_memory.empty() ? "" : (" within " + format_bytes(parse_bytes(r.max_memory))).c_str());
    std::printf("  chunk size          %lld%s\n", (long long)p.chunk_size, p.chunk_size == 0 ? " (unchunked)" : "");
    for (auto& [name, bytes] : p.modules) std::printf("  %-36s %s\n", name.c_str(), format_bytes(bytes).c_str());
    std::printf("  phase peaks: load %s, embedders %s,%s trunk %s, structure module and heads %s\n",
                format_bytes(ph.load).c_str(), format_bytes(ph.embedders).c_str(),
                ph.templates ? (" templates " + format_bytes(ph.templates) + ",").c_str() : "",
                format_bytes(ph.trunk).c_str(), format_bytes(ph.heads).c_str());
    std::printf("  predicted peak      %s (%s)\n", format_bytes(peak).c_str(), ph.peak_phase());
    return 0;
}

}  // namespace axfold::apps
