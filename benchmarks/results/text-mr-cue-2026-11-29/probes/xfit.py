import os, sys, json
os.environ.setdefault("OMP_WAIT_POLICY", "passive")
sys.path.insert(0, "/work/main")
import numpy as np
from blackbox_rp.data import split_dataset
from blackbox_rp.mapping import make_mapping
from blackbox_rp.losses import make_loss
from blackbox_rp.textdata import load_text_target
from oracles.llama_cpp_oracle import LlamaCppOracle
lm = LlamaCppOracle("gemma3-270m", exposure="top20", journal="/work/probe/probe.sqlite", n_threads=2)
data = load_text_target("mr")
train, val, test = split_dataset(data, (100, 100, 1000), seed=0)
T = ["Review: {x}\nSentiment:", "{x} It was", "Review: {x}\nThe movie was", "Review: {x}\nOverall, the film is", "{x} All in all, it was"]
ce = make_loss("ce")
rng = np.random.default_rng(0)
R = {}
for t in T:
    b, a = t.split("{x}")
    R[t] = lm([b + x + a for x in train.x], phase="train")
for B, folds, l2 in [(32, 4, 1e-3), (32, 4, 1e-1), (32, 4, 1.0), (64, 4, 1e-1), (32, 8, 1e-1)]:
    out = {t: [] for t in T}
    for rep in range(30):
        idx = rng.choice(100, B, replace=False)
        parts = np.array_split(np.arange(B), folds)
        for t in T:
            r = R[t].take(idx); y = train.y[idx]
            sc = np.zeros((B, 2)); 
            for te in parts:
                tr = np.setdiff1d(np.arange(B), te)
                m = make_mapping("token-linear", lm.num_classes, 2, l2=l2).fit(r.take(tr), y[tr])
                sc[te] = m.scores(r.take(te))
            out[t].append((ce(sc, y), (sc.argmax(1) == y).mean()))
    print(B, folds, l2, {t[:25]: (round(float(np.mean([o[0] for o in v])), 3), round(float(np.std([o[0] for o in v])), 3), round(float(np.mean([o[1] for o in v])), 3)) for t, v in out.items()}, flush=True)
