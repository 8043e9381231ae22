"""Coreset baselines: real images selected per class (``random``, ``herding``, ``kcenter``, ``forgetting``).

These are the coreset rows of the DC/DM/DataDAM/ATOM tables: the synthetic set *is* a subset of the real
training set, so IPC cannot exceed the smallest class.

``herding`` and ``kcenter`` select in the embedding of a ConvNet trained on the real data, and ``forgetting``
counts forgetting events while that same network trains. The network is trained **once** per (dataset, network,
training settings, seed) by :func:`trained_network`, which records the forgetting statistics as it trains and
caches the weights and statistics under ``ctx.cache_dir/trained_nets/`` (safetensors, written atomically): every
IPC of a run, every run with the same seed, and all three methods share it.

Training follows the evaluation protocol of :mod:`atombench.train` (SGD lr 0.01, momentum 0.9, weight decay 5e-4,
``train_epochs + 1`` shuffled passes, lr x0.1 after pass ``train_epochs // 2 + 1``), no augmentation. The papers
do not give the number of epochs; ``train_epochs: 20`` is our choice (see :class:`TrainedNetConfig`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Literal, Optional

import torch
import torch.nn.functional as F

from .. import registry
from ..config import check
from ..data.base import RealData
from ..models.base import FeatureNet
from ..runtime import atomic_write, derive_seed, stable_hash
from ..train import TrainConfig
from ..protocols import Protocol, with_
from .base import DistillContext, Distiller, class_balanced_labels
from .gradient_matching import DC_PROTOCOL, dc_paper_protocol

#: the coresets' evaluation: DC's. The coreset rows of the DC paper's Table 1 (random, herding, K-Center,
#: forgetting; copied by DM, DataDAM, ATOM and AutoPalette, the published numbers atombench shows) come from the DC
#: paper, which trains every set, its own and the coresets, with one evaluation (ConvNet, 300 epochs without
#: augmentation; DC's rule for MNIST and ConvNetBN). Under ``eval.protocol: both`` a coreset is therefore trained
#: under DC's evaluation (the published rows' conditions) and the common one (DSA, as PAD's random baseline)
CORESET_PROTOCOL = with_(DC_PROTOCOL, sources=(
    ("epochs", "DC paper Table 1 coreset rows, trained with DC's evaluation (DC code main.py: epoch_eval_train "
               "300, 1000 with DC augmentation) [inferred: the paper gives one evaluation for all rows]"),
    ("batch_size", "DC code: batch_train 256"),
    ("lr", "DC code utils.evaluate_synset: lr_net 0.01, x0.1 after epoch Epoch//2+1"),
    ("augment", "DC code utils.get_daparam: crop_scale_rotate on MNIST, crop_noise for ConvNetBN, else none"),
    ("checkpoint", "the selected subset (a coreset has no iterations)")))


class DCEvaluated:
    """Mixin of the coreset distillers: DC's evaluation as their paper protocol (:data:`CORESET_PROTOCOL`)."""

    protocol = CORESET_PROTOCOL
    makes_soft_labels = False  # real images with their own labels

    def paper_protocol(self, dataset: str, model: str, ipc: int) -> Protocol:
        return dc_paper_protocol(self.protocol, dataset, model)


@dataclass
class RandomConfig:
    """Random selection has no hyper-parameters; the seed of the run picks the images."""


class RandomDistiller(DCEvaluated, Distiller):
    """Random real images per class (seeded): the coreset baseline every table starts with."""

    Config = RandomConfig

    def distill(self, data: RealData, ipc: int, ctx: DistillContext):
        picks = [data.class_indices[c][torch.randperm(len(data.class_indices[c]), generator=ctx.generator)[:ipc]]
                 for c in range(data.num_classes)]
        index = torch.cat(picks)
        return data.train_x[index], class_balanced_labels(data.num_classes, ipc), {"indices": index.tolist()}


