#include "kernels/offload.h"

namespace axfold {

void ParkedTensor::park(Tensor t) {
    AXF_CHECK(t.defined() && t.is_contiguous(), "offload: parking %s: expected a contiguous tensor", t.desc().c_str());
    AXF_CHECK(!tensor_.defined(), "offload: parking %s while %s is still held (release or restore it first)",
              t.desc().c_str(), tensor_.desc().c_str());
    AXF_CHECK(!parked(), "offload: parking %s would overwrite parked values that were never restored",
              t.desc().c_str());
    copy_.wait();  // a copy in from an earlier park may still read the buffer
    if (host_.defined() && host_.dtype() == t.dtype() && host_.numel() == t.numel())
        host_ = host_.view(t.shape());
    else
        host_ = Tensor::empty_pinned(t.shape(), t.dtype());
    tensor_ = std::move(t);
    device_ = tensor_.device();
    restored_ = false;
    const KernelAccess kernel;
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
    const KernelAccess kernel;
    copy_ = copy_async(t.raw(), device_, host_.raw(), Device::CPU, bytes());
    copy_.order_default_stream();
    restored_ = true;
    return t;
}

}  // namespace axfold
