"""amisim's agent as a batched policy, and its first world model for your own planning."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from . import _amisim
from .envs import _array


def _chw(frames: Any, what: str) -> np.ndarray:
    """Frames ``(N, H, W, 3)`` or ``(N, 3, H, W)`` uint8 as contiguous ``(N, 3, H, W)``."""
    f = np.asarray(frames)
    if f.dtype != np.uint8 or f.ndim != 4:
        raise ValueError(f"{what}: expected uint8 frames (N, H, W, 3) or (N, 3, H, W), got {f.dtype} {f.shape}")
    if f.shape[-1] == 3 and f.shape[1] != 3:
        f = f.transpose(0, 3, 1, 2)
    elif f.shape[1] != 3:
        raise ValueError(f"{what}: expected 3 channels first or last, got shape {f.shape}")
    return np.ascontiguousarray(f)


class Agent:
    """An agent — a spec and its world models — acting in ``num_envs`` environments at once.

    ``Agent.load("two_rooms")`` is the scene's shipped default agent (what ``amisim eval``
    runs); ``Agent.load("cem", scene="two_rooms")`` a preset of the scene's folder;
    ``Agent.load("runs/tr", scene="two_rooms")`` a ``train --all`` folder or a spec file;
    ``"random"`` the random baseline. ``sets`` are ``KEY=VALUE`` entries of the spec, as
    ``--set`` on the command line.
    """

    def __init__(self, native: Any, seed: int):
        self._agent = native
        self._seed = seed
        self._episodes = 0

    @classmethod
    def load(
        cls,
        agent: str = "two_rooms",
        *,
        scene: str | None = None,
        num_envs: int = 1,
        sets: Sequence[str] = (),
        seed: int = 0,
    ) -> "Agent":
        if scene is None:
            if agent in _amisim.shipped_scenes():
                scene, agent = agent, "default"
            else:
                raise ValueError(
                    f"Agent.load({agent!r}): give the scene it acts in (scene=...), "
                    f"or a shipped scene's name for its default agent: {', '.join(_amisim.shipped_scenes())}"
                )
        if num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        return cls(_amisim.Agent(agent, scene, num_envs, list(sets)), seed)

    @property
    def name(self) -> str:
        return self._agent.name

    @property
    def num_envs(self) -> int:
        return self._agent.num_envs

    @property
    def spec(self) -> str:
        """The spec, as ``amisim eval`` prints it."""
        return self._agent.spec

    @property
    def latent_dim(self) -> int:
        return self._agent.latent_dim

    def reset(self, envs: Any = None) -> None:
        """Environments ``envs`` (indices or a boolean mask; all when None) start new episodes:
        the agent forgets their plans and memories."""
        n = self.num_envs
        if envs is None:
            which = range(n)
        else:
            e = np.asarray(envs)
            which = np.flatnonzero(e) if e.dtype == bool else e.reshape(-1)
        for i in which:
            self._agent.reset(int(i), self._seed + self._episodes)
            self._episodes += 1

    def act(self, obs: Any, goal: Any, *, reset: Any = None, active: Any = None) -> np.ndarray:
        """Actions ``(num_envs, 2)`` float32 for observations and goal observations
        ``(num_envs, H, W, 3)`` (or ``(num_envs, 3, H, W)``) uint8. ``reset``: the environments
        whose episode starts with this observation (a mask: ``info["started"]`` of the vector
        environment, whose new episodes begin at the step after the one that ended them);
        ``active``: the environments to act in (the others get 0)."""
        if reset is not None:
            self.reset(reset)
        o, g = _chw(obs, "obs"), _chw(goal, "goal")
        n = self.num_envs
        if o.shape[0] != n or g.shape != o.shape:
            raise ValueError(f"the agent acts in {n} environments; got obs {o.shape} and goal {g.shape}")
        act = None if active is None else [int(i) for i in np.flatnonzero(np.asarray(active, dtype=bool))]
        return _array(self._agent.act(o.tobytes(), g.tobytes(), list(o.shape[1:]), act)).copy()

    def trace(self) -> dict[str, Any]:
        """What the last ``act`` did, per environment: ``planned``, ``model`` (the world model
        that acted), ``mode1``, ``cost``, ``plan_actions`` ``(N, L, 2)`` and ``imagined``
        ``(N, L, D)`` (NaN where no plan was made), ``encode_ms``, ``plan_ms``."""
        t = self._agent.trace()
        return {k: (_array(v) if isinstance(v, tuple) else v) for k, v in t.items()}

    def encode(self, frames: Any) -> np.ndarray:
        """The first world model's latents ``(B, D)`` of frames ``(B, H, W, 3)`` uint8."""
        f = _chw(frames, "frames")
        return _array(self._agent.encode(f.tobytes(), list(f.shape))).copy()

    def predict(self, z: Any, actions: Any) -> np.ndarray:
        """The first world model's open-loop prediction ``(B, T, D)`` from latents ``(B, D)``
        under actions ``(B, T, 2)``: step ``k`` is the latent after action ``k``."""
        z = np.ascontiguousarray(z, dtype=np.float32)
        a = np.ascontiguousarray(actions, dtype=np.float32)
        if z.ndim != 2 or a.ndim != 3 or a.shape[0] != z.shape[0] or a.shape[2] != 2:
            raise ValueError(f"predict: expected z (B, D) and actions (B, T, 2), got {z.shape} and {a.shape}")
        return _array(self._agent.predict(z.tobytes(), z.shape[0], a.tobytes(), a.shape[1])).copy()
