"""The MFIRRN head ablation's tools: one forward pass for every output, the block-arrangement probe, the shift
probe and the ablation on training-set shards."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from mfirrn import models
from mfirrn.data.shards import ShardError, read_shard_crops
from mfirrn.evaluation.ablation import (
    HEAD_OUTPUTS,
    Rearranged,
    arrangements,
    block_probe,
    format_block_probe,
    format_shard_ablation,
    format_shift_probe,
    head_receptive_field,
    shard_head_ablation,
    shift_crops,
    shift_probe,
)
from mfirrn.evaluation.benchmark import AFLW2000, evaluate
from mfirrn.geometry.crop import crops_to_tensor
from mfirrn.inference.predict import predict_outputs
from mfirrn.models.mfirrn_net import MFIRRNOutput, jigsaw


class _PlaceAndContent(nn.Module):
    """A stand-in MFIRRN with hand-made heads: ``coarse`` a fixed linear map of every pixel (it depends on where
    each pixel is), ``medium`` and ``fine`` a linear map of the three channel means (the same for any arrangement
    of the crop's blocks), ``fused`` their average."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.pixels = nn.Parameter(torch.randn(3 * 120 * 120, 62, generator=g) * 1e-3, requires_grad=False)
        self.means = nn.Parameter(torch.randn(3, 62, generator=g) * 0.3, requires_grad=False)
        card = models.get_card("3ddfa-v2-mb05")
        self.card, self.stats = card, card.load_stats()

    def forward(self, x: torch.Tensor) -> MFIRRNOutput:
        place = x.flatten(1) @ self.pixels
        content = x.mean((2, 3)) @ self.means
        return MFIRRNOutput(place, content, 0.5 * content, 0.5 * (place + content))


def _data(tmp_path, n: int = 6) -> AFLW2000:
    rng = np.random.default_rng(1)
    crops = rng.integers(0, 256, (n, 120, 120, 3), dtype=np.uint8)
    gt = rng.uniform(30, 90, (n, 68, 2))
    roi = np.tile([0.0, 0.0, 120.0, 120.0], (n, 1))
    return AFLW2000([f"img{i}.jpg" for i in range(n)], crops, roi, np.linspace(-80, 80, n), gt, "original", tmp_path)


def test_rearranged_feeds_the_model_the_rearranged_crop():
    seen = []

    class Probe(nn.Module):
        card, stats = None, None

        def forward(self, x):
            seen.append(x)
            return x

    x = torch.arange(2 * 3 * 120 * 120, dtype=torch.float32).reshape(2, 3, 120, 120)
    Rearranged(Probe(), 2, (3, 2, 1, 0))(x)
    assert torch.equal(seen[-1], jigsaw(x, 2, torch.tensor([3, 2, 1, 0])))
    # block 3 (bottom right) is now at the top left
    assert torch.equal(seen[-1][:, :, :60, :60], x[:, :, 60:, 60:])
    Rearranged(Probe(), 3, range(9))(x)
    assert torch.equal(seen[-1], x)
    with pytest.raises(ValueError, match="perm must order the 4 blocks"):
        Rearranged(Probe(), 2, (0, 1, 2, 2))


def test_arrangements_are_distinct_and_never_the_crop_as_it_is():
    two = arrangements(2, 23)
    assert len(two) == len(set(two)) == 23 and (0, 1, 2, 3) not in two
    three = arrangements(3, 40, seed=2)
    assert len(set(three)) == 40 and tuple(range(9)) not in three
    assert three == arrangements(3, 40, seed=2) and three != arrangements(3, 40, seed=3)


def test_one_forward_pass_gives_every_output_as_the_single_output_calls_do(tmp_path):
    model, data = _PlaceAndContent(), _data(tmp_path)
    every = predict_outputs(model, crops_to_tensor(data.crops), batch_size=4, outputs=HEAD_OUTPUTS)
    for out in HEAD_OUTPUTS:
        single = evaluate(model, data, batch_size=4, output=out)
        torch.testing.assert_close(every[out].numpy(), single.params, rtol=0, atol=0)


def test_block_probe_tells_a_head_that_reads_places_from_one_that_reads_content(tmp_path):
    model, data = _PlaceAndContent(), _data(tmp_path)
    probe = block_probe(model, data, grids=(2, 3), count=23)
    assert [len(probe.perms[n]) for n in (2, 3)] == [23, 23]
    for n in (2, 3):
        # channel means do not change when blocks move: the content heads score exactly as in place
        np.testing.assert_allclose(probe.rearranged[n]["medium"], probe.in_place["medium"], rtol=1e-5)
        np.testing.assert_allclose(probe.rearranged[n]["fine"], probe.in_place["fine"], rtol=1e-5)
        # a per-pixel map sees the blocks move
        assert np.abs(probe.rearranged[n]["coarse"] - probe.in_place["coarse"]).min() > 1e-3
    table = format_block_probe(probe)
    assert "| medium |" in table and "2x2 blocks, 23 arrangements" in table and "3x3 blocks, 23 arrangements" in table
    d = probe.to_dict()
    assert d["rearranged"]["2"]["perms"][0] == [0, 1, 3, 2] and len(d["rearranged"]["3"]["coarse"]) == 23


class _Locator(nn.Module):
    """A stand-in MFIRRN that locates a bright square: its translation params are the square's centroid in
    crop pixels (``p[3] = mean + cx``, ``p[7] = mean - cy``: the posed frame's y points up, so the crop's y is
    ``size - y`` up to the convention's constant). ``coarse`` and ``fused`` move the face with the square, ``fine``
    by half as much, ``medium`` predicts the mean whatever it sees."""

    def __init__(self) -> None:
        super().__init__()
        card = models.get_card("3ddfa-v2-mb05")
        self.card, self.stats = card, card.load_stats()
        self.std = torch.as_tensor(self.stats.std, dtype=torch.float32)

    def forward(self, x: torch.Tensor) -> MFIRRNOutput:
        w = torch.relu(x.mean(1) - 0.5)  # the square only: the grey background and fill weigh 0
        rows, cols = torch.meshgrid(torch.arange(120.0), torch.arange(120.0), indexing="ij")
        cx = (w * cols).sum((1, 2)) / w.sum((1, 2))
        cy = (w * rows).sum((1, 2)) / w.sum((1, 2))
        locate = torch.zeros(x.shape[0], 62)
        locate[:, 3], locate[:, 7] = cx / self.std[3], -cy / self.std[7]
        return MFIRRNOutput(locate, torch.zeros_like(locate), 0.5 * locate, locate)


def test_shift_crops_moves_the_content_and_fills_grey():
    x = torch.arange(2 * 3 * 120 * 120, dtype=torch.float32).reshape(2, 3, 120, 120) + 1
    s = shift_crops(x, 5, -3)
    assert torch.equal(s[:, :, :117, 5:], x[:, :, 3:, :115])
    assert not s[:, :, :, :5].any() and not s[:, :, 117:].any()
    assert torch.equal(shift_crops(x, 0, 0), x)
    with pytest.raises(ValueError, match="out of view"):
        shift_crops(x, 120, 0)


def test_shift_probe_tells_a_head_that_locates_the_face_from_one_that_does_not():
    crops = np.full((3, 120, 120, 3), 128, np.uint8)
    for i, (r, c) in enumerate([(50, 50), (40, 60), (60, 45)]):
        crops[i, r:r + 20, c:c + 20] = 255
    probe = shift_probe(_Locator(), crops, name="locator", shifts=((8, 0), (-8, 0), (0, 8), (0, -6)))
    np.testing.assert_allclose(probe.follow["coarse"], 1.0, atol=1e-4)
    np.testing.assert_allclose(probe.follow["fused"], 1.0, atol=1e-4)
    np.testing.assert_allclose(probe.follow["fine"], 0.5, atol=1e-4)
    np.testing.assert_allclose(probe.follow["medium"], 0.0, atol=1e-6)
    table = format_shift_probe(probe)
    assert "| fine | 0.50 | 0.50 | 0.50 | 0.50 | 0.50 |" in table and "(+0, -6) px" in table
    assert probe.to_dict()["shifts"] == [[8, 0], [-8, 0], [0, 8], [0, -6]]


def test_shift_probe_of_a_single_output_model():
    crops = np.full((2, 120, 120, 3), 128, np.uint8)
    crops[:, 50:70, 50:70] = 255

    class One(_Locator):
        def forward(self, x):
            return super().forward(x).coarse

    probe = shift_probe(One(), crops, shifts=((4, 4),))
    assert list(probe.follow) == ["fused"]
    np.testing.assert_allclose(probe.follow["fused"], 1.0, atol=1e-4)


def test_head_receptive_fields_follow_the_layer_arithmetic():
    """Receptive field r and jump j per layer (r += (k - 1) * j, then j *= stride), by hand. MobileNetV1 x0.5 cut
    (MB05): conv1 3x3/2 -> r 3, j 2; dw2_1 3x3 -> 7; dw2_2 3x3/2 -> 11, j 4; dw3_1 -> 19; dw3_2 /2 -> 27, j 8 (the
    fine branch's layer2); the fine head's 3x3 conv -> 43. Medium: fusion2's 3x3 -> 43; dw4_1 -> 59; dw4_2 /2 -> 75,
    j 16; the head's 3x3 -> 107. ResNet-34 (R34): conv1 7x7/2 -> 7, j 2; max-pool 3x3/2 -> 11, j 4; layer1's six
    3x3 convs -> 59; layer2's eight -> 179 > 120: one cell of the fine head's map already sees the whole crop."""
    from mfirrn.models.mfirrn_net import MB05, R34

    assert head_receptive_field(MB05, "fine") == (43, 43)
    assert head_receptive_field(MB05, "medium") == (107, 107)
    assert head_receptive_field(R34, "fine") == (120, 120)
    with pytest.raises(ValueError, match="coarse, medium or fine"):
        head_receptive_field(MB05, "fused")


class _ReadsBrightness(nn.Module):
    """A stand-in MFIRRN for shard crops of one uniform grey level each: ``fused`` reads the level into the
    x-translation param exactly as :func:`_shard_set` wrote it into the label, ``medium`` half of it, ``coarse``
    and ``fine`` predict the mean."""

    def __init__(self) -> None:
        super().__init__()
        card = models.get_card("3ddfa-v2-mb05")
        self.card, self.stats = card, card.load_stats()

    def forward(self, x: torch.Tensor) -> MFIRRNOutput:
        read = torch.zeros(x.shape[0], 62)
        read[:, 3] = x.mean((1, 2, 3))
        return MFIRRNOutput(torch.zeros_like(read), 0.5 * read, torch.zeros_like(read), read)


def _shard_set(root, stats, levels_per_shard):
    """Shards of uniform grey crops (PNG) whose label is the mean params with the x-translation param at the
    crop's normalised grey level; two views per face, the first the face's photo; ``samples.csv`` as the build's."""
    import cv2

    from mfirrn.data.shards import write_shard

    entries, rows, i = [], ["shard,key,source_index,kind,yaw,d_yaw,d_pitch,d_roll"], 0
    for k, levels in enumerate(levels_per_shard):
        samples = []
        for level in levels:
            norm = torch.zeros(1, 62)
            norm[0, 3] = (level - 127.5) / 128.0
            p = stats.denormalize(norm.double())[0].numpy().astype(np.float32)
            img = np.full((120, 120, 3), level, np.uint8)
            face, view = i // 2, i % 2
            samples.append((f"{face:06d}_{view:02d}", cv2.imencode(".png", img)[1].tobytes(), p))
            rows.append(f"shard-{k:05d},{face:06d}_{view:02d},{face},{'photo' if view == 0 else 'profiled'},0,0,0,0")
            i += 1
        data = write_shard(samples)
        (root / f"shard-{k:05d}.tar").write_bytes(data)
        entries.append({"name": f"shard-{k:05d}.tar", "count": len(levels), "bytes": len(data), "sha256": ""})
    (root / "index.json").write_text(json.dumps({"format": "mfirrn-shards", "convention": "v2", "shards": entries}))
    (root / "samples.csv").write_text("\n".join(rows) + "\n")


def test_shard_ablation_scores_each_output_against_the_labels_face_by_face(tmp_path):
    model = _ReadsBrightness()
    _shard_set(tmp_path, model.stats, [[100, 110, 140, 150], [60, 200, 90, 127], [30, 220]])
    ab = shard_head_ablation(model, read_shard_crops(tmp_path, [1, 2]), reference=_ReadsBrightness(),
                             reference_name="twin", n=200)
    assert ab.shards == ["shard-00001.tar", "shard-00002.tar"]
    np.testing.assert_array_equal(ab.face, [2, 2, 3, 3, 4, 4])
    np.testing.assert_array_equal(ab.kind, ["photo", "profiled"] * 3)
    # fused reads the label exactly; coarse predicts the mean, wrong by the shift the level encodes
    assert ab.per_crop["fused"].max() < 1e-3
    # a pure translation: the error is proportional to how far the level is from the grey the mean stands for
    ratio = ab.per_crop["coarse"] / np.abs(np.array([60, 200, 90, 127, 30, 220]) - 127.5)
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-3)
    np.testing.assert_allclose(ab.per_crop["fine"], ab.per_crop["coarse"])
    assert np.all(ab.per_crop["medium"] < ab.per_crop["coarse"] + 1e-6)
    d = ab.paired["all"]["fused - coarse"]
    assert d.mean == pytest.approx(-ab.per_crop["coarse"].mean(), abs=1e-3) and d.resolved()
    assert ab.paired["photo"]["fused - coarse"].n_items == 3
    # the reference is the model's own fused output: fused - twin is 0, coarse - twin is the coarse error
    np.testing.assert_allclose(ab.per_crop["twin"], ab.per_crop["fused"])
    assert ab.paired["all"]["fused - twin"].mean == pytest.approx(0, abs=1e-9)
    assert ab.paired["all"]["coarse - twin"].mean == pytest.approx(-d.mean)
    table = format_shard_ablation(ab)
    assert "photo (3 crops, 3 faces)" in table and "| fused - coarse |" in table and "| coarse - twin |" in table
    assert ab.to_dict()["subsets"]["profiled"]["faces"] == 3


def test_shard_ablation_refuses_what_it_cannot_score(tmp_path):
    model = _ReadsBrightness()
    _shard_set(tmp_path, model.stats, [[100, 110], [60, 200]])
    with pytest.raises(ShardError, match=r"shard ids must be in 0\.\.1"):
        read_shard_crops(tmp_path, [2])
    data = read_shard_crops(tmp_path, [0])
    data.convention = "v1"
    with pytest.raises(ValueError, match="'v1' convention"):
        shard_head_ablation(model, data)
    rows = (tmp_path / "samples.csv").read_text().splitlines()
    (tmp_path / "samples.csv").write_text("\n".join(rows[:2]) + "\n")  # one of shard 0's two samples listed
    with pytest.raises(ShardError, match="does not list the samples"):
        read_shard_crops(tmp_path, [0])
    (tmp_path / "samples.csv").unlink()
    with pytest.raises(ShardError, match="samples.csv does not exist"):
        read_shard_crops(tmp_path, [0])
