#include "kernels/tensor.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "kernels/device.h"
#include "kernels/cuda/ops_cuda.h"

namespace axfold {

void throw_error(const char* file, int line, const std::string& msg) {
    const char* base = std::strrchr(file, '/');
    throw Error(msg + " [" + (base ? base + 1 : file) + ":" + std::to_string(line) + "]");
}

size_t dtype_size(DType t) {
    switch (t) {
        case DType::F32: return 4;
        case DType::F64: return 8;
        case DType::I32: return 4;
        case DType::I64: return 8;
        case DType::U8: return 1;
        case DType::BF16: return 2;
    }
    return 0;
}

const char* dtype_name(DType t) {
    switch (t) {
        case DType::F32: return "float32";
        case DType::F64: return "float64";
        case DType::I32: return "int32";
        case DType::I64: return "int64";
        case DType::U8: return "uint8";
        case DType::BF16: return "bfloat16";
    }
    return "?";
}

const char* device_name(Device d) { return d == Device::CPU ? "cpu" : "cuda"; }

std::string shape_str(const Shape& s) {
    std::string r = "[";
    for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + "]";
}

int64_t shape_numel(const Shape& s) {
    int64_t n = 1;
    for (int64_t x : s) n *= x;
    return n;
}

Shape contiguous_strides(const Shape& shape) {
    Shape st(shape.size());
    int64_t s = 1;
    for (int i = static_cast<int>(shape.size()) - 1; i >= 0; --i) {
        st[i] = s;
        s *= shape[i];
    }
    return st;
}

namespace {
std::atomic<bool> g_emulated{false};
std::atomic<int> g_kernels{0};  // KernelAccess scopes alive (any thread: an op's OpenMP workers too)
// Whether memory on `d` is host memory: the host's, or an emulated device's.
bool host_memory(Device d) { return d == Device::CPU || g_emulated.load(std::memory_order_relaxed); }
}  // namespace

DeviceEmulation::DeviceEmulation() {
    AXF_CHECK(!g_emulated.exchange(true), "device emulation is already on (it does not nest)");
}
DeviceEmulation::~DeviceEmulation() { g_emulated = false; }
bool device_emulated() { return g_emulated.load(std::memory_order_relaxed); }
KernelAccess::KernelAccess() { g_kernels.fetch_add(1, std::memory_order_relaxed); }
KernelAccess::~KernelAccess() { g_kernels.fetch_sub(1, std::memory_order_relaxed); }

void Tensor::check_host_access() const {
    AXF_CHECK(!device_emulated() || g_kernels.load(std::memory_order_relaxed) > 0,
              "host code reaches %s, a device tensor, outside an op (transfer it with to(Device::CPU), or use an op)",
              desc().c_str());
}

Storage::~Storage() {
    if (!owned || !ptr) return;
    if (pinned)
        host_free_pinned(ptr, true);
    else if (device == Device::CPU || emulated)
        std::free(ptr);
    else
        device_free(ptr);
}

Tensor Tensor::allocate(const Shape& shape, DType dtype, Device device, bool pinned) {
    for (int64_t s : shape) AXF_CHECK(s >= 0, "negative dimension in shape %s", shape_str(shape).c_str());
    Tensor t;
    auto st = std::make_shared<Storage>();
    st->bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
    st->device = device;
    size_t alloc = (st->bytes + 63) / 64 * 64;
    if (alloc == 0) alloc = 64;
    if (pinned) {
        st->ptr = host_alloc_pinned(st->bytes, &st->pinned);  // unpinned: aligned host memory, freed as any host tensor's
    } else if (host_memory(device)) {
        st->ptr = std::aligned_alloc(64, alloc);
        st->emulated = device != Device::CPU;
        AXF_CHECK(st->ptr, "out of host memory allocating %zu bytes for a tensor of shape %s", alloc,
                  shape_str(shape).c_str());
    } else {
        st->ptr = device_alloc(alloc);
    }
    t.storage_ = std::move(st);
    t.shape_ = shape;
    t.strides_ = contiguous_strides(shape);
    t.dtype_ = dtype;
    t.device_ = device;
    return t;
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) { return allocate(shape, dtype, device, false); }

Tensor Tensor::empty_pinned(const Shape& shape, DType dtype) { return allocate(shape, dtype, Device::CPU, true); }

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
    Tensor t = empty(shape, dtype, device);
    const KernelAccess kernel;
    if (host_memory(device))
        std::memset(t.raw(), 0, t.storage_->bytes);
    else
        device_memset(t.raw(), 0, t.storage_->bytes);
    return t;
}

Tensor Tensor::full(const Shape& shape, float value) {
    Tensor t = empty(shape);
    t.fill(value);
    return t;
}

