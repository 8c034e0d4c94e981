//! Planners over action sequences: CEM, MPPI and gradient descent through the differentiable
//! world model. Every iteration rolls all candidates of all problems out as one batch.
//!
//! A plan is `len = horizon · repeat` actions; sampling noise is drawn once per `repeat`
//! steps (piecewise constant, as macro-actions), so a horizon of a few draws reaches far:
//! far enough, with the closest-approach cost, to go around a wall through its door.

use super::model::Dynamics;
use crate::cost::{CostConfig, Horizon};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlannerKind {
    /// Cross-entropy method: refit a diagonal Gaussian to the elite candidates.
    Cem,
    /// Model-predictive path integral: a cost-weighted (softmin) mean of all candidates.
    Mppi,
    /// Gradient descent (Adam) on the actions through the predictor, from several starts.
    Gradient,
}

/// Settings of a planner and of the receding-horizon loop around it. In a file, entries left
/// out take CEM's defaults ([`PlannerConfig::default`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlannerConfig {
    pub kind: PlannerKind,
    /// Decision steps in a plan; each holds its action for `repeat` environment steps.
    pub horizon: usize,
    pub repeat: usize,
    /// Candidates per iteration (CEM, MPPI) or starting points (gradient).
    pub samples: usize,
    pub iterations: usize,
    /// Elite candidates CEM refits to.
    pub elites: usize,
    /// Candidates per iteration drawn as straight legs at full speed (a random heading for
    /// a random number of decisions, then another, …, then standing still) instead of around
    /// the mean: they reach a door that Gaussian noise around a warm start rarely finds (CEM,
    /// MPPI).
    #[serde(default)]
    pub legs: usize,
    /// Straight legs in each such candidate (2: a heading and one turn). Three reach a goal
    /// just behind a wall through a door far along it: along the wall, through, back.
    #[serde(default = "two")]
    pub leg_count: usize,
    /// Sampling std at the start of each plan, and its floor.
    pub init_std: f32,
    pub min_std: f32,
    /// MPPI temperature, in units of the spread (std) of the iteration's costs.
    pub temperature: f32,
    /// Gradient planner step size (Adam).
    pub lr: f32,
    /// Largest action norm: actions are projected onto this ball (the exploration data's
    /// longest step, beyond which the world model has seen nothing).
    pub max_action: f32,
    /// Keep every action's first component (first-person: forward speed) at zero or above:
    /// exploration data that never moves backward leaves the model nothing to predict a
    /// backward move from.
    #[serde(default)]
    pub forward_only: bool,
    /// Environment steps executed from each plan before planning again (warm-started from
    /// the rest of the plan).
    pub replan_every: usize,
    pub cost: CostConfig,
}

fn two() -> usize {
    2
}

impl Default for PlannerConfig {
    /// CEM's defaults.
    fn default() -> Self {
        PlannerConfig::default_for(PlannerKind::Cem)
    }
}

