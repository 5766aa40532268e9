// PNG images (RGB, 8 bits per channel) for the report's plots: the encoder (zlib deflate, CRC-32 per chunk, as the
// PNG specification's IHDR/IDAT/IEND) and a small raster canvas with the plotting the report needs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace axfold::io {

struct Rgb {
    uint8_t r = 255, g = 255, b = 255;
};

// A width x height RGB image, white at first.
struct Image {
    int width = 0, height = 0;
    std::vector<Rgb> pixels;  // row-major, top row first
    Image(int w, int h);
    void set(int x, int y, Rgb c);                          // ignores points outside
    void fill_rect(int x0, int y0, int x1, int y1, Rgb c);  // [x0, x1) x [y0, y1), clipped
    void line(int x0, int y0, int x1, int y1, Rgb c);       // Bresenham, one pixel wide
};

// The PNG file's bytes (colour type 2, no interlace, filter 0 on every row).
std::string encode_png(const Image& image);
// encode_png written atomically.
void write_png(const std::string& path, const Image& image);
// base64 of bytes (for data: URIs in HTML).
std::string base64(const std::string& bytes);

// Colour maps: AlphaFold's pLDDT bands (>90 dark blue, >70 light blue, >50 yellow, else orange); PAE from 0 Å
// (dark green) to max (white), as AlphaFold DB's viewer; identity 0..1 on ColabFold's rainbow_r coverage scale.
Rgb plddt_colour(double plddt);
Rgb pae_colour(double pae, double max_pae);
Rgb identity_colour(double identity);

}  // namespace axfold::io
