"""Errors that atombench reports to the user as one clear line (no traceback unless ``--debug``)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Iterable


class AtombenchError(Exception):
    """A problem caused by the user's input or environment, with a message that names the fix.

    The CLI prints ``error: <message>`` and exits with :attr:`exit_code`; anything that is not an
    ``AtombenchError`` is a bug and keeps its traceback.
    """

    exit_code = 1


class UsageError(AtombenchError):
    """Bad input found before any work started (suite file, names, values). Exit code 2."""

    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """One problem in a configuration document, located by its key path (``distillers[1].options.lr``)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(UsageError):
    """One or more :class:`Problem` found while validating a document; all are reported at once."""

    def __init__(self, problems: Iterable[Problem], source: str | None = None):
        self.problems = list(problems)
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__("\n".join(prefix + str(p) for p in self.problems))


class PluginError(AtombenchError):
    """A plug-in (distiller, model, dataset) failed to load or was asked for under an unknown name."""

    exit_code = 2


class DataError(AtombenchError):
    """A dataset could not be read (missing folder, truncated files)."""

    exit_code = 2


def suggest(name: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def short(value: Any, limit: int = 120) -> str:
    """A bounded ``repr`` of a user value for an error message: nested and long values are cut (a YAML alias
    bomb placed in a value must not make a message of gigabytes)."""
    import reprlib

    r = reprlib.Repr()
    r.maxlevel, r.maxlist, r.maxtuple, r.maxdict, r.maxset = 3, 6, 6, 6, 6
    r.maxstring, r.maxother, r.maxlong = limit, limit, 40
    text = r.repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
