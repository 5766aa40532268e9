// A directional probe of evoformer_stack_backward: the stack's outputs for inputs moved along (vm, vz),
// weighted by the cotangents (cm, cz), so that central differences of it check <dm, vm> + <dz, vz>.
#pragma once

#include <vector>

#include "evoformer/evoformer_stack.h"
#include "test_util.h"

namespace axfold::test {

// <sum of a_i * b_i> over two pairs of tensors, in float64.
inline double dot2(const Tensor& a, const Tensor& va, const Tensor& b, const Tensor& vb) {
    double s = 0;
    const std::vector<double> x = host_float64(a), y = host_float64(va), u = host_float64(b), v = host_float64(vb);
    for (size_t i = 0; i < x.size(); ++i) s += x[i] * y[i];
    for (size_t i = 0; i < u.size(); ++i) s += u[i] * v[i];
    return s;
}

// <m', cm> + <z', cz> for (m', z') = stack(m + step vm, z + step vz).
inline double stack_objective(const EvoformerStackWeights& w, const Tensor& m, const Tensor& z, const Tensor& vm,
                              const Tensor& vz, double step, const Tensor& msa_mask, const Tensor& pair_mask,
                              const Tensor& cm, const Tensor& cz, Context& ctx, const TrunkConstants& k = {}) {
    Tensor mi = m.clone(), zi = z.clone();
    const std::vector<double> a = host_float64(vm), b = host_float64(vz);
    for (int64_t i = 0; i < mi.numel(); ++i) mi.f32()[i] += static_cast<float>(step * a[i]);
    for (int64_t i = 0; i < zi.numel(); ++i) zi.f32()[i] += static_cast<float>(step * b[i]);
    evoformer_stack_forward(w, mi, zi, msa_mask, pair_mask, ctx, k);
    return dot2(mi, cm, zi, cz);
}

}  // namespace axfold::test
