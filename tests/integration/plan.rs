//! Planners, the hand-written rollout and the receding-horizon loop.

use amisim::actor::model::{Dynamics, LatentDynamics, MlpRollout};
use amisim::actor::planner::{plan, PlannerConfig, PlannerKind};
use amisim::actor::{shift, Mpc};
use amisim::cost::{CostConfig, Distance, Horizon};
use amisim::train::jepa::cpu_device;
use amisim::world_model::PredictorConfig;
use burn::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A toy model whose state is the last action: `s[t] = a[t]`. With the mean goal distance
/// over the horizon, the optimum is every action at the goal, cost 0.
struct Echo;

impl Dynamics for Echo {
    type Start = ();
    fn dim(&self) -> usize {
        2
    }
    fn rollout(&self, starts: &[()], n: usize, actions: &[f32], _len: usize) -> Vec<f32> {
        assert_eq!(actions.len() % (starts.len() * n), 0);
        actions.to_vec()
    }
    fn energy_gradient(
        &self,
        starts: &[()],
        n: usize,
        actions: &[f32],
        len: usize,
        goals: &[f32],
        cost: &CostConfig,
    ) -> Option<(Vec<f32>, Vec<f32>)> {
        // d/da of mean_t ‖a_t − g‖ = (a_t − g) / (len ‖a_t − g‖).
        let states = self.rollout(starts, n, actions, len);
        let e = cost.energies(&states, goals, n, actions, len);
        let mut g = vec![0.0; actions.len()];
        for (i, pair) in actions.chunks_exact(2).enumerate() {
            let p = i / (len * n);
            let d = [pair[0] - goals[2 * p], pair[1] - goals[2 * p + 1]];
            let norm = (d[0] * d[0] + d[1] * d[1]).sqrt().max(1e-6);
            g[2 * i] = d[0] / (len as f32 * norm);
            g[2 * i + 1] = d[1] / (len as f32 * norm);
        }
        Some((e, g))
    }
}

fn echo_config(kind: PlannerKind) -> PlannerConfig {
    let mut cfg = PlannerConfig::default_for(kind);
    cfg.horizon = 4;
    cfg.repeat = 1;
    cfg.iterations = if kind == PlannerKind::Gradient { 200 } else { 12 };
    cfg.lr = 0.05;
    cfg.cost = CostConfig {
        distance: Distance::L2,
        horizon: Horizon::Sum,
        effort: 0.0,
        collision: 0.0,
        critic: 0.0,
        keypoints: 0.0,
    };
    cfg
}

#[test]
fn planners_find_the_optimum_of_a_toy_model() {
    // Two problems with different goals in one batch.
    let goals = [0.7f32, -0.4, -1.1, 0.5];
    for kind in [PlannerKind::Cem, PlannerKind::Mppi, PlannerKind::Gradient] {
        let cfg = echo_config(kind);
        let init = vec![vec![0.0; cfg.len() * 2]; 2];
        let mut rngs: Vec<ChaCha8Rng> = (0..2).map(ChaCha8Rng::seed_from_u64).collect();
        let plans = plan(&cfg, &Echo, &[(), ()], &goals, &init, &mut rngs, true);
        for (p, plan) in plans.iter().enumerate() {
            for a in plan.actions.chunks_exact(2) {
                let err = ((a[0] - goals[2 * p]).powi(2) + (a[1] - goals[2 * p + 1]).powi(2)).sqrt();
                assert!(
                    err < 0.08,
                    "{kind:?} problem {p}: action {a:?}, goal {:?}",
                    &goals[2 * p..2 * p + 2]
                );
            }
            assert!(plan.cost < 0.08, "{kind:?}: cost {}", plan.cost);
            let t = plan.trace.as_ref().unwrap();
            assert_eq!(t.costs.len(), cfg.samples);
            assert_eq!(t.candidates.len(), cfg.samples * cfg.len() * 2);
            assert!(t.costs[t.elites[0]] <= t.costs[*t.elites.last().unwrap()]);
        }
        // Started from zero, untrained: the cost at the start was the goal's norm.
        assert!(plans[1].cost < 0.1 * (1.1f32.hypot(0.5)));
    }
}

