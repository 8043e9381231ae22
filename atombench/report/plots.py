"""The report's figures (seaborn on matplotlib's Agg canvas; no pyplot state), each saved as PNG and PDF.

* accuracy vs IPC per method, with error bars (the main table's numbers);
* a cross-architecture heatmap per dataset and IPC;
* NAS: proxy vs ground-truth accuracy per candidate, with the Spearman correlation;
* distillation loss curves (from each synthetic set's metadata);
* the synthetic images per class, de-normalised (and de-whitened when the suite used ZCA).
"""

from __future__ import annotations

import io
import math
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..runtime import atomic_write
from . import names
from .inputs import Inputs

DPI = 150


@dataclass
class Plot:
    name: str
    title: str
    caption: str
    png: Path
    pdf: Path | None = None


@contextmanager
def _style():
    """seaborn's paper style for the figures made inside, restored afterwards."""
    import matplotlib
    import seaborn as sns

    with matplotlib.rc_context():
        sns.set_theme(context="paper", style="whitegrid", font_scale=1.15,
                      rc={"figure.dpi": DPI, "savefig.bbox": "tight", "axes.titleweight": "bold",
                          "pdf.fonttype": 42})
        yield


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _title(ax, text: str) -> None:
    """``ax.set_title(text)``, wrapped onto lines that fit the panel's width: a long dataset entry's name (a ZCA
    space, a JPEG copy) in a row of panels otherwise runs into its neighbour's title."""
    import textwrap

    from matplotlib import rcParams
    from matplotlib.font_manager import FontProperties

    width_in = ax.get_position().width * ax.figure.get_figwidth()
    points = FontProperties(size=rcParams["axes.titlesize"]).get_size_in_points()
    chars = max(12, int(0.9 * width_in * 72 / (0.62 * points)))  # a bold character is about 0.62 em wide
    if len(text) <= chars:
        ax.set_title(text)
        return
    lines: list[str] = []  # whole ", "-separated parts where they fit, words where one part is too long
    for part in re.split(r", (?![^\[(]*[\])])", text):  # not inside brackets: "ZCA on [0, 1]" stays whole
        if lines and len(lines[-1]) + 2 + len(part) <= chars:
            lines[-1] += ", " + part
        else:
            if lines:
                lines[-1] += ","
            lines.extend(textwrap.wrap(part, chars) or [""])
    ax.set_title("\n".join(lines))


def save(fig, folder: Path, name: str, pdf: bool = True) -> tuple[Path, Path | None]:
    """Write ``name.png`` (and ``name.pdf``) atomically; returns their paths."""
    paths = []
    for fmt in ("png", "pdf") if pdf else ("png",):
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=DPI, metadata={"Software": "atombench report"} if fmt == "png" else None)
        path = folder / f"{name}.{fmt}"
        with atomic_write(path) as fh:
            fh.write(buf.getvalue())
        paths.append(path)
    return paths[0], paths[1] if pdf else None


def palette(labels: list[str]) -> dict[str, tuple]:
    """One colour per method, the same in every figure."""
    import seaborn as sns

    colours = sns.color_palette("colorblind", max(len(labels), 1)) if len(labels) <= 10 else \
        sns.color_palette("husl", len(labels))
    return dict(zip(labels, colours))


