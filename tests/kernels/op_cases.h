// The op test table: every op of kernels/ops.h defined once as cases, run on every backend (style.md's "Op tests",
// after ggml's test-backend-ops).
//
// A case draws random inputs on the host from its seed, runs one op (or a short chain of ops) on a given device
// through the device-neutral API, building its views there (strided rows, transposes, permutes, broadcasts,
// in-place updates), and may carry a float64 reference and extra CPU checks (error cases, invariants). Two
// runners walk the table:
//   test_ops.cpp      (test_kernels)      every case with a reference or checks, on the CPU, against them (and
//                                         the CPU half of every other case: it runs, its outputs are finite);
//   test_ops_gpu.cpp  (test_kernels_gpu)  every case on the CPU and on CUDA, compared output by output.
// An op writing into a view returns the whole underlying buffer, so writes outside the view are caught on both
// runners. Each case is its own ctest entry, named by the case, and prints its seed with every failure.
// A new op costs one row in op_cases.cpp.
//
// run may look at `device` where a comparison is deliberately asymmetric (an aliased operand the CPU side reads
// from a copy, an in-place result held to the CPU's out-of-place one); those rows say so.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <ostream>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kernels/tensor.h"

namespace axfold::test {

// Named tensors: a case's inputs or outputs, in the order given.
class Tensors {
public:
    Tensors() = default;
    Tensors(std::initializer_list<std::pair<std::string, Tensor>> items) : items_(items) {}
    Tensors& add(std::string name, Tensor t) {
        items_.emplace_back(std::move(name), std::move(t));
        return *this;
    }
    const Tensor& operator[](std::string_view name) const;  // throws axfold::Error naming the missing tensor
    size_t size() const { return items_.size(); }
    auto begin() const { return items_.begin(); }
    auto end() const { return items_.end(); }

private:
    std::vector<std::pair<std::string, Tensor>> items_;
};

// A view made from a tensor (a slice, transpose, permute...): how a case builds the same layout on every device.
using View = std::function<Tensor(const Tensor&)>;

// What the float64 reference expects of one output: |got - want| <= atol + rtol * |want| for every element, in
// row-major order of the output as run returned it (a whole buffer), or of `view` of it when given.
struct Expected {
    Expected(std::string output_, std::vector<double> want_, double atol_, double rtol_, std::string what_ = "",
             View view_ = {})
        : output(std::move(output_)),
          want(std::move(want_)),
          atol(atol_),
          rtol(rtol_),
          what(std::move(what_)),
          view(std::move(view_)) {}
    std::string output;
    std::vector<double> want;
    double atol = 0, rtol = 0;
    std::string what;  // label of the mismatch lines (default: the output's name)
    View view;         // optional: compare this view of the output (the part of a buffer the op wrote)
};

struct OpCase {
    std::string name;  // unique, letters, digits and '_': the ctest entry's suffix
    uint32_t seed = 0;
    // Host buffers, drawn from a generator seeded with `seed`. Views are made by run, so that every backend gets
    // the same layout over a copy of the same buffer.
    std::function<Tensors(std::mt19937& rng)> draw = nullptr;
    // Runs the op on `device`. `in` holds the runner's own copies of the drawn buffers on that device (run may
    // write them: in-place ops); returns the outputs on that device.
    std::function<Tensors(const Tensors& in, Device device)> run = nullptr;
    // Optional float64 reference: `in` as drawn (host), `out` what run returned on the CPU (read only where the
    // expectation depends on an earlier result: a chained step starting from the previous step's output, norms of
    // the points written, an in-place result against the same op out of place).
    std::function<std::vector<Expected>(const Tensors& in, const Tensors& out)> reference = nullptr;
    // Optional extra assertions on the CPU run (bad arguments rejected, invariants); test_ops.cpp runs them.
    std::function<void(const Tensors& in, const Tensors& out)> check = nullptr;
    // CUDA against CPU: |cuda - cpu| <= gpu_rtol * (|cpu| + max |cpu|) for every element of every output; 0 asks
    // for equal bits.
    double gpu_rtol = 1e-5;
};

// The table (op_cases.cpp), in a stable order.
const std::vector<OpCase>& op_cases();
// Those with a reference or checks: the float64 runner's cases.
std::vector<OpCase> float64_cases();

// Copies of `in` on `device` (new buffers even on the CPU, so a run never writes the drawn inputs).
Tensors copies_on(const Tensors& in, Device device);

// gtest's parameter name (the case name) and the description gtest prints with a failure ("name (seed N)").
std::string case_name(const ::testing::TestParamInfo<OpCase>& info);
void PrintTo(const OpCase& c, std::ostream* os);

}  // namespace axfold::test
