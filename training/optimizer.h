// The optimizer of training (AF2 supplement 1.11.3; OpenFold's AlphaFoldLRScheduler): Adam with a linear
// warm-up, a step decay and gradient clipping by the global norm, over every parameter of a model; and the
// data-parallel gradient average. Float32 tensors on any device (the optimizer's state lives beside the
// parameters; the element-wise steps are kernels/ops.h's adam_update, moving_average_update, sum_of_squares). The
// collectives pack on the device for NCCL and on the host for MPI.
//
// Schedule, as OpenFold's scheduler computes it: with d = s - 1 updates done before update s, lr(s) =
// lr * d / warmup_steps while d <= warmup_steps (the first update moves nothing but Adam's moments, as optax's
// and OpenFold's warm-ups start from 0), lr * decay_factor^((d - decay_after) / decay_every + 1) once
// d > decay_after, lr in between. Adam: m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2,
// p -= lr(s) (m / (1 - b1^s)) / (sqrt(v / (1 - b2^s)) + eps), optax's adam (eps outside the root).
//
// Clipping: the gradient is clipped to clip_norm after the data-parallel average, as OpenFold does
// (Lightning's gradient_clip_val acts on the averaged gradient). AF2's supplement gives the global-norm value
// 0.1; if AF2 clips each example's gradient before averaging, the two differ when several replicas train
// together (with one example per update they agree).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "io/hdf5_file.h"
#include "model/model.h"
#include "parallel/comm.h"

namespace axfold {

struct AdamConfig {
    double learning_rate = 1e-3;  // after the warm-up (AF2's fine-tuning: 5e-4)
    double beta1 = 0.9, beta2 = 0.999, eps = 1e-6;
    int64_t warmup_steps = 1000;  // 0: none
    int64_t decay_after = 50000, decay_every = 50000;
    double decay_factor = 0.95;
    double clip_norm = 0.1;  // <= 0: no clipping
};

// Every defined tensor of the weights, in visit order, with its name (handles sharing the weights' storage).
std::vector<std::pair<std::string, Tensor>> tensors_of(const ModelWeights& w);

// lr(step) above; step >= 1.
double scheduled_learning_rate(const AdamConfig& config, int64_t step);

// The L2 norm over every tensor (accumulated in float64).
double global_norm(const ModelWeights& grads);

// The gradient averaged over the ranks of `comm` (data parallel: each replica's gradient of its own example),
// in place; one all-reduce of every tensor packed together.
void average_over_replicas(ModelWeights& grads, Comm& comm);

// The same average started part by part as a backward pass finishes each part of the gradient (buckets, as
// DDP makes them), so that the all-reduces overlap the rest of the backward: start() packs a part's tensors and
// starts their sum over the ranks of `comm`; finish() waits for every part, unpacks the sums and divides them by
// the rank count. The tensors must stay alive and untouched from their start() to finish().
class ReplicaAverage {
public:
    explicit ReplicaAverage(Comm& comm) : comm_(comm) {}
    void start_tensors(const std::vector<Tensor>& tensors);
    template <class W>
    void start(W& part) {
        std::vector<Tensor> ts;
        part.visit([&](const std::string&, Tensor& t) {
            if (t.defined()) ts.push_back(t);
        });
        start_tensors(ts);
    }
    void finish();

private:
    struct Bucket {
        std::vector<Tensor> tensors;
        Tensor packed;
        std::unique_ptr<CommHandle> summing;
    };
    Comm& comm_;
    std::vector<Bucket> buckets_;
};

// The parameters' exponential moving average (AF2 evaluates its trained model with one of decay 0.999):
// ema = decay * ema + (1 - decay) * params for every tensor, in place; started from the initial parameters
// (no bias correction).
void update_moving_average(ModelWeights& ema, const ModelWeights& params, double decay);

// Every rank of `comm` takes root's gradient (one packed broadcast): the ranks of a DAP group, which compute
// the replicated modules' gradients each on their own, then apply identical updates whatever their thread
// counts or reduction orders.
void broadcast_gradients(ModelWeights& grads, Comm& comm, int root = 0);

struct AdamStats {
    int64_t step = 0;          // the update just applied (1-based)
    double learning_rate = 0;  // lr(step)
    double grad_norm = 0;      // before clipping
    double clip_scale = 1;     // the factor the gradient was scaled by (1: not clipped)
};

class Adam {
public:
    // Zero moments for every parameter of `params` (step 0).
    Adam(const AdamConfig& config, const ModelWeights& params);

    // One update of the parameters, in place (the tensors `params` views: the parameter store's), from `grads`
    // (the same layout, e.g. TrainingStep::grads).
    AdamStats update(ModelWeights& params, const ModelWeights& grads);

    int64_t step() const { return step_; }
    const AdamConfig& config() const { return config_; }
    void set_config(const AdamConfig& c) { config_ = c; }

    // The state under `group`: step (int64), m/<name> and v/<name> (ModelWeights::visit's names).
    void save(io::Hdf5Writer& out, const std::string& group) const;
    // Reads what save wrote; every name and shape must match this model's (the error names the file and the
    // dataset).
    void load(const io::Hdf5File& in, const std::string& group);

private:
    AdamConfig config_;
    int64_t step_ = 0;
    std::vector<std::string> names_;
    std::vector<Tensor> m_, v_;
};

}  // namespace axfold
