"""The results folder: the one owner of every path under it, and the one writer of each file.

Layout under a suite's output folder::

    suite.yaml                      the suite as run (the file's text)
    suite.json                      the suite as run (resolved, every default filled in)
    synsets/<key>.safetensors       one synthetic set (tensors only) ...
    synsets/<key>.safetensors.json  ... and its metadata (config, seed, wall time, peak memory, versions, sha256)
    jobs/<key>.json                 one evaluation or architecture-search job's result (one row)
    claims/<key>                    a job being computed now by a run (its host, pid and run id)
    claims/<key>.<digest>.rm        that claim being removed, for microseconds (its removal guard)
    cache/                          artifacts shared across runs and IPCs (trained networks, expert trajectories)
    results.csv                     the tidy table: one row per dataset, distiller, IPC, model, seed, eval model
    nas.csv, nas_summary.csv        the architecture search, when the suite has one
    summary.md                      mean ± std per cell (and the search's tables)
    report/                         ``atombench report``'s tables, plots and page
    submitit/                       the Slurm/submitit engine's logs

Every file is written to a temporary name and renamed into place, so a file either is complete or is absent.
Keys are content hashes (:mod:`atombench.jobs`), so a re-run finds what is done and skips it; a claim lets two
runs into one folder share the work instead of both computing it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

import pandas as pd
import torch

from .runtime import atomic_write, pid_alive, write_json

#: the key of an evaluation record (``jobs/<key>.json``) listing the other rows its job is reported as
#: (:attr:`atombench.jobs.EvalJob.also`: one trained model under both protocols); not a column of ``results.csv``,
#: whose rows are those identities
REPORTED_AS = "reported_as"


@dataclass
class SyntheticSet:
    """A synthetic set as stored under ``synsets/``: images, labels, metadata and optional soft labels."""

    images: torch.Tensor  # [N, C, H, W], the dataset's normalised space, float32, CPU
    labels: torch.Tensor  # [N] int64
    meta: dict = field(default_factory=dict)
    #: per-image soft labels (logits ``[N, num_classes]``) when the distiller made them (``eval.soft_labels:
    #: distiller`` trains on them)
    soft_labels: Optional[torch.Tensor] = None

    def save(self, path: Path) -> None:
        """``path`` (.safetensors: tensors only, no code) and ``path.json`` (metadata with the tensors' checksum)."""
        from safetensors.torch import save

        tensors = {"images": self.images.contiguous().cpu(), "labels": self.labels.contiguous().cpu()}
        if self.soft_labels is not None:
            tensors["soft_labels"] = self.soft_labels.detach().to("cpu", torch.float32).contiguous()
        blob = save(tensors)
        meta = dict(self.meta, sha256=hashlib.sha256(blob).hexdigest())
        # Tensors first, metadata last: a set counts as present only when its metadata exists and matches.
        with atomic_write(Path(path)) as fh:
            fh.write(blob)
        with atomic_write(Path(str(path) + ".json"), "w") as fh:
            json.dump(meta, fh, indent=2, sort_keys=True, default=str)

    @classmethod
    def load(cls, path: Path) -> "SyntheticSet":
        """Load and verify; raises ``ValueError`` for a missing, truncated or tampered file."""
        from safetensors.torch import load

        path = Path(path)
        meta = json.loads(Path(str(path) + ".json").read_text())
        blob = path.read_bytes()
        if hashlib.sha256(blob).hexdigest() != meta.get("sha256"):
            raise ValueError(f"{path}: checksum mismatch (truncated or modified)")
        tensors = load(blob)
        return cls(tensors["images"], tensors["labels"], meta, tensors.get("soft_labels"))


#: a claim whose holder cannot be checked (another host) and that was not refreshed for this long is stale
CLAIM_TTL_S = 600.0


def _digest(row: dict) -> str:
    return hashlib.sha256(json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()


# -- removing a claim file only if it still is the one meant ------------------------------------------------------
#: seconds after which a removal guard is stale: its run died within the removal (which takes microseconds)
GUARD_STALE_S = 60.0
#: how deep guards of stale guards go (each level needs a run dying within the removal of the level below)
_GUARD_DEPTH = 4


def _read(path: Path) -> Optional[str]:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def _age(path: Path) -> Optional[float]:
    """Seconds since ``path`` was last modified; None when it is absent."""
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None


def _create(path: Path, text: str) -> bool:
    """Create the file ``path`` holding ``text``, whole (never seen empty or half written); False when it exists.
    The temporary file is named as :func:`~atombench.runtime.clean_stale_tmp` expects."""
    import uuid

    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(text)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links: exclusive create, then write
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        return True
    finally:
        tmp.unlink()


def guard_path(path: Path, text: str) -> Path:
    """The removal guard of the file ``path`` holding ``text``: one per version of the file (a claim's nonce makes
    each version's text unique)."""
    return path.with_name(f"{path.name}.{hashlib.sha256(text.encode()).hexdigest()[:16]}.rm")


def _remove_if(path: Path, text: str, depth: int = 0) -> str:
    """Remove the file at ``path`` if it still holds ``text``: ``removed``; ``changed`` when it holds something
    else or is absent; ``busy`` when another run is removing that very version now.

    The removal happens under the version's guard (:func:`guard_path`, created exclusively): of the runs that
    judged one version, one at a time re-reads the file and removes it if it is still that version, so no run ever
    removes a file written after the one it judged. A stale guard (its run died within the removal) is itself
    removed this way, one level down: two runs that judge it stale cannot both remove it, nor can the slower remove
    the fresh guard the quicker made meanwhile. (What stays open: a run stopped for over
    :data:`GUARD_STALE_S` between its re-read and its unlink, two system calls apart.)"""
    import uuid

    guard = guard_path(path, text)
    for _ in range(2):
        if _create(guard, f"{socket.gethostname()} {os.getpid()} {uuid.uuid4().hex}"):
            break
        guard_text, age = _read(guard), _age(guard)
        if guard_text is None:  # its removal just ended: try again
            continue
        if depth >= _GUARD_DEPTH or age is None or age < GUARD_STALE_S:
            return "busy"
        if _remove_if(guard, guard_text, depth + 1) == "busy":
            return "busy"
    else:
        return "busy"
    try:
        if _read(path) != text:
            return "changed"
        path.unlink()
        return "removed"
    except FileNotFoundError:
        return "changed"
    finally:  # done with ``path``: the next run to take this guard re-reads it
        with contextlib.suppress(FileNotFoundError):  # taken as stale from a run stopped for over a minute
            guard.unlink()


class ResultsStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        #: the claims this store made: key -> the claim file's text (what :meth:`release` checks)
        self._mine: dict[str, str] = {}

    # -- paths -------------------------------------------------------------------------------------------
    @property
    def suite_yaml(self) -> Path:
        return self.root / "suite.yaml"

    @property
    def suite_json(self) -> Path:
        return self.root / "suite.json"

    @property
    def results_csv(self) -> Path:
        return self.root / "results.csv"

    @property
    def summary_md(self) -> Path:
        return self.root / "summary.md"

    @property
    def nas_csv(self) -> Path:
        return self.root / "nas.csv"

    @property
    def nas_summary_csv(self) -> Path:
        return self.root / "nas_summary.csv"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @property
    def jobs_dir(self) -> Path:
        return self.root / "jobs"

    @property
    def synsets_dir(self) -> Path:
        return self.root / "synsets"

    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    @property
    def submitit_dir(self) -> Path:
        return self.root / "submitit"

    def synset_path(self, key: str) -> Path:
        return self.synsets_dir / f"{key}.safetensors"

    def synset_meta_path(self, key: str) -> Path:
        return self.synsets_dir / f"{key}.safetensors.json"

    def job_path(self, key: str) -> Path:
        return self.jobs_dir / f"{key}.json"

    def claim_path(self, key: str) -> Path:
        return self.root / "claims" / key

    # -- synthetic sets ------------------------------------------------------------------------------------
    def valid_synset(self, key: str, warn=None) -> bool:
        """Whether the synthetic set ``key`` is present and intact; a damaged one (truncated, tampered: its
        checksum fails) is reported through ``warn`` and counts as absent (it is recomputed)."""
        path = self.synset_path(key)
        if not path.exists() and not self.synset_meta_path(key).exists():
            return False
        try:
            SyntheticSet.load(path)
            return True
        except (OSError, ValueError, KeyError) as exc:
            if warn:
                why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                warn(f"warning: synthetic set {path.name} is damaged ({why}); recomputing it")
            return False

    def synset_meta(self, key: str) -> Optional[dict]:
        try:
            return json.loads(self.synset_meta_path(key).read_text())
        except (OSError, ValueError):
            return None

    # -- job results ---------------------------------------------------------------------------------------
    def write_job(self, key: str, row: dict) -> None:
        """Write one job's result atomically, with a checksum of its content."""
        body = json.loads(json.dumps(row, default=str))
        write_json(self.job_path(key), dict(body, sha256=_digest(body)))

    def read_job(self, key: str, warn=None) -> dict | None:
        """The stored result of a job, or None when absent or damaged (then it is recomputed; ``warn`` is told
        why when the file exists but is unreadable, truncated or tampered with)."""
        path = self.job_path(key)
        if not path.exists():
            return None
        try:
            row = json.loads(path.read_text())
            if not isinstance(row, dict) or row.get("job_key") != key:
                raise ValueError("it is not this job's result")
            digest = row.pop("sha256", None)
            if digest is not None and digest != _digest(row):
                raise ValueError("checksum mismatch: the file was modified")
        except (OSError, ValueError) as exc:
            if warn:
                warn(f"warning: job result {path.name} is damaged ({str(exc).splitlines()[0]}); recomputing it")
            return None
        return row

    # -- claims: two runs into one folder share the work ------------------------------------------------------
    #
    # A claim file appears whole (written to a temporary name, then linked into place, which fails when the file
    # exists): exactly one run makes it, and each claim carries a nonce. A claim file leaves only through
    # :func:`_remove_if`, which removes it only if it still is the claim the caller means (the stale one it judged,
    # or its own), under that claim's removal guard: two runs that judged the same stale claim cannot both break
    # it, the slower cannot break the fresh claim the quicker made meanwhile, and a run never releases a claim
    # taken over from it. A run releases and refreshes only the claims it made (this store remembers them).
    def claim(self, key: str, run_id: str) -> Optional[dict]:
        """Take the claim on job ``key`` for the run ``run_id``: None when taken, else the live holder's record.
        A claim left by a run that died (its pid is gone on this host, or not refreshed for
        :data:`CLAIM_TTL_S` on another host) is broken and taken."""
        import uuid

        path = self.claim_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {"host": socket.gethostname(), "pid": os.getpid(), "run": run_id, "since": time.time(),
                  "nonce": uuid.uuid4().hex}
        text = json.dumps(record)
        for _ in range(3):
            if not _create(path, text):
                holder = self.claim_holder(key)
                if holder is None:  # released or stale (and removed) meanwhile: try again
                    continue
                if holder.get("run") == run_id:
                    return None
                return holder
            self._mine[key] = text
            return None
        return self.claim_holder(key) or {"run": "unknown"}

    def claim_holder(self, key: str) -> Optional[dict]:
        """The live holder of the claim on ``key``, or None (no claim, or a stale one, which is removed)."""
        path = self.claim_path(key)
        try:
            mtime = path.stat().st_mtime
            text = path.read_text()
        except FileNotFoundError:
            return None
        try:
            holder = json.loads(text)
            if not isinstance(holder, dict):
                raise ValueError("not a claim record")
        except ValueError:  # being written right now (a file system without hard links)
            return {"run": "unknown"} if time.time() - mtime < 60 else self._break(path, text)
        same_host = holder.get("host") == socket.gethostname()
        if (same_host and not pid_alive(int(holder.get("pid", 0)))) or time.time() - mtime > CLAIM_TTL_S:
            return self._break(path, text)
        return holder

    @staticmethod
    def _break(path: Path, stale: str) -> Optional[dict]:
        """Remove the claim at ``path`` if it still is ``stale`` (the text judged stale): None when it is gone,
        else the holder of the claim there now (a run that took it over first, or one taking it over now)."""
        if _remove_if(path, stale) == "busy":
            return {"run": "unknown"}  # another run is taking it over: its claim will tell who holds the job
        now = _read(path)
        if now is None:
            return None
        try:
            return json.loads(now)
        except ValueError:
            return {"run": "unknown"}

    def _own(self, key: str) -> bool:
        """Whether the claim file of ``key`` is the one this store made."""
        mine = self._mine.get(key)
        return mine is not None and _read(self.claim_path(key)) == mine

    def refresh_claims(self, keys: Iterable[str]) -> None:
        """Keep this run's claims alive (their age tells other hosts the holder still works)."""
        now = time.time()
        for key in keys:
            if not self._own(key):
                continue
            try:
                os.utime(self.claim_path(key), (now, now))
            except FileNotFoundError:
                pass

    def release(self, key: str) -> None:
        """Remove this store's claim on ``key``; a claim it did not make (another run's, one taken over from it
        after it stalled, a unit it never claimed) is left alone."""
        mine = self._mine.pop(key, None)
        if mine is not None:
            _remove_if(self.claim_path(key), mine)

    # -- tables ------------------------------------------------------------------------------------------
    def write_results(self, rows: Iterable[dict]) -> pd.DataFrame:
        """Write ``results.csv`` from ``rows`` (kept in the suite's order); tracebacks stay in the job files."""
        df = pd.DataFrame([{k: v for k, v in r.items() if k != "traceback"} for r in rows])
        with atomic_write(self.results_csv, "w") as fh:
            df.to_csv(fh, index=False)
        return df

    def write_nas(self, table: pd.DataFrame, summary: pd.DataFrame) -> None:
        with atomic_write(self.nas_csv, "w") as fh:
            table.to_csv(fh, index=False)
        with atomic_write(self.nas_summary_csv, "w") as fh:
            summary.to_csv(fh, index=False)

    def write_summary(self, text: str) -> None:
        """``summary.md``, rendered by :mod:`atombench.summary` (its one writer)."""
        with atomic_write(self.summary_md, "w") as fh:
            fh.write(text)

    def write_suite(self, text: str, resolved: dict) -> None:
        with atomic_write(self.suite_yaml, "w") as fh:
            fh.write(text)
        write_json(self.suite_json, resolved)