#[test]
fn actions_stay_within_the_action_ball() {
    let mut cfg = echo_config(PlannerKind::Cem);
    cfg.max_action = 0.5;
    let goals = [3.0f32, 4.0];
    let mut rngs = vec![ChaCha8Rng::seed_from_u64(0)];
    let plans = plan(
        &cfg,
        &Echo,
        &[()],
        &goals,
        &[vec![0.0; cfg.len() * 2]],
        &mut rngs,
        false,
    );
    for a in plans[0].actions.chunks_exact(2) {
        assert!(a[0].hypot(a[1]) <= 0.5 + 1e-5);
        // The best it can do is the boundary point toward the goal (0.3, 0.4).
        assert!((a[0] - 0.3).abs() < 0.05 && (a[1] - 0.4).abs() < 0.05, "{a:?}");
    }
}

#[test]
fn forward_only_keeps_the_first_component_non_negative() {
    // The goal lies backward: every planner stops at zero forward and still matches the turn.
    let goals = [-0.4f32, 0.2];
    for kind in [PlannerKind::Cem, PlannerKind::Mppi, PlannerKind::Gradient] {
        let mut cfg = echo_config(kind);
        cfg.forward_only = true;
        let mut rngs = vec![ChaCha8Rng::seed_from_u64(1)];
        let plans = plan(&cfg, &Echo, &[()], &goals, &[vec![0.0; cfg.len() * 2]], &mut rngs, true);
        for a in plans[0].actions.chunks_exact(2) {
            assert!(a[0] >= 0.0 && a[0] < 0.05, "{kind:?}: {a:?}");
            assert!((a[1] - 0.2).abs() < 0.08, "{kind:?}: {a:?}");
        }
        let t = plans[0].trace.as_ref().unwrap();
        assert!(
            t.candidates.chunks_exact(2).all(|a| a[0] >= 0.0),
            "{kind:?}: a candidate backs up"
        );
    }
}

#[test]
fn warm_start_shifts_the_plan() {
    let plan = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    assert_eq!(shift(&plan, 1), vec![3.0, 4.0, 5.0, 6.0, 5.0, 6.0]);
    assert_eq!(shift(&plan, 2), vec![5.0, 6.0, 5.0, 6.0, 5.0, 6.0]);
    // The controller executes the first `replan_every` actions, then plans from the shifted
    // rest: with the toy model the second plan starts where the first left off.
    let mut cfg = echo_config(PlannerKind::Cem);
    cfg.replan_every = 2;
    let mut mpc = Mpc::new(cfg, &[7]);
    let goals = [0.5f32, 0.5];
    let (a0, planned) = mpc.act(&Echo, &[()], &goals, &[0], false);
    assert!(planned);
    let first = mpc.last[0].clone().unwrap();
    assert_eq!(a0[0].1, [first.actions[0], first.actions[1]]);
    let (a1, planned) = mpc.act(&Echo, &[()], &goals, &[0], false);
    assert!(!planned, "the second action comes from the same plan");
    assert_eq!(a1[0].1, [first.actions[2], first.actions[3]]);
    let (_, planned) = mpc.act(&Echo, &[()], &goals, &[0], false);
    assert!(planned, "plans again after replan_every actions");
}

#[test]
fn hand_written_rollout_matches_the_predictor() {
    // Every dimension predicted, and the last 6 held (as `model.hold_context` builds it).
    for held in [0, 6] {
        rollout_matches(held);
    }
}

