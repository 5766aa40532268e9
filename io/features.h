// Processed model features in HDF5: one dataset per feature at the root, each with a leading iteration
// axis R (the layout of the golden features.h5; see model/model.h).
#pragma once

#include <map>
#include <string>

#include "kernels/tensor.h"

namespace axfold::io {

// Every dataset directly under the root, keeping its dtype. Throws naming the file for unreadable input.
std::map<std::string, Tensor> read_features_h5(const std::string& path);
// Writes a feature dict (atomically), e.g. features made from FASTA/A3M input.
void write_features_h5(const std::string& path, const std::map<std::string, Tensor>& features);

}  // namespace axfold::io
