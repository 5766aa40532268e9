// Thin RAII wrappers over the HDF5 C API for axfold's parameter, feature and golden-data files.
//
// Hdf5File reads datasets into CPU Tensors and string attributes; Hdf5Writer creates a file under a
// temporary name (path + ".tmp.<pid>") and renames it into place on commit(), so an interrupted write never
// leaves a half-written file where a good one was. HDF5's automatic error-stack printing is switched
// off; every failure becomes an axfold::Error naming the file and the dataset or attribute, with the
// innermost HDF5 error description appended.
//
// Paths are HDF5 paths relative to the root ("a/b/c" and "/a/b/c" are the same dataset).
//
// LIMITATION: Tensor has no int8/int16/uint16/uint32/uint64 dtype, so read() widens int8/int16/uint16
// datasets to int32 and uint32/uint64 to int64 (uint64 values above INT64_MAX clip), reads float16 as
// float32, and reads 1-byte enums (h5py's bool) as uint8.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/tensor.h"

namespace axfold::io {

// An HDF5 file opened read-only.
class Hdf5File {
public:
    // Throws naming the file if it is missing, unreadable or not HDF5.
    explicit Hdf5File(const std::string& path);
    ~Hdf5File();
    Hdf5File(Hdf5File&& o) noexcept;
    Hdf5File& operator=(Hdf5File&& o) noexcept;
    Hdf5File(const Hdf5File&) = delete;
    Hdf5File& operator=(const Hdf5File&) = delete;

    const std::string& path() const { return path_; }

    bool has(const std::string& path) const;          // a group or dataset exists at path
    bool has_dataset(const std::string& path) const;  // a dataset exists at path
    Shape shape(const std::string& path) const;       // dataset shape; {} for scalars

    // Dataset in its own dtype (float32/float64/int32/int64/uint8; see LIMITATION above).
    Tensor read(const std::string& path) const;
    // Any numeric dataset converted to float32.
    Tensor read_f32(const std::string& path) const;

    // A dataset of strings (variable or fixed length, any shape), flattened in row-major order.
    bool is_string_dataset(const std::string& path) const;
    std::vector<std::string> read_strings(const std::string& path) const;

    // Dataset paths under group ("/" for all), sorted, e.g. "alphafold/x/weights". With recursive false,
    // only the datasets directly in group.
    std::vector<std::string> list(const std::string& group = "/", bool recursive = true) const;

    bool has_attr(const std::string& obj_path, const std::string& name) const;
    // A string attribute (variable or fixed length) of the object at obj_path ("/" for the root group).
    std::string read_string_attr(const std::string& obj_path, const std::string& name) const;
    // A numeric scalar attribute, converted to double.
    double read_double_attr(const std::string& obj_path, const std::string& name) const;

private:
    // Before libhdf5 reads a variable-length string: every global heap collection of the file checked.
    void check_heap_collections_once() const;

    std::string path_;
    int64_t file_ = -1;  // hid_t; kept out of this header so users need no HDF5 include path
    mutable bool heaps_checked_ = false;
};

// Creates an HDF5 file at path + ".tmp.<pid>"; commit() closes it and renames it to path. Destroying an
// uncommitted writer deletes the temporary file.
class Hdf5Writer {
public:
    explicit Hdf5Writer(const std::string& path);
    ~Hdf5Writer();
    Hdf5Writer(const Hdf5Writer&) = delete;
    Hdf5Writer& operator=(const Hdf5Writer&) = delete;

    const std::string& path() const { return path_; }

    // Writes t (any device, any strides) as a new dataset at path, creating intermediate groups. Datasets
    // of >= 1024 elements are chunked and compressed with shuffle + gzip level 4.
    void write(const std::string& path, const Tensor& t);
    // Writes a 1-d dataset of variable-length UTF-8 strings (h5py's string_dtype layout).
    void write_strings(const std::string& path, const std::vector<std::string>& values);
    // Creates (or replaces) a variable-length UTF-8 string attribute on the group or dataset at obj_path.
    void write_string_attr(const std::string& obj_path, const std::string& name, const std::string& value);
    void commit();

private:
    std::string path_, tmp_path_;
    int64_t file_ = -1;  // hid_t
    bool committed_ = false;
};

}  // namespace axfold::io
