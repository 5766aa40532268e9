#include "structure/model.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <optional>

#include "evoformer/evoformer_dap.h"
#include "io/params.h"
#include "kernels/device.h"
#include "kernels/offload.h"
#include "structure/all_atom.h"
#include "structure/template_features.h"

namespace axfold {

namespace {

const std::string kRoot = "alphafold/alphafold_iteration";

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Weights on `device`: the parameters themselves on the CPU; on a GPU, copies made once per prediction.
template <class W> W weights_on(const W& w, Device device) {
    W c = w;
    if (device != Device::CPU)
        c.visit([device](const std::string&, Tensor& t) {
            if (t.defined()) t = t.to(device);
        });
    return c;
}

TemplateEmbeddingWeights template_weights_on(const TemplateEmbeddingWeights& w, Device device) {
    TemplateEmbeddingWeights c;
    c.embedding2d = weights_on(w.embedding2d, device);
    for (const TemplatePairStackBlockWeights& b : w.template_pair_stack)
        c.template_pair_stack.push_back(weights_on(b, device));
    c.output_layer_norm = weights_on(w.output_layer_norm, device);
    c.attention = weights_on(w.attention, device);
    return c;
}

// A trunk stack's weights on `device` (the first `blocks` of them; -1: all).
EvoformerStackWeights stack_on(const EvoformerStackWeights& full, int blocks, Device device) {
    EvoformerStackWeights st;
    const size_t n = blocks < 0 ? full.blocks.size() : std::min(full.blocks.size(), static_cast<size_t>(blocks));
    for (size_t i = 0; i < n; ++i) st.blocks.push_back(weights_on(full.blocks[i], device));
    return st;
}

struct FeatureSpec {
    const char* name;
    std::vector<char> dims;  // R = iterations, N = residues, S = MSA rows, E = extra rows, or a digit-coded size
    std::vector<int64_t> fixed;  // fixed sizes for dims marked 'F' (in order)
    bool integer;
};

const std::vector<FeatureSpec>& model_inputs() {
    static const std::vector<FeatureSpec> specs = {
        {"aatype", {'R', 'N'}, {}, true},
        {"target_feat", {'R', 'N', 'F'}, {22}, false},
        {"residue_index", {'R', 'N'}, {}, true},
        {"seq_mask", {'R', 'N'}, {}, false},
        {"msa_feat", {'R', 'S', 'N', 'F'}, {49}, false},
        {"msa_mask", {'R', 'S', 'N'}, {}, false},
        {"extra_msa", {'R', 'E', 'N'}, {}, true},
        {"extra_has_deletion", {'R', 'E', 'N'}, {}, false},
        {"extra_deletion_value", {'R', 'E', 'N'}, {}, false},
        {"extra_msa_mask", {'R', 'E', 'N'}, {}, false},
    };
    return specs;
}

}  // namespace

ModelPreset ModelPreset::from_name(const std::string& name) {
    ModelPreset p;
    p.name = name;
    std::string base = name;
    const std::string ptm = "_ptm";
    if (base.size() > ptm.size() && base.compare(base.size() - ptm.size(), ptm.size(), ptm) == 0) {
        p.ptm = true;
        base = base.substr(0, base.size() - ptm.size());
    }
    AXF_CHECK(base.size() == 7 && base.rfind("model_", 0) == 0 && base[6] >= '1' && base[6] <= '5',
              "unknown model name '%s': expected model_1 .. model_5, optionally with _ptm", name.c_str());
    p.index = base[6] - '0';
    p.templates = p.index <= 2;
    p.max_extra_msa = (p.index == 2 || p.index == 5) ? 1024 : 5120;
    p.max_msa_clusters = p.templates ? 508 : 512;
    return p;
}

namespace {

const std::vector<FeatureSpec>& template_inputs() {
    static const std::vector<FeatureSpec> specs = {
        {"template_aatype", {'R', 'T', 'N'}, {}, true},
        {"template_all_atom_positions", {'R', 'T', 'N', 'F', 'F'}, {37, 3}, false},
        {"template_all_atom_mask", {'R', 'T', 'N', 'F'}, {37}, false},
        {"template_pseudo_beta", {'R', 'T', 'N', 'F'}, {3}, false},
        {"template_pseudo_beta_mask", {'R', 'T', 'N'}, {}, false},
        {"template_mask", {'R', 'T'}, {}, false},
        {"template_torsion_angles_sin_cos", {'R', 'T', 'N', 'F', 'F'}, {7, 2}, false},
        {"template_alt_torsion_angles_sin_cos", {'R', 'T', 'N', 'F', 'F'}, {7, 2}, false},
        {"template_torsion_angles_mask", {'R', 'T', 'N', 'F'}, {7}, false},
    };
    return specs;
}

bool is_torsion_feature(const std::string& name) { return name.find("torsion_angles") != std::string::npos; }

// Whether the features hold the template inputs: all of them or none, except that the three torsion
// features may be absent together (the model then computes them from the template atoms, as AF2 does).
bool has_template_features(const FeatureDict& f, const std::string& source) {
    int present = 0, torsions = 0;
    std::string missing;
    for (const FeatureSpec& s : template_inputs()) {
        const bool has = f.count(s.name) > 0;
        if (is_torsion_feature(s.name)) {
            torsions += has;
            continue;
        }
        if (has)
            ++present;
        else
            missing += std::string(missing.empty() ? "" : ", ") + s.name;
    }
    AXF_CHECK(present == 0 || missing.empty(), "%s: incomplete template features: missing %s", source.c_str(),
              missing.c_str());
    AXF_CHECK(torsions == 0 || (torsions == 3 && present > 0),
              "%s: template torsion features must come all three together with the other template features",
              source.c_str());
    return present > 0;
}

}  // namespace

void validate_features(const FeatureDict& f, const ModelConfig& config, const std::string& source) {
    std::map<char, int64_t> sizes;
    std::map<char, std::string> first;
    auto check = [&](const FeatureSpec& s) {
        auto it = f.find(s.name);
        AXF_CHECK(it != f.end(), "%s: missing feature '%s'", source.c_str(), s.name);
        const Tensor& t = it->second;
        AXF_CHECK(t.dim() == static_cast<int>(s.dims.size()), "%s: feature '%s' has shape %s, expected %zu dims (%s)",
                  source.c_str(), s.name, shape_str(t.shape()).c_str(), s.dims.size(),
                  std::string(s.dims.begin(), s.dims.end()).c_str());
        size_t fixed_i = 0;
        for (int d = 0; d < t.dim(); ++d) {
            const char c = s.dims[d];
            if (c == 'F') {
                int64_t want = s.fixed[fixed_i++];
                AXF_CHECK(t.size(d) == want, "%s: feature '%s' has shape %s, expected size %lld in dim %d",
                          source.c_str(), s.name, shape_str(t.shape()).c_str(), (long long)want, d);
                continue;
            }
            auto sz = sizes.find(c);
            if (sz == sizes.end()) {
                sizes[c] = t.size(d);
                first[c] = s.name;
            } else {
                AXF_CHECK(sz->second == t.size(d),
                          "%s: feature '%s' has shape %s, but '%s' gives %c = %lld", source.c_str(), s.name,
                          shape_str(t.shape()).c_str(), first[c].c_str(), c, (long long)sz->second);
            }
        }
        if (s.integer) {
            AXF_CHECK(t.dtype() == DType::I64 || t.dtype() == DType::I32 || t.dtype() == DType::F32,
                      "%s: feature '%s' has dtype %s, expected an integer type", source.c_str(), s.name,
                      dtype_name(t.dtype()));
        } else {
            AXF_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::F64, "%s: feature '%s' has dtype %s, expected float32",
                      source.c_str(), s.name, dtype_name(t.dtype()));
        }
        Tensor c = to_f32(t);
        for (int64_t i = 0; i < c.numel(); ++i)
            AXF_CHECK(std::isfinite(c.f32()[i]), "%s: feature '%s' holds a non-finite value (%g) at flat index %lld",
                      source.c_str(), s.name, c.f32()[i], (long long)i);
    };
    for (const FeatureSpec& s : model_inputs()) check(s);
    AXF_CHECK(sizes['N'] > 0 && sizes['S'] > 0 && sizes['R'] > 0, "%s: empty features (R=%lld, N=%lld, S=%lld)",
              source.c_str(), (long long)sizes['R'], (long long)sizes['N'], (long long)sizes['S']);
    const Tensor aatype = to_int64(f.at("aatype"));
    for (int64_t i = 0; i < aatype.numel(); ++i)
        AXF_CHECK(aatype.data<int64_t>()[i] >= 0 && aatype.data<int64_t>()[i] <= 20,
                  "%s: feature 'aatype' holds %lld at flat index %lld, expected 0..20", source.c_str(),
                  (long long)aatype.data<int64_t>()[i], (long long)i);
    if (config.preset.templates && has_template_features(f, source)) {
        for (const FeatureSpec& s : template_inputs())
            if (!is_torsion_feature(s.name) || f.count(s.name)) check(s);
        const Tensor ta = to_int64(f.at("template_aatype"));
        for (int64_t i = 0; i < ta.numel(); ++i)
            AXF_CHECK(ta.data<int64_t>()[i] >= 0 && ta.data<int64_t>()[i] <= 21,
                      "%s: feature 'template_aatype' holds %lld at flat index %lld, expected 0..21 (21 = gap)",
                      source.c_str(), (long long)ta.data<int64_t>()[i], (long long)i);
    }
}

