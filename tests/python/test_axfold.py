"""The Python module `axfold` (python/axfold_module.cpp), run by ctest with the build tree on PYTHONPATH.

The golden `small` set through the Python API within the golden tolerances (as tests/model's C++ test); AlphaFold's
feature dict (the dict pickle.load gives, byte-string arrays included) accepted as is; results that own axfold's
buffers (no copies); errors as ValueError / OSError; a second concurrent predict on one Model refused; a complex
from its chains and alignments with ipTM; the planner; PDB and mmCIF text.
"""
import json
import os
import pickle
import threading
import unittest

import h5py
import numpy as np

import axfold

DATA = os.environ["AXFOLD_TEST_DATA_DIR"]
SMALL = os.path.join(DATA, "golden", "small")
MULTIMER = os.path.join(DATA, "golden", "multimer_small")
REAL = os.path.join(DATA, "realdata")
SHARED_PICKLE = os.path.join(os.environ.get("AXFOLD_SHARED_REALDATA_DIR", ""), "alphafold_feature_dict.pickle")


def read_h5(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f if isinstance(f[k], h5py.Dataset)}


def read_text(path):
    with open(path) as f:
        return f.read()


def small_model():
    cfg = json.loads(read_text(os.path.join(SMALL, "config.json")))
    return axfold.Model.load(os.path.join(SMALL, "params.npz"), "model_3_ptm", structure_module_layers=cfg["sizes_and_seed"]["sm_blocks"])


class GoldenSmall(unittest.TestCase):
    def test_predict_matches_the_golden_outputs(self):
        model = small_model()
        features = read_h5(os.path.join(SMALL, "features.h5"))
        golden = read_h5(os.path.join(SMALL, "outputs.h5"))
        result = model.predict(features)
        # The golden README's bounds: positions 1e-2 A, pLDDT 1e-2, pTM 1e-4, other tensors 1e-3 relative.
        pos = result["structure_module/final_atom_positions"]
        self.assertLess(np.abs(pos - golden["final_atom_positions"]).max(), 1e-2)
        self.assertLess(np.abs(result["plddt"] - golden["plddt"]).max(), 1e-2)
        self.assertLess(abs(float(result["ptm"]) - float(golden["ptm"])), 1e-4)
        pae, gpae = result["predicted_aligned_error"], golden["predicted_aligned_error"]
        self.assertLess(np.abs(pae - gpae).max() / np.abs(gpae).max(), 1e-3)
        self.assertEqual(result["num_recycles"], features["msa_feat"].shape[0] - 1)
        self.assertAlmostEqual(float(result["ranking_confidence"]), float(result["plddt"].mean()), places=4)

    def test_results_own_axfolds_buffers(self):
        result = small_model().predict(read_h5(os.path.join(SMALL, "features.h5")))
        for key in ("plddt", "predicted_aligned_error", "structure_module/final_atom_positions"):
            array = result[key]
            self.assertFalse(array.flags.owndata, key)  # a view of axfold's tensor, kept alive by its base
            self.assertEqual(type(array.base).__name__, "PyCapsule", key)
        self.assertEqual(result["final_atom_positions"].dtype, np.float32)


class Features(unittest.TestCase):
    def test_alphafold_feature_dict_is_accepted_as_is(self):
        # AlphaFold's features.pkl as pickle.load gives it: numpy arrays, byte strings in object arrays.
        if os.path.exists(SHARED_PICKLE):
            with open(SHARED_PICKLE, "rb") as f:
                raw = pickle.load(f)
        else:
            raw = read_h5(os.path.join(REAL, "alphafold_raw_features.h5"))
            for key in ("domain_name", "sequence", "template_domain_names", "template_sequence"):
                if key in raw:
                    raw[key] = np.array([bytes(v) if isinstance(v, bytes) else str(v).encode() for v in raw[key]],
                                        dtype=object)
        processed = axfold.process_features(raw, "model_1_ptm", seed=3, num_recycle=1)
        self.assertEqual(processed["msa_feat"].shape[0], 2)
        self.assertEqual(processed["msa_feat"].shape[2], raw["aatype"].shape[0])
        self.assertEqual(processed["msa_feat"].shape[-1], 49)
        again = axfold.process_features(raw, "model_1_ptm", seed=3, num_recycle=1)
        np.testing.assert_array_equal(processed["msa_feat"], again["msa_feat"])

    def test_make_features_from_text_or_files(self):
        fasta = os.path.join(REAL, "short.fasta")
        aln = os.path.join(REAL, "alignments", "openfold_test")
        from_files = axfold.make_features(fasta, msas=[os.path.join(aln, "uniref90_hits.sto"),
                                                       os.path.join(aln, "bfd_uniclust_hits.a3m"),
                                                       os.path.join(aln, "mgnify_hits.sto")])
        reference = read_h5(os.path.join(REAL, "alphafold_raw_features.h5"))
        np.testing.assert_array_equal(from_files["msa"], reference["msa"])
        np.testing.assert_array_equal(from_files["deletion_matrix_int"], reference["deletion_matrix_int"])
        texts = [read_text(os.path.join(aln, n)) for n in ("uniref90_hits.sto", "bfd_uniclust_hits.a3m",
                                                            "mgnify_hits.sto")]
        from_text = axfold.make_features(read_text(fasta), msas=texts)
        np.testing.assert_array_equal(from_text["msa"], from_files["msa"])
        self.assertEqual(from_text["sequence"].dtype, object)
        self.assertIsInstance(from_text["sequence"][0], bytes)


