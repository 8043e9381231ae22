"""``atombench report``: read results folders, write tables, figures and a page under ``<results>/report/``.

Layout of the report folder::

    index.html                 the tables and figures together (open it in a browser)
    report.md                  the same in Markdown
    tables/<name>.md|.tex|.csv main, cross_arch_<dataset>_ipc<k>, nas, cost (LaTeX: booktabs table environments)
    tables/tables.tex          a standalone document inputting every .tex table (pdflatex tables.tex)
    plots/<name>.png|.pdf      accuracy_vs_ipc, cross_arch_*, nas_*, loss_curves, synthetic_*
    manifest.json              the files of this report (files of an earlier report not listed are removed),
                               its notes, and the fingerprint of the inputs it was drawn from

Every file is written atomically. Missing inputs (no results yet, no synthetic sets, no NAS the suite asked for)
are listed on the page and returned in :attr:`ReportResult.notes`; bad options are
:class:`~atombench.errors.UsageError`.

**Rebuilt only when something changed.** The fingerprint hashes everything the report is drawn from: each results
folder's ``results.csv`` (or its ``jobs/*.json`` when there is no results.csv), ``nas.csv``, ``nas_summary.csv``,
``suite.json`` and ``suite.yaml``, the synthetic sets' metadata (``synsets/*.json``, whose sha256 covers the
images) and the sets' sizes, the report options, the atombench version and the report code itself. When the
manifest holds the same fingerprint and every file it lists exists, nothing is redrawn (a no-op rerun of a suite
costs no PDF or image grid); the result says so in :attr:`ReportResult.notes` and
:attr:`ReportResult.up_to_date`. ``ReportOptions(force=True)``, or deleting ``manifest.json``, redraws it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UsageError
from ..runtime import atomic_write
from ..store import ResultsStore
from . import names
from .inputs import Inputs, apply_filters, parse_filter, read_inputs
from .page import Section, html_page, markdown_page
from .plots import Plot
from .published import CHOICES as PUBLISHED_CHOICES
from .published import load_published, plugin_published, with_aliases
from .render import Table, latex_document, to_csv, to_latex, to_markdown
from .stats import UNITS
from .claims import claims_tables, parse_pairs, preprocessing_tables
from .entries import dataset_entries
from .budget import budget_tables
from .fairness import fairness_tables
from .robustness import robustness_tables
from .tables import (TableOptions, check_metric, cost_table, cross_arch_tables, main_table, method_map, nas_table,
                     select_columns, summarise_nas)
from .views import apply_view, default_view, final_sets


@dataclass
class ReportOptions(TableOptions):
    #: the report folder (default ``<results>/report``; required when merging several folders)
    output: str | Path | None = None
    #: row filters, ``COLUMN=V1,V2`` or ``COLUMN!=V1,V2``
    where: list[str] = field(default_factory=list)
    published: str = "verified"
    plots: bool = True
    images: bool = True
    #: redraw even when the inputs have not changed since the last report (not part of the fingerprint)
    force: bool = False
    #: the pairs of the claims table, ``A-B`` (distiller labels); None: every pair of distilling methods
    claims: list[str] | None = None

    def check(self) -> None:
        if not 0 <= self.precision <= 6:
            raise UsageError(f"--precision must be between 0 and 6 decimals, got {self.precision}")
        if self.unit not in ("auto", *UNITS):
            raise UsageError(f"--over must be auto, seeds or models, got '{self.unit}'")
        if not 0 < self.alpha < 1:
            raise UsageError(f"--alpha must be between 0 and 1 (e.g. 0.05), got {self.alpha}")
        if self.published not in PUBLISHED_CHOICES:
            raise UsageError(f"--published must be one of {', '.join(PUBLISHED_CHOICES)}, got '{self.published}'")


@dataclass
class ReportResult:
    folder: Path
    files: list[Path]
    notes: list[str]
    tables: list[Table]
    plots: list[Plot]
    #: True when nothing was redrawn: the report on disk was drawn from the same inputs and options
    up_to_date: bool = False

    @property
    def index(self) -> Path:
        return self.folder / "index.html"


def _write(path: Path, text: str, files: list[Path]) -> None:
    with atomic_write(path, "w") as fh:
        fh.write(text)
    files.append(path)


def _title(inputs: Inputs) -> str:
    suite_names = [s.get("name") for s in inputs.suites.values() if s.get("name")]
    if len(inputs.roots) == 1:
        return f"atombench report: {suite_names[0] if suite_names else inputs.roots[0].name}"
    return f"atombench report: {', '.join(suite_names) or f'{len(inputs.roots)} results folders'}"


def build_report(paths: list[str | Path] | str | Path, options: ReportOptions | None = None) -> ReportResult:
    """Write the report of the results folders ``paths``; see the module docstring for what is written."""
    opts = options or ReportOptions()
    opts.check()
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not paths:
        raise UsageError("name at least one results folder, e.g. atombench report results/quickstart")
    filters = [parse_filter(w) for w in opts.where]
    inputs = apply_filters(read_inputs(paths), filters)
    if opts.output is None and len(inputs.roots) > 1:
        raise UsageError("several results folders: say where the merged report goes with --output DIR")
    if len(inputs.results):  # checked before anything is written (it failed inside the claims tables)
        check_metric(inputs.results, opts.metric)
    folder = Path(opts.output) if opts.output is not None else ResultsStore(inputs.roots[0]).report_dir
    store = ResultsStore(folder)
    if opts.output is not None and (store.results_csv.exists() or store.suite_json.exists()):
        raise UsageError(f"--output {folder} is a results folder: a report there would mix with its files; "
                         f"leave --output out for its report/ subfolder, or choose an empty folder")
    try:
        (folder / "tables").mkdir(parents=True, exist_ok=True)
        (folder / "plots").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot write the report folder {folder} ({exc.strerror or exc}); choose another with "
                         f"--output DIR") from exc
    with names.entry_names(dataset_entries(inputs.suites)):  # every table and plot names the labelled entries
        return _build(inputs, opts, folder, filters)


def _build(inputs: Inputs, opts: ReportOptions, folder: Path, filters: list) -> ReportResult:
    """:func:`build_report`'s tables, plots and page from the read and filtered ``inputs`` into ``folder``."""
    notes = list(inputs.notes)
    published = load_published(opts.published)
    if "method" in inputs.results or "distiller" in inputs.results:  # numbers declared by distiller plug-ins
        methods = inputs.results.get("made_by", inputs.results.get("method", inputs.results.get("distiller")))
        methods = methods.dropna().astype(str).unique()
        extra, problems = plugin_published(methods, opts.published)
        notes += problems
        if len(extra):
            published = pd.concat([published, extra], ignore_index=True).drop_duplicates(
                ["dataset", "method", "ipc"], keep="first").reset_index(drop=True)
    published = with_aliases(published)  # CIFAR-10's numbers beside CIFAR-10 (JPEG q75)'s cells, marked as such

    # -- tables ----------------------------------------------------------------------------------------------
    everything = inputs  # snapshots included: the budget tables
    inputs = final_sets(inputs)
    notes += [n for n in inputs.notes if n not in notes]  # (an earlier budget's final sets left out)
    chosen, view_notes = default_view(inputs)
    notes += view_notes + imported_notes(inputs) + untrained_notes(inputs)
    # the fairness table compares protocols under one labels/augmentation setting, the robustness tables compare
    # labels and augmentations under one protocol (its own choice: the common one), each under the main view of
    # every other split dimension (an axis added to the grid included); the main tables show one value of each
    fairness = fairness_tables(apply_view(inputs, {k: v for k, v in chosen.items() if k != "protocol"},
                                          own_augmentation=True), opts)
    robustness = robustness_tables(apply_view(inputs, {k: v for k, v in chosen.items()
                                                       if k not in ("protocol", "labels", "augment")}), opts)
    per_view = apply_view(inputs, chosen)
    main = main_table(per_view, opts, published)
    cross = cross_arch_tables(per_view, opts)
    nas_summary = inputs.nas_summary
    if nas_summary is None and inputs.nas is not None and len(inputs.nas):
        nas_summary = summarise_nas(inputs.nas)
        notes.append("nas_summary.csv is missing: the NAS table was computed from nas.csv (no time or storage)")
    nas = nas_table(nas_summary, opts.precision) if nas_summary is not None and len(nas_summary) else None
    cost = cost_table(inputs, opts)
    if main is None and len(inputs.results):
        notes.append("no finished evaluation job: the accuracy tables are empty")
    if main is not None and len(inputs.ok) and inputs.ok["model"].nunique() < 2:
        notes.append("one evaluation model only: no cross-architecture table (list several models in the suite)")
    if inputs.nas is None and inputs.nas_summary is None:
        asked = [root for root, suite in inputs.suites.items() if isinstance(suite, dict) and suite.get("nas")]
        if asked:  # a suite without a nas: section lacks nothing
            notes.append(f"{', '.join(map(str, asked))}: the suite has a nas: section but there are no NAS results "
                         f"(nas.csv, nas_summary.csv): no NAS table or scatter; run the suite again to finish them")
    budget = budget_tables(everything, opts)
    claim_view = apply_view(everything, {k: v for k, v in chosen.items() if k != "protocol"}, own_augmentation=True)
    claims = claims_tables(claim_view.ok, published, inputs.suites, parse_pairs(opts.claims), opts.metric, opts.alpha,
                           opts.unit, opts.precision)
    claims += preprocessing_tables(claim_view.ok, inputs.suites, opts.metric, opts.alpha, opts.unit, opts.precision)
    tables = [t for t in [main, *cross, *fairness, *claims, *robustness, *budget, nas, cost] if t is not None]

    fingerprint = _fingerprint(inputs.roots, opts, published.to_json(default_handler=str))
    if not opts.force:
        previous = _up_to_date(folder, fingerprint)
        if previous is not None:
            old_files, old_notes, old_plots, when = previous
            notes = [*old_notes, f"the report is up to date (written {when} from the same results, synthetic sets, "
                                 f"suite and options): nothing was redrawn"]
            return ReportResult(folder, old_files, notes, tables, old_plots, up_to_date=True)
    files: list[Path] = []
    for t in tables:
        _write(folder / "tables" / f"{t.name}.md", to_markdown(t), files)
        _write(folder / "tables" / f"{t.name}.tex", to_latex(t), files)
        _write(folder / "tables" / f"{t.name}.csv", to_csv(t), files)
    if tables:
        _write(folder / "tables" / "tables.tex", latex_document([t.name for t in tables]), files)

    # -- figures ---------------------------------------------------------------------------------------------
    plots: dict[str, list[Plot]] = {"main": [], "cross": [], "fairness": [], "robustness": [], "budget": [], "nas": [],
                                    "loss": [], "images": [], "grids": []}
    if opts.plots and len(inputs.results):
        from .plots import Plotter

        ok = inputs.ok
        mmap = method_map(ok) or {str(d): str(d) for d in ok.get("distiller", [])}
        labels = names.order_methods(inputs.results["distiller"].astype(str), mmap) \
            if "distiller" in inputs.results else []
        if opts.rows:
            labels = [x for x in opts.rows if x in labels]
        plotter = Plotter(folder / "plots", labels)
        if main is not None:
            unit = main.frame["unit"].dropna().iloc[0] if len(main.frame) else "models"
            p = plotter.accuracy_vs_ipc(main.frame, main.title.split(" of ")[0],
                                        "over seeds" if unit == "seeds" else "over trained models")
            plots["main"] += [p] if p else []
        for t in cross:
            p = plotter.cross_arch(t, t.title)
            plots["cross"] += [p] if p else []
        if fairness:
            p = plotter.fairness(fairness[0].frame, fairness[0].title)
            plots["fairness"] += [p] if p else []
        if robustness:
            p = plotter.robustness(robustness[0].frame, robustness[0].title)
            plots["robustness"] += [p] if p else []
        if budget:
            p = plotter.budget(budget[0].frame, budget[0].title)
            plots["budget"] += [p] if p else []
        if inputs.nas is not None and len(inputs.nas):
            plots["nas"] += plotter.nas_scatter(inputs.nas, inputs.nas_summary)
        cols = select_columns(inputs.results, opts.columns) if "ipc" in inputs.results else []
        p = plotter.loss_curves(inputs, labels, cols)
        plots["loss"] += [p] if p else []
        if opts.images:
            grids = plotter.synthetic_images(inputs, labels, cols)
            comparison = {names.slug("synthetic", d, f"ipc{i}") for d, i in cols}
            plots["images"] += [g for g in grids if g.name in comparison]
            plots["grids"] += [g for g in grids if g.name not in comparison]
        notes += plotter.notes
        if cols and not plots["loss"] and "synset_key" in inputs.results:
            notes.append("no loss curves: the synthetic sets' metadata (synsets/*.json) is missing or has none "
                         "(coresets record no loss)")
    for group in plots.values():
        for p in group:
            files += [p.png] + ([p.pdf] if p.pdf else [])

    # -- pages -----------------------------------------------------------------------------------------------
    sections = [
        Section("main", "Main table", tables=[main] if main else [], plots=plots["main"]),
        Section("cross-architecture", "Cross-architecture", tables=cross, plots=plots["cross"]),
        Section("fairness", "Evaluation protocols: own vs common",
                "How much of each method's number is its evaluation protocol: every synthetic set trained under "
                "its paper's protocol and under one common protocol.", tables=fairness, plots=plots["fairness"]),
        Section("claims", "Claims: differences between methods",
                "The papers' claims are differences (DataDAM above DM, ATOM above DataDAM): each measured beside "
                "the published one, at each IPC, budget, preprocessing and protocol, with Welch's test and a verdict; "
                "what ZCA whitening adds to each method, where the suite ran it both ways; and which of the two ZCA "
                "spaces serves a method better, where it ran on both.",
                tables=claims),
        Section("robustness", "Label and augmentation robustness",
                "DD-Ranking's scores: how much of each method's accuracy survives hard labels (LRS) and holds with "
                "and without augmentation (ARS).", tables=robustness, plots=plots["robustness"]),
        Section("budget", "Distillation budget",
                "ATOM's claim is efficiency: accuracy per unit of distillation cost. Every iterative method's snapshots "
                "evaluated like its final set.", tables=budget, plots=plots["budget"]),
        Section("nas", "Neural architecture search", tables=[nas] if nas else [], plots=plots["nas"]),
        Section("cost", "Cost", "Efficiency is the point of ATOM: what each method costs to distil.",
                tables=[cost] if cost else []),
        Section("loss", "Distillation loss", plots=plots["loss"]),
        Section("images", "Synthetic images", plots=plots["images"], more_plots=plots["grids"],
                more_title="Every method's images per class"),
    ]
    from .. import __version__

    meta = [f"Results: {', '.join(str(r) for r in inputs.roots)}",
            f"atombench {__version__}, {time.strftime('%Y-%m-%d %H:%M')}"
            + (f"; filters: {'; '.join(f'`{f}`' for f in filters)}" if filters else "")]
    title = _title(inputs)
    _write(folder / "index.html", html_page(folder, title, meta, notes, sections), files)
    _write(folder / "report.md", markdown_page(folder, title, meta, notes, sections), files)
    all_plots = [p for g in plots.values() for p in g]
    _clean_stale(folder, files, {"fingerprint": fingerprint, "written": time.strftime("%Y-%m-%d %H:%M:%S"),
                                 "notes": notes, "plots": [_plot_record(folder, p) for p in all_plots]})
    return ReportResult(folder, files, notes, tables, all_plots)


