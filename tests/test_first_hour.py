"""Issue 17, "the first hour of a new user and of a new plug-in author": file modes, CLI suggestions, the test
tiers, the documented plug-in example."""

import os
import re
import stat
from pathlib import Path

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
    with pytest.raises(SystemExit) as done:  # a missing argument: argparse's exit, on one line
        main(["validate"])
    assert done.value.code == 2


@pytest.mark.parametrize("argv, line", [
    (["export", "results/x"], "error: atombench export: the following arguments are required: --output; "
                              "atombench export --help shows the usage"),
    (["run", "s.yaml", "--workers", "two"], "error: atombench run: argument --workers: invalid int value: 'two'"),
    (["plan", "s.yaml", "--devcie", "cpu"], "error: atombench: unrecognized arguments: --devcie cpu"),
    (["report", "r", "--over", "seed"], "error: atombench report: argument --over: invalid choice: 'seed'"),
    (["evaluate", "s.pt", "--dataset", "digits", "--workers", "0"],
     "error: atombench evaluate: argument --workers: must be from 1 to 4096, got 0"),
    (["plan", "s.yaml", "--workers", "2147483648000"],  # hung while the plan was made
     "error: atombench plan: argument --workers: must be from 1 to 4096, got 2147483648000"),
])
def test_bad_usage_is_one_line_not_a_usage_block(argv, line, capsys):
    """argparse printed its usage block (2-6 lines) before the error; now one line, exit 2."""
    from atombench.cli import main

    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(line), err


def test_output_with_a_tilde_is_the_home_folder_and_a_file_is_refused(tmp_path, monkeypatch, capsys):
    """``--output '~/x'`` (quoted: the shell leaves it) and ``output: ~/x`` in a suite made a folder named '~'."""
    from atombench.cli import main

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    suite = tmp_path / "s.yaml"
    suite.write_text("datasets: [digits]\nipc: [1]\ndistillers: [random]\nmodels: [convnet]\n"
                     "output: ~/from_suite\n")
    assert main(["plan", str(suite)]) == 0
    assert f"{tmp_path / 'home' / 'from_suite'}" in capsys.readouterr().out
    assert main(["plan", str(suite), "--output", "~/from_cli"]) == 0
    assert f"{tmp_path / 'home' / 'from_cli'}" in capsys.readouterr().out
    assert not (tmp_path / "~").exists()
    (tmp_path / "a_file").write_text("x")
    assert main(["plan", str(suite), "--output", str(tmp_path / "a_file")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: --output {tmp_path / 'a_file'} is a file, not a folder; pass the path of a results "
                   f"folder"]


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


# -- CONTRIBUTING's plug-in example is the shipped docs/plugin_example, which installs and passes its tests ----
EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "plugin_example"
CONTRIBUTING = Path(__file__).resolve().parents[1] / "CONTRIBUTING.md"


def _blocks(text: str) -> dict[str, str]:
    """Fenced code blocks whose first line is a comment naming a file of docs/plugin_example: path -> code."""
    out = {}
    for lang, body in re.findall(r"```(\w+)\n(.*?)```", text, flags=re.S):
        first, _, rest = body.partition("\n")
        if first.startswith("# docs/plugin_example/"):
            out[first[2:].strip()] = rest
    return out


def test_contributing_shows_the_whole_plugin_example_as_shipped():
    blocks = _blocks(CONTRIBUTING.read_text())
    files = ["pyproject.toml", "my_atombench_plugin/distiller.py", "my_atombench_plugin/model.py",
             "my_atombench_plugin/dataset.py"]
    assert sorted(blocks) == sorted(f"docs/plugin_example/{f}" for f in files)
    for f in files:
        assert blocks[f"docs/plugin_example/{f}"] == (EXAMPLE / f).read_text(), f"CONTRIBUTING's copy of {f} differs"
    # the names are the same everywhere: entry points, classes, the suite
    toml = (EXAMPLE / "pyproject.toml").read_text()
    for entry in ("class_mean = \"my_atombench_plugin.distiller:ClassMeanDistiller\"",
                  "tiny_mlp = \"my_atombench_plugin.model:tiny_mlp\"",
                  "small_mlp = \"my_atombench_plugin.model:small_mlp\"",
                  "blobs = \"my_atombench_plugin.dataset:Blobs\""):
        assert entry in toml
    suite = (EXAMPLE / "suite.yaml").read_text()
    assert all(n in suite for n in ("blobs", "class_mean", "tiny_mlp", "small_mlp"))


@pytest.mark.slow(reason="pip install + a suite; default: test_contributing_shows_the_whole_plugin_example_as_shipped "
                         "and test_registry.py's installed outside package")
def test_the_plugin_example_installs_and_passes_its_own_tests(tmp_path):
    import shutil
    import subprocess
    import sys

    # a copy, as a plug-in author makes one (the build leaves build/ and *.egg-info beside the sources)
    example = tmp_path / "my-plugin"
    shutil.copytree(EXAMPLE, example, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(site), str(example)], check=True, timeout=300)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                          cwd=example, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "skipped" not in done.stdout
    # the report shows the plug-in's display names and its published number (unverified: with --published all)
    out = tmp_path / "report_check"
    code = ("import sys, pandas as pd\n"
            "from atombench.runner import run_suite\n"
            "from atombench.report import ReportOptions, build_report\n"
            f"r = run_suite({str(example / 'suite.yaml')!r}, output={str(out)!r}, progress=False,"
            " echo=lambda *a, **k: None)\n"
            "build_report(r.root, ReportOptions(plots=False, published='all'))\n"
            "print((r.root / 'report' / 'tables' / 'main.md').read_text())\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "| ClassMean |" in done.stdout and "Blobs IPC 1" in done.stdout
    # (its own protocol differs from the suite's common one: the published row says so)
    assert "*ClassMean (published, unverified, under its own protocol)*" in done.stdout
    assert "Example et al., 2025" in done.stdout


def test_a_file_named_suite_with_a_space_and_timm_kwargs_atombench_sets_are_clear(tmp_path, capsys):
    from atombench.cli import main

    suite = tmp_path / "my suite.yaml"
    suite.write_text("datasets: [digits]\nipc: [1]\ndistillers: [random]\n"
                     "models: [{name: 'timm:resnet10t', options: {kwargs: {pretrained: true, in_chans: 1}}}]\n")
    assert main(["validate", str(suite)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2, err
    assert "got 'my suite' (taken from the file's name, as the suite has no 'name:'; add one)" in err[0]
    assert "kwargs: pretrained, in_chans are set by atombench" in err[1]
