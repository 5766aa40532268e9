// AlphaFold2 parameter store: every weight array of a model, keyed exactly as in DeepMind's parameter
// files, "<haiku module scope>//<param name>", e.g.
//   "alphafold/alphafold_iteration/evoformer/evoformer_iteration/msa_row_attention_with_pair_bias/attention//query_w"
// Stacked layers (evoformer_iteration, extra_msa_stack, template_pair_stack) keep their leading layer axis.
//
// Loads DeepMind's .npz (np.savez or np.savez_compressed) or axfold's params.h5 layout: one dataset per
// key at the key's path with '//' written as '/', and a string attribute "npz_key" holding the exact key
// (the layout of golden/small/params.h5; the key is read back from the path). The format is detected from the
// file's magic bytes, not its extension. Every array is converted to float32 on load and checked to be finite
// and under 1e9 in magnitude.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "kernels/tensor.h"

namespace axfold {

// Every array's shape, keyed as ParamStore keys them, read without the values (the .npy headers, the HDF5 dataspaces):
// a model's configuration and memory plan before its parameters are loaded.
std::map<std::string, Shape> read_param_shapes(const std::string& path);

class ParamStore {
public:
    // Throws naming the file when it is missing, not .npz/HDF5, corrupt, or holds non-finite values.
    static ParamStore load(const std::string& path);

    bool has(const std::string& key) const;
    // Float32 CPU tensor for key. Throws naming the key, the file and the nearest existing key when
    // missing; when expected_shape is non-empty and differs from the stored shape, throws naming both.
    const Tensor& get(const std::string& key, const Shape& expected_shape = {}) const;
    std::vector<std::string> keys() const;  // sorted
    size_t size() const { return params_.size(); }
    int64_t num_scalars() const;  // total elements over all arrays
    std::map<std::string, Shape> shapes() const;
    const std::string& path() const { return path_; }

    // Adds or replaces key; t is converted to a float32 CPU tensor (tests, init-params).
    void insert(const std::string& key, Tensor t);

    void save_h5(const std::string& path) const;   // params.h5 layout; temp file + rename
    void save_npz(const std::string& path) const;  // uncompressed .npz, DeepMind layout; temp file + rename

private:
    std::string path_;
    std::map<std::string, Tensor> params_;
};

}  // namespace axfold
