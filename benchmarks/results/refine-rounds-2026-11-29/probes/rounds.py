"""Prototype: active distillation rounds after the cached warm start (seed from argv)."""
import sys, time, json
import numpy as np, torch
torch.set_num_threads(1)
from blackbox_rp import Budget, Ledger
from blackbox_rp.data import load_fashion_mnist
from blackbox_rp.studies.refine import RefineConfig, _pseudo_splits, warm_start, _transform, _derangement, _split
from blackbox_rp.studies.surrogate import SurrogateConfig, Surrogate
from blackbox_rp.studies.metrics import backdoor_metrics
from blackbox_rp.whitebox import WhiteboxConfig, whitebox_fit
from oracles import TorchOracle
from oracles.models.backdoor_cnn import ATTACKS
from torch.nn import functional as F

seed = int(sys.argv[1]); R = int(sys.argv[2]); E = int(sys.argv[3]); S = int(sys.argv[4])
attack = ATTACKS["badnets"]
te = load_fashion_mnist("test"); order = np.random.default_rng(seed).permutation(len(te))
tr = load_fashion_mnist("train")
x = tr.x[np.random.default_rng(seed).permutation(len(tr))[:20000]]
ev = te.subset(order[:2000])
oracle = TorchOracle(attack.model_name, ledger=Ledger(), max_batch=1024)
cfg = RefineConfig(whitebox_steps=3000, val_size=500, eval_every=20, batch_size=32, seed=seed)
train, val, scores = _pseudo_splits(oracle, x, cfg)
import glob
f = np.load(glob.glob(f"/work/main/benchmarks/results/refine-warm-2026-11-29/badnets-n20000-train-seed{seed}.warm/*.npz")[0])
info = json.loads(str(f["info"])); print(info)
sur = Surrogate.from_arrays(1, 10, cfg.surrogate, {k[4:]: f[k] for k in f.files if k.startswith("sur/")}, info["surrogate_agreement"], info["surrogate_epochs"])
class W: pass
ws = W(); ws.surrogate = sur; ws.theta = f["theta"].astype(np.float64)
t = _transform(cfg, oracle, x); m = _derangement(10, cfg)
net = ws.surrogate.module
theta = ws.theta
def report(tag, theta):
    pred = lambda xx: m.predict(oracle(t(theta, xx), phase="test"))
    met = backdoor_metrics(pred, ev, attack.trigger, attack.target)
    agree = float((pred(val.x) == val.y).mean())
    sa = float((net(torch.from_numpy(val.x)).argmax(1).numpy() == val.y).mean())
    print(json.dumps({"tag": tag, "clean": met["clean_accuracy"].value, "asr": met["asr"].value, "val_agree": agree, "sur_nat_agree": sa, "t": time.time()-T0}), flush=True)
T0 = time.time()
report("warm", theta)
X = [train.x]; P = [scores.astype(np.float32)]
gen = torch.Generator().manual_seed(seed)
opt = torch.optim.Adam(net.parameters(), lr=5e-4, weight_decay=1e-4)
for r in range(R):
    z = t(theta, train.x).astype(np.float32)
    ans = oracle(z, phase="train")
    X.append(z); P.append(ans.probs().astype(np.float32))
    # stand-in agreement on the transformed images before refit
    with torch.no_grad():
        pre = float((net(torch.from_numpy(z)).argmax(1).numpy() == ans.labels).mean())
    xt = torch.from_numpy(np.concatenate(X)); pt = torch.from_numpy(np.concatenate(P))
    for p in net.parameters(): p.requires_grad_(True)
    # weight newest round
    n = len(xt)
    for e in range(E):
        perm = torch.randperm(n, generator=gen)
        net.train()
        for s in range(0, n, 64):
            idx = perm[s:s+64]
            loss = F.kl_div(F.log_softmax(net(xt[idx]), 1), pt[idx], reduction="batchmean")
            opt.zero_grad(); loss.backward(); opt.step()
    net.eval()
    for p in net.parameters(): p.requires_grad_(False)
    with torch.no_grad():
        post = float((net(torch.from_numpy(z)).argmax(1).numpy() == ans.labels).mean())
    sur = Surrogate(net, 0, 0)
    out = whitebox_fit(t, sur, m, train, val, config=WhiteboxConfig(steps=S, batch_size=64, lr=0.005, eval_every=max(1,S//5), seed=seed+r), theta0=theta)
    theta = out["theta"]
    print(json.dumps({"round": r, "sur_on_T_pre": pre, "sur_on_T_post": post, "through_sur": out["val_accuracy"]}), flush=True)
    report(f"round{r}", theta)
