"""A local language model in torch as an oracle that also takes soft prompts (continuous prompt embeddings).

:class:`TorchLMOracle` loads the same GGUF file as
:class:`~oracles.llama_cpp_oracle.LlamaCppOracle` (Gemma-3 270M, Q4_K_M) into
``transformers`` (dequantized to float32) and answers the same question — the
next token's distribution over the whole vocabulary, shaped by the exposure —
for plain prompt strings *and* for :class:`~blackbox_rp.embeddings.SoftText`
inputs: rows of input embeddings read after the BOS token and before the text,
the "language model as a service" that black-box tuning (BBT) assumes. It
declares that ability as an :class:`~blackbox_rp.embeddings.EmbeddingOracle`.

Shared with the llama.cpp oracle (:class:`~oracles.next_token.NextTokenOracle`):
the vocabulary and tokenization (llama.cpp's tokenizer of the same file, loaded
without weights, so token ids and token strings are identical), the context
check, and how log-probability rows become answers. Its own part is the
forward: a request's inputs are evaluated as one padded batch (left padding, an
attention mask and explicit positions, so each row reads as if alone), and only
the last position's logits are computed.

Answers agree with llama.cpp's on the same prompts to quantization rounding, not
bit for bit: llama.cpp multiplies activations quantized to 8 bits against the
Q4_K weights, torch multiplies float32 activations against the dequantized
weights (``tests/test_text_soft.py`` states the measured gap: the same top
token but on near-ties, log-probabilities within ~0.4 nats). Within this oracle
an answer is bit for bit repeatable when asked the same way, but padded into
another batch it can move by float32 rounding (measured ≤ 2e-5 nats); the
journal keeps the first answer of each input, so a resumed run replays it. A
padded batch of 16 is ~3.5x faster than 16 single forwards, hence the batching.

Needs ``transformers``, ``gguf`` and ``accelerate`` (the ``text`` extra) and
llama-cpp-python for the tokenizer. Loading takes 30–90 s (dequantizing 268 M
parameters); a 20-token forward ~0.1 s on 2 cores.

Example::

    from oracles.torch_lm_oracle import TorchLMOracle
    lm = TorchLMOracle("gemma3-270m", exposure="top20")
    lm(["The capital of France is"])                       # text, as LlamaCppOracle
    from blackbox_rp.embeddings import SoftText
    p = lm.embed_tokens(lm.vocabulary.encode("Paris is the capital of"))
    lm([SoftText(p, " France")])                            # soft rows + text
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Sequence

import numpy as np

from blackbox_rp.embeddings import EmbeddingOracle, SoftText
from blackbox_rp.exposure import Exposure
from blackbox_rp.ledger import Ledger
from blackbox_rp.oracle import InputError, InputSpec

from .llama_cpp_oracle import LlamaVocabulary, _file_digest, _resolve_model
from .next_token import NextTokenOracle, log_softmax

logger = logging.getLogger(__name__)

__all__ = ["TorchLMOracle", "INSTALL_HINT"]

INSTALL_HINT = ("pip install 'blackbox-rp[text]' (transformers==5.23.*, gguf==0.19.*, accelerate) — or bash "
                "scripts/setup.sh")


def _load_causal_lm(path: Any) -> Any:
    """The GGUF file as a float32 ``transformers`` causal LM in eval mode, offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local file: never ask a hub
    try:
        import torch
        import transformers
        from transformers import AutoModelForCausalLM
    except ImportError as e:
        raise ImportError(f"the torch language-model oracle needs transformers and gguf ({e}); {INSTALL_HINT}") from e
    transformers.utils.logging.disable_progress_bar()
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