# -- notes on what the tables hold ----------------------------------------------------------------------------
#: a trained model "did not learn" where its last pass's loss is within this fraction of ln(classes) (the
#: cross-entropy of a uniform guess) and its test accuracy within it of chance
CHANCE_TOLERANCE = 0.02


def untrained_notes(inputs: Inputs) -> list[str]:
    """One line per (model, dataset, IPC, protocol) where trained models ended at a uniform guess: the last pass's
    hard-label loss at ln(classes) and the test accuracy at chance. Such a cell measures a training recipe that
    diverged or stalled on that network (ConvNeXt under SGD 0.01 with DSA, say), not the synthetic sets."""
    df = inputs.ok
    need = {"final_train_loss", "accuracy", "num_images", "ipc", "model"}
    if not len(df) or not need <= set(df):
        return []
    df = df[df["labels"].astype(str) == "hard"] if "labels" in df else df
    loss = pd.to_numeric(df["final_train_loss"], errors="coerce")
    acc = pd.to_numeric(df["accuracy"], errors="coerce")
    classes = (pd.to_numeric(df["num_images"], errors="coerce") / pd.to_numeric(df["ipc"], errors="coerce")).round()
    ok = classes >= 2
    uniform = np.log(classes.where(ok))
    chance = 100.0 / classes.where(ok)
    stuck = ok & ((loss - uniform).abs() <= CHANCE_TOLERANCE * uniform) & \
        ((acc - chance).abs() <= CHANCE_TOLERANCE * 100.0)
    if not stuck.any():
        return []
    keys = [c for c in ("model", "dataset", "ipc", "protocol") if c in df]
    out = []
    for group, g in df.assign(_stuck=stuck).groupby(keys, sort=False):
        n = int(g["_stuck"].sum())
        if not n:
            continue
        where = dict(zip(keys, group if isinstance(group, tuple) else (group,)))
        c = int(classes[g.index[g["_stuck"]][0]])  # (a stuck row has a class count; the group's first may not)
        out.append(f"did not learn: {where['model']} on {where.get('dataset', '?')} IPC {where['ipc']}"
                   + (f" ({where['protocol']} protocol)" if "protocol" in where else "")
                   + f": {n} of {len(g)} trained model(s) ended at the loss of a uniform guess (ln {c} = "
                   f"{np.log(c):.3f}) and chance accuracy ({100 / c:.1f} %): the training recipe diverged or "
                   f"stalled on this network, so those cells do not measure the synthetic sets")
    return out


