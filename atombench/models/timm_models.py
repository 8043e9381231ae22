"""Any timm model as ``timm:<name>``: ``timm.create_model(name, pretrained=False, num_classes=..., in_chans=...,
**kwargs)``, plus ``img_size=<the dataset's size>`` where the model takes one (ViT, DeiT, MLP-Mixer, Swin, ...).

Options (:class:`TimmOptions`): ``kwargs``, extra keyword arguments for ``create_model``, e.g. ``{patch_size: 4}``
for a ViT on 32x32 images (16x16 patches would leave only 2x2 tokens).

:class:`TimmNet` adapts a timm model to the :class:`~atombench.models.base.FeatureNet` hook:

* ``forward(x)`` is the timm model's own forward, so the logits are exactly timm's;
* ``extract(x).embedding`` is ``forward_head(forward_features(x), pre_logits=True)`` flattened to ``[B, D]``: the
  input of the classifier (after global pooling, and for MobileNetV3 after its ``conv_head``);
* ``extract(x).maps`` are the 4-D (NCHW) outputs of ``forward_intermediates`` (timm >= 1.0: one per stage for
  CNNs, one per block, reshaped to NCHW, for ViT/DeiT/Mixer); an empty list for families without it. When the
  final output of ``forward_intermediates`` equals ``forward_features`` (checked once per model and input size at
  the first build; true for every family tried), maps and embedding come from that one pass;
* ``classify(embedding)`` is ``get_classifier()`` applied to the embedding (a 1x1-conv classifier, as in DLA, is
  applied to the embedding as a 1x1 map).

``forward(x) == classify(extract(x).embedding)`` holds (in eval mode) for ResNet, ConvNeXt, EfficientNet,
MobileNetV3, RegNet, ViT/DeiT and MLP-Mixer (checked in the tests), and for every family whose head after the
pre-logits is just the classifier. Known deviations:

* distilled DeiT (``deit_*_distilled_*``): ``forward`` averages two heads applied to two different tokens, while
  the pre-logits are the average of the two tokens; ``classify`` averages both heads on that average, which is
  close but not equal (LeViT's two heads read the same pooled features, so it is exact there);
* in train mode, head dropout (``drop_rate`` > 0, 0 by default) is applied by ``forward`` but not by ``classify``.

Inputs are never resized: a model that cannot take the dataset's image size (too small for its strides or
kernels, or not a multiple of its patch size) fails at build time, found by one dummy forward pass, with a one-line
:class:`~atombench.errors.AtombenchError` naming the model and the size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import AtombenchError, PluginError, suggest
from .base import Features, FeatureNet, ModelFamily

# How extract() gets its maps, per (model, kwargs, channels, image size), learnt by the first build's probe
# (later builds, e.g. one fresh network per distillation iteration, skip the probe):
#   "single"   - one forward_intermediates pass gives the maps and the final features;
#   "separate" - maps from forward_intermediates, embedding from a second forward_features pass;
#   "none"     - no forward_intermediates: no maps.
_MODES: dict[tuple, str] = {}
_TAKES_IMG_SIZE: dict[str, bool] = {}

_SIZE_ERRORS = (RuntimeError, AssertionError, ValueError, TypeError, ZeroDivisionError, IndexError)


@dataclass
class TimmOptions:
    """Extra keyword arguments for ``timm.create_model`` (e.g. ``{patch_size: 4}`` for a ViT at 32x32)."""

    kwargs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        from ..config import check

        own = [k for k in ("pretrained", "num_classes", "in_chans") if k in (self.kwargs or {})]
        check(not own, f"kwargs: {', '.join(own)} {'is' if len(own) == 1 else 'are'} set by atombench (no "
                       f"pretrained weights: every model trains from scratch; the classes and channels are the "
                       f"dataset's): remove {'it' if len(own) == 1 else 'them'}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


class TimmNet(FeatureNet):
    """A timm model behind the FeatureNet hook; ``timm_name`` is the name it was created from."""

    def __init__(self, model: nn.Module, timm_name: str, mode: str = "none"):
        super().__init__()
        self.model = model
        self.timm_name = timm_name
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _pre_logits(self, final: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(final, pre_logits=True).flatten(1)

    def extract(self, x: torch.Tensor) -> Features:
        if self.mode == "single":
            final, inter = self.model.forward_intermediates(x)
            return Features([t for t in inter if t.ndim == 4], self._pre_logits(final))
        maps: list[torch.Tensor] = []
        if self.mode == "separate":
            maps = [t for t in self.model.forward_intermediates(x, intermediates_only=True) if t.ndim == 4]
        return Features(maps, self._pre_logits(self.model.forward_features(x)))

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        head = self.model.get_classifier()
        if isinstance(head, (tuple, list)):  # distilled models (DeiT, LeViT): the mean of both heads
            return sum(_apply(h, embedding) for h in head) / len(head)
        return _apply(head, embedding)


def _apply(head: nn.Module, embedding: torch.Tensor) -> torch.Tensor:
    if isinstance(head, nn.Conv2d):  # 1x1-conv classifiers read the pooled features as a 1x1 map
        return head(embedding[:, :, None, None]).flatten(1)
    return head(embedding)


def _probe_mode(model: nn.Module, x: torch.Tensor) -> str:
    """How :meth:`TimmNet.extract` should run this model (see ``_MODES``); ``model`` is in eval mode."""
    if not hasattr(model, "forward_intermediates"):
        return "none"
    try:
        final, _ = model.forward_intermediates(x)
    except (NotImplementedError, *_SIZE_ERRORS):
        return "none"
    features = model.forward_features(x)
    if isinstance(final, torch.Tensor) and final.shape == features.shape and torch.allclose(final, features):
        return "single"
    try:
        model.forward_intermediates(x, intermediates_only=True)
    except (NotImplementedError, *_SIZE_ERRORS):
        return "none"
    return "separate"


def _create(name: str, channels: int, num_classes: int, image_size: tuple[int, int], kwargs: dict) -> nn.Module:
    import timm

    base = dict(pretrained=False, num_classes=num_classes, in_chans=channels, **kwargs)
    if "img_size" in kwargs or _TAKES_IMG_SIZE.get(name) is False:
        return timm.create_model(name, **base)
    # an int for square images: a few older families do not accept a tuple
    size = image_size[0] if image_size[0] == image_size[1] else tuple(image_size)
    try:
        model = timm.create_model(name, img_size=size, **base)
    except TypeError as exc:  # the family has no img_size argument: it adapts to any size by itself
        if "img_size" not in str(exc):
            raise
        _TAKES_IMG_SIZE[name] = False
        return timm.create_model(name, **base)
    _TAKES_IMG_SIZE[name] = True
    return model


class TimmFamily(ModelFamily):
    """The model family of one timm model name; its options are :class:`TimmOptions`."""

    def __init__(self, name: str):
        self.timm_name = name
        super().__init__(self._build, TimmOptions, f"timm model {name} (pretrained=False)")

    def _build(self, cfg: TimmOptions, channels: int, num_classes: int, image_size: tuple[int, int]) -> TimmNet:
        name, (h, w) = self.timm_name, image_size
        try:
            model = _create(name, channels, num_classes, image_size, cfg.kwargs)
        except TypeError as exc:
            raise AtombenchError(f"timm:{name} could not be created with kwargs {cfg.kwargs}: {_first_line(exc)}") from exc
        except (RuntimeError, AssertionError, ValueError, ZeroDivisionError, IndexError) as exc:
            raise self._size_error(cfg, channels, num_classes, image_size, exc) from exc
        key = (name, repr(sorted(cfg.kwargs.items())), channels, h, w)
        if key not in _MODES:
            # one dummy image (its own generator: the caller's seeded RNG stream is left alone), in eval mode so
            # that BatchNorm running statistics are not touched
            x = torch.randn(1, channels, h, w, generator=torch.Generator().manual_seed(0))
            model.eval()
            try:
                with torch.no_grad():
                    model(x)
                    mode = _probe_mode(model, x)
            except _SIZE_ERRORS as exc:
                raise self._size_error(cfg, channels, num_classes, image_size, exc) from exc
            finally:
                model.train()
            _MODES[key] = mode
        return TimmNet(model, name, _MODES[key])


    def min_size(self, cfg: TimmOptions, channels: int, num_classes: int, start: int) -> int | None:
        """The smallest square input size above ``start`` (among common sizes) this model takes, or None."""
        for size in (s for s in (8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256)
                     if s > start):
            try:
                model = _create(self.timm_name, channels, num_classes, (size, size), cfg.kwargs).eval()
                with torch.no_grad():
                    model(torch.zeros(1, channels, size, size))
                return size
            except Exception:  # noqa: BLE001 - any failure: too small, try the next size
                continue
        return None

    def _size_error(self, cfg: TimmOptions, channels: int, num_classes: int, image_size: tuple[int, int],
                    exc: BaseException) -> AtombenchError:
        (h, w), name = image_size, self.timm_name
        least = self.min_size(cfg, channels, num_classes, max(h, w))
        need = f"it needs inputs of at least {least}x{least}" if least else "no common size up to 256 works"
        return AtombenchError(f"timm:{name} cannot take {channels}x{h}x{w} inputs: {need} "
                              f"({_first_line(exc)}); give the dataset a larger image size (its 'size' or 'image_size' "
                              f"option), kwargs such as patch_size, or another model")


class TimmNamespace:
    """any timm model as timm:<name> (pretrained=False; img_size passed where the model takes one)"""

    description = "any timm model as timm:<name> (pretrained=False; img_size passed where the model takes one)"

    def resolve(self, name: str) -> ModelFamily:
        import timm

        if not timm.is_model(name):
            raise PluginError(f"unknown timm model '{name}'{suggest(name, timm.list_models())}; "
                              f"timm.list_models() lists them all")
        return TimmFamily(name)


timm_namespace = TimmNamespace()
