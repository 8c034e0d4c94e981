"""amisim from Python.

- ``make(scene)`` / ``make_vec(scene, num_envs, seed)``: a scene as a Gymnasium environment or
  vector environment (observations ``(H, W, 3)`` uint8; ``info`` with the ground truth and the
  goal observation). The shipped scenes are registered with Gymnasium on import:
  ``gymnasium.make("amisim/TwoRooms-v0")``, ``gymnasium.make_vec("amisim/TwoRooms-v0", 64)``.
- ``Agent.load(scene)``: the scene's shipped agent as a batched policy (``act(obs, goal)``),
  its plan trace, and its world model's ``encode`` / ``predict``.
- ``load_dataset(dir)`` / ``write_dataset(dir, …)``: collected episodes as numpy arrays, and
  episodes from Python for ``amisim train --data``.
- ``register_stable_worldmodel()``: the scenes as stable-worldmodel environments.
"""

from __future__ import annotations

import gymnasium as _gym

from ._amisim import AmisimError, SceneError, layout_columns, shipped_scenes
from .agent import Agent
from .data import load_dataset, write_dataset
from .envs import STATE_NAMES, AmisimEnv, AmisimVectorEnv, make, make_vec

__all__ = [
    "Agent",
    "AmisimEnv",
    "AmisimError",
    "AmisimVectorEnv",
    "SceneError",
    "STATE_NAMES",
    "env_ids",
    "layout_columns",
    "load_dataset",
    "make",
    "make_vec",
    "register_stable_worldmodel",
    "shipped_scenes",
    "write_dataset",
]


def _env_name(scene: str) -> str:
    """``two_rooms`` → ``TwoRooms``, ``room_3d`` → ``Room3d``."""
    return "".join(part[:1].upper() + part[1:] for part in scene.split("_"))


def env_ids() -> dict[str, str]:
    """The Gymnasium id of every shipped scene (``amisim/TwoRooms-v0`` → ``two_rooms``)."""
    return {f"amisim/{_env_name(s)}-v0": s for s in shipped_scenes()}


def _register() -> None:
    for env_id, scene in env_ids().items():
        if env_id in _gym.registry:
            continue
        _gym.register(
            id=env_id,
            entry_point="amisim.envs:AmisimEnv",
            vector_entry_point="amisim.envs:AmisimVectorEnv",
            kwargs={"scene": scene},
        )


def register_stable_worldmodel() -> list[str]:
    """Registers the shipped scenes with stable-worldmodel (``stable_worldmodel.envs.register``,
    as its guide for new environments says), so ``swm.World("amisim/TwoRooms-v0", …)`` and its
    command line find them. Returns the ids."""
    from stable_worldmodel.envs import register  # imported here: it pulls in PyTorch

    ids = []
    for env_id, scene in env_ids().items():
        register(id=env_id, entry_point=AmisimEnv, kwargs={"scene": scene})
        ids.append(env_id)
    return ids


_register()
