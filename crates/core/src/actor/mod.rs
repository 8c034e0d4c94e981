//! The actor: deliberative (mode-2) planning by simulating futures with a model of the world,
//! in a receding-horizon loop.
//!
//! - [`model`]: the dynamics planners imagine with (the learned predictor; the simulator for
//!   the oracle baseline).
//! - [`planner`]: CEM, MPPI and gradient descent over action sequences.
//! - [`hierarchy`]: level 2 plans macro-actions far ahead, level 1 reaches its subgoals.
//! - [`Mpc`]: plans, executes `replan_every` actions, then plans again warm-started from the
//!   rest of the previous plan, shifted.

pub mod hierarchy;
pub mod mode1;
pub mod model;
pub mod planner;
pub mod spatial;

use model::Dynamics;
use planner::{plan, Plan, PlannerConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;

/// Receding-horizon control of several problems (environments) at once.
pub struct Mpc {
    pub cfg: PlannerConfig,
    /// Warm start of each problem's next plan, `[len, 2]`.
    means: Vec<Vec<f32>>,
    /// Actions of the current plan still to execute.
    queues: Vec<VecDeque<[f32; 2]>>,
    rngs: Vec<ChaCha8Rng>,
    /// The latest plan of each problem.
    pub last: Vec<Option<Plan>>,
    /// Whether each problem planned at its latest action.
    planned: Vec<bool>,
}

/// The warm start for the next plan: `plan` without its first `k` actions, the last action
/// repeated to fill the horizon again.
pub fn shift(plan: &[f32], k: usize) -> Vec<f32> {
    let len = plan.len() / 2;
    let k = k.min(len);
    let mut out = plan[2 * k..].to_vec();
    let last = if len > 0 {
        [plan[2 * len - 2], plan[2 * len - 1]]
    } else {
        [0.0, 0.0]
    };
    for _ in 0..k {
        out.extend_from_slice(&last);
    }
    out
}

/// Plans for the problems in `due` in one batch: their starts and goals (`[problems, dim]`)
/// picked out of the per-problem slices, each warm-started from `means[i]` and drawing from
/// (and advancing) `rngs[i]`. The plans come in the order of `due`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn plan_for<D: Dynamics>(
    cfg: &PlannerConfig,
    dynamics: &D,
    due: &[usize],
    starts: &[D::Start],
    goals: &[f32],
    means: &[Vec<f32>],
    rngs: &mut [ChaCha8Rng],
    trace: bool,
) -> Vec<Plan>
where
    D::Start: Clone,
{
    let dim = dynamics.dim();
    let s: Vec<D::Start> = due.iter().map(|&i| starts[i].clone()).collect();
    let g = crate::gather_rows(goals, dim, due);
    let init: Vec<Vec<f32>> = due.iter().map(|&i| means[i].clone()).collect();
    let mut batch: Vec<ChaCha8Rng> = due.iter().map(|&i| rngs[i].clone()).collect();
    let plans = plan(cfg, dynamics, &s, &g, &init, &mut batch, trace);
    for (&i, rng) in due.iter().zip(batch) {
        rngs[i] = rng;
    }
    plans
}

impl Mpc {
    /// One controller per problem, each with its own random stream.
    pub fn new(cfg: PlannerConfig, seeds: &[u64]) -> Mpc {
        let l = cfg.len();
        Mpc {
            means: vec![vec![0.0; l * 2]; seeds.len()],
            queues: vec![VecDeque::new(); seeds.len()],
            rngs: seeds.iter().map(|&s| ChaCha8Rng::seed_from_u64(s)).collect(),
            last: vec![None; seeds.len()],
            planned: vec![false; seeds.len()],
            cfg,
        }
    }

    /// Starts problem `i` afresh: no plan, a zero warm start, its random stream from `seed` (as
    /// [`Mpc::new`] makes it).
    pub fn reset(&mut self, i: usize, seed: u64) {
        self.means[i] = vec![0.0; self.cfg.len() * 2];
        self.queues[i].clear();
        self.rngs[i] = ChaCha8Rng::seed_from_u64(seed);
        self.last[i] = None;
        self.planned[i] = false;
    }

    /// Drops the rest of problem `i`'s current plan (its actions were overridden, e.g. by the
    /// keyboard): it plans again at its next action, warm-started as before.
    pub fn interrupt(&mut self, i: usize) {
        self.queues[i].clear();
    }

    /// Sets problem `i`'s next warm start to `actions` (`[len, 2]`, cut or padded with its last
    /// action to this planner's length) and drops the rest of its current plan.
    pub fn set_warm_start(&mut self, i: usize, actions: &[f32]) {
        let l = self.cfg.len();
        let mut w: Vec<f32> = actions.iter().copied().take(l * 2).collect();
        let last = if w.len() >= 2 {
            [w[w.len() - 2], w[w.len() - 1]]
        } else {
            [0.0, 0.0]
        };
        while w.len() < l * 2 {
            w.extend_from_slice(&last);
        }
        self.means[i] = w;
        self.queues[i].clear();
    }

    /// Whether problem `i` planned at its latest action.
    pub fn planned_at_last_act(&self, i: usize) -> bool {
        self.planned[i]
    }

    /// Whether problem `i` plans at its next action.
    pub fn needs_plan(&self, i: usize) -> bool {
        self.queues[i].is_empty()
    }

    /// The next action of each problem in `active` (others get none). Problems whose plan is
    /// used up plan again, all in one batch: `starts` and `goals` (`[problems, dim]`) are
    /// indexed like the problems. Returns the actions and whether any planning happened.
    pub fn act<D: Dynamics>(
        &mut self,
        dynamics: &D,
        starts: &[D::Start],
        goals: &[f32],
        active: &[usize],
        trace: bool,
    ) -> (Vec<(usize, [f32; 2])>, bool)
    where
        D::Start: Clone,
    {
        let due: Vec<usize> = active.iter().copied().filter(|&i| self.needs_plan(i)).collect();
        for &i in active {
            self.planned[i] = false;
        }
        for &i in &due {
            self.planned[i] = true;
        }
        if !due.is_empty() {
            let plans = plan_for(
                &self.cfg,
                dynamics,
                &due,
                starts,
                goals,
                &self.means,
                &mut self.rngs,
                trace,
            );
            let k = self.cfg.replan_every;
            for (&i, p) in due.iter().zip(plans) {
                self.queues[i] = p.actions.chunks_exact(2).take(k).map(|a| [a[0], a[1]]).collect();
                self.means[i] = shift(&p.actions, k);
                self.last[i] = Some(p);
            }
        }
        let actions = active
            .iter()
            .map(|&i| (i, self.queues[i].pop_front().unwrap_or([0.0, 0.0])))
            .collect();
        (actions, !due.is_empty())
    }
}
