"""amisim's scenes as Gymnasium environments.

Observations are uint8 images ``(H, W, 3)`` (``(num_envs, H, W, 3)`` for the vector
environment): the layout of Gymnasium's image spaces, of ``render()`` and of stable-worldmodel's
``pixels``, so that its wrappers take them as they are. amisim cuts every environment's tile out
of one rendered frame straight into this layout, in one pass and one buffer for the whole batch;
numpy views that buffer without another copy.

``info`` carries the ground truth (never what an agent should see): ``state`` (the entries
``env.state_names`` lists: ``agent_x, agent_y, heading, box_x, box_y, goal_x, goal_y``, the box's
only in a scene with a box), ``goal_state`` (the state at the goal),
``goal`` (the goal observation), ``success``, ``goal_distance``, ``collided``, ``steps``,
``layout`` (the episode's walls and doors, as datasets store them) and ``episode_seed``
(single environment: the seed that redraws this episode).
"""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from . import _amisim

#: The entries of a dataset's state rows (``states`` of ``load_dataset``).
STATE_NAMES: list[str] = _amisim.all_state_names()


def _columns(names: list[str]) -> np.ndarray:
    """Where a scene's state entries sit in a dataset's state row."""
    return np.array([STATE_NAMES.index(n) for n in names])


def _full_row(row: Any, names: list[str]) -> list[float]:
    """A scene's state row (or a dataset's full row) as a dataset's full row (NaN for a box
    the scene does not have)."""
    r = np.asarray(row, dtype=np.float32).reshape(-1)
    if len(r) == len(STATE_NAMES):
        return [float(v) for v in r]
    if len(r) != len(names):
        raise ValueError(f"state: expected {len(names)} values ({', '.join(names)}), got {len(r)}")
    full = np.full(len(STATE_NAMES), np.nan, np.float32)
    full[_columns(names)] = r
    return [float(v) for v in full]


def _array(triple: tuple[bytearray, str, list[int]]) -> np.ndarray:
    """A native ``(bytes, dtype, shape)`` triple as a numpy array viewing the bytes."""
    buf, dtype, shape = triple
    return np.frombuffer(buf, dtype=dtype).reshape(shape)


def _actions_bytes(actions: Any, n: int) -> bytes:
    a = np.asarray(actions, dtype=np.float32)
    if a.shape != (n, 2):
        raise ValueError(f"actions: expected shape ({n}, 2), got {a.shape}")
    return np.ascontiguousarray(a).tobytes()


def _seed_from(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**31))


class _Scene:
    """What the vector and the single environment share: the native environments, the spaces
    of one environment, and the batch's observations and info."""

    def _open(self, scene: str, num_envs: int, render_mode: str | None) -> tuple[spaces.Box, spaces.Box]:
        """Opens ``num_envs`` environments of ``scene``; returns one environment's observation
        and action spaces."""
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode: only 'rgb_array' is supported, got {render_mode!r}")
        self._envs = _amisim.Envs(scene, num_envs, True)
        self.scene = scene
        self.render_mode = render_mode
        self.state_names: list[str] = self._envs.state_names
        self._keep = _columns(self.state_names)
        self.max_episode_steps = self._envs.max_steps
        self._obs: np.ndarray | None = None
        #: The goal observations of the running episodes, ``(num_envs, H, W, 3)``.
        self._goal: np.ndarray | None = None
        h, w, c = self._envs.frame_shape
        high = np.array(self._envs.action_high, np.float32)
        return spaces.Box(0, 255, (h, w, c), np.uint8), spaces.Box(-high, high, (2,), np.float32)

    def _batch(self, r: dict) -> tuple[np.ndarray, dict[str, Any]]:
        """The observations and the info of every environment of a native result."""
        info = {
            "state": _array(r["state"])[:, self._keep],
            "goal_state": _array(r["goal_state"])[:, self._keep],
            "goal": self._goal.copy(),
            "success": _array(r["success"]),
            "goal_distance": _array(r["goal_distance"]),
            "collided": _array(r["collided"]),
            "steps": _array(r["steps"]).astype(np.int64),
            "layout": _array(r["layout"]),
        }
        return _array(r["obs"]), info


class AmisimVectorEnv(_Scene, VectorEnv):
    """``num_envs`` environments of one scene, drawn together in one Bevy frame.

    Autoreset is ``NEXT_STEP``: an environment whose episode ended (``terminated`` at the goal,
    ``truncated`` at the scene's step budget) ignores its next action and starts a new episode,
    returning its first observation with reward 0. ``reset(seed=s)`` draws environment ``i``'s
    episodes from its own stream of ``s``, so they do not depend on ``num_envs``.
    """

    metadata = {"render_modes": ["rgb_array"], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, scene: str = "two_rooms", num_envs: int = 1, render_mode: str | None = "rgb_array"):
        if num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        self.single_observation_space, self.single_action_space = self._open(scene, num_envs, render_mode)
        self.num_envs = num_envs
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._first_seed: int | None = None

    def reset(self, *, seed: int | Sequence[int] | None = None, options: dict | None = None):
        if seed is not None and not isinstance(seed, (int, np.integer)):
            raise TypeError(
                "seed: one int (environment i draws its episodes from its own stream of it), "
                f"got {type(seed).__name__}"
            )
        if seed is None and self._obs is None:
            seed = self._first_seed
        super().reset(seed=None if seed is None else int(seed))
        mask = None if options is None else options.get("reset_mask")
        if mask is not None and self._obs is not None and seed is None:
            which = [int(i) for i in np.flatnonzero(np.asarray(mask, dtype=bool))]
            r = self._envs.restart(which)
        else:
            s = _seed_from(self.np_random) if seed is None else int(seed)
            r = self._envs.reset(s)
        self._goal = _array(self._envs.goal_frames())
        obs, info = self._unpack(r)
        return obs, info

    def step(self, actions: Any):
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        r = self._envs.step(_actions_bytes(actions, self.num_envs))
        if np.frombuffer(r["started"][0], dtype=bool).any():
            self._goal = _array(self._envs.goal_frames())
        obs, info = self._unpack(r)
        return (
            obs,
            _array(r["reward"]),
            _array(r["terminated"]),
            _array(r["truncated"]),
            info,
        )

    def _unpack(self, r: dict) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self._batch(r)
        info["started"] = _array(r["started"])
        self._obs = obs
        return obs, info

    def render(self) -> np.ndarray | None:
        """The current observations, ``(num_envs, H, W, 3)``."""
        return None if self._obs is None else self._obs.copy()

    @property
    def non_finite_actions(self) -> int:
        """Action components that were NaN or inf so far (the world took 0 for each)."""
        return self._envs.non_finite_actions


