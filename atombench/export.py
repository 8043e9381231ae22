"""``atombench export`` and ``atombench evaluate``: sets made here out, one set from elsewhere in.

**Export** writes every synthetic set of a results folder (final sets and snapshots) as ``pt`` (a dict of tensors
that ``torch.load(..., weights_only=True)`` reads), ``npz`` (``np.load(..., allow_pickle=False)``) or ``png`` (one
8-bit image per synthetic image in one folder per class), with ``manifest.json``: for each set its method and
options, dataset and options, pixel space with the mean/std (and the ZCA matrices, ``zca/``) that undo it, IPC,
seed, key and the versions of atombench and torch. ``pt`` and ``npz`` hold the images exactly as stored (float32,
the dataset's space): imported with the ``files`` distiller they are the same bits. ``png`` holds pixels in
[0, 1] rounded to 1/255 (and clipped): the form image-folder tools read, not bit for bit.

**Evaluate** builds a one-set suite around the ``files`` distiller (``atombench evaluate SET --dataset NAME
--models convnet``) and runs it as ``atombench run`` would: results folder, ``results.csv``, report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from .errors import DataError, UsageError
from .runtime import atomic_write, versions

FORMATS = ("pt", "npz", "png")


def _space(meta: dict) -> tuple[str, Optional[dict]]:
    """The space a stored set's images are in: the dataset's normalised one, or whitened (kind, eps)."""
    args = meta.get("dataset_args") or []
    kind = args[2] if len(args) > 2 else None
    eps = args[3] if len(args) > 3 else None
    if kind is None:
        kind, eps = (meta.get("dataset_options") or {}).get("zca"), (meta.get("dataset_options") or {}).get("zca_eps")
    if kind is True:
        kind = "normalised"  # what older results folders recorded for zca: true
    return ("zca", {"kind": kind, "eps": float(eps if eps is not None else 0.1)}) if kind else ("normalised", None)


def _dataset(meta: dict, path: Path):
    from .factories import load_dataset

    args = meta.get("dataset_args")
    if not args:
        raise UsageError(f"{path}: its metadata has no dataset_args (written by an older atombench); re-run the "
                         f"suite to export it")
    try:
        return load_dataset(*args)
    except DataError as err:
        raise DataError(f"{path}: exporting needs its dataset ({args[0]}) for the mean/std and ZCA that undo its "
                        f"space: {err}") from None


def _pixels(x: torch.Tensor, data) -> tuple[np.ndarray, int]:
    """Images of the dataset's space as 8-bit pixels ``[N, H, W, C]``, and how many values were clipped."""
    if data.zca is not None:
        x = data.zca.inverse(x)
    p = data.denormalise(x)
    clipped = int(((p < 0) | (p > 1)).sum())
    u8 = (p.clamp(0, 1) * 255).round().to(torch.uint8)
    return u8.permute(0, 2, 3, 1).contiguous().numpy(), clipped


