"""The claims table (atombench/report/claims.py): measured differences beside published ones, with a verdict."""

import numpy as np
import pandas as pd
import pytest

from atombench.report.claims import claims_frame, claims_tables, parse_pairs
from atombench.report.published import load_published
from atombench.errors import UsageError

SUITES = {"r": {"datasets": [{"name": "cifar10", "label": None, "zca": False},
                             {"name": "cifar10", "label": "c10_zca", "zca": "paper"},
                             {"name": "cifar10", "label": "c10_zca_unit", "zca": "unit_interval"}]}}


def _rows(method, dataset, ipc, accs, protocol="common", iteration=2000):
    return [{"dataset": dataset, "distiller": method, "method": method, "ipc": ipc, "seed": s, "model": "convnet",
             "protocol": protocol, "iteration": iteration, "accuracy": a, "status": "ok"} for s, a in enumerate(accs)]


def _frame(*parts):
    return pd.DataFrame([r for p in parts for r in p])


def test_a_published_ordering_that_holds_reproduces_and_one_that_flips_is_reversed():
    pub = load_published("all")  # DataDAM above DM on CIFAR-10 at IPC 1 (32.0 vs 26.0)
    df = _frame(_rows("dm", "cifar10", 1, [25.0, 25.5, 26.0]), _rows("datadam", "cifar10", 1, [30.0, 30.4, 31.0]),
                _rows("dm", "cifar10", 10, [50.0, 50.5, 51.0]), _rows("datadam", "cifar10", 10, [45.0, 45.2, 45.1]))
    f = claims_frame(df, pub, SUITES, [("datadam", "dm")]).set_index("ipc")
    # the published sign, but +6.0 lies beyond +5.0 ± 1.96 x 0.41: smaller than published
    assert f.loc[1, "verdict"] == "reproduces, smaller" and f.loc[1, "published_diff"] == pytest.approx(6.0)
    assert f.loc[1, "diff"] == pytest.approx(np.mean([30.0, 30.4, 31.0]) - 25.5)
    assert f.loc[10, "verdict"] == "reversed" and f.loc[10, "diff"] < 0
    # the budgets the published difference comes from: the papers' iterations (the distillers' defaults)
    assert (f.loc[1, "paper_iterations_a"], f.loc[1, "paper_iterations_b"]) == (8000, 20000)
    table, = claims_tables(df, pub, SUITES, [("datadam", "dm")])
    assert "iterations (papers')" in table.header() and table.rows[0].labels[-1] == "2000 (8000/20000)"


def test_noise_few_samples_and_missing_published_rows_are_said():
    pub = load_published("all")
    df = _frame(_rows("dm", "cifar10", 1, [20.0, 30.0, 25.0]), _rows("datadam", "cifar10", 1, [21.0, 31.0, 26.5]),
                _rows("dm", "cifar10", 10, [50.0, 51.0]), _rows("datadam", "cifar10", 10, [55.0, 56.0]),
                _rows("dm", "cifar10", 7, [50.0, 51.0, 52.0]), _rows("datadam", "cifar10", 7, [55.0, 56.0, 57.0]))
    f = claims_frame(df, pub, SUITES, [("datadam", "dm")]).set_index("ipc")
    assert f.loc[1, "verdict"] == "within noise"
    assert f.loc[10, "verdict"] == "too few samples"
    assert f.loc[7, "verdict"] == "no published difference"


