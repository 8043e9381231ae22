"""What the report's tables pool and what they show beside what: defects a review of the tables found, each
reproduced on the frames it was found with."""

import pandas as pd
import pytest

from atombench.report.fairness import fairness_tables
from atombench.report.inputs import Inputs
from atombench.report.published import load_published
from atombench.report.robustness import robustness_tables
from atombench.report.tables import TableOptions, cost_table, main_table, resolve_unit
from atombench.report.views import apply_view, default_view, final_sets


def row(**k):
    base = dict(dataset="cifar10", ipc=10, model="convnet", model_name="convnet", status="ok", eval_index=0,
                labels="hard", protocol="common", augment="dsa")
    base.update(k)
    base.setdefault("method", base.get("distiller"))
    return base


def _cells(table):
    return {r.labels[0]: r.cells for r in table.rows}


def test_the_whole_dataset_reference_neither_picks_the_view_nor_forces_the_unit():
    """The whole-dataset row (augment none, one seed, listed first) made the main table show DM's unaugmented
    result and summarise every cell over models."""
    rows = [row(distiller="whole", ipc=None, seed=0, augment="none", accuracy=84.0, protocol=None)]
    rows += [row(distiller="dm", seed=s, augment=aug, accuracy=acc + s)
             for s in (0, 1, 2) for aug, acc in (("dsa", 50.0), ("none", 45.0))]
    inp = Inputs([], pd.DataFrame(rows))
    chosen, _ = default_view(inp)
    assert chosen == {"augment": "dsa"}
    assert resolve_unit(inp.results, "auto") == "seeds"
    cells = _cells(main_table(apply_view(inp, chosen), TableOptions()))
    assert cells["DM"][0].mean == pytest.approx(51.0) and cells["DM"][0].n == 3


def test_final_sets_of_two_budgets_are_not_one_cell():
    """Two merged folders (DM at 200 and 2000 iterations) made a cell of the per-seed means of both."""
    rows = [row(distiller="dm", seed=s, accuracy=acc + s, iteration=it, results_dir=root, synset_key=f"{it}-{s}",
                job_key=f"j{it}-{s}", distill_time_s=t, num_images=100)
            for root, it, acc, t in (("/q", 200, 40.0, 50.0), ("/f", 2000, 50.0, 500.0)) for s in (0, 1, 2)]
    inp = final_sets(Inputs([], pd.DataFrame(rows)))
    assert set(inp.results["iteration"]) == {2000} and "dm at 200 iterations" in inp.notes[-1]
    assert _cells(main_table(inp, TableOptions()))["DM"][0].mean == pytest.approx(51.0)
    assert cost_table(inp, TableOptions()).rows[0].cells[0].startswith("500.00")


def test_a_set_shared_by_two_dataset_entries_has_a_cost_row_in_each():
    rows = [row(dataset=d, distiller="atom", ipc=1, seed=s, accuracy=31.0, synset_key=f"k{s}", job_key=f"{d}{s}",
                results_dir="/r", distill_time_s=3000.0 + s, num_images=10)
            for d in ("cifar10_zca", "cifar10_zca_unit") for s in (0, 1, 2)]
    labels = [r.labels for r in cost_table(Inputs([], pd.DataFrame(rows)), TableOptions()).rows]
    assert labels == [["cifar10_zca", "ATOM", "1"], ["cifar10_zca_unit", "ATOM", "1"]]


def test_the_fairness_view_keeps_each_methods_own_augmentation():
    """DC's own protocol trains without augmentation; the common protocol's dsa, applied to every row, left DC's
    own cell empty."""
    rows = []
    for s in (0, 1, 2):
        for m, own_aug in (("dc", "none"), ("dm", "dsa")):
            rows += [row(distiller=m, seed=s, augment=aug, accuracy=40.0 + s) for aug in ("dsa", "none")]
            rows.append(row(distiller=m, seed=s, augment=own_aug, accuracy=42.0 + s, protocol="paper",
                            epochs=300, batch_size=256, lr=0.01, protocol_declared=True))
    inp = Inputs([], pd.DataFrame(rows))
    chosen, _ = default_view(inp)
    view = apply_view(inp, {k: v for k, v in chosen.items() if k != "protocol"}, own_augmentation=True)
    table = fairness_tables(view, TableOptions())[0]
    dc = next(r for r in table.rows if r.labels[0] == "DC")
    assert dc.cells[0].startswith("43.0 ± 0.8 / 41.0 ± 0.8") and "aug none" in dc.labels[1]


