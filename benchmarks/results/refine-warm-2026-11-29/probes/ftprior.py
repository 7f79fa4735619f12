import sys, time, numpy as np, torch, logging
from blackbox_rp import Budget, Ledger
from blackbox_rp.data import load_fashion_mnist
from blackbox_rp.studies import refine as R
from blackbox_rp.studies.surrogate import distill, SurrogateConfig, SurrogatePrior
from blackbox_rp.studies.metrics import backdoor_metrics
from blackbox_rp.reprogram import Reprogrammer
from blackbox_rp.optim import make
from oracles import TorchOracle
from oracles.models.backdoor_cnn import ATTACKS
torch.set_num_threads(1)
seed, budget, theta_file, lr, decay, n, use_prior, q = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]), sys.argv[7] == "prior", int(sys.argv[8])
attack = ATTACKS["badnets"]
te = load_fashion_mnist("test"); tr = load_fashion_mnist("train")
x = tr.x[np.random.default_rng(seed).permutation(len(tr))[:n]]
evaluation = te.subset(np.random.default_rng(seed).permutation(len(te))[:2000])
oracle = TorchOracle(attack.model_name, max_batch=1024, ledger=Ledger(Budget(max_queries=budget, phases=("train", "validation"))))
cfg = R.RefineConfig(warm_start="none", optimizer="zo-chain", optimizer_params={"q": q, "lr": lr, "decay": decay}, batch_size=32, eval_every=20, val_size=500, seed=seed)
t0 = time.time()
train, val, scores = R._pseudo_splits(oracle, x, cfg)
theta0 = np.load(theta_file)
t = R._transform(cfg, oracle, x)
m = R._derangement(10, cfg)
prior = None
if use_prior:
    sur = distill(train.x, scores, val.x, val.y, SurrogateConfig(), seed=seed)
    prior = SurrogatePrior(sur, m)
    print("surrogate", sur.agreement, time.time() - t0, flush=True)
opt = make("zo-chain", t.space, seed=seed, x0=theta0, q=q, lr=lr, decay=decay)
rp = Reprogrammer(t, oracle, m, opt, seed=seed, refit="none", final_refit=False, batch_size=32, eval_every=20, val_size=500, theta0=theta0, input_prior=prior)
fit = rp.fit(train, val)
from blackbox_rp.studies.refine import DefendedModel
d = DefendedModel(t, rp.theta, m, oracle, True, 0)
mm = backdoor_metrics(d.predict, evaluation, attack.trigger, attack.target)
print("RESULT", sys.argv[1:], "clean", mm["clean_accuracy"].value, "asr", mm["asr"].value, "val", fit.val_accuracy, "start", fit.curve[0]["val_accuracy"], "best_step", fit.best_step, fit.steps, f"{time.time()-t0:.0f}s", flush=True)