# -- the network trained on the real data (shared by herding, kcenter and forgetting) --------------------------
@dataclass
class TrainedNetConfig:
    """The ConvNet trained on the real training set.

    The DC paper selects its herding/k-center coresets in the embedding of a ConvNet trained on the whole
    training set and counts forgetting events (Toneva et al., ICLR 2019) while training one [recall; the DC code
    release has no coreset scripts]. Neither DC nor DM gives the epochs: ``train_epochs: 20`` passes of the
    evaluation protocol (SGD 0.01, momentum 0.9, batch 256) is our choice. ``train_per_class`` trains on that
    many random images per class instead of all of them: a cost reduction for CPU runs (forgetting then ranks
    only those images; herding and k-center still select among all images).
    """

    net: str = "convnet"
    net_options: dict = field(default_factory=dict)
    train_epochs: int = 20
    batch_size: int = 256
    train_per_class: Optional[int] = None

    def __post_init__(self) -> None:
        check(self.train_epochs >= 0, f"train_epochs must be >= 0, got {self.train_epochs}")
        check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        check(self.train_per_class is None or self.train_per_class >= 1,
              f"train_per_class must be >= 1, got {self.train_per_class}")


@dataclass
class TrainedNetwork:
    """A network trained on the real data, with the forgetting statistics of its training run."""

    net: FeatureNet
    #: training indices (into ``data.train_x``) it was trained on, sorted
    index: torch.Tensor
    #: forgetting events per trained image (correct at one presentation, wrong at the next)
    forgetting: torch.Tensor
    #: whether each trained image was classified correctly at some presentation
    learned: torch.Tensor
    key: str
    #: True when loaded from the cache (or this process's memo) instead of trained now
    reused: bool
    train_seconds: float


def _train_config(cfg: TrainedNetConfig) -> TrainConfig:
    return TrainConfig(epochs=cfg.train_epochs, batch_size=cfg.batch_size, augment="none")


def train_tracking_forgetting(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, cfg: TrainConfig,
                              generator: torch.Generator, show_progress: bool = False,
                              desc: str = "training the feature network") -> tuple[torch.Tensor, torch.Tensor]:
    """Train ``net`` exactly as :func:`atombench.train.train_model` does (same batches, same SGD schedule, no
    augmentation) and count, per image, the forgetting events of Toneva et al.: the image was classified
    correctly at one presentation (the mini-batch forward pass before the update) and wrongly at the next.
    Returns ``(events, learned)``: int64 counts and whether each image was ever classified correctly.
    ``show_progress``: an inner progress bar over the passes, showing the training loss and accuracy."""
    from tqdm.auto import tqdm

    device = images.device
    n = len(images)
    events = torch.zeros(n, dtype=torch.long, device=device)
    learned = torch.zeros(n, dtype=torch.bool, device=device)
    last = torch.zeros(n, dtype=torch.bool, device=device)

    def sgd(lr: float) -> torch.optim.Optimizer:
        return torch.optim.SGD(net.parameters(), lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)

    net.train()
    lr = cfg.lr
    opt = sgd(lr)
    decay_after = cfg.epochs // 2 + 1
    bar = tqdm(range(cfg.epochs + 1), desc=desc, unit="pass", leave=False, disable=not show_progress,
               dynamic_ncols=True)
    for ep in bar:
        perm = torch.randperm(n, generator=generator).to(device)
        for start in range(0, n, cfg.batch_size):
            idx = perm[start:start + cfg.batch_size]
            logits = net(images[idx])
            loss = F.cross_entropy(logits, labels[idx])
            correct = logits.detach().argmax(1) == labels[idx]
            events[idx] += (last[idx] & ~correct).long()
            learned[idx] |= correct
            last[idx] = correct
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if show_progress and n:  # the last mini-batch's loss and this pass's accuracy (presentation before the update)
            bar.set_postfix(loss=f"{float(loss.detach()):.4g}", acc=f"{100 * float(last.float().mean()):.1f}%",
                            refresh=False)
        if cfg.lr_decay and ep == decay_after:
            lr *= 0.1
            opt = sgd(lr)
    bar.close()
    return events.cpu(), learned.cpu()


def _build(cfg: TrainedNetConfig, data: RealData, seed: int) -> FeatureNet:
    family = registry.models.get(cfg.net)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return family.build(family.parse(cfg.net_options), data.channels, data.num_classes, data.image_size)


