// Z-buffer triangle rasterizer; conventions in raster.hpp.
//
// How it is fast (the BFM mesh has ~1e5 triangles of about one pixel each at 450x450 and far below a
// pixel at 120x120, so per-triangle cost dominates):
//  1. vertices are snapped to 24.8 fixed point once, packed with z (one cache line per vertex), and
//     given a 4 x int16 "cell code" (floor(x), floor(y), -ceil(x), -ceil(y) in pixels, clamped to the
//     image): the pixel centres in a triangle's (clipped) bounding box then come from two SIMD max
//     operations on its three codes, and most triangles (no centre in their box: 80% of the BFM
//     triangles at 120x120) leave after one rarely-mispredicted branch;
//  2. a triangle whose box holds at most 2x2 centres (most BFM triangles) is drawn as one 2x2 pixel
//     block with SSE2: edge functions, inside test, depth (double, like the reference) and the depth
//     test for four pixels at once, branch-free; the block may reach one pixel outside the box (never
//     outside the image or the thread's band), where the exact inside test fails. Larger boxes step
//     64-bit integer edge functions incrementally;
//  3. threads own disjoint horizontal bands of the image (boundaries balance the vertices per band;
//     more bands than threads, dynamic schedule). A binning pass (parallel over triangle chunks)
//     appends each triangle that covers a pixel centre to the list of every band its box touches;
//     each band then draws the triangles of its lists in chunk order = index order, so every pixel
//     sees exactly the single-threaded sequence: deterministic, no private buffers, no merge;
//  4. each band clears its own rows first and interpolates colours right after its depth pass (once
//     per covered pixel, from the winning triangle: deferred shading), while the band is in cache.
// One thread skips the binning and draws every triangle straight away.
#include "raster.hpp"

#include <algorithm>
#include <cmath>
#include <climits>
#include <limits>
#include <vector>

#if defined(__SSE2__) && defined(__x86_64__)
#include <emmintrin.h>
#define MFIRRN_SSE2 1
#endif

#ifdef _OPENMP
#include <omp.h>
#endif

namespace mfirrn {
namespace {

// A snapped vertex: fixed-point x, y (1/256 pixel) and depth z.
struct VP {
    int32_t x, y;
    float z;
};

// Cell code of a vertex: fx = floor(x), fy = floor(y) clamped to [-1, W-1] / [-1, H-1] and
// nx = -ceil(x), ny = -ceil(y) clamped to [-W, 0] / [-H, 0] (pixels). For a triangle, the
// component-wise maximum over its vertices gives the clipped box of pixel centres
// [-nx, fx] x [-ny, fy] (clamping commutes with min / max, see box_of). int16 when the image fits.
template <class I>
struct Code {
    I fx, fy, nx, ny;
};

struct Box {
    int x0, x1, y0, y1;
};

template <class I>
inline bool box_of(const Code<I>* code, uint32_t a, uint32_t b, uint32_t c, Box& box) {
    const Code<I> ca = code[a], cb = code[b], cc = code[c];
    const int fx = std::max({ca.fx, cb.fx, cc.fx}), fy = std::max({ca.fy, cb.fy, cc.fy});
    const int nx = std::max({ca.nx, cb.nx, cc.nx}), ny = std::max({ca.ny, cb.ny, cc.ny});
    if ((fx + nx < 0) | (fy + ny < 0)) return false;
    box = Box{-nx, fx, -ny, fy};
    return true;
}

#ifdef MFIRRN_SSE2
template <>
inline bool box_of<int16_t>(const Code<int16_t>* code, uint32_t a, uint32_t b, uint32_t c, Box& box) {
    const __m128i ca = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(code + a));
    const __m128i cb = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(code + b));
    const __m128i cc = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(code + c));
    const __m128i m = _mm_max_epi16(_mm_max_epi16(ca, cb), cc);  // (fx, fy, nx, ny)
    const __m128i s = _mm_add_epi16(m, _mm_srli_epi64(m, 32));   // (fx + nx, fy + ny, ...)
    if (_mm_movemask_epi8(s) & 0xA) return false;                // a negative count: no centre
    const int64_t q = _mm_cvtsi128_si64(m);
    box = Box{-int16_t(q >> 32), int16_t(q), -int16_t(q >> 48), int16_t(q >> 16)};
    return true;
}
#endif

