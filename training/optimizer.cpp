#include "training/optimizer.h"

#include <cmath>

namespace axfold {

std::vector<std::pair<std::string, Tensor>> tensors_of(const ModelWeights& w) {
    ModelWeights copy = w;  // shares the tensors' storage
    std::vector<std::pair<std::string, Tensor>> out;
    copy.visit([&](const std::string& name, Tensor& t) {
        if (t.defined()) out.emplace_back(name, t);
    });
    return out;
}

namespace {

void check_f32(const Tensor& t, const std::string& name, const char* what) {
    AXF_CHECK(t.dtype() == DType::F32 && t.is_contiguous(), "%s: %s is %s, expected a contiguous float32 tensor", what,
              name.c_str(), t.desc().c_str());
}

// The tensors (float32, contiguous, on one device) packed into one buffer for a collective on `device`, and
// back (times scale).
Tensor pack(const std::vector<Tensor>& ts, Device device, const char* what) {
    int64_t n = 0;
    for (const Tensor& t : ts) {
        check_f32(t, "a gradient", what);
        n += t.numel();
    }
    Tensor flat = Tensor::empty({n}, DType::F32, device);
    int64_t off = 0;
    for (const Tensor& t : ts) {
        flat.slice(0, off, off + t.numel()).copy_from(t.view({t.numel()}));
        off += t.numel();
    }
    return flat;
}

void unpack(const Tensor& flat, const std::vector<Tensor>& ts, float s) {
    int64_t off = 0;
    for (const Tensor& t : ts) {
        t.view({t.numel()}).copy_from(flat.slice(0, off, off + t.numel()));
        if (s != 1.f) scale(t, s);
        off += t.numel();
    }
}

// Where a collective over `comm` reads its buffers: on the tensors' device where it takes them (NCCL), else the host.
Device collective_device(const Comm& comm, const std::vector<Tensor>& ts) {
    return comm.takes_device_buffers() && !ts.empty() ? ts.front().device() : Device::CPU;
}

}  // namespace

double scheduled_learning_rate(const AdamConfig& c, int64_t step) {
    AXF_CHECK(step >= 1, "learning rate schedule: step %lld, expected >= 1", (long long)step);
    const int64_t done = step - 1;  // updates before this one (OpenFold's scheduler step, optax's count)
    if (c.warmup_steps > 0 && done <= c.warmup_steps) return c.learning_rate * static_cast<double>(done) / c.warmup_steps;
    if (c.decay_every > 0 && done > c.decay_after)
        return c.learning_rate * std::pow(c.decay_factor, (done - c.decay_after) / c.decay_every + 1);
    return c.learning_rate;
}

double global_norm(const ModelWeights& grads) {
    double s = 0;
    for (const auto& [name, t] : tensors_of(grads)) {
        check_f32(t, name, "global_norm");
        s += sum_of_squares(t);
    }
    return std::sqrt(s);
}

void average_over_replicas(ModelWeights& grads, Comm& comm) {
    if (comm.size() == 1) return;
    ReplicaAverage average(comm);
    average.start(grads);
    average.finish();
}

void ReplicaAverage::start_tensors(const std::vector<Tensor>& tensors) {
    Bucket b;
    b.tensors = tensors;
    b.packed = pack(tensors, collective_device(comm_, tensors), "replica average");
    b.summing = comm_.all_reduce_sum(b.packed);
    buckets_.push_back(std::move(b));
}

void ReplicaAverage::finish() {
    for (Bucket& b : buckets_) {
        b.summing->wait();
        unpack(b.packed, b.tensors, 1.f / static_cast<float>(comm_.size()));
    }
    buckets_.clear();
}

void broadcast_gradients(ModelWeights& grads, Comm& comm, int root) {
    if (comm.size() == 1) return;
    std::vector<Tensor> ts;
    for (const auto& [name, t] : tensors_of(grads)) ts.push_back(t);
    const Tensor flat = pack(ts, collective_device(comm, ts), "broadcast_gradients");
    comm.broadcast(flat, root)->wait();
    unpack(flat, ts, 1.f);
}

void update_moving_average(ModelWeights& ema, const ModelWeights& params, double decay) {
    AXF_CHECK(decay >= 0 && decay < 1, "moving average: decay %g outside [0, 1)", decay);
    const auto es = tensors_of(ema), ps = tensors_of(params);
    AXF_CHECK(es.size() == ps.size(), "moving average: %zu tensors for %zu parameters", es.size(), ps.size());
    for (size_t i = 0; i < es.size(); ++i) {
        AXF_CHECK(es[i].first == ps[i].first && es[i].second.shape() == ps[i].second.shape(),
                  "moving average: tensor %zu is %s %s, the parameter %s %s", i, es[i].first.c_str(),
                  es[i].second.desc().c_str(), ps[i].first.c_str(), ps[i].second.desc().c_str());
        moving_average_update(es[i].second, ps[i].second, decay);
    }
}

Adam::Adam(const AdamConfig& config, const ModelWeights& params) : config_(config) {
    for (const auto& [name, t] : tensors_of(params)) {
        check_f32(t, name, "Adam");
        names_.push_back(name);
        m_.push_back(Tensor::zeros(t.shape(), DType::F32, t.device()));
        v_.push_back(Tensor::zeros(t.shape(), DType::F32, t.device()));
    }
}

AdamStats Adam::update(ModelWeights& params, const ModelWeights& grads) {
    const auto ps = tensors_of(params), gs = tensors_of(grads);
    AXF_CHECK(ps.size() == names_.size() && gs.size() == names_.size(),
              "Adam: %zu parameters and %zu gradients for an optimizer of %zu tensors", ps.size(), gs.size(),
              names_.size());
    for (size_t i = 0; i < names_.size(); ++i) {
        AXF_CHECK(ps[i].first == names_[i] && gs[i].first == names_[i] && ps[i].second.shape() == m_[i].shape() &&
                      gs[i].second.shape() == m_[i].shape(),
                  "Adam: tensor %zu is %s %s (gradient %s %s), the optimizer holds %s %s", i, ps[i].first.c_str(),
                  ps[i].second.desc().c_str(), gs[i].first.c_str(), gs[i].second.desc().c_str(), names_[i].c_str(),
                  m_[i].desc().c_str());
    }
    AdamStats st;
    st.step = ++step_;
    st.learning_rate = scheduled_learning_rate(config_, step_);
    st.grad_norm = global_norm(grads);
    AXF_CHECK(std::isfinite(st.grad_norm), "Adam: the gradient is not finite (norm %g) at update %lld", st.grad_norm,
              (long long)step_);
    if (config_.clip_norm > 0 && st.grad_norm > config_.clip_norm) st.clip_scale = config_.clip_norm / st.grad_norm;
    const double b1 = config_.beta1, b2 = config_.beta2, t = static_cast<double>(step_);
    const AdamCoefficients c{st.learning_rate, b1, b2, config_.eps, 1 - std::pow(b1, t), 1 - std::pow(b2, t),
                             st.clip_scale};
    for (size_t i = 0; i < names_.size(); ++i) adam_update(ps[i].second, gs[i].second, m_[i], v_[i], c);
    return st;
}

void Adam::save(io::Hdf5Writer& out, const std::string& group) const {
    Tensor s = Tensor::empty({1}, DType::I64);
    s.data<int64_t>()[0] = step_;
    out.write(group + "/step", s);
    for (size_t i = 0; i < names_.size(); ++i) {
        out.write(group + "/m/" + names_[i], m_[i].to(Device::CPU));
        out.write(group + "/v/" + names_[i], v_[i].to(Device::CPU));
    }
}

void Adam::load(const io::Hdf5File& in, const std::string& group) {
    AXF_CHECK(in.has_dataset(group + "/step"), "%s: no optimizer state (dataset %s/step)", in.path().c_str(),
              group.c_str());
    const Tensor s = in.read(group + "/step");
    AXF_CHECK(s.numel() == 1 && s.dtype() == DType::I64, "%s: %s/step is %s, expected one int64", in.path().c_str(),
              group.c_str(), s.desc().c_str());
    const int64_t step = s.data<int64_t>()[0];
    std::vector<Tensor> m(names_.size()), v(names_.size());
    for (size_t i = 0; i < names_.size(); ++i)
        for (int k = 0; k < 2; ++k) {
            const std::string path = group + (k == 0 ? "/m/" : "/v/") + names_[i];
            AXF_CHECK(in.has_dataset(path), "%s: optimizer state lacks %s (a checkpoint of another model?)",
                      in.path().c_str(), path.c_str());
            Tensor t = in.read_f32(path);
            AXF_CHECK(t.shape() == m_[i].shape(), "%s: %s is %s, expected shape %s", in.path().c_str(), path.c_str(),
                      t.desc().c_str(), shape_str(m_[i].shape()).c_str());
            (k == 0 ? m : v)[i] = t.contiguous().to(m_[i].device());
        }
    step_ = step;
    m_ = std::move(m);
    v_ = std::move(v);
}

}  // namespace axfold