class Plotter:
    def __init__(self, folder: Path, methods: list[str]):
        self.folder = Path(folder)
        self.colours = palette(methods)
        self.notes: list[str] = []
        self.missing_sets: list[Path] = []

    def _save(self, fig, name, title, caption) -> Plot:
        png, pdf = save(fig, self.folder, name)
        return Plot(name, title, caption, png, pdf)

    # -- accuracy vs IPC -------------------------------------------------------------------------------------
    def accuracy_vs_ipc(self, cells: pd.DataFrame, ylabel: str, unit_text: str,
                        model: str | None = None) -> Plot | None:
        """``cells``: the main table's records (method, kind, published, dataset, ipc, mean, std); ``model``: the
        evaluation model (in the title; default: the records' ``model`` column)."""
        if cells is None or not len(cells) or cells["mean"].notna().sum() == 0:
            return None
        if model is None and "model" in cells:
            ours = cells[~cells["published"].astype(bool)] if "published" in cells else cells
            model = str(ours["model"].iloc[0]) if len(ours) else None
        datasets = list(dict.fromkeys(cells["dataset"]))
        with _style():
            fig = _figure(4.2 * len(datasets) + 1.8, 3.6)
            axes = np.atleast_1d(fig.subplots(1, len(datasets), squeeze=False)[0])
            for ax, d in zip(axes, datasets):
                sub = cells[cells["dataset"] == d]
                ipcs = sorted(set(int(i) for i in sub["ipc"]))
                log_x = len(ipcs) > 1 and max(ipcs) / max(min(ipcs), 1) >= 5
                lines = list(sub[sub["mean"].notna() & ~sub["published"].astype(bool)
                                 & (sub["kind"] != "whole")]["method"].drop_duplicates())
                for (label, published), rows in sub[sub["mean"].notna()].groupby(["method", "published"],
                                                                                  sort=False):
                    rows = rows.sort_values("ipc")
                    kind = rows["kind"].iloc[0]
                    colour = self.colours.get(label, (0.4, 0.4, 0.4))
                    # methods side by side around each IPC, so that error bars do not hide one another
                    k = lines.index(label) if label in lines else (len(lines) - 1) / 2
                    shift = (k - (len(lines) - 1) / 2) * (0.035 if log_x else 0.02 * (max(ipcs) - min(ipcs) or 4))
                    x = rows["ipc"].to_numpy(dtype=float)
                    x = x * (1 + shift) if log_x else x + shift
                    if kind == "whole" and rows["mean"].nunique() == 1:
                        ax.axhline(rows["mean"].iloc[0], color="0.35" if published else colour,
                                   ls=":" if published else "--", lw=1.3,
                                   label=f"{names.method_name(label)}{' (published)' if published else ''}")
                    elif published:
                        ax.plot(x, rows["mean"], ls="none", marker="x", ms=7, mew=1.8, color=colour,
                                label="published")
                    else:
                        ax.errorbar(x, rows["mean"], yerr=rows["std"].fillna(0), marker="o", ms=4.5, lw=1.6,
                                    elinewidth=2.0, capsize=6, capthick=2.0, color=colour, zorder=3,
                                    label=names.method_name(label))
                if log_x:
                    ax.set_xscale("log")
                ax.set_xticks(ipcs)
                ax.set_xticklabels([str(i) for i in ipcs])
                if len(ipcs) == 1:  # one IPC: the methods side by side near it, not spread over the whole panel
                    ax.set_xlim(ipcs[0] - 0.5, ipcs[0] + 0.5)
                ax.minorticks_off()
                ax.set_xlabel("images per class (IPC)")
                _title(ax, names.dataset_name(d))
            axes[0].set_ylabel(ylabel)
            handles, labels = _legend(axes)
            if "published" in labels:  # one grey entry for every method's published crosses
                from matplotlib.lines import Line2D

                k = labels.index("published")
                handles[k] = Line2D([], [], ls="none", marker="x", ms=7, mew=1.8, color="0.35")
                labels[k] = "published (same colour)"
            fig.legend(handles, labels, loc="outside right center", frameon=False)
            on = f" of {names.model_name(model)}" if model else ""
            title = f"{ylabel.split(' (')[0].capitalize()}{on} vs images per class"
            fig.suptitle(title)
            return self._save(fig, "accuracy_vs_ipc", title,
                              f"{ylabel} of {names.model_name(model) if model else 'the evaluation model'} trained "
                              f"on each method's synthetic sets, against IPC; error bars: ± std ({unit_text}), the "
                              f"methods drawn side by side around each IPC. Crosses: published numbers, when "
                              f"shown in the main table.")

    # -- cross-architecture heatmap --------------------------------------------------------------------------
    def cross_arch(self, table, title: str) -> Plot | None:
        import seaborn as sns

        if table.frame is None or not len(table.frame) or table.frame["mean"].notna().sum() == 0:
            return None
        frame = table.frame
        methods = list(dict.fromkeys(frame["method"]))
        models = list(dict.fromkeys(frame["model"]))
        grid = frame.pivot_table(index="method", columns="model", values="mean", sort=False).reindex(
            index=methods, columns=models)
        grid.index = [names.method_name(m) for m in grid.index]
        grid.columns = [names.model_name(m) for m in grid.columns]
        with _style():
            fig = _figure(1.3 * len(models) + 2.6, 0.45 * len(methods) + 1.6)
            ax = fig.subplots()
            sns.heatmap(grid, annot=True, fmt=".1f", cmap="mako", linewidths=0.5, linecolor="white",
                        cbar_kws={"label": "accuracy (%)"}, ax=ax)
            ax.set_xlabel("evaluation model")
            ax.set_ylabel("")
            ax.set_title(title)
            ax.tick_params(axis="x", rotation=30)
            ax.tick_params(axis="y", rotation=0)
            return self._save(fig, table.name, title, "Mean accuracy of each evaluation model (columns) trained "
                                                      "on each method's synthetic sets (rows).")

    # -- protocols -------------------------------------------------------------------------------------------
    def fairness(self, frame: pd.DataFrame | None, title: str) -> Plot | None:
        """One panel per dataset and IPC: each method's accuracy under its own protocol (filled) and under the
        common one (open), joined by a line; methods in table order."""
        if frame is None or not len(frame) or frame[["own_mean", "common_mean"]].notna().sum().sum() == 0:
            return None
        cols = list(dict.fromkeys(zip(frame["dataset"], frame["ipc"])))
        methods = list(dict.fromkeys(frame["method"]))
        with _style():
            fig = _figure(3.2 * len(cols) + 1.0, 0.42 * len(methods) + 1.6)
            axes = fig.subplots(1, len(cols), sharey=True, squeeze=False)[0]
            for ax, (d, i) in zip(axes, cols):
                sub = frame[(frame["dataset"] == d) & (frame["ipc"] == i)].set_index("method").reindex(methods)
                for y, m in enumerate(methods):
                    own, com = sub.loc[m, "own_mean"], sub.loc[m, "common_mean"]
                    colour = self.colours.get(m, "grey")
                    if pd.notna(own) and pd.notna(com):
                        ax.plot([com, own], [y, y], color=colour, lw=1.5, alpha=0.6)
                    if pd.notna(own):
                        ax.errorbar(own, y, xerr=sub.loc[m, "own_std"] or 0, fmt="o", color=colour, ms=6,
                                    label="own protocol" if y == 0 else None)
                    if pd.notna(com):
                        ax.errorbar(com, y, xerr=sub.loc[m, "common_std"] or 0, fmt="o", mfc="white",
                                    color=colour, ms=6, label="common protocol" if y == 0 else None)
                _title(ax, f"{names.dataset_name(d)}, IPC {i}")
                ax.set_xlabel("accuracy (%)")
                ax.set_yticks(range(len(methods)), [names.method_name(m) for m in methods])
                ax.invert_yaxis()
            from matplotlib.lines import Line2D

            handles = [Line2D([], [], marker="o", ls="", color="black", label="own protocol"),
                       Line2D([], [], marker="o", ls="", color="black", mfc="white", label="common protocol")]
            fig.legend(handles=handles, loc="outside lower center", ncol=2, frameon=False)
            return self._save(fig, "fairness", title, "Each method's accuracy under its own paper's protocol "
                                                      "(filled) and under the common protocol (open), ± std; "
                                                      "the line is the protocol's share of the number.")

    # -- robustness scores -----------------------------------------------------------------------------------
    def robustness(self, frame: pd.DataFrame | None, title: str) -> Plot | None:
        """Bars of LRS and ARS per method, one panel per dataset and IPC."""
        if frame is None or not len(frame):
            return None
        cols = list(dict.fromkeys(zip(frame["dataset"], frame["ipc"])))
        methods = list(dict.fromkeys(frame["method"]))
        scores = [s for s in ("lrs", "ars") if frame[f"{s}_mean"].notna().any()]
        if not scores:
            return None
        with _style():
            fig = _figure(0.5 * len(methods) * len(scores) * len(cols) + 2.5, 3.4)
            axes = fig.subplots(1, len(cols), sharey=True, squeeze=False)[0]
            width = 0.8 / len(scores)
            for ax, (d, i) in zip(axes, cols):
                sub = frame[(frame["dataset"] == d) & (frame["ipc"] == i)].set_index("method").reindex(methods)
                for j, s in enumerate(scores):
                    xs = np.arange(len(methods)) + (j - (len(scores) - 1) / 2) * width
                    ax.bar(xs, sub[f"{s}_mean"], width, yerr=sub[f"{s}_std"].fillna(0), label=s.upper(),
                           color=["#4C72B0", "#DD8452"][j], capsize=2)
                ax.set_xticks(range(len(methods)), [names.method_name(m) for m in methods], rotation=30)
                _title(ax, f"{names.dataset_name(d)}, IPC {i}")
            axes[0].set_ylabel("score (0-100)")
            axes[0].legend(frameon=False)
            return self._save(fig, "robustness", title, "DD-Ranking's label-robust (LRS) and augmentation-robust "
                                                        "(ARS) scores per method, mean ± std over seeds.")

    # -- distillation budget ---------------------------------------------------------------------------------
    def budget(self, pts: pd.DataFrame | None, title: str) -> Plot | None:
        """Per dataset and IPC: accuracy against distillation iterations and against wall time (log axes), one line
        per method, the Pareto front (time vs accuracy) as a black step line."""
        from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

        if pts is None or not len(pts):
            return None
        cols = list(dict.fromkeys(zip(pts["dataset"], pts["ipc"])))
        with _style():
            fig = _figure(8.0, 3.0 * len(cols) + 0.6)
            axes = fig.subplots(len(cols), 2, squeeze=False)
            for (ax_it, ax_t), (d, i) in zip(axes, cols):
                g = pts[(pts["dataset"] == d) & (pts["ipc"] == i)]
                for m, gm in g.groupby("distiller", sort=False):
                    gm = gm.sort_values("iteration")
                    c = self.colours.get(m, "grey")
                    for ax, x in ((ax_it, "iteration"), (ax_t, "time")):
                        ax.errorbar(gm[x], gm["mean"], yerr=gm["std"].fillna(0), marker="o", ms=4, color=c, capsize=2,
                                    label=names.method_name(m))
                front = g[g["pareto"]].sort_values("time")
                ax_t.step(front["time"], front["mean"], where="post", color="black", lw=1, ls="--",
                          label="Pareto front")
                for ax, xl, xs in ((ax_it, "distillation iterations", g["iteration"]),
                                   (ax_t, "distillation wall time (s)", g["time"])):
                    ax.set_xscale("log")
                    # the measured points as plain numbers: log-axis minor labels (3×10^1 ...) overlap
                    values = sorted(set(float(v) for v in xs.dropna() if v > 0))
                    # labels at least 40 % and an eighth of the axis's (log) span apart do not overlap
                    gap = max(1.4, (values[-1] / values[0]) ** 0.125) if values else 1.4
                    ticks = []
                    for v in values:
                        if not ticks or v / ticks[-1] >= gap:
                            ticks.append(v)
                    ax.xaxis.set_minor_formatter(NullFormatter())
                    ax.xaxis.set_major_locator(FixedLocator(ticks))
                    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
                    ax.set_xlabel(xl)
                    ax.set_ylabel("accuracy (%)")
                    _title(ax, f"{names.dataset_name(d)}, IPC {i}")
            handles, labels = _legend(axes.flatten())
            fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 5), frameon=False)
            return self._save(fig, "budget", title, "Accuracy against distillation iterations (left) and wall time "
                                                    "(right), mean ± std over seeds; dashed: the Pareto front.")

    # -- NAS -------------------------------------------------------------------------------------------------
    def nas_scatter(self, nas: pd.DataFrame, summary: pd.DataFrame | None) -> list[Plot]:
        from scipy.stats import spearmanr

        truth = "gt_val_accuracy" if "gt_val_accuracy" in nas else "gt_test_accuracy"
        if truth not in nas or "proxy_val_accuracy" not in nas:
            self.notes.append("nas.csv lacks proxy_val_accuracy or a ground-truth column: no NAS scatter")
            return []
        plots = []
        for (d, ipc), g in nas.groupby(["dataset", "ipc"], sort=False, dropna=False):
            proxies = names.order_methods(g["proxy"].astype(str))
            with _style():
                n = len(proxies)
                ncol = min(n, 4)
                nrow = math.ceil(n / ncol)
                fig = _figure(3.3 * ncol, 3.1 * nrow)
                axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False, sharey=True).ravel())
                for ax, proxy in zip(axes, proxies):
                    s = g[g["proxy"].astype(str) == proxy].dropna(subset=["proxy_val_accuracy", truth])
                    colour = self.colours.get(proxy, (0.3, 0.45, 0.7))
                    ax.scatter(s["proxy_val_accuracy"], s[truth], s=14, alpha=0.7, color=colour, edgecolor="none")
                    rho = spearmanr(s["proxy_val_accuracy"], s[truth]).statistic if len(s) > 2 else float("nan")
                    extra = ""
                    if summary is not None and len(summary):
                        m = summary[(summary["dataset"] == d) & (summary["proxy"].astype(str) == proxy)]
                        if "ipc" in m:
                            m = m[m["ipc"] == ipc] if not pd.isna(ipc) else m
                        if len(m) and "spearman_topk" in m and pd.notna(m["spearman_topk"].iloc[0]):
                            k = m["topk"].iloc[0] if "topk" in m and pd.notna(m["topk"].iloc[0]) else "k"
                            extra = f", top-{int(k) if not isinstance(k, str) else k} ρ = {m['spearman_topk'].iloc[0]:.2f}"
                    ax.set_title(f"{names.method_name(proxy)}: ρ = {rho:.2f}{extra}", fontsize=10)
                    ax.set_xlabel("proxy validation accuracy (%)")
                for ax in axes[len(proxies):]:
                    ax.set_visible(False)
                for ax in axes[::ncol]:
                    ax.set_ylabel(f"ground truth {'validation' if 'val' in truth else 'test'} accuracy (%)")
                ipc_text = "" if pd.isna(ipc) else f", IPC {int(ipc)}"
                title = f"NAS proxies on {names.dataset_name(str(d))}{ipc_text}"
                fig.suptitle(title)
                plots.append(self._save(fig, names.slug("nas", d, "" if pd.isna(ipc) else f"ipc{int(ipc)}"), title,
                                        "Each point is a candidate architecture: its accuracy when trained on the "
                                        "proxy against its accuracy when trained on the whole training set; ρ: "
                                        "Spearman rank correlation."))
        return plots

    # -- loss curves -----------------------------------------------------------------------------------------
    def loss_curves(self, inputs: Inputs, labels: list[str], cols: list[tuple[str, int]]) -> Plot | None:
        df = inputs.results
        if not len(df) or "synset_key" not in df:
            return None
        sets = df.drop_duplicates(["results_dir", "synset_key"])
        curves = []
        for (d, i) in cols:
            for label in labels:
                g = sets[(sets["dataset"].astype(str) == d) & (sets["ipc"] == i) & (sets["distiller"].astype(str) == label)]
                if not len(g):
                    continue
                r = g.sort_values("seed").iloc[0] if "seed" in g else g.iloc[0]
                meta = inputs.synset_meta(r["results_dir"], r["synset_key"]) or {}
                curve = meta.get("loss_curve") or []
                if len(curve) >= 2:
                    arr = np.asarray(curve, dtype=float)
                    curves.append((d, i, label, arr[:, 0], arr[:, 1]))
        if not curves:
            return None
        panels = list(dict.fromkeys((d, i) for d, i, *_ in curves))
        methods = list(dict.fromkeys(label for _, _, label, _, _ in curves))
        # one row per method (its own y axis: methods' losses are on unrelated scales), one column per dataset
        # and IPC (shared within the row, so a method's IPCs compare)
        with _style():
            nrow, ncol = len(methods), len(panels)
            fig = _figure(3.4 * ncol + 0.8, 2.5 * nrow + 0.6)
            axes = fig.subplots(nrow, ncol, squeeze=False, sharey="row")
            for r, label in enumerate(methods):
                mine = [(dd, ii, x, y) for dd, ii, lab, x, y in curves if lab == label]
                positive = all(bool((y > 0).all()) for *_, y in mine)
                for c, (d, i) in enumerate(panels):
                    ax = axes[r, c]
                    got = [(x, y) for dd, ii, x, y in mine if (dd, ii) == (d, i)]
                    for x, y in got:
                        y = pd.Series(y).rolling(max(1, len(y) // 50), min_periods=1).mean().to_numpy()
                        ax.plot(x, y, lw=1.4, color=self.colours.get(label))
                    if not got:
                        ax.text(0.5, 0.5, "no curve", transform=ax.transAxes, ha="center", va="center",
                                color="0.5")
                    if positive:
                        ax.set_yscale("log")
                    if r == 0:
                        _title(ax, f"{names.dataset_name(d)}, IPC {i}")
                    if r == nrow - 1:
                        ax.set_xlabel("iteration")
                    if c == 0:
                        ax.set_ylabel(f"{names.method_name(label)}\nloss{' (log)' if positive else ''}")
            fig.suptitle("Distillation loss curves, one row per method")
            return self._save(fig, "loss_curves", "Distillation loss curves",
                              "The loss of each distiller during distillation (first seed; a moving average when "
                              "the curve is long), one row per method with its own y axis (log scale when "
                              "positive), shared across the row's datasets and IPCs: the methods' losses are on "
                              "different scales, so compare shapes, not heights across rows.")

    # -- synthetic images ------------------------------------------------------------------------------------
    def synthetic_images(self, inputs: Inputs, labels: list[str], cols: list[tuple[str, int]],
                         max_classes: int = 20, max_per_class: int = 10) -> list[Plot]:
        df = inputs.results
        if not len(df) or "synset_key" not in df:
            return []
        if "status" in df:  # a set whose jobs are all pending or outside the run was never made: nothing to show
            df = df[df["status"].astype(str) == "ok"]
        sets = df.drop_duplicates(["results_dir", "synset_key"])
        plots = []
        for d, i in cols:
            loaded = []  # (label, images [N,C,H,W] in [0,1], labels, class names)
            for label in labels:
                if names.method_kind(label) == "whole":
                    continue
                g = sets[(sets["dataset"].astype(str) == d) & (sets["ipc"] == i) & (sets["distiller"].astype(str) == label)]
                if not len(g):
                    continue
                r = g.sort_values("seed").iloc[0] if "seed" in g else g.iloc[0]
                got = self._load_images(inputs, Path(r["results_dir"]), str(r["synset_key"]), d)
                if got is not None:
                    loaded.append((label, *got))
            if not loaded:
                continue
            plots.append(self._comparison(d, i, loaded, max_classes))
            for label, images, ys, classes, how in loaded:
                plots.append(self._grid(d, i, label, images, ys, classes, how, max_classes, max_per_class))
        if self.missing_sets:
            folders = sorted({str(p.parent) for p in self.missing_sets})
            self.notes.append(f"{len(self.missing_sets)} synthetic set(s) are missing from {', '.join(folders)} "
                              f"(e.g. {self.missing_sets[0].name}): their images are not shown")
        return plots

    def _load_images(self, inputs: Inputs, root: Path, key: str, dataset: str):
        import torch

        from ..store import SyntheticSet

        from ..store import ResultsStore

        path = ResultsStore(root).synset_path(key)
        try:
            synset = SyntheticSet.load(path)
        except FileNotFoundError:
            self.missing_sets.append(path)
            return None
        except (OSError, ValueError, KeyError) as exc:
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self.notes.append(f"synthetic set {path} could not be read ({why}); its images are not shown")
            return None
        x = synset.images.float()
        data, why = _dataset_for(inputs, root, dataset)
        if data is not None:
            if data.zca is not None:
                x = data.zca.inverse(x)
            x = data.denormalise(x).clamp(0, 1)
            how = "de-whitened (ZCA) and de-normalised" if data.zca is not None else "de-normalised"
            classes = list(data.classes)
        else:
            lo = x.amin(dim=(1, 2, 3), keepdim=True)
            hi = x.amax(dim=(1, 2, 3), keepdim=True)
            x = (x - lo) / (hi - lo).clamp_min(1e-8)
            how = f"each image rescaled to [0, 1] (the dataset could not be reloaded to de-normalise it: {why})"
            note = f"{dataset}: {how}"
            if note not in self.notes:
                self.notes.append(note)
            classes = [str(c) for c in range(int(synset.labels.max()) + 1)] if len(synset.labels) else []
        return x.to(torch.float32).numpy(), synset.labels.numpy(), classes, how

    def _comparison(self, d, i, loaded, max_classes) -> Plot:
        """Rows = methods, columns = classes: each method's first image of each class."""
        classes = loaded[0][3]
        k = min(len(classes), max_classes)
        tiles = []
        for label, images, ys, _, _ in loaded:
            row = []
            for c in range(k):
                idx = np.nonzero(ys == c)[0]
                row.append(images[idx[0]] if len(idx) else np.ones_like(images[0]))
            tiles.append(row)
        mosaic = _mosaic(tiles)
        h, w = loaded[0][1].shape[2:]
        with _style():
            fig = _figure(min(0.55 * k + 1.8, 16), 0.55 * len(loaded) * h / w + 1.0)
            ax = fig.subplots()
            _show(ax, mosaic)
            ax.set_yticks([(r + 0.5) * (h + 1) for r in range(len(loaded))])
            ax.set_yticklabels([names.method_name(x[0]) for x in loaded])
            ax.set_xticks([(c + 0.5) * (w + 1) for c in range(k)])
            ax.set_xticklabels([str(c) for c in classes[:k]], rotation=90 if max(len(str(c)) for c in classes[:k]) > 3 else 0)
            title = f"Synthetic images on {names.dataset_name(d)}, IPC {i}"
            if i > 1:  # one image per class of the i each method made: say so where the eye looks first
                title += f": the first of {i} images per class"
            ax.set_title(title)
            more = f" (the first {k} of {len(classes)} classes)" if k < len(classes) else ""
            return self._save(fig, names.slug("synthetic", d, f"ipc{i}"), title,
                              f"The first synthetic image of each class{more} for each method (first seed); "
                              f"{loaded[0][4]}.")

    def _grid(self, d, i, label, images, ys, classes, how, max_classes, max_per_class) -> Plot:
        """Rows = classes, columns = the class's synthetic images (up to ``max_per_class``)."""
        k = min(len(classes), max_classes)
        per = min(max_per_class, max(int((ys == c).sum()) for c in range(k)) if k else 1)
        tiles = []
        for c in range(k):
            idx = np.nonzero(ys == c)[0][:per]
            row = [images[j] for j in idx] + [np.ones_like(images[0])] * (per - len(idx))
            tiles.append(row)
        mosaic = _mosaic(tiles)
        h, w = images.shape[2:]
        with _style():
            fig = _figure(min(0.5 * per + 1.6, 12), min(0.5 * k * h / w + 1.0, 16))
            ax = fig.subplots()
            _show(ax, mosaic)
            ax.set_yticks([(r + 0.5) * (h + 1) for r in range(k)])
            ax.set_yticklabels([str(c) for c in classes[:k]])
            ax.set_xticks([])
            title = f"{names.method_name(label)} on {names.dataset_name(d)}, IPC {i}"
            if per < i:
                title += f": the first {per} of {i} images per class"
            ax.set_title(title)
            more = f"; the first {k} of {len(classes)} classes" if k < len(classes) else ""
            more += f"; the first {per} images per class" if per < i else ""
            return self._save(fig, names.slug("synthetic", d, label, f"ipc{i}"), title,
                              f"Every row is a class (first seed{more}); {how}.")


def _legend(axes) -> tuple[list, list[str]]:
    """The legend entries of all ``axes``, each label once, in order of appearance."""
    handles, labels = [], []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    return handles, labels


def _mosaic(tiles: list[list[np.ndarray]]) -> np.ndarray:
    """Tiles [C,H,W] in [0,1] laid out in a grid with 1-pixel white gaps -> [H', W', C]."""
    c, h, w = tiles[0][0].shape
    rows, cols = len(tiles), max(len(r) for r in tiles)
    out = np.ones(((h + 1) * rows - 1, (w + 1) * cols - 1, c), dtype=np.float32)
    for r, row in enumerate(tiles):
        for k, t in enumerate(row):
            out[r * (h + 1):r * (h + 1) + h, k * (w + 1):k * (w + 1) + w] = np.transpose(t, (1, 2, 0))
    return out


def _show(ax, mosaic: np.ndarray) -> None:
    if mosaic.shape[2] == 1:
        ax.imshow(mosaic[:, :, 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(np.clip(mosaic, 0, 1), interpolation="nearest")
    ax.grid(False)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.tick_params(length=0)


def _dataset_for(inputs: Inputs, root: Path, key: str):
    """The dataset ``key`` as the run loaded it (for its mean/std and ZCA), or (None, why)."""
    from ..errors import AtombenchError

    suite = inputs.suites.get(root) or {}
    spec = next((ds for ds in suite.get("datasets") or [] if isinstance(ds, dict)
                 and (ds.get("label") or ds.get("name")) == key), None)
    if spec is None:
        return None, "suite.json does not describe it"
    from ..factories import load_dataset

    try:
        return load_dataset(spec["name"], spec.get("options") or {}, bool(spec.get("zca")),
                            float(spec.get("zca_eps", 0.1))), ""
    except AtombenchError as exc:
        return None, str(exc).splitlines()[0]
    except Exception as exc:  # noqa: BLE001 - a broken plug-in must not stop the report
        return None, f"{type(exc).__name__}: {exc}"
