"""``atombench report``: tables (golden Markdown, bolding and significance rule, LaTeX that compiles), plots,
the page in a real headless browser, options and filters, and reports over empty or partial results folders.

Results are hand-made frames written as a run writes them (results.csv, suite.json, synsets/), so the tests
take seconds; one test of the CLI's `run` replaces the run itself.
"""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

import atombench
from atombench.cli import main
from atombench.report import ReportOptions, build_report
from atombench.report.inputs import read_inputs
from atombench.report.names import method_kind, order_methods
from atombench.report.published import load_published
from atombench.report.stats import mark_column, stat
from atombench.report.tables import TableOptions, main_table

from .conftest import run_cli

GOLDEN = Path(__file__).parent / "golden"

# (dataset, method label, ipc) -> base accuracy; every cell gets 3 seeds x 2 trained models around it
BASE = {("digits", "random", 1): 20.0, ("digits", "random", 10): 50.0,
        ("digits", "herding", 1): 25.0, ("digits", "herding", 10): 52.0,
        ("digits", "dm", 1): 30.0, ("digits", "dm", 10): 60.0,
        ("digits", "atom", 1): 35.0, ("digits", "atom", 10): 64.0,
        ("digits", "atom_channel_only", 1): 34.6, ("digits", "atom_channel_only", 10): 63.02,
        ("cifar10", "random", 10): 27.0, ("cifar10", "dm", 10): 47.5, ("cifar10", "atom", 10): 49.0,
        ("cifar10", "atom_channel_only", 10): 41.0}
SPREAD = {"random": 2.0, "herding": 1.0, "dm": 1.5, "atom": 0.5, "atom_channel_only": 1.0}


def results_rows(base=BASE, models=("convnet",), seeds=(0, 1, 2), whole=True):
    rows = []
    for (d, label, ipc), acc in base.items():
        method = "atom" if label.startswith("atom") else label
        for seed in seeds:
            if (d, label) == ("cifar10", "atom_channel_only") and seed == 2:
                continue  # one cell with fewer seeds: it states its n
            for m_i, model in enumerate(models):
                for k in range(2):
                    value = acc - 3 * m_i + SPREAD[label] * (seed - 1) + 0.2 * (k - 0.5)
                    key = f"{d}-{label}-{ipc}-{seed}"
                    rows.append(dict(dataset=d, distiller=label, method=method, ipc=ipc, seed=seed, model=model,
                                     model_name=model, eval_index=k, eval_seed=100 + k, accuracy=round(value, 4),
                                     status="ok", error="", distill_time_s=0.5 * ipc + 0.01 * seed,
                                     distill_peak_mem_mb=10.0 * ipc, num_images=10 * ipc, synset_key=key,
                                     job_key=f"{key}-{model}-{k}"))
    if whole:
        for d in ("digits", "cifar10"):
            for seed in (0, 1):
                for model in models:
                    rows.append(dict(dataset=d, distiller="whole", method="whole", ipc=None, seed=seed,
                                     model=model, model_name=model, eval_index=0, eval_seed=7,
                                     accuracy=97.0 + seed if d == "digits" else 84.0 + seed, status="ok", error="",
                                     synset_key=None, job_key=f"{d}-whole-{seed}-{model}"))
    return rows


