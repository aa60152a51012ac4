// Z-buffer triangle rasterizer; conventions in raster.hpp.
//
// How it is fast (the BFM mesh has ~1e5 triangles of about one pixel each at 450x450 and far below a
// pixel at 120x120, so per-triangle cost dominates):
//  1. vertices are snapped to 24.8 fixed point once, packed with z (one cache line per vertex), and
//     given a 4 x int16 "cell code" (floor(x), floor(y), -ceil(x), -ceil(y) in pixels, clamped to the
//     image): the pixel centres in a triangle's (clipped) bounding box then come from two SIMD max
//     operations on its three codes, and most triangles (no centre in their box: 80% of the BFM
//     triangles at 120x120) leave after one rarely-mispredicted branch;
//  2. a triangle whose box holds one pixel centre takes a short scalar path; one whose box holds at
//     most 2x2 centres (most other BFM triangles) is drawn as one 2x2 pixel
//     block with SSE2: edge functions, inside test, depth (double, like the reference) and the depth
//     test for four pixels at once (it returns before the division and the depth when no centre is
//     inside); the block may reach one pixel outside the box (never outside the image or the thread's
//     band), where the exact inside test fails. Larger boxes step 64-bit integer edge functions;
//  3. with T threads, a binning pass (dynamic over chunks of consecutive triangles) keeps each triangle
//     that has a pixel centre in its box, with that box, in its chunk's list, and histograms the
//     estimated cost per row; the image is then cut into T horizontal bands of equal cost, and thread k
//     draws every listed triangle that reaches band k, chunk by chunk = in index order, so every pixel
//     sees exactly the single-threaded sequence: deterministic, no private buffers, no merge;
//  4. each band clears its own rows first; a fragment that wins the depth test writes its colour at
//     once, from the triangle's vertices already in registers (the BFM mesh is drawn about once per
//     pixel, so this is cheaper than a deferred pass that gathers pixel -> triangle -> vertices again);
//  5. snapping runs four vertices at a time in SSE2 (float arithmetic, exact below 2^15 pixels).
// One thread skips the binning and draws every triangle straight away.
#include "raster.hpp"

#include <algorithm>
#include <cmath>
#include <climits>
#include <limits>
#include <type_traits>
#include <vector>

#if defined(__SSE2__) && defined(__x86_64__)
#include <emmintrin.h>
#define MFIRRN_SSE2 1
#endif

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__GNUC__)
#define MFIRRN_INLINE inline __attribute__((always_inline))
#else
#define MFIRRN_INLINE inline
#endif

namespace mfirrn {
namespace {

// Bands per thread. More than one, taken dynamically, would absorb errors of the cost estimate, but each
// band scans every binned triangle and the triangles crossing band borders are set up twice: measured
// slower at 450x450 with 2, 3, 4 and 6.
constexpr int kBandsPerThread = 1;

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

// A triangle with a pixel centre in its clipped box, as binned for the bands.
template <class I>
struct Binned {
    int32_t t;
    I x0, x1, y0, y1;
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
    std::vector<int32_t> hist;            // per thread: estimated drawing cost per row (band balancing)
    std::vector<Binned<int16_t>> bins16;  // per chunk: its binned triangles (int16 boxes)
    std::vector<Binned<int32_t>> bins32;  // the same for images wider or taller than 32767 pixels
    std::vector<int32_t> counts;          // per chunk: list length
    std::vector<int32_t> bounds;          // band b = rows [bounds[b], bounds[b + 1])
};

template <class I>
std::vector<Binned<I>>& bins_of(Scratch& sc) {
    if constexpr (std::is_same<I, int16_t>::value) return sc.bins16;
    else return sc.bins32;
}

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
inline int64_t tl_bias(int64_t A, int64_t B) { return int64_t((A > 0) | ((A == 0) & (B > 0))) - 1; }  // branch-free

struct Frame {
    float* depth;
    int32_t* ids;
    int64_t width;
    const float* colors;  // null: depth pass only
    int channels;
    float* image;
};

// Colour of pixel `pix` from a fragment that just won the depth test: barycentric interpolation of the
// triangle's vertex colours ca, cb, cc (its own vertex order) with weights E_i / area, in double, summed
// in vertex order and rounded to float, exactly as the reference. e_a, e_b, e_c are the exact integer
// edge values opposite each vertex for the positively oriented triangle and inv = 1 / its area; for a
// triangle that was flipped to positive orientation both the edge values and the area change sign, so
// the weights are the same doubles as with the triangle's own signed area.
template <int CH>
inline void put_colour(const Frame& f, int64_t pix, int64_t e_a, int64_t e_b, int64_t e_c, double inv,
                       const float* ca, const float* cb, const float* cc) {
    const int nc = CH > 0 ? CH : f.channels;
    const double wa = double(e_a) * inv, wb = double(e_b) * inv, wc = double(e_c) * inv;
    float* out = f.image + pix * nc;
    int q = 0;
#ifdef MFIRRN_SSE2
    // two channels per step in double SIMD: the same IEEE operations in the same order as the scalar loop
    const __m128d WA = _mm_set1_pd(wa), WB = _mm_set1_pd(wb), WC = _mm_set1_pd(wc);
    for (; q + 2 <= nc; q += 2) {
        const __m128d va = _mm_cvtps_pd(_mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(ca + q))));
        const __m128d vb = _mm_cvtps_pd(_mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(cb + q))));
        const __m128d vc = _mm_cvtps_pd(_mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(cc + q))));
        const __m128d r = _mm_add_pd(_mm_add_pd(_mm_mul_pd(WA, va), _mm_mul_pd(WB, vb)), _mm_mul_pd(WC, vc));
        _mm_storel_epi64(reinterpret_cast<__m128i*>(out + q), _mm_castps_si128(_mm_cvtpd_ps(r)));
    }
