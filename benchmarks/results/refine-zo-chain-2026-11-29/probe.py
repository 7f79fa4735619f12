"""Probe: black-box REFINE (zo-chain) or the white-box curve on badnets, logging the validation curve."""
import sys, json, logging, time
import numpy as np, torch
torch.set_num_threads(1)
from blackbox_rp import Budget, Ledger
from blackbox_rp.data import load_fashion_mnist
from blackbox_rp.studies.refine import RefineConfig, refine_blackbox, refine_whitebox
from oracles import TorchOracle
mode, budget, n, bs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
params = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
logging.getLogger("blackbox_rp.reprogram").setLevel(logging.INFO)
logging.getLogger("blackbox_rp.loop").setLevel(logging.INFO)
te = load_fashion_mnist("test")
order = np.random.default_rng(0).permutation(len(te))
x = te.x[order[:n]]
t0 = time.time()
if mode == "wb":
    o = TorchOracle("fmnist-cnn-badnets", ledger=Ledger(), max_batch=1024)
    cfg = RefineConfig(batch_size=bs, whitebox_steps=budget, whitebox_lr=params.get("lr", 0.01), seed=0)
    from blackbox_rp.whitebox import WhiteboxConfig
    import blackbox_rp.studies.refine as R
    d = refine_whitebox(o, x, cfg)
    print("WB", budget, "steps", d.info["val_agreement"], time.time() - t0, flush=True)
else:
    o = TorchOracle("fmnist-cnn-badnets", ledger=Ledger(Budget(max_queries=budget, phases=("train", "validation"))), max_batch=1024)
    cfg = RefineConfig(optimizer="zo-chain", optimizer_params=params, batch_size=bs, eval_every=int(params.pop("eval_every", 20)) if "eval_every" in params else 20, seed=0)
    d = refine_blackbox(o, x, cfg)
    print("BB", budget, params, bs, d.info["val_agreement"], d.info["steps"], time.time() - t0, flush=True)