// Per-calling-thread scratch, grown on demand and reused across calls.
struct Scratch {
    std::vector<VP> pts;
    std::vector<Code<int16_t>> code16;
    std::vector<Code<int32_t>> code32;
    std::vector<int32_t> hist;     // per-thread vertex counts per row (band balancing)
    std::vector<int32_t> bins;     // per (chunk, band): triangle indices
    std::vector<int32_t> counts;   // per (chunk, band): list length
    std::vector<int32_t> bounds;   // band b = rows [bounds[b], bounds[b + 1])
    std::vector<int32_t> band_of;  // row -> band
};

Scratch& scratch() {
    thread_local Scratch s;
    return s;
}

template <class T>
void grow(std::vector<T>& v, size_t n) {
    if (v.size() < n) v.resize(n);
}

// Top-left rule: a pixel centre exactly on edge (E == 0) is inside when the interior normal (A, B)
// points right (A > 0, a left edge) or, for a horizontal edge, down (A == 0, B > 0, a top edge).
// Returned as a bias: inside <=> E + bias >= 0.
inline int64_t tl_bias(int64_t A, int64_t B) { return (A > 0 || (A == 0 && B > 0)) ? 0 : -1; }

struct Frame {
    float* depth;
    int32_t* ids;
    int64_t width;
};

