import numpy as np, torch, time
from blackbox_rp.data import load_fashion_mnist, Dataset
from blackbox_rp.studies.surrogate import distill, SurrogateConfig
from blackbox_rp.studies.refine import RefineConfig, _split, _transform, _derangement
from oracles import TorchOracle
torch.set_num_threads(1)
seed, n = 0, 10000
tr = load_fashion_mnist("train")
x = tr.x[np.random.default_rng(seed).permutation(len(tr))[:n]]
sus = TorchOracle("fmnist-cnn-badnets", max_batch=1024)
logits = sus.forward(x); P = torch.softmax(torch.from_numpy(logits), 1).numpy(); y = P.argmax(1)
cfg = RefineConfig(seed=seed)
tri, vai = _split(n, cfg)
t0 = time.time()
sur = distill(x[tri], P[tri], x[vai], y[vai], SurrogateConfig(), seed=seed)
print("surrogate", sur.agreement, time.time() - t0)
t = _transform(cfg, sus, x)
m = _derangement(10, cfg)
theta = torch.tensor(np.load("/work/probe/theta_s0_n10000_train_e15_w2000.npy"), dtype=torch.float32)
xb = torch.from_numpy(x[vai[:256]]); yb = torch.from_numpy(y[vai[:256]])
with torch.no_grad():
    z0 = t.torch_forward(theta, xb)
def grads(module, z0):
    z = z0.clone().requires_grad_(True)
    lp = m.torch_log_probs(module(z), None)
    loss = torch.nn.functional.nll_loss(lp, yb, reduction="sum")
    loss.backward()
    return z.grad.reshape(len(z), -1)
for name, th in (("warm", theta), ("theta0", torch.tensor(t.init_theta(), dtype=torch.float32))):
    with torch.no_grad(): z0 = t.torch_forward(th, xb)
    gs, gr = grads(sus.torch_module, z0), grads(sur.module, z0)
    cos = torch.nn.functional.cosine_similarity(gs, gr, dim=1)
    print(name, "per-example cosine(suspect, surrogate) mean %.3f median %.3f q10 %.3f" % (cos.mean(), cos.median(), cos.quantile(0.1)))
    # batch-summed through the transform? compare θ-gradients
    def thgrad(module):
        th_ = th.clone().requires_grad_(True)
        lp = m.torch_log_probs(module(t.torch_forward(th_, xb)), None)
        torch.nn.functional.nll_loss(lp, yb).backward()
        return th_.grad
    a, b = thgrad(sus.torch_module), thgrad(sur.module)
    print(name, "theta-gradient cosine %.3f" % torch.nn.functional.cosine_similarity(a, b, dim=0))