#endif
    for (; q < nc; ++q) out[q] = float(wa * double(ca[q]) + wb * double(cb[q]) + wc * double(cc[q]));
}

#ifdef MFIRRN_SSE2
// Four pixels at once: lanes 0, 1 at at0, at0 + 1 and lanes 2, 3 at at1, at1 + 1 (a 2x2 block).
// E0..E2: the lanes' exact edge values (int32), k0..k2 the top-left biases. Inside test,
// depth z = ((E0 z0 + E1 z1) + E2 z2) / area in double rounded to float (the reference's arithmetic),
// depth test and write, then the colours of the winning lanes. Returns before the division when no
// lane is inside (common for slivers and sub-pixel triangles).
template <int CH>
inline void draw4(const Frame& f, int32_t t, __m128i E0, __m128i E1, __m128i E2, int64_t k0, int64_t k1, int64_t k2,
                  double z0, double z1, double z2, int64_t area, bool flipped, const float* ca, const float* cb,
                  const float* cc, int64_t at0, int64_t at1) {
    const __m128i biased = _mm_or_si128(_mm_or_si128(_mm_add_epi32(E0, _mm_set1_epi32(int32_t(k0))),
                                                     _mm_add_epi32(E1, _mm_set1_epi32(int32_t(k1)))),
                                        _mm_add_epi32(E2, _mm_set1_epi32(int32_t(k2))));
    const __m128 inside = _mm_castsi128_ps(_mm_cmpgt_epi32(biased, _mm_set1_epi32(-1)));
    if (!_mm_movemask_ps(inside)) return;
    const double inv = 1.0 / double(area);
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
    float* d0 = f.depth + at0;
    float* d1 = f.depth + at1;
    int32_t* i0 = f.ids + at0;
    int32_t* i1 = f.ids + at1;
    const __m128 old = _mm_castsi128_ps(_mm_unpacklo_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(d0)),
                                                           _mm_loadl_epi64(reinterpret_cast<const __m128i*>(d1))));
    const __m128 win = _mm_and_ps(inside, _mm_cmpgt_ps(z, old));
    int m = _mm_movemask_ps(win);
    if (!m) return;
    const __m128i depth = _mm_castps_si128(_mm_or_ps(_mm_and_ps(win, z), _mm_andnot_ps(win, old)));
    const __m128i oid = _mm_unpacklo_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(i0)),
                                           _mm_loadl_epi64(reinterpret_cast<const __m128i*>(i1)));
    const __m128i w = _mm_castps_si128(win);
    const __m128i ids = _mm_or_si128(_mm_and_si128(w, _mm_set1_epi32(t)), _mm_andnot_si128(w, oid));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(d0), depth);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(d1), _mm_unpackhi_epi64(depth, depth));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(i0), ids);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(i1), _mm_unpackhi_epi64(ids, ids));
    if (CH != 0) {
        alignas(16) int32_t v0[4], v1[4], v2[4];
        _mm_store_si128(reinterpret_cast<__m128i*>(v0), E0);
        _mm_store_si128(reinterpret_cast<__m128i*>(v1), E1);
        _mm_store_si128(reinterpret_cast<__m128i*>(v2), E2);
        do {
            const int l = __builtin_ctz(m);
            m &= m - 1;
            const int64_t pix = (l & 2 ? at1 : at0) + (l & 1);
            put_colour<CH>(f, pix, v0[l], flipped ? v2[l] : v1[l], flipped ? v1[l] : v2[l], inv, ca, cb, cc);
        } while (m);
    }
}
#endif

