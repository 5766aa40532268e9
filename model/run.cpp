// The run set-up shared by every front end (model/run.h).
#include "model/run.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "kernels/device.h"
#include "kernels/ops.h"
#include "model/model_plan.h"
#include "parallel/comm.h"

namespace axfold {

Device select_device(const std::string& name) {
    if (name == "cpu") return Device::CPU;
    AXF_CHECK(name == "cuda", "--device %s: expected cpu or cuda", name.c_str());
    // AXFOLD_EMULATE_DEVICE=1 without a GPU: the device code paths on the host (kernels/device.h), for tests.
    const char* emulate = std::getenv("AXFOLD_EMULATE_DEVICE");
    if (emulate && std::string(emulate) == "1" && !cuda_available()) {
        static DeviceEmulation emulation;  // for the rest of the process
        return Device::CUDA;
    }
    AXF_CHECK(cuda_built(),
              "--device cuda: this axfold was built without CUDA (configure with -DAXFOLD_CUDA=ON "
              "where nvcc is installed)");
    AXF_CHECK(cuda_available(), "--device cuda: no CUDA device is visible (check nvidia-smi and CUDA_VISIBLE_DEVICES)");
    return Device::CUDA;
}

DType activation_dtype(MatmulPrecision p, const std::string& activations) {
    if (activations.empty()) return p == MatmulPrecision::Bf16 ? DType::BF16 : DType::F32;
    AXF_CHECK(activations == "fp32" || activations == "bf16", "--activations %s: expected fp32 or bf16",
              activations.c_str());
    return activations == "bf16" ? DType::BF16 : DType::F32;
}

DType select_precision(const std::string& name, const std::string& activations, Device device, std::string* note) {
    const MatmulPrecision p = parse_precision(name);
    const DType act = activation_dtype(p, activations);
    set_matmul_precision(p);
    const bool native = p == MatmulPrecision::Bf16 && std::string(cpu_bf16_gemm_backend()) == "onednn";
    if (note && p != MatmulPrecision::Fp32 && device == Device::CPU && !native)
        *note = strfmt(
            "--precision %s GEMMs on this CPU are emulated (operands rounded, fp32 GEMMs: fp32's speed; native "
            "bf16 GEMMs need AVX512_BF16 or AMX and oneDNN): the same arithmetic as on CPUs and GPUs that have them",
            name.c_str());
    return act;
}

int local_cuda_device(const Comm& world) {
    const int devices = cuda_device_count();
    AXF_CHECK(devices > 0, "--device cuda: no CUDA device is visible on rank %d", world.rank());
    int local = world.rank();
    for (const char* v : {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID", "MV2_COMM_WORLD_LOCAL_RANK",
                          "PMI_LOCAL_RANK"})
        if (const char* e = std::getenv(v)) {
            local = std::atoi(e);
            break;
        }
    return local % devices;
}

std::unique_ptr<Comm> gpu_dap_comm(Comm& world) {
    if (world.size() <= 1) return nullptr;
    return make_nccl_comm(world, local_cuda_device(world));
}

RunTarget configure_run(const RunSettings& s) {
    if (s.threads > 0) set_num_threads(s.threads);
    RunTarget t;
    t.device = select_device(s.device);
    t.activations = select_precision(s.precision, s.activations, t.device, &t.note);
    return t;
}

size_t host_budget(const RunSettings& s, std::string* what) {
    if (!s.max_memory.empty()) {
        if (what) *what = "--max-memory " + s.max_memory;
        return parse_bytes(s.max_memory);
    }
    size_t bytes = static_cast<size_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<size_t>(sysconf(_SC_PAGESIZE));
    // A container's limit (cgroup v2, then v1): "max" or a huge number when there is none.
    for (const char* limit : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
        std::ifstream f(limit);
        unsigned long long v = 0;
        if (f >> v && v > 0 && v < bytes) bytes = static_cast<size_t>(v);
    }
    if (what) *what = "this machine's memory (" + format_bytes(bytes) + ")";
    return bytes;
}

void check_fits(const ModelConfig& cfg, int64_t n_res, int64_t n_msa, int64_t n_extra, const RunSettings& s,
                const RunTarget& target, const std::string& source) {
    std::string budget = s.max_memory, what;
    try {
        size_t peak = 0;
        if (target.device == Device::CPU) {
            budget = std::to_string(host_budget(s, &what));
            plan_prediction(cfg, n_res, n_msa, n_extra, budget, s.chunk_size, &peak, target.activations, 0);
        } else {
            what = s.max_memory.empty() ? "the GPU's free memory" : "--max-memory " + s.max_memory;
            plan_device_model(cfg, n_res, n_msa, n_extra, s.max_memory, s.chunk_size, &peak, target.activations, false,
                              nullptr, s.offload);
        }
    } catch (const Error& e) {
        AXF_FAIL("%s: %lld residues do not fit %s with %s, however chunked: %s", source.c_str(), (long long)n_res,
                 what.c_str(), cfg.preset.name.c_str(), e.what());
    }
}

RunPlan prepare_prediction(const Model& model, const FeatureDict& f, const std::string& source, const RunSettings& s,
                           const RunTarget& target, int num_recycle, bool keep_outputs, Context& ctx,
                           PredictOptions& po, int ranks) {
    AXF_CHECK(ctx.device == target.device, "prepare_prediction: a context on %s for a run on %s",
              device_name(ctx.device), device_name(target.device));
    const ModelConfig& cfg = model.config();
    validate_features(f, cfg, source);
    const int64_t n_res = f.at("aatype").size(1), n_msa = f.at("msa_feat").size(1), n_extra = f.at("extra_msa").size(1);
    const int iterations = num_recycle < 0 ? static_cast<int>(f.at("aatype").size(0)) : num_recycle + 1;
    RunPlan run;
    if (target.device == Device::CPU) {  // without --max-memory, within the machine's memory
        run.chunks = plan_prediction(cfg, n_res, n_msa, n_extra, std::to_string(host_budget(s)), s.chunk_size,
                                     &run.predicted_peak, target.activations, keep_outputs ? iterations : 0);
    } else {  // the GPU's budget; host memory is not planned
        run.chunks = plan_device_model(cfg, n_res, n_msa, n_extra, s.max_memory, s.chunk_size, &run.predicted_peak,
                                       target.activations, keep_outputs, nullptr, s.offload);
    }
    ctx.activation_dtype = target.activations;
    ctx.chunk_size = run.chunks.chunk_size;
    ctx.ws.reserve(run.chunks.predicted_workspace_bytes);
    po.num_recycle = num_recycle;
    po.recycle_early_stop_tolerance = s.recycle_early_stop_tolerance >= 0 ? s.recycle_early_stop_tolerance
                                      : cfg.preset.multimer               ? 0.5
                                                                          : -1.0;
    po.keep_recycles = keep_outputs;
    po.keep_pair_logits = keep_outputs;  // PDB, mmCIF and the JSON files need only the PAE map and pTM
    // With DAP the model runs on the host (only the stacks' shards are on the GPUs): nothing to park, and the
    // whole-model plan over-counts a rank's GPU (conservative).
    po.offload_msa = run.chunks.offload_msa && ranks == 1;
    return run;
}

}  // namespace axfold
