"""MobileNetV1 regressor with 3DDFA's layer names (``conv1``, ``dw2_1`` ... ``dw6``, ``fc_param``).

Matches 3DDFA / 3DDFA_V2 ``mobilenet_v1.py`` so their checkpoints load without renaming: depthwise
separable blocks (3x3 depthwise conv-BN-ReLU, 1x1 conv-BN-ReLU), global average pooling, a linear head
to 62 params; 3DDFA_V2 checkpoints also carry an unused 136-d landmark head ``fc_lm``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["MobileNetV1", "DepthWiseBlock", "init_conv_bn_"]


def init_conv_bn_(model: nn.Module) -> None:
    """3DDFA/MFIRRN initialisation in place: conv weights ~ N(0, sqrt(2 / (k·k·out_channels))),
    BatchNorm weight 1 and bias 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

# (in, out, stride) of the 13 depthwise-separable blocks at width 1.0, named as in 3DDFA.
_BLOCKS: tuple[tuple[str, int, int, int], ...] = (
    ("dw2_1", 32, 64, 1), ("dw2_2", 64, 128, 2),
    ("dw3_1", 128, 128, 1), ("dw3_2", 128, 256, 2),
    ("dw4_1", 256, 256, 1), ("dw4_2", 256, 512, 2),
    ("dw5_1", 512, 512, 1), ("dw5_2", 512, 512, 1), ("dw5_3", 512, 512, 1),
    ("dw5_4", 512, 512, 1), ("dw5_5", 512, 512, 1), ("dw5_6", 512, 1024, 2),
    ("dw6", 1024, 1024, 1),
)


class DepthWiseBlock(nn.Module):
    """3x3 depthwise conv-BN-ReLU then 1x1 pointwise conv-BN-ReLU (no conv bias)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv_dw = nn.Conv2d(inplanes, inplanes, 3, stride=stride, padding=1, groups=inplanes, bias=False)
        self.bn_dw = nn.BatchNorm2d(inplanes)
        self.conv_sep = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn_sep = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn_dw(self.conv_dw(x)))
        return self.relu(self.bn_sep(self.conv_sep(x)))


class MobileNetV1(nn.Module):
    """3DDFA MobileNetV1: (B, 3, 120, 120) normalised BGR -> (B, num_params) normalised params.

    ``widen_factor`` scales every width (0.5 for ``mb05``); ``landmark_head`` adds 3DDFA_V2's auxiliary
    ``fc_lm`` (136 outputs, not used for prediction) so V2 checkpoints load strictly.
    """

    def __init__(self, widen_factor: float = 1.0, num_params: int = 62, landmark_head: bool = False) -> None:
        super().__init__()
        w = lambda c: int(c * widen_factor)  # noqa: E731
        self.conv1 = nn.Conv2d(3, w(32), 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(w(32))
        self.relu = nn.ReLU(inplace=True)
        for name, cin, cout, stride in _BLOCKS:
            self.add_module(name, DepthWiseBlock(w(cin), w(cout), stride))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = w(1024)
        self.fc_param = nn.Linear(self.num_features, num_params)
        self.fc_lm = nn.Linear(self.num_features, 136) if landmark_head else None
        self._init_weights()

    def _init_weights(self) -> None:
        init_conv_bn_(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> pooled features (B, num_features)."""
        x = self.relu(self.bn1(self.conv1(x)))
        for name, *_ in _BLOCKS:
            x = getattr(self, name)(x)
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc_param(self.forward_features(x))

    @staticmethod
    def remap_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Accept 3DDFA v1 names (``fc`` head) as well as V2 names (``fc_param``)."""
        return {("fc_param" + k[2:] if k.startswith("fc.") else k): v for k, v in state_dict.items()}