// Depth pass of triangle t over box (clipped to the image) and rows [row0, row1] (its band).
// block_ok: the image is >= 2 pixels wide and the band >= 2 rows high (the 2x2 block fits).
inline void raster_tri(const int32_t* tris, int64_t t, const VP* P, Box box, int row0, int row1, bool block_ok,
                       bool cull_back, const Frame& f) {
    box.y0 = std::max(box.y0, row0);
    box.y1 = std::min(box.y1, row1);
    if (box.y0 > box.y1) return;
    VP a = P[tris[3 * t]], b = P[tris[3 * t + 1]], c = P[tris[3 * t + 2]];
    int64_t area = int64_t(b.x - a.x) * (c.y - a.y) - int64_t(b.y - a.y) * (c.x - a.x);
    if (area == 0 || (area < 0 && cull_back)) return;
    if (area < 0) {
        std::swap(b, c);
        area = -area;
    }
    // edge k is opposite vertex k: E_k(P) = A_k (Px - x) + B_k (Py - y) from a point (x, y) on it
    const int64_t A0 = b.y - c.y, B0 = c.x - b.x;
    const int64_t A1 = c.y - a.y, B1 = a.x - c.x;
    const int64_t A2 = a.y - b.y, B2 = b.x - a.x;
    const int64_t k0 = tl_bias(A0, B0), k1 = tl_bias(A1, B1), k2 = tl_bias(A2, B2);
    const double z0 = a.z, z1 = b.z, z2 = c.z;
    const double inv = 1.0 / double(area);
#ifdef MFIRRN_SSE2
    // every coordinate difference in [-1024, 1023] (4 pixels): all edge values fit in int32
    const uint64_t small = uint64_t(A0 + 1024) | uint64_t(A1 + 1024) | uint64_t(A2 + 1024) | uint64_t(B0 + 1024) |
                           uint64_t(B1 + 1024) | uint64_t(B2 + 1024);
    if (block_ok && small < 2048 && box.x1 - box.x0 <= 1 && box.y1 - box.y0 <= 1) {
        // the 2x2 block [bx, bx+1] x [by, by+1] holds the box and stays in the image and the band
        const int bx = std::min<int64_t>(box.x0, f.width - 2), by = std::min(box.y0, row1 - 1);
        const int32_t Px = bx * 256, Py = by * 256;
        const int32_t e0 = int32_t(A0) * (Px - b.x) + int32_t(B0) * (Py - b.y);
        const int32_t e1 = int32_t(A1) * (Px - c.x) + int32_t(B1) * (Py - c.y);
        const int32_t e2 = int32_t(A2) * (Px - a.x) + int32_t(B2) * (Py - a.y);
        // lanes: pixels (bx, by), (bx+1, by), (bx, by+1), (bx+1, by+1)
        const __m128i E0 = _mm_add_epi32(_mm_set1_epi32(e0), _mm_setr_epi32(0, int32_t(A0) * 256, int32_t(B0) * 256,
                                                                            int32_t(A0 + B0) * 256));
        const __m128i E1 = _mm_add_epi32(_mm_set1_epi32(e1), _mm_setr_epi32(0, int32_t(A1) * 256, int32_t(B1) * 256,
                                                                            int32_t(A1 + B1) * 256));
        const __m128i E2 = _mm_add_epi32(_mm_set1_epi32(e2), _mm_setr_epi32(0, int32_t(A2) * 256, int32_t(B2) * 256,
                                                                            int32_t(A2 + B2) * 256));
        const __m128i biased = _mm_or_si128(_mm_or_si128(_mm_add_epi32(E0, _mm_set1_epi32(int32_t(k0))),
                                                         _mm_add_epi32(E1, _mm_set1_epi32(int32_t(k1)))),
                                            _mm_add_epi32(E2, _mm_set1_epi32(int32_t(k2))));
        const __m128 inside = _mm_castsi128_ps(_mm_cmpgt_epi32(biased, _mm_set1_epi32(-1)));
        // z = ((E0 z0 + E1 z1) + E2 z2) / area in double, rounded to float (the reference's arithmetic)
        const __m128d Z0 = _mm_set1_pd(z0), Z1 = _mm_set1_pd(z1), Z2 = _mm_set1_pd(z2), INV = _mm_set1_pd(inv);
        const __m128d zlo = _mm_mul_pd(
            _mm_add_pd(_mm_add_pd(_mm_mul_pd(_mm_cvtepi32_pd(E0), Z0), _mm_mul_pd(_mm_cvtepi32_pd(E1), Z1)),
                       _mm_mul_pd(_mm_cvtepi32_pd(E2), Z2)),
            INV);
        const __m128d zhi = _mm_mul_pd(
            _mm_add_pd(_mm_add_pd(_mm_mul_pd(_mm_cvtepi32_pd(_mm_unpackhi_epi64(E0, E0)), Z0),
                                  _mm_mul_pd(_mm_cvtepi32_pd(_mm_unpackhi_epi64(E1, E1)), Z1)),
                       _mm_mul_pd(_mm_cvtepi32_pd(_mm_unpackhi_epi64(E2, E2)), Z2)),
            INV);
        const __m128 z = _mm_movelh_ps(_mm_cvtpd_ps(zlo), _mm_cvtpd_ps(zhi));
        const int64_t at0 = int64_t(by) * f.width + bx, at1 = at0 + f.width;
        float* d0 = f.depth + at0;
        float* d1 = f.depth + at1;
        int32_t* i0 = f.ids + at0;
        int32_t* i1 = f.ids + at1;
        const __m128 old = _mm_castsi128_ps(_mm_unpacklo_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(d0)),
                                                               _mm_loadl_epi64(reinterpret_cast<const __m128i*>(d1))));
        const __m128 win = _mm_and_ps(inside, _mm_cmpgt_ps(z, old));
        const __m128i depth = _mm_castps_si128(_mm_or_ps(_mm_and_ps(win, z), _mm_andnot_ps(win, old)));
        const __m128i oid = _mm_unpacklo_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(i0)),
                                               _mm_loadl_epi64(reinterpret_cast<const __m128i*>(i1)));
        const __m128i w = _mm_castps_si128(win);
        const __m128i ids = _mm_or_si128(_mm_and_si128(w, _mm_set1_epi32(int32_t(t))), _mm_andnot_si128(w, oid));
        _mm_storel_epi64(reinterpret_cast<__m128i*>(d0), depth);
        _mm_storel_epi64(reinterpret_cast<__m128i*>(d1), _mm_unpackhi_epi64(depth, depth));
        _mm_storel_epi64(reinterpret_cast<__m128i*>(i0), ids);
        _mm_storel_epi64(reinterpret_cast<__m128i*>(i1), _mm_unpackhi_epi64(ids, ids));
        return;
    }
#else
    (void)block_ok;