#: this process's most recent trained network (one entry: a second IPC of the same run needs no file read)
_MEMO: dict = {}


def trained_network(data: RealData, cfg: TrainedNetConfig, ctx: DistillContext) -> TrainedNetwork:
    """The network trained on ``data`` for ``cfg`` and the run's seed: from this process's memo, else from
    ``ctx.cache_dir/trained_nets/<key>.safetensors``, else trained now (and cached when there is a cache dir).

    The key hashes the dataset fingerprint, the network and training settings and ``ctx.seed``; the
    initialisation seed and the batch order derive from ``ctx.seed`` alone, so the network is the same whichever
    method or IPC asks first. A damaged cache file is retrained and replaced."""
    train_cfg = _train_config(cfg)
    spec = {"net": cfg.net, "net_options": cfg.net_options, "train_per_class": cfg.train_per_class,
            "train": {k: getattr(train_cfg, k) for k in ("epochs", "batch_size", "lr", "momentum", "weight_decay",
                                                          "lr_decay")}}
    key = stable_hash(["trained-net", data.fingerprint, spec, ctx.seed])
    if _MEMO.get("key") == key:
        return TrainedNetwork(**{**_MEMO["value"].__dict__, "reused": True})
    net = _build(cfg, data, derive_seed(ctx.seed, 1))
    path = ctx.cache_dir / "trained_nets" / f"{key}.safetensors" if ctx.cache_dir is not None else None
    found = None
    if path is not None and path.exists():
        from safetensors.torch import load_file

        try:
            tensors = load_file(path)
            net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
            found = TrainedNetwork(net, tensors["index"], tensors["forgetting"], tensors["learned"].bool(), key,
                                   True, 0.0)
        except Exception:  # noqa: BLE001 - a truncated or foreign file: train again and replace it
            net = _build(cfg, data, derive_seed(ctx.seed, 1))
    if found is None:
        found = _train(net, data, cfg, train_cfg, ctx, key)
        if path is not None:
            from safetensors.torch import save

            tensors = {f"net.{k}": v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
            tensors.update(index=found.index, forgetting=found.forgetting, learned=found.learned.to(torch.uint8))
            blob = save(tensors, metadata={"spec": json.dumps(spec, sort_keys=True), "dataset": data.name,
                                           "fingerprint": data.fingerprint, "seed": str(ctx.seed),
                                           "train_seconds": f"{found.train_seconds:.3f}"})
            with atomic_write(path) as fh:
                fh.write(blob)
    found.net = found.net.to(ctx.device).eval()
    _MEMO.clear()
    _MEMO.update(key=key, value=found)
    return found


def _train(net: FeatureNet, data: RealData, cfg: TrainedNetConfig, train_cfg: TrainConfig, ctx: DistillContext,
           key: str) -> TrainedNetwork:
    g = torch.Generator().manual_seed(ctx.seed)
    if cfg.train_per_class is None:
        index = torch.arange(len(data.train_y))
    else:
        index = torch.cat([idx[torch.randperm(len(idx), generator=g)[:cfg.train_per_class]]
                           for idx in data.class_indices]).sort().values
    start = time.perf_counter()
    net = net.to(ctx.device)
    x, y = data.train_x[index].to(ctx.device), data.train_y[index].to(ctx.device)
    # an inner bar: on a CPU this training takes tens of seconds, once per (dataset, network, seed)
    desc = f"{ctx.label}: training the feature network" if ctx.label else "training the feature network"
    events, learned = train_tracking_forgetting(net, x, y, train_cfg, g, show_progress=ctx.show_progress,
                                                desc=desc)
    return TrainedNetwork(net, index, events, learned, key, False, time.perf_counter() - start)


# -- herding and k-center: selection in a feature space --------------------------------------------------------
@dataclass
class FeatureSelectionConfig(TrainedNetConfig):
    """Where herding and k-center select: ``trained`` = the embedding of the network trained on the real data
    (the DC paper's setting), ``random`` = an untrained network of the same architecture, ``pixels`` = the raw
    normalised pixels."""

    features: Literal["trained", "random", "pixels"] = "trained"


#: one entry: the features of the most recent (dataset, network, seed); big datasets' features are large
_FEATURES: dict = {}


def selection_features(data: RealData, cfg: FeatureSelectionConfig, ctx: DistillContext) -> tuple[torch.Tensor, dict]:
    """``[N, D]`` features of every training image (on the context's device) and metadata about them."""
    if cfg.features == "pixels":
        return data.train_x.flatten(1).to(ctx.device), {"features": "pixels"}
    meta: dict = {"features": cfg.features}
    if cfg.features == "trained":
        tn = trained_network(data, cfg, ctx)
        net, key = tn.net, tn.key
        meta.update(trained_net_key=tn.key, trained_net_reused=tn.reused, trained_net_seconds=tn.train_seconds)
    else:
        net = _build(cfg, data, derive_seed(ctx.seed, 1)).to(ctx.device).eval()
        key = stable_hash(["random-net", data.fingerprint, cfg.net, cfg.net_options, ctx.seed])
    if _FEATURES.get("key") == key:
        return _FEATURES["value"], meta
    with torch.no_grad():
        feats = torch.cat([net.embed(data.train_x[i:i + 512].to(ctx.device))
                           for i in range(0, len(data.train_x), 512)])
    _FEATURES.clear()
    _FEATURES.update(key=key, value=feats)
    return feats, meta


@dataclass
class HerdingConfig(FeatureSelectionConfig):
    """Herding (Welling 2009; used as a coreset baseline by Rebuffi et al. 2017 and the DC/DM papers), in the
    embedding of the trained ConvNet (see :class:`TrainedNetConfig` for its settings and their sources)."""


def herd(features: torch.Tensor, k: int) -> torch.Tensor:
    """Greedy herding: indices whose running mean stays closest to the mean of ``features`` ``[N, D]``."""
    mu = features.mean(0)
    chosen: list[int] = []
    running = torch.zeros_like(mu)
    available = torch.ones(len(features), dtype=torch.bool, device=features.device)
    for t in range(1, k + 1):
        dist = ((mu - (running + features) / t) ** 2).sum(1)
        dist[~available] = float("inf")
        i = int(dist.argmin())
        chosen.append(i)
        available[i] = False
        running += features[i]
    return torch.tensor(chosen, dtype=torch.long)


class HerdingDistiller(DCEvaluated, Distiller):
    """Herding coreset: per class, greedily pick images whose feature mean tracks the class mean"""

    shares_cache_across_ipcs = True  # the trained feature network

    Config = HerdingConfig

    def distill(self, data: RealData, ipc: int, ctx: DistillContext):
        feats, meta = selection_features(data, self.config, ctx)
        index = torch.cat([data.class_indices[c][herd(feats[data.class_indices[c].to(feats.device)], ipc)]
                           for c in range(data.num_classes)])
        return data.train_x[index], class_balanced_labels(data.num_classes, ipc), {"indices": index.tolist(), **meta}


@dataclass
class KCenterConfig(FeatureSelectionConfig):
    """Greedy k-center (Wolf 2011; Sener & Savarese, ICLR 2018), per class, in the embedding of the trained
    ConvNet, as the DC/DM papers' K-Center row.

    ``first``: the first center. The papers do not say; their K-Center and Herding rows are equal at IPC 1 (to
    0.1: CIFAR-10 21.5/21.5, MNIST 89.3/89.2, Fashion-MNIST 66.9/67.0, CIFAR-100 8.3/8.4; recalled,
    ``docs/published_numbers.md#dm-and-dc-paper-rows``), which is what starting from the image nearest the class
    mean gives (herding's first pick), so ``mean`` is the default; ``random`` starts from a random image (as
    DeepCore's implementation does)."""

    first: Literal["mean", "random"] = "mean"


def k_center(features: torch.Tensor, k: int, first: int) -> torch.Tensor:
    """Greedy k-center: start at ``first``, then repeatedly add the point farthest (Euclidean) from its nearest
    chosen center. Returns ``k`` distinct indices (fewer only if ``features`` has fewer rows)."""
    k = min(k, len(features))
    chosen = [int(first)]
    nearest = ((features - features[first]) ** 2).sum(1)
    for _ in range(1, k):
        nearest[chosen] = -1.0  # never re-pick a center (duplicates have distance 0 anyway)
        i = int(nearest.argmax())
        chosen.append(i)
        nearest = torch.minimum(nearest, ((features - features[i]) ** 2).sum(1))
    return torch.tensor(chosen, dtype=torch.long)


class KCenterDistiller(DCEvaluated, Distiller):
    """K-center coreset: per class, greedy farthest-point centers in a trained ConvNet's embedding"""

    shares_cache_across_ipcs = True  # the trained feature network

    Config = KCenterConfig

    def distill(self, data: RealData, ipc: int, ctx: DistillContext):
        feats, meta = selection_features(data, self.config, ctx)
        picks = []
        for c in range(data.num_classes):
            f = feats[data.class_indices[c].to(feats.device)]
            if self.config.first == "mean":
                first = int(((f - f.mean(0)) ** 2).sum(1).argmin())
            else:
                first = int(torch.randint(len(f), (1,), generator=ctx.generator))
            picks.append(data.class_indices[c][k_center(f, ipc, first).cpu()])
        index = torch.cat(picks)
        return data.train_x[index], class_balanced_labels(data.num_classes, ipc), {"indices": index.tolist(), **meta}


# -- forgetting ------------------------------------------------------------------------------------------------
@dataclass
class ForgettingConfig(TrainedNetConfig):
    """Forgetting (Toneva et al., ICLR 2019), the DC/DM papers' coreset row: per class, the images with the most
    forgetting events while the ConvNet trains on the real data (same run as herding's and k-center's network).

    ``never_learned``: where images never classified correctly during training rank. Toneva et al. count them
    as forgotten infinitely often [recall], hence ``first`` (the default); ``last`` puts them after all others.
    Ties are broken at random with the run's seed."""

    never_learned: Literal["first", "last"] = "first"


def forgetting_order(events: torch.Tensor, learned: torch.Tensor, never_learned: str,
                     generator: torch.Generator) -> torch.Tensor:
    """Positions sorted by decreasing forgetting score, ties in random (seeded) order."""
    score = events.double()
    score[~learned] = float("inf") if never_learned == "first" else -1.0
    perm = torch.randperm(len(score), generator=generator)
    order = torch.sort(score[perm], descending=True, stable=True).indices
    return perm[order]


class ForgettingDistiller(DCEvaluated, Distiller):
    """Forgetting coreset: per class, the images most often forgotten while a ConvNet trains on the real data"""

    shares_cache_across_ipcs = True  # the trained feature network

    Config = ForgettingConfig

    def check_ipc(self, data: RealData, ipc: int) -> str | None:
        problem = super().check_ipc(data, ipc)
        n = self.config.train_per_class
        if problem is None and n is not None and ipc > n:
            return f"IPC {ipc} exceeds train_per_class {n}: forgetting ranks only the images it trained on"
        return problem

    def distill(self, data: RealData, ipc: int, ctx: DistillContext):
        tn = trained_network(data, self.config, ctx)
        labels_trained = data.train_y[tn.index]
        picks = []
        for c in range(data.num_classes):
            pos = torch.nonzero(labels_trained == c, as_tuple=True)[0]
            order = forgetting_order(tn.forgetting[pos], tn.learned[pos], self.config.never_learned, ctx.generator)
            picks.append(tn.index[pos[order[:ipc]]])
        index = torch.cat(picks)
        chosen = torch.isin(tn.index, index)
        return data.train_x[index], class_balanced_labels(data.num_classes, ipc), {
            "indices": index.tolist(), "trained_net_key": tn.key, "trained_net_reused": tn.reused,
            "trained_net_seconds": tn.train_seconds,
            "forgetting_events_selected": tn.forgetting[chosen].tolist(),
            "never_learned_fraction": float((~tn.learned).float().mean()),
            "forgotten_at_least_once_fraction": float((tn.forgetting > 0).float().mean())}
