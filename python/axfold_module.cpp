// The Python module `axfold` (pybind11): the engine with AlphaFold's data types. Features are AF2's FeatureDict
// (dict[str, numpy.ndarray], the dict pickle.load gives for a features.pkl accepted as is, byte-string arrays
// included); results are a dict of numpy arrays under AF2's result names.
//
//   model = axfold.Model.load("params_model_1_ptm.npz", "model_1_ptm")
//   raw = axfold.make_features("query.fasta", msas=["uniref90_hits.sto", "bfd_uniref_hits.a3m"])
//   result = model.predict(raw, seed=0, max_memory="24G")      # raw features are transformed with `seed`
//   open("model.pdb", "w").write(axfold.to_pdb(result))
//
// Inputs are read in place where their dtype and layout allow (float32, int32, int64, C order); outputs are numpy
// arrays that own axfold's buffers (no copy). predict releases the GIL; a Model refuses a second concurrent predict
// (RuntimeError: use one Model per thread). axfold's errors become ValueError, or OSError when a file could not be
// read or written, with axfold's message.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <filesystem>
#include <fstream>
#include <mutex>

#include "evoformer/memory_plan.h"
#include "io/msa.h"
#include "io/structure_writer.h"
#include "kernels/ops.h"
#include "model/model.h"
#include "model/model_plan.h"
#include "model/run.h"
#include "pipeline/msa_pairing.h"
#include "pipeline/multimer_transforms.h"
#include "pipeline/raw_features.h"
#include "pipeline/transforms.h"

namespace py = pybind11;
using namespace axfold;

namespace {

// ---- arrays -------------------------------------------------------------------------------------------------

// A numpy array owning a host copy-free view of t (bfloat16 and device tensors are converted first).
py::array to_numpy(const Tensor& t0) {
    Tensor t = t0.to(Device::CPU);
    if (t.dtype() == DType::BF16) t = host_cast(t, DType::F32);
    t = t.contiguous();
    AXF_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::I64 || t.dtype() == DType::I32, "no numpy dtype for %s",
              t.desc().c_str());
    py::dtype dt = t.dtype() == DType::F32   ? py::dtype::of<float>()
                   : t.dtype() == DType::I64 ? py::dtype::of<int64_t>()
                                             : py::dtype::of<int32_t>();
    std::vector<py::ssize_t> shape(t.shape().begin(), t.shape().end()), strides;
    py::ssize_t step = static_cast<py::ssize_t>(dt.itemsize());
    strides.resize(shape.size());
    for (size_t d = shape.size(); d-- > 0;) {
        strides[d] = step;
        step *= shape[d];
    }
    auto* keep = new Tensor(t);
    py::capsule owner(keep, [](void* p) { delete static_cast<Tensor*>(p); });
    return py::array(dt, shape, strides, t.raw(), owner);
}

bool is_bytes_array(const py::array& a) {
    const char kind = a.dtype().kind();
    return kind == 'O' || kind == 'S' || kind == 'U';
}

// A numpy array's values as a Tensor: borrowed in place when float32/int32/int64 and C-contiguous (the caller keeps
// the array alive), else converted (float64 -> float32, other integers and bools -> int64).
Tensor to_tensor(const py::array& a, const std::string& key) {
    Shape shape(a.shape(), a.shape() + a.ndim());
    const bool c_order = (a.flags() & py::array::c_style) != 0;
    const char kind = a.dtype().kind();
    const py::ssize_t size = a.dtype().itemsize();
    if (c_order && kind == 'f' && size == 4)
        return Tensor::borrow(const_cast<void*>(a.data()), shape, DType::F32, Device::CPU);
    if (c_order && kind == 'i' && size == 8)
        return Tensor::borrow(const_cast<void*>(a.data()), shape, DType::I64, Device::CPU);
    if (c_order && kind == 'i' && size == 4)
        return Tensor::borrow(const_cast<void*>(a.data()), shape, DType::I32, Device::CPU);
    if (kind == 'f') {
        const py::array_t<float, py::array::c_style | py::array::forcecast> f(a);
        Tensor t = Tensor::empty(shape);
        std::copy_n(f.data(), f.size(), t.f32());
        return t;
    }
    AXF_CHECK(kind == 'i' || kind == 'u' || kind == 'b', "feature '%s': numpy dtype '%s' is not numeric", key.c_str(),
              std::string(py::str(a.dtype())).c_str());
    const py::array_t<int64_t, py::array::c_style | py::array::forcecast> i(a);
    Tensor t = Tensor::empty(shape, DType::I64);
    std::copy_n(i.data(), i.size(), t.data<int64_t>());
    return t;
}