#endif
    const int64_t Px = int64_t(box.x0) << kSubpixelBits, Py = int64_t(box.y0) << kSubpixelBits;
    // biased edge values: inside <=> all three >= 0
    int64_t r0 = A0 * (Px - b.x) + B0 * (Py - b.y) + k0;
    int64_t r1 = A1 * (Px - c.x) + B1 * (Py - c.y) + k1;
    int64_t r2 = A2 * (Px - a.x) + B2 * (Py - a.y) + k2;
    const int64_t sx0 = A0 << kSubpixelBits, sx1 = A1 << kSubpixelBits, sx2 = A2 << kSubpixelBits;
    const int64_t sy0 = B0 << kSubpixelBits, sy1 = B1 << kSubpixelBits, sy2 = B2 << kSubpixelBits;
    for (int y = box.y0; y <= box.y1; ++y) {
        int64_t e0 = r0, e1 = r1, e2 = r2;
        float* drow = f.depth + int64_t(y) * f.width;
        int32_t* irow = f.ids + int64_t(y) * f.width;
        for (int x = box.x0; x <= box.x1; ++x) {
            if ((e0 | e1 | e2) >= 0) {
                const double z = (double(e0 - k0) * z0 + double(e1 - k1) * z1 + double(e2 - k2) * z2) * inv;
                const float zf = float(z);
                if (zf > drow[x]) {
                    drow[x] = zf;
                    irow[x] = int32_t(t);
                }
            }
            e0 += sx0, e1 += sx1, e2 += sx2;
        }
        r0 += sy0, r1 += sy1, r2 += sy2;
    }
}

int resolve_threads(int num_threads) { return num_threads > 0 ? num_threads : max_threads(); }

// floor(d) for |d| < 2^31 without a libm call (baseline x86-64 has no SSE4.1 roundsd).
inline int32_t floor_to_int(double d) {
    const int32_t i = int32_t(d);
    return i - (double(i) > d);
}

// Colour pass over rows [y0, y1], columns [x0, x1]: barycentric interpolation of the winning
// triangle's colours (CH > 0: channel count known at compile time; CH == 0: `channels`).
template <int CH>
void shade_rows(const int32_t* tris, const VP* p, const float* colors, int channels, int x0, int x1, int y0, int y1,
                int width, const int32_t* ids, float* image) {
    // Weights use the triangle's own vertex order and signed area (b_i = E_i / area is invariant under
    // the orientation swap of the depth pass), so no branch on orientation is needed.
    const int nc = CH > 0 ? CH : channels;
    for (int y = y0; y <= y1; ++y) {
        const int64_t Py = int64_t(y) << kSubpixelBits;
        for (int x = x0; x <= x1; ++x) {
            const int64_t pix = int64_t(y) * width + x;
            const int32_t t = ids[pix];
            if (t < 0) continue;
            const int32_t a = tris[3 * int64_t(t)], b = tris[3 * int64_t(t) + 1], c = tris[3 * int64_t(t) + 2];
            const VP pa = p[a], pb = p[b], pc = p[c];
            const int64_t Px = int64_t(x) << kSubpixelBits;
            const double inv =
                1.0 / double(int64_t(pb.x - pa.x) * (pc.y - pa.y) - int64_t(pb.y - pa.y) * (pc.x - pa.x));
            const double b0 = double(int64_t(pb.y - pc.y) * (Px - pb.x) + int64_t(pc.x - pb.x) * (Py - pb.y)) * inv;
            const double b1 = double(int64_t(pc.y - pa.y) * (Px - pc.x) + int64_t(pa.x - pc.x) * (Py - pc.y)) * inv;
            const double b2 = double(int64_t(pa.y - pb.y) * (Px - pa.x) + int64_t(pb.x - pa.x) * (Py - pa.y)) * inv;
            const float* c0 = colors + int64_t(a) * nc;
            const float* c1 = colors + int64_t(b) * nc;
            const float* c2 = colors + int64_t(c) * nc;
            float* out = image + pix * nc;
            for (int k = 0; k < nc; ++k) out[k] = float(b0 * double(c0[k]) + b1 * double(c1[k]) + b2 * double(c2[k]));
        }
    }
}

void shade_rows_any(const int32_t* tris, const VP* p, const float* colors, int channels, int x0, int x1, int y0,
                    int y1, int width, const int32_t* ids, float* image) {
    switch (channels) {
        case 1: return shade_rows<1>(tris, p, colors, 1, x0, x1, y0, y1, width, ids, image);
        case 2: return shade_rows<2>(tris, p, colors, 2, x0, x1, y0, y1, width, ids, image);
        case 3: return shade_rows<3>(tris, p, colors, 3, x0, x1, y0, y1, width, ids, image);
        case 4: return shade_rows<4>(tris, p, colors, 4, x0, x1, y0, y1, width, ids, image);
        default: return shade_rows<0>(tris, p, colors, channels, x0, x1, y0, y1, width, ids, image);
    }
}