class Errors(unittest.TestCase):
    def test_bad_input_is_a_value_error_and_files_an_os_error(self):
        with self.assertRaises(OSError) as e:
            axfold.Model.load("/nonexistent/params.npz", "model_3_ptm")
        self.assertIn("/nonexistent/params.npz", str(e.exception))
        with self.assertRaises(ValueError) as e:
            axfold.Model.load(os.path.join(SMALL, "params.npz"), "model_9")
        self.assertIn("model_9", str(e.exception))
        model = small_model()
        with self.assertRaises(ValueError) as e:
            model.predict({"msa": np.zeros((1, 3), np.int32)})
        self.assertIn("aatype", str(e.exception))
        with self.assertRaises(ValueError):
            axfold.make_features("MKV", msas=[">q\nMKA\n"])  # the alignment's query differs

    def test_a_second_concurrent_predict_on_one_model_is_refused(self):
        model = small_model()
        raw = axfold.make_features("MKVLAAGIVALLLAAGCSSEQMKVLAAGIVAL")
        quick = model.predict(raw, num_recycle=0, max_msa_clusters=4, max_extra_msa=4, seed=1)
        self.assertEqual(quick["num_recycles"], 0)
        errors, started = [], threading.Event()

        def first():
            started.set()
            model.predict(raw, num_recycle=3)

        t = threading.Thread(target=first)
        t.start()
        started.wait()
        refused = False
        for _ in range(200):  # until the first call holds the model
            try:
                model.predict(raw, num_recycle=0)
            except RuntimeError as e:
                errors.append(str(e))
                refused = True
                break
            if not t.is_alive():
                break
        t.join()
        self.assertTrue(refused, "the second predict ran while the first held the model")
        self.assertIn("one Model per thread", errors[0])


class Complexes(unittest.TestCase):
    def test_a_complex_from_its_chains_and_alignments(self):
        data = os.path.join(MULTIMER, "data")
        merged = axfold.make_complex_features(os.path.join(data, "chains.fasta"),
                                              msa_dir=os.path.join(data, "alignments"))
        golden = read_h5(os.path.join(data, "merged_features.h5"))
        np.testing.assert_array_equal(merged["msa"], golden["msa"])
        model = axfold.Model.load(os.path.join(MULTIMER, "params.npz"), "model_1_multimer_v3",
                                  structure_module_layers=2)
        self.assertTrue(model.config["multimer"])
        result = model.predict(merged, num_recycle=1)
        self.assertIn("iptm", result)
        self.assertAlmostEqual(float(result["ranking_confidence"]),
                               0.8 * float(result["iptm"]) + 0.2 * float(result["ptm"]), places=5)
        pdb = axfold.to_pdb(result)
        self.assertEqual([l[21] for l in pdb.splitlines() if l.startswith("TER")], ["A", "B", "C"])
        cif = axfold.to_mmcif(result, name="complex")
        self.assertIn("_struct_asym.entity_id", cif)


class Planner(unittest.TestCase):
    def test_plan_fits_the_budget(self):
        small = axfold.plan(2048, max_memory="24G")
        self.assertLessEqual(small["predicted_peak_bytes"], 24 * 2**30)
        self.assertGreater(small["chunk_size"], 0)
        with self.assertRaises(ValueError):
            axfold.plan(4096, max_memory="1G")


if __name__ == "__main__":
    unittest.main()