std::vector<std::string> to_strings(const py::array& a) {
    std::vector<std::string> out;
    for (const py::handle& v : a.attr("ravel")()) {
        if (py::isinstance<py::bytes>(v)) {
            out.push_back(v.cast<std::string>());
        } else {
            out.push_back(py::str(v).cast<std::string>());
        }
    }
    return out;
}

py::array strings_array(const std::vector<std::string>& v) {  // AF2's dtype=object array of bytes
    py::list items;
    for (const std::string& s : v) items.append(py::bytes(s));
    return py::module_::import("numpy").attr("array")(items, py::arg("dtype") = "object");
}

// A FeatureDict (dict[str, ndarray]) as the engine's kinds of features.
struct Features {
    std::map<std::string, Tensor> arrays;
    std::map<std::string, std::vector<std::string>> strings;
    bool processed() const { return arrays.count("msa_feat") > 0; }
    bool merged() const { return arrays.count("asym_id") > 0 && arrays.count("cluster_bias_mask") > 0; }
};

Features read_features(const py::dict& d) {
    Features f;
    for (const auto& [k, v] : d) {
        const std::string key = py::str(k);
        const py::array a = py::array::ensure(v);
        AXF_CHECK(a, "feature '%s' is not an array (%s)", key.c_str(), std::string(py::str(py::type::of(v))).c_str());
        if (is_bytes_array(a)) {
            f.strings[key] = to_strings(a);
        } else {
            f.arrays[key] = to_tensor(a, key);
        }
    }
    AXF_CHECK(!f.arrays.empty(), "features: an empty dict");
    return f;
}

py::dict features_dict(const std::map<std::string, Tensor>& arrays,
                       const std::map<std::string, std::vector<std::string>>& strings = {}) {
    py::dict d;
    for (const auto& [k, t] : arrays) d[py::str(k)] = to_numpy(t);
    for (const auto& [k, s] : strings) d[py::str(k)] = strings_array(s);
    return d;
}

// ---- features -----------------------------------------------------------------------------------------------

pipeline::TransformConfig transform_config(const std::string& model_name, uint64_t seed, py::object num_recycle,
                                           py::object max_msa_clusters = py::none(),
                                           py::object max_extra_msa = py::none()) {
    const int nr = num_recycle.is_none() ? -1 : num_recycle.cast<int>();
    AXF_CHECK(num_recycle.is_none() || nr >= 0, "num_recycle %d: expected >= 0", nr);
    pipeline::TransformConfig c = pipeline::TransformConfig::for_model(model_name, seed, nr);
    if (!max_msa_clusters.is_none()) c.max_msa_clusters = max_msa_clusters.cast<int64_t>();
    if (!max_extra_msa.is_none()) c.max_extra_msa = max_extra_msa.cast<int64_t>();
    return c;
}

// Processed model inputs from any features (processed ones as they are; raw ones transformed with `tc`).
FeatureDict processed_features(const Features& f, const pipeline::TransformConfig& tc) {
    if (f.processed()) return f.arrays;
    if (f.merged()) return pipeline::process_multimer_features(f.arrays, tc);
    return pipeline::process_features(pipeline::RawFeatures{f.arrays, f.strings, "features"}, tc);
}

std::string text_or_file(const std::string& s) {
    if (s.find('\n') == std::string::npos && std::filesystem::is_regular_file(s)) {
        std::ifstream in(s, std::ios::binary);
        return std::string(std::istreambuf_iterator<char>(in), {});
    }
    return s;
}