// Depth pass of triangle t over box (clipped to the image) and rows [row0, row1] (its band).
// block_ok: the image is >= 2 pixels wide and the band >= 2 rows high (the 2x2 block fits).
// CH: colour channels written per winning fragment (0: depth pass only; -1: f.channels at run time).
template <int CH>
MFIRRN_INLINE void raster_tri(const int32_t* tris, int64_t t, const VP* P, Box box, int row0, int row1, bool block_ok,
                       bool cull_back, const Frame& f) {
    box.y0 = std::max(box.y0, row0);
    box.y1 = std::min(box.y1, row1);
    if (box.y0 > box.y1) return;
    const int32_t ia = tris[3 * t], ib = tris[3 * t + 1], ic = tris[3 * t + 2];
    VP a = P[ia], b = P[ib], c = P[ic];
    int64_t area = int64_t(b.x - a.x) * (c.y - a.y) - int64_t(b.y - a.y) * (c.x - a.x);
    if (area == 0 || (area < 0 && cull_back)) return;
    const bool flipped = area < 0;
    if (flipped) {
        std::swap(b, c);
        area = -area;
    }
    // colours of the triangle's vertices in its own order; after the flip, edge 1 is opposite the
    // original c and edge 2 opposite the original b
    const int nc = CH > 0 ? CH : f.channels;
    const float* ca = CH != 0 ? f.colors + int64_t(ia) * nc : nullptr;
    const float* cb = CH != 0 ? f.colors + int64_t(ib) * nc : nullptr;
    const float* cc = CH != 0 ? f.colors + int64_t(ic) * nc : nullptr;
    // edge k is opposite vertex k: E_k(P) = A_k (Px - x) + B_k (Py - y) from a point (x, y) on it
    const int64_t A0 = b.y - c.y, B0 = c.x - b.x;
    const int64_t A1 = c.y - a.y, B1 = a.x - c.x;
    const int64_t A2 = a.y - b.y, B2 = b.x - a.x;
    const int64_t k0 = tl_bias(A0, B0), k1 = tl_bias(A1, B1), k2 = tl_bias(A2, B2);
    const double z0 = a.z, z1 = b.z, z2 = c.z;
    if (box.x0 == box.x1 && box.y0 == box.y1) {
        // one pixel centre in the box (96% of the BFM triangles that reach this point at 120x120):
        // the general path's arithmetic for that single pixel, without its loop set-up
        const int64_t Px = int64_t(box.x0) << kSubpixelBits, Py = int64_t(box.y0) << kSubpixelBits;
        const int64_t e0 = A0 * (Px - b.x) + B0 * (Py - b.y);
        const int64_t e1 = A1 * (Px - c.x) + B1 * (Py - c.y);
        const int64_t e2 = A2 * (Px - a.x) + B2 * (Py - a.y);
        if (((e0 + k0) | (e1 + k1) | (e2 + k2)) < 0) return;
        const double inv = 1.0 / double(area);
        const float zf = float((double(e0) * z0 + double(e1) * z1 + double(e2) * z2) * inv);
        const int64_t pix = int64_t(box.y0) * f.width + box.x0;
        if (zf > f.depth[pix]) {
            f.depth[pix] = zf;
            f.ids[pix] = int32_t(t);
            if (CH != 0) put_colour<CH>(f, pix, e0, flipped ? e2 : e1, flipped ? e1 : e2, inv, ca, cb, cc);
        }
        return;
    }
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
        const int64_t at0 = int64_t(by) * f.width + bx;
        draw4<CH>(f, int32_t(t), E0, E1, E2, k0, k1, k2, z0, z1, z2, area, flipped, ca, cb, cc, at0, at0 + f.width);
        return;
    }
#else
    (void)block_ok;
#endif
    const double inv = 1.0 / double(area);
    const int64_t Px = int64_t(box.x0) << kSubpixelBits, Py = int64_t(box.y0) << kSubpixelBits;
    // biased edge values: inside <=> all three >= 0
    int64_t r0 = A0 * (Px - b.x) + B0 * (Py - b.y) + k0;
    int64_t r1 = A1 * (Px - c.x) + B1 * (Py - c.y) + k1;
    int64_t r2 = A2 * (Px - a.x) + B2 * (Py - a.y) + k2;
    constexpr int64_t one = int64_t(1) << kSubpixelBits;  // a pixel step (multiplied: A, B may be negative)
    const int64_t sx0 = A0 * one, sx1 = A1 * one, sx2 = A2 * one;
    const int64_t sy0 = B0 * one, sy1 = B1 * one, sy2 = B2 * one;
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
                    if (CH != 0) {
                        const int64_t u0 = e0 - k0, u1 = e1 - k1, u2 = e2 - k2;
                        put_colour<CH>(f, int64_t(y) * f.width + x, u0, flipped ? u2 : u1, flipped ? u1 : u2, inv, ca,
                                       cb, cc);
                    }
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

template <class I>
inline Code<I> make_code(int32_t X, int32_t Y, int width, int height) {
    const int32_t fx = std::min(std::max(X >> kSubpixelBits, -1), width - 1);
    const int32_t fy = std::min(std::max(Y >> kSubpixelBits, -1), height - 1);
    const int32_t cx = std::min(std::max((X + 255) >> kSubpixelBits, 0), width);
    const int32_t cy = std::min(std::max((Y + 255) >> kSubpixelBits, 0), height);
    return Code<I>{I(fx), I(fy), I(-cx), I(-cy)};
}

