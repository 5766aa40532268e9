// Offload: a tensor that is not in use for a while is parked in pinned host memory and brought back before it
// is needed, with both copies on the copy stream (kernels/device.h) so that they overlap the compute queued
// around them. The memory plan (model/model_plan.h) decides what to park; Model::predict parks the MSA during the
// extra-MSA stack, the phase with the largest activations.
#pragma once

#include "kernels/device.h"
#include "kernels/tensor.h"

namespace axfold {

class ParkedTensor {
public:
    ParkedTensor() = default;
    // Starts copying t (contiguous) into pinned host memory, after the work queued on the default stream so far.
    // t keeps its memory until release(); it must not be written before then.
    explicit ParkedTensor(Tensor t) { park(std::move(t)); }
    // The same for another tensor (after a restore: values parked and never restored are an error): the pinned
    // buffer is reused when it has the same size (page-locking is slow), so a model parks its MSA every
    // iteration at the cost of one allocation.
    void park(Tensor t);
    // copy_ is destroyed first (it is declared last): its destructor waits for a copy still running, without
    // throwing, before the pinned buffer and the original are freed.
    ~ParkedTensor() = default;
    ParkedTensor(const ParkedTensor&) = delete;
    ParkedTensor& operator=(const ParkedTensor&) = delete;
    // Frees the original: later default-stream work waits for the copy out, then the memory returns to the pool
    // (stream-ordered). Throws when other views of the tensor are still alive, since they would keep the memory.
    void release();
    // A new tensor on the original device (and of its shape and dtype) with the parked values: the copy in runs
    // on the copy stream and the default stream waits for it. Releases first if release() was not called. The
    // host copy stays (and the object waits for the copy in when destroyed).
    Tensor restore();
    // Values parked and not yet restored.
    bool parked() const { return host_.defined() && !restored_; }
    size_t bytes() const;

private:
    Tensor tensor_, host_;
    Device device_ = Device::CPU;
    bool restored_ = false;
    CopyEvent copy_;
};

}  // namespace axfold
