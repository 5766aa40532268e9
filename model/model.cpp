#include "model/model.h"

#include <cmath>
#include <cstring>

#include "io/params.h"
#include "kernels/device.h"
#include "model/model_params.h"

namespace axfold {

namespace {

const std::string kRoot = "alphafold/alphafold_iteration";

struct FeatureSpec {
    const char* name;
    std::vector<char> dims;      // R = iterations, N = residues, S = MSA rows, E = extra rows, or a digit-coded size
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

// AlphaFold-Multimer's processed features (AF2 `modules_multimer`): the extra MSA's deletions as counts, the
// chain ids, 21-channel target_feat; templates as atoms only (the model derives everything else).
const std::vector<FeatureSpec>& multimer_model_inputs() {
    static const std::vector<FeatureSpec> specs = {
        {"aatype", {'R', 'N'}, {}, true},
        {"target_feat", {'R', 'N', 'F'}, {21}, false},
        {"residue_index", {'R', 'N'}, {}, true},
        {"asym_id", {'R', 'N'}, {}, true},
        {"entity_id", {'R', 'N'}, {}, true},
        {"sym_id", {'R', 'N'}, {}, true},
        {"seq_mask", {'R', 'N'}, {}, false},
        {"msa_feat", {'R', 'S', 'N', 'F'}, {49}, false},
        {"msa_mask", {'R', 'S', 'N'}, {}, false},
        {"extra_msa", {'R', 'E', 'N'}, {}, true},
        {"extra_deletion_matrix", {'R', 'E', 'N'}, {}, false},
        {"extra_msa_mask", {'R', 'E', 'N'}, {}, false},
    };
    return specs;
}

const std::vector<FeatureSpec>& multimer_template_inputs() {
    static const std::vector<FeatureSpec> specs = {
        {"template_aatype", {'R', 'T', 'N'}, {}, true},
        {"template_all_atom_positions", {'R', 'T', 'N', 'F', 'F'}, {37, 3}, false},
        {"template_all_atom_mask", {'R', 'T', 'N', 'F'}, {37}, false},
    };
    return specs;
}

}  // namespace

ModelPreset ModelPreset::from_name(const std::string& name) {
    ModelPreset p;
    p.name = name;
    std::string base = name;
    for (const std::string suffix : {"_ptm", "_multimer_v3"}) {
        if (base.size() > suffix.size() && base.compare(base.size() - suffix.size(), suffix.size(), suffix) == 0) {
            (suffix == "_ptm" ? p.ptm : p.multimer) = true;
            base = base.substr(0, base.size() - suffix.size());
            break;
        }
    }
    AXF_CHECK(base.size() == 7 && base.rfind("model_", 0) == 0 && base[6] >= '1' && base[6] <= '5',
              "unknown model name '%s': expected model_1 .. model_5, optionally with _ptm, or model_1_multimer_v3 .. "
              "model_5_multimer_v3",
              name.c_str());
    p.index = base[6] - '0';
    if (p.multimer) {  // AF2's multimer config: templates and the PAE head in every model
        p.ptm = p.templates = true;
        p.max_extra_msa = 2048;
        p.max_msa_clusters = 508;
        return p;
    }
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

bool is_torsion_feature(const std::string& name) {
    return name.find("torsion_angles") != std::string::npos;
}

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

// The values a model input may hold: masks 0..1, token ids their vocabulary, chain ids up to one per residue,
// residue numbers exact in float32 (2^24), any other value (one-hot, profiles, deletion counts, coordinates in
// Angstrom) under 1e6 in magnitude.
std::pair<double, double> value_range(const std::string& name, int64_t n_res) {
    if (name.find("mask") != std::string::npos) return {0, 1};
    if (name == "extra_msa") return {0, 22};  // 20 amino acids, X, gap, the masked-MSA token
    if (name == "asym_id" || name == "entity_id" || name == "sym_id") return {0, static_cast<double>(n_res)};
    if (name == "residue_index") return {-16777216.0, 16777216.0};
    return {-1e6, 1e6};
}

}  // namespace

TemplateIterationInputs template_iteration_inputs(const FeatureDict& f, int64_t r) {
    auto feat = [&](const char* name) { return to_f32(f.at(name).select(0, r)).contiguous(); };
    TemplateIterationInputs in;
    in.pair = {to_int64(f.at("template_aatype").select(0, r)), feat("template_all_atom_mask"),
               feat("template_pseudo_beta"), feat("template_pseudo_beta_mask"), feat("template_mask")};
    if (f.count("template_torsion_angles_sin_cos"))
        in.torsions = {feat("template_torsion_angles_sin_cos"), feat("template_alt_torsion_angles_sin_cos"),
                       feat("template_torsion_angles_mask")};
    else
        in.torsions = atom37_to_torsion_angles(in.pair.template_aatype, feat("template_all_atom_positions"),
                                               in.pair.template_all_atom_mask);
    return in;
}

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
                AXF_CHECK(sz->second == t.size(d), "%s: feature '%s' has shape %s, but '%s' gives %c = %lld",
                          source.c_str(), s.name, shape_str(t.shape()).c_str(), first[c].c_str(), c,
                          (long long)sz->second);
            }
        }
        if (s.integer) {
            AXF_CHECK(t.dtype() == DType::I64 || t.dtype() == DType::I32 || t.dtype() == DType::F32,
                      "%s: feature '%s' has dtype %s, expected an integer type", source.c_str(), s.name,
                      dtype_name(t.dtype()));
        } else {
            AXF_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::F64,
                      "%s: feature '%s' has dtype %s, expected float32", source.c_str(), s.name, dtype_name(t.dtype()));
        }
        // Values: finite and within what the feature can hold (a corrupt file's 3e38 in a mask would otherwise
        // surface as a degenerate rotation in the structure module).
        const auto [lo, hi] = value_range(s.name, sizes['N']);
        Tensor c = to_f32(t);
        for (int64_t i = 0; i < c.numel(); ++i) {
            const float v = c.f32()[i];
            AXF_CHECK(std::isfinite(v), "%s: feature '%s' holds a non-finite value (%g) at flat index %lld",
                      source.c_str(), s.name, v, (long long)i);
            AXF_CHECK(v >= lo && v <= hi, "%s: feature '%s' holds %g at flat index %lld, expected %g..%g",
                      source.c_str(), s.name, v, (long long)i, lo, hi);
        }
    };
    const bool multimer = config.preset.multimer;
    for (const FeatureSpec& s : multimer ? multimer_model_inputs() : model_inputs()) check(s);
    AXF_CHECK(sizes['N'] > 0 && sizes['S'] > 0 && sizes['R'] > 0, "%s: empty features (R=%lld, N=%lld, S=%lld)",
              source.c_str(), (long long)sizes['R'], (long long)sizes['N'], (long long)sizes['S']);
    const Tensor aatype = to_int64(f.at("aatype"));
    for (int64_t i = 0; i < aatype.numel(); ++i)
        AXF_CHECK(aatype.data<int64_t>()[i] >= 0 && aatype.data<int64_t>()[i] <= 20,
                  "%s: feature 'aatype' holds %lld at flat index %lld, expected 0..20", source.c_str(),
                  (long long)aatype.data<int64_t>()[i], (long long)i);
    if (multimer) {  // all three template features or none
        int present = 0;
        for (const FeatureSpec& s : multimer_template_inputs()) present += f.count(s.name) > 0;
        AXF_CHECK(present == 0 || present == 3,
                  "%s: incomplete template features: AlphaFold-Multimer reads "
                  "template_aatype, template_all_atom_positions and template_all_atom_mask",
                  source.c_str());
        if (present == 3)
            for (const FeatureSpec& s : multimer_template_inputs()) check(s);
    } else if (config.preset.templates && has_template_features(f, source)) {
        for (const FeatureSpec& s : template_inputs())
            if (!is_torsion_feature(s.name) || f.count(s.name)) check(s);
    }
    if (config.preset.templates && f.count("template_aatype")) {
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

ModelConfig model_config(const std::map<std::string, Shape>& shapes, const std::string& model_name,
                         int structure_module_layers, const std::string& file) {
    ModelConfig c;
    c.preset = ModelPreset::from_name(model_name);
    AXF_CHECK(structure_module_layers >= 1, "structure module layers must be >= 1, got %d", structure_module_layers);
    c.structure_module_layers = structure_module_layers;
    auto has = [&](const std::string& key) { return shapes.count(kRoot + key) > 0; };
    const bool multimer = has("/evoformer/~_relative_encoding/position_activations//weights");
    AXF_CHECK(multimer == c.preset.multimer,
              "%s: parameters of an %s model, but model '%s' is %s (give a %s model name)", file.c_str(),
              multimer ? "AlphaFold-Multimer" : "AlphaFold2 monomer", model_name.c_str(),
              c.preset.multimer ? "AlphaFold-Multimer's" : "a monomer model",
              multimer ? "model_<n>_multimer_v3" : "monomer (model_<n> or model_<n>_ptm)");
    const bool has_templates =
        has("/evoformer/template_embedding/single_template_embedding/" +
            std::string(multimer ? "template_pair_embedding_0//weights" : "embedding2d//weights"));
    const bool has_pae = has("/predicted_aligned_error_head/logits//weights");
    AXF_CHECK(has_pae == c.preset.ptm,
              "%s: parameters %s a predicted-aligned-error head, but model '%s' %s (parameters of another model?)",
              file.c_str(), has_pae ? "have" : "lack", model_name.c_str(),
              c.preset.ptm ? "needs one" : "has none; use the _ptm model name");
    AXF_CHECK(has_templates == c.preset.templates,
              "%s: parameters %s template embedding, but model '%s' %s templates (parameters of another model?)",
              file.c_str(), has_templates ? "have a" : "lack the", model_name.c_str(),
              c.preset.templates ? "uses" : "does not use");
    check_param_shapes(shapes, c.preset, file);
    const ModelDims d = infer_model_dims(shapes, c.preset, file);
    c.evoformer_blocks = d.evoformer_blocks;
    c.extra_msa_blocks = d.extra_msa_blocks;
    c.c_m = d.evoformer.c_m;
    c.c_z = d.evoformer.c_z;
    c.c_s = d.c_s;
    c.c_e = d.extra_msa.c_m;
    if (c.preset.templates) {
        c.template_pair_blocks = d.template_pair_blocks;
        c.c_t = d.c_t;
    }
    return c;
}

Model Model::on(Device device) const {
    Model m = *this;
    m.weights_ = weights_on(weights_, device);
    return m;
}

Model Model::from_store(std::shared_ptr<const ParamStore> params, const std::string& model_name,
                        int structure_module_layers) {
    Model m;
    m.params_ = std::move(params);
    const ParamStore& ps = *m.params_;
    m.config_ = model_config(ps.shapes(), model_name, structure_module_layers,
                             ps.path().empty() ? "<in-memory parameters>" : ps.path());
    const ModelConfig& c = m.config_;
    const bool multimer = c.preset.multimer, has_templates = c.preset.templates, has_pae = c.preset.ptm;
    ParamLookup get = [&ps](const std::string& k) { return ps.get(k); };
    ModelWeights& w = m.weights_;
    const std::string evo = kRoot + "/evoformer";
    w.multimer = w.input_embedder.multimer = multimer;
    bind_params(w.input_embedder, evo, get);
    bind_params(w.recycling_embedder, evo, get);
    bind_params(w.extra_msa_embedder, evo, get);
    bind_params(w.single_activations, evo, get);
    w.extra_msa_stack = load_evoformer_stack(get, evo + "/extra_msa_stack", true, multimer);
    w.evoformer = load_evoformer_stack(get, evo + "/evoformer_iteration", false, multimer);
    w.structure_module = load_structure_module(get, kRoot + "/structure_module", multimer);
    if (has_templates) {
        w.has_templates = true;
        if (multimer) {
            w.multimer_template_embedding = load_multimer_template_embedding(get, evo + "/template_embedding");
        } else {
            w.template_embedding = load_template_embedding(get, evo + "/template_embedding");
        }
        bind_params(w.template_angle_embedder, evo, get);
    }
    w.heads.has_pae = has_pae;
    bind_params(w.heads, kRoot, get);
    return m;
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
    if (h.has_iptm) {
        o["iptm"] = Tensor::full({}, h.iptm);
        o["weighted_ptm_score"] = Tensor::full({}, h.weighted_ptm_score);
    }
    if (p.asym_id.defined()) o["asym_id"] = p.asym_id;
    o["num_iterations"] = Tensor::empty({}, DType::I64);
    o["num_iterations"].data<int64_t>()[0] = p.iterations;
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
        if (rec.msa.defined()) o[g + "msa"] = rec.msa;
        if (rec.template_pair_embedding.defined()) o[g + "template_pair_embedding"] = rec.template_pair_embedding;
        // AlphaFold-Multimer's names for the template rows: template_single_embedding and their mask template_mask.
        const bool multimer = rec.template_mask_rows.defined();
        if (rec.template_angle_embedding.defined())
            o[g + (multimer ? "template_single_embedding" : "template_angle_embedding")] = rec.template_angle_embedding;
        if (multimer) o[g + "template_mask"] = rec.template_mask_rows;
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
    prot.chain_index = p.asym_id;  // complexes: a chain per asym_id (undefined for monomers)
    prot.entity_index = p.entity_id;
    set_plddt_b_factors(prot, p.heads.plddt);
    return prot;
}

void set_plddt_b_factors(io::ProteinStructure& prot, const Tensor& plddt_in) {
    const Tensor plddt = host_cast(plddt_in, DType::F32), mask = host_cast(prot.atom_mask, DType::F32);
    const int64_t N = plddt.numel();
    AXF_CHECK(mask.dim() == 2 && mask.size(0) == N && mask.size(1) == 37, "prediction: atom mask %s for %lld residues",
              mask.desc().c_str(), (long long)N);
    prot.b_factors = Tensor::zeros({N, 37});
    for (int64_t i = 0; i < N; ++i)
        for (int64_t a = 0; a < 37; ++a) prot.b_factors.f32()[i * 37 + a] = plddt.f32()[i] * mask.f32()[i * 37 + a];
}

double mean_plddt(const Prediction& p) {
    const Tensor plddt = p.heads.plddt.to(Device::CPU).contiguous();
    double sum = 0;
    for (int64_t i = 0; i < plddt.numel(); ++i) sum += plddt.f32()[i];
    return sum / static_cast<double>(std::max<int64_t>(plddt.numel(), 1));
}

}  // namespace axfold