Tensor Tensor::from_vector(const Shape& shape, const std::vector<float>& values) {
    AXF_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "from_vector: %zu values for shape %s",
              values.size(), shape_str(shape).c_str());
    Tensor t = empty(shape);
    std::memcpy(t.raw(), values.data(), values.size() * sizeof(float));
    return t;
}

Tensor Tensor::borrow(void* ptr, const Shape& shape, DType dtype, Device device) {
    Tensor t;
    auto st = std::make_shared<Storage>();
    st->ptr = ptr;
    st->bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
    st->device = device;
    st->owned = false;
    t.storage_ = std::move(st);
    t.shape_ = shape;
    t.strides_ = contiguous_strides(shape);
    t.dtype_ = dtype;
    t.device_ = device;
    return t;
}

int Tensor::norm_dim(int d) const {
    int n = dim();
    int r = d < 0 ? d + n : d;
    AXF_CHECK(r >= 0 && r < n, "dimension %d out of range for tensor %s", d, desc().c_str());
    return r;
}

bool Tensor::is_contiguous() const {
    int64_t s = 1;
    for (int i = dim() - 1; i >= 0; --i) {
        if (shape_[i] != 1 && strides_[i] != s) return false;
        s *= shape_[i];
    }
    return true;
}

std::string Tensor::desc() const {
    if (!defined()) return "undefined tensor";
    return std::string(dtype_name(dtype_)) + shape_str(shape_) + " " + device_name(device_);
}

void* Tensor::raw() const {
    AXF_CHECK(defined(), "access to an undefined tensor");
    if (device_ != Device::CPU) check_host_access();
    return static_cast<char*>(storage_->ptr) + offset_ * static_cast<int64_t>(dtype_size(dtype_));
}

Tensor Tensor::view(const Shape& shape) const {
    AXF_CHECK(is_contiguous(), "view %s of a non-contiguous tensor %s", shape_str(shape).c_str(), desc().c_str());
    Shape s = shape;
    int64_t known = 1;
    int infer = -1;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == -1) {
            AXF_CHECK(infer < 0, "view %s: more than one -1", shape_str(shape).c_str());
            infer = static_cast<int>(i);
        } else {
            known *= s[i];
        }
    }
    if (infer >= 0) {
        AXF_CHECK(known > 0 && numel() % known == 0, "view %s of %s", shape_str(shape).c_str(), desc().c_str());
        s[infer] = numel() / known;
    }
    AXF_CHECK(shape_numel(s) == numel(), "view %s of %s: element count differs", shape_str(shape).c_str(),
              desc().c_str());
    Tensor t = *this;
    t.shape_ = s;
    t.strides_ = contiguous_strides(s);
    return t;
}

Tensor Tensor::slice(int d, int64_t begin, int64_t end) const {
    int k = norm_dim(d);
    AXF_CHECK(0 <= begin && begin <= end && end <= shape_[k], "slice [%lld, %lld) of dim %d of %s",
              (long long)begin, (long long)end, d, desc().c_str());
    Tensor t = *this;
    t.offset_ += begin * strides_[k];
    t.shape_[k] = end - begin;
    return t;
}

Tensor Tensor::select(int d, int64_t index) const {
    int k = norm_dim(d);
    AXF_CHECK(0 <= index && index < shape_[k], "select %lld of dim %d of %s", (long long)index, d,
              desc().c_str());
    Tensor t = *this;
    t.offset_ += index * strides_[k];
    t.shape_.erase(t.shape_.begin() + k);
    t.strides_.erase(t.strides_.begin() + k);
    return t;
}

Tensor Tensor::permute(const std::vector<int>& dims) const {
    AXF_CHECK(static_cast<int>(dims.size()) == dim(), "permute with %zu dims of %s", dims.size(), desc().c_str());
    Tensor t = *this;
    std::vector<bool> seen(dims.size(), false);
    for (size_t i = 0; i < dims.size(); ++i) {
        int k = norm_dim(dims[i]);
        AXF_CHECK(!seen[k], "permute: dimension %d repeated", k);
        seen[k] = true;
        t.shape_[i] = shape_[k];
        t.strides_[i] = strides_[k];
    }
    return t;
}

Tensor Tensor::transpose(int a, int b) const {
    std::vector<int> p(dim());
    for (int i = 0; i < dim(); ++i) p[i] = i;
    std::swap(p[norm_dim(a)], p[norm_dim(b)]);
    return permute(p);
}

