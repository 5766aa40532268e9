#include "kernels/offload.h"

namespace axfold {

ParkedTensor::ParkedTensor(Tensor t) : tensor_(std::move(t)) {
    AXF_CHECK(tensor_.defined() && tensor_.is_contiguous(), "offload: parking %s: expected a contiguous tensor",
              tensor_.desc().c_str());
    device_ = tensor_.device();
    host_ = Tensor::empty_pinned(tensor_.shape(), tensor_.dtype());
    copy_ = copy_async(host_.raw(), Device::CPU, tensor_.raw(), device_, bytes());
}

size_t ParkedTensor::bytes() const {
    return host_.defined() ? static_cast<size_t>(host_.numel()) * dtype_size(host_.dtype()) : 0;
}

void ParkedTensor::release() {
    if (!tensor_.defined()) return;
    AXF_CHECK(tensor_.storage_refs() == 1,
              "offload: %s is parked but %ld other views of it are alive; they would keep its memory",
              tensor_.desc().c_str(), tensor_.storage_refs() - 1);
    copy_.order_default_stream();  // the free below is queued on the default stream, after the copy out
    tensor_ = Tensor();
}

Tensor ParkedTensor::restore() {
    AXF_CHECK(parked(), "offload: restore() of a tensor that was not parked");
    release();
    Tensor t = Tensor::empty(host_.shape(), host_.dtype(), device_);
    copy_ = copy_async(t.raw(), device_, host_.raw(), Device::CPU, bytes());
    copy_.order_default_stream();
    restored_ = true;
    return t;
}

}  // namespace axfold
