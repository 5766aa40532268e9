// Memory planner: an analytic model of the peak memory of each trunk module as a function of the sizes
// (S, N_res, widths), the chunk size and the thread count, and the choice of the fastest chunk size whose
// predicted peak fits a budget. The model counts the persistent activations and every workspace
// temporary the module code allocates (evoformer/*.cpp); Workspace::reserve() sizes the arena to the
// prediction so that the measured peak follows it.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "evoformer/param_shapes.h"

namespace axfold {

struct BlockSizes {
    int64_t n_seq = 128, n_res = 256;
    EvoformerDims dims = EvoformerDims::af2_evoformer();
    bool is_extra_msa = false;
    int threads = 1;
    int act_bytes = 4;  // bytes per stored MSA / pair element: 4 (float32) or 2 (bfloat16, --precision bf16)
    // The block runs on a CUDA device: attention keeps its logits in one chunk of up to 256 MiB (not the CPU's
    // per-thread rows); with bf16_gemm_copies (--precision bf16) every GEMM also holds bfloat16 copies of its
    // operands (kernels/cuda/blas.cu).
    bool cuda = false;
    bool bf16_gemm_copies = false;
};

// Peak workspace bytes of each module of one block for `chunk` (0 = unchunked), in block order.
std::vector<std::pair<std::string, size_t>> block_workspace_bytes(const BlockSizes& b, int64_t chunk);
// With b.bf16_gemm_copies: the largest bfloat16 operand copies one GEMM of the block holds (they come from the
// device's pool, beside the workspace arena); 0 otherwise.
size_t block_gemm_copy_bytes(const BlockSizes& b, int64_t chunk);
// max over modules.
size_t block_peak_workspace_bytes(const BlockSizes& b, int64_t chunk);
// The MSA and pair activations themselves (at b.act_bytes per element).
size_t block_activation_bytes(const BlockSizes& b);

struct ChunkPlan {
    int64_t chunk_size = 0;             // 0 = unchunked
    size_t predicted_workspace_bytes = 0;
    size_t predicted_peak_bytes = 0;    // fixed + activations + workspace
    std::vector<std::pair<std::string, size_t>> modules;  // workspace per module at this chunk size
    // Device plans: the MSA is parked in host memory during the extra-MSA stack (PredictOptions::offload_msa).
    bool offload_msa = false;
};

// Candidate chunk sizes, fastest first: unchunked, then N/2, N/4, ... down to 1.
std::vector<int64_t> chunk_candidates(int64_t n);

// The fastest chunk size whose predicted peak (fixed_bytes + activations + workspace) fits `budget`
// (0 = no budget: unchunked). Throws when nothing fits, naming the smallest budget that would.
ChunkPlan plan_blocks(const std::vector<BlockSizes>& blocks, size_t fixed_bytes, size_t budget,
                      int64_t forced_chunk = -1);

// cuBLAS's workspace on a CUDA device (kernels/cuda/device.cu), part of a device plan's fixed bytes.
constexpr size_t kCublasWorkspaceBytes = size_t(32) << 20;

// "8G", "512M", "1.5G", "123456" -> bytes.
size_t parse_bytes(const std::string& s);
std::string format_bytes(size_t b);

}  // namespace axfold
