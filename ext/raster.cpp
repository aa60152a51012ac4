// Z-buffer triangle rasterizer; conventions in raster.hpp.
//
// How it is fast (the BFM mesh has ~1e5 triangles of about one pixel each at 450x450 and far below a
// pixel at 120x120, so per-triangle cost dominates):
//  1. vertices are snapped to 24.8 fixed point once (parallel over vertices), which also yields the
//     mesh's bounding box (the only region that needs clearing in private buffers and merging);
//  2. depth pass, parallel over chunks of triangles (dynamic schedule, index order within a chunk):
//     a triangle whose bounding box holds no pixel centre is rejected with a few integer ops and one
//     rarely-taken branch; boxes of at most 2x2 centres (most BFM triangles) take a straight-line,
//     branch-free path; larger ones step integer edge functions incrementally. Thread 0 draws into the
//     output, thread k > 0 into a private buffer, so no locks or atomics;
//  3. rows are merged (larger depth, then lower triangle index: the single-threaded result exactly)
//     and, in the same row-parallel loop, colours are interpolated once per covered pixel from the
//     winning triangle (deferred shading: no colour work for overwritten fragments).
#include "raster.hpp"

#include <algorithm>
#include <cmath>
#include <climits>
#include <limits>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace mfirrn {
namespace {

struct Pt {
    int32_t x, y;  // fixed point, 1/256 pixel
};

// Per-calling-thread scratch, grown on demand and reused across calls.
struct Scratch {
    std::vector<Pt> pts;
    std::vector<float> depth;  // private depth buffers of threads 1..n-1
    std::vector<int32_t> ids;
};

Scratch& scratch() {
    thread_local Scratch s;
    return s;
}

template <class T>
void grow(std::vector<T>& v, size_t n) {
    if (v.size() < n) v.resize(n);
}

// A triangle with positive area: vertex indices and fixed-point coordinates.
struct Tri {
    int32_t v0, v1, v2;
    int64_t x0, y0, x1, y1, x2, y2;
    int64_t area;  // twice the signed area, > 0 after orientation
};

// Loads triangle t oriented to positive area. False for zero-area or (with cull_back) back faces.
inline bool setup(const int32_t* tris, int64_t t, const Pt* p, bool cull_back, Tri& s) {
    int32_t a = tris[3 * t], b = tris[3 * t + 1], c = tris[3 * t + 2];
    int64_t area = int64_t(p[b].x - p[a].x) * (p[c].y - p[a].y) - int64_t(p[b].y - p[a].y) * (p[c].x - p[a].x);
    if (area == 0 || (area < 0 && cull_back)) return false;
    if (area < 0) {
        std::swap(b, c);
        area = -area;
    }
    s.v0 = a, s.v1 = b, s.v2 = c;
    s.x0 = p[a].x, s.y0 = p[a].y, s.x1 = p[b].x, s.y1 = p[b].y, s.x2 = p[c].x, s.y2 = p[c].y;
    s.area = area;
    return true;
}

// Edge i is opposite vertex i: E(P) = A*(Px - ax) + B*(Py - ay), positive inside.
// Top-left rule: a pixel centre exactly on the edge (E == 0) is inside when the interior normal
// (A, B) points right (A > 0, a left edge) or, for a horizontal edge, down (A == 0, B > 0, a top edge).
inline int64_t tl_bias(int64_t A, int64_t B) { return (A > 0 || (A == 0 && B > 0)) ? 0 : -1; }

// A depth / triangle-id buffer covering the image rectangle [x0, x0 + w) x [y0, y0 + h).
struct Target {
    float* depth;
    int32_t* ids;
    int64_t stride;
    int x0, y0;
    int64_t at(int x, int y) const { return int64_t(y - y0) * stride + (x - x0); }
};

// Depth pass of one triangle over the pixel box [px0, px1] x [py0, py1] (already clipped).
inline void raster_tri(const Tri& s, int32_t tid, const float* V, int px0, int px1, int py0, int py1,
                       const Target& tg) {
    const int64_t A0 = s.y1 - s.y2, B0 = s.x2 - s.x1;
    const int64_t A1 = s.y2 - s.y0, B1 = s.x0 - s.x2;
    const int64_t A2 = s.y0 - s.y1, B2 = s.x1 - s.x0;
    const int64_t k0 = tl_bias(A0, B0), k1 = tl_bias(A1, B1), k2 = tl_bias(A2, B2);
    const int64_t Px = int64_t(px0) << kSubpixelBits, Py = int64_t(py0) << kSubpixelBits;
    // biased edge values: inside <=> all three >= 0
    int64_t r0 = A0 * (Px - s.x1) + B0 * (Py - s.y1) + k0;
    int64_t r1 = A1 * (Px - s.x2) + B1 * (Py - s.y2) + k1;
    int64_t r2 = A2 * (Px - s.x0) + B2 * (Py - s.y0) + k2;
    const int64_t sx0 = A0 << kSubpixelBits, sx1 = A1 << kSubpixelBits, sx2 = A2 << kSubpixelBits;
    const int64_t sy0 = B0 << kSubpixelBits, sy1 = B1 << kSubpixelBits, sy2 = B2 << kSubpixelBits;
    const double z0 = V[3 * int64_t(s.v0) + 2], z1 = V[3 * int64_t(s.v1) + 2], z2 = V[3 * int64_t(s.v2) + 2];
    const double inv = 1.0 / double(s.area);
    if (px1 - px0 <= 1 && py1 - py0 <= 1) {
        // Most BFM triangles: at most 2x2 pixel centres. Straight-line, branch-free code (the general
        // loop's short trip counts and inside tests are unpredictable branches).
        const int qx = px1 - px0, qy = py1 - py0;
        auto fragment = [&](int i, int j) {
            const int64_t e0 = r0 + i * sx0 + j * sy0, e1 = r1 + i * sx1 + j * sy1, e2 = r2 + i * sx2 + j * sy2;
            const bool in = ((e0 | e1 | e2) >= 0) & (i <= qx) & (j <= qy);
            const int64_t at = tg.at(px0 + (i & qx), py0 + (j & qy));  // clamped into the box
            const float zf = float((double(e0 - k0) * z0 + double(e1 - k1) * z1 + double(e2 - k2) * z2) * inv);
            const float old = tg.depth[at];
            const bool win = in & (zf > old);
            tg.depth[at] = win ? zf : old;
            tg.ids[at] = win ? tid : tg.ids[at];
        };
        fragment(0, 0);
        fragment(1, 0);
        fragment(0, 1);
        fragment(1, 1);
        return;
    }
    for (int y = py0; y <= py1; ++y) {
        int64_t e0 = r0, e1 = r1, e2 = r2;
        float* drow = tg.depth + tg.at(0, y);
        int32_t* irow = tg.ids + tg.at(0, y);
        for (int x = px0; x <= px1; ++x) {
            if ((e0 | e1 | e2) >= 0) {
                const double z = (double(e0 - k0) * z0 + double(e1 - k1) * z1 + double(e2 - k2) * z2) * inv;
                const float zf = float(z);
                if (zf > drow[x]) {
                    drow[x] = zf;
                    irow[x] = tid;
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

// Depth pass of triangles [t_begin, t_end) into tg, in index order.
void raster_range(const int32_t* tris, int64_t t_begin, int64_t t_end, const Pt* p, const float* V, int64_t n_vertices,
                  int cx0, int cx1, int cy0, int cy1, bool cull_back, const Target& tg, int& status) {
    for (int64_t t = t_begin; t < t_end; ++t) {
        const uint32_t a = uint32_t(tris[3 * t]), b = uint32_t(tris[3 * t + 1]), c = uint32_t(tris[3 * t + 2]);
        if (a >= uint64_t(n_vertices) || b >= uint64_t(n_vertices) || c >= uint64_t(n_vertices)) {
            status |= kBadIndex;
            continue;
        }
        const Pt pa = p[a], pb = p[b], pc = p[c];
        // pixel centres in the bounding box: ceil(min / 256) .. floor(max / 256), clipped; most BFM
        // triangles in a small image hold none and leave here
        const int px0 = std::max((std::min({pa.x, pb.x, pc.x}) + 255) >> kSubpixelBits, cx0);
        const int px1 = std::min(std::max({pa.x, pb.x, pc.x}) >> kSubpixelBits, cx1);
        const int py0 = std::max((std::min({pa.y, pb.y, pc.y}) + 255) >> kSubpixelBits, cy0);
        const int py1 = std::min(std::max({pa.y, pb.y, pc.y}) >> kSubpixelBits, cy1);
        if ((px0 > px1) | (py0 > py1)) continue;  // one rarely-taken branch instead of two random ones
        Tri s{};
        if (!setup(tris, t, p, cull_back, s)) continue;
        raster_tri(s, int32_t(t), V, px0, px1, py0, py1, tg);
    }
}

// Colour pass over rows [y0, y1], columns [x0, x1]: barycentric interpolation of the winning
// triangle's colours (CH > 0: channel count known at compile time; CH == 0: `channels`).
template <int CH>
void shade_rows(const int32_t* tris, const Pt* p, const float* colors, int channels, int x0, int x1, int y0, int y1,
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
            const Pt pa = p[a], pb = p[b], pc = p[c];
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

void shade_rows_any(const int32_t* tris, const Pt* p, const float* colors, int channels, int x0, int x1, int y0,
                    int y1, int width, const int32_t* ids, float* image) {
    switch (channels) {
        case 1: return shade_rows<1>(tris, p, colors, 1, x0, x1, y0, y1, width, ids, image);
        case 2: return shade_rows<2>(tris, p, colors, 2, x0, x1, y0, y1, width, ids, image);
        case 3: return shade_rows<3>(tris, p, colors, 3, x0, x1, y0, y1, width, ids, image);
        case 4: return shade_rows<4>(tris, p, colors, 4, x0, x1, y0, y1, width, ids, image);
        default: return shade_rows<0>(tris, p, colors, channels, x0, x1, y0, y1, width, ids, image);
    }
}

// Shared body of rasterize() and visibility(); leaves the snapped vertices in sc.pts.
//
// Parallel scheme: threads take chunks of triangles (dynamic schedule, each chunk in index order);
// thread 0 draws into the output buffers, thread k > 0 into a private buffer covering the mesh's
// bounding box; the buffers are then merged row-parallel keeping the larger depth and, at equal depth,
// the lower triangle index -- exactly the single-threaded result.
int raster_core(const float* V, int64_t n_vertices, const int32_t* tris, int64_t n_triangles, int height, int width,
                bool cull_back, int num_threads, float* depth, int32_t* ids, const float* colors, int channels,
                float* image, Scratch& sc) {
    int nt = resolve_threads(num_threads);
    const float inf = std::numeric_limits<float>::infinity();
    grow(sc.pts, size_t(std::max<int64_t>(n_vertices, 1)));
    Pt* p = sc.pts.data();
    int status = kOk;
    // 1. snap vertices to fixed point, check them, and find their bounding box
    int32_t bx0 = INT32_MAX, bx1 = INT32_MIN, by0 = INT32_MAX, by1 = INT32_MIN;
    const int snap_threads = n_vertices > 16384 ? nt : 1;
    int64_t n_bad = 0;
#pragma omp parallel for num_threads(snap_threads) schedule(static) reduction(+ : n_bad) \
    reduction(min : bx0, by0) reduction(max : bx1, by1)
    for (int64_t i = 0; i < n_vertices; ++i) {
        const float x = V[3 * i], y = V[3 * i + 1], z = V[3 * i + 2];
        // branch-free so that it vectorizes; NaN fails every comparison
        const bool ok = (std::fabs(x) <= float(kCoordLimit)) & (std::fabs(y) <= float(kCoordLimit)) &
                        (std::fabs(z) <= std::numeric_limits<float>::max());
        const int32_t X = floor_to_int(ok ? double(x) * (1 << kSubpixelBits) + 0.5 : 0.0);
        const int32_t Y = floor_to_int(ok ? double(y) * (1 << kSubpixelBits) + 0.5 : 0.0);
        p[i] = {X, Y};
        bx0 = std::min(bx0, ok ? X : INT32_MAX), bx1 = std::max(bx1, ok ? X : INT32_MIN);
        by0 = std::min(by0, ok ? Y : INT32_MAX), by1 = std::max(by1, ok ? Y : INT32_MIN);
        n_bad += !ok;
    }
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
    const bool empty = status != kOk || cx0 > cx1 || cy0 > cy1 || n_triangles == 0;
    if (empty || n_triangles < 4096) nt = 1;  // small meshes: not worth waking threads
    const int cw = empty ? 0 : cx1 - cx0 + 1, ch = empty ? 0 : cy1 - cy0 + 1;
    const int64_t box = int64_t(cw) * ch;
    grow(sc.depth, size_t(std::max<int64_t>(box * (nt - 1), 1)));
    grow(sc.ids, size_t(std::max<int64_t>(box * (nt - 1), 1)));
    const int64_t chunk = std::max<int64_t>(2048, n_triangles / (16 * int64_t(nt)));
    const int64_t n_chunks = (n_triangles + chunk - 1) / chunk;

#pragma omp parallel num_threads(nt) reduction(| : status)
    {
#ifdef _OPENMP
        const int tid = omp_get_thread_num();
#else
        const int tid = 0;
#endif
        // 2. clear: thread 0 clears the output, thread k its private buffer (box rows only)
        Target tg{depth, ids, width, 0, 0};
        if (tid == 0) {
            std::fill(depth, depth + int64_t(height) * width, -inf);
            std::fill(ids, ids + int64_t(height) * width, -1);
        } else {
            tg = Target{sc.depth.data() + box * (tid - 1), sc.ids.data() + box * (tid - 1), cw, cx0, cy0};
            std::fill(tg.depth, tg.depth + box, -inf);
            std::fill(tg.ids, tg.ids + box, -1);
        }
        // 3. depth pass, chunks of triangles in index order within each thread
        if (!empty) {
#pragma omp for schedule(dynamic, 1)
            for (int64_t k = 0; k < n_chunks; ++k) {
                raster_range(tris, k * chunk, std::min(n_triangles, (k + 1) * chunk), p, V, n_vertices, cx0, cx1,
                             cy0, cy1, cull_back, tg, status);
            }  // implicit barrier
        }
        // 4. merge the private buffers into the output, then interpolate colours, row by row
        if (!empty) {
            const int nth = nt;
#pragma omp for schedule(dynamic, 4)
            for (int y = cy0; y <= cy1; ++y) {
                float* drow = depth + int64_t(y) * width;
                int32_t* irow = ids + int64_t(y) * width;
                for (int k = 1; k < nth; ++k) {
                    const float* dk = sc.depth.data() + box * (k - 1) + int64_t(y - cy0) * cw - cx0;
                    const int32_t* ik = sc.ids.data() + box * (k - 1) + int64_t(y - cy0) * cw - cx0;
                    for (int x = cx0; x <= cx1; ++x) {
                        if (dk[x] > drow[x] || (dk[x] == drow[x] && ik[x] >= 0 && uint32_t(ik[x]) < uint32_t(irow[x]))) {
                            drow[x] = dk[x];
                            irow[x] = ik[x];
                        }
                    }
                }
                if (colors && image) shade_rows_any(tris, p, colors, channels, cx0, cx1, y, y, width, ids, image);
            }
        }
    }
    return status;
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
    return raster_core(vertices, n_vertices, triangles, n_triangles, height, width, cull_back, num_threads, depth,
                       triangle_id, colors, channels, image, scratch());
}

int visibility(const float* vertices, int64_t n_vertices, const int32_t* triangles, int64_t n_triangles, int height,
               int width, bool cull_back, int num_threads, float eps, float* depth, int32_t* triangle_id,
               uint8_t* visible) {
    Scratch& sc = scratch();
    const int status = raster_core(vertices, n_vertices, triangles, n_triangles, height, width, cull_back,
                                   num_threads, depth, triangle_id, nullptr, 0, nullptr, sc);
    if (status != kOk) return status;
    const Pt* p = sc.pts.data();
    const int nt = resolve_threads(num_threads);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < n_vertices; ++i) {
        // nearest pixel centre, round half up: floor(x + 0.5) on the snapped coordinate
        const int32_t px = (p[i].x + (1 << (kSubpixelBits - 1))) >> kSubpixelBits;
        const int32_t py = (p[i].y + (1 << (kSubpixelBits - 1))) >> kSubpixelBits;
        bool vis = false;
        if (px >= 0 && px < width && py >= 0 && py < height) {
            vis = vertices[3 * i + 2] >= depth[int64_t(py) * width + px] - eps;
        }
        visible[i] = vis;
    }
    return kOk;
}

}  // namespace mfirrn
