"""Greedy coordinate edit search over categorical slots.

The simplest search a discrete prompt admits, and the reference BDPL has to
beat: edit one slot at a time. A step picks the next slot (slots are visited in
a fresh random order each sweep), proposes ``popsize`` other options for it
(all of them when the slot has no more) and, on the same minibatch, the current
prompt itself — the candidate losses are then comparable — and moves to the
best edit if it beats the current prompt on that minibatch. ``recommend()`` is
the current prompt.

Re-scoring the incumbent each step costs one query per target input, but it
is what makes the comparison fair: a prompt's loss on another minibatch says
little about this one.

With ``confirm=True`` an edit must win twice. The best of many edits on one
minibatch is partly the luckiest (with 40 edits of equal worth, the minimum of
their noisy losses beats the incumbent most of the time), so the step's winner
becomes a *challenger*: the next step scores it beside the incumbent on a fresh
minibatch, and the prompt moves only if it wins there too. The challenger
costs one more candidate per step.

    >>> import numpy as np
    >>> from blackbox_rp.space import SearchSpace
    >>> from blackbox_rp.optim import make, minimize
    >>> target = np.array([2, 0, 1])
    >>> f = lambda th: float((th != target).sum())
    >>> minimize(f, make("greedy", SearchSpace.categorical((3, 3, 3)), seed=0, popsize=2), budget=60).x.tolist()
    [2.0, 0.0, 1.0]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import Optimizer, OptimizerConfig, check, register

__all__ = ["GreedyEdit", "GreedyEditConfig"]


@dataclass(frozen=True)
class GreedyEditConfig(OptimizerConfig):
    """popsize: alternative options proposed for the chosen slot per step (default 7; fewer if the
    slot has fewer). The current prompt is scored beside them, so a step costs popsize + 1 queries.
    confirm: a step's best edit moves the prompt only after it beats the current prompt again on the next
    step's minibatch (default False); a step then costs popsize + 2 queries.
    """

    DIRECTIONS = "popsize"

    popsize: int = 7
    confirm: bool = False

    def __post_init__(self) -> None:
        check(isinstance(self.popsize, int) and self.popsize >= 1, f"popsize must be a positive int, got {self.popsize!r}")
        check(isinstance(self.confirm, bool), f"confirm must be true or false, got {self.confirm!r}")


@register("greedy")
class GreedyEdit(Optimizer):
    """Edit one slot per step; keep the edit if it beats the current prompt on the same minibatch."""

    Config = GreedyEditConfig
    config: GreedyEditConfig
    accepts = frozenset({"categorical"})
    _state_attrs = ("x", "order", "cursor", "challenger")

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.order = np.zeros(0, dtype=np.int64)  # the sweep's slot order
        self.cursor = 0
        self.challenger: np.ndarray | None = None  # confirm: last step's winning edit, to be scored again

    @property
    def queries_per_step(self) -> int:
        return self.config.popsize + (2 if self.config.confirm else 1)

    def _ask(self) -> list[np.ndarray]:
        if self.cursor >= len(self.order):
            self.order = self.rng.permutation(len(self.space.choices))
            self.cursor = 0
        slot = int(self.order[self.cursor])
        self.cursor += 1
        n = self.space.choices[slot]
        current = int(self.x[slot])
        others = np.array([o for o in range(n) if o != current], dtype=np.int64)
        k = self.config.popsize
        picked = others if len(others) <= k else self.rng.choice(others, size=k, replace=False)
        cands = [self.x.copy()]
        if self.config.confirm:  # slot 1: the challenger (the incumbent again when there is none: never chosen)
            cands.append((self.x if self.challenger is None else self.challenger).copy())
        for o in picked:
            c = self.x.copy()
            c[slot] = float(o)
            cands.append(c)
        # keep queries_per_step exact: a slot with fewer options repeats its last edit (scored, never chosen twice)
        while len(cands) < self.queries_per_step:
            cands.append(cands[-1].copy())
        return cands

    def _tell(self, candidates: list[np.ndarray], losses: np.ndarray) -> None:
        if not self.config.confirm:
            i = int(np.argmin(losses))
            if losses[i] < losses[0]:
                self.x = candidates[i].copy()
            return
        if self.challenger is not None and losses[1] < losses[0]:  # it won on a second minibatch: move
            self.x = self.challenger.copy()
        self.challenger = None
        i = 2 + int(np.argmin(losses[2:]))
        if losses[i] < losses[0]:  # this step's winning edit (of the incumbent it was scored beside)
            edit = candidates[i] != candidates[0]
            self.challenger = self.x.copy()
            self.challenger[edit] = candidates[i][edit]  # on top of the prompt, if it just moved
            if np.array_equal(self.challenger, self.x):
                self.challenger = None

    def recommend(self) -> np.ndarray:
        return self.x.copy()
