"""Text reprogramming through Gemma-3 270M (llama.cpp, in process): discrete prompts × token mappings × optimizers.

For each dataset and seed, on the same stratified split:

* **hand prompt + verbalizer** (zero-shot): the hand-written template, its label words, no search; the
  share of test answers whose top-k shows any label word is recorded (``label_word_shown``: a row that shows
  none is a tie given to class 0), and ``--exact-zero-shot`` adds the same reading from all log-probs;
* **text probe**: the linear readout over the returned top-k log-probabilities with the hand-written
  prompt (``token-linear`` fitted on the training answers), no search — the bar a learned prompt must beat;
* **hand prompt + BLM+ over tokens**: the statistical token mapping on the hand prompt, no search;
* **random prompt + verbalizer**: a uniformly drawn θ of the same slots;
* every {optimizer} × {mapping} black-box run under a budget of train + validation queries
  (``Reprogrammer.fit``: selection on validation only), its learned prompt printed;
* with ``--transforms ...,soft`` (BBT): the same Gemma in torch (``oracles.torch_lm_oracle``, it takes soft
  prompt embeddings), the **soft start** (z = 0: p₀ = the embeddings of the task's prompt words before the
  template, verbalizer, no search) and every {soft optimizer} × {mapping} **learned soft prompt**
  p = A·z + p₀ under the same budget (CMA-ES with BBT's step size 1 by default).

Prints a markdown table (mean ± sd over seeds) and, as its LAST line, a JSON object with
``hand_prompt_accuracy``, ``text_probe_accuracy``, ``learned_prompt_accuracy`` (the best learned prompt +
mapping, mean over seeds), ``soft_start_accuracy`` and ``learned_soft_prompt_accuracy`` (with soft cells),
``calls``, ``dataset`` and the in-process speed.

    python benchmarks/text.py --quick                                   # a few hundred queries
    python benchmarks/text.py --datasets mr --seeds 0,1,2 --budget 8000 \\
        --optimizers bdpl,greedy,random,ng:DiscreteOnePlusOne --mappings verbalizer,token-linear \\
        --json-out runs/text.json --journal runs/text.sqlite
    python benchmarks/text.py --datasets mr --seeds 0 --split 100,100,200 --budget 1500 \\
        --transforms soft --mappings verbalizer --soft-param dim=500     # BBT only (beside the baselines)
    python benchmarks/text.py --datasets mr --seeds 0,1,2 --split 100,100,1000 --budget 8000 \\
        --optimizers greedy --mappings token-linear --optimizer-param popsize=40 \\
        --template 'Review: {x}\\n{p0} {p1} {p2}' --init ,,Sentiment: --candidates freq --num-candidates 40 \\
        --refit candidate --batch-size 32 --eval-every 1     # the slots end the prompt; ω fitted per candidate

``--template`` with ``{p0}``... markers puts the slots where the model answers (``--init`` gives their start
words, so θ₀ is still the hand-written prompt: checked); ``--refit candidate`` scores each candidate with the
mapping fitted to its own answers (:class:`blackbox_rp.reprogram.ReprogramConfig`). Such settings name the cell
(``greedy popsize=40 [template=..., refit=candidate]``), so one grid file holds them beside the defaults.

Long grids: ``--json-out FILE`` is rewritten after every cell and a run started again with the same file
runs only the cells not in it; with ``--journal FILE`` the cell that was cut off replays the answers it had
(no model call). Speed on 2 shared cores is a fraction of an idle machine's: the table says how many
queries per second this run saw.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # before llama_cpp loads OpenMP (shared cores)

import numpy as np  # noqa: E402

from _common import csv_list as _csv, format_mean_sd  # noqa: E402
from blackbox_rp import Budget, Ledger  # noqa: E402
from blackbox_rp.commands._params import parse_params  # noqa: E402
from blackbox_rp.data import split_dataset  # noqa: E402
from blackbox_rp.mapping import make_mapping  # noqa: E402
from blackbox_rp.objective import accuracy_of  # noqa: E402
from blackbox_rp.reprogram import Reprogrammer  # noqa: E402
from blackbox_rp.textdata import load_text_target  # noqa: E402
from blackbox_rp.transforms.text_prompt import DiscretePrompt, has_slot_markers  # noqa: E402

#: the hand-written prompt and label words of each bundled task
TASKS = {
    "mr": {"template": "Review: {x}\nSentiment:", "words": ("negative", "positive"),
           "soft_init": "Classify the sentiment of the movie review."},
    "chatterbot-topics": {"template": "Text: {x}\nTopic:", "words": None,  # the topic names
                          "soft_init": "Classify the topic of the text."},
}
#: BBT's CMA-ES: step size 1 (the scale the projection A is drawn for); a population of 10 rather than
#: BBT's 20, for CPU budgets of a few thousand queries
SOFT_OPTIMIZER_PARAMS = {"sigma0": 1.0, "popsize": 10}
QUICK = dict(datasets="mr", seeds="0", split="24,24,48", budget=160, optimizers="bdpl", mappings="verbalizer",
             slots=2, num_candidates=20, batch_size=8, eval_every=4)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="one small cell: MR, one seed, BDPL + verbalizer")
    p.add_argument("--datasets", default="mr,chatterbot-topics")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--split", default="400,200,1000", help="train,validation,test sizes")
    p.add_argument("--budget", type=int, default=8000, help="train + validation queries per learned prompt")
    p.add_argument("--transforms", default="discrete", help="discrete, soft (BBT, torch Gemma) or both: discrete,soft")
    p.add_argument("--optimizers", default="bdpl,greedy,random,ng:DiscreteOnePlusOne")
    p.add_argument("--soft-optimizers", default="cma", help="continuous optimizers of the soft prompt's z")
    p.add_argument("--soft-param", action="append", metavar="KEY=VALUE",
                   help="soft prompt parameter (tokens, init, dim, alpha, sigma); e.g. dim=100")
    p.add_argument("--soft-optimizer-param", action="append", metavar="KEY=VALUE",
                   help=f"soft optimizers' parameters (default {SOFT_OPTIMIZER_PARAMS})")
    p.add_argument("--mappings", default="verbalizer,token-blm+,token-linear")
    p.add_argument("--slots", type=int, default=4)
    p.add_argument("--position", default="before")
    p.add_argument("--template", default=None,
                   help="the learned prompts' template, {p0}... markers allowed (default: the task's hand-written "
                        "one); its θ₀ must be the hand-written prompt, e.g. 'Review: {x}\\n{p0} {p1} {p2}' with "
                        "--init ,,Sentiment:")
    p.add_argument("--init", default=None, help="start words of the slots, comma-separated ('' for an empty slot)")
    p.add_argument("--candidates", default="pmi", help="how the slots' words are ranked from the training texts: "
                                                       "pmi or freq")
    p.add_argument("--refit", default="auto", help="how the mapping follows the prompt during the search: auto, "
                                                  "epoch, window, candidate (refitted per candidate), ...")
    p.add_argument("--num-candidates", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--eval-every", type=int, default=10)
    p.add_argument("--exposure", default="top20")
    p.add_argument("--exact-zero-shot", action="store_true",
                   help="also read the hand prompt's label words from all log-probs (in process; test queries)")
    p.add_argument("--optimizer-param", action="append", metavar="KEY=VALUE", help="e.g. lr=0.5 (all optimizers)")
    p.add_argument("--journal", type=Path, default=None, help="SQLite journal: answers replayed for free")
    p.add_argument("--json-out", type=Path, default=None, help="rows written after every cell; resumed from")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        for k, v in QUICK.items():
            setattr(args, k, v)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)

    from oracles.llama_cpp_oracle import LlamaCppOracle

    transforms = _csv(args.transforms)
    if not transforms or set(transforms) - {"discrete", "soft"}:
        p.error(f"--transforms takes discrete, soft or both, got {args.transforms!r}")
    lm = LlamaCppOracle("gemma3-270m", exposure=args.exposure, journal=args.journal, n_threads=2)
    tlm = None
    if "soft" in transforms:
        from oracles.torch_lm_oracle import TorchLMOracle

        t = time.perf_counter()
        tlm = TorchLMOracle("gemma3-270m", exposure=args.exposure, journal=args.journal, n_threads=2)
        print(f"  torch Gemma loaded in {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    soft_params = parse_params(args.soft_param, "--soft-param")
    soft_opt_params = {**SOFT_OPTIMIZER_PARAMS, **parse_params(args.soft_optimizer_param, "--soft-optimizer-param")}
    saved = json.loads(args.json_out.read_text()) if args.json_out and args.json_out.exists() else []
    rows: list[dict[str, Any]] = dedupe(saved)
    done = {cell(r) for r in rows}
    opt_params = parse_params(args.optimizer_param, "--optimizer-param")
    # a learned cell is named by its optimizer and the parameters given to it: one grid file holds both
    # "bdpl samples=4" and "bdpl lr=0.1,samples=4" as different cells
    opt_suffix = " " + ",".join(f"{k}={v}" for k, v in sorted(opt_params.items())) if opt_params else ""
    # and by how its prompt is searched, when not the defaults
    variant = {k: v for k, v in (("template", args.template), ("init", args.init), ("candidates", args.candidates),
                                 ("position", args.position), ("refit", args.refit))
               if v is not None and v != p.get_default(k)}
    opt_suffix += " [" + ", ".join(f"{k}={v!r}" if k == "template" else f"{k}={v}" for k, v in variant.items()) + "]" \
        if variant else ""
    template = args.template.replace("\\n", "\n") if args.template else None
    init = tuple(args.init.split(",")) if args.init is not None else None
    n_train, n_val, n_test = (int(v) for v in _csv(args.split))

    def keep(row: dict[str, Any]) -> None:
        rows.append(row)
        done.add(cell(row))
        if args.json_out:
            args.json_out.parent.mkdir(parents=True, exist_ok=True)
            args.json_out.write_text(json.dumps(rows, indent=1))

    for dataset in _csv(args.datasets):
        data = load_text_target(dataset)
        task = TASKS.get(dataset.split(":")[0], {"template": "Text: {x}\nLabel:", "words": None})
        words = task["words"] or data.classes
        for seed in (int(s) for s in _csv(args.seeds)):
            train, val, test = split_dataset(data, (n_train, n_val, n_test), seed=seed)
            tparams = {"template": template or task["template"], "position": args.position,
                       "num_candidates": args.num_candidates, "candidates": args.candidates}
            if not has_slot_markers(tparams["template"]):
                tparams["slots"] = args.slots
            if init is not None:
                tparams["init"] = init
            prompt = DiscretePrompt.for_task(train, lm.input_spec, seed=seed, **tparams)
            theta0 = prompt.init_theta()
            if prompt.readable(theta0) != task["template"]:
                p.error(f"the search template's θ₀ is {prompt.readable(theta0)!r}, not the hand-written prompt "
                        f"{task['template']!r}: give --init so that its start words make the hand-written prompt")

            def answers(theta: np.ndarray, split: Any, phase: str):
                lm.ledger = Ledger()
                t = time.perf_counter()
                r = lm(prompt.apply(theta, split.x), phase=phase)
                tot = lm.ledger.total()
                return r, tot.queries, tot.calls, time.perf_counter() - t

            base = dict(dataset=dataset, seed=seed, split=[n_train, n_val, n_test], budget=0)
            verbalizer = make_mapping("verbalizer", lm.num_classes, data.num_classes, vocabulary=lm.vocabulary,
                                      words=words)
            if (dataset, seed, "hand prompt", "-", "verbalizer", 0) not in done:
                r, q, c, dt = answers(theta0, test, "test")
                # a row where no label word is among the shown top-k is a tie the verbalizer gives to class 0:
                # the share of rows that show one says how much of the zero-shot figure is the model's reading
                shown = float(np.isin(r.indices, [i for t in verbalizer.class_ids for i in t]).any(axis=1).mean()) \
                    if r.indices is not None else 1.0
                keep(dict(base, method="hand prompt", optimizer="-", mapping="verbalizer",
                          test=accuracy_of(verbalizer.predict(r), test.y), queries=0, calls=0,
                          prompt=prompt.readable(theta0), test_queries=q, qps=q / dt if dt else None,
                          label_word_shown=shown))
            if args.exact_zero_shot and (dataset, seed, "hand prompt (all log-probs)", "-", "verbalizer", 0) not in done:
                # the same zero-shot reading from the label words' exact log-probabilities (the in-process model
                # can show all of them): what the model "says" when the top-k hides the label words
                exact = lm.with_exposure("logits")
                exact.journal, exact.ledger = None, Ledger()  # 262k floats per answer: not journaled
                r = exact(prompt.apply(theta0, test.x), phase="test")
                keep(dict(base, method="hand prompt (all log-probs)", optimizer="-", mapping="verbalizer",
                          test=accuracy_of(verbalizer.predict(r), test.y), queries=0, calls=0,
                          prompt=prompt.readable(theta0), test_queries=len(test)))
            probes = {(dataset, seed, "text probe", "-", "token-linear", 0),
                      (dataset, seed, "hand prompt", "-", "token-blm+", 0)}
            if probes - done:
                rt, q1, c1, _ = answers(theta0, train, "train")
                re, _, _, _ = answers(theta0, test, "test")
                for m, method in (("token-linear", "text probe"), ("token-blm+", "hand prompt")):
                    if (dataset, seed, method, "-", m, 0) in done:
                        continue
                    mp = make_mapping(m, lm.num_classes, data.num_classes).fit(rt, train.y)
                    keep(dict(base, method=method, optimizer="-", mapping=m, test=accuracy_of(mp.predict(re), test.y),
                              queries=q1, calls=c1, prompt=prompt.readable(theta0)))
            if (dataset, seed, "random prompt", "-", "verbalizer", 0) not in done:
                theta = prompt.space.sample(np.random.default_rng(seed))
                r, q, c, _ = answers(theta, test, "test")
                keep(dict(base, method="random prompt", optimizer="-", mapping="verbalizer",
                          test=accuracy_of(verbalizer.predict(r), test.y), queries=0, calls=0,
                          prompt=prompt.readable(theta)))
            for opt in _csv(args.optimizers) if "discrete" in transforms else []:
                for m in _csv(args.mappings):
                    if (dataset, seed, "learned prompt", opt + opt_suffix, m, args.budget) in done:
                        continue
                    row, shown = learned_cell(lm, "discrete", tparams, m, opt, opt_params, words, seed, train, val,
                                              test, args)
                    keep(dict(base, method="learned prompt", optimizer=opt + opt_suffix, mapping=m, **row))
                    print(f"  {dataset} seed {seed} {opt} + {m}: test {row['test']:.3f}, prompt {shown!r}",
                          file=sys.stderr, flush=True)
            if tlm is not None:
                sparams = {"template": task["template"], "init": task.get("soft_init", ""), **soft_params}
                soft_cells(tlm, args, base, train, val, test, words, seed, sparams, soft_opt_params, verbalizer,
                           done, keep)
    print(json.dumps(report(rows)))
    return 0


def soft_cells(tlm: Any, args: argparse.Namespace, base: dict[str, Any], train: Any, val: Any, test: Any,
               words: Any, seed: int, sparams: dict[str, Any], opt_params: dict[str, Any], verbalizer: Any,
               done: set, keep: Any) -> None:
    """BBT's cells through the torch Gemma: the soft start (z = 0, no search) and each learned soft prompt."""
    from blackbox_rp.transforms.soft_prompt import SoftPrompt

    dataset = base["dataset"]
    if (dataset, seed, "soft start", "-", "verbalizer", 0) not in done:
        soft = SoftPrompt.for_oracle(train, tlm, seed=seed, **sparams)
        tlm.ledger = Ledger()
        t = time.perf_counter()
        r = tlm(soft.apply(soft.init_theta(), test.x), phase="test")
        dt, q = time.perf_counter() - t, tlm.ledger.total().queries
        keep(dict(base, method="soft start", optimizer="-", mapping="verbalizer",
                  test=accuracy_of(verbalizer.predict(r), test.y), queries=0, calls=0,
                  prompt=soft.readable(soft.init_theta()), test_queries=q, qps_soft=q / dt if dt else None))
    for opt in _csv(args.soft_optimizers):
        for m in _csv(args.mappings):
            if (dataset, seed, "learned soft prompt", opt, m, args.budget) in done:
                continue
            row, shown = learned_cell(tlm, "soft", sparams, m, opt, opt_params, words, seed, train, val, test, args)
            keep(dict(base, method="learned soft prompt", optimizer=opt, mapping=m, **row))
            print(f"  {dataset} seed {seed} soft {opt} + {m}: test {row['test']:.3f} after {row['steps']} steps, "
                  f"{shown}", file=sys.stderr, flush=True)


