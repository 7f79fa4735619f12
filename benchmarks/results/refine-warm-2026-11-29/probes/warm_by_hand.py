import sys, time, numpy as np, torch
from torch import nn
from blackbox_rp.data import load_fashion_mnist, Dataset
from blackbox_rp.transforms import make_transform
from blackbox_rp.mapping import make_mapping
from blackbox_rp.whitebox import whitebox_fit, WhiteboxConfig
from blackbox_rp.studies.metrics import backdoor_metrics
from oracles import TorchOracle
from oracles.models.backdoor_cnn import ATTACKS
torch.set_num_threads(1)
seed = int(sys.argv[1]); n_benign = int(sys.argv[2]); src = sys.argv[3]; epochs = int(sys.argv[4]); wsteps = int(sys.argv[5])
attack = ATTACKS["badnets"]
te = load_fashion_mnist("test")
order = np.random.default_rng(seed).permutation(len(te))
evaluation = te.subset(order[2000:4000])
if src == "test":
    benign = te.x[order[:n_benign]]
else:
    tr = load_fashion_mnist("train"); benign = tr.x[np.random.default_rng(seed).permutation(len(tr))[:n_benign]]
suspect = TorchOracle(attack.model_name, max_batch=1024)
logits = suspect.forward(benign)
P = torch.softmax(torch.from_numpy(logits), 1)
y = P.argmax(1).numpy()
rng = np.random.default_rng(seed); perm = rng.permutation(len(benign)); nv = len(benign)//5
va, trn = perm[:nv], perm[nv:]
class Sur(nn.Module):
    def __init__(s):
        super().__init__()
        s.f = nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64*49, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 10))
    def forward(s, x): return s.f(x)
g = torch.Generator().manual_seed(seed)
with torch.random.fork_rng():
    torch.manual_seed(seed); net = Sur()
opt = torch.optim.Adam(net.parameters(), 1e-3, weight_decay=1e-4)
X = torch.from_numpy(benign)
t0 = time.time()
for ep in range(epochs):
    net.train(); p = trn[torch.randperm(len(trn), generator=g).numpy()]
    for s in range(0, len(p), 64):
        i = p[s:s+64]
        xb = X[i]
        # augmentation: random shifts by up to 2 px
        sh = torch.randint(-2, 3, (2,), generator=g)
        xb = torch.roll(xb, shifts=(int(sh[0]), int(sh[1])), dims=(2, 3))
        loss = nn.functional.kl_div(nn.functional.log_softmax(net(xb), 1), P[i], reduction="batchmean")
        opt.zero_grad(); loss.backward(); opt.step()
    net.eval()
    with torch.no_grad(): agr = (net(X[va]).argmax(1).numpy() == y[va]).mean()
    print(f"epoch {ep} agreement {agr:.3f}  {time.time()-t0:.0f}s", flush=True)
net.eval()
sur = TorchOracle(net, max_batch=1024, num_classes=10) if epochs else suspect
t = make_transform("unet", in_shape=(1, 28, 28), out_size=28, channels=1, seed=seed, image_size=28)
m = make_mapping("derangement", 10, 10, seed=seed)
classes = te.classes
trd = Dataset(benign[trn], y[trn], classes, "t"); vad = Dataset(benign[va], y[va], classes, "v")
out = whitebox_fit(t, sur, m, trd, vad, config=WhiteboxConfig(steps=wsteps, batch_size=64, lr=0.01, eval_every=max(1, wsteps//10), seed=seed))
theta = out["theta"]
print("surrogate val agreement of pipeline", out["val_accuracy"], time.time()-t0)
def predict_on(o):
    return lambda x: m.predict(__import__("blackbox_rp.exposure", fromlist=["Response"]).Response.from_logits(o.forward(t(theta, x))))
for name, o in (("surrogate", sur), ("suspect", suspect)):
    mm = backdoor_metrics(predict_on(o), evaluation, attack.trigger, attack.target)
    print(name, "clean", mm["clean_accuracy"].value, "asr", mm["asr"].value)
np.save(f"/work/probe/theta_s{seed}_n{n_benign}_{src}_e{epochs}_w{wsteps}.npy", theta)
