// Raw AlphaFold2 features: building from alignments, validation, HDF5 I/O; see raw_features.h.
#include "pipeline/raw_features.h"

#include <cstring>
#include <unordered_set>

#include "io/hdf5_file.h"

namespace axfold::pipeline {

using namespace axfold::io;

namespace {

constexpr const char* kAfOrder = "ARNDCQEGHILKMFPSTWYV";

int af_index_with_x(char c) {
    for (int i = 0; i < 20; ++i)
        if (kAfOrder[i] == c) return i;
    return 20;
}

Tensor int32_tensor(const Shape& shape) {
    return Tensor::zeros(shape, DType::I32);
}

}  // namespace

int64_t RawFeatures::num_res() const {
    return at("aatype").size(0);
}
int64_t RawFeatures::msa_depth() const {
    return at("msa").size(0);
}

const Tensor& RawFeatures::at(const std::string& key) const {
    auto it = arrays.find(key);
    AXF_CHECK(it != arrays.end(), "%s: missing raw feature '%s'", source.c_str(), key.c_str());
    return it->second;
}

RawFeatures make_raw_features(const std::string& sequence, const std::string& description, const std::vector<Msa>& msas,
                              const MsaMergeOptions& options) {
    const int64_t N = static_cast<int64_t>(sequence.size());
    AXF_CHECK(N > 0, "empty query sequence '%s'", description.c_str());
    AXF_CHECK(options.max_hits.empty() || options.max_hits.size() == msas.size(),
              "%zu depth limits given for %zu alignments", options.max_hits.size(), msas.size());
    RawFeatures raw;
    raw.source = description;
    Tensor aatype = int32_tensor({N, 21}), bsr = int32_tensor({N}), ri = int32_tensor({N}), sl = int32_tensor({N});
    for (int64_t i = 0; i < N; ++i) {
        aatype.data<int32_t>()[i * 21 + af_index_with_x(sequence[i])] = 1;
        ri.data<int32_t>()[i] = static_cast<int32_t>(i);
        sl.data<int32_t>()[i] = static_cast<int32_t>(N);
    }
    raw.arrays["aatype"] = aatype;
    raw.arrays["between_segment_residues"] = bsr;
    raw.arrays["residue_index"] = ri;
    raw.arrays["seq_length"] = sl;
    raw.strings["domain_name"] = {description.substr(0, description.find_first_of(" \t"))};
    raw.strings["sequence"] = {sequence};

    // AF2 make_msa_features: the sources in order, every distinct aligned sequence once.
    std::vector<Msa> sources;
    if (msas.empty()) {
        Msa single;
        single.source = "query";
        single.sequences = {sequence};
        single.deletion_matrix = {std::vector<int32_t>(static_cast<size_t>(N), 0)};
        single.descriptions = {description};
        sources.push_back(single);
    }
    for (size_t k = 0; k < msas.size(); ++k) {
        check_msa_query(msas[k], sequence);
        const int64_t limit = options.max_hits.empty() ? default_max_hits(msas[k].source) : options.max_hits[k];
        sources.push_back(truncate_msa(msas[k], limit));
    }
    std::unordered_set<std::string> seen;
    std::vector<const std::string*> rows;
    std::vector<const std::vector<int32_t>*> dels;
    std::vector<std::string>& species = raw.strings["msa_species_identifiers"];
    for (const Msa& m : sources) {
        for (int64_t r = 0; r < m.depth(); ++r) {
            if (!seen.insert(m.sequences[r]).second) continue;
            rows.push_back(&m.sequences[r]);
            dels.push_back(&m.deletion_matrix[r]);
            species.push_back(uniprot_species(m.descriptions[r]));
        }
    }
    const int64_t S = static_cast<int64_t>(rows.size());
    Tensor msa = int32_tensor({S, N}), del = int32_tensor({S, N}), na = int32_tensor({N});
    for (int64_t s = 0; s < S; ++s) {
        for (int64_t j = 0; j < N; ++j) {
            msa.data<int32_t>()[s * N + j] = hhblits_index((*rows[s])[j]);
            del.data<int32_t>()[s * N + j] = (*dels[s])[j];
        }
    }
    for (int64_t j = 0; j < N; ++j) na.data<int32_t>()[j] = static_cast<int32_t>(S);
    raw.arrays["msa"] = msa;
    raw.arrays["deletion_matrix_int"] = del;
    raw.arrays["num_alignments"] = na;
    return raw;
}

void validate_raw_features(const RawFeatures& raw) {
    const char* src = raw.source.c_str();
    const Tensor& aatype = raw.at("aatype");
    AXF_CHECK(aatype.dim() == 2 && aatype.size(1) == 21 && aatype.size(0) > 0,
              "%s: raw feature 'aatype' has shape %s, expected [N, 21] (one-hot)", src,
              shape_str(aatype.shape()).c_str());
    const int64_t N = aatype.size(0);
    const std::vector<int64_t> a = host_int64(aatype);
    for (int64_t i = 0; i < N; ++i) {
        int64_t sum = 0;
        for (int k = 0; k < 21; ++k) {
            AXF_CHECK(a[i * 21 + k] == 0 || a[i * 21 + k] == 1,
                      "%s: raw feature 'aatype' is not one-hot (value %lld at residue %lld)", src,
                      (long long)a[i * 21 + k], (long long)i);
            sum += a[i * 21 + k];
        }
        AXF_CHECK(sum == 1, "%s: raw feature 'aatype' row %lld sums to %lld, expected a one-hot row", src, (long long)i,
                  (long long)sum);
    }
    const Tensor& msa = raw.at("msa");
    AXF_CHECK(msa.dim() == 2 && msa.size(1) == N && msa.size(0) > 0,
              "%s: raw feature 'msa' has shape %s, expected [S, %lld] with S >= 1", src, shape_str(msa.shape()).c_str(),
              (long long)N);
    const std::vector<int64_t> m = host_int64(msa);
    for (size_t i = 0; i < m.size(); ++i)
        AXF_CHECK(m[i] >= 0 && m[i] <= 21,
                  "%s: raw feature 'msa' holds %lld at row %lld, column %lld; expected 0..21 "
                  "(HHblits alphabet)",
                  src, (long long)m[i], (long long)(i / N), (long long)(i % N));
    const char* del_key = raw.has("deletion_matrix_int") ? "deletion_matrix_int" : "deletion_matrix";
    AXF_CHECK(raw.has(del_key), "%s: missing raw feature 'deletion_matrix_int' (or 'deletion_matrix')", src);
    const Tensor& del = raw.at(del_key);
    AXF_CHECK(del.shape() == msa.shape(), "%s: raw feature '%s' has shape %s, but 'msa' has %s", src, del_key,
              shape_str(del.shape()).c_str(), shape_str(msa.shape()).c_str());
    for (int64_t v : host_int64(del)) AXF_CHECK(v >= 0, "%s: raw feature '%s' holds a negative count", src, del_key);
    for (const char* key : {"residue_index", "between_segment_residues", "seq_length", "num_alignments"}) {
        if (!raw.has(key) && (std::strcmp(key, "residue_index") != 0)) continue;
        const Tensor& t = raw.at(key);
        AXF_CHECK(t.dim() == 1 && t.size(0) == N, "%s: raw feature '%s' has shape %s, expected [%lld]", src, key,
                  shape_str(t.shape()).c_str(), (long long)N);
    }
}

void write_raw_features_h5(const std::string& path, const RawFeatures& raw) {
    Hdf5Writer w(path);
    for (const auto& [k, t] : raw.arrays) w.write(k, t);
    for (const auto& [k, s] : raw.strings) {
        w.write_strings(k, s);
        w.write_string_attr(k, "pickle_dtype", "object (bytes)");
    }
    w.commit();
}

RawFeatures read_raw_features_h5(const std::string& path) {
    Hdf5File f(path);
    RawFeatures raw;
    raw.source = path;
    for (const std::string& name : f.list("/", false)) {
        if (f.is_string_dataset(name)) {
            raw.strings[name] = f.read_strings(name);
        } else {
            raw.arrays[name] = f.read(name);
        }
    }
    validate_raw_features(raw);
    return raw;
}

FeatureFileKind detect_feature_file(const std::string& path) {
    Hdf5File f(path);
    if (f.has_dataset("msa_feat")) return FeatureFileKind::Processed;
    if (f.has_dataset("msa") && (f.has_dataset("deletion_matrix_int") || f.has_dataset("deletion_matrix")))
        return FeatureFileKind::Raw;
    std::string keys;
    for (const std::string& k : f.list("/", false)) keys += (keys.empty() ? "" : ", ") + k;
    AXF_FAIL(
        "%s: neither processed features (no 'msa_feat') nor raw AlphaFold features (needs 'msa' and "
        "'deletion_matrix_int'); datasets found: %s",
        path.c_str(), keys.empty() ? "none" : keys.c_str());
}

}  // namespace axfold::pipeline
