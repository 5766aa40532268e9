// IPA is invariant to a global rigid motion of all frames (AF2 supplement 1.8.2), and it is not
// invariant to a motion of one frame alone (so the test can fail).
#include <gtest/gtest.h>

#include "io/params.h"
#include "structure/all_atom.h"
#include "structure/ipa.h"
#include "test_util.h"

using namespace axfold;

namespace {

Tensor random_unit_quaternions(int64_t n, std::mt19937& rng) {
    Tensor q = test::randn({n, 4}, rng);
    for (int64_t i = 0; i < n; ++i) {
        float s = 0;
        for (int k = 0; k < 4; ++k) s += q.at({i, k}) * q.at({i, k});
        for (int k = 0; k < 4; ++k) q.at({i, k}) /= std::sqrt(s);
    }
    return q;
}

// rot' = G rot, trans' = G trans + t.
void move(const Tensor& g, const float* t, Tensor& rot, Tensor& trans, int64_t only = -1) {
    const int64_t N = rot.size(0);
    for (int64_t n = 0; n < N; ++n) {
        if (only >= 0 && n != only) continue;
        float r[9], x[3];
        for (int a = 0; a < 3; ++a) {
            for (int b = 0; b < 3; ++b) {
                float s = 0;
                for (int k = 0; k < 3; ++k) s += g.at({a, k}) * rot.at({n, k, b});
                r[a * 3 + b] = s;
            }
            x[a] = t[a];
            for (int k = 0; k < 3; ++k) x[a] += g.at({a, k}) * trans.at({n, k});
        }
        for (int a = 0; a < 3; ++a) {
            for (int b = 0; b < 3; ++b) rot.at({n, a, b}) = r[a * 3 + b];
            trans.at({n, a}) = x[a];
        }
    }
}

}  // namespace

TEST(Ipa, InvariantToGlobalRigidMotion) {
    ParamStore ps = ParamStore::load(std::string(AXFOLD_TEST_DATA_DIR) + "/golden/small/params.npz");
    InvariantPointAttentionWeights w;
    bind_params(w, "alphafold/alphafold_iteration/structure_module/fold_iteration/invariant_point_attention",
                [&](const std::string& k) { return ps.get(k); });
    std::mt19937 rng(41);
    const int64_t N = 11, Cs = w.q_scalar.weights.size(0), Cz = w.attention_2d.weights.size(0);
    Tensor s = test::randn({N, Cs}, rng), z = test::randn({N, N, Cz}, rng);
    Tensor mask = Tensor::full({N}, 1.f);
    Tensor rot = quaternion_to_rotation(random_unit_quaternions(N, rng)), trans = test::randn({N, 3}, rng, 3.f);
    Context ctx;
    Tensor out = Tensor::empty({N, Cs});
    invariant_point_attention_forward(w, s, z, rot, trans, mask, out, false, ctx);

    Tensor g = quaternion_to_rotation(random_unit_quaternions(1, rng)).view({3, 3});
    const float t[3] = {4.f, -7.f, 2.5f};
    Tensor rot2 = rot.clone(), trans2 = trans.clone();
    move(g, t, rot2, trans2);
    Tensor out2 = Tensor::empty({N, Cs});
    invariant_point_attention_forward(w, s, z, rot2, trans2, mask, out2, false, ctx);
    auto ref = test::to_f64(out);
    double scale = 0;
    for (double v : ref) scale = std::max(scale, std::fabs(v));
    test::expect_close(out2, ref, 1e-5 * scale, 0, "IPA after a global rigid motion");

    // Moving a single frame changes the output.
    Tensor rot3 = rot.clone(), trans3 = trans.clone();
    move(g, t, rot3, trans3, 3);
    Tensor out3 = Tensor::empty({N, Cs});
    invariant_point_attention_forward(w, s, z, rot3, trans3, mask, out3, false, ctx);
    auto res = test::compare(test::to_f64(out3), ref, 0, 0, "IPA after moving one frame", 0);
    EXPECT_GT(res.max_abs, 1e-3 * scale);
}

TEST(Ipa, ChunkedEqualsUnchunkedAndNormalisesOnTheFly) {
    ParamStore ps = ParamStore::load(std::string(AXFOLD_TEST_DATA_DIR) + "/golden/small/params.npz");
    InvariantPointAttentionWeights w;
    LayerNormWeights pair_norm;
    auto get = [&](const std::string& k) { return ps.get(k); };
    bind_params(w, "alphafold/alphafold_iteration/structure_module/fold_iteration/invariant_point_attention", get);
    bind_params(pair_norm, "alphafold/alphafold_iteration/structure_module/pair_layer_norm", get);
    std::mt19937 rng(43);
    const int64_t N = 13, Cs = w.q_scalar.weights.size(0), Cz = w.attention_2d.weights.size(0);
    Tensor s = test::randn({N, Cs}, rng), z = test::randn({N, N, Cz}, rng, 2.f), mask = test::random_mask({N}, rng);
    mask.at({0}) = 1.f;
    Tensor rot = quaternion_to_rotation(random_unit_quaternions(N, rng)), trans = test::randn({N, 3}, rng, 3.f);
    Context ctx;
    Tensor zn = Tensor::empty(z.shape());
    layer_norm(z, pair_norm.scale, pair_norm.offset, 1e-5f, zn);
    Tensor ref = Tensor::empty({N, Cs});
    invariant_point_attention_forward(w, s, zn, rot, trans, mask, ref, false, ctx);
    auto r = test::to_f64(ref);
    double scale = 0;
    for (double v : r) scale = std::max(scale, std::fabs(v));
    for (int64_t chunk : {0, 1, 4, 100}) {
        Context c;
        c.chunk_size = chunk;
        Tensor out = Tensor::empty({N, Cs});
        invariant_point_attention_forward(w, s, z, rot, trans, mask, out, false, c, 1e5f, 1e-8f, &pair_norm);
        test::expect_close(out, r, 1e-6 * scale, 0, "IPA chunk " + std::to_string(chunk));
    }
}