def test_robustness_tables_need_an_unaugmented_run_of_the_common_protocol():
    """The coresets' own protocol trains without augmentation: that 'none' wrote three tables of dashes."""
    rows = []
    for s in (0, 1, 2):
        rows += [row(distiller=m, ipc=1, seed=s, accuracy=acc) for m, acc in (("random", 17.0), ("dm", 26.0))]
        rows.append(row(distiller="random", ipc=1, seed=s, augment="none", accuracy=16.0, protocol="paper"))
        rows.append(row(distiller="dm", ipc=1, seed=s, accuracy=26.0, protocol="paper"))
    assert robustness_tables(Inputs([], pd.DataFrame(rows)), TableOptions()) == []


def test_a_published_number_sits_only_beside_the_preprocessing_its_paper_used():
    """DataDAM's published CIFAR-10 number (with ZCA) was shown beside its unwhitened cell and DM's (without) beside
    the whitened entries; coresets' numbers filled columns their suite entry does not run them on."""
    suites = {"r": {"datasets": [{"name": "cifar10", "label": None, "zca": False},
                                 {"name": "cifar10", "label": "c10_zca", "zca": "paper"},
                                 {"name": "cifar10", "label": "c10_zca_unit", "zca": "unit_interval"}],
                    "distillers": [{"name": "random", "datasets": ["cifar10"]},
                                   {"name": "dm", "datasets": ["cifar10", "c10_zca_unit"]}, {"name": "datadam"}]}}
    rows = [row(dataset="cifar10", distiller=m, ipc=1, seed=s, accuracy=acc)
            for m, acc in (("random", 15.0), ("dm", 26.0), ("datadam", 27.0)) for s in (0, 1, 2)]
    rows += [row(dataset="c10_zca", distiller="datadam", ipc=1, seed=s, accuracy=30.0) for s in (0, 1, 2)]
    rows += [row(dataset="c10_zca_unit", distiller=m, ipc=1, seed=s, accuracy=31.0) for m in ("dm", "datadam")
             for s in (0, 1, 2)]
    table = main_table(Inputs([], pd.DataFrame(rows), suites={"r": suites["r"]}), TableOptions(),
                       load_published("all"))
    cells = _cells(table)
    published = {k: [None if c is None else c.mean for c in v] for k, v in cells.items() if "published" in k}
    # columns: cifar10, c10_zca, c10_zca_unit
    assert published["DataDAM (published)"] == [None, 32.0, None]  # its paper whitened normalised images
    assert published["DM (published)"] == [26.0, None, None]
    assert published["Random (published)"][1:] == [None, None]


def test_fairness_ranks_are_over_the_methods_with_both_protocols():
    """C's own-protocol cell missing at IPC 10 moved A and B up under their own protocol only (2 / 3 read as a
    change of rank where the protocol changed nothing)."""
    rows = []
    for ipc in (1, 10):
        for m, acc in (("a", 50.0), ("b", 40.0), ("c", 60.0)):
            for s in (0, 1, 2):
                for prot in ("paper", "common"):
                    if not (m == "c" and prot == "paper" and ipc == 10):
                        rows.append(row(distiller=m, method="dm", ipc=ipc, seed=s, accuracy=acc + ipc + s,
                                        protocol=prot, epochs=1000, batch_size=256, lr=0.01,
                                        protocol_declared=True))
    _, ranks = fairness_tables(Inputs([], pd.DataFrame(rows)), TableOptions())
    got = {r.labels[0]: r.cells for r in ranks.rows}
    # the mean rank only over the columns that rank all three: 1 of 2 at IPC 10 is not 1 of 3
    assert got["a"] == ["2 / 2", "1 / 1", "2.0 / 2.0"] and got["c"] == ["1 / 1", None, "1.0 / 1.0"]
    assert "the mean over the 1 of the 2 columns that rank every method" in ranks.caption


