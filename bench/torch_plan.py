# PyTorch twin of `amisim bench plan`: one plan = candidates x horizon x iterations steps of
# amisim's default predictor (residual MLP 66->256->256->64), no autodiff, the squared goal
# distance read back each iteration. Run right after `amisim bench plan` on the same machine:
#   python bench/torch_plan.py 300 16 10      # candidates, horizon, iterations
import sys, torch, torch.nn as nn
from twin import seconds_per_plan
torch.manual_seed(0)
n, H, iters = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
lat, hid = 64, 256
l1, l2, l3 = nn.Linear(lat + 2, hid), nn.Linear(hid, hid), nn.Linear(hid, lat)
goal = torch.full((1, lat), 0.5)
def plan():
    for _ in range(iters):
        acts = torch.randn(n, H, 2); z = torch.zeros(n, lat); cost = torch.zeros(n)
        for k in range(H):
            h = torch.relu(l2(torch.relu(l1(torch.cat([z, acts[:, k]], 1)))))
            z = z + l3(h)
            cost = cost + ((z - goal) ** 2).sum(1)
        cost.tolist()
dt = seconds_per_plan(plan)
flop = 2 * ((lat + 2) * hid + hid * hid + hid * lat) * n * H * iters
print(f"torch {torch.__version__} threads {torch.get_num_threads()} n={n} H={H} iters={iters}: "
      f"{dt * 1e3:.1f} ms/plan, {n * H * iters / dt:.0f} rollout steps/s, {flop / dt / 1e9:.1f} GFLOP/s")
