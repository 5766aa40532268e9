#include "training/training.h"

#include <chrono>
#include <cmath>

#include "evoformer/dropout.h"
#include "evoformer/embedders.h"
#include "evoformer/evoformer_dap.h"
#include "evoformer/evoformer_stack.h"
#include "evoformer/template_embedding.h"
#include "io/hdf5_file.h"
#include "kernels/device.h"
#include "structure/all_atom.h"
#include "structure/heads.h"
#include "structure/structure_module.h"
#include "training/optimizer.h"

namespace axfold {

ModelWeights zeros_like_model(const ModelWeights& w) {
    ModelWeights g;
    g.input_embedder = zeros_like_weights(w.input_embedder);
    g.recycling_embedder = zeros_like_weights(w.recycling_embedder);
    g.extra_msa_embedder = zeros_like_weights(w.extra_msa_embedder);
    g.single_activations = zeros_like_weights(w.single_activations);
    for (const auto& b : w.extra_msa_stack.blocks) g.extra_msa_stack.blocks.push_back(zeros_like_weights(b));
    for (const auto& b : w.evoformer.blocks) g.evoformer.blocks.push_back(zeros_like_weights(b));
    g.structure_module = zeros_like_weights(w.structure_module);
    g.heads = zeros_like_weights(w.heads);
    g.has_templates = w.has_templates;
    if (w.has_templates && !w.multimer) {
        g.template_embedding = zeros_like_weights(w.template_embedding);
        g.template_angle_embedder = zeros_like_weights(w.template_angle_embedder);
    }
    return g;
}

TrainingGroups split_training_groups(Comm& world, int dap_size) {
    AXF_CHECK(dap_size >= 1 && world.size() % dap_size == 0,
              "training: %d ranks do not split into DAP groups of %d (the rank count must be a multiple)", world.size(),
              dap_size);
    TrainingGroups g;
    g.replica = world.rank() / dap_size;
    g.num_replicas = world.size() / dap_size;
    g.dap = world.split(g.replica, world.rank());
    g.replicas = world.split(world.rank() % dap_size, world.rank());
    return g;
}

TrainingExample load_training_example(const std::string& path) {
    const io::Hdf5File f(path);
    TrainingExample ex;
    ex.path = path;
    for (const char* group : {"features", "batch"}) {
        AXF_CHECK(f.has(group), "%s: no '%s' group (a training example holds features/ and batch/)", path.c_str(),
                  group);
        FeatureDict& d = std::string(group) == "features" ? ex.features : ex.batch;
        const std::string prefix = std::string(group) + "/";
        for (const std::string& k : f.list(group)) {
            if (!f.has_dataset(k)) continue;
            d[k.substr(k.find(prefix) + prefix.size())] = f.read(k);
        }
    }
    std::string missing;
    for (const std::string& name : loss_batch_features())
        if (!ex.batch.count(name)) missing += (missing.empty() ? "" : ", ") + name;
    AXF_CHECK(missing.empty(), "%s: the ground truth (batch/) lacks %s", path.c_str(), missing.c_str());
    return ex;
}

void validate_training_example(const TrainingExample& ex, const ModelConfig& config) {
    validate_features(ex.features, config, ex.path + " (features/)");
    const int64_t N = ex.features.at("aatype").size(1);
    // Ground truth with a leading residue axis; the MSA targets [S, N].
    static const char* const per_residue[] = {
        "aatype", "all_atom_mask", "all_atom_positions", "atom14_alt_gt_exists", "atom14_alt_gt_positions",
        "atom14_atom_exists", "atom14_atom_is_ambiguous", "atom14_gt_exists", "atom14_gt_positions",
        "atom37_atom_exists", "backbone_rigid_mask", "backbone_rigid_tensor", "chi_angles_sin_cos", "chi_mask",
        "pseudo_beta", "pseudo_beta_mask", "residue_index", "rigidgroups_alt_gt_frames", "rigidgroups_gt_exists",
        "rigidgroups_gt_frames", "seq_mask"};
    for (const char* k : per_residue) {
        const Tensor& t = ex.batch.at(k);
        AXF_CHECK(t.dim() >= 1 && t.size(0) == N, "%s: batch/%s is %s, expected %lld residues (as features/aatype)",
                  ex.path.c_str(), k, t.desc().c_str(), (long long)N);
    }
    for (const char* k : {"true_msa", "bert_mask"}) {
        const Tensor& t = ex.batch.at(k);
        AXF_CHECK(t.dim() == 2 && t.size(1) == N, "%s: batch/%s is %s, expected [S, %lld]", ex.path.c_str(), k,
                  t.desc().c_str(), (long long)N);
    }
    for (const auto& [k, t] : ex.batch) {
        if (t.dtype() != DType::F32 && t.dtype() != DType::F64) continue;
        for (double v : host_float64(t))
            AXF_CHECK(std::isfinite(v), "%s: batch/%s holds a non-finite value (%g)", ex.path.c_str(), k.c_str(), v);
    }
}

RecycledInputs recycled_inputs(const Model& model, const FeatureDict& features, Context& ctx, Comm* comm) {
    const ModelConfig& cfg = model.config();
    const int64_t R = features.at("aatype").size(0), N = features.at("aatype").size(1);
    RecycledInputs in{Tensor::zeros({N, cfg.c_m}), Tensor::zeros({N, N, cfg.c_z}), Tensor::zeros({N, 3})};
    if (R > 1) {
        PredictOptions po;
        po.num_recycle = static_cast<int>(R) - 2;
        po.keep_recycles = false;
        po.keep_pair_logits = false;
        po.comm = comm;
        const Prediction p = model.predict(features, po, ctx);
        in.msa_first_row = p.msa_first_row;
        in.pair = p.pair;
        in.pseudo_beta =
            pseudo_beta(to_int64(features.at("aatype").select(0, R - 2)), p.structure_module.final_atom_positions);
    }
    return in;
}

TrainingStep training_step(const Model& model, const FeatureDict& features, const FeatureDict& batch,
                           const LossConfig& config, Context& ctx, const RecycledInputs* recycled, Comm* comm,
                           uint64_t dropout_seed, Comm* replicas) {
    const ModelConfig& cfg = model.config();
    // On a GPU the model runs there: its weights (copies, unless the caller's already live there), the
    // representations, masks and features; what stays on the host is what prediction keeps there (residue types
    // and indices, template inputs, the structure module's frame algebra) and the losses, on the last iteration's
    // outputs (the heads' logits come down, their gradients go up).
    const Device dev = ctx.device;
    const ModelWeights w = weights_on(model.weights(), dev);
    AXF_CHECK(!w.multimer, "training step: AlphaFold-Multimer models do not train yet");
    validate_features(features, cfg, "training features");
    const int64_t R = features.at("aatype").size(0), N = features.at("aatype").size(1),
                  S = features.at("msa_feat").size(1), E = features.at("extra_msa").size(1);
    const int64_t Cm = cfg.c_m, Cz = cfg.c_z, Ce = cfg.c_e;
    const int64_t r = R - 1;  // the differentiated iteration
    auto feat = [&](const char* name) { return to_f32(features.at(name).select(0, r)).contiguous(); };
    auto on_dev = [&](const Tensor& t) { return t.to(dev); };
    // Template models (model_1, model_2): the template embedding is added to the pair after the recycling
    // embedder, and T template angle rows follow the S cluster rows of the MSA (AF2 Algorithms 2, 16, 17).
    const bool templates =
        w.has_templates && features.count("template_aatype") && features.at("template_aatype").size(1) > 0;
    const int64_t T = templates ? features.at("template_aatype").size(1) : 0;

    // Seconds per stage (TrainingStep::timings).
    std::vector<std::pair<std::string, double>> timings;
    auto last = std::chrono::steady_clock::now();
    auto mark = [&](const char* stage) {
        if (dev != Device::CPU) device_synchronize();  // the stage's kernels, not just their launches
        const auto now = std::chrono::steady_clock::now();
        timings.emplace_back(stage, std::chrono::duration<double>(now - last).count());
        last = now;
    };
    // The recycled inputs: the earlier iterations as in prediction (no gradient flows into them).
    const RecycledInputs rec = recycled ? *recycled : recycled_inputs(model, features, ctx, comm);
    mark("recycling");
    // DAP: the two stacks' forward and backward distributed over the ranks (evoformer_dap.h); the rest runs
    // on the gathered representations on every rank, which all end with the same loss and gradients.
    const bool dap = comm && comm->size() > 1;
    // Training dropout in the two stacks (evoformer/dropout.h), one key each.
    TrunkConstants k_extra, k_evo, k_templates;
    k_extra.dropout_key = derive_dropout_key(dropout_seed, 1);
    k_evo.dropout_key = derive_dropout_key(dropout_seed, 2);
    k_templates.dropout_key = derive_dropout_key(dropout_seed, 4);
    auto stack_forward = [&](const EvoformerStackWeights& st, Tensor& m, Tensor& z, const Tensor& mm, const Tensor& pm,
                             const TrunkConstants& k) {
        if (dap)
            dap_evoformer_stack_forward(st, *comm, m, z, mm, pm, ctx, k);
        else
            evoformer_stack_forward(st, m, z, mm, pm, ctx, k);
    };
    // Data parallel: the gradient's average over the replicas, started part by part as the backward finishes
    // each (the heads, structure module and single projection; each stack block; the embedders last).
    std::unique_ptr<ReplicaAverage> average;
    if (replicas && replicas->size() > 1) average = std::make_unique<ReplicaAverage>(*replicas);
    auto stack_backward = [&](const EvoformerStackWeights& st, const Tensor& m, const Tensor& z, const Tensor& mm,
                              const Tensor& pm, Tensor& dm, Tensor& dz, std::vector<EvoformerBlockWeights>& grads,
                              const TrunkConstants& k) {
        BlockGradientDone done;
        if (average) done = [&](size_t b) { average->start(grads[b]); };
        if (dap)
            dap_evoformer_stack_backward(st, *comm, m, z, mm, pm, dm, dz, grads, ctx, k, done);
        else
            evoformer_stack_backward(st, m, z, mm, pm, dm, dz, grads, ctx, k, done);
    };
    // (float32: under bfloat16 activations the earlier iterations' prediction hands back a bfloat16 pair)
    const Tensor prev_row = to_dtype(on_dev(rec.msa_first_row), DType::F32),
                 prev_pair = to_dtype(on_dev(rec.pair), DType::F32), &prev_pb = rec.pseudo_beta;
    WorkspaceScope scope(ctx.ws);  // (after prediction, which trims the arena between its phases)

    // The last iteration, keeping each stage's inputs.
    const Tensor aatype = to_int64(features.at("aatype").select(0, r));
    const Tensor residue_index = to_int64(features.at("residue_index").select(0, r));
    const Tensor seq_mask = feat("seq_mask"), extra_mask = on_dev(feat("extra_msa_mask"));
    Tensor msa_mask = Tensor::empty({S + T, N}, DType::F32, dev);
    msa_mask.slice(0, 0, S).copy_from(feat("msa_mask"));
    Tensor pair_mask_host = Tensor::empty({N, N});
    for (int64_t i = 0; i < N; ++i)
        for (int64_t j = 0; j < N; ++j) pair_mask_host.f32()[i * N + j] = seq_mask.f32()[i] * seq_mask.f32()[j];
    const Tensor pair_mask = on_dev(pair_mask_host);
    const Tensor target_feat = on_dev(feat("target_feat")), msa_feat = on_dev(feat("msa_feat"));
    Tensor msa = Tensor::empty({S + T, N, Cm}, DType::F32, dev), pair = Tensor::empty({N, N, Cz}, DType::F32, dev);
    Tensor clusters = msa.slice(0, 0, S);  // what the masked-MSA head reads
    input_embedder_forward(w.input_embedder, target_feat, residue_index, msa_feat, clusters, pair, ctx);
    Tensor row0 = msa.select(0, 0);
    recycling_embedder_forward(w.recycling_embedder, prev_row, prev_pair, prev_pb, row0, pair, ctx);
    TemplatePairInputs tin;
    Tensor pair_t, angle_feat;  // the template embedding's query (the pair before it); the angle rows' features
    if (templates) {
        const TemplateIterationInputs ti = template_iteration_inputs(features, r);
        tin = ti.pair;
        const TorsionAngles& ta = ti.torsions;
        angle_feat = on_dev(template_angle_feat(tin.template_aatype, ta.sin_cos, ta.alt_sin_cos, ta.mask));
        Tensor rows = msa.slice(0, S, S + T);
        template_angle_embedder_forward(w.template_angle_embedder, angle_feat, rows, ctx);
        msa_mask.slice(0, S, S + T).copy_from(template_msa_mask(ta.mask));
        pair_t = pair.clone();
        template_embedding_forward(w.template_embedding, tin, pair_t, pair_mask, pair, true, ctx, k_templates);
    }
    const Tensor extra_msa = features.at("extra_msa").select(0, r), has_del = feat("extra_has_deletion"),
                 del_val = feat("extra_deletion_value");
    Tensor extra = Tensor::empty({E, N, Ce}, DType::F32, dev);
    extra_msa_embedder_forward(w.extra_msa_embedder, extra_msa, has_del, del_val, extra, ctx);
    const Tensor extra0 = extra.clone(), pair0 = pair.clone();
    mark("embedders");
    stack_forward(w.extra_msa_stack, extra, pair, extra_mask, pair_mask, k_extra);
    mark("extra_msa_stack");
    const Tensor msa1 = msa.clone(), pair1 = pair.clone();
    stack_forward(w.evoformer, msa, pair, msa_mask, pair_mask, k_evo);
    mark("evoformer");
    Tensor single = Tensor::empty({N, cfg.c_s}, DType::F32, dev);
    linear(msa.select(0, 0), w.single_activations.single_activations.weights,
           w.single_activations.single_activations.bias, single);
    StructureModuleConfig sc;
    sc.num_layers = cfg.structure_module_layers;
    sc.dropout_key = derive_dropout_key(dropout_seed, 3);
    const StructureModuleOutputs sm =
        structure_module_forward(w.structure_module, sc, single, pair, aatype, seq_mask, ctx);
    mark("structure_module");
    const Tensor sm_act = on_dev(sm.act);  // (the structure module leaves its last activations on the host)
    const HeadsOutputs h = heads_forward(w.heads, clusters, pair, single, sm_act, ctx, true);
    mark("heads");

    TrainingStep step;
    std::map<std::string, Tensor>& o = step.outputs;
    auto host = [](const Tensor& t) { return t.to(Device::CPU); };
    o["distogram_logits"] = host(h.distogram_logits);
    o["masked_msa_logits"] = host(h.masked_msa_logits);
    o["experimentally_resolved_logits"] = host(h.experimentally_resolved_logits);
    o["lddt_logits"] = host(h.predicted_lddt_logits);
    if (h.has_pae) o["tm_logits"] = host(h.predicted_aligned_error_logits);
    o["final_atom_positions"] = host(sm.final_atom_positions);
    o["final_affine_tensor"] = host(sm.traj.select(0, sm.traj.size(0) - 1).contiguous());
    o["sm/frames"] = host(sm.traj);
    o["sm/sidechain_frames"] = host(sm.sidechain_frames);
    o["sm/positions"] = host(sm.atom14_positions);
    o["sm/angles"] = host(sm.angles_sin_cos);
    o["sm/unnormalized_angles"] = host(sm.unnormalized_angles_sin_cos);
    step.loss = alphafold_loss(o, batch, config, true);
    mark("loss");
    const std::map<std::string, Tensor>& d = step.loss.gradients;
    auto f32 = [&](const Tensor& t) { return on_dev(to_f32(t).contiguous()); };

    // Backward: the heads, the structure module, the single projection, the stacks, the embedders.
    step.grads = zeros_like_model(w);
    ModelWeights& g = step.grads;
    HeadsCotangents hc;
    hc.distogram_logits = f32(d.at("distogram_logits"));
    hc.masked_msa_logits = f32(d.at("masked_msa_logits"));
    hc.experimentally_resolved_logits = f32(d.at("experimentally_resolved_logits"));
    hc.predicted_lddt_logits = f32(d.at("lddt_logits"));
    if (h.has_pae) hc.predicted_aligned_error_logits = f32(d.at("tm_logits"));
    Tensor dmsa = Tensor::zeros(msa.shape(), DType::F32, dev), dpair = Tensor::empty(pair.shape(), DType::F32, dev),
           dsingle = Tensor::empty(single.shape(), DType::F32, dev),
           dsm_act = Tensor::empty(sm.act.shape(), DType::F32, dev);
    Tensor dclusters = dmsa.slice(0, 0, S);
    heads_backward(w.heads, clusters, pair, single, sm_act, hc, dclusters, dpair, dsingle, dsm_act, g.heads, ctx);
    mark("heads_backward");
    StructureModuleCotangents smc;
    smc.traj = f32(d.at("sm/frames"));
    smc.sidechain_frames = f32(d.at("sm/sidechain_frames"));
    smc.atom14_positions = f32(d.at("sm/positions"));
    smc.angles_sin_cos = f32(d.at("sm/angles"));
    smc.unnormalized_angles_sin_cos = f32(d.at("sm/unnormalized_angles"));
    smc.act = dsm_act;
    // (final_atom_positions and final_affine_tensor carry no gradient: AF2's pLDDT and TM targets are detached)
    Tensor ds2 = Tensor::empty(single.shape(), DType::F32, dev), dz2 = Tensor::empty(pair.shape(), DType::F32, dev);
    structure_module_backward(w.structure_module, sc, single, pair, aatype, seq_mask, smc, ds2, dz2, g.structure_module,
                              ctx);
    add(dsingle, ds2);
    add(dpair, dz2);
    mark("structure_module_backward");
    Tensor drow = Tensor::empty({N, Cm}, DType::F32, dev);
    linear_backward(msa.select(0, 0).contiguous(), w.single_activations.single_activations.weights, dsingle, drow,
                    false, g.single_activations.single_activations.weights,
                    g.single_activations.single_activations.bias, ctx.ws);
    add(dmsa.select(0, 0), drow);
    if (average) {
        average->start(g.heads);
        average->start(g.structure_module);
        average->start(g.single_activations);
    }
    std::vector<EvoformerBlockWeights> ge(g.evoformer.blocks.begin(), g.evoformer.blocks.end());
    stack_backward(w.evoformer, msa1, pair1, msa_mask, pair_mask, dmsa, dpair, ge, k_evo);
    g.evoformer.blocks = ge;
    mark("evoformer_backward");
    Tensor dextra = Tensor::zeros(extra0.shape(), DType::F32, dev);
    std::vector<EvoformerBlockWeights> gx(g.extra_msa_stack.blocks.begin(), g.extra_msa_stack.blocks.end());
    stack_backward(w.extra_msa_stack, extra0, pair0, extra_mask, pair_mask, dextra, dpair, gx, k_extra);
    g.extra_msa_stack.blocks = gx;
    mark("extra_msa_stack_backward");
    if (templates) {
        template_angle_embedder_backward(w.template_angle_embedder, angle_feat, dmsa.slice(0, S, S + T),
                                         g.template_angle_embedder, ctx);
        const Tensor dembedding = dpair.clone();  // pair += embedding: its cotangent is the pair's
        template_embedding_backward(w.template_embedding, tin, pair_t, pair_mask, dembedding, dpair,
                                    g.template_embedding, ctx, k_templates);
        mark("templates_backward");
    }
    extra_msa_embedder_backward(w.extra_msa_embedder, extra_msa, has_del, del_val, dextra, Tensor(), Tensor(),
                                g.extra_msa_embedder, ctx);
    recycling_embedder_backward(w.recycling_embedder, prev_row, prev_pair, prev_pb, dmsa.select(0, 0).contiguous(),
                                dpair, Tensor(), Tensor(), g.recycling_embedder, ctx);
    input_embedder_backward(w.input_embedder, target_feat, residue_index, msa_feat, dclusters, dpair, Tensor(),
                            Tensor(), g.input_embedder, ctx);
    mark("embedders_backward");
    if (average) {
        if (w.has_templates) {  // by the model, not the example: every replica starts the same buckets
            average->start(g.template_embedding);
            average->start(g.template_angle_embedder);
        }
        average->start(g.extra_msa_embedder);
        average->start(g.recycling_embedder);
        average->start(g.input_embedder);
        average->finish();
        mark("replica_average");  // what the last parts' all-reduces and the waits left exposed
    }
    step.timings = std::move(timings);
    return step;
}

}  // namespace axfold
