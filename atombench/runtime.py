"""Process-level helpers: devices, seeds, threads, peak memory, versions, atomic files."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch

from .errors import UsageError, short  # noqa: F401 - short: kept importable from here


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; ``cuda`` without a GPU is a usage error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("device 'cuda' was asked for but torch sees no GPU; use device: auto or cpu")
    return torch.device(name)


def derive_seed(*parts: Any) -> int:
    """A stable 31-bit seed from any JSON-able parts (the same across processes and machines)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "little") & 0x7FFFFFFF


def stable_hash(obj: Any, n: int = 16) -> str:
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:n]


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS/Windows
        return os.cpu_count() or 1


def versions() -> dict:
    """Versions recorded with every result (read from the installed metadata: importing timm for its version
    alone costs seconds in each worker)."""
    from importlib.metadata import PackageNotFoundError, version

    from . import __version__

    try:
        timm_version = version("timm")
    except PackageNotFoundError:  # pragma: no cover - timm is a dependency
        timm_version = "unknown"
    return {"atombench": __version__, "torch": torch.__version__, "timm": timm_version,
            "python": platform.python_version()}


def raise_recompile_limit(limit: int) -> None:
    """Raise dynamo's per-function limit of compiled entries to at least ``limit`` (past it, dynamo silently falls
    back to eager): ``recompile_limit`` since torch 2.7, ``cache_size_limit`` before."""
    import torch._dynamo

    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    setattr(config, name, max(getattr(config, name), limit))


@functools.lru_cache(maxsize=None)
def tune_malloc() -> bool:
    """Keep freed memory in the process instead of returning it to the kernel at once (glibc only).

    A distillation or training iteration allocates large tensors afresh each time; with glibc's defaults each is
    a new ``mmap`` that the kernel must fault in page by page and that ``free`` unmaps again, and that, not the
    arithmetic, was the largest cost of an iteration on a CPU. Raising the mmap and trim thresholds lets glibc
    reuse the memory: measured on the 2-core machine (benchmarks/README.md) a digits suite of 8 distillations and
    8 evaluations ran 1.48x faster, with the same results (only where memory comes from changes). The price:
    a process keeps its peak memory until it exits. Set ``ATOMBENCH_MALLOC=default`` to keep glibc's defaults.
    Returns whether the thresholds were changed; once per process (later calls return the first answer)."""
    if os.environ.get("ATOMBENCH_MALLOC", "").strip().lower() == "default":
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
        ok = libc.mallopt(m_mmap_threshold, 1 << 30) == 1  # glibc caps it at 32 MiB on 64 bit
        ok &= libc.mallopt(m_trim_threshold, 1 << 31) == 1 if ok else False
        libc.mallopt(m_top_pad, 1 << 28)
        return bool(ok)
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to tune
        return False


class PeakMemory:
    """Peak memory during a block: CUDA's allocator peak on a GPU, else the process RSS sampled every 20 ms.

    ``peak_mb`` is the increase over the value at entry (what the block itself needed), ``kind`` says which.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.peak_mb = 0.0
        self.kind = "cuda_allocated" if device.type == "cuda" else "cpu_rss"

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            import psutil

            self._proc = psutil.Process()
            self._base = self._proc.memory_info().rss
            self._peak = self._base
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self._peak = max(self._peak, self._proc.memory_info().rss)

    def so_far(self) -> float:
        """The peak so far inside the block, in MB over the value at entry (for snapshots of a long block)."""
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            peak = max(self._peak, self._proc.memory_info().rss)
        return max(0.0, (peak - self._base) / 2**20)

    def __exit__(self, *exc: Any) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()
            peak = max(self._peak, self._proc.memory_info().rss)
        self.peak_mb = max(0.0, (peak - self._base) / 2**20)


@contextmanager
def timer() -> Iterator[dict]:
    out = {"seconds": 0.0}
    start = time.perf_counter()
    try:
        yield out
    finally:
        out["seconds"] = time.perf_counter() - start


@contextmanager
def atomic_write(path: Path, mode: str = "wb") -> Iterator[Any]:
    """Write ``path`` through a temporary file in the same folder, renamed into place only when complete.

    The file gets the permissions any new file of the user gets (``0o666 & ~umask``, e.g. 0644 under umask 022),
    not ``tempfile.mkstemp``'s 0600: the temporary file is created with mode 0o666 and the kernel applies the
    process's umask (and a default ACL, if the folder has one), so the umask is never read or changed (changing it
    to read it would race with other threads)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the writer's pid in the name lets a later run remove what a killed writer left (see clean_stale_tmp)
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) \
        | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = str(path.parent / f".{path.name}.{os.getpid()}.{os.urandom(6).hex()}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"could not create a temporary file next to {path}")
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def clean_stale_tmp(root: Path) -> int:
    """Remove temporary files under ``root`` left by writers that died (killed mid-write); files of writers
    still alive (a concurrent run) are kept. Returns how many were removed."""
    removed = 0
    for tmp in Path(root).rglob(".*.tmp"):
        parts = tmp.name.rsplit(".", 3)  # .<name>.<pid>.<random>.tmp
        try:
            pid = int(parts[-3])
        except (ValueError, IndexError):
            continue
        if not pid_alive(pid):
            try:
                tmp.unlink()
                removed += 1
            except OSError:
                pass
    return removed


def write_json(path: Path, obj: Any) -> None:
    with atomic_write(path, "w") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True, default=str)
