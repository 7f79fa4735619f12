"""Soft prompts in a random subspace: black-box tuning (BBT, Sun et al., ICML 2022).

A continuous prompt of n rows of input embeddings (n × hidden, 6,400 floats for
10 rows of Gemma-3 270M) is too many dimensions for a derivative-free optimizer.
BBT searches a d-dimensional z instead (d = 500 by default) and feeds

    p = A·z + p₀        (reshaped to n × hidden)

where A is a fixed random projection and p₀ the start prompt. As in the paper's
``normal`` projection, A's entries are drawn N(0, s²) with
``s = alpha · std(E) / (sqrt(d) · sigma)`` — std(E) the spread of the model's
input-embedding table, ``sigma`` the step size the optimizer starts z with — so
a first population of CMA-ES around z = 0 perturbs each prompt entry by about
``alpha · std(E)``, the scale of a real token's embedding. p₀ is the embeddings
of hand-written prompt words (``init``), so z = 0 is that prompt exactly, or
zeros without them.

The model must take embeddings, not only text: the transform is built from the
oracle itself (:class:`~blackbox_rp.transforms.protocol.BuiltFromOracle`), which
must be an :class:`~blackbox_rp.embeddings.EmbeddingOracle`; a text-only oracle
is refused then, naming both. Each model input is a
:class:`~blackbox_rp.embeddings.SoftText`: the soft rows, then the template with
the input text. θ = z lives in an (unbounded) box :class:`~blackbox_rp.space.SearchSpace`, so
CMA-ES (``cma``) and every other continuous optimizer search it through the one
:class:`~blackbox_rp.reprogram.Reprogrammer` loop. A learned θ is not text: its
:meth:`SoftPrompt.readable` says so and gives its size, and what reproduces it is
(seed, config, z) — :meth:`SoftPrompt.prompt_embeddings` rebuilds the rows.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..embeddings import EmbeddingOracle, SoftText
from ..space import SearchSpace, SpaceError
from .protocol import BuiltFromOracle, InputTransform
from .registry import register_transform
from .text_prompt import PromptError

logger = logging.getLogger(__name__)

__all__ = ["SoftPrompt", "SoftPromptConfig"]


@dataclass(frozen=True)
class SoftPromptConfig:
    """How the soft prompt is built.

    Args:
        template: the text read after the soft rows; contains ``{x}`` (the input) exactly once.
        tokens: n, the number of soft rows; None: as many as ``init`` has tokens (5 without ``init``).
        init: hand-written prompt words whose token embeddings are p₀ (z = 0 reads exactly as these words
            before the template); "" (default) starts from zero rows.
        dim: d, the dimension of z (BBT's intrinsic dimension; default 500).
        alpha: BBT's scale of A relative to the embedding table's spread (default 1).
        sigma: the step size the optimizer starts z with, which A's scale divides out (default 1; give
            CMA-ES ``sigma0`` equal to it).
    """

    template: str = "{x}"
    tokens: int | None = None
    init: str = ""
    dim: int = 500
    alpha: float = 1.0
    sigma: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.template, str) or self.template.count("{x}") != 1:
            raise PromptError(f"the template must be a string containing the input placeholder {{x}} exactly once, "
                              f"got {self.template!r}; e.g. 'Review: {{x}}\\nSentiment:'")
        if not isinstance(self.init, str):
            raise PromptError(f"init must be the hand-written prompt words as one string, got "
                              f"{type(self.init).__name__}")
        for name in ("tokens", "dim"):
            v = getattr(self, name)
            if v is None and name == "tokens":
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise PromptError(f"{name} must be a positive int, got {v!r}")
        for name in ("alpha", "sigma"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0):
                raise PromptError(f"{name} must be a positive finite number, got {v!r}")


@register_transform("soft")
class SoftPrompt(InputTransform, BuiltFromOracle):
    """n soft prompt rows p = A·z + p₀ before a text template; θ = z (see the module docstring).

    Build it with :meth:`for_oracle` (or :meth:`Reprogrammer.build("soft", oracle, ...)
    <blackbox_rp.reprogram.Reprogrammer.build>`): it reads the oracle's embedding table.
    """

    name: ClassVar[str] = "soft"
    modality: ClassVar[str] = "text"
    views = 1

    def __init__(self, config: SoftPromptConfig, oracle: Any, *, seed: int = 0):
        if not isinstance(oracle, EmbeddingOracle):
            who = getattr(oracle, "identity", None) or type(oracle).__name__
            raise PromptError(f"transform 'soft' feeds soft prompt embeddings, but oracle {who} "
                              f"({type(oracle).__name__}) takes text only (it is not an EmbeddingOracle); use "
                              f"transform 'discrete' with it, or a model that accepts embeddings "
                              f"(gemma3-270m-torch)")
        self.config = config
        self.seed = int(seed)
        self.hidden = int(oracle.hidden_size)
        init_ids = list(oracle.vocabulary.encode(config.init)) if config.init.strip() else []
        if config.init.strip() and not init_ids:
            raise PromptError(f"init {config.init!r} tokenizes to nothing; give words or leave it empty")
        n = config.tokens if config.tokens is not None else (len(init_ids) or 5)
        if init_ids and n != len(init_ids):
            raise PromptError(f"init {config.init!r} is {len(init_ids)} tokens but tokens={n}; p₀ is one embedding "
                              f"row per init token: set tokens={len(init_ids)} or change the words")
        self.tokens = n
        self.init_ids = init_ids
        self.p0 = (oracle.embed_tokens(init_ids).astype(np.float32) if init_ids
                   else np.zeros((n, self.hidden), dtype=np.float32))
        if self.p0.shape != (n, self.hidden):
            raise PromptError(f"the oracle embedded {len(init_ids)} tokens as {self.p0.shape}, expected "
                              f"({n}, {self.hidden})")
        self.embedding_mean, self.embedding_std = (float(v) for v in oracle.embedding_stats())
        self.projection_std = config.alpha * self.embedding_std / (math.sqrt(config.dim) * config.sigma)
        rng = np.random.default_rng(self.seed)
        self.A = (rng.standard_normal((n * self.hidden, config.dim), dtype=np.float32)
                  * np.float32(self.projection_std))
        # unbounded, as BBT's default: the optimizers of this library do not clip to a box, and the
        # projection's scale, not a bound, keeps the prompt at the embeddings' spread
        self._space = SearchSpace.box(config.dim)
        self._before, self._after = config.template.split("{x}")
        logger.info("soft prompt: %d rows x %d, z in R^%d, A ~ N(0, %.4g^2) (embedding std %.4g), p0 = %s",
                    n, self.hidden, config.dim, self.projection_std,
                    self.embedding_std, repr(config.init) if init_ids else "zeros")

    # ------------------------------------------------------------ protocol
    @classmethod
    def for_oracle(cls, train: Any, oracle: Any, *, seed: int = 0, **params: Any) -> "SoftPrompt":
        """The soft prompt for ``oracle`` (an :class:`~blackbox_rp.embeddings.EmbeddingOracle`); A drawn from
        ``seed``. ``train`` is not read: the prompt does not depend on the data."""
        fields = set(SoftPromptConfig.__dataclass_fields__)
        unknown = sorted(set(params) - fields)
        if unknown:
            raise PromptError(f"transform 'soft' does not accept {unknown}; accepted: {sorted(fields)}")
        return cls(SoftPromptConfig(**params), oracle, seed=seed)

    @classmethod
    def for_task(cls, train: Any, input_spec: Any, *, seed: int = 0, **params: Any) -> "SoftPrompt":
        raise PromptError("transform 'soft' is built from the oracle (it reads the model's embedding table), not "
                          "from an input spec: use Reprogrammer.build('soft', oracle, ...) or "
                          "SoftPrompt.for_oracle(train, oracle)")

    @property
    def space(self) -> SearchSpace:
        return self._space

    def init_theta(self) -> np.ndarray:
        return np.zeros(self._space.dim)

    def prompt_embeddings(self, theta: np.ndarray) -> np.ndarray:
        """p = A·z + p₀ as (tokens, hidden) float32 rows."""
        try:
            z = self._space.validate(theta)
        except SpaceError as e:
            raise PromptError(f"θ is not a z of this soft prompt: {e}") from e
        return (self.A @ z.astype(np.float32)).reshape(self.tokens, self.hidden) + self.p0

    def apply(self, theta: np.ndarray, inputs: Any) -> list[SoftText]:
        if isinstance(inputs, str):
            raise PromptError("expected a batch of texts, got one string; wrap it: [text]")
        p = self.prompt_embeddings(theta)
        out = []
        for i, x in enumerate(inputs):
            if not isinstance(x, str):
                raise PromptError(f"input {i} is {type(x).__name__}, not a string: the soft prompt takes texts")
            if not x.strip():
                raise PromptError(f"input {i} is empty or whitespace only; drop it from the data")
            out.append(SoftText(p, self._before + x + self._after))
        return out

    def readable(self, theta: np.ndarray) -> str:
        """Not text: the size of the soft prompt, how far it moved from p₀, then the template."""
        z = np.asarray(theta, dtype=np.float64)
        shift = float(np.linalg.norm(self.prompt_embeddings(theta) - self.p0))
        start = f"p0 = embeddings of {self.config.init!r}" if self.init_ids else "p0 = 0"
        return (f"[{self.tokens} soft tokens (not text): A.z + p0, {start}, |z| = {np.linalg.norm(z):.3g}, "
                f"|A.z| = {shift:.3g}] {self.config.template}")

    def describe(self) -> dict[str, Any]:
        c = self.config
        return {"name": self.name, "modality": self.modality, "template": c.template, "tokens": self.tokens,
                "hidden_size": self.hidden, "init": c.init, "init_tokens": len(self.init_ids), "dim": c.dim,
                "alpha": c.alpha, "sigma": c.sigma, "seed": self.seed,
                "projection_std": self.projection_std, "embedding_std": self.embedding_std,
                "init_prompt": self.readable(self.init_theta()), "space": self._space.describe()}
