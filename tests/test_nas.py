"""Neural architecture search on distilled data (:mod:`atombench.nas`): the search space, the statistics, the
validation split that keeps selection off the test split, the suite's ``nas:`` section, and the phase end to end
through the job system (tables, resume, engines)."""

import itertools
import math
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from atombench import registry
from atombench.errors import ConfigError
from atombench.models.convnet import (NAS_AXES, SMALL_BUDGET_MACS, SMALL_SIZE, ConvNetConfig, SearchGrid,
                                      candidate_name, candidate_problem, conv_macs, full_space, small_space)
from atombench.nas import (NAS_COLUMNS, SUMMARY_COLUMNS, WHOLE, holdout_split, rankdata, select,
                           selection_view, spearman, top_k)
from atombench.runner import load_dataset, run_suite
from atombench.suite import parse_suite

AXES = ("depth", "width", "act", "norm", "pool")


def key(cfg):
    return tuple(getattr(cfg, a) for a in AXES)


# -- the search space ----------------------------------------------------------------------------------------
def test_full_space_is_the_papers_720_convnets():
    # docs/nas.md#search-space: W {32, 64, 128, 256} x D {1..4} x A {sigmoid, relu, leakyrelu} x P {none, max, avg}
    # x N {none, batch, layer, instance, group}
    assert NAS_AXES == {"depth": (1, 2, 3, 4), "width": (32, 64, 128, 256), "act": ("sigmoid", "relu", "leakyrelu"),
                        "norm": ("none", "batchnorm", "layernorm", "instancenorm", "groupnorm"),
                        "pool": ("none", "maxpooling", "avgpooling")}
    space = full_space()
    assert len(space) == 720 == len({key(c) for c in space}) == len({candidate_name(c) for c in space})
    assert {key(c) for c in space} == set(itertools.product(*(NAS_AXES[a] for a in AXES)))
    assert candidate_name(ConvNetConfig()) == "d3_w128_relu_in_ap"


def test_small_space_is_a_deterministic_stratified_subset():
    small = small_space()
    assert [key(c) for c in small] == [key(c) for c in small_space()]  # deterministic
    assert len(small) == SMALL_SIZE == len({key(c) for c in small})
    full = [key(c) for c in full_space()]
    assert {key(c) for c in small} <= set(full)
    assert [key(c) for c in small] == sorted((key(c) for c in small), key=full.index)  # the full space's order
    for axis in AXES:  # every value of every axis, about equally often
        counts = {v: sum(getattr(c, axis) == v for c in small) for v in NAS_AXES[axis]}
        assert min(counts.values()) >= 1, (axis, counts)
        assert max(counts.values()) - min(counts.values()) <= 2, (axis, counts)
    # no candidate costs more than the papers' ConvNetD4 at CIFAR size, so the space trains on a CPU
    assert SMALL_BUDGET_MACS == conv_macs(ConvNetConfig(depth=4), 3, (32, 32))
    assert all(conv_macs(c, 3, (32, 32)) <= SMALL_BUDGET_MACS for c in small)


def test_a_grid_is_the_product_of_its_lists():
    grid = SearchGrid(depth=[1, 2], width=[8], act=["relu"], norm=["none", "batchnorm"], pool=["avgpooling"])
    assert [candidate_name(c) for c in grid.candidates()] == ["d1_w8_relu_nn_ap", "d1_w8_relu_bn_ap",
                                                              "d2_w8_relu_nn_ap", "d2_w8_relu_bn_ap"]
    assert len(SearchGrid().candidates()) == 720


def train_one_step(cfg, channels, size):
    torch.manual_seed(0)
    net = registry.models.get("nas_convnet").build(
        {"depth": cfg.depth, "width": cfg.width, "act": cfg.act, "norm": cfg.norm, "pool": cfg.pool},
        channels, 10, size)
    x, y = torch.randn(4, channels, *size), torch.tensor([0, 1, 2, 3])
    before = [p.detach().clone() for p in net.parameters()]
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    net.train()
    loss = F.cross_entropy(net(x), y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(b, p) for b, p in zip(before, net.parameters()))


# digits at 12x12 (suites/nas_small.yaml), Fashion-MNIST 28x28, CIFAR-10 32x32
@pytest.mark.parametrize("channels, size", [(1, (12, 12)), (1, (28, 28)), (3, (32, 32))],
                         ids=["digits12", "fashion_mnist", "cifar10"])
def test_every_small_candidate_builds_and_trains_a_step(channels, size):
    for cfg in small_space():
        assert candidate_problem(cfg, channels, size) is None
        train_one_step(cfg, channels, size)


