"""Overlay labels that stay readable: placed next to their face, never overlapping, inside the image, else numbered."""

import itertools

import numpy as np
import pytest

from mfirrn.vis.labels import TextStyle, draw_labels, layout_labels

STYLE = TextStyle(0.5, 1, 3)


def _overlap(a, b) -> int:
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


def _check(layout, shape):
    """Every rectangle inside the image, no two overlapping; returns them."""
    rects = [lab.rect for lab in layout.labels]
    for x0, y0, x1, y1 in rects:
        assert 0 <= x0 < x1 <= shape[1] and 0 <= y0 < y1 <= shape[0], (x0, y0, x1, y1)
    for a, b in itertools.combinations(rects, 2):
        assert _overlap(a, b) == 0, (a, b)
    return rects


def test_second_label_moves_below_its_face_when_the_place_above_is_taken():
    """Two faces side by side, 20 px apart: the first (higher) takes the spot above its box, left-aligned;
    every spot above the second box meets it, so the second goes below its box, left-aligned."""
    w, h = STYLE.size("yaw -10 pitch 3 roll 2")
    boxes = [(40, 60, 100, 120), (60, 62, 120, 122)]
    lay = layout_labels(["yaw -10 pitch 3 roll 2"] * 2, boxes, (300, 400), STYLE)
    assert not lay.numbered
    first, second = lay.labels
    assert first.face == 0 and first.rect == (40, 60 - 3 - h, 40 + w, 60 - 3)
    assert second.face == 1 and second.rect == (60, 122 + 3, 60 + w, 122 + 3 + h)
    _check(lay, (300, 400))


def test_label_at_the_image_edge_stays_inside():
    w, h = STYLE.size("yaw 80 pitch 0 roll 0")
    lay = layout_labels(["yaw 80 pitch 0 roll 0"], [(370, 2, 420, 60)], (200, 400), STYLE)  # box leaves the image
    (lab,) = lay.labels
    assert lab.rect[2] == 400 and lab.rect[2] - lab.rect[0] == w  # pushed left to the image's right edge
    _check(lay, (200, 400))


def test_faces_whose_labels_would_hide_each_other_are_numbered():
    """Two faces side by side in a strip 50 pixels high: the first face's label fits only over its neighbour (more
    than COVER_AT_MOST of its box), so both are numbered, with the legend; asked for full labels
    (``numbered=False``), the first one covers its neighbour. With room above and below (80 pixels), full labels."""
    from mfirrn.vis.labels import COVER_AT_MOST

    text = "yaw -10 pitch 3 roll 2"
    boxes = [(10, 10, 50, 40), (60, 10, 100, 40)]
    lay = layout_labels([text] * 2, boxes, (50, 200), STYLE)
    assert lay.numbered and any(lab.face == -1 for lab in lay.labels)
    _check(lay, (50, 200))
    full = layout_labels([text] * 2, boxes, (50, 200), STYLE, numbered=False)
    first = next(lab for lab in full.labels if lab.face == 0)
    assert _overlap(first.rect, boxes[1]) > COVER_AT_MOST * _overlap(boxes[1], boxes[1])
    roomy = layout_labels([text] * 2, boxes, (80, 200), STYLE)
    assert not roomy.numbered and len(roomy.labels) == 2
    _check(roomy, (80, 200))


def test_crowd_is_numbered_with_a_legend():
    """36 faces in a 6x6 grid, 40 px apart, in a 260x260 image: full labels cannot all find a place, so
    every face gets its number and the texts go to one legend; nothing overlaps, all inside."""
    boxes = [(10 + 40 * c, 10 + 40 * r, 40 + 40 * c, 40 + 40 * r) for r in range(6) for c in range(6)]
    texts = [f"yaw {i} pitch {-i} roll {i % 7}" for i in range(36)]
    lay = layout_labels(texts, boxes, (260, 260))
    assert lay.numbered
    legend = [lab for lab in lay.labels if lab.face == -1]
    assert len(legend) == 1 and legend[0].lines[0] == "0: yaw 0 pitch 0 roll 0"
    tags = {lab.face: lab.lines for lab in lay.labels if lab.face >= 0}
    assert all(tags[i] == [str(i)] for i in tags) and len(tags) >= 30
    _check(lay, (260, 260))
    image = np.zeros((260, 260, 3), np.uint8)
    assert draw_labels(image, lay) is image and image.any()


def test_the_legend_of_a_crowd_with_faces_in_every_corner_covers_none():
    """A 600x400 photo with faces in all four corners and along the edges, and a face-free gap in its middle: the
    legend covers no face (it goes to the gap), where a corner legend would cover one at any font size."""
    boxes = [(x, y, x + 60, y + 60) for x in range(0, 600, 90) for y in (0, 340)]
    boxes += [(x, 170, x + 60, 230) for x in (0, 540)]
    texts = [f"yaw {i} pitch {-i} roll {i % 7}" for i in range(len(boxes))]
    lay = layout_labels(texts, boxes, (400, 600), style=STYLE, numbered=True)
    (legend,) = [lab for lab in lay.labels if lab.face == -1]
    assert all(_overlap(legend.rect, b) == 0 for b in boxes), legend.rect
    assert len(legend.lines) == len(boxes)
    _check(lay, (400, 600))