Tensor Tensor::unflatten(int d, const Shape& sizes) const {
    const int k = norm_dim(d);
    AXF_CHECK(!sizes.empty() && shape_numel(sizes) == shape_[k] &&
                  std::all_of(sizes.begin(), sizes.end(), [](int64_t s) { return s >= 0; }),
              "unflatten dim %d of %s into %s", d, desc().c_str(), shape_str(sizes).c_str());
    Tensor t = *this;
    Shape st(sizes.size());
    int64_t inner = strides_[k];
    for (size_t i = sizes.size(); i-- > 0;) {
        st[i] = inner;
        inner *= sizes[i];
    }
    t.shape_.erase(t.shape_.begin() + k);
    t.strides_.erase(t.strides_.begin() + k);
    t.shape_.insert(t.shape_.begin() + k, sizes.begin(), sizes.end());
    t.strides_.insert(t.strides_.begin() + k, st.begin(), st.end());
    return t;
}

Tensor Tensor::unsqueeze(int d) const {
    int n = dim() + 1;
    int k = d < 0 ? d + n : d;
    AXF_CHECK(k >= 0 && k < n, "unsqueeze %d of %s", d, desc().c_str());
    Tensor t = *this;
    int64_t st = k < dim() ? strides_[k] * shape_[k] : 1;
    t.shape_.insert(t.shape_.begin() + k, 1);
    t.strides_.insert(t.strides_.begin() + k, st);
    return t;
}

Tensor Tensor::expand(const Shape& shape) const {
    AXF_CHECK(shape.size() == shape_.size(), "expand %s of %s: rank differs", shape_str(shape).c_str(),
              desc().c_str());
    Tensor t = *this;
    for (size_t i = 0; i < shape.size(); ++i) {
        if (shape_[i] == shape[i]) continue;
        AXF_CHECK(shape_[i] == 1, "expand %s of %s", shape_str(shape).c_str(), desc().c_str());
        t.shape_[i] = shape[i];
        t.strides_[i] = 0;
    }
    return t;
}

Tensor Tensor::contiguous() const {
    if (is_contiguous()) return *this;
    return clone();
}

Tensor Tensor::clone() const {
    Tensor t = empty(shape_, dtype_, device_);
    t.copy_from(*this);
    return t;
}

Tensor host_copy(const Tensor& t) {
    Tensor h = Tensor::empty(t.shape(), t.dtype());
    h.copy_from(t);
    return h;
}

Tensor Tensor::to(Device device) const {
    if (device == device_) return *this;
    Tensor src = contiguous();
    Tensor t = empty(shape_, dtype_, device);
    t.copy_from(src);
    return t;
}

namespace {

// Strided copy on the host of elements of type T; the innermost loop is a memcpy when both sides are
// contiguous in the last dimension, a typed gather/scatter loop otherwise.
template <class T>
void copy_rows(T* dst, const T* src, const int64_t* shape, const int64_t* dst_st, const int64_t* src_st, int nd) {
    if (nd == 1) {
        const int64_t n = shape[0], ds = dst_st[0], ss = src_st[0];
        if (ds == 1 && ss == 1) {
            std::memcpy(dst, src, sizeof(T) * n);
        } else {
            for (int64_t i = 0; i < n; ++i) dst[i * ds] = src[i * ss];
        }
        return;
    }
    for (int64_t i = 0; i < shape[0]; ++i)
        copy_rows(dst + i * dst_st[0], src + i * src_st[0], shape + 1, dst_st + 1, src_st + 1, nd - 1);
}

template <class T>
void copy_strided(T* dst, const T* src, const Shape& shape, const Shape& dst_st, const Shape& src_st) {
    const int nd = static_cast<int>(shape.size());
    if (nd == 0) {
        *dst = *src;
        return;
    }
    if (nd == 1) {
        copy_rows(dst, src, shape.data(), dst_st.data(), src_st.data(), 1);
        return;
    }
    // Parallel over the outer dimension when it is worth it.
    const int64_t n0 = shape[0];
    const bool par = shape_numel(shape) > (int64_t(1) << 16) && n0 > 1;
#pragma omp parallel for schedule(static) if (par)
    for (int64_t i = 0; i < n0; ++i)
        copy_rows(dst + i * dst_st[0], src + i * src_st[0], shape.data() + 1, dst_st.data() + 1, src_st.data() + 1,
                  nd - 1);
}

}  // namespace

