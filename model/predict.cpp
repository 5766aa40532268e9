// Model::predict (model.h): the recycling loop, one iteration, and where each part of the model runs.
#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <numbers>
#include <optional>

#include "evoformer/evoformer_dap.h"
#include "kernels/device.h"
#include "kernels/offload.h"
#include "model/model.h"
#include "structure/all_atom.h"
#include "structure/torsion_angles.h"

namespace axfold {

namespace {

using Clock = std::chrono::steady_clock;

TemplateEmbeddingWeights template_weights_on(const TemplateEmbeddingWeights& w, Device device) {
    TemplateEmbeddingWeights c;
    c.embedding2d = weights_on(w.embedding2d, device);
    for (const TemplatePairStackBlockWeights& b : w.template_pair_stack)
        c.template_pair_stack.push_back(weights_on(b, device));
    c.output_layer_norm = weights_on(w.output_layer_norm, device);
    c.attention = weights_on(w.attention, device);
    return c;
}

// A trunk stack's weights on `device` (the first `blocks` of them; -1: all).
EvoformerStackWeights stack_on(const EvoformerStackWeights& full, int blocks, Device device) {
    EvoformerStackWeights st;
    const size_t n = blocks < 0 ? full.blocks.size() : std::min(full.blocks.size(), static_cast<size_t>(blocks));
    for (size_t i = 0; i < n; ++i) st.blocks.push_back(weights_on(full.blocks[i], device));
    return st;
}

// Where each part of a prediction runs, with its weights there.
// The trunk stacks run on the caller's context, distributed over the ranks of opt.comm when it has more than
// one (DAP). On one device the whole model runs there: embedders, templates, both stacks, the structure module
// and the heads, with the representations and the recycled state resident on it. What stays on the host is
// O(N): feature checks, residue indices and bins, the structure module's frame algebra and all-atom
// construction; the features go up once per iteration and the outputs come back at the end. With DAP on GPUs
// (NCCL) only the stacks' shards live on the devices: every rank keeps the full representations on the host,
// where the rest of the model runs, so no GPU holds a second full pair.
struct Placement {
    Placement(const ModelWeights& w, const PredictOptions& opt, Context& trunk_ctx, bool use_templates)
        : ctx(trunk_ctx),
          comm(opt.comm),
          dev(trunk_ctx.device),
          dap(opt.comm && opt.comm->size() > 1),
          model_dev(dap ? Device::CPU : dev) {
        // On a GPU everything but the stacks has a workspace of its own: ctx's arena is reserved at the trunk's
        // size (the planner's), and after each trim its first block takes that size again, which the device
        // cannot spare for the embedders or heads (on the CPU untouched pages cost nothing, and one arena serves
        // every phase).
        if (dev != Device::CPU) {
            AXF_CHECK(dev == model_dev || comm->takes_device_buffers(),
                      "DAP with the trunk on %s needs the NCCL communicator, not %s (run DAP on the CPU, or build with "
                      "NCCL)",
                      device_name(dev), comm->backend().c_str());
            rest_ctx = std::make_unique<Context>(model_dev);
            rest_ctx->chunk_size = ctx.chunk_size;
            rest_ctx->activation_dtype = ctx.activation_dtype;
        }
        // With the model on a GPU, the precision asked for (--precision) is the trunk stacks' GEMM arithmetic;
        // the embedders, templates, structure module and heads compute in float32 (AF2 too runs its structure
        // module in float32; on the host, the CPU's emulation of TF32/bf16 would only slow them down).
        trunk_precision = matmul_precision();
        if (dev != Device::CPU) rest_fp32.emplace(MatmulPrecision::Fp32);
        extra_stack = stack_on(w.extra_msa_stack, opt.run_blocks, dev);
        evo_stack = stack_on(w.evoformer, opt.run_blocks, dev);
        input = weights_on(w.input_embedder, model_dev);
        recycle = weights_on(w.recycling_embedder, model_dev);
        extra = weights_on(w.extra_msa_embedder, model_dev);
        single = weights_on(w.single_activations, model_dev);
        structure_module = weights_on(w.structure_module, model_dev);
        heads = weights_on(w.heads, model_dev);
        if (use_templates) {
            if (w.multimer)
                multimer_templates = weights_on(w.multimer_template_embedding, model_dev);
            else
                templates = template_weights_on(w.template_embedding, model_dev);
            template_angles = weights_on(w.template_angle_embedder, model_dev);
        }
    }