Model Model::load(const std::string& params_path, const std::string& model_name, int structure_module_layers) {
    auto store = std::make_shared<ParamStore>(ParamStore::load(params_path));
    return from_store(store, model_name, structure_module_layers);
}

Model Model::from_store(std::shared_ptr<const ParamStore> params, const std::string& model_name,
                        int structure_module_layers) {
    Model m;
    m.params_ = std::move(params);
    const ParamStore& ps = *m.params_;
    ModelConfig& c = m.config_;
    c.preset = ModelPreset::from_name(model_name);
    AXF_CHECK(structure_module_layers >= 1, "structure module layers must be >= 1, got %d", structure_module_layers);
    c.structure_module_layers = structure_module_layers;
    const bool has_templates = ps.has(kRoot + "/evoformer/template_embedding/single_template_embedding/embedding2d//weights");
    const bool has_pae = ps.has(kRoot + "/predicted_aligned_error_head/logits//weights");
    AXF_CHECK(has_pae == c.preset.ptm,
              "%s: parameters %s a predicted-aligned-error head, but model '%s' %s (parameters of another model?)",
              ps.path().c_str(), has_pae ? "have" : "lack", model_name.c_str(),
              c.preset.ptm ? "needs one" : "has none; use the _ptm model name");
    AXF_CHECK(has_templates == c.preset.templates,
              "%s: parameters %s template embedding, but model '%s' %s templates (parameters of another model?)",
              ps.path().c_str(), has_templates ? "have a" : "lack the", model_name.c_str(),
              c.preset.templates ? "uses" : "does not use");
    ParamLookup get = [&ps](const std::string& k) { return ps.get(k); };
    ModelWeights& w = m.weights_;
    const std::string evo = kRoot + "/evoformer";
    bind_params(w.input_embedder, evo, get);
    bind_params(w.recycling_embedder, evo, get);
    bind_params(w.extra_msa_embedder, evo, get);
    bind_params(w.single_activations, evo, get);
    w.extra_msa_stack = load_evoformer_stack(get, evo + "/extra_msa_stack", true);
    w.evoformer = load_evoformer_stack(get, evo + "/evoformer_iteration", false);
    bind_params(w.structure_module, kRoot + "/structure_module", get);
    if (has_templates) {
        w.has_templates = true;
        w.template_embedding = load_template_embedding(get, evo + "/template_embedding");
        bind_params(w.template_angle_embedder, evo, get);
        c.template_pair_blocks = static_cast<int64_t>(w.template_embedding.template_pair_stack.size());
        c.c_t = w.template_embedding.c_t();
    }
    w.heads.has_pae = has_pae;
    bind_params(w.heads, kRoot, get);
    c.evoformer_blocks = static_cast<int64_t>(w.evoformer.blocks.size());
    c.extra_msa_blocks = static_cast<int64_t>(w.extra_msa_stack.blocks.size());
    c.c_m = w.input_embedder.preprocess_msa.weights.size(1);
    c.c_z = w.input_embedder.pair_activiations.weights.size(1);
    c.c_s = w.single_activations.single_activations.weights.size(1);
    c.c_e = w.extra_msa_embedder.extra_msa_activations.weights.size(1);
    return m;
}

