"""ONNX export of a regressor: (B, 3, 120, 120) normalised BGR crops -> (B, 62) normalised params.

MFIRRN exports its ``fused`` output (evaluation mode: deterministic jigsaw, see
:mod:`mfirrn.models.mfirrn_net`). The batch dimension is dynamic; the param stats and pixel convention
of the model are stored as ONNX metadata (``mfirrn.stats_mean``, ``mfirrn.stats_std`` as JSON lists,
``mfirrn.convention``, ``mfirrn.arch``), because the outputs mean nothing without them.

CLI: ``mfirrn export-onnx --model NAME|--checkpoint PATH -o out.onnx [--opset 17]``.
Needs the ``onnx`` package (and ``onnxruntime`` to verify).

:class:`OnnxRuntimeModel` runs an exported model in ONNX Runtime behind the ``nn.Module`` call
interface, so :func:`mfirrn.inference.predict.predict_params` and everything built on it (benchmark,
reconstruct) can use it: ``--backend onnxruntime`` on the CLI. On this project's 2-core CPU it ran
MFIRRN-R34 1.9-3.0x faster than eager PyTorch at batch 1 (``benchmarks/model_speed.py``, README).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Optional, Union

import torch
from torch import nn

from mfirrn.geometry.frames import CROP_SIZE
from mfirrn.io.defaults import BACKENDS

__all__ = ["export_onnx", "cached_export", "weights_digest", "FusedOutput", "OnnxRuntimeModel", "ExportError",
           "BACKENDS", "resolve_backend", "model_for_backend"]



class ExportError(RuntimeError):
    """Export cannot proceed; the message says what to install or change."""


class FusedOutput(nn.Module):
    """Wrap a model so it returns a single (B, 62) tensor (``.fused`` for MFIRRN)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.model(x)
        return y.fused if hasattr(y, "fused") else y


def export_onnx(model: nn.Module, path: Union[str, Path], *, opset: int = 17, batch: int = 2) -> Path:
    """Export ``model`` (carrying ``card``/``stats``, e.g. from :func:`mfirrn.models.create`) to ``path``."""
    try:
        import onnx
    except ImportError:
        raise ExportError("ONNX export needs the onnx package: pip install onnx onnxruntime") from None
    if opset < 17:
        raise ExportError(f"opset {opset} is too old; use 17 or newer")
    newest = _newest_opset()
    if opset > newest:
        raise ExportError(f"opset {opset} is newer than this torch can export (up to {newest}); use --opset 17 to {newest}")
    path = Path(path)
    if path.is_dir():
        raise ExportError(f"{path} is a folder; give a file path such as {path / 'model.onnx'}")
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_exports(path.parent)
    wrapped = FusedOutput(model).eval().cpu()
    x = torch.zeros(batch, 3, CROP_SIZE, CROP_SIZE)
    with tempfile.TemporaryDirectory(prefix=".mfirrn-export-", dir=path.parent) as tmp:
        # exported and checked beside the target, then renamed: a failed or killed export leaves no partial model
        staged = Path(tmp) / path.name
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapped, (x,), str(staged), input_names=["crops"], output_names=["params_norm"],
                              dynamic_axes={"crops": {0: "batch"}, "params_norm": {0: "batch"}},
                              opset_version=opset, dynamo=False)
        _add_metadata(onnx, model, staged)
        os.replace(staged, path)
    return path


