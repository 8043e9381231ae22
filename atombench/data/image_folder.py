"""Images in class folders: ``<root>/<split>/<class>/<image>``, from a folder or read in place from a ``.zip``.

The layout ImageNette / ImageWoof, many released datasets and a user's own data share. ``root`` is a folder or a
zip archive holding such a tree (at its top or under one folder, as ``cifar10_jpeg/train/airplane/0001.jpg``).
Images in subfolders of a class folder (``train/cat/batch2/0001.jpg``) belong to the class, as in torchvision's
``ImageFolder``; hidden files and folders (a name starting with ``.``) are skipped; a zip whose member names use
backslashes (written by some Windows tools) is read as if they were slashes.

Options (:class:`ImageFolderConfig`):

* ``root``: the folder or ``.zip`` (default ``$ATOMBENCH_DATA/<default_name>`` for named datasets built on this);
* ``splits``: the training and the test split's folder names (default ``[train, test]``);
* ``classes``: the class folders in label order (default: the training split's folder names, sorted);
* ``image_size``: resize to this size (one number for square, or ``[H, W]``): the shorter side is scaled to it
  and the centre cropped, as torchvision's ``Resize`` + ``CenterCrop`` do on PIL images (bilinear, antialiased by
  PIL; the same sizes and offsets, so the same pixels); without it, every image must have the same size;
* ``channels``: 1 (greyscale, PIL's ``L``) or 3 (``RGB``); default: 1 when every image is greyscale, else 3 (a
  grey image among colour ones gets its one channel repeated);
* ``mean`` / ``std``: the per-channel normalisation; default: computed from the training split (in [0, 1]) and
  recorded in the dataset's options, so it enters every key;
* ``cache``: keep the decoded pixels (uint8) under ``cache_dir`` (default ``$ATOMBENCH_CACHE/decoded``, else
  ``~/.cache/atombench/decoded``), keyed on the archive's SHA-256 (a folder: every file's path, size and
  modification time), the options that change the pixels and the decoder (Pillow's and its JPEG library's
  versions): a second load reads one array instead of decoding every image. A changed archive or decoder is
  decoded again.

Every problem is one :class:`~atombench.errors.DataError` line naming the file or folder: a missing root or split,
an empty class, a class in one split and not the other, an unreadable or truncated image, mixed sizes without
``image_size``, a zip with no tree in it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from ..errors import DataError
from .base import RealData, cache_root, default_root, expand

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
#: bump when the decoding here changes what the pixels are (the cache key includes it)
DECODE_VERSION = 3  # 2: 16-bit grey scaled, not clipped, on its way to RGB too; 3: images in subfolders of a class
#: are read, resized images rounded as torchvision rounds them (2026-12-07)


@dataclass
class ImageFolderConfig:
    """The options of an image-folder dataset (module docstring)."""

    root: Optional[str] = None
    splits: list = field(default_factory=lambda: ["train", "test"])
    classes: Optional[list] = None
    image_size: Optional[Union[int, list]] = None
    channels: Optional[int] = None
    mean: Optional[list] = None
    std: Optional[list] = None
    cache: bool = True
    cache_dir: Optional[str] = None


def _fail(name: str, text: str) -> DataError:
    return DataError(f"dataset '{name}': {text}")


class _Source:
    """The files of a tree, from a folder or a zip: ``files[split][class] -> [member]`` and ``read(member)``."""

    def __init__(self, name: str, root: Path, splits: list[str]):
        self.name, self.root = name, root
        self.zip: Optional[zipfile.ZipFile] = None
        if not root.exists():
            raise _fail(name, f"{root} does not exist; set the dataset's root option (a folder or a .zip of "
                              f"<split>/<class>/<image> folders) or $ATOMBENCH_DATA")
        if root.is_file():
            try:
                self.zip = zipfile.ZipFile(root)
            except (zipfile.BadZipFile, OSError) as exc:
                raise _fail(name, f"{root} is neither a folder nor a readable zip archive ({exc}); give the "
                                  f"folder of the <split>/<class>/<image> tree or a .zip of it") from exc
            # a zip written on Windows may separate with backslashes (against the format's rule): read as "/"
            self.members = {n.replace("\\", "/"): n for n in self.zip.namelist()}
            self.files = self._zip_tree(splits)
        else:
            self.files = self._folder_tree(splits)

    def _zip_tree(self, splits: list[str]) -> dict:
        # the tree's top: the prefix under which every split has <class>/[<subfolder>/...]<image> entries; a
        # member is read at every depth it could be a tree's (train/cat/sub/x.jpg: top "" or top "train/")
        trees: dict[str, dict] = {}
        for m in self.members:
            parts = m.split("/")
            if len(parts) < 3 or not _is_image(parts[-1]):
                continue
            for i in range(len(parts) - 2):
                if not parts[i + 1].startswith("."):
                    top = "".join(p + "/" for p in parts[:i])
                    trees.setdefault(top, {}).setdefault(parts[i], set()).add(parts[i + 1])
        # the tree that holds every split, else (for the message) one that holds the training split; the shortest
        tops = [t for t, tree in trees.items() if all(s in tree for s in splits)] or \
            [t for t, tree in trees.items() if splits[0] in tree]
        if not tops:
            found = sorted({s for tree in trees.values() for s in tree})[:8]
            raise _fail(self.name, f"{self.root} holds no <split>/<class>/<image> tree with a '{splits[0]}' split "
                                   f"({'split-level folders seen: ' + ', '.join(found) if found else 'no images in class folders'}); "
                                   f"pack the folders as {splits[0]}/<class>/<image>, or set the splits option")
        top = min(tops, key=len)
        tree = trees[top]
        where = f"{self.root}:{top}" if top else str(self.root)
        for s in splits:
            if s not in tree:
                raise _fail(self.name, f"{where} has no split folder '{s}' (splits found: "
                                       f"{', '.join(sorted(tree))}); set the splits option")
        # every entry under <top><split>/<class>/, at any depth (images in subfolders of a class belong to it, as
        # in torchvision's ImageFolder); a class folder without images (an empty one, or one with other files
        # only) is kept, so that it fails as a folder's does; hidden files and folders are skipped
        out: dict = {s: {} for s in splits}
        for name in self.members:
            for s in splits:
                prefix = f"{top}{s}/"
                if not name.startswith(prefix):
                    continue
                parts = name[len(prefix):].split("/")
                if len(parts) < 2 or parts[0].startswith("."):
                    continue
                files = out[s].setdefault(parts[0], [])
                if _is_image(parts[-1]) and not any(p.startswith(".") for p in parts[1:-1]):
                    files.append(name)
        return {s: {c: sorted(out[s][c]) for c in sorted(out[s])} for s in splits}

    def _folder_tree(self, splits: list[str]) -> dict:
        out = {}
        for s in splits:
            folder = self.root / s
            if not folder.is_dir():
                found = sorted(p.name for p in self.root.iterdir() if p.is_dir())[:8]
                raise _fail(self.name, f"{folder} does not exist (folders in {self.root}: "
                                       f"{', '.join(found) or 'none'}); set the splits option or fix the tree")
            out[s] = {}
            for c in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
                found = []
                # images in subfolders of a class belong to it (torchvision's ImageFolder walks them too)
                for here, dirs, names in os.walk(c, followlinks=True):
                    dirs[:] = [d for d in dirs if not d.startswith(".")]
                    found += [os.path.join(here, n) for n in names if _is_image(n)
                              and os.path.isfile(os.path.join(here, n))]
                out[s][c.name] = sorted(found)
        return out

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()

    def read(self, member: str) -> bytes:
        if self.zip is not None:
            return self.zip.read(self.members[member])
        return Path(member).read_bytes()

    def label(self, member: str) -> str:
        """How a message names a file: ``archive.zip:inner/path`` or the path."""
        return f"{self.root}:{member}" if self.zip is not None else member

    def checksum(self) -> str:
        h = hashlib.sha256()
        if self.zip is not None:
            return file_checksum(self.root)
        for split in sorted(self.files):
            for cls in sorted(self.files[split]):
                for f in self.files[split][cls]:
                    st = os.stat(f)
                    h.update(f"{os.path.relpath(f, self.root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return "stat:" + h.hexdigest()


def _is_image(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES)


def file_checksum(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


def decoder_version() -> str:
    """Pillow's version and its JPEG library's (libjpeg-turbo's IDCT and upsampling may differ by a grey level)."""
    import PIL
    from PIL import features

    jpeg = features.version("jpg") or "?"
    turbo = "turbo" if features.check_feature("libjpeg_turbo") else "libjpeg"
    return f"pillow-{PIL.__version__}/{turbo}-{jpeg}/v{DECODE_VERSION}"


def _size(value: Any) -> Optional[tuple[int, int]]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, list, tuple)):
        raise DataError(f"image_size must be a number or [H, W], got {value!r}")
    hw = (value, value) if isinstance(value, int) else tuple(value)
    if len(hw) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in hw):
        raise DataError(f"image_size must be a positive number or [H, W], got {value!r}")
    return int(hw[0]), int(hw[1])