def learned_cell(oracle: Any, transform: str, tparams: dict[str, Any], m: str, opt: str, opt_params: dict[str, Any],
                 words: Any, seed: int, train: Any, val: Any, test: Any, args: argparse.Namespace
                 ) -> tuple[dict[str, Any], str]:
    """One learned cell, discrete or soft: fit under the budget (train + validation queries, selection on
    validation), then test. Returns the row's figures and the learned prompt as the transform reads it."""
    oracle.ledger = Ledger(Budget(max_queries=args.budget, phases=("train", "validation")))
    t = time.perf_counter()
    rp = Reprogrammer.build(transform, oracle, m, opt, train, seed=seed, transform_params=tparams,
                            mapping_params={"words": words} if m == "verbalizer" else {},
                            optimizer_params=opt_params, batch_size=args.batch_size, eval_every=args.eval_every,
                            refit=args.refit)
    res = rp.fit(train, val)
    spent = oracle.ledger.snapshot()
    ev = rp.evaluate(test)
    rp.optimizer.close()
    shown = rp.transform.readable(res.theta)
    return dict(budget=args.budget, test=ev["accuracy"], val=res.val_accuracy, steps=res.steps,
                queries=spent["train"]["queries"] + spent["validation"]["queries"],
                calls=spent["train"]["calls"] + spent["validation"]["calls"],
                prompt=shown, seconds=time.perf_counter() - t), shown


