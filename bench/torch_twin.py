# PyTorch twin of amisim's default JEPA training step, for the speed ratio in
# `amisim bench train` (run both in one shell session, one after the other):
#   python bench/torch_twin.py 64 9        # batch, window -> s/step, frames/s
# Mirrors src/perception (3 strided 3x3 convs 3->16->32->32, ReLU, spatial soft-argmax,
# linear to 64),
# src/world_model (residual MLP predictor 66->256->256->64, inverse dynamics 128->128->2)
# and the loss of src/world_model/jepa.rs (rollout MSE with detached targets, VICReg
# variance + covariance, smoothness, IDM), with AdamW.
import sys, time, torch, torch.nn as nn
torch.manual_seed(0)
B, T = int(sys.argv[1]), int(sys.argv[2])
D = 64
class Enc(nn.Module):
    def __init__(s):
        super().__init__()
        s.c = nn.ModuleList([nn.Conv2d(3, 16, 3, 2, 1), nn.Conv2d(16, 32, 3, 2, 1), nn.Conv2d(32, 32, 3, 2, 1)])
        s.fc = nn.Linear(32 * 9 * 9 + 2 * 32, D)
        g = torch.linspace(-1, 1, 9)
        s.gx, s.gy = g.repeat(9), g.repeat_interleave(9)
    def forward(s, x):
        for c in s.c:
            x = torch.relu(c(x))
        attn = torch.softmax(x.flatten(2), -1)
        return s.fc(torch.cat([x.flatten(1), (attn * s.gx).sum(-1), (attn * s.gy).sum(-1)], 1))
class Pred(nn.Module):
    def __init__(s):
        super().__init__(); s.l1, s.l2, s.l3 = nn.Linear(D + 2, 256), nn.Linear(256, 256), nn.Linear(256, D)
    def forward(s, z, a):
        h = torch.relu(s.l1(torch.cat([z, a], 1))); h = torch.relu(s.l2(h)); return z + s.l3(h)
enc, pred = Enc(), Pred()
idm = nn.Sequential(nn.Linear(2 * D, 128), nn.ReLU(), nn.Linear(128, 2))
opt = torch.optim.AdamW(list(enc.parameters()) + list(pred.parameters()) + list(idm.parameters()), 1e-4, weight_decay=1e-4)
frames = torch.rand(B * T, 3, 65, 65); acts = torch.rand(B, T - 1, 2) * 2 - 1
times = []
for it in range(6):
    t0 = time.time()
    z = enc(frames); z3 = z.reshape(B, T, D); tgt = z3[:, 1:].detach(); zt = z3[:, 0]
    pl = 0
    preds = []
    for k in range(T - 1):
        zt = pred(zt, acts[:, k]); preds.append(zt)
    pl = ((torch.stack(preds, 1) - tgt) ** 2).mean()
    std = (z.var(0) + 1e-4).sqrt(); var = torch.relu(1 - std).mean()
    zc = z - z.mean(0); cov = zc.T @ zc / (z.shape[0] - 1); off = (cov ** 2).sum() - (torch.diagonal(cov) ** 2).sum()
    smooth = ((z3[:, 1:] - z3[:, :-1]) ** 2).mean()
    idl = ((idm(torch.cat([z3[:, :-1].reshape(-1, D), z3[:, 1:].reshape(-1, D)], 1)) - acts.reshape(-1, 2)) ** 2).mean()
    loss = pl + var + 0.04 * off / D + 0.1 * smooth + idl
    opt.zero_grad(); loss.backward(); opt.step(); loss.item()
    dt = time.time() - t0
    if it > 0: times.append(dt)
m = sum(times) / len(times)
print(f"torch {torch.__version__} threads {torch.get_num_threads()} B={B} T={T}: {m:.3f} s/step, {B*T/m:.0f} frames/s")