def test_an_own_protocol_that_differs_by_dataset_is_said_per_dataset():
    rows = []
    for d, ep, aug in (("mnist", 1000, "dc"), ("cifar10", 300, "none")):
        for s in (0, 1, 2):
            rows.append(row(dataset=d, distiller="dc", seed=s, augment=aug, accuracy=50.0, protocol="paper",
                            epochs=ep, batch_size=256, lr=0.01, protocol_declared=True))
            rows.append(row(dataset=d, distiller="dc", seed=s, accuracy=50.0, epochs=1000, batch_size=256, lr=0.01))
    table = fairness_tables(Inputs([], pd.DataFrame(rows)), TableOptions())[0]
    assert table.rows[0].labels[1] == ("MNIST IPC 10: 1000 epochs, batch 256, lr 0.01, aug dc; CIFAR-10 IPC 10: "
                                       "300 epochs, batch 256, lr 0.01, aug none")
    assert list(table.frame["own_protocol"]) == ["1000 epochs, batch 256, lr 0.01, aug dc",
                                                 "300 epochs, batch 256, lr 0.01, aug none"]


def test_a_rivals_last_snapshot_is_not_shown_as_its_final():
    """DM's row on the [0, 1] ZCA entry showed 'DataDAM 32.3' as the best rival's final: it was DataDAM's 500-
    iteration snapshot (its final set not distilled yet)."""
    from atombench.report.budget import budget_tables

    rows = []
    for s in (0, 1, 2):
        for it, snap in ((100, True), (500, True), (1000, False)):
            rows.append(row(distiller="dm", seed=s, accuracy=40.0 + it / 100, iteration=it, snapshot=snap,
                            distill_time_s=float(it)))
        for it in (100, 500):
            rows.append(row(distiller="datadam", seed=s, accuracy=45.0 + it / 100, iteration=it, snapshot=True,
                            distill_time_s=float(it)))
    budget, reach = budget_tables(Inputs([], pd.DataFrame(rows)), TableOptions())
    got = {r.labels[0]: r.cells for r in reach.rows}
    assert got["DM"][-1] == "DataDAM 50.0 (snapshot 500): 16.7 min"
    assert got["DataDAM"][0] == "50.0 (snapshot 500)" and got["DataDAM"][-1] == "DM 50.0: 500 s"
    rows = [dict(r, loss=100.0 - r["accuracy"]) for r in rows]
    tables = budget_tables(Inputs([], pd.DataFrame(rows)), TableOptions(metric="loss"))
    assert [t.name for t in tables] == ["budget"]  # no "90 % of the final" for a loss
    pareto = tables[0].frame.set_index(["distiller", "iteration"])["pareto"]
    assert pareto[("datadam", 100)] and not pareto[("dm", 100)]  # lower loss in the same time


def test_published_numbers_only_beside_the_network_they_were_measured_with():
    """One plug-in number measured with ResNet-18 brought DM's ConvNet-3 number to the ResNet-18 table; a
    one-layer, 8-channel ConvNet got ConvNet-3's numbers."""
    pub = load_published("all")
    extra = pd.DataFrame([dict(dataset="cifar10", method="mine", ipc=10, mean=20.0, std=1.0, model="resnet18",
                               verified=True, source="x", note="")])
    resnet = [row(distiller=m, model="resnet18", model_name="resnet18", seed=s, accuracy=30.0 + s)
              for m in ("dm", "mine") for s in (0, 1, 2)]
    shown = [r.labels[0] for r in main_table(Inputs([], pd.DataFrame(resnet)), TableOptions(),
                                             pd.concat([pub, extra], ignore_index=True)).rows]
    assert shown == ["DM", "mine", "mine (published)"]
    small = [row(distiller="dm", model="convnet_w8", model_name="convnet", model_options='{"depth": 1, "width": 8}',
                 seed=s, accuracy=30.0 + s) for s in (0, 1, 2)]
    assert [r.labels[0] for r in main_table(Inputs([], pd.DataFrame(small)), TableOptions(), pub).rows] == ["DM"]
    plain = [dict(r, model="convnet", model_options="{}") for r in small]
    assert "DM (published)" in [r.labels[0] for r in main_table(Inputs([], pd.DataFrame(plain)), TableOptions(),
                                                                 pub).rows]