    // The context of everything but the stacks.
    Context& rest() { return rest_ctx ? *rest_ctx : ctx; }

    // Between phases: empty arenas and, on a GPU, the memory pool's cached blocks returned to the driver, so
    // that one phase's freed blocks (of other sizes) do not sit beside the next phase's allocations.
    void end_phase() {
        rest().ws.trim();
        ctx.ws.trim();
        if (dev != Device::CPU) device_release_cached();
    }

    void run_stack(const EvoformerStackWeights& st, Tensor& m, Tensor& z, const Tensor& msa_mask,
                   const Tensor& pair_mask) {
        MatmulPrecisionScope trunk(trunk_precision);
        if (dap)  // scatters the host activations into shards on ctx's device and gathers them back
            dap_evoformer_stack_forward(st, *comm, m, z, msa_mask, pair_mask, ctx);
        else
            evoformer_stack_forward(st, m, z, msa_mask, pair_mask, ctx);
    }

    Context& ctx;
    Comm* comm;
    const Device dev;  // the trunk stacks'
    const bool dap;
    const Device model_dev;  // everything else's
    std::unique_ptr<Context> rest_ctx;
    MatmulPrecision trunk_precision = MatmulPrecision::Fp32;
    std::optional<MatmulPrecisionScope> rest_fp32;
    EvoformerStackWeights extra_stack, evo_stack;
    InputEmbedderWeights input;
    RecyclingEmbedderWeights recycle;
    ExtraMsaEmbedderWeights extra;
    SingleActivationsWeights single;
    StructureModuleWeights structure_module;
    HeadsWeights heads;
    TemplateEmbeddingWeights templates;
    MultimerTemplateEmbeddingWeights multimer_templates;
    TemplateAngleEmbedderWeights template_angles;
};

// Seconds per stage, summed over iterations, with each stage's progress report.
class StageClock {
public:
    StageClock(Device model_dev, const std::function<void(const std::string&, int, double)>& progress)
        : model_dev_(model_dev), progress_(progress) {}

    // Runs fn as `stage`, or as a part of it (`last` false: its seconds are reported with the next part).
    template <class F>
    void run(const std::string& stage, int r, F&& fn, bool last = true) {
        const auto t0 = Clock::now();
        fn();
        if (model_dev_ != Device::CPU) device_synchronize();  // the stage's kernels, not just their launches
        const double s = std::chrono::duration<double>(Clock::now() - t0).count();
        total_[stage] += s;
        parts_[stage] += s;
        if (!last) return;
        if (progress_) progress_(stage, r, parts_[stage]);
        parts_[stage] = 0;
    }

