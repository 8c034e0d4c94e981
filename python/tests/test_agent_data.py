"""The agent as a policy, its world model, and datasets from and for Python."""

import numpy as np
import pytest

import amisim


@pytest.fixture(scope="module")
def agent():
    return amisim.Agent.load("two_rooms", num_envs=2)


def test_agent_acts_on_the_vector_envs_observations(agent):
    env = amisim.make_vec("two_rooms", num_envs=2, seed=5)
    obs, info = env.reset()
    actions = agent.act(obs, info["goal"], reset=np.ones(2, bool))
    assert actions.shape == (2, 2) and actions.dtype == np.float32 and np.isfinite(actions).all()
    assert actions in env.action_space
    t = agent.trace()
    assert t["planned"].shape == (2,) and t["planned"].all()
    L = t["plan_actions"].shape[1]
    assert L > 0 and t["plan_actions"].shape == (2, L, 2)
    assert t["imagined"].shape[:2] == (2, L) and np.isfinite(t["imagined"]).all()
    # The first planned action is the action taken.
    np.testing.assert_allclose(t["plan_actions"][:, 0], actions, atol=1e-5)
    obs, *_ = env.step(actions)
    assert agent.act(obs, info["goal"]).shape == (2, 2)


def test_agent_rejects_wrong_batches(agent):
    frames = np.zeros((3, 65, 65, 3), np.uint8)
    with pytest.raises(ValueError, match="acts in 2 environments"):
        agent.act(frames, frames)
    with pytest.raises(ValueError, match="uint8"):
        agent.act(np.zeros((2, 65, 65, 3), np.float32), np.zeros((2, 65, 65, 3), np.float32))


def test_load_needs_a_scene_for_a_preset():
    with pytest.raises(ValueError, match="scene="):
        amisim.Agent.load("cem")
    with pytest.raises(amisim.AmisimError, match="offers"):
        amisim.Agent.load("no_such_preset", scene="two_rooms")


def test_encode_and_predict(agent):
    env = amisim.make_vec("two_rooms", num_envs=3, seed=2)
    obs, _ = env.reset()
    z = agent.encode(obs)
    assert z.shape == (3, agent.latent_dim) and np.isfinite(z).all()
    # CHW frames give the same latents.
    np.testing.assert_array_equal(agent.encode(obs.transpose(0, 3, 1, 2)), z)
    pred = agent.predict(z, np.zeros((3, 4, 2), np.float32))
    assert pred.shape == (3, 4, agent.latent_dim) and np.isfinite(pred).all()
    with pytest.raises(ValueError):
        agent.predict(z, np.zeros((2, 4, 2), np.float32))


def test_dataset_round_trip(tmp_path):
    n, t = 3, 4
    env = amisim.make_vec("two_rooms", num_envs=n, seed=1)
    obs, info = env.reset()
    frames, states, actions = [obs.copy()], [info["state"].copy()], []
    layout = info["layout"].copy()
    rng = np.random.default_rng(0)
    for _ in range(t):
        a = rng.uniform(-2, 2, (n, 2)).astype(np.float32)
        obs, *_, info = env.step(a)
        frames.append(obs.copy())
        states.append(info["state"].copy())
        actions.append(a)
    frames = np.stack(frames, 1)
    states = np.stack(states, 1)
    actions = np.stack(actions, 1)
    amisim.write_dataset(tmp_path / "d", "two_rooms", frames, actions, states, layout=layout)
    d = amisim.load_dataset(tmp_path / "d")
    assert d["header"]["scene"] == "two_rooms" and d["header"]["episodes"] == n
    np.testing.assert_array_equal(d["frames"], frames.transpose(0, 1, 4, 2, 3))
    np.testing.assert_array_equal(d["actions"], actions)
    # The dataset keeps the full state row (NaN for the box Two-Rooms does not have).
    assert d["states"].shape == (n, t + 1, len(amisim.STATE_NAMES))
    cols = [amisim.STATE_NAMES.index(c) for c in env.state_names]
    np.testing.assert_array_equal(d["states"][..., cols], states)
    assert np.isnan(d["states"][..., amisim.STATE_NAMES.index("box_x")]).all()
    np.testing.assert_array_equal(d["layout"], layout)
    with pytest.raises(ValueError, match="actions"):
        amisim.write_dataset(tmp_path / "e", "two_rooms", frames, actions[:, :2], states)
    with pytest.raises(amisim.AmisimError, match="header.json"):
        amisim.load_dataset(tmp_path / "nothing")


def test_agent_follows_next_step_autoreset(agent, short_scene):
    """The agent forgets an environment when its new episode starts (`info["started"]`)."""
    env = amisim.make_vec(short_scene, num_envs=2, seed=3)
    obs, info = env.reset()
    started = np.ones(2, bool)
    goals = [info["goal"].copy()]
    for _ in range(5):
        actions = agent.act(obs, info["goal"], reset=started)
        obs, reward, terminated, truncated, info = env.step(actions)
        started = info["started"]
        goals.append(info["goal"].copy())
    # 3-step episodes: new episodes (and goals) began at the 4th step.
    assert not np.array_equal(goals[0], goals[4])
    assert agent.trace()["planned"].all()
