"""DSA: Differentiable Siamese Augmentation (Zhao & Bilen, ICML 2021), with explicit seeded randomness.

The parameter values are those of the reference ``ParamDiffAug`` (``docs/preprocessing.md#dsa``): flip 0.5,
scale 1.2, rotate 15 degrees, crop-pad 0.125, cutout 0.5, brightness 1.0, saturation 2.0, contrast 0.5, and mode
'S': each application picks **one** family uniformly from the strategy (``color`` = brightness, saturation,
contrast in turn). Every operation is differentiable in the pixels, so gradients flow to synthetic images.

Two modes:

* **siamese** (distillation): :meth:`DSA.siamese` takes images laid out in equal, contiguous groups (one group
  per class) and one seed per group. Each group gets a single transformation drawn from a generator seeded with
  its seed, so a class's real batch and synthetic batch, augmented with the same seeds, get the *same*
  transformation -- the reference's shared-seed trick, but from explicit seeds instead of the clock. Doing all
  classes in one call gives exactly what one call per class gives.
* **per-sample** (:meth:`DSA.__call__`, training evaluation models): one family per batch, parameters drawn per
  image from the caller's generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

FAMILIES = ("color", "crop", "cutout", "flip", "scale", "rotate")


@dataclass(frozen=True)
class DSAParams:
    """``ParamDiffAug`` of the DC/DSA/DM/DataDAM code."""

    prob_flip: float = 0.5
    ratio_scale: float = 1.2
    ratio_rotate: float = 15.0
    ratio_crop_pad: float = 0.125
    ratio_cutout: float = 0.5
    brightness: float = 1.0
    saturation: float = 2.0
    contrast: float = 0.5


def parse_strategy(strategy: str, digits: bool = False) -> tuple[str, ...]:
    """``'color_crop_cutout_flip_scale_rotate'`` -> families; ``flip`` is dropped for digit datasets."""
    fams = tuple(f for f in strategy.split("_") if f)
    unknown = [f for f in fams if f not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown DSA operation(s) {unknown}; choose from {'_'.join(FAMILIES)}")
    return tuple(f for f in fams if not (digits and f == "flip"))


def _draw(family: str, n: int, h: int, w: int, p: DSAParams, g: torch.Generator | None,
          device: torch.device | str | None = None) -> dict:
    """Random parameters of ``family`` for ``n`` images (on ``device``, CPU by default; ``g`` None draws from the
    device's default generator)."""
    def rand() -> torch.Tensor:
        return torch.rand(n, generator=g, device=device)

    def randint(lo: int, hi: int) -> torch.Tensor:
        return torch.randint(lo, hi, (n,), generator=g, device=device)

    if family == "color":
        return {"b": rand(), "s": rand(), "c": rand()}
    if family == "crop":
        sx, sy = int(h * p.ratio_crop_pad + 0.5), int(w * p.ratio_crop_pad + 0.5)
        return {"tx": randint(-sx, sx + 1), "ty": randint(-sy, sy + 1)}
    if family == "cutout":
        ch, cw = int(h * p.ratio_cutout + 0.5), int(w * p.ratio_cutout + 0.5)
        return {"ox": randint(0, h + (1 - ch % 2)), "oy": randint(0, w + (1 - cw % 2))}
    if family == "flip":
        return {"u": rand()}
    if family == "scale":
        lo = 1.0 / p.ratio_scale
        return {"sx": rand() * (p.ratio_scale - lo) + lo, "sy": rand() * (p.ratio_scale - lo) + lo}
    if family == "rotate":
        return {"t": (rand() - 0.5) * 2 * p.ratio_rotate / 180 * math.pi}
    raise ValueError(family)


def _apply(family: str, x: torch.Tensor, q: dict, p: DSAParams) -> torch.Tensor:
    """Apply ``family`` with per-image parameters ``q`` (each of length ``len(x)``)."""
    q = {k: v.to(x.device) for k, v in q.items()}
    n, _, h, w = x.shape
    if family == "color":
        x = x + (q["b"].to(x.dtype) - 0.5).view(-1, 1, 1, 1) * p.brightness
        m = x.mean(dim=1, keepdim=True)
        x = (x - m) * (q["s"].to(x.dtype) * p.saturation).view(-1, 1, 1, 1) + m
        m = x.mean(dim=[1, 2, 3], keepdim=True)
        return (x - m) * (q["c"].to(x.dtype) + p.contrast).view(-1, 1, 1, 1) + m
    if family == "crop":
        # translate by (tx, ty) pixels; positions shifted past a one-pixel zero border read that border
        padded = F.pad(x, [1, 1, 1, 1])
        rows = (torch.arange(h, device=x.device).view(1, h) + q["tx"].view(-1, 1) + 1).clamp(0, h + 1)
        cols = (torch.arange(w, device=x.device).view(1, w) + q["ty"].view(-1, 1) + 1).clamp(0, w + 1)
        # a gather of each image's pixels (its backward a scatter-add: no host read-back, so a CUDA graph holds it)
        pos = (rows.view(n, h, 1) * (w + 2) + cols.view(n, 1, w)).view(n, 1, h * w)
        c = x.shape[1]
        return padded.flatten(2).gather(2, pos.expand(n, c, h * w)).view(n, c, h, w)
    if family == "cutout":
        ch, cw = int(h * p.ratio_cutout + 0.5), int(w * p.ratio_cutout + 0.5)
        rows = torch.arange(h, device=x.device).view(1, h)
        cols = torch.arange(w, device=x.device).view(1, w)
        r0 = (q["ox"] - ch // 2).view(-1, 1)
        c0 = (q["oy"] - cw // 2).view(-1, 1)
        # the square's indices are clamped to the image, as in the reference (a square cut at the border)
        in_r = (rows >= r0.clamp(0, h - 1)) & (rows <= (r0 + ch - 1).clamp(0, h - 1))
        in_c = (cols >= c0.clamp(0, w - 1)) & (cols <= (c0 + cw - 1).clamp(0, w - 1))
        mask = ~(in_r.view(n, h, 1) & in_c.view(n, 1, w))
        return x * mask.unsqueeze(1).to(x.dtype)
    if family == "flip":
        return torch.where((q["u"] < p.prob_flip).view(-1, 1, 1, 1), x.flip(3), x)
    if family in ("scale", "rotate"):
        if family == "scale":
            z = torch.zeros_like(q["sx"])
            theta = torch.stack([torch.stack([q["sx"], z, z], 1), torch.stack([z, q["sy"], z], 1)], 1)
        else:
            t = q["t"]
            z = torch.zeros_like(t)
            theta = torch.stack([torch.stack([t.cos(), -t.sin(), z], 1), torch.stack([t.sin(), t.cos(), z], 1)], 1)
        grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=True)
        return F.grid_sample(x, grid, align_corners=True)
    raise ValueError(family)


class DSA:
    """Differentiable siamese augmentation with a fixed strategy (see the module docstring)."""

    #: how many seeds' draws :meth:`siamese` keeps (a distillation augments the real and the synthetic batch with
    #: the same seeds, so the second call reuses the first's draws instead of drawing them again)
    SEED_MEMORY = 1024

    def __init__(self, strategy: str = "color_crop_cutout_flip_scale_rotate", digits: bool = False,
                 params: DSAParams = DSAParams()):
        self.families = parse_strategy(strategy, digits)
        self.params = params
        self._seen: dict[tuple[int, int, int], tuple[str, dict]] = {}

    def __bool__(self) -> bool:
        return bool(self.families)

    def _pick(self, g: torch.Generator) -> str:
        return self.families[int(torch.randint(len(self.families), (1,), generator=g))]

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Per-sample mode: one family for the batch, parameters drawn per image (evaluation training)."""
        if not self.families:
            return x
        family = self._pick(generator)
        n, _, h, w = x.shape
        return _apply(family, x, _draw(family, n, h, w, self.params, generator), self.params)

    def many(self, x: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
        """Per-sample mode for K models trained at once: ``x`` is ``[K, B, C, H, W]`` and model i's batch gets what
        ``self(x[i], generators[i])`` gives it (the same draws from each generator, in the same order), with one
        application per family drawn instead of one per model, and each family's parameters moved to the
        device in one copy."""
        if not self.families:
            return x
        k, b = x.shape[:2]
        h, w = x.shape[-2:]
        choices, draws = [], []
        for g in generators:
            family = self._pick(g)
            choices.append(family)
            draws.append(_draw(family, b, h, w, self.params, g))
        pieces, order = [], []
        for family in dict.fromkeys(choices):
            models = [i for i, c in enumerate(choices) if c == family]
            keys = list(draws[models[0]])
            # a family's parameters are all ints or all floats (_draw): one tensor, one copy
            vals = torch.stack([torch.cat([draws[i][key] for i in models]) for key in keys]).to(x.device)
            part = x if len(models) == k else x.index_select(0, torch.tensor(models, device=x.device))
            out = _apply(family, part.flatten(0, 1), dict(zip(keys, vals)), self.params).view(part.shape)
            if len(models) == k:
                return out
            pieces.append(out)
            order.extend(models)
        back = torch.empty(k, dtype=torch.long)
        back[torch.tensor(order)] = torch.arange(k)
        return torch.cat(pieces).index_select(0, back.to(x.device))

    def _seeded(self, seed: int, h: int, w: int, keep: int = 0) -> tuple[str, dict]:
        """The family and parameters drawn from ``seed`` (a pure function of it: remembered, not drawn twice);
        at least ``keep`` of the latest seeds stay remembered."""
        key = (seed, h, w)
        hit = self._seen.get(key)
        if hit is None:
            if len(self._seen) >= max(self.SEED_MEMORY, 2 * keep):  # forget the older half
                for old in list(self._seen)[:len(self._seen) // 2]:
                    del self._seen[old]
            g = torch.Generator().manual_seed(seed)
            family = self._pick(g)
            draw = _draw(family, 1, h, w, self.params, g)
            hit = self._seen[key] = (family, {name: v.item() for name, v in draw.items()})
        return hit

    def siamese(self, x: torch.Tensor, seeds: list[int]) -> torch.Tensor:
        """Siamese mode: ``x`` is ``len(seeds)`` equal contiguous groups; group i gets the one transformation
        drawn from ``seeds[i]`` (the same seed gives the same transformation in any call)."""
        if not self.families:
            return x
        k = len(seeds)
        n, _, h, w = x.shape
        if n % k:
            raise ValueError(f"{n} images do not split into {k} equal groups")
        per = n // k
        choices, draws = [], []
        for seed in seeds:
            family, draw = self._seeded(int(seed), h, w, keep=k)
            choices.append(family)
            draws.append(draw)
        pieces, order = [], []
        for family in dict.fromkeys(choices):
            groups = [i for i, c in enumerate(choices) if c == family]
            keys = list(draws[groups[0]])
            # one small CPU tensor per family (a row per parameter, each group's value repeated for its images),
            # moved to the images' device in one copy; a family's parameters are all ints or all floats (_draw)
            vals = torch.tensor([[draws[i][key] for i in groups] for key in keys])
            vals = vals[:, :, None].expand(len(keys), len(groups), per).reshape(len(keys), len(groups) * per)
            vals = vals.to(x.device)
            q = dict(zip(keys, vals))
            if len(groups) == k:
                return _apply(family, x, q, self.params)
            rows = torch.tensor(groups).to(x.device)
            part = x.reshape(k, per, *x.shape[1:]).index_select(0, rows).flatten(0, 1)
            pieces.append(_apply(family, part, q, self.params))
            order.extend(groups)
        # the pieces hold the groups in the order ``order``; put them back in place
        back = torch.empty(k, dtype=torch.long)
        back[torch.tensor(order)] = torch.arange(k)
        out = torch.cat(pieces).view(k, per, *x.shape[1:])
        return out.index_select(0, back.to(x.device)).flatten(0, 1)

    # -- fixed-shape siamese mode (a whole distillation iteration captured in one CUDA graph) -------------------
    def draw_fixed(self, k: int, h: int, w: int, generator: torch.Generator | None,
                   device: torch.device | str | None = None) -> "FixedDraw":
        """One transformation per group for ``k`` groups, drawn on ``device`` with operations whose shapes do
        not depend on the draw (no read-back to the host): each group's family and the parameters of *every*
        family. :meth:`siamese_fixed` applies them; the same draw gives a class's real and synthetic batch the
        same transformation, as :meth:`siamese` does with a seed."""
        family = torch.randint(len(self.families), (k,), generator=generator, device=device)
        params = {f: _draw(f, k, h, w, self.params, generator, device) for f in self.families}
        return FixedDraw(family, params)

    def siamese_fixed(self, x: torch.Tensor, draw: "FixedDraw") -> torch.Tensor:
        """Siamese mode with a :class:`FixedDraw`: ``x`` is ``len(draw)`` equal contiguous groups; group i gets
        family ``draw.family[i]`` with its parameters. Every family is applied to the whole batch and each image
        keeps its group's result (``torch.where``): the same images as :meth:`siamese` given the same families and
        parameters, at the price of computing every family (cheap next to the network's forward pass)."""
        if not self.families:
            return x
        k = len(draw)
        n = len(x)
        if n % k:
            raise ValueError(f"{n} images do not split into {k} equal groups")
        per = n // k

        def each(v: torch.Tensor) -> torch.Tensor:  # a group's value for each of its images
            return v[:, None].expand(k, per).reshape(n)

        out = None
        for i, family in enumerate(self.families):
            y = _apply(family, x, {name: each(v) for name, v in draw.params[family].items()}, self.params)
            out = y if out is None else torch.where(each(draw.family == i).view(n, 1, 1, 1), y, out)
        return out


@dataclass(frozen=True)
class FixedDraw:
    """:meth:`DSA.draw_fixed`'s result: ``family[i]`` indexes ``DSA.families`` for group i; ``params[f][name][i]``
    is parameter ``name`` of family ``f`` for group i (device tensors of length k)."""

    family: torch.Tensor
    params: dict

    def __len__(self) -> int:
        return len(self.family)

    def groups(self, start: int, stop: int) -> "FixedDraw":
        """The draw of groups ``start:stop`` (a real batch forwarded a few classes at a time)."""
        return FixedDraw(self.family[start:stop],
                         {f: {name: v[start:stop] for name, v in q.items()} for f, q in self.params.items()})


DC_OPERATIONS = ("crop", "scale", "rotate", "noise")


@dataclass(frozen=True)
class DCParams:
    """The "DC augmentation" of the DC code's evaluation (``get_daparam``, ``docs/evaluation_protocols.md#dc-augmentation``):
    crop 4 pixels, scale 0.2, rotate 45 degrees, noise 0.001."""

    crop: int = 4
    scale: float = 0.2
    rotate: int = 45
    noise: float = 0.001


class DCAugment:
    """DC's evaluation augmentation (not DSA): each image gets **one** operation drawn uniformly from the strategy.

    * ``crop``: the image is padded by ``crop`` pixels with the batch's per-channel mean and a window of the original
      size is taken at an offset drawn from ``0 .. 2*crop - 1`` in each axis (a shift of ``-crop .. crop-1``);
    * ``scale``: resized (nearest neighbour) to ``round_down(u * H)`` x ``round_down(v * W)`` with ``u, v`` uniform in
      ``[1 - scale, 1 + scale]``, then centred on a canvas of zeros and cropped back to ``H x W``;
    * ``rotate``: rotated by a whole number of degrees drawn from ``[-rotate, rotate)`` about the centre, the
      uncovered corners filled with the mean of the channel means (the DC code uses scipy's spline rotation;
      this one is bilinear: a departure of interpolation only);
    * ``noise``: ``+ noise * N(0, 1)`` per pixel.

    Not differentiable through the random choices (it is only used to train evaluation models).
    """

    def __init__(self, strategy: str = "crop_scale_rotate", params: DCParams = DCParams()):
        self.ops = tuple(o for o in strategy.split("_") if o)
        unknown = [o for o in self.ops if o not in DC_OPERATIONS]
        if unknown or not self.ops:
            raise ValueError(f"unknown DC augmentation operation(s) {unknown or strategy!r}; choose from "
                             f"{'_'.join(DC_OPERATIONS)}")
        self.params = params

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, c, h, w = x.shape
        p = self.params
        mean = x.mean(dim=(0, 2, 3))
        out = x.clone()
        for i in range(n):
            op = self.ops[int(torch.randint(len(self.ops), (1,), generator=generator))]
            img = x[i]
            if op == "crop":
                canvas = mean.view(c, 1, 1).expand(c, h + 2 * p.crop, w + 2 * p.crop).clone()
                canvas[:, p.crop:p.crop + h, p.crop:p.crop + w] = img
                r, s = (int(v) for v in torch.randint(2 * p.crop, (2,), generator=generator))
                out[i] = canvas[:, r:r + h, s:s + w]
            elif op == "scale":
                u = torch.rand(2, generator=generator) * 2 * p.scale + 1 - p.scale
                hh, ww = int(float(u[0]) * h), int(float(u[1]) * h)
                tmp = F.interpolate(img[None], size=[hh, ww])[0]
                side = max(hh, ww, h, w)
                canvas = img.new_zeros(c, side, side)
                r, s = (side - hh) // 2, (side - ww) // 2
                canvas[:, r:r + hh, s:s + ww] = tmp
                r, s = (side - h) // 2, (side - w) // 2
                out[i] = canvas[:, r:r + h, s:s + w]
            elif op == "rotate":
                deg = int(torch.randint(-p.rotate, p.rotate, (1,), generator=generator))
                t = torch.tensor(deg / 180 * math.pi, dtype=x.dtype)
                theta = torch.tensor([[t.cos(), -t.sin(), 0.0], [t.sin(), t.cos(), 0.0]], dtype=x.dtype,
                                     device=x.device)[None]
                grid = F.affine_grid(theta, [1, c, h, w], align_corners=False)
                fill = float(mean.mean())
                rotated = F.grid_sample(img[None] - fill, grid, align_corners=False, padding_mode="zeros")[0]
                out[i] = rotated + fill
            else:  # noise
                out[i] = img + p.noise * torch.randn(img.shape, generator=generator).to(img)
        return out


# -- the image augmentations of DD-Ranking and DC-BENCH (evaluation training only) ------------------------------
class CropFlip:
    """``RandomCrop(size, padding=4)`` + ``RandomHorizontalFlip(0.5)`` per image (the common CIFAR recipe: DC-BENCH's
    ``cifar_aug`` without its cutout, DD-Ranking's SRe2L CIFAR transform); the padding is zeros in the normalised
    space, as torchvision pads a normalised tensor; no flip on digit datasets."""

    def __init__(self, padding: int = 4, flip: bool = True):
        self.padding = padding
        self.flip = flip

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, c, h, w = x.shape
        p = self.padding
        padded = F.pad(x, [p, p, p, p])
        r = torch.randint(0, 2 * p + 1, (n,), generator=generator).tolist()
        s = torch.randint(0, 2 * p + 1, (n,), generator=generator).tolist()
        out = torch.stack([padded[i, :, r[i]:r[i] + h, s[i]:s[i] + w] for i in range(n)])
        if self.flip:
            u = torch.rand(n, generator=generator).to(x.device)
            out = torch.where((u < 0.5).view(-1, 1, 1, 1), out.flip(3), out)
        return out


class Mix:
    """MixUp (``kind='mixup'``, lambda ~ Beta(alpha, alpha), DD-Ranking's alpha 0.8) or CutMix (``'cutmix'``,
    lambda ~ Beta(beta, beta) with a box of side ``sqrt(1 - lambda)`` of the image, centred uniformly and clipped,
    lambda then set to the kept area; DD-Ranking's beta 1.0), one lambda and one permutation per batch.

    The images are mixed here; the training loss reads :attr:`last` (``(perm, lam)``) to mix the targets: hard labels
    as ``lam * CE(y) + (1 - lam) * CE(y[perm])`` (the usual MixUp/CutMix; DD-Ranking leaves hard labels unmixed,
    ``docs/evaluation_protocols.md#label-and-augmentation-robustness``), soft labels by the teacher relabelling the
    mixed image."""

    def __init__(self, kind: str, alpha: float):
        if kind not in ("mixup", "cutmix"):
            raise ValueError(kind)
        self.kind = kind
        self.alpha = alpha
        self.last: tuple[torch.Tensor, float] | None = None

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, _, h, w = x.shape
        a = torch.tensor(float(self.alpha))
        # torch's Beta sampler takes no generator: it draws under a seed taken from the caller's (reproducible)
        seed = int(torch.randint(0, 2 ** 31 - 1, (1,), generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            lam = float(torch.distributions.Beta(a, a).sample())
        perm = torch.randperm(n, generator=generator).to(x.device)
        if self.kind == "mixup":
            self.last = (perm, lam)
            return lam * x + (1 - lam) * x[perm]
        cut = math.sqrt(1.0 - lam)
        ch, cw = int(h * cut), int(w * cut)
        cy = int(torch.randint(h, (1,), generator=generator))
        cx = int(torch.randint(w, (1,), generator=generator))
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
        out = x.clone()
        out[:, :, y0:y1, x0:x1] = x[perm][:, :, y0:y1, x0:x1]
        lam = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
        self.last = (perm, lam)
        return out


class Compose:
    """Augmentations applied in order to each training batch (``augment`` then ``mix``: NCFM's DSA then CutMix).

    Each stage is called as ``stage(x, generator)``. A :class:`Mix` stage is applied with probability ``mix_prob``:
    one uniform ``u`` is drawn from the batch's generator just before it (after the earlier stages' draws) and the
    batch is mixed when ``u < mix_prob`` (NCFM's ``np.random.rand(1) < mix_p``); the draw is made for every batch,
    also with ``mix_prob`` 1. :attr:`last` is the mixing of the last batch, ``(perm, lam)`` of the last Mix stage
    applied, or None when no stage mixed it: the training loss mixes the targets by it (``Targets.loss``)."""

    def __init__(self, stages: list, mix_prob: float = 1.0):
        if not 0 < mix_prob <= 1:
            raise ValueError(f"mix_prob must be in (0, 1], got {mix_prob}")
        self.stages = list(stages)
        self.mix_prob = mix_prob
        self.last: tuple[torch.Tensor, float] | None = None

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        self.last = None
        for stage in self.stages:
            if isinstance(stage, Mix):
                if float(torch.rand(1, generator=generator)) >= self.mix_prob:
                    continue
                x = stage(x, generator)
                self.last = stage.last
            else:
                x = stage(x, generator)
        return x


#: the evaluation augmentations a suite can list (``eval.augment``)
EVAL_AUGMENTATIONS = ("none", "dsa", "dc", "crop_flip", "mixup", "cutmix")
