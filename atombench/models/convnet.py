"""The ConvNet family of the dataset-distillation literature (DC, DSA, DM, MTT, DataDAM, ATOM).

Exactly as in the reference code (``docs/networks.md#convnet``): ``depth`` blocks of
``Conv2d(in, width, 3, padding=1)`` -> norm -> activation -> pool, then a linear head on the flattened features.

* ``instancenorm`` is ``GroupNorm(C, C, affine=True)`` (one group per channel), not ``nn.InstanceNorm2d``;
  ``batchnorm`` = ``BatchNorm2d``; ``layernorm`` = ``LayerNorm([C, H, W])``; ``groupnorm`` = ``GroupNorm(4, C)``.
* The first convolution pads by 3 instead of 1 when the input has one channel (the MNIST quirk: 28x28 inputs give
  a 32x32 first feature map, hence the same 128x4x4 embedding as CIFAR).
* ``extract(x).maps`` are the post-activation, pre-pooling block outputs; ``embedding`` is the flattened output
  after the last pool (2048-d for 32x32 inputs at depth 3, width 128).
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from ..config import check
from .base import Features, FeatureNet, ModelFamily

Norm = Literal["instancenorm", "batchnorm", "layernorm", "groupnorm", "none"]
Act = Literal["relu", "leakyrelu", "sigmoid", "swish"]
Pool = Literal["avgpooling", "maxpooling", "none"]


@dataclass
class ConvNetConfig:
    """ConvNet options; defaults are ``get_default_convnet_setting()`` of the DC/DM code (width 128, depth 3,
    relu, instancenorm, avgpooling)."""

    width: int = 128
    depth: int = 3
    act: Act = "relu"
    norm: Norm = "instancenorm"
    pool: Pool = "avgpooling"

    def __post_init__(self) -> None:
        check(self.width >= 1, f"width must be >= 1, got {self.width}")
        check(self.depth >= 1, f"depth must be >= 1, got {self.depth}")


class Swish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


def _act(name: str) -> nn.Module:
    # ReLU in place: it overwrites the norm's output, which no backward pass needs (conv and norm backward read
    # their inputs), saving one full-size tensor per block; the ReLU output is the block's feature map
    return {"relu": lambda: nn.ReLU(inplace=True), "leakyrelu": lambda: nn.LeakyReLU(0.01), "sigmoid": nn.Sigmoid,
            "swish": Swish}[name]()


def _norm(name: str, c: int, h: int, w: int) -> nn.Module:
    if name == "instancenorm":
        return nn.GroupNorm(c, c, affine=True)
    if name == "batchnorm":
        return nn.BatchNorm2d(c, affine=True)
    if name == "layernorm":
        return nn.LayerNorm([c, h, w], elementwise_affine=True)
    if name == "groupnorm":
        return nn.GroupNorm(4, c, affine=True)
    return nn.Identity()


class ConvNet(FeatureNet):
    def __init__(self, cfg: ConvNetConfig, channels: int, num_classes: int, image_size: tuple[int, int]):
        super().__init__()
        self.cfg = cfg
        h, w = image_size
        blocks = []
        c_in = channels
        for d in range(cfg.depth):
            pad = 3 if (d == 0 and channels == 1) else 1
            h, w = h + 2 * pad - 2, w + 2 * pad - 2
            check(h >= 1 and w >= 1, f"ConvNet depth {cfg.depth} cannot take {image_size} inputs")
            conv = nn.Conv2d(c_in, cfg.width, kernel_size=3, padding=pad)
            blocks.append(nn.Sequential(conv, _norm(cfg.norm, cfg.width, h, w), _act(cfg.act)))
            c_in = cfg.width
            if cfg.pool != "none":
                check(h >= 2 and w >= 2, f"ConvNet depth {cfg.depth} pools {image_size} inputs below 1x1; "
                                         f"use a smaller depth or larger images")
                h, w = h // 2, w // 2
        self.blocks = nn.ModuleList(blocks)
        self.pool = {"avgpooling": nn.AvgPool2d(2, 2), "maxpooling": nn.MaxPool2d(2, 2), "none": nn.Identity()}[cfg.pool]
        self.embed_dim = cfg.width * h * w
        self.classifier = nn.Linear(self.embed_dim, num_classes)

    def extract(self, x: torch.Tensor) -> Features:
        maps = []
        for block in self.blocks:
            x = block(x)
            maps.append(x)
            x = self.pool(x)
        return Features(maps=maps, embedding=x.flatten(1))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The embedding without keeping the block outputs alive (DM and evaluation training need only it)."""
        for block in self.blocks:
            x = self.pool(block(x))
        return x.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.classifier(embedding)


