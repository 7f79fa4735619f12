"""Serve a model behind an HTTP API that behaves like a real one: keys, exposure, rate limit, quota, faults.

The model is a bundled name (`blackbox-rp models`), a TorchScript file, a
`module:factory` returning an nn.Module or an Oracle, or the text classifier
`chatterbot-topics` (which also answers OpenAI-compatible /v1/completions and
/v1/chat/completions with logprobs). API keys are read from the environment
variable named by --api-key-env (comma-separated for several keys); they are
never printed or logged.

examples:
  BBRP_KEY=secret blackbox-rp serve --model fmnist-cnn --port 8000 --exposure top5 --api-key-env BBRP_KEY
  BBRP_KEY=secret blackbox-rp serve --model chatterbot-topics --api-key-env BBRP_KEY --rate-limit 20 --quota 10000
  blackbox-rp serve --model fmnist-cnn --no-auth --fault-429 0.1 --fault-drop 0.05 --fault-seed 1
"""

from __future__ import annotations

import argparse
import logging
import os

from . import _values as v

HELP = "serve a model over HTTP (API keys, exposure, rate limit, quota, OpenAI-compatible text endpoints)"

logger = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True,
                   help="bundled model, chatterbot-topics, TorchScript file, or module:factory")
    p.add_argument("--host", default="127.0.0.1", type=v.host, help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=v.port, default=8000, help="port (0: any free port; default 8000)")
    p.add_argument("--exposure", default="probs", type=v.exposure, help="probs, logits, label, top<k>, rounded<n> (default probs)")
    p.add_argument("--api-key-env", default=None, help="environment variable holding the API key(s), comma-separated")
    p.add_argument("--no-auth", action="store_true", help="serve without keys (private local use only)")
    p.add_argument("--model-name", default=None, help="model id for the OpenAI-compatible endpoints")
    p.add_argument("--rate-limit", type=v.positive_float, default=None,
                   help="requests per second per key (429 beyond; default: unlimited)")
    p.add_argument("--burst", type=v.positive_int, default=10, help="requests a key may send at once (default 10)")
    p.add_argument("--quota", type=v.positive_int, default=None,
                   help="queries per key for the server's lifetime (default: unlimited)")
    p.add_argument("--quota-status", type=int, choices=(429, 403), default=429, help="status once a quota is spent")
    p.add_argument("--max-body-mb", type=v.positive_float, default=16.0, help="largest request body, MiB (413 beyond)")
    p.add_argument("--max-batch", type=v.positive_int, default=1024, help="most inputs per request (413 beyond)")
    p.add_argument("--threads", type=v.positive_int, default=2, help="model evaluations running at once")
    p.add_argument("--torch-threads", type=v.positive_int, default=None, help="torch intra-op threads (default: torch's)")
    faults = p.add_argument_group("fault injection (per-request probabilities)")
    for name in ("429", "500", "delay", "drop", "malformed"):
        faults.add_argument(f"--fault-{name}", type=v.probability, default=0.0, metavar="P",
                            help=f"probability of an injected {name} fault per request (default 0)")
    faults.add_argument("--fault-retry-after", type=v.non_negative_float, default=1.0, help="Retry-After of injected 429s (s)")
    faults.add_argument("--fault-delay-s", type=v.non_negative_float, default=1.0, help="seconds a delayed answer waits")
    faults.add_argument("--fault-seed", type=v.seed, default=0, help="seed of the fault schedule (default 0)")
    p.add_argument("--access-log", action="store_true", help="log every request (paths only, never keys)")


def run(args: argparse.Namespace) -> int:
    from oracles.faults import FaultConfig
    from oracles.server import OracleServer, ServerConfig

    keys: list[str] = []
    if args.api_key_env:
        raw = os.environ.get(args.api_key_env, "")
        keys = [k.strip() for k in raw.split(",") if k.strip()]
        if not keys:
            raise ValueError(f"environment variable {args.api_key_env} is not set or empty; export the API key "
                             f"there, or pass --no-auth for a private local server")
    elif not args.no_auth:
        raise ValueError("give --api-key-env NAME (the variable holding the API key), or --no-auth for a private "
                         "local server")
    if args.torch_threads is not None:
        import torch

        torch.set_num_threads(args.torch_threads)
    faults = FaultConfig(rate_429=args.fault_429, rate_500=args.fault_500, rate_delay=args.fault_delay,
                         rate_drop=args.fault_drop, rate_malformed=args.fault_malformed,
                         retry_after=args.fault_retry_after, delay=args.fault_delay_s, seed=args.fault_seed)
    config = ServerConfig(exposure=args.exposure, rate_limit=args.rate_limit, burst=args.burst, quota=args.quota,
                          quota_status=args.quota_status, max_body_bytes=int(args.max_body_mb * 2**20),
                          max_batch=args.max_batch, threads=args.threads, require_key=not args.no_auth,
                          faults=faults, model_name=args.model_name)
    server = OracleServer(args.model, config, api_keys=keys, host=args.host, port=args.port,
                          log_level="info", access_log=args.access_log)
    server.serve_forever(lambda url: print(f"serving {server.oracle.identity} (exposure {config.exposure}, "
                                           f"{len(keys)} key(s)) on {url} ; Ctrl-C to stop", flush=True))
    return 0
