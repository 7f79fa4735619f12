import os, sys, time, json
os.environ.setdefault("OMP_WAIT_POLICY", "passive")
sys.path.insert(0, "/work/main")
import numpy as np
from blackbox_rp import Ledger
from blackbox_rp.data import split_dataset
from blackbox_rp.mapping import make_mapping
from blackbox_rp.objective import accuracy_of
from blackbox_rp.textdata import load_text_target
from oracles.llama_cpp_oracle import LlamaCppOracle

lm = LlamaCppOracle("gemma3-270m", exposure="top20", journal="/work/probe/probe.sqlite", n_threads=2)
data = load_text_target("mr")
seed = int(sys.argv[1]); full = len(sys.argv) > 2
train, val, test = split_dataset(data, (100, 100, 1000), seed=seed)
T = ["Review: {x}\nSentiment:", "{x} It was", "Review: {x}\nThe movie was", "Review: {x}\nOverall, the film is",
     "{x} All in all, it was", "Review: {x}\nIn a word, the movie is", "{x}\nQuestion: Is this review positive or negative?\nAnswer:",
     "Review: {x} It was", "Review: {x}\nSentiment: it was"]
for t in T:
    b, a = t.split("{x}")
    f = lambda s: [b + x + a for x in s.x]
    t0 = time.time()
    rt = lm(f(train), phase="train"); rv = lm(f(val), phase="validation")
    mp = make_mapping("token-linear", lm.num_classes, 2).fit(rt, train.y)
    out = dict(t=t, val=accuracy_of(mp.predict(rv), val.y))
    if full:
        re_ = lm(f(test), phase="test"); out["test"] = accuracy_of(mp.predict(re_), test.y)
    out["s"] = round(time.time() - t0)
    print(json.dumps(out), flush=True)