// AF2's raw features (make_sequence_features + make_msa_features) of a sequence, FASTA text or FASTA file, and
// alignments given as paths or as A3M / Stockholm text.
py::dict make_features(const std::string& sequence_or_fasta, const std::vector<std::string>& msas,
                       const std::string& description) {
    std::string seq = sequence_or_fasta, desc = description;
    const std::string text = text_or_file(sequence_or_fasta);
    if (text.find('>') != std::string::npos) {
        const std::vector<io::FastaRecord> recs = io::parse_fasta(text, "sequence_or_fasta");
        AXF_CHECK(recs.size() == 1, "make_features: %zu FASTA records; one sequence (a complex: make_complex_features)",
                  recs.size());
        seq = recs[0].sequence;
        if (desc.empty()) desc = recs[0].description;
    }
    std::vector<io::Msa> parsed;
    for (size_t i = 0; i < msas.size(); ++i) {
        const bool file = msas[i].find('\n') == std::string::npos;
        if (file) {
            parsed.push_back(io::read_msa(msas[i]));
        } else {
            const std::string name = "msas[" + std::to_string(i) + "]";
            parsed.push_back(msas[i].rfind("# STOCKHOLM", 0) == 0 ? io::parse_stockholm(msas[i], name)
                                                                  : io::parse_a3m(msas[i], name));
        }
    }
    const pipeline::RawFeatures raw = pipeline::make_raw_features(seq, desc.empty() ? "query" : desc, parsed);
    return features_dict(raw.arrays, raw.strings);
}

// ---- the model ----------------------------------------------------------------------------------------------

struct PyModel {
    Model model;
    std::string name;
    std::unique_ptr<std::mutex> busy = std::make_unique<std::mutex>();
};

py::dict config_dict(const PyModel& m) {
    const ModelConfig& c = m.model.config();
    py::dict d;
    d["model_name"] = m.name;
    d["multimer"] = c.preset.multimer;
    d["templates"] = c.preset.templates;
    d["ptm"] = c.preset.ptm;
    d["evoformer_blocks"] = c.evoformer_blocks;
    d["extra_msa_blocks"] = c.extra_msa_blocks;
    d["structure_module_layers"] = c.structure_module_layers;
    d["c_m"] = c.c_m;
    d["c_z"] = c.c_z;
    d["c_s"] = c.c_s;
    d["c_e"] = c.c_e;
    d["c_t"] = c.c_t;
    d["template_pair_blocks"] = c.template_pair_blocks;
    d["max_msa_clusters"] = c.preset.max_msa_clusters;
    d["max_extra_msa"] = c.preset.max_extra_msa;
    return d;
}

py::dict result_dict(const Prediction& p, bool all_outputs) {
    std::map<std::string, Tensor> out;
    for (auto& [k, t] : prediction_output_tensors(p)) {
        if (!all_outputs && (k.rfind("representations/", 0) == 0 || k.find("logits") != std::string::npos ||
                             k == "aligned_confidence_probs"))
            continue;
        out[k == "final_atom_positions" || k == "final_atom_mask" ? "structure_module/" + k : k] = t;
        if (k == "final_atom_positions" || k == "final_atom_mask") out[k] = t;
    }
    out["aatype"] = p.aatype;
    out["residue_index"] = p.residue_index;
    if (p.asym_id.defined()) {
        out["asym_id"] = p.asym_id;
        out["entity_id"] = p.entity_id;
    }
    py::dict d = features_dict(out);
    const HeadsOutputs& h = p.heads;
    d["ranking_confidence"] = h.has_iptm ? static_cast<double>(h.weighted_ptm_score) : mean_plddt(p);
    d["num_recycles"] = p.iterations - 1;
    return d;
}

py::dict predict(PyModel& m, const py::dict& features, const std::string& device, const std::string& precision,
                 const std::string& activations, py::object max_memory, py::object chunk_size, py::object num_recycle,
                 uint64_t seed, py::object recycle_early_stop_tolerance, int threads, const std::string& offload,
                 bool all_outputs, py::object max_msa_clusters, py::object max_extra_msa) {
    std::unique_lock<std::mutex> lock(*m.busy, std::try_to_lock);
    if (!lock.owns_lock())  // RuntimeError
        throw std::runtime_error("this Model is already predicting in another thread; use one Model per thread");
    const Features f = read_features(features);  // borrows the caller's arrays: they outlive the call
    RunSettings s;
    s.device = device;
    s.precision = precision;
    s.activations = activations;
    s.max_memory = max_memory.is_none() ? "" : py::str(max_memory).cast<std::string>();
    s.chunk_size = chunk_size.is_none() ? -1 : chunk_size.cast<int64_t>();
    s.threads = threads;
    s.offload = offload;
    s.recycle_early_stop_tolerance =
        recycle_early_stop_tolerance.is_none() ? -1 : recycle_early_stop_tolerance.cast<double>();
    const int nr = num_recycle.is_none() ? -1 : num_recycle.cast<int>();
    // Raw features get num_recycle + 1 sampled iterations (AF2's default recycles when None).
    const pipeline::TransformConfig tc = transform_config(m.name, seed, num_recycle, max_msa_clusters, max_extra_msa);
    Prediction p;
    {
        py::gil_scoped_release release;
        const RunTarget target = configure_run(s);
        const FeatureDict fd = processed_features(f, tc);
        Context ctx(target.device);
        axfold::PredictOptions po;
        prepare_prediction(m.model, fd, "features", s, target, nr, all_outputs, ctx, po);
        p = m.model.predict(fd, po, ctx);
    }
    return result_dict(p, all_outputs);
}

