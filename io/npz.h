// NumPy .npz reader and writer (a ZIP archive of .npy arrays), the format of DeepMind's AlphaFold2
// parameter files (params_model_*.npz, written by np.savez) and of np.savez_compressed output.
//
// Reading uses the ZIP central directory (ZIP64 end-of-central-directory records and ZIP64 extra fields
// are understood, so archives beyond 4 GiB work), entries stored (method 0) or deflated (method 8, raw
// inflate through zlib), and checks every entry's CRC-32. Each .npy payload (format versions 1.0, 2.0
// and 3.0) becomes a CPU Tensor of its own dtype.
//
// LIMITATION: only C-order arrays of the dtypes a Tensor can hold are accepted: '<f4', '<f8', '<i4',
// '<i8', '|u1', and '|b1' (read as uint8). Fortran-order, big-endian, object and other dtypes are
// rejected with an error naming the file and entry; AlphaFold2 parameters never use them.
#pragma once

#include <map>
#include <string>

#include "kernels/tensor.h"

namespace axfold::io {

// All arrays of an .npz file, keyed by entry name without the ".npy" suffix. Throws axfold::Error
// naming the file (and entry) for missing, empty, truncated, non-zip or corrupt files.
std::map<std::string, Tensor> read_npz(const std::string& path);

// The shape of every array, from the .npy headers alone (a few KiB of each entry are read or inflated).
std::map<std::string, Shape> read_npz_shapes(const std::string& path);

// Writes arrays as an uncompressed .npz (np.savez layout, .npy version 1.0 headers; ZIP64 records only
// where sizes or offsets need them). Each key gets the ".npy" suffix. Tensors may live on any device
// and have any strides. Written to path + ".tmp" first, then renamed over path.
void write_npz(const std::string& path, const std::map<std::string, Tensor>& arrays);

// One .npy payload (the bytes of a .npy file) as a CPU Tensor; `what` names it in error messages.
Tensor parse_npy(const unsigned char* bytes, size_t size, const std::string& what);

}  // namespace axfold::io
