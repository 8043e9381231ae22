"""Soft labels, evaluation augmentations and DD-Ranking's robustness scores."""

import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from atombench.augment import CropFlip, Mix
from atombench.distillers.base import DistillContext, Distiller, SyntheticSet, class_balanced_labels
from atombench.jobs import reference_weights
from atombench.factories import load_dataset
from atombench.report.inputs import Inputs
from atombench.report.robustness import ars, lrs, robustness_frame, robustness_tables, squash
from atombench.report.tables import TableOptions
from atombench.runner import run_suite
from atombench.store import ResultsStore
from atombench.train import TrainConfig, Targets, soft_label_loss


def test_soft_label_loss_against_a_hand_computation():
    s = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    t = torch.tensor([[1.0, 1.0, 0.0], [3.0, -2.0, 0.0]])
    T = 2.0
    expected = 0.0
    for i in range(2):
        ps = [math.exp(v / T) for v in s[i].tolist()]
        pt = [math.exp(v / T) for v in t[i].tolist()]
        ps = [v / sum(ps) for v in ps]
        pt = [v / sum(pt) for v in pt]
        expected += sum(q * math.log(q / p) for p, q in zip(ps, pt))  # KL(teacher || student)
    expected /= 2  # batch mean, no T^2
    assert float(soft_label_loss(s, t, T)) == pytest.approx(expected, rel=1e-6)
    # the gradient reaches the student only
    s.requires_grad_(True)
    soft_label_loss(s, t, T).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0


def test_targets_mix_hard_and_soft_labels():
    cfg = TrainConfig(labels="hard")
    logits = torch.randn(4, 3)
    y = torch.tensor([0, 1, 2, 0])
    mix = Mix("mixup", 0.8)
    mix.last = (torch.tensor([1, 0, 3, 2]), 0.7)
    got = Targets(cfg).loss(logits, None, y, torch.arange(4), mix)
    want = 0.7 * F.cross_entropy(logits, y) + 0.3 * F.cross_entropy(logits, y[[1, 0, 3, 2]])
    assert float(got) == pytest.approx(float(want))
    soft = torch.randn(4, 3)
    got = Targets(TrainConfig(labels="soft", temperature=1.0), soft=soft).loss(logits, None, y, torch.arange(4), mix)
    target = 0.7 * soft + 0.3 * soft[[1, 0, 3, 2]]
    assert float(got) == pytest.approx(float(soft_label_loss(logits, target, 1.0)))
    with pytest.raises(ValueError, match="soft labels need"):
        Targets(TrainConfig(labels="soft"))


def test_augmentations_are_seeded_and_shaped():
    x = torch.randn(6, 1, 10, 10)
    for aug in (CropFlip(), Mix("mixup", 0.8), Mix("cutmix", 1.0)):
        a = aug(x, torch.Generator().manual_seed(1))
        b = aug(x, torch.Generator().manual_seed(1))
        assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, x)
    cut = Mix("cutmix", 1.0)
    out = cut(x, torch.Generator().manual_seed(2))
    perm, lam = cut.last
    changed = (out != x).any(dim=1).float().mean(dim=(1, 2))  # the fraction of pixels taken from the partner
    assert 0 <= lam <= 1 and 0 < float(changed.max()) <= 1 - lam + 1e-6