// ---- structures -----------------------------------------------------------------------------------------------

Tensor first_iteration(const Tensor& t, int data_dims) {  // processed features carry a leading iteration axis
    return t.dim() > data_dims ? t.select(0, 0).contiguous() : t;
}

io::ProteinStructure structure(const py::dict& result, py::object features) {
    auto get = [&](const py::dict& d, const char* k) { return to_tensor(py::array::ensure(d[k]), k).clone(); };
    io::ProteinStructure prot;
    const py::dict src = features.is_none() ? result : features.cast<py::dict>();
    Tensor aatype = get(src, "aatype");
    if (!features.is_none() && aatype.dim() == 2 && aatype.size(1) == 21 && !src.contains("msa_feat")) {
        // raw features: one-hot aatype [N, 21]
        const std::vector<int64_t> v = host_int64(aatype);
        Tensor idx = Tensor::empty({aatype.size(0)}, DType::I64);
        for (int64_t i = 0; i < aatype.size(0); ++i)
            idx.data<int64_t>()[i] =
                std::max_element(v.begin() + i * 21, v.begin() + (i + 1) * 21) - (v.begin() + i * 21);
        aatype = idx;
    }
    prot.aatype = host_cast(first_iteration(aatype, 1), DType::I64);
    prot.residue_index = host_cast(first_iteration(get(src, "residue_index"), 1), DType::I64);
    if (src.contains("asym_id")) prot.chain_index = host_cast(first_iteration(get(src, "asym_id"), 1), DType::I64);
    if (src.contains("entity_id")) prot.entity_index = host_cast(first_iteration(get(src, "entity_id"), 1), DType::I64);
    prot.atom_positions = host_cast(get(result, "final_atom_positions"), DType::F32);
    prot.atom_mask = host_cast(get(result, "final_atom_mask"), DType::F32);
    const Tensor plddt = host_cast(get(result, "plddt"), DType::F32);
    const int64_t n = plddt.numel();
    AXF_CHECK(prot.atom_positions.numel() == n * 37 * 3 && prot.aatype.numel() == n,
              "to_pdb: %lld pLDDT values, positions %s, aatype %s", (long long)n,
              shape_str(prot.atom_positions.shape()).c_str(), shape_str(prot.aatype.shape()).c_str());
    set_plddt_b_factors(prot, plddt);
    return prot;
}

// ---- errors -----------------------------------------------------------------------------------------------------

bool about_files(const std::string& m) {
    for (const char* w : {"no such file", "No such file", "cannot open", "cannot read", "cannot write", "cannot create",
                          "unable to open", "Permission denied", "not a directory"})
        if (m.find(w) != std::string::npos) return true;
    return m.find("file") != std::string::npos && m.find("not found") != std::string::npos;
}

}  // namespace

