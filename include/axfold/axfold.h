/*
 * axfold C API: the stable interface of libaxfold for other tools (C, C++, Fortran, Python ctypes, Rust FFI).
 *
 * A model (AlphaFold2 parameters, .npz as published or .h5), features (processed or raw feature HDF5, or a
 * FASTA file with its alignments) and a prediction are opaque handles; results are copied into caller
 * buffers. Every call that can fail returns an axf_status; axf_last_error() then holds a message naming the
 * file, the feature or the argument, and what was expected. Nothing here throws or exits.
 *
 *   axf_model* m; axf_features* f; axf_prediction* p;
 *   if (axf_model_load("params_model_3_ptm.npz", "model_3_ptm", &m) != AXF_OK) puts(axf_last_error());
 *   axf_features_load("features.h5", "model_3_ptm", 0, -1, &f);
 *   axf_predict(m, f, NULL, &p);
 *   float* plddt = malloc(sizeof(float) * axf_prediction_num_residues(p));
 *   axf_prediction_plddt(p, plddt);
 *   axf_prediction_write_pdb(p, "out.pdb");
 *   axf_prediction_free(p); axf_features_free(f); axf_model_free(m);
 *
 * Stability: functions are only added; axf_predict_options only grows at its end, and callers fill in its
 * struct_size (axf_predict_options_init does), so a library built later reads an older caller's struct (the
 * fields it lacks keep their defaults). AXF_API_VERSION changes when something is added.
 *
 * Threads: a handle is used by one thread at a time, and axf_predict calls must not overlap: the CPU thread
 * count and the GEMM precision are process-wide settings that each call sets from its options (and a GPU
 * prediction switches the precision between its parts). Loading models and features may run concurrently.
 */
#ifndef AXFOLD_AXFOLD_H
#define AXFOLD_AXFOLD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(AXFOLD_C_BUILD) && defined(__GNUC__)
#define AXF_API __attribute__((visibility("default")))
#else
#define AXF_API
#endif

#define AXF_API_VERSION                                                                 \
    3 /* 2: ipTM, the ranking confidence; options for activations, offload, early stop; \
         3: features from text and from arrays */

typedef enum axf_status {
    AXF_OK = 0,
    AXF_ERROR = 1,           /* bad input, a file that cannot be read or written, a model that does not fit */
    AXF_INVALID_ARGUMENT = 2 /* a NULL handle or pointer, a buffer the call cannot use */
} axf_status;

typedef struct axf_model axf_model;
typedef struct axf_features axf_features;
typedef struct axf_prediction axf_prediction;

/* The library's version ("0.1.0") and the API version it implements (AXF_API_VERSION of its header). */
AXF_API const char* axf_version(void);
AXF_API int axf_api_version(void);
/* Why this thread's latest call failed ("" after a call that succeeded); valid until its next call. */
AXF_API const char* axf_last_error(void);

/* Parameters of model_name ("model_1" .. "model_5", optionally "_ptm", or "model_1_multimer_v3" ..
 * "model_5_multimer_v3") from an .npz or .h5 file; the parameters must be that model's (templates, PAE head). */
AXF_API axf_status axf_model_load(const char* params_path, const char* model_name, axf_model** model);
AXF_API void axf_model_free(axf_model* model);

/* Features for model_name from an HDF5 file: processed features are used as they are; raw ones (the layout of
 * AlphaFold's features.pkl) go through the model's input transforms with `seed`, for num_recycle + 1
 * iterations (num_recycle < 0: AlphaFold's 3). */
AXF_API axf_status axf_features_load(const char* path, const char* model_name, uint64_t seed, int num_recycle,
                                     axf_features** features);
/* Features from a FASTA file (one sequence) and num_msas alignments (A3M or Stockholm, merged in order:
 * uniref90, BFD/UniRef30, mgnify; none: single-sequence mode), then as above. For an AlphaFold-Multimer model the
 * FASTA is a complex (one record per chain, or ColabFold's A:B) and msa_paths one directory in AlphaFold's msas/
 * layout (DIR/<chain_id>/uniref90_hits.sto, ..., uniprot_hits.sto), one ColabFold complex A3M, or none. */
AXF_API axf_status axf_features_from_fasta(const char* fasta_path, const char* const* msa_paths, size_t num_msas,
                                           const char* model_name, uint64_t seed, int num_recycle,
                                           axf_features** features);
/* The same from text: fasta_text a FASTA record (a multimer model: a complex's records, or A:B), msa_texts A3M or
 * Stockholm text (a multimer model: one ColabFold complex A3M, or none). */
AXF_API axf_status axf_features_from_text(const char* fasta_text, const char* const* msa_texts, size_t num_msas,
                                          const char* model_name, uint64_t seed, int num_recycle,
                                          axf_features** features);