template <class I>
inline Code<I> make_code(int32_t X, int32_t Y, int width, int height) {
    const int32_t fx = std::min(std::max(X >> kSubpixelBits, -1), width - 1);
    const int32_t fy = std::min(std::max(Y >> kSubpixelBits, -1), height - 1);
    const int32_t cx = std::min(std::max((X + 255) >> kSubpixelBits, 0), width);
    const int32_t cy = std::min(std::max((Y + 255) >> kSubpixelBits, 0), height);
    return Code<I>{I(fx), I(fy), I(-cx), I(-cy)};
}

// Everything the passes share.
struct Job {
    const float* V;
    int64_t n_vertices;
    const int32_t* tris;
    int64_t n_triangles;
    int height, width;
    bool cull_back;
    float* depth;
    int32_t* ids;
    const float* colors;
    int channels;
    float* image;
    float eps;         // visibility
    uint8_t* visible;  // null: no visibility pass
};

// The whole render for one code type (int16 codes for images up to 32767 pixels, else int32).
template <class I>
int raster_core(const Job& job, int num_threads, Scratch& sc, Code<I>* code) {
    const float* V = job.V;
    const int64_t n_vertices = job.n_vertices, n_triangles = job.n_triangles;
    const int32_t* tris = job.tris;
    const int height = job.height, width = job.width;
    int nt = resolve_threads(num_threads);
    if (n_triangles < 4096) nt = 1;  // small meshes: not worth waking threads
    const float inf = std::numeric_limits<float>::infinity();
    grow(sc.pts, size_t(std::max<int64_t>(n_vertices, 1)));
    VP* p = sc.pts.data();
    const Frame frame{job.depth, job.ids, width};

    // bands: several per thread (dynamic schedule balances the rest), each >= 2 rows
    const int nb = nt == 1 ? 1 : std::max(1, std::min(4 * nt, height / 2));
    const int64_t n_chunks = nt == 1 ? 1 : std::min<int64_t>(4 * nt, std::max<int64_t>(1, n_triangles / 2048));
    const int64_t chunk = (n_triangles + n_chunks - 1) / std::max<int64_t>(n_chunks, 1);
    if (nb > 1) {
        grow(sc.hist, size_t(nt) * height);
        grow(sc.bins, size_t(std::max<int64_t>(chunk * n_chunks * nb, 1)));
        grow(sc.counts, size_t(n_chunks * nb));
        grow(sc.bounds, size_t(nb + 1));
        grow(sc.band_of, size_t(height));
    }
    int32_t* hist = sc.hist.data();
    int32_t* bins = sc.bins.data();
    int32_t* counts = sc.counts.data();
    int32_t* bounds = sc.bounds.data();
    int32_t* band_of = sc.band_of.data();

    int status = kOk;
    int32_t bx0 = INT32_MAX, bx1 = INT32_MIN, by0 = INT32_MAX, by1 = INT32_MIN;
    int64_t n_bad = 0;
    bool empty = false;
#pragma omp parallel num_threads(nt)
    {
#ifdef _OPENMP
        const int tid = omp_get_thread_num();
#else
        const int tid = 0;
#endif
        // 1. snap vertices to fixed point, check them, cell codes, bounding box, rows per band
        int32_t* h = nb > 1 ? hist + int64_t(tid) * height : nullptr;
        if (nb > 1) std::fill(hist + int64_t(tid) * height, hist + int64_t(tid + 1) * height, 0);
#pragma omp for schedule(static) reduction(+ : n_bad) reduction(min : bx0, by0) reduction(max : bx1, by1)
        for (int64_t i = 0; i < n_vertices; ++i) {
            const float x = V[3 * i], y = V[3 * i + 1], z = V[3 * i + 2];
            // branch-free so that it vectorizes; NaN fails every comparison
            const bool ok = (std::fabs(x) <= float(kCoordLimit)) & (std::fabs(y) <= float(kCoordLimit)) &
                            (std::fabs(z) <= std::numeric_limits<float>::max());
            const int32_t X = floor_to_int(ok ? double(x) * (1 << kSubpixelBits) + 0.5 : 0.0);
            const int32_t Y = floor_to_int(ok ? double(y) * (1 << kSubpixelBits) + 0.5 : 0.0);
            p[i] = VP{X, Y, z};
            code[i] = make_code<I>(X, Y, width, height);
            bx0 = std::min(bx0, ok ? X : INT32_MAX), bx1 = std::max(bx1, ok ? X : INT32_MIN);
            by0 = std::min(by0, ok ? Y : INT32_MAX), by1 = std::max(by1, ok ? Y : INT32_MIN);
            n_bad += !ok;
            if (nb > 1) {
                const int32_t row = (Y + 128) >> kSubpixelBits;
                if (row >= 0 && row < height) h[row]++;
            }
        }  // implicit barrier
#pragma omp single
        {
            if (n_bad) {
                for (int64_t i = 0; i < n_vertices; ++i) {
                    const float x = V[3 * i], y = V[3 * i + 1], z = V[3 * i + 2];
                    if (!(std::isfinite(x) && std::isfinite(y) && std::isfinite(z))) status |= kNonFinite;
                    else if (std::fabs(x) > kCoordLimit || std::fabs(y) > kCoordLimit) status |= kOutOfRange;
                }
            }
            // pixel rectangle that can be covered: the vertices' box, clipped to the image
            const int cx0 = std::max(n_vertices ? (bx0 + 255) >> kSubpixelBits : width, 0);
            const int cx1 = std::min(n_vertices ? bx1 >> kSubpixelBits : -1, width - 1);
            const int cy0 = std::max(n_vertices ? (by0 + 255) >> kSubpixelBits : height, 0);
            const int cy1 = std::min(n_vertices ? by1 >> kSubpixelBits : -1, height - 1);
            empty = status != kOk || cx0 > cx1 || cy0 > cy1 || n_triangles == 0;
            bx0 = cx0, bx1 = cx1, by0 = cy0, by1 = cy1;  // reused as the covered rectangle
            if (nb > 1) {
                // band boundaries: equal shares of the vertices projected into the image, >= 2 rows each
                int64_t total = 0;
                for (int r = 0; r < height; ++r) {
                    int32_t s = 0;
                    for (int k = 0; k < nt; ++k) s += hist[int64_t(k) * height + r];
                    hist[r] = s;
                    total += s;
                }
                bounds[0] = 0;
                int64_t acc = 0;
                int b = 1;
                for (int r = 0; r < height && b < nb; ++r) {
                    acc += hist[r];
                    while (b < nb && acc * nb >= total * b) bounds[b++] = r + 1;
                }
                while (b < nb) bounds[b++] = height;
                bounds[nb] = height;
                for (int k = 1; k < nb; ++k) bounds[k] = std::max(bounds[k], bounds[k - 1] + 2);
                for (int k = nb - 1; k >= 1; --k) bounds[k] = std::min(bounds[k], bounds[k + 1] - 2);
                for (int k = 0; k < nb; ++k)
                    for (int r = bounds[k]; r < bounds[k + 1]; ++r) band_of[r] = k;
            }
        }  // implicit barrier
        const bool block_ok = width >= 2;
        if (nb == 1) {
            // one band: clear, draw every triangle, shade
#pragma omp single
            {
                std::fill(job.depth, job.depth + int64_t(height) * width, -inf);
                std::fill(job.ids, job.ids + int64_t(height) * width, -1);
                if (!empty) {
                    for (int64_t t = 0; t < n_triangles; ++t) {
                        const uint32_t a = uint32_t(tris[3 * t]), b = uint32_t(tris[3 * t + 1]),
                                       c = uint32_t(tris[3 * t + 2]);
                        if (std::max({a, b, c}) >= uint64_t(n_vertices)) {
                            status |= kBadIndex;
                            continue;
                        }
                        Box box;
                        if (!box_of(code, a, b, c, box)) continue;
                        raster_tri(tris, t, p, box, 0, height - 1, block_ok && height >= 2, job.cull_back, frame);
                    }
                    if (job.colors && job.image && status == kOk)
                        shade_rows_any(tris, p, job.colors, job.channels, bx0, bx1, by0, by1, width, job.ids,
                                       job.image);
                }
            }
        } else {
            // 2. binning, parallel over chunks of triangles
            int local_status = kOk;
            if (!empty) {
#pragma omp for schedule(dynamic, 1)
                for (int64_t k = 0; k < n_chunks; ++k) {
                    int32_t* cnt = counts + k * nb;
                    std::fill(cnt, cnt + nb, 0);
                    const int64_t t_end = std::min(n_triangles, (k + 1) * chunk);
                    for (int64_t t = k * chunk; t < t_end; ++t) {
                        const uint32_t a = uint32_t(tris[3 * t]), b = uint32_t(tris[3 * t + 1]),
                                       c = uint32_t(tris[3 * t + 2]);
                        if (std::max({a, b, c}) >= uint64_t(n_vertices)) {
                            local_status |= kBadIndex;
                            continue;
                        }
                        Box box;
                        if (!box_of(code, a, b, c, box)) continue;
                        const int b1 = band_of[box.y1];
                        for (int bb = band_of[box.y0]; bb <= b1; ++bb)
                            bins[(k * nb + bb) * chunk + cnt[bb]++] = int32_t(t);
                    }
                }  // implicit barrier
            }
            if (local_status) {
#pragma omp atomic
                status |= local_status;
            }
#pragma omp barrier
            // 3. bands: clear, draw the band's triangles in index order, shade
#pragma omp for schedule(dynamic, 1)
            for (int bb = 0; bb < nb; ++bb) {
                const int r0 = bounds[bb], r1 = bounds[bb + 1] - 1;
                std::fill(job.depth + int64_t(r0) * width, job.depth + int64_t(r1 + 1) * width, -inf);
                std::fill(job.ids + int64_t(r0) * width, job.ids + int64_t(r1 + 1) * width, -1);
                if (empty || status != kOk) continue;
                for (int64_t k = 0; k < n_chunks; ++k) {
                    const int32_t* list = bins + (k * nb + bb) * chunk;
                    const int32_t n = counts[k * nb + bb];
                    for (int32_t j = 0; j < n; ++j) {
                        const int64_t t = list[j];
                        Box box;
                        box_of(code, uint32_t(tris[3 * t]), uint32_t(tris[3 * t + 1]), uint32_t(tris[3 * t + 2]),
                               box);
                        raster_tri(tris, t, p, box, r0, r1, block_ok, job.cull_back, frame);
                    }
                }
                if (job.colors && job.image) {
                    const int y0 = std::max(r0, by0), y1 = std::min(r1, by1);
                    if (y0 <= y1)
                        shade_rows_any(tris, p, job.colors, job.channels, bx0, bx1, y0, y1, width, job.ids,
                                       job.image);
                }
            }  // implicit barrier
        }
        // 4. visibility: vertex v is visible when its nearest pixel (round half up) is inside the image
        // and z_v >= depth - eps there
        if (job.visible && status == kOk) {
#pragma omp for schedule(static)
            for (int64_t i = 0; i < n_vertices; ++i) {
                const int32_t px = (p[i].x + (1 << (kSubpixelBits - 1))) >> kSubpixelBits;
                const int32_t py = (p[i].y + (1 << (kSubpixelBits - 1))) >> kSubpixelBits;
                bool vis = false;
                if (px >= 0 && px < width && py >= 0 && py < height)
                    vis = p[i].z >= job.depth[int64_t(py) * width + px] - job.eps;
                job.visible[i] = vis;
            }
        }
    }
    return status;
}