/// Standard normal draw (Box–Muller).
pub fn normal(rng: &mut impl rand::Rng) -> f32 {
    let u1: f32 = rng.random_range(f32::EPSILON..1.0);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

impl PlannerConfig {
    /// The defaults of each planner.
    pub fn default_for(kind: PlannerKind) -> PlannerConfig {
        let base = PlannerConfig {
            kind,
            horizon: 24,
            repeat: 4,
            samples: 200,
            iterations: 5,
            elites: 20,
            legs: 0,
            leg_count: 2,
            init_std: 1.2,
            min_std: 0.1,
            temperature: 0.5,
            lr: 0.2,
            max_action: 1.8,
            forward_only: false,
            replan_every: 4,
            // 96 steps ahead, scored by the closest approach to the goal: long enough to reach
            // the goal through the door from anywhere in Two-Rooms, and a detour that reaches
            // it beats waiting behind the wall next to it (the oracle row measures it).
            cost: CostConfig {
                horizon: Horizon::Closest,
                ..CostConfig::default()
            },
        };
        match kind {
            PlannerKind::Cem | PlannerKind::Mppi => base,
            PlannerKind::Gradient => PlannerConfig {
                samples: 8,
                iterations: 20,
                ..base
            },
        }
    }

    /// Actions in a plan.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.horizon * self.repeat
    }

    /// Checks the settings, naming the one at fault.
    pub fn validate(&self) -> Result<(), String> {
        crate::require_counts(
            "planner",
            &[
                ("horizon", self.horizon),
                ("repeat", self.repeat),
                ("samples", self.samples),
                ("iterations", self.iterations),
                ("replan_every", self.replan_every),
                ("leg_count", self.leg_count),
            ],
        )?;
        if self.legs >= self.samples {
            return Err(format!(
                "planner.legs = {} must be below planner.samples = {} (candidate 0 is the warm start)",
                self.legs, self.samples
            ));
        }
        if self.kind == PlannerKind::Cem && !(1..=self.samples).contains(&self.elites) {
            return Err(format!(
                "planner.elites = {} must be in 1..={} (samples)",
                self.elites, self.samples
            ));
        }
        if self.replan_every > self.len() {
            return Err(format!(
                "planner.replan_every = {} is longer than a plan ({} = horizon × repeat)",
                self.replan_every,
                self.len()
            ));
        }
        crate::require_positive(
            "planner",
            &[
                ("init_std", self.init_std),
                ("min_std", self.min_std),
                ("temperature", self.temperature),
                ("lr", self.lr),
                ("max_action", self.max_action),
            ],
        )?;
        let w = self.cost.keypoints;
        if !(w.is_finite() && w >= 0.0) {
            return Err(format!("planner.cost.keypoints = {w}: expected a finite weight ≥ 0"));
        }
        Ok(())
    }
}

/// What one plan looked at, for inspection: the last iteration's candidates and costs, its
/// elite set, and the chosen plan with its imagined trajectory.
#[derive(Debug, Clone)]
pub struct Trace {
    /// `[samples, len, 2]`.
    pub candidates: Vec<f32>,
    pub costs: Vec<f32>,
    /// Indices into `candidates`, best first (CEM: the elites; MPPI: the highest weights;
    /// gradient: all starts by cost).
    pub elites: Vec<usize>,
    /// The lowest cost of each iteration (gradient: of each descent step's starting point,
    /// then of the final sequences).
    pub best_per_iteration: Vec<f32>,
}

/// A plan for one problem.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `[len, 2]`.
    pub actions: Vec<f32>,
    pub cost: f32,
    /// The imagined states along the plan, `[len, dim]`.
    pub imagined: Vec<f32>,
    pub trace: Option<Trace>,
}

/// Scales every action of `a` (pairs) down to norm ≤ `max`.
pub fn project(a: &mut [f32], max: f32) {
    for p in a.chunks_exact_mut(2) {
        let n = (p[0] * p[0] + p[1] * p[1]).sqrt();
        if !n.is_finite() {
            p[0] = 0.0;
            p[1] = 0.0;
        } else if n > max {
            p[0] *= max / n;
            p[1] *= max / n;
        }
    }
}

/// Bounds a plan's actions as `cfg` asks: onto the `max_action` ball, and forward only where
/// it says so.
pub fn bound(cfg: &PlannerConfig, a: &mut [f32]) {
    project(a, cfg.max_action);
    if cfg.forward_only {
        for p in a.chunks_exact_mut(2) {
            p[0] = p[0].max(0.0);
        }
    }
}

