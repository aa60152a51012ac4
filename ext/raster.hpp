// Z-buffer triangle rasterizer for mfirrn (private core of mfirrn._raster; call mfirrn.render instead).
//
// Conventions (the same as mfirrn.render and its numpy twin mfirrn.render.rasterize_reference):
//  * vertices: float32 (N, 3) row-major, image pixels x (right), y (down), z (larger = closer).
//  * Integer coordinates are pixel centres: pixel (row i, column j) is sampled at (x, y) = (j, i).
//  * x and y are snapped to a fixed-point grid of 1/256 pixel (floor(v * 256 + 0.5)); coverage is then
//    decided with exact 64-bit integer edge functions, so it is identical to the reference twin.
//  * A pixel centre on a shared edge belongs to exactly one triangle (top-left rule): it is inside when
//    the edge is a "left" edge (interior to its right) or a "top" edge (horizontal, interior below).
//  * Depth test: a fragment replaces the stored one when its depth is strictly larger (float32
//    comparison), so among equal depths the lowest triangle index wins.
//  * Triangles whose signed screen area (x1-x0)(y2-y0)-(y1-y0)(x2-x0) is positive are front faces
//    (normal (v1-v0)x(v2-v0) has z > 0, towards the viewer); zero-area triangles are skipped.
#pragma once

#include <cstdint>

namespace mfirrn {

constexpr int kSubpixelBits = 8;
// |x| and |y| must not exceed this many pixels, so every edge function fits in 64 bits.
constexpr double kCoordLimit = 1048576.0;

// Status bits returned by the entry points (0 = success).
enum Status : int {
    kOk = 0,
    kNonFinite = 1,   // a vertex coordinate is NaN or +-inf
    kOutOfRange = 2,  // |x| or |y| > kCoordLimit
    kBadIndex = 4,    // a triangle index is outside [0, n_vertices)
};

// Number of threads used when num_threads <= 0 (OpenMP's default, i.e. OMP_NUM_THREADS or all cores).
int max_threads();

// Rasterizes a mesh into depth (H*W, -inf where empty) and triangle_id (H*W, -1 where empty).
// When colors (N*channels) and image (H*W*channels, pre-filled with the background, or anything when
// clear_image: then it is zeroed first, band by band) are non-null, covered pixels of image receive the
// barycentric interpolation of the winning triangle's vertex colours.
int rasterize(const float* vertices, int64_t n_vertices, const int32_t* triangles, int64_t n_triangles,
              int height, int width, bool cull_back, int num_threads, float* depth, int32_t* triangle_id,
              const float* colors, int channels, float* image, bool clear_image);

// Rasterizes depth only (into the caller's depth / triangle_id scratch buffers), then marks vertex v
// visible when its nearest pixel (round half up) is inside the image and z_v >= min(depth) - eps over
// the pixel centres of its bilinear footprint (floor and floor + 1 per axis, + 1 only off the centre)
// that lie inside the image.
int visibility(const float* vertices, int64_t n_vertices, const int32_t* triangles, int64_t n_triangles,
               int height, int width, bool cull_back, int num_threads, float eps, float* depth,
               int32_t* triangle_id, uint8_t* visible);

// The straightforward single-threaded z-buffer that benchmarks/render.py compares against: one triangle at
// a time, float barycentric weights at every pixel centre of its bounding box, colour interpolated for
// every fragment that passes the depth test. Same conventions for coordinates and depth, but float
// arithmetic and no tie rule, so edge pixels may differ from rasterize(). Not used by the package.
int rasterize_naive(const float* vertices, int64_t n_vertices, const int32_t* triangles, int64_t n_triangles,
                    int height, int width, float* depth, const float* colors, int channels, float* image);

}  // namespace mfirrn
