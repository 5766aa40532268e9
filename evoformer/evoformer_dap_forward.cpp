// The DAP Evoformer forward: scatter and gather, the re-shardings, each module on its shards, the block and the
// stack (see evoformer_dap.h; the backward is in evoformer_dap_backward.cpp).

#include "evoformer/dropout.h"
#include "evoformer/evoformer_dap.h"
#include "evoformer/evoformer_dap_internal.h"
#include "evoformer/gated_attention.h"

namespace axfold {

using detail::gathered_bias;
using detail::own;
using detail::real_view;

namespace detail {

Tensor gathered_bias(DapActivations& a, const LayerNormWeights& norm, const Tensor& W, const Tensor& zr, Context& ctx,
                     const TrunkConstants& k) {
    Workspace& ws = ctx.ws;
    const int64_t H = W.size(1), N = a.r.n, Np = a.r.n_pad, rl = a.r.real;
    Tensor bias = ws.alloc({H, N, N});
    WorkspaceScope scope(ws);
    Tensor send = ws.zeros({a.r.local, Np, H});
    if (rl > 0) {
        WorkspaceScope inner(ws);
        Tensor x = layer_norm(zr, norm.scale, norm.offset, k.eps, ws);
        Tensor b = linear(x, W, Tensor(), ws);  // [rl, N, H]
        copy(real_view(send, rl, N), b);
    }
    Tensor full = ws.alloc({Np, Np, H});
    a.comm->all_gather(send, full)->wait();
    copy(bias, real_view(full, N, N).permute({2, 0, 1}));
    return bias;
}

}  // namespace detail

namespace {

// Transition on the real rows of t [n0_pad, n1_pad, C] (n0 leading rows real, contiguous), keeping the
// padded columns zero.
void transition_real(const TransitionWeights& w, const Tensor& t, int64_t n0, int64_t n1, Context& ctx,
                     const TrunkConstants& k) {
    if (n0 == 0 || n1 == 0) return;
    const Tensor v = t.slice(0, 0, n0);
    transition_forward(w, v, v, true, ctx, k);
    dap_zero_tail(v, n0, n1);
}

}  // namespace

DapActivations dap_scatter(Comm& comm, const Tensor& m, const Tensor& z, const Tensor& msa_mask,
                           const Tensor& pair_mask) {
    return dap_scatter(comm, m, z, msa_mask, pair_mask, m.device());
}

DapActivations dap_scatter(Comm& comm, const Tensor& m, const Tensor& z, const Tensor& msa_mask,
                           const Tensor& pair_mask, Device dev) {
    AXF_CHECK(m.dim() == 3 && z.dim() == 3 && z.size(0) == m.size(1) && z.size(1) == m.size(1),
              "dap_scatter: msa %s and pair %s disagree on N_res", m.desc().c_str(), z.desc().c_str());
    AXF_CHECK(msa_mask.dim() == 2 && msa_mask.size(0) == m.size(0) && msa_mask.size(1) == m.size(1) &&
                  pair_mask.dim() == 2 && pair_mask.size(0) == z.size(0) && pair_mask.size(1) == z.size(1),
              "dap_scatter: masks %s, %s for msa %s and pair %s", msa_mask.desc().c_str(), pair_mask.desc().c_str(),
              m.desc().c_str(), z.desc().c_str());
    DapActivations a;
    a.comm = &comm;
    a.P = comm.size();
    a.rank = comm.rank();
    const int64_t S = m.size(0), N = m.size(1), Cm = m.size(2), Cz = z.size(2);
    a.s = DapAxis(S, a.P, a.rank);
    a.r = DapAxis(N, a.P, a.rank);
    // The shards keep the activations' dtype (float32, or bfloat16 with --precision bf16) and live on `dev`
    // (the communicator's: CPU for MPI, CUDA for NCCL); m and z may be on the host either way.
    a.m_row = Tensor::zeros({a.s.local, a.r.n_pad, Cm}, m.dtype(), dev);
    a.m_col = Tensor::zeros({a.s.n_pad, a.r.local, Cm}, m.dtype(), dev);
    a.z_row = Tensor::zeros({a.r.local, a.r.n_pad, Cz}, z.dtype(), dev);
    a.z_col = Tensor::zeros({a.r.n_pad, a.r.local, Cz}, z.dtype(), dev);
    if (a.s.real > 0) real_view(a.m_row, a.s.real, N).copy_from(m.slice(0, a.s.begin, a.s.begin + a.s.real));
    if (a.r.real > 0) real_view(a.z_row, a.r.real, N).copy_from(z.slice(0, a.r.begin, a.r.begin + a.r.real));
    a.msa_mask = msa_mask.to(dev).contiguous();
    a.pair_mask = pair_mask.to(dev).contiguous();
    a.pair_mask_pad = Tensor::zeros({a.r.n_pad, a.r.n_pad}, DType::F32, dev);
    real_view(a.pair_mask_pad, N, N).copy_from(a.pair_mask);
    a.m_scratch = Tensor::empty({a.m_row.numel()}, m.dtype(), dev);
    a.z_scratch = Tensor::empty({a.z_row.numel()}, z.dtype(), dev);
    return a;
}

void dap_m_to_rows(DapActivations& a) {
    if (a.m_pending.active()) a.m_pending.wait();
    if (a.m_rows) return;
    dap_cols_to_rows_start(*a.comm, a.m_col, a.m_row, a.m_scratch).wait();
    a.m_rows = true;
}

void dap_m_to_cols(DapActivations& a) {
    if (a.m_pending.active()) a.m_pending.wait();
    if (!a.m_rows) return;
    dap_rows_to_cols_start(*a.comm, a.m_row, a.m_col, a.m_scratch).wait();
    a.m_rows = false;
}

void dap_z_to_rows(DapActivations& a) {
    if (a.z_rows) return;
    dap_cols_to_rows_start(*a.comm, a.z_col, a.z_row, a.z_scratch).wait();
    a.z_rows = true;
}

void dap_z_to_cols(DapActivations& a) {
    if (!a.z_rows) return;
    dap_rows_to_cols_start(*a.comm, a.z_row, a.z_col, a.z_scratch).wait();
    a.z_rows = false;
}

void dap_gather(DapActivations& a, const Tensor& m, const Tensor& z) {
    dap_m_to_rows(a);
    dap_z_to_rows(a);
    const int64_t S = a.s.n, N = a.r.n;
    AXF_CHECK(m.dim() == 3 && m.size(0) == S && m.size(1) == N && m.size(2) == a.m_row.size(2) && z.dim() == 3 &&
                  z.size(0) == N && z.size(1) == N && z.size(2) == a.z_row.size(2),
              "dap_gather: outputs %s and %s for S=%lld N=%lld", m.desc().c_str(), z.desc().c_str(), (long long)S,
              (long long)N);
    Tensor mf = Tensor::empty({a.s.n_pad, a.r.n_pad, a.m_row.size(2)}, a.m_row.dtype(), a.m_row.device());
    auto hm = a.comm->all_gather(a.m_row, mf);
    Tensor zf = Tensor::empty({a.r.n_pad, a.r.n_pad, a.z_row.size(2)}, a.z_row.dtype(), a.z_row.device());
    auto hz = a.comm->all_gather(a.z_row, zf);
    // Outputs on another device (the host, with the shards on a GPU) take the whole padded tensor across
    // first: a strided cross-device copy would stage a second full copy on the device.
    hm->wait();
    m.copy_from(real_view(mf.to(m.device()), S, N));
    hz->wait();
    z.copy_from(real_view(zf.to(z.device()), N, N));
}

void dap_msa_row_attention(const MsaRowAttentionWeights& w, DapActivations& a, Context& ctx, const TrunkConstants& k) {
    dap_m_to_rows(a);
    dap_z_to_rows(a);
    WorkspaceScope scope(ctx.ws);
    const int64_t N = a.r.n, sl = a.s.real;
    Tensor bias = gathered_bias(a, w.feat_2d_norm, w.feat_2d_weights, real_view(a.z_row, a.r.real, N), ctx, k);
    if (sl == 0) return;
    const Tensor mv = real_view(a.m_row, sl, N);
    if (k.dropout_key == 0) {
        gated_self_attention(w.attention, w.query_norm, mv, false, own(a.msa_mask, 0, a.s), bias, k.inf, k.eps, mv,
                             true, ctx);
        return;
    }
    Tensor u = ctx.ws.alloc({sl, N, mv.size(2)});  // the update, dropped out (rows share the mask)
    gated_self_attention(w.attention, w.query_norm, mv, false, own(a.msa_mask, 0, a.s), bias, k.inf, k.eps, u, false,
                         ctx);
    apply_dropout(u, k.dropout_key, DropoutSite::MsaRowAttention);
    add(mv, u);
}

void dap_msa_column_attention(const EvoformerBlockWeights& w, DapActivations& a, Context& ctx,
                              const TrunkConstants& k) {
    dap_m_to_cols(a);
    const int64_t rl = a.r.real;
    if (rl == 0) return;
    const Tensor mv = real_view(a.m_col, a.s.n, rl);
    const Tensor mask = own(a.msa_mask, 1, a.r);
    if (w.is_extra_msa)
        msa_column_global_attention_forward(w.msa_column_global_attention, mv, mask, mv, true, ctx, k);
    else
        msa_column_attention_forward(w.msa_column_attention, mv, mask, mv, true, ctx, k);
}

void dap_msa_transition(const TransitionWeights& w, DapActivations& a, Context& ctx, const TrunkConstants& k) {
    if (a.m_pending.active()) a.m_pending.wait();
    if (a.m_rows)
        transition_real(w, a.m_row, a.s.real, a.r.n, ctx, k);
    else
        transition_real(w, a.m_col, a.s.n, a.r.real, ctx, k);
}

void dap_outer_product_mean(const OuterProductMeanWeights& w, DapActivations& a, Context& ctx,
                            const TrunkConstants& k) {
    dap_m_to_cols(a);
    dap_z_to_rows(a);
    Workspace& ws = ctx.ws;
    WorkspaceScope scope(ws);
    const int64_t S = a.s.n, N = a.r.n, rl = a.r.real, c = w.left_projection.weights.size(1);
    const Tensor mv = real_view(a.m_col, S, rl);
    const Tensor mask = own(a.msa_mask, 1, a.r);  // [S, rl]
    // The right projection travels while the left one is computed.
    Tensor send = ws.zeros({a.r.local, S, c});
    if (rl > 0) {
        WorkspaceScope inner(ws);
        Tensor right = ws.alloc({S, rl, c});
        outer_product_mean_project(w, mv, mask, Tensor(), right, ctx, k);
        copy(send.slice(0, 0, rl), right.permute({1, 0, 2}));
    }
    Tensor all = ws.alloc({a.r.n_pad, S, c});
    auto h = a.comm->all_gather(send, all);
    if (rl == 0) {
        h->wait();
        return;
    }
    Tensor left = ws.alloc({S, rl, c});
    outer_product_mean_project(w, mv, mask, left, Tensor(), ctx, k);
    Tensor norm = ws.alloc({rl, N});
    matmul(mask.transpose(0, 1), a.msa_mask, norm);
    h->wait();
    Tensor right = ws.alloc({S, N, c});
    copy(right, all.slice(0, 0, N).permute({1, 0, 2}));
    outer_product_mean_combine(w, left, right, norm, real_view(a.z_row, rl, N), true, ctx, k);
}

void dap_triangle_multiplication(const TriangleMultiplicationWeights& w, bool incoming, DapActivations& a, Context& ctx,
                                 const TrunkConstants& k) {
    if (incoming)
        dap_z_to_cols(a);
    else
        dap_z_to_rows(a);
    Workspace& ws = ctx.ws;
    WorkspaceScope scope(ws);
    const Tensor zl = incoming ? a.z_col : a.z_row;  // [A, B, C_z]
    const int64_t A = zl.size(0), B = zl.size(1), Cz = zl.size(2), M = A * B, P = a.P, L = a.r.local, Np = a.r.n_pad,
                  C = w.c_hidden();
    const Tensor mask_l = incoming ? a.pair_mask_pad.slice(1, a.r.begin, a.r.begin + L)
                                   : a.pair_mask_pad.slice(0, a.r.begin, a.r.begin + L);
    Tensor mask = ws.alloc({A, B});
    copy(mask, mask_l);
    const Tensor mask_flat = mask.view({1, M}).expand({C, M});
    Tensor x = layer_norm(zl.view({M, Cz}), w.layer_norm_input.scale, w.layer_norm_input.offset, k.eps, ws);
    const Tensor xt = x.transpose(0, 1);
    // Gated, masked projections computed channel-major [c, M] (as in triangle_multiplication.cpp).
    auto project = [&](const LinearWeights& lin, const LinearWeights& gate, const Tensor& dst) {
        WorkspaceScope s(ws);
        copy(dst, lin.bias.view({C, 1}).expand({C, M}));
        matmul(lin.weights.transpose(0, 1), xt, dst, 1.f, 1.f);
        mul(dst, mask_flat);
        Tensor g = ws.alloc({C, M});
        copy(g, gate.bias.view({C, 1}).expand({C, M}));
        matmul(gate.weights.transpose(0, 1), xt, g, 1.f, 1.f);
        sigmoid_mul(dst, g);
    };
    // Outgoing: right[c, j_local, k] of every rank; incoming: right[c, k, i_local] of every rank. The
    // gather runs while the left projection is computed.
    Tensor send = ws.alloc({1, C, M}), all = ws.alloc({P, C, M});
    project(w.side_projection(1), w.side_gate(1), send.view({C, M}));
    auto h = a.comm->all_gather(send, all);
    Tensor left = ws.alloc({C, M});
    project(w.side_projection(0), w.side_gate(0), left);
    Tensor prod = ws.alloc({C, A, B});
    h->wait();
    for (int64_t q = 0; q < P; ++q) {
        const Tensor rq = all.select(0, q);
        if (incoming)  // prod[c, i in q, j] = sum_k right[c, k, i] left[c, k, j]
            matmul(rq.view({C, Np, L}).transpose(1, 2), left.view({C, Np, L}), prod.slice(1, q * L, (q + 1) * L));
        else  // prod[c, i, j in q] = sum_k left[c, i, k] right[c, j, k]
            matmul(left.view({C, L, Np}), rq.view({C, L, Np}).transpose(1, 2), prod.slice(2, q * L, (q + 1) * L));
    }
    const Tensor act = prod.view({C, M}).transpose(0, 1);
    layer_norm(act, w.center_layer_norm.scale, w.center_layer_norm.offset, k.eps, act);
    Tensor upd = linear(act, w.output_projection.weights, w.output_projection.bias, ws);
    Tensor gate = linear(x, w.gating_linear.weights, w.gating_linear.bias, ws);
    sigmoid_mul(upd, gate);
    // Dropout (per row: the mask indexed by the residue j, local columns of the incoming layout offset).
    apply_dropout(upd.view({A, B, Cz}), k.dropout_key,
                  incoming ? DropoutSite::TriangleMultiplicationIncoming : DropoutSite::TriangleMultiplicationOutgoing,
                  0, incoming ? a.r.begin : 0);
    const int64_t ra = incoming ? a.r.n : a.r.real, rb = incoming ? a.r.real : a.r.n;
    if (ra > 0 && rb > 0) add(real_view(zl, ra, rb), real_view(upd.view({A, B, Cz}), ra, rb));
}

void dap_triangle_attention(const TriangleAttentionWeights& w, bool ending_node, DapActivations& a, Context& ctx,
                            const TrunkConstants& k) {
    WorkspaceScope scope(ctx.ws);
    const int64_t N = a.r.n, rl = a.r.real;
    // The attention's update into zv; with dropout computed apart, masked (starting: by residue j, every column
    // held; ending: by residue i, every row held) and added.
    auto attend = [&](const Tensor& zv, bool along0, const Tensor& mask, const Tensor& bias, DropoutSite site) {
        if (k.dropout_key == 0) {
            gated_self_attention(w.attention, w.query_norm, zv, along0, mask, bias, k.inf, k.eps, zv, true, ctx);
            return;
        }
        Tensor u = ctx.ws.alloc(zv.shape());
        gated_self_attention(w.attention, w.query_norm, zv, along0, mask, bias, k.inf, k.eps, u, false, ctx);
        apply_dropout(u, k.dropout_key, site);
        add(zv, u);
    };
    if (!ending_node) {
        dap_z_to_rows(a);
        const Tensor zv = real_view(a.z_row, rl, N);
        Tensor bias = gathered_bias(a, w.query_norm, w.feat_2d_weights, zv, ctx, k);
        if (rl > 0) attend(zv, false, own(a.pair_mask, 0, a.r), bias, DropoutSite::TriangleAttentionStarting);
    } else {
        dap_z_to_cols(a);
        const Tensor zv = real_view(a.z_col, N, rl);  // z[k, q] for the local q
        Tensor bias = gathered_bias(a, w.query_norm, w.feat_2d_weights, zv.permute({1, 0, 2}), ctx, k);
        if (rl > 0) attend(zv, true, own(a.pair_mask, 1, a.r), bias, DropoutSite::TriangleAttentionEnding);
    }
}

void dap_pair_transition(const TransitionWeights& w, DapActivations& a, Context& ctx, const TrunkConstants& k) {
    if (a.z_rows)
        transition_real(w, a.z_row, a.r.real, a.r.n, ctx, k);
    else
        transition_real(w, a.z_col, a.r.n, a.r.real, ctx, k);
}

void dap_evoformer_block_forward(const EvoformerBlockWeights& w, DapActivations& a, Context& ctx,
                                 const TrunkConstants& k, const BlockObserver& observe) {
    auto note = [&](const char* name, const Tensor& t) {
        if (observe) observe(name, t);
    };
    auto outer_product_mean = [&] {
        dap_outer_product_mean(w.outer_product_mean, a, ctx, k);
        note("pair_after_outer_product_mean", a.z_row);
    };
    // AF-Multimer: the outer product mean first (its MSA in columns, then back to rows for the row attention:
    // two re-shards of the MSA that the monomer order does not need).
    if (w.outer_product_mean_first) outer_product_mean();
    dap_msa_row_attention(w.msa_row_attention_with_pair_bias, a, ctx, k);
    note("msa_after_row_attention", a.m_row);
    dap_msa_column_attention(w, a, ctx, k);
    note("msa_after_column_attention", a.m_col);
    dap_msa_transition(w.msa_transition, a, ctx, k);
    note("msa_after_transition", a.m_col);
    if (!w.outer_product_mean_first) outer_product_mean();
    // m returns to rows while the pair stack runs; the next row attention (or the gather) waits for it.
    a.m_pending = dap_cols_to_rows_start(*a.comm, a.m_col, a.m_row, a.m_scratch);
    a.m_rows = true;
    dap_triangle_multiplication(w.triangle_multiplication_outgoing, false, a, ctx, k);
    note("pair_after_triangle_multiplication_outgoing", a.z_row);
    dap_triangle_multiplication(w.triangle_multiplication_incoming, true, a, ctx, k);
    note("pair_after_triangle_multiplication_incoming", a.z_col);
    dap_triangle_attention(w.triangle_attention_starting_node, false, a, ctx, k);
    note("pair_after_triangle_attention_starting_node", a.z_row);
    dap_triangle_attention(w.triangle_attention_ending_node, true, a, ctx, k);
    note("pair_after_triangle_attention_ending_node", a.z_col);
    dap_pair_transition(w.pair_transition, a, ctx, k);
}

void dap_evoformer_stack_forward(const EvoformerStackWeights& w, Comm& comm, Tensor& m, Tensor& z,
                                 const Tensor& msa_mask, const Tensor& pair_mask, Context& ctx,
                                 const TrunkConstants& k) {
    if (w.blocks.empty()) return;
    DapActivations a = dap_scatter(comm, m, z, msa_mask, pair_mask, ctx.device);
    for (size_t b = 0; b < w.blocks.size(); ++b)
        dap_evoformer_block_forward(w.blocks[b], a, ctx, block_constants(k, b));
    dap_gather(a, m, z);
}

}  // namespace axfold
