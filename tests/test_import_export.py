"""Sets made elsewhere in (the ``files`` distiller, ``atombench evaluate``), sets made here out (``atombench
export``): round trips bit for bit, each reference code's file layout written as that code writes it, keys from
the files' checksums, safe loading."""

import copy
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from atombench.data.base import normalise
from atombench.distillers.base import SyntheticSet
from atombench.distillers.files import FilesConfig, SetFileError, import_set
from atombench.export import export_results
from atombench.factories import load_dataset
from atombench.runner import load_checked, run_suite

from .conftest import run_cli

DIGITS = {"name": "digits", "options": {"size": 8}}
SMALL = {"name": "convnet", "options": {"width": 8, "depth": 1}}
FASHION = Path("/usr/share/datasets/fashion-mnist")


def _suite(tmp: Path, name: str, distillers, **extra) -> Path:
    doc = {"name": name, "datasets": [DIGITS], "ipc": [1], "seeds": 1, "distillers": distillers,
           "models": [SMALL], "eval": {"epochs": 4, "models_per_set": 2}, "execution": {"backend": "sequential"},
           "device": "cpu", "output": str(tmp / name)}
    doc.update(extra)
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _run(path: Path) -> pd.DataFrame:
    out = run_suite(path, progress=False, echo=lambda *a: None)
    return pd.read_csv(out.root / "results.csv")


def _images(root: Path, key: str) -> SyntheticSet:
    return SyntheticSet.load(root / "synsets" / f"{key}.safetensors")


def _digits():
    return load_dataset("digits", {"size": 8})


def _files(path, **config) -> dict:
    return {"name": "files", "label": config.pop("label", "imported"), "config": {"path": str(path), **config}}


# -- round trip ----------------------------------------------------------------------------------------------
def test_round_trip_pt_npz_png_bit_identical_and_same_accuracy(tmp_path):
    original = _run(_suite(tmp_path, "orig", [{"name": "dm", "config": {"iterations": 4, "batch_real": 16}}]))
    row = original.iloc[0]
    stored = _images(tmp_path / "orig", row["synset_key"])
    data = _digits()
    for fmt in ("pt", "npz", "png"):
        out = tmp_path / f"exp_{fmt}"
        manifest = json.loads(export_results(tmp_path / "orig", fmt, out, echo=lambda *a: None).read_text())
        (entry,) = manifest["sets"]
        assert entry["key"] == row["synset_key"] and entry["method"] == "dm" and entry["ipc"] == 1
        assert entry["mean"] == [float(m) for m in data.mean] and entry["versions"]["torch"] == torch.__version__
        suffix = "" if fmt == "png" else f".{fmt}"
        template = str(out / "sets" / "{method}" / "{dataset}" / ("ipc{ipc}_seed{seed}" + suffix))
        got = _run(_suite(tmp_path, f"imp_{fmt}", [_files(template, method="dm", label="dm_back")]))
        back = _images(tmp_path / f"imp_{fmt}", got.iloc[0]["synset_key"])
        assert back.meta["imported"] and back.meta["source_path"].startswith(str(out))
        if fmt == "png":  # 8-bit pixels: the images are the stored set rounded to 1/255, exactly
            pixels = (data.denormalise(stored.images).clamp(0, 1) * 255).round() / 255
            expected = (pixels - data.mean[0]) / data.std[0]
            assert torch.equal(back.images, expected.float())
            assert not torch.equal(back.images, stored.images)
            continue
        assert back.images.dtype == torch.float32 and torch.equal(back.images, stored.images)  # bit for bit
        assert torch.equal(back.labels, stored.labels)
        # the same models (seeds) trained on the same bits: the same accuracies to the last digit
        assert got["accuracy"].tolist() == original["accuracy"].tolist()
        assert got["synset_key"].iloc[0] != row["synset_key"]  # a set of its own, never the original's result
    # an export into a folder that holds another export (another format) is refused, nothing written; the same
    # export again (same results folder and format) rewrites it
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "exp_pt").rglob("*"))
    from atombench.errors import UsageError

    with pytest.raises(UsageError, match="holds another export"):
        export_results(tmp_path / "orig", "png", tmp_path / "exp_pt", echo=lambda *a: None)
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "exp_pt").rglob("*")) == before
    export_results(tmp_path / "orig", "pt", tmp_path / "exp_pt", echo=lambda *a: None)


def test_round_trip_of_a_whitened_set(tmp_path):
    """A set of a ZCA-whitened dataset is exported whitened, with the matrices that undo it, and re-imported
    into the same whitening bit for bit."""
    ds = dict(DIGITS, zca={"kind": "unit_interval", "eps": 0.1})
    original = _run(_suite(tmp_path, "zo", ["random"], datasets=[ds]))
    manifest = json.loads(export_results(tmp_path / "zo", "npz", tmp_path / "z", echo=lambda *a: None).read_text())
    (entry,) = manifest["sets"]
    assert entry["space"] == "zca" and entry["zca"]["kind"] == "unit_interval"
    with np.load(tmp_path / "z" / entry["zca"]["file"]) as z:
        data = load_dataset("digits", {"size": 8}, "unit_interval", 0.1)
        assert np.array_equal(z["inverse_transform"], data.zca.inverse_transform.numpy())
    got = _run(_suite(tmp_path, "zi", [_files(tmp_path / "z" / entry["file"], label="random")], datasets=[ds]))
    a = _images(tmp_path / "zo", original["synset_key"].iloc[0])
    b = _images(tmp_path / "zi", got["synset_key"].iloc[0])
    assert torch.equal(a.images, b.images) and got["accuracy"].tolist() == original["accuracy"].tolist()


