"""The ncfm distiller through atombench's public API: registration, the statistic, determinism, resume, options,
the declared protocol and published numbers, bad configs, and a suite with both protocols."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points

import pytest
import torch

from atombench.distillers.base import DistillContext
from atombench.errors import AtombenchError
from atombench.factories import build_model, load_dataset, make_distiller

from atombench_ncfm.distiller import NCFM_PROTOCOL, NCFMDistiller, decode, mix_init
from atombench_ncfm.loss import empirical_cf

TINY = {"iterations": 3, "batch_real": 12, "num_freqs": 64}


@pytest.fixture(scope="module")
def data():
    return load_dataset("digits", {"size": 16})


def run(data, config, ipc=1, seed=0, **ctx):
    return make_distiller("ncfm", config).run(data, ipc, DistillContext("cpu", seed=seed, show_progress=False,
                                                                        **ctx))


def test_registered_by_its_entry_point():
    eps = {e.name: e.value for e in entry_points(group="atombench.distillers")}
    assert eps.get("ncfm") == "atombench_ncfm.distiller:NCFMDistiller", "pip install -e plugins/atombench-ncfm"
    from atombench import registry

    assert registry.distillers.get("ncfm") is NCFMDistiller


def test_the_matched_statistic_is_the_empirical_cf_of_the_normalised_embedding(data):
    d = make_distiller("ncfm", TINY)
    net = build_model("convnet", {}, data, 0)
    x = data.train_x[:6]
    e = net.embed(x).flatten(1)
    d._freqs = torch.randn(5, e.shape[1], generator=torch.Generator().manual_seed(0))
    stats = d.stats(net, x, 2)  # two classes of three images
    for c in range(2):
        re, im = empirical_cf(torch.nn.functional.normalize(e[3 * c:3 * c + 3], dim=1), d._freqs)
        assert torch.allclose(stats.embed[c], torch.cat([re, im]), atol=1e-5)


def test_the_real_passs_bf16_autocast_does_not_round_the_frequencies(data):
    """Under real_amp: bf16 the projection onto t ran in bf16 for the real images only: the two CFs were taken at
    different frequencies. The statistic is computed in float32 whatever the autocast."""
    d = make_distiller("ncfm", TINY)
    e = torch.randn(6, 32, generator=torch.Generator().manual_seed(1))
    d._freqs = 7 * torch.randn(64, 32, generator=torch.Generator().manual_seed(0))
    plain = d.embedding_statistic(e)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = d.embedding_statistic(e)
    assert under.dtype == torch.float32 and torch.equal(under, plain)


def test_a_tiny_distillation_is_reproducible_and_keeps_pixels_in_range(data):
    a, b = run(data, TINY, ipc=2), run(data, TINY, ipc=2)
    assert a.images.shape == (20, 1, 16, 16) and a.labels.tolist() == [c for c in range(10) for _ in range(2)]
    assert torch.equal(a.images, b.images)
    assert len(a.meta["loss_curve"]) == 3 and all(v == v for _, v in a.meta["loss_curve"])
    pixels = data.denormalise(a.images)
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5  # the code's clamp to [0, 1]
    assert a.meta["pixel_space"] == "unit_interval" and a.meta["lr_img"] == 0.001  # adamw 0.01 x 0.1
    assert not torch.equal(run(data, TINY, ipc=2, seed=1).images, a.images)


@pytest.mark.parametrize("extra", [{}, {"sampling_net": True, "sampling_freqs": 64}])
def test_a_killed_run_resumes_exactly(data, extra):
    cfg = dict(TINY, iterations=4, **extra)
    whole = run(data, cfg)
    saved = {}
    run(data, cfg, snapshots=[2], on_snapshot=lambda it, synset, state: saved.update(state=state, synset=synset))
    assert saved["synset"].meta["iteration"] == 2 and "ncfm" in saved["state"]
    if extra:
        assert "psi" in saved["state"]["ncfm"]
    resumed = run(data, cfg, resume=saved["state"])
    assert torch.equal(resumed.images, whole.images)
    assert resumed.meta["loss_curve"] == whole.meta["loss_curve"]


def test_the_sampling_network_learns_and_changes_the_result(data):
    plain = run(data, TINY)
    minmax = run(data, dict(TINY, sampling_net=True))
    assert not torch.equal(plain.images, minmax.images)


def test_multi_formation_decodes_tiles_in_class_order():
    # four constant tiles of a 2 x 2 image, each upsampled to 2 x 2
    img = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    out = decode(img, 2)
    assert out.shape == (4, 1, 2, 2) and [float(t.mean()) for t in out] == [1.0, 2.0, 3.0, 4.0]
    assert all(torch.all(t == t.flatten()[0]) for t in out)
    # mix initialisation then decoding gives back (shrunk) real images: constant images stay constant
    real = torch.arange(8.0).view(8, 1, 1, 1).expand(8, 1, 4, 4)  # ipc 2, factor 2: 8 real images
    tiles = decode(mix_init(real, ipc=2, factor=2), 2)
    assert sorted(float(t.mean()) for t in tiles) == list(range(8))
    assert [float(t.mean()) for t in tiles[:4]] == [0.0, 2.0, 4.0, 6.0]  # image 0's tiles: reals 0, 2, 4, 6


def test_factor_stores_ipc_images_and_atombench_decodes_them_for_training(data):
    """Multi-formation through atombench's decode hook: the set stores ``ipc`` images per class (the budget) and
    names ncfm as its decoder; ``decoded`` gives the ``ipc * factor^2`` images per class a model trains on, equal to
    decoding the optimised pixels in [0, 1] with the code's grey padding, then normalising."""
    from atombench.distillers.base import decoded

    s = run(data, dict(TINY, factor=2, init="mix"), ipc=1)
    assert s.images.shape == (10, 1, 16, 16) and s.labels.tolist() == list(range(10))
    assert s.meta["decoder"] == "ncfm" and s.meta["stored_images"] == 10 and s.meta["decoded_images"] == 40
    d = decoded(s)
    assert d.images.shape == (40, 1, 16, 16) and d.labels.tolist() == [c for c in range(10) for _ in range(4)]
    assert "decoder" not in d.meta and d.meta["decoded_by"] == "ncfm" and d.meta["num_images"] == 40
    assert decoded(d) is d, "a decoded set is not decoded again"
    mean, std = float(data.mean[0]), float(data.std[0])
    pixels = s.images * std + mean  # back to [0, 1], where the code decodes
    torch.testing.assert_close(d.images, (decode(pixels, 2, 0.5) - mean) / std, atol=1e-5, rtol=1e-5)
    assert decoded(run(data, dict(TINY), ipc=1)).images.shape == (10, 1, 16, 16), "factor 1: the set itself"