def _build(cfg: ConvNetConfig, channels: int, num_classes: int, image_size: tuple[int, int]) -> ConvNet:
    return ConvNet(cfg, channels, num_classes, image_size)


# Named variants, as ``get_network`` names them in the DC/DM code (ConvNetD4 -> convnet_d4, ...).
convnet = ModelFamily(_build, ConvNetConfig, "ConvNet-3 of DC/DM/DataDAM/ATOM: width 128, instancenorm, relu, avg-pool")
convnet_d1 = convnet.variant("ConvNet, depth 1", depth=1)
convnet_d2 = convnet.variant("ConvNet, depth 2", depth=2)
convnet_d3 = convnet.variant("ConvNet, depth 3", depth=3)
convnet_d4 = convnet.variant("ConvNet, depth 4 (the usual Tiny-ImageNet network)", depth=4)
convnet_w32 = convnet.variant("ConvNet, width 32", width=32)
convnet_w64 = convnet.variant("ConvNet, width 64", width=64)
convnet_w128 = convnet.variant("ConvNet, width 128", width=128)
convnet_w256 = convnet.variant("ConvNet, width 256", width=256)
convnet_as = convnet.variant("ConvNet, sigmoid activation", act="sigmoid")
convnet_ar = convnet.variant("ConvNet, relu activation", act="relu")
convnet_al = convnet.variant("ConvNet, leaky-relu activation", act="leakyrelu")
convnet_aswish = convnet.variant("ConvNet, swish activation", act="swish")
convnet_nn = convnet.variant("ConvNet, no normalisation", norm="none")
convnet_bn = convnet.variant("ConvNet, BatchNorm (the released DataDAM code's 'ConvNet')", norm="batchnorm")
convnet_ln = convnet.variant("ConvNet, LayerNorm", norm="layernorm")
convnet_in = convnet.variant("ConvNet, instance norm (GroupNorm(C, C))", norm="instancenorm")
convnet_gn = convnet.variant("ConvNet, GroupNorm(4, C)", norm="groupnorm")
convnet_np = convnet.variant("ConvNet, no pooling", pool="none")
convnet_mp = convnet.variant("ConvNet, max pooling", pool="maxpooling")
convnet_ap = convnet.variant("ConvNet, average pooling", pool="avgpooling")
convnet_aswish_bn = convnet.variant("ConvNet, swish activation and BatchNorm", act="swish", norm="batchnorm")


# -- the NAS search space -------------------------------------------------------------------------------------
# DC/DM/DataDAM/ATOM search architectures among ConvNets (``docs/nas.md#search-space``, recalled from the papers and
# marked UNVERIFIED there, "high confidence"): 4 depths x 4 widths x 3 activations x 3 poolings x 5 normalisations
# = 720 candidates, each option one argument of the ConvNet above.
NAS_AXES: dict[str, tuple] = {
    "depth": (1, 2, 3, 4),
    "width": (32, 64, 128, 256),
    "act": ("sigmoid", "relu", "leakyrelu"),
    "norm": ("none", "batchnorm", "layernorm", "instancenorm", "groupnorm"),
    "pool": ("none", "maxpooling", "avgpooling"),
}
_SHORT = {"none": "nn", "batchnorm": "bn", "layernorm": "ln", "instancenorm": "in", "groupnorm": "gn",
          "maxpooling": "mp", "avgpooling": "ap"}
_POOL_SHORT = {"none": "np", "maxpooling": "mp", "avgpooling": "ap"}


@dataclass
class SearchGrid:
    """A user-defined search space: every combination of the listed values (a suite's ``nas.space`` mapping).

    Defaults are the papers' axes, so ``{width: [16, 32]}`` changes the widths and keeps the rest of the space."""

    depth: list[int] = field(default_factory=lambda: list(NAS_AXES["depth"]))
    width: list[int] = field(default_factory=lambda: list(NAS_AXES["width"]))
    act: list[Act] = field(default_factory=lambda: list(NAS_AXES["act"]))
    norm: list[Norm] = field(default_factory=lambda: list(NAS_AXES["norm"]))
    pool: list[Pool] = field(default_factory=lambda: list(NAS_AXES["pool"]))

    def __post_init__(self) -> None:
        for axis in NAS_AXES:
            values = getattr(self, axis)
            check(len(values) > 0, f"{axis} must list at least one value")
            check(len(set(values)) == len(values), f"{axis} lists a value twice: {values}")
        check(all(d >= 1 for d in self.depth), f"depth values must be >= 1, got {self.depth}")
        check(all(w >= 1 for w in self.width), f"width values must be >= 1, got {self.width}")

    def candidates(self) -> list[ConvNetConfig]:
        return [ConvNetConfig(width=w, depth=d, act=a, norm=n, pool=p)
                for d, w, a, n, p in itertools.product(self.depth, self.width, self.act, self.norm, self.pool)]


