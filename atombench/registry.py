"""One small registry type for every kind of plug-in: distillers, models and datasets.

Built-ins and outside packages register the same way, through Python entry points::

    [project.entry-points."atombench.distillers"]
    my_method = "my_package.module:MyDistiller"

Discovery is lazy: :meth:`Registry.names` reads entry-point *names* only, and an entry point is imported the
first time :meth:`Registry.get` asks for it. A plug-in that fails to import is reported by name with its
error, and the others keep working. Code may also register objects directly (``@registry.register("name")``),
which is handy in notebooks and tests.

Names with a colon (``timm:resnet18``) are resolved through a *namespace* entry: the registry loads the entry
named ``timm`` and calls ``entry.resolve("resnet18")``. This is how any timm model becomes a model plug-in
without listing thousands of names.

Each registry checks a plug-in's *shape* when it loads (:data:`SHAPES`): a dataset needs ``Config`` and
``load``, a distiller ``Config`` and ``distill``, a model ``build`` and ``parse`` (or ``resolve`` for a
namespace). A plug-in that lacks one is one line naming it and what it lacks, and the others keep working.
Options of all three kinds (a suite entry's ``options:`` mapping) are parsed through :meth:`Registry.parse_options`
into the plug-in's typed ``Config``. The factories that build a dataset, a distiller or a model from its name and
options are in :mod:`atombench.factories`.
"""

from __future__ import annotations

import importlib.metadata as md
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterator, TypeVar

from . import config as cfgmod
from .errors import PluginError, Problem, short, suggest

T = TypeVar("T")


def _is_config(obj: Any) -> bool:
    import dataclasses

    return isinstance(obj, type) and dataclasses.is_dataclass(obj)


def _dataset_shape(obj: Any) -> list[str]:
    return [w for w, ok in (("a 'Config' dataclass", _is_config(getattr(obj, "Config", None))),
                            ("a 'load(config)' method", callable(getattr(obj, "load", None)))) if not ok]


def _distiller_shape(obj: Any) -> list[str]:
    return [w for w, ok in (("a 'Config' dataclass", _is_config(getattr(obj, "Config", None))),
                            ("a 'distill(data, ipc, ctx)' method", callable(getattr(obj, "distill", None))),
                            ("a 'run' method (subclass atombench.distillers.base.Distiller)",
                             callable(getattr(obj, "run", None)))) if not ok]


def _model_shape(obj: Any) -> list[str]:
    if callable(getattr(obj, "resolve", None)):  # a namespace such as timm:<name>
        return []
    return [w for w, ok in (("a 'build(config, channels, num_classes, image_size)' method",
                             callable(getattr(obj, "build", None))),
                            ("a 'parse(options)' method (use atombench.models.base.ModelFamily)",
                             callable(getattr(obj, "parse", None)))) if not ok]


#: what each kind of plug-in must have, checked when it loads
SHAPES: dict[str, Callable[[Any], list[str]]] = {"dataset": _dataset_shape, "distiller": _distiller_shape,
                                                 "model": _model_shape}


def describe(obj: Any) -> str:
    """The one-line description of a plug-in: its ``description`` attribute or its docstring's first line."""
    text = getattr(obj, "description", None) or (getattr(obj, "__doc__", None) or "")
    text = text.strip().splitlines()[0] if text.strip() else ""
    return text.rstrip(".")


@dataclass
class _Entry:
    name: str
    loader: Callable[[], Any]
    origin: str  # "module:attr" or "registered in code"
    loaded: Any = None
    is_loaded: bool = False
    error: BaseException | None = None


