// PNG images; see png.h.
#include "io/png.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "io/atomic_file.h"
#include "kernels/error.h"

namespace axfold::io {

Image::Image(int w, int h) : width(w), height(h), pixels(static_cast<size_t>(w) * static_cast<size_t>(h)) {
    AXF_CHECK(w > 0 && h > 0 && w <= 65536 && h <= 65536, "image size %d x %d", w, h);
}

void Image::set(int x, int y, Rgb c) {
    if (x >= 0 && y >= 0 && x < width && y < height) pixels[static_cast<size_t>(y) * width + x] = c;
}

void Image::fill_rect(int x0, int y0, int x1, int y1, Rgb c) {
    for (int y = std::max(y0, 0); y < std::min(y1, height); ++y)
        for (int x = std::max(x0, 0); x < std::min(x1, width); ++x) pixels[static_cast<size_t>(y) * width + x] = c;
}

void Image::line(int x0, int y0, int x1, int y1, Rgb c) {
    const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    for (int err = dx + dy;;) {
        set(x0, y0, c);
        if (x0 == x1 && y0 == y1) break;
        const int e2 = 2 * err;
        if (e2 >= dy) {
            err += dy;
            x0 += sx;
        }
        if (e2 <= dx) {
            err += dx;
            y0 += sy;
        }
    }
}

namespace {

void put_u32(std::string& s, uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) s.push_back(static_cast<char>((v >> shift) & 0xff));
}

void chunk(std::string& png, const char* type, const std::string& data) {
    put_u32(png, static_cast<uint32_t>(data.size()));
    const std::string body = std::string(type, 4) + data;
    png += body;
    put_u32(png, static_cast<uint32_t>(
                     crc32(0L, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size()))));
}

}  // namespace

std::string encode_png(const Image& image) {
    std::string raw;
    raw.reserve(static_cast<size_t>(image.height) * (1 + 3 * static_cast<size_t>(image.width)));
    for (int y = 0; y < image.height; ++y) {
        raw.push_back('\0');  // filter: none
        for (int x = 0; x < image.width; ++x) {
            const Rgb& p = image.pixels[static_cast<size_t>(y) * image.width + x];
            raw.push_back(static_cast<char>(p.r));
            raw.push_back(static_cast<char>(p.g));
            raw.push_back(static_cast<char>(p.b));
        }
    }
    uLongf size = compressBound(static_cast<uLong>(raw.size()));
    std::string z(size, '\0');
    AXF_CHECK(compress2(reinterpret_cast<Bytef*>(z.data()), &size, reinterpret_cast<const Bytef*>(raw.data()),
                        static_cast<uLong>(raw.size()), 6) == Z_OK,
              "PNG: zlib compression failed");
    z.resize(size);
    std::string png = "\x89PNG\r\n\x1a\n";
    std::string ihdr;
    put_u32(ihdr, static_cast<uint32_t>(image.width));
    put_u32(ihdr, static_cast<uint32_t>(image.height));
    ihdr += std::string("\x08\x02\x00\x00\x00", 5);  // 8 bits, RGB, deflate, filter 0, no interlace
    chunk(png, "IHDR", ihdr);
    chunk(png, "IDAT", z);
    chunk(png, "IEND", "");
    return png;
}

void write_png(const std::string& path, const Image& image) {
    write_file_atomic(path, encode_png(image));
}

std::string base64(const std::string& bytes) {
    static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    for (size_t i = 0; i < bytes.size(); i += 3) {
        uint32_t v = static_cast<uint8_t>(bytes[i]) << 16;
        if (i + 1 < bytes.size()) v |= static_cast<uint8_t>(bytes[i + 1]) << 8;
        if (i + 2 < bytes.size()) v |= static_cast<uint8_t>(bytes[i + 2]);
        out.push_back(kAlphabet[(v >> 18) & 63]);
        out.push_back(kAlphabet[(v >> 12) & 63]);
        out.push_back(i + 1 < bytes.size() ? kAlphabet[(v >> 6) & 63] : '=');
        out.push_back(i + 2 < bytes.size() ? kAlphabet[v & 63] : '=');
    }
    return out;
}

Rgb plddt_colour(double plddt) {
    if (plddt > 90) return {0, 83, 214};
    if (plddt > 70) return {101, 203, 243};
    if (plddt > 50) return {255, 219, 19};
    return {255, 125, 69};
}

Rgb pae_colour(double pae, double max_pae) {
    const double t = std::clamp(max_pae > 0 ? pae / max_pae : 0.0, 0.0, 1.0);
    auto mix = [&](double a, double b) { return static_cast<uint8_t>(std::lround(a + (b - a) * t)); };
    return {mix(15, 255), mix(104, 255), mix(52, 255)};
}

Rgb identity_colour(double identity) {
    // rainbow_r: red at 1, through yellow, green, cyan to blue/violet at 0 (HSV hue 0..270 degrees).
    const double h = (1.0 - std::clamp(identity, 0.0, 1.0)) * 270.0 / 60.0;
    const double x = 1.0 - std::fabs(std::fmod(h, 2.0) - 1.0);
    double r = 0, g = 0, b = 0;
    switch (static_cast<int>(h)) {
        case 0:
            r = 1, g = x;
            break;
        case 1:
            r = x, g = 1;
            break;
        case 2:
            g = 1, b = x;
            break;
        case 3:
            g = x, b = 1;
            break;
        default:
            r = x, b = 1;
            break;
    }
    return {static_cast<uint8_t>(std::lround(r * 255)), static_cast<uint8_t>(std::lround(g * 255)),
            static_cast<uint8_t>(std::lround(b * 255))};
}

}  // namespace axfold::io
