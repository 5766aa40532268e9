// Training samples: what one update of `axfold train` trains on, from a training example's raw features and
// ground truth (AF2's training pipeline resamples the MSA, its masking and the crop for every update). A
// training example (training/training.h's layout) made by `axfold training-example` keeps, besides the
// fixed sample in features/ and batch/, its raw features under raw/ and the transform settings under
// raw_config/, which read_training_source reads back.
#pragma once

#include <string>

#include "io/hdf5_file.h"
#include "pipeline/transforms.h"

namespace axfold::pipeline {

struct TrainingSample {
    ProcessedFeatures features, batch;
};

// The model features of `raw` (process_features with `config`) and the batch the loss reads: the ground truth
// and, from the last iteration, aatype, residue_index, seq_mask, true_msa and bert_mask; seq_length.
TrainingSample make_training_sample(const RawFeatures& raw, const ProcessedFeatures& ground_truth,
                                    const TransformConfig& config);

// Residues [begin, begin + n): the MSA's columns, the raw templates' residues (axis 1) and every per-residue
// array (residue_index keeps its numbers), seq_length n.
RawFeatures crop_raw_features(const RawFeatures& raw, int64_t begin, int64_t n);
// The ground truth's residues [begin, begin + n): every tensor whose leading axis is the residues (of length
// `num_res`); scalars (resolution, use_clamped_fape) unchanged.
ProcessedFeatures crop_ground_truth(const ProcessedFeatures& ground_truth, int64_t num_res, int64_t begin, int64_t n);

struct TrainingSource {
    std::string path;
    RawFeatures raw;
    ProcessedFeatures ground_truth;  // batch/ less what make_training_sample derives from the features
    TransformConfig config;          // the settings the example was made with, its seed included
};
// Writes raw/ and raw_config/ into an example being written.
void write_training_source(io::Hdf5Writer& out, const RawFeatures& raw, const TransformConfig& config);
// Reads an example's raw/, raw_config/ and batch/; the error names the file when it has no raw/ (an example
// not made by `axfold training-example`).
TrainingSource read_training_source(const std::string& path);

}  // namespace axfold::pipeline
