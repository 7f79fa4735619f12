"""The visual benchmark's ``--quick`` cells, computed for a regression check of the core.

Run as a script it prints their results as JSON; ``tests/test_core_regression.py`` compares a run of
today's code with ``tests/data/visual_quick_b04d822.json``, written by this script at commit b04d822
(before the core was made modality-neutral): the same seed must give the same θ and accuracies.
"""

from __future__ import annotations

import json
import sys

import numpy as np

# benchmarks/visual.py --quick: mnist5k, split 200/100/100, seed 0, 48 px canvas, 32 px image, eval every 3
# (budget 2000 rather than its 1000, where the linear readout's fit could not pay for one step: now refused)
SPLIT, SIZE, CANVAS, EVAL_EVERY, BUDGET = (200, 100, 100), 48, {"image_size": 32}, 3, 2000


def cells() -> dict:
    from blackbox_rp import Budget, Ledger
    from blackbox_rp.baselines import multiview_probe, output_only
    from blackbox_rp.data import load_target, split_dataset
    from blackbox_rp.reprogram import Reprogrammer, recommended_optimizer_params
    from blackbox_rp.mapping import make_mapping
    from blackbox_rp.transforms import make_transform
    from blackbox_rp.whitebox import WhiteboxConfig, whitebox_fit
    from oracles import TorchOracle

    train, val, test = split_dataset(load_target("mnist5k"), SPLIT, 0)
    oracle = TorchOracle("efficientnet-lite0", max_batch=256)
    out: dict = {}
    for mapping in ("flm", "linear"):
        out[f"no-prompt/{mapping}"] = output_only(oracle, mapping, train, test, out_size=SIZE, canvas=CANVAS)["accuracy"]
    out["views/24+32"] = multiview_probe(oracle, train, test, out_size=SIZE,
                                         views=[{"image_size": 24}, {"image_size": 32}])["accuracy"]
    for mapping in ("blm+", "linear"):
        oracle.ledger = Ledger(Budget(max_queries=BUDGET, phases=("train", "validation")))
        rp = Reprogrammer.build("lowdim", oracle, mapping, "zo-adam", train, out_size=SIZE, seed=0,
                                transform_params=CANVAS, eval_every=EVAL_EVERY,
                                optimizer_params=recommended_optimizer_params("zo-adam", mapping))
        fit = rp.fit(train, val)
        out[f"lowdim/{mapping}/zo-adam"] = {"theta": fit.theta.tolist(), "val": fit.val_accuracy, "steps": fit.steps,
                                            "best_step": fit.best_step, "test": rp.evaluate(test)["accuracy"]}
    for mapping in ("blm+", "linear"):  # the white-box ceiling, 10 Adam steps (--whitebox-steps of --quick)
        t = make_transform("lowdim", in_shape=tuple(train.x.shape[1:]), out_size=SIZE, channels=3, seed=0, **CANVAS)
        m = make_mapping(mapping, oracle.num_classes, train.num_classes, seed=0)
        wb = whitebox_fit(t, oracle, m, train, val, test, WhiteboxConfig(steps=10, seed=0,
                                                                         lr=0.001 if mapping == "linear" else 0.05))
        out[f"whitebox/lowdim/{mapping}"] = {"theta": wb["theta"].tolist(), "val": wb["val_accuracy"],
                                             "best_step": wb["best_step"], "test": wb["test_accuracy"]}
    return out


if __name__ == "__main__":
    json.dump(cells(), sys.stdout)