def write_results(root: Path, rows, suite=None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(root / "results.csv", index=False)
    if suite is not None:
        (root / "suite.json").write_text(json.dumps(suite))
    return root


def fast(**kw) -> ReportOptions:
    return ReportOptions(plots=False, **kw)


# -- the main table ------------------------------------------------------------------------------------------
def test_main_table_markdown_matches_golden_file(tmp_path):
    root = write_results(tmp_path / "res", results_rows())
    build_report(root, fast())
    got = (root / "report" / "tables" / "main.md").read_text()
    golden = GOLDEN / "report_main.md"
    if (os.environ.get("ATOMBENCH_UPDATE_GOLDEN") or os.environ.get("ATOMBENCH_REGEN")) and got != golden.read_text():
        golden.write_text(got)
        pytest.fail(f"{golden} regenerated: review its diff, then rerun without ATOMBENCH_UPDATE_GOLDEN")
    assert got == golden.read_text()


def test_golden_cells_by_hand(tmp_path):
    """The golden file's numbers, recomputed here from the rows: per seed the mean of its 2 models, then mean
    and population std over the 3 seeds."""
    root = write_results(tmp_path / "res", results_rows())
    table = main_table(read_inputs([root]), TableOptions(), load_published("none"))
    per_seed = np.array([30.0 - 1.5, 30.0, 30.0 + 1.5])  # dm at digits IPC 1
    dm = table.rows[[r.labels[0] for r in table.rows].index("DM")].cells[0]
    assert (dm.mean, dm.std, dm.n) == (pytest.approx(per_seed.mean()), pytest.approx(per_seed.std()), 3)
    assert dm.text(1) == "30.0 ± 1.2"


def test_bold_and_dagger_follow_the_caption_rule():
    """Bold: the best mean (ties at the shown precision too); †: Welch's two-sided p >= 0.05 against the best;
    no mark with fewer than 3 samples."""
    best = stat(np.array([60.0, 60.5, 61.0]))
    close = stat(np.array([58.0, 60.0, 62.0]))       # same mean region, wide: not different
    far = stat(np.array([40.0, 40.5, 41.0]))         # clearly worse
    tie = stat(np.array([60.44, 60.56, 60.5]))       # 60.5 at one decimal: bold as well
    single = stat(np.array([59.0]))                  # one sample: no test
    pair = stat(np.array([50.0, 51.0]))              # two samples: Welch has ~1 dof, no test either
    cells = [best, close, far, tie, single, pair, None]
    mark_column(cells, precision=1, alpha=0.05)
    assert [c.best for c in cells[:6]] == [True, False, False, True, False, False]
    p_close = st.ttest_ind(best.samples, close.samples, equal_var=False).pvalue
    p_far = st.ttest_ind(best.samples, far.samples, equal_var=False).pvalue
    assert close.p == pytest.approx(p_close) and p_close >= 0.05 and close.tied is True
    assert far.p == pytest.approx(p_far) and far.tied is False
    assert single.tied is None and single.p is None
    assert pair.tied is None and pair.p is None
    # a lower-is-better metric bolds the smallest
    mark_column(cells, precision=1, higher_is_better=False)
    assert far.best and not best.best


def test_marks_in_the_table_follow_the_rule(tmp_path):
    root = write_results(tmp_path / "res", results_rows())
    table = main_table(read_inputs([root]), TableOptions(), load_published("none"))
    assert "Welch's two-sided t-test over the synthetic sets, one sample per seed, p ≥ 0.05" in table.caption
    ours = [r for r in table.rows if not r.published and r.kind != "whole"]
    for j in range(len(table.columns)):
        cells = [r.cells[j] for r in ours if r.cells[j] is not None]
        top = max(cells, key=lambda c: c.mean)
        for c in cells:
            assert c.best == (round(c.mean, 1) == round(top.mean, 1))
            if not c.best and min(len(top.samples), len(c.samples)) < 3:
                assert c.tied is None
            elif not c.best:
                p = st.ttest_ind(top.samples, c.samples, equal_var=False).pvalue
                assert c.tied == (p >= 0.05)
    whole = next(r for r in table.rows if r.kind == "whole")
    assert not any(c.best or c.tied for c in whole.cells if c is not None)


def test_method_order_and_kinds():
    labels = ["atom", "my_plugin", "whole", "dm", "atom_channel_only", "random", "forgetting", "mtt", "herding"]
    assert order_methods(labels, {"atom_channel_only": "atom"}) == [
        "random", "herding", "forgetting", "dm", "mtt", "atom", "my_plugin", "atom_channel_only", "whole"]
    assert method_kind("kcenter") == "coreset" and method_kind("full") == "whole"
    assert method_kind("random_big", "random") == "coreset"  # a labelled coreset stays a coreset
    assert method_kind("unknown_thing") == "distiller"


# -- published numbers ---------------------------------------------------------------------------------------
def test_published_numbers_have_sources_and_show_beside_ours(tmp_path):
    every = load_published("all")
    assert len(every) and every["source"].str.len().gt(10).all()
    verified = load_published("verified")
    assert verified["verified"].all() and len(verified) < len(every)
    dm = verified[(verified["dataset"] == "cifar10") & (verified["method"] == "dm") & (verified["ipc"] == 10)]
    assert (float(dm["mean"].iloc[0]), float(dm["std"].iloc[0])) == (48.9, 0.6)  # PAD Table 1
    root = write_results(tmp_path / "res", results_rows())
    build_report(root, fast())
    md = (root / "report" / "tables" / "main.md").read_text()
    assert "| *DM (published)* | – | – | *48.9 ± 0.6* |" in md
    assert "Published numbers: " in md and "PAD" in md
    assert "ATOM (published" not in md  # ATOM's numbers are unverified: only with --published all
    build_report(root, fast(published="all"))
    md = (root / "report" / "tables" / "main.md").read_text()
    assert "*ATOM (published, unverified)*" in md and "*57.9 ± 0.7*" in md
    build_report(root, fast(published="none"))
    assert "published" not in (root / "report" / "tables" / "main.md").read_text().lower().split("\n\n")[1]


def test_published_rows_only_for_the_papers_model(tmp_path):
    root = write_results(tmp_path / "res", results_rows(models=("timm:resnet10t",)))
    build_report(root, fast())
    assert "(published)" not in (root / "report" / "tables" / "main.md").read_text()


# -- output formats ------------------------------------------------------------------------------------------
def test_latex_and_csv(tmp_path):
    root = write_results(tmp_path / "res", results_rows(models=("convnet", "alexnet")))
    build_report(root, fast())
    tables = root / "report" / "tables"
    tex = (tables / "main.tex").read_text()
    assert r"\toprule" in tex and r"\multicolumn{2}{c}{digits}" in tex and r"\cmidrule(lr){2-3}" in tex
    assert r"\textbf{35.0 $\pm$ 0.4}" in tex and r"$^\dagger$" in tex and "atom\\_channel\\_only" in tex
    assert all(ord(ch) < 128 for ch in tex)  # pdflatex-safe
    cells = pd.read_csv(tables / "main.csv")
    assert {"method", "dataset", "ipc", "mean", "std", "n", "best", "not_different_from_best", "p_value"} <= set(cells)
    assert cells[(cells["method"] == "atom") & (cells["ipc"] == 1)]["best"].iloc[0]
    cross = sorted(p.name for p in tables.glob("cross_arch_*.md"))
    assert cross == ["cross_arch_cifar10_ipc10.md", "cross_arch_digits_ipc1.md", "cross_arch_digits_ipc10.md"]
    assert "| Method | ConvNet | AlexNet |" in (tables / "cross_arch_digits_ipc1.md").read_text()
    cost = (tables / "cost.md").read_text()
    assert "| Dataset | Method | IPC | Wall time (s) | Peak memory (MB) |" in cost


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="no TeX engine (pdflatex) installed")
def test_latex_tables_compile(tmp_path):
    root = write_results(tmp_path / "res", results_rows(models=("convnet", "alexnet")))
    (root / "nas_summary.csv").write_text(NAS_SUMMARY)
    build_report(root, fast(published="all"))
    tables = root / "report" / "tables"
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "tables.tex"], cwd=tables,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:]
    assert (tables / "tables.pdf").stat().st_size > 1000
    assert "Overfull" not in done.stdout or "main" not in done.stdout.split("Overfull")[0][-200:]


# -- NAS -----------------------------------------------------------------------------------------------------
NAS_SUMMARY = """dataset,proxy,ipc,spearman_all,spearman_topk,topk,selected_candidate,selected_test_accuracy,best_test_accuracy,wall_time_s,images_stored
cifar10,random,50,0.41,0.12,10,w128_d3_relu_ap_in,78.2,80.1,600,500
cifar10,atom,50,0.73,0.35,10,w256_d3_relu_ap_in,79.6,80.1,640,500
cifar10,whole,50,0.95,0.80,10,w256_d3_relu_ap_in,80.1,80.1,86400,50000
"""