/// Draws `n` candidates around `mean` with `std` (both `[len, 2]`), noise held for `repeat`
/// steps; candidate 0 is the mean itself (the warm start is never lost), and the last
/// `cfg.legs` are paths of straight legs that ignore the mean.
fn sample(cfg: &PlannerConfig, mean: &[f32], std: &[f32], n: usize, rng: &mut ChaCha8Rng, out: &mut [f32]) {
    let l = cfg.len();
    let legs = cfg.legs.min(n.saturating_sub(1));
    for i in 0..n {
        let c = &mut out[i * l * 2..(i + 1) * l * 2];
        if i >= n - legs {
            straight_legs(cfg, rng, c);
            continue;
        }
        c.copy_from_slice(mean);
        if i > 0 {
            for k in 0..cfg.horizon {
                let e = [normal(rng), normal(rng)];
                for t in k * cfg.repeat..(k + 1) * cfg.repeat {
                    c[2 * t] += std[2 * t] * e[0];
                    c[2 * t + 1] += std[2 * t + 1] * e[1];
                }
            }
        }
        bound(cfg, c);
    }
}

/// `cfg.leg_count` straight legs at full speed, each in a random direction for a random number
/// of decisions (of those the legs before it left), then standing still for the rest of the
/// plan.
fn straight_legs(cfg: &PlannerConfig, rng: &mut ChaCha8Rng, c: &mut [f32]) {
    let mut left = cfg.horizon;
    let lengths: Vec<usize> = (0..cfg.leg_count)
        .map(|_| {
            let n = rng.random_range(0..=left);
            left -= n;
            n
        })
        .collect();
    let headings: Vec<[f32; 2]> = (0..cfg.leg_count)
        .map(|_| {
            let theta = rng.random_range(0.0..std::f32::consts::TAU);
            [cfg.max_action * theta.cos(), cfg.max_action * theta.sin()]
        })
        .collect();
    let decisions = lengths
        .iter()
        .zip(&headings)
        .flat_map(|(&n, &v)| std::iter::repeat_n(v, n));
    let still = std::iter::repeat([0.0, 0.0]);
    for (k, v) in decisions.chain(still).take(cfg.horizon).enumerate() {
        for t in k * cfg.repeat..(k + 1) * cfg.repeat {
            c[2 * t] = v[0];
            c[2 * t + 1] = v[1];
        }
    }
}

/// Indices `0..costs.len()` by cost, lowest first (ties by index).
fn ranked(costs: &[f32]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..costs.len()).collect();
    idx.sort_by(|&a, &b| costs[a].total_cmp(&costs[b]).then(a.cmp(&b)));
    idx
}

/// Plans for every problem at once. `starts[p]` and `goals[p·dim..]` pose problem `p`;
/// `init[p]` (`[len, 2]`) is its warm start; `rngs[p]` its own random stream, so a problem's
/// plan does not depend on which others share the batch.
pub fn plan<D: Dynamics>(
    cfg: &PlannerConfig,
    dynamics: &D,
    starts: &[D::Start],
    goals: &[f32],
    init: &[Vec<f32>],
    rngs: &mut [ChaCha8Rng],
    trace: bool,
) -> Vec<Plan> {
    match cfg.kind {
        PlannerKind::Cem | PlannerKind::Mppi => sampling(cfg, dynamics, starts, goals, init, rngs, trace),
        PlannerKind::Gradient => gradient(cfg, dynamics, starts, goals, init, rngs, trace),
    }
}

/// The energy of every rolled-out candidate: goal distance and effort, plus the task costs the
/// model estimates (predicted collisions).
fn score<D: Dynamics>(
    cfg: &PlannerConfig,
    dynamics: &D,
    starts: &[D::Start],
    n: usize,
    actions: &[f32],
    states: &[f32],
    goals: &[f32],
) -> Vec<f32> {
    let l = cfg.len();
    let mut costs = cfg.cost.energies(states, goals, n, actions, l);
    if let Some(extra) = dynamics.task_costs(starts, goals, n, actions, states, l, &cfg.cost) {
        costs.iter_mut().zip(extra).for_each(|(c, e)| *c += e);
    }
    costs
}

/// Rolls out one sequence per problem and scores it.
fn evaluate<D: Dynamics>(
    cfg: &PlannerConfig,
    dynamics: &D,
    starts: &[D::Start],
    goals: &[f32],
    actions: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let l = cfg.len();
    let states = dynamics.rollout(starts, 1, actions, l);
    let costs = score(cfg, dynamics, starts, 1, actions, &states, goals);
    (states, costs)
}