def test_which_candidates_take_which_sizes():
    """What the planner claims (built on the meta device) is what building for real does."""
    space = full_space()
    for channels, size in [(1, (12, 12)), (1, (28, 28)), (3, (32, 32)), (3, (64, 64))]:
        assert all(candidate_problem(c, channels, size) is None for c in space)
    # 8x8 digits: 8 -> 12 (one-channel padding) -> 6 -> 3 -> 1, so depth 4 cannot pool again
    bad = [c for c in space if candidate_problem(c, 1, (8, 8))]
    assert {key(c) for c in bad} == {key(c) for c in space if c.depth == 4 and c.pool != "none"}
    assert len(bad) == 4 * 3 * 5 * 2
    with pytest.raises(Exception, match="pools .* below 1x1"):
        registry.models.get("nas_convnet").build({"depth": 4}, 1, 10, (8, 8))
    train_one_step(ConvNetConfig(depth=4, pool="none", width=32), 1, (8, 8))


@pytest.mark.heavy
def test_every_full_candidate_trains_a_step_at_digits_size():
    for cfg in full_space():
        train_one_step(cfg, 1, (12, 12))


# -- statistics ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("x, y", [
    ([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]),
    ([1, 2, 2, 3, 5, 5, 5, 9], [2, 1, 4, 4, 3, 8, 8, 7]),       # ties on both sides
    ([10.0, 20.0, 30.0, 40.0], [40.0, 30.0, 20.0, 10.0]),       # perfectly reversed
    ([0.5, 0.5, 0.7, 0.1, 0.9, 0.9], [1, 2, 3, 4, 5, 6]),
])
def test_spearman_matches_scipy_on_known_inputs(x, y):
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    np.testing.assert_allclose(rankdata(x), stats.rankdata(x))


def test_spearman_matches_scipy_on_random_inputs_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(3, 40))
        x, y = rng.integers(0, 5, n).astype(float), rng.normal(size=n).round(1)
        if len(set(x)) > 1 and len(set(y)) > 1:
            assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)


def test_spearman_edge_cases():
    assert spearman([1, 2, 3, math.nan, 5], [1, 3, 2, 7, 4]) == pytest.approx(
        stats.spearmanr([1, 2, 3, 5], [1, 3, 2, 4]).statistic)  # pairs with a missing value are dropped
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))          # constant side: undefined, as scipy
    assert math.isnan(spearman([1, 2], [2, 1]))                # fewer than 3 pairs: meaningless


def test_selection_and_top_k():
    assert select([70.0, 90.0, 90.0, math.nan]) == 1          # best; the earlier candidate on ties
    assert select([math.nan, math.nan]) is None
    assert top_k([50.0, 90.0, 90.0, 10.0, math.nan], 2) == [1, 2]
    assert top_k([50.0, 90.0, 80.0, 10.0], 3) == [0, 1, 2]


# -- the split -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", {})


def test_holdout_split_is_stratified_disjoint_and_seeded(digits):
    train, val = holdout_split(digits.train_y, 10, 0.2, 0)
    assert len(set(train.tolist()) & set(val.tolist())) == 0
    assert sorted(train.tolist() + val.tolist()) == list(range(len(digits.train_y)))
    for c in range(10):
        n_c = int((digits.train_y == c).sum())
        assert int((digits.train_y[val] == c).sum()) == round(0.2 * n_c)
    again, other = holdout_split(digits.train_y, 10, 0.2, 0), holdout_split(digits.train_y, 10, 0.2, 1)
    assert torch.equal(again[1], val) and not torch.equal(other[1], val)


def test_the_selection_view_holds_no_test_image(digits):
    view = selection_view(digits, 0.2, 0)
    train, val = holdout_split(digits.train_y, 10, 0.2, 0)
    assert torch.equal(view.train_x, digits.train_x[train]) and torch.equal(view.train_y, digits.train_y[train])
    # what the search "tests" on is the validation split of the training set, never the test split
    assert torch.equal(view.test_x, digits.train_x[val]) and torch.equal(view.test_y, digits.train_y[val])
    assert view.fingerprint != digits.fingerprint and view.options["nas_holdout"] == {"val_fraction": 0.2,
                                                                                     "split_seed": 0}


# -- the suite's nas: section --------------------------------------------------------------------------------
BASE = {"name": "t", "datasets": ["digits"], "ipc": [1], "distillers": ["random", "atom"], "models": ["convnet"]}


def problems(doc):
    with pytest.raises(ConfigError) as exc:
        parse_suite(doc, "s.yaml")
    return [str(p) for p in exc.value.problems]


