//! Observations drawn by Bevy's renderer: determinism, no frame of lag, the agent's blob where
//! the agent is, and channels that keep agent, walls and box apart.

use amisim::world::scene::Scene;
use amisim::world::{Obs, VecEnv};
use glam::Vec2;
use rand::{RngExt, SeedableRng};

fn random_actions(rng: &mut rand_chacha::ChaCha8Rng, n: usize) -> Vec<[f32; 2]> {
    (0..n)
        .map(|_| [rng.random_range(-2.45..2.45), rng.random_range(-2.45..2.45)])
        .collect()
}

/// Intensity-weighted centroid of channel `c` of frame `i`, in pixel coordinates (x, y).
fn centroid(obs: &Obs, i: usize, c: usize) -> Vec2 {
    let [_, _, h, w] = obs.shape;
    let f = &obs.frame(i)[c * h * w..(c + 1) * h * w];
    let (mut sx, mut sy, mut s) = (0.0f64, 0.0f64, 0.0f64);
    for y in 0..h {
        for x in 0..w {
            let v = f[y * w + x] as f64;
            sx += v * x as f64;
            sy += v * y as f64;
            s += v;
        }
    }
    assert!(s > 0.0, "channel {c} of frame {i} is empty");
    Vec2::new((sx / s) as f32, (sy / s) as f32)
}

#[test]
fn same_seed_gives_byte_identical_frames() {
    let scene = Scene::load("two_rooms").unwrap();
    let run = || {
        let mut env = VecEnv::new(scene.clone(), 16).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut frames = env.reset(11).unwrap().frames;
        for _ in 0..5 {
            frames.extend(env.step(&random_actions(&mut rng, 16)).unwrap().0.frames);
        }
        frames
    };
    let (a, b) = (run(), run());
    assert_eq!(a.len(), 16 * 6 * 3 * 65 * 65);
    assert!(a == b, "frames differ between two runs with the same seed");
    // A different seed draws different episodes.
    let mut env = VecEnv::new(scene.clone(), 16).unwrap();
    assert_ne!(env.reset(12).unwrap().frames, a[..16 * 3 * 65 * 65].to_vec());
}

#[test]
fn blob_centroid_is_within_one_pixel_of_the_agent_after_each_step() {
    let scene = Scene::load("two_rooms").unwrap();
    let n = 64;
    let mut env = VecEnv::new(scene, n).unwrap();
    let mut obs = env.reset(3).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    let mut worst = 0.0f32;
    for step in 0..6 {
        let infos = env.info();
        for (i, info) in infos.iter().enumerate() {
            let c = centroid(&obs, i, 0);
            let err = c.distance(info.agent);
            worst = worst.max(err);
            assert!(
                err <= 1.0,
                "step {step} env {i}: blob at {c:?}, agent at {:?}",
                info.agent
            );
        }
        obs = env.step(&random_actions(&mut rng, n)).unwrap().0;
    }
    assert!(worst > 0.0);
}

#[test]
fn frames_show_the_state_after_the_step_without_lag() {
    let scene = Scene::load("two_rooms").unwrap();
    let mut env = VecEnv::new(scene, 8).unwrap();
    env.reset(4).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    for _ in 0..3 {
        let (obs, info) = env.step(&random_actions(&mut rng, 8)).unwrap();
        // Drawing the same states again gives the same frame: nothing was still in flight.
        assert_eq!(obs, env.render().unwrap());
        for (i, inf) in info.iter().enumerate() {
            assert!(centroid(&obs, i, 0).distance(inf.agent) <= 1.0);
        }
    }
}

#[test]
fn channels_separate_agent_walls_and_box_even_in_contact() {
    let scene = Scene::load("push_box").unwrap();
    let n = 8;
    let mut env = VecEnv::new(scene, n).unwrap();
    let mut obs = env.reset(2).unwrap();
    let [_, _, h, w] = obs.shape;
    let mut contacts = 0;
    // Drive every agent right, into walls and boxes, checking every frame on the way.
    for step in 0..=30 {
        for (i, (info, state)) in env.info().iter().zip(env.states()).enumerate() {
            let f = obs.frame(i);
            let layout = state.layout.as_ref().unwrap();
            let b = info.pushable.unwrap();
            for y in 0..h {
                for x in 0..w {
                    let p = Vec2::new(x as f32, y as f32);
                    let in_wall = layout.walls.iter().any(|r| r.contains_strict(p));
                    let g = f[h * w + y * w + x];
                    assert!(g == 0 || g == 255, "step {step} env {i}: green {g} at ({x}, {y})");
                    assert_eq!(
                        g == 255,
                        in_wall,
                        "step {step} env {i} ({x}, {y}): green {g}, wall {in_wall}"
                    );
                    let off = (p - b).abs();
                    if (off.x - 3.5).abs() > 0.01 && (off.y - 3.5).abs() > 0.01 {
                        let in_box = off.x < 3.5 && off.y < 3.5;
                        assert_eq!(
                            f[2 * h * w + y * w + x] == 255,
                            in_box,
                            "step {step} env {i} ({x}, {y}): blue"
                        );
                    }
                    let r = f[y * w + x];
                    if r > 0 {
                        assert!(p.distance(info.agent) < 6.0, "red at ({x}, {y}) far from the agent");
                    }
                    if r > 100 && (in_wall || f[2 * h * w + y * w + x] == 255) {
                        contacts += 1;
                    }
                }
            }
            assert!(centroid(&obs, i, 0).distance(info.agent) <= 1.0, "step {step} env {i}");
        }
        obs = env.step(&vec![[2.45, 0.3]; n]).unwrap().0;
    }
    assert!(
        contacts > 0,
        "no frame had the blob over a wall or box: the test did not exercise overlap"
    );
}