int run(const Job& job, int num_threads) {
    Scratch& sc = scratch();
    const size_t n = size_t(std::max<int64_t>(job.n_vertices, 1));
    if (job.width <= 32767 && job.height <= 32767) {
        grow(sc.code16, n);
        return raster_core<int16_t>(job, num_threads, sc, sc.code16.data());
    }
    grow(sc.code32, n);
    return raster_core<int32_t>(job, num_threads, sc, sc.code32.data());
}

}  // namespace

int max_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

int rasterize(const float* vertices, int64_t n_vertices, const int32_t* triangles, int64_t n_triangles, int height,
              int width, bool cull_back, int num_threads, float* depth, int32_t* triangle_id, const float* colors,
              int channels, float* image) {
    const Job job{vertices, n_vertices, triangles, n_triangles, height, width, cull_back, depth, triangle_id,
                  colors, channels, image, 0.0f, nullptr};
    return run(job, num_threads);
}

int visibility(const float* vertices, int64_t n_vertices, const int32_t* triangles, int64_t n_triangles, int height,
               int width, bool cull_back, int num_threads, float eps, float* depth, int32_t* triangle_id,
               uint8_t* visible) {
    const Job job{vertices, n_vertices, triangles, n_triangles, height, width, cull_back, depth, triangle_id,
                  nullptr, 0, nullptr, eps, visible};
    return run(job, num_threads);
}

}  // namespace mfirrn
