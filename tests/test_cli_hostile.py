"""Hostile use of the command line, as real processes: bad output paths, bad files, bad flags.

Every mistake must end in exit code 1 (typer's 2 for a usage error), never a Python
traceback, one line of error for a problem that is not in a spec, and no file left
half-written. The references are the operating system's own: a folder listing before
and after, file bytes, and errors forced by real mechanisms (a file-size rlimit for a
full disk, an unprivileged user for a read-only folder).
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 24, 1, 2  # <linux/prctl.h>

# with m.h = 256, 64*256 + 256 + 256*10 + 10 = 19,466 parameters: a saved model of 80 kB
SPEC = """
model m(x: [64]) -> [10] {
  h = linear(x, choice(256, 512))
  return linear(h, 10)
}
train { data = digits  epochs = 1 }
"""
#: a file-size limit below any saved model's size (the "full disk")
FSIZE = 40_000


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "AUTOARCH_DEBUG"}


def autoarch(*args: str | Path, cwd: Path,
             preexec_fn: Callable[[], None] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "autoarch", *map(str, args)], cwd=cwd,
                          env=env(), capture_output=True, text=True, timeout=300,
                          preexec_fn=preexec_fn)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    return proc


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The single `error: ...` line of a failed command (exit 1)."""
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), proc.stderr
    return lines[0]


def full_disk() -> None:
    """In the child: writes past FSIZE bytes fail with EFBIG, as on a full disk."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE, FSIZE))


def without_dac_override() -> None:
    """In the child: root without the capabilities that let it ignore file permissions.

    Dropped from the bounding set, they are gone from the program exec'd next, so a
    folder's missing write bit stops it as it stops any user.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Path]:
    """A folder with the spec in it."""
    (tmp_path / "m.spec").write_text(textwrap.dedent(SPEC).lstrip())
    yield tmp_path
    for p in tmp_path.rglob("*"):  # so that pytest can clean up
        if p.is_dir():
            p.chmod(0o755)


def read_only_folder(work: Path) -> tuple[Path, Callable[[], None] | None]:
    """A folder the command cannot write in, and how to start the command."""
    folder = work / "ro"
    folder.mkdir()
    (folder / "kept.txt").write_text("kept")
    folder.chmod(0o555)
    return folder, without_dac_override if os.geteuid() == 0 else None


# ---- compile -o --------------------------------------------------------------------


def compile_to(work: Path, out: Path | str,
               preexec_fn: Callable[[], None] | None = None) -> subprocess.CompletedProcess[str]:
    return autoarch("compile", "m.spec", "-c", "m.h=256", "-o", out, cwd=work,
                    preexec_fn=preexec_fn)


def test_compile_into_a_missing_folder(work: Path) -> None:
    before = sorted(p.name for p in work.rglob("*"))
    line = one_line_error(compile_to(work, work / "missing" / "model.pt"))
    assert "missing" in line and "does not exist" in line
    assert sorted(p.name for p in work.rglob("*")) == before


def test_compile_onto_a_directory(work: Path) -> None:
    (work / "d").mkdir()
    line = one_line_error(compile_to(work, work / "d"))
    assert "is a directory" in line
    assert list((work / "d").iterdir()) == []


def test_compile_into_a_read_only_folder(work: Path) -> None:
    folder, how = read_only_folder(work)
    line = one_line_error(compile_to(work, folder / "model.pt", how))
    assert "Permission denied" in line
    assert listing(folder) == {"kept.txt": b"kept"}


def test_compile_onto_a_full_disk_leaves_no_partial_file(work: Path) -> None:
    before = listing(work)
    line = one_line_error(compile_to(work, work / "model.pt", full_disk))
    assert "File too large" in line  # strerror(EFBIG)
    assert listing(work) == before  # neither model.pt nor a temporary file


def test_compile_onto_a_full_disk_keeps_the_old_file(work: Path) -> None:
    (work / "model.pt").write_bytes(b"the previous model")
    before = listing(work)
    one_line_error(compile_to(work, work / "model.pt", full_disk))
    assert listing(work) == before


def test_compile_output_is_whole_and_loads(work: Path) -> None:
    import torch

    import autoarch as aa

    umask = os.umask(0o022)
    os.umask(umask)
    proc = compile_to(work, "model.pt")
    assert proc.returncode == 0, proc.stderr
    assert sorted(listing(work)) == ["m.spec", "model.pt"]  # no temporary file left
    assert (work / "model.pt").stat().st_mode & 0o777 == 0o666 & ~umask  # as open() makes it
    model = aa.load_model(work / "model.pt")
    assert sum(p.numel() for p in model.parameters()) == 64 * 256 + 256 + 256 * 10 + 10
    assert model(torch.zeros(3, 64)).shape == (3, 10)