Prediction Model::predict(const FeatureDict& features, const PredictOptions& options) const {
    Context ctx;
    return predict(features, options, ctx);
}

Prediction Model::predict(const FeatureDict& f, const PredictOptions& opt, Context& ctx) const {
    validate_features(f, config_, "features");
    const ModelWeights& w = weights_;
    const int64_t R = f.at("aatype").size(0), N = f.at("aatype").size(1), S = f.at("msa_feat").size(1),
                  E = f.at("extra_msa").size(1);
    const int iters = opt.num_recycle < 0 ? static_cast<int>(R) : opt.num_recycle + 1;
    AXF_CHECK(iters <= R, "%d recycles need %d iterations of features, but the features hold %lld (leading axis)",
              opt.num_recycle, iters, (long long)R);
    const int64_t Cm = config_.c_m, Cz = config_.c_z, Ce = config_.c_e;
    // Template rows follow the S cluster rows of the MSA activations (AF2 EmbeddingsAndEvoformer).
    const bool use_templates = w.has_templates && f.count("template_aatype");
    const int64_t T = use_templates ? f.at("template_aatype").size(1) : 0;

    Prediction p;
    p.iterations = iters;
    std::map<std::string, double> stage_time;
    std::vector<std::string> stage_order = {"embedders", "templates", "extra_msa_stack", "evoformer",
                                            "structure_module", "heads"};
    // The trunk stacks, distributed over the ranks of opt.comm when it has more than one (DAP).
    // On one device the whole model runs there: embedders, templates, both stacks, the structure module and the
    // heads, with the representations and the recycled state resident on it. What stays on the host is O(N):
    // feature checks, residue indices and bins, the structure module's frame algebra and all-atom
    // construction; the features go up once per iteration and the outputs come back at the end.
    // With DAP on GPUs (NCCL) only the stacks' shards live on the devices: every rank keeps the full
    // representations on the host, where the rest of the model runs, so no GPU holds a second full pair.
    const Device dev = ctx.device;
    const bool dap = opt.comm && opt.comm->size() > 1;
    const Device model_dev = dap ? Device::CPU : dev;
    // On a GPU everything but the stacks has a workspace of its own: ctx's arena is reserved at the trunk's size
    // (the planner's), and after each trim its first block takes that size again, which the device cannot spare
    // for the embedders or heads (on the CPU untouched pages cost nothing, and one arena serves every phase).
    std::unique_ptr<Context> rest_ctx;
    if (dev != Device::CPU) {
        AXF_CHECK(dev == model_dev || opt.comm->backend() == "nccl",
                  "DAP with the trunk on %s needs the NCCL communicator, not %s (run DAP on the CPU, or build with "
                  "NCCL)", device_name(dev), opt.comm->backend().c_str());
        rest_ctx = std::make_unique<Context>(model_dev);
        rest_ctx->chunk_size = ctx.chunk_size;
        rest_ctx->activation_dtype = ctx.activation_dtype;
    }
    Context& mc = rest_ctx ? *rest_ctx : ctx;  // the context of everything but the stacks
    // Between phases: empty arenas and, on a GPU, the memory pool's cached blocks returned to the driver, so that
    // one phase's freed blocks (of other sizes) do not sit beside the next phase's allocations.
    auto end_phase = [&] {
        mc.ws.trim();
        ctx.ws.trim();
        if (dev != Device::CPU) device_release_cached();
    };
    // With the model on a GPU, the precision asked for (--precision) is the trunk stacks' GEMM arithmetic; the
    // embedders, templates, structure module and heads compute in float32 (AF2 too runs its structure module in
    // float32; on the host, the CPU's emulation of TF32/bf16 would only slow them down).
    const MatmulPrecision trunk_precision = matmul_precision();
    std::optional<MatmulPrecisionScope> rest_fp32;
    if (dev != Device::CPU) rest_fp32.emplace(MatmulPrecision::Fp32);
    const EvoformerStackWeights extra_stack = stack_on(w.extra_msa_stack, opt.run_blocks, dev);
    const EvoformerStackWeights evo_stack = stack_on(w.evoformer, opt.run_blocks, dev);
    const InputEmbedderWeights w_input = weights_on(w.input_embedder, model_dev);
    const RecyclingEmbedderWeights w_recycle = weights_on(w.recycling_embedder, model_dev);
    const ExtraMsaEmbedderWeights w_extra = weights_on(w.extra_msa_embedder, model_dev);
    const SingleActivationsWeights w_single = weights_on(w.single_activations, model_dev);
    const StructureModuleWeights w_sm = weights_on(w.structure_module, model_dev);
    const HeadsWeights w_heads = weights_on(w.heads, model_dev);
    TemplateEmbeddingWeights w_templates;
    TemplateAngleEmbedderWeights w_template_angles;
    if (use_templates) {
        w_templates = template_weights_on(w.template_embedding, model_dev);
        w_template_angles = weights_on(w.template_angle_embedder, model_dev);
    }
    auto run_stack = [&](const EvoformerStackWeights& st, Tensor& m, Tensor& z, const Tensor& mm, const Tensor& pm) {
        MatmulPrecisionScope trunk(trunk_precision);
        if (dap)  // scatters the host activations into shards on ctx's device and gathers them back
            dap_evoformer_stack_forward(st, *opt.comm, m, z, mm, pm, ctx);
        else
            evoformer_stack_forward(st, m, z, mm, pm, ctx);
    };
    // Runs fn as `stage`, or as a part of it (`last` false: its seconds are reported with the next part).
    std::map<std::string, double> stage_parts;
    auto timed = [&](const std::string& stage, int r, auto&& fn, bool last = true) {
        auto t0 = Clock::now();
        fn();
        if (model_dev != Device::CPU) device_synchronize();  // the stage's kernels, not just their launches
        double s = seconds_since(t0);
        stage_time[stage] += s;
        stage_parts[stage] += s;
        if (!last) return;
        if (opt.progress) opt.progress(stage, r, stage_parts[stage]);
        stage_parts[stage] = 0;
    };
    // Host copies of what the prediction returns (the tensors themselves on the CPU).
    auto host = [](const Tensor& t) { return t.defined() ? t.to(Device::CPU) : t; };

    // With bfloat16 activations (ctx.activation_dtype) the embedders write the pair and the extra-MSA
    // activations in bfloat16 directly, block by block (template models build the pair in float32, which the
    // template embedding reads, and round it before the stacks). The MSA is built in float32, rounded before
    // the Evoformer and widened back after it; the pair stays bfloat16: the structure module and the heads
    // read it through layer norms and row blocks, and it is the next iteration's recycled pair as it is.
    const DType act = ctx.activation_dtype;
    AXF_CHECK(act == DType::F32 || act == DType::BF16, "activation dtype %s: expected float32 or bfloat16",
              dtype_name(act));
    // Each iteration builds a new MSA and pair; the recycled pair is the previous iteration's trunk output
    // itself (no copy), held only while the embedders need it unless the iterations are kept.
    Tensor prev_row = Tensor::zeros({N, Cm}, DType::F32, model_dev), prev_pair = Tensor::zeros({N, N, Cz}, act, model_dev);
    Tensor prev_pb = Tensor::zeros({N, 3});  // host: the recycling bins are computed there
    Tensor msa, pair, extra;
    Tensor msa_mask = Tensor::empty({S + T, N}, DType::F32, model_dev);
    Tensor msa_clusters;
    Tensor pair_mask = Tensor::empty({N, N}, DType::F32, model_dev);
    StructureModuleOutputs sm;
    Tensor single;
    ParkedTensor parked_msa;  // opt.offload_msa: the MSA while the extra-MSA stack runs
    for (int r = 0; r < iters; ++r) {
        msa = Tensor::empty({S + T, N, Cm}, DType::F32, model_dev);
        msa_clusters = msa.slice(0, 0, S);
        pair = Tensor::empty({N, N, Cz}, use_templates ? DType::F32 : act, model_dev);
        auto feat = [&](const char* name) { return to_f32(f.at(name).select(0, r)); };
        auto feat_dev = [&](const char* name) { return feat(name).to(model_dev); };
        const Tensor aatype = to_int64(f.at("aatype").select(0, r));
        const Tensor residue_index = to_int64(f.at("residue_index").select(0, r));
        const Tensor seq_mask = feat("seq_mask");
        const Tensor extra_mask = feat_dev("extra_msa_mask");
        msa_mask.slice(0, 0, S).copy_from(feat("msa_mask"));
        {
            Tensor pm = Tensor::empty({N, N});
            for (int64_t i = 0; i < N; ++i)
                for (int64_t j = 0; j < N; ++j) pm.f32()[i * N + j] = seq_mask.f32()[i] * seq_mask.f32()[j];
            pair_mask.copy_from(pm);
        }
        // The extra-MSA activations (which live until their stack is done) are built after the template embedding
        // (the phase with the templates' activations), so the two never coexist; the embedders' time and
        // progress report include them either way.
        auto embed_extra_msa = [&] {
            extra = Tensor::empty({E, N, Ce}, act, model_dev);
            extra_msa_embedder_forward(w_extra, to_int64(f.at("extra_msa").select(0, r)), feat("extra_has_deletion"),
                                       feat("extra_deletion_value"), extra, mc);
        };
        timed(
            "embedders", r,
            [&] {
                input_embedder_forward(w_input, feat_dev("target_feat"), residue_index, feat_dev("msa_feat"),
                                       msa_clusters, pair, mc);
                mc.ws.trim();  // each embedder's blocks start from an empty arena (planned one at a time)
                Tensor row0 = msa.select(0, 0);
                recycling_embedder_forward(w_recycle, prev_row, prev_pair, prev_pb, row0, pair, mc);
                mc.ws.trim();
                prev_pair = Tensor();  // kept iterations hold their own (host) copy of it
                if (use_templates) return;
                // Without templates the MSA is final here: its copy out overlaps the extra-MSA embedder.
                if (opt.offload_msa) parked_msa.park(msa);
                embed_extra_msa();
            },
            !use_templates);
        Tensor template_pair_update, template_rows;
        if (use_templates) {
            timed("templates", r, [&] {
                TemplatePairInputs in{to_int64(f.at("template_aatype").select(0, r)), feat("template_all_atom_mask"),
                                      feat("template_pseudo_beta"), feat("template_pseudo_beta_mask"),
                                      feat("template_mask")};
                // The angle rows first: they complete the MSA, whose copy out (offload) then overlaps the template
                // pair stacks. (AF2 appends them after the extra-MSA stack; they depend on neither.)
                TorsionAngles ta;
                if (f.count("template_torsion_angles_sin_cos")) {
                    ta = {feat("template_torsion_angles_sin_cos"), feat("template_alt_torsion_angles_sin_cos"),
                          feat("template_torsion_angles_mask")};
                } else {  // AF2 computes them inside the model (float64 here: template_features.h)
                    ta = atom37_to_torsion_angles(in.template_aatype, feat("template_all_atom_positions"),
                                                  in.template_all_atom_mask);
                }
                const Tensor torsion_mask = ta.mask;
                Tensor angle_feat = template_angle_feat(in.template_aatype, ta.sin_cos, ta.alt_sin_cos, torsion_mask);
                template_rows = msa.slice(0, S, S + T);
                template_angle_embedder_forward(w_template_angles, angle_feat.to(model_dev), template_rows, mc);
                msa_mask.slice(0, S, S + T).copy_from(template_msa_mask(torsion_mask));
                template_rows = opt.keep_recycles ? host_copy(template_rows) : Tensor();  // not a view of msa
                if (opt.offload_msa) parked_msa.park(msa);
                // Into the pair itself, unless the update is kept (the same rounding either way).
                if (opt.keep_recycles) {
                    template_pair_update = Tensor::empty({N, N, Cz}, DType::F32, model_dev);
                    template_embedding_forward(w_templates, in, pair, pair_mask, template_pair_update, false, mc);
                    add(pair, template_pair_update);
                    template_pair_update = host(template_pair_update);
                } else {
                    template_embedding_forward(w_templates, in, pair, pair_mask, pair, true, mc);
                }
            });
            end_phase();
            timed("embedders", r, embed_extra_msa);
        }
        // Each phase starts from an empty arena: pages an earlier phase touched would otherwise stay resident
        // under this one's peak, which the planner counts phase by phase (apps/plan.cpp).
        pair = to_dtype(pair, act);  // template models: the float32 pair rounded (otherwise itself)
        if (parked_msa.parked()) {  // its device memory goes back for the extra-MSA stack
            msa = msa_clusters = Tensor();
            parked_msa.release();
        }
        end_phase();
        timed("extra_msa_stack", r, [&] { run_stack(extra_stack, extra, pair, extra_mask, pair_mask); });
        extra = Tensor();  // the extra-MSA activations are not needed past their stack
        if (parked_msa.parked()) msa = parked_msa.restore();  // the next park replaces parked_msa
        msa_clusters = Tensor();  // a view: it would keep the float32 MSA alive under its bfloat16 copy
        msa = to_dtype(msa, act);
        timed("evoformer", r, [&] { run_stack(evo_stack, msa, pair, msa_mask, pair_mask); });
        end_phase();
        msa = to_dtype(msa, DType::F32);
        msa_clusters = msa.slice(0, 0, S);
        timed("structure_module", r, [&] {
            single = Tensor::empty({N, config_.c_s}, DType::F32, model_dev);
            linear(msa.select(0, 0), w_single.single_activations.weights, w_single.single_activations.bias, single);
            StructureModuleConfig sc;
            sc.num_layers = config_.structure_module_layers;
            sm = structure_module_forward(w_sm, sc, single, pair, aatype, seq_mask, mc);
        });
        end_phase();
        prev_row = msa.select(0, 0).clone();
        prev_pair = r + 1 < iters ? pair : Tensor();  // the next embedders build a new pair
        prev_pb = pseudo_beta(aatype, sm.final_atom_positions);
        if (opt.keep_recycles) {
            IterationRecord rec{host(prev_row), host(pair), host(single), sm.act, sm.final_atom_positions,
                                sm.final_atom14_positions, sm.traj, prev_pb, Tensor(), Tensor()};
            if (use_templates) {
                rec.template_pair_embedding = host(template_pair_update);
                rec.template_angle_embedding = template_rows;
            }
            p.recycles.push_back(rec);
        }
        if (r == iters - 1) {
            p.aatype = aatype;
            p.residue_index = residue_index;
        }
    }
    timed("heads", iters - 1, [&] {
        p.heads = heads_forward(w_heads, msa_clusters, pair, single, sm.act.to(model_dev), mc, opt.keep_pair_logits);
    });
    p.structure_module = sm;
    p.msa = host(T > 0 ? msa_clusters.clone() : msa);
    p.msa_first_row = host(prev_row);
    p.pair = host(pair);
    p.single = host(single);
    for (const auto& s : stage_order)
        if (s != "templates" || use_templates) p.timings.push_back({s, stage_time[s]});
    return p;
}

}  // namespace axfold