def _newest_opset() -> int:
    """The newest opset the (TorchScript-based) exporter of the installed torch writes."""
    try:
        from torch.onnx import _constants

        return int(getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", _constants.ONNX_MAX_OPSET))
    except (ImportError, AttributeError):
        return 17


def _arch_name(model: nn.Module) -> str:
    """The registered name of ``model``'s card, else its class name."""
    return getattr(getattr(model, "card", None), "name", type(model).__name__)


def _add_metadata(onnx, model: nn.Module, path: Path) -> None:
    """Store the stats, convention and architecture in the ONNX file's metadata, check it and save it."""
    proto = onnx.load(str(path))
    meta = {"mfirrn.convention": getattr(getattr(model, "card", None), "convention", ""),
            "mfirrn.arch": _arch_name(model)}
    stats = getattr(model, "stats", None)
    if stats is not None:
        meta["mfirrn.stats_mean"] = json.dumps([float(v) for v in stats.mean])
        meta["mfirrn.stats_std"] = json.dumps([float(v) for v in stats.std])
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, str(v)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def weights_digest(model: nn.Module) -> str:
    """sha256 (hex, 16 characters) of a model's architecture name and parameter and buffer values."""
    h = hashlib.sha256(_arch_name(model).encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def cached_export(model: nn.Module) -> Optional[Path]:
    """The ONNX export of ``model`` in the asset cache (``<cache>/onnx/``), made on first use.

    Keyed by the weights (:func:`weights_digest`) and the torch version, so new weights or a new exporter
    give a new file. Returns None where the cache cannot be written (the caller exports to a temporary
    file instead). The export is staged and renamed into place: a killed export leaves no entry.
    """
    from mfirrn.io.assets import cache_dir

    torch_version = torch.__version__.split("+")[0]
    path = cache_dir() / "onnx" / f"{_arch_name(model)}-{weights_digest(model)}-torch{torch_version}.onnx"
    if path.is_file():
        return path
    try:
        return export_onnx(model, path)
    except OSError:
        return None


def _remove_abandoned_exports(folder: Path, age_s: float = 3600.0) -> None:
    """Delete staging folders (``.mfirrn-export-*``) that a killed export left in ``folder`` over an hour ago
    (younger ones may belong to an export running in another process)."""
    import shutil
    import time

    if folder.is_dir():
        for entry in folder.glob(".mfirrn-export-*"):
            try:
                if entry.is_dir() and time.time() - entry.stat().st_mtime > age_s:
                    shutil.rmtree(entry, ignore_errors=True)
            except OSError:
                pass


class OnnxRuntimeModel(nn.Module):
    """A model exported to ONNX and run by ONNX Runtime (CPU), called like the PyTorch model.

    ``forward`` takes (B, 3, 120, 120) float crops and returns the (B, 62) normalised params (the
    ``fused`` output for MFIRRN) as a float32 CPU tensor. ``card`` and ``stats`` are those of the source
    model, so de-normalisation and conventions are unchanged. Inference only (no gradients, no bf16).
    """

    def __init__(self, session, card=None, stats=None) -> None:
        super().__init__()
        self.session, self.card, self.stats = session, card, stats
        self.input_name = session.get_inputs()[0].name

    @classmethod
    def from_model(cls, model: nn.Module, *, num_threads: int = 0, cache: bool = True) -> "OnnxRuntimeModel":
        """Open ``model`` in ONNX Runtime (``num_threads`` 0: the threading policy's budget).

        With ``cache`` the export is kept in the asset cache (:func:`cached_export`), so only the first run
        of given weights pays for it (about 0.5-1 s for mb05); otherwise it goes to a temporary file.
        """
        try:
            import onnxruntime as ort
        except ImportError:
            raise ExportError("the onnxruntime backend needs onnxruntime: pip install onnx onnxruntime") from None
        from mfirrn.io.threads import ort_session_options

        opts = ort_session_options(num_threads)
        session = None
        for _ in range(2 if cache else 0):
            path = cached_export(model)
            if path is None:
                break
            try:
                session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
                break
            except Exception:  # a damaged cache entry (disk full, edited): drop it and export again
                path.unlink(missing_ok=True)
        if session is None:
            with tempfile.TemporaryDirectory(prefix="mfirrn-onnx-") as tmp:
                staged = export_onnx(model, Path(tmp) / "model.onnx")
                session = ort.InferenceSession(str(staged), sess_options=opts, providers=["CPUExecutionProvider"])
        return cls(session, card=getattr(model, "card", None), stats=getattr(model, "stats", None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu":
            raise ValueError(f"the onnxruntime backend runs on the CPU; got a tensor on {x.device}")
        arr = x.detach().float().contiguous().numpy()
        (out,) = self.session.run(None, {self.input_name: arr})
        return torch.from_numpy(out)


def resolve_backend(backend: str, device: Union[str, torch.device] = "cpu", bf16: bool = False) -> str:
    """``auto`` -> ``onnxruntime`` for fp32 on the CPU when onnx and onnxruntime are installed, else ``torch``
    (CUDA, bf16); ``torch`` and ``onnxruntime`` are returned unchanged.

    ONNX Runtime runs the small networks of this project several times faster than eager PyTorch at
    batch 1 on a CPU (docs: experiments/pipeline); PyTorch stays where it is needed: CUDA, bf16 autocast,
    training and gradients (the :class:`~mfirrn.inference.pipeline.Reconstructor` runs without gradients).

    >>> resolve_backend("auto", "cuda"), resolve_backend("torch", "cpu")
    ('torch', 'torch')
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend != "auto":
        return backend
    if torch.device(device).type != "cpu" or bf16:
        return "torch"
    from importlib.util import find_spec

    return "onnxruntime" if find_spec("onnxruntime") and find_spec("onnx") else "torch"


def model_for_backend(model: nn.Module, backend: str, *, device: Union[str, torch.device] = "cpu", bf16: bool = False,
                      threads: Optional[int] = None) -> nn.Module:
    """``model`` as the backend runs it: itself for ``torch`` (and when it is an :class:`OnnxRuntimeModel`
    already), an :class:`OnnxRuntimeModel` for ``onnxruntime``.

    ``auto`` (:func:`resolve_backend`) keeps a model that ONNX cannot export in PyTorch (same results,
    slower); an explicit ``onnxruntime`` raises :class:`ExportError` then, and ``ValueError`` with CUDA or
    bf16. ``threads``: ONNX Runtime intra-op threads (default: the threading policy, :mod:`mfirrn.io.threads`).
    """
    resolved = resolve_backend(backend, device, bf16)
    if resolved == "torch" or isinstance(model, OnnxRuntimeModel):
        return model
    if torch.device(device).type != "cpu" or bf16:
        raise ValueError("the onnxruntime backend runs fp32 on the CPU; drop device/bf16 or use backend torch")
    try:
        return OnnxRuntimeModel.from_model(model, num_threads=threads or 0)
    except ExportError:
        if backend != "auto":
            raise
        return model