def test_rows_per_protocol_zca_and_budget_and_default_pairs():
    pub = load_published("all")
    df = _frame(_rows("dm", "cifar10", 1, [25, 26, 27]), _rows("atom", "cifar10", 1, [28, 29, 30]),
                _rows("dm", "cifar10", 1, [20, 21, 22], iteration=500), _rows("atom", "cifar10", 1, [20, 21, 22], iteration=500),
                _rows("atom", "cifar10", 1, [31, 32, 33], protocol="paper"), _rows("dm", "cifar10", 1, [25, 26, 27], protocol="paper"),
                _rows("dm", "c10_zca_unit", 1, [25, 26, 27]), _rows("atom", "c10_zca", 1, [35, 36, 37]),
                _rows("random", "cifar10", 1, [14, 15, 16]))
    f = claims_frame(df, pub, SUITES)
    assert set(f["pair"]) == {"atom − dm"}  # published ATOM > DM; coresets are not in the default pairs
    f = f[f["zca"].isin(["none", "ZCA [0, 1]"])]  # (the as-published rows have their own test)
    keyed = f.set_index(["zca", "protocol", "iteration"])["verdict"]
    assert keyed[("none", "common", 500)] == "within noise, excludes published"  # 0.0 ± 0.8 against +8.8
    assert keyed[("none", "common", 2000)] == "reproduces, smaller"  # +3.0 ± 0.8 against +8.8
    # ATOM's paper whitens [0, 1] images: on the zca: paper entry it is in the space of DM's [0, 1] entry
    assert keyed[("ZCA [0, 1]", "common", 2000)] == "reproduces"  # +10.0 ± 0.8: +8.8 inside 1.96 SE
    assert keyed[("none", "paper", 2000)] == "reproduces, smaller"
    table = claims_tables(df, pub, SUITES)[0]
    assert table.name == "claims" and len(table.rows) == len(claims_frame(df, pub, SUITES))
    assert "verdicts:" in table.notes[0]


def test_pairs_option():
    assert parse_pairs(["datadam-dm", "atom-dm"]) == [("datadam", "dm"), ("atom", "dm")]
    with pytest.raises(UsageError, match="A-B"):
        parse_pairs(["atom"])
    with pytest.raises(UsageError, match="a method against itself"):
        parse_pairs(["random-random"])


def test_an_unknown_pair_label_is_one_usage_error():
    df = _frame(_rows("dm", "cifar10", 1, [25.0, 25.5, 26.0]), _rows("datadam", "cifar10", 1, [30.0, 30.4, 31.0]))
    with pytest.raises(UsageError, match="no distiller 'atom'.*distillers: dm, datadam"):
        claims_tables(df, load_published("all"), SUITES, [("atom", "dm")])


def test_zca_paper_whitens_only_where_the_methods_paper_did():
    """DM's paper did not whiten CIFAR-10: DM's sets on a ``zca: paper`` entry are unwhitened and count as "none",
    beside DM on the plain entry; DataDAM's on the same entry count as "ZCA"."""
    pub = load_published("all")
    df = _frame(_rows("dm", "c10_zca", 1, [25.0, 26.0, 27.0]), _rows("datadam", "c10_zca", 1, [31.0, 32.0, 33.0]),
                _rows("datadam", "cifar10", 1, [27.0, 28.0, 29.0]))
    f = claims_frame(df, pub, SUITES, [("datadam", "dm")])
    assert list(f["zca"]) == ["none", "ZCA normalised / none"]
    assert f["diff"].iloc[0] == pytest.approx(28.0 - 26.0)  # both unwhitened
    assert f["diff"].iloc[1] == pytest.approx(32.0 - 26.0)  # each on its paper's: DataDAM whitened, DM not


def test_the_as_published_row_puts_each_method_on_its_papers_preprocessing_and_protocol():
    """DataDAM's published margin over DM compares DataDAM on ZCA (its protocol) with DM without (its protocol):
    the row "ZCA / none", protocol paper, measures that comparison; ATOM and DataDAM both whiten, so no extra row."""
    pub = load_published("all")
    df = _frame(_rows("dm", "cifar10", 1, [25.0, 26.0, 27.0], protocol="paper"),
                _rows("dm", "c10_zca_unit", 1, [26.0, 27.0, 28.0], protocol="paper"),
                _rows("datadam", "cifar10", 1, [26.0, 27.0, 28.0], protocol="paper"),
                _rows("datadam", "c10_zca", 1, [31.0, 32.0, 33.0], protocol="paper"),
                _rows("atom", "c10_zca", 1, [31.5, 32.5, 33.5], protocol="paper"),
                _rows("datadam", "c10_zca", 1, [30.0, 31.0, 32.0], protocol="common"))
    f = claims_frame(df, pub, SUITES, [("datadam", "dm"), ("atom", "datadam")])
    rows = f.set_index(["pair", "zca", "protocol"])
    published = rows.loc[("datadam − dm", "ZCA normalised / none", "paper")]
    assert published["diff"] == pytest.approx(32.0 - 26.0) and published["verdict"] == "reproduces"
    assert rows.loc[("datadam − dm", "none", "paper"), "diff"] == pytest.approx(1.0)
    # DataDAM whitens normalised images, DM here [0, 1] ones: two whitenings, compared only as published
    assert ("datadam − dm", "ZCA normalised", "paper") not in rows.index
    # ATOM ([0, 1]) and DataDAM (normalised) both whiten, but not alike: an as-published row, no "same ZCA" one
    atom = f[f["pair"] == "atom − datadam"]
    assert set(atom["zca"]) == {"ZCA [0, 1] / ZCA normalised"}
    table, = claims_tables(df, pub, SUITES, [("datadam", "dm")])
    assert any(r.labels[2] == "ZCA normalised / none" for r in table.rows) and "A's / B's" in table.caption


