// `axfold predict`: features + parameters in; structures, confidences and timings out, in the files
// AlphaFold users' pipelines already read.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "apps/commands.h"
#include "io/atomic_file.h"
#include "io/features.h"
#include "io/hdf5_file.h"
#include "io/json_writer.h"
#include "io/structure_writer.h"
#include "evoformer/memory_plan.h"
#include "kernels/device.h"
#include "kernels/ops.h"
#include "structure/model.h"
#include "parallel/comm.h"

namespace axfold::apps {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Per-atom B-factors: the residue's pLDDT on every present atom.
Tensor plddt_b_factors(const Tensor& plddt, const Tensor& atom_mask) {
    const int64_t N = plddt.size(0);
    Tensor b = Tensor::zeros({N, 37});
    for (int64_t i = 0; i < N; ++i)
        for (int64_t a = 0; a < 37; ++a) b.f32()[i * 37 + a] = plddt.f32()[i] * atom_mask.f32()[i * 37 + a];
    return b;
}

}  // namespace

Device select_device(const std::string& name) {
    if (name == "cpu") return Device::CPU;
    AXF_CHECK(name == "cuda", "--device %s: expected cpu or cuda", name.c_str());
    AXF_CHECK(cuda_built(), "--device cuda: this axfold was built without CUDA (configure with -DAXFOLD_CUDA=ON "
                            "where nvcc is installed)");
    AXF_CHECK(cuda_available(), "--device cuda: no CUDA device is visible (check nvidia-smi and CUDA_VISIBLE_DEVICES)");
    return Device::CUDA;
}

std::unique_ptr<Comm> gpu_dap_comm(Comm& world) {
    if (world.size() <= 1) return nullptr;
    const int devices = cuda_device_count();
    AXF_CHECK(devices > 0, "DAP with --device cuda: no CUDA device is visible on rank %d", world.rank());
    // One GPU per rank: the node-local rank the launcher exports, modulo the visible devices.
    int local = world.rank();
    for (const char* v : {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID", "MV2_COMM_WORLD_LOCAL_RANK",
                          "PMI_LOCAL_RANK"})
        if (const char* e = std::getenv(v)) {
            local = std::atoi(e);
            break;
        }
    return make_nccl_comm(world, local % devices);
}

DType activation_dtype(MatmulPrecision p, const std::string& activations) {
    if (activations.empty()) return p == MatmulPrecision::Bf16 ? DType::BF16 : DType::F32;
    AXF_CHECK(activations == "fp32" || activations == "bf16", "--activations %s: expected fp32 or bf16",
              activations.c_str());
    return activations == "bf16" ? DType::BF16 : DType::F32;
}

DType select_precision(const std::string& name, const std::string& activations, Device device) {
    const MatmulPrecision p = parse_precision(name);
    set_matmul_precision(p);
    if (p != MatmulPrecision::Fp32 && device == Device::CPU)
        std::fprintf(stderr, "axfold: --precision %s GEMMs on the CPU are emulated (operands rounded, fp32 GEMMs): slower "
                             "than fp32, for checking what the GPU mode does to a prediction (for bfloat16 storage alone, "
                             "half the trunk's activation memory at fp32 speed: --precision fp32 --activations bf16)\n",
                     name.c_str());
    return activation_dtype(p, activations);
}