// Bounding box of the valid snapped vertices (fixed point) and the count of invalid ones, per thread.
struct SnapAcc {
    int32_t x0 = INT32_MAX, x1 = INT32_MIN, y0 = INT32_MAX, y1 = INT32_MIN;
    int64_t n_bad = 0;
#ifdef MFIRRN_SSE2
    __m128i vx0 = _mm_set1_epi32(INT32_MAX), vx1 = _mm_set1_epi32(INT32_MIN);
    __m128i vy0 = _mm_set1_epi32(INT32_MAX), vy1 = _mm_set1_epi32(INT32_MIN);
#endif
    void finish() {
#ifdef MFIRRN_SSE2
        alignas(16) int32_t a[4], b[4], c[4], d[4];
        _mm_store_si128(reinterpret_cast<__m128i*>(a), vx0), _mm_store_si128(reinterpret_cast<__m128i*>(b), vx1);
        _mm_store_si128(reinterpret_cast<__m128i*>(c), vy0), _mm_store_si128(reinterpret_cast<__m128i*>(d), vy1);
        for (int k = 0; k < 4; ++k)
            x0 = std::min(x0, a[k]), x1 = std::max(x1, b[k]), y0 = std::min(y0, c[k]), y1 = std::max(y1, d[k]);
#endif
    }
};

// Snaps vertex i: fixed-point x, y (floor(v * 256 + 0.5), computed in double), cell code, bounding box.
// Invalid vertices (NaN, inf, |x| or |y| > limit) are
// counted and snapped to 0 so that nothing downstream overflows; the caller reports them.
template <class I>
inline void snap_one(const float* V, int64_t i, int width, int height, VP* p, Code<I>* code, SnapAcc& acc) {
    const float x = V[3 * i], y = V[3 * i + 1], z = V[3 * i + 2];
    const bool ok = (std::fabs(x) <= float(kCoordLimit)) & (std::fabs(y) <= float(kCoordLimit)) &
                    (std::fabs(z) <= std::numeric_limits<float>::max());  // NaN fails every comparison
    const int32_t X = floor_to_int(ok ? double(x) * (1 << kSubpixelBits) + 0.5 : 0.0);
    const int32_t Y = floor_to_int(ok ? double(y) * (1 << kSubpixelBits) + 0.5 : 0.0);
    p[i] = VP{X, Y, z};
    code[i] = make_code<I>(X, Y, width, height);
    if (ok) {
        acc.x0 = std::min(acc.x0, X), acc.x1 = std::max(acc.x1, X);
        acc.y0 = std::min(acc.y0, Y), acc.y1 = std::max(acc.y1, Y);
    }
    acc.n_bad += !ok;
}

#ifdef MFIRRN_SSE2
inline __m128i min_epi32(__m128i a, __m128i b) {
    const __m128i gt = _mm_cmpgt_epi32(a, b);
    return _mm_or_si128(_mm_and_si128(gt, b), _mm_andnot_si128(gt, a));
}
inline __m128i max_epi32(__m128i a, __m128i b) {
    const __m128i gt = _mm_cmpgt_epi32(a, b);
    return _mm_or_si128(_mm_and_si128(gt, a), _mm_andnot_si128(gt, b));
}
#endif

