/* The C API from C (C99, -Wall -Wextra -pedantic): every call on the bundled small golden set, the error paths,
 * and that a chunked prediction equals the unchunked one. Built in the tree (ctest CApi.smoke_from_c) and,
 * through find_package(axfold) in a C-only project, against an installed copy (CApi.installed_package).
 * Usage: c_api_smoke PARAMS.npz FEATURES.h5 OUT_DIR; exit status 0 when every check passed. */
#include <axfold/axfold.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

#define CHECK(cond, ...)                                          \
    do {                                                          \
        if (!(cond)) {                                            \
            fprintf(stderr, "c_api_smoke:%d: %s: ", __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                         \
            fprintf(stderr, "\n");                                \
            ++failures;                                           \
        }                                                         \
    } while (0)

static long file_size(const char* path) {
    FILE* f = fopen(path, "rb");
    long n;
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fclose(f);
    return n;
}

int main(int argc, char** argv) {
    axf_model* model = NULL;
    axf_model* missing = NULL;
    axf_features* features = NULL;
    axf_prediction* p = NULL;
    axf_prediction* chunked = NULL;
    axf_predict_options opt;
    char path[4096];
    float *plddt, *plddt2, *pos, *mask, *pae;
    float max_pae = 0.f;
    double mean = 0.0, ptm = 0.0, sum = 0.0, max_diff = 0.0;
    int64_t n, i;

    if (argc != 4) {
        fprintf(stderr, "usage: %s PARAMS.npz FEATURES.h5 OUT_DIR\n", argv[0]);
        return 2;
    }
    CHECK(axf_api_version() == AXF_API_VERSION, "library API %d, header %d", axf_api_version(), AXF_API_VERSION);
    CHECK(strlen(axf_version()) > 0, "empty version");

    /* Errors: a missing file names itself; NULL arguments are refused. */
    CHECK(axf_model_load("/nonexistent/params.npz", "model_3_ptm", &missing) == AXF_ERROR, "missing file accepted");
    CHECK(missing == NULL, "handle set on failure");
    CHECK(strstr(axf_last_error(), "/nonexistent/params.npz") != NULL, "message: %s", axf_last_error());
    CHECK(axf_model_load(argv[1], "model_9", &missing) == AXF_ERROR, "unknown model accepted");
    CHECK(strstr(axf_last_error(), "model_9") != NULL, "message: %s", axf_last_error());
    CHECK(axf_model_load(NULL, "model_3_ptm", &missing) == AXF_INVALID_ARGUMENT, "NULL path accepted");
    CHECK(strstr(axf_last_error(), "params_path") != NULL, "message: %s", axf_last_error());

    if (axf_model_load(argv[1], "model_3_ptm", &model) != AXF_OK) {
        fprintf(stderr, "c_api_smoke: axf_model_load: %s\n", axf_last_error());
        return 1;
    }
    CHECK(strcmp(axf_last_error(), "") == 0, "error left after success: %s", axf_last_error());
    if (axf_features_load(argv[2], "model_3_ptm", 0, -1, &features) != AXF_OK) {
        fprintf(stderr, "c_api_smoke: axf_features_load: %s\n", axf_last_error());
        return 1;
    }
    n = axf_features_num_residues(features);
    CHECK(n > 0, "%lld residues", (long long)n);

    axf_predict_options_init(&opt);
    CHECK(opt.struct_size == sizeof(opt) && opt.chunk_size == -1 && strcmp(opt.device, "cpu") == 0, "defaults");
    opt.threads = 1;
    if (axf_predict(model, features, &opt, &p) != AXF_OK) {
        fprintf(stderr, "c_api_smoke: axf_predict: %s\n", axf_last_error());
        return 1;
    }
    CHECK(axf_prediction_num_residues(p) == n, "%lld residues predicted", (long long)axf_prediction_num_residues(p));

    plddt = malloc(sizeof(float) * (size_t)n);
    plddt2 = malloc(sizeof(float) * (size_t)n);
    pos = malloc(sizeof(float) * (size_t)n * 37 * 3);
    mask = malloc(sizeof(float) * (size_t)n * 37);
    pae = malloc(sizeof(float) * (size_t)(n * n));
    CHECK(axf_prediction_plddt(p, plddt) == AXF_OK, "%s", axf_last_error());
    for (i = 0; i < n; ++i) {
        CHECK(plddt[i] >= 0.f && plddt[i] <= 100.f, "pLDDT[%lld] = %g", (long long)i, plddt[i]);
        sum += plddt[i];
    }
    CHECK(axf_prediction_mean_plddt(p, &mean) == AXF_OK, "%s", axf_last_error());
    CHECK(fabs(mean - sum / (double)n) < 1e-3, "mean pLDDT %g, sum/n %g", mean, sum / (double)n);
    CHECK(axf_prediction_atom37(p, pos, mask) == AXF_OK, "%s", axf_last_error());
    CHECK(mask[1] == 1.f && isfinite(pos[3]), "CA of residue 0: mask %g, x %g", mask[1], pos[3]);
    CHECK(axf_prediction_atom37(p, NULL, mask) == AXF_OK, "positions NULL refused");
    CHECK(axf_prediction_has_pae(p) == 1, "model_3_ptm without PAE");
    CHECK(axf_prediction_pae(p, pae, &max_pae) == AXF_OK, "%s", axf_last_error());
    CHECK(fabs(max_pae - 31.75f) < 1e-4f && pae[1] >= 0.f && pae[1] <= max_pae, "max PAE %g, pae[0][1] %g", max_pae,
          pae[1]);
    CHECK(axf_prediction_ptm(p, &ptm) == AXF_OK && ptm > 0.0 && ptm <= 1.0, "pTM %g", ptm);
    CHECK(axf_prediction_plddt(p, NULL) == AXF_INVALID_ARGUMENT, "NULL buffer accepted");
    CHECK(axf_prediction_plddt(NULL, plddt) == AXF_INVALID_ARGUMENT, "NULL prediction accepted");

    snprintf(path, sizeof path, "%s/c_api.pdb", argv[3]);
    CHECK(axf_prediction_write_pdb(p, path) == AXF_OK, "%s", axf_last_error());
    CHECK(file_size(path) > 1000, "%s: %ld bytes", path, file_size(path));
    snprintf(path, sizeof path, "%s/c_api.cif", argv[3]);
    CHECK(axf_prediction_write_mmcif(p, path) == AXF_OK, "%s", axf_last_error());
    CHECK(file_size(path) > 1000, "%s: %ld bytes", path, file_size(path));
    CHECK(axf_prediction_write_pdb(p, "/nonexistent/dir/x.pdb") == AXF_ERROR, "write to a missing directory");
    CHECK(strstr(axf_last_error(), "/nonexistent/dir") != NULL, "message: %s", axf_last_error());

    /* Chunked (3 rows per chunk) equals unchunked; a struct from an older caller cannot be shorter than v1. */
    opt.chunk_size = 3;
    CHECK(axf_predict(model, features, &opt, &chunked) == AXF_OK, "%s", axf_last_error());
    CHECK(axf_prediction_plddt(chunked, plddt2) == AXF_OK, "%s", axf_last_error());
    for (i = 0; i < n; ++i)
        if (fabs(plddt2[i] - plddt[i]) > max_diff) max_diff = fabs(plddt2[i] - plddt[i]);
    CHECK(max_diff < 1e-2, "chunked pLDDT differs by %g", max_diff);
    axf_prediction_free(chunked);
    chunked = NULL;
    opt.struct_size = 8;
    CHECK(axf_predict(model, features, &opt, &chunked) == AXF_INVALID_ARGUMENT, "short options accepted");
    opt.struct_size = sizeof(opt);
    opt.device = "tpu";
    CHECK(axf_predict(model, features, &opt, &chunked) == AXF_ERROR && chunked == NULL, "device tpu accepted");
    CHECK(strstr(axf_last_error(), "tpu") != NULL, "message: %s", axf_last_error());

    free(plddt);
    free(plddt2);
    free(pos);
    free(mask);
    free(pae);
    axf_prediction_free(chunked);
    axf_prediction_free(p);
    axf_features_free(features);
    axf_model_free(model);
    axf_model_free(NULL);
    if (failures == 0) printf("c_api_smoke: every check passed (%lld residues, mean pLDDT %.2f, pTM %.4f)\n", (long long)n, mean, ptm);
    return failures == 0 ? 0 : 1;
}
