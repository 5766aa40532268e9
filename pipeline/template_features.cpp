#include "pipeline/template_features.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <vector>

#include "structure/torsion_angles.h"

namespace axfold::pipeline {

namespace {

Tensor host_f32(const Tensor& t, const char* what) {
    AXF_CHECK(t.dtype() == DType::F32, "%s must be float32, got %s", what, t.desc().c_str());
    return t.to(Device::CPU).contiguous();
}

}  // namespace

int hhblits_to_af2_aatype(int hhblits_index) {
    static const char kHhblits[] = "ACDEFGHIKLMNPQRSTVWYX-";
    static const char kAf2[] = "ARNDCQEGHILKMFPSTWYVX-";
    AXF_CHECK(hhblits_index >= 0 && hhblits_index < 22, "HHblits amino-acid index %d is outside 0..21", hhblits_index);
    return static_cast<int>(std::strchr(kAf2, kHhblits[hhblits_index]) - kAf2);
}

std::map<std::string, Tensor> make_template_features(const std::map<std::string, Tensor>& raw, int64_t N,
                                                     int64_t max_templates) {
    AXF_CHECK(max_templates >= 0 && N > 0, "make_template_features: %lld residues, max_templates %lld", (long long)N,
              (long long)max_templates);
    const int64_t T = max_templates;
    std::map<std::string, Tensor> out;
    out["template_aatype"] = Tensor::zeros({T, N}, DType::I64);
    out["template_all_atom_positions"] = Tensor::zeros({T, N, 37, 3});
    out["template_all_atom_mask"] = Tensor::zeros({T, N, 37});
    out["template_sum_probs"] = Tensor::zeros({T, 1});
    out["template_mask"] = Tensor::zeros({T});
    auto it = raw.find("template_aatype");
    const int64_t T0 = it == raw.end() ? 0 : it->second.size(0);
    if (T0 > 0) {
        const Tensor aa1h = host_f32(it->second, "template_aatype");
        AXF_CHECK(aa1h.dim() == 3 && aa1h.size(1) == N && aa1h.size(2) == 22,
                  "raw template_aatype %s, expected a one-hot [templates, %lld, 22]", aa1h.desc().c_str(),
                  (long long)N);
        auto find_any = [&](std::initializer_list<const char*> names) -> const Tensor& {
            for (const char* n : names) {
                auto f = raw.find(n);
                if (f != raw.end()) return f->second;
            }
            AXF_FAIL("raw template features lack %s", *names.begin());
        };
        const Tensor pos = host_f32(find_any({"template_all_atom_positions"}), "template_all_atom_positions");
        const Tensor msk =
            host_f32(find_any({"template_all_atom_masks", "template_all_atom_mask"}), "template_all_atom_masks");
        AXF_CHECK(pos.shape() == Shape({T0, N, 37, 3}) && msk.shape() == Shape({T0, N, 37}),
                  "raw template_all_atom_positions %s / masks %s, expected [%lld, %lld, 37, 3] / [%lld, %lld, 37]",
                  pos.desc().c_str(), msk.desc().c_str(), (long long)T0, (long long)N, (long long)T0, (long long)N);
        std::vector<float> probs(static_cast<size_t>(T0), 0.f);
        auto sp = raw.find("template_sum_probs");
        if (sp != raw.end()) {
            const Tensor p = host_f32(sp->second, "template_sum_probs");
            AXF_CHECK(p.numel() == T0, "raw template_sum_probs %s for %lld templates", p.desc().c_str(), (long long)T0);
            for (int64_t t = 0; t < T0; ++t) probs[t] = p.f32()[t];
        }
        std::vector<int64_t> order(static_cast<size_t>(T0));
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return probs[a] > probs[b]; });
        for (int64_t t = 0; t < std::min(T, T0); ++t) {
            const int64_t s = order[t];
            for (int64_t i = 0; i < N; ++i) {
                const float* row = aa1h.f32() + (s * N + i) * 22;
                const int hh = static_cast<int>(std::max_element(row, row + 22) - row);  // first maximum (tf.argmax)
                out["template_aatype"].data<int64_t>()[t * N + i] = hhblits_to_af2_aatype(hh);
            }
            out["template_all_atom_positions"].select(0, t).copy_from(pos.select(0, s));
            out["template_all_atom_mask"].select(0, t).copy_from(msk.select(0, s));
            out["template_sum_probs"].f32()[t] = probs[s];
            out["template_mask"].f32()[t] = 1.f;
        }
    }
    PseudoBeta pb = pseudo_beta_with_mask(out["template_aatype"], out["template_all_atom_positions"],
                                          out["template_all_atom_mask"]);
    out["template_pseudo_beta"] = pb.positions;
    out["template_pseudo_beta_mask"] = pb.mask;
    TorsionAngles ta = atom37_to_torsion_angles(out["template_aatype"], out["template_all_atom_positions"],
                                                out["template_all_atom_mask"]);
    out["template_torsion_angles_sin_cos"] = ta.sin_cos;
    out["template_alt_torsion_angles_sin_cos"] = ta.alt_sin_cos;
    out["template_torsion_angles_mask"] = ta.mask;
    return out;
}

}  // namespace axfold::pipeline