// snap_one for vertices i..i+3 at once, bit-identical: when |x|, |y| < 2^15 pixels, v * 256 is exact
// in float and below 2^23 in magnitude, where float spacing is at most 1/2, so v * 256 + 0.5 is exact
// too and its float floor equals the double one. Returns false (nothing written) when a vertex is
// invalid or that large, or the codes are int32: the caller then uses snap_one for the four.
template <class I>
inline bool snap4(const float* V, int64_t i, int width, int height, VP* p, Code<I>* code, SnapAcc& acc) {
#ifdef MFIRRN_SSE2
    if constexpr (std::is_same<I, int16_t>::value) {
        const float* v = V + 3 * i;
        const __m128 x = _mm_setr_ps(v[0], v[3], v[6], v[9]);
        const __m128 y = _mm_setr_ps(v[1], v[4], v[7], v[10]);
        const __m128 z = _mm_setr_ps(v[2], v[5], v[8], v[11]);
        const __m128 abs = _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff));
        const __m128 lim = _mm_set1_ps(32768.0f);
        const __m128 good = _mm_and_ps(_mm_and_ps(_mm_cmplt_ps(_mm_and_ps(x, abs), lim), _mm_cmplt_ps(_mm_and_ps(y, abs), lim)),
                                       _mm_cmple_ps(_mm_and_ps(z, abs), _mm_set1_ps(std::numeric_limits<float>::max())));
        if (_mm_movemask_ps(good) != 0xF) return false;
        const __m128 scale = _mm_set1_ps(float(1 << kSubpixelBits)), half = _mm_set1_ps(0.5f);
        const __m128 fx = _mm_add_ps(_mm_mul_ps(x, scale), half), fy = _mm_add_ps(_mm_mul_ps(y, scale), half);
        __m128i X = _mm_cvttps_epi32(fx), Y = _mm_cvttps_epi32(fy);
        X = _mm_add_epi32(X, _mm_castps_si128(_mm_cmpgt_ps(_mm_cvtepi32_ps(X), fx)));  // floor: -1 where truncated up
        Y = _mm_add_epi32(Y, _mm_castps_si128(_mm_cmpgt_ps(_mm_cvtepi32_ps(Y), fy)));
        acc.vx0 = min_epi32(acc.vx0, X), acc.vx1 = max_epi32(acc.vx1, X);
        acc.vy0 = min_epi32(acc.vy0, Y), acc.vy1 = max_epi32(acc.vy1, Y);
        // cell codes in int16 (|pixel| <= 2^15 fits): floor clamped to [-1, size - 1], -ceil to [-size, 0]
        const __m128i f = _mm_packs_epi32(_mm_srai_epi32(X, kSubpixelBits), _mm_srai_epi32(Y, kSubpixelBits));
        const __m128i r = _mm_set1_epi32((1 << kSubpixelBits) - 1);
        const __m128i c = _mm_packs_epi32(_mm_srai_epi32(_mm_add_epi32(X, r), kSubpixelBits),
                                          _mm_srai_epi32(_mm_add_epi32(Y, r), kSubpixelBits));
        const __m128i wh = _mm_setr_epi16(int16_t(width), int16_t(width), int16_t(width), int16_t(width),
                                          int16_t(height), int16_t(height), int16_t(height), int16_t(height));
        const __m128i one = _mm_set1_epi16(1);
        const __m128i fc = _mm_min_epi16(_mm_max_epi16(f, _mm_set1_epi16(-1)), _mm_sub_epi16(wh, one));
        const __m128i nc = _mm_sub_epi16(_mm_setzero_si128(), _mm_min_epi16(_mm_max_epi16(c, _mm_setzero_si128()), wh));
        const __m128i u = _mm_unpacklo_epi16(fc, _mm_srli_si128(fc, 8));  // fx0 fy0 fx1 fy1 ...
        const __m128i w = _mm_unpacklo_epi16(nc, _mm_srli_si128(nc, 8));  // nx0 ny0 nx1 ny1 ...
        _mm_storeu_si128(reinterpret_cast<__m128i*>(code + i), _mm_unpacklo_epi32(u, w));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(code + i + 2), _mm_unpackhi_epi32(u, w));
        // four 12-byte VP records (X, Y, z) = 48 bytes: X0 Y0 z0 X1 | Y1 z1 X2 Y2 | z2 X3 Y3 z3
        static_assert(sizeof(VP) == 12, "VP is packed as three 32-bit fields");
        const __m128 lo = _mm_castsi128_ps(_mm_unpacklo_epi32(X, Y));  // X0 Y0 X1 Y1
        const __m128 hi = _mm_castsi128_ps(_mm_unpackhi_epi32(X, Y));  // X2 Y2 X3 Y3
        const __m128 z0x1 = _mm_shuffle_ps(z, lo, _MM_SHUFFLE(2, 2, 0, 0));  // z0 z0 X1 X1
        const __m128 y1z1 = _mm_shuffle_ps(lo, z, _MM_SHUFFLE(1, 1, 3, 3));  // Y1 Y1 z1 z1
        const __m128 z2x3 = _mm_shuffle_ps(z, hi, _MM_SHUFFLE(2, 2, 2, 2));  // z2 z2 X3 X3
        const __m128 y3z3 = _mm_shuffle_ps(hi, z, _MM_SHUFFLE(3, 3, 3, 3));  // Y3 Y3 z3 z3
        float* out = reinterpret_cast<float*>(p + i);
        _mm_storeu_ps(out, _mm_shuffle_ps(lo, z0x1, _MM_SHUFFLE(2, 0, 1, 0)));      // X0 Y0 z0 X1
        _mm_storeu_ps(out + 4, _mm_shuffle_ps(y1z1, hi, _MM_SHUFFLE(1, 0, 2, 0)));  // Y1 z1 X2 Y2
        _mm_storeu_ps(out + 8, _mm_shuffle_ps(z2x3, y3z3, _MM_SHUFFLE(2, 0, 2, 0)));  // z2 X3 Y3 z3
        return true;
    }
#endif
    (void)V, (void)i, (void)width, (void)height, (void)p, (void)code, (void)acc;
    return false;
}

// True when an index in tris[begin, end) lies outside [0, n_vertices).
inline bool bad_indices(const int32_t* tris, int64_t begin, int64_t end, int64_t n_vertices) {
    if (n_vertices > INT32_MAX) {
        for (int64_t i = begin; i < end; ++i)
            if (tris[i] < 0) return true;
        return false;
    }
    const int32_t last = int32_t(n_vertices - 1);  // -1 for no vertices: every index is bad
    int64_t i = begin;
    bool bad = false;
#ifdef MFIRRN_SSE2
    const __m128i zero = _mm_setzero_si128(), hi = _mm_set1_epi32(last);
    __m128i acc = _mm_setzero_si128();
    for (; i + 4 <= end; i += 4) {  // bad: 0 > v or v > last
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(tris + i));
        acc = _mm_or_si128(acc, _mm_or_si128(_mm_cmpgt_epi32(zero, v), _mm_cmpgt_epi32(v, hi)));
    }
    bad = _mm_movemask_epi8(acc) != 0;
#endif
    for (; i < end; ++i) bad |= (tris[i] < 0) | (tris[i] > last);
    return bad;
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
    bool clear_image;  // zero the image rows before drawing them (no background given)
    float eps;         // visibility
    uint8_t* visible;  // null: no visibility pass
};