def test_an_ior_against_random_under_another_augmentation_is_marked():
    """augment: auto trains DM with DSA and the random subset without: IOR 12.0 was shown as if like for like."""
    rows = [row(distiller="whole", ipc=None, seed=0, augment="none", accuracy=84.0, protocol=None)]
    for s in (0, 1, 2):
        rows.append(row(distiller="random", ipc=1, seed=s, augment="none", accuracy=14.0))
        rows.append(row(distiller="dm", ipc=1, seed=s, augment="dsa", accuracy=26.0))
    main, comp, _ = robustness_tables(Inputs([], pd.DataFrame(rows)), TableOptions())
    dm = next(r for r in comp.rows if r.labels[0] == "DM")
    assert dm.cells[1] == "12.0 ± 0.0 ‡" and "‡: the random subset was evaluated only under another" in comp.caption
    assert "‡ in the components table" in main.caption
    same = rows + [dict(r, augment="dsa" if r["distiller"] == "random" else "none") for r in rows[1:]]
    _, comp, _ = robustness_tables(Inputs([], pd.DataFrame(same)), TableOptions())
    assert "‡" not in comp.caption and not any("‡" in str(c) for r in comp.rows for c in r.cells)


def test_missing_cells_are_those_the_suite_runs_not_those_it_leaves_out():
    suites = {"r": {"datasets": [{"name": "cifar10", "label": None, "zca": False},
                                 {"name": "cifar10", "label": "c10_zca", "zca": "paper"}],
                    "distillers": [{"name": "random", "datasets": ["cifar10"]}, {"name": "dm", "ipc": [1]},
                                   {"name": "datadam", "datasets": ["c10_zca"], "ipc": [1]}]}}
    rows = [row(dataset=d, distiller=m, ipc=i, seed=s, accuracy=20.0 + s)
            for d, m, i in (("cifar10", "random", 1), ("cifar10", "random", 10), ("cifar10", "dm", 1),
                            ("c10_zca", "datadam", 1)) for s in (0, 1, 2)]
    table = main_table(Inputs([], pd.DataFrame(rows), suites=suites), TableOptions())
    assert table.notes == ["Missing cells (no finished job): DM at c10_zca IPC 1."]  # not random's ZCA columns


def test_an_unfinished_larger_budget_hides_no_finished_set():
    rows = [row(distiller="dm", seed=s, accuracy=50.0 + s, iteration=1000, results_dir="/a") for s in (0, 1, 2)]
    rows += [row(distiller="dm", seed=s, accuracy=None, iteration=2000, results_dir="/b", status="pending")
             for s in (0, 1, 2)]
    inp = final_sets(Inputs([], pd.DataFrame(rows)))
    assert _cells(main_table(inp, TableOptions()))["DM"][0].mean == pytest.approx(51.0)


def test_a_method_without_its_own_protocol_is_not_pooled_over_augmentations():
    """An undeclared own protocol is the common one under every listed augmentation: keeping all its 'paper' rows
    made a -5.0 'change' of the mean of dsa and none against dsa."""
    rows = [row(distiller="mine", seed=s, augment=aug, accuracy=acc + s, protocol=p, protocol_declared=p == "common")
            for s in (0, 1, 2) for aug, acc in (("dsa", 50.0), ("none", 40.0)) for p in ("paper", "common")]
    inp = Inputs([], pd.DataFrame(rows))
    chosen, _ = default_view(inp)
    table = fairness_tables(apply_view(inp, {k: v for k, v in chosen.items() if k != "protocol"},
                                       own_augmentation=True), TableOptions())[0]
    assert table.rows[0].cells[0] == "51.0 ± 0.8 / 51.0 ± 0.8 (+0.0)"