namespace axfold {

std::map<std::string, Tensor> prediction_output_tensors(const Prediction& p) {
    std::map<std::string, Tensor> o;
    // Heads' tensors that were not kept (PredictOptions::keep_pair_logits) are left out below.
    const HeadsOutputs& h = p.heads;
    const StructureModuleOutputs& sm = p.structure_module;
    o["final_atom_positions"] = sm.final_atom_positions;
    o["final_atom_mask"] = sm.final_atom_mask;
    o["final_atom14_positions"] = sm.final_atom14_positions;
    o["atom14_atom_exists"] = sm.atom14_atom_exists;
    o["plddt"] = h.plddt;
    o["predicted_lddt_logits"] = h.predicted_lddt_logits;
    o["distogram_logits"] = h.distogram_logits;
    o["distogram_bin_edges"] = h.distogram_bin_edges;
    o["masked_msa_logits"] = h.masked_msa_logits;
    o["experimentally_resolved_logits"] = h.experimentally_resolved_logits;
    if (h.has_pae) {
        o["predicted_aligned_error_logits"] = h.predicted_aligned_error_logits;
        o["aligned_confidence_probs"] = h.aligned_confidence_probs;
        o["predicted_aligned_error"] = h.predicted_aligned_error;
        o["max_predicted_aligned_error"] = Tensor::full({}, h.max_predicted_aligned_error);
        o["ptm"] = Tensor::full({}, h.ptm);
    }
    o["representations/msa"] = p.msa;
    o["representations/msa_first_row"] = p.msa_first_row;
    o["representations/pair"] = p.pair;
    o["representations/single"] = p.single;
    o["representations/structure_module"] = sm.act;
    o["structure_module/traj"] = sm.traj;
    o["structure_module/final_affine"] = sm.traj.select(0, sm.traj.size(0) - 1);
    o["structure_module/sidechain_frames"] = sm.sidechain_frames;
    o["structure_module/angles_sin_cos"] = sm.angles_sin_cos;
    o["structure_module/unnormalized_angles_sin_cos"] = sm.unnormalized_angles_sin_cos;
    o["structure_module/atom14_positions"] = sm.atom14_positions;
    o["structure_module/states"] = sm.states;
    for (auto it = o.begin(); it != o.end();) it = it->second.defined() ? std::next(it) : o.erase(it);
    for (size_t r = 0; r < p.recycles.size(); ++r) {
        const IterationRecord& rec = p.recycles[r];
        const std::string g = "recycles/" + std::to_string(r) + "/";
        o[g + "msa_first_row"] = rec.msa_first_row;
        o[g + "pair"] = rec.pair;
        o[g + "single"] = rec.single;
        o[g + "structure_module"] = rec.structure_module;
        o[g + "final_atom_positions"] = rec.final_atom_positions;
        o[g + "final_atom14_positions"] = rec.final_atom14_positions;
        o[g + "traj"] = rec.traj;
        o[g + "pseudo_beta"] = rec.pseudo_beta;
        if (rec.template_pair_embedding.defined()) o[g + "template_pair_embedding"] = rec.template_pair_embedding;
        if (rec.template_angle_embedding.defined()) o[g + "template_angle_embedding"] = rec.template_angle_embedding;
    }
    return o;
}

}  // namespace axfold