PYBIND11_MODULE(axfold, m) {
    m.doc() = "axfold: AlphaFold2 and AlphaFold-Multimer in C++, with AlphaFold's feature and result dicts";
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const axfold::Error& e) {
            const std::string msg = e.what();
            if (about_files(msg)) {
                PyErr_SetString(PyExc_OSError, msg.c_str());
            } else {
                PyErr_SetString(PyExc_ValueError, msg.c_str());
            }
        }
    });

    py::class_<PyModel>(m, "Model", "An AlphaFold2 / AlphaFold-Multimer model with its parameters")
        .def_static(
            "load",
            [](const std::string& params_path, const std::string& model_name, int structure_module_layers) {
                return PyModel{Model::load(params_path, model_name, structure_module_layers), model_name};
            },
            py::arg("params_path"), py::arg("model_name"), py::arg("structure_module_layers") = 8,
            "Parameters of model_name (model_1 .. model_5[_ptm], model_1_multimer_v3 ..) from .npz or .h5")
        .def_property_readonly("name", [](const PyModel& pm) { return pm.name; })
        .def_property_readonly("config", &config_dict)
        .def("predict", &predict, py::arg("features"), py::kw_only(), py::arg("device") = "cpu",
             py::arg("precision") = "fp32", py::arg("activations") = "", py::arg("max_memory") = py::none(),
             py::arg("chunk_size") = py::none(), py::arg("num_recycle") = py::none(), py::arg("seed") = 0,
             py::arg("recycle_early_stop_tolerance") = py::none(), py::arg("threads") = 0, py::arg("offload") = "auto",
             py::arg("all_outputs") = false, py::arg("max_msa_clusters") = py::none(),
             py::arg("max_extra_msa") = py::none(),
             "Predicts from AF2 features (raw: transformed with `seed`, max_msa_clusters and max_extra_msa (the "
             "preset's by default); processed: as they are). Returns AF2's result names as numpy arrays; all_outputs "
             "adds the representations and logits (`axfold predict --save-outputs`).");

    m.def("make_features", &make_features, py::arg("sequence_or_fasta"), py::arg("msas") = std::vector<std::string>(),
          py::arg("description") = "",
          "AF2's raw features of one sequence (a sequence, FASTA text or a FASTA path) and its alignments (paths or "
          "A3M / Stockholm text, merged in order)");
    m.def(
        "make_complex_features",
        [](const std::string& fasta, const std::vector<std::string>& msas, const std::string& msa_dir) {
            const pipeline::ComplexFeatures c = pipeline::complex_features(fasta, msas, msa_dir);
            return features_dict(c.merged);
        },
        py::arg("fasta"), py::arg("msas") = std::vector<std::string>(), py::arg("msa_dir") = "",
        "AlphaFold-Multimer's merged features of a complex (FASTA path: a record per chain, or A:B) with AlphaFold's "
        "msas/ directory (msa_dir), a ColabFold complex A3M (msas=[path]) or none");
    m.def(
        "process_features",
        [](const py::dict& features, const std::string& model_name, uint64_t seed, py::object num_recycle) {
            const Features f = read_features(features);
            return features_dict(processed_features(f, transform_config(model_name, seed, num_recycle)));
        },
        py::arg("features"), py::arg("model_name"), py::arg("seed") = 0, py::arg("num_recycle") = py::none(),
        "AF2's model-side transforms of raw features for model_name (a leading iteration axis, num_recycle + 1)");
    m.def(
        "to_pdb", [](const py::dict& result, py::object features) { return io::to_pdb(structure(result, features)); },
        py::arg("result"), py::arg("features") = py::none(), "The prediction as PDB text (pLDDT as B-factors)");
    m.def(
        "to_mmcif",
        [](const py::dict& result, py::object features, const std::string& name) {
            return io::to_mmcif(structure(result, features), name);
        },
        py::arg("result"), py::arg("features") = py::none(), py::arg("name") = "axfold",
        "The prediction as mmCIF text (ModelCIF pLDDT)");
    m.def(
        "plan",
        [](int64_t n_res, int64_t n_seq, int64_t n_extra, const std::string& model_name, py::object max_memory,
           const std::string& precision, const std::string& activations) {
            ModelConfig cfg;
            cfg.preset = ModelPreset::from_name(model_name);
            const DType act = activation_dtype(parse_precision(precision), activations);
            ModelMemoryPhases ph;
            size_t peak = 0;
            const ChunkPlan p = plan_prediction(cfg, n_res, n_seq, n_extra,
                                                max_memory.is_none() ? "" : py::str(max_memory).cast<std::string>(), -1,
                                                &peak, act, 0, &ph);
            py::dict d;
            d["chunk_size"] = p.chunk_size;
            d["predicted_peak_bytes"] = peak;
            py::dict modules;
            for (auto& [name, bytes] : p.modules) modules[py::str(name)] = bytes;
            d["modules"] = modules;
            return d;
        },
        py::arg("n_res"), py::arg("n_seq") = 512, py::arg("n_extra") = 5120, py::arg("model_name") = "model_3_ptm",
        py::arg("max_memory") = py::none(), py::arg("precision") = "fp32", py::arg("activations") = "",
        "The memory planner on the CPU: the chunk size chosen and the predicted peak (AF2 widths)");
    m.attr("__version__") = AXFOLD_VERSION;
}