def test_claims_keep_whitenings_of_another_eps_and_preprocessing_keeps_image_options_apart():
    from atombench.report.claims import claims_frame, preprocessing_frame

    def r(d, m, accs):
        return [row(dataset=d, distiller=m, ipc=1, seed=s, accuracy=a, iteration=2000) for s, a in enumerate(accs)]

    suites = {"r": {"datasets": [{"name": "cifar10", "label": "z01", "zca": {"kind": "unit_interval", "eps": 0.01}},
                                 {"name": "cifar10", "label": "z1", "zca": {"kind": "unit_interval"}, "zca_eps": 0.1},
                                 {"name": "cifar10", "label": "c16", "zca": False, "options": {"size": 16}}]}}
    df = pd.DataFrame(r("z01", "dm", [20, 21, 22]) + r("z01", "datadam", [30, 31, 32])
                      + r("z1", "dm", [40, 41, 42]) + r("z1", "datadam", [40, 41, 42]) + r("c16", "dm", [50, 51, 52]))
    f = claims_frame(df, load_published("all"), suites, [("datadam", "dm")])
    assert sorted(f["datasets"]) == ["z01", "z1"] and sorted(f["diff"]) == pytest.approx([0.0, 10.0])
    assert preprocessing_frame(df, suites).empty  # DM at 16 px unwhitened against 32 px whitened: no row


def test_claims_show_no_published_difference_beside_a_convnet_of_other_options():
    from atombench.report.claims import claims_frame

    rows = [row(dataset="cifar10", distiller=m, ipc=1, seed=s, accuracy=acc + s, iteration=2000,
                model="convnet_w8", model_name="convnet", model_options='{"depth": 1, "width": 8}')
            for m, acc in (("dm", 25.0), ("datadam", 30.0)) for s in (0, 1, 2)]
    f = claims_frame(pd.DataFrame(rows), load_published("all"), {}, [("datadam", "dm")])
    assert f["published_diff"].isna().all() and set(f["verdict"]) == {"no published difference"}


def test_a_zca_paper_column_is_not_tested_across_two_whitenings_and_says_so():
    """Under zca: paper, DataDAM's sets are whitened as normalised images and ATOM's as [0, 1] ones: one column,
    two datasets. Bold stays (the papers' own comparison); † marks would test across two datasets."""
    suites = {"r": {"datasets": [{"name": "cifar10", "label": "c10_zca", "zca": "paper"}]}}
    rows = [row(dataset="c10_zca", distiller=m, ipc=1, seed=s, accuracy=acc + 0.3 * s)
            for m, acc in (("datadam", 29.0), ("atom", 31.5)) for s in (0, 1, 2)]
    table = main_table(Inputs([], pd.DataFrame(rows), suites=suites), TableOptions())
    cells = _cells(table)
    assert cells["ATOM"][0].best and cells["DataDAM"][0].tied is None and cells["DataDAM"][0].p is None
    assert any("each method on its own paper's preprocessing (DataDAM ZCA normalised, ATOM ZCA [0, 1])" in n
               for n in table.notes)
    plain = main_table(Inputs([], pd.DataFrame([dict(r, dataset="cifar10") for r in rows]),
                              suites={"r": {"datasets": [{"name": "cifar10", "zca": False}]}}), TableOptions())
    assert _cells(plain)["DataDAM"][0].p is not None  # one preprocessing: tested


def test_a_published_number_measured_under_another_protocol_than_the_cells_says_so():
    """The coresets' published CIFAR rows were trained DC's way (300 epochs, no augmentation); beside cells of the
    common protocol (1000 epochs, DSA) they are not like for like. DM's own protocol is the common one."""
    rows = [row(dataset="cifar10", distiller=m, ipc=1, seed=s, accuracy=acc + s, epochs=1000, batch_size=256,
                augment="dsa") for m, acc in (("random", 16.0), ("dm", 26.0)) for s in (0, 1, 2)]
    labels = [r.labels[0] for r in main_table(Inputs([], pd.DataFrame(rows)), TableOptions(),
                                              load_published("all")).rows]
    assert "Random (published, under its own protocol)" in labels and "DM (published)" in labels


def test_an_entry_giving_the_default_eps_is_the_same_whitening_as_one_giving_none():
    """ATOM on a ``zca: paper`` entry (its paper: [0, 1]) and DataDAM on a [0, 1] entry that writes the default
    eps out (0.1): one whitening, so one claims row. The report read the eps as None on one and 0.1 on the other,
    and compared them as two datasets (no row)."""
    from atombench.report.claims import claims_frame

    suites = {"r": {"datasets": [{"name": "cifar10", "label": "zp", "zca": "paper"},
                                 {"name": "cifar10", "label": "zu", "zca": {"kind": "unit_interval"},
                                  "zca_eps": 0.1}]}}
    rows = [row(dataset=d, distiller=m, ipc=1, seed=s, accuracy=acc + s, iteration=2000)
            for d, m, acc in (("zp", "atom", 33.0), ("zu", "datadam", 30.0)) for s in (0, 1, 2)]
    f = claims_frame(pd.DataFrame(rows), load_published("all"), suites, [("atom", "datadam")])
    assert len(f) == 1 and f["diff"].iloc[0] == pytest.approx(3.0)