def _read_errors() -> tuple:
    from PIL import Image, UnidentifiedImageError

    # a damaged zip member fails in zlib (deflated) or as a bad CRC (stored); a huge image as a decompression bomb
    # a zip member compressed with a method Python lacks (Deflate64) or encrypted: NotImplementedError /
    # RuntimeError; a malformed TIFF can fail in PIL with TypeError
    return (OSError, UnidentifiedImageError, ValueError, zipfile.BadZipFile, KeyError, zlib.error, EOFError,
            Image.DecompressionBombError, NotImplementedError, RuntimeError, TypeError)


_READ_ERRORS = _read_errors()


def _convert(im, mode: str):
    """``im`` in ``mode``; 16-bit and 32-bit greyscale scaled to 8 bits first (PIL's ``convert`` would clip them),
    also on their way to RGB (a 16-bit grey image among colour ones)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        from PIL import Image

        im = Image.fromarray(np.clip(np.round(arr / top * 255.0), 0, 255).astype(np.uint8), "L")
    return im if im.mode == mode else im.convert(mode)


def _cover(height: int, width: int, h: int, w: int) -> tuple[int, int, int, int]:
    """The size an image of ``height x width`` is resized to so that it covers ``h x w`` keeping its aspect, and the
    top and left of the centred ``h x w`` crop: for a square target exactly torchvision's ``Resize(h)`` then
    ``CenterCrop(h)`` (the other side truncated, the offsets rounded half to even), so a resized dataset has the
    pixels of the torchvision pipeline on the same PIL images."""
    if h * width >= w * height:  # the height decides: scaled to h, the width follows (at least w)
        rh, rw = h, max(w, int(h * width / height))
    else:
        rh, rw = max(h, int(w * height / width)), w
    return rh, rw, int(round((rh - h) / 2.0)), int(round((rw - w) / 2.0))


def _decode(src: _Source, name: str, member: str, mode: str, size: Optional[tuple[int, int]],
            colour_stops: bool = False) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(src.read(member))) as im:
            if colour_stops and mode == "L" and im.mode not in GREY_MODES:
                raise _Colour(member)
            im.load()  # a truncated file fails here, not later
            im = _convert(im, mode)
            if size is not None and (im.height, im.width) != size:
                rh, rw, top, left = _cover(im.height, im.width, *size)
                im = im.resize((rw, rh), Image.BILINEAR)
                h, w = size
                im = im.crop((left, top, left + w, top + h))
            return np.asarray(im, dtype=np.uint8)
    except _READ_ERRORS as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _fail(name, f"cannot read image {src.label(member)} ({first}); the file is truncated, corrupt or "
                          f"not an image: replace or remove it") from exc


def _first_mode(src: _Source, name: str, member: str) -> str:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(src.read(member))) as im:
            return im.mode
    except _READ_ERRORS as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _fail(name, f"cannot read image {src.label(member)} ({first}); the file is truncated, corrupt or "
                          f"not an image: replace or remove it") from exc


def _cache_path(cfg: ImageFolderConfig, key: str) -> Path:
    base = expand(cfg.cache_dir, "cache_dir") if cfg.cache_dir else cache_root() / "decoded"
    return base / f"{key}.npz"


def load_tree(name: str, cfg: ImageFolderConfig, classes: Optional[list] = None) -> dict:
    """Decode (or read from the cache) the two splits of ``cfg.root``: ``{"train": (x uint8 NHWC, y), "test": ...,
    "classes": [...]}``."""
    root = expand(cfg.root)
    splits = list(cfg.splits)
    if len(splits) != 2 or not all(isinstance(s, str) and s for s in splits) or splits[0] == splits[1]:
        raise _fail(name, f"splits must name two different folders, training then test, got {splits!r}")
    if cfg.channels not in (None, 1, 3):
        raise _fail(name, f"channels must be 1 or 3, got {cfg.channels!r}")
    size = _size(cfg.image_size)
    requested = list(classes) if classes is not None else (list(cfg.classes) if cfg.classes else None)
    if requested is not None and not all(isinstance(c, str) for c in requested):
        raise _fail(name, f"classes must list folder names as text, got {requested!r}; quote folder names that "
                          f"look like numbers (classes: ['0', '1'])")

    def cache_key(checksum: str) -> str:
        ident = {"checksum": checksum, "splits": splits, "classes": requested, "size": size,
                 "channels": cfg.channels, "decoder": decoder_version()}
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:24]

    def cached(key: str) -> Optional[dict]:
        path = _cache_path(cfg, key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                return {"train": (z["train_x"], z["train_y"]), "test": (z["test_x"], z["test_y"]),
                        "classes": [str(c) for c in z["classes"]], "cache": str(path), "cached": True}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None  # a damaged (or empty) cache file: decode again and replace it

    key = None
    if cfg.cache and root.is_file():  # an archive: its checksum alone says whether the cache holds it
        key = cache_key(file_checksum(root))
        hit = cached(key)
        if hit is not None:
            return hit
    src = _Source(name, root, splits)
    try:
        return _decode_tree(name, cfg, src, splits, requested, size, key, cache_key, cached)
    finally:
        src.close()


def _decode_tree(name, cfg, src, splits, requested, size, key, cache_key, cached) -> dict:
    from ..runtime import atomic_write, clean_stale_tmp

    root = src.root
    if cfg.cache and key is None:
        key = cache_key(src.checksum())
        hit = cached(key)
        if hit is not None:
            return hit
    train_classes, test_classes = set(src.files[splits[0]]), set(src.files[splits[1]])
    for split in splits:
        for c, members in src.files[split].items():
            if not members:
                raise _fail(name, f"class folder {src.label(split + '/' + c) if src.zip else Path(root, split, c)} "
                                  f"has no images; remove it or add images")
    wanted = requested or sorted(train_classes)
    if len(set(wanted)) != len(wanted):
        raise _fail(name, f"classes lists a class twice: {wanted}")
    for split, have in ((splits[0], train_classes), (splits[1], test_classes)):
        missing = [c for c in wanted if c not in have]
        if missing:
            raise _fail(name, f"class '{missing[0]}' has no folder in the '{split}' split of {root} "
                              f"({len(missing)} missing); every class needs a folder in both splits")
    if requested is None and train_classes != test_classes:
        extra = sorted(test_classes - train_classes)
        raise _fail(name, f"class '{extra[0]}' is in the '{splits[1]}' split of {root} but not in '{splits[0]}'; "
                          f"every class needs a folder in both splits")
    if len(wanted) < 2:
        raise _fail(name, f"{root} has {len(wanted)} class folder(s) in '{splits[0]}'; a classification dataset "
                          f"needs at least 2")
    first = src.files[splits[0]][wanted[0]][0]
    mode = {1: "L", 3: "RGB"}.get(cfg.channels) or ("L" if _first_mode(src, name, first) in GREY_MODES else "RGB")
    try:
        out = _decode_splits(name, src, splits, wanted, mode, size, colour_stops=cfg.channels is None)
    except _Colour:  # a grey first image, a colour one later: every image in colour (a grey one's channels alike)
        out = _decode_splits(name, src, splits, wanted, "RGB", size, colour_stops=False)
    if key is not None:
        path = _cache_path(cfg, key)
        try:
            if path.parent.is_dir():
                clean_stale_tmp(path.parent)  # what a writer killed mid-write left (a dataset's size each)
            with atomic_write(path) as fh:  # straight to the file: no second copy of the pixels in memory
                np.savez(fh, train_x=out["train"][0], train_y=out["train"][1], test_x=out["test"][0],
                         test_y=out["test"][1], classes=np.array(wanted, dtype=str))
            out["cache"] = str(path)
        except OSError:
            pass  # a read-only home: no cache, the next load decodes again
    return out


#: PIL modes of one channel (1-bit, 8-bit, 16-bit, 32-bit integer and float greyscale)
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


class _Colour(Exception):
    """A colour image met while decoding in greyscale (the first image was grey): decode again in colour."""


def _decode_splits(name, src, splits, wanted, mode, size, colour_stops: bool) -> dict:
    """The two splits decoded in ``mode`` (uint8 NHW or NHWC, and labels); with ``colour_stops``, a colour image
    met in greyscale raises :class:`_Colour` (the channels were guessed from the first image only)."""
    out: dict = {"classes": wanted, "cached": False}
    shape = None
    for split in splits:
        members = [(m, i) for i, c in enumerate(wanted) for m in src.files[split][c]]
        x = None
        for k, (m, _) in enumerate(members):
            arr = _decode(src, name, m, mode, size, colour_stops)
            if x is None:
                shape = shape or arr.shape
                x = np.empty((len(members), *shape), dtype=np.uint8)
            if arr.shape != shape:
                raise _fail(name, f"{src.label(m)} is {arr.shape[1]}x{arr.shape[0]}, the first image "
                                  f"{shape[1]}x{shape[0]}; images of mixed sizes need the image_size option")
            x[k] = arr
        y = np.array([i for _, i in members], dtype=np.int64)
        out["train" if split == splits[0] else "test"] = (x, y)
    return out


def _to_float(x: np.ndarray) -> torch.Tensor:
    """uint8 NHW(C) -> float32 NCHW in [0, 1], converted and transposed in one pass."""
    t = torch.from_numpy(np.ascontiguousarray(x))
    t = t.unsqueeze(1) if t.ndim == 3 else t.permute(0, 3, 1, 2)
    out = torch.empty(t.shape, dtype=torch.float32)
    out.copy_(t)
    return out.div_(255.0)


def _normalise_(x: torch.Tensor, mean, std) -> torch.Tensor:
    """:func:`~atombench.data.base.normalise` in place (the same arithmetic, no second 600 MB tensor)."""
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return x.sub_(m).div_(s)


def _stats(x: torch.Tensor, chunk: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel mean and (population) std of ``x`` in [0, 1], summed in float64 over chunks of images (no
    full-size copy)."""
    c = x.shape[1]
    total, sq, n = torch.zeros(c, dtype=torch.float64), torch.zeros(c, dtype=torch.float64), 0
    for start in range(0, len(x), chunk):
        part = x[start:start + chunk].double()
        total += part.sum((0, 2, 3))
        sq += (part * part).sum((0, 2, 3))
        n += part.numel() // c
    mean = total / max(n, 1)
    std = (sq / max(n, 1) - mean * mean).clamp_min(0).sqrt()
    return [round(float(v), 4) for v in mean], [round(float(v), 4) for v in std]