def test_png_export_of_an_8bit_exact_set_round_trips_and_reexports_identically(tmp_path):
    """A set whose pixels are multiples of 1/255 (PNG's grid) survives PNG bit for bit: importing it and
    exporting it again writes the same image files."""
    data = _digits()
    pixels = (data.denormalise(data.train_x[[int(ci[0]) for ci in data.class_indices]]) * 255).round() / 255
    path = tmp_path / "set.pt"
    torch.save({"images": pixels, "labels": torch.arange(10)}, path)
    first = _run(_suite(tmp_path, "a", [_files(path, space="pixels")]))
    export_results(tmp_path / "a", "png", tmp_path / "png1", echo=lambda *a: None)
    folder = tmp_path / "png1" / "sets" / "imported" / "digits" / "ipc1_seed0"
    again = _run(_suite(tmp_path, "b", [_files(folder, space="pixels")]))
    a, b = _images(tmp_path / "a", first.iloc[0]["synset_key"]), _images(tmp_path / "b", again.iloc[0]["synset_key"])
    assert torch.equal(a.images, b.images)
    export_results(tmp_path / "b", "png", tmp_path / "png2", echo=lambda *a: None)
    for f in sorted(folder.rglob("*.png")):
        assert f.read_bytes() == (tmp_path / "png2" / f.relative_to(tmp_path / "png1")).read_bytes()


