// Tests for io/params (ParamStore) and io/hdf5_file: npz and params.h5 agree exactly, round trips,
// helpful errors for missing keys and wrong shapes, and rejection of bad files.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <string>

#include "io/hdf5_file.h"
#include "io/params.h"
#include "test_util.h"

namespace axfold {
namespace {

namespace fs = std::filesystem;

const std::string kDataDir = AXFOLD_TEST_DATA_DIR;
const std::string kSmallNpz = kDataDir + "/golden/small/params.npz";
const std::string kSmallH5 = kDataDir + "/golden/small/params.h5";
const std::string kFeaturesH5 = kDataDir + "/golden/small/features.h5";
const std::string kQueryW =
    "alphafold/alphafold_iteration/evoformer/evoformer_iteration/msa_row_attention_with_pair_bias/attention//query_w";

uint32_t random_seed() {
    const uint32_t s = std::random_device{}();
    std::printf("random seed %u\n", s);
    return s;
}

std::string read_bytes(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
    std::ofstream f(path, std::ios::binary);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

Tensor random_tensor(const Shape& shape, std::mt19937& rng) {
    std::normal_distribution<float> d(0.f, 1.f);
    std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
    for (float& x : v) x = d(rng);
    return Tensor::from_vector(shape, v);
}

::testing::AssertionResult same_tensor(const Tensor& a, const Tensor& b) {
    if (a.shape() != b.shape() || a.dtype() != b.dtype())
        return ::testing::AssertionFailure() << a.desc() << " vs " << b.desc();
    const size_t n = static_cast<size_t>(a.numel()) * dtype_size(a.dtype());
    if (n > 0 && std::memcmp(a.contiguous().raw(), b.contiguous().raw(), n) != 0)
        return ::testing::AssertionFailure() << "contents differ for " << a.desc();
    return ::testing::AssertionSuccess();
}

::testing::AssertionResult same_store(const ParamStore& a, const ParamStore& b) {
    if (a.keys() != b.keys()) return ::testing::AssertionFailure() << "key sets differ";
    for (const std::string& k : a.keys()) {
        auto r = same_tensor(a.get(k), b.get(k));
        if (!r) return r << " (key " << k << ")";
    }
    return ::testing::AssertionSuccess();
}

TEST(ParamStore, LoadsNpz) {
    const ParamStore p = ParamStore::load(kSmallNpz);
    EXPECT_EQ(p.size(), 267u);
    const std::vector<std::string> keys = p.keys();
    EXPECT_EQ(keys.size(), 267u);
    EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));
    EXPECT_EQ(p.num_scalars(), 84906);
    EXPECT_EQ(p.path(), kSmallNpz);
    EXPECT_TRUE(p.has(kQueryW));
    EXPECT_FALSE(p.has(kQueryW + "x"));
    const Tensor& q = p.get(kQueryW, {2, 32, 2, 8});
    EXPECT_EQ(q.dtype(), DType::F32);
    EXPECT_EQ(q.device(), Device::CPU);
    EXPECT_EQ(p.get("alphafold/alphafold_iteration/predicted_aligned_error_head/logits//weights").shape(),
              (Shape{16, 64}));
}

TEST(ParamStore, NpzAndH5AgreeExactly) {
    const ParamStore npz = ParamStore::load(kSmallNpz);
    const ParamStore h5 = ParamStore::load(kSmallH5);
    EXPECT_EQ(h5.size(), 267u);
    EXPECT_TRUE(same_store(npz, h5));
    EXPECT_EQ(h5.get(kQueryW).shape(), (Shape{2, 32, 2, 8}));
    // The shapes alone, without the values, for both formats.
    EXPECT_EQ(read_param_shapes(kSmallNpz), npz.shapes());
    EXPECT_EQ(read_param_shapes(kSmallH5), npz.shapes());
}

TEST(ParamStore, DetectsFormatByContentNotExtension) {
    const test::TempDir dir;
    const std::string h5_named_npz = (dir / "params.npz").string();
    const std::string npz_named_h5 = (dir / "params.h5").string();
    fs::copy_file(kSmallH5, h5_named_npz);
    fs::copy_file(kSmallNpz, npz_named_h5);
    EXPECT_TRUE(same_store(ParamStore::load(h5_named_npz), ParamStore::load(npz_named_h5)));
}

TEST(ParamStore, MissingKeyNamesNearestKeyAndFile) {
    const ParamStore p = ParamStore::load(kSmallNpz);
    const std::string typo =
        "alphafold/alphafold_iteration/evoformer/evoformer_iteration/msa_row_attention_with_pair_bias/attention//"
        "qeury_w";
    test::expect_error([&] { p.get(typo); }, {typo, kSmallNpz, "nearest existing key: '" + kQueryW + "'"});
    const std::string wrong_scope =
        "alphafold/alphafold_iteration/evoformer/evoformer_iteration/msa_row_atention//query_w";
    test::expect_error([&] { p.get(wrong_scope); }, {wrong_scope, "nearest existing key: 'alphafold/"});
}

TEST(ParamStore, WrongShapeNamesBothShapes) {
    const ParamStore p = ParamStore::load(kSmallNpz);
    test::expect_error([&] { p.get(kQueryW, {2, 32, 2, 9}); }, {kQueryW, kSmallNpz, "[2, 32, 2, 8]", "[2, 32, 2, 9]"});
    test::expect_error([&] { p.get(kQueryW, {32, 2, 8}); }, {"[2, 32, 2, 8]", "[32, 2, 8]"});
}

TEST(ParamStore, SaveH5RoundTripMatchesGoldenLayout) {
    const ParamStore npz = ParamStore::load(kSmallNpz);
    const test::TempDir dir;
    const std::string out = (dir / "out.h5").string();
    npz.save_h5(out);
    EXPECT_FALSE(test::has_temporary(out));
    EXPECT_TRUE(same_store(npz, ParamStore::load(out)));

    // Same dataset paths and npz_key attributes as the golden params.h5.
    const io::Hdf5File mine(out), golden(kSmallH5);
    const auto paths = mine.list();
    EXPECT_EQ(paths, golden.list());
    ASSERT_EQ(paths.size(), 267u);
    for (const std::string& p : paths) {
        EXPECT_EQ(mine.read_string_attr(p, "npz_key"), golden.read_string_attr(p, "npz_key")) << p;
        EXPECT_EQ(mine.shape(p), golden.shape(p)) << p;
    }
    EXPECT_TRUE(
        mine.has("alphafold/alphafold_iteration/evoformer/evoformer_iteration/msa_row_attention_with_pair_bias/"
                 "attention/query_w"));
}

TEST(ParamStore, InsertAndSaveNpzRoundTrip) {
    std::mt19937 rng(random_seed());
    ParamStore p;
    p.insert("a/b//weights", random_tensor({3, 4}, rng));
    p.insert("a/b//bias", random_tensor({4}, rng));
    p.insert("c//scale", random_tensor({}, rng));
    Tensor d = Tensor::empty({5}, DType::F64);
    for (int i = 0; i < 5; ++i) d.data<double>()[i] = 0.1 * i - 0.2;
    p.insert("d//f64", d);  // converted to float32
    EXPECT_EQ(p.get("d//f64").dtype(), DType::F32);
    EXPECT_FLOAT_EQ(p.get("d//f64").f32()[4], 0.2f);

    const test::TempDir dir;
    p.save_npz((dir / "p.npz").string());
    p.save_h5((dir / "p.h5").string());
    EXPECT_TRUE(same_store(p, ParamStore::load((dir / "p.npz").string())));
    EXPECT_TRUE(same_store(p, ParamStore::load((dir / "p.h5").string())));
    test::expect_error([&] { p.get("nope"); }, {"nope", "<in-memory parameters>"});
}

TEST(ParamStore, RejectsBadFiles) {
    const test::TempDir dir;
    test::expect_error([&] { ParamStore::load((dir / "absent.npz").string()); }, {"absent.npz", "not found"});

    const std::string empty = (dir / "empty.npz").string();
    write_bytes(empty, "");
    test::expect_error([&] { ParamStore::load(empty); }, {empty, "empty"});

    const std::string text = (dir / "text.h5").string();
    write_bytes(text, "alphafold params? no, just text\n");
    test::expect_error([&] { ParamStore::load(text); }, {text, "neither"});

    const std::string npz = read_bytes(kSmallNpz);
    const std::string half_npz = (dir / "half.npz").string();
    write_bytes(half_npz, npz.substr(0, npz.size() / 2));
    test::expect_error([&] { ParamStore::load(half_npz); }, {half_npz, "truncated"});

    const std::string h5 = read_bytes(kSmallH5);
    const std::string half_h5 = (dir / "half.h5").string();
    write_bytes(half_h5, h5.substr(0, h5.size() / 2));
    test::expect_error([&] { ParamStore::load(half_h5); }, {half_h5});

    // NaN in a parameter is rejected at load, naming the key.
    std::mt19937 rng(random_seed());
    ParamStore p;
    Tensor bad = random_tensor({2, 3}, rng);
    bad.f32()[4] = std::numeric_limits<float>::quiet_NaN();
    p.insert("x//w", bad);
    p.save_npz((dir / "nan.npz").string());
    test::expect_error([&] { ParamStore::load((dir / "nan.npz").string()); }, {"x//w", "not finite", "flat index 4"});
    // So is a huge finite value (3e38 ends in a degenerate rotation deep in the structure module).
    bad.f32()[4] = 3e38f;
    ParamStore huge;
    huge.insert("x//w", bad);
    huge.save_npz((dir / "huge.npz").string());
    test::expect_error([&] { ParamStore::load((dir / "huge.npz").string()); }, {"x//w", "3e+38", "flat index 4"});
}

TEST(ParamStore, SaveH5RejectsCollidingKeys) {
    std::mt19937 rng(random_seed());
    ParamStore p;
    p.insert("a//b", random_tensor({2}, rng));
    p.insert("a/b", random_tensor({2}, rng));
    const test::TempDir dir;
    test::expect_error([&] { p.save_h5((dir / "c.h5").string()); }, {"a//b", "a/b", "c.h5"});
    EXPECT_FALSE(fs::exists((dir / "c.h5").string()));
    EXPECT_FALSE(test::has_temporary((dir / "c.h5").string()));
}

// ---------------------------------------------------------------------------------------------------
// Hdf5File / Hdf5Writer

TEST(Hdf5File, ReadsGoldenFeatures) {
    const io::Hdf5File f(kFeaturesH5);
    ASSERT_TRUE(f.has_dataset("aatype"));
    const Tensor aatype = f.read("aatype");
    EXPECT_EQ(aatype.dtype(), DType::I64);
    ASSERT_EQ(aatype.dim(), 2);  // [R, N_res]
    EXPECT_EQ(aatype.size(1), 12);
    for (int64_t i = 0; i < aatype.numel(); ++i) {
        EXPECT_GE(aatype.data<int64_t>()[i], 0);
        EXPECT_LE(aatype.data<int64_t>()[i], 20);
    }
    const Tensor a32 = f.read_f32("aatype");
    EXPECT_EQ(a32.dtype(), DType::F32);
    EXPECT_EQ(a32.f32()[3], static_cast<float>(aatype.data<int64_t>()[3]));
    const Tensor seq_mask = f.read("/seq_mask");
    EXPECT_EQ(seq_mask.dtype(), DType::F32);

    const auto top = f.list("/", false);
    const auto all = f.list();
    EXPECT_LT(top.size(), all.size());  // a subgroup holds more datasets
    EXPECT_NE(std::find(top.begin(), top.end(), "aatype"), top.end());
    for (const std::string& p : all) EXPECT_TRUE(f.has_dataset(p)) << p;
    EXPECT_FALSE(f.has("no/such/group"));
    EXPECT_FALSE(f.has_dataset("/"));
    EXPECT_TRUE(f.has("/"));
}

TEST(Hdf5File, StringAttributes) {
    const io::Hdf5File f(kSmallH5);
    EXPECT_NE(f.read_string_attr("/", "description").find("one dataset per npz key"), std::string::npos);
    const std::string ds =
        "alphafold/alphafold_iteration/evoformer/evoformer_iteration/msa_row_attention_with_pair_bias/attention/"
        "query_w";
    EXPECT_EQ(f.read_string_attr(ds, "npz_key"), kQueryW);
    test::expect_error([&] { f.read_string_attr(ds, "nope"); }, {"nope", ds, kSmallH5});
    test::expect_error([&] { f.read(ds + "_missing"); }, {ds + "_missing", kSmallH5});
    test::expect_error([&] { f.read("alphafold"); }, {"alphafold", kSmallH5});  // a group, not a dataset
}

// Variable-length strings are read from the file's bytes (io/hdf5_file.cpp): the values h5py reads.
TEST(Hdf5File, VariableLengthStringsAsH5pyReadsThem) {
    const io::Hdf5File f(kDataDir + "/realdata/alphafold_raw_features.h5");
    EXPECT_EQ(f.read_strings("domain_name"), std::vector<std::string>{"query"});
    EXPECT_EQ(f.read_strings("sequence"),
              std::vector<std::string>{"MAAHKGAEHHHKAAEHHEQAAKHHHAAAEHHEKGEHEQAAHHADTAYAHHKHAEEHAAQAAKHDAEHHAPKPH"});
    const std::vector<std::string> names = f.read_strings("template_domain_names");
    ASSERT_EQ(names.size(), 8u);
    EXPECT_EQ(names[0], "3u8v_A");
    EXPECT_EQ(names[2], "2crb_A");
    EXPECT_EQ(f.read_strings("template_sequence")[1].substr(0, 12), "------ISHHAK");
    // After a user block (h5jam, hdf5-tools) heap addresses count from the base address, data offsets from byte 0.
    const test::TempDir dir;
    const std::string ub = (dir / "ub.txt").string(), jammed = (dir / "jammed.h5").string();
    write_bytes(ub, std::string(700, 'x'));
    ASSERT_EQ(std::system(("h5jam -i " + f.path() + " -u " + ub + " -o " + jammed + " > /dev/null").c_str()), 0);
    EXPECT_EQ(io::Hdf5File(jammed).read_strings("template_domain_names"), names);
}

// The byte offset of the first global heap object's size field in an HDF5 file (after "GCOL", version, reserved,
// collection size; then the object's index, reference count and reserved bytes).
size_t first_heap_object_size_offset(const std::string& bytes) {
    const size_t at = bytes.find(std::string("GCOL\x01\0\0\0", 8));
    EXPECT_NE(at, std::string::npos);
    return at + 16 + 8;
}

// libhdf5 1.10 copies a global heap object by the size the file claims; a corrupt one is refused before that,
// naming the file, for datasets (read here) and attributes (read by libhdf5 after the whole file is checked).
TEST(Hdf5File, CorruptGlobalHeapIsAClearError) {
    const test::TempDir dir;
    struct Case {
        std::string source, copy;
        std::function<void(const io::Hdf5File&)> read;
    };
    const std::vector<Case> cases = {
        {kDataDir + "/realdata/alphafold_raw_features.h5", (dir / "raw.h5").string(),
         [](const io::Hdf5File& f) { f.read_strings("sequence"); }},
        {kSmallH5, (dir / "params.h5").string(), [](const io::Hdf5File& f) { f.read_string_attr("/", "description"); }},
    };
    for (const Case& c : cases) {
        std::string bytes = read_bytes(c.source);
        const size_t at = first_heap_object_size_offset(bytes);
        bytes[at + 3] = '\x40';  // an object of 1 GiB in a collection of a few KiB
        write_bytes(c.copy, bytes);
        const io::Hdf5File f(c.copy);
        test::expect_error([&] { c.read(f); }, {c.copy, "corrupt", "global heap"});
    }
}

// The inputs the fuzzers found crashing libhdf5 (tests/fuzz/regressions): each is now an error or reads cleanly;
// under scripts/sanitize.sh any out-of-bounds access fails this test.
TEST(Hdf5File, FuzzRegressionsAreErrors) {
    const std::string dir = std::string(AXFOLD_SOURCE_DIR) + "/tests/fuzz/regressions/";
    int n = 0;
    for (const char* format : {"features", "params"}) {
        for (const auto& e : fs::directory_iterator(dir + format)) {
            ++n;
            const std::string path = e.path().string();
            try {
                const io::Hdf5File f(path);
                for (const std::string& ds : f.list("/", true))
                    if (f.is_string_dataset(ds)) f.read_strings(ds);
                if (std::string(format) == "params") ParamStore::load(path);
            } catch (const Error& err) {
                EXPECT_NE(std::string(err.what()).find(path), std::string::npos) << err.what();
            }
        }
    }
    EXPECT_GE(n, 3);
}

TEST(Hdf5File, WriterRoundTripsDtypesAndCompresses) {
    std::mt19937 rng(random_seed());
    const test::TempDir dir;
    const std::string path = (dir / "w.h5").string();
    const Tensor big = random_tensor({64, 40}, rng);  // >= 1024 elements: compressed
    Tensor f64 = Tensor::empty({3}, DType::F64);
    Tensor i32 = Tensor::empty({2, 2}, DType::I32);
    Tensor i64 = Tensor::empty({}, DType::I64);
    Tensor u8 = Tensor::empty({4}, DType::U8);
    for (int i = 0; i < 3; ++i) f64.data<double>()[i] = std::normal_distribution<double>()(rng);
    for (int i = 0; i < 4; ++i) i32.data<int32_t>()[i] = static_cast<int32_t>(rng()) / 2;
    i64.data<int64_t>()[0] = (int64_t{1} << 45) + static_cast<int64_t>(rng());
    for (int i = 0; i < 4; ++i) u8.data<uint8_t>()[i] = static_cast<uint8_t>(rng());
    {
        io::Hdf5Writer w(path);
        w.write("/g/h/big", big);
        w.write("g/f64", f64);
        w.write("i32", i32);
        w.write("i64", i64);
        w.write("u8", u8);
        w.write("t", big.transpose(0, 1));
        w.write_string_attr("g", "note", "héllo");
        w.write_string_attr("g", "note", "replaced");
        test::expect_error([&] { w.write("i32", i32); }, {"i32", "already exists"});
        test::expect_error([&] { w.write("u8/x", i32); }, {"u8/x"});
        EXPECT_FALSE(fs::exists(path));  // only the temporary exists before commit
        w.commit();
    }
    EXPECT_FALSE(test::has_temporary(path));
    const io::Hdf5File f(path);
    EXPECT_TRUE(same_tensor(f.read("g/h/big"), big));
    EXPECT_TRUE(same_tensor(f.read("g/f64"), f64));
    EXPECT_TRUE(same_tensor(f.read("i32"), i32));
    EXPECT_TRUE(same_tensor(f.read("i64"), i64));
    EXPECT_EQ(f.read("i64").shape(), Shape{});
    EXPECT_TRUE(same_tensor(f.read("u8"), u8));
    EXPECT_TRUE(same_tensor(f.read("t"), big.transpose(0, 1).contiguous()));
    EXPECT_EQ(f.read_f32("g/f64").f32()[2], static_cast<float>(f64.data<double>()[2]));
    EXPECT_EQ(f.read_string_attr("g", "note"), "replaced");
    EXPECT_EQ(f.list(), (std::vector<std::string>{"g/f64", "g/h/big", "i32", "i64", "t", "u8"}));
    EXPECT_EQ(f.list("g", false), (std::vector<std::string>{"g/f64"}));
    // Random floats barely compress, but the shuffle+gzip chunked layout must still be readable and the
    // file must not be absurdly larger than the raw data.
    EXPECT_LT(fs::file_size(path), 2 * 64 * 40 * 4 + 16384u);
}

TEST(Hdf5File, UncommittedWriterLeavesNothing) {
    const test::TempDir dir;
    const std::string path = (dir / "never.h5").string();
    {
        io::Hdf5Writer w(path);
        w.write("x", Tensor::full({3}, 1.5f));
    }
    EXPECT_FALSE(fs::exists(path));
    EXPECT_FALSE(test::has_temporary(path));
}

TEST(Hdf5File, RejectsNonHdf5) {
    const test::TempDir dir;
    test::expect_error([&] { io::Hdf5File f((dir / "none.h5").string()); }, {"none.h5", "not found"});
    const std::string text = (dir / "text.h5").string();
    write_bytes(text, "plain text");
    test::expect_error([&] { io::Hdf5File f(text); }, {text, "not an HDF5 file"});
    test::expect_error([&] { io::Hdf5File f(kSmallNpz); }, {kSmallNpz, "not an HDF5 file"});
}

// A full disk while an HDF5 file is written (simulated by the file-size limit, EFBIG as ENOSPC would be): the
// error names the file, nothing is left at the path or its temporary, and the process then exits normally. (libhdf5
// 1.10 keeps a file whose close failed open and crashed at its shutdown; the writer turns that shutdown off.)
TEST(Hdf5Writer, AFullDiskIsAnErrorAndNoCrashAtExit) {
    const test::TempDir dir;
    const std::string path = (dir / "big.h5").string();
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        const struct rlimit limit = {64 * 1024, 64 * 1024};
        setrlimit(RLIMIT_FSIZE, &limit);
        int code = 0;
        try {
            io::Hdf5Writer w(path);
            std::mt19937 rng(1);
            w.write("x", test::randn({512, 1024}, rng));  // 2 MB that do not compress
            w.commit();
        } catch (const Error& e) {
            code = std::string(e.what()).find(path) != std::string::npos ? 3 : 4;
        }
        std::exit(code);  // runs the exit handlers, as a command does
    }
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status)) << "the writer's process died of signal " << WTERMSIG(status);
    EXPECT_EQ(WEXITSTATUS(status), 3) << "expected an error naming " << path;
    EXPECT_FALSE(fs::exists(path));
    EXPECT_FALSE(test::has_temporary(path));
}

}  // namespace
}  // namespace axfold
