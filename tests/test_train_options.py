"""The training options other papers' evaluations need (issue 30, item 2): the AdamW optimiser, a multi-step lr
schedule, and a mixing augmentation applied after the base one with a probability; each checked against torch's
own optimiser and scheduler or a hand count, kept out of job keys at its default, and carried by a Protocol."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from atombench.augment import DSA, Compose, Mix
from atombench.config import Invalid
from atombench.errors import AtombenchError
from atombench.jobs import TRAIN_KEYED_UNLESS_DEFAULT, job_key, train_augment, train_key_config
from atombench.protocols import Protocol, resolve_train
from atombench.runtime import stable_hash
from atombench.suite import load_suite
from atombench.train import (TrainConfig, milestone_passes, pass_lrs, resolve_speed, train_ensemble,
                             train_model)

from .conftest import run_cli

NEW = {"optimizer": "adamw", "lr_milestones": (0.5,), "lr_gamma": 0.5, "mix": "cutmix", "mix_prob": 0.5}


def _net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))


def _data():
    g = torch.Generator().manual_seed(1)
    return torch.randn(12, 6, generator=g), torch.arange(12) % 3


def _reference_loop(net, x, y, cfg, seed, make_opt, milestones=None, gamma=0.1):
    """torch's own optimiser and MultiStepLR (stepped after every pass), the batches drawn as train_model draws
    them: ``epochs + 1`` passes of ``randperm`` from the generator."""
    g = torch.Generator().manual_seed(seed)
    opt = make_opt(net.parameters())
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones, gamma) if milestones is not None else None
    for _ in range(cfg.epochs + 1):
        perm = torch.randperm(len(x), generator=g)
        for s in range(0, len(x), cfg.batch_size):
            idx = perm[s:s + cfg.batch_size]
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if sched is not None:
            sched.step()
    return net


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.allclose(p, q, rtol=1e-6, atol=1e-7) for p, q in zip(a.parameters(), b.parameters()))


# -- AdamW ---------------------------------------------------------------------------------------------------
def test_an_adamw_step_is_torch_adamws_step():
    x, y = _data()
    cfg = TrainConfig(epochs=0, batch_size=12, optimizer="adamw", lr=0.001, weight_decay=0.01, augment="none",
                      compile=False, amp="none")
    ours = _net()
    train_model(ours, x, y, cfg, torch.Generator().manual_seed(5))
    ref = _reference_loop(_net(), x, y, cfg, 5, lambda p: torch.optim.AdamW(p, lr=0.001, weight_decay=0.01))
    assert _same(ours, ref)
    # not vacuous: SGD's step, or AdamW with another (or SGD-style coupled) decay, lands elsewhere
    sgd = _net()
    train_model(sgd, x, y, dataclasses.replace(cfg, optimizer="sgd"), torch.Generator().manual_seed(5))
    assert not _same(ours, sgd)
    coupled = _reference_loop(_net(), x, y, cfg, 5, lambda p: torch.optim.Adam(p, lr=0.001, weight_decay=0.01))
    assert not _same(ours, coupled)


# -- the multi-step schedule ---------------------------------------------------------------------------------
def test_the_lr_of_every_pass_under_milestones(monkeypatch):
    # 10 epochs: milestones 2, 4, 6, 8 (NCFM's fifths); 11 passes
    cfg = TrainConfig(epochs=10, batch_size=12, optimizer="adamw", lr=0.001, weight_decay=0.01,
                      lr_milestones=[0.2, 0.4, 0.6, 0.8], lr_gamma=0.5, augment="none", compile=False, amp="none")
    assert cfg.lr_decay is False and milestone_passes(cfg) == [2, 4, 6, 8]
    want = [0.001] * 2 + [0.0005] * 2 + [0.00025] * 2 + [0.000125] * 2 + [0.0000625] * 3
    assert pass_lrs(cfg) == pytest.approx(want, rel=1e-12)
    seen = []
    step = torch.optim.AdamW.step

    def spy(self, *a, **kw):
        seen.append(self.param_groups[0]["lr"])
        return step(self, *a, **kw)

    monkeypatch.setattr(torch.optim.AdamW, "step", spy)
    x, y = _data()
    ours = _net()
    train_model(ours, x, y, cfg, torch.Generator().manual_seed(2))
    assert seen == pytest.approx(want, rel=1e-12)  # one step per pass: the lr each pass really trained with
    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    # the same parameters as torch's MultiStepLR on one optimiser (its moments kept across milestones)
    ref = _reference_loop(_net(), x, y, cfg, 2, lambda p: torch.optim.AdamW(p, lr=0.001, weight_decay=0.01),
                          [2, 4, 6, 8], 0.5)
    assert _same(ours, ref)
    # the halfway decay is untouched: x0.1 after pass epochs // 2 + 1
    assert pass_lrs(TrainConfig(epochs=9)) == pytest.approx([0.01] * 6 + [0.001] * 4)


def test_milestones_are_exact_fractions_and_follow_torchs_multisteplr():
    assert milestone_passes(TrainConfig(epochs=5, lr_milestones=[0.6])) == [3]  # 0.6 * 5 is 3.0000000000000004
    assert milestone_passes(TrainConfig(epochs=100, lr_milestones=[0.29])) == [29]  # 28.999999999999996 in floats
    assert milestone_passes(TrainConfig(epochs=2000, lr_milestones=[0.2, 0.4, 0.6, 0.8])) == [400, 800, 1200, 1600]
    # DataDAM's table's StepLR every 15 of 1800 epochs, as fractions k/120 written to float precision: 41 of the
    # 119 landed one pass early (0.008333333333333333 * 1800 is 14.99999999999999994)
    steps = milestone_passes(TrainConfig(epochs=1800, lr_milestones=[k / 120 for k in range(1, 120)]))
    assert steps == [15 * k for k in range(1, 120)]
    assert milestone_passes(TrainConfig(epochs=5, lr_milestones=[0.5999999])) == [2]  # truly below: stays
    # 2 epochs: floor(0.2 * 2) = 0 (torch applies it when the scheduler is created), floor(0.8 * 2) = 1
    cfg = TrainConfig(epochs=2, lr=1.0, lr_milestones=[0.2, 0.8], lr_gamma=0.5)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestone_passes(cfg), 0.5)
    torch_lrs = []
    for _ in range(cfg.epochs + 1):
        torch_lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert pass_lrs(cfg) == torch_lrs == [0.5, 0.25, 0.25]


@pytest.mark.parametrize("norm", ["none", "instancenorm"])
def test_ensembles_train_adamw_with_milestones_as_separate_runs(norm):
    from atombench.models.convnet import ConvNet, ConvNetConfig

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    images, labels = torch.randn(16, 1, 8, 8, generator=g), torch.arange(16) % 4
    cfg = TrainConfig(epochs=3, batch_size=8, optimizer="adamw", lr=0.003, weight_decay=0.01,
                      lr_milestones=[0.5], lr_gamma=0.5, compile=False, amp="none")

    def nets():
        out = []
        for s in range(2):
            torch.manual_seed(s)
            out.append(ConvNet(ConvNetConfig(width=4, depth=1, norm=norm), 1, 4, (8, 8)))
        return out

    alone, together = nets(), nets()
    dsa = DSA(digits=True)
    for k, n in enumerate(alone):
        train_model(n, images, labels, cfg, torch.Generator().manual_seed(10 + k), dsa)
    train_ensemble(together, images, labels, cfg, [torch.Generator().manual_seed(10 + k) for k in range(2)], dsa)
    for a, b in zip(alone, together):
        for name, t in a.state_dict().items():
            # the conv bias before instance norm has a zero true gradient: AdamW turns its float noise into
            # lr-sized steps (train_ensemble's docstring); it changes no output
            if not (norm == "instancenorm" and name == "blocks.0.0.bias"):
                assert torch.allclose(t.float(), b.state_dict()[name].float(), rtol=1e-4, atol=1e-6), name
        with torch.no_grad():
            assert torch.allclose(a.eval()(images), b.eval()(images), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(alone[0].classifier.weight, alone[1].classifier.weight)  # not vacuous
    # mixed targets differ per model: the ensemble refuses them (the runner trains those one by one)
    with pytest.raises(ValueError, match="one by one"):
        train_ensemble(nets(), images, labels, dataclasses.replace(cfg, mix="cutmix", mix_prob=0.5),
                       [torch.Generator().manual_seed(1)] * 2, dsa)


# -- mixing after the base augmentation ----------------------------------------------------------------------
def test_mix_comes_after_the_base_augmentation_with_the_given_probability():
    x = torch.randn(8, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    base = lambda z, g: z.flip(3)  # noqa: E731 - a deterministic first stage, to see the order
    aug = Compose([base, Mix("cutmix", 1.0)], mix_prob=0.3)
    g = torch.Generator().manual_seed(7)
    mixed = 0
    for _ in range(2000):
        out = aug(x, g)
        flipped = x.flip(3)
        if aug.last is None:  # unmixed: the base augmentation alone, and the targets stay the batch's own
            assert torch.equal(out, flipped)
            continue
        mixed += 1
        perm, lam = aug.last
        # every pixel is the flipped image's own or its partner's: CutMix of the base's output
        assert torch.all((out == flipped) | (out == flipped[perm]))
        assert 0 <= lam <= 1
    # 2000 batches at p = 0.3: 600 expected, std 20.5
    assert 520 < mixed < 680
    # seeded: the same generator seed, the same sequence of mixed and unmixed batches
    a, b = Compose([base, Mix("cutmix", 1.0)], 0.5), Compose([base, Mix("cutmix", 1.0)], 0.5)
    ga, gb = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    runs = [[(torch.equal(a(x, ga), b(x, gb)), a.last is None, b.last is None) for _ in range(50)]]
    assert all(same and ua == ub for same, ua, ub in runs[0]) and 0 < sum(ua for _, ua, _ in runs[0]) < 50
    # mix_prob 1: every batch is mixed
    always = Compose([Mix("cutmix", 1.0)], 1.0)
    assert all(always(x, g) is not None and always.last is not None for _ in range(20))


def test_a_config_with_mix_builds_dsa_then_cutmix():
    from types import SimpleNamespace

    data = SimpleNamespace(tags={})
    cfg = TrainConfig(augment="dsa", mix="cutmix", mix_prob=0.5, dsa_strategy="color_crop_flip_scale_rotate")
    aug = train_augment(cfg, data)
    assert isinstance(aug, Compose) and aug.mix_prob == 0.5
    assert isinstance(aug.stages[0], DSA) and aug.stages[0].families == ("color", "crop", "flip", "scale", "rotate")
    assert isinstance(aug.stages[1], Mix) and aug.stages[1].kind == "cutmix" and aug.stages[1].alpha == 1.0
    assert [type(s) for s in train_augment(TrainConfig(augment="none", mix="mixup"), data).stages] == [Mix]
    assert isinstance(train_augment(TrainConfig(augment="dsa"), data), DSA)  # no mix: as before


# -- keys ----------------------------------------------------------------------------------------------------
def test_the_new_options_stay_out_of_keys_at_their_defaults_and_enter_them_when_set():
    current = resolve_speed(vars(TrainConfig()), "cuda", 100)
    assert set(NEW) <= set(TRAIN_KEYED_UNLESS_DEFAULT) and not set(NEW) & set(train_key_config(current))
    legacy = {k: v for k, v in current.items() if k != "ensemble" and k not in TRAIN_KEYED_UNLESS_DEFAULT}
    assert job_key("s", "convnet", {}, current, 3) == stable_hash(["job", "s", "convnet", {}, legacy, 3])
    # a list from YAML or JSON and the tuple default are the same default
    assert job_key("s", "convnet", {}, dict(current, lr_milestones=[]), 3) == job_key("s", "convnet", {}, current, 3)
    keys = {job_key("s", "convnet", {}, dict(current, **{k: v}), 3) for k, v in NEW.items()}
    assert len(keys) == len(NEW) and job_key("s", "convnet", {}, current, 3) not in keys


def test_a_suite_that_writes_the_defaults_has_the_same_keys(tmp_path):
    from atombench.runner import build_graph, preflight
    from atombench.store import ResultsStore

    base = ("name: t\ndatasets: [{{name: digits, options: {{size: 8}}}}]\nipc: [1]\ndistillers: [random]\n"
            "models: [{{name: convnet, options: {{width: 8, depth: 1}}}}]\neval: {{epochs: 2{extra}}}\n"
            "execution: {{backend: sequential}}\ndevice: cpu\noutput: {out}\n")
    keys = []
    for name, extra in (("plain", ""),
                        ("explicit", ", optimizer: sgd, lr_milestones: [], lr_gamma: 0.1, mix: none, mix_prob: 1"),
                        ("ncfm", ", optimizer: adamw, weight_decay: 0.01, lr_milestones: [0.2, 0.4, 0.6, 0.8], "
                                 "lr_gamma: 0.5, mix: cutmix, mix_prob: 0.5")):
        p = tmp_path / f"{name}.yaml"
        p.write_text(base.format(extra=extra, out=tmp_path / "out"))
        graph = build_graph(preflight(load_suite(p)), ResultsStore(tmp_path / "out"))
        keys.append({j.key for j in graph.evaluate})
        if name == "ncfm":
            train = graph.evaluate[0].train
            assert (train["optimizer"], train["lr_milestones"], train["lr_decay"], train["mix"]) == \
                ("adamw", (0.2, 0.4, 0.6, 0.8), False, "cutmix")
    assert keys[0] == keys[1] and not keys[0] & keys[2]


# -- protocols -----------------------------------------------------------------------------------------------
def _common(**changes) -> dict:
    return {f.name: getattr(TrainConfig(**changes), f.name) for f in dataclasses.fields(TrainConfig)}


def test_a_protocol_with_the_new_fields_resolves_into_the_training_config():
    own = Protocol(epochs=2000, batch_size=128, optimizer="adamw", lr=0.001, weight_decay=0.01,
                   lr_milestones=(0.2, 0.4, 0.6, 0.8), lr_gamma=0.5, augment="dsa",
                   strategy="color_crop_flip_scale_rotate", mix="cutmix", mix_prob=0.5)
    cfg = TrainConfig(**resolve_train(_common(), own))
    assert (cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.lr_decay, cfg.lr_milestones, cfg.lr_gamma) == \
        ("adamw", 0.001, 0.01, False, (0.2, 0.4, 0.6, 0.8), 0.5)
    assert (cfg.augment, cfg.dsa_strategy, cfg.mix, cfg.mix_prob, cfg.cutmix_beta) == \
        ("dsa", "color_crop_flip_scale_rotate", "cutmix", 0.5, 1.0)
    assert milestone_passes(cfg) == [400, 800, 1200, 1600]


def test_a_protocol_that_names_a_setting_declares_its_group():
    """DM's protocol (SGD lr 0.01, halfway decay, DSA) stays DM's under a common protocol with AdamW, steps and
    CutMix; under the default common protocol it resolves exactly as before."""
    dm = Protocol(epochs=1000, batch_size=256, lr=0.01, lr_decay=True, augment="dsa")
    common = _common(optimizer="adamw", weight_decay=0.01, lr_milestones=[0.5], lr_gamma=0.5, mix="cutmix",
                     mix_prob=0.5, cutmix_beta=0.5)
    cfg = TrainConfig(**resolve_train(common, dm))
    assert (cfg.optimizer, cfg.weight_decay, cfg.lr_decay, cfg.lr_milestones, cfg.mix, cfg.mix_prob) == \
        ("sgd", 5e-4, True, (), "none", 1.0)
    plain = _common()
    assert resolve_train(plain, dm) == dict(plain, **dm.train_overrides())
    assert not set(NEW) & set(train_key_config(resolve_train(plain, dm)))
    # a protocol that names nothing of a group keeps the suite's settings of it
    short = TrainConfig(**resolve_train(common, Protocol(epochs=5)))
    assert (short.optimizer, short.lr_milestones, short.mix) == ("adamw", (0.5,), "cutmix")
    # naming mix resets its Beta parameter to the default (NCFM's and DD-Ranking's 1.0)
    assert resolve_train(common, Protocol(augment="dsa", mix="cutmix", mix_prob=0.5))["cutmix_beta"] == 1.0


@pytest.mark.parametrize("bad, words", [
    ({"optimizer": "adamw"}, "weight_decay"), ({"optimizer": "adam", "weight_decay": 0.0}, "optimizer"),
    ({"lr_milestones": (0.8, 0.4)}, "lr_milestones"), ({"lr_milestones": (0.5,), "lr_decay": True}, "lr_decay"),
    ({"lr_gamma": 0.5}, "lr_gamma"), ({"mix": "cutmix"}, "augment"),
    ({"augment": "dsa", "mix_prob": 0.5}, "mix_prob"), ({"augment": "dsa", "mix": "cutmix", "mix_prob": 1.5},
                                                        "mix_prob")])
def test_bad_protocols_are_one_line_errors(bad, words):
    with pytest.raises(Invalid) as exc:
        Protocol(**bad)
    assert words in str(exc.value) and "\n" not in str(exc.value)


# -- bad values in a suite -----------------------------------------------------------------------------------
@pytest.mark.parametrize("extra, words", [
    ("optimizer: adam", "optimizer"), ("lr_milestones: [0.8, 0.4]", "lr_milestones"),
    ("lr_milestones: [0, 0.5]", "lr_milestones"), ("lr_milestones: 0.5", "lr_milestones"),
    ("lr_gamma: 0", "lr_gamma"), ("mix: cutmix, mix_prob: 1.5", "mix_prob"), ("mix_prob: 0.5", "mix_prob"),
    ("mix: cut", "mix"), ("mix: cutmix, augment: [dsa, mixup]", "mix")])
def test_bad_values_are_one_line_problems(tmp_path, extra, words):
    p = tmp_path / "s.yaml"
    p.write_text(f"name: t\ndatasets: [digits]\nipc: [1]\ndistillers: [random]\nmodels: [convnet]\n"
                 f"eval: {{{extra}}}\n")
    with pytest.raises(AtombenchError) as exc:
        load_suite(p)
    lines = [line for line in str(exc.value).splitlines() if words in line]
    assert len(lines) == 1 and "eval" in lines[0], str(exc.value)


def test_a_bad_value_exits_2_with_one_line(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("name: t\ndatasets: [digits]\nipc: [1]\ndistillers: [random]\nmodels: [convnet]\n"
                 "eval: {mix: cutmix, mix_prob: 2}\n")
    done = run_cli("validate", p, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = [line for line in (done.stdout + done.stderr).splitlines() if "mix_prob" in line]
    assert len(lines) == 1 and "(0, 1]" in lines[0]


def test_a_suite_with_adamw_steps_and_cutmix_runs_and_trains_mixed_batches_one_by_one(tmp_path):
    from atombench.runner import run_suite

    p = tmp_path / "s.yaml"
    p.write_text(f"name: t\ndatasets: [{{name: digits, options: {{size: 8}}}}]\nipc: [1]\ndistillers: [random]\n"
                 "models: [{name: convnet, options: {width: 8, depth: 1}}]\nseeds: 1\n"
                 "eval: {epochs: 3, models_per_set: 2, ensemble: on, augment: dsa, optimizer: adamw, lr: 0.001, "
                 "weight_decay: 0.01, lr_milestones: [0.5], lr_gamma: 0.5, mix: cutmix, mix_prob: 0.5}\n"
                 f"execution: {{backend: sequential}}\ndevice: cpu\noutput: {tmp_path / 'out'}\n")
    table = run_suite(p, progress=False, echo=lambda *a, **k: None).table
    assert (table["status"] == "ok").all(), table.get("error")
    # mixed targets: the runner's ensemble falls back to one model at a time
    assert len(table) == 2 and (table["ensemble_size"] == 1).all()
    import json

    train = json.loads(table["train_config"].iloc[0])
    assert (train["optimizer"], train["lr_milestones"], train["mix"], train["mix_prob"]) == \
        ("adamw", [0.5], "cutmix", 0.5)


def test_the_fairness_table_names_the_optimiser_schedule_and_mix_of_a_protocol():
    import json

    from atombench.report.fairness import training_extras

    ncfm = dict(vars(TrainConfig(optimizer="adamw", weight_decay=0.01, lr_milestones=[0.2, 0.4, 0.6, 0.8],
                                 lr_gamma=0.5, augment="dsa", mix="cutmix", mix_prob=0.5)))
    assert training_extras(json.dumps(ncfm)) == ["AdamW wd 0.01", "lr x0.5 at 0.2/0.4/0.6/0.8 of the epochs",
                                                 "then cutmix p 0.5"]
    assert training_extras(json.dumps(vars(TrainConfig()))) == [] and training_extras(None) == []
    assert training_extras("not json") == []