fn rollout_matches(held: usize) {
    let device = cpu_device();
    let p = amisim::train::jepa::seeded(&device, 3, || {
        PredictorConfig::new(16).with_hidden(32).with_held(held).init(&device)
    });
    let (m, len) = (5, 7);
    let z0 = Tensor::<2>::random([m, 16], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
    let a = Tensor::<3>::random([m, len, 2], burn::tensor::Distribution::Uniform(-1.0, 1.0), &device);
    let expected: Vec<f32> = p
        .rollout(z0.clone(), a.clone())
        .into_data()
        .try_into_vec::<f32>()
        .unwrap();
    let got = MlpRollout::new(&p).rollout_rows(
        &z0.clone().into_data().try_into_vec::<f32>().unwrap(),
        &a.into_data().try_into_vec::<f32>().unwrap(),
        m,
        len,
    );
    let worst = expected
        .iter()
        .zip(&got)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(worst < 1e-4, "held {held}: largest difference {worst}");
    // The held dimensions are the start's, at every step.
    let z0: Vec<f32> = z0.into_data().try_into_vec::<f32>().unwrap();
    for r in 0..m {
        for t in 0..len {
            let row = &expected[(r * len + t) * 16..(r * len + t + 1) * 16];
            assert_eq!(row[16 - held..], z0[r * 16 + 16 - held..(r + 1) * 16], "held {held}");
            if held > 0 {
                assert_ne!(row[..16 - held], z0[r * 16..r * 16 + 16 - held], "the rest moves");
            }
        }
    }
}

#[test]
fn gradient_planner_lowers_the_latent_cost() {
    let device = cpu_device();
    let ad = device.clone().autodiff();
    let p = amisim::train::jepa::seeded(&device, 4, || PredictorConfig::new(8).with_hidden(16).init(&device));
    let p_ad = amisim::train::jepa::seeded(&ad, 4, || PredictorConfig::new(8).with_hidden(16).init(&ad));
    let dynamics = LatentDynamics::new(&p, Some(p_ad));
    let mut cfg = PlannerConfig::default_for(PlannerKind::Gradient);
    cfg.horizon = 3;
    cfg.repeat = 2;
    cfg.iterations = 40;
    cfg.lr = 0.05;
    cfg.cost.horizon = Horizon::Terminal;
    let start = vec![vec![0.1f32; 8]];
    let goal: Vec<f32> = (0..8).map(|i| 0.3 * (i as f32 - 3.5) / 3.5).collect();
    let zero = vec![vec![0.0; cfg.len() * 2]];
    let before = {
        let states = dynamics.rollout(&start, 1, &zero[0], cfg.len());
        cfg.cost.energies(&states, &goal, 1, &zero[0], cfg.len())[0]
    };
    let mut rngs = vec![ChaCha8Rng::seed_from_u64(1)];
    let plans = plan(&cfg, &dynamics, &start, &goal, &zero, &mut rngs, false);
    assert!(plans[0].cost < before * 0.95, "cost {before} → {}", plans[0].cost);
}

#[test]
fn hand_written_inverse_dynamics_matches_the_head() {
    use amisim::actor::model::MlpIdm;
    use amisim::world_model::InverseDynamicsConfig;
    let device = cpu_device();
    let idm = amisim::train::jepa::seeded(&device, 6, || {
        InverseDynamicsConfig::new(8).with_hidden(16).init(&device)
    });
    let z0 = Tensor::<2>::random([4, 8], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
    let z1 = Tensor::<2>::random([4, 8], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
    let expected: Vec<f32> = idm
        .forward(z0.clone(), z1.clone())
        .into_data()
        .try_into_vec::<f32>()
        .unwrap();
    let got = MlpIdm::new(&idm).forward(
        &z0.into_data().try_into_vec::<f32>().unwrap(),
        &z1.into_data().try_into_vec::<f32>().unwrap(),
        4,
    );
    let worst = expected
        .iter()
        .zip(&got)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(worst < 1e-5, "largest difference {worst}");
}

/// Rolls out points in a plane: each start `n` times, `step(p, a)` the next position.
fn walk(
    starts: &[[f32; 2]],
    n: usize,
    actions: &[f32],
    len: usize,
    step: impl Fn([f32; 2], &[f32]) -> [f32; 2],
) -> Vec<f32> {
    let mut out = Vec::with_capacity(actions.len());
    for (i, seq) in actions.chunks_exact(len * 2).enumerate() {
        let mut p = starts[i / n];
        for a in seq.chunks_exact(2) {
            p = step(p, a);
            out.extend(p);
        }
    }
    out
}

/// A point that moves by its actions in a plane split by a wall on `x = 0` with a door at
/// `|y| < 1`: a move that would cross the wall elsewhere stops just short of it.
struct Door;

impl Dynamics for Door {
    /// The start position.
    type Start = [f32; 2];
    fn dim(&self) -> usize {
        2
    }
    fn rollout(&self, starts: &[[f32; 2]], n: usize, actions: &[f32], len: usize) -> Vec<f32> {
        walk(starts, n, actions, len, |p, a| {
            let q = [p[0] + a[0], p[1] + a[1]];
            if p[0].signum() != q[0].signum() && q[0] != 0.0 {
                let t = p[0] / (p[0] - q[0]);
                let y = p[1] + t * (q[1] - p[1]);
                if y.abs() >= 1.0 {
                    // Blocked: stop 0.01 short of the wall.
                    let s = (t - 0.01 / (p[0] - q[0]).abs()).max(0.0);
                    return [p[0] + s * a[0], p[1] + s * a[1]];
                }
            }
            q
        })
    }
}

#[test]
fn closest_approach_cost_matches_its_formula() {
    let cost = CostConfig {
        distance: Distance::L2,
        horizon: Horizon::Closest,
        effort: 0.0,
        collision: 0.0,
        critic: 0.0,
        keypoints: 0.0,
    };
    // Distances 5, 1, 10 from the goal at the origin: least 1, mean 16 / 3.
    let states = [3.0f32, 4.0, 0.0, 1.0, 6.0, 8.0];
    let actions = [0.0f32; 6];
    let want = 1.0 + amisim::cost::CLOSEST_MEAN_WEIGHT * 16.0 / 3.0;
    let e = cost.energy(&states, &[0.0, 0.0], &actions);
    assert!((e - want).abs() < 1e-5, "{e} vs {want}");
    // The differentiable form agrees.
    let device = cpu_device();
    let t = cost.energy_tensor(
        Tensor::<3>::from_data(TensorData::new(states.to_vec(), [1, 3, 2]), &device),
        Tensor::<2>::zeros([1, 2], &device),
        Tensor::<3>::zeros([1, 3, 2], &device),
    );
    let e = t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap()[0];
    assert!((e - want).abs() < 1e-4, "{e} vs {want}");
}

/// The door trap on a toy: the goal is 2 units away straight through a wall whose door is 6
/// units aside. Scored by the mean distance, waiting at the wall (mean ≈ 1) beats the detour;
/// scored by the closest approach, the detour through the door wins.
#[test]
fn closest_approach_cost_goes_through_the_door() {
    let closest = |horizon| {
        let mut cfg = PlannerConfig::default_for(PlannerKind::Cem);
        (cfg.horizon, cfg.repeat, cfg.max_action, cfg.init_std) = (12, 2, 1.0, 0.7);
        (cfg.samples, cfg.iterations) = (400, 8);
        cfg.cost.horizon = horizon;
        let mut rngs = vec![ChaCha8Rng::seed_from_u64(3)];
        let p = plan(
            &cfg,
            &Door,
            &[[-1.0, 6.0]],
            &[1.0, 6.0],
            &[vec![0.0; cfg.len() * 2]],
            &mut rngs,
            false,
        );
        p[0].imagined
            .chunks_exact(2)
            .map(|s| (s[0] - 1.0).hypot(s[1] - 6.0))
            .fold(f32::INFINITY, f32::min)
    };
    let (by_closest, by_mean) = (closest(Horizon::Closest), closest(Horizon::Sum));
    assert!(
        by_closest < 0.5,
        "the closest-approach plan gets within {by_closest} of the goal"
    );
    assert!(
        by_mean > 1.0,
        "the mean-distance plan gets within {by_mean}: no trap to test"
    );
}

#[test]
fn leg_candidates_are_straight_full_speed_legs() {
    let mut cfg = echo_config(PlannerKind::Cem);
    (cfg.horizon, cfg.repeat, cfg.samples, cfg.legs, cfg.iterations) = (6, 3, 40, 10, 1);
    for leg_count in [2, 3] {
        cfg.leg_count = leg_count;
        let mut rngs = vec![ChaCha8Rng::seed_from_u64(1)];
        let init = vec![vec![0.1; cfg.len() * 2]];
        let plans = plan(&cfg, &Echo, &[()], &[0.5, 0.5], &init, &mut rngs, true);
        let trace = plans[0].trace.as_ref().unwrap();
        let l = cfg.len();
        let mut most_runs = 0;
        for (i, c) in trace
            .candidates
            .chunks_exact(l * 2)
            .enumerate()
            .skip(cfg.samples - cfg.legs)
        {
            // At most `leg_count` + 1 runs of equal actions (the legs, then standing still),
            // each run of full-speed or zero actions, each held for whole decisions.
            let actions: Vec<[f32; 2]> = c.chunks_exact(2).map(|a| [a[0], a[1]]).collect();
            let runs = 1 + actions.windows(2).filter(|w| w[0] != w[1]).count();
            assert!(runs <= leg_count + 1, "{leg_count} legs, candidate {i}: {runs} runs");
            most_runs = most_runs.max(runs);
            for d in actions.chunks_exact(cfg.repeat) {
                assert!(d.iter().all(|a| *a == d[0]), "candidate {i}: {d:?} within a decision");
            }
            for a in &actions {
                let n = a[0].hypot(a[1]);
                assert!(n == 0.0 || (n - cfg.max_action).abs() < 1e-4, "candidate {i}: {a:?}");
            }
            assert!(actions
                .iter()
                .skip_while(|a| a[0].hypot(a[1]) > 0.0)
                .all(|a| *a == [0.0, 0.0]));
        }
        // Some candidate uses every leg it may.
        assert!(most_runs >= leg_count, "{leg_count} legs: at most {most_runs} runs");
    }
    cfg.legs = cfg.samples;
    assert!(cfg.validate().unwrap_err().contains("planner.legs = 40"));
    cfg.legs = 10;
    cfg.leg_count = 0;
    assert!(cfg.validate().unwrap_err().contains("leg_count"));
}

#[test]
fn hand_written_spatial_rollout_matches_the_predictor_and_read_out() {
    use amisim::actor::spatial::SpatialRollout;
    use amisim::perception::{Encoder, EncoderConfig};
    use amisim::world_model::spatial::SpatialConfig;
    let device = cpu_device();
    // A LeNet-sized encoder (17 → 9 → 5) squeezed to 3 channels, and its spatial predictor.
    let enc_cfg = EncoderConfig::lenet(17, 6).with_spatial_state(3);
    let Encoder::Conv(enc) = amisim::train::jepa::seeded(&device, 5, || enc_cfg.init(&device)) else {
        panic!("a conv encoder");
    };
    let side = enc.feature_map_side();
    assert_eq!(side, 5);
    // Plain, and anchored (every jump reads the start map too).
    for anchor in [false, true] {
        let sp = amisim::train::jepa::seeded(&device, 6, || {
            SpatialConfig::new(3)
                .with_k(2)
                .with_hidden(8)
                .with_depth(2)
                .with_anchor(anchor)
                .init(&device)
        });
        assert_eq!(sp.convs[0].weight.dims()[1], if anchor { 6 } else { 3 } + 4);
        let (m, len) = (11, 6); // three jumps; 11 rows span two chunks of the hand-written rollout
        let frames = Tensor::<4>::random([m, 3, 17, 17], burn::tensor::Distribution::Uniform(0.0, 1.0), &device);
        let map0 = enc.feature_map(frames);
        let a = Tensor::<3>::random([m, len, 2], burn::tensor::Distribution::Uniform(-1.0, 1.0), &device);
        let maps = sp.rollout(map0.clone(), a.clone()); // [m, 3, c, s, s]
        let z = enc.readout(maps.reshape([m * 3, 3, side, side])); // [m·3, 6]
        let z: Vec<f32> = z.into_data().try_into_vec::<f32>().unwrap();
        let (map0_v, a_v) = (
            map0.clone().into_data().try_into_vec::<f32>().unwrap(),
            a.into_data().try_into_vec::<f32>().unwrap(),
        );
        let got = SpatialRollout::new(&sp, &enc).rollout_rows(&map0_v, &a_v, m, len);
        assert_eq!(got.len(), m * len * 6);
        let z_start: Vec<f32> = enc.readout(map0).into_data().try_into_vec::<f32>().unwrap();
        let mut worst = 0.0f32;
        for r in 0..m {
            for t in 0..len {
                // Jump ends are the predictor's read-out; the step between is halfway.
                let end = &z[(r * 3 + t / 2) * 6..(r * 3 + t / 2 + 1) * 6];
                let before = if t / 2 == 0 {
                    &z_start[r * 6..(r + 1) * 6]
                } else {
                    &z[(r * 3 + t / 2 - 1) * 6..(r * 3 + t / 2) * 6]
                };
                for j in 0..6 {
                    let want = if t % 2 == 1 { end[j] } else { (before[j] + end[j]) / 2.0 };
                    worst = worst.max((want - got[(r * len + t) * 6 + j]).abs());
                }
            }
        }
        assert!(worst < 1e-4, "anchor {anchor}: largest difference {worst}");

        // Weight 0 joins nothing: the same rollout.
        let zero = SpatialRollout::new(&sp, &enc).with_keypoints(0.0);
        assert_eq!(zero.state_dim(), 6);
        assert_eq!(zero.rollout_rows(&map0_v, &a_v, m, len), got);
        // Keypoints joined with weight 2: each state is the same latent, then twice each
        // channel's soft-argmax (x of every channel, then y).
        let joined = SpatialRollout::new(&sp, &enc).with_keypoints(2.0);
        assert_eq!(joined.state_dim(), 6 + 2 * 3);
        let states = joined.rollout_rows(&map0_v, &a_v, m, len);
        assert_eq!(states.len(), m * len * 12);
        for (plain, with) in got.chunks_exact(6).zip(states.chunks_exact(12)) {
            assert_eq!(plain, &with[..6], "the latent part is the plain rollout's");
        }
        let start = joined.states_of(&map0_v, m);
        let cells = side * side;
        let mut worst = 0.0f32;
        for r in 0..m {
            for j in 0..6 {
                worst = worst.max((start[r * 12 + j] - z_start[r * 6 + j]).abs());
            }
            for ch in 0..3 {
                let map = &map0_v[(r * 3 + ch) * cells..(r * 3 + ch + 1) * cells];
                let top = map.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let e: Vec<f32> = map.iter().map(|v| (v - top).exp()).collect();
                let sum: f32 = e.iter().sum();
                let coord = |i: usize| amisim::perception::cell_coord(i, side);
                let kx: f32 = e.iter().enumerate().map(|(p, e)| e * coord(p % side)).sum::<f32>() / sum;
                let ky: f32 = e.iter().enumerate().map(|(p, e)| e * coord(p / side)).sum::<f32>() / sum;
                worst = worst.max((start[r * 12 + 6 + ch] - 2.0 * kx).abs());
                worst = worst.max((start[r * 12 + 9 + ch] - 2.0 * ky).abs());
            }
        }
        assert!(worst < 1e-4, "anchor {anchor}: start states differ by {worst}");
    }
}

/// The toy plane without its wall: a model that does not know the wall is there.
struct Free;

impl Dynamics for Free {
    type Start = [f32; 2];
    fn dim(&self) -> usize {
        2
    }
    fn rollout(&self, starts: &[[f32; 2]], n: usize, actions: &[f32], len: usize) -> Vec<f32> {
        walk(starts, n, actions, len, |p, a| [p[0] + a[0], p[1] + a[1]])
    }
}

/// A model that pictures no wall plans straight into it, and the world stops the agent: the
/// blocked-move memory notices the stall from the views alone (not across models), remembers
/// it where it happened (not elsewhere), and the planner then pays for pushing that way there.
#[test]
fn a_blocked_move_is_noticed_and_the_next_plan_avoids_it() {
    use amisim::memory::blocked::{AvoidBlocked, BlockedMoves, WithBlocked};
    let mut cfg = PlannerConfig::default_for(PlannerKind::Cem);
    (cfg.horizon, cfg.repeat, cfg.max_action, cfg.init_std) = (6, 2, 1.0, 0.7);
    (cfg.samples, cfg.iterations, cfg.replan_every) = (200, 6, 2);
    let (start, goal) = ([-0.5f32, 4.0], [3.0f32, 4.0]);
    let plan_with = |blocked: Vec<[f32; 2]>, weight: f32| {
        let avoid = AvoidBlocked {
            inner: &Free,
            weight,
            executed: cfg.replan_every,
            max_action: cfg.max_action,
        };
        let mut rngs = vec![ChaCha8Rng::seed_from_u64(5)];
        let starts = [WithBlocked { start, blocked }];
        plan(
            &cfg,
            &avoid,
            &starts,
            &goal,
            &[vec![0.0; cfg.len() * 2]],
            &mut rngs,
            false,
        )
        .remove(0)
    };
    let first_push = |p: &amisim::actor::planner::Plan| {
        let k = cfg.replan_every;
        let x: f32 = p.actions[..2 * k].chunks_exact(2).map(|a| a[0]).sum::<f32>() / k as f32;
        let y: f32 = p.actions[..2 * k].chunks_exact(2).map(|a| a[1]).sum::<f32>() / k as f32;
        [x, y]
    };

    // The first plan heads for the goal, through the wall.
    let p = plan_with(Vec::new(), 5.0);
    let push = first_push(&p);
    assert!(push[0] > 0.5, "the plan should push towards the goal: {push:?}");
    // The world stops the agent at the wall; the view barely moves.
    let mut moves = BlockedMoves::new(1, cfg.max_action);
    moves.planned(0, 0, &start, &p, cfg.replan_every, 2);
    let stopped = [-0.01f32, 4.0];
    assert!(moves.observe(0, 0, &stopped), "a stall where the plan imagined a move");
    let blocked = moves.blocked_at(0, 0, &stopped);
    assert_eq!(blocked.len(), 1);
    let d = blocked[0];
    assert!(
        (d[0] * d[0] + d[1] * d[1] - 1.0).abs() < 1e-4 && d[0] > 0.5,
        "a unit direction along the push: {d:?}"
    );
    assert_eq!(moves.stalls(0), 1);

    // The next plan from there, with the memory, no longer pushes that way; without it, it does.
    let again = first_push(&plan_with(blocked.clone(), 5.0));
    let along = again[0] * d[0] + again[1] * d[1];
    assert!(
        along < 0.2 * cfg.max_action,
        "pushed along the blocked direction again: {again:?}"
    );
    let unaware = first_push(&plan_with(Vec::new(), 5.0));
    assert!(unaware[0] * d[0] + unaware[1] * d[1] > 0.5, "{unaware:?}");

    // The stall belongs to where it happened: not elsewhere, nor in another model's view; and a
    // move that goes through is not a stall.
    assert!(
        moves.blocked_at(0, 0, &[-0.01, 1.0]).is_empty(),
        "3 units away is not there"
    );
    assert!(moves.blocked_at(0, 1, &stopped).is_empty());
    moves.planned(0, 0, &stopped, &p, cfg.replan_every, 2);
    assert!(!moves.observe(0, 0, &[-0.01, 2.5]));
    moves.planned(0, 0, &stopped, &p, cfg.replan_every, 2);
    assert!(
        !moves.observe(0, 1, &stopped),
        "views of different models are not compared"
    );
    assert_eq!(moves.stalls(0), 1);
    assert_eq!(
        moves.blocked_at(0, 0, &[0.0, 4.1]).len(),
        1,
        "back near the stall, it applies again"
    );
}