def test_each_on_its_papers_preprocessing_is_a_row_under_the_common_protocol_too():
    """The papers' cross-space comparison (DataDAM on its ZCA, DM without) was built under the own protocols only:
    under the common one the same sets, with the evaluation recipes taken out, had no row (computed by hand)."""
    pub = load_published("all")
    df = _frame(_rows("dm", "cifar10", 10, [47.5, 46.0, 47.3], protocol="common"),
                _rows("datadam", "c10_zca", 10, [46.2, 47.2, 46.5], protocol="common"),
                _rows("datadam", "c10_zca", 10, [50.0, 51.0, 52.0], protocol="paper"))
    f = claims_frame(df, pub, SUITES, [("datadam", "dm")]).set_index(["zca", "protocol"])
    row = f.loc[("ZCA normalised / none", "common")]
    assert row["diff"] == pytest.approx(46.633 - 46.933, abs=1e-3) and row["n_a"] == 3 and row["n_b"] == 3
    assert row["published_diff"] == pytest.approx(5.3) and row["verdict"] == "within noise, excludes published"
    assert ("ZCA normalised / none", "paper") not in f.index  # DM has no own-protocol sets here
    table, = claims_tables(df, pub, SUITES, [("datadam", "dm")])
    assert [r.labels[2:4] for r in table.rows] == [["ZCA normalised / none", "common"]]


def test_the_preprocessing_table_says_what_zca_adds_to_each_method():
    from atombench.report.claims import preprocessing_frame, preprocessing_tables

    df = _frame(_rows("datadam", "cifar10", 1, [26.0, 27.0, 28.0]), _rows("datadam", "c10_zca", 1, [31.0, 32.0, 33.0]),
                _rows("dm", "cifar10", 1, [25.0, 26.0, 27.0]), _rows("dm", "c10_zca_unit", 1, [25.5, 26.5, 24.5]),
                _rows("atom", "cifar10", 1, [26.0, 27.0]), _rows("atom", "c10_zca", 1, [30.0, 31.0]),
                _rows("datadam", "cifar10", 1, [20.0, 21.0, 22.0], iteration=500))  # no ZCA row at 500: no line
    f = preprocessing_frame(df, SUITES).set_index("method")
    assert f.loc["datadam", "diff"] == pytest.approx(5.0) and f.loc["datadam", "verdict"] == "ZCA helps"
    assert f.loc["datadam", "paper"] == "ZCA normalised" and f.loc["dm", "paper"] == "none"
    assert f.loc["datadam", "space"] == "ZCA normalised" and f.loc["dm", "space"] == "ZCA [0, 1]"
    assert f.loc["dm", "verdict"] == "within noise" and f.loc["atom", "verdict"] == "too few samples"
    assert len(f) == 3
    table, = preprocessing_tables(df.assign(accuracy=100 - df["accuracy"]).rename(columns={"accuracy": "error"}),
                                  SUITES, metric="error")
    assert table.frame.set_index("method").loc["datadam", "verdict"] == "ZCA helps"  # lower error is better
    assert preprocessing_tables(_frame(_rows("dm", "cifar10", 1, [25.0, 26.0, 27.0])), SUITES) == []