fn sampling<D: Dynamics>(
    cfg: &PlannerConfig,
    dynamics: &D,
    starts: &[D::Start],
    goals: &[f32],
    init: &[Vec<f32>],
    rngs: &mut [ChaCha8Rng],
    trace: bool,
) -> Vec<Plan> {
    let (p, n, l, dim) = (starts.len(), cfg.samples, cfg.len(), dynamics.dim());
    let mut mean: Vec<Vec<f32>> = init.to_vec();
    let mut std = vec![vec![cfg.init_std; l * 2]; p];
    // Best candidate seen so far per problem: (cost, actions, imagined).
    let mut best: Vec<(f32, Vec<f32>, Vec<f32>)> = vec![(f32::INFINITY, vec![0.0; l * 2], vec![0.0; l * dim]); p];
    let mut traces: Vec<Option<Trace>> = vec![None; p];
    let mut iteration_best: Vec<Vec<f32>> = vec![Vec::with_capacity(cfg.iterations); p];
    let mut actions = vec![0.0; p * n * l * 2];
    for it in 0..cfg.iterations {
        for q in 0..p {
            sample(
                cfg,
                &mean[q],
                &std[q],
                n,
                &mut rngs[q],
                &mut actions[q * n * l * 2..(q + 1) * n * l * 2],
            );
        }
        let states = dynamics.rollout(starts, n, &actions, l);
        let costs = score(cfg, dynamics, starts, n, &actions, &states, goals);
        for q in 0..p {
            let c = &costs[q * n..(q + 1) * n];
            let a = &actions[q * n * l * 2..(q + 1) * n * l * 2];
            let order = ranked(c);
            let top = order[0];
            iteration_best[q].push(c[top]);
            if c[top] < best[q].0 {
                let row = q * n + top;
                best[q] = (
                    c[top],
                    a[top * l * 2..(top + 1) * l * 2].to_vec(),
                    states[row * l * dim..(row + 1) * l * dim].to_vec(),
                );
            }
            // Weights of the refit: uniform over the elites (CEM), softmin of all (MPPI).
            let weights: Vec<(usize, f32)> = match cfg.kind {
                PlannerKind::Cem => order[..cfg.elites]
                    .iter()
                    .map(|&i| (i, 1.0 / cfg.elites as f32))
                    .collect(),
                _ => {
                    let m = c.iter().sum::<f32>() / n as f32;
                    let spread = (c.iter().map(|v| (v - m) * (v - m)).sum::<f32>() / n as f32).sqrt();
                    let scale = cfg.temperature * spread.max(1e-6);
                    let w: Vec<f32> = c.iter().map(|v| (-(v - c[top]) / scale).exp()).collect();
                    let total: f32 = w.iter().sum();
                    (0..n).map(|i| (i, w[i] / total)).collect()
                }
            };
            let mu = &mut mean[q];
            mu.iter_mut().for_each(|v| *v = 0.0);
            for &(i, w) in &weights {
                for (m, x) in mu.iter_mut().zip(&a[i * l * 2..(i + 1) * l * 2]) {
                    *m += w * x;
                }
            }
            let sd = &mut std[q];
            sd.iter_mut().for_each(|v| *v = 0.0);
            for &(i, w) in &weights {
                for ((s, m), x) in sd.iter_mut().zip(mu.iter()).zip(&a[i * l * 2..(i + 1) * l * 2]) {
                    *s += w * (x - m) * (x - m);
                }
            }
            sd.iter_mut().for_each(|v| *v = v.sqrt().max(cfg.min_std));
            if trace && it + 1 == cfg.iterations {
                let elites = match cfg.kind {
                    PlannerKind::Cem => order[..cfg.elites].to_vec(),
                    _ => order[..cfg.elites.min(n)].to_vec(),
                };
                traces[q] = Some(Trace {
                    candidates: a.to_vec(),
                    costs: c.to_vec(),
                    elites,
                    best_per_iteration: iteration_best[q].clone(),
                });
            }
        }
    }
    // CEM executes the best candidate it saw (the mean of a two-way split, left and right of
    // a wall, would run into it); MPPI its weighted mean.
    let chosen: Vec<(f32, Vec<f32>, Vec<f32>)> = match cfg.kind {
        PlannerKind::Mppi => {
            let mut flat: Vec<f32> = mean.concat();
            bound(cfg, &mut flat);
            let (states, costs) = evaluate(cfg, dynamics, starts, goals, &flat);
            (0..p)
                .map(|q| {
                    (
                        costs[q],
                        flat[q * l * 2..(q + 1) * l * 2].to_vec(),
                        states[q * l * dim..(q + 1) * l * dim].to_vec(),
                    )
                })
                .collect()
        }
        _ => best,
    };
    chosen
        .into_iter()
        .zip(traces)
        .map(|((cost, actions, imagined), trace)| Plan {
            actions,
            cost,
            imagined,
            trace,
        })
        .collect()
}