    std::vector<std::pair<std::string, double>> timings(bool templates) {
        std::vector<std::pair<std::string, double>> t;
        for (const char* s : {"embedders", "templates", "extra_msa_stack", "evoformer", "structure_module", "heads"})
            if (std::string(s) != "templates" || templates) t.push_back({s, total_[s]});
        return t;
    }

private:
    Device model_dev_;
    const std::function<void(const std::string&, int, double)>& progress_;
    std::map<std::string, double> total_, parts_;
};

// Host copies of what the prediction returns (the tensors themselves on the CPU).
Tensor host(const Tensor& t) {
    return t.defined() ? t.to(Device::CPU) : t;
}

// One prediction: AF2's recycling loop (Algorithm 2) over the iterations of the features.
//
// With bfloat16 activations (ctx.activation_dtype) the embedders write the pair and the extra-MSA activations
// in bfloat16 directly, block by block (template models build the pair in float32, which the template embedding
// reads, and round it before the stacks). The MSA is built in float32, rounded before the Evoformer and widened
// back after it; the pair stays bfloat16: the structure module and the heads read it through layer norms and
// row blocks, and it is the next iteration's recycled pair as it is.
class PredictionRun {
public:
    PredictionRun(const ModelConfig& config, const ModelWeights& w, const FeatureDict& f, const PredictOptions& opt,
                  Context& ctx)
        : cfg_(config),
          f_(f),
          opt_(opt),
          R_(f.at("aatype").size(0)),
          N_(f.at("aatype").size(1)),
          S_(f.at("msa_feat").size(1)),
          E_(f.at("extra_msa").size(1)),
          multimer_(w.multimer),
          use_templates_(w.has_templates && f.count("template_aatype") && f.at("template_aatype").size(1) > 0),
          T_(use_templates_ ? f.at("template_aatype").size(1) : 0),
          act_(ctx.activation_dtype),
          place_(w, opt, ctx, use_templates_),
          clock_(place_.model_dev, opt.progress) {
        iterations_ = opt.num_recycle < 0 ? static_cast<int>(R_) : opt.num_recycle + 1;
        AXF_CHECK(iterations_ <= R_,
                  "%d recycles need %d iterations of features, but the features hold %lld (leading axis)",
                  opt.num_recycle, iterations_, (long long)R_);
        AXF_CHECK(act_ == DType::F32 || act_ == DType::BF16, "activation dtype %s: expected float32 or bfloat16",
                  dtype_name(act_));
        // Each iteration builds a new MSA and pair; the recycled pair is the previous iteration's trunk output
        // itself (no copy), held only while the embedders need it unless the iterations are kept.
        const Device d = place_.model_dev;
        prev_row_ = Tensor::zeros({N_, cfg_.c_m}, DType::F32, d);
        prev_pair_ = Tensor::zeros({N_, N_, cfg_.c_z}, act_, d);
        prev_pb_ = Tensor::zeros({N_, 3});  // host: the recycling bins are computed there
        // Template rows follow the S cluster rows of the MSA activations (AF2 EmbeddingsAndEvoformer).
        msa_mask_ = Tensor::empty({S_ + T_, N_}, DType::F32, d);
        pair_mask_ = Tensor::empty({N_, N_}, DType::F32, d);
    }

    int iterations() const { return iterations_; }

    void iteration(int r) {
        inputs(r);
        clock_.run(
            "embedders", r, [&] { embed(r); }, !use_templates_);
        if (use_templates_) {
            clock_.run("templates", r, [&] { embed_templates(r); });
            place_.end_phase();
            // The extra-MSA activations (which live until their stack is done) are built after the template
            // embedding (the phase with the templates' activations), so the two never coexist; the embedders'
            // time and progress report include them either way.
            clock_.run("embedders", r, [&] { embed_extra_msa(r); });
        }
        trunk(r);
        clock_.run("structure_module", r, [&] { structure_module(r); });
        place_.end_phase();
        recycle(r);
    }

    Prediction finish() {
        Context& mc = place_.rest();
        clock_.run("heads", iterations_ - 1, [&] {
            p_.heads = heads_forward(place_.heads, msa_clusters_, pair_, single_, sm_.act.to(place_.model_dev), mc,
                                     opt_.keep_pair_logits, multimer_ ? chains_.asym_id : Tensor());
        });
        if (opt_.on_iteration) opt_.on_iteration(iterations_ - 1, last_diff_, p_.heads);
        p_.iterations = iterations_;
        p_.structure_module = sm_;
        p_.msa = host(T_ > 0 ? msa_clusters_.clone() : msa_);
        p_.msa_first_row = host(prev_row_);
        p_.pair = host(pair_);
        p_.single = host(single_);
        p_.timings = clock_.timings(use_templates_);
        return std::move(p_);
    }

private:
    Tensor feat(const char* name, int r) const { return to_f32(f_.at(name).select(0, r)); }

