"""Neural architecture search on distilled data: is a synthetic set a good proxy for choosing an architecture?

The experiment of DC, DM, DataDAM and ATOM (``atom_spec.md`` section 7), run for any registered distiller when a
suite has a ``nas:`` section (:class:`~atombench.suite.NASConfig`):

1. **Split.** A validation split is carved out of each dataset's *training* set (``val_fraction`` of every
   class, seeded). Everything that takes part in the search sees only the :func:`selection_view`: the training
   set without the validation images, with the validation images in the place of the test split. Distillers,
   proxy training and selection therefore cannot reach the test split, and the validation images are never
   distilled from or trained on.
2. **Proxies.** Each distiller named in ``proxies`` distils a set of ``ipc`` images per class from the view;
   ``random_subset`` is a class-balanced random real subset of the same size (the ``random`` distiller);
   ``early_stop`` is the whole view trained for few epochs.
3. **Jobs.** Every candidate of the search space (:mod:`atombench.models.convnet`, registered as ``nas_convnet``)
   is trained on every proxy and tested on the validation split; every candidate is also trained on the whole
   view (the ground truth), tested on the validation split and, for reporting only, on the test split. Each
   training is a :class:`NASJob` with a content-hash key, run by the suite's engine
   (:func:`atombench.backends.run_units`) and stored as ``jobs/<key>.json``, as evaluation jobs are: re-runs
   reuse them, ``--force`` recomputes. Ground-truth keys hash only the data, the candidate, the training config
   and the seed, so every proxy, IPC and suite writing to the same results folder shares them. A candidate
   starts from the same initial weights on every proxy and on the ground truth.
4. **Report.** Per proxy: the Spearman rank correlation between proxy and ground-truth validation accuracies
   over all candidates and over the ``topk`` best by ground truth; the candidate with the best proxy
   validation accuracy, and its test accuracy when trained on the whole training set; the best test accuracy
   of any candidate; the time to train and validate every candidate on the proxy (seconds of compute, summed
   over jobs; distillation not included) and the images the proxy stores. A ``whole_dataset`` row gives the
   same for the ground truth itself. Written to ``nas.csv`` (one row per dataset, proxy, IPC and candidate),
   ``nas_summary.csv`` (one row per dataset, proxy and IPC) and a section of ``summary.md``.

Candidates that cannot take a dataset's image size (a deep pooled ConvNet on 8x8 digits pools below 1x1) are left
out for that dataset with a warning and listed in ``summary.md``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd
import torch

from .augment import DSA
from .data.base import RealData
from .distillers.base import DistillContext, Distiller, SyntheticSet
from .errors import AtombenchError, Problem
from .models.convnet import ConvNetConfig, candidate_name, candidate_options, candidate_problem, conv_macs
from .runtime import atomic_write, cpu_count, derive_seed, stable_hash, timer, versions
from .store import ResultsStore, markdown_table
from .suite import NAS_BASELINES, NASConfig, Suite
from .train import TrainConfig, evaluate, train_model

#: the registered model family every candidate is built from
MODEL = "nas_convnet"
#: the row of the ground truth itself in ``nas_summary.csv``
WHOLE = "whole_dataset"
NAS_COLUMNS = ["dataset", "proxy", "ipc", "candidate", "proxy_val_accuracy", "gt_val_accuracy", "gt_test_accuracy"]
SUMMARY_COLUMNS = ["dataset", "proxy", "ipc", "spearman_all", "spearman_topk", "topk", "selected_candidate",
                   "selected_test_accuracy", "best_test_accuracy", "wall_time_s", "images_stored"]


# -- statistics ----------------------------------------------------------------------------------------------
def rankdata(values: Sequence[float]) -> np.ndarray:
    """Ranks 1..n, ties sharing the average of the ranks they span (as ``scipy.stats.rankdata``)."""
    a = np.asarray(values, dtype=float)
    order = np.argsort(a, kind="mergesort")
    ranks = np.empty(len(a))
    i = 0
    while i < len(a):
        j = i
        while j + 1 < len(a) and a[order[j + 1]] == a[order[i]]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (Pearson's correlation of the average ranks) over the pairs where both values
    are finite; NaN with fewer than 3 such pairs or when one side is constant."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 3:
        return math.nan
    rx, ry = rankdata(x[keep]), rankdata(y[keep])
    dx, dy = rx - rx.mean(), ry - ry.mean()
    denom = math.sqrt(float((dx * dx).sum()) * float((dy * dy).sum()))
    return float((dx * dy).sum() / denom) if denom > 0 else math.nan


def select(accuracies: Sequence[float]) -> Optional[int]:
    """The index of the best accuracy (the first on ties, NaN ignored), or None when there is none."""
    a = np.asarray(accuracies, dtype=float)
    if not np.isfinite(a).any():
        return None
    return int(np.nanargmax(np.where(np.isfinite(a), a, -np.inf)))


def top_k(truth: Sequence[float], k: int) -> list[int]:
    """Indices of the ``k`` best finite ground-truth values (earlier candidates first on ties)."""
    a = np.asarray(truth, dtype=float)
    idx = [i for i in np.argsort(-a, kind="mergesort") if np.isfinite(a[i])]
    return sorted(idx[:k])


def default_topk(n: int) -> int:
    """5% of the space (the papers' top 5%, UNVERIFIED), at least 10, at most the space."""
    return min(n, max(10, math.ceil(0.05 * n)))


# -- the data each side of the search sees -------------------------------------------------------------------
def holdout_split(labels: torch.Tensor, num_classes: int, fraction: float, seed: int) -> tuple[torch.Tensor,
                                                                                              torch.Tensor]:
    """``(train, validation)`` indices into a training set: ``round(fraction * n_c)`` images of every class c
    (at least 1, at most ``n_c - 1``) drawn with ``seed``, both sorted."""
    gen = torch.Generator().manual_seed(seed)
    val = []
    for c in range(num_classes):
        idx = torch.nonzero(labels == c, as_tuple=True)[0]
        k = min(max(1, round(fraction * len(idx))), len(idx) - 1)
        val.append(idx[torch.randperm(len(idx), generator=gen)[:k]])
    val_idx = torch.sort(torch.cat(val)).values
    keep = torch.ones(len(labels), dtype=torch.bool)
    keep[val_idx] = False
    return torch.nonzero(keep, as_tuple=True)[0], val_idx


def selection_view(real: RealData, fraction: float, seed: int) -> RealData:
    """The dataset as the search sees it: the training set without the validation split, and the validation
    split in the place of the test split (so code that "tests" a model during the search validates it)."""
    train_idx, val_idx = holdout_split(real.train_y, real.num_classes, fraction, seed)
    return RealData(real.name, real.train_x[train_idx], real.train_y[train_idx], real.train_x[val_idx],
                    real.train_y[val_idx], real.classes, real.mean, real.std,
                    options={**real.options, "nas_holdout": {"val_fraction": fraction, "split_seed": seed}},
                    tags=dict(real.tags), zca=real.zca)


_VIEWS: dict[str, tuple[RealData, RealData]] = {}


def load_view(dataset: tuple, fraction: float, seed: int) -> tuple[RealData, RealData]:
    """``(real, view)`` of a dataset (``runner.dataset_args``), cached per process (workers build it once)."""
    from .runner import load_dataset

    key = stable_hash([list(dataset), fraction, seed])
    if key not in _VIEWS:
        real = load_dataset(*dataset)
        _VIEWS[key] = (real, selection_view(real, fraction, seed))
    return _VIEWS[key]


# -- jobs ----------------------------------------------------------------------------------------------------
@dataclass
class NASJob:
    """Train one candidate on one proxy (``synset_path``) or on the whole training set without the validation
    split (``synset_path`` None), and validate it; ``report_test`` also tests it (the ground truth only).
    :meth:`run` writes and returns its result row and never raises."""

    key: str
    row: dict
    dataset: tuple
    holdout: tuple
    candidate: dict
    train: dict
    seed: int
    device: str
    threads: int
    store_root: str
    synset_path: Optional[str] = None
    report_test: bool = False
    #: the expected compute (MACs x images seen), to start the longest jobs first
    cost: float = 0.0

    def run(self) -> dict:
        from .runner import build_model

        row = dict(self.row, job_key=self.key, device=self.device, threads=self.threads, seed=self.seed,
                   model=MODEL, model_options=json.dumps(self.candidate, sort_keys=True),
                   train_config=json.dumps(self.train, sort_keys=True),
                   **{f"{k}_version": v for k, v in versions().items()})
        try:
            torch.set_num_threads(self.threads)
            real, view = load_view(self.dataset, *self.holdout)
            cfg = TrainConfig(**self.train)
            if self.synset_path:
                synset = SyntheticSet.load(Path(self.synset_path))
                x, y = synset.images, synset.labels
            else:
                x, y = view.train_x, view.train_y
            device = torch.device(self.device)
            net = build_model(MODEL, self.candidate, view, self.seed).to(device)
            augment = DSA(cfg.dsa_strategy, digits=bool(view.tags.get("digits"))) if cfg.augment == "dsa" else None
            with timer() as t_train:
                losses = train_model(net, x.to(device), y.to(device), cfg, torch.Generator().manual_seed(self.seed),
                                     augment)
            with timer() as t_val:
                val = evaluate(net, view.test_x, view.test_y, cfg.test_batch_size, device, cfg.amp)["accuracy"]
            test, test_s = None, 0.0
            if self.report_test:  # reporting only: nothing selects on it
                with timer() as t_test:
                    test = evaluate(net, real.test_x, real.test_y, cfg.test_batch_size, device, cfg.amp)["accuracy"]
                test_s = t_test["seconds"]
            row.update(status="ok", error="", val_accuracy=val, test_accuracy=test, num_train_images=len(x),
                       final_train_loss=losses[-1] if losses else None, train_time_s=t_train["seconds"],
                       val_time_s=t_val["seconds"], test_time_s=test_s)
        except Exception as exc:  # noqa: BLE001 - a failed job is recorded, the others go on
            row.update(status="failed", val_accuracy=None, test_accuracy=None,
                       error=f"{type(exc).__name__}: {str(exc).splitlines()[0]}" if str(exc) else type(exc).__name__,
                       traceback=traceback.format_exc(limit=8))
        ResultsStore(Path(self.store_root)).write_job(self.key, row)
        return row


def _key(kind: str, *parts, train: dict) -> str:
    from .runner import _KEY_NEUTRAL

    cfg = {k: v for k, v in train.items()
           if k not in _KEY_NEUTRAL or (_KEY_NEUTRAL[k] is not None and v != _KEY_NEUTRAL[k])}
    return stable_hash(["nas", kind, *parts, cfg])


# -- the plan, checked before any work -----------------------------------------------------------------------
@dataclass
class DatasetPlan:
    key: str
    args: tuple
    real: RealData
    view: RealData
    candidates: list[ConvNetConfig]
    #: ``(candidate, reason)`` of the candidates that cannot take this dataset's images
    excluded: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class NASPlan:
    suite: Suite
    device: torch.device
    config: NASConfig
    datasets: list[DatasetPlan]
    proxies: list[str]
    #: the distiller behind each proxy but ``early_stop`` (``random_subset``: the ``random`` distiller)
    distillers: dict[str, Distiller]
    ipcs: list[int]

    def early_stop_epochs(self, view: RealData, ipc: int) -> int:
        """The configured value, else as many training images seen as on a proxy of ``ipc`` images per class."""
        nas = self.config
        if nas.early_stop_epochs is not None:
            return nas.early_stop_epochs
        return max(1, round(nas.epochs * ipc * view.num_classes / len(view.train_x)))


def plan_nas(suite: Suite, device: torch.device, data: dict[str, RealData], distillers: dict[str, Distiller],
             problems: list[Problem]) -> NASPlan:
    """Resolve proxies, IPCs and candidates, and check what depends on the data (the split, each proxy's IPC,
    each candidate's input size); problems are appended to ``problems``."""
    from .runner import dataset_args, make_distiller

    nas = suite.nas
    proxies = list(nas.proxies) if nas.proxies is not None else \
        list(dict.fromkeys([d.key for d in suite.distillers] + list(NAS_BASELINES)))
    ipcs = nas.ipc_list or list(suite.ipc)
    chosen = {p: make_distiller("random", {}) if p == "random_subset" else distillers[p]
              for p in proxies if p != "early_stop"}
    space = nas.candidates()
    plans = []
    for ds in suite.datasets:
        real = data[ds.key]
        small = [real.classes[c] for c, idx in enumerate(real.class_indices) if len(idx) < 2]
        if small:
            problems.append(Problem("nas.val_fraction", f"{ds.key}: classes {small} have fewer than 2 training "
                                                        f"images, so they cannot give both a validation and a "
                                                        f"training image"))
            continue
        view = selection_view(real, nas.val_fraction, nas.split_seed)
        for proxy, d in chosen.items():
            for j, ipc in enumerate(ipcs):
                msg = d.check_ipc(view, ipc)
                if msg:
                    problems.append(Problem(f"nas.ipc[{j}]" if isinstance(nas.ipc, list) else "nas.ipc",
                                            f"{proxy} on {ds.key} without its validation split: {msg}"))
        keep, excluded = [], []
        for c in space:
            reason = candidate_problem(c, view.channels, view.image_size)
            (excluded.append((candidate_name(c), reason)) if reason else keep.append(c))
        if not keep:
            problems.append(Problem("nas.space", f"no candidate can take {ds.key} images "
                                                 f"{tuple(view.train_x.shape[1:])} ({excluded[0][1]}); use larger "
                                                 f"images (the dataset's size option) or smaller depths"))
        plans.append(DatasetPlan(ds.key, dataset_args(ds), real, view, keep, excluded))
    return NASPlan(suite, device, nas, plans, proxies, chosen, ipcs)


# -- the run -------------------------------------------------------------------------------------------------
@dataclass
class NASReport:
    distilled: int
    evaluated: int
    failed: int
    summary: pd.DataFrame


def _distill_proxies(plan: NASPlan, store: ResultsStore, force: bool, progress: bool, echo):
    """Distil every (dataset, proxy, IPC) set from the view once; returns ``{(dataset, proxy, ipc): (key, path,
    meta or None, error or None)}`` and how many were distilled now."""
    from tqdm.auto import tqdm

    from .runner import _valid_synset, synset_key

    seed = plan.suite.seed_list[0]
    out, done, computed = {}, {}, 0
    cells = [(ds, proxy, ipc) for ds in plan.datasets for proxy in plan.distillers for ipc in plan.ipcs]
    torch.set_num_threads(cpu_count())
    for ds, proxy, ipc in tqdm(cells, desc="nas distill", disable=not progress, dynamic_ncols=True):
        distiller = plan.distillers[proxy]
        key = synset_key(ds.view, distiller, ipc, seed)
        path = store.synset_path(key)
        if key not in done:  # random_subset and a default 'random' distiller are one set
            error = None
            if (force or not _valid_synset(path, echo)):
                ctx = DistillContext(plan.device, seed=derive_seed("distill", seed), show_progress=progress,
                                     label=f"nas {proxy} {ds.key} ipc{ipc}", cache_dir=store.root / "cache")
                try:
                    synset = distiller.run(ds.view, ipc, ctx)
                    synset.meta.update(label=proxy, suite_seed=seed, nas_holdout=ds.view.options["nas_holdout"])
                    synset.save(path)
                    computed += 1
                except OSError:
                    raise
                except Exception as exc:  # noqa: BLE001 - a failed proxy is reported, the others go on
                    error = str(exc).splitlines()[0] if isinstance(exc, AtombenchError) else \
                        f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                    echo(f"warning: NAS proxy {proxy} on {ds.key} IPC {ipc} failed: {error}")
            meta = None
            if error is None:
                meta = json.loads(Path(f"{path}.json").read_text())
            done[key] = (key, str(path), meta, error)
        out[(ds.key, proxy, ipc)] = done[key]
    return out, computed


def run_nas(plan: NASPlan, store: ResultsStore, force: bool = False, workers: Optional[int] = None,
            progress: bool = True, echo=print) -> NASReport:
    """Distil the proxies, run every missing job through the suite's engine, write the tables."""
    from tqdm.auto import tqdm

    from .backends import check_available
    from .runner import _workers, gpu_assignment, run_units_with_bar

    suite, nas, dev = plan.suite, plan.config, plan.device
    for ds in plan.datasets:
        if ds.excluded:
            echo(f"warning: NAS on {ds.key}: {len(ds.excluded)} of {len(ds.excluded) + len(ds.candidates)} "
                 f"candidates cannot take {tuple(ds.view.train_x.shape[1:])} images and are left out "
                 f"({ds.excluded[0][0]}: {ds.excluded[0][1]})")
    sets, computed = _distill_proxies(plan, store, force, progress, echo)

    base = {f.name: getattr(suite.eval, f.name) for f in dataclasses.fields(TrainConfig)}
    base.update(batch_size=nas.batch_size, augment=nas.augment)
    holdout = (nas.val_fraction, nas.split_seed)
    jobs: dict[str, NASJob] = {}
    #: (dataset, proxy, ipc, candidate) -> job key; proxy WHOLE holds the ground truth
    where: dict[tuple, str] = {}

    def add(ds: DatasetPlan, ipc, proxy, cand, kind, key_parts, epochs, synset=None, report_test=False,
            images=0):
        train = dict(base, epochs=epochs)
        options = candidate_options(cand)
        seed = derive_seed("nas", options)
        key = _key(kind, *key_parts, MODEL, options, seed, train=train)
        if key not in jobs:
            row = {"dataset": ds.key, "kind": kind, "proxy": proxy, "ipc": ipc, "candidate": candidate_name(cand),
                   "epochs": epochs, "batch_size": nas.batch_size}
            cost = conv_macs(cand, ds.view.channels, ds.view.image_size) * images * (epochs + 1)
            jobs[key] = NASJob(key, row, ds.args, holdout, options, train, seed, str(dev), 1, str(store.root),
                               synset, report_test, float(cost))
        where[(ds.key, proxy, ipc, candidate_name(cand))] = key

    failed_sets = 0
    for ds in plan.datasets:
        n_train = len(ds.view.train_x)
        for cand in ds.candidates:
            add(ds, None, WHOLE, cand, "ground_truth", [ds.view.fingerprint, ds.real.fingerprint],
                nas.ground_truth_epochs, report_test=True, images=n_train)
        for ipc in plan.ipcs:
            for proxy in plan.proxies:
                if proxy == "early_stop":
                    for cand in ds.candidates:
                        add(ds, ipc, proxy, cand, "early_stop", [ds.view.fingerprint],
                            plan.early_stop_epochs(ds.view, ipc), images=n_train)
                    continue
                key, path, meta, error = sets[(ds.key, proxy, ipc)]
                if error is not None:
                    failed_sets += 1
                    continue
                for cand in ds.candidates:
                    add(ds, ipc, proxy, cand, "proxy", [key], nas.epochs, synset=path,
                        images=int(meta.get("num_images") or 0))

    todo = [j for j in jobs.values() if force or (store.read_job(j.key, echo) or {}).get("status") != "ok"]
    todo.sort(key=lambda j: -j.cost)  # the longest first: fewer idle workers at the end
    units = [[j] for j in todo]
    backend = suite.execution.backend
    check_available(backend)
    n_workers, threads = _workers(suite, dev, len(units), workers)
    for unit, gpu in zip(units, gpu_assignment(dev, len(units))):
        for j in unit:
            j.threads, j.device = threads, gpu
    n_cands = sum(len(ds.candidates) for ds in plan.datasets)
    echo(f"NAS: {n_cands} candidate(s), {len(plan.proxies)} proxies x {len(plan.ipcs)} IPC(s) "
         f"({computed} proxy set(s) distilled now), {len(jobs)} training jobs ({len(jobs) - len(todo)} already "
         f"done, {len(todo)} to run on {backend.name}, {n_workers} worker(s) x {threads} thread(s))")
    if units:
        run_units_with_bar(units, backend, n_workers, threads, store.root, "nas", progress)

    results = {k: store.read_job(k) or {"status": "failed", "error": "no result: the job did not finish; re-run "
                                                                     "the suite"} for k in jobs}
    bad = {k: r for k, r in results.items() if r.get("status") != "ok"}
    if bad:
        k, r = next(iter(bad.items()))
        echo(f"warning: {len(bad)} NAS job(s) failed, e.g. {jobs[k].row['candidate']} ({jobs[k].row['kind']}"
             f"{'' if jobs[k].row['proxy'] == WHOLE else ' on ' + jobs[k].row['proxy']}): {r.get('error')}; "
             f"details in {store.root / 'jobs'}/<key>.json")
    table, summary = tabulate(plan, sets, where, results)
    with atomic_write(store.root / "nas.csv", "w") as fh:
        table.to_csv(fh, index=False)
    with atomic_write(store.root / "nas_summary.csv", "w") as fh:
        summary.to_csv(fh, index=False)
    md_path = store.root / "summary.md"
    text = md_path.read_text() if md_path.exists() else ""
    with atomic_write(md_path, "w") as fh:
        fh.write(text + ("\n" if text else "") + summary_markdown(plan, summary, sets))
    return NASReport(computed, len(todo), len(bad) + failed_sets, summary)


def tabulate(plan: NASPlan, sets: dict, where: dict, results: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``nas.csv`` and ``nas_summary.csv`` from the job results."""

    def get(ds, proxy, ipc, cand, field_):
        key = where.get((ds, proxy, ipc, cand))
        r = results.get(key) if key else None
        v = r.get(field_) if r and r.get("status") == "ok" else None
        return math.nan if v is None else float(v)

    def seconds(ds, proxy, ipc, cands):
        total = 0.0
        for c in cands:
            r = results.get(where.get((ds, proxy, ipc, c)) or "") or {}
            total += float(r.get("train_time_s") or 0) + float(r.get("val_time_s") or 0)
        return total

    rows, summary = [], []
    for ds in plan.datasets:
        names = [candidate_name(c) for c in ds.candidates]
        gt_val = [get(ds.key, WHOLE, None, c, "val_accuracy") for c in names]
        gt_test = [get(ds.key, WHOLE, None, c, "test_accuracy") for c in names]
        k = min(plan.config.topk or default_topk(len(names)), len(names))
        top = top_k(gt_val, k)
        best = max((t for t in gt_test if math.isfinite(t)), default=math.nan)

        def summarise(proxy, ipc, proxy_val, images, wall):
            pick = select(proxy_val)
            return {"dataset": ds.key, "proxy": proxy, "ipc": ipc,
                    "spearman_all": spearman(proxy_val, gt_val),
                    "spearman_topk": spearman([proxy_val[i] for i in top], [gt_val[i] for i in top]),
                    "topk": k, "selected_candidate": names[pick] if pick is not None else None,
                    "selected_test_accuracy": gt_test[pick] if pick is not None else math.nan,
                    "best_test_accuracy": best, "wall_time_s": wall, "images_stored": images}

        for ipc in plan.ipcs:
            for proxy in plan.proxies:
                proxy_val = [get(ds.key, proxy, ipc, c, "val_accuracy") for c in names]
                for c, pv, gv, gt in zip(names, proxy_val, gt_val, gt_test):
                    rows.append({"dataset": ds.key, "proxy": proxy, "ipc": ipc, "candidate": c,
                                 "proxy_val_accuracy": pv, "gt_val_accuracy": gv, "gt_test_accuracy": gt})
                if proxy == "early_stop":
                    images = len(ds.view.train_x)
                else:
                    meta = sets[(ds.key, proxy, ipc)][2]
                    images = int(meta["num_images"]) if meta else math.nan
                summary.append(summarise(proxy, ipc, proxy_val, images, seconds(ds.key, proxy, ipc, names)))
            summary.append(summarise(WHOLE, ipc, gt_val, len(ds.view.train_x), seconds(ds.key, WHOLE, None, names)))
    return pd.DataFrame(rows, columns=NAS_COLUMNS), pd.DataFrame(summary, columns=SUMMARY_COLUMNS)


def summary_markdown(plan: NASPlan, summary: pd.DataFrame, sets: dict) -> str:
    """The NAS section of ``summary.md``: one table per dataset and IPC."""
    nas = plan.config

    def num(x, fmt="{:.2f}"):
        return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else fmt.format(x)

    parts = ["## Neural architecture search"]
    for ds in plan.datasets:
        n_train, n_val = len(ds.view.train_x), len(ds.view.test_x)
        parts.append(
            f"{ds.key}: {len(ds.candidates)} candidates ({nas.space if isinstance(nas.space, str) else 'grid'} "
            f"space), each trained once per proxy for {nas.epochs} epochs, on the whole training set "
            f"({n_train} images, without the {n_val} validation images) for {nas.ground_truth_epochs} epochs "
            f"(ground truth); selection and rank correlations on the validation split, test accuracy (%) of the "
            f"selected candidate after training on the whole set. Time: seconds of compute to train and validate "
            f"every candidate on the proxy (distillation not included).")
        if ds.excluded:
            parts.append(f"Left out at this image size ({len(ds.excluded)}): "
                         + ", ".join(n for n, _ in ds.excluded) + f" ({ds.excluded[0][1]}).")
        for ipc in plan.ipcs:
            sub = summary[(summary["dataset"] == ds.key) & (summary["ipc"] == ipc)]
            if not len(sub):
                continue
            k = int(sub["topk"].iloc[0])
            header = ["proxy", "Spearman (all)", f"Spearman (top {k})", "selected", "selected: test acc.",
                      "time (s)", "images", "distillation (s)"]
            body = []
            for _, r in sub.iterrows():
                meta = sets.get((ds.key, r["proxy"], ipc), (None, None, None, None))[2]
                distill = num(meta.get("wall_time_s"), "{:.0f}") if meta else "–"
                body.append([str(r["proxy"]), num(r["spearman_all"]), num(r["spearman_topk"]),
                             str(r["selected_candidate"] or "–"), num(r["selected_test_accuracy"]),
                             num(r["wall_time_s"], "{:.0f}"), num(r["images_stored"], "{:.0f}"), distill])
            best = sub["best_test_accuracy"].iloc[0]
            parts.append(f"### NAS on {ds.key}, IPC {ipc}: best test accuracy of any candidate "
                         f"{num(best)}%\n\n" + markdown_table(header, body))
    return "\n\n".join(parts) + "\n"