def test_the_report_writes_the_claims_and_preprocessing_tables_and_they_compile(tmp_path):
    """End to end through ``build_report``: a results folder with DM / DataDAM on plain and whitened CIFAR-10 writes
    ``claims`` with the as-published row, ``preprocessing`` and ``whitening``, and ``tables.tex`` compiles with all."""
    import json
    import shutil
    import subprocess

    from atombench.report import ReportOptions, build_report

    root = tmp_path / "res"
    root.mkdir()
    df = _frame(_rows("dm", "cifar10", 1, [25.0, 26.0, 27.0], protocol="paper"),
                _rows("dm", "c10_zca_unit", 1, [26.0, 27.0, 28.0], protocol="paper"),
                _rows("datadam", "cifar10", 1, [26.0, 27.0, 28.0], protocol="paper"),
                _rows("datadam", "c10_zca", 1, [31.0, 32.0, 33.0], protocol="paper"),
                _rows("datadam", "c10_zca_unit", 1, [33.0, 34.0, 35.0], protocol="paper"))
    df["job_key"] = [f"k{i}" for i in range(len(df))]
    df.to_csv(root / "results.csv", index=False)
    (root / "suite.json").write_text(json.dumps(SUITES["r"]))
    build_report(root, ReportOptions(plots=False, published="all"))
    tables = root / "report" / "tables"
    assert "ZCA normalised / none" in (tables / "claims.md").read_text()
    text = (tables / "preprocessing.md").read_text()
    assert "what ZCA whitening adds" in text and "+5.0" in text
    assert "ZCA [0, 1] − ZCA normalised" in (tables / "whitening.md").read_text()  # DataDAM on both spaces
    main = (tables / "main.md").read_text()  # every column says its dataset and its whitening, never a bare label
    assert "CIFAR-10, its paper's ZCA" in main and "CIFAR-10, ZCA on [0, 1]" in main and "c10_zca" not in main
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex is not installed (.ci/run installs texlive): the tables were written, not compiled")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "tables.tex"], cwd=tables,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:]


def test_an_imported_set_on_a_zca_paper_entry_follows_its_method_option():
    """The ``files`` distiller imports a set of another method: on a ``zca: paper`` entry it is whitened as that
    method's paper did, so an imported DM set counts as unwhitened and an imported DataDAM set as whitened; a
    method not installed here is "unknown", not a guess."""
    from atombench.report.entries import preprocessing_of

    entry = {"name": "cifar10", "zca": "paper"}
    assert preprocessing_of(entry, "files", "cifar10", 1, {"method": "dm", "path": "x.pt"}) == "none"
    assert preprocessing_of(entry, "files", "cifar10", 1, {"method": "datadam", "path": "x.pt"}) == "ZCA normalised"
    assert preprocessing_of(entry, "not_installed_here", "cifar10", 1) == "unknown"
    assert preprocessing_of({"zca": False}, "not_installed_here", "cifar10", 1) == "none"
    suites = {"r": {**SUITES["r"], "distillers": [{"name": "files", "label": "dm_imported",
                                                   "options": {"method": "dm", "path": "x.pt"}}]}}
    df = _frame(_rows("dm_imported", "c10_zca", 1, [25.0, 26.0, 27.0]), _rows("datadam", "c10_zca", 1, [31.0, 32.0, 33.0]))
    df["method"] = df["distiller"].replace({"dm_imported": "files"})
    from atombench.report.claims import _with_preprocessing

    pre, _, _ = _with_preprocessing(df, suites)
    assert dict(zip(pre["distiller"], pre["_pre"])) == {"dm_imported": "none", "datadam": "ZCA normalised"}