    // Iteration r's activations and masks, empty; its residue types and indices.
    void inputs(int r) {
        const Device d = place_.model_dev;
        msa_ = Tensor::empty({S_ + T_, N_, cfg_.c_m}, DType::F32, d);
        msa_clusters_ = msa_.slice(0, 0, S_);
        pair_ = Tensor::empty({N_, N_, cfg_.c_z}, use_templates_ ? DType::F32 : act_, d);
        aatype_ = to_int64(f_.at("aatype").select(0, r));
        residue_index_ = to_int64(f_.at("residue_index").select(0, r));
        if (multimer_)
            chains_ = {to_int64(f_.at("asym_id").select(0, r)), to_int64(f_.at("entity_id").select(0, r)),
                       to_int64(f_.at("sym_id").select(0, r))};
        seq_mask_ = feat("seq_mask", r);
        extra_mask_ = feat("extra_msa_mask", r).to(d);
        msa_mask_.slice(0, 0, S_).copy_from(feat("msa_mask", r));
        Tensor pm = Tensor::empty({N_, N_});
        for (int64_t i = 0; i < N_; ++i)
            for (int64_t j = 0; j < N_; ++j) pm.f32()[i * N_ + j] = seq_mask_.f32()[i] * seq_mask_.f32()[j];
        pair_mask_.copy_from(pm);
    }

    // The input and recycling embedders (AF2 Algorithms 3 and 32); without templates, the extra-MSA embedder.
    void embed(int r) {
        Context& mc = place_.rest();
        const Device d = place_.model_dev;
        input_embedder_forward(place_.input, feat("target_feat", r).to(d), residue_index_, feat("msa_feat", r).to(d),
                               msa_clusters_, pair_, mc, multimer_ ? &chains_ : nullptr);
        mc.ws.trim();  // each embedder's blocks start from an empty arena (planned one at a time)
        Tensor row0 = msa_.select(0, 0);
        recycling_embedder_forward(place_.recycle, prev_row_, prev_pair_, prev_pb_, row0, pair_, mc);
        mc.ws.trim();
        prev_pair_ = Tensor();  // kept iterations hold their own (host) copy of it
        if (use_templates_) return;
        // Without templates the MSA is final here: its copy out overlaps the extra-MSA embedder.
        if (opt_.offload_msa) parked_msa_.park(msa_);
        embed_extra_msa(r);
    }

    void embed_extra_msa(int r) {
        extra_ = Tensor::empty({E_, N_, cfg_.c_e}, act_, place_.model_dev);
        Tensor has_deletion, deletion_value;
        if (multimer_) {  // AF-Multimer's features hold the deletion counts: the two channels are made here
            const Tensor counts = feat("extra_deletion_matrix", r).contiguous();  // may be the features' own memory
            has_deletion = Tensor::empty(counts.shape());
            deletion_value = Tensor::empty(counts.shape());
            for (int64_t i = 0; i < counts.numel(); ++i) {
                const float d = counts.f32()[i];
                has_deletion.f32()[i] = std::clamp(d, 0.f, 1.f);
                deletion_value.f32()[i] = std::atan(d / 3.f) * (2.f / std::numbers::pi_v<float>);
            }
        } else {
            has_deletion = feat("extra_has_deletion", r);
            deletion_value = feat("extra_deletion_value", r);
        }
        extra_msa_embedder_forward(place_.extra, to_int64(f_.at("extra_msa").select(0, r)), has_deletion,
                                   deletion_value, extra_, place_.rest());
    }