def imported_notes(inputs: Inputs) -> list[str]:
    """One line per set read from files (the ``files`` distiller) rather than distilled: its row, and the file
    it was read from."""
    df = inputs.results
    if "method" not in df or "synset_key" not in df:
        return []
    out = []
    rows = df[df["method"] == "files"].drop_duplicates(["synset_key"])
    for _, row in rows.iterrows():
        root = row.get("results_dir", inputs.roots[0]) if "results_dir" in df else inputs.roots[0]
        meta = inputs.synset_meta(root, str(row["synset_key"])) or {}
        source = meta.get("source_path", "its file")
        out.append(f"imported: {row.get('distiller')} on {row.get('dataset')} IPC {row.get('ipc')} seed "
                   f"{row.get('seed')} was read from {source} ({meta.get('source_format', '?')}, "
                   f"{meta.get('source_space', '?')} space), not distilled by this run")
    return out


# -- rebuild only when the inputs changed ----------------------------------------------------------------------
def _hash_file(h, path: Path) -> None:
    """The file's name and contents into ``h`` (an absent file counts as absent, not as empty)."""
    h.update(path.name.encode() + b"\0")
    try:
        h.update(path.read_bytes())
        h.update(b"\1")
    except OSError:
        h.update(b"\2")


def _fingerprint(roots: list[Path], opts: ReportOptions, extra: str = "") -> str:
    """A hash of everything the report is drawn from (see the module docstring); ``extra``: anything else it
    depends on (the published numbers, plug-ins' included)."""
    from .. import __version__

    h = hashlib.sha256(extra.encode())
    options = {k: v for k, v in dataclasses.asdict(opts).items() if k != "force"}
    h.update(json.dumps({"options": options, "atombench": __version__}, sort_keys=True, default=str).encode())
    for code in sorted(Path(__file__).parent.iterdir()):  # the report's own code and published numbers
        if code.suffix in (".py", ".csv"):
            _hash_file(h, code)
    _hash_file(h, Path(__file__).parents[1] / "summary.py")  # varies(): which evaluation settings the tables split
    _hash_file(h, Path(__file__).parents[1] / "grid.py")  # the axes: what the tables split by, the results schema
    for root in roots:
        h.update(str(root.resolve()).encode() + b"\0")
        store = ResultsStore(root)
        for path in (store.results_csv, store.nas_csv, store.nas_summary_csv, store.suite_json, store.suite_yaml):
            _hash_file(h, path)
        if store.jobs_dir.is_dir():  # the jobs the tables take from jobs/: all, or those newer than results.csv
            since = store.results_csv.stat().st_mtime if store.results_csv.is_file() else None
            for job in sorted(store.jobs_dir.glob("*.json")):
                try:
                    if since is None or job.stat().st_mtime > since:
                        _hash_file(h, job)
                except OSError:
                    pass
        synsets = store.synsets_dir
        if synsets.is_dir():
            for path in sorted(synsets.iterdir()):
                if path.name.endswith(".safetensors.json"):
                    _hash_file(h, path)
                elif path.name.endswith(".safetensors"):  # its sha256 is in the metadata: its size will do
                    try:
                        h.update(f"{path.name}:{path.stat().st_size}\0".encode())
                    except OSError:
                        pass
    return h.hexdigest()


