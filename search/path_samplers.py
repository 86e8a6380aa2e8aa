"""Path samplers: which candidates of the space a supernet step trains.

* ``uniform`` (SPOS, Guo et al. 2020): one path per step, every decision uniform.
* ``fair`` (FairNAS, Chu et al. 2021, strict fairness): per step, m paths that
  together take each alternative of each decision equally often (exactly once
  when the decisions have m alternatives each), their gradients accumulated
  before the one optimizer step.
* ``pada`` (PA&DA, Lu et al. 2023): one path per step, each decision's
  alternative drawn in proportion to its importance (a running mean of the
  gradient norm of the steps that used it), and the batch's examples drawn in
  proportion to theirs (the norm of the loss gradient at the output, the last
  time the example was seen); both mixed with uniform and ramped in from uniform
  over the first half of training, with importance weights on the loss so its
  expectation stays the uniform one.

Every path a sampler returns is a valid candidate that meets the spec's
constraints (``params``, ``flops``, ``memory``): one that does not is drawn again.
Decisions are met define-by-run, so nested decisions (an alternative's own
widths, an iteration that exists only at some depths) are sampled as they come.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from typing import Any

import torch

from ..compiler.deciders import RandomDecider
from ..compiler.decisions import Decision
from ..dsl.errors import SpecError, suggest

#: draws before a sampler gives up finding a path that meets the constraints
MAX_DRAWS = 1000
#: PA&DA's importance weights are clipped to [1/W, W] (their variance stays bounded)
MAX_WEIGHT = 5.0
#: running-mean factor of the path importances
EMA = 0.9

Valid = Callable[[dict[str, Any]], bool]


class PathSampler:
    """Draws the paths of each supernet step (subclasses: one per sampler)."""

    name = ""
    #: whether :meth:`batch` draws the examples (else the trainer's shuffled epochs do)
    samples_data = False

    def __init__(self, spec: Any, valid: Valid, *, seed: int = 0):
        self.spec = spec
        self.valid = valid
        self.rng = random.Random(seed)

    def paths(self, progress: float) -> list[dict[str, Any]]:
        """The paths of the next step; ``progress`` is the share of training done."""
        raise NotImplementedError

    def path_weights(self, paths: list[dict[str, Any]]) -> list[float]:
        """Each path's weight on the loss (1 unless importance-sampled)."""
        return [1.0] * len(paths)

    def batch(self, n: int, size: int, progress: float,
              generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Indices of the next batch among ``n`` examples, and their loss weights
        (None: equal); only asked of a sampler that ``samples_data``."""
        raise NotImplementedError

    def feedback(self, paths: list[dict[str, Any]], grad_norm: float,
                 idx: torch.Tensor | None = None, example_norms: torch.Tensor | None = None
                 ) -> None:
        """What a step learned: its gradient norm, and each example's output-gradient norm."""

    def state(self) -> dict[str, Any]:
        """What a resume needs to continue the same draws."""
        return {"rng": self.rng.getstate()}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.rng.setstate(_tuplify(state["rng"]))

    def draw(self, decide: Callable[[Decision], Any]) -> dict[str, Any]:
        """One valid path, each decision answered by ``decide``."""
        for _ in range(MAX_DRAWS):
            choices = self.spec.elaborate(_Asking(decide), build=False).choices
            if self.valid(choices):
                return choices
        raise SpecError(f"no path of the supernet met the constraints in {MAX_DRAWS} draws",
                        hint="loosen the constraints, or check that some candidate meets them")


class _Asking:
    def __init__(self, fn: Callable[[Decision], Any]):
        self.decide = fn


def _tuplify(v: Any) -> Any:
    """JSON turned the random state's tuples into lists; put them back."""
    return tuple(_tuplify(x) for x in v) if isinstance(v, list) else v


class UniformSampler(PathSampler):
    """SPOS: one path per step, every alternative equally likely."""

    name = "uniform"

    def paths(self, progress: float) -> list[dict[str, Any]]:
        rand = RandomDecider()
        rand.rng = self.rng
        return [self.draw(rand.decide)]


class FairSampler(PathSampler):
    """FairNAS: m paths per step that use each alternative of each decision equally.

    m is the largest number of alternatives of any decision. For each decision
    met, the step takes a fresh random order of its alternatives, repeated to m
    places, and path j takes place j; so a decision with m alternatives has each
    exactly once in the step. If a path breaks the constraints, the whole step is
    drawn again; after ``MAX_DRAWS`` tries the broken paths are drawn uniformly
    (counted in ``unfair_steps``).
    """

    name = "fair"

    def __init__(self, spec: Any, valid: Valid, *, seed: int = 0):
        super().__init__(spec, valid, seed=seed)
        sizes = [len(d.values()) for d in spec.space().decisions if not d.continuous]
        self.m = max(sizes, default=1)
        self.unfair_steps = 0

    def paths(self, progress: float) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for _ in range(MAX_DRAWS):
            orders: dict[str, list[Any]] = {}
            out = [self.spec.elaborate(_Asking(self._placer(orders, j)), build=False).choices
                   for j in range(self.m)]
            if all(self.valid(c) for c in out):
                return out
        self.unfair_steps += 1
        rand = RandomDecider()
        rand.rng = self.rng
        return [c if self.valid(c) else self.draw(rand.decide) for c in out]

    def _placer(self, orders: dict[str, list[Any]], j: int) -> Callable[[Decision], Any]:
        """Path j's answers: place j of each decision's order (made when first met)."""
        def place(d: Decision) -> Any:
            if d.name not in orders:
                values = list(d.values())
                seq: list[Any] = []
                while len(seq) < self.m:
                    self.rng.shuffle(values)
                    seq.extend(values)
                orders[d.name] = seq[:self.m]
            return orders[d.name][j]
        return place


class PadaSampler(PathSampler):
    """PA&DA: path and data importance sampling, ramped in from uniform."""

    name = "pada"
    samples_data = True

    def __init__(self, spec: Any, valid: Valid, *, seed: int = 0):
        super().__init__(spec, valid, seed=seed)
        #: (decision, repr of alternative) -> running mean of the gradient norms
        self.importance: dict[tuple[str, str], float] = {}
        self.example_norms: torch.Tensor | None = None
        self._probs: dict[str, float] = {}

    @staticmethod
    def ramp(progress: float) -> float:
        """How much importance sampling replaces uniform: 0 at the start, 1 from halfway."""
        return min(1.0, max(0.0, 2.0 * progress))

    def paths(self, progress: float) -> list[dict[str, Any]]:
        r = self.ramp(progress)
        probs: dict[str, float] = {}

        def decide(d: Decision) -> Any:
            values = list(d.values())
            imp = [self.importance.get((d.name, repr(v))) for v in values]
            known = [i for i in imp if i is not None]
            fill = sum(known) / len(known) if known else 1.0  # unseen: the mean
            w = [fill if i is None else i for i in imp]
            total = sum(w)
            p = [(1 - r) / len(values) + r * wi / total for wi in w]
            k = self.rng.choices(range(len(values)), weights=p)[0]
            probs[d.name] = p[k] * len(values)  # relative to uniform
            return values[k]

        path = self.draw(decide)
        self._probs = {k: v for k, v in probs.items() if k in path}
        return [path]

    def path_weights(self, paths: list[dict[str, Any]]) -> list[float]:
        rel = math.prod(self._probs.values()) if self._probs else 1.0
        return [min(max(1.0 / rel, 1 / MAX_WEIGHT), MAX_WEIGHT)]

    def batch(self, n: int, size: int, progress: float,
              generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        r = self.ramp(progress)
        norms = self.example_norms
        if norms is None or len(norms) != n:
            norms = self.example_norms = torch.ones(n)
        q = norms / norms.sum()
        p = (1 - r) / n + r * q
        idx = torch.multinomial(p, min(size, n), replacement=False, generator=generator)
        w = (1.0 / (n * p[idx])).clamp(1 / MAX_WEIGHT, MAX_WEIGHT)
        return idx, w / w.mean()

    def feedback(self, paths: list[dict[str, Any]], grad_norm: float,
                 idx: torch.Tensor | None = None, example_norms: torch.Tensor | None = None
                 ) -> None:
        if math.isfinite(grad_norm):
            for path in paths:
                for name, value in path.items():
                    key = (name, repr(value))
                    old = self.importance.get(key)
                    self.importance[key] = grad_norm if old is None else (
                        EMA * old + (1 - EMA) * grad_norm)
        if idx is not None and example_norms is not None and self.example_norms is not None:
            self.example_norms[idx] = example_norms.clamp(min=1e-6)

    def state(self) -> dict[str, Any]:
        out = super().state()
        out["importance"] = [[k[0], k[1], v] for k, v in self.importance.items()]
        out["example_norms"] = (None if self.example_norms is None
                                else self.example_norms.tolist())
        return out

    def load_state(self, state: Mapping[str, Any]) -> None:
        super().load_state(state)
        self.importance = {(a, b): v for a, b, v in state.get("importance", [])}
        norms = state.get("example_norms")
        self.example_norms = None if norms is None else torch.tensor(norms)


#: name -> sampler class; the names are ``settings.PATH_SAMPLERS`` (the `path_sampler` setting)
SAMPLERS: dict[str, type[PathSampler]] = {
    cls.name: cls for cls in (UniformSampler, FairSampler, PadaSampler)}


def make_path_sampler(name: str, spec: Any, valid: Valid, *, seed: int = 0) -> PathSampler:
    """The path sampler called ``name``."""
    cls = SAMPLERS.get(name)
    if cls is None:
        raise SpecError(f"unknown path sampler '{name}'",
                        hint=suggest(name, SAMPLERS, listing="expected one of"))
    return cls(spec, valid, seed=seed)
