import os
import subprocess
import sys

import pytest

from atombench import registry
from atombench.errors import PluginError
from atombench.registry import Registry

from .conftest import run_cli


def test_register_get_and_names():
    reg = Registry("widget", "atombench.tests.nonexistent-group")

    @reg.register("alpha")
    class Alpha:
        """The first widget."""

    reg.register("beta", object())
    assert reg.names() == ["alpha", "beta"]
    assert reg.get("alpha") is Alpha
    assert "alpha" in reg and "gamma" not in reg
    assert dict(reg.describe_all())["alpha"] == "The first widget"


def test_unknown_name_suggests_the_closest():
    with pytest.raises(PluginError, match=r"unknown distiller 'herdin' \(did you mean 'herding'\?\)"):
        registry.distillers.get("herdin")


def test_broken_plugin_is_reported_by_name_and_others_still_work():
    reg = Registry("widget", "atombench.tests.nonexistent-group")
    reg.register("good", object())

    def fail():
        raise ImportError("no module named 'missing_dependency'")

    from atombench.registry import _Entry

    reg._scan()
    reg._entries["bad"] = _Entry("bad", fail, "somepkg:Bad")
    rows = dict(reg.describe_all())
    assert rows["bad"].startswith("FAILED TO LOAD") and "missing_dependency" in rows["bad"]
    assert "somepkg:Bad" in rows["bad"]
    assert reg.get("good") is not None
    with pytest.raises(PluginError, match="widget plug-in 'bad'"):
        reg.get("bad")


def test_namespace_names_resolve_through_their_prefix():
    reg = Registry("widget", "atombench.tests.nonexistent-group")

    class Namespace:
        def resolve(self, rest):
            return f"resolved {rest}"

    reg.register("ns", Namespace())
    assert reg.get("ns:thing") == "resolved thing"
    assert "ns:anything" in reg


def test_builtins_come_from_entry_points():
    # the built-ins are declared in our own pyproject, so their origin is an entry point, not code
    entry = registry.distillers._entries["random"] if registry.distillers.names() else None
    assert entry is not None and entry.origin == "atombench.distillers.coreset:RandomDistiller"
    for name in ("digits", "fashion_mnist", "mnist", "cifar10", "cifar100", "svhn", "tiny_imagenet"):
        assert name in registry.datasets.names()
    assert {"convnet", "convnet_bn", "alexnet", "vgg11_bn", "resnet18", "timm"} <= set(registry.models.names())


def test_discovery_is_lazy():
    code = ("import sys; from atombench import registry; "
            "n = registry.distillers.names() + registry.models.names() + registry.datasets.names(); "
            "print(any(m.startswith(('atombench.distillers.', 'atombench.models.', 'atombench.data.')) "
            "for m in sys.modules), 'torch' in sys.modules, len(n) > 10)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "True"]


def test_outside_package_plugs_in_through_entry_points(plugin_site, tmp_path):
    env = {"PYTHONPATH": os.pathsep.join([str(plugin_site), os.environ.get("PYTHONPATH", "")])}
    res = run_cli("list", "distillers", env=env)
    assert "class_mean" in res.stdout and "Every synthetic image is its class's mean image" in res.stdout
    # the broken entry point is named with its error, and does not hide the others
    assert "broken_plugin" in res.stdout and "FAILED TO LOAD" in res.stdout
    assert "random" in res.stdout and res.returncode == 1

    suite = tmp_path / "outside.yaml"
    suite.write_text(f"""\
name: outside
datasets: [blobs]
ipc: [2]
distillers: [{{name: class_mean, config: {{noise: 0.1}}}}, random]
models: [tiny_mlp]
eval: {{epochs: 20, batch_size: 8}}
execution: {{backend: sequential}}
device: cpu
output: {tmp_path / 'out'}
""")
    res = run_cli("run", suite, "--quiet", env=env)
    assert res.returncode == 0, res.stderr
    assert "class_mean" in res.stdout and "tiny_mlp" in res.stdout
    assert (tmp_path / "out" / "results.csv").is_file()

    # unknown options of an outside plug-in are caught like the built-ins'
    suite.write_text(suite.read_text().replace("noise: 0.1", "noize: 0.1"))
    res = run_cli("run", suite, "--quiet", env=env)
    assert res.returncode == 2
    assert "distillers[0].config.noize: unknown key (did you mean 'noise'?)" in res.stderr


# -- shapes checked when a plug-in loads (as lm-evaluation-harness's registry does) ---------------------------
@pytest.mark.parametrize("kind, obj, lacks", [
    ("datasets", type("NoLoad", (), {"Config": type("C", (), {"__dataclass_fields__": {}})}), "a 'load(config)' method"),
    ("distillers", type("NoDistill", (), {}), "a 'Config' dataclass and a 'distill(data, ipc, ctx)' method"),
    ("models", object(), "a 'build(config, channels, num_classes, image_size)' method"),
])
def test_a_plugin_of_the_wrong_shape_is_one_line_naming_what_it_lacks(kind, obj, lacks):
    from atombench.errors import PluginError

    reg = registry.REGISTRIES[kind]
    reg.register("misshapen", obj)
    try:
        with pytest.raises(PluginError) as err:
            reg.get("misshapen")
        msg = str(err.value)
        assert "\n" not in msg and f"plug-in 'misshapen' (registered in code) is not a {reg.kind}" in msg
        assert lacks in msg
        # listed as broken, the others still load
        rows = dict(reg.describe_all())
        assert rows["misshapen"].startswith("FAILED TO LOAD") and len(rows) > 1
    finally:
        reg.unregister("misshapen")


def test_the_three_kinds_parse_options_through_one_interface():
    from atombench.errors import ConfigError

    assert registry.datasets.parse_options("digits", {"size": 16}).size == 16
    assert registry.distillers.parse_options("dm", {"iterations": 3}).iterations == 3
    assert registry.models.parse_options("convnet_bn", {}).norm == "batchnorm"  # a variant's presets apply
    problems = []
    assert registry.models.parse_options("convnet", {"widht": 3}, "models[0].options", problems) is None
    assert str(problems[0]).startswith("models[0].options.widht: unknown key (did you mean 'width'?)")
    with pytest.raises(ConfigError, match="iterations: expected int"):
        registry.distillers.parse_options("dm", {"iterations": "many"})
