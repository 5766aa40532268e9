// A training run (`axfold train`): Adam updates of AlphaFold2 parameters on training examples (training.h's
// HDF5 layout), data parallel x DAP under an MPI launcher, on the host or one GPU per rank, and the run's
// directory:
//   checkpoint-<update>/  params_<model>.npz (AF2's layout: what `axfold predict --params` reads), the moving
//                         average params_<model>_ema.npz and optimizer.h5 (Adam's state and the run's settings),
//                         written under a temporary name, flushed to disk and renamed: complete or absent;
//   training_log.jsonl    one line per update (the replicas' mean losses, learning rate, gradient norm,
//                         seconds per stage, replica 0's example), appended and flushed;
//   validation_log.jsonl  the moving average's lDDT-Ca on held-out examples;
//   gradients-<update>.h5 with save_gradients: gradients/<name> (ModelWeights::visit's names), the gradient
//                         the update applied before clipping, and loss/<term> (to compare runs, e.g. DAP
//                         against one rank: docs/TRAINING.md).
// A resumed run continues bit for bit and refuses other settings unless told; a fresh run refuses a directory
// holding another run unless told to overwrite it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace axfold {

struct TrainerOptions {
    std::string params, model_name = "model_3_ptm", out_dir, resume;
    std::vector<std::string> examples;
    int64_t steps = 1, save_every = 0;  // steps: the update to reach (a resumed run continues to it)
    int64_t warmup_steps = 1000;
    double learning_rate = 1e-3, clip_norm = 0.1;
    int dap = 1, threads = 0, structure_module_layers = 8;
    bool resample = false;                // a fresh MSA sample and masking per update (the example's raw/ features)
    int64_t crop_size = 0;                // > 0: a random contiguous crop of this many residues per update
    bool sample_recycles = false;         // 1..R iterations per update (R: the example's), as AF2 trains
    double ema_decay = 0.999;             // the parameters' moving average (params_<model>_ema.npz); 0 = none
    bool dropout = true;                  // AF2's training dropout (evoformer/dropout.h)
    bool save_gradients = false;          // gradients-<update>.h5: the gradient Adam takes, before clipping
    std::vector<std::string> validate;    // validation examples: lDDT-Ca of the moving average's predictions
    int64_t validate_every = 0;           // every this many updates (and after the last); 0: after the last
    bool overwrite = false;               // replace another run's results in out_dir
    bool allow_changed_settings = false;  // resume with settings other than the checkpoint's
    uint64_t seed = 0;                    // the updates' random streams
    std::string device = "cpu";           // cuda: the training step, the parameters and Adam's state on the GPU
    std::string precision = "fp32";       // fp32, tf32 or bf16 GEMMs (bf16: also bf16 checkpoints)
};

// Trains to update o.steps on every rank of the MPI world; rank 0 writes the run's directory. Returns the last
// checkpoint's path.
std::string train(const TrainerOptions& o);

}  // namespace axfold
