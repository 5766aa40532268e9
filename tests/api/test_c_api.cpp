// The C API against the C++ API it wraps: the same prediction to the bit (pLDDT, atom positions, PAE, pTM,
// the PDB text), raw features through the same transforms, FASTA input, and its error reporting (a status
// and a message naming the file, never an exception through the C boundary).
#include <axfold/axfold.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/features.h"
#include "io/hdf5_file.h"
#include "model/model.h"
#include "pipeline/raw_features.h"
#include "pipeline/transforms.h"
#include "test_util.h"

using namespace axfold;
namespace fs = std::filesystem;

namespace {
const std::string kSmall = std::string(AXFOLD_TEST_DATA_DIR) + "/golden/small";

}  // namespace

TEST(CApi, PredictionEqualsTheCppApi) {
    axf_model* m = nullptr;
    axf_features* f = nullptr;
    axf_prediction* p = nullptr;
    ASSERT_EQ(axf_model_load((kSmall + "/params.npz").c_str(), "model_3_ptm", &m), AXF_OK) << axf_last_error();
    ASSERT_EQ(axf_features_load((kSmall + "/features.h5").c_str(), "model_3_ptm", 0, -1, &f), AXF_OK)
        << axf_last_error();
    axf_predict_options o;
    axf_predict_options_init(&o);
    ASSERT_EQ(axf_predict(m, f, &o, &p), AXF_OK) << axf_last_error();

    const Model model = Model::load(kSmall + "/params.npz", "model_3_ptm");
    const Prediction ref = model.predict(io::read_features_h5(kSmall + "/features.h5"));
    const int64_t N = ref.heads.plddt.numel();
    ASSERT_EQ(axf_prediction_num_residues(p), N);
    std::vector<float> plddt(N), pos(N * 37 * 3), mask(N * 37), pae(N * N);
    ASSERT_EQ(axf_prediction_plddt(p, plddt.data()), AXF_OK);
    ASSERT_EQ(axf_prediction_atom37(p, pos.data(), mask.data()), AXF_OK);
    float max_pae = 0;
    ASSERT_EQ(axf_prediction_pae(p, pae.data(), &max_pae), AXF_OK);
    double ptm = 0, mean = 0;
    ASSERT_EQ(axf_prediction_ptm(p, &ptm), AXF_OK);
    ASSERT_EQ(axf_prediction_mean_plddt(p, &mean), AXF_OK);
    EXPECT_EQ(std::memcmp(plddt.data(), ref.heads.plddt.f32(), sizeof(float) * N), 0);
    EXPECT_EQ(std::memcmp(pos.data(), ref.structure_module.final_atom_positions.f32(), sizeof(float) * N * 37 * 3), 0);
    EXPECT_EQ(std::memcmp(mask.data(), ref.structure_module.final_atom_mask.f32(), sizeof(float) * N * 37), 0);
    EXPECT_EQ(std::memcmp(pae.data(), ref.heads.predicted_aligned_error.f32(), sizeof(float) * N * N), 0);
    EXPECT_EQ(max_pae, ref.heads.max_predicted_aligned_error);
    EXPECT_EQ(ptm, ref.heads.ptm);
    EXPECT_EQ(mean, mean_plddt(ref));
    // The PDB text is what `axfold predict` writes for the same prediction.
    const test::TempDir dir;
    ASSERT_EQ(axf_prediction_write_pdb(p, (dir / "c.pdb").c_str()), AXF_OK) << axf_last_error();
    EXPECT_EQ(test::read_text((dir / "c.pdb").string()), io::to_pdb(prediction_structure(ref)));
    axf_prediction_free(p);
    axf_features_free(f);
    axf_model_free(m);
}

