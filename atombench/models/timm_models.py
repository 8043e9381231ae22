"""Any timm model as ``timm:<name>``: created with ``pretrained=False``, the dataset's ``num_classes`` and
``in_chans``, and ``img_size`` where the model takes one (ViT, DeiT, MLP-Mixer, ...).

:class:`TimmNet` adapts a timm model to the :class:`~atombench.models.base.FeatureNet` hook:

* ``forward(x)`` is the timm model's own forward (exact logits);
* ``extract(x).embedding`` is ``forward_head(features, pre_logits=True)``, the input of the classifier;
* ``extract(x).maps`` are the feature maps of ``forward_intermediates`` (timm >= 1.0; NCHW, one per stage or
  block), or an empty list for families without it;
* ``classify(embedding)`` is ``get_classifier()``. For the families checked in the tests (ResNet, ConvNeXt,
  EfficientNet, MobileNetV3, RegNet, ViT/DeiT, MLP-Mixer) everything after the pre-logits is the classifier, so
  ``forward(x) == classify(extract(x).embedding)``.

Inputs are never upsampled silently: a model that cannot take the dataset's image size fails at build time with
a message naming the model and the size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import AtombenchError, PluginError, suggest
from .base import Features, FeatureNet, ModelFamily


@dataclass
class TimmOptions:
    """Extra keyword arguments for ``timm.create_model`` (e.g. ``{patch_size: 4}`` for a ViT at 32x32)."""

    kwargs: dict = field(default_factory=dict)


class TimmNet(FeatureNet):
    def __init__(self, model: torch.nn.Module, timm_name: str):
        super().__init__()
        self.model = model
        self.timm_name = timm_name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def extract(self, x: torch.Tensor) -> Features:
        maps: list[torch.Tensor] = []
        if hasattr(self.model, "forward_intermediates"):
            try:
                final, inter = self.model.forward_intermediates(x)
                maps = [t for t in inter if t.ndim == 4]
            except (NotImplementedError, TypeError, AssertionError):
                final = self.model.forward_features(x)
        else:
            final = self.model.forward_features(x)
        emb = self.model.forward_head(final, pre_logits=True)
        return Features(maps=maps, embedding=emb.flatten(1))

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.model.get_classifier()(embedding)


def _create(name: str, channels: int, num_classes: int, image_size: tuple[int, int], kwargs: dict):
    import timm

    base = dict(pretrained=False, num_classes=num_classes, in_chans=channels, **kwargs)
    if "img_size" not in kwargs:
        try:
            return timm.create_model(name, img_size=image_size, **base)
        except TypeError as exc:  # the family takes no img_size: build it at its own geometry
            if "img_size" not in str(exc):
                raise
    return timm.create_model(name, **base)


class _TimmFamily(ModelFamily):
    def __init__(self, name: str):
        def build(cfg: TimmOptions, channels: int, num_classes: int, image_size: tuple[int, int]) -> TimmNet:
            try:
                net = TimmNet(_create(name, channels, num_classes, image_size, cfg.kwargs), name)
                net.eval()
                with torch.no_grad():
                    net(torch.zeros(2, channels, *image_size))
                net.train()
            except (RuntimeError, ValueError, AssertionError, TypeError) as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise AtombenchError(
                    f"timm:{name} cannot take {channels}x{image_size[0]}x{image_size[1]} inputs ({first}); use a "
                    f"dataset 'size' the model accepts, model kwargs (e.g. patch_size), or another model") from exc
            return net

        super().__init__(build, TimmOptions, f"timm model {name}")


class TimmNamespace:
    """any timm model as timm:<name> (pretrained=False; img_size passed where the model takes one)"""

    description = "any timm model as timm:<name> (pretrained=False; img_size passed where the model takes one)"

    def resolve(self, name: str) -> ModelFamily:
        import timm

        if not timm.is_model(name):
            raise PluginError(f"unknown timm model '{name}'{suggest(name, timm.list_models())}; "
                              f"'timm.list_models()' lists them")
        return _TimmFamily(name)


timm_namespace = TimmNamespace()
