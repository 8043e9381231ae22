"""``files``: synthetic sets made elsewhere (or exported from atombench), read from disk and evaluated like
distilled ones.

The config names a path template (``sets/{dataset}/{method}_ipc{ipc}_seed{seed}.pt``) and the pixel ``space`` the
file's images are in; the suite's ``ipc`` and ``seed`` select a file through the template. Formats
(``docs/set_formats.md``, with the reference code each comes from):

* ``dc``: the ``res_<method>_<dataset>_<model>_<ipc>ipc.pt`` of the DC/DSA/DM code (VICO-UoE/DatasetCondensation,
  ``main.py`` / ``main_DM.py``): ``{'data': [[images, labels], ...one per experiment], 'accs_all_exps': {...}}``;
  the suite's seed picks the experiment unless ``entry`` says which;
* ``datadam``: DataDAM's ``res_..._<ipc>ipc_.pt`` (DataDistillation/DataDAM, ``main_DataDAM.py``): the same
  structure, but ``data`` grows by one entry at every evaluation: the last is the latest set (``entry: -1``);
* ``mtt``: ``images_<it>.pt`` with its ``labels_<it>.pt`` (GeorgeCazenavette/mtt-distillation, ``distill.py``) and,
  where a code derived from it wrote one, ``lr_<it>.pt`` (the learned step size);
* ``tensor``: a ``.pt`` holding a tensor of images (labels from a ``labels`` sibling or ``labels: class_major``)
  or a dict of tensors; ``npz``; ``safetensors``; ``folder``: one PNG/JPEG per image in one folder per class.

Files are read without unpickling code: ``torch.load(..., weights_only=True)`` with only numpy's scalar types
allowed besides (the DC code's accuracies are numpy floats); ``np.load(..., allow_pickle=False)``. Every check a
set must pass (shape, class count, images per class, finite pixels, a plausible space, labels in range) runs in
the suite's preflight, so ``atombench validate`` reports a bad file before any work.

The set's key is the files' sha256 plus the options, of their content only (not the path nor the file names: a
moved or renamed file is the same set; an image folder's class folders are its labels and count), so a changed
file is evaluated again and an unchanged one never twice.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import torch

from ..config import check
from ..data.base import RealData, normalise
from ..errors import UsageError
from ..runtime import stable_hash
from .base import DistillContext, Distiller, class_balanced_labels

SPACES = ("auto", "pixels", "normalised", "zca")
FORMATS = ("auto", "dc", "datadam", "mtt", "tensor", "npz", "safetensors", "folder")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: dict keys read as images / hard labels / soft labels / learned step size, in order of preference
IMAGE_KEYS = ("images", "image_syn", "syn_images", "x")
LABEL_KEYS = ("labels", "label_syn", "hard_labels", "y")
SOFT_KEYS = ("soft_labels", "label_soft")
LR_KEYS = ("lr", "syn_lr")
#: the key under which an atombench export stores its own description of the set (JSON text)
MANIFEST_KEY = "atombench"


class SetFileError(UsageError):
    """A synthetic-set file that is missing, unreadable or does not fit the dataset (exit code 2)."""


@dataclass
class FilesConfig:
    """Where the set is and what its numbers mean (``docs/set_formats.md``)."""

    #: path template; ``{dataset}`` (the dataset's name), ``{ipc}``, ``{seed}`` (the suite's) and ``{method}``
    #: are filled in; relative paths are relative to the working directory
    path: str = ""
    #: the images' space: ``pixels`` (in [0, 1]), ``normalised`` (with the dataset's mean/std, as the DC/DM/MTT
    #: code trains without ZCA), ``zca`` (whitened: give ``zca`` and ``zca_eps``), or ``auto`` (what an atombench
    #: export records; any other file must declare it)
    space: Literal["auto", "pixels", "normalised", "zca"] = "auto"
    #: the file's layout (module docstring); ``auto`` tells them apart by name and content
    format: Literal["auto", "dc", "datadam", "mtt", "tensor", "npz", "safetensors", "folder"] = "auto"
    #: the method that made the set: fills ``{method}``; a registered distiller's name (``dc``, ``mtt``, ...) also
    #: gives the set that method's own evaluation protocol (``eval.protocol: paper``: MTT's learned step size) and
    #: its ``eval.augment: auto`` choice
    method: str = ""
    #: with ``space: zca``: the space the whitening was fitted in (``unit_interval``: MTT's and ATOM's code,
    #: ``normalised``: DataDAM's) and its eps (0.1 in all three codes, kornia's ZCAWhitening)
    zca: Optional[Literal["unit_interval", "normalised"]] = None
    zca_eps: float = 0.1
    #: ``dc``/``datadam`` files: which element of ``data`` (None: ``dc`` the suite's seed, one experiment per seed;
    #: ``datadam`` the last, its latest set); negative counts from the end
    entry: Optional[int] = None
    #: ``file``: labels come from the file; ``class_major``: the file has images only, in the order of the
    #: reference codes (class 0's ``ipc`` images, then class 1's, ...)
    labels: Literal["file", "class_major"] = "file"
    #: a learned step size to evaluate with (``lr: learned`` protocols) when the files carry none
    lr: Optional[float] = None
    #: refuse a set whose per-channel mean and spread are far from the declared space's (a wrong ``space``)
    check_space: bool = True

    def __post_init__(self):
        check(bool(self.path), "path must name the set's file(s), e.g. sets/{dataset}/ipc{ipc}_seed{seed}.pt")
        check(self.space != "zca" or self.zca is not None,
              "space: zca needs zca: unit_interval (MTT's and ATOM's code) or normalised (DataDAM's)")
        check(self.zca_eps > 0, f"zca_eps must be > 0, got {self.zca_eps}")
        check(self.lr is None or self.lr > 0, f"lr must be > 0, got {self.lr}")
        try:
            self.path.format(dataset="d", ipc=1, seed=0, method="m")
            bad = None
        except (KeyError, IndexError, ValueError) as exc:
            bad = f"{type(exc).__name__}: {exc}"
        check(bad is None, f"path: only {{dataset}}, {{ipc}}, {{seed}} and {{method}} can be filled in, got "
                           f"{self.path!r} ({bad})")


# -- reading -------------------------------------------------------------------------------------------------
@dataclass
class RawSet:
    """A set as the file holds it, before any check or change of space."""

    images: torch.Tensor
    labels: Optional[torch.Tensor]
    soft_labels: Optional[torch.Tensor]
    lr: Optional[float]
    files: list
    sha256: str
    format: str
    #: the export's own description of the set (atombench exports only)
    manifest: Optional[dict] = None
    detail: str = ""


def _numpy_safe_globals() -> list:
    """numpy's scalar types, which the DC code's accuracy lists hold: reconstructing them runs no code. numpy >= 2
    calls the module ``numpy._core`` where files saved under numpy 1 name ``numpy.core``; the ``(object, name)``
    form that allows the old name comes with torch 2.6. Where neither module imports, only ``np.dtype``."""
    try:
        from numpy._core import multiarray  # numpy >= 2
        renamed = True
    except ImportError:
        try:
            from numpy.core import multiarray  # numpy 1.x: the name its files carry
        except ImportError:
            multiarray = None
        renamed = False
    allowed: list = [np.dtype]
    if multiarray is not None:
        allowed.append(multiarray.scalar)
        if renamed and _torch_version() >= (2, 6):
            allowed.append((multiarray.scalar, "numpy.core.multiarray.scalar"))
    dtypes = getattr(np, "dtypes", None)  # numpy >= 1.25
    if dtypes is not None:
        allowed += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    return allowed


def _torch_version() -> tuple:
    found = re.match(r"(\d+)\.(\d+)", torch.__version__)
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


def safe_torch_load(path: Path):
    """``torch.load`` that never runs code from the file: tensors, numbers, strings, lists, dicts (and numpy
    scalars where torch has ``safe_globals``, 2.5 on); a pickle that needs anything else is refused with the name
    of what it needs."""
    import contextlib
    import pickle

    allow = getattr(torch.serialization, "safe_globals", None)  # torch >= 2.5; before it, tensors and containers
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
    except OSError as exc:
        raise SetFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if head[:2] != b"PK" and head[:1] != b"\x80":  # torch.save writes a zip archive (a pickle before torch 1.6)
        kind = "a text file (JSON, YAML, CSV?)" if head[:1] in (b"{", b"[", b"#") or head.isascii() and head.strip() \
            else "not a torch file"
        raise SetFileError(f"{path}: {kind}, not a file torch.save wrote; pass the set file itself (.pt, .pth, "
                           f".npz or .safetensors; an export's sets are under its sets/ folder)")
    try:
        with (allow(_numpy_safe_globals()) if allow is not None else contextlib.nullcontext()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        needs = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", str(exc))
        what = f"the Python object {needs.group(1)}" if needs else "objects beyond tensors, numbers and containers"
        newer = " (or read it with torch >= 2.6, which allows numpy's scalars)" \
            if needs and needs.group(1).startswith("numpy.") and _torch_version() < (2, 6) else ""
        raise SetFileError(f"{path}: refused: unpickling it needs {what}, and unpickling arbitrary objects can run "
                           f"code; atombench reads only tensors, numbers, strings, lists and dicts (torch.load "
                           f"weights_only=True): re-save the set with tensors only, e.g. torch.save({{'images': x, "
                           f"'labels': y}}, path){newer}") from None
    except (RuntimeError, OSError, EOFError, ValueError, KeyError, IndexError, TypeError, AttributeError,
            UnicodeDecodeError) as exc:  # a text or other file read as a legacy pickle fails in many ways
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise SetFileError(f"{path}: not a readable torch file ({type(exc).__name__}: {first}); is it a file "
                           f"torch.save wrote, and whole (not truncated)?") from None


def _sha(parts: list[tuple[str, Path]]) -> str:
    """The files' content, each under its role (``set``; MTT's ``images``, ``labels``, ``lr``, in that order),
    never their names: a moved or renamed file is the same set."""
    h = hashlib.sha256()
    for role, p in parts:
        h.update(role.encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def _tensor(value, what: str, path: Path) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, torch.Tensor):
        raise SetFileError(f"{path}: {what} must be a tensor or array, got {type(value).__name__}")
    return value.detach().cpu()


def _lr_value(value, path: Path) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, (torch.Tensor, np.ndarray)):
        if (value.size if isinstance(value, np.ndarray) else value.numel()) != 1:
            raise SetFileError(f"{path}: the learned step size must be one number, got shape {tuple(value.shape)}")
        value = value.item()
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise SetFileError(f"{path}: the learned step size must be a positive number, got {value!r}")
    return float(value)


def _from_mapping(d: dict, path: Path, fmt: str, files: list[Path]) -> RawSet:
    def pick(keys):
        return next((d[k] for k in keys if k in d), None)

    images = pick(IMAGE_KEYS)
    if images is None and isinstance(d.get("data"), list):
        raise SetFileError(f"{path}: a dict with a 'data' list, as the DC/DSA/DM and DataDAM codes save: set format: "
                           f"dc (one experiment per seed) or datadam (the latest set)")
    if images is None:
        raise SetFileError(f"{path}: no images found: the file's keys are {sorted(map(str, d))[:12]}, expected "
                           f"one of {', '.join(IMAGE_KEYS)}")
    labels, soft = pick(LABEL_KEYS), pick(SOFT_KEYS)
    manifest = d.get(MANIFEST_KEY)
    if isinstance(manifest, np.ndarray):
        manifest = str(manifest)
    manifest = _manifest(manifest, path, f"its '{MANIFEST_KEY}' entry") if isinstance(manifest, str) else None
    return RawSet(_tensor(images, "images", path), None if labels is None else _tensor(labels, "labels", path),
                  None if soft is None else _tensor(soft, "soft labels", path), _lr_value(pick(LR_KEYS), path),
                  files, _sha([("set", f) for f in files]), fmt, manifest)


def _results_folder_manifest(path: Path) -> Optional[str]:
    """For a set file inside a results folder (``synsets/<key>.safetensors``), what an export's manifest would
    say, from the metadata stored beside it: the space (the dataset's normalised one, or the whitened one of a
    ``zca:`` entry), the method, IPC and key (so that its evaluations train the original's models); None for any
    other file. A set stored encoded (multi-formation) must be exported: a model trains on its decoded images."""
    side = Path(f"{path}.json")
    if path.parent.name != "synsets" or not side.is_file():
        return None
    try:
        meta = json.loads(side.read_text())
    except (OSError, ValueError):
        return None
    args = meta.get("dataset_args") if isinstance(meta, dict) else None
    if not isinstance(args, list) or len(args) < 4:
        return None  # a folder written before the metadata recorded its dataset: declare the space
    if meta.get("decoder"):
        raise SetFileError(f"{path}: stored encoded (decoded by '{meta['decoder']}' before training): export it "
                           f"first (atombench export {path.parent.parent} --output DIR), then evaluate the exported "
                           f"file, which holds the images a model trains on")
    zca = "normalised" if args[2] is True else args[2]
    out = {"space": "zca" if zca else "normalised", "method": meta.get("method"), "label": meta.get("label"),
           "ipc": meta.get("ipc"), "seed": meta.get("suite_seed"), "key": path.name[:-len(".safetensors")],
           "dataset_fingerprint": meta.get("dataset_fingerprint"), "source": "results folder"}
    if zca:
        out["zca"] = {"kind": zca, "eps": float(args[3])}
    return json.dumps(out)


def _manifest(text: str, path: Path, what: str = "") -> dict:
    """An export's description of its set (JSON text): a dict, or a :class:`SetFileError` naming the file (and
    ``what`` in it holds the text)."""
    what = f"{what} is " if what else ""
    try:
        value = json.loads(text)
    except ValueError as exc:  # JSONDecodeError
        raise SetFileError(f"{path}: {what}not the JSON object an atombench export writes (JSONDecodeError: "
                           f"{exc}); remove it, or export the set again") from None
    if not isinstance(value, dict):
        raise SetFileError(f"{path}: {what}not the JSON object an atombench export writes (a JSON "
                           f"{type(value).__name__}); remove it, or export the set again")
    for name in ("zca", "stored_zca"):
        if value.get(name) is not None and not isinstance(value[name], dict):
            raise SetFileError(f"{path}: '{name}' must be an object with kind and eps, got "
                               f"{value[name]!r}")
    return value


def _res_entry(obj, path: Path, fmt: str, entry: Optional[int], seed: int) -> tuple[list, str]:
    data = obj.get("data") if isinstance(obj, dict) else None
    if not isinstance(data, list) or not data:
        raise SetFileError(f"{path}: not a res_*.pt of the DC/DSA/DM or DataDAM code: expected a dict whose 'data' "
                           f"is a non-empty list of [images, labels]")
    index = entry if entry is not None else (seed if fmt == "dc" else -1)
    if not -len(data) <= index < len(data):
        raise SetFileError(f"{path}: 'data' holds {len(data)} set(s) (entries 0-{len(data) - 1}), none for "
                           f"{'entry' if entry is not None else 'seed'} {index}; choose one with the files config's "
                           f"entry, or seeds within 0-{len(data) - 1}")
    pair = data[index]
    if not isinstance(pair, (list, tuple)) or len(pair) != 2:
        raise SetFileError(f"{path}: data[{index}] must be [images, labels]")
    return list(pair), f"entry {index % len(data)} of {len(data)}"


def _mtt_sibling(path: Path, role: str) -> Path:
    """``labels_<it>.pt`` / ``lr_<it>.pt`` beside ``images_<it>.pt`` (or ``images_zca_<it>.pt``)."""
    return path.with_name(re.sub(r"^images_(zca_)?", f"{role}_", path.name))


def read_raw(path: Path, fmt: str, cfg: FilesConfig, seed: int) -> RawSet:
    """The set in ``path`` as stored (no checks against a dataset yet)."""
    declared = fmt != "auto"
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt == "folder":
        return _read_folder(path)
    if not path.is_file():
        raise SetFileError(f"{path}: not a file (format {fmt})")
    _check_container(path, fmt, declared)
    if fmt == "npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                d = {k: z[k] for k in z.files}
        except ValueError as exc:
            raise SetFileError(f"{path}: refused: {exc} (atombench reads npz arrays without pickle: save plain "
                               f"numeric arrays)") from None
        except (OSError, EOFError, KeyError) as exc:
            raise SetFileError(f"{path}: not a readable .npz ({type(exc).__name__}: {exc})") from None
        return _from_mapping(d, path, fmt, [path])
    if fmt == "safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), "pt") as f:
                d = {k: f.get_tensor(k) for k in f.keys()}
                meta = (f.metadata() or {}).get(MANIFEST_KEY)
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
            raise SetFileError(f"{path}: not a readable safetensors file ({type(exc).__name__}: {exc})") from None
        if meta is None:  # a results folder's own set file: its metadata beside it says what an export would
            meta = _results_folder_manifest(path)
        if meta is not None:
            d[MANIFEST_KEY] = meta
        return _from_mapping(d, path, fmt, [path])
    obj = safe_torch_load(path)
    if fmt in ("dc", "datadam"):
        (images, labels), detail = _res_entry(obj, path, fmt, cfg.entry, seed)
        raw = RawSet(_tensor(images, "images", path), _tensor(labels, "labels", path), None, None, [path],
                     _sha([("set", path)]), fmt, detail=detail)
        return raw
    if isinstance(obj, dict):
        return _from_mapping(obj, path, fmt, [path])
    if isinstance(obj, (tuple, list)) and len(obj) == 2 and all(isinstance(v, (torch.Tensor, np.ndarray)) for v in obj):
        return _from_mapping({"images": obj[0], "labels": obj[1]}, path, fmt, [path])  # torch.save((x, y), f)
    if not isinstance(obj, (torch.Tensor, np.ndarray)):
        raise SetFileError(f"{path}: holds a {type(obj).__name__}; a set file holds a tensor of images, a pair "
                           f"(images, labels) or a dict {{'images': x, 'labels': y}}")
    images = _tensor(obj, "the file's content", path)
    files, roles, labels, lr = [path], ["set"], None, None
    if fmt == "mtt" or path.name.startswith("images_"):
        roles = ["images"]
        lab = _mtt_sibling(path, "labels")
        if lab.is_file():
            labels = _tensor(safe_torch_load(lab), "labels", lab)
            files.append(lab)
            roles.append("labels")
        elif cfg.labels == "file":
            raise SetFileError(f"{path}: its labels file {lab} is missing (MTT's distill.py writes images_<it>.pt "
                               f"and labels_<it>.pt side by side); copy it there, or set labels: class_major")
        lr_path = _mtt_sibling(path, "lr")
        if lr_path.is_file():
            lr = _lr_value(safe_torch_load(lr_path), lr_path)
            files.append(lr_path)
            roles.append("lr")
        fmt = "mtt"
    return RawSet(images, labels, None, lr, files, _sha(list(zip(roles, files))), fmt)


#: the container each file format is read from, and the format to name for a file of that container
_CONTAINER = {"npz": "npz", "safetensors": "safetensors", "dc": "torch", "datadam": "torch", "mtt": "torch",
              "tensor": "torch"}
_CONTAINER_FORMAT = {"npz": "npz", "safetensors": "safetensors", "torch": "tensor"}
_CONTAINER_NAME = {"npz": "a NumPy .npz archive", "safetensors": "a safetensors file",
                   "torch": "a torch.save file"}


def sniff_container(path: Path) -> Optional[str]:
    """What ``path`` holds by its first bytes, whatever its name: ``torch`` (torch.save's zip or legacy pickle),
    ``npz`` (a zip of .npy arrays), ``safetensors`` (a little-endian header length, then a JSON header), or None
    (none of these: the reader for the declared format says what is wrong)."""
    import zipfile

    try:
        with open(path, "rb") as fh:
            head = fh.read(9)
    except OSError:
        return None
    if head[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError):
            return None
        if any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
            return "torch"
        if names and all(n.endswith(".npy") for n in names):
            return "npz"
        return None
    if head[:1] == b"\x80":  # a pickle: torch.save's legacy (non-zip) format
        return "torch"
    if len(head) == 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < 1 << 32:
        return "safetensors"
    return None


def _check_container(path: Path, fmt: str, declared: bool) -> None:
    """A file whose bytes are another container than ``fmt`` reads from: one line naming what it is and the
    format to set (a .pt given ``format: npz`` listed torch's zip entries as missing arrays)."""
    found = sniff_container(path)
    if found is None or _CONTAINER.get(fmt) in (None, found):
        return
    hint = _CONTAINER_FORMAT[found]
    why = f"declared format {fmt}" if declared else f"its name says format {fmt}"
    raise SetFileError(f"{path}: {why}, but the file is {_CONTAINER_NAME[found]}; set format: {hint}"
                       + ("" if declared else " (or rename it)"))


def detect_format(path: Path) -> str:
    if path.is_dir():
        return "folder"
    name = path.name
    if name.endswith(".npz"):
        return "npz"
    if name.endswith(".safetensors"):
        return "safetensors"
    if re.match(r"res_.*ipc_\.pt$", name):
        return "datadam"  # DataDAM's name: the DC code's with a trailing underscore
    if name.startswith("res_") and name.endswith(".pt"):
        return "dc"
    if name.startswith("images_") and name.endswith(".pt"):
        return "mtt"
    return "tensor"


def _read_folder(path: Path) -> RawSet:
    from PIL import Image

    if not path.is_dir():
        raise SetFileError(f"{path}: not a folder of class folders")
    classes = sorted(p for p in path.iterdir() if p.is_dir())
    if not classes:
        raise SetFileError(f"{path}: no class folders in it (expected one folder per class, e.g. 0/, 1/, ... or "
                           f"the dataset's class names, each holding PNG/JPEG files)")
    names = [c.name for c in classes]
    manifest, side_bytes = None, None
    side = path / "atombench.json"
    if side.is_file():
        try:
            side_bytes = side.read_bytes()
            text = side_bytes.decode()
        except (OSError, UnicodeDecodeError) as exc:
            raise SetFileError(f"{side}: not readable ({type(exc).__name__}: {exc})") from None
        manifest = _manifest(text, side)
    images, labels, files = [], [], []
    for c in classes:
        for f in sorted(p for p in c.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            try:
                with Image.open(f) as im:
                    arr = np.asarray(im)
            except Exception as exc:  # noqa: BLE001 - PIL's decoders raise OSError, SyntaxError, struct.error, ...
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise SetFileError(f"{f}: not a readable image ({type(exc).__name__}: {first}); replace or "
                                   f"remove it") from None
            images.append(arr if arr.ndim == 3 else arr[:, :, None])
            labels.append(c.name)
            files.append(f)
    if not images:
        raise SetFileError(f"{path}: the class folders hold no .png/.jpg/.jpeg files")
    shapes = {a.shape for a in images}
    if len(shapes) > 1:
        raise SetFileError(f"{path}: the images differ in size ({sorted(shapes)[:3]}); all must have the "
                           f"dataset's size")
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    if x.dtype == torch.uint8:
        x = x.float().div_(255.0)
    elif x.dtype == torch.uint16 or x.dtype == torch.int32:
        x = x.float().div_(65535.0)
    else:
        x = x.float()
    soft = (manifest or {}).get("soft_labels")  # an atombench export keeps them (and the lr) beside the images
    if soft is not None:
        try:
            soft = torch.tensor(soft, dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise SetFileError(f"{side}: soft_labels must be a list of rows of numbers ({exc})") from None
    raw = RawSet(x, None, soft,
                 _lr_value((manifest or {}).get("syn_lr"), side), files, _sha_folder(path, files, side_bytes), "folder",
                 manifest, detail=f"{len(names)} class folders")
    raw.folder_labels = labels  # resolved against the dataset's classes in _labels
    raw.folder_names = names
    return raw


def _sha_folder(root: Path, files: list[Path], sidecar: Optional[bytes]) -> str:
    """The images with their paths under the folder (a class folder's name is the label), and ``atombench.json``
    when there is one: it carries what the images do not (soft labels, the learned step size, the key whose
    evaluation seeds an export takes). A folder without it keeps the checksum it had before the sidecar counted."""
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(root)).encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
    if sidecar is not None:  # no image has this path: images are one class folder down
        h.update(b"atombench.json\0" + hashlib.sha256(sidecar).digest())
    return h.hexdigest()


# -- checks against the dataset and the change of space -------------------------------------------------------
def _folder_label_map(names: list[str], data: RealData, path: Path) -> dict[str, int]:
    """Class folder name -> label: numbers (``0``, ``07``) are the label; otherwise the dataset's class names.
    Never the folders' sorted order alone: ``10`` sorts before ``2`` (``docs/set_formats.md#label-order``)."""
    if all(re.fullmatch(r"\d+", n) for n in names):
        return {n: int(n) for n in names}
    classes = [str(c) for c in data.classes]
    unknown = [n for n in names if n not in classes]
    if unknown:
        raise SetFileError(f"{path}: class folders must be named by label (0, 1, ...) or by {data.name}'s class "
                           f"names ({', '.join(classes[:5])}, ...); {unknown[:3]} are neither")
    return {n: classes.index(n) for n in names}


def _labels(raw: RawSet, data: RealData, ipc: int, path: Path, cfg: FilesConfig):
    """(hard labels int64 [N], soft labels as logits [N, K] or None)."""
    n, k = len(raw.images), data.num_classes
    labels, soft = raw.labels, raw.soft_labels
    if raw.format == "folder":
        mapping = _folder_label_map(raw.folder_names, data, path)
        labels = torch.tensor([mapping[c] for c in raw.folder_labels], dtype=torch.int64)
    if labels is None and soft is None:
        if cfg.labels == "class_major":
            if n != k * ipc:
                raise SetFileError(f"{path}: labels: class_major needs {k} x {ipc} = {k * ipc} images, the file "
                                   f"holds {n}")
            return class_balanced_labels(k, ipc), None
        raise SetFileError(f"{path}: no labels in the file (looked for {', '.join(LABEL_KEYS)}); add them, or set "
                           f"labels: class_major if the images are in class order ({ipc} of class 0, then class 1...)")
    if labels is not None and labels.is_floating_point() and labels.ndim == 2:
        soft, labels = labels, None  # soft labels stored as the labels (DATM-style)
    if soft is not None:
        soft = soft.float()
        if soft.shape != (n, k):
            raise SetFileError(f"{path}: soft labels must be [{n}, {k}] (images x {data.name}'s classes), got "
                               f"{list(soft.shape)}")
        if not torch.isfinite(soft).all():
            raise SetFileError(f"{path}: the soft labels hold NaN or inf values")
        if (soft >= 0).all() and torch.allclose(soft.sum(1), torch.ones(n), atol=1e-3):
            soft = soft.clamp_min(1e-12).log()  # probabilities: their logs are logits (up to a constant per row)
        if labels is None:
            labels = soft.argmax(1)
    if labels.ndim != 1 or len(labels) != n:
        raise SetFileError(f"{path}: labels must be one per image ([{n}]), got shape {list(labels.shape)}")
    if labels.is_floating_point():
        if not torch.equal(labels, labels.round()):
            raise SetFileError(f"{path}: labels must be whole numbers (class indices), got {labels[:4].tolist()}...")
    labels = labels.to(torch.int64)
    return labels, soft


def _stats(x: torch.Tensor) -> tuple[list[float], list[float]]:
    flat = x.double().transpose(0, 1).reshape(x.shape[1], -1)
    return flat.mean(1).tolist(), flat.std(1).tolist()


def _distance(x: torch.Tensor) -> float:
    """How far a set in the normalised space is from its usual statistics (per channel mean 0, std 1): the
    channels' mean of |mean| + |log std|. Real images give about 0; distilled sets stay well below 1."""
    means, stds = _stats(x)
    return float(np.mean([abs(m) + abs(math.log(max(s, 1e-12))) for m, s in zip(means, stds)]))


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


class SpaceConverter:
    """Images of a declared space -> the dataset's space as loaded (normalised, and whitened when the suite's
    dataset entry asks for ZCA), and the statistics that tell a wrong declaration."""

    def __init__(self, data: RealData, space: str, zca: Optional[str], eps: float):
        self.data, self.space, self.kind, self.eps = data, space, zca, eps

    def _set_zca(self):
        """The whitening the set's images are in: the dataset's own when it matches, else fitted on its
        training images (the references' fit: the whole training set, ``docs/preprocessing.md#zca``)."""
        from ..data.zca import fit_cached

        opts = self.data.options
        if self.data.zca is not None:
            if opts.get("zca") == self.kind and float(opts.get("zca_eps", -1)) == float(self.eps):
                return self.data.zca
            raise SetFileError(f"the set is in ZCA space ({self.kind}, eps {self.eps}) but the suite whitens "
                               f"{self.data.name} with ({opts.get('zca')}, eps {opts.get('zca_eps')}); give the "
                               f"dataset entry zca: {{kind: {self.kind}, eps: {self.eps}}} (or zca: false to evaluate "
                               f"the de-whitened images)")
        key = stable_hash(["zca", self.data.fingerprint, self.kind, float(self.eps)])  # = the whitened data's
        if key not in _ZCA_CACHE:
            _ZCA_CACHE[key] = fit_cached(key, self.data.train_x, self.eps, self.kind, self.data.mean, self.data.std)
        return _ZCA_CACHE[key]

    def to_normalised(self, x: torch.Tensor, space: Optional[str] = None) -> torch.Tensor:
        space = space or self.space
        if space == "pixels":
            return normalise(x, self.data.mean, self.data.std)
        if space == "zca":
            return self._set_zca().inverse(x)
        return x

    def to_data(self, x: torch.Tensor) -> torch.Tensor:
        """The images in the space the dataset is loaded in (bit for bit unchanged when they already are)."""
        if self.space == "zca" and self.data.zca is not None:
            self._set_zca()  # the same whitening, checked: nothing to change
            return x
        if self.space == "normalised" and self.data.zca is None:
            return x
        x = self.to_normalised(x)
        return self.data.zca(x) if self.data.zca is not None else x

    def check(self, x: torch.Tensor, path: Path) -> None:
        """A wrong ``space``: pixels outside [0, 1] declared as pixels, 8-bit values, or statistics far from the
        declared space's that another space explains (the message gives the numbers)."""
        lo, hi = float(x.min()), float(x.max())
        if hi > 1.5 and lo >= 0 and torch.equal(x, x.round()):
            raise SetFileError(f"{path}: the pixels are whole numbers from {lo:g} to {hi:g}: 8-bit values; divide "
                               f"them by 255 and declare space: pixels")
        if self.space == "pixels" and (lo < -1e-3 or hi > 1 + 1e-3):
            means, stds = _stats(x)
            hint = " (they look normalised: declare space: normalised)" if _distance(x) < 1 else ""
            raise SetFileError(f"{path}: declared space: pixels, but the values run from {lo:.3g} to {hi:.3g}, "
                               f"outside [0, 1]; per-channel mean {_fmt(means)}, std {_fmt(stds)}{hint}")
        declared = self.to_normalised(x)
        d = _distance(declared)
        alternatives = {"normalised": x}
        if lo >= -1e-3 and hi <= 1 + 1e-3:
            alternatives["pixels"] = self.to_normalised(x, "pixels")
        if self.space == "zca" or self.data.zca is not None:
            try:
                alternatives["zca"] = self.data.zca.inverse(x) if self.data.zca is not None else declared
            except SetFileError:
                pass
        alternatives.pop(self.space, None)
        scores = {name: _distance(v) for name, v in alternatives.items()}
        best = min(scores, key=scores.get) if scores else None
        if d > 3 or (d > 1 and best is not None and scores[best] < d / 2):
            means, stds = _stats(declared)
            text = (f"{path}: declared space: {self.space}, but in the normalised space of {self.data.name} the "
                    f"set has per-channel mean {_fmt(means)} and std {_fmt(stds)}, where images of that space have "
                    f"about 0 and 1")
            if best is not None and scores[best] < d / 2:
                bm, bs = _stats(alternatives[best])
                text += (f"; read as {best} it would have mean {_fmt(bm)} and std {_fmt(bs)}: declare space: {best}"
                         + (" (with zca: and zca_eps:)" if best == "zca" else ""))
            raise SetFileError(text + " (check_space: false skips this check)")


_ZCA_CACHE: dict = {}
#: sets read in this process: (path, size, mtime, options) -> the checked set (preflight, key and job read once)
_READ_CACHE: dict = {}


@dataclass
class ImportedSet:
    images: torch.Tensor  # in the dataset's space as loaded
    labels: torch.Tensor
    soft_labels: Optional[torch.Tensor]
    lr: Optional[float]
    sha256: str
    space: str
    raw: RawSet
    path: Path


def _stamp(path: Path) -> tuple:
    if path.is_dir():
        return tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(path.rglob("*")))
    st = path.stat()
    return (st.st_size, st.st_mtime_ns)


def _space_from_manifest(raw: RawSet, cfg: FilesConfig, path: Path) -> tuple[str, Optional[str], float]:
    if cfg.space != "auto":
        return cfg.space, cfg.zca, cfg.zca_eps
    m = raw.manifest or {}
    space = m.get("space")
    if space not in ("pixels", "normalised", "zca"):
        if Path(f"{path}.json").is_file() and path.parent.name == "synsets":  # a results folder's own set file
            raise SetFileError(f"{path}: a set inside a results folder, whose metadata says nothing of its pixel "
                               f"space to an import: export it first (atombench export "
                               f"{path.parent.parent} --output DIR), then evaluate the exported file; or declare "
                               f"its space (--space normalised, or zca for a whitened dataset entry's set)")
        raise SetFileError(f"{path}: the file does not say which pixel space its images are in; declare it in the "
                           f"files config: space: pixels (in [0, 1]) | normalised (the dataset's mean/std) | zca")
    zca = m.get("zca") or {}
    return space, zca.get("kind"), float(zca.get("eps", 0.1))


def import_set(path: Path, cfg: FilesConfig, data: RealData, ipc: int, seed: int) -> ImportedSet:
    """Read, check and convert the set at ``path`` for ``data`` at ``ipc``; every problem is a
    :class:`SetFileError` naming the file and the fix."""
    if not path.exists():
        raise SetFileError(f"{path} not found (path: {cfg.path!r} with dataset={data.name}, ipc={ipc}, seed={seed}"
                           f"{', method=' + cfg.method if '{method}' in cfg.path else ''}); check the template and "
                           f"the file's name")
    from .. import config as cfgmod

    key = (str(path.resolve()), _stamp(path), json.dumps(cfgmod.to_dict(cfg), sort_keys=True), data.fingerprint,
           ipc, seed)
    if key in _READ_CACHE:
        return _READ_CACHE[key]
    raw = read_raw(path, cfg.format, cfg, seed)
    x = raw.images
    c, (h, w), k = data.channels, data.image_size, data.num_classes
    if x.ndim == 3 and c == 1:
        x = x.unsqueeze(1)  # [N, H, W] grey images
    if x.ndim != 4 or tuple(x.shape[1:]) != (c, h, w):
        hint = ""
        if x.ndim == 4 and tuple(x.shape[1:]) == (h, w, c):
            hint = " (channels last: store them as [N, C, H, W])"
        raise SetFileError(f"{path}: images are {list(x.shape)}, {data.name} needs [N, {c}, {h}, {w}]{hint}")
    if not x.is_floating_point():
        if x.dtype == torch.uint8:
            raise SetFileError(f"{path}: the images are uint8 (0-255); store them as floats divided by 255 and "
                               f"declare space: pixels")
        x = x.float()
    x = x.to(torch.float32)
    bad = int((~torch.isfinite(x)).sum())
    if bad:
        raise SetFileError(f"{path}: {bad} of {x.numel()} pixel values are NaN or inf; the set cannot be evaluated "
                           f"(re-export it from the step before it diverged)")
    labels, soft = _labels(raw, data, ipc, path, cfg)
    out_of_range = labels[(labels < 0) | (labels >= k)]
    if len(out_of_range):
        raise SetFileError(f"{path}: labels out of range: {sorted(set(out_of_range.tolist()))[:5]}; {data.name} "
                           f"has classes 0-{k - 1}")
    counts = torch.bincount(labels, minlength=k)
    present = int((counts > 0).sum())
    if present != k:
        raise SetFileError(f"{path}: the set has images of {present} classes, {data.name} has {k} (missing: "
                           f"{[i for i in range(k) if counts[i] == 0][:8]})")
    if not bool((counts == ipc).all()):
        wrong = [(i, int(counts[i])) for i in range(k) if counts[i] != ipc]
        hint = f"; the file holds {len(labels)} images: IPC {len(labels) // k}?" if len(labels) % k == 0 else ""
        raise SetFileError(f"{path}: every class needs exactly ipc = {ipc} image(s); "
                           + ", ".join(f"class {i} has {n}" for i, n in wrong[:4])
                           + (" ..." if len(wrong) > 4 else "") + hint)
    space, kind, eps = _space_from_manifest(raw, cfg, path)
    if space == "zca" and kind is None:
        raise SetFileError(f"{path}: space: zca needs zca: unit_interval or normalised")
    if raw.format == "folder" and space != "pixels":
        raise SetFileError(f"{path}: image files hold pixels: declare space: pixels (or auto), not {space}")
    conv = SpaceConverter(data, space, kind, eps)
    recorded = cfg.space == "auto"  # the space an atombench export or results folder recorded, not a declaration
    if cfg.check_space and not recorded:  # the check guards a declared space (a distilled ZCA set can look odd)
        conv.check(x, path)
    lr = cfg.lr if cfg.lr is not None else raw.lr
    out = ImportedSet(conv.to_data(x).contiguous(), labels, soft, lr, raw.sha256, space, raw, path)
    _READ_CACHE[key] = out
    return out


# -- the distiller -------------------------------------------------------------------------------------------
class FilesDistiller(Distiller):
    """Imported: a synthetic set read from files (DC/DSA/DM, MTT, DataDAM outputs, pt/npz/safetensors, images)"""

    Config = FilesConfig
    display_name = "Imported"

    def __init__(self, config=None):
        super().__init__(config)
        own = self._method_class()
        # the method that made the set decides how its papers evaluate it (eval.augment: auto, protocol: paper)
        self.eval_with_dsa = bool(getattr(own, "eval_with_dsa", False))
        self.protocol = getattr(own, "protocol", None)
        self._method = None

    def _method_class(self):
        from .. import registry

        name = self.config.method
        if not name or name == "files" or name not in registry.distillers.names():
            return None
        try:
            return registry.distillers.get(name)
        except Exception:  # noqa: BLE001 - a broken plug-in: the set keeps the common protocol
            return None

    def _method_instance(self):
        if self._method is None and self._method_class() is not None:
            from ..factories import make_distiller

            self._method = make_distiller(self.config.method, {})
        return self._method

    def paper_protocol(self, dataset: str, model, ipc: int):
        own = self._method_instance()
        return own.paper_protocol(dataset, model, ipc) if own is not None else None

    def paper_zca(self, dataset: str, ipc: int):
        """``zca: paper``: the whitening the method's paper used (the set must be in it: ``space: zca``)."""
        own = self._method_instance()
        return own.paper_zca(dataset, ipc) if own is not None else None

    def path_for(self, data: RealData, ipc: int, seed: int) -> Path:
        return Path(self.config.path.format(dataset=data.name, ipc=ipc, seed=seed,
                                            method=self.config.method)).expanduser()

    def read(self, data: RealData, ipc: int, seed: int) -> ImportedSet:
        return import_set(self.path_for(data, ipc, seed), self.config, data, ipc, seed)

    def check_ipc(self, data: RealData, ipc: int) -> str | None:
        return None if ipc >= 1 else f"IPC must be >= 1, got {ipc}"  # any IPC the file has (checked in check_set)

    def check_set(self, data: RealData, ipc: int, seed: int) -> str | None:
        try:
            self.read(data, ipc, seed)
        except SetFileError as err:
            return str(err)
        return None

    def has_soft_labels(self, data: RealData, ipc: int, seed: int) -> Optional[bool]:
        try:
            return self.read(data, ipc, seed).soft_labels is not None
        except SetFileError:
            return None  # check_set reports the file

    def synset_identity(self, data: RealData, ipc: int, seed: int):
        """The files' checksum and the options that change what is read (not the path: a moved file is the
        same set)."""
        from .. import config as cfgmod

        options = {k: v for k, v in cfgmod.to_dict(self.config).items() if k != "path"}
        return {"sha256": self.read(data, ipc, seed).sha256, "options": options}

    def eval_seed_key(self, data: RealData, ipc: int, seed: int) -> Optional[str]:
        """The key of the set an atombench export came from: its evaluations then train the models (seeds) the
        original's did, so a set re-imported bit for bit gives the same accuracies to the last digit."""
        manifest = self.read(data, ipc, seed).raw.manifest or {}
        return manifest.get("key") if manifest.get("dataset_fingerprint") == data.fingerprint else None

    def distill(self, data: RealData, ipc: int, ctx: DistillContext):
        seed = ctx.suite_seed if ctx.suite_seed is not None else ctx.seed
        got = self.read(data, ipc, seed)
        extras = {"imported": True, "source_path": str(got.path), "source_sha256": got.sha256,
                  "source_format": got.raw.format, "source_space": got.space}
        if got.raw.detail:
            extras["source_detail"] = got.raw.detail
        if got.raw.manifest:
            extras["source_manifest"] = {k: got.raw.manifest.get(k) for k in ("method", "label", "key", "ipc", "seed")}
        if got.lr is not None:
            extras["syn_lr"] = got.lr
        if got.soft_labels is not None:
            extras["soft_labels"] = got.soft_labels
        return got.images.clone(), got.labels.clone(), extras
