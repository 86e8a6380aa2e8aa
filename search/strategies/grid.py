"""Grid search over a define-by-run (conditional) space, as an Optuna sampler.

Optuna's own GridSampler needs a fixed product of parameter lists; a spec's space is a
tree (a branch opens decisions of its own). This sampler takes the candidates as a lazy
list of assignments instead, e.g. ``GridSampler(space.enumerate)`` for
``space = spec.space()``, and gives each new trial the first assignment, in enumeration
order, that no trial of the study holds yet.

- A trial *holds* an assignment when it was given it (the system attr ``grid:assignment``
  records it, so a trial stopped half-way, or one with extra parameters, still holds
  it); trials the grid did not assign (``add_trial``, another sampler, an enqueued trial)
  hold the assignment equal to their parameters.
- FAIL trials do not hold their assignment: it is retried, up to ``retries`` more times
  (default 1), so a candidate that always fails cannot stall the grid. Every other state
  (RUNNING, WAITING, COMPLETE, PRUNED, and COMPLETE-but-infeasible) holds it.
- When every assignment is held, :meth:`GridSampler.exhausted` is True, and
  ``after_trial`` calls ``study.stop()`` when inside ``study.optimize``. A trial asked
  after that gets an assignment at random (seeded), with a warning.

The enumeration is memoised in the sampler (it is a pure function of the constructor
argument, not study state); everything about the study is read from the study.

See docs/strategies.md.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from ._common import StatelessSampler, coerce, fits, sample_value, trial_rng, vkey

if TYPE_CHECKING:
    from optuna.study import Study

    from autoarch.compiler.spec import Spec

__all__ = ["GridSampler", "make_sampler", "ASSIGNMENT_ATTR", "INDEX_ATTR"]

#: system attr: the assignment (decision name -> value) the grid gave the trial
ASSIGNMENT_ATTR = "grid:assignment"
#: system attr: its position in the enumeration (informational)
INDEX_ATTR = "grid:index"


def _akey(assignment: Mapping[str, Any]) -> frozenset[tuple[str, Any]]:
    return frozenset((k, vkey(v)) for k, v in assignment.items())


class GridSampler(StatelessSampler):
    """Every assignment of a lazy enumeration, once each, in order.

    Args:
        assignments: a callable returning an iterable of assignments (dicts decision
            name -> value) in a fixed order, e.g. ``spec.space().enumerate``.
        seed: seeds the random choices (parameters an assignment lacks; trials asked
            after the grid is exhausted).
        check: draw the first assignment now, so that an enumeration that cannot work
            (a continuous decision without a step raises AssignmentError) fails at
            construction rather than at the first trial.
        retries: how many more times an assignment whose trial FAILed is tried again.
    """

    def __init__(self, assignments: Callable[[], Iterable[Mapping[str, Any]]], *,
                 seed: int | None = None, check: bool = False, retries: int = 1):
        if retries < 0:
            raise ValueError("retries must be >= 0")
        super().__init__(seed)
        self._source = assignments
        self.retries = int(retries)
        self._memo: list[dict[str, Any]] = []
        self._keys: list[frozenset[tuple[str, Any]]] = []
        self._it: Iterator[Mapping[str, Any]] | None = None
        self._complete = False
        self._lock = threading.Lock()
        if check:
            self._get(0)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_memo=[], _keys=[], _it=None, _complete=False, _lock=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- the enumeration

    def _get(self, i: int) -> dict[str, Any] | None:
        """The ``i``-th assignment, or None past the end."""
        if i < len(self._memo):
            return self._memo[i]
        with self._lock:
            while i >= len(self._memo) and not self._complete:
                if self._it is None:
                    self._it = iter(self._source())
                try:
                    a = dict(next(self._it))
                except StopIteration:
                    self._complete, self._it = True, None
                    break
                self._memo.append(a)
                self._keys.append(_akey(a))
        return self._memo[i] if i < len(self._memo) else None

    def _held(self, study: Study, exclude: int | None = None,
              override: tuple[int, TrialState] | None = None
              ) -> tuple[set[frozenset[Any]], dict[frozenset[Any], int]]:
        """Keys held by trials, and FAIL counts per key."""
        held: set[frozenset[Any]] = set()
        fails: dict[frozenset[Any], int] = {}
        for t in study.get_trials(deepcopy=False):
            if t._trial_id == exclude:
                continue
            a = t.system_attrs.get(ASSIGNMENT_ATTR)
            if a is None:
                a = t.system_attrs.get("fixed_params") if t.state == TrialState.WAITING \
                    else t.params
            if not a:
                continue
            k = _akey(a)
            state = override[1] if override and override[0] == t._trial_id else t.state
            if state == TrialState.FAIL:
                fails[k] = fails.get(k, 0) + 1
            else:
                held.add(k)
        return held, fails

    def _first_free(self, held: set[frozenset[Any]], fails: dict[frozenset[Any], int]
                    ) -> int | None:
        i = 0
        while self._get(i) is not None:
            k = self._keys[i]
            if k not in held and fails.get(k, 0) <= self.retries:
                return i
            i += 1
        return None

    def exhausted(self, study: Study) -> bool:
        """Whether every assignment is held by a trial (running ones included)."""
        return self._first_free(*self._held(study)) is None

    # -- trials

    def _plan(self, study: Study, trial: FrozenTrial) -> dict[str, Any]:
        return self._per_trial(study, trial, lambda: self._new_plan(study, trial))

    def _new_plan(self, study: Study, trial: FrozenTrial) -> dict[str, Any]:
        """The assignment in the trial's system attrs, or the next free one, recorded there."""
        attrs = trial.system_attrs
        if ASSIGNMENT_ATTR in attrs:
            return dict(attrs[ASSIGNMENT_ATTR])
        if "fixed_params" in attrs:  # an enqueued trial: it holds what it was given
            plan, index = dict(attrs["fixed_params"]), None
        else:
            index = self._first_free(*self._held(study, exclude=trial._trial_id))
            if index is None:
                n = len(self._memo)
                if n:
                    warnings.warn(f"the grid of {n} candidates is exhausted; trial "
                                  f"{trial.number} repeats one at random", stacklevel=2)
                    index = trial_rng(self._seed, trial.number, "grid").randrange(n)
            plan = dict(self._memo[index]) if index is not None else {}
        storage = study._storage
        storage.set_trial_system_attr(trial._trial_id, ASSIGNMENT_ATTR, plan)
        storage.set_trial_system_attr(trial._trial_id, INDEX_ATTR, index)
        return plan

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._plan(study, trial)

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        plan = self._plan(study, trial)
        if param_name in plan and fits(param_distribution, plan[param_name]):
            return coerce(param_distribution, plan[param_name])
        if plan:
            warnings.warn(f"{param_name} is not in the grid's assignment for trial "
                          f"{trial.number} (or does not fit its range); sampled at random",
                          stacklevel=2)
        return sample_value(param_distribution, trial_rng(self._seed, trial.number, param_name))

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        super().after_trial(study, trial, state, values)
        local = getattr(study, "_thread_local", None)
        if local is not None and getattr(local, "in_optimize_loop", False):
            if self._first_free(*self._held(study, override=(trial._trial_id, state))) is None:
                study.stop()


class SpecAssignments:
    """``spec.space().enumerate`` as a picklable callable (Ray checkpoints its searcher).

    Holds the spec's text and loads it again where unpickled.
    """

    def __init__(self, spec: Spec):
        self.source, self.filename = spec.source, spec.filename
        self._spec: Spec | None = spec

    def __getstate__(self) -> dict[str, Any]:
        return {"source": self.source, "filename": self.filename}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _spec=None)

    def __call__(self) -> Iterator[dict[str, Any]]:
        if self._spec is None:
            from autoarch.compiler.spec import loads

            self._spec = loads(self.source, self.filename)
        return self._spec.space().enumerate()


def make_sampler(spec: Spec, *, seed: int | None, n_objectives: int,
                 trials: int | None = None) -> BaseSampler:
    """The sampler of ``strategy = grid`` (any number of objectives)."""
    from autoarch.dsl.errors import AssignmentError

    space = spec.space()
    cont = space.continuous
    if cont:
        d = cont[0]
        raise AssignmentError(f"strategy grid cannot enumerate decision {d.name}: it is "
                              "continuous", d.span,
                              hint="give float() a step, or use another strategy")
    return GridSampler(SpecAssignments(spec), seed=seed, check=True)
