// The AlphaFold2 network end to end (AF2 supplement Algorithm 2), monomer and AlphaFold-Multimer v3: embedders,
// recycling, extra-MSA stack, Evoformer stack, structure module and heads; what `axfold predict` and the public
// APIs (include/axfold/) run. Model::predict is in predict.cpp; its run set-up (device, memory plan) in run.h.
// LIMITATION: AlphaFold-Multimer models predict only (no backward: training_step refuses them).
//
//   axfold::Model model = axfold::Model::load("params_model_3_ptm.npz", "model_3_ptm");
//   axfold::FeatureDict f = axfold::io::read_features_h5("features.h5");
//   axfold::Prediction p = model.predict(f, {});
//
// Features carry a leading iteration axis R (iteration r uses feature[r]), the layout of the golden
// `features.h5` and of AF2's processed features after its per-iteration sampling.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "evoformer/embedders.h"
#include "evoformer/evoformer_stack.h"
#include "evoformer/template_embedding.h"
#include "evoformer/template_embedding_multimer.h"
#include "io/structure_writer.h"
#include "structure/heads.h"
#include "structure/structure_module.h"
#include "structure/torsion_angles.h"

namespace axfold {

class ParamStore;
class Comm;

using FeatureDict = std::map<std::string, Tensor>;

// AF2 presets: the monomer models model_1 .. model_5, with or without _ptm, and AlphaFold-Multimer v3's
// model_1_multimer_v3 .. model_5_multimer_v3 (templates and the PAE head in every one).
struct ModelPreset {
    std::string name;        // "model_3_ptm"
    int index = 0;           // 1..5
    bool ptm = false;        // predicted-aligned-error head
    bool templates = false;  // model_1 and model_2; every multimer model
    bool multimer = false;   // AlphaFold-Multimer v3
    int64_t max_extra_msa = 5120, max_msa_clusters = 512;
    static ModelPreset from_name(const std::string& name);  // throws for unknown names
};

struct ModelConfig {
    ModelPreset preset;
    int64_t evoformer_blocks = 48, extra_msa_blocks = 4;  // from the stacked parameter axes
    int structure_module_layers = 8;
    int64_t c_m = 256, c_z = 128, c_s = 384, c_e = 64;
    int64_t template_pair_blocks = 0, c_t = 0;  // template models (model_1, model_2) only
};

struct ModelWeights {
    InputEmbedderWeights input_embedder;
    RecyclingEmbedderWeights recycling_embedder;
    ExtraMsaEmbedderWeights extra_msa_embedder;
    SingleActivationsWeights single_activations;
    EvoformerStackWeights extra_msa_stack, evoformer;
    StructureModuleWeights structure_module;
    HeadsWeights heads;
    bool has_templates = false;  // model_1, model_2, AlphaFold-Multimer
    TemplateEmbeddingWeights template_embedding;
    TemplateAngleEmbedderWeights template_angle_embedder;
    // AlphaFold-Multimer: its template embedding in place of template_embedding (the stacks, the input embedder
    // and the structure module carry their own multimer flags).
    bool multimer = false;
    MultimerTemplateEmbeddingWeights multimer_template_embedding;
    // Every tensor, in one fixed order, under a name unique within the model (ours, not AF2's keys: the
    // optimizer's state and the gradients of two ModelWeights are matched by it).
    template <class F>
    void visit(F&& f) {
        input_embedder.visit(scoped("input_embedder", f));
        recycling_embedder.visit(scoped("recycling_embedder", f));
        extra_msa_embedder.visit(scoped("extra_msa_embedder", f));
        single_activations.visit(scoped("single_activations", f));
        for (size_t i = 0; i < extra_msa_stack.blocks.size(); ++i)
            extra_msa_stack.blocks[i].visit(scoped("extra_msa_stack/" + std::to_string(i), f));
        for (size_t i = 0; i < evoformer.blocks.size(); ++i)
            evoformer.blocks[i].visit(scoped("evoformer/" + std::to_string(i), f));
        structure_module.visit(scoped("structure_module", f));
        heads.visit(scoped("heads", f));
        if (has_templates) {
            if (multimer)
                multimer_template_embedding.visit(scoped("template_embedding", f));
            else
                template_embedding.visit(scoped("template_embedding", f));
            template_angle_embedder.visit(scoped("template_angle_embedder", f));
        }
    }
};

struct PredictOptions {
    int num_recycle = -1;  // -1: every iteration the features hold (R - 1 recycles)
    // DAP (parallel/comm.h): with a communicator of more than one rank the extra-MSA and Evoformer stacks
    // run distributed over its ranks; everything else runs on the gathered representations on every rank,
    // so every rank ends with the same prediction. nullptr or one rank: the single-rank stacks.
    Comm* comm = nullptr;
    bool keep_recycles = true;
    // Keep the heads' [N, N, 64] tensors (distogram logits, PAE logits and probabilities). Without them the
    // distogram is skipped and the PAE head runs in row blocks: the PAE map and pTM are still computed, and
    // the peak after the trunk drops by up to 3 x N^2 x 256 bytes (`axfold predict` keeps them only with
    // --save-outputs).
    bool keep_pair_logits = true;
    // Runs only the first N blocks of each trunk stack (-1: all). For memory and time measurements at real
    // depths that would take too long in full (`axfold bench model --run-blocks`): every parameter stays
    // loaded and each block frees its workspace, so the peak equals the full run's; the prediction does not.
    int run_blocks = -1;
    // Offload: park the MSA in pinned host memory while the extra-MSA stack runs (the copies overlap compute on a
    // side stream; kernels/offload.h). The GPU memory plan turns it on when it lets a faster chunk size fit
    // (ChunkPlan::offload_msa); on the CPU it only copies (tests).
    bool offload_msa = false;
    // Recycling with early stop (AF-Multimer; ColabFold's --recycle-early-stop-tolerance, for monomers too): after
    // each iteration the root-mean-square change of the Cα distance matrix from the previous iteration's (the
    // first against zeros); at or below this many Å, the next iteration is the last. Negative: every iteration.
    double recycle_early_stop_tolerance = -1;
    // Progress callback: (stage, iteration, seconds of that stage).
    std::function<void(const std::string&, int, double)> progress;
    // Called after every iteration with its early-stop distance (Å, as above) and its heads as if it were the last
    // (pLDDT, pTM, ipTM: ColabFold's per-recycle log). Costs a heads pass per iteration (the PAE in row blocks);
    // the last iteration's heads are the prediction's.
    std::function<void(int iteration, double early_stop_diff, const HeadsOutputs& heads)> on_iteration;
};

// What one iteration hands to the next, and what the golden `recycles/r` groups hold.
struct IterationRecord {
    Tensor msa, msa_first_row, pair, single, structure_module, final_atom_positions, final_atom14_positions, traj,
        pseudo_beta;  // msa: the cluster rows [S, N, c_m]
    // Template models: what the template embedding added to the pair [N, N, c_z], and the template rows
    // appended to the MSA [T, N, c_m] (undefined without templates); AlphaFold-Multimer: the rows' MSA mask [T, N].
    Tensor template_pair_embedding, template_angle_embedding, template_mask_rows;
    double early_stop_diff = 0;  // the Cα distance change after this iteration (Å; PredictOptions)
};

struct Prediction {
    HeadsOutputs heads;
    StructureModuleOutputs structure_module;
    // Representations of the last iteration (msa: cluster rows only). pair is in the trunk's activation dtype
    // (Context::activation_dtype: bfloat16 under --precision bf16), the others float32.
    Tensor msa, msa_first_row, pair, single;
    Tensor aatype, residue_index;  // [N] int64
    Tensor asym_id, entity_id;     // [N] int64, AlphaFold-Multimer (each residue's chain and its sequence)
    std::vector<IterationRecord> recycles;
    std::vector<std::pair<std::string, double>> timings;  // seconds per stage, summed over iterations
    int iterations = 0;                                   // run (with early stop, up to the features' count)
};

class Model {
public:
    // Parameters from an .npz or .h5 file; the preset is checked against them.
    static Model load(const std::string& params_path, const std::string& model_name, int structure_module_layers = 8);
    static Model from_store(std::shared_ptr<const ParamStore> params, const std::string& model_name,
                            int structure_module_layers = 8);