def nas_rows(n=12):
    rng = np.random.default_rng(0)
    rows = []
    for proxy, noise in (("random", 8.0), ("atom", 3.0), ("whole", 1.0)):
        truth = np.linspace(60, 80, n)
        for c, gt in enumerate(truth):
            rows.append(dict(dataset="cifar10", proxy=proxy, ipc=50, candidate=f"arch{c}",
                             proxy_val_accuracy=gt - 20 + rng.normal(0, noise), gt_val_accuracy=gt,
                             gt_test_accuracy=gt - 0.5))
    return pd.DataFrame(rows)


def test_nas_table_from_summary_and_from_candidates(tmp_path):
    root = write_results(tmp_path / "res", results_rows())
    (root / "nas_summary.csv").write_text(NAS_SUMMARY)
    build_report(root, fast())
    md = (root / "report" / "tables" / "nas.md").read_text()
    assert "| Dataset | IPC | Proxy | Selected (%) | Best (%) | ρ (all) | ρ (top-10) | Time (min) | Images |" in md
    lines = [ln for ln in md.splitlines() if ln.startswith("| CIFAR-10")]
    assert [ln.split(" | ")[2] for ln in lines] == ["Random", "ATOM", "Whole dataset"]  # coresets first
    assert "| 0.73 | 0.35 | 10.7 | 500 |" in md
    # only the per-candidate file: the summary is computed from it, and the report says so
    other = write_results(tmp_path / "res2", results_rows())
    nas_rows().to_csv(other / "nas.csv", index=False)
    result = build_report(other, fast())
    assert any("nas_summary.csv is missing" in n for n in result.notes)
    summary = pd.read_csv(other / "report" / "tables" / "nas.csv")
    whole = summary[summary["proxy"] == "whole"].iloc[0]
    assert whole["spearman_all"] > 0.9 and whole["selected_candidate"] == "arch11"


