"""Observations per second through Python, beside `amisim bench env` and stable-worldmodel.

One run, side by side on one machine: (1) `amisim bench env` (Rust, no Python), (2) a Python
loop stepping `amisim.make_vec(scene, N)` with random actions, (3) the same loop over
stable-worldmodel's `swm.World("swm/TwoRoom-v1", N, image_shape=(64, 64))` when it is installed.

    python python/examples/throughput.py --envs 256 --seconds 10 [--amisim target/release/amisim]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import time

import numpy as np

import amisim

REPO = pathlib.Path(__file__).resolve().parents[2]


def python_loop(scene: str, n: int, seconds: float) -> tuple[float, int]:
    env = amisim.make_vec(scene, num_envs=n, seed=0)
    env.reset()
    rng = np.random.default_rng(0)
    m = float(env.single_action_space.high[0])
    for _ in range(2):
        env.step(rng.uniform(-m, m, (n, 2)).astype(np.float32))
    steps, start = 0, time.perf_counter()
    while steps < 3 or time.perf_counter() - start < seconds:
        obs, reward, terminated, truncated, info = env.step(rng.uniform(-m, m, (n, 2)).astype(np.float32))
        steps += 1
    secs = time.perf_counter() - start
    env.close()
    return n * steps / secs, steps


def rust_bench(binary: str, scene: str, n: int, seconds: float) -> float:
    out = subprocess.run(
        [binary, "bench", "env", "--scene", scene, "--envs", str(n), "--seconds", str(seconds), "--json"],
        check=True, capture_output=True, text=True,
    ).stdout
    return float(json.loads(out)[0]["obs_per_s"])


def swm_loop(n: int, seconds: float) -> float | None:
    try:
        import stable_worldmodel as swm
    except ImportError:
        return None
    world = swm.World("swm/TwoRoom-v1", num_envs=n, image_shape=(64, 64), max_episode_steps=100_000)
    world.reset(seed=0)
    space = world.envs.action_space
    rng = np.random.default_rng(0)
    lo, hi = space.low, space.high
    world.envs.step(rng.uniform(lo, hi).astype(np.float32))
    steps, start = 0, time.perf_counter()
    while steps < 3 or time.perf_counter() - start < seconds:
        world.envs.step(rng.uniform(lo, hi).astype(np.float32))
        steps += 1
    secs = time.perf_counter() - start
    world.close()
    return n * steps / secs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scene", default="two_rooms")
    ap.add_argument("--envs", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--amisim", default=str(REPO / "target" / "release" / "amisim"))
    ap.add_argument("--no-swm", action="store_true")
    a = ap.parse_args()
    rust = rust_bench(a.amisim, a.scene, a.envs, a.seconds)
    py, steps = python_loop(a.scene, a.envs, a.seconds)
    rust2 = rust_bench(a.amisim, a.scene, a.envs, a.seconds)
    sw = None if a.no_swm else swm_loop(a.envs, a.seconds)
    print(f"{'what':<48} {'envs':>5} {'obs/s':>10}")
    print(f"{'amisim bench env (Rust), before':<48} {a.envs:>5} {rust:>10.0f}")
    print(f"{'amisim.make_vec, Python loop, random actions':<48} {a.envs:>5} {py:>10.0f}")
    print(f"{'amisim bench env (Rust), after':<48} {a.envs:>5} {rust2:>10.0f}")
    if sw is not None:
        print(f"{'stable-worldmodel World swm/TwoRoom-v1 (64x64)':<48} {a.envs:>5} {sw:>10.0f}")
    mean = (rust + rust2) / 2
    print(f"Python / Rust: {py / mean:.1%} (of the mean of the two Rust runs; {steps} Python steps)")
    if sw is not None:
        print(f"amisim from Python / stable-worldmodel: {py / sw:.1f}x")


if __name__ == "__main__":
    main()
