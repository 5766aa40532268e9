// Tests for io/npz: DeepMind-format AlphaFold2 parameter archives (stored and deflated), hand-built
// ZIP64 archives, .npy header variants, write_npz round trips, and corrupt input (errors, never crashes).
#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "io/npz.h"
#include "test_util.h"

namespace axfold::io {
namespace {

namespace fs = std::filesystem;

const std::string kDataDir = AXFOLD_TEST_DATA_DIR;
const std::string kSmallNpz = kDataDir + "/golden/small/params.npz";
const std::string kQueryW =
    "alphafold/alphafold_iteration/evoformer/evoformer_iteration/msa_row_attention_with_pair_bias/attention//query_w";

// The deflate-compressed templates_seed5 parameters (12 MB) are not copied into the project; use them
// where the shared golden data is present.
std::string templates_npz() {
    const char* env = std::getenv("AXFOLD_GOLDEN_DIR");
    for (const std::string& dir :
         {env ? std::string(env) : std::string(), kDataDir + "/golden", std::string(AXFOLD_SHARED_GOLDEN_DIR)}) {
        if (dir.empty()) continue;
        const std::string p = dir + "/templates_seed5/params.npz";
        if (fs::exists(p)) return p;
    }
    return {};
}

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

// Exact equality of shape, dtype and bytes.
::testing::AssertionResult same_tensor(const Tensor& a, const Tensor& b) {
    if (a.shape() != b.shape() || a.dtype() != b.dtype())
        return ::testing::AssertionFailure() << a.desc() << " vs " << b.desc();
    const Tensor ca = a.contiguous(), cb = b.contiguous();
    const size_t n = static_cast<size_t>(a.numel()) * dtype_size(a.dtype());
    if (n > 0 && std::memcmp(ca.raw(), cb.raw(), n) != 0) {
        return ::testing::AssertionFailure() << "contents differ for " << a.desc();
    }
    return ::testing::AssertionSuccess();
}

void put16(std::string& s, uint32_t v) {
    s.push_back(static_cast<char>(v & 0xff));
    s.push_back(static_cast<char>((v >> 8) & 0xff));
}
void put32(std::string& s, uint32_t v) {
    put16(s, v & 0xffff);
    put16(s, v >> 16);
}
void put64(std::string& s, uint64_t v) {
    put32(s, static_cast<uint32_t>(v));
    put32(s, static_cast<uint32_t>(v >> 32));
}

// A .npy payload with a given header dict, format version and raw data.
std::string make_npy(const std::string& dict, const std::string& data, int major = 1) {
    std::string h = dict;
    const size_t prefix = major == 1 ? 10 : 12;
    h.append((64 - (prefix + h.size() + 1) % 64) % 64, ' ');
    h.push_back('\n');
    std::string out = std::string("\x93NUMPY", 6);
    out.push_back(static_cast<char>(major));
    out.push_back('\0');
    if (major == 1)
        put16(out, static_cast<uint32_t>(h.size()));
    else
        put32(out, static_cast<uint32_t>(h.size()));
    return out + h + data;
}

std::string deflate_raw(const std::string& in) {
    z_stream zs{};
    EXPECT_EQ(deflateInit2(&zs, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    std::string out(deflateBound(&zs, static_cast<uLong>(in.size())), '\0');
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    zs.avail_in = static_cast<uInt>(in.size());
    zs.next_out = reinterpret_cast<Bytef*>(out.data());
    zs.avail_out = static_cast<uInt>(out.size());
    EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
    out.resize(zs.total_out);
    deflateEnd(&zs);
    return out;
}

// A zip archive written independently of write_npz: deflated entries, optionally with every size and
// offset in ZIP64 form (saturated 32-bit fields, ZIP64 extra fields, ZIP64 end-of-central-directory).
std::string make_zip(const std::vector<std::pair<std::string, std::string>>& entries, bool deflated, bool zip64) {
    std::string out, cd;
    for (const auto& [name, data] : entries) {
        const std::string body = deflated ? deflate_raw(data) : data;
        const uint32_t crc = static_cast<uint32_t>(
            crc32(0, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size())));
        const uint64_t offset = out.size();
        std::string extra_local, extra_cd;
        if (zip64) {
            put16(extra_local, 1);
            put16(extra_local, 16);
            put64(extra_local, data.size());
            put64(extra_local, body.size());
            put16(extra_cd, 1);
            put16(extra_cd, 24);
            put64(extra_cd, data.size());
            put64(extra_cd, body.size());
            put64(extra_cd, offset);
        }
        put32(out, 0x04034b50);
        put16(out, 45);
        put16(out, 0);
        put16(out, deflated ? 8 : 0);
        put32(out, 0);
        put32(out, crc);
        put32(out, zip64 ? 0xffffffffu : static_cast<uint32_t>(body.size()));
        put32(out, zip64 ? 0xffffffffu : static_cast<uint32_t>(data.size()));
        put16(out, static_cast<uint32_t>(name.size()));
        put16(out, static_cast<uint32_t>(extra_local.size()));
        out += name + extra_local + body;

        put32(cd, 0x02014b50);
        put16(cd, 45);
        put16(cd, 45);
        put16(cd, 0);
        put16(cd, deflated ? 8 : 0);
        put32(cd, 0);
        put32(cd, crc);
        put32(cd, zip64 ? 0xffffffffu : static_cast<uint32_t>(body.size()));
        put32(cd, zip64 ? 0xffffffffu : static_cast<uint32_t>(data.size()));
        put16(cd, static_cast<uint32_t>(name.size()));
        put16(cd, static_cast<uint32_t>(extra_cd.size()));
        put16(cd, 0);
        put16(cd, 0);
        put16(cd, 0);
        put32(cd, 0);
        put32(cd, zip64 ? 0xffffffffu : static_cast<uint32_t>(offset));
        cd += name + extra_cd;
    }
    const uint64_t cd_offset = out.size();
    out += cd;
    if (zip64) {
        const uint64_t z64 = out.size();
        put32(out, 0x06064b50);
        put64(out, 44);
        put16(out, 45);
        put16(out, 45);
        put32(out, 0);
        put32(out, 0);
        put64(out, entries.size());
        put64(out, entries.size());
        put64(out, cd.size());
        put64(out, cd_offset);
        put32(out, 0x07064b50);
        put32(out, 0);
        put64(out, z64);
        put32(out, 1);
    }
    put32(out, 0x06054b50);
    put16(out, 0);
    put16(out, 0);
    put16(out, zip64 ? 0xffff : static_cast<uint32_t>(entries.size()));
    put16(out, zip64 ? 0xffff : static_cast<uint32_t>(entries.size()));
    put32(out, zip64 ? 0xffffffffu : static_cast<uint32_t>(cd.size()));
    put32(out, zip64 ? 0xffffffffu : static_cast<uint32_t>(cd_offset));
    put16(out, 0);
    return out;
}

std::string float_bytes(const std::vector<float>& v) {
    return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

std::vector<float> random_floats(size_t n, std::mt19937& rng) {
    std::normal_distribution<float> d(0.f, 1.f);
    std::vector<float> v(n);
    for (float& x : v) x = d(rng);
    return v;
}

TEST(Npz, ReadsSmallGoldenParams) {
    const auto arrays = read_npz(kSmallNpz);
    EXPECT_EQ(arrays.size(), 267u);
    int64_t scalars = 0;
    for (const auto& [key, t] : arrays) {
        EXPECT_EQ(t.dtype(), DType::F32) << key;
        EXPECT_NE(key.find("//"), std::string::npos) << key;
        EXPECT_EQ(key.find(".npy"), std::string::npos) << key;
        scalars += t.numel();
    }
    EXPECT_EQ(scalars, 84906);  // README: 267 / 84,906
    ASSERT_TRUE(arrays.count(kQueryW));
    EXPECT_EQ(arrays.at(kQueryW).shape(), (Shape{2, 32, 2, 8}));
    const Tensor& ipa = arrays.at(
        "alphafold/alphafold_iteration/structure_module/fold_iteration/invariant_point_attention/output_projection//"
        "weights");
    EXPECT_EQ(ipa.shape(), (Shape{224, 32}));
    // Random weights: not all equal, all finite.
    const float* p = ipa.f32();
    bool varied = false;
    for (int64_t i = 0; i < ipa.numel(); ++i) {
        ASSERT_TRUE(std::isfinite(p[i]));
        varied |= p[i] != p[0];
    }
    EXPECT_TRUE(varied);
}

TEST(Npz, ReadsDeflateCompressedTemplateParams) {
    const std::string path = templates_npz();
    if (path.empty()) GTEST_SKIP() << "templates_seed5/params.npz not present";
    const auto arrays = read_npz(path);
    EXPECT_EQ(arrays.size(), 338u);
    int64_t scalars = 0;
    for (const auto& [key, t] : arrays) {
        ASSERT_EQ(t.dtype(), DType::F32) << key;
        const float* p = t.f32();
        for (int64_t i = 0; i < t.numel(); ++i) ASSERT_TRUE(std::isfinite(p[i])) << key << " [" << i << "]";
        scalars += t.numel();
    }
    EXPECT_EQ(scalars, 6955610);  // README: 338 / 6,955,610
    EXPECT_EQ(arrays.at(kQueryW).shape(), (Shape{2, 256, 8, 32}));
    const std::string pre = "alphafold/alphafold_iteration/evoformer/";
    EXPECT_EQ(arrays.at(pre + "template_single_embedding//weights").shape(), (Shape{57, 256}));
    EXPECT_EQ(arrays.at(pre + "template_embedding/single_template_embedding/embedding2d//weights").shape(),
              (Shape{88, 64}));
    EXPECT_EQ(arrays.at(pre + "template_embedding/attention//query_w").shape(), (Shape{128, 4, 16}));
}

TEST(Npz, WriteReadRoundTripAllDtypes) {
    std::mt19937 rng(random_seed());
    std::map<std::string, Tensor> in;
    in["scope/a//f32"] = Tensor::from_vector({3, 5, 7}, random_floats(105, rng));
    Tensor f64 = Tensor::empty({4, 2}, DType::F64);
    Tensor i32 = Tensor::empty({9}, DType::I32);
    Tensor i64 = Tensor::empty({2, 3}, DType::I64);
    Tensor u8 = Tensor::empty({6, 1}, DType::U8);
    std::uniform_int_distribution<int64_t> id(-(int64_t{1} << 40), int64_t{1} << 40);
    for (int64_t i = 0; i < 8; ++i) f64.data<double>()[i] = std::normal_distribution<double>()(rng);
    for (int64_t i = 0; i < 9; ++i) i32.data<int32_t>()[i] = static_cast<int32_t>(id(rng) >> 12);
    for (int64_t i = 0; i < 6; ++i) i64.data<int64_t>()[i] = id(rng);
    for (int64_t i = 0; i < 6; ++i) u8.data<uint8_t>()[i] = static_cast<uint8_t>(rng());
    in["f64"] = f64;
    in["i32"] = i32;
    in["i64"] = i64;
    in["u8"] = u8;
    in["scalar"] = Tensor::from_vector({}, {3.25f});
    in["empty"] = Tensor::zeros({0, 4});
    Tensor base = Tensor::from_vector({4, 6}, random_floats(24, rng));
    in["transposed"] = base.transpose(0, 1);  // non-contiguous input

    const test::TempDir dir;
    const std::string path = (dir / "round.npz").string();
    write_npz(path, in);
    EXPECT_FALSE(test::has_temporary(path));
    const auto out = read_npz(path);
    ASSERT_EQ(out.size(), in.size());
    for (const auto& [key, t] : in) {
        ASSERT_TRUE(out.count(key)) << key;
        EXPECT_TRUE(same_tensor(out.at(key), t)) << key;
    }
    EXPECT_EQ(out.at("scalar").shape(), Shape{});
    EXPECT_EQ(out.at("transposed").shape(), (Shape{6, 4}));
    EXPECT_EQ(out.at("transposed").at({5, 3}), base.at({3, 5}));
}

TEST(Npz, RewriteOfGoldenParamsIsIdentical) {
    const auto a = read_npz(kSmallNpz);
    const test::TempDir dir;
    write_npz((dir / "copy.npz").string(), a);
    const auto b = read_npz((dir / "copy.npz").string());
    ASSERT_EQ(a.size(), b.size());
    for (const auto& [key, t] : a) EXPECT_TRUE(same_tensor(b.at(key), t)) << key;
}

TEST(Npz, HandBuiltDeflateAndZip64Archives) {
    std::mt19937 rng(random_seed());
    const std::vector<float> v = random_floats(2 * 3 * 4, rng);
    std::vector<float> big(40000);  // longer than the bytes read_npz_shapes inflates
    for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<float>(i % 17) - 8.f;  // compressible
    const std::vector<std::pair<std::string, std::string>> entries = {
        {"x//w.npy", make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4), }", float_bytes(v))},
        {"big.npy", make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (40000,), }", float_bytes(big), 2)},
        {"flag.npy",
         make_npy("{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }", std::string("\1\0\1", 3), 3)},
    };
    const test::TempDir dir;
    for (const bool deflated : {false, true}) {
        for (const bool zip64 : {false, true}) {
            SCOPED_TRACE(::testing::Message() << "deflated " << deflated << " zip64 " << zip64);
            const std::string path = (dir / "hand.npz").string();
            write_bytes(path, make_zip(entries, deflated, zip64));
            const auto arrays = read_npz(path);
            ASSERT_EQ(arrays.size(), 3u);
            EXPECT_TRUE(same_tensor(arrays.at("x//w"), Tensor::from_vector({2, 3, 4}, v)));
            EXPECT_TRUE(same_tensor(arrays.at("big"), Tensor::from_vector({40000}, big)));
            EXPECT_EQ(read_npz_shapes(path),
                      (std::map<std::string, Shape>{{"x//w", {2, 3, 4}}, {"big", {40000}}, {"flag", {3}}}));
            const Tensor& flag = arrays.at("flag");
            ASSERT_EQ(flag.dtype(), DType::U8);
            EXPECT_EQ(flag.shape(), Shape{3});
            EXPECT_EQ(flag.data<uint8_t>()[0], 1);
            EXPECT_EQ(flag.data<uint8_t>()[1], 0);
            EXPECT_EQ(flag.data<uint8_t>()[2], 1);
        }
    }
}

TEST(Npz, NpyHeaderVariants) {
    const std::string d8(8, '\0');
    auto parse = [](const std::string& b) {
        return parse_npy(reinterpret_cast<const unsigned char*>(b.data()), b.size(), "test.npy");
    };
    // Python 2 long dimensions, double quotes, extra keys, no trailing comma.
    Tensor t =
        parse(make_npy("{\"descr\": \"<i4\", \"shape\": (2L,), \"fortran_order\": False, \"x\": [1, (2, 'a')]}", d8));
    EXPECT_EQ(t.dtype(), DType::I32);
    EXPECT_EQ(t.shape(), Shape{2});
    EXPECT_EQ(parse(make_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (), }", d8)).shape(), Shape{});
    EXPECT_EQ(parse(make_npy("{'descr': '<i8', 'fortran_order': False, 'shape': (1, 1), }", d8)).dtype(), DType::I64);

    test::expect_error([&] { parse(make_npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", d8)); },
                       {"test.npy", "Fortran"});
    test::expect_error([&] { parse(make_npy("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", d8)); },
                       {"test.npy", "big-endian"});
    test::expect_error([&] { parse(make_npy("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", d8)); },
                       {"test.npy", "<c8"});
    test::expect_error([&] { parse(make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", d8)); },
                       {"test.npy", "needs 12"});
    test::expect_error([&] { parse(make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,, }", d8)); },
                       {"test.npy", "malformed"});
    test::expect_error([&] { parse(make_npy("{'descr': '<f4', 'shape': (2,), }", d8)); }, {"fortran_order"});
    std::string v4 = make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", d8);
    v4[6] = 4;
    test::expect_error([&] { parse(v4); }, {"version 4.0"});
    test::expect_error([&] { parse("\x93NUMPY\x01"); }, {"bad magic"});
}

TEST(Npz, ErrorsNameTheFile) {
    const test::TempDir dir;
    const std::string real = read_bytes(kSmallNpz);
    ASSERT_GT(real.size(), 1000u);

    const std::string truncated = (dir / "truncated.npz").string();
    write_bytes(truncated, real.substr(0, real.size() / 2));
    test::expect_error([&] { read_npz(truncated); }, {truncated, "truncated"});

    const std::string empty = (dir / "empty.npz").string();
    write_bytes(empty, "");
    test::expect_error([&] { read_npz(empty); }, {empty, "empty"});

    const std::string text = (dir / "text.npz").string();
    write_bytes(text, "this is a text file, not a zip archive of numpy arrays\n");
    test::expect_error([&] { read_npz(text); }, {text, "not a NumPy .npz"});

    test::expect_error([&] { read_npz((dir / "missing.npz").string()); }, {"missing.npz"});
    test::expect_error([&] { read_npz((dir / "").string()); }, {"not a regular file"});

    // One flipped byte inside an array payload: caught by the CRC.
    std::string flipped = real;
    const size_t pos = flipped.find("query_w.npy");
    ASSERT_NE(pos, std::string::npos);
    flipped[pos + 11 + 20 + 128 + 5] ^= 0x40;  // past the name, ZIP64 extra and .npy header
    const std::string crc = (dir / "crc.npz").string();
    write_bytes(crc, flipped);
    test::expect_error([&] { read_npz(crc); }, {crc, "CRC-32", "query_w"});

    // A deflated entry whose compressed stream is cut short.
    std::vector<float> v(4096, 1.5f);
    const std::string npy = make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4096,), }", float_bytes(v));
    std::string zip = make_zip({{"a.npy", npy}}, true, false);
    const uint32_t comp = static_cast<uint32_t>(deflate_raw(npy).size());
    // Shrink the compressed size in both headers by half: the stream then ends early.
    auto patch_size = [&](size_t at) {
        uint32_t half = comp / 2;
        std::memcpy(&zip[at], &half, 4);
    };
    patch_size(18);                  // local header
    patch_size(30 + 5 + comp + 20);  // central header
    const std::string cut = (dir / "cut.npz").string();
    write_bytes(cut, zip);
    test::expect_error([&] { read_npz(cut); }, {cut, "a.npy"});
}

// Truncations and random byte corruptions of real archives must end in axfold::Error or a successful
// read (a flipped byte in padding is harmless), never in a crash or another exception type.
TEST(Npz, CorruptArchivesNeverCrash) {
    std::mt19937 rng(random_seed());
    const test::TempDir dir;
    const std::string stored = read_bytes(kSmallNpz);
    std::vector<float> v = random_floats(3000, rng);
    const std::string deflated = make_zip(
        {{"a//w.npy", make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3000,), }", float_bytes(v))},
         {"b.npy",
          make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (10, 30), }", float_bytes(v).substr(0, 1200))}},
        true, true);
    const std::string path = (dir / "fuzz.npz").string();
    int errors = 0;
    for (const std::string* base : {&stored, &deflated}) {
        std::uniform_int_distribution<size_t> pos(0, base->size() - 1);
        for (int trial = 0; trial < 150; ++trial) {
            std::string bytes = *base;
            if (trial % 3 == 0) {
                bytes.resize(pos(rng));
            } else {
                for (int k = 0; k < 1 + trial % 4; ++k) bytes[pos(rng)] = static_cast<char>(rng());
            }
            write_bytes(path, bytes);
            try {
                read_npz(path);
            } catch (const Error&) {
                ++errors;
            }
        }
    }
    EXPECT_GT(errors, 100);
}

}  // namespace
}  // namespace axfold::io
