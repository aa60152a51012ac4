"""From image to faces: the :class:`Reconstructor` facade, batched prediction, ONNX export and runtime."""

from typing import Any

__all__ = ["predict_params", "model_device", "OUTPUTS"]


def __getattr__(name: str) -> Any:
    # loaded on first use, so the light modules of the package (the run record, the defaults the command line
    # shows) import without PyTorch
    if name in __all__:
        from mfirrn.inference import predict

        return getattr(predict, name)
    raise AttributeError(f"module 'mfirrn.inference' has no attribute {name!r}")
