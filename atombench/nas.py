"""Neural architecture search on distilled data: is a synthetic set a good proxy for choosing an architecture?

The experiment of DC, DM, DataDAM and ATOM (``docs/nas.md``), run for any registered distiller when a
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
   training is a :class:`NASJob` with a content-hash key, run by the suite's engine in the run's one job graph
   (:mod:`atombench.scheduler`; a proxy's jobs start as soon as its set exists) and stored as
   ``jobs/<key>.json``, as evaluation jobs are: re-runs
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

import json
import math
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import pandas as pd
import torch

from .data.base import RealData
from .data.views import holdout_split, selection_view  # noqa: F401 - public here too
from .errors import Problem
from .grid import Cell, FrozenTrain, common_train, train_config
from .jobs import DistillJob, Job, failed_row, train_augment, write_result
from .keys import synset_key, train_key_config
from .models.convnet import ConvNetConfig, candidate_name, candidate_options, candidate_problem, conv_macs
from .factories import build_model, dataset_args, load_data, make_distiller
from .runtime import derive_seed, resolve_device, stable_hash, timer, versions
from .store import ResultsStore
from .suite import NAS_BASELINES, NASConfig, Suite
from .train import evaluate, resolve_speed, train_model

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


# -- jobs ----------------------------------------------------------------------------------------------------
@dataclass
class NASJob(Job):
    """Train one candidate on one proxy (the synthetic set ``synset``) or on the whole training set without the
    validation split (``synset`` None), and validate it; ``report_test`` also tests it (the ground truth only).
    :meth:`run` writes and returns its result row; a failed training is a failed row, never an exception (a row
    that breaks :func:`atombench.grid.nas_columns` is a bug of the search, and raises)."""

    kind = "nas"

    dataset: tuple = ()
    holdout: tuple = ()
    candidate: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    seed: int = 0
    synset_key: Optional[str] = None
    report_test: bool = False
    #: the expected compute (MACs x images seen), to start the longest jobs first
    cost: float = 0.0

    @property
    def deps(self) -> tuple[str, ...]:
        return (self.synset_key,) if self.synset_key else ()

    def cost_class(self) -> tuple:
        return (self.kind, self.row.get("dataset"), self.row.get("kind"), self.row.get("proxy"), self.row.get("ipc"),
                self.row.get("candidate"), stable_hash(train_key_config(self.train)))

    def schema(self):
        from .grid import nas_columns

        return nas_columns()


    def run(self) -> dict:
        from .distillers.base import SyntheticSet, decoded

        row = dict(self.row, job_key=self.key, device=self.device, threads=self.threads, seed=self.seed,
                   # as in every results row: ``model`` the label (the candidate's name), ``model_name`` the
                   # plug-in that builds it
                   model=self.row.get("candidate"), model_name=MODEL,
                   model_options=json.dumps(self.candidate, sort_keys=True),
                   train_config=json.dumps(self.train, sort_keys=True), started_at=time.time(),
                   **{f"{k}_version": v for k, v in versions().items()})
        try:
            torch.set_num_threads(self.threads)
            real, view = load_data(self.dataset), load_data(self.dataset, self.holdout)
            cfg = train_config(self.train)
            if self.synset_key:
                synset = decoded(SyntheticSet.load(self.store.synset_path(self.synset_key)))
                x, y = synset.images, synset.labels
            else:
                x, y = view.train_x, view.train_y
            device = resolve_device(self.device)
            row["device"] = str(device)
            net = build_model(MODEL, self.candidate, view, self.seed).to(device)
            with timer() as t_train:
                losses = train_model(net, x.to(device), y.to(device), cfg, torch.Generator().manual_seed(self.seed),
                                     train_augment(cfg, view))
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
            failed_row(row, exc)
            row.update(val_accuracy=None, test_accuracy=None)
            row.pop("accuracy", None)
        row["finished_at"] = time.time()
        return write_result(self, row)


def _key(kind: str, *parts, train: dict) -> str:
    return stable_hash(["nas", kind, *parts, train_key_config(train)])


# -- the plan, checked before any work -----------------------------------------------------------------------
@dataclass
class DatasetPlan:
    #: the dataset's display name in tables (its suite label, else its name)
    label: str
    args: tuple
    real: RealData
    view: RealData
    candidates: list[ConvNetConfig]
    #: ``(candidate, reason)`` of the candidates that cannot take this dataset's images
    excluded: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class NASPlan:
    suite: Suite
    device: str
    config: NASConfig
    datasets: list[DatasetPlan]
    proxies: list[str]
    #: ``(registered name, config)`` of the distiller behind each proxy but ``early_stop``
    #: (``random_subset``: the ``random`` distiller)
    distillers: dict[str, tuple]
    #: the distiller objects (for their keys and IPC checks)
    objects: dict
    ipcs: list[int]

    def early_stop_epochs(self, view: RealData, ipc: int) -> int:
        """The configured value, else as many training images seen as on a proxy of ``ipc`` images per class."""
        nas = self.config
        if nas.early_stop_epochs is not None:
            return nas.early_stop_epochs
        return max(1, round(nas.epochs * ipc * view.num_classes / len(view.train_x)))


def plan_nas(suite: Suite, device: str, data: dict[str, RealData], distillers: dict, problems: list[Problem]) -> NASPlan:
    """Resolve proxies, IPCs and candidates, and check what depends on the data (the split, each proxy's IPC,
    each candidate's input size); problems are appended to ``problems``."""
    nas = suite.nas
    proxies = list(nas.proxies) if nas.proxies is not None else \
        list(dict.fromkeys([d.display for d in suite.distillers] + list(NAS_BASELINES)))
    ipcs = nas.ipc_list or list(suite.ipc)
    specs = {d.display: (d.name, d.options) for d in suite.distillers}
    chosen = {p: ("random", {}) if p == "random_subset" else specs[p] for p in proxies if p != "early_stop"}
    objects = {p: make_distiller("random", {}) if p == "random_subset" else distillers[p] for p in chosen}
    space = nas.candidates()
    plans = []
    for ds in suite.datasets:
        real = data[ds.display]
        small = [real.classes[c] for c, idx in enumerate(real.class_indices) if len(idx) < 2]
        if small:
            problems.append(Problem("nas.val_fraction", f"{ds.display}: classes {small} have fewer than 2 training "
                                                        f"images, so they cannot give both a validation and a "
                                                        f"training image"))
            continue
        view = load_data(dataset_args(ds), (nas.val_fraction, nas.split_seed))
        for proxy, d in objects.items():
            for j, ipc in enumerate(ipcs):
                msg = d.check_ipc(view, ipc)
                if msg:
                    problems.append(Problem(f"nas.ipc[{j}]" if isinstance(nas.ipc, list) else "nas.ipc",
                                            f"{proxy} on {ds.display} without its validation split: {msg}"))
        keep, excluded = [], []
        for c in space:
            reason = candidate_problem(c, view.channels, view.image_size)
            (excluded.append((candidate_name(c), reason)) if reason else keep.append(c))
        if not keep:
            problems.append(Problem("nas.space", f"no candidate can take {ds.display} images "
                                                 f"{tuple(view.train_x.shape[1:])} ({excluded[0][1]}); use larger "
                                                 f"images (the dataset's size option) or smaller depths"))
        plans.append(DatasetPlan(ds.display, dataset_args(ds), real, view, keep, excluded))
    return NASPlan(suite, device, nas, plans, proxies, chosen, objects, ipcs)


# -- the graph and the tables --------------------------------------------------------------------------------
@dataclass
class NASReport:
    distilled: int
    evaluated: int
    failed: int
    summary: pd.DataFrame


@dataclass
class NASIndex:
    """What tabulating the search needs: the proxy set behind each (dataset, proxy, IPC) and the job behind each
    (dataset, proxy, IPC, candidate); proxy :data:`WHOLE` holds the ground truth."""

    sets: dict = field(default_factory=dict)
    where: dict = field(default_factory=dict)
    jobs: dict = field(default_factory=dict)


def warn_excluded(plan: NASPlan, echo) -> None:
    for ds in plan.datasets:
        if ds.excluded:
            echo(f"warning: NAS on {ds.label}: {len(ds.excluded)} of {len(ds.excluded) + len(ds.candidates)} "
                 f"candidates cannot take {tuple(ds.view.train_x.shape[1:])} images and are left out "
                 f"({ds.excluded[0][0]}: {ds.excluded[0][1]})")


def nas_graph(plan: NASPlan, store: ResultsStore, progress: bool = False) -> tuple[list[DistillJob], list[NASJob],
                                                                                    NASIndex]:
    """The proxies' distillation jobs (from the selection view, with the suite's first seed) and every
    training job of the search, each proxy job depending on its set."""
    suite, nas = plan.suite, plan.config
    seed = suite.seed_list[0]
    holdout = (nas.val_fraction, nas.split_seed)
    base = common_train(suite.eval)
    base.update(batch_size=nas.batch_size, augment=nas.augment, mix="none", mix_prob=1.0)  # no mixing either
    index = NASIndex()
    distill: dict[str, DistillJob] = {}
    for ds in plan.datasets:
        for proxy, (name, config) in plan.distillers.items():
            for ipc in plan.ipcs:
                key = synset_key(ds.view, plan.objects[proxy], ipc, seed)
                cell = Cell(dataset=ds.label, distiller=proxy, method=name, ipc=ipc, seed=seed, synset_key=key)
                # random_subset and a default 'random' distiller are one set
                distill.setdefault(key, DistillJob(
                    key, cell.row(), str(store.root.absolute()), plan.device, 1, cell=cell, dataset=ds.args,
                    holdout=holdout,
                    distiller=(name, config), ipc=ipc, seed=seed,
                    meta={"label": proxy, "suite_seed": seed, "nas_holdout": ds.view.options["nas_holdout"]},
                    progress=progress, purpose="nas"))
                index.sets[(ds.label, proxy, ipc)] = key

    def add(ds: DatasetPlan, ipc, proxy, cand, kind, key_parts, epochs, synset_key=None, report_test=False, images=0):
        # compile/amp 'auto' resolve to float32 eager: every candidate is its own graph, compiled for one job only
        train = FrozenTrain(resolve_speed(dict(base, epochs=epochs), plan.device))
        options = candidate_options(cand)
        cseed = derive_seed("nas", options)
        key = _key(kind, *key_parts, MODEL, options, cseed, train=train)
        if key not in index.jobs:
            row = {"dataset": ds.label, "kind": kind, "proxy": proxy, "ipc": ipc, "candidate": candidate_name(cand),
                   "epochs": epochs, "batch_size": nas.batch_size}
            cost = conv_macs(cand, ds.view.channels, ds.view.image_size) * images * (epochs + 1)
            # the search's own columns name the proxy (``proxy``, ``kind``), not a distiller's evaluation
            cell = Cell(dataset=ds.label, ipc=ipc, seed=cseed, model=candidate_name(cand), model_name=MODEL)
            index.jobs[key] = NASJob(key, row, str(store.root.absolute()), plan.device, 1, cell=cell, dataset=ds.args,
                                     holdout=holdout, candidate=options, train=train, seed=cseed,
                                     synset_key=synset_key, report_test=report_test, cost=float(cost))
        index.where[(ds.label, proxy, ipc, candidate_name(cand))] = key

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
                key = index.sets[(ds.label, proxy, ipc)]
                for cand in ds.candidates:
                    add(ds, ipc, proxy, cand, "proxy", [key], nas.epochs, synset_key=key,
                        images=ipc * ds.view.num_classes)
    return list(distill.values()), list(index.jobs.values()), index


def finish_nas(plan: NASPlan, store: ResultsStore, index: NASIndex, outcome, echo,
               left=frozenset()) -> tuple[NASReport, str]:
    """Write ``nas.csv`` and ``nas_summary.csv`` from the stored results; returns the counts and the search's
    section of ``summary.md``. ``left``: the jobs this run did not run on purpose (``--only``, ``--no-distill``):
    pending, not failed."""
    from .summary import nas_markdown

    not_run = "not run: left by this run's --only or --no-distill; run the suite without them"
    sets = {}
    failed_sets = 0
    for cell, key in index.sets.items():
        error = outcome.errors.get(key) if outcome.status.get(key) == "failed" else None
        meta = None if error else store.synset_meta(key)
        if error is None and meta is None:
            error = not_run if key in left else "no synthetic set: its distillation did not finish; re-run the suite"
        failed_sets += error is not None and key not in left
        sets[cell] = (key, str(store.synset_path(key)), meta, error)
    results = {k: store.read_job(k) or ({"status": "pending", "error": not_run} if k in left else
                                        {"status": "failed", "error": outcome.errors.get(k) or "no result: the job "
                                         "did not finish; re-run the suite"}) for k in index.jobs}
    bad = {k: r for k, r in results.items() if r.get("status") not in ("ok", "pending")
           and outcome.status.get(k) != "blocked"}
    if bad:
        k, r = next(iter(bad.items()))
        job = index.jobs[k]
        echo(f"warning: {len(bad)} NAS job(s) failed, e.g. {job.row['candidate']} ({job.row['kind']}"
             f"{'' if job.row['proxy'] == WHOLE else ' on ' + job.row['proxy']}): {r.get('error')}; "
             f"details in {store.jobs_dir}/<key>.json")
    table, summary = tabulate(plan, sets, index.where, results)
    store.write_nas(table, summary)
    evaluated = sum(1 for k in index.jobs if outcome.status.get(k) in ("ok", "failed"))
    return NASReport(0, evaluated, len(bad) + failed_sets, summary), nas_markdown(plan, summary, sets)


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
        gt_val = [get(ds.label, WHOLE, None, c, "val_accuracy") for c in names]
        gt_test = [get(ds.label, WHOLE, None, c, "test_accuracy") for c in names]
        k = min(plan.config.topk or default_topk(len(names)), len(names))
        top = top_k(gt_val, k)
        best = max((t for t in gt_test if math.isfinite(t)), default=math.nan)

        def summarise(proxy, ipc, proxy_val, images, wall):
            pick = select(proxy_val)
            return {"dataset": ds.label, "proxy": proxy, "ipc": ipc,
                    "spearman_all": spearman(proxy_val, gt_val),
                    "spearman_topk": spearman([proxy_val[i] for i in top], [gt_val[i] for i in top]),
                    "topk": k, "selected_candidate": names[pick] if pick is not None else None,
                    "selected_test_accuracy": gt_test[pick] if pick is not None else math.nan,
                    "best_test_accuracy": best, "wall_time_s": wall, "images_stored": images}

        for ipc in plan.ipcs:
            for proxy in plan.proxies:
                proxy_val = [get(ds.label, proxy, ipc, c, "val_accuracy") for c in names]
                for c, pv, gv, gt in zip(names, proxy_val, gt_val, gt_test):
                    rows.append({"dataset": ds.label, "proxy": proxy, "ipc": ipc, "candidate": c,
                                 "proxy_val_accuracy": pv, "gt_val_accuracy": gv, "gt_test_accuracy": gt})
                if proxy == "early_stop":
                    images = len(ds.view.train_x)
                else:
                    meta = sets[(ds.label, proxy, ipc)][2]
                    images = int(meta["num_images"]) if meta else math.nan
                summary.append(summarise(proxy, ipc, proxy_val, images, seconds(ds.label, proxy, ipc, names)))
            summary.append(summarise(WHOLE, ipc, gt_val, len(ds.view.train_x), seconds(ds.label, WHOLE, None, names)))
    return pd.DataFrame(rows, columns=NAS_COLUMNS), pd.DataFrame(summary, columns=SUMMARY_COLUMNS)