def export_results(results_dir: str | Path, fmt: str, output: str | Path, echo=print) -> Path:
    """Write every valid set of ``results_dir`` under ``output`` in ``fmt``; returns the manifest's path."""
    from .distillers.base import SyntheticSet, decoded

    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    root = Path(results_dir)
    synsets = root / "synsets"
    if not synsets.is_dir():
        raise UsageError(f"{root}: no synsets/ folder: not a results folder written by 'atombench run'")
    out = Path(output)
    if out.resolve() == root.resolve() or root.resolve() in out.resolve().parents:
        raise UsageError(f"--output {out} is inside the results folder {root}; export somewhere else")
    files = sorted(synsets.glob("*.safetensors"))
    if not files:
        raise UsageError(f"{root}: synsets/ holds no synthetic sets; run the suite first")
    earlier = out / "manifest.json"
    if earlier.is_file():  # another export there: the two formats' files would mix under one manifest
        try:
            before = json.loads(earlier.read_text())
        except (OSError, ValueError):
            before = None
        same = isinstance(before, dict) and before.get("format") == fmt and \
            Path(str(before.get("source", ""))).resolve() == root.resolve()
        if not same:
            raise UsageError(f"--output {out} holds another export (its manifest.json); choose an empty folder, or "
                             f"remove that export first")
    # first every set's path, each checked unique, then the files: a clash is refused before anything is written
    planned, dataset_label_of = [], _dataset_labels(root)
    for path in files:
        try:
            meta = SyntheticSet.load(path).meta
        except (ValueError, OSError, KeyError) as exc:
            echo(f"warning: {path.name} skipped: {str(exc).splitlines()[0]}")
            continue
        key = path.name[:-len(".safetensors")]
        data = _dataset(meta, path)
        dataset_label = dataset_label_of(meta, key, data.name)
        label = str(meta.get("label") or meta.get("method"))
        seed = meta.get("suite_seed", meta.get("seed"))
        stem = f"ipc{meta.get('ipc')}_seed{seed}" + (f"_it{meta['iteration']}" if meta.get("snapshot") else "")
        planned.append((path, key, data, dataset_label, label, seed,
                        Path("sets") / _path_part(label) / _path_part(dataset_label) / stem))
    rels = _set_paths([(p[1], p[6]) for p in planned])
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {out} ({exc.strerror or exc}); choose another --output") from None
    entries, zca_written = [], {}
    for (path, key, data, dataset_label, label, seed, _), rel in zip(planned, rels):
        synset = decoded(SyntheticSet.load(path))  # what a model trains on: a multi-formation set decoded
        meta = synset.meta
        space, zca = _space(meta)
        entry = {
            "key": key, "method": meta.get("method"), "label": label, "config": meta.get("config"),
            "dataset": data.name, "dataset_label": dataset_label, "dataset_options": meta.get("dataset_options"),
            "dataset_fingerprint": meta.get("dataset_fingerprint"), "dataset_args": meta.get("dataset_args"),
            "ipc": meta.get("ipc"), "seed": seed, "iteration": meta.get("iteration"),
            "snapshot": bool(meta.get("snapshot")), "space": space, "zca": zca,
            "mean": list(map(float, data.mean)), "std": list(map(float, data.std)),
            "num_images": int(len(synset.images)), "image_shape": list(synset.images.shape[1:]),
            "has_soft_labels": synset.soft_labels is not None, "syn_lr": meta.get("syn_lr"),
            "versions": {"atombench": versions().get("atombench"), "torch": torch.__version__},
            "format": fmt,
        }
        if meta.get("decoded_by"):  # stored encoded (multi-formation): written decoded, as models train on it
            entry.update(decoded_by=meta["decoded_by"], stored_images=meta.get("stored_images"))
        if zca is not None:  # the matrices that undo the whitening, once per dataset and whitening
            zfile = Path("zca") / f"{data.fingerprint}.{'pt' if fmt == 'pt' else 'npz'}"
            if zfile not in zca_written:
                z = data.zca
                arrays = {"mean": z.mean, "transform": z.transform, "inverse_transform": z.inverse_transform}
                if z.scale is not None:
                    arrays.update(scale=z.scale, shift=z.shift)
                _write_arrays(out / zfile, arrays, fmt if fmt == "pt" else "npz", None)
                zca_written[zfile] = True
            entry["zca"] = dict(zca, file=str(zfile))
        if fmt == "png":
            pixels, clipped = _pixels(synset.images, data)
            entry.update(space="pixels", stored_space=space, stored_zca=entry["zca"], quantised="8-bit",
                         clipped_values=clipped, zca=None, file=str(rel))
            _write_png_folder(out / rel, pixels, synset.labels, data.num_classes,
                              dict(entry, soft_labels=synset.soft_labels.tolist()
                                   if synset.soft_labels is not None else None))
        else:
            entry["file"] = str(rel.with_suffix("." + fmt))
            arrays = {"images": synset.images, "labels": synset.labels}
            if synset.soft_labels is not None:
                arrays["soft_labels"] = synset.soft_labels
            if isinstance(meta.get("syn_lr"), (int, float)):
                arrays["lr"] = float(meta["syn_lr"])
            _write_arrays(out / entry["file"], arrays, fmt, json.dumps(entry, sort_keys=True))
        entries.append(entry)
    manifest = {"atombench_export": 1, "source": str(root), "format": fmt, "sets": entries,
                "versions": {"atombench": versions().get("atombench"), "torch": torch.__version__}}
    with atomic_write(out / "manifest.json", "w") as fh:
        json.dump(manifest, fh, indent=2, sort_keys=True)
    echo(f"{len(entries)} set(s) written under {out} ({fmt}); manifest: {out / 'manifest.json'}")
    return out / "manifest.json"


def _path_part(name: str) -> str:
    """A label as one folder name (a ``/`` in it would make folders of its own)."""
    return name.replace("/", "_").replace("\\", "_") or "_"


