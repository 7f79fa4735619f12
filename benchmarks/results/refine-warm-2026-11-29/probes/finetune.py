import sys, time, numpy as np, torch
from blackbox_rp import Budget, Ledger
from blackbox_rp.data import load_fashion_mnist
from blackbox_rp.studies import refine as R
from blackbox_rp.studies.metrics import backdoor_metrics
from oracles import TorchOracle
from oracles.models.backdoor_cnn import ATTACKS
torch.set_num_threads(1)
seed = int(sys.argv[1]); budget = int(sys.argv[2]); theta_file = sys.argv[3]; lr = float(sys.argv[4]); decay = float(sys.argv[5])
attack = ATTACKS["badnets"]
te = load_fashion_mnist("test")
order = np.random.default_rng(seed).permutation(len(te))
n_benign = int(sys.argv[6]); src = sys.argv[7]
if src == "test": benign = te.x[order[:n_benign]]
else:
    tr = load_fashion_mnist("train"); benign = tr.x[np.random.default_rng(seed).permutation(len(tr))[:n_benign]]
evaluation = te.subset(order[2000:4000])
oracle = TorchOracle(attack.model_name, max_batch=1024, ledger=Ledger(Budget(max_queries=budget, phases=("train", "validation"))))
theta0 = np.load(theta_file)
orig = R._transform
def patched(cfg, o, x):
    t = orig(cfg, o, x); t.init_theta = lambda: theta0.copy(); return t
R._transform = patched
cfg = R.RefineConfig(warm_start="none", optimizer="zo-chain", optimizer_params={"q": 8, "lr": lr, "decay": decay}, batch_size=32, eval_every=20, seed=seed)
t0 = time.time()
d = R.refine_blackbox(oracle, benign, cfg)
m = backdoor_metrics(d.predict, evaluation, attack.trigger, attack.target)
print("finetune", budget, lr, decay, "clean", m["clean_accuracy"].value, "asr", m["asr"].value, d.info["val_agreement"], d.info["steps"], f"{time.time()-t0:.0f}s", flush=True)