# -- empty, partial and bad input ----------------------------------------------------------------------------
def test_a_folder_a_run_did_not_write_is_refused_and_nothing_written(tmp_path, capsys):
    """An empty folder, the folder above results folders (``atombench report results``) or a results folder's
    ``jobs/``: one line, exit 2, no report folder written into it (they got an empty report, exit 0)."""
    root = tmp_path / "empty"
    root.mkdir()
    assert main(["report", str(root), "--no-plots"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a results folder" in err[0] and "results/quickstart" in err[0]
    assert list(root.iterdir()) == []
    res = write_results(tmp_path / "parent" / "res", results_rows(whole=False))
    for folder in (tmp_path / "parent", res / "jobs"):
        folder.mkdir(exist_ok=True)
        before = sorted(folder.iterdir())
        assert main(["report", str(folder), "--no-plots"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "is not a results folder" in err[0]
        assert sorted(folder.iterdir()) == before
    assert "it holds results folders: " + str(res) in main_err(tmp_path / "parent", capsys)


def main_err(folder, capsys) -> str:
    main(["report", str(folder), "--no-plots"])
    return capsys.readouterr().err


def test_a_run_that_finished_no_job_says_what_is_missing(tmp_path, capsys):
    root = tmp_path / "started"
    root.mkdir()
    (root / "suite.yaml").write_text("name: started\n")  # what a run writes first
    assert main(["report", str(root), "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "note: " in out and "no results.csv" in out and "atombench run" in out
    page = (root / "report" / "index.html").read_text()
    assert "What is missing" in page and "no results.csv" in page


def test_a_damaged_results_csv_is_rebuilt_from_the_job_records_and_a_foreign_table_is_left_out(tmp_path, capsys):
    from atombench.store import ResultsStore

    rows = results_rows(whole=False)
    root = write_results(tmp_path / "res", rows)
    n = len(rows)
    for i, row in enumerate(rows):  # the records a run keeps of its finished jobs
        ResultsStore(root).write_job(f"job{i:04d}", dict(row, job_key=f"job{i:04d}"))
    (root / "results.csv").write_text("garbage\n")
    result = build_report(root, ReportOptions(plots=False, images=False))
    assert any("lacks the column(s) dataset, distiller, model" in x and f"{n} finished job(s)" in x
               for x in result.notes), result.notes
    assert len(read_inputs([root]).results) == n  # each record once (not again as "finished after results.csv")
    assert result.tables
    (root / "results.csv").write_text("dataset,distiller,accuracy\ndigits,dm,50\n")
    shutil.rmtree(root / "jobs")
    result = build_report(root, ReportOptions(plots=False, images=False))
    assert any("lacks the column(s) model: it is not a results table" in x for x in result.notes), result.notes


def test_report_output_into_another_results_folder_is_refused(tmp_path, capsys):
    a = write_results(tmp_path / "a", results_rows(whole=False))
    b = write_results(tmp_path / "b", results_rows(whole=False))
    before = sorted(p.name for p in b.iterdir())
    assert main(["report", str(a), "--output", str(b), "--no-plots"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a results folder" in err[0]
    assert sorted(p.name for p in b.iterdir()) == before


def test_partial_folder_jobs_only_failed_jobs_and_missing_cells(tmp_path):
    root = tmp_path / "partial"
    rows = results_rows(whole=False)
    rows = [r for r in rows if not (r["distiller"] == "herding" and r["ipc"] == 10)]  # never ran
    rows[0] = dict(rows[0], status="failed", error="RuntimeError: out of memory", accuracy=None)
    (root / "jobs").mkdir(parents=True)
    for r in rows:  # a run stopped before results.csv: only the finished jobs
        (root / "jobs" / f"{r['job_key']}.json").write_text(json.dumps(dict(r, sha256="x")))
    result = build_report(root, fast())
    notes = " ".join(result.notes)
    assert "results.csv is missing" in notes and f"{len(rows)} finished job(s)" in notes
    assert "1 job(s) failed" in notes
    assert "NAS" not in notes  # no suite asked for NAS: nothing is missing
    md = (root / "report" / "tables" / "main.md").read_text()
    assert re.search(r"Missing cells \(no finished job\): .*Herding at digits IPC 10", md)
    herding = next(ln for ln in md.splitlines() if ln.startswith("| Herding |"))
    assert herding.split(" | ")[1:] == ["–", "25.0 ± 0.8", "– |"]  # columns: CIFAR-10 10, digits 1, digits 10


def test_jobs_finished_after_results_csv_are_reported(tmp_path):
    """A long run writes results.csv at its end only: a report made while it runs takes the jobs finished since
    from jobs/. A finished job replaces its pending row, and an older result of the same grid point under another
    key (a set whose key changed with the code); a job older than results.csv is not read again."""
    import os

    from atombench.report.inputs import read_inputs

    root = tmp_path / "running"
    rows = [dict(r, iteration=None, protocol="common", augment="dsa", labels="hard")
            for r in results_rows(whole=False)]
    pending, old = rows[0], rows[1]
    rows[0] = dict(pending, status="pending", accuracy=None)
    write_results(root, rows)
    (root / "jobs").mkdir()
    past = os.path.getmtime(root / "results.csv") - 100
    stale = dict(rows[2], accuracy=1.0, job_key="stale")  # finished before results.csv: already in it
    (root / "jobs" / "stale.json").write_text(json.dumps(stale))
    os.utime(root / "jobs" / "stale.json", (past, past))
    (root / "jobs" / "a.json").write_text(json.dumps(dict(pending, accuracy=55.5, finished_at=10.0, sha256="x")))
    # the same grid point as `old`, under a new key, twice: the later one stands
    for key, acc, t in (("new1", 60.0, 20.0), ("new2", 61.0, 30.0)):
        (root / "jobs" / f"{key}.json").write_text(json.dumps(dict(old, job_key=key, accuracy=acc, finished_at=t)))
    inputs = read_inputs([root])
    df = inputs.results.set_index("job_key")
    assert df.loc[pending["job_key"], "accuracy"] == 55.5 and df.loc[pending["job_key"], "status"] == "ok"
    assert old["job_key"] not in df.index and "new1" not in df.index and df.loc["new2", "accuracy"] == 61.0
    assert "stale" not in df.index and len(df) == len(rows)
    assert any("finished after results.csv was written" in n for n in inputs.notes)


def test_a_job_two_protocols_share_fills_both_rows_when_finished_after_results_csv(tmp_path):
    """A method whose own protocol is the common one is trained once: results.csv names the job under both
    protocols. Finished after results.csv, its record (stored under one protocol) fills both pending rows, each
    under its own protocol, as the run's next results.csv will."""
    import os

    from atombench.report.inputs import read_inputs

    root = tmp_path / "shared"
    base = dict(results_rows(whole=False)[0], iteration=None, augment="dsa", labels="hard", status="pending",
                accuracy=None, job_key="both", error="not run: its synthetic set is not distilled yet", epochs=300)
    rows = [dict(base, protocol="common", protocol_declared=None),
            dict(base, protocol="paper", protocol_declared=True)]
    write_results(root, rows)
    (root / "jobs").mkdir()
    record = {k: v for k, v in rows[1].items() if k != "error"}  # every row filled: results.csv's error column
    (root / "jobs" / "both.json").write_text(json.dumps(dict(record, status="ok", accuracy=42.0, finished_at=1.0)))
    df = read_inputs([root]).results
    assert sorted(df["protocol"]) == ["common", "paper"] and list(df["accuracy"]) == [42.0, 42.0]
    assert set(df["status"]) == {"ok"} and list(df.columns[:len(rows[0])]) == list(pd.DataFrame(rows).columns)

    # the set's key changed with the code: a newer job of the paper row's grid point replaces the shared job's
    # result under both protocols, not under its own only
    rows = [dict(r, status="ok", accuracy=20.0, job_key="old") for r in rows]
    write_results(root, rows)
    (root / "jobs" / "both.json").unlink()
    newer = root / "jobs" / "new.json"
    newer.write_text(json.dumps(dict(rows[1], accuracy=30.0, job_key="new", finished_at=2.0)))
    os.utime(newer, (os.path.getmtime(root / "results.csv") + 5,) * 2)
    df = read_inputs([root]).results.sort_values("protocol")
    assert list(df["protocol"]) == ["common", "paper"] and list(df["accuracy"]) == [30.0, 30.0]
    assert set(df["job_key"]) == {"new"} and df["protocol_declared"].isna().iloc[0]

    # a newer job of the paper point trained otherwise (the method now declares its own protocol): it is not the
    # common row's result, which stays as it was
    newer.write_text(json.dumps(dict(rows[1], accuracy=35.0, job_key="new", finished_at=2.5, epochs=999)))
    os.utime(newer, (os.path.getmtime(root / "results.csv") + 5,) * 2)
    df = read_inputs([root]).results.set_index("protocol")
    assert (df.loc["paper", "accuracy"], df.loc["paper", "job_key"]) == (35.0, "new")
    assert (df.loc["common", "accuracy"], df.loc["common", "job_key"]) == (20.0, "old")

    # a grid point results.csv does not have (more seeds asked for since): the record lists the row it is also
    # reported as, and both appear
    write_results(root, [dict(rows[0], seed=9, job_key="other")])
    newer.write_text(json.dumps(dict(rows[1], accuracy=31.0, job_key="new", finished_at=3.0,
                                     reported_as=[{"protocol": "common", "protocol_declared": None}])))
    os.utime(newer, (os.path.getmtime(root / "results.csv") + 5,) * 2)
    df = read_inputs([root]).results
    mine = df[df["job_key"] == "new"].sort_values("protocol")
    assert list(mine["protocol"]) == ["common", "paper"] and list(mine["accuracy"]) == [31.0, 31.0]


def test_merged_folders_keep_a_finished_row_over_the_pending_row_of_the_same_job(tmp_path):
    """Two folders each ran part of one suite with --only: each wrote the other's jobs as pending, under the same
    keys. The merged report keeps every finished row, whichever folder comes first."""
    from atombench.report.inputs import read_inputs

    rows = [dict(r, protocol="common") for r in results_rows(base={("digits", "dm", 1): 30.0}, whole=False)]
    half = len(rows) // 2
    a = write_results(tmp_path / "a", [dict(r, status="pending", accuracy=None) if i >= half else r
                                       for i, r in enumerate(rows)])
    b = write_results(tmp_path / "b", [dict(r, status="pending", accuracy=None) if i < half else r
                                       for i, r in enumerate(rows)])
    inputs = read_inputs([a, b])
    df = inputs.results
    assert len(df) == len(rows) and set(df["status"]) == {"ok"}
    assert sorted(df["accuracy"]) == sorted(r["accuracy"] for r in rows)
    assert any("more than one results folder" in n for n in inputs.notes)


def test_synthetic_sets_missing_is_a_note_not_a_failure(tmp_path):
    rows = results_rows(base={("digits", "dm", 1): 30.0}, whole=False)
    root = write_results(tmp_path / "res", rows, SUITE)
    result = build_report(root, ReportOptions())
    assert any("synthetic set(s) are missing" in n for n in result.notes)
    assert (root / "report" / "plots" / "accuracy_vs_ipc.png").is_file()


def test_a_set_not_distilled_yet_is_not_called_missing(tmp_path):
    """A set whose jobs are pending (a run in progress, or outside its --only) was never made: the report does not
    call it missing; a set with a result whose file is gone is."""
    rows = results_rows(base={("digits", "dm", 1): 30.0, ("digits", "atom", 1): 35.0}, whole=False)
    rows = [dict(r, status="pending", accuracy=None) if r["distiller"] != "dm" else r for r in rows]
    root = write_results(tmp_path / "res", rows, SUITE)
    result = build_report(root, ReportOptions())
    # one set per method is shown (its first seed): DM's, whose file is gone; the pending methods' are not counted
    assert any("1 synthetic set(s) are missing" in n and "digits-dm-1-0" in n for n in result.notes), result.notes


@pytest.mark.parametrize("args, message", [
    (["{missing}"], "results folder '{missing}' not found"),
    (["{root}", "--where", "distiler=dm"], "no column 'distiler' in the results (did you mean 'distiller'?)"),
    (["{root}", "--where", "ipc"], "expected COLUMN=VALUE"),
    (["{root}", "--where", "ipc=one"], "'ipc' holds numbers"),
    (["{root}", "--where", "ipc=7"], "--where ipc=7 leaves no row: 'ipc' has the values 1"),  # was an empty report
    (["{root}", "--rows", "dm,atomm"], "no method 'atomm' in the results (did you mean 'atom'?)"),
    (["{root}", "--columns", "cifar1"], "no dataset 'cifar1'"),
    (["{root}", "--columns", "digits:3"], "digits has no results at IPC 3"),
    (["{root}", "--model", "convnett"], "no results for the model 'convnett' (did you mean 'convnet'?)"),
    (["{root}", "--metric", "acuracy"], "no column 'acuracy' in the results (did you mean 'accuracy'?)"),
    (["{root}", "--precision", "9"], "--precision must be between 0 and 6"),
    (["{root}", "--alpha", "2"], "--alpha must be between 0 and 1"),
    (["{root}", "{root}"], "several results folders: say where the merged report goes with --output DIR"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    root = write_results(tmp_path / "res", results_rows(whole=False))
    fill = {"root": str(root), "missing": str(tmp_path / "nope")}
    code = main(["report", *[a.format(**fill) for a in args], "--no-plots"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ")
    assert message.format(**fill) in err[0]


def test_bad_input_in_a_subprocess_has_no_traceback(tmp_path):
    done = run_cli("report", tmp_path / "nowhere")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: results folder '{tmp_path / 'nowhere'}' not found; pass the folder a run wrote "
        f"(e.g. results/quickstart)"]


# -- options, filters, merging -------------------------------------------------------------------------------
def test_filters_rows_columns_precision_and_merge(tmp_path, capsys):
    a = write_results(tmp_path / "a", results_rows(seeds=(0, 1), whole=False))
    b = write_results(tmp_path / "b", [r for r in results_rows(seeds=(2,), whole=False)])
    out = tmp_path / "merged"
    assert main(["report", str(a), str(b), "--output", str(out), "--no-plots", "--where", "dataset=digits",
                 "--where", "distiller!=random", "--rows", "atom,dm", "--columns", "digits:1",
                 "--precision", "2", "--published", "none"]) == 0
    md = (out / "tables" / "main.md").read_text()
    assert "| Method | digits IPC 1 |" in md
    body = [ln for ln in md.splitlines() if ln.startswith("| ") and "Method" not in ln]
    assert [ln.split(" | ")[0] for ln in body] == ["| ATOM", "| DM"]
    assert "35.00 ± 0.41" in md and "over 3 seeds" in md  # seeds 0, 1 from a and 2 from b pooled
    # the same folder twice: each job counted once
    result = build_report([a, a], fast(output=tmp_path / "twice"))
    assert any("counted once" in n for n in result.notes)
    # a filter on a column of the results_dir
    build_report([a, b], fast(output=tmp_path / "onlyb", where=[f"results_dir={b}"]))
    assert "over 1 trained ConvNet" not in (tmp_path / "onlyb" / "tables" / "main.md").read_text()
    assert "over 2 trained ConvNet models" in (tmp_path / "onlyb" / "tables" / "main.md").read_text()


def test_metric_and_unit_options(tmp_path):
    rows = results_rows(whole=False)
    for r in rows:
        r["top5_accuracy"] = r["accuracy"] + 10
    root = write_results(tmp_path / "res", rows)
    build_report(root, fast(metric="top5_accuracy", unit="models"))
    md = (root / "report" / "tables" / "main.md").read_text()
    assert md.startswith("### Top-5 test accuracy (%) of ConvNet")
    assert "over 4–6 trained ConvNet models per cell (a cell with fewer says its n)" in md
    assert "one sample per seed, the mean of its models" in md and "(n=4)" in md and "| 35.0 ± 0.4" not in md


def test_stale_files_of_an_earlier_report_are_removed(tmp_path):
    root = write_results(tmp_path / "res", results_rows(models=("convnet", "alexnet"), whole=False))
    build_report(root, fast())
    assert (root / "report" / "tables" / "cross_arch_digits_ipc1.md").exists()
    (root / "report" / "mine.txt").write_text("a file of the user's")
    build_report(root, fast(where=["model=convnet"]))
    assert not (root / "report" / "tables" / "cross_arch_digits_ipc1.md").exists()
    assert (root / "report" / "mine.txt").exists()
    assert not list((root / "report").rglob("*.tmp"))


# -- the run calls the report --------------------------------------------------------------------------------
def test_run_reports_and_a_failing_report_keeps_the_results_and_exit_code(tmp_path, monkeypatch, capsys):
    import atombench.report as report_pkg
    import atombench.runner as runner
    from atombench.runner import RunReport

    root = write_results(tmp_path / "res", results_rows(whole=False))
    (root / "summary.md").write_text("summary\n")
    table = pd.read_csv(root / "results.csv")
    table.loc[0, "status"] = "failed"
    monkeypatch.setattr(runner, "run_suite", lambda *a, **k: RunReport(None, root, table, 0, 0))
    calls = []
    monkeypatch.setattr(report_pkg, "build_report", lambda r: calls.append(r) or (_ for _ in ()).throw(
        RuntimeError("disk on fire")))
    assert main(["run", "suite.yaml", "--quiet"]) == 3  # the run's code: one job failed
    err = capsys.readouterr().err
    assert "warning: the report could not be written (RuntimeError: disk on fire)" in err
    assert f"atombench report {root}" in err and calls == [root]
    assert main(["run", "suite.yaml", "--quiet", "--no-report"]) == 3 and len(calls) == 1
    monkeypatch.undo()
    monkeypatch.setattr(runner, "run_suite", lambda *a, **k: RunReport(None, root, table.iloc[1:], 0, 0))
    monkeypatch.setattr(report_pkg, "build_report", lambda r: build_report(r, fast()))
    assert main(["run", "suite.yaml", "--quiet"]) == 0
    assert f"report: {root / 'report' / 'index.html'}" in capsys.readouterr().out


# -- plots and the page in a browser -------------------------------------------------------------------------
SUITE = {"name": "handmade", "datasets": [{"name": "digits", "options": {}, "zca": False, "zca_eps": 0.1,
                                           "label": None}]}


def add_synsets(root: Path, rows, zca=False):
    """Synthetic sets for the rows' keys: real digits (so de-normalised images look like digits) + a loss curve."""
    import torch

    from atombench.distillers.base import SyntheticSet
    from atombench.runner import load_dataset

    data = load_dataset("digits", {}, zca=zca)
    for r in {r["synset_key"]: r for r in rows if r["synset_key"]}.values():
        ipc = int(r["ipc"])
        idx = torch.cat([data.class_indices[c][:ipc] for c in range(10)])
        curve = [[i, 10.0 * np.exp(-i / 20) + 1] for i in range(0, 60, 3)] if r["method"] != "random" else []
        SyntheticSet(data.train_x[idx], data.train_y[idx],
                     {"loss_curve": curve, "device": "cpu", "peak_mem_kind": "cpu_rss",
                      "config": {"iterations": 60} if curve else {}}).save(root / "synsets" / f"{r['synset_key']}.safetensors")


def test_plots_are_written_and_look_like_images(tmp_path):
    from matplotlib.image import imread

    base = {("digits", "random", 1): 20.0, ("digits", "random", 2): 30.0, ("digits", "atom", 1): 35.0,
            ("digits", "atom", 2): 45.0}
    rows = results_rows(base=base, models=("convnet", "mlp"), seeds=(0, 1), whole=False)
    suite = dict(SUITE, datasets=[dict(SUITE["datasets"][0], zca=True)])
    root = write_results(tmp_path / "res", rows, suite)
    add_synsets(root, rows, zca=True)
    (root / "nas.csv").write_text(nas_rows(8).to_csv(index=False))
    result = build_report(root, ReportOptions())
    names = sorted(p.name for p in result.plots)
    assert names == sorted(["accuracy_vs_ipc", "cross_arch_digits_ipc1", "cross_arch_digits_ipc2", "nas_cifar10_ipc50",
                            "loss_curves", "synthetic_digits_ipc1", "synthetic_digits_ipc2",
                            "synthetic_digits_random_ipc1", "synthetic_digits_random_ipc2",
                            "synthetic_digits_atom_ipc1", "synthetic_digits_atom_ipc2"])
    for p in result.plots:
        img = imread(p.png)
        assert img.shape[0] > 100 and img.shape[1] > 100 and img.std() > 0.01
        assert p.pdf.read_bytes().startswith(b"%PDF")
    # de-whitened and de-normalised: the digits' black background comes back (pixels near 0)
    grid = imread(root / "report" / "plots" / "synthetic_digits_random_ipc2.png")
    assert "de-whitened (ZCA) and de-normalised" in next(p.caption for p in result.plots
                                                           if p.name == "synthetic_digits_random_ipc2")
    assert (grid[..., :3].mean(-1) < 0.1).mean() > 0.2


def _browser():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.skipif(_browser() is None, reason="no chromium/chrome binary for the headless browser test")
def test_page_opens_in_a_headless_browser_and_every_image_loads(tmp_path):
    base = {("digits", "random", 1): 20.0, ("digits", "atom", 1): 35.0}
    rows = results_rows(base=base, seeds=(0, 1), whole=False)
    root = write_results(tmp_path / "res", rows, SUITE)
    add_synsets(root, rows)
    result = build_report(root, ReportOptions())
    page = result.index.read_text()
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert len(srcs) == len(result.plots) >= 4
    # a copy of the page, beside it so relative paths resolve, that writes each image's size into the DOM
    probe = result.folder / "probe.html"
    probe.write_text(page.replace("</body>", """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images];
  document.body.setAttribute('data-images', JSON.stringify(imgs.map(i => [i.getAttribute('src'), i.naturalWidth])));
});
</script></body>"""))
    done = subprocess.run([_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
                           "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
                          capture_output=True, text=True, timeout=120)
    found = re.search(r'data-images="([^"]*)"', done.stdout)
    assert found, done.stderr[-2000:]
    images = json.loads(found.group(1).replace("&quot;", '"'))
    assert len(images) == len(srcs)
    assert all(width > 0 for _, width in images), images
    assert "Main table" in done.stdout and "<table" in done.stdout


# -- only what changed is redrawn; what the page says is missing ---------------------------------------------
def test_a_second_report_of_unchanged_inputs_draws_nothing_and_a_change_redraws(tmp_path, monkeypatch, capsys):
    import atombench.report.plots as plots_mod

    drawn = []
    real_save = plots_mod.save
    monkeypatch.setattr(plots_mod, "save", lambda fig, folder, name, pdf=True: drawn.append(name)
                        or real_save(fig, folder, name, pdf))
    base = {("digits", "random", 1): 20.0, ("digits", "atom", 1): 35.0}
    rows = results_rows(base=base, seeds=(0, 1), whole=False)
    root = write_results(tmp_path / "res", rows, SUITE)
    add_synsets(root, rows)
    opts = dict(images=False)  # the image grids are plots like the others; without them the test is quicker
    first = build_report(root, ReportOptions(**opts))
    assert drawn and not first.up_to_date
    report = root / "report"
    stamps = {p: p.stat().st_mtime_ns for p in [report / "manifest.json", *first.files]}

    drawn.clear()
    again = build_report(root, ReportOptions(**opts))
    assert again.up_to_date and drawn == []
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # not one file rewritten
    assert any("up to date" in n and "nothing was redrawn" in n for n in again.notes)
    assert [p.name for p in again.plots] == [p.name for p in first.plots] and len(again.tables) == len(first.tables)
    assert sorted(again.files) == sorted(first.files)

    # the CLI says so too
    assert main(["report", str(root), "--no-images"]) == 0 and drawn == []
    assert "up to date" in capsys.readouterr().out

    # other options, a changed results.csv, a changed synthetic set's metadata, or force: drawn again
    build_report(root, ReportOptions(**opts, precision=2))
    assert drawn
    drawn.clear()
    table = pd.read_csv(root / "results.csv")
    table.loc[0, "accuracy"] += 1.0
    table.to_csv(root / "results.csv", index=False)
    changed = build_report(root, ReportOptions(**opts))
    assert not changed.up_to_date and "accuracy_vs_ipc" in drawn
    assert (report / "manifest.json").stat().st_mtime_ns != stamps[report / "manifest.json"]
    drawn.clear()
    assert build_report(root, ReportOptions(**opts)).up_to_date and not drawn
    meta = next((root / "synsets").glob("*.json"))
    meta.write_text(meta.read_text().replace('"device": "cpu"', '"device": "cpu", "note": "x"'))
    assert not build_report(root, ReportOptions(**opts)).up_to_date and drawn
    drawn.clear()
    assert not build_report(root, ReportOptions(**opts, force=True)).up_to_date and drawn
    # a file of the report deleted by hand: drawn again
    drawn.clear()
    (report / "plots" / "accuracy_vs_ipc.png").unlink()
    assert not build_report(root, ReportOptions(**opts)).up_to_date and drawn
    assert (report / "plots" / "accuracy_vs_ipc.png").is_file()
    # a job finished after results.csv (a run in progress): its row is in the tables, so they are drawn again
    drawn.clear()
    assert build_report(root, ReportOptions(**opts)).up_to_date and not drawn
    (root / "jobs").mkdir(exist_ok=True)
    job = root / "jobs" / "later.json"
    job.write_text(json.dumps(dict(rows[0], accuracy=99.0, job_key="later", finished_at=1.0)))
    os.utime(job, (os.path.getmtime(root / "results.csv") + 5,) * 2)
    assert not build_report(root, ReportOptions(**opts)).up_to_date and drawn


def test_missing_nas_is_listed_only_when_the_suite_asked_for_nas(tmp_path):
    rows = results_rows(whole=False)
    plain = write_results(tmp_path / "plain", rows, dict(SUITE, nas=None))
    assert not any("NAS" in n for n in build_report(plain, fast()).notes)
    assert "NAS" not in (plain / "report" / "index.html").read_text().split("What is missing")[-1][:2000]
    asked = write_results(tmp_path / "asked", rows, dict(SUITE, nas={"space": "small", "proxies": ["atom"]}))
    notes = build_report(asked, fast()).notes
    assert any("the suite has a nas: section but there are no NAS results" in n for n in notes)
    # without suite.json, the suite file as written is read
    yaml_only = write_results(tmp_path / "yaml_only", rows)
    (yaml_only / "suite.yaml").write_text("name: x\nnas: {space: small}\n")
    assert any("no NAS results" in n for n in build_report(yaml_only, fast()).notes)


def test_cost_table_shows_the_shared_training_once_per_row_and_unmeasured_memory_as_a_dash(tmp_path):
    import torch

    from atombench.distillers.base import SyntheticSet

    base = {("digits", "herding", 1): 25.0, ("digits", "herding", 10): 52.0, ("digits", "random", 1): 20.0}
    rows = results_rows(base=base, seeds=(0,), whole=False)
    for r in rows:
        if r["distiller"] == "herding":
            # IPC 1 came first and trained the network (30 s of its 30.5 s); IPC 10 reused it
            r["distill_time_s"] = 30.5 if r["ipc"] == 1 else 0.7
        else:
            r["distill_peak_mem_mb"] = 0.0  # the resident memory did not grow
    root = write_results(tmp_path / "res", rows, SUITE)
    for r in {r["synset_key"]: r for r in rows}.values():
        meta = {"device": "cpu", "peak_mem_kind": "cpu_rss", "config": {}}
        if r["distiller"] == "herding":
            meta.update(trained_net_key="net0", trained_net_reused=r["ipc"] != 1,
                        trained_net_seconds=30.0 if r["ipc"] == 1 else 0.0)
        n = 10 * int(r["ipc"])
        SyntheticSet(torch.zeros(n, 1, 4, 4), torch.zeros(n, dtype=torch.long), meta).save(
            root / "synsets" / f"{r['synset_key']}.safetensors")
    build_report(root, fast())
    md = (root / "report" / "tables" / "cost.md").read_text()
    assert "| Dataset | Method | IPC | Wall time (s) | One-off training (s) | Peak memory (MB) |" in md
    lines = {tuple(c.strip() for c in ln.split("|")[2:4]): [c.strip() for c in ln.split("|")[4:-1]]
             for ln in md.splitlines() if ln.startswith("| digits")}
    assert lines[("Herding", "1")][:3] == ["0.50", "30.00", "10.0"]    # the training is not IPC 1's cost
    assert lines[("Herding", "10")][:3] == ["0.70", "30.00", "100.0"]  # ... and is shown where it is used
    assert lines[("Random", "1")][:3] == ["0.50", "–", "–"]            # no shared network; memory not measured
    assert "paid once, not per row" in md and "Peak memory '–': not measured" in md
    cost = pd.read_csv(root / "report" / "tables" / "cost.csv")
    assert cost["shared_training_s_mean"].max() == 30.0 and cost["peak_mem_mb_mean"].isna().sum() == 1


def test_plot_titles_error_bars_loss_facets_and_image_grid_titles(tmp_path, monkeypatch):
    from atombench.report.plots import Plotter

    figures = {}
    real = Plotter._save
    monkeypatch.setattr(Plotter, "_save", lambda self, fig, name, title, caption: figures.setdefault(name, fig)
                        and real(self, fig, name, title, caption))
    base = {("digits", "random", 1): 20.0, ("digits", "random", 2): 30.0, ("digits", "atom", 1): 35.0,
            ("digits", "atom", 2): 45.0, ("digits", "dm", 1): 30.0, ("digits", "dm", 2): 40.0}
    rows = results_rows(base=base, seeds=(0, 1), whole=False)
    root = write_results(tmp_path / "res", rows, SUITE)
    add_synsets(root, rows)
    for path in (root / "synsets").glob("digits-dm-*.json"):  # DM's loss on another scale than ATOM's
        meta = json.loads(path.read_text())
        meta["loss_curve"] = [[i, 1e4 * v] for i, v in meta["loss_curve"]]
        path.write_text(json.dumps(meta))
    result = build_report(root, ReportOptions())
    by_name = {p.name: p for p in result.plots}
    # the evaluation model is in the accuracy plot's title
    assert by_name["accuracy_vs_ipc"].title == "Test accuracy of ConvNet vs images per class"
    assert figures["accuracy_vs_ipc"]._suptitle.get_text() == by_name["accuracy_vs_ipc"].title
    # visible error bars: caps and thick lines
    bars = [c for c in figures["accuracy_vs_ipc"].axes[0].containers if hasattr(c, "has_yerr")]
    assert bars and all(c.has_yerr for c in bars)
    caps = [line for c in bars for line in c.lines[1]]
    assert caps and all(line.get_markersize() >= 5 for line in caps)
    assert all(col.get_linewidth()[0] >= 1.8 for c in bars for col in c.lines[2])
    # loss curves: one row per method (random has none), each with its own y axis
    loss = figures["loss_curves"]
    axes = [ax for ax in loss.axes if ax.get_visible()]
    assert len(axes) == 2 * 2  # (dm, atom) x (IPC 1, IPC 2)
    assert [ax.get_ylabel().split("\n")[0] for ax in axes[::2]] == ["DM", "ATOM"]
    assert axes[0].get_ylim()[1] > 100 * axes[2].get_ylim()[1]  # DM's scale is not squashed onto ATOM's
    # the IPC-2 comparison grid says it shows one image of each class
    assert by_name["synthetic_digits_ipc2"].title.endswith(": the first of 2 images per class")
    assert by_name["synthetic_digits_ipc1"].title == "Synthetic images on digits, IPC 1"


def test_tex_escape_leaves_only_ascii_for_every_symbol_the_package_writes():
    """pdflatex stops at a non-ASCII character it has no definition for (the claims table's '−' did): every
    non-ASCII character in the package's own source comes out of tex_escape as ASCII."""
    from pathlib import Path
    from atombench.report.render import tex_escape
    source = "".join(p.read_text() for p in Path(atombench.__file__).parent.rglob("*.py"))
    symbols = sorted({ch for ch in source if not ch.isascii()})
    assert symbols, "the package writes no non-ASCII symbol: this test would check nothing"
    for ch in symbols + ["é", "漢"]:
        assert tex_escape(f"A {ch} B").isascii(), ch
    assert tex_escape("A − B") == "A $-$ B"


def test_panel_titles_wrap_at_their_parts_to_fit_the_panel():
    """A dataset entry's long name in a row of panels is wrapped at its ", " parts (not inside "[0, 1]"), so that
    neighbouring titles do not run into each other; a short one is left on one line."""
    from matplotlib.figure import Figure

    from atombench.report.plots import _title

    axes = Figure(figsize=(9, 3)).subplots(1, 3)
    _title(axes[0], "CIFAR-10 (JPEG q75), ZCA on [0, 1], IPC 1")
    _title(axes[1], "digits, IPC 1")
    lines = axes[0].get_title().split("\n")
    assert len(lines) > 1 and any("ZCA on [0, 1]" in ln for ln in lines), lines
    assert axes[1].get_title() == "digits, IPC 1"
    assert " ".join(lines).split() == "CIFAR-10 (JPEG q75), ZCA on [0, 1], IPC 1".split()  # nothing lost


def test_models_that_ended_at_a_uniform_guess_are_said_not_to_have_learned():
    """ConvNeXt-atto under SGD 0.01 with DSA ended some CIFAR trainings at loss ln 10 and 10.0 % (2 of 9 in the
    cross-architecture pilot): cells that measure the recipe, not the sets, shown as numbers like any other."""
    from atombench.report.build import untrained_notes
    from atombench.report.inputs import Inputs

    def r(model, loss, acc, labels="hard"):
        return dict(model=model, dataset="c10", ipc=10, protocol="common", num_images=100, labels=labels,
                    final_train_loss=loss, accuracy=acc, status="ok")

    rows = [r("convnext", 2.302585, 10.0), r("convnext", 2.3026, 10.02), r("convnext", 0.01, 31.0),
            r("convnet", 0.008, 45.4), r("convnet", 2.30, 40.0),  # at ln 10 but learned: not stuck
            r("vit", 2.3026, 10.0, labels="soft")]  # a soft-label loss is not a cross-entropy to ln C
    notes = untrained_notes(Inputs([Path(".")], pd.DataFrame(rows)))
    assert len(notes) == 1 and notes[0].startswith("did not learn: convnext on c10 IPC 10 (common protocol): 2 of 3")
    assert "ln 10 = 2.303" in notes[0] and "10.0 %" in notes[0]
    assert untrained_notes(Inputs([Path(".")], pd.DataFrame([r("convnet", 0.008, 45.4)]))) == []
    assert untrained_notes(Inputs([Path(".")], pd.DataFrame([{"model": "convnet", "accuracy": 10.0}]))) == []
