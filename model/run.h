// How a prediction runs: the settings every front end takes (`axfold predict` and the benchmarks' options, the
// C API's axf_predict_options, the C++ API's axf::PredictOptions) and the one set-up they share: the device
// checked, the GEMM precision and activation storage set, the memory planned (model/model_plan.h), the
// workspace reserved, and the options that follow from the plan (offload). Its errors name the setting as the
// command line does (`--device tpu: expected cpu or cuda`).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "evoformer/memory_plan.h"
#include "model/model.h"

namespace axfold {

struct RunSettings {
    std::string device = "cpu";      // cpu | cuda
    std::string precision = "fp32";  // GEMM arithmetic: fp32 | tf32 | bf16
    std::string activations;         // the trunk's activation storage: fp32 | bf16; empty: what the precision implies
    std::string max_memory;          // the planner's budget ("24G"); empty: none on the CPU, 90 % of free on a GPU
    int64_t chunk_size = -1;         // -1: the planner's choice (unchunked without a budget)
    std::string offload = "auto";    // park the MSA in host memory on a GPU: auto (when it helps), on, off
    int threads = 0;                 // CPU threads; 0: OpenMP's default
    // Recycling's early stop (PredictOptions::recycle_early_stop_tolerance), Å; negative: the preset's
    // (AlphaFold-Multimer 0.5, monomers none; 0 keeps every iteration).
    double recycle_early_stop_tolerance = -1;
};

// Where and in which arithmetic a process runs its predictions.
struct RunTarget {
    Device device = Device::CPU;
    DType activations = DType::F32;  // Context::activation_dtype
    std::string note;                // what the user should know of the settings (emulated GEMMs); empty: nothing
};

// Process-wide set-up, once before anything touches a device: the thread count, the device (built and present),
// the GEMM precision (kernels/ops.h; on the CPU, tf32/bf16 are emulated: RunTarget::note says so).
RunTarget configure_run(const RunSettings& settings);

// What planning one prediction decided.
struct RunPlan {
    ChunkPlan chunks;
    size_t predicted_peak = 0;  // the whole process's on the CPU, the device's on a GPU
};

// One prediction's set-up on `target`: checks the features (`source` names them in errors), plans the memory of
// every phase, and sets ctx (chunk size, activation dtype, reserved workspace) and options (iterations,
// what is kept, offload). keep_outputs: keep every iteration and the heads' [N, N, 64] tensors (`predict
// --save-outputs`). ranks: the DAP ranks (with more than one the model runs on the host: nothing to park).
// ctx must be a Context on target.device.
RunPlan prepare_prediction(const Model& model, const FeatureDict& features, const std::string& source,
                           const RunSettings& settings, const RunTarget& target, int num_recycle, bool keep_outputs,
                           Context& ctx, PredictOptions& options, int ranks = 1);

// The memory a CPU prediction may plan for: --max-memory, else this machine's (its physical memory, or the cgroup's
// limit when lower); `what` gets "--max-memory 2G" or "this machine's memory (15.6G)" for messages.
size_t host_budget(const RunSettings& settings, std::string* what = nullptr);

// The plan before anything is read: whether a prediction of these sizes with this configuration can fit its budget
// at all (the CPU's host_budget, a GPU's --max-memory or free memory). The sizes may be lower bounds (an MSA not yet
// read counted as one row); throws naming `source`, the residues and the smallest budget that fits.
void check_fits(const ModelConfig& cfg, int64_t n_res, int64_t n_msa, int64_t n_extra, const RunSettings& settings,
                const RunTarget& target, const std::string& source);

// The pieces of configure_run, for commands that need only one (plan, the block benchmark).
// --device: Device::CUDA only when built with CUDA and a device is visible; throws saying which is missing.
// Without a GPU, AXFOLD_EMULATE_DEVICE=1 emulates one (kernels/device.h: the device code paths on the host, for
// tests), from this call to the end of the process.
Device select_device(const std::string& name);
// bfloat16 GEMMs also store the trunk's MSA and pair in bfloat16; fp32 and tf32 store float32. A non-empty
// `activations` ("fp32" or "bf16") overrides that.
DType activation_dtype(MatmulPrecision precision, const std::string& activations = "");
// Sets the process's GEMM precision and returns the activation dtype it implies (with `activations`); `note`
// gets RunTarget::note.
DType select_precision(const std::string& precision, const std::string& activations, Device device,
                       std::string* note = nullptr);
// The communicator of DAP with the trunk on GPUs: NCCL bootstrapped from the MPI world, one GPU per rank
// (local_cuda_device); nullptr on one rank.
std::unique_ptr<Comm> gpu_dap_comm(Comm& world);
// This rank's GPU: the launcher's node-local rank (Open MPI, Slurm, MPICH, MVAPICH, PMI) modulo the visible devices.
int local_cuda_device(const Comm& world);

}  // namespace axfold