// Clears rows [r0, r1) before drawing: depth -inf, triangle id -1 and, when the job asks for it (no
// background) and colours are drawn (CH != 0), the image 0.
template <int CH>
void clear_rows(const Job& job, int r0, int r1) {
    const int64_t a = int64_t(r0) * job.width, b = int64_t(r1) * job.width;
    std::fill(job.depth + a, job.depth + b, -std::numeric_limits<float>::infinity());
    std::fill(job.ids + a, job.ids + b, -1);
    if (CH != 0 && job.clear_image) std::fill(job.image + a * job.channels, job.image + b * job.channels, 0.0f);
}

// The whole render for one code type (int16 codes for images up to 32767 pixels, else int32).
// CH: colour channels (0: none, -1: job.channels at run time), fixed at compile time for the common cases.
template <class I, int CH>
int raster_core(const Job& job, int num_threads, Scratch& sc, Code<I>* code) {
    const float* V = job.V;
    const int64_t n_vertices = job.n_vertices, n_triangles = job.n_triangles;
    const int32_t* tris = job.tris;
    const int height = job.height, width = job.width;
    int nt = resolve_threads(num_threads);
    if (n_triangles < 4096) nt = 1;  // small meshes: not worth waking threads
    grow(sc.pts, size_t(std::max<int64_t>(n_vertices, 1)));
    VP* p = sc.pts.data();
    const Frame frame{job.depth, job.ids, width, job.colors, job.channels, job.image};

    // bands of equal estimated cost, >= 2 rows each (the 2x2 block must fit in a band)
    const int nb = nt == 1 ? 1 : std::max(1, std::min(kBandsPerThread * nt, height / 2));
    // binning chunks: a few per thread (dynamic schedule), each a contiguous range of triangles
    const int64_t n_chunks = nb == 1 ? 1 : std::min<int64_t>(4 * nt, std::max<int64_t>(1, n_triangles / 1024));
    const int64_t chunk = (n_triangles + n_chunks - 1) / n_chunks;
    if (nb > 1) {
        grow(sc.hist, size_t(nt) * height);
        grow(bins_of<I>(sc), size_t(chunk * n_chunks));
        grow(sc.counts, size_t(n_chunks));
        grow(sc.bounds, size_t(nb + 1));
    }
    int32_t* hist = sc.hist.data();
    Binned<I>* bins = bins_of<I>(sc).data();
    int32_t* counts = sc.counts.data();
    int32_t* bounds = sc.bounds.data();

    int status = kOk;
    int32_t bx0 = INT32_MAX, bx1 = INT32_MIN, by0 = INT32_MAX, by1 = INT32_MIN;
    int64_t n_bad = 0;
#pragma omp parallel num_threads(nt)
    {
#ifdef _OPENMP
        const int tid = omp_get_thread_num();
#else
        const int tid = 0;
#endif
        // 1. snap vertices to fixed point, check them, cell codes, bounding box
        SnapAcc acc;
        // dynamic chunks here and below: a thread that the OS deschedules (a busy machine) holds up only the
        // chunk it took, not a static share of every loop
        const int64_t n_blocks = (n_vertices + 3) / 4;
#pragma omp for schedule(dynamic, 512) nowait
        for (int64_t blk = 0; blk < n_blocks; ++blk) {
            const int64_t i = 4 * blk;
            if (i + 4 <= n_vertices && snap4(V, i, width, height, p, code, acc)) continue;
            for (int64_t j = i; j < std::min(i + 4, n_vertices); ++j) snap_one(V, j, width, height, p, code, acc);
        }
        // ... and check every triangle index once, in blocks shared out like the vertices
        bool idx_bad = false;
        const int64_t n_idx = 3 * n_triangles, idx_block = 4096;
#pragma omp for schedule(dynamic, 4) nowait
        for (int64_t k = 0; k < (n_idx + idx_block - 1) / idx_block; ++k)
            idx_bad |= bad_indices(tris, k * idx_block, std::min(n_idx, (k + 1) * idx_block), n_vertices);
        acc.finish();
#pragma omp critical
        {
            if (idx_bad) status |= kBadIndex;
            n_bad += acc.n_bad;
            bx0 = std::min(bx0, acc.x0), bx1 = std::max(bx1, acc.x1);
            by0 = std::min(by0, acc.y0), by1 = std::max(by1, acc.y1);
        }
#pragma omp barrier
        if (n_bad) {  // the same branch in every thread (n_bad is final after the barrier)
#pragma omp single
            for (int64_t i = 0; i < n_vertices; ++i) {
                const float x = V[3 * i], y = V[3 * i + 1], z = V[3 * i + 2];
                if (!(std::isfinite(x) && std::isfinite(y) && std::isfinite(z))) status |= kNonFinite;
                else if (std::fabs(x) > kCoordLimit || std::fabs(y) > kCoordLimit) status |= kOutOfRange;
            }  // implicit barrier
        }
        // nothing to draw: bad vertices, no triangles, or the vertices' box holds no pixel centre
        const bool empty = status != kOk || n_triangles == 0 || n_vertices == 0 ||
                           std::max((bx0 + 255) >> kSubpixelBits, 0) > std::min(bx1 >> kSubpixelBits, width - 1) ||
                           std::max((by0 + 255) >> kSubpixelBits, 0) > std::min(by1 >> kSubpixelBits, height - 1);
        const bool block_ok = width >= 2;
        if (nb == 1) {
            // one band: clear, draw every triangle, shade
#pragma omp single
            {
                clear_rows<CH>(job, 0, height);
                if (!empty) {
                    for (int64_t t = 0; t < n_triangles; ++t) {
                        const uint32_t a = uint32_t(tris[3 * t]), b = uint32_t(tris[3 * t + 1]),
                                       c = uint32_t(tris[3 * t + 2]);
                        Box box;
                        if (!box_of(code, a, b, c, box)) continue;
                        raster_tri<CH>(tris, t, p, box, 0, height - 1, block_ok && height >= 2, job.cull_back, frame);
                    }
                }
            }
        } else {
            // 2. binning: chunk k = triangles [k * chunk, (k + 1) * chunk); the triangles with a pixel centre
            // go to the chunk's list (index and clipped box), their estimated cost to the thread's histogram
            int32_t* h = hist + int64_t(tid) * height;
            std::fill(h, h + height, 0);
#pragma omp for schedule(dynamic, 1) nowait
            for (int64_t k = 0; k < (empty ? 0 : n_chunks); ++k) {
                Binned<I>* list = bins + k * chunk;
                int32_t n = 0;
                const int64_t t_end = std::min(n_triangles, (k + 1) * chunk);
                for (int64_t t = k * chunk; t < t_end; ++t) {
                    const uint32_t a = uint32_t(tris[3 * t]), b = uint32_t(tris[3 * t + 1]), c = uint32_t(tris[3 * t + 2]);
                    Box box;
                    if (!box_of(code, a, b, c, box)) continue;
                    list[n++] = Binned<I>{int32_t(t), I(box.x0), I(box.x1), I(box.y0), I(box.y1)};
                    // cost, counted at the box's top row: a fixed part per triangle plus its box's pixels
                    h[box.y0] += 8 + (box.x1 - box.x0 + 1) * (box.y1 - box.y0 + 1);
                }
                counts[k] = n;
            }
#pragma omp barrier
#pragma omp single
            {
                // band boundaries: equal shares of the estimated cost, >= 2 rows each
                int64_t total = 0;
                for (int r = 0; r < height; ++r) {
                    int32_t s = 0;
                    for (int k = 0; k < nt; ++k) s += hist[int64_t(k) * height + r];
                    hist[r] = s;
                    total += s;
                }
                bounds[0] = 0;
                int64_t acc_cost = 0;
                int b = 1;
                for (int r = 0; r < height && b < nb; ++r) {
                    acc_cost += hist[r];
                    while (b < nb && acc_cost * nb >= total * b) bounds[b++] = r + 1;
                }
                while (b < nb) bounds[b++] = height;
                bounds[nb] = height;
                for (int k = 1; k < nb; ++k) bounds[k] = std::max(bounds[k], bounds[k - 1] + 2);
                for (int k = nb - 1; k >= 1; --k) bounds[k] = std::min(bounds[k], bounds[k + 1] - 2);
            }  // implicit barrier
            // 3. bands (dynamic schedule): clear the band's rows, then draw (and colour) the triangles that
            // reach it, list by list = in index order, so every pixel sees the single-threaded sequence
#pragma omp for schedule(dynamic, 1) nowait
            for (int band = 0; band < nb; ++band) {
                const int r0 = bounds[band], r1 = bounds[band + 1] - 1;
                clear_rows<CH>(job, r0, r1 + 1);
                if (!empty && status == kOk) {
                    for (int64_t k = 0; k < n_chunks; ++k) {
                        const Binned<I>* list = bins + k * chunk;
                        const int32_t n = counts[k];
                        for (int32_t j = 0; j < n; ++j) {
                            const Binned<I> e = list[j];
                            if (e.y1 < r0 || e.y0 > r1) continue;
                            raster_tri<CH>(tris, e.t, p, Box{e.x0, e.x1, e.y0, e.y1}, r0, r1, block_ok,
                                           job.cull_back, frame);
                        }
                    }
                }
            }
            if (job.visible) {  // visibility reads other bands' depth
#pragma omp barrier
            }
        }
        // 4. visibility: vertex v is visible when its nearest pixel (round half up) is inside the image
        // and z_v >= min(depth) - eps over the pixel centres around it (its bilinear footprint: floor and
        // floor + 1 in each axis, + 1 only off the centre; those inside the image). One pixel's depth is
        // the surface's depth up to half a pixel away from the vertex, which on steep surfaces (nose
        // sides, cheek contour, jaw) differs from z_v by far more than eps; the footprint's nearest
        // centre bounds the own surface's depth at the vertex from below, while an occluder still
        // covers all four.
        if (job.visible && status == kOk) {
            constexpr int32_t frac = (1 << kSubpixelBits) - 1;
#pragma omp for schedule(dynamic, 2048)
            for (int64_t i = 0; i < n_vertices; ++i) {
                const int32_t X = p[i].x, Y = p[i].y;
                const int32_t px = (X + (1 << (kSubpixelBits - 1))) >> kSubpixelBits;
                const int32_t py = (Y + (1 << (kSubpixelBits - 1))) >> kSubpixelBits;
                bool vis = false;
                if (px >= 0 && px < width && py >= 0 && py < height) {
                    const int32_t x0 = std::max(X >> kSubpixelBits, 0), y0 = std::max(Y >> kSubpixelBits, 0);
                    const int32_t x1 = std::min((X & frac) ? (X >> kSubpixelBits) + 1 : x0, width - 1);
                    const int32_t y1 = std::min((Y & frac) ? (Y >> kSubpixelBits) + 1 : y0, height - 1);
                    float dmin = std::numeric_limits<float>::infinity();
                    for (int32_t yy = y0; yy <= y1; ++yy)
                        for (int32_t xx = x0; xx <= x1; ++xx) dmin = std::min(dmin, job.depth[int64_t(yy) * width + xx]);
                    vis = p[i].z >= dmin - job.eps;
                }
                job.visible[i] = vis;
            }
        }
    }
    return status;
}

