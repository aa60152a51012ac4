"""From image to faces: the :class:`Reconstructor` facade, batched prediction, ONNX export and runtime."""

from mfirrn.inference.predict import OUTPUTS, model_device, predict_params

__all__ = ["predict_params", "model_device", "OUTPUTS"]