def test_nas_section_defaults():
    suite = parse_suite({**BASE, "nas": {}})
    nas = suite.nas
    assert (nas.space, nas.proxies, nas.ipc, nas.epochs, nas.val_fraction, nas.topk) == \
        ("small", None, None, 200, 0.1, None)
    assert len(nas.candidates()) == SMALL_SIZE
    assert parse_suite(dict(BASE)).nas is None
    grid = parse_suite({**BASE, "nas": {"space": {"width": [16], "depth": [1, 2]}, "ipc": 5}}).nas
    assert isinstance(grid.space, SearchGrid) and len(grid.candidates()) == 2 * 3 * 5 * 3 and grid.ipc_list == [5]


@pytest.mark.parametrize("nas, expected", [
    ({"epoch": 5}, "nas.epoch: unknown key (did you mean 'epochs'?)"),
    ({"space": "smal"}, "nas.space: unknown search space 'smal' (did you mean 'small'?); use 'small', 'full'"),
    ({"space": 3}, "nas.space: expected 'small', 'full' or a mapping of lists"),
    ({"space": {"widht": [8]}}, "nas.space.widht: unknown key (did you mean 'width'?)"),
    ({"space": {"act": ["tanh"]}}, "nas.space.act[0]: must be one of 'relu', 'leakyrelu', 'sigmoid', 'swish'"),
    ({"space": {"depth": []}}, "nas.space: depth must list at least one value"),
    ({"space": {"width": 8}}, "nas.space.width: expected a list, got int 8"),
    ({"proxies": ["atomm"]}, "nas.proxies[0]: 'atomm' is neither one of the suite's distillers nor a baseline "
                             "(did you mean 'atom'?); choose from random, atom, random_subset, early_stop"),
    ({"proxies": []}, "nas.proxies: must list at least one proxy"),
    ({"epochs": "ten"}, "nas.epochs: expected int, got str 'ten'"),
    ({"val_fraction": 1.5}, "nas: val_fraction must be in (0, 1), got 1.5"),
    ({"topk": 2}, "nas: topk must be >= 3"),
    ({"ipc": [0]}, "nas.ipc[0]: images per class must be >= 1, got 0"),
    ({"ground_truth_epochs": -1}, "nas: ground_truth_epochs must be >= 0, got -1"),
    ("yes", "nas: expected a mapping, got str 'yes'"),
])
def test_bad_nas_values_are_located_and_explained(nas, expected):
    msgs = problems({**BASE, "nas": nas})
    assert any(m.startswith(expected) for m in msgs), msgs


def test_nas_problems_are_reported_with_the_others():
    msgs = problems({**BASE, "distillers": ["atomm"], "nas": {"space": "smal", "proxies": ["dm"]}})
    assert any(m.startswith("distillers[0].name: unknown distiller 'atomm'") for m in msgs)
    assert any(m.startswith("nas.space: unknown search space 'smal'") for m in msgs)
    assert any(m.startswith("nas.proxies[0]: 'dm' is neither") for m in msgs)


# -- end to end ----------------------------------------------------------------------------------------------
TINY_NAS = """\
name: tiny_nas
datasets: [{name: DATASET}]
ipc: [2]
distillers: [random, {name: herding, config: {features: pixels}}]
models: [{name: convnet, options: {width: 8, depth: 1}}]
eval: {epochs: 1, batch_size: 64}
execution: {backend: BACKEND}
device: cpu
nas:
  space: {depth: [1, 4], width: [8], act: [relu, sigmoid], norm: [instancenorm], pool: [avgpooling, none]}
  proxies: [random, herding, random_subset, early_stop]
  epochs: 8
  ground_truth_epochs: 4
  batch_size: 64
  val_fraction: 0.2
  topk: 4
"""
# 8 candidates; the two depth-4 pooled ones cannot take 8x8 digits and are left out
CANDIDATES = ["d1_w8_relu_in_ap", "d1_w8_relu_in_np", "d1_w8_sigmoid_in_ap", "d1_w8_sigmoid_in_np",
              "d4_w8_relu_in_np", "d4_w8_sigmoid_in_np"]
PROXIES = ["random", "herding", "random_subset", "early_stop"]
QUIET = {"progress": False, "echo": lambda *a: None}


def write_suite(folder, dataset="digits", backend="sequential"):
    path = folder / "tiny_nas.yaml"
    path.write_text(TINY_NAS.replace("DATASET", dataset).replace("BACKEND", backend) + f"output: {folder / 'out'}\n")
    return path


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nas")
    lines = []
    report = run_suite(write_suite(folder), progress=False, echo=lines.append)
    return folder, report, lines