def test_a_crowd_of_tracks_is_numbered_by_its_track_ids():
    """A video names its faces by track id: in a crowd the numbers are the ids, and the legend lists only the
    texts that say more than the id (ids alone: no legend at all)."""
    boxes = [(10 + 40 * c, 10 + 40 * r, 40 + 40 * c, 40 + 40 * r) for r in range(6) for c in range(6)]
    names = [f"#{100 + i}" for i in range(36)]
    lay = layout_labels([f"{n} yaw {i} pitch 0 roll 0" for i, n in enumerate(names)], boxes, (260, 260), names=names)
    assert lay.numbered
    (legend,) = [lab for lab in lay.labels if lab.face == -1]
    assert legend.lines[0] == "#100: #100 yaw 0 pitch 0 roll 0"
    assert all(lab.lines == [names[lab.face]] for lab in lay.labels if lab.face >= 0)
    _check(lay, (260, 260))
    ids_only = layout_labels(names, boxes, (260, 260), numbered=True, names=names)
    assert all(lab.face >= 0 and lab.lines == [names[lab.face]] for lab in ids_only.labels)
    _check(ids_only, (260, 260))
    with pytest.raises(ValueError, match="one name per face"):
        layout_labels(["a", "b"], boxes[:2], (100, 100), names=["#1"])


def test_no_labels_and_mismatched_inputs():
    assert layout_labels([], np.zeros((0, 4)), (100, 100)).labels == []
    with pytest.raises(ValueError, match="one text per face box"):
        layout_labels(["a", "b"], [(0, 0, 10, 10)], (100, 100))


def test_text_scale_follows_the_image_size():
    small, large = TextStyle.for_image((480, 640)), TextStyle.for_image((2160, 3840))
    assert small.scale == pytest.approx(0.457, abs=1e-3) and large.scale == pytest.approx(3840 / 1400)
    h_small, h_large = small.size("yaw 0")[1], large.size("yaw 0")[1]
    assert 0.02 < h_small / 640 < 0.04 and 0.02 < h_large / 3840 < 0.04


@pytest.mark.parametrize("tiles", [1, 2])
def test_pose_labels_on_a_crowd_photo_are_readable(faces68_root, tiles):
    """faces-68's dlib example 2008_004176 (10 faces): the pose labels, full; the photo tiled 2x2 (about
    30 faces): numbered with a legend. Either way no two label rectangles overlap and all lie inside."""
    from mfirrn.inference.pipeline import Reconstructor, read_image
    from mfirrn.vis.pose import draw_pose, pose_label_layout

    img = read_image(faces68_root / "dlib-examples" / "2008_004176.jpg")
    img = np.vstack([np.hstack([img] * tiles)] * tiles)
    faces = Reconstructor("3ddfa-v2-mb05", dense=False, verify=False)(img)  # every detection: the most crowded
    assert len(faces) >= 8 * tiles * tiles
    lay = pose_label_layout(img.shape, faces)
    assert lay.numbered == (tiles > 1)
    _check(lay, img.shape)
    assert {lab.face for lab in lay.labels} >= set(range(len(faces)))  # every face is named
    assert draw_pose(img, faces).shape == img.shape


def test_pose_box_lines_stay_thin_on_a_small_face_of_a_large_photo():
    """The box of a 60-pixel face is drawn in 1-pixel lines whether the photo is 400 or 2000 pixels wide;
    a 600-pixel face in the large photo gets the photo's thicker lines."""
    from types import SimpleNamespace

    from mfirrn.vis.pose import draw_pose

    def face(side):
        params = np.zeros(62)
        params[:12] = [1e-3, 0, 0, 60, 0, 1e-3, 0, 60, 0, 0, 1e-3, 0]
        ring = np.linspace(0, 2 * np.pi, 68, endpoint=False)
        lm = np.stack([100 + side / 2 * (1 + np.cos(ring)), 100 + side / 2 * (1 + np.sin(ring)), np.zeros(68)], 1)
        return SimpleNamespace(params=params, roi=np.array([100.0, 100, 100 + side, 100 + side]), landmarks=lm)

    small, large = np.zeros((400, 400, 3), np.uint8), np.zeros((2000, 2000, 3), np.uint8)
    np.testing.assert_array_equal(draw_pose(large, [face(60)], text=False)[:400, :400],
                                  draw_pose(small, [face(60)], text=False))
    lit = lambda img: (img.max(-1) > 0).sum()  # noqa: E731
    thin = draw_pose(np.zeros((800, 800, 3), np.uint8), [face(600)], text=False)  # 800 px: 2-pixel lines
    thick = draw_pose(large, [face(600)], text=False)  # 2000 px: 5-pixel lines
    assert lit(thick) > 1.25 * lit(thin)  # the same box; the anti-aliased edges add a pixel or two to both


def test_pose_labels_round_small_negative_angles_to_0_not_minus_0():
    from types import SimpleNamespace

    from mfirrn.vis.pose import pose_label_layout

    params = np.zeros(62)
    params[:12] = [1e-3, 0, 0, 60, 0, 1e-3, 0, 60, 0, 0, 1e-3, 0]
    lm = np.stack([np.linspace(100, 160, 68), np.linspace(100, 160, 68), np.zeros(68)], 1)
    face = SimpleNamespace(params=params, roi=np.array([100.0, 100, 160, 160]), landmarks=lm,
                           pose={"yaw": -0.4, "pitch": -12.6, "roll": 0.2})
    lay = pose_label_layout((400, 400, 3), [face])
    assert [lab.lines for lab in lay.labels] == [["yaw 0 pitch -13 roll 0"]]