def _dataset_labels(root: Path):
    """``lookup(meta, key, fallback)``: the label of the suite's dataset entry a set was made for (``digits`` and
    a whitened ``digits`` with ``label: digits_zca``): the set's own record, else the folder's results table (and,
    for a set it lacks, the job results) on the set or the set a snapshot was taken of, else ``fallback`` (the
    dataset's plug-in name: a folder with no record of it). Two entries with the same dataset share their sets:
    the first label by name."""
    import pandas as pd

    found: dict = {}

    def add(rows) -> None:
        for key, label in rows:
            if isinstance(key, str) and isinstance(label, str):
                found.setdefault(key, set()).add(label)

    try:
        add(pd.read_csv(root / "results.csv", usecols=["synset_key", "dataset"], dtype=str)
            .itertuples(index=False, name=None))
    except (OSError, ValueError, pd.errors.ParserError):
        pass
    jobs_read = []

    def lookup(meta: dict, key: str, fallback: str) -> str:
        if isinstance(meta.get("dataset_label"), str):
            return meta["dataset_label"]
        keys = [k for k in (key, meta.get("snapshot_of")) if k]
        if not any(k in found for k in keys) and not jobs_read:
            jobs_read.append(True)
            for job in sorted((root / "jobs").glob("*.json")):
                try:
                    row = json.loads(job.read_text())
                except (OSError, ValueError):
                    continue
                if isinstance(row, dict):
                    add([(row.get("synset_key"), row.get("dataset"))])
        return next((sorted(found[k])[0] for k in keys if k in found), fallback)

    return lookup


def _set_paths(items: list[tuple[str, Path]]) -> list[Path]:
    """The export path of each set ``(key, path)``: its own path where no other set has it, else the path with
    the key's first 8 characters; a path still shared is refused (nothing is written)."""
    from collections import Counter

    shared = Counter(rel for _, rel in items)
    paths = [Path(f"{rel}_{key[:8]}") if shared[rel] > 1 else rel for key, rel in items]
    twice = [p for p, n in Counter(paths).items() if n > 1]
    if twice:
        raise UsageError(f"two sets would be written to {twice[0]}; export them into separate --output folders")
    return paths


def _write_arrays(path: Path, arrays: dict, fmt: str, manifest: Optional[str]) -> None:
    import io

    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    if fmt == "pt":
        obj = {k: (v.contiguous() if isinstance(v, torch.Tensor) else v) for k, v in arrays.items()}
        if manifest is not None:
            obj["atombench"] = manifest
        torch.save(obj, buf)
    else:
        obj = {k: (v.contiguous().numpy() if isinstance(v, torch.Tensor) else np.asarray(v))
               for k, v in arrays.items()}
        if manifest is not None:
            obj["atombench"] = np.asarray(manifest)  # a unicode array: read back without pickle
        np.savez(buf, **obj)
    with atomic_write(path) as fh:
        fh.write(buf.getvalue())


def _write_png_folder(folder: Path, pixels: np.ndarray, labels: torch.Tensor, num_classes: int,
                      entry: dict) -> None:
    """One PNG per image in ``<class>/`` folders named by zero-padded label: sorted by name or read as numbers,
    the folders give the same labels (``10`` would sort before ``2``)."""
    import io

    from PIL import Image

    width = len(str(num_classes - 1))
    counts: dict[int, int] = {}
    for img, label in zip(pixels, labels.tolist()):
        n = counts.get(label, 0)
        counts[label] = n + 1
        target = folder / f"{label:0{width}d}" / f"{n:04d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img).save(buf, format="PNG")
        with atomic_write(target) as fh:
            fh.write(buf.getvalue())
    with atomic_write(folder / "atombench.json", "w") as fh:
        json.dump(entry, fh, indent=2, sort_keys=True)


