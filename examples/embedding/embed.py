"""autoarch inside your own work: your block, your data, your training loop.

Run it from anywhere:  python examples/embedding/embed.py [--trials N] [--db FILE]

1. `blocks.py` registers a block of your own; `gated.spec` calls it like a built-in.
2. The data are tensors of your own (here: a made-up 3-class problem).
3. `fit` is your training loop: it reports every epoch (the search's median pruner
   may stop a trial there) and returns the validation accuracy.
autoarch proposes and checks the candidates, skips duplicates, records every trial
and epoch in the history database, and resumes the run if you run this again.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812

import autoarch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import blocks  # noqa: E402, F401  (registers gated_linear)


def make_data(seed: int = 0) -> autoarch.Dataset:
    """600 rows of 12 features; the class is which of three random directions a row
    leans to most, with some noise: a task a small network learns in seconds."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(600, 12, generator=g)
    directions = torch.randn(12, 3, generator=g)
    y = (x @ directions + 0.3 * torch.randn(600, 3, generator=g)).argmax(-1)
    return autoarch.Dataset.from_tensors(x[:400], y[:400], x[400:500], y[400:500],
                                         x[500:], y[500:], name="leaning")


def fit(model: torch.nn.Module, trial: autoarch.Trial) -> dict[str, float]:
    """Your training loop: plain torch, with one call to autoarch per epoch."""
    data = trial.data
    opt = torch.optim.AdamW(model.parameters(), lr=trial.lr)
    g = torch.Generator().manual_seed(trial.seed)
    x, y = data.x_train.to(trial.device), data.y_train.to(trial.device)
    for epoch in range(1, trial.epochs + 1):
        model.train()
        order = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), trial.batch):
            idx = order[i:i + trial.batch]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            logits = model(data.x_val.to(trial.device))
            val_loss = float(F.cross_entropy(logits, data.y_val.to(trial.device)))
            acc = float((logits.argmax(-1) == data.y_val.to(trial.device)).float().mean())
        # recorded in the history; raises autoarch.TrialPruned when the pruner stops it
        trial.report(epoch, val_accuracy=acc, val_loss=val_loss, train_loss=float(loss.detach()))
    with torch.no_grad():
        test_acc = float((model(data.x_test).argmax(-1) == data.y_test).float().mean())
    return {"val_accuracy": acc, "val_loss": val_loss, "test_accuracy": test_acc}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=None)
    parser.add_argument("--db", default="embedding.db")
    args = parser.parse_args()
    spec = autoarch.load(HERE / "gated.spec")
    print(f"{spec.space().count()} candidates")
    result = autoarch.search(spec, objective=fit, data=make_data(), trials=args.trials,
                             db=args.db, name="embedding")
    states = [o.state for o in result.outcomes]
    print(f"run {result.run}: {result.counted} trials "
          f"({states.count('complete')} complete, {states.count('pruned')} pruned)")
    best = result.best[0]
    print(f"best: trial {best['number']}, val_accuracy {best['metrics']['val_accuracy']:.3f}, "
          f"test_accuracy {best['metrics']['test_accuracy']:.3f}, {best['params']:,} params")
    print(f"choices: {best['choices']}")


if __name__ == "__main__":
    main()