def test_nas_tables(tiny_run):
    folder, report, lines = tiny_run
    out = folder / "out"
    nas, summary = pd.read_csv(out / "nas.csv"), pd.read_csv(out / "nas_summary.csv")
    assert list(nas.columns) == NAS_COLUMNS and list(summary.columns) == SUMMARY_COLUMNS
    assert nas["candidate"].tolist() == CANDIDATES * len(PROXIES)
    assert nas["proxy"].tolist() == [p for p in PROXIES for _ in CANDIDATES]
    assert nas[["proxy_val_accuracy", "gt_val_accuracy", "gt_test_accuracy"]].notna().all().all()
    assert summary["proxy"].tolist() == PROXIES + [WHOLE] and (summary["ipc"] == 2).all()
    # 6 ground truths, 6 early stops, 6 on each of the 2 distinct sets (random_subset is the random set)
    assert report.nas.evaluated == 24 and report.nas.distilled == 2 and report.failed == 0
    assert any("2 of 8 candidates cannot take (1, 8, 8) images and are left out" in line for line in lines)
    gt = nas[nas["proxy"] == "random"].set_index("candidate")
    for _, row in summary.iterrows():
        sub = nas[nas["proxy"] == row["proxy"]] if row["proxy"] != WHOLE else \
            gt.reset_index().assign(proxy_val_accuracy=gt["gt_val_accuracy"].values)
        rho = stats.spearmanr(sub["proxy_val_accuracy"], sub["gt_val_accuracy"]).statistic
        assert row["spearman_all"] == pytest.approx(rho)
        top = sub.sort_values("gt_val_accuracy", ascending=False, kind="stable").head(4)
        assert row["spearman_topk"] == pytest.approx(
            stats.spearmanr(top["proxy_val_accuracy"], top["gt_val_accuracy"]).statistic)
        pick = sub.iloc[int(np.argmax(sub["proxy_val_accuracy"].values))]
        assert row["selected_candidate"] == pick["candidate"]
        assert row["selected_test_accuracy"] == pytest.approx(gt.loc[pick["candidate"], "gt_test_accuracy"])
        assert row["best_test_accuracy"] == pytest.approx(gt["gt_test_accuracy"].max())
        assert row["wall_time_s"] > 0
    assert summary.set_index("proxy").loc[WHOLE, "spearman_all"] == pytest.approx(1.0)
    images = summary.set_index("proxy")["images_stored"]
    assert images["random"] == images["herding"] == images["random_subset"] == 20
    assert images["early_stop"] == images[WHOLE] == len(holdout_split(load_dataset("digits", {}).train_y, 10, 0.2, 0)[0])
    text = (out / "summary.md").read_text()
    assert text.startswith("### convnet") and "## Neural architecture search" in text
    assert "Left out at this image size (2): d4_w8_relu_in_ap, d4_w8_sigmoid_in_ap" in text
    # the cross-architecture table is untouched by the NAS jobs sharing its jobs/ folder
    assert len(pd.read_csv(out / "results.csv")) == 2 * 1


def test_nas_rerun_does_no_work_and_resumes(tiny_run):
    folder, _, _ = tiny_run
    out = folder / "out"
    nas, summary = pd.read_csv(out / "nas.csv"), pd.read_csv(out / "nas_summary.csv")
    again = run_suite(folder / "tiny_nas.yaml", **QUIET)
    assert (again.distilled, again.evaluated, again.nas.distilled, again.nas.evaluated) == (0, 0, 0, 0)
    pd.testing.assert_frame_equal(nas, pd.read_csv(out / "nas.csv"))
    # a job lost (killed run) is the only one recomputed, with the same result
    import json

    job = next(p for p in (out / "jobs").glob("*.json") if json.loads(p.read_text()).get("kind") == "ground_truth")
    job.unlink()
    resumed = run_suite(folder / "tiny_nas.yaml", **QUIET)
    assert resumed.nas.evaluated == 1
    pd.testing.assert_frame_equal(nas, pd.read_csv(out / "nas.csv"))
    pd.testing.assert_frame_equal(summary.drop(columns="wall_time_s"),
                                  pd.read_csv(out / "nas_summary.csv").drop(columns="wall_time_s"))


