"""An outside package registering a distiller, a model and a dataset with atombench."""

from dataclasses import dataclass

import torch
from torch import nn

from atombench.config import check
from atombench.data.base import RealData
from atombench.distillers.base import Distiller, class_balanced_labels
from atombench.models.base import Features, FeatureNet, ModelFamily


@dataclass
class ClassMeanConfig:
    """The only option: how much noise to add to each class mean."""

    noise: float = 0.0

    def __post_init__(self):
        check(self.noise >= 0, f"noise must be >= 0, got {self.noise}")


class ClassMeanDistiller(Distiller):
    """Every synthetic image is its class's mean image (plus optional seeded noise)."""

    Config = ClassMeanConfig

    def distill(self, data: RealData, ipc: int, ctx):
        means = torch.stack([data.train_x[idx].mean(0) for idx in data.class_indices])
        images = means.repeat_interleave(ipc, 0)
        images = images + self.config.noise * torch.randn(images.shape, generator=ctx.generator)
        return images, class_balanced_labels(data.num_classes, ipc)


class TinyMLP(FeatureNet):
    def __init__(self, channels, num_classes, image_size, hidden):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(channels * image_size[0] * image_size[1], hidden),
                                  nn.ReLU())
        self.head = nn.Linear(hidden, num_classes)

    def extract(self, x):
        return Features(maps=[], embedding=self.body(x))

    def classify(self, embedding):
        return self.head(embedding)


@dataclass
class TinyMLPConfig:
    hidden: int = 32


tiny_mlp = ModelFamily(lambda cfg, channels, num_classes, image_size: TinyMLP(channels, num_classes, image_size,
                                                                              cfg.hidden),
                       TinyMLPConfig, "a one-hidden-layer MLP from an outside package")


@dataclass
class BlobsConfig:
    per_class: int = 20


class Blobs:
    """Three Gaussian blobs as 1x4x4 images (a synthetic toy dataset from an outside package)."""

    Config = BlobsConfig

    @classmethod
    def load(cls, cfg):
        g = torch.Generator().manual_seed(0)
        centers = torch.randn(3, 1, 4, 4, generator=g) * 3
        def make(n):
            y = torch.arange(3).repeat_interleave(n)
            return centers[y] + torch.randn(len(y), 1, 4, 4, generator=g), y
        (xtr, ytr), (xte, yte) = make(cfg.per_class), make(10)
        return RealData("blobs", xtr, ytr, xte, yte, ["a", "b", "c"], [0.0], [1.0], options={"per_class": cfg.per_class})


@dataclass
class ExplodeConfig:
    at: int = 2


class ExplodeInit(Distiller):
    """A distiller whose constructor raises (a plug-in bug caught before any work)."""

    Config = ExplodeConfig

    def __init__(self, config=None):
        raise RuntimeError("plug-in bug in __init__")


class ExplodeMid(Distiller):
    """A distiller that raises in the middle of its distillation."""

    Config = ExplodeConfig

    def distill(self, data, ipc, ctx):
        for it in ctx.progress(range(5), total=5):
            if it == self.config.at:
                raise RuntimeError(f"plug-in bug at iteration {it}")
            ctx.progress  # noqa: B018 - nothing else to do
        raise AssertionError("unreachable")


@dataclass
class WaitForEvaluationConfig:
    """``out``: the suite's results folder; ``timeout``: seconds to wait before giving up."""

    out: str = ""
    iterations: int = 4
    timeout: float = 120.0


class WaitForEvaluation(Distiller):
    """Saves its snapshots like any iterative distiller and, after the first one, does not finish until an
    evaluation result appears in ``<out>/jobs`` (or raises after ``timeout`` s): it shows, without depending on
    the machine's speed, that a snapshot is evaluated while its distillation goes on."""

    Config = WaitForEvaluationConfig
    iterative = True

    def distill(self, data, ipc, ctx):
        import time
        from pathlib import Path

        labels = class_balanced_labels(data.num_classes, ipc)
        images = torch.stack([data.train_x[idx[:ipc]] for idx in data.class_indices]).flatten(0, 1).clone()
        state = ctx.restore()  # the images never change: only the iteration to continue from
        start = int(state["iteration"]) if state else 0
        first_snapshot = min(ctx.snapshots, default=0)
        for it in ctx.progress(range(start, self.config.iterations), total=self.config.iterations - start):
            ctx.step_done(it + 1, images, labels, lambda: {"images": images.clone()})
            if it + 1 == first_snapshot:
                deadline = time.monotonic() + self.config.timeout
                while not any((Path(self.config.out) / "jobs").glob("*.json")):
                    if time.monotonic() > deadline:
                        raise RuntimeError("no evaluation finished while the distillation waited")
                    time.sleep(0.2)
        return images, labels
