"""The decode hook (Distiller.decode): a set stored encoded (multi-formation: IDC, NCFM's factor) is what the
results folder keeps and the report shows; every model is trained on its decoded images (evaluation, NAS, export)."""

import json

import pandas as pd
import pytest
import torch

from atombench import registry
from atombench.distillers.base import Distiller, SyntheticSet, class_balanced_labels, decoded
from atombench.distillers.coreset import RandomConfig
from atombench.errors import AtombenchError
from atombench.runner import run_suite


class Doubling(Distiller):
    """One real image per class and slot, stored once; decoded into the image and its mirror image."""

    Config = RandomConfig

    def distill(self, data, ipc, ctx):
        index = torch.cat([data.class_indices[c][:ipc] for c in range(data.num_classes)])
        return data.train_x[index], class_balanced_labels(data.num_classes, ipc), {"copies": 2}

    @classmethod
    def decode(cls, synset):
        images = torch.stack([synset.images, synset.images.flip(-1)], 1).flatten(0, 1)
        return SyntheticSet(images, synset.labels.repeat_interleave(2), dict(synset.meta))


class BadDecode(Doubling):
    @classmethod
    def decode(cls, synset):
        return SyntheticSet(synset.images.repeat(2, 1, 1, 1), synset.labels, dict(synset.meta))


@pytest.fixture
def plugins():
    registry.distillers.register("doubling", Doubling)
    registry.distillers.register("bad_decode", BadDecode)
    yield
    registry.distillers.unregister("doubling")
    registry.distillers.unregister("bad_decode")


def test_a_decoding_distiller_stores_its_budget_and_models_train_on_the_decoded_set(plugins, tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\ndatasets: [digits]\nipc: [2]\ndistillers: [random, doubling, bad_decode]\n"
                     "models: [{name: convnet, options: {width: 8, depth: 1}}]\n"
                     "eval: {epochs: 2, models_per_set: 1}\nexecution: {engine: sequential}\n"
                     f"device: cpu\noutput: {tmp_path / 'out'}\n")
    table = run_suite(suite, progress=False, echo=lambda *a, **k: None).table.set_index("distiller")
    # stored: the budget (2 per class), named decoder; random overrides nothing and names none
    stored = {d: SyntheticSet.load(tmp_path / "out" / "synsets" / f"{table.loc[d, 'synset_key']}.safetensors")
              for d in ("random", "doubling")}
    assert len(stored["doubling"].images) == 20 and stored["doubling"].meta["decoder"] == "doubling"
    assert "decoder" not in stored["random"].meta and decoded(stored["random"]) is stored["random"]
    # trained on: the decoded 40 images
    assert table.loc["doubling", "status"] == "ok" and int(table.loc["doubling", "num_images"]) == 40
    assert int(table.loc["random", "num_images"]) == 20
    # a decode that breaks the set fails its evaluations with one line naming the distiller; the rest ran
    assert table.loc["bad_decode", "status"] == "failed"
    assert "distiller 'bad_decode': decode must return" in table.loc["bad_decode", "error"]
    assert "\n" not in table.loc["bad_decode", "error"]


def test_export_writes_the_decoded_set_and_says_what_was_stored(plugins, tmp_path):
    from atombench.export import export_results

    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\ndatasets: [digits]\nipc: [1]\ndistillers: [doubling]\n"
                     "models: [{name: convnet, options: {width: 8, depth: 1}}]\n"
                     "eval: {epochs: 1, models_per_set: 1}\nexecution: {engine: sequential}\n"
                     f"device: cpu\noutput: {tmp_path / 'out'}\n")
    run_suite(suite, progress=False, echo=lambda *a, **k: None)
    manifest = export_results(tmp_path / "out", "pt", tmp_path / "export", echo=lambda *a, **k: None)
    entry, = json.loads(manifest.read_text())["sets"]
    assert entry["num_images"] == 20 and entry["stored_images"] == 10 and entry["decoded_by"] == "doubling"
    arrays = torch.load(tmp_path / "export" / entry["file"])
    assert arrays["images"].shape[0] == 20 and arrays["labels"].tolist() == [c for c in range(10) for _ in (0, 1)]


def test_decoded_refuses_a_decoder_that_is_not_installed():
    s = SyntheticSet(torch.zeros(2, 1, 8, 8), torch.tensor([0, 1]), {"decoder": "no_such_distiller"})
    with pytest.raises(AtombenchError, match="no_such_distiller"):
        decoded(s)