def test_labelled_dataset_entries_are_named_by_their_dataset_and_whitening():
    """Tables name a labelled dataset entry by its dataset's display name and what its ``zca:`` does (the
    CIFAR-10 (JPEG q75) copy's tables must say so on the whitened rows too); other options keep the label."""
    from atombench.report import names

    with names.entry_names({
            "cifar10_jpeg": {"name": "cifar10_jpeg"},
            "j_zca": {"name": "cifar10_jpeg", "zca": "paper"},
            "j_unit": {"name": "cifar10_jpeg", "zca": "unit_interval"},
            "j_norm": {"name": "cifar10_jpeg", "zca": {"kind": "normalised", "eps": 0.01}},
            "j_small": {"name": "cifar10_jpeg", "options": {"image_size": 16}},
            "a": {"name": "cifar10", "zca": True}, "b": {"name": "cifar10", "zca": "unit_interval"}}):
        assert names.dataset_name("cifar10_jpeg") == "CIFAR-10 (JPEG q75)"
        assert names.dataset_name("j_zca") == "CIFAR-10 (JPEG q75), its paper's ZCA"
        assert names.dataset_name("j_unit") == "CIFAR-10 (JPEG q75), ZCA on [0, 1]"
        assert names.dataset_name("j_norm") == "CIFAR-10 (JPEG q75), ZCA on normalised images, eps 0.01"
        assert names.dataset_name("j_small") == "CIFAR-10 (JPEG q75) (j_small)"
        # two entries that would read alike keep their labels
        assert names.dataset_name("a") == "CIFAR-10, ZCA on [0, 1] (a)" and names.dataset_name("b").endswith("(b)")
        with names.entry_names({"j_zca": {"name": "cifar10_jpeg", "zca": "normalised"}}):  # a nested build
            assert names.dataset_name("j_zca") == "CIFAR-10 (JPEG q75), ZCA on normalised images"
            assert names.dataset_name("j_unit") == "j_unit"
        assert names.dataset_name("j_zca") == "CIFAR-10 (JPEG q75), its paper's ZCA"  # the outer names are back
    assert names.dataset_name("j_zca") == "j_zca"


def test_a_difference_is_tested_over_sets_not_models_whatever_other_cells_have():
    """Models trained on one set are not independent repeats of a distillation: the claims test one sample per
    seed. A method elsewhere in the results with a single seed (a run in progress) must not turn the test into one
    over models, which made n = 15 of 3 sets and a 'reproduces' out of noise."""
    pub = load_published("all")
    rng = np.random.default_rng(0)
    rows = []
    for method, base in (("dm", 26.0), ("datadam", 27.0)):
        for s in range(3):
            rows += [{"dataset": "cifar10", "distiller": method, "method": method, "ipc": 1, "seed": s,
                      "eval_index": e, "model": "convnet", "protocol": "common", "iteration": 2000,
                      "accuracy": base + s + rng.normal(0, 0.1), "status": "ok"} for e in range(5)]
    df = _frame(rows, _rows("atom", "cifar10", 1, [30.0]))
    f = claims_frame(df, pub, SUITES, [("datadam", "dm")])
    assert (f["n_a"].iloc[0], f["n_b"].iloc[0]) == (3, 3) and f["verdict"].iloc[0] == "within noise, excludes published"
    assert claims_frame(df, pub, SUITES, [("datadam", "dm")], unit="models")["n_a"].iloc[0] == 15  # when asked


def test_final_sets_at_different_budgets_are_compared_and_snapshots_never_pooled_with_them():
    """A pair with a coreset (no iterations), or final sets distilled for different budgets, is compared on the
    final sets only: ATOM's snapshots at 100 and 500 iterations are earlier points, not more samples."""
    pub = load_published("all")
    atom = [dict(r, snapshot=True) for it, acc in ((100, 20.0), (500, 22.0))
            for r in _rows("atom", "cifar10", 1, [acc, acc + 0.3, acc + 0.6], iteration=it)]
    atom += _rows("atom", "cifar10", 1, [30.0, 30.3, 30.6], iteration=2000)
    herding = _rows("herding", "cifar10", 1, [21.5, 21.8, 22.1], iteration=None)
    f = claims_frame(_frame(atom, herding), pub, SUITES, [("atom", "herding")])
    assert len(f) == 1 and f["mean_a"].iloc[0] == pytest.approx(30.3) and f["n_a"].iloc[0] == 3
    table, = claims_tables(_frame(atom, herding), pub, SUITES, [("atom", "herding")])
    assert table.rows[0].labels[-1].startswith("final (")
    # DM's final sets at 1000 iterations, ATOM's at 2000, snapshots both have at 100 and 500: those, and the finals
    dm = [dict(r, snapshot=True) for it in (100, 500) for r in _rows("dm", "cifar10", 1, [19.0, 19.5, 20.0], iteration=it)]
    dm += _rows("dm", "cifar10", 1, [25.0, 25.5, 26.0], iteration=1000)
    f = claims_frame(_frame(atom, dm), pub, SUITES, [("atom", "dm")])
    f = f[f["zca"] == "none"].set_index("iteration", drop=False)
    assert [None if pd.isna(i) else int(i) for i in f["iteration"]] == [100, 500, None]
    final = f[f["iteration"].isna()].iloc[0]
    assert final["mean_a"] == pytest.approx(30.3) and final["mean_b"] == pytest.approx(25.5)