def test_validation_images_are_never_distilled_or_trained_on(tiny_run, digits):
    import json

    folder, _, _ = tiny_run
    out = folder / "out"
    train, val = holdout_split(digits.train_y, 10, 0.2, 0)
    train_rows = {tuple(digits.train_x[i].flatten().tolist()) for i in train.tolist()}
    from atombench.distillers.base import SyntheticSet

    nas_sets = [p for p in (out / "synsets").glob("*.safetensors")
                if "nas_holdout" in json.loads(p.with_name(p.name + ".json").read_text())]
    assert len(nas_sets) == 2
    for path in nas_sets:  # random and herding pick real images: each is one of the training part's
        for img in SyntheticSet.load(path).images:
            assert tuple(img.flatten().tolist()) in train_rows
    rows = [json.loads(p.read_text()) for p in (out / "jobs").glob("*.json")]
    whole = [r for r in rows if r.get("kind") in ("ground_truth", "early_stop")]
    assert whole and all(r["num_train_images"] == len(train) for r in whole)
    # a NAS row names its model as every results row does: the label (the candidate) and the plug-in
    nas_rows = [r for r in rows if r.get("candidate")]
    assert nas_rows and all(r["model"] == r["candidate"] and r["model_name"] == "nas_convnet" for r in nas_rows)


def _poisoned_digits():
    """A dataset plug-in: digits with a garbage test split (random images, shuffled labels) under the same name
    and options, so the search's own data (training set and validation split) is exactly the clean one's."""
    import dataclasses

    from atombench.data.digits import Digits

    class PoisonedDigits(Digits):
        @classmethod
        def load(cls, cfg):
            real = Digits.load(cfg)
            gen = torch.Generator().manual_seed(0)
            return dataclasses.replace(real, test_x=torch.randn(real.test_x.shape, generator=gen),
                                       test_y=real.test_y[torch.randperm(len(real.test_y), generator=gen)])

    return PoisonedDigits


def test_selection_never_reads_the_test_split(tiny_run, tmp_path):
    """Poisoning the test split changes only the reported test accuracies: every proxy and ground-truth
    validation accuracy, every rank correlation and every selection is the same."""
    clean_folder, _, _ = tiny_run
    registry.datasets.register("digits_poisoned", _poisoned_digits())
    try:
        run_suite(write_suite(tmp_path, dataset="digits_poisoned"), **QUIET)
    finally:
        registry.datasets.unregister("digits_poisoned")
    clean = pd.read_csv(clean_folder / "out" / "nas.csv")
    poisoned = pd.read_csv(tmp_path / "out" / "nas.csv")
    same = ["proxy", "ipc", "candidate", "proxy_val_accuracy", "gt_val_accuracy"]
    pd.testing.assert_frame_equal(clean[same], poisoned[same])
    assert (clean["gt_test_accuracy"] != poisoned["gt_test_accuracy"]).any()
    cs, ps = (pd.read_csv(f / "out" / "nas_summary.csv") for f in (clean_folder, tmp_path))
    same = ["proxy", "spearman_all", "spearman_topk", "topk", "selected_candidate", "images_stored"]
    pd.testing.assert_frame_equal(cs[same], ps[same])
    assert (cs["best_test_accuracy"] != ps["best_test_accuracy"]).all()


def test_an_engine_gives_the_same_tables(tiny_run, tmp_path):
    clean_folder, _, _ = tiny_run
    run_suite(write_suite(tmp_path, backend="loky"), workers=2, **QUIET)
    # the sequential run trains with 2 torch threads, each loky worker with 1: float sums differ in their last
    # bits, which may flip one validation image (0.4 % of 250); nothing else may differ
    pd.testing.assert_frame_equal(pd.read_csv(clean_folder / "out" / "nas.csv"), pd.read_csv(tmp_path / "out" / "nas.csv"),
                                  check_exact=False, rtol=0, atol=0.41)


def test_ground_truth_is_shared_across_proxies_ipcs_and_suites(tiny_run, tmp_path):
    """Another suite into the same folder, with other proxies and another IPC, trains no ground truth again."""
    clean_folder, _, _ = tiny_run
    out = tmp_path / "out"
    shutil.copytree(clean_folder / "out", out)
    other = (TINY_NAS.replace("DATASET", "digits").replace("BACKEND", "sequential")
             .replace("ipc: [2]", "ipc: [3]").replace("name: tiny_nas", "name: other")
             .replace("proxies: [random, herding, random_subset, early_stop]", "proxies: [random_subset]"))
    (tmp_path / "other.yaml").write_text(other + f"output: {out}\n")
    report = run_suite(tmp_path / "other.yaml", **QUIET)
    assert report.nas.evaluated == len(CANDIDATES)  # the new proxy only
    summary = pd.read_csv(out / "nas_summary.csv")
    assert summary["proxy"].tolist() == ["random_subset", WHOLE] and (summary["ipc"] == 3).all()
