"""The oracle: a frozen model that can only be queried, and every query counted.

An :class:`Oracle` takes a batch of inputs and returns a :class:`Response`
shaped by its exposure policy. The base class owns everything that must be
right for every model: input validation, the budget check *before* sending,
the journal (cache, audit, resume), de-duplication, batching and the ledger.
A concrete oracle implements two members, in the manner of TextAttack's goal
functions:

* ``identity`` — a stable string naming the model (never a secret); it keys the
  journal, so two oracles with the same identity must answer alike;
* ``_answer(inputs, call)`` — answer one request of at most ``max_batch``
  inputs, calling ``call.attempt()`` before each attempt it sends.

Remote oracles that send requests concurrently override ``_answer_chunks``.

Example (a plain numpy "model" wrapped as an oracle)::

    >>> import numpy as np
    >>> from blackbox_rp.oracle import Oracle, InputSpec
    >>> from blackbox_rp.exposure import Response
    >>> class Linear(Oracle):
    ...     source_level = "logits"
    ...     def __init__(self, w, **kw):
    ...         self.w = w
    ...         super().__init__(InputSpec.vectors(w.shape[0], low=-1, high=1), w.shape[1], **kw)
    ...     @property
    ...     def identity(self):
    ...         return "linear-demo"
    ...     def _answer(self, x, call):
    ...         call.attempt()
    ...         return Response.from_logits(x @ self.w)
    >>> o = Linear(np.eye(3, dtype=np.float32), exposure="top1")
    >>> o(np.array([[0.1, 0.9, 0.0]], dtype=np.float32)).indices.tolist()
    [[1]]
    >>> o.ledger.queries, o.ledger.calls
    (1, 1)
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterator, Sequence

import numpy as np

from .cache import Journal
from .embeddings import SoftText
from .exposure import Exposure, Response, parse_exposure, require
from .ledger import Ledger, Reservation

logger = logging.getLogger(__name__)

__all__ = ["Oracle", "LocalModel", "InputSpec", "InputError", "Call", "OracleError"]


class InputError(ValueError):
    """Inputs the oracle cannot evaluate (shape, dtype, NaN/inf, range)."""


class OracleError(RuntimeError):
    """A request failed for good (after retries). Names the request; answered queries are kept."""


@dataclass(frozen=True)
class InputSpec:
    """What an oracle accepts.

    ``kind="image"``: float arrays (N, C, H, W) with values in [low, high];
    ``height``/``width`` None means any size of at least ``min_size``.
    ``kind="vector"``: float arrays (N, D). ``kind="text"``: a sequence of str; with ``embed_dim``
    set, items may also be :class:`~blackbox_rp.embeddings.SoftText` (soft prompt rows of that width + text),
    which an :class:`~blackbox_rp.embeddings.EmbeddingOracle` reads.
    """

    kind: str = "image"
    channels: int | None = 3
    height: int | None = None
    width: int | None = None
    min_size: int = 1
    low: float = 0.0
    high: float = 1.0
    dim: int | None = None
    embed_dim: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("image", "vector", "text"):
            raise ValueError(f"InputSpec.kind must be image, vector or text, got {self.kind!r}")
        if self.embed_dim is not None and (self.kind != "text" or self.embed_dim < 1):
            raise ValueError(f"InputSpec.embed_dim (soft prompts) needs kind='text' and a positive width, "
                             f"got kind={self.kind!r}, embed_dim={self.embed_dim!r}")
        if not self.low < self.high:
            raise ValueError("InputSpec needs low < high")

    @staticmethod
    def vectors(dim: int, low: float = -np.inf, high: float = np.inf) -> "InputSpec":
        return InputSpec(kind="vector", channels=None, dim=dim, low=low, high=high)

    @staticmethod
    def text(embed_dim: int | None = None) -> "InputSpec":
        """Strings; with ``embed_dim``, also soft prompts (:class:`~blackbox_rp.embeddings.SoftText`)."""
        return InputSpec(kind="text", channels=None, embed_dim=embed_dim)

    def describe(self) -> str:
        if self.kind == "text":
            if self.embed_dim is not None:
                return f"a list of strings or SoftText items (soft prompt rows of width {self.embed_dim} + text)"
            return "a list of strings"
        if self.kind == "vector":
            return f"float32 array (N, {self.dim}) in [{self.low}, {self.high}]"
        h = self.height or "H"
        w = self.width or "W"
        return f"float32 array (N, {self.channels}, {h}, {w}) with values in [{self.low:g}, {self.high:g}]"

    def validate(self, x: Any) -> np.ndarray | list[str]:
        """Return the inputs as the oracle will see them, or raise :class:`InputError` saying what to do."""
        if self.kind == "text":
            if isinstance(x, str):
                raise InputError("expected a list of strings, got one string; wrap it: [text]")
            items = list(x)
            ok: tuple[type, ...] = (str, SoftText) if self.embed_dim is not None else (str,)
            bad = [i for i, s in enumerate(items) if not isinstance(s, ok)]
            if bad:
                soft = isinstance(items[bad[0]], SoftText)
                raise InputError(f"expected {self.describe()}; item {bad[0]} is {type(items[bad[0]]).__name__}"
                                 + ("; this oracle takes text only, not soft prompt embeddings" if soft else ""))
            for i, s in enumerate(items):
                if isinstance(s, SoftText) and s.embeddings.shape[1] != self.embed_dim:
                    raise InputError(f"item {i}'s soft prompt rows are {s.embeddings.shape[1]} wide; this model "
                                     f"reads rows of {self.embed_dim}")
            return items
        if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor
            x = x.detach().cpu().numpy()
        if not isinstance(x, np.ndarray):
            raise InputError(f"expected {self.describe()}, got {type(x).__name__}")
        if x.dtype not in (np.float32, np.float64):
            raise InputError(f"expected {self.describe()}, got dtype {x.dtype}; {_dtype_advice(x.dtype, self)}")
        want_ndim = 4 if self.kind == "image" else 2
        if x.ndim != want_ndim:
            hint = " (add the batch axis: x[None])" if x.ndim == want_ndim - 1 else ""
            raise InputError(f"expected {self.describe()}, got shape {x.shape}{hint}")
        if self.kind == "image":
            n, c, h, w = x.shape
            if self.channels is not None and c != self.channels:
                raise InputError(f"expected {self.describe()}, got {c} channels (shape {x.shape}); "
                                 f"{_channel_advice(x.shape, self.channels)}")
            for name, want, got in (("height", self.height, h), ("width", self.width, w)):
                if want is not None and got != want:
                    raise InputError(f"expected {self.describe()}, got {name} {got} (shape {x.shape})")
                if got < self.min_size:
                    raise InputError(f"images must be at least {self.min_size} px, got {name} {got}")
        elif self.dim is not None and x.shape[1] != self.dim:
            raise InputError(f"expected {self.describe()}, got shape {x.shape}")
        x = np.ascontiguousarray(x, dtype=np.float32)
        # min and max propagate NaN and show inf: two reductions check finiteness and range at once
        lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
        if not (np.isfinite(lo) and np.isfinite(hi)):
            bad = np.argwhere(~np.isfinite(x).reshape(len(x), -1).all(axis=1)).ravel()
            raise InputError(f"inputs contain NaN or inf in {len(bad)} row(s), first at row {bad[0]}; "
                             f"check the transform that produced them")
        tol = 1e-5
        if lo < self.low - tol or hi > self.high + tol:
            raise InputError(f"input values span [{lo:.4g}, {hi:.4g}] but this oracle takes "
                             f"[{self.low:g}, {self.high:g}]; clip or rescale (images are [0, 1] floats)")
        return x


class LocalModel(ABC):
    """An oracle whose model runs here and can be differentiated: the white-box ceiling reads it.

    Declared, not probed: :func:`blackbox_rp.whitebox.whitebox_fit` accepts only oracles that implement it.
    """

    @property
    @abstractmethod
    def torch_module(self) -> Any:
        """The frozen ``torch.nn.Module`` behind the oracle (inputs as the oracle takes them, logits out)."""


def _dtype_advice(dtype: np.dtype, spec: InputSpec) -> str:
    """How to turn an array of ``dtype`` into what ``spec`` accepts (each dtype its own reason)."""
    rng = f"[{spec.low:g}, {spec.high:g}]"
    if dtype == np.float16:
        return ("half precision is refused on purpose: finite differences need float32 or wider; "
                "use x.astype(np.float32)")
    if dtype == np.uint8:
        return f"for 0-255 images use x.astype(np.float32) / 255 (values must lie in {rng})"
    if dtype == np.bool_:
        return f"booleans are not pixel values; use x.astype(np.float32) (0 and 1) if that is meant"
    if np.issubdtype(dtype, np.integer):
        return (f"integer arrays are refused so that a 0-255 or 0-65535 image is not read as out of range; "
                f"rescale to {rng} and convert, e.g. x.astype(np.float32) / 255")
    if np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.complexfloating):
        return "use x.astype(np.float32)"
    return f"inputs must be numbers (float32 or float64 in {rng}), not {dtype.kind!r}-kind values such as text"


def _channel_advice(shape: tuple[int, ...], channels: int) -> str:
    """What to do about a channel mismatch: layout, grey↔colour, or nothing obvious."""
    if shape[-1] == channels and shape[1] != channels:
        return (f"this looks like a channels-last (N, H, W, C) array; the oracle takes channels first "
                f"(N, C, H, W): x.transpose(0, 3, 1, 2)")
    if shape[1] == 1 and channels > 1:
        return f"grey images can be repeated: x.repeat({channels}, axis=1)"
    if channels == 1 and shape[1] == 3:
        return "colour images can be averaged to grey: x.mean(axis=1, keepdims=True)"
    return f"give images with {channels} channel(s) on axis 1"


class Call:
    """One request of a batch: the handle through which an oracle charges attempts and usage."""

    def __init__(self, oracle: "Oracle", phase: str, n_inputs: int):
        self.oracle = oracle
        self.phase = phase
        self.n_inputs = n_inputs
        self.attempts = 0
        self._pending = 0.0  # cost bound of the attempt in flight, held in the ledger until it is settled

    def attempt(self) -> None:
        """Charge one call (one request about to leave). Raises BudgetExhausted before sending."""
        bound = self.oracle.cost_bound(self.n_inputs)
        self.oracle.ledger.charge_call(self.phase, bound)
        self._pending += bound
        self.attempts += 1

    def _settle(self) -> float:
        pending, self._pending = self._pending, 0.0
        return pending

    def failed(self, detail: str) -> None:
        """Record that the last attempt failed (kept in the ledger and the journal's audit log)."""
        self.oracle.ledger.record_call_outcome(self.phase, failed=True, settle=self._settle())
        if self.oracle.journal is not None:
            self.oracle.journal.log_call(oracle=self.oracle.identity, phase=self.phase,
                                         n_inputs=self.n_inputs, ok=False, detail=detail[:500])

    def usage(self, *, prompt_tokens: int = 0, completion_tokens: int = 0, cost: float | None = None) -> None:
        """Add what the answered attempt cost. ``cost`` None: priced by the oracle's ``price``."""
        if cost is None:
            cost = self.oracle.price(self.n_inputs, prompt_tokens, completion_tokens)
        self.oracle.ledger.record_call_outcome(self.phase, prompt_tokens=prompt_tokens,
                                               completion_tokens=completion_tokens, cost=cost, settle=self._settle())


class Oracle(ABC):
    """Base of all oracles. See the module docstring for what a subclass implements.

    Args:
        input_spec: what inputs look like; checked on every query.
        num_classes: size of the output space.
        exposure: what callers see (``Probs()`` default; a string like ``"top5"`` works).
        ledger: where queries and calls are counted (a fresh unlimited one by default).
        journal: a :class:`Journal` or a path to one; None disables caching.
        max_batch: inputs per request.
    """

    #: the richest level ``_answer`` returns; exposures may only reduce it
    source_level: ClassVar[str] = "logits"

    def __init__(self, input_spec: InputSpec, num_classes: int, *, exposure: Exposure | str | None = None,
                 ledger: Ledger | None = None, journal: Journal | str | os.PathLike | None = None,
                 max_batch: int = 64, class_names: Sequence[str] | None = None):
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        if max_batch < 1:
            raise ValueError(f"max_batch must be positive, got {max_batch}")
        self.input_spec = input_spec
        self.num_classes = int(num_classes)
        self.exposure = parse_exposure(exposure)
        self.exposure.check_source(self.source_level)
        self.exposure.check_classes(self.num_classes)
        self.ledger = ledger if ledger is not None else Ledger()
        self.journal = journal if (journal is None or isinstance(journal, Journal)) else Journal(journal)
        self.max_batch = int(max_batch)
        self.class_names = list(class_names) if class_names is not None else None
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise ValueError(f"{len(self.class_names)} class names for {self.num_classes} classes")

    # ------------------------------------------------------------ subclasses
    @property
    @abstractmethod
    def identity(self) -> str:
        """Stable name of the model behind the oracle (no secrets): part of every journal key."""

    @abstractmethod
    def _answer(self, inputs: Any, call: Call) -> Response:
        """Answer one request (≤ ``max_batch`` inputs) at ``source_level``; call ``call.attempt()`` per attempt."""

    def _answer_chunks(self, chunks: list[Any], phase: str,
                       deliver: Callable[[int, Response], None]) -> None:
        """Answer every chunk, calling ``deliver(i, response)`` as each arrives. Sequential here;
        concurrent oracles override it. An exception stops the batch; delivered chunks are kept."""
        for i, chunk in enumerate(chunks):
            deliver(i, self._answer(chunk, Call(self, phase, len(chunk))))

    def cost_bound(self, n_inputs: int) -> float:
        """Upper bound of one call's cost, checked against a cost budget before sending."""
        return 0.0

    def price(self, n_inputs: int, prompt_tokens: int, completion_tokens: int) -> float:
        """What an answered call cost. Free unless the oracle is priced."""
        return 0.0

    # --------------------------------------------------------------- public
    @property
    def level(self) -> str:
        """The information level callers get (see :data:`blackbox_rp.exposure.NEEDS`)."""
        return self.exposure.level

    def require(self, need: str, who: str) -> None:
        """Raise :class:`~blackbox_rp.exposure.ExposureError` now if ``who`` needs more than is exposed."""
        require(need, self.exposure, who)

    def with_exposure(self, exposure: Exposure | str) -> "Oracle":
        """The same model, ledger and journal, shown through another exposure policy."""
        other = copy.copy(self)
        other.exposure = parse_exposure(exposure)
        other.exposure.check_source(self.source_level)
        other.exposure.check_classes(self.num_classes)
        return other

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator["Oracle"]:
        """Charge the queries made inside the block to phase ``name``."""
        with self.ledger.in_phase(name):
            yield self

    def __call__(self, inputs: Any, *, phase: str | None = None) -> Response:
        return self.query(inputs, phase=phase)

    def query(self, inputs: Any, *, phase: str | None = None) -> Response:
        """Answer a batch: journal hits first, then the rest in requests of ``max_batch``.

        The whole batch is held against the query budget before anything is
        sent (BudgetExhausted otherwise); each answered request is journaled at
        once, so a later failure loses nothing.
        """
        phase = phase or self.ledger.phase
        x = self.input_spec.validate(inputs)
        n = len(x)
        if n == 0:
            raise InputError("empty batch: pass at least one input")
        reservation = self.ledger.reserve_queries(n, phase)
        try:
            return self._query_reserved(x, n, phase, reservation)
        finally:
            self.ledger.release(reservation)

    def _query_reserved(self, x: Any, n: int, phase: str, reservation: Reservation) -> Response:
        keys = self.keys(x)
        answers: list[Response | None] = (self.journal.get_many(keys) if self.journal is not None
                                          else [None] * n)
        replayed = sum(a is not None for a in answers)
        if replayed:
            # replayed answers count as queries (the algorithm spent them) but cost no call
            self.ledger.commit_queries(reservation, answered=replayed, cache_hits=replayed)
        first_of: dict[bytes, int] = {}
        todo: list[int] = []
        for i, k in enumerate(keys):
            if answers[i] is None and k not in first_of:
                first_of[k] = i
                todo.append(i)
        chunks_idx = [todo[s:s + self.max_batch] for s in range(0, len(todo), self.max_batch)]
        chunks = [x[idx] if isinstance(x, np.ndarray) else [x[i] for i in idx] for idx in chunks_idx]

        def deliver(ci: int, raw: Response) -> None:
            idx = chunks_idx[ci]
            if len(raw) != len(idx):
                raise OracleError(f"{self.identity}: request {ci} of {len(idx)} inputs came back with "
                                  f"{len(raw)} answers")
            if raw.num_classes != self.num_classes:
                raise OracleError(f"{self.identity}: answer has {raw.num_classes} classes, "
                                  f"expected {self.num_classes}")
            shown = self.exposure.apply(raw)
            if self.journal is not None:
                self.journal.put_many([keys[i] for i in idx], shown, oracle=self.identity, phase=phase)
            for j, i in enumerate(idx):
                answers[i] = shown.take(slice(j, j + 1))
            self.ledger.commit_queries(reservation, answered=len(idx))

        if chunks:
            self._answer_chunks(chunks, phase, deliver)
        repeats = [i for i in range(n) if answers[i] is None]  # repeats inside the batch
        for i in repeats:
            answers[i] = answers[first_of[keys[i]]]
        if repeats:
            self.ledger.commit_queries(reservation, answered=len(repeats), cache_hits=len(repeats))
        return Response.concat(answers)  # type: ignore[arg-type]

    def keys(self, x: Any) -> list[bytes]:
        """Journal keys: a hash of (identity, exposure, input bytes) per input."""
        # sha256 rather than blake2b: CPUs with SHA extensions hash it ~2x faster, and hashing
        # every input's bytes is most of the oracle layer's overhead
        prefix = hashlib.sha256(f"{self.identity}\x00{self.exposure.key()}".encode())
        out = []
        if isinstance(x, np.ndarray):
            prefix.update(repr((x.dtype.str, x.shape[1:])).encode())
            for row in x:
                h = prefix.copy()
                h.update(row.data)
                out.append(h.digest()[:16])
        else:
            for s in x:
                h = prefix.copy()
                # a soft prompt's key is marked so no string can hash like it
                h.update(b"\x01soft\x00" + s.key_bytes() if isinstance(s, SoftText) else s.encode("utf-8"))
                out.append(h.digest()[:16])
        return out

    def describe(self) -> dict[str, Any]:
        """What results files record about the oracle (never secrets)."""
        return {"identity": self.identity, "exposure": self.exposure.key(), "num_classes": self.num_classes,
                "input": self.input_spec.describe(), "journal": None if self.journal is None else str(self.journal.path)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.identity!r}, exposure={self.exposure.key()})"