def test_an_entrys_eps_is_none_only_where_the_suite_parser_refuses_the_entry():
    from atombench.report.entries import zca_eps

    assert zca_eps({"name": "cifar10", "zca": "unit_interval"}) == pytest.approx(0.1)  # the default, as the suite
    assert zca_eps({"name": "cifar10", "zca": {"kind": "normalised", "eps": 0.01}}) == pytest.approx(0.01)
    assert zca_eps({"name": "cifar10", "zca": "sideways"}) is None  # a form of another version
    assert zca_eps({"name": "cifar10", "zca": True, "zca_eps": "0.1"}) is None  # a wrong type
    assert zca_eps(None) == pytest.approx(0.1)


def test_tables_follow_the_suites_model_order_not_the_order_jobs_finished_in():
    """A cross-architecture run read while it ran (rows from jobs/, in finishing order) showed VGG11-BN as the
    main table's model and the cross-architecture columns in finishing order."""
    from atombench.report.tables import cross_arch_tables

    rows = [row(distiller="dm", seed=s, model=m, model_name=m, accuracy=acc + s)
            for m, acc in (("vgg11_bn", 43.0), ("timm:resnet10t", 25.0), ("convnet", 45.0)) for s in (0, 1, 2)]
    suites = {"r": {"models": [{"name": "convnet"}, {"name": "vgg11_bn", "label": None}, "timm:resnet10t"]}}
    inp = Inputs([], pd.DataFrame(rows), suites=suites)
    assert "ConvNet" in main_table(inp, TableOptions()).title
    table, = cross_arch_tables(inp, TableOptions())
    assert table.columns == ["ConvNet", "VGG11-BN", "timm:resnet10t"]
    assert [c.mean for c in table.rows[0].cells] == pytest.approx([46.0, 44.0, 26.0])
    # a model no suite lists comes after those listed, in the order it appears
    inp = Inputs([], pd.DataFrame(rows + [row(distiller="dm", seed=0, model="alexnet", accuracy=40.0)]),
                 suites=suites)
    assert cross_arch_tables(inp, TableOptions())[0].columns[-1] == "AlexNet"


def test_an_imported_set_counts_as_the_method_its_suite_entry_declares():
    """Sets read from files with ``method: dm`` (an export, the DM code's res_*.pt) had no published DM row beside
    them and were paired as 'files', not as DM, in the claims table."""
    from atombench.report.claims import claims_frame
    from atombench.report.inputs import _with_made_by
    from atombench.report.tables import method_map

    suites = {"r": {"distillers": [{"name": "files", "label": "dm", "options": {"method": "dm", "path": "x"}},
                                   {"name": "files", "label": "theirs", "options": {"path": "y"}},
                                   {"name": "datadam"}]}}
    rows = [row(distiller=d, method=m, seed=s, accuracy=acc + s, iteration=2000)
            for d, m, acc in (("dm", "files", 45.0), ("theirs", "files", 40.0), ("datadam", "datadam", 47.0))
            for s in (0, 1, 2)]
    df = _with_made_by(pd.DataFrame(rows), suites)
    assert method_map(df) == {"dm": "dm", "theirs": "files", "datadam": "datadam"}
    assert list(df["method"].unique()) == ["files", "datadam"]  # the plug-in column is unchanged
    f = claims_frame(df, load_published("all"), suites, [("datadam", "dm")])
    assert f["published_diff"].iloc[0] == pytest.approx(5.3)  # DataDAM - DM at CIFAR-10 IPC 10, published
    table = main_table(Inputs([], df, suites=suites), TableOptions(), load_published("all"))
    assert any(r.published and r.labels[0].startswith("DM") for r in table.rows)
