"""Defend a suspect model against backdoors with black-box REFINE: an input transform and a fixed label
derangement, learned from the model's own answers on unlabeled benign images, under a query budget.

The suspect model is any oracle the toolkit resolves: a bundled name (e.g. the
backdoored `fmnist-cnn-badnets`), a TorchScript file, `module:factory`, or the URL
of a `blackbox-rp serve` API (key from --api-key-env). The defense never reads a
label of the benign images. With --trigger and --target, the attack success rate
(ASR: triggered images of the other classes classified as the target) is measured
before and after; clean accuracy is measured on labelled evaluation images kept
apart from the benign ones. --whitebox-steps adds the white-box ceiling (backprop
through a local model; marked as not black-box; its steps and step size are also the
warm start's). By default the fit starts from a warm start: a stand-in distilled
from the pseudo-label answers, the transform trained white-box against it, then
--rounds rounds (default 4) that each send the transformed training images through
the suspect once (in the budget), refit the stand-in on every answer so far and
train the transform further (--warm-start none: from the transform's θ₀).

Writes DIR/defended.npz (θ and the derangement) and DIR/results.json (clean
accuracy and ASR with 95% Wilson intervals for the suspect and the defended
pipeline, queries per phase, config, seed).

examples:
  blackbox-rp defend --model fmnist-cnn-badnets --budget 20000 --trigger badnets --target 0 --out runs/defend
  blackbox-rp defend --model http://127.0.0.1:8000 --api-key-env BBRP_KEY --budget 5000 --out runs/defend-api
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from . import _values as v

HELP = "defend a suspect model against backdoors with black-box REFINE (no labels, under a query budget)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True,
                   help="suspect model: bundled name, TorchScript file, module:factory, or http(s):// URL of a "
                        "`blackbox-rp serve` API")
    p.add_argument("--api-key-env", default=None, help="environment variable holding the API key (URL models)")
    p.add_argument("--exposure", type=v.exposure, default="probs", help="what the local oracle shows: probs, top<k>, label, ... (default probs)")
    p.add_argument("--data", default="fashion-mnist-test",
                   help="images for the defense (labels ignored) and, apart, for evaluation; bundled name or path")
    p.add_argument("--n-benign", type=v.positive_int, default=2000, help="unlabeled benign images the defense learns from (default 2000)")
    p.add_argument("--n-eval", type=v.positive_int, default=2000, help="labelled images kept apart to measure the result (default 2000)")
    p.add_argument("--budget", type=v.positive_int, required=True,
                   help="queries the defense may spend (pseudo-labels + training + validation); planned before the "
                        "first query, and a budget that cannot pay for the pseudo-labels and one judged step is refused")
    p.add_argument("--transform", default="unet",
                   help="input transformation (default unet, REFINE's: its white-box ceiling is 74-82%% clean "
                        "accuracy on the bundled backdoored models, an additive full prompt's 56-61%%)")
    p.add_argument("--transform-param", action="append", metavar="KEY=VALUE",
                   help="transform option (default for full and lowdim: mask=ones)")
    p.add_argument("--optimizer", default="zo-chain",
                   help="optimizer of the transform (default zo-chain: zeroth order per image at the model's input, "
                        "exact backprop through the transform; any zeroth-order optimizer works, e.g. zo-adam)")
    p.add_argument("--optimizer-param", action="append", metavar="KEY=VALUE",
                   help="optimizer parameter, repeatable (laid over the recommended settings)")
    p.add_argument("--batch-size", type=v.positive_int, default=64, help="images per step (default 64)")
    p.add_argument("--warm-start", choices=("surrogate", "none"), default="surrogate",
                   help="surrogate (default): distill a local stand-in from the pseudo-label answers (no query), "
                        "train the transform white-box against it, run --rounds and start the black-box fit there; "
                        "none: start at the transform's θ₀")
    p.add_argument("--rounds", type=v.non_negative_int, default=None,
                   help="rounds of the surrogate warm start (default 4): each sends the transformed training images "
                        "through the suspect once (in the budget), refits the stand-in on every answer so far and "
                        "trains the transform further against it; 0: the stand-in of the benign answers alone")
    p.add_argument("--round-steps", type=v.positive_int, default=None,
                   help="white-box steps of the transform against the stand-in in each round (default 500)")
    p.add_argument("--trigger", default=None, help="measure ASR with this trigger: badnets[:size=3,...], blended[:alpha=..]")
    p.add_argument("--target", type=v.non_negative_int, default=None, help="the attack's target class (with --trigger)")
    p.add_argument("--whitebox-steps", type=v.non_negative_int, default=0, help="also train the white-box ceiling (local models; default 0: not)")
    p.add_argument("--journal", type=v.journal_path, default=None, help="SQLite journal: resume a killed run for free")
    p.add_argument("--seed", type=v.seed, default=0, help="seed of the split, transform and optimizer (default 0)")
    p.add_argument("--out", type=v.out_dir, required=True)


def _oracle(args: argparse.Namespace, ledger: Any) -> Any:
    if args.model.startswith(("http://", "https://")):
        from oracles import HTTPOracle

        return HTTPOracle.from_server(args.model, api_key_env=args.api_key_env, ledger=ledger, journal=args.journal)
    from oracles.server import resolve_oracle

    return resolve_oracle(args.model, exposure=args.exposure, ledger=ledger, journal=args.journal)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from blackbox_rp.data import load_target
    from blackbox_rp.ledger import Budget, Ledger
    from blackbox_rp.loop import ProgressBar
    from blackbox_rp.studies.metrics import backdoor_metrics
    from blackbox_rp.studies.refine import RefineConfig, plan_refine, refine_blackbox, refine_whitebox
    from blackbox_rp.studies.triggers import parse_trigger

    from ._params import parse_params

    if (args.trigger is None) != (args.target is None):
        raise ValueError("--trigger and --target go together (the ASR needs both); give both or neither")
    trigger = parse_trigger(args.trigger) if args.trigger else None
    data = load_target(args.data)
    if args.n_benign + args.n_eval > len(data):
        raise ValueError(f"{args.data} has {len(data)} images; --n-benign {args.n_benign} + --n-eval {args.n_eval} "
                         f"is more: lower them")
    order = np.random.default_rng(args.seed).permutation(len(data))
    benign_x = data.x[order[:args.n_benign]]  # images only: the defense never sees these labels
    evaluation = data.subset(order[args.n_benign:args.n_benign + args.n_eval], name=f"{data.name}-eval")
    oracle = _oracle(args, Ledger(Budget(max_queries=args.budget, phases=("train", "validation"))))
    tparams = parse_params(args.transform_param, "transform") or ({"mask": "ones"} if args.transform in ("full", "lowdim") else {})
    oparams = parse_params(args.optimizer_param, "optimizer") or None
    cfg = RefineConfig(transform=args.transform, transform_params=tparams, optimizer=args.optimizer,
                       optimizer_params=oparams, batch_size=args.batch_size, seed=args.seed,
                       warm_start=args.warm_start, **({"whitebox_steps": args.whitebox_steps} if args.whitebox_steps else {}),
                       **{k: getattr(args, k) for k in ("rounds", "round_steps") if getattr(args, k) is not None})

    def measure(predict: Any) -> dict[str, Any]:
        return {k: v.to_dict() for k, v in backdoor_metrics(predict, evaluation, trigger, args.target).items()}

    plan = plan_refine(oracle, benign_x, cfg)
    plan.check(args.budget)  # the whole budget (pseudo-labels + fit), before any query is sent
    print(f"defend: {oracle.identity}; {len(benign_x)} unlabeled benign images, budget {args.budget} queries, "
          f"transform {args.transform}, optimizer {args.optimizer}, seed {args.seed}; plan: "
          f"{plan.describe(args.budget)}", file=sys.stderr)
    suspect = measure(lambda x: np.concatenate([oracle(x[s:s + 512], phase="test").labels
                                                for s in range(0, len(x), 512)]))
    defended = refine_blackbox(oracle, benign_x, cfg, callbacks=[ProgressBar(unit="step", file=sys.stderr)])
    ws = defended.info["warm_start"]
    if ws is not None:
        verdict = ("the zeroth-order fit did not beat it: the warm start is what was kept" if ws["kept"] else
                   f"the zeroth-order fit raised it to {100 * defended.info['val_agreement']:.1f}%")
        rounds = ws["rounds"]
        trained = ("the transform trained against it" if not rounds else
                   f"after {len(rounds)} rounds of querying the transformed images "
                   f"({sum(r['queries'] for r in rounds)} queries; at the start of each round the transform agreed "
                   f"{', '.join('%.1f%%' % (100 * r['agreement']) for r in rounds)} with the suspect's labels of the "
                   f"training images), the transform trained against the refitted stand-in")
        print(f"warm start: a stand-in distilled from the pseudo-labels agrees with the suspect on "
              f"{100 * ws['surrogate_agreement']:.1f}% of held-out benign images; {trained} "
              f"agrees {100 * ws['agreement']:.1f}% through the suspect — {verdict}", file=sys.stderr)
    results: dict[str, Any] = {
        "suspect": suspect, "defended_blackbox": {**measure(defended.predict), **defended.describe()},
        "trigger": None if trigger is None else trigger.describe(), "target": args.target,
        "n_benign": len(benign_x), "n_eval": len(evaluation), "data": args.data, "seed": args.seed,
        "budget": args.budget, "ledger": oracle.ledger.snapshot(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    defended.save(args.out / "defended.npz")
    if args.whitebox_steps:
        local = _oracle(args, Ledger())  # its own ledger: the ceiling is not charged to the defense's budget
        from blackbox_rp.oracle import LocalModel

        if not isinstance(local, LocalModel):
            raise ValueError("--whitebox-steps needs a local torch model (the ceiling backpropagates through it); "
                             "drop it for a remote API")
        wb = refine_whitebox(local, benign_x, cfg)
        results["defended_whitebox_ceiling"] = {**measure(wb.predict), **wb.describe()}
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    for name in ("suspect", "defended_blackbox", "defended_whitebox_ceiling"):
        r = results.get(name)
        if r is None:
            continue
        asr = f", ASR {_pct(r['asr'])}" if "asr" in r else ""
        spent = f" ({r['queries']} queries)" if "queries" in r else ""
        print(f"{name:28s} clean accuracy {_pct(r['clean_accuracy'])}{asr}{spent}")
    print(f"wrote {args.out / 'results.json'} and {args.out / 'defended.npz'}")
    return 0


def _pct(r: dict[str, float]) -> str:
    return f"{100 * r['value']:.1f}% [{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}]"
