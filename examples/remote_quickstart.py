"""A model behind a real HTTP API that misbehaves on purpose, queried with an exact ledger.

    python examples/remote_quickstart.py [--journal run.sqlite]

Starts the bundled Fashion-MNIST CNN behind `oracles.server` on a free local
port (API key, top-3 exposure, 20% injected faults: 429s, 500s, dropped
connections, malformed bodies), queries it through `HTTPOracle` with four
requests in flight, and prints what was spent: every retry is a call, every
answered input one query. Run it twice with the same --journal: the second run
spends no call.
"""

from __future__ import annotations

import argparse
import os
import secrets
import tempfile
from pathlib import Path

import numpy as np

from blackbox_rp import Budget, Ledger
from oracles import FaultConfig, HTTPOracle, OracleServer, RetryPolicy, ServerConfig, TorchOracle


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--journal", type=Path, default=Path(tempfile.mkdtemp()) / "run.sqlite")
    args = ap.parse_args()

    # the server's key; the client reads it from the environment, as it would a real provider's
    os.environ["BBRP_DEMO_KEY"] = secrets.token_hex(16)
    faults = FaultConfig(rate_429=0.05, rate_500=0.05, rate_drop=0.05, rate_malformed=0.05, retry_after=0.05, seed=0)
    config = ServerConfig(exposure="top3", faults=faults)
    x = np.random.default_rng(0).random((512, 1, 28, 28), dtype=np.float32)

    with OracleServer(TorchOracle("fmnist-cnn"), config, api_keys=[os.environ["BBRP_DEMO_KEY"]]) as server:
        ledger = Ledger(Budget(max_queries=1000))
        with HTTPOracle.from_server(server.url, api_key_env="BBRP_DEMO_KEY", ledger=ledger, journal=args.journal,
                                    max_batch=32, max_in_flight=4, retry=RetryPolicy(backoff=0.02)) as oracle:
            r = oracle(x)
        print(f"served on {server.url}; answers: {r.kind}, first labels {r.labels[:8].tolist()}")
        print(f"injected faults: { {k: v for k, v in server.stats.items() if k.startswith('fault_')} }")
    t = ledger.total()
    print(f"total: {t.queries} queries, {t.calls} calls ({t.failed_calls} failed and retried), "
          f"{t.cache_hits} from the journal")


if __name__ == "__main__":
    main()