def test_robustness_scores_against_a_hand_made_table():
    rows = []

    def add(method, seed, labels, augment, acc, ipc=1):
        rows.append({"dataset": "d", "ipc": ipc, "model": "convnet", "distiller": method, "method": method,
                     "seed": seed, "labels": labels, "augment": augment, "accuracy": acc, "status": "ok"})

    for seed, (syn_soft_aug, syn_soft_none, syn_hard_none, r_soft_aug, r_soft_none) in enumerate(
            [(70, 60, 50, 40, 35), (72, 62, 52, 42, 33)]):
        add("m", seed, "soft", "dsa", syn_soft_aug)
        add("m", seed, "soft", "none", syn_soft_none)
        add("m", seed, "hard", "none", syn_hard_none)
        add("m", seed, "hard", "dsa", 55)
        add("random", seed, "soft", "dsa", r_soft_aug)
        add("random", seed, "soft", "none", r_soft_none)
        add("random", seed, "hard", "none", 30)
        add("random", seed, "hard", "dsa", 31)
    rows.append({"dataset": "d", "ipc": None, "model": "convnet", "distiller": "whole", "method": "whole",
                 "seed": 0, "labels": "hard", "augment": "none", "accuracy": 90.0, "status": "ok"})
    frame = robustness_frame(pd.DataFrame(rows)).set_index("seed")
    # seed 0: HLR = 90 - 50 = 40, IOR = 70 - 40 = 30; a = 0.5*0.30 - 0.5*0.40 = -0.05
    assert frame.loc[0, "hlr"] == pytest.approx(40) and frame.loc[0, "ior"] == pytest.approx(30)
    e = math.e
    assert frame.loc[0, "lrs"] == pytest.approx(100 * (math.exp(-0.05) - 1 / e) / (e - 1 / e))
    # ARS: b = 0.5 * (70 - 40)/100 + 0.5 * (60 - 35)/100 = 0.275
    assert frame.loc[0, "ars"] == pytest.approx(100 * (math.exp(0.275) - 1 / e) / (e - 1 / e))
    assert frame.loc[1, "hlr"] == pytest.approx(38) and frame.loc[1, "gain_plain"] == pytest.approx(29)
    assert squash(-1) == pytest.approx(0) and squash(1) == pytest.approx(100)
    assert lrs(0, 100) == pytest.approx(squash(0.5)) and ars(10, 20) == pytest.approx(squash(0.15))
    table, comp, settings = robustness_tables(Inputs([], pd.DataFrame(rows)), TableOptions())
    lrs_mean = (frame["lrs"].mean(), frame["lrs"].std(ddof=0))
    assert table.rows[0].cells[0].startswith(f"{lrs_mean[0]:.1f} ± {lrs_mean[1]:.1f} / ")
    assert [r.labels[0] for r in comp.rows] == ["m"]
    # the accuracies behind the scores, per setting, and what soft labels / augmentation add on the same set
    assert settings.columns == ["hard, none", "hard, dsa", "soft, none", "soft, dsa", "soft - hard (dsa)",
                                "dsa - none (hard)"]
    m = next(r for r in settings.rows if r.labels[0] == "m")
    assert m.cells == ["51.0 ± 1.0", "55.0 ± 0.0", "61.0 ± 1.0", "71.0 ± 1.0", "16.0 ± 1.0", "4.0 ± 1.0"]
    assert [r.labels[0] for r in settings.rows] == ["Random", "m"]


def test_no_robustness_table_without_soft_labels_or_a_plain_run():
    df = pd.DataFrame([{"dataset": "d", "ipc": 1, "model": "convnet", "distiller": m, "method": m, "seed": 0,
                        "labels": "hard", "augment": "dsa", "accuracy": 50.0, "status": "ok"} for m in ("m", "random")])
    assert robustness_tables(Inputs([], df), TableOptions()) == []


ROB = """name: rob
datasets: [{{name: digits, options: {{size: 8}}}}]
ipc: [1]
distillers: [random, {distiller}]
models: [{{name: convnet, options: {{width: 8, depth: 1}}}}]
seeds: 1
eval: {{epochs: 2, labels: {labels}, augment: [none, dsa], whole: true, reference: {{epochs: 2, train_per_class: 20}}{extra}}}
execution: {{backend: sequential}}
device: cpu
output: {out}
"""


