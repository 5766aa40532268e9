// Tensor: axfold's small owning n-d array.
//
// Row-major with explicit strides (in elements), last dimension contiguous after contiguous(), the
// PyTorch/OpenFold layout so dumps line up with the reference. Views (slice, select, permute, view,
// expand) share storage; contiguous(), clone() and to(device) copy. Storage is either owned (heap or
// device allocation) or borrowed from a Workspace arena.
#pragma once

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "kernels/error.h"

namespace axfold {

enum class Device : uint8_t { CPU, CUDA };
enum class DType : uint8_t { F32, F64, I32, I64, U8, BF16 };

// bfloat16 storage: the upper half of a float32 (8 exponent bits, 7 mantissa bits). Used for the trunk's
// MSA and pair activations under --precision bf16; arithmetic always widens to float32 first.
struct bf16_t {
    uint16_t bits;
};
// Rounded to nearest-even (NaN stays a quiet NaN, infinities stay infinite). Branch-free, so that loops
// over it vectorise.
inline uint16_t bf16_from_float(float x) {
    uint32_t u;
    std::memcpy(&u, &x, sizeof u);
    const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    const uint32_t quiet_nan = (u >> 16) | 0x40u;
    return static_cast<uint16_t>((u & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded);
}
inline float bf16_to_float(uint16_t b) {
    const uint32_t u = static_cast<uint32_t>(b) << 16;
    float x;
    std::memcpy(&x, &u, sizeof x);
    return x;
}

size_t dtype_size(DType t);
const char* dtype_name(DType t);
const char* device_name(Device d);

// clang-format off
template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::F32; }
template <> constexpr DType dtype_of<double>() { return DType::F64; }
template <> constexpr DType dtype_of<int32_t>() { return DType::I32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::I64; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::U8; }
template <> constexpr DType dtype_of<bf16_t>() { return DType::BF16; }
// clang-format on

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);

// A block of memory on one device. `owned` storage frees itself; borrowed storage (workspace) does not.
struct Storage {
    void* ptr = nullptr;
    size_t bytes = 0;
    Device device = Device::CPU;
    bool owned = true;
    bool pinned = false;  // page-locked host memory (Tensor::empty_pinned)
    bool emulated = false;  // device memory in host memory (DeviceEmulation, kernels/device.h)
    ~Storage();
};

class Tensor {
public:
    Tensor() = default;

    static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
    static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
    static Tensor full(const Shape& shape, float value);
    static Tensor from_vector(const Shape& shape, const std::vector<float>& values);
    // Host tensor in page-locked memory where CUDA has a device (for asynchronous copies), else plain host memory.
    static Tensor empty_pinned(const Shape& shape, DType dtype = DType::F32);
    // Wraps memory the caller keeps alive (workspace arenas).
    static Tensor borrow(void* ptr, const Shape& shape, DType dtype, Device device);

    bool defined() const { return storage_ != nullptr; }
    const Shape& shape() const { return shape_; }
    const Shape& strides() const { return strides_; }
    int dim() const { return static_cast<int>(shape_.size()); }
    int64_t size(int d) const { return shape_[norm_dim(d)]; }
    int64_t stride(int d) const { return strides_[norm_dim(d)]; }
    int64_t numel() const { return shape_numel(shape_); }
    DType dtype() const { return dtype_; }
    Device device() const { return device_; }
    int64_t offset() const { return offset_; }
    bool is_contiguous() const;
    // Tensors (this one and its views, wherever they are) sharing this storage: 1 when this handle is the only one.
    long storage_refs() const { return storage_.use_count(); }
    std::string desc() const;  // "f32[2, 3] cpu"

    // Pointer to element 0 of this view. Under DeviceEmulation (kernels/device.h) a device tensor's memory may be
    // reached only by the kernels layer (ops, transfers, the workspace): host code asking for it throws.
    void* raw() const;
    template <class T>
    T* data() const {
        AXF_CHECK(dtype_ == dtype_of<T>(), "tensor %s accessed as %s", desc().c_str(), dtype_name(dtype_of<T>()));
        return static_cast<T*>(raw());
    }
    float* f32() const { return data<float>(); }

    // Element access for tests and small host-side code (CPU only, any strides).
    template <class T = float>
    T& at(std::initializer_list<int64_t> idx) const {
        int64_t off = 0;
        int d = 0;
        for (int64_t i : idx) off += i * strides_[d++];
        return data<T>()[off];
    }

    // Views.
    Tensor view(const Shape& shape) const;  // contiguous input; one dim may be -1
    Tensor slice(int d, int64_t begin, int64_t end) const;
    Tensor select(int d, int64_t index) const;
    Tensor permute(const std::vector<int>& dims) const;
    Tensor transpose(int a, int b) const;
    Tensor unsqueeze(int d) const;
    // Dim d split into `sizes` (their product is size(d)), for any strides: a strided column block [N, 3K]
    // unflattened to [N, 3, K] (view() needs a contiguous input).
    Tensor unflatten(int d, const Shape& sizes) const;
    Tensor expand(const Shape& shape) const;  // broadcast size-1 dims with stride 0

    // Copies.
    Tensor contiguous() const;  // self if already contiguous
    Tensor clone() const;
    Tensor to(Device device) const;
    void copy_from(const Tensor& src) const;  // same shape and dtype, any strides, any devices (writes this view)
    void fill(float value) const;

private:
    static Tensor allocate(const Shape& shape, DType dtype, Device device, bool pinned);
    int norm_dim(int d) const;
    void check_host_access() const;
    std::shared_ptr<Storage> storage_;
    Shape shape_, strides_;
    int64_t offset_ = 0;  // in elements
    DType dtype_ = DType::F32;
    Device device_ = Device::CPU;
};

Shape contiguous_strides(const Shape& shape);

// Values of any tensor as int64 on the host, in row-major order (integers exact, floats rounded to
// nearest): feature indices such as aatype or residue_index, whatever dtype a file stored them in.
std::vector<int64_t> host_int64(const Tensor& t);
// Values of any tensor as float64 on the host, in row-major order.
std::vector<double> host_float64(const Tensor& t);
// A contiguous host tensor of `dtype` with t's values (t itself when it already is one).
Tensor host_cast(const Tensor& t, DType dtype);
// A new contiguous host tensor with t's values and dtype: a copy even when t is on the host already (results
// that must outlive a workspace scope or a device).
Tensor host_copy(const Tensor& t);
inline Tensor to_int64(const Tensor& t) {
    return host_cast(t, DType::I64);
}
inline Tensor to_f32(const Tensor& t) {
    return host_cast(t, DType::F32);
}

}  // namespace axfold