def test_compile_over_an_old_file_keeps_its_mode(work: Path) -> None:
    (work / "model.pt").write_bytes(b"the previous model")
    (work / "model.pt").chmod(0o640)
    proc = compile_to(work, "model.pt")
    assert proc.returncode == 0, proc.stderr
    assert (work / "model.pt").read_bytes()[:2] == b"PK"  # a torch zip archive now
    assert (work / "model.pt").stat().st_mode & 0o777 == 0o640


def small_address_space() -> None:
    """In the child: 8 GiB of address space, so an allocation of the model fails at once."""
    resource.setrlimit(resource.RLIMIT_AS, (8 << 30, resource.RLIM_INFINITY))


def test_compile_refuses_a_huge_candidate_before_allocating_it(work: Path) -> None:
    from autoarch.compiler.limits import MAX_PARAMS

    (work / "huge.spec").write_text("model m(x: [64]) -> [10] {\n"
                                    "  h = linear(linear(x, 370000), 370000)\n"
                                    "  return linear(h, 10)\n}\n")
    params = 64 * 370_000 + 370_000 + 370_000 * 370_000 + 370_000 + 370_000 * 10 + 10
    proc = autoarch("compile", "huge.spec", "-o", "huge.pt", cwd=work,
                    preexec_fn=small_address_space)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0] == (f"huge.spec:1:1: error: this candidate of model m has {params:,} "
                        f"parameters ({params * 4 / 1e9:,.0f} GB as float32); the limit for "
                        f"building it is {MAX_PARAMS:,} (MAX_PARAMS)")
    assert lines[1:3] == ["    1 | model m(x: [64]) -> [10] {", "      | ^^^^^"]
    assert "MAX_PARAMS in autoarch/compiler/limits.py" in lines[3]
    assert listing(work) == {"huge.spec": (work / "huge.spec").read_bytes(),
                             "m.spec": (work / "m.spec").read_bytes()}


# ---- best -o -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def history_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real history database: one trained trial of SPEC, weights kept."""
    folder = tmp_path_factory.mktemp("history")
    (folder / "m.spec").write_text(textwrap.dedent(SPEC).lstrip())
    proc = autoarch("search", "m.spec", "--trials", "1", "--epochs", "1", "--db", "runs.db",
                    cwd=folder)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return folder / "runs.db"


def best_to(work: Path, db: Path, out: Path | str,
            preexec_fn: Callable[[], None] | None = None) -> subprocess.CompletedProcess[str]:
    return autoarch("best", db, "-o", out, cwd=work, preexec_fn=preexec_fn)


def test_best_into_a_missing_folder(work: Path, history_db: Path) -> None:
    before = sorted(p.name for p in work.rglob("*"))
    line = one_line_error(best_to(work, history_db, work / "missing" / "best.pt"))
    assert "missing" in line and "does not exist" in line
    assert sorted(p.name for p in work.rglob("*")) == before


def test_best_onto_a_directory(work: Path, history_db: Path) -> None:
    (work / "d").mkdir()
    line = one_line_error(best_to(work, history_db, work / "d"))
    assert "is a directory" in line
    assert list((work / "d").iterdir()) == []


def test_best_into_a_read_only_folder(work: Path, history_db: Path) -> None:
    folder, how = read_only_folder(work)
    line = one_line_error(best_to(work, history_db, folder / "best.pt", how))
    assert "Permission denied" in line
    assert listing(folder) == {"kept.txt": b"kept"}


def test_best_onto_a_full_disk_keeps_the_old_file(work: Path, history_db: Path) -> None:
    (work / "best.pt").write_bytes(b"the previous model")
    before = listing(work)
    line = one_line_error(best_to(work, history_db, work / "best.pt", full_disk))
    assert "File too large" in line
    assert listing(work) == before


def test_best_output_is_whole_and_loads(work: Path, history_db: Path) -> None:
    import torch

    import autoarch as aa

    proc = best_to(work, history_db, "best.pt")
    assert proc.returncode == 0, proc.stderr
    assert sorted(listing(work)) == ["best.pt", "m.spec"]
    assert aa.load_model(work / "best.pt")(torch.zeros(2, 64)).shape == (2, 10)