template <class I>
int run_channels(const Job& job, int num_threads, Scratch& sc, Code<I>* code) {
    switch (job.colors && job.image ? job.channels : 0) {
        case 0: return raster_core<I, 0>(job, num_threads, sc, code);
        case 1: return raster_core<I, 1>(job, num_threads, sc, code);
        case 2: return raster_core<I, 2>(job, num_threads, sc, code);
        case 3: return raster_core<I, 3>(job, num_threads, sc, code);
        case 4: return raster_core<I, 4>(job, num_threads, sc, code);
        default: return raster_core<I, -1>(job, num_threads, sc, code);
    }
}

int run(const Job& job, int num_threads) {
    Scratch& sc = scratch();
    const size_t n = size_t(std::max<int64_t>(job.n_vertices, 1));
    if (job.width <= 32767 && job.height <= 32767) {
        grow(sc.code16, n);
        return run_channels<int16_t>(job, num_threads, sc, sc.code16.data());
    }
    grow(sc.code32, n);
    return run_channels<int32_t>(job, num_threads, sc, sc.code32.data());
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
              int channels, float* image, bool clear_image) {
    const Job job{vertices, n_vertices, triangles, n_triangles, height, width, cull_back, depth, triangle_id,
                  colors, channels, image, clear_image, 0.0f, nullptr};
    return run(job, num_threads);
}