def test_two_whitenings_are_never_pooled_as_one_zca():
    """DataDAM on its paper's ZCA (normalised images) and on the [0, 1] entry beside DM and ATOM: two cells, each
    compared with the methods in its own space, and the papers' cross-space comparison as published. They were one
    "ZCA" cell (six sets: three of each whitening)."""
    from atombench.report.claims import preprocessing_frame

    pub = load_published("all")
    rows = [("datadam", "c10_zca", [29.0, 29.5, 30.0]), ("datadam", "c10_zca_unit", [32.0, 32.5, 33.0]),
            ("atom", "c10_zca", [32.0, 32.6, 33.1]), ("datadam", "cifar10", [26.0, 27.0, 28.0])]
    df = _frame(*[_rows(m, d, 1, a, protocol=p) for m, d, a in rows for p in ("common", "paper")])
    f = claims_frame(df, pub, SUITES, [("atom", "datadam")]).set_index(["zca", "protocol"])
    same = f.loc[("ZCA [0, 1]", "common")]
    assert same["n_a"] == 3 and same["n_b"] == 3 and same["diff"] == pytest.approx(32.567 - 32.5, abs=1e-3)
    assert same["verdict"] == "within noise, excludes published"  # +0.1 ± 0.5 against +2.8
    crossed = f.loc[("ZCA [0, 1] / ZCA normalised", "paper")]
    assert crossed["diff"] == pytest.approx(32.567 - 29.5, abs=1e-3) and crossed["verdict"] == "reproduces"
    pre = preprocessing_frame(df, SUITES).set_index(["method", "space", "protocol"])
    assert pre.loc[("datadam", "ZCA normalised", "common"), "diff"] == pytest.approx(2.5)
    assert pre.loc[("datadam", "ZCA [0, 1]", "common"), "diff"] == pytest.approx(5.5)


def test_a_preprocessing_only_one_method_of_a_pair_ran_on_is_no_row_and_no_error():
    """A snapshot-carrying group with one method only (DataDAM's first [0, 1] sets, before ATOM's are reported
    there) failed the whole report with KeyError '_iter'."""
    pub = load_published("all")
    df = _frame(_rows("datadam", "c10_zca_unit", 1, [32.0, 32.5, 33.0]), _rows("atom", "cifar10", 1, [26.0, 27.0, 28.0]),
                _rows("datadam", "cifar10", 1, [26.0, 27.0, 28.0]))
    df["snapshot"] = [None, "False", False] * 3  # as results.csv mixes them (an object column)
    f = claims_frame(df, pub, SUITES, [("atom", "datadam")])
    assert set(f["zca"]) == {"none"}


def _model(rows, model, name=None):
    return [dict(r, model=model, model_name=name or model) for r in rows]