int predict_main(const PredictOptions& o) {
    auto t_start = Clock::now();
    AXF_CHECK((!o.in.features.empty() || !o.in.fasta.empty()) && !o.params.empty() && !o.model_name.empty() &&
                  !o.out_dir.empty(),
              "predict: --fasta (or --features), --params, --model-name and --out-dir are required");
    set_num_threads(o.threads);
    const Device device = select_device(o.device);
    const DType act = select_precision(o.precision, o.activations, device);
    // DAP: under an MPI launcher the stacks run over every rank; rank 0 writes the outputs. With the trunk on
    // GPUs the stacks' collectives go over NCCL (bootstrapped from the MPI world), one GPU per rank: made
    // before anything touches a device, since it selects this rank's GPU.
    axfold::Comm& comm = axfold::world_comm();
    const std::unique_ptr<Comm> nccl = device == Device::CUDA ? gpu_dap_comm(comm) : nullptr;
    const std::string name = o.model_name;
    namespace fs = std::filesystem;
    fs::create_directories(o.out_dir);
    auto out = [&](const std::string& f) { return (fs::path(o.out_dir) / f).string(); };
    const std::string pdb = out(name + "_unrelaxed.pdb"), cif = out(name + "_unrelaxed.cif"),
                      conf = out("confidence_" + name + ".json"), pae = out("pae_" + name + ".json"),
                      scores = out("scores_" + name + ".json"), ranking = out("ranking_debug.json"),
                      timings = out("timings.json"), h5 = out("outputs_" + name + ".h5");
    if (!o.overwrite) {
        for (const std::string& f : {pdb, cif, conf, pae, ranking, timings, h5})
            AXF_CHECK(!io::file_exists(f), "%s already exists; pass --overwrite to replace results", f.c_str());
    }

    std::vector<std::pair<std::string, double>> stages;
    auto t0 = Clock::now();
    const std::string source = o.in.fasta.empty() ? o.in.features : o.in.fasta;
    FeatureDict features = model_features(o.in, name, o.num_recycle);
    stages.push_back({"features", since(t0)});
    t0 = Clock::now();
    Model model = Model::load(o.params, name, o.structure_module_layers);
    stages.push_back({"load_params_" + name, since(t0)});
    validate_features(features, model.config(), source);  // names the file in every message
    const ModelConfig& cfg = model.config();
    std::fprintf(stderr,
                 "axfold predict: %s, %lld Evoformer / %lld extra-MSA blocks, %d structure-module layers, %d threads, "
                 "on %s%s, %s GEMMs, %s activations\n",
                 name.c_str(), (long long)cfg.evoformer_blocks, (long long)cfg.extra_msa_blocks,
                 cfg.structure_module_layers, num_threads(), device_name(device),
                 device != Device::CPU && comm.size() > 1 ? " (the stacks; the rest on the host)" : "",
                 o.precision.c_str(), dtype_name(act));

    axfold::PredictOptions po;
    po.num_recycle = o.num_recycle;
    po.keep_recycles = o.save_outputs;
    po.keep_pair_logits = o.save_outputs;  // PDB, mmCIF and the JSON files need only the PAE map and pTM
    po.progress = [&](const std::string& stage, int r, double s) {
        std::fprintf(stderr, "  iteration %d  %-18s %8.3f s   (elapsed %.1f s)\n", r, stage.c_str(), s, since(t_start));
    };
    // Memory plan: the fastest chunk size whose predicted peak fits --max-memory (or --chunk-size).
    Context ctx(device);
    ctx.activation_dtype = act;
    size_t predicted_peak = 0;
    const int64_t n_res = features.at("aatype").size(1), n_msa = features.at("msa_feat").size(1),
                  n_extra = features.at("extra_msa").size(1);
    if (device == Device::CPU) {
        const int iterations =
            o.num_recycle < 0 ? static_cast<int>(features.at("aatype").size(0)) : o.num_recycle + 1;
        const ChunkPlan plan = plan_prediction(cfg, n_res, n_msa, n_extra, o.max_memory, o.chunk_size, &predicted_peak, act,
                                               o.save_outputs ? iterations : 0);
        ctx.chunk_size = plan.chunk_size;
        ctx.ws.reserve(plan.predicted_workspace_bytes);
        std::fprintf(stderr, "  memory plan: chunk size %lld, predicted peak %s\n", (long long)plan.chunk_size,
                     format_bytes(predicted_peak).c_str());
    } else {  // --max-memory is the GPU's budget; host memory is not planned
        const ChunkPlan plan = plan_device_model(cfg, n_res, n_msa, n_extra, o.max_memory, o.chunk_size,
                                                 &predicted_peak, act, o.save_outputs, nullptr, o.offload);
        ctx.chunk_size = plan.chunk_size;
        ctx.ws.reserve(plan.predicted_workspace_bytes);
        // With DAP the model runs on the host (only the stacks' shards are on the GPUs): nothing to park, and the
        // whole-model plan over-counts a rank's GPU (conservative).
        po.offload_msa = plan.offload_msa && comm.size() == 1;
        std::fprintf(stderr, "  memory plan (GPU): chunk size %lld, predicted device peak %s%s\n",
                     (long long)plan.chunk_size, format_bytes(predicted_peak).c_str(),
                     plan.offload_msa ? ", the MSA parked in host memory during the extra-MSA stack" : "");
    }
    t0 = Clock::now();
    po.comm = nccl ? nccl.get() : &comm;
    if (comm.size() > 1 && comm.rank() == 0)
        std::fprintf(stderr, "  DAP: trunk stacks over %d ranks (%s)\n", comm.size(), po.comm->backend().c_str());
    Prediction p = model.predict(features, po, ctx);
    if (comm.rank() != 0) return 0;
    const double predict_s = since(t0);
    stages.push_back({"predict_" + name, predict_s});
    for (const auto& [s, sec] : p.timings) stages.push_back({s + "_" + name, sec});

    t0 = Clock::now();
    const HeadsOutputs& h = p.heads;
    io::ProteinStructure prot;
    prot.aatype = p.aatype;
    prot.residue_index = p.residue_index;
    prot.atom_positions = p.structure_module.final_atom_positions;
    prot.atom_mask = p.structure_module.final_atom_mask;
    prot.b_factors = plddt_b_factors(h.plddt, prot.atom_mask);
    io::write_pdb(pdb, prot);
    io::write_mmcif(cif, prot, name);
    io::write_file_atomic(conf, io::confidence_json(h.plddt));
    double mean_plddt = 0;
    for (int64_t i = 0; i < h.plddt.numel(); ++i) mean_plddt += h.plddt.f32()[i];
    mean_plddt /= static_cast<double>(std::max<int64_t>(h.plddt.numel(), 1));
    double ptm = h.ptm;
    if (h.has_pae) io::write_file_atomic(pae, io::pae_json(h.predicted_aligned_error, h.max_predicted_aligned_error));
    io::write_file_atomic(scores, io::colabfold_scores_json(h.plddt, h.has_pae ? &h.predicted_aligned_error : nullptr,
                                                            h.max_predicted_aligned_error, h.has_pae ? &ptm : nullptr));
    io::write_file_atomic(ranking, io::ranking_debug_json({{name, mean_plddt}}, "plddts"));
    if (o.save_outputs) {
        io::Hdf5Writer w(h5);
        for (const auto& [key, t] : prediction_output_tensors(p)) w.write(key, t.contiguous());
        w.commit();
    }
    stages.push_back({"write_outputs_" + name, since(t0)});
    io::write_file_atomic(timings, io::timings_json(stages));
    struct rusage ru {};
    getrusage(RUSAGE_SELF, &ru);
    std::printf(
        "axfold predict: %s  N=%lld  iterations=%d  mean pLDDT %.2f%s  predict %.2f s  total %.2f s  "
        "peak %s (predicted %s)  -> %s\n",
        name.c_str(), (long long)p.aatype.numel(), p.iterations, mean_plddt,
        h.has_pae ? strfmt("  pTM %.4f", h.ptm).c_str() : "", predict_s, since(t_start),
        format_bytes(static_cast<size_t>(ru.ru_maxrss) * 1024).c_str(), format_bytes(predicted_peak).c_str(),
        o.out_dir.c_str());
    return 0;
}

}  // namespace axfold::apps
