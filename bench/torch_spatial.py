# PyTorch twin of the spatial row of `amisim bench plan`: one plan = candidates x horizon x
# iterations environment steps of the spatial predictor in the shipped Two-Rooms spatial
# model's shape (4 channels on a 17x17 map; 3x3 convolutions 12->16->16->4 with the 4 actions
# of a jump as 8 broadcast channels; one jump per 4 steps) and the encoder's read-out (the map
# flattened + each channel's soft-argmax -> 64), no autodiff, the squared goal distance of
# every read-out read back each iteration. Run right after `amisim bench plan`:
#   python bench/torch_spatial.py 300 16 10      # candidates, horizon (steps), iterations
import sys, torch, torch.nn as nn
from twin import seconds_per_plan
torch.manual_seed(0)
n, H, iters = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
c, side, k, hid, lat = 4, 17, 4, 16, 64
convs = [nn.Conv2d(c + 2 * k, hid, 3, padding=1), nn.Conv2d(hid, hid, 3, padding=1), nn.Conv2d(hid, c, 3, padding=1)]
head = nn.Linear(c * side * side + 2 * c, lat)
coord = torch.linspace(-1, 1, side)
gx, gy = coord.repeat(side), coord.repeat_interleave(side)
goal = torch.full((1, lat), 0.5)
def readout(m):
    a = torch.softmax(m.flatten(2), 2)
    return head(torch.cat([m.flatten(1), (a * gx).sum(2), (a * gy).sum(2)], 1))
def plan():
    for _ in range(iters):
        acts = torch.randn(n, H, 2); m = torch.full((n, c, side, side), 0.1); cost = torch.zeros(n)
        for j in range(H // k):
            a = acts[:, j * k:(j + 1) * k].reshape(n, 2 * k, 1, 1).expand(n, 2 * k, side, side)
            x = torch.cat([m, a], 1)
            x = torch.relu(convs[0](x)); x = torch.relu(convs[1](x)); m = m + convs[2](x)
            cost = cost + ((readout(m) - goal) ** 2).sum(1)
        cost.tolist()
dt = seconds_per_plan(plan)
cells = side * side
flop = (2 * cells * 9 * ((c + 2 * k) * hid + hid * hid + hid * c) + 2 * (c * cells + 2 * c) * lat) / k * n * H * iters
print(f"torch {torch.__version__} threads {torch.get_num_threads()} spatial n={n} H={H} iters={iters}: "
      f"{dt * 1e3:.1f} ms/plan, {n * H * iters / dt:.0f} rollout steps/s, {flop / dt / 1e9:.1f} GFLOP/s")
