"""MFIRRN: multi-granularity feature interaction and refinement (ICASSP 2021), as released.

Three ResNet branches see the 120x120 crop at three granularities: ``coarse`` the crop itself,
``medium`` a 2x2 jigsaw of it, ``fine`` a 3x3 jigsaw. Their features interact twice (as in the paper's released code):

- after layer2, ``fine.layer2`` (C2, 15x15) is concatenated to ``medium.layer2`` and to ``coarse.layer2``;
  each concatenation goes through that branch's ``fusion2`` block (1x1 conv 2·C2 -> C4, 3x3 conv C4 -> C2,
  SE attention) and continues as its layer3 input;
- after layer3, ``medium.layer3`` (C3, 8x8) is concatenated to ``coarse.layer3`` -> ``coarse.fusion3``
  (1x1 2·C3 -> C4, 3x3 C4 -> C3, SE) -> ``coarse.layer4`` (stride 1, 8x8).

Heads: ``head_fine`` on fine's layer2 output, ``head_medium`` on medium's layer3 output, ``head_coarse``
on coarse's layer4 output; each gives 62 normalised params, and ``decoder`` maps their concatenation
(186) to the fused 62. ``forward`` returns :class:`MFIRRNOutput` ``(coarse, medium, fine, fused)``.

Dead compute. The released code builds every branch with both fusion blocks (coarse and medium up to
layer4, fine up to layer3) and computes ``fine.layer3`` and ``medium.layer4`` only to throw them away. Here those modules exist only
with ``released=True`` (to show the released parameter count and run the released-equivalent
forward for timing); the default model skips them and every output is unchanged. Parameter names
are the released ones (``encoder_coarse.layer1.0.conv1.weight`` ..., ``head_fine``, ``decoder``;
``module.`` prefixes of ``DataParallel`` are stripped by the registry), so a released checkpoint loads
through :meth:`MFIRRN.remap_state_dict`, which drops the dead parameters.

Backbones. ``MFIRRNConfig.backbone`` picks the branch network: ``"resnet"`` (the released BasicBlock
stages) or ``"mobilenet"``, 3DDFA's MobileNetV1 cut into the same four stages so the fusion points
keep their meaning (sizes for a 120x120 crop)::

    stem   = conv1 + bn1 + relu + dw2_1     60x60
    layer1 = dw2_2                          30x30   C1
    layer2 = dw3_1, dw3_2                   15x15   C2   -> fusion2
    layer3 = dw4_1, dw4_2                    8x8    C3   -> fusion3
    layer4 = dw5_1 .. dw5_6, dw6          8x8 / 4x4 C4   (dw5_6 with ``stage4_stride``: 1 keeps 8x8 like
                                                         ResNet's layer4, 2 is MobileNetV1's own)

Inside a MobileNet branch the blocks keep MobileNetV1's names (``encoder_coarse.dw3_2.conv_sep.weight``),
so 3DDFA weights map onto every branch by name (:func:`mfirrn.models.init.init_from_pretrained`).
The coarse head of a MobileNet model pools globally, as MobileNetV1 does. ``MB05`` keeps dw5_6's stride 2:
with stride 1 the pretrained mb05 itself scores 7.80 instead of 3.30 NME on 64 AFLW2000-3D dev crops
(its dw6/fc_param were trained on 4x4 maps), so the MFIRRN could no longer start from mb05's prediction.

Jigsaw randomness. In training, one block permutation per granularity is drawn per batch from
``generator`` (or the global torch RNG, so seeded runs repeat) and shared by the whole batch. In eval
the default ``jigsaw_eval="identity"`` keeps the blocks in place — deterministic, and one of the
permutations seen in training. ``"fixed"`` uses one permutation drawn once from ``jigsaw_seed``;
``"random"`` reproduces the released test-time shuffling (its NME fluctuates run to run), for measuring
that effect.

Heads in place. ``heads_in_place=True`` (a training choice, ``model.heads_in_place`` in a recipe) gives the
medium and fine heads the crop as it is while the jigsaw still feeds the features that those branches pass to
the coarse branch: whenever a permutation is drawn, the medium and fine branches run a second time on the
unshuffled crop (medium through its ``fusion2`` with fine's in-place layer2) for their own heads and for the
decoder. In evaluation with ``jigsaw_eval="identity"`` both passes are the same, so they run once and a model
trained either way has the same outputs for the same weights.

Position-keeping heads. The released medium and fine heads average their maps globally. With ResNet-34
branches one cell of those maps sees the whole crop, so the pooled features can still say where the face is;
in a MobileNet cut a cell of the fine map sees 43 px and one of the medium map 107 px, and the average keeps
what the crop shows but not where. ``MFIRRNConfig.head_pool="flatten"`` (``MB05_FLAT``, registered as
``mfirrn-mb05-flat``) flattens the map into fc1 instead; everything else is the same model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, NamedTuple, Optional

import torch
from torch import nn

from mfirrn.geometry.frames import CROP_SIZE
from mfirrn.geometry.params import PARAM_SPEC
from mfirrn.io.checks import check_shape
from mfirrn.models.mobilenet import _BLOCKS as _MOBILENET_BLOCKS
from mfirrn.models.mobilenet import DepthWiseBlock, init_conv_bn_

__all__ = [
    "MFIRRN",
    "MFIRRNConfig",
    "MFIRRNOutput",
    "R34",
    "R18_HALF",
    "MB05",
    "MB05_FLAT",
    "mobilenet_stage_widths",
    "jigsaw",
    "released_parameter_count",
    "BN_MOMENTUM",
]

BN_MOMENTUM = 0.01  # fusion / head BN momentum of the released code (eps 1e-5)
JigsawEval = Literal["identity", "fixed", "random"]
Backbone = Literal["resnet", "mobilenet"]
HeadPool = Literal["average", "flatten"]

# MobileNetV1 blocks of each ResNet-like stage (the stem is conv1 + bn1 + dw2_1); dw5_6 runs with stride 1.
MOBILENET_STAGES: tuple[tuple[str, ...], ...] = (
    ("dw2_2",), ("dw3_1", "dw3_2"), ("dw4_1", "dw4_2"), ("dw5_1", "dw5_2", "dw5_3", "dw5_4", "dw5_5", "dw5_6", "dw6"),
)


def mobilenet_stage_widths(widen_factor: float) -> tuple[int, int, int, int]:
    """Output channels (C1..C4) of the four MobileNetV1 stages, e.g. ``(64, 128, 256, 512)`` at 0.5."""
    cout = {name: out for name, _, out, _ in _MOBILENET_BLOCKS}
    return tuple(int(cout[stage[-1]] * widen_factor) for stage in MOBILENET_STAGES)  # type: ignore[return-value]


class MFIRRNOutput(NamedTuple):
    """The four 62-d normalised predictions (B, 62) each; prediction uses ``fused``."""

    coarse: torch.Tensor
    medium: torch.Tensor
    fine: torch.Tensor
    fused: torch.Tensor


@dataclass(frozen=True)
class MFIRRNConfig:
    """Sizes of an MFIRRN. Defaults are the released ResNet-34 model.

    ``backbone``: ``"resnet"`` or ``"mobilenet"`` (module docstring); ``widen_factor``: MobileNetV1 width
    multiplier (mobilenet only; ``widths`` must then equal :func:`mobilenet_stage_widths`);
    ``blocks``: BasicBlocks per ResNet stage (resnet only); ``widths``: channels C1..C4 of the stages;
    ``fusion_mid``: middle widths of the fusion2/fusion3 blocks (``None``: C4 for both, as released);
    ``stage4_stride``: stride of layer4 (mobilenet: of dw5_6; resnet: must be 1, as released);
    ``head_mid``/``head_out``: the two conv widths of the fine/medium heads (2048, 512 released);
    ``fc_hidden``: hidden FC width of the three heads (256); ``decoder_hidden``: first FC width of the
    concat decoder (512); ``dropout``: 0.3; ``se_reduction``: 16; ``head_pool``: how the medium and fine heads
    reduce their maps before the FC layers, ``"average"`` (a global average pool, as released) or
    ``"flatten"`` (the map flattened, so the FC layer knows which cell saw what: position-keeping heads for
    branches whose cells see only part of the crop, see the module docstring).
    """

    blocks: tuple[int, int, int, int] = (3, 4, 6, 3)
    widths: tuple[int, int, int, int] = (64, 128, 256, 512)
    head_mid: int = 2048
    head_out: int = 512
    fc_hidden: int = 256
    decoder_hidden: int = 512
    dropout: float = 0.3
    se_reduction: int = 16
    num_params: int = PARAM_SPEC.dim
    backbone: Backbone = "resnet"
    widen_factor: float = 1.0
    fusion_mid: Optional[tuple[int, int]] = None
    stage4_stride: int = 1
    head_pool: HeadPool = "average"

    def __post_init__(self) -> None:
        if self.head_pool not in ("average", "flatten"):
            raise ValueError(f"MFIRRNConfig.head_pool must be 'average' or 'flatten', got {self.head_pool!r}")
        if self.backbone not in ("resnet", "mobilenet"):
            raise ValueError(f"MFIRRNConfig.backbone must be 'resnet' or 'mobilenet', got {self.backbone!r}")
        if self.stage4_stride not in (1, 2) or (self.backbone == "resnet" and self.stage4_stride != 1):
            raise ValueError(f"MFIRRNConfig.stage4_stride must be 1 (resnet) or 1/2 (mobilenet), got {self.stage4_stride}")
        if self.backbone == "mobilenet" and tuple(self.widths) != mobilenet_stage_widths(self.widen_factor):
            raise ValueError(f"MFIRRNConfig: a mobilenet backbone with widen_factor={self.widen_factor} has stage widths "
                             f"{mobilenet_stage_widths(self.widen_factor)}, but widths={tuple(self.widths)}")

    def fusion_widths(self) -> tuple[int, int]:
        """Middle widths of (fusion2, fusion3)."""
        return tuple(self.fusion_mid) if self.fusion_mid is not None else (self.widths[3], self.widths[3])  # type: ignore[return-value]


R34 = MFIRRNConfig()
R18_HALF = MFIRRNConfig(blocks=(2, 2, 2, 2), widths=(32, 64, 128, 256), head_mid=512, head_out=256,
                        fc_hidden=128, decoder_hidden=256)
# MobileNetV1 x0.5 branches (3DDFA_V2's mb05, fine-tunable from its weights). Fusion middles equal the fused
# width (the least that lets a fusion block start as the identity on its own branch); heads sized to the
# channels. dw5_6 keeps its stride 2 (see the module docstring). No dropout: the model is fine-tuned from a network trained without it, and the pass-through
# initialisation of the coarse head (see mfirrn.models.init) is then exact in training as well.
MB05 = MFIRRNConfig(backbone="mobilenet", widen_factor=0.5, widths=mobilenet_stage_widths(0.5), fusion_mid=(128, 256),
                    head_mid=64, head_out=64, fc_hidden=128, decoder_hidden=128, dropout=0.0, stage4_stride=2)
# MB05 with position-keeping medium and fine heads: one cell of the fine head's 15x15 map sees 43 px of the crop,
# one of the medium head's 8x8 map 107 px (mfirrn.evaluation.ablation.head_receptive_field), so a global average
# pool leaves them the content of the crop but not where it is; flattened, fc1 reads 64x15x15 and 64x8x8 features.
MB05_FLAT = replace(MB05, head_pool="flatten")


def jigsaw(x: torch.Tensor, n: int, perm: Optional[torch.Tensor]) -> torch.Tensor:
    """Split images (B, C, H, W) into ``n x n`` blocks and put block ``perm[k]`` at position ``k``.

    Blocks are numbered row-major; ``perm`` (n*n,) int64 is shared by the whole batch; ``None`` or the
    identity returns ``x`` unchanged. H and W must be divisible by ``n`` (120 // 2, 120 // 3).

    >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
    >>> jigsaw(x, 2, torch.tensor([3, 2, 1, 0]))[0, 0].tolist()
    [[10.0, 11.0, 8.0, 9.0], [14.0, 15.0, 12.0, 13.0], [2.0, 3.0, 0.0, 1.0], [6.0, 7.0, 4.0, 5.0]]
    """
    check_shape(x, (None, None, None, None), "images")
    b, c, h, w = x.shape
    if h % n or w % n:
        raise ValueError(f"jigsaw: image size {h}x{w} is not divisible into {n}x{n} blocks")
    if perm is None:
        return x
    check_shape(perm, (n * n,), "perm")
    if torch.equal(perm.cpu(), torch.arange(n * n)):
        return x
    bh, bw = h // n, w // n
    blocks = x.reshape(b, c, n, bh, n, bw).permute(0, 1, 2, 4, 3, 5).reshape(b, c, n * n, bh, bw)
    blocks = blocks[:, :, perm.to(x.device)]
    return blocks.reshape(b, c, n, n, bh, bw).permute(0, 1, 2, 4, 3, 5).reshape(b, c, h, w)


def _conv_bn_relu(cin: int, cout: int, k: int) -> nn.Sequential:
    """Conv (no bias) - BN(eps 1e-5, momentum 0.01) - ReLU, 'same' padding."""
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False),
                         nn.BatchNorm2d(cout, eps=1e-5, momentum=BN_MOMENTUM), nn.ReLU(inplace=True))


class SqueezeExcite(nn.Module):
    """Channel attention: global average pool -> FC C->C/r -> ReLU -> FC C/r->C -> sigmoid -> scale."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3))
        s = torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))
        return x * s[:, :, None, None]


