// `axfold plan`: the memory plan the planner would pick for a protein, without running anything.
#include <cstdio>

#include "apps/commands.h"
#include "kernels/device.h"
#include "kernels/ops.h"
#include "structure/model_plan.h"

namespace axfold::apps {

int plan_main(const PlanOptions& o) {
    AXF_CHECK(o.n_res > 0 && o.n_seq > 0 && o.n_extra > 0, "plan: sizes must be positive");
    AXF_CHECK(o.device == "cpu" || o.device == "cuda", "plan: --device %s: expected cpu or cuda", o.device.c_str());
    set_matmul_precision(parse_precision(o.precision));  // the device plan counts bf16 GEMM operand copies
    const DType act = activation_dtype(parse_precision(o.precision), o.activations);
    if (o.device == "cuda") {  // the GPU's share of a --device cuda run (plan_device_model)
        AXF_CHECK(!o.max_memory.empty() || cuda_available(),
                  "plan --device cuda: give the GPU's memory with --max-memory (no GPU is visible here)");
        ModelConfig cfg;
        cfg.preset = ModelPreset::from_name(o.model_name);
        ModelMemoryPhases ph;
        size_t peak = 0;
        const ChunkPlan p = plan_device_model(cfg, o.n_res, o.n_seq, o.n_extra, o.max_memory, o.chunk_size, &peak, act,
                                              o.save_outputs, &ph, o.offload);
        std::printf("GPU plan for N_res=%lld, %lld MSA rows, %lld extra rows (AF2 widths; the model on the GPU, %s "
                    "activations)%s:\n",
                    (long long)o.n_res, (long long)o.n_seq, (long long)o.n_extra, dtype_name(act),
                    o.max_memory.empty() ? "" : (" within " + format_bytes(parse_bytes(o.max_memory))).c_str());
        std::printf("  chunk size          %lld%s\n", (long long)p.chunk_size, p.chunk_size == 0 ? " (unchunked)" : "");
        std::printf("  offload             %s\n", p.offload_msa ? "the MSA parked in host memory during the extra-MSA stack"
                                                               : "none");
        for (auto& [name, bytes] : p.modules) std::printf("  %-36s %s\n", name.c_str(), format_bytes(bytes).c_str());
        std::printf("  phase peaks: embedders %s,%s trunk %s, structure module and heads %s\n",
                    format_bytes(ph.embedders).c_str(),
                    ph.templates ? (" templates " + format_bytes(ph.templates) + ",").c_str() : "",
                    format_bytes(ph.trunk).c_str(), format_bytes(ph.heads).c_str());
        std::printf("  predicted device peak %s (%s; weights, masks, MSA, pair, workspace)\n", format_bytes(peak).c_str(),
                    ph.peak_phase());
        return 0;
    }
    if (o.threads > 0) set_num_threads(o.threads);
    ModelConfig cfg;
    cfg.preset = ModelPreset::from_name(o.model_name);
    ModelMemoryPhases ph;
    size_t peak = 0;
    const ChunkPlan p = plan_prediction(cfg, o.n_res, o.n_seq, o.n_extra, o.max_memory, o.chunk_size, &peak, act,
                                        o.save_outputs ? 4 : 0, &ph);
    std::printf("plan for N_res=%lld, %lld MSA rows, %lld extra rows (AF2 widths, %d threads, %s activations)%s:\n",
                (long long)o.n_res, (long long)o.n_seq, (long long)o.n_extra, num_threads(), dtype_name(act),
                o.max_memory.empty() ? "" : (" within " + format_bytes(parse_bytes(o.max_memory))).c_str());
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
