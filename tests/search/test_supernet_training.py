"""Supernet training: a run killed with SIGKILL resumes from its last epoch and ends
bit-identical to a run that was never killed (the reference: that run, in its own
process); a checkpoint of other settings is refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import autoarch
from autoarch.backends.torch.supernet import Supernet
from autoarch.search.supernet import train_supernet

SPEC = """
model m(x: [64]) -> [10] {
  h = linear(x, choice(16, 32))
  repeat choice(1, 2) {
    h = choice(mlp(layernorm(h), expand = choice(1, 2)), kan(h, 16, groups = 4),
               dropout(relu(linear(h, 16)), 0.2))
  }
  return linear(h, 10)
}
train { data = digits  batch = 128  optimizer = adamw(lr = 0.01)  schedule = cosine }
"""

SCRIPT = textwrap.dedent("""
    import sys, time, torch, autoarch
    from autoarch.backends.torch.supernet import Supernet
    from autoarch.search.supernet import train_supernet
    spec = autoarch.loads(open(sys.argv[1]).read())
    net = Supernet(spec, seed=0)
    def on_epoch(e):
        print("epoch", e.epoch, flush=True)
        time.sleep(float(sys.argv[4]))
    hist = train_supernet(net, epochs=4, path_sampler=sys.argv[5], checkpoint=sys.argv[2],
                          on_epoch=on_epoch)
    torch.save({"net": net.state_dict(), "losses": [e.train_loss for e in hist]}, sys.argv[3])
""")


def _run(tmp: Path, ckpt: str, out: str, pause: float, sampler: str) -> subprocess.Popen:
    (tmp / "s.spec").write_text(SPEC)
    (tmp / "run.py").write_text(SCRIPT)
    return subprocess.Popen([sys.executable, str(tmp / "run.py"), str(tmp / "s.spec"),
                             str(tmp / ckpt), str(tmp / out), str(pause), sampler],
                            stdout=subprocess.PIPE, text=True, cwd=tmp)


@pytest.mark.parametrize("sampler", ["pada"])  # its draws depend on all saved state
def test_kill_during_supernet_training_resumes_bit_identical(tmp_path: Path,
                                                             sampler: str) -> None:
    reference = _run(tmp_path, "ref.pt", "ref.out", 0.0, sampler)
    victim = _run(tmp_path, "ckpt.pt", "never.out", 2.0, sampler)
    assert victim.stdout is not None
    deadline = time.time() + 300
    for line in victim.stdout:  # wait for epoch 2's checkpoint, then kill mid-epoch 3
        if line.strip() == "epoch 2":
            break
        assert time.time() < deadline
    time.sleep(0.5)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert (tmp_path / "ckpt.pt").exists() and not (tmp_path / "never.out").exists()
    assert torch.load(tmp_path / "ckpt.pt", weights_only=False)["epoch"] == 2
    resumed = _run(tmp_path, "ckpt.pt", "resumed.out", 0.0, sampler)
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0
    assert out.split() == ["epoch", "3", "epoch", "4"]  # epochs 1-2 were not trained again
    assert reference.wait(timeout=300) == 0
    ref = torch.load(tmp_path / "ref.out", weights_only=False)
    got = torch.load(tmp_path / "resumed.out", weights_only=False)
    assert got["losses"] == ref["losses"]
    assert ref["net"].keys() == got["net"].keys()
    for k, v in ref["net"].items():
        assert torch.equal(v, got["net"][k]), k


def test_a_checkpoint_of_other_settings_is_refused(tmp_path: Path) -> None:
    spec = autoarch.loads(SPEC)
    ckpt = tmp_path / "c.pt"
    train_supernet(Supernet(spec, seed=0), epochs=1, checkpoint=ckpt)
    with pytest.raises(autoarch.SpecError, match="path_sampler = uniform, this run asks fair"):
        train_supernet(Supernet(spec, seed=0), epochs=1, path_sampler="fair", checkpoint=ckpt)
    ckpt.write_bytes(b"not a checkpoint")
    with pytest.raises(autoarch.SpecError, match="cannot read the supernet checkpoint"):
        train_supernet(Supernet(spec, seed=0), epochs=1, checkpoint=ckpt)


def test_supernet_training_lowers_the_loss_of_its_paths() -> None:
    spec = autoarch.loads(SPEC)
    net = Supernet(spec, seed=0)
    hist = train_supernet(net, epochs=3, path_sampler="fair")
    assert [e.epoch for e in hist] == [1, 2, 3]
    assert hist[-1].train_loss < hist[0].train_loss
    assert hist[-1].val_accuracy is not None and hist[-1].val_accuracy > 0.3  # 10 classes
