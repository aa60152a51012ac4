"""The robust refinement's rules on hand-made cases: the roi test and the mean of passes."""

import numpy as np
import pytest
import torch

from mfirrn.geometry.params import PARAM_SPEC, split_params
from mfirrn.inference.pipeline import average_passes, refined_roi_agrees


def _params(seed: int, n: int = 2) -> torch.Tensor:
    """Plausible de-normalised params (magnitudes as mb05 predicts them on photos)."""
    g = torch.Generator().manual_seed(seed)
    p = torch.zeros(n, PARAM_SPEC.dim, dtype=torch.float64)
    for i in range(n):
        a = torch.rand(3, generator=g, dtype=torch.float64) - 0.5
        R = torch.linalg.matrix_exp(torch.tensor([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]]))
        t = torch.tensor([[60.0], [70.0], [65.0]]) + 5 * torch.randn(3, 1, generator=g, dtype=torch.float64)
        p[i, :12] = torch.cat([4e-4 * R, t], 1).reshape(-1)
        p[i, PARAM_SPEC.shape_slice] = 3e4 * torch.randn(40, generator=g, dtype=torch.float64)
        p[i, PARAM_SPEC.exp_slice] = 0.3 * torch.randn(10, generator=g, dtype=torch.float64)
    return p


ROI_A = np.array([[100.0, 50, 300, 250], [0, 0, 120, 120]])
ROI_B = np.array([[90.0, 70, 310, 290], [10, -5, 110, 95]])


@pytest.mark.parametrize("convention", ["v1", "v2"])
def test_average_of_one_pass_moved_to_another_crop_keeps_the_mesh(bfm, convention):
    """One pass re-expressed for another crop: the same vertices in the image."""
    p = _params(0)
    q = average_passes([p], [ROI_A], ROI_B, convention)
    va = bfm.vertices(p.float(), convention=convention, roi=torch.tensor(ROI_A, dtype=torch.float32))
    vb = bfm.vertices(q.float(), convention=convention, roi=torch.tensor(ROI_B, dtype=torch.float32))
    assert torch.allclose(va, vb, atol=2e-3)
    assert torch.allclose(split_params(q).alpha_shp, split_params(p).alpha_shp)


@pytest.mark.parametrize("convention", ["v1", "v2"])
def test_average_of_passes_with_the_same_face_is_the_mean_mesh(bfm, convention):
    """Passes that agree on shape and expression but not on the camera (and see different crops):
    the averaged params give exactly the mean of their meshes in the image."""
    p1, p2 = _params(1), _params(2)
    p2[:, 12:] = p1[:, 12:]
    q = average_passes([p1, p2], [ROI_A, ROI_B], ROI_B, convention)
    roi = lambda r: torch.tensor(r, dtype=torch.float64)  # noqa: E731
    bfm64 = bfm.to(torch.float64)  # the same module: put back to float32 below
    try:
        v1 = bfm64.vertices(p1, convention=convention, roi=roi(ROI_A))
        v2 = bfm64.vertices(p2, convention=convention, roi=roi(ROI_B))
        vq = bfm64.vertices(q, convention=convention, roi=roi(ROI_B))
    finally:
        bfm.to(torch.float32)
    assert torch.allclose(vq, (v1 + v2) / 2, atol=1e-6)


def test_mean_of_passes_bounds_the_error(bfm):
    """Triangle inequality: the averaged landmarks are no further from a target than the passes' mean
    distance, so one bad pass out of three costs at most a third of its error."""
    p1, p2, p3 = _params(3), _params(4), _params(5)
    p2[:, 12:] = p3[:, 12:] = p1[:, 12:]
    lm = lambda p, r: bfm.landmarks(p.float(), convention="v2", roi=torch.tensor(r, dtype=torch.float32))  # noqa: E731
    target = lm(p1, ROI_A)
    q = average_passes([p1, p2, p3], [ROI_A, ROI_B, ROI_A], ROI_B, "v2")
    err = lambda l: (l - target)[..., :2].norm(dim=-1).mean(-1)  # noqa: E731
    assert (err(lm(q, ROI_B)) <= (err(lm(p1, ROI_A)) + err(lm(p2, ROI_B)) + err(lm(p3, ROI_A))) / 3 + 1e-3).all()


def test_roi_test_keeps_settling_steps_and_refuses_jumps():
    first = np.array([[0.0, 0, 100, 100]] * 4)
    second = np.array([[10.0, 10, 100, 100],    # shrinks onto the face
                       [80.0, 0, 180, 100],     # jumps beside it (IoU 1/9)
                       [10.0, 10, 100, 100],    # then moves away again, far
                       [20.0, 20, 110, 110]])   # moves, and the next step moves less than 0.5 IoU but more than this one
    third = np.array([[11.0, 11, 99, 99],
                      [81.0, 0, 181, 100],
                      [60.0, 60, 150, 150],
                      [60.0, 60, 150, 150]])
    assert refined_roi_agrees(first, second, third).tolist() == [True, False, False, False]


@pytest.mark.parametrize("convention", ["v1", "v2"])
def test_average_passes_agrees_with_the_trackers_image_camera(convention):
    """The passes are averaged in the image frame: the mean of their image cameras and coefficients."""
    from mfirrn.geometry.frames import params_from_image_camera, params_to_image_camera

    p1, p2 = _params(6).numpy(), _params(7).numpy()
    M = (params_to_image_camera(p1, ROI_A, convention) + params_to_image_camera(p2, ROI_B, convention)) / 2
    ref = params_from_image_camera(M, (p1[:, 12:] + p2[:, 12:]) / 2, ROI_B, convention)
    got = average_passes([torch.tensor(p1), torch.tensor(p2)], [ROI_A, ROI_B], ROI_B, convention).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9)