fn gradient<D: Dynamics>(
    cfg: &PlannerConfig,
    dynamics: &D,
    starts: &[D::Start],
    goals: &[f32],
    init: &[Vec<f32>],
    rngs: &mut [ChaCha8Rng],
    trace: bool,
) -> Vec<Plan> {
    let (p, n, l, dim) = (starts.len(), cfg.samples, cfg.len(), dynamics.dim());
    let std = vec![cfg.init_std; l * 2];
    let mut actions = vec![0.0; p * n * l * 2];
    for q in 0..p {
        sample(
            cfg,
            &init[q],
            &std,
            n,
            &mut rngs[q],
            &mut actions[q * n * l * 2..(q + 1) * n * l * 2],
        );
    }
    let (mut m1, mut m2) = (vec![0.0f32; actions.len()], vec![0.0f32; actions.len()]);
    let (b1, b2) = (0.9f32, 0.999f32);
    let mut iteration_best: Vec<Vec<f32>> = vec![Vec::with_capacity(cfg.iterations + 1); p];
    for it in 0..cfg.iterations {
        let Some((energies, grad)) = dynamics.energy_gradient(starts, n, &actions, l, goals, &cfg.cost) else {
            break;
        };
        for (q, e) in energies.chunks(n).enumerate().take(p) {
            iteration_best[q].push(e.iter().copied().fold(f32::INFINITY, f32::min));
        }
        let t = (it + 1) as i32;
        for i in 0..actions.len() {
            let g = if grad[i].is_finite() { grad[i] } else { 0.0 };
            m1[i] = b1 * m1[i] + (1.0 - b1) * g;
            m2[i] = b2 * m2[i] + (1.0 - b2) * g * g;
            let (h1, h2) = (m1[i] / (1.0 - b1.powi(t)), m2[i] / (1.0 - b2.powi(t)));
            actions[i] -= cfg.lr * h1 / (h2.sqrt() + 1e-6);
        }
        bound(cfg, &mut actions);
    }
    // Score the final sequences with the same rollout the other planners use.
    let states = dynamics.rollout(starts, n, &actions, l);
    let costs = score(cfg, dynamics, starts, n, &actions, &states, goals);
    (0..p)
        .map(|q| {
            let c = &costs[q * n..(q + 1) * n];
            let order = ranked(c);
            let (top, row) = (order[0], q * n + order[0]);
            let mut bests = iteration_best[q].clone();
            bests.push(c[top]);
            Plan {
                actions: actions[row * l * 2..(row + 1) * l * 2].to_vec(),
                cost: c[top],
                imagined: states[row * l * dim..(row + 1) * l * dim].to_vec(),
                trace: trace.then(|| Trace {
                    candidates: actions[q * n * l * 2..(q + 1) * n * l * 2].to_vec(),
                    costs: c.to_vec(),
                    elites: order.clone(),
                    best_per_iteration: bests,
                }),
            }
        })
        .collect()
}