def _plot_record(folder: Path, p: Plot) -> dict:
    return {"name": p.name, "title": p.title, "caption": p.caption, "png": p.png.relative_to(folder).as_posix(),
            "pdf": p.pdf.relative_to(folder).as_posix() if p.pdf else None}


def _up_to_date(folder: Path, fingerprint: str):
    """``(files, notes, plots, when)`` of the report in ``folder`` when it was drawn from inputs with this
    fingerprint and all its files are still there; else None."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        if manifest.get("fingerprint") != fingerprint:
            return None
        files = [folder / rel for rel in manifest["files"]]
        plots = [Plot(r["name"], r["title"], r["caption"], folder / r["png"], folder / r["pdf"] if r["pdf"] else None)
                 for r in manifest["plots"]]
        notes = [str(n) for n in manifest["notes"]]
        when = str(manifest.get("written", "earlier"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if not all(f.is_file() for f in files):
        return None
    return files, notes, plots, when


def _clean_stale(folder: Path, files: list[Path], record: dict | None = None) -> None:
    """Remove the files an earlier report wrote that this one did not, then record this report's files (and
    ``record``: its fingerprint, notes and plots)."""
    manifest = folder / "manifest.json"
    current = sorted({p.relative_to(folder).as_posix() for p in files})
    try:
        previous = json.loads(manifest.read_text()).get("files", [])
    except (OSError, ValueError, AttributeError):
        previous = []
    for rel in set(previous) - set(current):
        path = folder / rel
        if ".." not in Path(rel).parts and path.is_file():
            try:
                path.unlink()
            except OSError:
                pass
    with atomic_write(manifest, "w") as fh:
        json.dump({"files": current, **(record or {})}, fh, indent=1)
