"""amisim's Two-Rooms under stable-worldmodel's planning protocol, beside its baselines.

Runs stable-worldmodel's own harness over amisim's scene: `swm.World("amisim/TwoRooms-v0")`
collects a dataset with a random policy, then `World.evaluate` in its dataset mode scores
policies the way its `scripts/plan/eval_wm.py` does (50 episodes; each starts at a dataset
state and has the state 25 steps later as its goal, image and state; 50 steps; success =
`terminated`, i.e. within the scene's success radius of the goal):

- random: `swm.policy.RandomPolicy`;
- CEM: `swm.solver.CEMSolver` in `swm.policy.WorldModelPolicy` (horizon 5, receding horizon 5,
  action blocks of 5, as its TwoRoom config; 300 samples, 30 iterations, top 30) with an objective
  of its own: the true state moved in a straight line by the summed actions, to the goal state
  (privileged: it reads the true positions, and knows nothing of the wall);
- amisim: the shipped default Two-Rooms agent (`amisim.Agent.load("two_rooms")`), from the
  observation and the goal image alone: once with the images the protocol hands every policy
  (its dataset's, which stable-worldmodel stores as JPEG: on amisim's frames a mean absolute
  error of about 7 of 255, up to 107 at the agent's and walls' edges), once with the same
  states drawn by the environments themselves.

Needs PyTorch and stable-worldmodel (`pip install stable-worldmodel opencv-python-headless
imageio`) besides amisim (`pip install ./python`). Run from the repository root:

    python python/examples/swm_two_rooms.py [--episodes 50] [--collect 200] [--seed 42]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import pathlib
import shutil
import tempfile
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")

ENV = "amisim/TwoRooms-v0"
GOAL_OFFSET, BUDGET = 25, 50


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=50, help="evaluation episodes (the protocol's 50)")
    ap.add_argument("--collect", type=int, default=200, help="random-policy episodes to collect")
    ap.add_argument("--seed", type=int, default=42, help="the protocol's sampling seed")
    ap.add_argument("--home", default=None, help="STABLEWM_HOME (default: a temporary folder)")
    ap.add_argument("--cem-samples", type=int, default=300)
    ap.add_argument("--cem-iterations", type=int, default=30)
    a = ap.parse_args()
    os.environ.setdefault("STABLEWM_HOME", a.home or tempfile.mkdtemp(prefix="swm-"))

    import stable_worldmodel as swm
    import torch

    import amisim

    amisim.register_stable_worldmodel()
    n = a.episodes

    # 1. Collect with stable-worldmodel's World over amisim's scene.
    t0 = time.perf_counter()
    data = pathlib.Path(os.environ["STABLEWM_HOME"]).resolve() / "amisim_tworooms_random.lance"
    shutil.rmtree(data, ignore_errors=True)
    world = swm.World(ENV, num_envs=10, image_shape=(65, 65), max_episode_steps=100)
    world.set_policy(swm.policy.RandomPolicy(seed=0))
    world.collect(str(data), episodes=a.collect, seed=0, progress=False)
    world.close()
    # The columns the protocol reads. (stable-worldmodel 0.1.1 turns image columns other than
    # `pixels` channels-first when it loads them and then writes them back into the running
    # environments' info, whose `observation` is channels-last: leave those columns out.)
    ds = swm.data.load_dataset(str(data), keys_to_load=["pixels", "state", "proprio", "action", "episode_seed"])
    print(f"collected {a.collect} episodes ({len(ds.get_col_data('step_idx'))} steps) in {time.perf_counter() - t0:.0f} s")

    # 2. The protocol's start states (eval_wm.py): rows that have a goal 25 steps ahead.
    ep, st = ds.get_col_data("episode_idx"), ds.get_col_data("step_idx")
    lens = np.array([st[ep == e].max() + 1 for e in np.unique(ep)])
    valid = np.nonzero(st <= lens[ep] - GOAL_OFFSET - 1)[0]
    rows = np.sort(valid[np.random.default_rng(a.seed).choice(len(valid) - 1, size=n, replace=False)])
    callables = [
        {"method": "_set_episode", "args": {"episode_seed": {"value": "episode_seed"}}},
        {"method": "_set_state", "args": {"state": {"value": "state"}}},
        {"method": "_set_goal_state", "args": {"goal_state": {"value": "goal_state"}}},
    ]
    protocol = dict(
        dataset=ds,
        episodes_idx=ep[rows].tolist(),
        start_steps=st[rows].tolist(),
        goal_offset=GOAL_OFFSET,
        eval_budget=BUDGET,
        callables=callables,
    )
    world = swm.World(ENV, num_envs=n, image_shape=(65, 65), max_episode_steps=2 * BUDGET)
    max_action = float(world.envs.single_action_space.high[0])

    class StraightLineCost:
        """The true state moved by the summed actions (no walls), to the goal state."""

        def get_cost(self, info, candidates):
            b, s, h, d = candidates.shape
            steps = candidates.reshape(b, s, h * d // 2, 2).clamp(-max_action, max_action)
            pos = info["state"][:, :, -1, :2].float() + steps.sum(2)
            return (pos - info["goal_state"][:, :, -1, :2].float()).norm(dim=-1)

    class AmisimPolicy(swm.policy.BasePolicy):
        """amisim's agent from the observation and the goal image: the protocol's (`pixels`
        and `goal` of the info, which it takes from its dataset, stored as JPEG), or the
        environments' own (drawn losslessly, of the same states)."""

        def __init__(self, agent, lossless=False):
            super().__init__()
            self.agent = agent
            self.type = "amisim"
            self.fresh = True
            self.lossless = lossless

        def get_action(self, info, **kw):
            if self.lossless:
                envs = [e.unwrapped for e in world.envs.envs]
                obs = np.stack([e.render() for e in envs])
                goal = np.stack([e.goal_observation() for e in envs])
            else:
                obs = np.asarray(info["pixels"][:, -1], dtype=np.uint8)
                goal = np.asarray(info["goal"][:, -1], dtype=np.uint8)
            reset = np.ones(len(obs), bool) if self.fresh else None
            self.fresh = False
            return self.agent.act(obs, goal, reset=reset)

    rows_out = []

    def run(name, policy, quiet=False):
        world.set_policy(policy)
        t = time.perf_counter()
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf) if quiet else contextlib.nullcontext():
            r = world.evaluate(**protocol)
        secs = time.perf_counter() - t
        rows_out.append((name, r["success_rate"], int(np.sum(r["episode_successes"])), secs))
        print(f"{name}: {r['success_rate']:.1f} % ({int(np.sum(r['episode_successes']))}/{n}) in {secs:.0f} s", flush=True)

    run("random (swm RandomPolicy)", swm.policy.RandomPolicy(seed=0))
    torch.manual_seed(0)
    solver = swm.solver.CEMSolver(
        StraightLineCost(), batch_size=n, num_samples=a.cem_samples, n_steps=a.cem_iterations, topk=30, device="cpu"
    )
    cfg = swm.PlanConfig(horizon=5, receding_horizon=5, action_block=5)
    run(
        f"CEM {a.cem_samples}x{a.cem_iterations}, straight-line cost on the true state (swm solver)",
        swm.policy.WorldModelPolicy(solver=solver, config=cfg),
        quiet=True,
    )
    run("amisim default agent (the protocol's JPEG images)", AmisimPolicy(amisim.Agent.load("two_rooms", num_envs=n)))
    run(
        "amisim default agent (the environments' lossless images)",
        AmisimPolicy(amisim.Agent.load("two_rooms", num_envs=n), lossless=True),
    )

    print()
    print(f"stable-worldmodel protocol on {ENV}: {n} episodes, goal {GOAL_OFFSET} steps ahead, {BUDGET}-step budget, seed {a.seed}")
    print("| policy | success | episodes | wall time |")
    print("|---|---|---|---|")
    for name, rate, k, secs in rows_out:
        print(f"| {name} | {rate:.1f} % | {k}/{n} | {secs:.0f} s |")


if __name__ == "__main__":
    main()
