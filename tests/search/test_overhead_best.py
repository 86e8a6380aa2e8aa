"""The run's best kept from one completed trial to the next (``best_trials_with``)
is what a scan of all the run's complete trials (``best_trials``) finds, whatever
order the trials complete in (Ray completes them out of order), ties included."""

from __future__ import annotations

import json
import random

import pytest

from autoarch.search.driver import best_trials_with
from autoarch.search.options import Objective
from autoarch.search.results import best_trials


class Rows:
    """The ``trials`` a History gives ``best_trials``: complete rows by number."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def trials(self, run_id: int, states: list[str]) -> list[dict]:
        return sorted(self.rows, key=lambda r: r["number"])


@pytest.mark.parametrize("objectives", [
    [Objective("maximize", "val_accuracy")],
    [Objective("minimize", "val_loss")],
    [Objective("maximize", "val_accuracy"), Objective("minimize", "params")],
    [Objective("maximize", "val_accuracy"), Objective("minimize", "params"),
     Objective("minimize", "flops")],
], ids=["max", "min", "two", "three"])
@pytest.mark.parametrize("seed", range(20))
def test_the_kept_best_is_the_scanned_best(objectives, seed):
    rng = random.Random(seed)
    numbers = list(range(40))
    rng.shuffle(numbers)  # the order in which the trials complete
    history, best = Rows(), None
    for i, number in enumerate(numbers):
        # few distinct values: ties and equal points are common
        row = {"id": 100 + number, "number": number, "duplicate_of": None,
               "objective": json.dumps([float(rng.randint(0, 5)) for _ in objectives])}
        history.rows.append(row)
        full = best_trials(history, 1, objectives)  # type: ignore[arg-type]
        best = full if best is None else best_trials_with(best, row, objectives)
        assert [r["id"] for r in best] == [r["id"] for r in full], i