class Registry(Generic[T]):
    """A named collection of plug-ins of one kind, filled from the entry-point group ``group``."""

    def __init__(self, kind: str, group: str):
        self.kind = kind
        self.group = group
        self._entries: dict[str, _Entry] = {}
        self._scanned = False

    # -- discovery ---------------------------------------------------------------------------------------
    def _scan(self) -> None:
        if self._scanned:
            return
        self._scanned = True
        for ep in md.entry_points(group=self.group):
            # Code registration wins over an entry point of the same name (a notebook overriding a plug-in).
            self._entries.setdefault(ep.name, _Entry(ep.name, ep.load, ep.value))

    def register(self, name: str, obj: T | None = None):
        """Register ``obj`` under ``name``; usable as a decorator when ``obj`` is omitted."""

        def add(o: T) -> T:
            self._entries[name] = _Entry(name, lambda: o, "registered in code")  # shape checked on first use
            return o

        return add if obj is None else add(obj)

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def names(self) -> list[str]:
        """Every registered name, without importing any plug-in."""
        self._scan()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        self._scan()
        return name in self._entries or (":" in name and name.split(":", 1)[0] in self._entries)

    # -- loading -----------------------------------------------------------------------------------------
    def _load(self, entry: _Entry) -> Any:
        if entry.error is not None:
            raise entry.error if isinstance(entry.error, PluginError) else PluginError(
                f"{self.kind} plug-in '{entry.name}' ({entry.origin}) failed to load: "
                f"{type(entry.error).__name__}: {entry.error}")
        if not entry.is_loaded:
            try:
                entry.loaded = entry.loader()
            except Exception as exc:  # noqa: BLE001 - any import failure is the plug-in's, reported by name
                entry.error = exc
                raise PluginError(
                    f"{self.kind} plug-in '{entry.name}' ({entry.origin}) failed to load: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            missing = SHAPES[self.kind](entry.loaded) if self.kind in SHAPES else []
            if missing:
                entry.error = PluginError(
                    f"{self.kind} plug-in '{entry.name}' ({entry.origin}) is not a {self.kind}: it lacks "
                    f"{' and '.join(missing)}; see CONTRIBUTING.md")
                entry.loaded = None
                raise entry.error
            entry.is_loaded = True
        return entry.loaded

    def get(self, name: str) -> T:
        """The plug-in registered as ``name`` (``prefix:rest`` names go through the ``prefix`` namespace)."""
        self._scan()
        if not isinstance(name, str) or not name:
            raise PluginError(f"{self.kind} name must be a non-empty string, got {short(name)}")
        if name in self._entries:
            obj = self._load(self._entries[name])
            if callable(getattr(obj, "resolve", None)):
                raise PluginError(f"{self.kind} '{name}' is a namespace, not a {self.kind}: name one of its "
                                  f"{self.kind}s as '{name}:<name>' (e.g. '{name}:resnet18')")
            return obj
        if ":" in name:
            prefix, rest = name.split(":", 1)
            if prefix in self._entries:
                namespace = self._load(self._entries[prefix])
                return namespace.resolve(rest)
        raise PluginError(
            f"unknown {self.kind} '{name}'{suggest(name, self.names())}; "
            f"run 'atombench list {self.kind}s' to see them all"
        )

    def parse_options(self, name: str, options: dict | None, where: str = "",
                      problems: list[Problem] | None = None) -> Any:
        """The typed options of plug-in ``name`` from a user mapping: through the plug-in's ``parse`` when it has
        one (models: presets of a named variant apply), else into its ``Config`` dataclass. With ``problems``
        the problems are appended (None returned on any), else a ConfigError lists them."""
        plugin = self.get(name)
        parse = getattr(plugin, "parse", None)
        if callable(parse):
            return parse(options, where, problems)
        if problems is None:
            return cfgmod.parse(plugin.Config, options, where)
        return cfgmod.collect(plugin.Config, options, where, problems)

    def items(self) -> Iterator[tuple[str, T | None, PluginError | None]]:
        """Every plug-in as ``(name, object or None, error or None)``; broken ones do not stop the others."""
        for name in self.names():
            try:
                yield name, self._load(self._entries[name]), None
            except PluginError as err:
                yield name, None, err

    def describe_all(self) -> list[tuple[str, str]]:
        """``(name, one-line description)`` for each plug-in; a broken one says why it failed."""
        rows = []
        for name, obj, err in self.items():
            rows.append((name, f"FAILED TO LOAD: {err}" if err else describe(obj)))
        return rows


distillers: Registry = Registry("distiller", "atombench.distillers")
models: Registry = Registry("model", "atombench.models")
datasets: Registry = Registry("dataset", "atombench.datasets")

REGISTRIES = {"distillers": distillers, "models": models, "datasets": datasets}
