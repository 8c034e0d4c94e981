"""The Gymnasium contract of amisim's environments."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

import amisim


def test_single_env_passes_gymnasiums_checker():
    env = amisim.make("two_rooms")
    check_env(env, skip_render_check=False)
    env.close()


def test_registered_with_gymnasium():
    assert "amisim/TwoRooms-v0" in amisim.env_ids()
    env = gym.make("amisim/TwoRooms-v0")
    obs, info = env.reset(seed=3)
    assert obs.shape == env.observation_space.shape and obs.dtype == np.uint8
    assert env.render().shape == obs.shape
    vec = gym.make_vec("amisim/TwoRooms-v0", num_envs=3)
    assert isinstance(vec.unwrapped, amisim.AmisimVectorEnv)
    obs, _ = vec.reset(seed=3)
    assert obs.shape == (3,) + env.observation_space.shape


def test_first_person_scene_through_gymnasium():
    env = amisim.make_vec("two_rooms_3d", num_envs=4, seed=1)
    # (metres forward, radians turned) per step.
    np.testing.assert_allclose(env.single_action_space.high, [0.3, np.radians(20.0)], rtol=1e-6)
    obs, info = env.reset()
    assert obs.shape == (4, 64, 64, 3) and obs.dtype == np.uint8
    # The goal image is the view from the goal pose: not the current view.
    assert not np.array_equal(info["goal"], obs)
    turned, *_ = env.step(np.tile([0.0, 0.3], (4, 1)).astype(np.float32))
    assert all(not np.array_equal(turned[i], obs[i]) for i in range(4))
    env.close()


def test_vector_reset_and_step_shapes_and_dtypes():
    n = 4
    env = amisim.make_vec("two_rooms", num_envs=n, seed=0)
    assert env.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    h, w, c = env.single_observation_space.shape
    assert c == 3 and env.observation_space.shape == (n, h, w, c)
    assert env.action_space.shape == (n, 2)
    obs, info = env.reset()
    assert obs.shape == (n, h, w, 3) and obs.dtype == np.uint8 and obs in env.observation_space
    assert obs.flags.writeable
    assert env.state_names == ["agent_x", "agent_y", "heading", "goal_x", "goal_y"]
    assert info["state"].shape == (n, 5) and info["state"].dtype == np.float32
    assert info["goal_state"].shape == (n, 5)
    assert info["goal"].shape == (n, h, w, 3) and info["goal"].dtype == np.uint8
    assert info["success"].dtype == bool and not info["success"].any()
    # The goal observation shows the agent where the goal state has it, not where it starts.
    assert not np.array_equal(info["goal"], obs)
    np.testing.assert_allclose(info["goal_state"][:, :2], info["state"][:, 3:5])
    actions = env.action_space.sample()
    obs, reward, terminated, truncated, info = env.step(actions)
    assert obs.shape == (n, h, w, 3) and obs.dtype == np.uint8
    assert reward.shape == (n,) and reward.dtype == np.float32
    assert terminated.shape == (n,) and terminated.dtype == bool
    assert truncated.shape == (n,) and truncated.dtype == bool
    assert (info["steps"] == 1).all()


def test_actions_move_the_agent_and_walls_stop_it():
    env = amisim.make_vec("two_rooms", num_envs=2, seed=1)
    obs0, info0 = env.reset()
    obs1, *_, info1 = env.step(np.full((2, 2), 1.0, np.float32))
    moved = np.linalg.norm(info1["state"][:, :2] - info0["state"][:, :2], axis=1)
    assert (moved > 0.5).all() and (moved <= np.sqrt(2) * 2.45 + 1e-4).all()
    assert not np.array_equal(obs0, obs1)


def test_autoreset_next_step(short_scene):
    n = 3
    env = amisim.make_vec(short_scene, num_envs=n, seed=7)
    obs, info = env.reset()
    first_goal = info["goal"].copy()
    zero = np.zeros((n, 2), np.float32)
    for k in range(3):
        obs, reward, terminated, truncated, info = env.step(zero)
    # Out of steps at step 3 without reaching the goal: truncated, not terminated.
    assert truncated.all() and not terminated.any()
    ended_state = info["state"].copy()
    # The next step ignores the action and starts new episodes.
    obs, reward, terminated, truncated, info = env.step(np.ones((n, 2), np.float32))
    assert info["started"].all() and (info["steps"] == 0).all()
    assert (reward == 0).all() and not terminated.any() and not truncated.any()
    assert not np.allclose(info["state"], ended_state)
    assert not np.array_equal(info["goal"], first_goal)
    obs, reward, terminated, truncated, info = env.step(zero)
    assert (info["steps"] == 1).all() and not info["started"].any()


def test_reaching_the_goal_terminates_with_reward():
    env = amisim.make("two_rooms")
    obs, info = env.reset(seed=11)
    # Place the agent 6 px from its goal (in its room, outside the 4.5 px success radius), then
    # step 2.45 px toward it.
    goal = info["goal_state"]
    dy = 6.0 if goal[1] < 32 else -6.0
    near = info["state"].copy()
    near[:2] = goal[:2] + np.array([0.0, dy], np.float32)
    env.unwrapped._set_state(near)
    obs, reward, terminated, truncated, info = env.step(np.array([0.0, 0.0], np.float32))
    assert not terminated and reward == 0.0 and info["goal_distance"] > 4.5
    obs, reward, terminated, truncated, info = env.step(np.array([0.0, -np.sign(dy) * 2.45], np.float32))
    assert terminated and reward == 1.0 and info["success"] and not truncated


def test_same_seed_same_frames_and_independent_of_num_envs():
    def run(n, seed, steps=5):
        env = amisim.make_vec("two_rooms", num_envs=n)
        frames = [env.reset(seed=seed)[0].copy()]
        rng = np.random.default_rng(0)
        for _ in range(steps):
            a = rng.uniform(-2, 2, (n, 2)).astype(np.float32)
            frames.append(env.step(a)[0].copy())
        return np.stack(frames)

    a, b = run(3, 42), run(3, 42)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, run(3, 43))
    # Environment 0 plays the same episode beside 2 or 4 others (its own RNG stream; the
    # first actions of the shared generator are the same for environment 0).
    single = amisim.make("two_rooms")
    obs, _ = single.reset(seed=42)
    assert np.array_equal(obs, a[0, 0])


def test_goal_observation_matches_the_single_environments():
    vec = amisim.make_vec("two_rooms", num_envs=5)
    obs, info = vec.reset(seed=9)
    single = amisim.make("two_rooms")
    o, i1 = single.reset(seed=9)
    assert np.array_equal(o, obs[0])
    assert np.array_equal(i1["goal"], info["goal"][0])
    np.testing.assert_array_equal(i1["layout"], info["layout"][0])


def test_bad_action_shape_raises():
    env = amisim.make_vec("two_rooms", num_envs=2, seed=0)
    env.reset()
    with pytest.raises(ValueError, match=r"expected shape \(2, 2\)"):
        env.step(np.zeros((3, 2), np.float32))
    single = amisim.make("two_rooms")
    single.reset(seed=0)
    with pytest.raises(ValueError, match=r"expected shape \(2,\)"):
        single.step(np.zeros(3, np.float32))


def test_non_finite_actions_are_counted_not_applied():
    env = amisim.make_vec("two_rooms", num_envs=2, seed=0)
    _, info0 = env.reset()
    _, *_, info = env.step(np.array([[np.nan, 0.0], [0.0, np.inf]], np.float32))
    assert env.non_finite_actions == 2
    assert np.isfinite(info["state"][:, :2]).all()


def test_bad_scene_raises_with_file_line_and_field(tmp_path):
    p = tmp_path / "broken.ron"
    text = (amisim_repo() / "scenes" / "two_rooms.ron").read_text()
    p.write_text(text.replace("success_radius: 4.5", "success_radius: -1.0"))
    with pytest.raises(amisim.SceneError) as e:
        amisim.make(str(p))
    msg = str(e.value)
    assert "broken.ron" in msg and "episode.success_radius" in msg and ":27:" in msg, msg
    p.write_text(text.replace("walls: [", "walls: [[", 1))
    with pytest.raises(amisim.SceneError, match=r"broken\.ron:\d+:\d+"):
        amisim.make_vec(str(p), num_envs=2)
    with pytest.raises(amisim.SceneError, match="no_such_scene"):
        gym.make("amisim/TwoRooms-v0", scene="no_such_scene")


def amisim_repo():
    import pathlib

    return pathlib.Path(__file__).resolve().parents[2]


def test_dataset_hooks_replay_a_recorded_state():
    """stable-worldmodel's dataset evaluation: redraw a recorded episode, put the agent where a
    recorded state has it and the goal where a later one has it."""
    env = amisim.make("two_rooms")
    obs, info = env.reset(seed=21)
    rng = np.random.default_rng(1)
    record = []
    for _ in range(8):
        obs, *_, info = env.step(rng.uniform(-2.45, 2.45, 2).astype(np.float32))
        record.append((obs.copy(), info["state"].copy(), info["episode_seed"]))
    other = amisim.make("two_rooms")
    other.reset(seed=5)
    frame, state, seed = record[2]
    goal_frame, goal_state, _ = record[7]
    u = other.unwrapped
    u._set_episode(np.array([seed]))
    u._set_state(state)
    u._set_goal_state(goal_state)
    assert np.array_equal(u.render(), frame)
    assert np.array_equal(u.goal_observation(), goal_frame)
    obs, *_, info = other.step(np.zeros(2, np.float32))
    np.testing.assert_allclose(info["goal_state"][:2], goal_state[:2])
    assert info["goal_distance"] == pytest.approx(np.linalg.norm(state[:2] - goal_state[:2]), abs=1e-4)
