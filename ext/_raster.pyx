# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
# distutils: language = c++
"""Private binding of ext/raster.cpp; use :mod:`mfirrn.render`, which owns dtype, contiguity, allocation
and all argument checks. Each function returns the core's status bits (0 = success)."""

from libc.stdint cimport int32_t, int64_t, uint8_t

cdef extern from "raster.hpp" namespace "mfirrn":
    int c_max_threads "mfirrn::max_threads"() nogil
    int c_rasterize "mfirrn::rasterize"(const float*, int64_t, const int32_t*, int64_t, int, int, bint, int,
                                        float*, int32_t*, const float*, int, float*, bint) nogil
    int c_visibility "mfirrn::visibility"(const float*, int64_t, const int32_t*, int64_t, int, int, bint, int,
                                          float, float*, int32_t*, uint8_t*) nogil
    int c_rasterize_naive "mfirrn::rasterize_naive"(const float*, int64_t, const int32_t*, int64_t, int, int, float*,
                                                    const float*, int, float*) nogil


def max_threads():
    return c_max_threads()


def rasterize(const float[:, ::1] vertices, const int32_t[:, ::1] triangles, int height, int width,
              bint cull_back, int num_threads, float[:, ::1] depth, int32_t[:, ::1] triangle_id,
              const float[:, ::1] colors=None, float[:, :, ::1] image=None, bint clear_image=False):
    cdef const float* v = &vertices[0, 0] if vertices.shape[0] else NULL
    cdef const int32_t* t = &triangles[0, 0] if triangles.shape[0] else NULL
    cdef const float* c = NULL
    cdef float* im = NULL
    cdef int channels = 0
    cdef int status
    if colors is not None and image is not None and colors.shape[0]:
        c, im, channels = &colors[0, 0], &image[0, 0, 0], <int>colors.shape[1]
    with nogil:
        status = c_rasterize(v, vertices.shape[0], t, triangles.shape[0], height, width, cull_back, num_threads,
                             &depth[0, 0], &triangle_id[0, 0], c, channels, im, clear_image)
    return status


def visibility(const float[:, ::1] vertices, const int32_t[:, ::1] triangles, int height, int width,
               bint cull_back, int num_threads, float eps, float[:, ::1] depth, int32_t[:, ::1] triangle_id,
               uint8_t[::1] visible):
    cdef const float* v = &vertices[0, 0] if vertices.shape[0] else NULL
    cdef const int32_t* t = &triangles[0, 0] if triangles.shape[0] else NULL
    cdef uint8_t* out = &visible[0] if visible.shape[0] else NULL
    cdef int status
    with nogil:
        status = c_visibility(v, vertices.shape[0], t, triangles.shape[0], height, width, cull_back, num_threads,
                              eps, &depth[0, 0], &triangle_id[0, 0], out)
    return status


def rasterize_naive(const float[:, ::1] vertices, const int32_t[:, ::1] triangles, int height, int width,
                    float[:, ::1] depth, const float[:, ::1] colors, float[:, :, ::1] image):
    """The straightforward z-buffer that benchmarks/render.py times as its baseline (see raster.hpp)."""
    cdef int status
    if vertices.shape[0] == 0 or triangles.shape[0] == 0 or height == 0 or width == 0:
        return 0
    with nogil:
        status = c_rasterize_naive(&vertices[0, 0], vertices.shape[0], &triangles[0, 0], triangles.shape[0], height,
                                   width, &depth[0, 0], &colors[0, 0], <int>colors.shape[1], &image[0, 0, 0])
    return status
