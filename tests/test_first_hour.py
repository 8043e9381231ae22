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


# -- misspelt commands: one line with a suggestion, exit 2 ----------------------------------------------------
@pytest.mark.parametrize("argv, line", [
    (["runn", "suite.yaml"], "error: unknown command 'runn' (did you mean 'run'?); the commands are "),
    (["--debug", "valdate", "x.yaml"], "error: unknown command 'valdate' (did you mean 'validate'?)"),
    (["list", "distiller"], "error: list: unknown kind 'distiller' (did you mean 'distillers'?); choose from "
                            "distillers, models, datasets"),
    (["list", "--debug", "modells"], "error: list: unknown kind 'modells' (did you mean 'models'?)"),
])
def test_misspelt_subcommands_get_a_one_line_suggestion_and_exit_2(capsys, argv, line):
    from atombench.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(line), err


def test_correct_commands_are_left_to_argparse(capsys):
    from atombench.cli import main

    assert main(["list", "datasets"]) == 0
    assert "digits" in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:  # a missing argument is still argparse's usage message
        main(["validate"])
    assert done.value.code == 2


# -- herding's network training has its own progress bar ---------------------------------------------------
def test_herding_network_training_shows_an_inner_bar_only_with_progress(capsys):
    from atombench.distillers import coreset
    from atombench.distillers.base import DistillContext
    from atombench.distillers.coreset import HerdingDistiller
    from atombench.data.digits import Digits

    data = Digits.load(Digits.Config(size=8))
    cfg = {"train_epochs": 1, "train_per_class": 5, "net_options": {"width": 8, "depth": 1}}
    for show in (False, True):
        coreset._MEMO.clear()
        ctx = DistillContext("cpu", seed=3, show_progress=show, label="herding digits ipc1 seed0")
        HerdingDistiller(cfg).run(data, 1, ctx)
        err = capsys.readouterr().err
        if show:
            assert "herding digits ipc1 seed0: training the feature network" in err and "/2 " in err  # 1 + 1 passes
        else:
            assert "training the feature network" not in err


# -- the test tiers: the README's command stays quick, CI keeps what it ran -----------------------------------
def test_heavy_tests_are_opt_in_and_ci_keeps_the_slow_ones(tmp_path):
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    here = Path(__file__).parent
    shutil.copy(here / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_tiers.py").write_text(
        "import pytest\n\n"
        "def test_plain():\n    pass\n\n"
        "@pytest.mark.slow\ndef test_slow():\n    pass\n\n"
        "@pytest.mark.heavy\ndef test_heavy():\n    pass\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    heavy: h\n    slow: s\n")

    def ran(**env):
        base = {k: v for k, v in os.environ.items() if k not in ("CI", "ATOMBENCH_HEAVY")}
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "test_tiers.py"],
                              cwd=tmp_path, env={**base, **env}, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        return sorted(line.split("::")[1].split()[0] for line in done.stdout.splitlines()
                      if line.startswith("PASSED"))

    assert ran() == ["test_plain"]                                            # the README's command
    assert ran(CI="true") == ["test_plain", "test_slow"]                      # CI: what it ran before
    assert ran(CI="true", ATOMBENCH_HEAVY="1") == ["test_heavy", "test_plain", "test_slow"]
    assert ran(ATOMBENCH_HEAVY="1") == ["test_heavy", "test_plain", "test_slow"]
    assert ran(ATOMBENCH_HEAVY="0") == ["test_plain"]