def test_decoding_pads_odd_sizes_per_channel():
    img = torch.zeros(1, 2, 3, 3)
    out = decode(img, 2, [1.0, -1.0])  # padded to 4 x 4: the last row and column take each channel's value
    assert out.shape == (4, 2, 3, 3)
    assert float(out[3, 0].max()) > 0 and float(out[3, 1].min()) < 0 and float(out[0].abs().max()) == 0


def test_pretrained_blend_and_calibration_cache_their_networks(data, tmp_path):
    cfg = dict(TINY, pretrained=2, pretrain_epochs=0, pretrain_batch=256, calib_weight=1.0,  # one pass each,
               net_options={"width": 16})  # of a narrow ConvNet
    a = run(data, cfg, cache_dir=tmp_path)
    cached = sorted((tmp_path / "ncfm_premodels").glob("*.safetensors"))
    assert len(cached) == 2
    stamp = [p.stat().st_mtime_ns for p in cached]
    b = run(data, cfg, cache_dir=tmp_path)  # reused, not retrained
    assert [p.stat().st_mtime_ns for p in cached] == stamp and torch.equal(a.images, b.images)


@pytest.mark.parametrize("bad, words", [({"factor": 0}, "factor"), ({"calib_weight": 1.0}, "pretrained"),
                                        ({"cuda_graph": True}, "cuda_graph"), ({"alpha": 0, "beta": 0}, "alpha"),
                                        ({"sampling_net": True, "compile": "default"}, "compile"),
                                        ({"num_freq": 3}, "num_freq")])
def test_bad_configs_are_one_line_errors(bad, words):
    with pytest.raises(AtombenchError) as exc:
        make_distiller("ncfm", bad)
    assert words in str(exc.value) and "\n" not in str(exc.value)


def test_the_protocol_says_what_it_sets_and_where_each_value_comes_from():
    overrides = NCFM_PROTOCOL.train_overrides()
    assert overrides == {"epochs": 2000, "batch_size": 128, "optimizer": "adamw", "lr": 0.001, "weight_decay": 0.01,
                         "lr_decay": False, "lr_milestones": (0.2, 0.4, 0.6, 0.8), "lr_gamma": 0.5, "augment": "dsa",
                         "dsa_strategy": "color_crop_flip_scale_rotate", "mix": "cutmix", "mix_prob": 0.5}
    sources = dict(NCFM_PROTOCOL.sources)
    named = {k for k in overrides if k not in ("lr_decay", "dsa_strategy")} | {"strategy", "checkpoint"}
    assert named <= set(sources)  # every value it sets has its source
    assert "AdamW" in sources["optimizer"] and "torch's default 0.01" in sources["weight_decay"]
    assert "MultiStepLR" in sources["lr_milestones"] and "CutMix" in sources["mix"] and "mix_p" in sources["mix_prob"]