class AmisimEnv(_Scene, gym.Env):
    """One environment of a scene (``render_mode="rgb_array"``).

    Every episode is drawn from a seed of its own: ``reset(seed=s)`` draws it from ``s``, a
    plain ``reset()`` from a seed drawn from the environment's generator; ``info["episode_seed"]``
    names it, so ``reset(seed=info["episode_seed"])`` redraws the same episode (layout, start,
    goal). stable-worldmodel's dataset evaluation does that with the hooks ``_set_episode``
    (the layout of a recorded episode), ``_set_state`` (the agent) and ``_set_goal_state``
    (the goal), called in that order.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, scene: str = "two_rooms", render_mode: str | None = "rgb_array"):
        self.observation_space, self.action_space = self._open(scene, 1, render_mode)
        self._seed = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if isinstance(seed, np.ndarray) and seed.size == 1:
            # A dataset's `seed` column, one row of it (stable-worldmodel's dataset evaluation).
            seed = int(seed.reshape(-1)[0])
        elif isinstance(seed, np.integer):
            seed = int(seed)
        super().reset(seed=seed)
        self._seed = int(seed) if seed is not None else _seed_from(self.np_random)
        r = self._envs.reset(self._seed)
        self._goal = _array(self._envs.goal_frames())
        options = options or {}
        if options.get("state") is not None:
            r = self._place(options["state"])
        if options.get("goal_state") is not None:
            self._set_goal_state(options["goal_state"])
        return self._unpack(r)

    def step(self, action: Any):
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        a = np.asarray(action, dtype=np.float32)
        if a.shape != (2,):
            raise ValueError(f"action: expected shape (2,), got {a.shape}")
        r = self._envs.step(a.tobytes())
        obs, info = self._unpack(r)
        return (
            obs,
            float(_array(r["reward"])[0]),
            bool(_array(r["terminated"])[0]),
            bool(_array(r["truncated"])[0]),
            info,
        )

    def render(self) -> np.ndarray | None:
        return None if self._obs is None else self._obs.copy()

    def goal_observation(self) -> np.ndarray | None:
        """The goal observation of the running episode, as the environment draws it."""
        return None if self._goal is None else self._goal[0].copy()

    # stable-worldmodel's hooks for its dataset evaluation.
    def _set_episode(self, episode_seed: Any) -> None:
        """Redraws the episode of a recorded ``episode_seed`` (its layout, start and goal)."""
        self.reset(seed=int(np.asarray(episode_seed).reshape(-1)[0]))

    def _set_state(self, state: Any) -> None:
        """Moves the agent (and box) to where a ``state`` row has them, in this episode."""
        self._unpack(self._place(state))

    def _set_goal_state(self, goal_state: Any) -> None:
        """Makes the agent's place in a ``state`` row (the box's, in a scene with one) the goal."""
        self._envs.set_goal(0, _full_row(goal_state, self.state_names))
        self._goal = _array(self._envs.goal_frames())

    def _place(self, state: Any) -> dict:
        return self._envs.set_agent(0, _full_row(state, self.state_names))

    def _unpack(self, r: dict) -> tuple[np.ndarray, dict[str, Any]]:
        obs, b = self._batch(r)
        self._obs = obs = obs[0]
        state = b["state"][0]
        info = {
            "state": state,
            "goal_state": b["goal_state"][0],
            "proprio": state[:3].copy(),
            "goal": b["goal"][0],
            "success": bool(b["success"][0]),
            "goal_distance": float(b["goal_distance"][0]),
            "collided": bool(b["collided"][0]),
            "steps": int(b["steps"][0]),
            "layout": b["layout"][0],
            "episode_seed": self._seed,
        }
        return obs, info

def make(scene: str = "two_rooms", render_mode: str | None = "rgb_array") -> AmisimEnv:
    """One environment of ``scene``: a shipped scene's name or a path to a scene file."""
    return AmisimEnv(scene, render_mode=render_mode)


def make_vec(scene: str = "two_rooms", num_envs: int = 1, seed: int | None = None) -> AmisimVectorEnv:
    """``num_envs`` environments of ``scene`` in one vector environment; its first ``reset()``
    without a seed takes ``seed``."""
    env = AmisimVectorEnv(scene, num_envs)
    env._first_seed = seed
    return env
