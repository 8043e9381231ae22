"""Issue 17, "the first hour of a new user and of a new plug-in author": file modes, CLI suggestions, the test
tiers, the documented plug-in example."""

import os
import stat

import pytest

from atombench.runtime import atomic_write, clean_stale_tmp


@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_write_gives_the_mode_the_umask_gives_a_new_file(tmp_path, umask, expected):
    old = os.umask(umask)
    try:
        with atomic_write(tmp_path / "sub" / "result.json", "w") as fh:
            fh.write("{}")
        with atomic_write(tmp_path / "sub" / "result.json", "w") as fh:   # replacing keeps the rule
            fh.write("{}")
        plain = tmp_path / "plain.txt"
        plain.write_text("x")                       # what any other program gives a new file under this umask
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "sub" / "result.json").stat().st_mode)
    assert mode == expected == stat.S_IMODE(plain.stat().st_mode)


def test_atomic_write_leaves_no_temporary_file_and_its_name_is_cleanable(tmp_path):
    with atomic_write(tmp_path / "a.bin") as fh:
        fh.write(b"123")
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]
    with pytest.raises(RuntimeError):
        with atomic_write(tmp_path / "b.bin") as fh:
            fh.write(b"half")
            raise RuntimeError("killed mid-write")
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]
    # a writer that died leaves .<name>.<pid>.<random>.tmp, which clean_stale_tmp recognises
    (tmp_path / ".c.bin.999999999.0123abcd.tmp").write_bytes(b"x")
    assert clean_stale_tmp(tmp_path) == 1