def test_each_evaluation_model_is_its_own_row_and_published_sits_beside_the_papers_model():
    """All models' results were averaged into one row per seed: DataDAM 31 vs DM 26 on ConvNet and 21 vs 25 on
    ResNet read +0.5 'within noise' beside the published ConvNet +6.0."""
    pub = load_published("all")
    df = _frame(_rows("dm", "cifar10", 1, [25.5, 26.0, 26.5]), _rows("datadam", "cifar10", 1, [31.5, 32.0, 32.5]),
                _model(_rows("dm", "cifar10", 1, [24.5, 25.0, 25.5]), "resnet18_bn"),
                _model(_rows("datadam", "cifar10", 1, [20.5, 21.0, 21.5]), "resnet18_bn"))
    f = claims_frame(df, pub, SUITES, [("datadam", "dm")]).set_index("model")
    assert f.loc["convnet", "diff"] == pytest.approx(6.0) and f.loc["convnet", "verdict"] == "reproduces"
    assert f.loc["convnet", "published_diff"] == pytest.approx(6.0)
    assert f.loc["resnet18_bn", "diff"] == pytest.approx(-4.0)
    assert pd.isna(f.loc["resnet18_bn", "published_diff"])  # the papers measured ConvNet-3
    assert f.loc["resnet18_bn", "verdict"] == "no published difference"
    table, = claims_tables(df, pub, SUITES, [("datadam", "dm")])
    assert table.stub[:3] == ["pair", "dataset", "model"]
    one, = claims_tables(_frame(_rows("dm", "cifar10", 1, [25.5, 26.0, 26.5]),
                                _rows("datadam", "cifar10", 1, [30.5, 31.0, 31.5])), pub, SUITES, [("datadam", "dm")])
    assert "model" not in one.stub  # one model: no column


def test_final_sets_of_one_method_at_two_budgets_are_not_averaged():
    """Two merged folders with DataDAM's final sets at 1000 (20-22) and 2000 (30-32) made one 'final' sample of
    26 per seed; the final row now takes each method's largest budget."""
    from atombench.report.claims import preprocessing_frame

    pub = load_published("all")
    df = _frame(_rows("dm", "cifar10", 1, [25.0, 25.5, 26.0], iteration=3000),
                _rows("datadam", "cifar10", 1, [20.0, 21.0, 22.0], iteration=1000),
                _rows("datadam", "cifar10", 1, [30.0, 31.0, 32.0], iteration=2000))
    f = claims_frame(df, pub, SUITES, [("datadam", "dm")])
    final = f[f["iteration"].isna()].iloc[0]
    assert final["mean_a"] == pytest.approx(31.0) and final["n_a"] == 3
    # ZCA at 2000 against none at 500, no common budget: no "final" row comparing the two budgets
    df = _frame(_rows("atom", "c10_zca", 1, [35.0, 36.0, 37.0], iteration=2000),
                _rows("atom", "cifar10", 1, [25.0, 26.0, 27.0], iteration=500))
    assert preprocessing_frame(df, SUITES).empty


def test_a_published_tie_reproduces_within_noise_and_differs_otherwise():
    from atombench.report.claims import _verdict

    assert _verdict(-1.5, 0.01, 0.0, 0.05) == "differs" and _verdict(1.5, 0.01, 0.0, 0.05) == "differs"
    assert _verdict(0.3, 0.6, 0.0, 0.05) == "reproduces"
    assert _verdict(-1.5, 0.01, 2.0, 0.05) == "reversed" and _verdict(1.5, 0.01, 2.0, 0.05) == "reproduces"


def test_a_main_table_mark_is_tested_over_sets_even_when_the_cells_are_over_models():
    """unit models (auto, when a cell has under 2 seeds): Welch's test counted the 4 models of one set as 4
    independent samples and found a 1.2-point gap between two sets 'significant'; it is over the sets now."""
    from atombench.report.stats import cell, mark_column

    def rows(method, per_set):
        return pd.DataFrame([{"distiller": method, "seed": s, "accuracy": a} for s, accs in enumerate(per_set)
                             for a in accs])

    one_set = [cell(rows(m, [[x + d for d in (-0.1, 0.0, 0.0, 0.1)]]), "accuracy", "models")
               for m, x in (("a", 50.0), ("b", 48.8))]
    mark_column(one_set, 1)
    assert one_set[0].best and one_set[1].p is None and one_set[1].tied is None  # 1 set a side: no test
    three = [cell(rows(m, [[x + s + d for d in (-0.1, 0.1)] for s in (0, 1, 2)]), "accuracy", "models")
             for m, x in (("a", 50.0), ("b", 48.8))]
    mark_column(three, 1)
    assert three[0].n == 6 and list(three[1].sets) == pytest.approx([48.8, 49.8, 50.8])
    from scipy import stats as st

    assert three[1].p == pytest.approx(st.ttest_ind([50, 51, 52], [48.8, 49.8, 50.8], equal_var=False).pvalue)


