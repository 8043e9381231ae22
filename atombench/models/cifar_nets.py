"""The CIFAR-size networks of the DC/DM/DataDAM cross-architecture tables (``atom_spec.md`` section 1.2).

``mlp``, ``lenet``, ``alexnet`` (``alexnet_bn``), ``vgg11`` (``vgg11_bn``) and ``resnet18`` (``resnet18_bn``,
``resnet18_ap``, ``resnet18_bn_ap``). As in the reference code, "instancenorm" is ``GroupNorm(C, C)`` (the default
of VGG11 and ResNet18) and the ``_bn`` variants use ``BatchNorm2d``; one-channel inputs get a wider padding on the
first convolution (the MNIST quirk). Head sizes are computed from the actual input size instead of being fixed at
32x32, so 28x28 and 64x64 inputs build too.

``extract(x).maps`` are the post-activation outputs of each convolutional block before pooling (AlexNet, VGG,
LeNet) or each residual stage's output (ResNet); ``embedding`` is the flattened input of the final linear layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .base import Features, FeatureNet, ModelFamily

Norm = Literal["instancenorm", "batchnorm", "none"]


def _norm(kind: str, c: int) -> nn.Module:
    if kind == "instancenorm":
        return nn.GroupNorm(c, c, affine=True)
    if kind == "batchnorm":
        return nn.BatchNorm2d(c)
    return nn.Identity()


def _flat_dim(body: nn.Module, channels: int, image_size: tuple[int, int]) -> int:
    with torch.no_grad():
        was = body.training
        body.eval()
        out = body(torch.zeros(1, channels, *image_size))
        body.train(was)
    return int(out.flatten(1).shape[1])


class _Body(nn.Module):
    """Blocks whose outputs are feature maps, each followed by an optional pooling."""

    def __init__(self, blocks: list[nn.Module], pools: list[nn.Module]):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.pools = nn.ModuleList(pools)

    def run(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        maps = []
        for block, pool in zip(self.blocks, self.pools):
            x = block(x)
            maps.append(x)
            x = pool(x)
        return maps, x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)[1]


class _SequentialNet(FeatureNet):
    def __init__(self, body: _Body, channels: int, num_classes: int, image_size: tuple[int, int],
                 head_hidden: tuple[int, ...] = ()):
        super().__init__()
        self.body = body
        dims = [_flat_dim(body, channels, image_size), *head_hidden]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.hidden = nn.Sequential(*layers)
        self.classifier = nn.Linear(dims[-1], num_classes)

    def extract(self, x: torch.Tensor) -> Features:
        maps, out = self.body.run(x)
        return Features(maps=maps, embedding=self.hidden(out.flatten(1)))

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.classifier(embedding)


# -- MLP and LeNet -------------------------------------------------------------------------------------------
def _mlp(cfg, channels, num_classes, image_size):
    body = _Body([], [])
    return _SequentialNet(body, channels, num_classes, image_size, head_hidden=(128, 128))


def _lenet(cfg, channels, num_classes, image_size):
    body = _Body([nn.Sequential(nn.Conv2d(channels, 6, 5, padding=2 if channels == 1 else 0), nn.ReLU()),
                  nn.Sequential(nn.Conv2d(6, 16, 5), nn.ReLU())],
                 [nn.MaxPool2d(2, 2), nn.MaxPool2d(2, 2)])
    return _SequentialNet(body, channels, num_classes, image_size, head_hidden=(120, 84))


# -- AlexNet -------------------------------------------------------------------------------------------------
@dataclass
class AlexNetConfig:
    """AlexNet of the DC code; ``norm: batchnorm`` is AlexNetBN."""

    norm: Literal["none", "batchnorm"] = "none"


def _alexnet(cfg: AlexNetConfig, channels, num_classes, image_size):
    def block(cin, cout, k, pad):
        return nn.Sequential(nn.Conv2d(cin, cout, k, padding=pad), _norm(cfg.norm, cout), nn.ReLU())

    body = _Body([block(channels, 128, 5, 4 if channels == 1 else 2), block(128, 192, 5, 2), block(192, 256, 3, 1),
                  block(256, 192, 3, 1), block(192, 192, 3, 1)],
                 [nn.MaxPool2d(2), nn.MaxPool2d(2), nn.Identity(), nn.Identity(), nn.MaxPool2d(2)])
    return _SequentialNet(body, channels, num_classes, image_size)


# -- VGG11 ---------------------------------------------------------------------------------------------------
@dataclass
class VGGConfig:
    """VGG11 of the DC code: instance norm (GroupNorm(C, C)) by default; ``batchnorm`` is VGG11BN."""

    norm: Norm = "instancenorm"


_VGG11 = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


def _vgg11(cfg: VGGConfig, channels, num_classes, image_size):
    blocks, pools = [], []
    cin = channels
    for i, v in enumerate(_VGG11):
        if v == "M":
            pools[-1] = nn.MaxPool2d(2, 2)
            continue
        pad = 3 if (cin == channels and channels == 1 and not blocks) else 1
        blocks.append(nn.Sequential(nn.Conv2d(cin, v, 3, padding=pad), _norm(cfg.norm, v), nn.ReLU()))
        pools.append(nn.Identity())
        cin = v
    return _SequentialNet(_Body(blocks, pools), channels, num_classes, image_size)


# -- ResNet18 ------------------------------------------------------------------------------------------------
@dataclass
class ResNetConfig:
    """ResNet18 (CIFAR variant): instance norm by default; ``avgpool_downsample`` is the ``_AP`` variant."""

    norm: Norm = "instancenorm"
    avgpool_downsample: bool = False


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, norm: str, ap: bool):
        super().__init__()
        # _AP: a stride-1 conv followed by 2x2 average pooling replaces each stride-2 conv
        s = 1 if ap else stride
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=s, padding=1, bias=False)
        self.pool1 = nn.AvgPool2d(2) if (ap and stride != 1) else nn.Identity()
        self.n1 = _norm(norm, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.n2 = _norm(norm, cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            sc: list[nn.Module] = [nn.Conv2d(cin, cout, 1, stride=s, bias=False)]
            if ap and stride != 1:
                sc.append(nn.AvgPool2d(2))
            sc.append(_norm(norm, cout))
            self.shortcut = nn.Sequential(*sc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.n1(self.pool1(self.conv1(x))))
        out = self.n2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(FeatureNet):
    def __init__(self, cfg: ResNetConfig, channels: int, num_classes: int, image_size: tuple[int, int]):
        super().__init__()
        self.ap = cfg.avgpool_downsample
        self.stem = nn.Sequential(nn.Conv2d(channels, 64, 3, padding=1, bias=False), _norm(cfg.norm, 64), nn.ReLU())
        stages, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            stages.append(nn.Sequential(_BasicBlock(cin, cout, stride, cfg.norm, self.ap),
                                        _BasicBlock(cout, cout, 1, cfg.norm, self.ap)))
            cin = cout
        self.stages = nn.ModuleList(stages)
        with torch.no_grad():
            was = self.training
            self.eval()
            dim = self._embed(self._trunk(torch.zeros(1, channels, *image_size))[1]).shape[1]
            self.train(was)
        self.classifier = nn.Linear(dim, num_classes)

    def _trunk(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        x = self.stem(x)
        maps = []
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return maps, x

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        # the reference: avg_pool2d(4) then flatten (512 at 32x32); _AP flattens the 512 x h x w map
        if not self.ap:
            k = min(4, x.shape[-2], x.shape[-1])
            x = F.avg_pool2d(x, k)
        return x.flatten(1)

    def extract(self, x: torch.Tensor) -> Features:
        maps, out = self._trunk(x)
        return Features(maps=maps, embedding=self._embed(out))

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.classifier(embedding)


def _resnet18(cfg: ResNetConfig, channels, num_classes, image_size):
    return ResNet18(cfg, channels, num_classes, image_size)


@dataclass
class NoConfig:
    """No options."""


mlp = ModelFamily(_mlp, NoConfig, "MLP: 3 fully connected layers, 128 wide (the DC code's MLP)")
lenet = ModelFamily(_lenet, NoConfig, "LeNet (the DC code's LeNet)")
alexnet = ModelFamily(_alexnet, AlexNetConfig, "AlexNet, CIFAR-size, no normalisation (DC/DM cross-architecture)")
alexnet_bn = alexnet.variant("AlexNet with BatchNorm (AlexNetBN of the DM cross-architecture table)", norm="batchnorm")
vgg11 = ModelFamily(_vgg11, VGGConfig, "VGG11, CIFAR-size, instance norm (GroupNorm(C, C))")
vgg11_bn = vgg11.variant("VGG11 with BatchNorm (VGG11BN of the DC/DM cross-architecture tables)", norm="batchnorm")
resnet18 = ModelFamily(_resnet18, ResNetConfig, "ResNet18, CIFAR variant, instance norm (GroupNorm(C, C))")
resnet18_bn = resnet18.variant("ResNet18 with BatchNorm (ResNet18BN)", norm="batchnorm")
resnet18_ap = resnet18.variant("ResNet18 with average-pool downsampling (ResNet18_AP)", avgpool_downsample=True)
resnet18_bn_ap = resnet18.variant("ResNet18 with BatchNorm and average-pool downsampling (ResNet18BN_AP of DC)",
                                  norm="batchnorm", avgpool_downsample=True)