class TorchLMOracle(NextTokenOracle, EmbeddingOracle):
    """Next-token distributions of a GGUF language model run in torch; accepts soft prompts too.

    Args:
        model: ``"gemma3-270m"`` (bundled) or a path to a ``.gguf`` file ``transformers`` can read.
        n_threads: torch CPU threads (None: leave torch's setting).
        n_ctx: context length; an input longer than ``n_ctx - 1`` positions (soft rows included) is refused.
        exposure: what callers see; ``top20`` by default, as :class:`~oracles.llama_cpp_oracle.LlamaCppOracle`.
        ledger, journal, max_batch: as for every :class:`~blackbox_rp.oracle.Oracle` (``max_batch`` inputs
            are one padded forward).
    """

    source_level = "logits"

    def __init__(self, model: str | os.PathLike = "gemma3-270m", *, n_threads: int | None = None, n_ctx: int = 2048,
                 exposure: Exposure | str | None = "top20", ledger: Ledger | None = None, journal: Any = None,
                 max_batch: int = 16):
        if n_ctx < 8:
            raise ValueError(f"n_ctx must be at least 8 positions, got {n_ctx}")
        if n_threads is not None and n_threads < 1:
            raise ValueError(f"n_threads must be positive, got {n_threads}")
        import torch

        if n_threads is not None:
            torch.set_num_threads(n_threads)
        path, name = _resolve_model(model)
        self._torch = torch
        self._model = _load_causal_lm(path)
        self._embed = self._model.get_input_embeddings()  # Gemma's scaled embedding: rows as the model reads them
        self._vocabulary = LlamaVocabulary.from_file(path)
        self._lock = threading.Lock()
        self.model_path = path
        self.model_name = name
        self.n_ctx = n_ctx
        self._hidden = int(self._model.config.hidden_size)
        n_rows = int(self._embed.weight.shape[0])
        if n_rows < self._vocabulary.size:
            raise RuntimeError(f"{path}: the model has {n_rows} embedding rows for a vocabulary of "
                               f"{self._vocabulary.size} tokens")
        self._stats: tuple[float, float] | None = None
        self._identity = f"torch:{name}@{_file_digest(path)}"
        super().__init__(InputSpec.text(embed_dim=self._hidden), self._vocabulary.size, exposure=exposure,
                         ledger=ledger, journal=journal, max_batch=max_batch)

    # ------------------------------------------------------------ interface
    @property
    def hidden_size(self) -> int:
        return self._hidden

    def embed_tokens(self, ids: Sequence[int]) -> np.ndarray:
        ids = [self._vocabulary.check_id(i) for i in ids]
        with self._torch.no_grad():
            rows = self._embed(self._torch.tensor([ids], dtype=self._torch.long))[0]
        return rows.numpy().astype(np.float32)

    def embedding_stats(self) -> tuple[float, float]:
        if self._stats is None:
            with self._torch.no_grad():
                w = self._embed.weight.double() * float(getattr(self._embed, "embed_scale", 1.0))
                self._stats = (float(w.mean()), float(w.std(unbiased=False)))
        return self._stats

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(model=self.model_name, model_file=str(self.model_path), n_ctx=self.n_ctx,
                 hidden_size=self._hidden, backend="transformers (torch, float32, in process)")
        return d

    # ------------------------------------------------------------ answers
    def _prepare(self, inputs: list[Any]) -> list[tuple[list[int], np.ndarray | None, list[int]]]:
        """Per input: (BOS ids, soft rows or None, text ids). A plain string is (BOS + text ids, None, [])."""
        out = []
        bos = self._vocabulary.encode_prompt("")
        for i, x in enumerate(inputs):
            if isinstance(x, SoftText):
                n = len(x.embeddings)
                text = self._vocabulary.encode(x.text) if x.text else []
                if len(bos) + n + len(text) >= self.n_ctx:
                    raise InputError(f"input {i} is {len(bos) + n + len(text)} positions ({n} soft rows), over the "
                                     f"context of {self.n_ctx}; shorten it or build the oracle with a larger n_ctx")
                out.append((list(bos), x.embeddings, text))
            else:
                out.append((self._encode_prompt(i, x), None, []))
        return out

    def _rows(self, prepared: list[tuple[list[int], np.ndarray | None, list[int]]]) -> np.ndarray:
        torch = self._torch
        with self._lock, torch.no_grad():
            seqs = []
            for head, soft, tail in prepared:
                parts = [self._embed(torch.tensor([head], dtype=torch.long))[0]] if head else []
                if soft is not None:
                    parts.append(torch.from_numpy(np.array(soft, dtype=np.float32)))
                if tail:
                    parts.append(self._embed(torch.tensor([tail], dtype=torch.long))[0])
                seqs.append(torch.cat(parts))
            length = max(len(s) for s in seqs)
            batch = torch.zeros(len(seqs), length, self._hidden, dtype=torch.float32)
            mask = torch.zeros(len(seqs), length, dtype=torch.long)
            for r, s in enumerate(seqs):  # left padding: every row's last position is the last column
                batch[r, length - len(s):] = s
                mask[r, length - len(s):] = 1
            positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
            out = self._model(inputs_embeds=batch, attention_mask=mask, position_ids=positions, logits_to_keep=1,
                              use_cache=False)
            z = out.logits[:, -1, :self.num_classes].double().numpy()
        if not np.isfinite(z).all():
            raise RuntimeError(f"{self.identity}: the model returned non-finite logits")
        return log_softmax(z)