    // The template angle rows appended to the MSA and the template embedding added to the pair (AF2
    // Algorithms 16 and 17).
    void embed_templates(int r) {
        if (multimer_) return embed_multimer_templates(r);
        Context& mc = place_.rest();
        const TemplateIterationInputs ti = template_iteration_inputs(f_, r);
        const TemplatePairInputs& in = ti.pair;
        const TorsionAngles& ta = ti.torsions;
        // The angle rows first: they complete the MSA, whose copy out (offload) then overlaps the template pair
        // stacks. (AF2 appends them after the extra-MSA stack; they depend on neither.)
        const Tensor torsion_mask = ta.mask;
        Tensor angle_feat = template_angle_feat(in.template_aatype, ta.sin_cos, ta.alt_sin_cos, torsion_mask);
        template_rows_ = msa_.slice(0, S_, S_ + T_);
        template_angle_embedder_forward(place_.template_angles, angle_feat.to(place_.model_dev), template_rows_, mc);
        msa_mask_.slice(0, S_, S_ + T_).copy_from(template_msa_mask(torsion_mask));
        template_rows_ = opt_.keep_recycles ? host_copy(template_rows_) : Tensor();  // not a view of msa
        if (opt_.offload_msa) parked_msa_.park(msa_);
        // Into the pair itself, unless the update is kept (the same rounding either way).
        if (opt_.keep_recycles) {
            template_pair_update_ = Tensor::empty({N_, N_, cfg_.c_z}, DType::F32, place_.model_dev);
            template_embedding_forward(place_.templates, in, pair_, pair_mask_, template_pair_update_, false, mc);
            add(pair_, template_pair_update_);
            template_pair_update_ = host(template_pair_update_);
        } else {
            template_embedding_forward(place_.templates, in, pair_, pair_mask_, pair_, true, mc);
        }
    }

    // AlphaFold-Multimer's template rows (chis computed from the atoms) and template embedding (golden README,
    // "Template embedder").
    void embed_multimer_templates(int r) {
        Context& mc = place_.rest();
        MultimerTemplateInputs in{to_int64(f_.at("template_aatype").select(0, r)),
                                  feat("template_all_atom_positions", r),
                                  feat("template_all_atom_mask", r),
                                  Tensor(),
                                  Tensor(),
                                  chains_.asym_id};
        const PseudoBeta pb =
            pseudo_beta_with_mask(in.template_aatype, in.template_all_atom_positions, in.template_all_atom_mask);
        in.template_pseudo_beta = pb.positions;
        in.template_pseudo_beta_mask = pb.mask;
        const TorsionAngles ta =
            atom37_to_torsion_angles(in.template_aatype, in.template_all_atom_positions, in.template_all_atom_mask);
        const Tensor rows_feat = multimer_template_single_feat(in.template_aatype, ta.sin_cos, ta.mask);
        template_rows_ = msa_.slice(0, S_, S_ + T_);
        template_angle_embedder_forward(place_.template_angles, rows_feat.to(place_.model_dev), template_rows_, mc);
        template_mask_rows_ = ta.mask.select(2, 3).contiguous();  // the chi1 mask
        msa_mask_.slice(0, S_, S_ + T_).copy_from(template_mask_rows_);
        template_rows_ = opt_.keep_recycles ? host_copy(template_rows_) : Tensor();  // not a view of msa
        if (opt_.offload_msa) parked_msa_.park(msa_);
        if (opt_.keep_recycles) {
            template_pair_update_ = Tensor::empty({N_, N_, cfg_.c_z}, DType::F32, place_.model_dev);
            multimer_template_embedding_forward(place_.multimer_templates, in, pair_, pair_mask_, template_pair_update_,
                                                false, mc);
            add(pair_, template_pair_update_);
            template_pair_update_ = host(template_pair_update_);
        } else {
            multimer_template_embedding_forward(place_.multimer_templates, in, pair_, pair_mask_, pair_, true, mc);
        }
    }

