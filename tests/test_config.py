from dataclasses import dataclass, field
from typing import Literal, Optional

import pytest

from atombench import config as cfgmod
from atombench.config import check
from atombench.errors import ConfigError


@dataclass
class Inner:
    depth: int = 3


@dataclass
class Example:
    lr: float = 1.0
    iterations: int = 100
    mode: Literal["spatial", "channel", "both"] = "both"
    layers: Optional[list[int]] = None
    inner: Inner = field(default_factory=Inner)
    flag: bool = False

    def __post_init__(self):
        check(self.iterations >= 0, f"iterations must be >= 0, got {self.iterations}")


def test_defaults_and_overrides():
    cfg = cfgmod.parse(Example, {"lr": 2, "layers": [0, 1], "inner": {"depth": 4}})
    assert cfg.lr == 2.0 and isinstance(cfg.lr, float)
    assert cfg.layers == [0, 1] and cfg.inner.depth == 4 and cfg.mode == "both"


def test_yaml_style_float_strings_are_accepted():
    # PyYAML reads 5e-4 as a string; a float field takes it
    assert cfgmod.parse(Example, {"lr": "5e-4"}).lr == 5e-4


def test_every_problem_is_reported_with_its_path():
    with pytest.raises(ConfigError) as exc:
        cfgmod.parse(Example, {"lrr": 1, "iterations": "ten", "mode": "chanel", "inner": {"dept": 2},
                               "flag": 1}, "distillers[0].config")
    msgs = [str(p) for p in exc.value.problems]
    assert "distillers[0].config.lrr: unknown key (did you mean 'lr'?); valid keys: flag, inner, iterations, " \
           "layers, lr, mode" in msgs
    assert "distillers[0].config.iterations: expected int, got str 'ten'" in msgs
    assert any(m.startswith("distillers[0].config.mode: must be one of 'spatial', 'channel', 'both', "
                            "got 'chanel' (did you mean 'channel'?)") for m in msgs)
    assert any(m.startswith("distillers[0].config.inner.dept: unknown key (did you mean 'depth'?)") for m in msgs)
    assert "distillers[0].config.flag: expected bool, got int 1" in msgs
    assert len(msgs) == 5


def test_post_init_checks_become_problems():
    with pytest.raises(ConfigError, match="iterations must be >= 0, got -1"):
        cfgmod.parse(Example, {"iterations": -1})


def test_bool_is_not_an_int():
    with pytest.raises(ConfigError, match="expected int, got bool True"):
        cfgmod.parse(Example, {"iterations": True})


def test_to_dict_round_trips():
    cfg = cfgmod.parse(Example, {"layers": [1]})
    assert cfgmod.parse(Example, cfgmod.to_dict(cfg)) == cfg
