"""ONNX export: ONNX Runtime agrees with PyTorch, dynamic batch, metadata, CLI."""

import json

import numpy as np
import pytest
import torch

from mfirrn.geometry.params import ParamStats
from mfirrn.models.mfirrn_net import MFIRRN, MFIRRNConfig

onnx = pytest.importorskip("onnx", reason="onnx not installed (pip install onnx onnxruntime)")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install onnxruntime)")

from mfirrn.inference.onnx import export_onnx  # noqa: E402

TINY = MFIRRNConfig(blocks=(1, 1, 1, 1), widths=(8, 16, 32, 64), head_mid=32, head_out=16, fc_hidden=16, decoder_hidden=32)


def _tiny_model():
    torch.manual_seed(0)
    m = MFIRRN(TINY).eval()
    m.stats = ParamStats(np.arange(62.0), np.ones(62))
    return m


def test_onnx_matches_pytorch_with_dynamic_batch(tmp_path):
    m = _tiny_model()
    path = export_onnx(m, tmp_path / "m.onnx", opset=17, batch=2)
    proto = onnx.load(str(path))
    assert proto.opset_import[0].version >= 17
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["mfirrn.stats_mean"])[5] == 5.0
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for b in (1, 5):
        x = torch.randn(b, 3, 120, 120)
        with torch.no_grad():
            ref = m(x).fused.numpy()
        got = sess.run(None, {"crops": x.numpy()})[0]
        assert got.shape == (b, 62)
        np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)


def test_opset_too_old(tmp_path):
    from mfirrn.inference.onnx import ExportError

    with pytest.raises(ExportError, match="opset"):
        export_onnx(_tiny_model(), tmp_path / "m.onnx", opset=13)


def test_cli_export_registered_model(tmp_path, capsys):
    from mfirrn.cli import main

    out = tmp_path / "mb05.onnx"
    assert main(["export-onnx", "--model", "3ddfa-mb05", "--untrained", "-o", str(out)]) == 0
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert sess.run(None, {"crops": np.zeros((3, 3, 120, 120), np.float32)})[0].shape == (3, 62)
    assert main(["export-onnx", "--checkpoint", str(tmp_path / "none.pt"), "-o", str(out)]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_onnxruntime_backend_matches_pytorch(tmp_path, monkeypatch):
    """The `--backend onnxruntime` model gives the PyTorch model's params (to float tolerance)."""
    import tempfile

    from mfirrn.inference.onnx import OnnxRuntimeModel
    from mfirrn.inference.predict import predict_params
    from mfirrn.models import create

    torch.manual_seed(0)
    m = create("3ddfa-mb05", pretrained=False).eval()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    fast = OnnxRuntimeModel.from_model(m, cache=False)
    assert fast.card is m.card and fast.stats is m.stats
    x = torch.randn(5, 3, 120, 120)
    np.testing.assert_allclose(predict_params(fast, x, batch_size=2).numpy(),
                               predict_params(m, x, batch_size=2).numpy(), rtol=1e-4, atol=1e-3)
    assert not list(tmp_path.iterdir())  # nothing left behind by the temporary export


def test_onnx_export_is_cached_per_weights(tmp_path, monkeypatch):
    """The export is made once per weights into the asset cache, reused, redone for other weights or a damaged file."""
    import os
    import time

    from mfirrn.inference.onnx import OnnxRuntimeModel, cached_export, weights_digest
    from mfirrn.models import create

    monkeypatch.setenv("MFIRRN_CACHE", str(tmp_path))
    torch.manual_seed(0)
    a, b = create("3ddfa-mb05", pretrained=False).eval(), create("3ddfa-mb05", pretrained=False).eval()
    assert weights_digest(a) != weights_digest(b)
    with torch.no_grad():
        b.load_state_dict(a.state_dict())
    assert weights_digest(a) == weights_digest(b)  # the key is the values, not the object
    path = cached_export(a)
    assert path is not None and path.parent == tmp_path / "onnx" and weights_digest(a) in path.name
    stamp = path.stat().st_mtime_ns
    x = torch.randn(2, 3, 120, 120)
    y = OnnxRuntimeModel.from_model(b)(x)
    assert path.stat().st_mtime_ns == stamp  # reused, not exported again
    with torch.no_grad():
        b.fc_param.bias.add_(1.0)
    assert cached_export(b) != path and len(list((tmp_path / "onnx").glob("*.onnx"))) == 2
    path.write_bytes(b"not an onnx file")
    np.testing.assert_allclose(OnnxRuntimeModel.from_model(a)(x).numpy(), y.numpy(), atol=1e-5)
    assert path.read_bytes()[:16] != b"not an onnx file"  # the damaged entry was replaced
    stale = tmp_path / "onnx" / ".mfirrn-export-killed"
    stale.mkdir()
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    with torch.no_grad():
        a.fc_param.bias.add_(2.0)
    cached_export(a)
    assert not stale.exists()  # a killed export's staging folder is swept once it is an hour old


def test_auto_backend_picks_onnxruntime_for_fp32_cpu_only():
    from mfirrn.cli.common import resolve_backend

    assert resolve_backend("auto", "cpu") == "onnxruntime"
    assert resolve_backend("auto", "cpu", bf16=True) == "torch"
    assert resolve_backend("auto", "cuda") == "torch"
    assert resolve_backend("torch", "cpu") == "torch"


def test_onnxruntime_backend_refuses_gpu_and_bf16(capsys):
    from mfirrn.cli import main

    rc = main(["benchmark", "--model", "3ddfa-mb05", "--backend", "onnxruntime", "--bf16", "--data-root", "."])
    assert rc == 2
    err = capsys.readouterr().err
    assert "onnxruntime" in err and "bf16" in err and len(err.strip().splitlines()) == 1


def test_auto_backend_falls_back_to_pytorch_when_export_fails(monkeypatch):
    """A model ONNX cannot take stays in PyTorch under `auto`; asked for explicitly, the error names the fix."""
    import argparse

    from mfirrn.cli.common import model_from_args
    from mfirrn.inference.onnx import ExportError, OnnxRuntimeModel

    def refuse(*a, **k):
        raise ExportError("ONNX export needs the onnx package: pip install onnx onnxruntime")

    monkeypatch.setattr(OnnxRuntimeModel, "from_model", classmethod(lambda cls, *a, **k: refuse()))
    args = argparse.Namespace(model="3ddfa-v2-mb05", checkpoint=None, device="cpu", bf16=False, backend="auto", threads=1)
    assert not isinstance(model_from_args(args, None), OnnxRuntimeModel)
    args.backend = "onnxruntime"
    with pytest.raises(ValueError, match="pip install onnx"):
        model_from_args(args, None)


def test_unwritable_cache_exports_to_a_temporary_file(tmp_path, monkeypatch):
    """A cache that cannot be written (here: a file where the folder should be) still gives a working model."""
    from mfirrn.inference.onnx import OnnxRuntimeModel, cached_export
    from mfirrn.models import create

    m = create("3ddfa-mb05", pretrained=False).eval()  # its stats come from the working cache
    blocker = tmp_path / "cache"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MFIRRN_CACHE", str(blocker))
    assert cached_export(m) is None
    assert OnnxRuntimeModel.from_model(m)(torch.zeros(1, 3, 120, 120)).shape == (1, 62)