int rasterize_naive(const float* V, int64_t n_vertices, const int32_t* T, int64_t n_triangles, int height, int width,
                    float* depth, const float* C, int channels, float* image) {
    std::fill(depth, depth + int64_t(height) * width, -std::numeric_limits<float>::infinity());
    for (int64_t t = 0; t < n_triangles; ++t) {
        const int32_t ia = T[3 * t], ib = T[3 * t + 1], ic = T[3 * t + 2];
        if (std::min({ia, ib, ic}) < 0 || std::max({ia, ib, ic}) >= n_vertices) return kBadIndex;
        const float *a = V + 3 * int64_t(ia), *b = V + 3 * int64_t(ib), *c = V + 3 * int64_t(ic);
        const float lx = std::min({a[0], b[0], c[0]}), hx = std::max({a[0], b[0], c[0]});
        const float ly = std::min({a[1], b[1], c[1]}), hy = std::max({a[1], b[1], c[1]});
        if (!(lx >= -kCoordLimit && hx <= kCoordLimit && ly >= -kCoordLimit && hy <= kCoordLimit)) return kOutOfRange;
        const int x0 = std::max(0, int(std::ceil(lx))), x1 = std::min(width - 1, int(std::floor(hx)));
        const int y0 = std::max(0, int(std::ceil(ly))), y1 = std::min(height - 1, int(std::floor(hy)));
        const float area = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]);
        if (x0 > x1 || y0 > y1 || area == 0) continue;
        for (int y = y0; y <= y1; ++y) {
            for (int x = x0; x <= x1; ++x) {
                const float w0 = ((b[0] - x) * (c[1] - y) - (b[1] - y) * (c[0] - x)) / area;
                const float w1 = ((c[0] - x) * (a[1] - y) - (c[1] - y) * (a[0] - x)) / area;
                const float w2 = 1 - w0 - w1;
                if (w0 < 0 || w1 < 0 || w2 < 0) continue;
                const float z = w0 * a[2] + w1 * b[2] + w2 * c[2];
                const int64_t pix = int64_t(y) * width + x;
                if (z > depth[pix]) {
                    depth[pix] = z;
                    const float *ca = C + int64_t(ia) * channels, *cb = C + int64_t(ib) * channels,
                                *cc = C + int64_t(ic) * channels;
                    for (int k = 0; k < channels; ++k) image[pix * channels + k] = w0 * ca[k] + w1 * cb[k] + w2 * cc[k];
                }
            }
        }
    }
    return kOk;
}

int visibility(const float* vertices, int64_t n_vertices, const int32_t* triangles, int64_t n_triangles, int height,
               int width, bool cull_back, int num_threads, float eps, float* depth, int32_t* triangle_id,
               uint8_t* visible) {
    const Job job{vertices, n_vertices, triangles, n_triangles, height, width, cull_back, depth, triangle_id,
                  nullptr, 0, nullptr, false, eps, visible};
    return run(job, num_threads);
}

}  // namespace mfirrn