namespace axfold {

io::ProteinStructure prediction_structure(const Prediction& p) {
    io::ProteinStructure prot;
    prot.aatype = p.aatype;
    prot.residue_index = p.residue_index;
    prot.atom_positions = p.structure_module.final_atom_positions;
    prot.atom_mask = p.structure_module.final_atom_mask;
    const Tensor plddt = p.heads.plddt.to(Device::CPU).contiguous(), mask = prot.atom_mask.to(Device::CPU).contiguous();
    const int64_t N = plddt.numel();
    AXF_CHECK(mask.dim() == 2 && mask.size(0) == N && mask.size(1) == 37, "prediction: atom mask %s for %lld residues",
              mask.desc().c_str(), (long long)N);
    prot.b_factors = Tensor::zeros({N, 37});
    for (int64_t i = 0; i < N; ++i)
        for (int64_t a = 0; a < 37; ++a) prot.b_factors.f32()[i * 37 + a] = plddt.f32()[i] * mask.f32()[i * 37 + a];
    return prot;
}

double mean_plddt(const Prediction& p) {
    const Tensor plddt = p.heads.plddt.to(Device::CPU).contiguous();
    double sum = 0;
    for (int64_t i = 0; i < plddt.numel(); ++i) sum += plddt.f32()[i];
    return sum / static_cast<double>(std::max<int64_t>(plddt.numel(), 1));
}

}  // namespace axfold