class FusionBlock(nn.Module):
    """Cross-granularity fusion: concat (2·C) -> 1x1 conv-BN-ReLU (mid) -> 3x3 conv-BN-ReLU (C) -> SE."""

    def __init__(self, channels: int, mid: int, reduction: int = 16) -> None:
        super().__init__()
        self.conv1 = _conv_bn_relu(2 * channels, mid, 1)
        self.conv2 = _conv_bn_relu(mid, channels, 3)
        self.se = SqueezeExcite(channels, reduction)

    def forward(self, x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        return self.se(self.conv2(self.conv1(torch.cat([x, other], dim=1))))


class BasicBlock(nn.Module):
    """ResNet BasicBlock (two 3x3 conv-BN, identity or 1x1-conv-BN shortcut); torchvision naming."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Branch(nn.Module):
    """One granularity's ResNet: conv1 7x7/2 + maxpool, layer1..layer4 (layer4 stride 1), fusion blocks.

    ``depth`` = how many stages exist (1..4); ``fusions`` = which fusion blocks exist (subset of {2, 3}).
    The released code builds both fusions for every branch, depth 4 for coarse and medium and depth 3
    for fine (that is what gives its 77.58 M parameters).
    """

    def __init__(self, cfg: MFIRRNConfig, depth: int, fusions: tuple[int, ...]) -> None:
        super().__init__()
        w = cfg.widths
        self.conv1 = nn.Conv2d(3, w[0], 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(w[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        strides = (1, 2, 2, 1)
        cin = w[0]
        for i in range(depth):
            blocks = [BasicBlock(cin, w[i], strides[i])] + [BasicBlock(w[i], w[i]) for _ in range(cfg.blocks[i] - 1)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            cin = w[i]
        self.depth = depth
        _add_fusions(self, cfg, fusions)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))


def _add_fusions(branch: nn.Module, cfg: MFIRRNConfig, fusions: tuple[int, ...]) -> None:
    w, mid = cfg.widths, cfg.fusion_widths()
    if 2 in fusions:
        branch.fusion2 = FusionBlock(w[1], mid[0], cfg.se_reduction)
    if 3 in fusions:
        branch.fusion3 = FusionBlock(w[2], mid[1], cfg.se_reduction)


class MobileNetBranch(nn.Module):
    """One granularity's MobileNetV1 (3DDFA names ``conv1``, ``bn1``, ``dw2_1`` ...), cut into ``stem``, ``layer1..4``.

    Same interface as :class:`Branch`: ``depth`` stages exist (blocks of later stages are not built),
    ``fusions`` blocks exist. Stage membership: ``MOBILENET_STAGES``; dw5_6 has ``cfg.stage4_stride``.
    """

    def __init__(self, cfg: MFIRRNConfig, depth: int, fusions: tuple[int, ...]) -> None:
        super().__init__()
        w = lambda c: int(c * cfg.widen_factor)  # noqa: E731
        spec = {name: (cin, cout, stride) for name, cin, cout, stride in _MOBILENET_BLOCKS}
        self.conv1 = nn.Conv2d(3, w(32), 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(w(32))
        self.relu = nn.ReLU(inplace=True)
        for name in ("dw2_1",) + sum(MOBILENET_STAGES[:depth], ()):
            cin, cout, stride = spec[name]
            self.add_module(name, DepthWiseBlock(w(cin), w(cout), cfg.stage4_stride if name == "dw5_6" else stride))
        self.depth = depth
        _add_fusions(self, cfg, fusions)

    def _stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        for name in MOBILENET_STAGES[i]:
            x = getattr(self, name)(x)
        return x

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.dw2_1(self.relu(self.bn1(self.conv1(x))))

    def layer1(self, x: torch.Tensor) -> torch.Tensor:
        return self._stage(0, x)

    def layer2(self, x: torch.Tensor) -> torch.Tensor:
        return self._stage(1, x)

    def layer3(self, x: torch.Tensor) -> torch.Tensor:
        return self._stage(2, x)

    def layer4(self, x: torch.Tensor) -> torch.Tensor:
        return self._stage(3, x)


class Head(nn.Module):
    """Regression head: optional 1x1 + 3x3 conv-BN-ReLU, average pool, FC -> dropout -> ELU -> FC (62).

    ``map_side``: with ``pool=None`` the (side x side) map is flattened instead of pooled, fc1 reading every cell.
    """

    def __init__(self, cin: int, cfg: MFIRRNConfig, pool: Optional[nn.Module], conv: bool, map_side: int = 1) -> None:
        super().__init__()
        self.conv = nn.Sequential(_conv_bn_relu(cin, cfg.head_mid, 1), _conv_bn_relu(cfg.head_mid, cfg.head_out, 3)) if conv else None
        self.pool = pool if pool is not None else nn.Identity()
        feat = (cfg.head_out if conv else cin) * (1 if pool is not None else map_side * map_side)
        self.fc1 = nn.Linear(feat, cfg.fc_hidden)
        self.dropout = nn.Dropout(cfg.dropout)
        self.act = nn.ELU(inplace=True)
        self.fc2 = nn.Linear(cfg.fc_hidden, cfg.num_params)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv is not None:
            x = self.conv(x)
        x = torch.flatten(self.pool(x), 1)
        return self.fc2(self.act(self.dropout(self.fc1(x))))


class ConcatDecoder(nn.Module):
    """[coarse, medium, fine] (3·62) -> FC 512 -> dropout -> BN -> ELU -> FC 186 -> dropout -> BN -> ELU -> FC 62."""

    def __init__(self, cfg: MFIRRNConfig) -> None:
        super().__init__()
        n3 = 3 * cfg.num_params
        self.fc1 = nn.Linear(n3, cfg.decoder_hidden)
        self.drop1 = nn.Dropout(cfg.dropout)
        self.bn1 = nn.BatchNorm1d(cfg.decoder_hidden)
        self.fc2 = nn.Linear(cfg.decoder_hidden, n3)
        self.drop2 = nn.Dropout(cfg.dropout)
        self.bn2 = nn.BatchNorm1d(n3)
        self.fc3 = nn.Linear(n3, cfg.num_params)
        self.act = nn.ELU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn1(self.drop1(self.fc1(x))))
        x = self.act(self.bn2(self.drop2(self.fc2(x))))
        return self.fc3(x)


class MFIRRN(nn.Module):
    """MFIRRN regressor: (B, 3, 120, 120) normalised BGR crops -> :class:`MFIRRNOutput` of (B, 62) normalised params.

    ``released=True`` also builds (and runs) the modules of the released code that never affect an
    output: fine's layer3 and both its fusion blocks, medium's layer4 and fusion3 (the released fine
    branch stops at layer3: with them the R34 model has 77.585 M parameters, without 54.020 M). The outputs
    are identical either way. See the module docstring for ``jigsaw_eval``/``jigsaw_seed``/``generator`` and
    ``heads_in_place``.
    """

    GRANULARITY = {"medium": 2, "fine": 3}

    def __init__(self, config: MFIRRNConfig = R34, *, released: bool = False, jigsaw_eval: JigsawEval = "identity",
                 jigsaw_seed: int = 0, generator: Optional[torch.Generator] = None,
                 heads_in_place: bool = False) -> None:
        super().__init__()
        if jigsaw_eval not in ("identity", "fixed", "random"):
            raise ValueError(f"jigsaw_eval must be 'identity', 'fixed' or 'random', got {jigsaw_eval!r}")
        for n in self.GRANULARITY.values():
            if CROP_SIZE % n:
                raise ValueError(f"crop size {CROP_SIZE} is not divisible by jigsaw granularity {n}")
        self.config = config
        self.released = released
        self.jigsaw_eval = jigsaw_eval
        self.generator = generator
        self.heads_in_place = heads_in_place
        g = torch.Generator().manual_seed(jigsaw_seed)
        self._fixed_perm = {k: torch.randperm(n * n, generator=g) for k, n in self.GRANULARITY.items()}
        all_fusions = (2, 3)
        branch = MobileNetBranch if config.backbone == "mobilenet" else Branch
        self.encoder_coarse = branch(config, 4, all_fusions)
        self.encoder_medium = branch(config, 4 if released else 3, all_fusions if released else (2,))
        self.encoder_fine = branch(config, 3 if released else 2, all_fusions if released else ())
        w = config.widths
        flat = config.head_pool == "flatten"
        self.head_fine = Head(w[1], config, None if flat else nn.AvgPool2d(15), conv=True, map_side=15)
        self.head_medium = Head(w[2], config, None if flat else nn.AvgPool2d(8), conv=True, map_side=8)
        coarse_pool = nn.AdaptiveAvgPool2d(1) if config.backbone == "mobilenet" else nn.AvgPool2d(7, stride=2)
        self.head_coarse = Head(w[3], config, coarse_pool, conv=False)
        self.decoder = ConcatDecoder(config)
        self._init_weights()

    def _init_weights(self) -> None:
        init_conv_bn_(self)

    def _perm(self, name: str) -> Optional[torch.Tensor]:
        n = self.GRANULARITY[name]
        if self.training or self.jigsaw_eval == "random":
            return torch.randperm(n * n, generator=self.generator)
        return self._fixed_perm[name] if self.jigsaw_eval == "fixed" else None

    def forward(self, x: torch.Tensor) -> MFIRRNOutput:
        check_shape(x, (None, 3, CROP_SIZE, CROP_SIZE), "crops")
        c, m, f = self.encoder_coarse, self.encoder_medium, self.encoder_fine
        perm_m, perm_f = self._perm("medium"), self._perm("fine")
        fine2 = self.fine_map(jigsaw(x, 3, perm_f))
        med3 = self.medium_map(jigsaw(x, 2, perm_m), fine2)
        coa2 = c.layer2(c.layer1(c.stem(x)))
        coa3 = c.layer3(c.fusion2(coa2, fine2))
        coa4 = c.layer4(c.fusion3(coa3, med3))
        if self.released:  # the released forward computes these and discards them
            f.layer3(fine2)
            m.layer4(med3)
        head_fine2, head_med3 = fine2, med3
        if self.heads_in_place and (perm_m is not None or perm_f is not None):  # the heads' own in-place pass
            head_fine2 = self.fine_map(x)
            head_med3 = self.medium_map(x, head_fine2)
        out_c = self.head_coarse(coa4)
        out_m = self.head_medium(head_med3)
        out_f = self.head_fine(head_fine2)
        fused = self.decoder(torch.cat([out_c, out_m, out_f], dim=1))
        return MFIRRNOutput(out_c, out_m, out_f, fused)

    def fine_map(self, x: torch.Tensor) -> torch.Tensor:
        """The fine branch's layer2 output (B, C2, 15, 15) for crops (or jigsaws) ``x``: what ``head_fine`` reads
        and what the branch passes to the medium and coarse branches."""
        f = self.encoder_fine
        return f.layer2(f.layer1(f.stem(x)))

    def medium_map(self, x: torch.Tensor, fine2: torch.Tensor) -> torch.Tensor:
        """The medium branch's layer3 output (B, C3, 8, 8) for ``x``, its layer2 fused with ``fine2``
        (:meth:`fine_map`): what ``head_medium`` reads and what the branch passes to the coarse branch."""
        m = self.encoder_medium
        return m.layer3(m.fusion2(m.layer2(m.layer1(m.stem(x))), fine2))

    def remap_state_dict(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Map a released-name state dict (``module.`` prefix optional) to this model; drop dead parameters."""
        own = self.state_dict()
        out = {}
        for k, v in state_dict.items():
            k = k[len("module."):] if k.startswith("module.") else k
            if k in own or not _is_dead_key(k):
                out[k] = v
        return out

    def parameter_counts(self) -> dict[str, int]:
        """Parameters (weights and biases, not BN running stats) of this instance, per top-level module."""
        counts: dict[str, int] = {}
        for name, p in self.named_parameters():
            top = name.split(".")[0]
            counts[top] = counts.get(top, 0) + p.numel()
        counts["total"] = sum(counts.values())
        return counts


_DEAD_PREFIXES = ("encoder_fine.layer3.", "encoder_fine.layer4.", "encoder_fine.fusion2.", "encoder_fine.fusion3.",
                  "encoder_medium.layer4.", "encoder_medium.fusion3.")


def _is_dead_key(key: str) -> bool:
    return key.startswith(_DEAD_PREFIXES)


def released_parameter_count(config: MFIRRNConfig = R34) -> tuple[int, int]:
    """``(released, live)`` parameter counts: the released build with dead modules, and this model's."""
    released = sum(p.numel() for p in MFIRRN(config, released=True).parameters())
    live = sum(p.numel() for p in MFIRRN(config).parameters())
    return released, live