    // The extra-MSA stack, then the Evoformer stack (AF2 Algorithms 18 and 6).
    void trunk(int r) {
        // Each phase starts from an empty arena: pages an earlier phase touched would otherwise stay resident
        // under this one's peak, which the planner counts phase by phase (model/model_plan.h).
        pair_ = to_dtype(pair_, act_);  // template models: the float32 pair rounded (otherwise itself)
        if (parked_msa_.parked()) {     // its device memory goes back for the extra-MSA stack
            msa_ = msa_clusters_ = Tensor();
            parked_msa_.release();
        }
        place_.end_phase();
        clock_.run("extra_msa_stack", r,
                   [&] { place_.run_stack(place_.extra_stack, extra_, pair_, extra_mask_, pair_mask_); });
        extra_ = Tensor();  // the extra-MSA activations are not needed past their stack
        if (parked_msa_.parked()) msa_ = parked_msa_.restore();  // the next park replaces parked_msa_
        msa_clusters_ = Tensor();  // a view: it would keep the float32 MSA alive under its bfloat16 copy
        msa_ = to_dtype(msa_, act_);
        clock_.run("evoformer", r, [&] { place_.run_stack(place_.evo_stack, msa_, pair_, msa_mask_, pair_mask_); });
        place_.end_phase();
        msa_ = to_dtype(msa_, DType::F32);
        msa_clusters_ = msa_.slice(0, 0, S_);
    }

    // The single representation and the structure module (AF2 Algorithm 20).
    void structure_module(int) {
        single_ = Tensor::empty({N_, cfg_.c_s}, DType::F32, place_.model_dev);
        linear(msa_.select(0, 0), place_.single.single_activations.weights, place_.single.single_activations.bias,
               single_);
        StructureModuleConfig sc;
        sc.num_layers = cfg_.structure_module_layers;
        sc.multimer = multimer_;
        if (multimer_) sc.position_scale = 20.f;
        sm_ = structure_module_forward(place_.structure_module, sc, single_, pair_, aatype_, seq_mask_, place_.rest());
    }

    // What the next iteration's recycling embedder reads, and the iteration's record when they are kept.
    void recycle(int r) {
        // Early stop: at or below the tolerance, the next iteration is the last (the change is also recorded).
        const double diff = opt_.recycle_early_stop_tolerance >= 0 || opt_.keep_recycles || opt_.on_iteration
                                ? ca_distance_change(sm_.final_atom_positions)
                                : 0.0;
        if (opt_.recycle_early_stop_tolerance >= 0 && diff <= opt_.recycle_early_stop_tolerance)
            iterations_ = std::min(iterations_, r + 2);
        last_diff_ = diff;
        if (opt_.on_iteration && r < iterations_ - 1) {
            HeadsOutputs h;
            clock_.run("heads", r, [&] {
                h = heads_forward(place_.heads, msa_clusters_, pair_, single_, sm_.act.to(place_.model_dev),
                                  place_.rest(), false, multimer_ ? chains_.asym_id : Tensor());
            });
            opt_.on_iteration(r, diff, h);
        }
        prev_row_ = msa_.select(0, 0).clone();
        prev_pair_ = r + 1 < iterations_ ? pair_ : Tensor();  // the next embedders build a new pair
        prev_pb_ = pseudo_beta(aatype_, sm_.final_atom_positions);
        if (opt_.keep_recycles) {
            IterationRecord rec;
            rec.msa = host_copy(msa_clusters_);
            rec.msa_first_row = host(prev_row_);
            rec.pair = host(pair_);
            rec.single = host(single_);
            rec.structure_module = sm_.act;
            rec.final_atom_positions = sm_.final_atom_positions;
            rec.final_atom14_positions = sm_.final_atom14_positions;
            rec.traj = sm_.traj;
            rec.pseudo_beta = prev_pb_;
            rec.early_stop_diff = diff;
            if (use_templates_) {
                rec.template_pair_embedding = host(template_pair_update_);
                rec.template_angle_embedding = template_rows_;
                rec.template_mask_rows = template_mask_rows_;
            }
            p_.recycles.push_back(rec);
        }
        if (r == iterations_ - 1) {
            p_.aatype = aatype_;
            p_.residue_index = residue_index_;
            if (multimer_) {
                p_.asym_id = chains_.asym_id;
                p_.entity_id = chains_.entity_id;
            }
        }
    }

