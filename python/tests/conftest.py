import pathlib
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def short_scene(tmp_path):
    """Two-Rooms with 3-step episodes, as a scene file of its own."""
    text = (REPO / "scenes" / "two_rooms.ron").read_text()
    text = re.sub(r"max_steps: \d+", "max_steps: 3", text)
    p = tmp_path / "short_rooms.ron"
    p.write_text(text)
    return str(p)