void Tensor::copy_from(const Tensor& src) const {
    const KernelAccess kernel;  // a transfer
    AXF_CHECK(src.shape_ == shape_ && src.dtype_ == dtype_, "copy_from: %s into %s", src.desc().c_str(),
              desc().c_str());
    if (numel() == 0) return;
    if (!host_memory(device_) || !host_memory(src.device_)) {
        if (device_ == Device::CUDA && src.device_ == Device::CUDA) {
            cuda::copy(*this, src);  // any strides, on the device
            return;
        }
        // Across devices: make the source contiguous on its own device, transfer, and scatter on the
        // destination device when this view is strided.
        Tensor s = src.contiguous();
        if (is_contiguous()) {
            device_copy(raw(), device_, s.raw(), s.device_, static_cast<size_t>(numel()) * dtype_size(dtype_));
        } else {
            copy_from(s.to(device_));
        }
        return;
    }
    if (is_contiguous() && src.is_contiguous()) {  // one memcpy per thread's share
        const size_t bytes = static_cast<size_t>(numel()) * dtype_size(dtype_);
        auto* d = static_cast<char*>(raw());
        const auto* s = static_cast<const char*>(src.raw());
        const int64_t parts = bytes >= (size_t(1) << 20) ? 64 : 1;
        const size_t step = (bytes + parts - 1) / parts;
#pragma omp parallel for schedule(static) if (parts > 1)
        for (int64_t p = 0; p < parts; ++p) {
            const size_t b0 = static_cast<size_t>(p) * step;
            if (b0 < bytes) std::memcpy(d + b0, s + b0, std::min(step, bytes - b0));
        }
        return;
    }
    switch (dtype_size(dtype_)) {
        case 1: copy_strided(static_cast<uint8_t*>(raw()), static_cast<const uint8_t*>(src.raw()), shape_, strides_, src.strides_); break;
        case 2: copy_strided(static_cast<uint16_t*>(raw()), static_cast<const uint16_t*>(src.raw()), shape_, strides_, src.strides_); break;
        case 4: copy_strided(static_cast<uint32_t*>(raw()), static_cast<const uint32_t*>(src.raw()), shape_, strides_, src.strides_); break;
        default: copy_strided(static_cast<uint64_t*>(raw()), static_cast<const uint64_t*>(src.raw()), shape_, strides_, src.strides_); break;
    }
}

void Tensor::fill(float value) const {
    AXF_CHECK(dtype_ == DType::F32 && device_ == Device::CPU && is_contiguous(), "fill of %s", desc().c_str());
    float* p = f32();
    for (int64_t i = 0, n = numel(); i < n; ++i) p[i] = value;
}

namespace {
template <class T> double element(const Tensor& c, int64_t i) { return static_cast<double>(c.data<T>()[i]); }
double element_as_double(const Tensor& c, int64_t i) {
    switch (c.dtype()) {
        case DType::F32: return element<float>(c, i);
        case DType::F64: return element<double>(c, i);
        case DType::I32: return element<int32_t>(c, i);
        case DType::I64: return element<int64_t>(c, i);
        case DType::U8: return element<uint8_t>(c, i);
        case DType::BF16: return bf16_to_float(c.data<bf16_t>()[i].bits);
    }
    return 0;
}
}  // namespace

std::vector<int64_t> host_int64(const Tensor& t) {
    const Tensor c = t.to(Device::CPU).contiguous();
    std::vector<int64_t> v(static_cast<size_t>(c.numel()));
    if (c.dtype() == DType::I64) {
        if (!v.empty()) std::memcpy(v.data(), c.raw(), v.size() * sizeof(int64_t));
        return v;
    }
    const bool floating = c.dtype() == DType::F32 || c.dtype() == DType::F64 || c.dtype() == DType::BF16;
    for (int64_t i = 0; i < c.numel(); ++i) {
        const double x = element_as_double(c, i);
        v[i] = floating ? static_cast<int64_t>(std::llround(x)) : static_cast<int64_t>(x);
    }
    return v;
}

std::vector<double> host_float64(const Tensor& t) {
    const Tensor c = host_cast(t, DType::F64);
    return std::vector<double>(c.data<double>(), c.data<double>() + c.numel());
}

Tensor host_cast(const Tensor& t, DType dtype) {
    const Tensor c = t.to(Device::CPU).contiguous();
    if (c.dtype() == dtype) return c;
    Tensor o = Tensor::empty(c.shape(), dtype);
    if (dtype == DType::I64 || dtype == DType::I32 || dtype == DType::U8) {
        const std::vector<int64_t> v = host_int64(c);
        for (int64_t i = 0; i < c.numel(); ++i) {
            if (dtype == DType::I64) o.data<int64_t>()[i] = v[i];
            else if (dtype == DType::I32) o.data<int32_t>()[i] = static_cast<int32_t>(v[i]);
            else o.data<uint8_t>()[i] = static_cast<uint8_t>(v[i]);
        }
    } else {
        for (int64_t i = 0; i < c.numel(); ++i) {
            const double x = element_as_double(c, i);
            if (dtype == DType::F32) o.f32()[i] = static_cast<float>(x);
            else if (dtype == DType::BF16) o.data<bf16_t>()[i].bits = bf16_from_float(static_cast<float>(x));
            else o.data<double>()[i] = x;
        }
    }
    return o;
}

}  // namespace axfold
