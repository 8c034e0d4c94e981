"""Datasets: the episodes ``amisim collect`` (and ``eval --record``) write, as numpy arrays, and
episodes written from Python that ``amisim train --data DIR`` reads.

A dataset folder holds ``header.json`` and safetensors shards; without amisim, one shard is two
lines: ``from safetensors.numpy import load_file; t = load_file("DIR/shard-00000.safetensors")``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from . import _amisim
from .envs import STATE_NAMES, _array, _columns


def load_dataset(path: str) -> dict[str, Any]:
    """Every shard of a dataset folder: ``frames`` ``(E, T+1, 3, H, W)`` uint8, ``actions``
    ``(E, T, 2)``, ``states`` ``(E, T+1, 7)`` (``STATE_NAMES``), ``layout`` ``(E, L)`` float32,
    and ``header`` (the folder's ``header.json``)."""
    d = _amisim.load_dataset(str(path))
    out: dict[str, Any] = {k: _array(v) for k, v in d.items() if k != "header"}
    out["header"] = json.loads(d["header"])
    return out


def write_dataset(
    path: str,
    scene: str,
    frames: Any,
    actions: Any,
    states: Any,
    *,
    layout: Any = None,
    collided: Any = None,
    policy: str = "python",
    seed: int = 0,
) -> str:
    """Writes episodes of one length as a dataset folder ``amisim train --data`` reads.

    ``frames`` ``(E, T+1, H, W, 3)`` or ``(E, T+1, 3, H, W)`` uint8, ``actions`` ``(E, T, 2)``,
    ``states`` ``(E, T+1, 7)`` or the scene's ``(E, T+1, S)`` (``info["state"]``), ``layout`` ``(E, L)`` (``info["layout"]``
    of each episode; needed by the layout probes, zeros when not given), ``collided``
    ``(E, T+1)``. Returns the shard's path."""
    f = np.asarray(frames)
    if f.dtype != np.uint8 or f.ndim != 5:
        raise ValueError(f"frames: expected uint8 (E, T+1, H, W, 3) or (E, T+1, 3, H, W), got {f.dtype} {f.shape}")
    if f.shape[-1] == 3 and f.shape[2] != 3:
        f = f.transpose(0, 1, 4, 2, 3)
    f = np.ascontiguousarray(f)
    e, t1 = f.shape[:2]
    a = np.ascontiguousarray(actions, dtype=np.float32)
    s = np.ascontiguousarray(states, dtype=np.float32)
    if a.shape != (e, t1 - 1, 2):
        raise ValueError(f"actions: expected shape ({e}, {t1 - 1}, 2), got {a.shape}")
    names = _amisim.state_names(scene)
    if s.shape == (e, t1, len(names)) and len(names) != len(STATE_NAMES):
        full = np.full((e, t1, len(STATE_NAMES)), np.nan, np.float32)
        full[..., _columns(names)] = s
        s = full
    if s.shape != (e, t1, len(STATE_NAMES)):
        raise ValueError(
            f"states: expected shape ({e}, {t1}, {len(names)}) ({', '.join(names)}) "
            f"or ({e}, {t1}, {len(STATE_NAMES)}), got {s.shape}"
        )
    columns = _amisim.layout_columns(scene)
    lay = np.zeros((e, len(columns)), np.float32) if layout is None else np.ascontiguousarray(layout, dtype=np.float32)
    if lay.ndim != 2 or lay.shape[0] != e:
        raise ValueError(f"layout: expected shape ({e}, {len(columns)}), got {lay.shape}")
    col = np.zeros((e, t1), np.uint8) if collided is None else np.ascontiguousarray(collided, dtype=np.uint8)
    return _amisim.write_dataset(
        str(path), scene, f.tobytes(), list(f.shape), a.tobytes(), s.tobytes(), col.tobytes(),
        lay.tobytes(), lay.shape[1], policy, int(seed),
    )