    const ModelConfig& config() const { return config_; }
    const ModelWeights& weights() const { return weights_; }  // views of the parameter store's tensors
    // The same model with its weights copied to `device` (the parameter store stays on the host): a training
    // run's parameters on the GPU, updated there.
    Model on(Device device) const;
    Prediction predict(const FeatureDict& features, const PredictOptions& options, Context& ctx) const;
    Prediction predict(const FeatureDict& features, const PredictOptions& options = {}) const;

private:
    std::shared_ptr<const ParamStore> params_;
    ModelConfig config_;
    ModelWeights weights_;
};

// The configuration of `model_name` with the parameters whose shapes are given (read_param_shapes: no values need
// be loaded): the preset checked against the arrays present (multimer, templates, PAE head) and every array's
// shape against the widths read from the file (model_params.h); errors name `file`.
ModelConfig model_config(const std::map<std::string, Shape>& shapes, const std::string& model_name,
                         int structure_module_layers, const std::string& file);

// Checks that `features` holds every model input with consistent shapes, dtypes and finite values;
// throws naming the feature (and `source`, e.g. the file) with the expected and found shape.
// Template models also read the processed template features (leading axes [R, T]): template_aatype
// (0..21), template_all_atom_positions, template_all_atom_mask, template_pseudo_beta,
// template_pseudo_beta_mask, template_mask, template_torsion_angles_sin_cos,
// template_alt_torsion_angles_sin_cos, template_torsion_angles_mask. They are all present or all absent
// (absent, the model runs without template rows, which is what AF2 computes with every template_mask 0),
// except the three torsion features: without them the model computes them from the template atoms in
// float64, as AF2 does inside its model (structure/torsion_angles.h).
void validate_features(const FeatureDict& features, const ModelConfig& config, const std::string& source);

// A monomer template model's template inputs of iteration r (host float32): the pair embedding's features and
// the template torsions, the features' own or, without them, computed from the template atoms as AF2 does
// inside its model (float64 here: structure/torsion_angles.h). Prediction and the training step read them.
struct TemplateIterationInputs {
    TemplatePairInputs pair;
    TorsionAngles torsions;
};
TemplateIterationInputs template_iteration_inputs(const FeatureDict& features, int64_t r);

}  // namespace axfold

namespace axfold {

// The final outputs of a prediction under the dataset names and layouts of the golden `outputs.h5`
// (final_atom_positions, plddt, ..., representations/*, structure_module/*, recycles/<r>/*): what
// `axfold predict --save-outputs` writes and what the full-model golden test compares.
std::map<std::string, Tensor> prediction_output_tensors(const Prediction& p);
// The predicted structure as the PDB and mmCIF writers take it: atom37 positions and mask, the residues, and
// each residue's pLDDT as the B-factor of its atoms.
io::ProteinStructure prediction_structure(const Prediction& p);
// Sets prot.b_factors [N, 37] to each residue's pLDDT [N] on its present atoms (prot.atom_mask [N, 37]).
void set_plddt_b_factors(io::ProteinStructure& prot, const Tensor& plddt);
// The mean of the per-residue pLDDT (AlphaFold's ranking confidence of monomer models).
double mean_plddt(const Prediction& p);

}  // namespace axfold