// Raw features (features.pkl layout) go through the model's transforms with the given seed and recycles, as
// `axfold features --processed` does; FASTA with alignments builds them first.
TEST(CApi, RawFeaturesAndFastaGoThroughTheTransforms) {
    const std::string raw_path = std::string(AXFOLD_TEST_DATA_DIR) + "/realdata/alphafold_raw_features.h5";
    if (!fs::exists(raw_path)) GTEST_SKIP() << raw_path << " missing";
    axf_features* f = nullptr;
    ASSERT_EQ(axf_features_load(raw_path.c_str(), "model_3_ptm", 5, 1, &f), AXF_OK) << axf_last_error();
    pipeline::TransformConfig c = pipeline::TransformConfig::for_model("model_3_ptm");
    c.seed = 5;
    c.num_iterations = 2;
    const FeatureDict want = pipeline::process_features(pipeline::read_raw_features_h5(raw_path), c);
    EXPECT_EQ(axf_features_num_residues(f), want.at("aatype").size(1));
    axf_features_free(f);

    const std::string fasta = std::string(AXFOLD_TEST_DATA_DIR) + "/realdata/short.fasta";
    if (!fs::exists(fasta)) GTEST_SKIP() << fasta << " missing";
    ASSERT_EQ(axf_features_from_fasta(fasta.c_str(), nullptr, 0, "model_3_ptm", 0, 0, &f), AXF_OK) << axf_last_error();
    EXPECT_EQ(axf_features_num_residues(f), 73);
    axf_features_free(f);
    const char* msas[] = {"/nonexistent/hits.a3m"};
    EXPECT_EQ(axf_features_from_fasta(fasta.c_str(), msas, 1, "model_3_ptm", 0, 0, &f), AXF_ERROR);
    EXPECT_NE(std::string(axf_last_error()).find("/nonexistent/hits.a3m"), std::string::npos) << axf_last_error();
    EXPECT_EQ(f, nullptr);
}

// Callers without files: features from arrays in memory (here the golden processed features) and from FASTA / A3M
// text predict exactly what the same features from files do.
TEST(CApi, FeaturesFromArraysAndTextEqualFeaturesFromFiles) {
    const std::string path = kSmall + "/features.h5";
    axf_model* m = nullptr;
    ASSERT_EQ(axf_model_load((kSmall + "/params.npz").c_str(), "model_3_ptm", &m), AXF_OK) << axf_last_error();
    auto plddt_of = [&](axf_features* f) {
        axf_prediction* p = nullptr;
        EXPECT_EQ(axf_predict(m, f, nullptr, &p), AXF_OK) << axf_last_error();
        std::vector<float> v(static_cast<size_t>(axf_prediction_num_residues(p)));
        axf_prediction_plddt(p, v.data());
        axf_prediction_free(p);
        axf_features_free(f);
        return v;
    };
    axf_features* f = nullptr;
    ASSERT_EQ(axf_features_load(path.c_str(), "model_3_ptm", 0, -1, &f), AXF_OK);
    const std::vector<float> from_file = plddt_of(f);

    const io::Hdf5File h5(path);
    std::vector<Tensor> keep;
    std::vector<std::string> names;
    std::vector<std::vector<int64_t>> shapes;
    for (const std::string& k : h5.list("/", false)) {
        Tensor t = h5.read(k);
        if (t.dtype() != DType::F32 && t.dtype() != DType::I64 && t.dtype() != DType::I32) t = host_cast(t, DType::F32);
        keep.push_back(t.contiguous());
        names.push_back(k);
        shapes.emplace_back(t.shape().begin(), t.shape().end());
    }
    std::vector<axf_array> arrays;
    for (size_t i = 0; i < keep.size(); ++i)
        arrays.push_back({names[i].c_str(),
                          keep[i].dtype() == DType::F32   ? AXF_FLOAT32
                          : keep[i].dtype() == DType::I32 ? AXF_INT32
                                                          : AXF_INT64,
                          static_cast<int>(shapes[i].size()), shapes[i].data(), keep[i].raw()});
    ASSERT_EQ(axf_features_from_arrays(arrays.data(), arrays.size(), "model_3_ptm", 0, -1, &f), AXF_OK)
        << axf_last_error();
    EXPECT_EQ(plddt_of(f), from_file);
    arrays[0].dtype = static_cast<axf_dtype>(7);
    EXPECT_EQ(axf_features_from_arrays(arrays.data(), arrays.size(), "model_3_ptm", 0, -1, &f), AXF_ERROR);
    EXPECT_NE(std::string(axf_last_error()).find("dtype 7"), std::string::npos) << axf_last_error();

    // FASTA and A3M as text, as files: the same prediction.
    test::TempDir dir;
    const std::string fasta = ">q\nMKVLAAGIVALLLAAG\n", a3m = ">q\nMKVLAAGIVALLLAAG\n>h\nMKVLAaAGIV-LLLAAG\n";
    std::ofstream((dir / "q.fasta").string()) << fasta;
    std::ofstream((dir / "q.a3m").string()) << a3m;
    const std::string a3m_path = (dir / "q.a3m").string();
    const char* files[] = {a3m_path.c_str()};
    const char* texts[] = {a3m.c_str()};
    ASSERT_EQ(axf_features_from_fasta((dir / "q.fasta").c_str(), files, 1, "model_3_ptm", 2, 0, &f), AXF_OK);
    const std::vector<float> via_files = plddt_of(f);
    ASSERT_EQ(axf_features_from_text(fasta.c_str(), texts, 1, "model_3_ptm", 2, 0, &f), AXF_OK) << axf_last_error();
    EXPECT_EQ(plddt_of(f), via_files);
    axf_model_free(m);
}