def candidate_name(cfg: ConvNetConfig) -> str:
    """A candidate's row name, e.g. ``d3_w128_relu_in_ap`` (depth, width, activation, norm, pooling)."""
    return f"d{cfg.depth}_w{cfg.width}_{cfg.act}_{_SHORT.get(cfg.norm, cfg.norm)}_{_POOL_SHORT[cfg.pool]}"


def candidate_options(cfg: ConvNetConfig) -> dict:
    """The ``nas_convnet`` options of a candidate (what its job keys hash)."""
    return {"depth": cfg.depth, "width": cfg.width, "act": cfg.act, "norm": cfg.norm, "pool": cfg.pool}


def conv_macs(cfg: ConvNetConfig, channels: int, image_size: tuple[int, int], num_classes: int = 10) -> int:
    """Multiply-accumulates of one forward pass of one image (convolutions and the head): the cost measure
    used to choose the ``small`` space and to schedule the longest NAS jobs first."""
    h, w = image_size
    c_in, macs = channels, 0
    for d in range(cfg.depth):
        pad = 3 if (d == 0 and channels == 1) else 1
        h, w = h + 2 * pad - 2, w + 2 * pad - 2
        macs += c_in * cfg.width * 9 * max(h, 0) * max(w, 0)
        c_in = cfg.width
        if cfg.pool != "none":
            h, w = h // 2, w // 2
    return macs + cfg.width * max(h, 0) * max(w, 0) * num_classes


def candidate_problem(cfg: ConvNetConfig, channels: int, image_size: tuple[int, int]) -> str | None:
    """Why a candidate cannot take ``channels x image_size`` inputs (pooled below 1x1), or None when it can.
    Builds the network on the meta device: the ConvNet's own checks, no memory, no time."""
    from ..config import Invalid

    try:
        with torch.device("meta"):
            ConvNet(cfg, channels, 2, tuple(image_size))
    except Invalid as exc:
        return str(exc)
    return None


def full_space() -> list[ConvNetConfig]:
    """The papers' 720 ConvNets, in the order depth, width, activation, norm, pooling."""
    return SearchGrid().candidates()


#: ``small``: this many candidates ...
SMALL_SIZE = 36
#: ... none costing more (MACs at 3x32x32) than ConvNetD4 of the papers (width 128, pooling; 53 MMAC), the
#: deepest of their standard networks. Width 256 then appears at depth 1 only, no pooling at small widths.
SMALL_BUDGET_MACS = conv_macs(ConvNetConfig(depth=4), 3, (32, 32))


def small_space(size: int = SMALL_SIZE, budget: int = SMALL_BUDGET_MACS) -> list[ConvNetConfig]:
    """A stratified, deterministic subset of the full space that trains on a CPU: ``size`` candidates within
    ``budget`` MACs, chosen greedily so that every value of every axis appears about equally often (fewest
    uses of the candidate's five values first, then of its value pairs, then a fixed hash order), returned in
    the full space's order. Every value of every axis appears at least once (tested)."""
    pool = [c for c in full_space() if conv_macs(c, 3, (32, 32)) <= budget]
    order = {candidate_name(c): hashlib.sha256(candidate_name(c).encode()).hexdigest() for c in pool}
    single: dict[tuple, int] = {}
    pairs: dict[tuple, int] = {}

    def keys(c: ConvNetConfig) -> tuple[list, list]:
        vals = [(a, getattr(c, a)) for a in NAS_AXES]
        return vals, list(itertools.combinations(vals, 2))

    chosen: list[ConvNetConfig] = []
    left = list(pool)
    for _ in range(min(size, len(pool))):
        def score(c: ConvNetConfig):
            vals, prs = keys(c)
            return (sum(single.get(v, 0) for v in vals), sum(pairs.get(p, 0) for p in prs), order[candidate_name(c)])

        best = min(left, key=score)
        left.remove(best)
        chosen.append(best)
        vals, prs = keys(best)
        for v in vals:
            single[v] = single.get(v, 0) + 1
        for p in prs:
            pairs[p] = pairs.get(p, 0) + 1
    rank = {candidate_name(c): i for i, c in enumerate(full_space())}
    return sorted(chosen, key=lambda c: rank[candidate_name(c)])


#: the named search spaces a suite's ``nas.space`` may give
SPACES = {"small": small_space, "full": full_space}

#: the family every NAS candidate is built from (the suite's ``nas.space`` gives its options)
nas_convnet = ModelFamily(_build, ConvNetConfig, "a candidate of the NAS search space (DC/DM ConvNets: depth, "
                                                  "width, act, norm, pool; see atombench.nas)")