def test_entries_of_one_dataset_with_other_image_options_are_not_pooled():
    suites = {"r": {"datasets": [{"name": "cifar10", "label": "c32", "zca": False, "options": {"root": "/a"}},
                                 {"name": "cifar10", "label": "c16", "zca": False, "options": {"size": 16}}]}}
    df = _frame(_rows("dm", "c32", 1, [25.0, 25.5, 26.0]), _rows("datadam", "c32", 1, [30.0, 30.4, 31.0]),
                _rows("dm", "c16", 1, [15.0, 15.5, 16.0]), _rows("datadam", "c16", 1, [16.0, 16.4, 17.0]))
    f = claims_frame(df, load_published("all"), suites, [("datadam", "dm")]).set_index("datasets")
    assert f.loc["c32", "mean_b"] == pytest.approx(25.5) and f.loc["c16", "mean_b"] == pytest.approx(15.5)


def test_the_whitening_table_compares_one_method_on_the_two_zca_spaces():
    """ATOM's and DataDAM's papers whitened in different spaces: how much the space alone moves a method is the
    part of their margin that is not the method."""
    from atombench.report.claims import preprocessing_tables, whitening_frame

    df = _frame(_rows("datadam", "c10_zca", 1, [30.0, 30.4, 30.2]), _rows("datadam", "c10_zca_unit", 1, [32.0, 32.5, 32.3]),
                _rows("datadam", "cifar10", 1, [26.0, 26.5, 26.2]), _rows("dm", "c10_zca_unit", 1, [32.0, 32.1, 32.2]))
    f = whitening_frame(df, SUITES)
    assert len(f) == 1 and (f.loc[0, "a"], f.loc[0, "b"], f.loc[0, "method"]) == ("ZCA [0, 1]", "ZCA normalised", "datadam")
    assert f.loc[0, "diff"] == pytest.approx(np.mean([32.0, 32.5, 32.3]) - np.mean([30.0, 30.4, 30.2]))
    assert f.loc[0, "verdict"] == "ZCA [0, 1] better" and f.loc[0, "paper"] == "ZCA normalised"
    names = [t.name for t in preprocessing_tables(df, SUITES)]
    assert names == ["preprocessing", "whitening"]
    assert whitening_frame(_frame(_rows("dm", "c10_zca_unit", 1, [32.0, 32.1, 32.2])), SUITES).empty


def test_a_reproduced_sign_says_when_the_published_size_is_outside_the_measured_one_and_unverified_numbers():
    from atombench.report.claims import _verdict

    assert _verdict(2.9, 0.007, 6.0, 0.05, 0.3) == "reproduces, smaller"
    assert _verdict(2.6, 0.04, 2.8, 0.05, 0.6) == "reproduces"
    assert _verdict(9.0, 0.001, 3.0, 0.05, 1.0) == "reproduces, larger"
    assert _verdict(2.9, 0.007, 6.0, 0.05, None) == "reproduces"  # no standard error: the sign only
    # not told apart, and the published +3.7 lies 8 standard errors away: it would have shown
    assert _verdict(-0.3, 0.57, 3.7, 0.05, 0.5) == "within noise, excludes published"
    assert _verdict(0.8, 0.35, 2.8, 0.05, 1.1) == "within noise"  # 1.8 standard errors: too close to exclude
    assert _verdict(-0.3, 0.57, 3.7, 0.05, None) == "within noise"
    pub = load_published("all")  # ATOM's CIFAR rows are recalled, not read: its differences say so
    df = _frame(_rows("atom", "cifar10", 1, [34.0, 34.5, 35.0]), _rows("dm", "cifar10", 1, [25.5, 26.0, 26.5]))
    f = claims_frame(df, pub, SUITES, [("atom", "dm")])
    assert not f.loc[0, "published_verified"]
    table, = claims_tables(df, pub, SUITES, [("atom", "dm")])
    assert table.rows[0].cells[3].endswith("(unverified)")
    f = claims_frame(_frame(_rows("datadam", "cifar10", 1, [31.5, 32.0, 32.5]),
                            _rows("dm", "cifar10", 1, [25.5, 26.0, 26.5])), pub, SUITES, [("datadam", "dm")])
    assert f.loc[0, "published_verified"]