def cell(row: dict[str, Any]) -> tuple:
    """What identifies a row: a cell is run once per (dataset, seed, method, optimizer, mapping, budget)."""
    return row["dataset"], row["seed"], row["method"], row["optimizer"], row["mapping"], row.get("budget", 0)


def dedupe(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first row of each cell (a saved file may repeat one: it must count once)."""
    seen: set[tuple] = set()
    out = []
    for r in rows:
        if cell(r) not in seen:
            seen.add(cell(r))
            out.append(r)
    return out


def _ms(v: list[float]) -> str:
    return format_mean_sd(v) if len(v) > 1 else f"{100 * v[0]:.1f}"


def report(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Print the table; return the headline figures."""
    rows = dedupe(rows)
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["method"], r["optimizer"], r["mapping"], r["budget"]), []).append(r)
    # the no-search readings of each (dataset, seed): a learned prompt is judged against them, paired by seed
    hand_prompt = {(r["dataset"], r["seed"]): r["prompt"] for r in rows if r["method"] == "hand prompt"}
    probe_acc = {(r["dataset"], r["seed"]): r["test"] for r in rows if r["method"] == "text probe"}
    print("| dataset | method | optimizer | mapping | budget | test accuracy % | queries | calls | seeds "
          "| search kept the hand prompt (θ₀) | Δ vs text probe, paired (seeds above) | prompt (seed 0 / first) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (d, meth, opt, m, b), rs in groups.items():
        kept = delta = "–"
        if meth == "learned prompt":
            kept = f"{sum(r['prompt'] == hand_prompt.get((d, r['seed'])) for r in rs)}/{len(rs)}"
            diffs = [r["test"] - probe_acc[(d, r["seed"])] for r in rs if (d, r["seed"]) in probe_acc]
            if diffs:
                delta = f"{100 * statistics.mean(diffs):+.1f} ({sum(x > 0 for x in diffs)}/{len(diffs)})"
        print(f"| {d} | {meth} | {opt} | {m} | {b} | {_ms([r['test'] for r in rs])} | "
              f"{round(statistics.mean(r['queries'] for r in rs))} | {round(statistics.mean(r['calls'] for r in rs))} | "
              f"{len(rs)} | {kept} | {delta} | {rs[0]['prompt']!r} |")
    head: dict[str, Any] = {}
    datasets = sorted({r["dataset"] for r in rows})
    for d in datasets:
        pick = lambda meth, m=None: [r for r in rows if r["dataset"] == d and r["method"] == meth  # noqa: E731
                                     and (m is None or r["mapping"] == m)]
        hand, probe = pick("hand prompt", "verbalizer"), pick("text probe")
        exact = pick("hand prompt (all log-probs)")
        learned: dict[tuple, list[float]] = {}
        for r in pick("learned prompt"):
            learned.setdefault((r["optimizer"], r["mapping"], r["budget"]), []).append(r["test"])
        # the best cell among those run on the most seeds (one lucky seed does not make a headline)
        best = max(learned.items(), key=lambda kv: (len(kv[1]), statistics.mean(kv[1]))) if learned else None
        soft: dict[tuple, list[float]] = {}
        for r in pick("learned soft prompt"):
            soft.setdefault((r["optimizer"], r["mapping"]), []).append(r["test"])
        best_soft = max(soft.items(), key=lambda kv: statistics.mean(kv[1])) if soft else None
        start = pick("soft start")
        qps = [r["qps"] for r in hand if r.get("qps")]
        head[d] = {"hand_prompt_accuracy": statistics.mean(r["test"] for r in hand) if hand else None,
                   "text_probe_accuracy": statistics.mean(r["test"] for r in probe) if probe else None,
                   "learned_prompt_accuracy": statistics.mean(best[1]) if best else None,
                   "learned_with": f"{best[0][0]} + {best[0][1]} at {best[0][2]} queries" if best else None,
                   "label_word_shown": (statistics.mean(r["label_word_shown"] for r in hand)
                                        if hand and all("label_word_shown" in r for r in hand) else None),
                   "hand_prompt_all_logprobs_accuracy": statistics.mean(r["test"] for r in exact) if exact else None,
                   "calls": sum(r["calls"] for r in pick("learned prompt")) + sum(r["calls"] for r in
                                                                                  pick("learned soft prompt")),
                   "in_process_queries_per_s": round(statistics.mean(qps), 2) if qps else None}
        if start or soft:
            sqps = [r["qps_soft"] for r in start if r.get("qps_soft")]
            head[d].update(soft_start_accuracy=statistics.mean(r["test"] for r in start) if start else None,
                           learned_soft_prompt_accuracy=statistics.mean(best_soft[1]) if best_soft else None,
                           learned_soft_with=f"{best_soft[0][0]} + {best_soft[0][1]}" if best_soft else None,
                           torch_queries_per_s=round(statistics.mean(sqps), 2) if sqps else None)
    first = head[datasets[0]] if datasets else {}
    return {**first, "dataset": datasets[0] if datasets else None, "by_dataset": head}


if __name__ == "__main__":
    sys.exit(main())
