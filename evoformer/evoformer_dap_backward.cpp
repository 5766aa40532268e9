// The DAP Evoformer backward: each module's backward on its shards, the block (replaying its forward) and the
// stack (see evoformer_dap.h; the forward is in evoformer_dap_forward.cpp).

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "evoformer/dropout.h"
#include "evoformer/evoformer_dap.h"
#include "evoformer/evoformer_dap_internal.h"
#include "evoformer/gated_attention.h"

namespace axfold {

using detail::gathered_bias;
using detail::own;
using detail::real_view;

namespace {

// A contiguous copy of t's rows [0, n0) and columns [0, n1) (a 3-D shard's real block).
Tensor real_copy(const Tensor& t, int64_t n0, int64_t n1) {
    return real_view(t, n0, n1).clone();
}

// A residual step x' = x + f(x) on this rank's real block `view` of a gradient: backward(du, dx) receives
// du = dL/dx' and dx = du, into which it adds J_f^T du; dx is written back.
template <class F>
void residual_backward(const Tensor& view, F&& backward) {
    if (view.numel() == 0) return;
    Tensor du = view.clone(), dx = du.clone();
    backward(du, dx);
    copy(view, dx);
}

// The adjoint of gathered_bias: every rank consumed the whole bias [H, N, N], so the gradient of this rank's
// rows is the sum over ranks of their dbias rows (reduce-scatter), then back through LN(z) W on the local rows
// zr ([rl, N, C_z]; [N, rl, C_z] when ending) into dzr (+=).
void gathered_bias_backward(DapActivations& a, const LayerNormWeights& norm, const Tensor& W, const Tensor& zr,
                            bool ending, const Tensor& dbias, const Tensor& dzr, LayerNormWeights& grads_norm,
                            Tensor& grads_W, Context& ctx, const TrunkConstants& k) {
    Workspace& ws = ctx.ws;
    WorkspaceScope scope(ws);
    const int64_t H = dbias.size(0), N = a.r.n, Np = a.r.n_pad, rl = a.r.real;
    Tensor full = ws.zeros({Np, Np, H});
    copy(real_view(full, N, N), dbias.permute({1, 2, 0}));
    Tensor mine = ws.alloc({a.r.local, Np, H});
    a.comm->reduce_scatter_sum(full, mine)->wait();
    if (rl == 0) return;
    Tensor local = ws.alloc({H, rl, N});
    copy(local, real_view(mine, rl, N).permute({2, 0, 1}));
    pair_bias_backward(norm, W, zr, ending, k.eps, local, dzr, true, grads_norm, grads_W, ctx);
}

void dap_msa_row_attention_backward(const MsaRowAttentionWeights& w, const Tensor& m0, const Tensor& z0,
                                    DapActivations& g, MsaRowAttentionWeights& grads, Context& ctx,
                                    const TrunkConstants& k) {
    dap_m_to_rows(g);
    dap_z_to_rows(g);
    WorkspaceScope scope(ctx.ws);
    const int64_t N = g.r.n, sl = g.s.real, rl = g.r.real;
    Tensor bias = gathered_bias(g, w.feat_2d_norm, w.feat_2d_weights, z0, ctx, k);
    Tensor dbias = ctx.ws.zeros(bias.shape());
    residual_backward(real_view(g.m_row, sl, N), [&](const Tensor& du, const Tensor& dm) {
        apply_dropout(du, k.dropout_key, DropoutSite::MsaRowAttention);
        gated_self_attention_backward(w.attention, w.query_norm, m0, false, own(g.msa_mask, 0, g.s), bias, k.inf, k.eps,
                                      du, dm, true, grads.attention, grads.query_norm, dbias, ctx);
    });
    Tensor dz0 = rl > 0 ? real_copy(g.z_row, rl, N) : Tensor();
    gathered_bias_backward(g, w.feat_2d_norm, w.feat_2d_weights, z0, false, dbias, dz0, grads.feat_2d_norm,
                           grads.feat_2d_weights, ctx, k);
    if (rl > 0) copy(real_view(g.z_row, rl, N), dz0);
}

void dap_triangle_attention_backward(const TriangleAttentionWeights& w, bool ending_node, const Tensor& zs,
                                     DapActivations& g, TriangleAttentionWeights& grads, Context& ctx,
                                     const TrunkConstants& k) {
    if (ending_node)
        dap_z_to_cols(g);
    else
        dap_z_to_rows(g);
    WorkspaceScope scope(ctx.ws);
    const int64_t N = g.r.n, rl = g.r.real;
    // zs: this rank's real block of the module's input, [rl, N, C_z] (starting) or [N, rl, C_z] (ending).
    Tensor bias = gathered_bias(g, w.query_norm, w.feat_2d_weights, ending_node ? zs.permute({1, 0, 2}) : zs, ctx, k);
    Tensor dbias = ctx.ws.zeros(bias.shape());
    const Tensor view = ending_node ? real_view(g.z_col, N, rl) : real_view(g.z_row, rl, N);
    Tensor dzs;
    if (rl > 0) {
        const Tensor mask = (ending_node ? own(g.pair_mask, 1, g.r) : own(g.pair_mask, 0, g.r)).contiguous();
        Tensor du = view.clone();
        dzs = du.clone();
        apply_dropout(du, k.dropout_key,
                      ending_node ? DropoutSite::TriangleAttentionEnding : DropoutSite::TriangleAttentionStarting);
        gated_self_attention_backward(w.attention, w.query_norm, zs, ending_node, mask, bias, k.inf, k.eps, du, dzs,
                                      true, grads.attention, grads.query_norm, dbias, ctx);
    }
    gathered_bias_backward(g, w.query_norm, w.feat_2d_weights, zs, ending_node, dbias, dzs, grads.query_norm,
                           grads.feat_2d_weights, ctx, k);
    if (rl > 0) copy(view, dzs);
}

// zs: the module's input shard, padding included ([L, N_pad, C_z] outgoing, [N_pad, L, C_z] incoming).
void dap_triangle_multiplication_backward(const TriangleMultiplicationWeights& w, bool incoming, const Tensor& zs,
                                          DapActivations& g, TriangleMultiplicationWeights& grads, Context& ctx,
                                          const TrunkConstants& k) {
    if (incoming)
        dap_z_to_cols(g);
    else
        dap_z_to_rows(g);
    Workspace& ws = ctx.ws;
    WorkspaceScope scope(ws);
    const Tensor dzl = incoming ? g.z_col : g.z_row;  // [A, B, C_z]
    const int64_t A = dzl.size(0), B = dzl.size(1), M = A * B, P = g.P, L = g.r.local, Np = g.r.n_pad,
                  C = w.left_projection.weights.size(1);
    Tensor mask = ws.alloc({A, B});
    copy(mask, incoming ? g.pair_mask_pad.slice(1, g.r.begin, g.r.begin + L)
                        : g.pair_mask_pad.slice(0, g.r.begin, g.r.begin + L));
    // Every rank's right projection (gathered as the forward gathers it) and this rank's contribution to the
    // gradient of each of them (reduce-scattered: the sum over ranks of block q is rank q's dright).
    Tensor all = ws.alloc({P, C, M}), dall = ws.alloc({P, C, M}), dright = ws.alloc({1, C, M});
    std::unique_ptr<CommHandle> reducing;
    TriangleProduct product;
    product.forward = [&](const Tensor& left, const Tensor& right, const Tensor& prod) {
        g.comm->all_gather(right.view({1, C, M}), all)->wait();
        for (int64_t q = 0; q < P; ++q) {
            const Tensor rq = all.select(0, q);
            if (incoming)  // prod[c, i in q, j] = sum_k right_q[c, k, i] left[c, k, j]
                matmul(rq.view({C, Np, L}).transpose(1, 2), left.view({C, Np, L}), prod.slice(1, q * L, (q + 1) * L));
            else  // prod[c, i, j in q] = sum_k left[c, i, k] right_q[c, j, k]
                matmul(left.view({C, L, Np}), rq.view({C, L, Np}).transpose(1, 2), prod.slice(2, q * L, (q + 1) * L));
        }
    };
    product.backward = [&](const Tensor& left, const Tensor&, const Tensor& dprod,
                           const Tensor& dleft) -> std::function<void(const Tensor&)> {
        for (int64_t q = 0; q < P; ++q) {
            const Tensor rq = all.select(0, q), drq = dall.select(0, q);
            const float beta = q == 0 ? 0.f : 1.f;
            if (incoming) {
                const Tensor dpq = dprod.slice(1, q * L, (q + 1) * L);  // [c, i in q, j]
                matmul(rq.view({C, Np, L}), dpq, dleft.view({C, Np, L}), 1.f, beta);
                matmul(left.view({C, Np, L}), dpq.transpose(1, 2), drq.view({C, Np, L}));
            } else {
                const Tensor dpq = dprod.slice(2, q * L, (q + 1) * L);  // [c, i, j in q]
                matmul(dpq, rq.view({C, L, Np}), dleft.view({C, L, Np}), 1.f, beta);
                matmul(dpq.transpose(1, 2), left.view({C, L, Np}), drq.view({C, L, Np}));
            }
        }
        reducing = g.comm->reduce_scatter_sum(dall, dright);
        return [&](const Tensor& dr) {
            reducing->wait();
            copy(dr, dright.view({C, A, B}));
        };
    };
    Tensor du = dzl.clone();
    apply_dropout(du, k.dropout_key,
                  incoming ? DropoutSite::TriangleMultiplicationIncoming : DropoutSite::TriangleMultiplicationOutgoing,
                  0, incoming ? g.r.begin : 0);
    triangle_multiplication_backward_block(w, zs, mask, du, dzl, true, grads, product, ctx, k);
}

// m3: this rank's real columns of the module's input, [S, rl, C_m].
void dap_outer_product_mean_backward(const OuterProductMeanWeights& w, const Tensor& m3, DapActivations& g,
                                     OuterProductMeanWeights& grads, Context& ctx, const TrunkConstants& k) {
    dap_m_to_cols(g);
    dap_z_to_rows(g);
    Workspace& ws = ctx.ws;
    WorkspaceScope scope(ws);
    const int64_t S = g.s.n, N = g.r.n, rl = g.r.real, L = g.r.local, Np = g.r.n_pad,
                  c = w.left_projection.weights.size(1);
    const Tensor mask = own(g.msa_mask, 1, g.r).contiguous();  // [S, rl]
    // The forward's projections: this rank's left one, every rank's right one (gathered again).
    Tensor send = ws.zeros({L, S, c}), left;
    if (rl > 0) {
        left = ws.alloc({S, rl, c});
        Tensor right = ws.alloc({S, rl, c});
        outer_product_mean_project(w, m3, mask, left, right, ctx, k);
        copy(send.slice(0, 0, rl), right.permute({1, 0, 2}));
    }
    Tensor all = ws.alloc({Np, S, c});
    g.comm->all_gather(send, all)->wait();
    // d(right) of every rank's residues from this rank's rows of the update, summed over ranks into dmine.
    Tensor dall = ws.zeros({Np, S, c}), dleft;
    if (rl > 0) {
        Tensor right = ws.alloc({S, N, c});
        copy(right, all.slice(0, 0, N).permute({1, 0, 2}));
        Tensor norm = ws.alloc({rl, N});
        matmul(mask.transpose(0, 1), g.msa_mask, norm);
        Tensor du = real_copy(g.z_row, rl, N);
        dleft = ws.alloc({S, rl, c});
        Tensor dright = ws.zeros({S, N, c});
        outer_product_mean_combine_backward(w, left, right, norm, du, dleft, dright, grads, ctx, k);
        copy(dall.slice(0, 0, N), dright.permute({1, 0, 2}));
    }
    Tensor dmine = ws.alloc({L, S, c});
    auto h = g.comm->reduce_scatter_sum(dall, dmine);
    if (rl == 0) {
        h->wait();
        return;
    }
    // The left projection's backward runs while dright is reduced.
    Tensor dright = ws.alloc({S, rl, c});
    residual_backward(real_view(g.m_col, S, rl), [&](const Tensor&, const Tensor& dm) {
        outer_product_mean_project_backward(w, m3, mask, dleft, dright, dm, true, grads, ctx, k, [&] {
            h->wait();
            copy(dright, dmine.slice(0, 0, rl).permute({1, 0, 2}));
        });
    });
}

// Flattens every parameter gradient of a block into one buffer (one all-reduce per block), and back.
Tensor pack_grads(EvoformerBlockWeights& gw) {
    int64_t n = 0;
    Device dev = Device::CPU;
    gw.visit([&](const std::string&, Tensor& t) {
        if (!t.defined()) return;
        n += t.numel();
        dev = t.device();
    });
    Tensor flat = Tensor::empty({n}, DType::F32, dev);
    int64_t off = 0;
    gw.visit([&](const std::string&, Tensor& t) {
        if (!t.defined()) return;
        copy(flat.slice(0, off, off + t.numel()), t.contiguous().view({t.numel()}));
        off += t.numel();
    });
    return flat;
}

void add_packed_grads(const Tensor& flat, EvoformerBlockWeights& grads) {
    int64_t off = 0;
    grads.visit([&](const std::string&, Tensor& t) {
        if (!t.defined()) return;
        add(t.view({t.numel()}), flat.slice(0, off, off + t.numel()));
        off += t.numel();
    });
    AXF_CHECK(off == flat.numel(), "DAP backward: %lld parameter gradients packed, %lld unpacked",
              (long long)flat.numel(), (long long)off);
}

}  // namespace

void dap_keep_current_layout(DapActivations& a) {
    if (a.m_pending.active()) a.m_pending.wait();
    (a.m_rows ? a.m_col : a.m_row) = Tensor();
    (a.z_rows ? a.z_col : a.z_row) = Tensor();
    a.m_scratch = Tensor();
    a.z_scratch = Tensor();
}

DapActivations dap_copy(const DapActivations& a) {
    AXF_CHECK(!a.m_pending.active(), "dap_copy: a re-sharding is in flight");
    DapActivations c;
    c.comm = a.comm;
    c.P = a.P;
    c.rank = a.rank;
    c.s = a.s;
    c.r = a.r;
    // The current layouts are copied; a layout not kept (dap_keep_current_layout) is made again, zero.
    auto copy_or_zeros = [](const Tensor& t, const Tensor& other, const Shape& shape) {
        return t.defined() ? t.clone() : Tensor::zeros(shape, other.dtype(), other.device());
    };
    const int64_t Cm = (a.m_row.defined() ? a.m_row : a.m_col).size(2),
                  Cz = (a.z_row.defined() ? a.z_row : a.z_col).size(2);
    c.m_row = copy_or_zeros(a.m_row, a.m_col, {a.s.local, a.r.n_pad, Cm});
    c.m_col = copy_or_zeros(a.m_col, a.m_row, {a.s.n_pad, a.r.local, Cm});
    c.z_row = copy_or_zeros(a.z_row, a.z_col, {a.r.local, a.r.n_pad, Cz});
    c.z_col = copy_or_zeros(a.z_col, a.z_row, {a.r.n_pad, a.r.local, Cz});
    c.msa_mask = a.msa_mask;  // never written
    c.pair_mask = a.pair_mask;
    c.pair_mask_pad = a.pair_mask_pad;
    c.m_rows = a.m_rows;
    c.z_rows = a.z_rows;
    c.m_scratch = Tensor::empty({c.m_row.numel()}, c.m_row.dtype(), c.m_row.device());
    c.z_scratch = Tensor::empty({c.z_row.numel()}, c.z_row.dtype(), c.z_row.device());
    return c;
}

void dap_evoformer_block_backward(const EvoformerBlockWeights& w, const DapActivations& input, DapActivations& g,
                                  EvoformerBlockWeights& grads, Context& ctx, const TrunkConstants& k) {
    AXF_CHECK(input.m_row.dtype() == DType::F32 && g.m_row.dtype() == DType::F32 && g.comm == input.comm &&
                  g.s.n == input.s.n && g.r.n == input.r.n,
              "DAP block backward: activations %s and gradients %s (float32, one communicator and shape)",
              input.m_row.desc().c_str(), g.m_row.desc().c_str());
    // The forward again, keeping each sub-module's input in the layout its backward reads: the real block for
    // the row-wise modules, the whole shard (padding included) for the triangle multiplications.
    DapActivations a = dap_copy(input);
    const int64_t S = a.s.n, N = a.r.n, sl = a.s.real, rl = a.r.real;
    dap_m_to_rows(a);
    dap_z_to_rows(a);
    const Tensor m0 = real_copy(a.m_row, sl, N), z0 = real_copy(a.z_row, rl, N);
    dap_msa_row_attention(w.msa_row_attention_with_pair_bias, a, ctx, k);
    dap_m_to_cols(a);
    const Tensor m1 = real_copy(a.m_col, S, rl);
    dap_msa_column_attention(w, a, ctx, k);
    const Tensor m2 = real_copy(a.m_col, S, rl);
    dap_msa_transition(w.msa_transition, a, ctx, k);
    const Tensor m3 = real_copy(a.m_col, S, rl);
    dap_outer_product_mean(w.outer_product_mean, a, ctx, k);
    const Tensor z1 = a.z_row.clone();
    dap_triangle_multiplication(w.triangle_multiplication_outgoing, false, a, ctx, k);
    dap_z_to_cols(a);
    const Tensor z2 = a.z_col.clone();
    dap_triangle_multiplication(w.triangle_multiplication_incoming, true, a, ctx, k);
    dap_z_to_rows(a);
    const Tensor z3 = real_copy(a.z_row, rl, N);
    dap_triangle_attention(w.triangle_attention_starting_node, false, a, ctx, k);
    dap_z_to_cols(a);
    const Tensor z4 = real_copy(a.z_col, N, rl);
    dap_triangle_attention(w.triangle_attention_ending_node, true, a, ctx, k);
    const Tensor z5 = real_copy(a.z_col, N, rl);
    a = DapActivations();

    // The adjoint of the forward's asynchronous m cols -> rows: dm rows -> cols, in flight during the pair
    // stack's backward, waited for by the outer product mean's.
    if (g.m_pending.active()) g.m_pending.wait();
    if (g.m_rows) {
        g.m_pending = dap_rows_to_cols_start(*g.comm, g.m_row, g.m_col, g.m_scratch);
        g.m_rows = false;
    }
    dap_z_to_cols(g);
    residual_backward(real_view(g.z_col, N, rl), [&](const Tensor& du, const Tensor& dz) {
        transition_backward(w.pair_transition, z5, du, dz, true, grads.pair_transition, ctx, k);
    });
    dap_triangle_attention_backward(w.triangle_attention_ending_node, true, z4, g, grads.triangle_attention_ending_node,
                                    ctx, k);
    dap_triangle_attention_backward(w.triangle_attention_starting_node, false, z3, g,
                                    grads.triangle_attention_starting_node, ctx, k);
    dap_triangle_multiplication_backward(w.triangle_multiplication_incoming, true, z2, g,
                                         grads.triangle_multiplication_incoming, ctx, k);
    dap_triangle_multiplication_backward(w.triangle_multiplication_outgoing, false, z1, g,
                                         grads.triangle_multiplication_outgoing, ctx, k);
    // z1 = z0 + OPM(m3): the pair's gradient passes on unchanged and reaches the MSA.
    dap_outer_product_mean_backward(w.outer_product_mean, m3, g, grads.outer_product_mean, ctx, k);
    residual_backward(real_view(g.m_col, S, rl), [&](const Tensor& du, const Tensor& dm) {
        transition_backward(w.msa_transition, m2, du, dm, true, grads.msa_transition, ctx, k);
    });
    const Tensor col_mask = own(g.msa_mask, 1, g.r).contiguous();
    residual_backward(real_view(g.m_col, S, rl), [&](const Tensor& du, const Tensor& dm) {
        if (w.is_extra_msa)
            msa_column_global_attention_backward(w.msa_column_global_attention, m1, col_mask, du, dm, true,
                                                 grads.msa_column_global_attention, ctx, k);
        else
            msa_column_attention_backward(w.msa_column_attention, m1, col_mask, du, dm, true,
                                          grads.msa_column_attention, ctx, k);
    });
    dap_msa_row_attention_backward(w.msa_row_attention_with_pair_bias, m0, z0, g,
                                   grads.msa_row_attention_with_pair_bias, ctx, k);
}

void dap_evoformer_stack_backward(const EvoformerStackWeights& w, Comm& comm, const Tensor& m, const Tensor& z,
                                  const Tensor& msa_mask, const Tensor& pair_mask, Tensor& dm, Tensor& dz,
                                  std::vector<EvoformerBlockWeights>& grads, Context& ctx, const TrunkConstants& k,
                                  const BlockGradientDone& block_done) {
    AXF_CHECK(grads.size() == w.blocks.size(), "DAP stack backward: %zu gradient blocks for %zu blocks", grads.size(),
              w.blocks.size());
    AXF_CHECK(dm.shape() == m.shape() && dz.shape() == z.shape() && m.dtype() == DType::F32 && z.dtype() == DType::F32,
              "DAP stack backward: m %s, z %s (float32), dm %s, dz %s (their shapes)", m.desc().c_str(),
              z.desc().c_str(), dm.desc().c_str(), dz.desc().c_str());
    if (w.blocks.empty()) return;
    // Each block's input shards, from one replay of the forward (activation checkpointing per block), kept in
    // ctx.activation_dtype (bfloat16 under bf16 training: half the memory; the replay runs on in float32 and each
    // block's backward widens its own, as evoformer_stack_backward does).
    // The shards present, stored in `dtype`.
    auto store_as = [](DapActivations& a, DType dtype) {
        for (Tensor* t : {&a.m_row, &a.m_col, &a.z_row, &a.z_col})
            if (t->defined()) *t = to_dtype(*t, dtype);
    };
    auto keep = [&](DapActivations& a) {
        dap_keep_current_layout(a);
        store_as(a, ctx.activation_dtype);
    };
    std::vector<DapActivations> inputs;
    inputs.push_back(dap_scatter(comm, m, z, msa_mask, pair_mask, ctx.device));
    for (size_t b = 0; b + 1 < w.blocks.size(); ++b) {
        DapActivations a = dap_copy(inputs.back());
        dap_evoformer_block_forward(w.blocks[b], a, ctx, block_constants(k, b));
        dap_m_to_rows(a);
        inputs.push_back(std::move(a));
        keep(inputs[inputs.size() - 2]);
    }
    keep(inputs.back());
    DapActivations g = dap_scatter(comm, dm, dz, msa_mask, pair_mask, ctx.device);
    std::vector<Tensor> sums(w.blocks.size());
    std::vector<std::unique_ptr<CommHandle>> summing(w.blocks.size());
    // Block b's summed gradient, once its all-reduce is done.
    auto summed = [&](size_t b) {
        summing[b]->wait();
        add_packed_grads(sums[b], grads[b]);
        if (block_done) block_done(b);
    };
    for (size_t b = w.blocks.size(); b-- > 0;) {
        EvoformerBlockWeights local = zeros_like_weights(w.blocks[b]);
        store_as(inputs[b], DType::F32);
        dap_evoformer_block_backward(w.blocks[b], inputs[b], g, local, ctx, block_constants(k, b));
        inputs[b] = DapActivations();
        sums[b] = pack_grads(local);
        summing[b] = comm.all_reduce_sum(sums[b]);   // overlaps the next block's backward
        if (b + 1 < w.blocks.size()) summed(b + 1);  // started one block ago
    }
    dap_gather(g, dm, dz);
    summed(0);
}

}  // namespace axfold
