"""Use what a run learned (θ and ω) on new inputs, through any oracle, counting the queries.

The run directory gives the config (transform, canvas, mapping), ``theta.npy`` and ``mapping.npz``;
the oracle is the run's model unless another spec is given (e.g. the same model behind a server).
Queries are charged to phase ``"apply"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["apply_run"]


def apply_run(run_dir: str | Path, data: Any, *, model: str | None = None, api_key_env: str | None = None,
              batch: int = 512) -> dict[str, Any]:
    """Predictions for ``data`` (a :class:`~blackbox_rp.data.Dataset`) and what they cost."""
    from oracles.resolve import resolve_oracle

    from ..ledger import Ledger
    from ..mapping import make_mapping
    from ..transforms import make_transform
    from .config import load
    from .run import load_mapping_state, read_results

    run_dir = Path(run_dir)
    results = read_results(run_dir)  # only a finished run has a θ and ω worth applying
    cfg = load(run_dir / "config.toml")
    if results.get("canvas") is None:  # a text run: its θ is a prompt, kept readable in results.json
        raise ValueError(f"{run_dir} is a text run; apply reads image runs: its learned prompt is results.json's "
                         f"\"prompt\" ({results.get('prompt')!r}), usable with any client")
    o = cfg.oracle
    oracle = resolve_oracle(model or o.model, exposure=o.exposure, ledger=Ledger(), max_batch=o.max_batch,
                            api_key_env=api_key_env if model else o.api_key_env, wire=None if model else o.wire,
                            timeout=o.timeout)
    size, image = results["canvas"]["size"], results["canvas"]["image_size"]
    theta = np.load(run_dir / "theta.npy")
    state = load_mapping_state(run_dir / "mapping.npz")
    if data.num_classes > state["num_target"]:
        raise ValueError(f"the data has {data.num_classes} classes; the run learned {state['num_target']}")
    t = make_transform(cfg.transform.name, in_shape=tuple(data.x.shape[1:]), out_size=size,
                       channels=oracle.input_spec.channels or 3, seed=cfg.task.seed,
                       **{"image_size": image, **cfg.transform.params})
    if t.dim != theta.size:
        raise ValueError(f"the run's θ has {theta.size} values but transform {cfg.transform.name} on inputs of "
                         f"shape {tuple(data.x.shape[1:])} takes {t.dim}; apply it to inputs shaped like the "
                         f"run's data")
    m = make_mapping(cfg.mapping.name, oracle.num_classes, state["num_target"], seed=cfg.task.seed,
                     **dict(cfg.mapping.params))
    m.load_state_dict(state)
    from .run import _close

    preds = []
    try:
        for s in range(0, len(data), batch):
            preds.append(m.predict(oracle(t(theta, data.x[s:s + batch]), phase="apply")))
    finally:
        _close(oracle)
    pred = np.concatenate(preds) if preds else np.zeros(0, np.int64)
    counts = oracle.ledger.counts("apply")
    return {"pred": pred, "classes": results["classes"], "queries": counts.queries, "calls": counts.calls,
            "accuracy": float((pred == data.y).mean()) if len(data) else None, "oracle": oracle.identity}