# -- atombench evaluate --------------------------------------------------------------------------------------
def _kv(items: list[str], what: str) -> dict:
    import yaml

    out = {}
    for item in items or []:
        if "=" not in item:
            raise UsageError(f"{what} takes KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = yaml.safe_load(v)
        except yaml.YAMLError:
            out[k.strip()] = v
    return out


def evaluate_suite(set_file: str, dataset: str, models: list[str], *, dataset_options: list[str] = (),
                   zca: str = "auto", space: str = "auto", fmt: str = "auto", method: Optional[str] = None,
                   label: Optional[str] = None, ipc: Optional[int] = None, seed: int = 0,
                   eval_options: list[str] = (), device: Optional[str] = None, output: Optional[str] = None,
                   workers: Optional[int] = None, set_options: list[str] = ()) -> dict:
    """The suite document ``atombench evaluate`` runs: one dataset, the ``files`` distiller on ``set_file``
    (``set_options``: more of its options, ``KEY=VALUE``), the given models; defaults from the file's own record
    when it is an atombench export."""
    from . import registry
    from .distillers.files import FilesConfig, SetFileError, read_raw
    from .factories import load_dataset

    path = Path(set_file).expanduser()
    if not path.exists():
        raise SetFileError(f"{path} not found; pass the path of a set file (or an image folder)")
    path = path.resolve()
    template = str(path).replace("{", "{{").replace("}", "}}")
    raw = read_raw(path, fmt, FilesConfig(path=template, format=fmt), seed)  # the space is not needed to read
    made = raw.manifest or {}
    declared = {}  # a declared ZCA space names its whitening: --zca, else the one the file records
    if space == "zca":
        kind = zca if zca not in ("auto", "none") else (made.get("zca") or {}).get("kind")
        if kind is None:
            raise UsageError("--space zca: say which whitening with --zca unit_interval (MTT's and ATOM's code) or "
                             "--zca normalised (DataDAM's)")
        declared = {"zca": kind}
    options = _kv(list(dataset_options), "--dataset-option")
    entry: dict = {"name": dataset, "options": options}
    if zca == "auto":  # the whitening the set was evaluated in (a png export of a ZCA set: whitened again)
        whitening = made.get("zca") or made.get("stored_zca") or {}
        if space in ("auto", "zca", "pixels") and whitening.get("kind"):
            entry["zca"] = {"kind": whitening["kind"], "eps": whitening.get("eps", 0.1)}
    elif zca != "none":
        entry["zca"] = {"kind": zca}
    if ipc is None:
        ipc = made.get("ipc")
    if ipc is None:  # from the file: images (or labels) per class of the named dataset
        if dataset not in registry.datasets.names():
            raise UsageError(f"--dataset: unknown dataset '{dataset}'; atombench list datasets")
        data = load_dataset(dataset, options)
        ipc = max(1, len(raw.images) // data.num_classes)
    method = method if method is not None else (made.get("method") or "")
    label = label or made.get("label") or method or path.stem.replace(".", "_")
    config = {"path": template, "space": space, "format": fmt, **declared, **_kv(list(set_options), "--set-option")}
    if method:
        config["method"] = method
    # the file's name and the first 8 characters of its checksum: two runs' images_5000.pt get folders of their own
    # (each part cut to 40 characters: a long file name made a folder name past the file system's 255 bytes)
    name = "".join(ch if ch.isalnum() or ch in "_.-" else "_"
                   for ch in f"evaluate_{label[:40]}_{dataset[:40]}_{path.stem[:40]}_{raw.sha256[:8]}")
    doc = {"name": name, "datasets": [entry], "ipc": [int(ipc)], "seeds": [int(seed)],
           "distillers": [{"name": "files", "label": label, "options": config}],
           "models": list(models), "eval": _kv(list(eval_options), "--eval")}
    if device:
        doc["device"] = device
    if workers:
        doc["execution"] = {"workers": workers}
    if output:
        doc["output"] = output
    return doc


def run_evaluate(doc: dict, force: bool = False, progress: bool = True, echo=print):
    """Run the document of :func:`evaluate_suite` as ``atombench run`` runs a suite file."""
    import tempfile

    import yaml

    from .errors import AtombenchError
    from .runner import _run, preflight
    from .store import ResultsStore
    from .suite import parse_suite

    suite = parse_suite(doc, "atombench evaluate")
    plan = preflight(suite, "atombench evaluate")
    store = ResultsStore(suite.output_dir())
    with tempfile.TemporaryDirectory() as tmp:  # the suite as run, copied into the results folder
        text = Path(tmp) / "suite.yaml"
        text.write_text("# written by atombench evaluate\n" + yaml.safe_dump(doc, sort_keys=False))
        try:
            return _run(text, suite, plan, store, force, None, progress, echo)
        except OSError as exc:
            where = exc.filename or store.root
            raise AtombenchError(f"could not write {where} ({exc.strerror or exc}); free disk space or fix the "
                                 f"folder's permissions, then run the same command again") from exc