// Bad input is a status and a message naming what is wrong; nothing throws through the C boundary.
TEST(CApi, ErrorsAreStatusesWithMessages) {
    axf_model* m = nullptr;
    EXPECT_EQ(axf_model_load((kSmall + "/params.npz").c_str(), "model_1", &m), AXF_ERROR);  // no template params
    EXPECT_NE(std::string(axf_last_error()).find("params.npz"), std::string::npos) << axf_last_error();
    EXPECT_EQ(m, nullptr);
    ASSERT_EQ(axf_model_load((kSmall + "/params.npz").c_str(), "model_3_ptm", &m), AXF_OK);
    EXPECT_STREQ(axf_last_error(), "");
    axf_features* f = nullptr;
    EXPECT_EQ(axf_features_load((kSmall + "/params.npz").c_str(), "model_3_ptm", 0, -1, &f), AXF_ERROR);
    EXPECT_NE(std::string(axf_last_error()).find("params.npz"), std::string::npos) << axf_last_error();
    ASSERT_EQ(axf_features_load((kSmall + "/features.h5").c_str(), "model_3_ptm", 0, -1, &f), AXF_OK);
    axf_prediction* p = nullptr;
    axf_predict_options o;
    axf_predict_options_init(&o);
    o.precision = "fp16";
    EXPECT_EQ(axf_predict(m, f, &o, &p), AXF_ERROR);
    EXPECT_NE(std::string(axf_last_error()).find("fp16"), std::string::npos) << axf_last_error();
    o.precision = "fp32";
    o.max_memory = "1K";
    EXPECT_EQ(axf_predict(m, f, &o, &p), AXF_ERROR);
    EXPECT_NE(std::string(axf_last_error()).find("too small"), std::string::npos) << axf_last_error();
    EXPECT_EQ(p, nullptr);
    EXPECT_EQ(axf_predict(nullptr, f, nullptr, &p), AXF_INVALID_ARGUMENT);
    EXPECT_EQ(axf_prediction_num_residues(nullptr), -1);
    EXPECT_EQ(axf_prediction_has_pae(nullptr), 0);
    axf_features_free(f);
    axf_model_free(m);
}

