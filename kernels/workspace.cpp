#include "kernels/workspace.h"

#include <algorithm>
#include <cstring>

#include "kernels/device.h"

namespace axfold {

namespace {
constexpr size_t kAlign = 64;
size_t round_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }
}  // namespace

void Workspace::release(Mark m) {
    AXF_CHECK(m.chunk < current_ || (m.chunk == current_ && m.offset <= offset_), "workspace released out of order");
    current_ = m.chunk;
    offset_ = m.offset;
    in_use_ = offset_;
    for (size_t i = 0; i < current_; ++i) in_use_ += chunks_[i].bytes;
}

Tensor Workspace::alloc(const Shape& shape, DType dtype) {
    size_t bytes = round_up(std::max<size_t>(1, static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype)));
    while (current_ < chunks_.size() && offset_ + bytes > chunks_[current_].bytes) {
        in_use_ += chunks_[current_].bytes - offset_;
        ++current_;
        offset_ = 0;
    }
    if (current_ == chunks_.size()) {
        size_t total = capacity_bytes();
        size_t size = std::max(bytes, std::max<size_t>(total, size_t(1) << 24));
        if (chunks_.empty()) size = std::max(size, reserved_);  // first block after trim(): the reserved size
        chunks_.push_back({Tensor::empty({static_cast<int64_t>(size)}, DType::U8, device_), size});
    }
    const KernelAccess kernel;
    char* base = static_cast<char*>(chunks_[current_].mem.raw());
    Tensor t = Tensor::borrow(base + offset_, shape, dtype, device_);
    offset_ += bytes;
    in_use_ += bytes;
    high_water_ = std::max(high_water_, in_use_);
    return t;
}

Tensor Workspace::zeros(const Shape& shape) {
    Tensor t = alloc(shape);
    const size_t bytes = static_cast<size_t>(t.numel()) * sizeof(float);
    const KernelAccess kernel;
    if (device_ == Device::CPU || device_emulated())
        std::memset(t.raw(), 0, bytes);
    else
        device_memset(t.raw(), 0, bytes);
    return t;
}

void Workspace::trim() {
    AXF_CHECK(current_ == 0 && offset_ == 0, "Workspace::trim with allocations outstanding");
    chunks_.clear();
    in_use_ = 0;
}

void Workspace::reserve(size_t bytes) {
    AXF_CHECK(current_ == 0 && offset_ == 0, "Workspace::reserve with allocations outstanding");
    reserved_ = std::max(reserved_, round_up(bytes));
    if (capacity_bytes() >= bytes) return;
    chunks_.clear();
    const size_t size = round_up(bytes);
    chunks_.push_back({Tensor::empty({static_cast<int64_t>(size)}, DType::U8, device_), size});
}

size_t Workspace::capacity_bytes() const {
    size_t s = 0;
    for (auto& c : chunks_) s += c.bytes;
    return s;
}

}  // namespace axfold