# -- the reference codes' files ------------------------------------------------------------------------------
def _class_major(data, ipc, seed, noise=0.0):
    """Real images of each class in the references' order ([0]*ipc + [1]*ipc + ...), normalised space."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.cat([ci[torch.randperm(len(ci), generator=g)[:ipc]] for ci in data.class_indices])
    return data.train_x[idx] + noise * torch.randn(data.train_x[idx].shape, generator=g)


def _reference_labels(num_classes, ipc):
    # as DC/DM/DataDAM's main scripts build label_syn: a float array per class, cast to long, flattened
    return torch.tensor(np.array([np.ones(ipc) * i for i in range(num_classes)]), dtype=torch.long,
                        requires_grad=False).view(-1)


def test_dc_res_file_one_experiment_per_seed(tmp_path):
    """VICO-UoE/DatasetCondensation main.py / main_DM.py: after each experiment data_save gets [images, labels]
    (normalised space, deep copies on the CPU) and the whole dict is saved with the accuracies as numpy floats."""
    data, ipc = _digits(), 2
    data_save, accs_all_exps = [], {"ConvNet": []}
    for exp in range(2):
        image_syn = _class_major(data, ipc, exp, noise=0.1).requires_grad_(True)
        label_syn = _reference_labels(10, ipc)
        accs_all_exps["ConvNet"] += [np.float64(0.5 + exp / 10), np.float64(0.55)]  # np.sum(...) / num_exp
        data_save.append([copy.deepcopy(image_syn.detach().cpu()), copy.deepcopy(label_syn.detach().cpu())])
        torch.save({"data": data_save, "accs_all_exps": accs_all_exps},
                   tmp_path / f"res_DM_digits_ConvNet_{ipc}ipc.pt")
    suite = _suite(tmp_path, "dc", [_files(tmp_path / "res_DM_{dataset}_ConvNet_{ipc}ipc.pt", space="normalised",
                                           method="dm")], ipc=[ipc], seeds=2)
    df = _run(suite)
    assert (df["status"] == "ok").all() and df["accuracy"].notna().all() and set(df["seed"]) == {0, 1}
    for seed, (images, labels) in enumerate(data_save):  # the suite's seed picks the experiment
        key = df[df["seed"] == seed]["synset_key"].iloc[0]
        got = _images(tmp_path / "dc", key)
        assert torch.equal(got.images, images) and torch.equal(got.labels, labels)
        assert got.meta["source_format"] == "dc" and got.meta["source_detail"] == f"entry {seed} of 2"
    suite, plan = load_checked(suite)
    assert plan.distillers["imported"].eval_with_dsa  # DM's papers evaluate with DSA: augment auto follows
    from atombench.report import ReportOptions, build_report

    notes = build_report(tmp_path / "dc", ReportOptions(plots=False, images=False)).notes
    path = tmp_path / f"res_DM_digits_ConvNet_{ipc}ipc.pt"
    assert f"imported: imported on digits IPC 2 seed 1 was read from {path} (dc, normalised space), not distilled " \
           f"by this run" in notes


def test_datadam_res_file_takes_the_latest_entry(tmp_path):
    """DataDistillation/DataDAM main_DataDAM.py: res_..._<ipc>ipc_.pt (a trailing underscore); data_save grows at
    every evaluation (max_mean is never raised above 0), so the last entry is the latest set."""
    data, ipc = _digits(), 1
    data_save, accs_all_exps = [], {"ConvNet": []}
    label_syn = _reference_labels(10, ipc)
    for it in range(3):  # three evaluations of one experiment
        image_syn = _class_major(data, ipc, 0, noise=0.05 * it)
        data_save.append([copy.deepcopy(image_syn.detach().cpu()), copy.deepcopy(label_syn.detach().cpu())])
        torch.save({"data": data_save, "accs_all_exps": accs_all_exps},
                   tmp_path / f"res_DataDAM_digits_ConvNet_{ipc}ipc_.pt")
    df = _run(_suite(tmp_path, "dd", [_files(tmp_path / "res_DataDAM_{dataset}_ConvNet_{ipc}ipc_.pt",
                                             space="normalised", method="datadam")]))
    got = _images(tmp_path / "dd", df["synset_key"].iloc[0])
    assert got.meta["source_format"] == "datadam" and torch.equal(got.images, data_save[-1][0])
    assert (df["status"] == "ok").all()


@pytest.mark.parametrize("lr_as", ["tensor", "float"])
def test_mtt_images_labels_lr_files_and_the_learned_step_size(tmp_path, lr_as):
    """GeorgeCazenavette/mtt-distillation distill.py: images_<it>.pt and labels_<it>.pt (torch.save of CPU
    tensors); codes derived from it add lr_<it>.pt, syn_lr.detach().cpu() or syn_lr.item(). With method: mtt the
    paper protocol trains with that step size."""
    data, ipc = _digits(), 1
    image_syn = _class_major(data, ipc, 3, noise=0.1).requires_grad_(True)
    label_syn = torch.tensor(np.array([np.ones(ipc, dtype=np.int_) * i for i in range(10)]), dtype=torch.long).view(-1)
    syn_lr = torch.tensor(0.0123).requires_grad_(True)
    run = tmp_path / "logged_files" / "digits" / "run"
    run.mkdir(parents=True)
    image_save = image_syn.detach()
    torch.save(image_save.cpu(), run / "images_100.pt")
    torch.save(label_syn.cpu(), run / "labels_100.pt")
    torch.save(syn_lr.detach().cpu() if lr_as == "tensor" else syn_lr.item(), run / "lr_100.pt")
    got = import_set(run / "images_100.pt", FilesConfig(path="x", space="normalised"), data, 1, 0)
    assert got.raw.format == "mtt" and torch.equal(got.images, image_save) and abs(got.lr - 0.0123) < 1e-7
    assert torch.equal(got.labels, label_syn)
    if lr_as == "float":
        return  # the run below once is enough (1000 epochs of MTT's protocol)
    df = _run(_suite(tmp_path, "mtt", [_files(run / "images_{ipc}00.pt", space="normalised", method="mtt")],
                     eval={"epochs": 4, "models_per_set": 1, "protocol": "paper", "compile": False}))
    got = _images(tmp_path / "mtt", df["synset_key"].iloc[0])
    assert got.meta["source_format"] == "mtt" and abs(got.meta["syn_lr"] - 0.0123) < 1e-7
    assert torch.equal(got.images, image_save)
    assert df["protocol"].tolist() == ["paper"] and abs(df["lr_used"].iloc[0] - 0.0123) < 1e-7
    assert df["epochs"].iloc[0] == 1000  # MTT's own protocol, not the suite's


def test_mtt_zca_space_is_evaluated_in_the_matching_whitening(tmp_path):
    """MTT's images under --zca are whitened [0, 1] images (kornia ZCAWhitening, eps 0.1, fitted on the
    training set): with the dataset entry whitened the same way they are used as stored."""
    data = load_dataset("digits", {"size": 8}, "unit_interval", 0.1)
    image_save = _class_major(data, 1, 0)  # already whitened
    torch.save(image_save, tmp_path / "images_5.pt")
    torch.save(_reference_labels(10, 1), tmp_path / "labels_5.pt")
    ds = dict(DIGITS, zca={"kind": "unit_interval", "eps": 0.1})
    df = _run(_suite(tmp_path, "z", [_files(tmp_path / "images_5.pt", space="zca", zca="unit_interval")],
                     datasets=[ds]))
    assert torch.equal(_images(tmp_path / "z", df["synset_key"].iloc[0]).images, image_save)
    # the same file on the unwhitened dataset: de-whitened into the normalised space
    plain = _digits()
    got = import_set(tmp_path / "images_5.pt", FilesConfig(path="x", space="zca", zca="unit_interval"), plain, 1, 0)
    assert torch.allclose(got.images, data.zca.inverse(image_save), atol=1e-5)


def test_npz_safetensors_folder_and_soft_labels(tmp_path):
    from PIL import Image
    from safetensors.torch import save_file

    data = _digits()
    x = _class_major(data, 1, 0)
    pixels = data.denormalise(x).clamp(0, 1)
    probs = torch.softmax(torch.randn(10, 10, generator=torch.Generator().manual_seed(0)), 1)
    np.savez(tmp_path / "s.npz", x=pixels.numpy(), y=np.arange(10), soft_labels=probs.numpy())
    save_file({"images": x.contiguous(), "labels": torch.arange(10)}, str(tmp_path / "s.safetensors"))
    for c, name in enumerate(data.classes):  # class folders by class name, one PNG per image
        (tmp_path / "folder" / name).mkdir(parents=True)
        Image.fromarray((pixels[c, 0] * 255).round().byte().numpy()).save(tmp_path / "folder" / name / "a.png")
    cfg = FilesConfig
    npz = import_set(tmp_path / "s.npz", cfg(path="x", space="pixels"), data, 1, 0)
    assert torch.equal(npz.images, normalise(pixels, data.mean, data.std))
    assert torch.allclose(torch.softmax(npz.soft_labels, 1), probs, atol=1e-5)  # probabilities -> logits
    st = import_set(tmp_path / "s.safetensors", cfg(path="x", space="normalised"), data, 1, 0)
    assert torch.equal(st.images, x) and torch.equal(st.labels, torch.arange(10))
    folder = import_set(tmp_path / "folder", cfg(path="x", space="pixels"), data, 1, 0)
    assert folder.raw.format == "folder" and torch.equal(folder.labels.sort().values, torch.arange(10))
    # soft labels reach training: eval.soft_labels: distiller
    df = _run(_suite(tmp_path, "soft", [_files(tmp_path / "s.npz", space="pixels")],
                     eval={"epochs": 2, "models_per_set": 1, "labels": "soft", "soft_labels": "distiller"}))
    assert (df["status"] == "ok").all()


def test_soft_labels_from_a_set_file_without_them_are_refused_before_any_work(tmp_path, capsys):
    """eval.soft_labels: distiller with a file of hard labels only failed every soft evaluation after the import;
    the suite check reads the file and says which set has none."""
    from atombench.cli import main

    data = _digits()
    torch.save({"images": _class_major(data, 1, 0), "labels": torch.arange(10)}, tmp_path / "hard.pt")
    suite = _suite(tmp_path, "soft", [_files(tmp_path / "hard.pt", space="normalised")],
                   eval={"epochs": 2, "labels": "soft", "soft_labels": "distiller"})
    assert main(["validate", str(suite)]) == 2
    assert capsys.readouterr().err == (f"error: {suite}: eval.soft_labels: distiller, but imported's sets carry no "
                                       f"soft labels of their own (digits, IPC 1, seed 0 has none); use soft_labels: "
                                       f"teacher, or leave imported out of this suite\n")
    assert not (tmp_path / "soft").exists()


def test_folder_label_order_is_not_the_sorted_order(tmp_path):
    """Folders named 0..11 sort as 0, 1, 10, 11, 2, ...: the label is the number, never the position."""
    from atombench.distillers.files import _folder_label_map

    names = sorted(str(i) for i in range(12))
    assert _folder_label_map(names, _digits(), tmp_path) == {str(i): i for i in range(12)}


# -- keys ----------------------------------------------------------------------------------------------------
def test_key_is_the_checksum_plus_options_not_the_path(tmp_path):
    data = _digits()
    x = _class_major(data, 1, 0)
    torch.save({"images": x, "labels": torch.arange(10)}, tmp_path / "a.pt")
    suite = _suite(tmp_path, "k", [_files(tmp_path / "{method}.pt", space="normalised", method="a")])
    first = _run(suite)
    out = run_suite(suite, progress=False, echo=lambda *a: None)
    assert out.distilled == 0 and out.evaluated == 0  # unchanged file: nothing evaluated twice
    (tmp_path / "moved").mkdir()
    (tmp_path / "a.pt").rename(tmp_path / "moved" / "a.pt")
    moved = _suite(tmp_path, "k", [_files(tmp_path / "moved" / "{method}.pt", space="normalised", method="a")])
    out = run_suite(moved, progress=False, echo=lambda *a: None)
    assert out.distilled == 0 and out.evaluated == 0  # a moved file is the same set
    torch.save({"images": x + 0.01, "labels": torch.arange(10)}, tmp_path / "moved" / "a.pt")
    changed = _run(moved)
    assert changed["synset_key"].iloc[0] != first["synset_key"].iloc[0]  # a changed file: evaluated again
    from atombench.distillers.files import FilesDistiller
    from atombench.jobs import synset_key

    d = FilesDistiller({"path": str(tmp_path / "moved" / "a.pt"), "space": "normalised"})
    other = FilesDistiller({"path": str(tmp_path / "moved" / "a.pt"), "space": "normalised", "labels": "file",
                            "check_space": False})
    d.registered_name = other.registered_name = "files"
    assert synset_key(data, d, 1, 0) != synset_key(data, other, 1, 0)  # the options are in the key


# -- safe loading and bad input --------------------------------------------------------------------------------
class Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_a_pickle_that_needs_more_than_tensors_is_refused(tmp_path):
    torch.save({"images": torch.zeros(10, 1, 8, 8), "labels": torch.arange(10), "extra": Payload()},
               tmp_path / "evil.pt")
    with pytest.raises(SetFileError, match=r"refused: unpickling it needs the Python object (posix|os)\.system"):
        import_set(tmp_path / "evil.pt", FilesConfig(path="x", space="normalised"), _digits(), 1, 0)


def test_a_text_file_or_a_stray_object_is_one_clear_error_and_a_pair_is_a_set(tmp_path):
    """A text file ended in KeyError from torch's unpickler, a JSON file was called a pickle that runs code, and
    ``torch.save((x, y), f)`` was refused as 'got tuple'."""
    cfg, data = FilesConfig(path="x", space="normalised"), _digits()
    (tmp_path / "notes.pt").write_text("hello world\n")
    (tmp_path / "manifest.json").write_text('{"space": "normalised"}')
    for name in ("notes.pt", "manifest.json"):
        with pytest.raises(SetFileError, match=r"a text file \(JSON, YAML, CSV\?\), not a file torch.save wrote"):
            import_set(tmp_path / name, cfg, data, 1, 0)
    x = _class_major(data, 1, 0, noise=0.5)
    torch.save((x, torch.arange(10)), tmp_path / "pair.pt")
    raw = import_set(tmp_path / "pair.pt", cfg, data, 1, 0)
    assert torch.equal(raw.images, x) and raw.labels.tolist() == list(range(10))
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(SetFileError, match=r"holds a list; a set file holds a tensor of images, a pair"):
        import_set(tmp_path / "list.pt", cfg, data, 1, 0)


def test_a_genuinely_distilled_set_passes_the_space_check_and_the_wrong_space_fails(tmp_path):
    data = _digits()
    x = _class_major(data, 3, 0, noise=0.5)
    torch.save({"images": x, "labels": torch.arange(10).repeat_interleave(3)}, tmp_path / "n.pt")
    import_set(tmp_path / "n.pt", FilesConfig(path="x", space="normalised"), data, 3, 0)  # no error
    pixels = data.denormalise(_class_major(data, 3, 0)).clamp(0, 1)
    torch.save({"images": pixels, "labels": torch.arange(10).repeat_interleave(3)}, tmp_path / "p.pt")
    with pytest.raises(SetFileError, match=r"read as pixels it would have mean .*: declare space: pixels"):
        import_set(tmp_path / "p.pt", FilesConfig(path="x", space="normalised"), data, 3, 0)
    import_set(tmp_path / "p.pt", FilesConfig(path="x", space="pixels"), data, 3, 0)


def test_a_file_of_another_container_than_its_format_names_what_it_is(tmp_path):
    """A .pt given format npz listed torch's zip entries as missing arrays; an npz given format tensor was 'not a
    readable torch file'. The first bytes say what the file is, and the message names the format to set."""
    from safetensors.torch import save_file

    data = _digits()
    x, y = _class_major(data, 1, 0), torch.arange(10)
    torch.save({"images": x, "labels": y}, tmp_path / "s.pt")
    torch.save({"images": x, "labels": y}, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    np.savez(tmp_path / "s.npz", images=x.numpy(), labels=y.numpy())
    save_file({"images": x, "labels": y}, tmp_path / "s.safetensors")
    (tmp_path / "s.npz").rename(tmp_path / "npz_named.pt")
    np.savez(tmp_path / "s.npz", images=x.numpy(), labels=y.numpy())
    cases = [("s.pt", "npz", "declared format npz, but the file is a torch.save file; set format: tensor"),
             ("old.pt", "safetensors", "declared format safetensors, but the file is a torch.save file; set format: "
                                       "tensor"),
             ("s.npz", "dc", "declared format dc, but the file is a NumPy .npz archive; set format: npz"),
             ("s.safetensors", "tensor", "declared format tensor, but the file is a safetensors file; set format: "
                                         "safetensors"),
             ("npz_named.pt", "auto", "its name says format tensor, but the file is a NumPy .npz archive; set "
                                      "format: npz (or rename it)")]
    for name, fmt, message in cases:
        with pytest.raises(SetFileError) as err:
            import_set(tmp_path / name, FilesConfig(path="x", format=fmt, space="normalised"), data, 1, 0)
        assert str(err.value) == f"{tmp_path / name}: {message}", (name, fmt)
    for name in ("s.pt", "old.pt", "s.npz", "s.safetensors"):  # each read as what it is
        got = import_set(tmp_path / name, FilesConfig(path="x", space="normalised"), data, 1, 0)
        assert torch.equal(got.images, x), name
    res = run_cli("evaluate", tmp_path / "s.pt", "--format", "npz", "--dataset", "digits", "--dataset-option",
                  "size=8", "--space", "normalised", "--output", tmp_path / "out", cwd=tmp_path)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and not (tmp_path / "out").exists()
    assert res.stderr.strip().endswith("but the file is a torch.save file; pass --format tensor"), res.stderr


def test_evaluate_refuses_a_bad_file_in_one_line_and_writes_nothing(tmp_path):
    torch.save({"images": torch.full((10, 1, 8, 8), float("nan")), "labels": torch.arange(10)}, tmp_path / "s.pt")
    res = run_cli("evaluate", tmp_path / "s.pt", "--dataset", "digits", "--dataset-option", "size=8",
                  "--space", "normalised", "--output", tmp_path / "out", cwd=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr == (f"error: atombench evaluate: s on digits: {tmp_path}/s.pt: 640 of 640 pixel values "
                          f"are NaN or inf; the set cannot be evaluated (re-export it from the step before it "
                          f"diverged)\n")
    assert not (tmp_path / "out").exists() and not (tmp_path / "results").exists()


def test_evaluate_of_a_results_folders_own_set_file_reproduces_its_row(tmp_path):
    """A set file taken from a results folder's synsets/: its metadata beside it gives the space, method, IPC and
    key an export would, so `atombench evaluate FILE --dataset D` needs nothing else and trains the original's
    models (the same accuracies); a set stored encoded is refused in one line that says to export it."""
    original = _run(_suite(tmp_path, "orig", ["random"], models=["convnet"], eval={"epochs": 2, "models_per_set": 2}))
    (path,) = (tmp_path / "orig" / "synsets").glob("*.safetensors")
    res = run_cli("evaluate", path, "--dataset", "digits", "--dataset-option", "size=8", "--eval", "epochs=2",
                  "--eval", "models_per_set=2", "--output", tmp_path / "out", "--quiet", "--no-report", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    again = pd.read_csv(tmp_path / "out" / "results.csv")
    assert again["accuracy"].tolist() == original["accuracy"].tolist() and set(again["distiller"]) == {"random"}
    meta = json.loads(Path(f"{path}.json").read_text())
    Path(f"{path}.json").write_text(json.dumps(dict(meta, decoder="ncfm")))
    res = run_cli("evaluate", path, "--dataset", "digits", "--dataset-option", "size=8", "--output",
                  tmp_path / "out2", cwd=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr and len(res.stderr.splitlines()) == 1, res.stderr
    assert "stored encoded" in res.stderr and f"atombench export {tmp_path / 'orig'}" in res.stderr
    assert not (tmp_path / "out2").exists()


def test_a_recorded_space_is_not_second_guessed_by_the_space_check(tmp_path):
    """The space check guards a declared space; a whitened set whose spread is far from the real images' (DataDAM's
    and ATOM's ZCA sets are) read with the space its results folder recorded is evaluated, in that whitening."""
    entry = dict(DIGITS, zca="unit_interval")
    _run(_suite(tmp_path, "orig", ["random"], datasets=[entry], models=["convnet"], eval={"epochs": 1,
                                                                                          "models_per_set": 1}))
    (path,) = (tmp_path / "orig" / "synsets").glob("*.safetensors")
    s = SyntheticSet.load(path)
    SyntheticSet(s.images * 1000, s.labels, s.meta, s.soft_labels).save(path)  # far beyond the real spread
    common = ("evaluate", path, "--dataset", "digits", "--dataset-option", "size=8", "--eval", "epochs=1",
              "--quiet", "--no-report")
    declared = run_cli(*common, "--space", "zca", "--zca", "unit_interval", "--output", tmp_path / "o1", cwd=tmp_path)
    assert declared.returncode == 2 and "--set-option check_space=false skips this check" in declared.stderr, declared.stderr
    recorded = run_cli(*common, "--output", tmp_path / "o2", cwd=tmp_path)
    assert recorded.returncode == 0, recorded.stderr
    assert yaml.safe_load((tmp_path / "o2" / "suite.yaml").read_text())["datasets"][0]["zca"]["kind"] == "unit_interval"


def test_evaluate_space_zca_without_a_whitening_is_one_line(tmp_path):
    torch.save({"images": torch.randn(10, 1, 8, 8), "labels": torch.arange(10)}, tmp_path / "s.pt")
    res = run_cli("evaluate", tmp_path / "s.pt", "--dataset", "digits", "--dataset-option", "size=8",
                  "--space", "zca", "--output", tmp_path / "out", cwd=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr and len(res.stderr.splitlines()) == 1, res.stderr
    assert "--zca unit_interval" in res.stderr and not (tmp_path / "out").exists()


# -- atombench evaluate on an exported set ------------------------------------------------------------------
def test_evaluate_command_on_an_exported_digits_set_reproduces_its_row(tmp_path, monkeypatch, capsys):
    from atombench.cli import main

    monkeypatch.chdir(tmp_path)
    original = _run(_suite(tmp_path, "orig", ["random"], models=["convnet"], eval={"epochs": 2, "models_per_set": 2}))
    assert main(["export", str(tmp_path / "orig"), "--format", "npz", "--output", str(tmp_path / "x")]) == 0
    assert main(["evaluate", "x/sets/random/digits/ipc1_seed0.npz", "--dataset", "digits", "--dataset-option",
                 "size=8", "--eval", "epochs=2", "--eval", "models_per_set=2", "--quiet", "--no-report"]) == 0
    (folder,) = (tmp_path / "results").glob("evaluate_random_digits_ipc1_seed0_*")  # + the set's checksum
    again = pd.read_csv(folder / "results.csv")
    assert again["accuracy"].tolist() == original["accuracy"].tolist()
    assert again["distiller"].tolist() == ["random", "random"]
    assert "| random |" in capsys.readouterr().out


@pytest.mark.heavy  # 3.5 min measured on 2 shared, busy cores (Fashion-MNIST staged, then loaded by three
# commands, 10 000 test images per model): heavy, so that CI stays within 20 minutes; the digits test above keeps
# the feature in the default run
@pytest.mark.skipif(not FASHION.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_evaluate_an_exported_fashion_mnist_set_reproduces_its_row(tmp_path):
    """The README's worked example: a set distilled here, exported, evaluated with one command."""
    env = {"ATOMBENCH_DATA": str(tmp_path / "data")}
    suite = tmp_path / "fashion.yaml"
    suite.write_text(yaml.safe_dump({
        "name": "fashion", "datasets": ["fashion_mnist"], "ipc": [1], "seeds": 1,
        "distillers": [{"name": "dm", "config": {"iterations": 2, "batch_real": 8}}], "models": ["convnet"],
        "eval": {"epochs": 1, "models_per_set": 2}, "execution": {"backend": "sequential"}, "device": "cpu",
        "output": str(tmp_path / "fashion")}))
    res = run_cli("run", suite, "--quiet", "--no-report", env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    res = run_cli("export", tmp_path / "fashion", "--format", "pt", "--output", tmp_path / "exported", env=env)
    assert res.returncode == 0, res.stderr
    res = run_cli("evaluate", tmp_path / "exported/sets/dm/fashion_mnist/ipc1_seed0.pt", "--dataset",
                  "fashion_mnist", "--models", "convnet", "--eval", "epochs=1", "--eval", "models_per_set=2",
                  "--output", tmp_path / "again", "--quiet", "--no-report", env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    before = pd.read_csv(tmp_path / "fashion" / "results.csv")
    after = pd.read_csv(tmp_path / "again" / "results.csv")
    assert after["distiller"].tolist() == ["dm", "dm"] and after["method"].tolist() == ["files", "files"]
    assert after["accuracy"].tolist() == before["accuracy"].tolist()  # to the last digit
    assert "| dm |" in res.stdout


def test_keys_of_other_distillers_and_their_evaluation_seeds_are_unchanged(tmp_path):
    """The hooks the files distiller uses leave every other distiller's set key and evaluation seeds as before."""
    from atombench import config as cfgmod
    from atombench.jobs import CONFIG_KEYED_UNLESS_DEFAULT, synset_key
    from atombench.factories import make_distiller
    from atombench.runner import build_graph
    from atombench.runtime import derive_seed, stable_hash
    from atombench.store import ResultsStore

    data, dm = _digits(), make_distiller("dm", {"iterations": 3, "compile": "none"})
    config = {k: v for k, v in cfgmod.to_dict(dm.config).items()
              if not (k in CONFIG_KEYED_UNLESS_DEFAULT and v == CONFIG_KEYED_UNLESS_DEFAULT[k])}
    assert synset_key(data, dm, 1, 0) == stable_hash(["synset", data.fingerprint, "dm", config, 1, 0])
    # compile: auto (the default, eager unless a suite's preflight makes it concrete) keys as eager
    assert synset_key(data, make_distiller("dm", {"iterations": 3}), 1, 0) == synset_key(data, dm, 1, 0)
    suite, plan = load_checked(_suite(tmp_path, "keys", [{"name": "dm", "config": {"iterations": 3}}]))
    graph = build_graph(plan, ResultsStore(tmp_path / "keys"))
    key = graph.distill[0].key
    assert sorted(j.seed for j in graph.evaluate) == sorted(
        derive_seed("eval", key, SMALL["name"], SMALL["options"], k) for k in range(2))



# -- review fixes: export paths, bad folders, folder keys, content-only checksums, dependency guards ------------
def test_export_keeps_apart_two_dataset_entries_of_one_plugin(tmp_path):
    """``digits`` and a whitened ``digits`` with its own label, one distiller: two sets, two files, each manifest
    entry naming the file that holds its own images (the path has the dataset's label, not the plug-in's name)."""
    whitened = dict(DIGITS, label="digits_zca", zca={"kind": "unit_interval", "eps": 0.1})
    _run(_suite(tmp_path, "two", ["random"], datasets=[DIGITS, whitened]))
    for fmt in ("npz", "png"):
        out = tmp_path / f"e_{fmt}"
        manifest = json.loads(export_results(tmp_path / "two", fmt, out, echo=lambda *a: None).read_text())
        assert len({e["file"] for e in manifest["sets"]}) == 2  # one file each, neither overwriting the other
        entries = {e["dataset_label"]: e for e in manifest["sets"]}
        assert sorted(entries) == ["digits", "digits_zca"]
        assert entries["digits"]["file"].startswith("sets/random/digits/ipc1_seed0")
        assert entries["digits_zca"]["file"].startswith("sets/random/digits_zca/ipc1_seed0")
        assert entries["digits_zca"]["zca" if fmt == "npz" else "stored_zca"]["kind"] == "unit_interval"
        for e in entries.values():
            stored = _images(tmp_path / "two", e["key"])
            if fmt == "npz":
                with np.load(out / e["file"]) as z:
                    assert np.array_equal(z["images"], stored.images.numpy())
                    assert json.loads(str(z["atombench"]))["key"] == e["key"]
            else:
                assert json.loads((out / e["file"] / "atombench.json").read_text())["key"] == e["key"]
    # a folder with no record of its dataset entries (no results table, no job results): the dataset's name
    # stands in, and the two sets that would share a path each get their key's first 8 characters
    import shutil

    old = tmp_path / "old"
    shutil.copytree(tmp_path / "two" / "synsets", old / "synsets")
    for meta in (old / "synsets").glob("*.json"):  # sets made before they recorded their dataset entry's label
        record = json.loads(meta.read_text())
        assert record.pop("dataset_label") in ("digits", "digits_zca")
        meta.write_text(json.dumps(record))
    manifest = json.loads(export_results(old, "npz", tmp_path / "e_old", echo=lambda *a: None).read_text())
    assert sorted(e["file"] for e in manifest["sets"]) == sorted(
        f"sets/random/digits/ipc1_seed0_{e['key'][:8]}.npz" for e in manifest["sets"])


def test_export_paths_shared_get_the_key_and_one_path_is_never_written_twice(tmp_path):
    from atombench.errors import UsageError
    from atombench.export import _set_paths

    base = Path("sets/random/digits/ipc1_seed0")
    assert _set_paths([("aaaaaaaa11", base), ("bbbbbbbb22", Path("sets/random/other/ipc1_seed0"))]) == \
        [base, Path("sets/random/other/ipc1_seed0")]  # no clash: the paths as before
    assert _set_paths([("aaaaaaaa11", base), ("bbbbbbbb22", base)]) == \
        [Path(f"{base}_aaaaaaaa"), Path(f"{base}_bbbbbbbb")]
    with pytest.raises(UsageError, match=r"two sets would be written to sets/random/digits/ipc1_seed0_aaaaaaaa"):
        _set_paths([("aaaaaaaa11", base), ("aaaaaaaa22", base)])


def _digit_pngs(folder: Path, data) -> None:
    from PIL import Image

    pixels = data.denormalise(_class_major(data, 1, 0)).clamp(0, 1)
    for c in range(10):
        (folder / str(c)).mkdir(parents=True)
        Image.fromarray((pixels[c, 0] * 255).round().byte().numpy()).save(folder / str(c) / "a.png")


@pytest.mark.parametrize("damage", ["truncated_png", "text_as_png", "bad_sidecar", "sidecar_not_a_dict",
                                    "bad_soft_labels", "bad_zca"])
def test_evaluate_a_damaged_image_folder_is_one_line_exit_2(tmp_path, monkeypatch, capsys, damage):
    from atombench.cli import main

    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "set"
    _digit_pngs(folder, _digits())
    bad = {"truncated_png": folder / "3" / "a.png", "text_as_png": folder / "4" / "a.png"}.get(
        damage, folder / "atombench.json")
    if damage == "truncated_png":
        bad.write_bytes(bad.read_bytes()[:60])
    elif damage == "text_as_png":
        bad.write_text("not an image\n")
    elif damage == "bad_sidecar":
        bad.write_text('{"syn_lr": 0.01,')
    elif damage == "sidecar_not_a_dict":
        bad.write_text("[1, 2]")
    elif damage == "bad_soft_labels":
        bad.write_text(json.dumps({"soft_labels": [[0.5, "a"]] * 10}))
    else:
        bad.write_text(json.dumps({"space": "pixels", "stored_zca": "unit_interval"}))
    rc = main(["evaluate", str(folder), "--dataset", "digits", "--dataset-option", "size=8", "--space", "pixels",
               "--output", str(tmp_path / "out"), "--quiet", "--no-report"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith(f"error: atombench evaluate: {bad}: "), err
    assert not (tmp_path / "out").exists() and not (tmp_path / "results").exists()


def test_an_npz_whose_manifest_is_not_json_is_a_set_file_error(tmp_path):
    np.savez(tmp_path / "s.npz", images=np.zeros((10, 1, 8, 8), np.float32), labels=np.arange(10),
             atombench=np.asarray("{not json"))
    with pytest.raises(SetFileError, match=r"s\.npz: its 'atombench' entry is not the JSON object an atombench "):
        import_set(tmp_path / "s.npz", FilesConfig(path="x", space="normalised"), _digits(), 1, 0)
    np.savez(tmp_path / "t.npz", images=np.zeros((10, 1, 8, 8), np.float32), labels=np.arange(10),
             atombench=np.asarray("[1]"))
    with pytest.raises(SetFileError, match=r"t\.npz: its 'atombench' entry is not the JSON object"):
        import_set(tmp_path / "t.npz", FilesConfig(path="x", space="normalised"), _digits(), 1, 0)


def test_a_folder_sets_key_covers_its_sidecar(tmp_path):
    """Same pixels, different soft labels or step size in atombench.json: different sets, different keys."""
    from atombench.distillers.files import read_raw

    data = _digits()
    shas = []
    for name, side in (("a", {"syn_lr": 0.01}), ("b", {"syn_lr": 0.02}), ("c", {"syn_lr": 0.01, "soft_labels":
                                                                           torch.eye(10).tolist()}),
                       ("d", {"syn_lr": 0.01}), ("e", None)):
        _digit_pngs(tmp_path / name, data)
        if side is not None:
            (tmp_path / name / "atombench.json").write_text(json.dumps(side))
        shas.append(read_raw(tmp_path / name, "folder", FilesConfig(path="x"), 0).sha256)
    a, b, c, d, e = shas
    assert len({a, b, c, e}) == 4 and a == d


def test_the_checksum_is_of_the_content_not_the_file_names(tmp_path):
    """A renamed file is the same set (module docstring); MTT's files count by role (images, labels, lr)."""
    from atombench.distillers.files import read_raw

    data, cfg = _digits(), FilesConfig(path="x")
    x = _class_major(data, 1, 0)
    torch.save({"images": x, "labels": torch.arange(10)}, tmp_path / "a.pt")
    (tmp_path / "b.pt").write_bytes((tmp_path / "a.pt").read_bytes())
    assert read_raw(tmp_path / "a.pt", "auto", cfg, 0).sha256 == read_raw(tmp_path / "b.pt", "auto", cfg, 0).sha256
    torch.save(x, tmp_path / "images_5.pt")
    torch.save(_reference_labels(10, 1), tmp_path / "labels_5.pt")
    for role in ("images", "labels"):  # the same files renamed (torch.save writes the name it saved to inside)
        (tmp_path / f"{role}_7.pt").write_bytes((tmp_path / f"{role}_5.pt").read_bytes())
    five, seven = (read_raw(tmp_path / f"images_{it}.pt", "auto", cfg, 0) for it in (5, 7))
    assert five.format == "mtt" and five.sha256 == seven.sha256
    torch.save(torch.tensor(0.01), tmp_path / "lr_7.pt")
    assert read_raw(tmp_path / "images_7.pt", "auto", cfg, 0).sha256 != five.sha256


def test_evaluate_gives_two_runs_same_named_files_their_own_results_folders(tmp_path):
    """Two MTT runs both write images_5000.pt: the default results folder tells them apart."""
    from atombench.export import evaluate_suite

    data = _digits()
    names = []
    for run, noise in (("run_a", 0.0), ("run_b", 0.1)):
        (tmp_path / run).mkdir()
        torch.save(_class_major(data, 1, 0, noise=noise), tmp_path / run / "images_5000.pt")
        torch.save(_reference_labels(10, 1), tmp_path / run / "labels_5000.pt")
        doc = evaluate_suite(str(tmp_path / run / "images_5000.pt"), "digits", ["convnet"], space="normalised",
                             dataset_options=["size=8"])
        assert "output" not in doc and doc["name"].startswith("evaluate_images_5000_digits_images_5000_")
        names.append(doc["name"])
    assert names[0] != names[1]


def test_safe_loading_without_numpys_new_module_or_torchs_safe_globals(tmp_path, monkeypatch):
    """numpy < 2 has no numpy._core and torch < 2.5 no safe_globals: tensors still load, and a file that needs
    numpy's scalars is refused in one line instead of an ImportError or AttributeError."""
    import sys

    from atombench.distillers.files import safe_torch_load

    torch.save({"images": torch.zeros(2), "accs": [np.float64(0.5)]}, tmp_path / "numpy.pt")
    torch.save({"images": torch.zeros(2)}, tmp_path / "plain.pt")
    monkeypatch.setitem(sys.modules, "numpy._core", None)  # import numpy._core raises ImportError
    assert torch.equal(safe_torch_load(tmp_path / "plain.pt")["images"], torch.zeros(2))
    monkeypatch.delattr(torch.serialization, "safe_globals")
    assert torch.equal(safe_torch_load(tmp_path / "plain.pt")["images"], torch.zeros(2))
    with pytest.raises(SetFileError, match=r"numpy.pt: refused: unpickling it needs the Python object numpy"):
        safe_torch_load(tmp_path / "numpy.pt")


def test_evaluate_speaks_of_its_own_flags_and_takes_the_sets_options(tmp_path, capsys):
    """A file of images without labels: the hint was 'set labels: class_major', a suite key evaluate has no flag
    for; now --set-option labels=class_major, which evaluate takes."""
    from atombench.cli import main

    data = _digits()
    torch.save(_class_major(data, 1, 0, noise=0.5), tmp_path / "images.pt")
    base = ["evaluate", str(tmp_path / "images.pt"), "--dataset", "digits", "--space", "normalised", "--quiet",
            "--no-report", "--eval", "epochs=2", "--output", str(tmp_path / "out")]
    assert main(base) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--set-option labels=class_major" in err[0] and "distillers[0]" not in err[0], err
    assert main(base + ["--set-option", "labels=class_major"]) == 0
    import pandas as pd

    assert pd.read_csv(tmp_path / "out" / "results.csv")["status"].tolist() == ["ok"]


def test_evaluate_names_its_own_flags_and_itself_on_every_error(tmp_path, capsys):
    """A missing dataset folder said "set `download: true` in the suite's dataset options" (the translation
    table missed the backticks) without naming the command; --eval's problems said "eval:"."""
    from atombench.cli import main

    torch.save({"images": torch.zeros(10, 1, 28, 28), "labels": torch.arange(10)}, tmp_path / "s.pt")
    assert main(["evaluate", str(tmp_path / "s.pt"), "--dataset", "mnist", "--dataset-option",
                 f"root={tmp_path / 'nowhere'}", "--space", "normalised", "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: atombench evaluate: dataset 'mnist': no idx files found") and err.count("\n") == 1
    assert "pass --dataset-option download=true (needs internet)" in err and "suite" not in err
    assert main(["evaluate", str(tmp_path / "s.pt"), "--dataset", "digits", "--eval", "epochs=-1",
                 "--output", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == "error: atombench evaluate: --eval: epochs must be >= 0, got -1\n"
    assert main(["evaluate", str(tmp_path / "s.pt"), "--dataset", "digits", "--eval", "bogus=1",
                 "--output", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith("error: atombench evaluate: --eval bogus: unknown key; valid keys:")
    data = _digits()
    torch.save({"images": _class_major(data, 1, 0), "labels": torch.arange(10)}, tmp_path / "d.pt")
    assert main(["evaluate", str(tmp_path / "d.pt"), "--dataset", "digits", "--dataset-option", "size=8",
                 "--space", "pixels", "--eval", "labels=soft", "--eval", "soft_labels=distiller",
                 "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "declared space: pixels" in err and err.strip().endswith("(they look normalised: pass --space "
                                                                    "normalised)"), err
    assert main(["evaluate", str(tmp_path / "d.pt"), "--dataset", "digits", "--dataset-option", "size=8",
                 "--space", "normalised", "--eval", "labels=soft", "--eval", "soft_labels=distiller",
                 "--output", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip().endswith("soft labels of their own (digits, IPC 1, seed 0 has none); "
                                                    "pass --eval soft_labels=teacher")
    assert not (tmp_path / "out").exists()