    // AF-Multimer's recycling metric: sqrt(sum m (d - d_prev)^2 / (sum m + 1e-4) + 1e-8) over the Cα distance
    // matrices of this and the previous iteration (zeros before the first), m the pairs of present residues. The
    // previous iteration's Cα positions are kept ([N, 3]); its distances are recomputed pair by pair.
    double ca_distance_change(const Tensor& atom37) {
        const std::vector<double> pos = host_float64(atom37), mask = host_float64(seq_mask_);
        std::vector<double> ca(static_cast<size_t>(N_ * 3));
        for (int64_t i = 0; i < N_; ++i)
            for (int c = 0; c < 3; ++c) ca[i * 3 + c] = pos[(i * 37 + 1) * 3 + c];
        auto dist = [](const std::vector<double>& x, int64_t i, int64_t j) {
            double s = 0;
            for (int c = 0; c < 3; ++c) s += (x[i * 3 + c] - x[j * 3 + c]) * (x[i * 3 + c] - x[j * 3 + c]);
            return std::sqrt(s);
        };
        double num = 0, den = 0;
        for (int64_t i = 0; i < N_; ++i)
            for (int64_t j = 0; j < N_; ++j) {
                const double m = mask[i] * mask[j],
                             d = dist(ca, i, j) - (prev_ca_.empty() ? 0.0 : dist(prev_ca_, i, j));
                num += m * d * d;
                den += m;
            }
        prev_ca_ = std::move(ca);
        double diff = std::sqrt(num / (den + 1e-4) + 1e-8);
        // DAP: every rank must stop at the same iteration (their host arithmetic may round differently), so they
        // take the mean of their values.
        if (place_.dap) {
            const Tensor t = Tensor::full({1}, static_cast<float>(diff)).to(place_.dev);
            opt_.comm->all_reduce_sum(t)->wait();
            diff = static_cast<double>(t.to(Device::CPU).f32()[0]) / opt_.comm->size();
        }
        return diff;
    }

    const ModelConfig& cfg_;
    const FeatureDict& f_;
    const PredictOptions& opt_;
    const int64_t R_, N_, S_, E_;
    const bool multimer_;  // AlphaFold-Multimer: chain ids, its template embedding and structure module, ipTM
    const bool use_templates_;
    const int64_t T_;
    const DType act_;
    int iterations_ = 0;
    Placement place_;
    StageClock clock_;
    Prediction p_;
    Tensor prev_row_, prev_pair_, prev_pb_;              // recycled
    Tensor msa_, msa_clusters_, pair_, extra_, single_;  // this iteration's activations
    Tensor msa_mask_, pair_mask_, extra_mask_;
    Tensor aatype_, residue_index_, seq_mask_;     // host
    Tensor template_pair_update_, template_rows_;  // kept iterations' template embeddings
    Tensor template_mask_rows_;                    // AlphaFold-Multimer's template rows' MSA mask [T, N]
    ChainIds chains_;                              // AlphaFold-Multimer (host)
    std::vector<double> prev_ca_;                  // the previous iteration's Cα positions [N, 3] (early stop)
    double last_diff_ = 0;                         // the last iteration's early-stop distance
    StructureModuleOutputs sm_;
    ParkedTensor parked_msa_;  // opt.offload_msa: the MSA while the extra-MSA stack runs (destroyed first)
};

}  // namespace

Prediction Model::predict(const FeatureDict& features, const PredictOptions& options) const {
    Context ctx;
    return predict(features, options, ctx);
}

Prediction Model::predict(const FeatureDict& f, const PredictOptions& opt, Context& ctx) const {
    validate_features(f, config_, "features");
    PredictionRun run(config_, weights_, f, opt, ctx);
    for (int r = 0; r < run.iterations(); ++r) run.iteration(r);
    return run.finish();
}

}  // namespace axfold