// A complex through the C API: processed AlphaFold-Multimer features, ipTM and the ranking confidence equal the
// library's (0.8 ipTM + 0.2 pTM), and the PDB has a chain per input chain; a monomer has no ipTM.
TEST(CApi, ComplexesHaveIptmAndChains) {
    const std::string mm = std::string(AXFOLD_TEST_DATA_DIR) + "/golden/multimer_small";
    axf_model* m = nullptr;
    axf_features* f = nullptr;
    axf_prediction* p = nullptr;
    ASSERT_EQ(axf_model_load((mm + "/params.npz").c_str(), "model_1_multimer_v3", &m), AXF_OK) << axf_last_error();
    ASSERT_EQ(axf_features_load((mm + "/features.h5").c_str(), "model_1_multimer_v3", 0, -1, &f), AXF_OK)
        << axf_last_error();
    ASSERT_EQ(axf_predict(m, f, nullptr, &p), AXF_OK) << axf_last_error();
    const Prediction ref =
        Model::load(mm + "/params.npz", "model_1_multimer_v3").predict(io::read_features_h5(mm + "/features.h5"));
    double iptm = 0, ptm = 0, confidence = 0;
    ASSERT_EQ(axf_prediction_iptm(p, &iptm), AXF_OK) << axf_last_error();
    ASSERT_EQ(axf_prediction_ptm(p, &ptm), AXF_OK);
    ASSERT_EQ(axf_prediction_ranking_confidence(p, &confidence), AXF_OK);
    EXPECT_EQ(iptm, ref.heads.iptm);
    EXPECT_EQ(confidence, ref.heads.weighted_ptm_score);
    EXPECT_NEAR(confidence, 0.8 * iptm + 0.2 * ptm, 1e-6);
    test::TempDir dir;
    ASSERT_EQ(axf_prediction_write_pdb(p, (dir / "complex.pdb").c_str()), AXF_OK) << axf_last_error();
    const std::string pdb = test::read_text((dir / "complex.pdb").string());
    EXPECT_NE(pdb.find("TER      72      CYS A   9"), std::string::npos) << pdb.substr(0, 300);
    EXPECT_NE(pdb.find(" C   7"), std::string::npos);
    axf_prediction_free(p);
    axf_features_free(f);

    // The complex's chains and its alignment directory (AlphaFold's msas/ layout) in, features for the model out.
    const std::string fasta = mm + "/data/chains.fasta", msas = mm + "/data/alignments";
    const char* dirs[] = {msas.c_str()};
    ASSERT_EQ(axf_features_from_fasta(fasta.c_str(), dirs, 1, "model_1_multimer_v3", 0, 0, &f), AXF_OK)
        << axf_last_error();
    EXPECT_EQ(axf_features_num_residues(f), 25);
    ASSERT_EQ(axf_predict(m, f, nullptr, &p), AXF_OK) << axf_last_error();
    EXPECT_EQ(axf_prediction_iptm(p, &iptm), AXF_OK);
    EXPECT_GT(iptm, 0.0);
    axf_prediction_free(p);
    axf_features_free(f);
    EXPECT_EQ(axf_features_from_fasta(fasta.c_str(), dirs, 1, "model_3_ptm", 0, 0, &f), AXF_ERROR);
    EXPECT_NE(std::string(axf_last_error()).find("is a complex, but model_3_ptm is a monomer model"), std::string::npos)
        << axf_last_error();
    axf_model_free(m);

    ASSERT_EQ(axf_model_load((kSmall + "/params.npz").c_str(), "model_3_ptm", &m), AXF_OK);
    ASSERT_EQ(axf_features_load((kSmall + "/features.h5").c_str(), "model_3_ptm", 0, 0, &f), AXF_OK);
    ASSERT_EQ(axf_predict(m, f, nullptr, &p), AXF_OK) << axf_last_error();
    EXPECT_EQ(axf_prediction_iptm(p, &iptm), AXF_ERROR);
    EXPECT_NE(std::string(axf_last_error()).find("not an AlphaFold-Multimer model"), std::string::npos);
    ASSERT_EQ(axf_prediction_ranking_confidence(p, &confidence), AXF_OK);
    double mean = 0;
    axf_prediction_mean_plddt(p, &mean);
    EXPECT_EQ(confidence, mean);
    axf_prediction_free(p);
    axf_features_free(f);
    axf_model_free(m);
}
