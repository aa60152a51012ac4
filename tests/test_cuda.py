"""CUDA correctness: geometry, loss, networks, training runs and the main job on the GPU agree with the CPU.

Skipped on machines without CUDA (CI, laptops); run on a GPU machine with
``python -m pytest -m cuda tests/test_cuda.py``. TF32 is switched off while comparing, so fp32 results must
agree to float32 rounding (cuDNN picks other algorithms than the CPU: sums in another order).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from mfirrn import models
from mfirrn.data import make_synthetic_dataset
from mfirrn.geometry.bfm import MorphableModel
from mfirrn.train.config import TrainConfig
from mfirrn.train.losses import build_loss, multi_output_loss
from mfirrn.train.trainer import train

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.fixture(autouse=True)
def _no_tf32():
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def _params(stats, n: int = 16) -> torch.Tensor:
    """(n, 62) de-normalised params: mean +- 0.5 std (plausible faces, varied poses)."""
    g = torch.Generator().manual_seed(1)
    return stats.denormalize(0.5 * torch.randn(n, 62, generator=g, dtype=torch.float64)).float()


def test_bfm_landmarks_and_dense_mesh_match_cpu(bfm):
    stats = models.get_card("3ddfa-v2-mb05").load_stats()
    p = _params(stats)
    gpu = MorphableModel("full").to("cuda")
    for conv in ("v1", "v2"):
        # pixel coordinates ~0..120: 1e-3 px is float32 rounding of sums over 50 basis vectors
        torch.testing.assert_close(gpu.landmarks(p.cuda(), convention=conv).cpu(), bfm.landmarks(p, convention=conv),
                                   atol=1e-3, rtol=0)
    dense_c = bfm.vertices(p, convention="v2")
    assert dense_c.shape == (len(p), bfm.n_vertices, 3)
    torch.testing.assert_close(gpu.vertices(p.cuda(), convention="v2").cpu(), dense_c, atol=2e-3, rtol=0)


@pytest.mark.parametrize("name", ["wpdc", "vdc", "pdc"])
def test_losses_match_cpu(bfm, name):
    stats = models.get_card("3ddfa-v2-mb05").load_stats()
    g = torch.Generator().manual_seed(2)
    target = torch.randn(16, 62, generator=g) * 0.5
    pred = target + 0.1 * torch.randn(16, 62, generator=g)
    crit = build_loss(name, stats, bfm)
    torch.manual_seed(5)  # the same random dense vertices (drawn on the CPU RNG) for both devices
    loss_c = float(crit(pred, target))
    crit_g = build_loss(name, stats, MorphableModel("full").to("cuda")).to("cuda")
    torch.manual_seed(5)
    loss_g = float(crit_g(pred.cuda(), target.cuda()))
    assert loss_g == pytest.approx(loss_c, rel=1e-4)


@pytest.mark.parametrize("arch", ["3ddfa-mb05", "mfirrn-mb05", "mfirrn-r34"])
def test_network_forward_matches_cpu(arch):
    torch.manual_seed(0)
    net = models.get_card(arch).builder().eval()
    x = torch.randn(4, 3, 120, 120)
    with torch.no_grad():
        out_c = net(x)
        out_g = net.to("cuda")(x.cuda())
    outs_c = out_c if isinstance(out_c, tuple) else (out_c,)
    outs_g = out_g if isinstance(out_g, tuple) else (out_g,)
    assert len(outs_c) == len(outs_g)
    for a, b in zip(outs_g, outs_c):
        torch.testing.assert_close(a.cpu(), b, atol=1e-4, rtol=1e-3)


def test_pretrained_mb05_matches_cpu_and_bf16_is_close(mb05):
    x = torch.randn(8, 3, 120, 120, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = mb05(x)
        net = models.create("3ddfa-v2-mb05", device="cuda")
        out = net(x.cuda()).cpu()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out_bf16 = net(x.cuda()).float().cpu()
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-3)
    # bf16 keeps 8 bits of mantissa: on noise input (no face) normalised params move by hundredths, at most
    # tenths; the dev-split NME with --bf16 is the real check (README)
    d = (out_bf16 - ref).abs()
    assert float(d.mean()) < 0.05 and float(d.max()) < 0.3


def test_multi_output_loss_backward_on_cuda():
    stats = models.get_card("mfirrn-mb05").load_stats()
    torch.manual_seed(0)
    net = models.get_card("mfirrn-mb05").builder().train().cuda()
    crit = build_loss("wpdc", stats, MorphableModel("full").to("cuda")).to("cuda")
    x, y = torch.randn(8, 3, 120, 120, device="cuda"), 0.3 * torch.randn(8, 62, device="cuda")
    multi_output_loss(crit, net(x), y).backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)
    assert sum(float(gr.abs().sum()) for gr in grads) > 0


@pytest.mark.parametrize("precision", ["fp32", "bf16", "amp"])
def test_training_run_on_cuda_gives_a_cpu_loadable_checkpoint(tmp_path, precision):
    root = make_synthetic_dataset(tmp_path / "syn", 40, seed=0)["root"]
    cfg = TrainConfig.from_dict({
        "model": {"arch": "mfirrn-mb05"},
        "data": {"format": "crops-params", "root": str(root), "batch_size": 8, "workers": 2, "val_fraction": 0.2,
                 "pin_memory": True},
        "optim": {"lr": 0.001, "warmup_epochs": 0},
        "epochs": 2, "device": "cuda", "precision": precision, "out_dir": str(tmp_path / "run"), "progress": False})
    res = train(cfg)
    assert res.step == 2 * (32 // 8) and res.best is not None
    assert all(torch.isfinite(torch.tensor(r["val_loss"])) for r in res.history)
    net = models.load_checkpoint(res.best, device="cpu")
    out = net(torch.zeros(1, 3, 120, 120))
    assert all(torch.isfinite(o).all() for o in (out if isinstance(out, tuple) else (out,)))
    assert next(net.parameters()).device.type == "cpu"


# ------------------------------------------------------------------------------ the main job on the GPU
_ALL_OUTPUTS = "json,landmarks,dense,obj,ply,depth,pncc,render,texture,pose,uv_tex,uv_glb,table"


def _max_diff(a, b) -> float:
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())


def test_pipeline_on_cuda_finds_the_faces_the_cpu_finds_at_the_same_place(sample_photo):
    """FaceBoxes, the verifier, the regressor, the refinement and the dense mesh on the GPU against the same
    networks in PyTorch on the CPU: the same faces, within float32 rounding (a device or convention slip moves
    landmarks by pixels)."""
    from mfirrn.inference.pipeline import Reconstructor, read_image
    from mfirrn.io.assets import fetch

    cpu = Reconstructor("3ddfa-v2-mb05", backend="torch")
    gpu = Reconstructor("3ddfa-v2-mb05", device="cuda")
    assert gpu.device.type == "cuda"
    for photo, n in ((sample_photo, 1), (fetch("sample-trump-hillary"), 2)):
        img = read_image(photo)
        on_cpu, on_gpu = cpu(img), gpu(img)
        assert len(on_cpu) == len(on_gpu) == n
        for a, b in zip(on_cpu, on_gpu):
            assert _max_diff(a.box, b.box) < 0.05  # pixels
            assert _max_diff(a.landmarks, b.landmarks) < 0.05
            assert _max_diff(a.vertices, b.vertices) < 0.1
            assert abs(a.confidence - b.confidence) < 1e-3 and a.refined == b.refined
            assert isinstance(b.landmarks, np.ndarray) and isinstance(b.vertices, np.ndarray)


def test_cli_on_cuda_writes_every_output_for_photos_and_clips(tmp_path, sample_photo, capsys):
    """``mfirrn reconstruct --device cuda`` with every output, on a photo and on a clip, gives the CPU's faces
    and images."""
    import json

    from mfirrn.cli import main
    from mfirrn.inference.pipeline import Reconstructor, read_image
    from mfirrn.video.synthetic import make_clip

    face = Reconstructor("3ddfa-v2-mb05")(read_image(sample_photo))[0]
    clip = make_clip(read_image(sample_photo), face.landmarks[:, :2], n_frames=8, seed=3).write(tmp_path / "c.mp4")
    name = sample_photo.name
    photo_files = [f"{name}{s}" for s in (".json", ".obj", ".ply", "_landmarks.jpg", "_dense.jpg", "_depth.png",
                                          "_pncc.png", "_render.jpg", "_texture.png", "_pose.jpg", "_face0_uv.png",
                                          "_face0_uv.glb")] + ["faces.parquet"]
    runs = {}
    for dev in ("cpu", "cuda"):
        out = runs[dev] = tmp_path / dev
        assert main(["reconstruct", str(sample_photo), "-o", str(out), "--device", dev, "--outputs", _ALL_OUTPUTS]) == 0
        assert main(["reconstruct", str(clip), "-o", str(out / "clip"), "--device", dev,
                     "--outputs", "json,landmarks,dense,render,pose,obj,ply"]) == 0
        assert all((out / f).stat().st_size > 0 for f in photo_files), sorted(p.name for p in out.iterdir())
        assert (out / "clip" / "c.mp4_overlay.mp4").stat().st_size > 0
        assert len(list((out / "clip" / "c.mp4_meshes").glob("*.obj"))) == 8
    capsys.readouterr()
    photo = {d: json.loads((o / f"{name}.json").read_text())["faces"] for d, o in runs.items()}
    assert len(photo["cpu"]) == len(photo["cuda"]) == 1
    assert _max_diff(photo["cpu"][0]["landmarks"], photo["cuda"][0]["landmarks"]) < 0.05
    frames = {d: [json.loads(line) for line in (o / "clip" / "c.mp4.jsonl").read_text().splitlines()]
              for d, o in runs.items()}
    assert len(frames["cpu"]) == len(frames["cuda"]) == 8
    for a, b in zip(frames["cpu"], frames["cuda"]):
        assert len(a["faces"]) == len(b["faces"]) == 1
        assert _max_diff(a["faces"][0]["landmarks"], b["faces"][0]["landmarks"]) < 0.05
    for suffix in ("_depth.png", "_render.jpg", "_pncc.png"):  # rasterised on the CPU from either device's mesh
        img_c, img_g = (cv2.imread(str(runs[d] / f"{name}{suffix}")) for d in ("cpu", "cuda"))
        assert img_c.shape == img_g.shape and (np.abs(img_c.astype(int) - img_g).max(-1) > 8).mean() < 1e-3
