"""The CIFAR-size networks of the DC/DM/DataDAM cross-architecture tables (``docs/networks.md#other-networks``).

``mlp``, ``lenet``, ``alexnet`` (``alexnet_bn``), ``vgg11`` (``vgg11_bn``) and ``resnet18`` (``resnet18_bn``,
``resnet18_ap``, ``resnet18_bn_ap``), layer for layer as ``networks.py`` of the DC and DataDAM code:

* MLP: ``in -> 128 -> 128 -> classes`` with ReLU.
* LeNet: conv 6@5x5 (pad 2 for one channel) -> ReLU -> max-pool, conv 16@5x5 -> ReLU -> max-pool,
  then FC ``400 -> 120 -> 84 -> classes``.
* AlexNet: conv128 5x5 (pad 2; pad 4 for one channel), conv192 5x5, conv256/192/192 3x3, max-pools after the
  1st, 2nd and 5th conv, one FC layer (``192*4*4`` at 32x32). ``alexnet_bn`` adds BatchNorm after every conv.
* VGG11: ``[64,M,128,M,256,256,M,512,512,M,512,512,M]``, 3x3 convs (pad 3 on the first one for one channel) ->
  norm -> ReLU, then ``Linear(512, classes)``. Norm is "instancenorm" = ``GroupNorm(C, C)`` by default,
  ``BatchNorm2d`` for ``vgg11_bn``.
* ResNet18: the kuangliu CIFAR ResNet (BasicBlocks [2,2,2,2], widths 64..512, 3x3 stride-1 stem), instance norm
  by default, BatchNorm for ``_bn``; ``avg_pool2d(4)`` then ``Linear``. The ``_ap`` variants replace every stride-2
  conv by a stride-1 conv whose (normalised, activated) output is average-pooled 2x2, and the strided 1x1 shortcut by
  a stride-1 1x1 conv + ``AvgPool2d(2)``; their classifier reads the whole flattened ``512 x h x w`` map
  (``512*4*4`` at 32x32, ``512*3*3`` for 28x28 one-channel inputs).

The reference hard-codes its head sizes for 32x32 (and 28x28 MNIST) inputs; here they are computed from the actual
input size with a dummy forward pass at build time, so 64x64 (Tiny-ImageNet) and other sizes build too. ResNet18's
final ``avg_pool2d(4)`` shrinks to the map size when the last map is smaller than 4x4. ReLUs are not in-place
(the block outputs are also returned as feature maps); the arithmetic is the reference's.

``extract(x).maps`` are the post-activation outputs of each convolutional block before its pooling (LeNet,
AlexNet, VGG11; none for the MLP) or each residual stage's output (ResNet18, four maps); ``embedding`` is the
flattened input of the final linear layer (for the MLP and LeNet, the output of the last hidden FC layer, as the
reference's ``embed``), and ``classify`` is that final linear layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import AtombenchError
from .base import Features, FeatureNet, ModelFamily

Norm = Literal["instancenorm", "batchnorm", "none"]


def _norm(kind: str, c: int) -> nn.Module:
    if kind == "instancenorm":  # the reference's "instancenorm": one group per channel, learnable affine
        return nn.GroupNorm(c, c, affine=True)
    if kind == "batchnorm":
        return nn.BatchNorm2d(c)
    return nn.Identity()


def _probe(fn, module: nn.Module, channels: int, image_size: tuple[int, int], what: str) -> torch.Tensor:
    """``fn`` applied to one zero image in eval mode, without autograd (to size the classifier)."""
    was = module.training
    module.eval()  # eval: a BatchNorm must not update its running statistics with the dummy image
    try:
        with torch.no_grad():
            return fn(torch.zeros(1, channels, *image_size))
    except (RuntimeError, ValueError) as exc:  # ValueError: a norm left with one value per channel (1x1 maps)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise AtombenchError(f"{what} cannot take {channels}x{image_size[0]}x{image_size[1]} inputs ({first}); "
                             f"give the dataset a larger image size (its 'size' or 'image_size' option) or choose "
                             f"another model") from exc
    finally:
        module.train(was)


class _Body(nn.Module):
    """Convolutional blocks whose outputs are the feature maps, each followed by its pooling (or none)."""

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


class SequentialNet(FeatureNet):
    """A :class:`_Body`, optional hidden FC layers with ReLU (MLP, LeNet), then the linear classifier."""

    def __init__(self, body: _Body, channels: int, num_classes: int, image_size: tuple[int, int],
                 hidden: tuple[int, ...] = (), what: str = "model"):
        super().__init__()
        self.body = body
        flat = _probe(body, self, channels, image_size, what).flatten(1).shape[1]
        dims = [flat, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.hidden = nn.Sequential(*layers)
        self.embed_dim = dims[-1]
        self.classifier = nn.Linear(self.embed_dim, num_classes)

    def extract(self, x: torch.Tensor) -> Features:
        maps, out = self.body.run(x)
        return Features(maps=maps, embedding=self.hidden(out.flatten(1)))

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.classifier(embedding)


# -- MLP and LeNet -------------------------------------------------------------------------------------------
def _mlp(cfg, channels: int, num_classes: int, image_size: tuple[int, int]) -> SequentialNet:
    return SequentialNet(_Body([], []), channels, num_classes, image_size, hidden=(128, 128), what="mlp")


def _lenet(cfg, channels: int, num_classes: int, image_size: tuple[int, int]) -> SequentialNet:
    # pad 2 for one channel: a 28x28 MNIST image then gives the 16x5x5 = 400 features of a 32x32 one
    body = _Body([nn.Sequential(nn.Conv2d(channels, 6, 5, padding=2 if channels == 1 else 0), nn.ReLU()),
                  nn.Sequential(nn.Conv2d(6, 16, 5), nn.ReLU())],
                 [nn.MaxPool2d(2, 2), nn.MaxPool2d(2, 2)])
    return SequentialNet(body, channels, num_classes, image_size, hidden=(120, 84), what="lenet")


# -- AlexNet -------------------------------------------------------------------------------------------------
@dataclass
class AlexNetConfig:
    """AlexNet of the DC code; ``norm: batchnorm`` is AlexNetBN."""

    norm: Literal["none", "batchnorm"] = "none"


def _alexnet(cfg: AlexNetConfig, channels: int, num_classes: int, image_size: tuple[int, int]) -> SequentialNet:
    def block(cin: int, cout: int, k: int, pad: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(cin, cout, k, padding=pad), _norm(cfg.norm, cout), nn.ReLU())

    body = _Body([block(channels, 128, 5, 4 if channels == 1 else 2), block(128, 192, 5, 2),
                  block(192, 256, 3, 1), block(256, 192, 3, 1), block(192, 192, 3, 1)],
                 [nn.MaxPool2d(2, 2), nn.MaxPool2d(2, 2), nn.Identity(), nn.Identity(), nn.MaxPool2d(2, 2)])
    return SequentialNet(body, channels, num_classes, image_size, what="alexnet")


# -- VGG11 ---------------------------------------------------------------------------------------------------
@dataclass
class VGGConfig:
    """VGG11 of the DC code: instance norm (GroupNorm(C, C)) by default; ``batchnorm`` is VGG11BN."""

    norm: Norm = "instancenorm"


_VGG11 = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


def _vgg11(cfg: VGGConfig, channels: int, num_classes: int, image_size: tuple[int, int]) -> SequentialNet:
    blocks: list[nn.Module] = []
    pools: list[nn.Module] = []
    cin = channels
    for v in _VGG11:
        if v == "M":  # the max-pool belongs to the block before it (maps are taken before pooling)
            pools[-1] = nn.MaxPool2d(2, 2)
            continue
        pad = 3 if (not blocks and channels == 1) else 1
        blocks.append(nn.Sequential(nn.Conv2d(cin, v, 3, padding=pad), _norm(cfg.norm, v), nn.ReLU()))
        pools.append(nn.Identity())
        cin = v
    # the reference's trailing AvgPool2d(1, 1) is the identity and is left out
    return SequentialNet(_Body(blocks, pools), channels, num_classes, image_size, what="vgg11")


# -- ResNet18 ------------------------------------------------------------------------------------------------
@dataclass
class ResNetConfig:
    """ResNet18 (CIFAR variant): instance norm by default; ``avgpool_downsample`` is the ``_AP`` variant."""

    norm: Norm = "instancenorm"
    avgpool_downsample: bool = False


class BasicBlock(nn.Module):
    """The kuangliu BasicBlock; with ``ap`` the DC code's BasicBlock_AP (average-pool instead of stride)."""

    def __init__(self, cin: int, cout: int, stride: int, norm: str, ap: bool):
        super().__init__()
        self.pool = ap and stride != 1
        s = 1 if ap else stride
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=s, padding=1, bias=False)
        self.bn1 = _norm(norm, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = _norm(norm, cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            sc: list[nn.Module] = [nn.Conv2d(cin, cout, 1, stride=s, bias=False)]
            if self.pool:
                sc.append(nn.AvgPool2d(2, 2))
            sc.append(_norm(norm, cout))
            self.shortcut = nn.Sequential(*sc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        if self.pool:  # _AP: pooled after norm and ReLU, as BasicBlock_AP.forward
            out = F.avg_pool2d(out, 2, 2)
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(FeatureNet):
    def __init__(self, cfg: ResNetConfig, channels: int, num_classes: int, image_size: tuple[int, int]):
        super().__init__()
        self.ap = cfg.avgpool_downsample
        self.stem = nn.Sequential(nn.Conv2d(channels, 64, 3, padding=1, bias=False), _norm(cfg.norm, 64), nn.ReLU())
        stages, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            stages.append(nn.Sequential(BasicBlock(cin, cout, stride, cfg.norm, self.ap),
                                        BasicBlock(cout, cout, 1, cfg.norm, self.ap)))
            cin = cout
        self.stages = nn.ModuleList(stages)
        name = "resnet18" + ("_ap" if self.ap else "")
        self.embed_dim = _probe(lambda x: self.extract(x).embedding, self, channels, image_size, name).shape[1]
        self.classifier = nn.Linear(self.embed_dim, num_classes)

    def extract(self, x: torch.Tensor) -> Features:
        x = self.stem(x)
        maps = []
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        if not self.ap:
            # the reference's avg_pool2d(4) (512 features at 32x32); capped at the map size for small inputs
            x = F.avg_pool2d(x, min(4, x.shape[-2], x.shape[-1]))
        # _AP: the reference's avg_pool2d(kernel 1) is the identity; the whole 512 x h x w map is flattened
        return Features(maps=maps, embedding=x.flatten(1))

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.classifier(embedding)


def _resnet18(cfg: ResNetConfig, channels: int, num_classes: int, image_size: tuple[int, int]) -> ResNet18:
    return ResNet18(cfg, channels, num_classes, image_size)


@dataclass
class NoConfig:
    """No options."""


mlp = ModelFamily(_mlp, NoConfig, "MLP: 3 fully connected layers, 128 wide (MLP of the DC/DM code)")
lenet = ModelFamily(_lenet, NoConfig, "LeNet-5, CIFAR-size (LeNet of the DC/DM code)")
alexnet = ModelFamily(_alexnet, AlexNetConfig,
                      "AlexNet, CIFAR-size, no normalisation (AlexNet of the DC/DM cross-architecture tables)")
alexnet_bn = alexnet.variant("AlexNet with BatchNorm (AlexNetBN of the DM cross-architecture table)", norm="batchnorm")
vgg11 = ModelFamily(_vgg11, VGGConfig, "VGG11, CIFAR-size, instance norm GroupNorm(C, C) (VGG11 of the DC/DM code)")
vgg11_bn = vgg11.variant("VGG11 with BatchNorm (VGG11BN of the DC/DM cross-architecture tables)", norm="batchnorm")
resnet18 = ModelFamily(_resnet18, ResNetConfig,
                       "ResNet18, CIFAR variant, instance norm GroupNorm(C, C) (ResNet18 of the DC/DM code)")
resnet18_bn = resnet18.variant("ResNet18 with BatchNorm (ResNet18BN of the DM cross-architecture table)",
                               norm="batchnorm")
resnet18_ap = resnet18.variant("ResNet18, instance norm, average-pool downsampling (ResNet18_AP of the DC code)",
                               avgpool_downsample=True)
resnet18_bn_ap = resnet18.variant("ResNet18 with BatchNorm and average-pool downsampling "
                                  "(ResNet18BN_AP of the DC cross-architecture table)",
                                  norm="batchnorm", avgpool_downsample=True)
