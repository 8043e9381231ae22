"""The ``image_folder`` dataset plug-in and ``cifar10_jpeg``: trees in folders and zips written here (PNG and JPEG,
RGB and grey), the decoded-pixel cache, every bad tree as one line, and the real archive where it is at hand."""

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from atombench.data.base import default_root
from atombench.data.image_folder import CIFAR10JPEG, ImageFolder, ImageFolderConfig
from atombench.errors import DataError


def _image(value: int, size=(8, 8), mode="RGB") -> "Image.Image":
    from PIL import Image

    rng = np.random.default_rng(value)
    shape = (size[0], size[1], 3) if mode == "RGB" else size
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)


def write_tree(root: Path, classes=("cat", "dog"), n_train=3, n_test=2, fmt="PNG", mode="RGB", size=(8, 8),
               top: Path | None = None) -> dict:
    """``root/<split>/<class>/<k>.<ext>`` with seeded random pixels; returns {path: uint8 array} as written."""
    ext = {"PNG": "png", "JPEG": "jpg"}[fmt]
    written = {}
    for split, n in (("train", n_train), ("test", n_test)):
        for c, cls in enumerate(classes):
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(n):
                im = _image(1000 * c + 10 * k + (split == "test"), size, mode)
                path = folder / f"{k:04d}.{ext}"
                im.save(path, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
                written[path] = np.array(im)
    return written


def zip_tree(root: Path, archive: Path, top: str = "", compression=zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(archive, "w", compression) as zf:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                zf.write(p, top + p.relative_to(root).as_posix())
    return archive


def load(root, tmp_path, **options):
    return ImageFolder.load(ImageFolderConfig(root=str(root), cache_dir=str(tmp_path / "cache"), **options))


def test_png_folder_loads_exact_pixels_labels_and_computed_normalisation(tmp_path):
    written = write_tree(tmp_path / "tree")
    data = load(tmp_path / "tree", tmp_path)
    assert data.classes == ["cat", "dog"] and data.channels == 3 and data.image_size == (8, 8)
    assert data.train_y.tolist() == [0, 0, 0, 1, 1, 1] and data.test_y.tolist() == [0, 0, 1, 1]
    pixels = torch.stack([torch.from_numpy(written[tmp_path / "tree" / "train" / c / f"{k:04d}.png"])
                          for c in ("cat", "dog") for k in range(3)]).permute(0, 3, 1, 2).float() / 255
    assert torch.allclose(data.denormalise(data.train_x), pixels, atol=1e-6)  # PNG is lossless
    flat = pixels.transpose(0, 1).reshape(3, -1).double()
    assert data.mean == pytest.approx(flat.mean(1).tolist(), abs=1e-4)
    assert data.std == pytest.approx(flat.std(1, unbiased=False).tolist(), abs=1e-4)
    assert data.options["mean"] == data.mean  # recorded: part of every key


def test_grey_jpeg_zip_read_in_place_under_a_top_folder(tmp_path):
    write_tree(tmp_path / "tree", fmt="JPEG", mode="L")
    archive = zip_tree(tmp_path / "tree", tmp_path / "grey.zip", top="grey/")
    data = load(archive, tmp_path)
    assert data.channels == 1 and tuple(data.train_x.shape) == (6, 1, 8, 8)
    assert not (tmp_path / "grey").exists(), "nothing unpacked"
    assert load(archive, tmp_path, channels=3).channels == 3  # grey converted to RGB on request


def test_explicit_class_order_and_resize(tmp_path):
    write_tree(tmp_path / "tree", size=(12, 16))
    data = load(tmp_path / "tree", tmp_path, classes=["dog", "cat"], image_size=8)
    assert data.classes == ["dog", "cat"] and data.train_y.tolist() == [0, 0, 0, 1, 1, 1]
    assert data.image_size == (8, 8)
    assert load(tmp_path / "tree", tmp_path, image_size=[6, 4]).image_size == (6, 4)


def test_second_load_reads_the_cache_and_a_changed_archive_is_decoded_again(tmp_path):
    write_tree(tmp_path / "tree", fmt="JPEG")
    archive = zip_tree(tmp_path / "tree", tmp_path / "a.zip")
    first = load(archive, tmp_path)
    again = load(archive, tmp_path)
    assert not first.tags["from_cache"] and again.tags["from_cache"]
    assert torch.equal(first.train_x, again.train_x) and torch.equal(first.test_y, again.test_y)
    # one image changed: same names and sizes, other checksum -> decoded again, new pixels
    _image(12345).save(tmp_path / "tree" / "train" / "cat" / "0000.jpg", "JPEG", quality=90)
    zip_tree(tmp_path / "tree", archive)
    changed = load(archive, tmp_path)
    assert not changed.tags["from_cache"]
    old, new = first.denormalise(first.train_x), changed.denormalise(changed.train_x)
    assert (old[0] - new[0]).abs().max() > 0.1 and torch.allclose(old[1:], new[1:], atol=1e-5)
    # a damaged cache file is decoded again, not trusted
    Path(changed.tags["decoded_cache"]).write_bytes(b"junk")
    assert not load(archive, tmp_path).tags["from_cache"]
    # a folder's cache follows its files too
    load(tmp_path / "tree", tmp_path)
    assert load(tmp_path / "tree", tmp_path).tags["from_cache"]
    os.utime(tmp_path / "tree" / "test" / "dog" / "0001.jpg", ns=(1, 1))
    assert not load(tmp_path / "tree", tmp_path).tags["from_cache"]


def make_bad_trees(base: Path) -> None:
    """One tree per problem (the cases of the bad-input corpus and of the test below)."""
    write_tree(base / "ok")
    write_tree(base / "missing_split")
    import shutil

    shutil.rmtree(base / "missing_split" / "test")
    write_tree(base / "empty_class")
    for p in (base / "empty_class" / "test" / "dog").iterdir():
        p.unlink()
    write_tree(base / "one_split_class")
    write_tree(base / "one_split_class" / "extra", classes=("bird",))
    shutil.move(str(base / "one_split_class" / "extra" / "test" / "bird"), base / "one_split_class" / "test")
    shutil.rmtree(base / "one_split_class" / "extra")
    write_tree(base / "truncated", fmt="JPEG")
    victim = base / "truncated" / "train" / "dog" / "0001.jpg"
    victim.write_bytes(victim.read_bytes()[: len(victim.read_bytes()) // 2])
    write_tree(base / "mixed")
    _image(7, (6, 6)).save(base / "mixed" / "train" / "dog" / "0002.png")
    flat = base / "flat"
    flat.mkdir(parents=True)
    for k in range(3):
        _image(k).save(flat / f"{k}.png")
    zip_tree(flat, base / "notree.zip")


BAD = {
    "missing_split": "missing_split/test does not exist",
    "empty_class": "empty_class/test/dog has no images",
    "one_split_class": "class 'bird' is in the 'test' split",
    "truncated": "cannot read image",
    "mixed": "need the image_size option",
    "notree.zip": "holds no <split>/<class>/<image> tree",
    "nowhere": "does not exist",
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_trees_are_one_line_naming_the_file_or_folder(case, tmp_path):
    make_bad_trees(tmp_path / "trees")
    with pytest.raises(DataError) as err:
        load(tmp_path / "trees" / case, tmp_path)
    text = str(err.value)
    assert BAD[case] in text and "\n" not in text
    assert str(tmp_path / "trees") in text
    if case == "truncated":
        assert "truncated/train/dog/0001.jpg" in text
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir()), "nothing cached"


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_a_damaged_zip_member_is_one_line(tmp_path, compression):
    """Stored: a flipped byte fails the CRC check (BadZipFile); deflated: the inflater fails (zlib.error)."""
    write_tree(tmp_path / "tree", size=(32, 32))
    for member in ("train/cat/0000.png", "train/dog/0001.png"):  # the first image (its mode is read) and another
        archive = zip_tree(tmp_path / "tree", tmp_path / "a.zip", compression=compression)
        blob = bytearray(archive.read_bytes())
        with zipfile.ZipFile(archive) as zf:
            info = zf.getinfo(member)
        start = info.header_offset + 30 + len(info.filename)
        blob[start + 2:start + 40] = bytes(38)  # inside the member's data (the deflate stream's first blocks)
        archive.write_bytes(bytes(blob))
        with pytest.raises(DataError, match=f"cannot read image .*a\\.zip:{member}") as err:
            load(archive, tmp_path)
        assert "\n" not in str(err.value)


def test_the_zip_tree_with_every_split_wins_over_a_stray_folder(tmp_path):
    write_tree(tmp_path / "tree")
    (tmp_path / "tree" / "d").mkdir()
    import shutil

    shutil.move(str(tmp_path / "tree" / "train"), tmp_path / "tree" / "d" / "train")
    shutil.move(str(tmp_path / "tree" / "test"), tmp_path / "tree" / "d" / "test")
    (tmp_path / "tree" / "train" / "docs").mkdir(parents=True)  # a stray train/<x>/<file> at the top
    _image(1).save(tmp_path / "tree" / "train" / "docs" / "x.png")
    data = load(zip_tree(tmp_path / "tree", tmp_path / "a.zip"), tmp_path)
    assert data.classes == ["cat", "dog"] and len(data.train_x) == 6


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    from PIL import Image

    for split in ("train", "test"):
        for c, value in (("a", 1000), ("b", 60000)):
            (tmp_path / "t" / split / c).mkdir(parents=True)
            Image.fromarray(np.full((4, 4), value, dtype=np.uint16)).save(tmp_path / "t" / split / c / "0.png")
    data = load(tmp_path / "t", tmp_path, mean=[0.0], std=[1.0])
    assert data.train_x[:, 0, 0, 0].tolist() == pytest.approx([round(1000 / 65535 * 255) / 255,
                                                               round(60000 / 65535 * 255) / 255])
    # among colour images (or read as RGB), the same scaling in every channel, not clipped to 255
    data = load(tmp_path / "t", tmp_path, channels=3, mean=[0.0] * 3, std=[1.0] * 3)
    assert data.train_x[:, :, 0, 0].flatten().tolist() == pytest.approx([round(1000 / 65535 * 255) / 255] * 3
                                                                         + [round(60000 / 65535 * 255) / 255] * 3)


def test_cifar10_jpeg_refuses_another_class_order(tmp_path):
    with pytest.raises(DataError, match="classes of cifar10_jpeg are fixed"):
        CIFAR10JPEG.load(ImageFolderConfig(root=str(tmp_path), classes=["cat", "dog"]))


def test_cifar10_jpeg_names_its_missing_archive(tmp_path, monkeypatch):
    monkeypatch.setenv("ATOMBENCH_DATA", str(tmp_path))
    with pytest.raises(DataError, match="no cifar10_jpeg.zip or cifar10_jpeg/ folder in"):
        CIFAR10JPEG.load(ImageFolderConfig())


def test_cifar10_jpeg_takes_cifar10_settings_published_numbers_and_title(tmp_path, monkeypatch):
    from atombench import registry
    from atombench.factories import make_distiller, paper_dataset
    from atombench.report.names import dataset_name
    from atombench.report.published import load_published, with_aliases

    assert paper_dataset("cifar10_jpeg") == "cifar10" and paper_dataset("digits") == "digits"
    assert dataset_name("cifar10_jpeg") == "CIFAR-10 (JPEG q75)"
    assert registry.datasets.get("cifar10_jpeg") is CIFAR10JPEG
    pub = with_aliases(load_published("verified"))
    ours = pub[(pub["dataset"] == "cifar10_jpeg")]
    orig = pub[(pub["dataset"] == "cifar10")]
    assert len(ours) == len(orig) > 0
    assert all("published on the original CIFAR-10 images" in n for n in ours["note"])
    # the papers' ZCA space and protocol apply under the original's name
    atom = make_distiller("atom", {})
    assert atom.paper_zca(paper_dataset("cifar10_jpeg"), 10) == atom.paper_zca("cifar10", 10) is not None


def _real_archive() -> Path | None:
    base = default_root()
    for cand in (base / "cifar10_jpeg.zip", base / "cifar10_jpeg"):
        if cand.exists():
            return cand
    return None


@pytest.mark.slow  # 40 s (60,000 JPEGs decoded once); default: the zip, cache and bad-tree tests above
@pytest.mark.skipif(_real_archive() is None, reason="cifar10_jpeg.zip is not in $ATOMBENCH_DATA (or the default "
                                                    "data folder); set ATOMBENCH_DATA to the folder that holds it")
def test_the_real_cifar10_jpeg_archive(tmp_path):
    data = CIFAR10JPEG.load(ImageFolderConfig(cache_dir=str(tmp_path / "cache")))
    assert tuple(data.train_x.shape) == (50000, 3, 32, 32) and tuple(data.test_x.shape) == (10000, 3, 32, 32)
    assert data.classes[:3] == ["airplane", "automobile", "bird"]
    assert torch.bincount(data.train_y).tolist() == [5000] * 10 and torch.bincount(data.test_y).tolist() == [1000] * 10
    means = [float(data.train_x[:, c].double().mean()) * data.std[c] + data.mean[c] for c in range(3)]
    assert means == pytest.approx([0.4913, 0.4821, 0.4465], abs=2e-4)  # the archive's README
    again = CIFAR10JPEG.load(ImageFolderConfig(cache_dir=str(tmp_path / "cache")))
    assert again.tags["from_cache"] and torch.equal(again.train_x[:100], data.train_x[:100])


def test_a_grey_first_image_does_not_make_a_colour_dataset_grey(tmp_path):
    """The channels were guessed from the first image: a grey one first turned every colour image grey. A colour
    image met later decodes the whole set in colour (the grey images' one channel repeated)."""
    from PIL import Image

    written = write_tree(tmp_path / "tree")
    first = tmp_path / "tree" / "train" / "cat" / "0000.png"
    grey = np.random.default_rng(5).integers(0, 256, (8, 8), dtype=np.uint8)
    Image.fromarray(grey, "L").save(first)
    data = load(tmp_path / "tree", tmp_path)
    assert data.train_x.shape[1] == 3
    pixels = (data.denormalise(data.train_x) * 255).round().to(torch.uint8)
    assert torch.equal(pixels[0], torch.from_numpy(np.stack([grey] * 3)))
    assert torch.equal(pixels[1].permute(1, 2, 0), torch.from_numpy(written[tmp_path / "tree" / "train" / "cat" / "0001.png"]))
    write_tree(tmp_path / "grey", mode="L")  # every image grey: one channel
    assert load(tmp_path / "grey", tmp_path).train_x.shape[1] == 1


def test_an_empty_cache_file_is_decoded_again(tmp_path):
    write_tree(tmp_path / "tree", fmt="JPEG")
    archive = zip_tree(tmp_path / "tree", tmp_path / "a.zip")
    first = load(archive, tmp_path)
    Path(first.tags["decoded_cache"]).write_bytes(b"")  # a writer killed before its first byte
    again = load(archive, tmp_path)
    assert not again.tags["from_cache"] and torch.equal(first.train_x, again.train_x)
    assert load(archive, tmp_path).tags["from_cache"]


def test_an_empty_class_in_a_zip_is_one_line_as_in_a_folder(tmp_path):
    """A class folder with no image (only .DS_Store) is refused from a zip as from a folder, not dropped; a hidden
    folder is not a class."""
    write_tree(tmp_path / "tree")
    for split in ("train", "test"):
        bird = tmp_path / "tree" / split / "bird"
        bird.mkdir()
        (bird / ".DS_Store").write_bytes(b"x")
    (tmp_path / "tree" / "train" / ".ipynb_checkpoints").mkdir()
    archive = zip_tree(tmp_path / "tree", tmp_path / "a.zip")
    for root in (tmp_path / "tree", archive):
        with pytest.raises(DataError, match="bird has no images") as err:
            load(root, tmp_path)
        assert "\n" not in str(err.value)


def test_an_unsupported_zip_member_is_one_line(tmp_path, monkeypatch):
    """A member compressed with a method Python lacks (Windows' Deflate64) or encrypted: one line naming it."""
    write_tree(tmp_path / "tree")
    archive = zip_tree(tmp_path / "tree", tmp_path / "a.zip")

    def unsupported(self, name, *a, **k):
        raise NotImplementedError("That compression method is not supported")
    monkeypatch.setattr(zipfile.ZipFile, "read", unsupported)
    with pytest.raises(DataError, match="cannot read image .*a\\.zip:train/cat/0000.png") as err:
        load(archive, tmp_path)
    assert "\n" not in str(err.value)


def test_cifar10_jpeg_with_one_channel_is_one_line(tmp_path):
    write_tree(tmp_path / "tree", classes=tuple(CIFAR10JPEG.class_names))
    with pytest.raises(DataError, match="cifar10_jpeg has 3 channels") as err:
        CIFAR10JPEG.load(ImageFolderConfig(root=str(tmp_path / "tree"), channels=1, cache_dir=str(tmp_path / "c")))
    assert "\n" not in str(err.value)


def test_a_killed_writers_temporary_file_is_removed_by_the_next_write(tmp_path):
    """A process killed while writing the decoded cache leaves a dataset-sized temporary file; the next process
    that writes the cache removes it (a live writer's is kept)."""
    write_tree(tmp_path / "tree")
    cache = tmp_path / "cache"
    cache.mkdir()
    dead = cache / ".x.npz.999999999.abcdef.tmp"  # no such pid
    alive = cache / f".y.npz.{os.getpid()}.abcdef.tmp"
    dead.write_bytes(b"0" * 10)
    alive.write_bytes(b"0" * 10)
    load(tmp_path / "tree", tmp_path)
    assert not dead.exists() and alive.exists()


def test_images_in_subfolders_of_a_class_belong_to_it(tmp_path):
    """As in torchvision's ImageFolder: <split>/<class>/<sub>/<image> is the class's, from a folder and from a zip,
    also where a class has nothing but subfolders; a hidden subfolder is skipped. They were silently dropped."""
    written = write_tree(tmp_path / "tree")
    for split, k in (("train", 3), ("test", 2)):
        sub = tmp_path / "tree" / split / "cat" / "batch2"
        sub.mkdir()
        _image(777 + k).save(sub / "0000.png")
        hidden = tmp_path / "tree" / split / "cat" / ".thumbs"
        hidden.mkdir()
        _image(5).save(hidden / "0000.png")
        # dog's images all one level down
        dog = tmp_path / "tree" / split / "dog"
        (dog / "all").mkdir()
        for f in sorted(dog.glob("*.png")):
            f.rename(dog / "all" / f.name)
    archive = zip_tree(tmp_path / "tree", tmp_path / "a.zip")
    for root in (tmp_path / "tree", archive):
        data = load(root, tmp_path)
        assert data.classes == ["cat", "dog"]
        assert data.train_y.tolist() == [0, 0, 0, 0, 1, 1, 1] and data.test_y.tolist() == [0, 0, 0, 1, 1]
        first = torch.from_numpy(written[tmp_path / "tree" / "train" / "cat" / "0000.png"]).permute(2, 0, 1) / 255
        nested = torch.from_numpy(np.array(_image(777 + 3))).permute(2, 0, 1) / 255
        pixels = data.denormalise(data.train_x)
        assert torch.allclose(pixels[0], first, atol=1e-6) and torch.allclose(pixels[3], nested, atol=1e-6)
    flat = tmp_path / "flat"
    write_tree(flat)
    assert len(load(zip_tree(flat, tmp_path / "flat.zip"), tmp_path).train_x) == 6  # flat trees as before


def test_a_zip_with_backslash_separators_is_read(tmp_path):
    """Some Windows tools write ``train\\cat\\0000.png`` (against the zip format's rule): read as a tree."""
    write_tree(tmp_path / "tree")
    archive = tmp_path / "win.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted((tmp_path / "tree").rglob("*.png")):
            zf.writestr(zipfile.ZipInfo("\\".join(p.relative_to(tmp_path / "tree").parts)), p.read_bytes())
    assert "train\\cat\\0000.png" in zipfile.ZipFile(archive).namelist()
    data = load(archive, tmp_path)
    assert data.classes == ["cat", "dog"] and len(data.train_x) == 6 and len(data.test_x) == 4


@pytest.mark.parametrize("shape,target", [((12, 16), 8), ((13, 21), 8), ((21, 13), 7), ((10, 10), 7), ((9, 30), 5)])
def test_resize_gives_torchvisions_resize_and_center_crop_pixels(tmp_path, shape, target):
    """``image_size: s`` is torchvision's ``Resize(s)`` + ``CenterCrop(s)`` on the same PIL image, pixel for pixel
    (the resized side and the crop's offset rounded as torchvision rounds them; they differed by one)."""
    from PIL import Image
    from torchvision import transforms as T

    write_tree(tmp_path / "tree", size=shape, n_train=2, n_test=1)
    data = load(tmp_path / "tree", tmp_path, image_size=target)
    pipeline = T.Compose([T.Resize(target), T.CenterCrop(target), T.PILToTensor()])
    for k, path in enumerate(sorted((tmp_path / "tree" / "train").rglob("*.png"))):
        with Image.open(path) as im:
            expected = pipeline(im.convert("RGB")).float() / 255
        assert torch.allclose(data.denormalise(data.train_x[k:k + 1])[0], expected, atol=1e-5), path


def test_class_names_given_as_numbers_are_one_line_saying_to_quote_them(tmp_path):
    """``classes: [0, 1]`` (YAML numbers) blamed the folders 0/ and 1/, which exist, as missing."""
    write_tree(tmp_path / "tree", classes=("0", "1"))
    with pytest.raises(DataError, match=r"classes must list folder names as text, got \[0, 1\]; quote") as err:
        load(tmp_path / "tree", tmp_path, classes=[0, 1])
    assert "\n" not in str(err.value)
    assert load(tmp_path / "tree", tmp_path, classes=["1", "0"]).classes == ["1", "0"]


def test_a_root_under_an_unknown_users_home_is_one_line(tmp_path):
    """``root: ~nobody/x``: pathlib's bare RuntimeError was a traceback."""
    with pytest.raises(DataError, match=r"root ~no_such_user_zz/x: no such user's home folder; write the path out"):
        load("~no_such_user_zz/x", tmp_path)


def test_a_results_folder_moved_to_another_data_root_is_reused_not_recomputed(tmp_path):
    """Keys hash what the data is, not where it lies: the same tree as a folder and as a zip elsewhere (another
    machine's data root) gives the same fingerprint, so a results folder run on one is complete on the other; a
    changed image is other data, so other keys."""
    import re
    import shutil

    from atombench import factories
    from atombench.runner import plan_suite, run_suite

    write_tree(tmp_path / "here" / "tree", n_train=2, n_test=2)
    shutil.copytree(tmp_path / "here" / "tree", tmp_path / "copy")
    (tmp_path / "there").mkdir()
    archive = zip_tree(tmp_path / "copy", tmp_path / "there" / "tree.zip")
    a, b = load(tmp_path / "here" / "tree", tmp_path), load(archive, tmp_path)
    assert a.options["root"] != b.options["root"] and a.fingerprint == b.fingerprint
    suite = """name: moved
datasets: [{{name: image_folder, options: {{root: '{root}', cache_dir: '{cache}'}}}}]
ipc: [1]
distillers: [random]
models: [{{name: convnet, options: {{width: 8, depth: 1}}}}]
seeds: 1
eval: {{epochs: 1}}
execution: {{backend: sequential}}
device: cpu
output: {out}
"""
    p = tmp_path / "s.yaml"
    p.write_text(suite.format(root=tmp_path / "here" / "tree", cache=tmp_path / "cache", out=tmp_path / "out"))
    first = run_suite(p, progress=False, echo=lambda *a: None).table
    assert (first["status"] == "ok").all()
    p.write_text(suite.format(root=archive, cache=tmp_path / "cache", out=tmp_path / "out"))
    assert re.search(r"^distill +1 +1 +0 +0 ", plan_suite(p), re.M), plan_suite(p)
    assert re.search(r"^evaluate +1 +1 +0 +0 ", plan_suite(p), re.M)
    _image(777).save(tmp_path / "copy" / "train" / "dog" / "0001.png", "PNG")
    zip_tree(tmp_path / "copy", archive)
    assert load(archive, tmp_path).fingerprint != a.fingerprint
    factories._DATA_CACHE.clear()  # a run is a new process: this one keeps the data it loaded before the change
    assert re.search(r"^distill +1 +0 +0 +1 ", plan_suite(p), re.M)
