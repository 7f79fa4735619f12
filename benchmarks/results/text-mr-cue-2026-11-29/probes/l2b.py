import os, sys
os.environ.setdefault("OMP_WAIT_POLICY", "passive")
sys.path.insert(0, "/work/main")
import numpy as np
from blackbox_rp.data import split_dataset
from blackbox_rp.mapping import make_mapping
from blackbox_rp.objective import accuracy_of
from blackbox_rp.textdata import load_text_target
from oracles.llama_cpp_oracle import LlamaCppOracle
from blackbox_rp import Ledger
lm = LlamaCppOracle("gemma3-270m", exposure="top20", journal="/work/main/runs/text-test1000.sqlite", n_threads=2)
data = load_text_target("mr")
for seed in (1, 2):
    train, val, test = split_dataset(data, (100, 100, 1000), seed=seed)
    b, a = "Review: {x}\nSentiment:".split("{x}"); f = lambda s: [b + x + a for x in s.x]
    lm.ledger = Ledger()
    rt, rv, re_ = lm(f(train), phase="train"), lm(f(val), phase="validation"), lm(f(test), phase="test")
    print(seed, lm.ledger.total().calls, [(l2, accuracy_of(m.predict(rv), val.y), accuracy_of(m.predict(re_), test.y)) for l2 in (1e-3, 1e-2, 0.1, 1.0, 3.0)
           for m in [make_mapping("token-linear", lm.num_classes, 2, l2=l2).fit(rt, train.y)]], flush=True)