class ImageFolder:
    """Images in <split>/<class>/ folders, from a folder or read in place from a .zip"""

    description = "images in <split>/<class>/ folders, from a folder or read in place from a .zip"
    Config = ImageFolderConfig
    name = "image_folder"
    #: the file or folder under ``$ATOMBENCH_DATA`` used when no root is given (named datasets set it)
    default_name: Optional[str] = None
    #: class names in label order (named datasets set it; else the options' or the sorted folders)
    class_names: Optional[list] = None
    #: fixed normalisation (named datasets use their original's, as the reference code does)
    mean: Optional[list] = None
    std: Optional[list] = None
    tags: dict = {}

    @classmethod
    def resolve_root(cls, cfg: ImageFolderConfig) -> Path:
        if cfg.root:
            return expand(cfg.root)
        if cls.default_name:
            base = default_root()
            for cand in (base / cls.default_name, base / f"{cls.default_name}.zip"):
                if cand.exists():
                    return cand
            raise _fail(cls.name, f"no {cls.default_name}.zip or {cls.default_name}/ folder in {base}; set the "
                                  f"dataset's root option to the archive (or folder), or $ATOMBENCH_DATA to the "
                                  f"folder that holds it")
        raise _fail(cls.name, "no root given; set the dataset's root option to a folder or .zip of "
                              "<split>/<class>/<image> folders")

    @classmethod
    def load(cls, cfg: ImageFolderConfig) -> RealData:
        import dataclasses

        root = cls.resolve_root(cfg)
        cfg = dataclasses.replace(cfg, root=str(root))
        if cls.class_names is not None and cfg.classes is not None and list(cfg.classes) != list(cls.class_names):
            raise _fail(cls.name, f"the classes of {cls.name} are fixed ({', '.join(cls.class_names)}, in that "
                                  f"label order: its published numbers and presets assume it); remove the classes "
                                  f"option, or use image_folder for another order")
        tree = load_tree(cls.name, cfg, cls.class_names)
        train_x, test_x = _to_float(tree["train"][0]), _to_float(tree["test"][0])
        if cfg.mean is not None or cfg.std is not None:
            mean, std = cfg.mean, cfg.std
            c = train_x.shape[1]
            if not (isinstance(mean, list) and isinstance(std, list) and len(mean) == c and len(std) == c
                    and all(isinstance(v, (int, float)) for v in mean + std) and all(v > 0 for v in std)):
                raise _fail(cls.name, f"mean and std must both be lists of {c} numbers (std > 0), got "
                                      f"mean={mean!r} std={std!r}")
        elif cls.mean is not None:
            if train_x.shape[1] != len(cls.mean):
                raise _fail(cls.name, f"{cls.name} has {len(cls.mean)} channels (its normalisation is its "
                                      f"original's), the images were read with {train_x.shape[1]}; remove the "
                                      f"channels option, or use image_folder with it")
            mean, std = list(cls.mean), list(cls.std)
        else:
            mean, std = _stats(train_x)
        options = {"root": str(root), "splits": list(cfg.splits), "classes": list(tree["classes"]),
                   "image_size": cfg.image_size, "channels": int(train_x.shape[1]), "mean": list(mean),
                   "std": list(std)}
        return RealData(cls.name, _normalise_(train_x, mean, std), torch.from_numpy(tree["train"][1]),
                        _normalise_(test_x, mean, std), torch.from_numpy(tree["test"][1]), list(tree["classes"]),
                        list(mean), list(std), options=options,
                        tags=dict(cls.tags, decoded_cache=tree.get("cache"), from_cache=tree.get("cached", False)))


#: CIFAR-10's classes in torchvision's label order
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class CIFAR10JPEG(ImageFolder):
    """CIFAR-10 re-encoded as JPEG (quality 75), from cifar10_jpeg.zip or its folder"""

    description = "CIFAR-10 re-encoded as JPEG q75 (cifar10_jpeg.zip or folder; tables say 'CIFAR-10 (JPEG q75)')"
    name = "cifar10_jpeg"
    default_name = "cifar10_jpeg"
    class_names = CIFAR10_CLASSES
    # CIFAR-10's constants (the reference code's), so that both ZCA spaces and the ConvNet settings are CIFAR-10's
    mean, std = [0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010]
    #: the dataset whose published numbers, paper protocols, ZCA spaces and presets apply (on the original images)
    published_as = "cifar10"
    display_name = "CIFAR-10 (JPEG q75)"
