# Shared by the PyTorch twins of `amisim bench plan`: seconds per call of `plan`, off autodiff,
# after one warm-up call, averaged over `reps` calls.
import time, torch

def seconds_per_plan(plan, reps=5):
    with torch.no_grad():
        plan()
        t0 = time.time()
        for _ in range(reps):
            plan()
        return (time.time() - t0) / reps