def test_the_protocol_resolves_into_ncfms_training():
    """Under any common protocol (here the default one), a model under NCFM's protocol trains with AdamW (lr 0.001,
    decoupled decay 0.01), lr x0.5 after passes 400, 800, 1200 and 1600, DSA then CutMix on half the batches."""
    import dataclasses

    from atombench.jobs import train_augment
    from atombench.augment import DSA, Compose, Mix
    from atombench.protocols import resolve_train
    from atombench.train import TrainConfig, milestone_passes, pass_lrs

    common = {f.name: getattr(TrainConfig(), f.name) for f in dataclasses.fields(TrainConfig)}
    cfg = TrainConfig(**resolve_train(common, NCFM_PROTOCOL))
    assert (cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.batch_size, cfg.epochs) == ("adamw", 0.001, 0.01, 128, 2000)
    assert milestone_passes(cfg) == [400, 800, 1200, 1600] and cfg.lr_decay is False
    lrs = pass_lrs(cfg)
    assert (lrs[399], lrs[400], lrs[1599], lrs[1600]) == pytest.approx((1e-3, 5e-4, 1.25e-4, 6.25e-5))
    aug = train_augment(cfg, load_dataset("digits", {"size": 8}))
    assert isinstance(aug, Compose) and aug.mix_prob == 0.5
    assert isinstance(aug.stages[0], DSA) and isinstance(aug.stages[1], Mix) and aug.stages[1].kind == "cutmix"
    assert aug.stages[1].alpha == 1.0  # Beta(1, 1)


def test_published_numbers_are_well_formed_and_verified():
    from atombench.report.published import plugin_published

    rows, problems = plugin_published(["ncfm"])
    assert problems == [] and len(rows) == 9 and rows["verified"].all()
    cell = rows[(rows["dataset"] == "cifar10") & (rows["ipc"] == 10)].iloc[0]
    assert (cell["mean"], cell["std"], cell["model"]) == (71.8, 0.3, "convnet")


def test_a_bad_config_in_a_suite_exits_2_with_one_line(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text("name: t\ndatasets: [digits]\nipc: [1]\ndistillers: [{name: ncfm, config: {factor: 0}}]\n"
                     "models: [convnet]\n")
    done = subprocess.run([sys.executable, "-m", "atombench", "validate", str(suite)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    lines = [l for l in (done.stdout + done.stderr).splitlines() if "factor" in l]
    assert len(lines) == 1 and "Traceback" not in done.stderr


def test_a_suite_with_ncfm_runs_under_both_protocols(tmp_path, monkeypatch):
    from atombench.protocols import with_
    from atombench.runner import run_suite

    from atombench.distillers.coreset import RandomDistiller

    # the declared protocol trains 2000 epochs: 2 here, everything else as declared (batch 128, DSA w/o cutout);
    # random's (DC's evaluation, 300 epochs) likewise
    monkeypatch.setattr(NCFMDistiller, "protocol", with_(NCFM_PROTOCOL, epochs=2))
    monkeypatch.setattr(RandomDistiller, "protocol", with_(RandomDistiller.protocol, epochs=2))
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: t\ndatasets: [{name: digits, options: {size: 16}}]\nipc: [1]\n"
                     "distillers: [random, {name: ncfm, config: {iterations: 2, batch_real: 8, num_freqs: 32}}]\n"
                     "models: [convnet]\nseeds: 1\neval: {epochs: 2, models_per_set: 1, protocol: both}\n"
                     f"execution: {{backend: sequential}}\ndevice: cpu\noutput: {tmp_path / 'out'}\n")
    table = run_suite(suite, progress=False, echo=lambda *a, **k: None).table
    assert (table["status"] == "ok").all(), table.get("error")
    assert set(table["distiller"]) == {"random", "ncfm"} and set(table["protocol"]) == {"paper", "common"}
    rows = table.set_index(["distiller", "protocol"])
    assert rows.loc[("ncfm", "paper"), "batch_size"] == 128 and rows.loc[("ncfm", "common"), "batch_size"] == 256
    own, common = (json.loads(rows.loc[("ncfm", p), "train_config"]) for p in ("paper", "common"))
    assert (own["optimizer"], own["lr_milestones"], own["mix"], own["mix_prob"]) == ("adamw", [0.2, 0.4, 0.6, 0.8],
                                                                                      "cutmix", 0.5)
    assert (common["optimizer"], common["lr_milestones"], common["mix"]) == ("sgd", [], "none")


def test_the_sampling_network_runs_eagerly_under_atombenchs_compile_default():
    """atombench's ``compile: auto`` (compiled on the CPU for long runs) leaves psi's statistic eager."""
    assert make_distiller("ncfm", {"sampling_net": True}).config.compile == "none"
    assert make_distiller("ncfm", {}).config.compile == "auto"
