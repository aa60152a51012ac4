"""Models: a registry of regressors from 120x120 crops to 62 normalised 3DMM params.

>>> from mfirrn import models
>>> "3ddfa-v2-mb05" in models.available()
True
"""

from mfirrn.io.defaults import DEFAULT_MODEL
from mfirrn.models.mobilenet import MobileNetV1
from mfirrn.models.registry import (
    CheckpointError,
    ModelCard,
    available,
    create,
    get_card,
    load,
    load_checkpoint,
    register_model,
)

__all__ = [
    "MobileNetV1",
    "ModelCard",
    "CheckpointError",
    "available",
    "create",
    "get_card",
    "load",
    "load_checkpoint",
    "register_model",
    "DEFAULT_MODEL",
]


register_model(ModelCard(
    name="3ddfa-v2-mb05",
    builder=lambda: MobileNetV1(widen_factor=0.5, landmark_head=True),
    convention="v2",
    stats_asset="stats-3ddfa-v2",
    weights_asset="weights-3ddfa-v2-mb05",
    description="3DDFA_V2 MobileNetV1 x0.5 (pretrained on 300W-LP by the 3DDFA_V2 authors)",
))
register_model(ModelCard(
    name="3ddfa-mb1",
    builder=lambda: MobileNetV1(widen_factor=1.0),
    convention="v1",
    stats_asset="stats-3ddfa-v1",
    description="3DDFA MobileNetV1 x1.0 (trainable baseline; v1 stats and convention)",
))
register_model(ModelCard(
    name="3ddfa-mb05",
    builder=lambda: MobileNetV1(widen_factor=0.5),
    convention="v1",
    stats_asset="stats-3ddfa-v1",
    description="3DDFA MobileNetV1 x0.5 (trainable baseline; v1 stats and convention)",
))

# --- MFIRRN (issue 4) ---
from mfirrn.models.mfirrn_net import MFIRRN, MFIRRNConfig, MFIRRNOutput  # noqa: E402
from mfirrn.models.mfirrn_net import R18_HALF as _R18_HALF  # noqa: E402
from mfirrn.models.mfirrn_net import R34 as _R34  # noqa: E402

__all__ += ["MFIRRN", "MFIRRNConfig", "MFIRRNOutput"]

register_model(ModelCard(
    name="mfirrn-r34",
    builder=lambda: MFIRRN(_R34),
    convention="v1",
    stats_asset="stats-3ddfa-v1",
    description="MFIRRN, three ResNet-34 branches as released (54.0 M live of 77.6 M released parameters); no pretrained weights",
))
register_model(ModelCard(
    name="mfirrn-r18-half",
    builder=lambda: MFIRRN(_R18_HALF),
    convention="v1",
    stats_asset="stats-3ddfa-v1",
    description="MFIRRN, CPU-sized: ResNet-18 branches at half width, heads scaled down; no pretrained weights",
))

# --- MFIRRN with MobileNetV1 x0.5 branches, fine-tuned from 3DDFA_V2's mb05 ---
from mfirrn.models.mfirrn_net import MB05 as _MB05  # noqa: E402
from mfirrn.models.mfirrn_net import MB05_FLAT as _MB05_FLAT  # noqa: E402

register_model(ModelCard(
    name="mfirrn-mb05",
    builder=lambda: MFIRRN(_MB05),
    convention="v2",
    stats_asset="stats-3ddfa-v2",
    description="MFIRRN with MobileNetV1 x0.5 branches (3DDFA_V2 mb05 stages); no pretrained weights: training "
                "starts from 3ddfa-v2-mb05's (`mfirrn train --config aflw-mfirrn-mb05`)",
))

register_model(ModelCard(
    name="mfirrn-mb05-flat",
    builder=lambda: MFIRRN(_MB05_FLAT),
    convention="v2",
    stats_asset="stats-3ddfa-v2",
    description="mfirrn-mb05 with position-keeping medium and fine heads (their maps flattened into the first FC "
                "layer instead of averaged); no pretrained weights: training starts from a trained mfirrn-mb05 "
                "(`mfirrn train --config aflwlp-mfirrn-mb05-flat`)",
))

# --- models trained by this project (weights committed under data/weights/; a wheel carries them) ---
from mfirrn.io.assets import project_weights_dir as _project_weights_dir  # noqa: E402

_WEIGHTS = _project_weights_dir()


def _trained_here(name: str, builder, description: str) -> None:
    """Register a model trained by this project on the AFLW pool: 3DDFA_V2 stats and pixel convention, weights
    ``data/weights/<name>.pt``, and the AFLW-21 warning at the end of its description."""
    register_model(ModelCard(name=name, builder=builder, convention="v2", stats_asset="stats-3ddfa-v2",
                             weights_path=str(_WEIGHTS / f"{name}.pt"),
                             description=f"{description}; has seen AFLW images: never score it on AFLW-21"))


_trained_here("3ddfa-mb05-aflw21", lambda: MobileNetV1(widen_factor=0.5),
              "3DDFA_V2 mb05 fine-tuned by this project on AFLW 21-point crops (fitted labels + face profiling)")
_trained_here("3ddfa-mb05-aflw21-distill", lambda: MobileNetV1(widen_factor=0.5),
              "3DDFA_V2 mb05 fine-tuned by this project on AFLW 21-point crops (labels with the jaw anchored to the "
              "teacher + face profiling), distilled from 3ddfa-v2-mb05 beside the labels, 3 epochs")
_trained_here("mfirrn-mb05-aflw21", lambda: MFIRRN(_MB05),
              "MFIRRN with MobileNetV1 x0.5 branches, fine-tuned by this project on AFLW 21-point crops (fitted "
              "labels + speckle-free face profiling), 1200 steps")
_trained_here("mfirrn-mb05-aflw21-distill", lambda: MFIRRN(_MB05),
              "MFIRRN with MobileNetV1 x0.5 branches, fine-tuned by this project on AFLW 21-point crops (labels "
              "from the AFLW points defined like their 68-point landmarks, the rest anchored to the teacher + "
              "face profiling), distilled from 3ddfa-v2-mb05 beside the labels, 3 epochs")
_trained_here("mfirrn-mb05-flat-aflwlp-distill", lambda: MFIRRN(_MB05_FLAT),
              "MFIRRN with MobileNetV1 x0.5 branches and position-keeping medium and fine heads, fine-tuned by this "
              "project from mfirrn-mb05-aflw21-distill on 144 k AFLW crops (4 000 faces x 36 profiled views) with "
              "its heads seeing the crop in place, distilled from 3ddfa-v2-mb05 beside the labels, 1 800 steps")
_trained_here("mfirrn-mb05-flat-aflwlp12-distill", lambda: MFIRRN(_MB05_FLAT),
              "MFIRRN with MobileNetV1 x0.5 branches and position-keeping medium and fine heads: "
              "mfirrn-mb05-flat-aflwlp-distill fine-tuned by this project on 169 k AFLW crops (all 14 055 accepted "
              "faces x 12 profiled views) in two passes of 1 800 steps, distilled from 3ddfa-v2-mb05 beside the "
              "labels, the two passes' weights averaged")