#[test]
fn first_person_frames_change_when_the_agent_turns() {
    let scene = Scene::load("room_3d").unwrap();
    let mut env = VecEnv::new(scene, 4).unwrap();
    let first = env.reset(0).unwrap();
    assert_eq!(first.shape, [4, 3, 64, 64]);
    // Not one flat colour: walls, floor and sky show up across the four views.
    let distinct: std::collections::HashSet<_> = (0..4)
        .flat_map(|i| {
            let f = first.frame(i);
            (0..64 * 64).map(move |p| (f[p], f[4096 + p], f[8192 + p]))
        })
        .collect();
    assert!(distinct.len() > 3, "the frames have {} colours", distinct.len());
    let (turned, _) = env.step(&[[0.0, 0.3]; 4]).unwrap();
    for i in 0..4 {
        assert_ne!(first.frame(i), turned.frame(i), "env {i} did not change after turning");
    }
}

/// Every environment's tile of a batch equals a render of that environment's state alone: the
/// one-pass first-person renderer keeps each view to its tile, with its own depth.
#[test]
fn first_person_tiles_equal_single_environment_renders() {
    for name in ["room_3d", "two_rooms_3d"] {
        let scene = Scene::load(name).unwrap();
        // 23 environments: a 5 × 5 atlas with two spare tiles.
        let n = 23;
        let mut env = VecEnv::new(scene.clone(), n).unwrap();
        env.reset(4).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let mut obs = None;
        for _ in 0..6 {
            let a: Vec<[f32; 2]> = (0..n)
                .map(|_| [rng.random_range(0.0..0.3), rng.random_range(-0.35..0.35)])
                .collect();
            obs = Some(env.step(&a).unwrap().0);
        }
        let obs = obs.unwrap();
        let mut single = VecEnv::new(scene.clone(), 1).unwrap();
        for i in [0, 4, 5, 11, 22] {
            single.set_states(vec![env.states()[i].clone()]);
            let alone = single.render().unwrap();
            assert!(
                alone.frame(0) == obs.frame(i),
                "{name}: env {i}'s tile differs from its state rendered alone"
            );
        }
        // Neighbouring tiles show different views (no tile copied into another).
        assert_ne!(obs.frame(0), obs.frame(1));
    }
}

#[test]
fn first_person_frames_are_byte_identical_for_the_same_seed() {
    let scene = Scene::load("two_rooms_3d").unwrap();
    let run = || {
        let mut env = VecEnv::new(scene.clone(), 9).unwrap();
        let mut frames = env.reset(8).unwrap().frames;
        for k in 0..4 {
            frames.extend(env.step(&[[0.2, 0.1 * k as f32]; 9]).unwrap().0.frames);
        }
        frames
    };
    assert!(
        run() == run(),
        "first-person frames differ between two runs with the same seed"
    );
}

/// The goal image is the view from the goal pose: the goal object fills the middle of it.
#[test]
fn first_person_goal_images_show_the_goal_object_in_the_middle() {
    for name in ["room_3d", "two_rooms_3d"] {
        let scene = Scene::load(name).unwrap();
        let fp = scene.first_person().unwrap().clone();
        let n = 16;
        let mut env = VecEnv::new(scene.clone(), n).unwrap();
        env.reset(6).unwrap();
        let goals: Vec<_> = env
            .states()
            .iter()
            .map(|s| amisim::world::sim::goal_state(&scene, s))
            .collect();
        env.set_states(goals.clone());
        let obs = env.render().unwrap();
        for (i, g) in goals.iter().enumerate() {
            let c = fp.objects[g.goal_object.unwrap()].color;
            let f = obs.frame(i);
            // The pixel just below the centre (eye height looks at the object's middle).
            let p = 36 * 64 + 32;
            let px = [f[p] as f32, f[4096 + p] as f32, f[8192 + p] as f32];
            let dominant = |v: [f32; 3]| (0..3).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap();
            assert_eq!(
                dominant(px),
                dominant([c.0, c.1, c.2]),
                "{name}: env {i}'s goal image does not show `{}` in its middle: {px:?}",
                fp.objects[g.goal_object.unwrap()].name
            );
        }
    }
}

#[test]
fn a_missing_vulkan_driver_is_a_clear_error_with_the_install_line() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_amisim"))
        .args(["bench", "env", "--scene", "two_rooms", "--envs", "1"])
        .env("VK_ICD_FILENAMES", "/nonexistent/icd.json")
        .env("VK_DRIVER_FILES", "/nonexistent/icd.json")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no Vulkan adapter found"), "{err}");
    assert!(err.contains(amisim::world::VULKAN_INSTALL_HINT), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
