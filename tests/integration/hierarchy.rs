//! The hierarchy: the level-2 model's parts and loss, its training and checkpoint, and the
//! hierarchical planner on a toy whose optimum has two stages.

use amisim::actor::hierarchy::{HierMpc, HierarchyConfig};
use amisim::actor::model::{Abstracted, Dynamics};
use amisim::actor::planner::{PlannerConfig, PlannerKind};
use amisim::actor::Mpc;
use amisim::data::Episodes;
use amisim::perception::EncoderConfig;
use amisim::train::jepa::{cpu_device, seeded};
use amisim::train::level2::{load_level2, train_level2, Level2TrainConfig};
use amisim::values;
use amisim::world_model::jepa::{JepaConfig, LossWeights};
use amisim::world_model::level2::{level2_loss, Level2Config, Level2Weights};
use burn::prelude::*;
use glam::Vec2;

#[test]
fn macro_action_encoder_maps_chunks_into_the_disc() {
    let device = cpu_device();
    let cfg = Level2Config::new(8, Level2Weights::new()).with_k(4).with_state(6);
    let model = seeded(&device, 1, || cfg.init(&device));
    let chunks = Tensor::<3>::random([5, 4, 2], burn::tensor::Distribution::Normal(0.0, 3.0), &device);
    let m = model.encode_macro(chunks, cfg.macro_radius);
    assert_eq!(m.dims(), [5, 2]);
    for p in values(m).chunks_exact(2) {
        let n = p[0].hypot(p[1]);
        assert!(
            n < cfg.macro_radius,
            "macro-action norm {n} ≥ radius {}",
            cfg.macro_radius
        );
    }
    let z2 = model.abstract_state(Tensor::<2>::zeros([3, 8], &device));
    assert_eq!(z2.dims(), [3, 6]);
    // The loss of a batch of 3 samples, 2 jumps each.
    let z1 = Tensor::<3>::random([3, 3, 8], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
    let a = Tensor::<4>::random([3, 2, 4, 2], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
    let (loss, terms) = model.loss(z1, a, &cfg);
    assert_eq!(loss.dims(), [1]);
    assert!(terms.total.is_finite() && terms.prediction > 0.0);
}

#[test]
fn level2_loss_terms_match_hand_computed_values() {
    let device = cpu_device();
    // Two samples, one jump, 2-d states: targets (state 1) are [1, 0] and [3, 2]; predictions
    // [0, 0] and [3, 0]: squared errors 1 + 0 + 0 + 4 over 4 elements → 1.25.
    let states = Tensor::<3>::from_data(
        TensorData::new(vec![0.0f32, 0.0, 1.0, 0.0, 2.0, 2.0, 3.0, 2.0], [2, 2, 2]),
        &device,
    );
    let predicted = Tensor::<3>::from_data(TensorData::new(vec![0.0f32, 0.0, 3.0, 0.0], [2, 1, 2]), &device);
    // Macro-actions: dimension 0 takes 0 and 2 (std √2), dimension 1 is 0 twice (std 0).
    let macros = Tensor::<3>::from_data(TensorData::new(vec![0.0f32, 0.0, 2.0, 0.0], [2, 1, 2]), &device);
    let w = Level2Weights::new();
    let (_, t) = level2_loss(states, predicted, macros, &w, 2.0);
    assert!((t.prediction - 1.25).abs() < 1e-6, "prediction {}", t.prediction);
    // States over both samples and steps: dim 0 = [0, 1, 2, 3] (var 5/3), dim 1 = [0, 0, 2, 2]
    // (var 4/3); variance term = mean relu(1 − sqrt(var + 1e-4)) = 0 (both stds > 1).
    assert!(t.variance.abs() < 1e-6, "variance {}", t.variance);
    // Covariance: cov01 = Σ (x − 1.5)(y − 1) / 3 = (1.5 + 0.5 + 0.5 + 1.5) / 3 = 4/3; the term is
    // 2 · (4/3)² / 2.
    assert!((t.covariance - 16.0 / 9.0).abs() < 1e-4, "covariance {}", t.covariance);
    // Macro variance at scale radius / 2 = 1: stds √2 and 0 (+1e-4 inside the root) →
    // (0 + (1 − 0.01)) / 2.
    assert!(
        (t.macro_variance - 0.495).abs() < 1e-4,
        "macro variance {}",
        t.macro_variance
    );
    let want = w.prediction * 1.25 + w.covariance * 16.0 / 9.0 + w.macro_variance * 0.495;
    assert!((t.total - want).abs() < 1e-4, "total {} vs {want}", t.total);
}

/// A few random-walk-like episodes of random frames: enough to exercise the training loop.
fn tiny_episodes(episodes: usize, steps: usize) -> Episodes {
    let mut rng = 7u64;
    let mut next = || {
        rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (rng >> 33) as u32
    };
    let frame_shape = [3, 65, 65];
    let frames = (0..episodes * (steps + 1) * 3 * 65 * 65)
        .map(|_| (next() % 256) as u8)
        .collect();
    let actions = (0..episodes * steps * 2)
        .map(|_| (next() % 1000) as f32 / 500.0 - 1.0)
        .collect();
    Episodes {
        episodes,
        steps,
        frame_shape,
        state_dim: 5,
        frames,
        actions,
        states: vec![0.0; episodes * (steps + 1) * 5],
        scene: "two_rooms".into(),
        ..Default::default()
    }
}

#[test]
fn level2_training_lowers_its_loss_and_round_trips_with_its_level1_model() {
    let device = cpu_device();
    let level1 = seeded(&device, 3, || {
        JepaConfig::new(EncoderConfig::lenet(65, 8), LossWeights::new()).init(&device)
    });
    let other = seeded(&device, 4, || {
        JepaConfig::new(EncoderConfig::lenet(65, 8), LossWeights::new()).init(&device)
    });
    let data = tiny_episodes(6, 12);
    let mut cfg = Level2TrainConfig::default_for(8);
    cfg.model = cfg.model.with_k(4).with_state(6).with_hidden(32);
    (cfg.steps, cfg.batch, cfg.jumps, cfg.warmup, cfg.log_every) = (60, 32, 2, 5, 10);
    let dir = std::env::temp_dir().join(format!("amisim-level2-{}", std::process::id()));
    let summary = train_level2(&cfg, &level1, &data, &dir, false, &device).unwrap();
    let csv = std::fs::read_to_string(dir.join("level2_metrics.csv")).unwrap();
    let totals: Vec<f32> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(2).unwrap().parse().unwrap())
        .collect();
    assert_eq!(totals.len(), 6);
    assert!(
        totals.last().unwrap() < totals.first().unwrap(),
        "the loss fell: {totals:?}"
    );
    // The checkpoint gives the same macro-actions and predictions as the trained model.
    let ck = load_level2(&summary.checkpoint, Some(&level1), &device).unwrap();
    let z = Tensor::<2>::random([4, 8], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
    let chunks = Tensor::<3>::random([4, 4, 2], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
    let step = |m: &amisim::world_model::level2::Level2| {
        let macros = m.encode_macro(chunks.clone(), cfg.model.macro_radius);
        values(m.predictor.forward(m.abstract_state(z.clone()), macros))
    };
    assert_eq!(step(&ck.model), step(&summary.model));
    // Another level-1 model is refused, by name.
    let err = load_level2(&summary.checkpoint, Some(&other), &device)
        .err()
        .expect("a level-2 model of another level-1 model is refused")
        .to_string();
    assert!(err.contains("fingerprint"), "{err}");
    // Too short episodes for the jumps: a clear error, nothing written.
    cfg.jumps = 4;
    let err = train_level2(&cfg, &level1, &data, &dir.join("short"), false, &device)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("episodes of ≥ 16 steps"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn abstracted_dynamics_maps_every_imagined_state() {
    struct Walk;
    impl Dynamics for Walk {
        type Start = Vec<f32>;
        fn dim(&self) -> usize {
            2
        }
        fn rollout(&self, starts: &[Vec<f32>], n: usize, actions: &[f32], len: usize) -> Vec<f32> {
            let mut out = Vec::new();
            for (i, seq) in actions.chunks_exact(len * 2).enumerate() {
                let mut p = [starts[i / n][0], starts[i / n][1]];
                for a in seq.chunks_exact(2) {
                    p = [p[0] + a[0], p[1] + a[1]];
                    out.extend(p);
                }
            }
            out
        }
    }
    // s ↦ [x + 2y + 1, −y, 3x]
    let map = Abstracted::new(&Walk, vec![1.0, 0.0, 3.0, 2.0, -1.0, 0.0], vec![1.0, 0.0, 0.0]);
    assert_eq!(map.dim(), 3);
    let out = map.rollout(&[vec![1.0, 1.0]], 1, &[1.0, 0.0, 0.0, 1.0], 2);
    assert_eq!(out, vec![5.0, -1.0, 6.0, 7.0, -2.0, 6.0]);
}

/// A point in a plane split by a wall on `x = 0` with a door at `|y − 10| < 1.5`; each action
/// (or macro-action) moves it by `scale ×` itself, and a move across the wall elsewhere does
/// not happen.
struct Toy {
    scale: f32,
}

impl Toy {
    fn step(&self, p: [f32; 2], a: &[f32]) -> [f32; 2] {
        let q = [p[0] + self.scale * a[0], p[1] + self.scale * a[1]];
        if (p[0] < 0.0) != (q[0] < 0.0) {
            let t = p[0] / (p[0] - q[0]);
            let y = p[1] + t * (q[1] - p[1]);
            if (y - 10.0).abs() >= 1.5 {
                return p;
            }
        }
        q
    }
}

impl Dynamics for Toy {
    type Start = Vec<f32>;
    fn dim(&self) -> usize {
        2
    }
    fn rollout(&self, starts: &[Vec<f32>], n: usize, actions: &[f32], len: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(actions.len());
        for (i, seq) in actions.chunks_exact(len * 2).enumerate() {
            let mut p = [starts[i / n][0], starts[i / n][1]];
            for a in seq.chunks_exact(2) {
                p = self.step(p, a);
                out.extend(p);
            }
        }
        out
    }
}

/// The goal is 8 units away straight through the wall; the door is 10 units up. The optimum
/// has two stages: up to the door, then down to the goal. A flat planner that looks 8 steps
/// ahead waits at the wall; the hierarchical planner (level 2 jumps 8 steps at a time and looks
/// 6 jumps ahead) first sets a subgoal toward the door, and reaches the goal.
#[test]
fn hierarchical_planner_finds_the_two_stage_optimum_on_a_toy() {
    let (start, goal) = ([-4.0f32, 0.0], [4.0f32, 0.0]);
    let mut cfg = HierarchyConfig::default_for(8, 1.0);
    cfg.high.horizon = 6;
    cfg.low.max_action = 1.0;
    (cfg.low.horizon, cfg.low.repeat, cfg.low.replan_every) = (4, 2, 2);
    let (high, low, world) = (Toy { scale: 8.0 }, Toy { scale: 1.0 }, Toy { scale: 1.0 });
    let mut h = HierMpc::new(cfg.clone(), &[5]);
    let mut p = start;
    // The subgoals set while the agent is still on the start's side.
    let mut before_wall: Vec<Vec<f32>> = Vec::new();
    for _ in 0..80 {
        let s = vec![p.to_vec()];
        let (acts, _) = h.act(&high, &low, &s, &s, &goal, &[0], false);
        if p[0] < 0.0 {
            before_wall.push(h.subgoals[0].clone());
        }
        p = world.step(p, &acts[0].1);
    }
    let miss = (p[0] - goal[0]).hypot(p[1] - goal[1]);
    assert!(
        miss < 1.5,
        "the hierarchical planner ends {miss} from the goal, at {p:?}"
    );
    // First stage: subgoals lead up to the door (all on the start's side or in the doorway, one
    // of them near the door's height); second stage: down to the goal.
    assert!(
        before_wall.iter().all(|g| g[0] < 0.0 || (g[1] - 10.0).abs() < 4.0),
        "a subgoal behind the wall away from the door: {before_wall:?}"
    );
    assert!(
        before_wall.iter().any(|g| g[1] > 6.0),
        "no subgoal heads for the door: {before_wall:?}"
    );
    // The same level-1 planner alone, toward the goal, stays behind the wall.
    let flat: PlannerConfig = cfg.low.clone();
    assert_eq!(flat.kind, PlannerKind::Cem);
    let mut mpc = Mpc::new(flat, &[5]);
    let mut p = start;
    for _ in 0..80 {
        let (acts, _) = mpc.act(&world, &[p.to_vec()], &goal, &[0], false);
        p = world.step(p, &acts[0].1);
    }
    assert!(
        p[0] < 0.0,
        "the flat short-horizon planner got through to {p:?}: no trap to test"
    );
}

/// A Two-Rooms layout, its dividing wall's column, its door's row, and a row of the wall 16
/// rows away from the door.
fn two_rooms_wall() -> (std::sync::Arc<amisim::world::layout::Layout>, f32, f32, f32) {
    use amisim::world::env::env_rng;
    use amisim::world::sim::sample_episode;
    use amisim::world::Scene;
    let scene = Scene::load("two_rooms").unwrap();
    let state = sample_episode(&scene, &mut env_rng(3, 0)).unwrap();
    let layout = state.layout.clone().unwrap();
    let (_, at, doors) = layout.drawn.iter().find(|(_, _, d)| !d.is_empty()).unwrap();
    let (x, door) = (*at as f32, doors[0] as f32);
    let far = if door < 32.0 { door + 16.0 } else { door - 16.0 };
    (layout, x, door, far)
}

/// What the eval counts as a plan through a wall: a straight move from one room into another
/// that hits a wall, not one through the door.
#[test]
fn a_move_crosses_a_wall_only_outside_its_door() {
    let (layout, x, door, far) = two_rooms_wall();
    assert!(
        !layout.crosses_wall(Vec2::new(x - 5.0, door), Vec2::new(x + 5.0, door)),
        "through the door"
    );
    assert!(
        layout.crosses_wall(Vec2::new(x - 5.0, far), Vec2::new(x + 5.0, far)),
        "through the wall"
    );
    assert!(
        layout.crosses_wall(Vec2::new(x + 5.0, far), Vec2::new(x - 5.0, far)),
        "either way"
    );
    assert!(
        !layout.crosses_wall(Vec2::new(x - 9.0, far), Vec2::new(x - 5.0, door)),
        "within a room"
    );
    assert!(
        !layout.crosses_wall(Vec2::new(1.0, 1.0), Vec2::new(x + 5.0, far)),
        "from outside every room"
    );
}

/// A path judged as a whole: points inside the wall or the doorway are skipped, so a path of
/// short steps through the wall still counts, and one through the door does not.
#[test]
fn a_path_of_short_steps_crosses_a_wall_only_outside_its_door() {
    let (layout, x, door, far) = two_rooms_wall();
    let line = |y: f32| (0..=10).map(|i| Vec2::new(x - 5.0 + i as f32, y)).collect::<Vec<_>>();
    assert!(layout.path_crosses_wall(&line(far)));
    assert!(!layout.path_crosses_wall(&line(door)));
}
