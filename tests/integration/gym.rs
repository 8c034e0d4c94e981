//! The environments with Gymnasium's contract (the Python package's): channels-last tiles,
//! next-step autoreset, goal observations.

use amisim::world::gym::GymEnvs;
use amisim::world::{Scene, VecEnv};

fn short_rooms(max_steps: u32) -> Scene {
    let text = std::fs::read_to_string(amisim::world::scene::resolve_scene_path("two_rooms")).unwrap();
    let text = text.replace("max_steps: 200", &format!("max_steps: {max_steps}"));
    Scene::parse(&text, std::path::Path::new("short_rooms.ron")).unwrap()
}

#[test]
fn channels_last_tiles_are_the_channels_first_ones_transposed() {
    let scene = Scene::load("two_rooms").unwrap();
    let mut chw = VecEnv::new(scene.clone(), 5).unwrap();
    let mut hwc = VecEnv::new(scene, 5).unwrap();
    hwc.channels_last(true);
    let a = chw.reset(3).unwrap();
    let b = hwc.reset(3).unwrap();
    let [n, c, h, w] = a.shape;
    assert_eq!(b.shape, [n, h, w, c]);
    for i in 0..n {
        for y in 0..h {
            for x in 0..w {
                for k in 0..c {
                    let p = a.frames[((i * c + k) * h + y) * w + x];
                    let q = b.frames[((i * h + y) * w + x) * c + k];
                    assert_eq!(p, q, "env {i} pixel ({x}, {y}) channel {k}");
                }
            }
        }
    }
}

#[test]
fn an_ended_episode_restarts_at_the_next_step_with_its_goal_drawn() {
    let mut envs = GymEnvs::new(short_rooms(3), 3, false).unwrap();
    assert!(envs.step(&[[0.0; 2]; 3]).is_err(), "a step before a reset is an error");
    let first = envs.reset(11).unwrap();
    assert!(first.started.iter().all(|&s| s));
    let goals = envs.goal_frames().to_vec();
    assert_ne!(goals, first.obs.frames, "the goal observation is not the start's");
    let mut last = first;
    for _ in 0..3 {
        last = envs.step(&[[0.0; 2]; 3]).unwrap();
    }
    assert!(last.truncated.iter().all(|&t| t) && !last.terminated.iter().any(|&t| t));
    let before: Vec<_> = envs.states().iter().map(|s| s.to_vec()).collect();
    let next = envs.step(&[[2.0; 2]; 3]).unwrap();
    assert!(
        next.started.iter().all(|&s| s),
        "every environment started a new episode"
    );
    assert!(next.reward.iter().all(|&r| r == 0.0) && !next.truncated.iter().any(|&t| t));
    assert!(next.info.iter().all(|i| i.steps == 0), "the action was not applied");
    let after: Vec<_> = envs.states().iter().map(|s| s.to_vec()).collect();
    assert_ne!(before, after);
    assert_ne!(goals, envs.goal_frames(), "the new episodes' goals were drawn");
    // The goal frame is what the environment shows with the agent at its goal.
    let goal_states = envs.goal_states().to_vec();
    let mut single = VecEnv::new(short_rooms(3), 3).unwrap();
    single.set_states(goal_states);
    assert_eq!(single.render().unwrap().frames, envs.goal_frames());
}

#[test]
fn the_same_seed_gives_the_same_frames() {
    let run = |seed: u64| {
        let mut envs = GymEnvs::new(short_rooms(4), 2, true).unwrap();
        let mut frames = envs.reset(seed).unwrap().obs.frames;
        for k in 0..9 {
            let a = [[k as f32 * 0.3 - 1.0, 1.0], [1.0, -0.5]];
            frames.extend(envs.step(&a).unwrap().obs.frames);
        }
        frames
    };
    assert_eq!(run(5), run(5));
    assert_ne!(run(5), run(6));
}
