"""Hostile use of the command line, as real processes: bad output paths, bad files, bad flags.

Every mistake must end in exit code 1 (typer's 2 for a usage error), never a Python
traceback, one line of error for a problem that is not in a spec, and no file left
half-written. The references are the operating system's own: a folder listing before
and after, file bytes, and errors forced by real mechanisms (a file-size rlimit for a
full disk, root without the capability to override file permissions for a read-only
folder or an unreadable file).
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

ROOT = Path(__file__).resolve().parents[2]
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


def autoarch(*args: str | Path, cwd: Path, preexec_fn: Callable[[], None] | None = None,
             timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``autoarch ARGS`` as a process; a hang fails the test when ``timeout`` runs out."""
    proc = subprocess.run([sys.executable, "-m", "autoarch", *map(str, args)], cwd=cwd,
                          env=env(), capture_output=True, text=True, timeout=timeout,
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


# ---- sweep: every command that reads a spec, given files that are not specs ------------

SPEC_COMMANDS = {  # the arguments each needs besides the file
    "check": (), "show": (), "sample": (), "compile": ("-c", "m.h=256"),
}


def _bad_file(work: Path, case: str) -> tuple[str | Path, Callable[[], None] | None, str]:
    """(the file to give, how to start the command, what the error says) for ``case``."""
    if case == "missing":
        return "nowhere.spec", None, "no such file: nowhere.spec"
    if case == "directory":
        (work / "folder.spec").mkdir()
        return "folder.spec", None, "folder.spec is a directory"
    if case == "binary":  # bytes that are not UTF-8 (0xff never is)
        (work / "b.spec").write_bytes(b"\xff" + os.urandom(2000))
        return "b.spec", None, "b.spec is not UTF-8 text (invalid start byte at byte 0)"
    if case == "unreadable":
        (work / "u.spec").write_text(textwrap.dedent(SPEC))
        (work / "u.spec").chmod(0)
        how = without_dac_override if os.geteuid() == 0 else None
        return "u.spec", how, "cannot read u.spec: Permission denied"
    if case == "endless":  # a device that never ends: reading it whole would never end
        return "/dev/zero", None, "/dev/zero is over 4,000,000 bytes"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["missing", "directory", "binary", "unreadable", "endless"])
@pytest.mark.parametrize("command", SPEC_COMMANDS)
def test_files_that_are_not_specs(work: Path, command: str, case: str) -> None:
    path, how, phrase = _bad_file(work, case)
    proc = autoarch(command, path, *SPEC_COMMANDS[command], cwd=work, preexec_fn=how,
                    timeout=60)
    line = one_line_error(proc)
    assert line.startswith(f"error: {phrase}"), line
    assert proc.stdout == ""


@pytest.mark.parametrize("command", SPEC_COMMANDS)
def test_an_empty_file_is_a_located_spec_error(work: Path, command: str) -> None:
    (work / "empty.spec").write_text("")
    proc = autoarch(command, "empty.spec", *SPEC_COMMANDS[command], cwd=work)
    assert proc.returncode == 1
    head, source, caret = proc.stderr.splitlines()[:3]
    assert head == "empty.spec:1:1: error: a spec needs exactly one model, found none"
    assert (source, caret) == ("    1 | ", "      | ^")


# bad flags: typer's usage errors exit 2; a bad value that typer cannot see exits 1
USAGE_ERRORS = [
    ("check", "--bogus"), ("check", "--samples", "many"), ("check", "--samples", "-1"),
    ("check", "--samples", "1000000000"), ("show", "--seed", "1.5"), ("show", "-n", "-1"),
    ("show", "--json", "--json=yes"), ("sample", "-n", "-3"), ("sample", "-n", "10000000000"),
    ("sample", "--seed", "x"), ("compile", "--seed", "x"), ("compile", "--sample", "one"),
    ("compile", "-o"), ("ops", "--bogus"), ("ops", "linear", "extra"),
]


@pytest.mark.parametrize("args", USAGE_ERRORS, ids=" ".join)
def test_usage_errors_exit_2(work: Path, args: tuple[str, ...]) -> None:
    command, *rest = args
    spec = ["m.spec"] if command != "ops" else []
    proc = autoarch(command, *spec, *rest, cwd=work, timeout=60)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Error" in proc.stderr and proc.stdout == ""
    if "Usage:" in proc.stderr:  # run as `python -m autoarch`, it is still `autoarch`
        assert f"Usage: autoarch {command} " in proc.stderr, proc.stderr


COMMAND_LINE_ERRORS = {
    "choice-without-a-value": (("-c", "m.h"), "--choice 'm.h' is not NAME=VALUE"),
    "choice-without-a-name": (("-c", "=256"), "--choice '=256' names no decision"),
    "choice-of-no-decision": (("-c", "m.width=256"), "no decision named m.width"),
    "weights-seed-beyond-64-bits": (("-c", "m.h=256", "--seed", str(2**70)),
                                    f"--seed {2**70} is out of range"),
    "output-empty": (("-c", "m.h=256", "-o", ""), "-o needs a file name"),
    "output-names-a-folder": (("-c", "m.h=256", "-o", "new/"), "new/ names a folder"),
    "output-under-a-file": (("-c", "m.h=256", "-o", "m.spec/model.pt"),
                            "cannot write m.spec/model.pt: folder m.spec is not a folder"),
}


@pytest.mark.parametrize("case", COMMAND_LINE_ERRORS)
def test_compile_command_line_errors_are_one_line(work: Path, case: str) -> None:
    args, phrase = COMMAND_LINE_ERRORS[case]
    before = listing(work)
    line = one_line_error(autoarch("compile", "m.spec", *args, cwd=work, timeout=60))
    assert line.startswith(f"error: {phrase}"), line
    assert listing(work) == before


def test_compile_onto_a_pipe_neither_hangs_nor_replaces_it(work: Path) -> None:
    os.mkfifo(work / "pipe.pt")
    line = one_line_error(autoarch("compile", "m.spec", "-c", "m.h=256", "-o", "pipe.pt",
                                   cwd=work, timeout=60))
    assert line.startswith("error: cannot write pipe.pt: it is not a regular file"), line
    assert (work / "pipe.pt").is_fifo()


def test_compile_through_a_link_replaces_the_file_it_points_to(work: Path) -> None:
    (work / "real.pt").write_bytes(b"old")
    (work / "link.pt").symlink_to("real.pt")
    proc = autoarch("compile", "m.spec", "-c", "m.h=256", "-o", "link.pt", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert (work / "link.pt").is_symlink() and os.readlink(work / "link.pt") == "real.pt"
    assert (work / "real.pt").read_bytes()[:2] == b"PK"


def test_ops_of_an_unknown_name_is_one_line(work: Path) -> None:
    line = one_line_error(autoarch("ops", "lineer", cwd=work, timeout=60))
    assert line == "error: unknown op 'lineer'; did you mean 'linear'?"
