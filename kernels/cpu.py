"""CPU kernels in plain C: compiled once per machine, cached, called through ctypes.

A kernel here is a ``.c`` file beside this module with no Python or torch headers, so
building it is one compiler call of well under a second (against a minute for a torch
C++ extension), and calling it costs a few microseconds - what matters at the small
tensors of a search's trials, where a step's cost is the number of tensor ops, not
their arithmetic. ctypes releases the GIL during a call, so a large tensor can be
split across threads.

:func:`load` builds ``<name>.c`` with the machine's C compiler (``$CC``, else ``cc``,
``gcc`` or ``clang``) into ``<cache>/kernels/<name>-<key>.so``, where ``<cache>`` is
``$AUTOARCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/autoarch``, else ``~/.cache/autoarch``,
and ``<key>`` hashes the source, the compiler, the flags and the CPU's features (the
build uses ``-march=native``). Processes that build at once each write their own
temporary file and rename it into place; where the cache cannot be written (or its
library does not load), the build goes to a directory of the process's own, removed
once the library is loaded. It returns ``None`` - and the callers fall
back to their torch forms - when there is no compiler, the build fails, or
``AUTOARCH_CPU_KERNELS=0``; :func:`why_not` says which.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

__all__ = ["load", "why_not", "cache_dir"]

HERE = Path(__file__).resolve().parent
FLAGS = ("-O3", "-fPIC", "-shared", "-fno-math-errno", "-std=c99")
NATIVE = "-march=native"
STALE_S = 600  # a temporary file older than this is a killed build's: removed

_lock = threading.Lock()
_loaded: dict[str, ctypes.CDLL | None] = {}
_why: dict[str, str] = {}


def cache_dir() -> Path:
    """Where built kernels are kept (see the module docstring)."""
    if os.environ.get("AUTOARCH_CACHE_DIR"):
        return Path(os.environ["AUTOARCH_CACHE_DIR"]) / "kernels"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "autoarch" / "kernels"


def _compiler() -> str | None:
    for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
        found = cc and shutil.which(cc)
        if found:
            return found
    return None


def _cpu_features() -> str:
    """The CPU's feature flags (what -march=native compiles for), for the cache key."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _key(source: bytes, cc: str) -> str:
    st = os.stat(cc)
    h = hashlib.sha256(source)
    for part in (os.path.realpath(cc), str(st.st_size), str(int(st.st_mtime)), " ".join(FLAGS),
                 NATIVE, platform.machine(), _cpu_features()):
        h.update(b"\0" + part.encode())
    return h.hexdigest()[:16]


def _build(src: Path, out: Path, cc: str) -> str | None:
    """Compile ``src`` to ``out`` (atomically); the error text, or None."""
    out.parent.mkdir(parents=True, exist_ok=True)
    name = out.stem.rsplit("-", 1)[0]
    for stale in out.parent.glob(f"{name}-*.tmp"):  # a build killed midway, long ago
        with contextlib.suppress(OSError):
            if time.time() - stale.stat().st_mtime > STALE_S:
                stale.unlink()
    fd, tmp = tempfile.mkstemp(prefix=out.stem + ".", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        error = ""
        for native in ((NATIVE,), ()):  # a compiler without -march=native: build generic
            try:
                run = subprocess.run([cc, *FLAGS, *native, str(src), "-o", tmp, "-lm"],
                                     capture_output=True, text=True, timeout=120)
            except (OSError, subprocess.TimeoutExpired) as e:
                return str(e)
            if run.returncode == 0:
                os.replace(tmp, out)
                return None
            error = run.stderr.strip()
        return error or "the compiler failed"
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load(name: str) -> ctypes.CDLL | None:
    """The built kernel library ``name`` (``<name>.c`` beside this module), or None."""
    if name in _loaded:
        return _loaded[name]
    with _lock:
        if name not in _loaded:
            _loaded[name] = _load(name)
        return _loaded[name]


def _load(name: str) -> ctypes.CDLL | None:
    if os.environ.get("AUTOARCH_CPU_KERNELS", "1") == "0":
        _why[name] = "AUTOARCH_CPU_KERNELS=0"
        return None
    cc = _compiler()
    if cc is None:
        _why[name] = "no C compiler found (set CC, or install cc, gcc or clang)"
        return None
    src = HERE / f"{name}.c"
    key = _key(src.read_bytes(), cc)
    try:  # the cache
        out = cache_dir() / f"{name}-{key}.so"
        if not out.exists() and not _built(name, src, out, cc):
            return None
        return ctypes.CDLL(str(out))
    except OSError as e:  # an unwritable cache, or a library there that does not load
        _why[name] = f"{cache_dir()}: {e}"
    # a directory of this process's own, gone once the library is loaded (Linux keeps
    # the mapping): never a shared temporary path another user could have prepared
    private = Path(tempfile.mkdtemp(prefix="autoarch-kernels-"))
    try:
        out = private / f"{name}-{key}.so"
        return ctypes.CDLL(str(out)) if _built(name, src, out, cc) else None
    except OSError as e:
        _why[name] = f"{out}: {e}"
        return None
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _built(name: str, src: Path, out: Path, cc: str) -> bool:
    error = _build(src, out, cc)
    if error is not None:
        lines = error.splitlines() or [error]
        first = next((ln for ln in lines if "error" in ln.lower()), lines[0])
        _why[name] = f"building {src.name} with {cc} failed: {first}"
    return error is None


def why_not(name: str) -> str | None:
    """Why :func:`load` gave None for ``name`` (None if it loaded or was not asked)."""
    return None if _loaded.get(name) is not None else _why.get(name)