def test_teacher_is_trained_once_cached_and_reused(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text(ROB.format(distiller="random", labels="both", extra="", out=tmp_path / "out")
                     .replace("distillers: [random, random]", "distillers: [random]"))
    first = run_suite(suite, progress=False, echo=lambda *a: None)
    t = first.table
    assert set(t["labels"].dropna()) == {"hard", "soft"} and set(t["augment"].dropna()) == {"none", "dsa"}
    assert (t["status"] == "ok").all()
    store = ResultsStore(tmp_path / "out")
    weights = sorted((store.cache_dir / "references").glob("*.safetensors"))
    assert len(weights) == 1  # the teacher is the evaluation model's whole-dataset reference: one network
    stamp = weights[0].stat().st_mtime_ns
    whole = t[t["distiller"] == "whole"]
    assert len(whole) == 1 and whole["ipc"].isna().all() and whole["num_images"].iloc[0] == 200
    # the teacher starts before any evaluation (the soft-label ones wait for it; it is not left for last)
    assert whole["started_at"].iloc[0] < t.loc[t["distiller"] != "whole", "started_at"].min()
    # a second run into the folder (one more seed) reuses the teacher: not retrained
    suite.write_text(suite.read_text().replace("seeds: 1", "seeds: 2"))
    lines = []
    run_suite(suite, progress=False, echo=lines.append)
    assert weights[0].stat().st_mtime_ns == stamp
    assert reference_weights(store, whole["job_key"].iloc[0]) == weights[0]


class SoftSelf(Distiller):
    """random real images with one-hot-ish soft labels of their own"""

    from dataclasses import dataclass as _dc

    @_dc
    class Config:
        scale: float = 5.0

    def distill(self, data, ipc, ctx):
        idx = torch.cat([data.class_indices[c][:ipc] for c in range(data.num_classes)])
        labels = class_balanced_labels(data.num_classes, ipc)
        return data.train_x[idx], labels, {"soft_labels": F.one_hot(labels, data.num_classes).float() * self.config.scale}


def test_distiller_soft_labels_are_stored_and_used(tmp_path):
    data = load_dataset("digits", {"size": 8})
    d = SoftSelf()
    synset = d.run(data, 2, DistillContext("cpu", 0, show_progress=False))
    assert synset.soft_labels.shape == (20, 10) and synset.meta["has_soft_labels"]
    synset.save(tmp_path / "s.safetensors")
    back = SyntheticSet.load(tmp_path / "s.safetensors")
    assert torch.equal(back.soft_labels, synset.soft_labels)
    # a set without soft labels under soft_labels: distiller fails with one line
    from atombench.errors import UsageError
    from atombench.jobs import EvalJob

    job = EvalJob("k", {"distiller": "random"}, str(tmp_path), synset_key="x")
    plain = SyntheticSet(synset.images, synset.labels, {})
    with pytest.raises(UsageError, match="has no soft labels"):
        job.targets(TrainConfig(labels="soft"), data, plain, "cpu")
    tg = job.targets(TrainConfig(labels="soft"), data, back, "cpu")
    assert torch.equal(tg.soft, back.soft_labels)
    with pytest.raises(UsageError, match="soft_labels must be a tensor"):
        class Bad(SoftSelf):
            def distill(self, data, ipc, ctx):
                x, y, _ = super().distill(data, ipc, ctx)
                return x, y, {"soft_labels": torch.zeros(3)}
        Bad().run(data, 1, DistillContext("cpu", 0, show_progress=False))


def _table(augments: dict, whole: bool = True) -> pd.DataFrame:
    """Rows of a suite whose methods were evaluated under ``augments`` (method -> its augmentations, as the suite
    resolved them), hard and soft labels, two seeds, and the whole-dataset reference (always ``augment: none``)
    listed first, as results.csv lists it."""
    rows = []
    if whole:
        rows.append({"dataset": "d", "ipc": None, "model": "convnet", "distiller": "whole", "method": "whole",
                     "seed": 0, "labels": "hard", "augment": "none", "accuracy": 90.0, "status": "ok"})
    base = {"random": 30.0, "m": 50.0}
    for method, augs in augments.items():
        for seed in (0, 1):
            for aug in augs:
                for labels, plus in (("hard", 0.0), ("soft", 10.0)):
                    rows.append({"dataset": "d", "ipc": 1, "model": "convnet", "distiller": method, "method": method,
                                 "seed": seed, "labels": labels, "augment": aug, "status": "ok",
                                 "accuracy": base[method] + plus + (5.0 if aug == "dsa" else 0.0) + seed})
    return pd.DataFrame(rows)


def test_robustness_scores_with_one_augmentation_and_the_whole_dataset_reference():
    """augment: [dsa], labels: both, eval.whole: the reference rows (augment none) must not make the scores look
    for IPC rows without augmentation (there are none): HLR and LRS are computed under dsa."""
    frame = robustness_frame(_table({"random": ["dsa"], "m": ["dsa"]})).set_index("seed")
    # HLR = 90 - (50 + 5 + seed) (hard, dsa); IOR = (60 + 5) - (40 + 5) = 20 (soft, dsa)
    assert frame.loc[0, "hlr"] == pytest.approx(35) and frame.loc[1, "hlr"] == pytest.approx(34)
    assert frame.loc[0, "ior"] == pytest.approx(20) and frame["lrs"].notna().all()
    assert frame.loc[0, "lrs"] == pytest.approx(lrs(35, 20))
    assert frame["augment"].tolist() == ["dsa", "dsa"]
    table, comp, _ = robustness_tables(Inputs([], _table({"random": ["dsa"], "m": ["dsa"]})), TableOptions())
    assert table.rows[0].cells[0].split(" / ")[0] != "–" and "nan" not in table.rows[0].cells[0]


def test_robustness_scores_under_augment_auto():
    """augment: auto evaluates each method under its paper's augmentation (m: dsa) and the random baseline
    without: the scores compare m with the random subset under the only setting the baseline has."""
    frame = robustness_frame(_table({"random": ["none"], "m": ["dsa"]})).set_index("seed")
    assert frame.loc[0, "ior"] == pytest.approx(65 - 40) and frame.loc[0, "hlr"] == pytest.approx(90 - 55)
    assert frame["lrs"].notna().all()
    assert frame.loc[0, "augment"] == "dsa" and frame.loc[0, "augment_random"] == "none"


def test_robustness_scores_of_a_run_with_augment_dsa_labels_both_and_the_reference(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text(ROB.format(distiller="{name: herding, config: {features: pixels}}", labels="both", extra="",
                                out=tmp_path / "out").replace("augment: [none, dsa]", "augment: [dsa]"))
    report = run_suite(suite, progress=False, echo=lambda *a: None)
    frame = robustness_frame(report.table[report.table["status"] == "ok"])
    assert len(frame) and frame["hlr"].notna().all() and frame["ior"].notna().all() and frame["lrs"].notna().all()