/* One array of AlphaFold's feature dict in the caller's memory (C order; copied by the call). */
typedef enum axf_dtype { AXF_FLOAT32 = 0, AXF_INT32 = 1, AXF_INT64 = 2 } axf_dtype;
typedef struct axf_array {
    const char* name; /* the feature's name: "aatype", "msa", "msa_feat", ... */
    axf_dtype dtype;
    int ndim;
    const int64_t* shape; /* ndim sizes */
    const void* data;
} axf_array;
/* Features from arrays: processed ones (with msa_feat) as they are, raw ones (AlphaFold's features.pkl keys, or a
 * complex's merged features) through model_name's transforms with `seed`, as axf_features_load. */
AXF_API axf_status axf_features_from_arrays(const axf_array* arrays, size_t num_arrays, const char* model_name,
                                            uint64_t seed, int num_recycle, axf_features** features);
AXF_API int64_t axf_features_num_residues(const axf_features* features); /* -1 for NULL or no aatype */
AXF_API void axf_features_free(axf_features* features);

typedef struct axf_predict_options {
    size_t struct_size;     /* sizeof(axf_predict_options) as the caller knows it */
    const char* device;     /* "cpu" (default) or "cuda" */
    const char* precision;  /* GEMMs: "fp32" (default), "tf32" or "bf16" (bf16 also stores activations in bf16) */
    int num_recycle;        /* -1 (default): every iteration the features hold */
    int threads;            /* CPU threads (process-wide; 0, the default: as the process is set, all cores
                               unless an earlier call or the host application set fewer) */
    int64_t chunk_size;     /* rows per chunk; -1 (default): the planner's choice, 0: unchunked */
    const char* max_memory; /* budget the planner fits, e.g. "24G" (the GPU's with "cuda"); NULL: none */
    /* API version 2: */
    const char* activations; /* the trunk's activation storage, "fp32" or "bf16"; NULL: bf16 with bf16 GEMMs */
    const char* offload;     /* with "cuda", park the MSA in host memory: "auto" (default), "on" or "off" */
    double recycle_early_stop_tolerance; /* Å; negative (default): the model's (multimer 0.5, monomers none) */
} axf_predict_options;
/* The defaults. Inline, so the caller's own struct size is what is filled in (a later library reads it). */
static inline void axf_predict_options_init(axf_predict_options* options) {
    if (!options) return;
    options->struct_size = sizeof(axf_predict_options);
    options->device = "cpu";
    options->precision = "fp32";
    options->num_recycle = -1;
    options->threads = 0;
    options->chunk_size = -1;
    options->max_memory = NULL;
    options->activations = NULL;
    options->offload = "auto";
    options->recycle_early_stop_tolerance = -1.0;
}

/* Runs the model on the features (options NULL: the defaults). */
AXF_API axf_status axf_predict(const axf_model* model, const axf_features* features, const axf_predict_options* options,
                               axf_prediction** prediction);

AXF_API int64_t axf_prediction_num_residues(const axf_prediction* prediction); /* -1 for NULL */
/* Per-residue pLDDT [N] (0..100) and its mean. */
AXF_API axf_status axf_prediction_plddt(const axf_prediction* prediction, float* plddt);
AXF_API axf_status axf_prediction_mean_plddt(const axf_prediction* prediction, double* mean_plddt);
/* Atom positions in AlphaFold's atom37 order [N, 37, 3] (Å) and the mask of atoms present [N, 37] (1 or 0);
 * either pointer may be NULL. */
AXF_API axf_status axf_prediction_atom37(const axf_prediction* prediction, float* positions, float* mask);
/* 1 when the model has the predicted-aligned-error head (_ptm models), else 0. */
AXF_API int axf_prediction_has_pae(const axf_prediction* prediction);
/* Predicted aligned error [N, N] (Å) and its maximum, and pTM: AXF_ERROR without the PAE head. */
AXF_API axf_status axf_prediction_pae(const axf_prediction* prediction, float* pae, float* max_pae);
AXF_API axf_status axf_prediction_ptm(const axf_prediction* prediction, double* ptm);
/* AlphaFold-Multimer models (API version 2): ipTM (pTM over the pairs of different chains), AXF_ERROR for a
 * monomer model; the ranking confidence AlphaFold ranks models by: 0.8 ipTM + 0.2 pTM for multimer models, the
 * mean pLDDT for monomers. Features of a complex: processed AlphaFold-Multimer features (axf_features_load). */
AXF_API axf_status axf_prediction_iptm(const axf_prediction* prediction, double* iptm);
AXF_API axf_status axf_prediction_ranking_confidence(const axf_prediction* prediction, double* confidence);
/* The structure as `axfold predict` writes it (pLDDT as B-factors), to a temporary name then renamed. */
AXF_API axf_status axf_prediction_write_pdb(const axf_prediction* prediction, const char* path);
AXF_API axf_status axf_prediction_write_mmcif(const axf_prediction* prediction, const char* path);
AXF_API void axf_prediction_free(axf_prediction* prediction);

#ifdef __cplusplus
}
#endif

#endif /* AXFOLD_AXFOLD_H */
