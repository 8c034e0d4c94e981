//! Hierarchical planning: level 2 plans a sequence of macro-actions far ahead toward the goal;
//! the state it predicts after its first `subgoal_step` macro-actions becomes the subgoal that
//! level 1 plans toward over a short horizon. Each level replans on its own schedule: level 2
//! every `replan_high_every` environment steps (warm-started from its previous plan, shifted),
//! level 1 every `low.replan_every` steps and whenever the subgoal changes.
//!
//! Both levels' states live in one space (level 2's): the level-1 model imagines through the
//! abstraction ([`Abstracted`](super::model::Abstracted)), so its energy is the distance of its
//! imagined states to the subgoal.

use super::model::Dynamics;
use super::planner::{Plan, PlannerConfig, PlannerKind};
use super::{plan_for, shift, Mpc};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Settings of the hierarchical planner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HierarchyConfig {
    /// Level 2: over macro-actions (`repeat` 1, `max_action` the macro-action radius).
    pub high: PlannerConfig,
    /// Level 1: over actions, toward the subgoal.
    pub low: PlannerConfig,
    /// Environment steps per level-2 step (the level-2 model's `k`).
    pub k: usize,
    /// Environment steps between level-2 plans.
    pub replan_high_every: usize,
    /// The level-2 step whose predicted state is the subgoal (1: the first).
    pub subgoal_step: usize,
}

impl HierarchyConfig {
    /// The defaults for a level-2 model jumping `k` steps with macro-actions of norm below
    /// `macro_radius`: level 2 looks 12 jumps ahead, level 1 one jump and one decision more
    /// (for `k` = 8: 3 decisions of 4 steps, 12 steps) toward the first predicted level-2 state.
    pub fn default_for(k: usize, macro_radius: f32) -> HierarchyConfig {
        let flat = PlannerConfig::default_for(PlannerKind::Cem);
        HierarchyConfig {
            high: PlannerConfig {
                horizon: 12,
                repeat: 1,
                max_action: macro_radius,
                init_std: macro_radius * 0.6,
                replan_every: 1,
                ..flat.clone()
            },
            low: PlannerConfig {
                horizon: k.div_ceil(flat.repeat).max(1) + 1,
                samples: 100,
                ..flat
            },
            k,
            replan_high_every: k,
            subgoal_step: 1,
        }
    }

    /// Checks the settings, naming the one at fault.
    pub fn validate(&self) -> Result<(), String> {
        self.high.validate().map_err(|e| format!("high level: {e}"))?;
        self.low.validate().map_err(|e| format!("low level: {e}"))?;
        for (name, c) in [("high", &self.high), ("low", &self.low)] {
            if c.kind == PlannerKind::Gradient {
                return Err(format!(
                    "hierarchy.{name}.kind = gradient: the hierarchical planner samples (cem or mppi)"
                ));
            }
        }
        crate::require_counts(
            "hierarchy",
            &[("k", self.k), ("replan_high_every", self.replan_high_every)],
        )?;
        if self.low.cost.critic != 0.0 || self.high.cost.critic != 0.0 {
            return Err(
                "hierarchy: the critic's terminal cost is not available to the hierarchical planner (it reads level-1 latents); set critic to 0"
                    .into(),
            );
        }
        if self.low.cost.keypoints != 0.0 || self.high.cost.keypoints != 0.0 {
            return Err("hierarchy: keypoints come from a spatial state, and the hierarchical planner imagines with the latent predictors; set keypoints to 0".into());
        }
        if self.low.cost.collision != 0.0 || self.high.cost.collision != 0.0 {
            return Err(
                "hierarchy: the predicted-collision cost is not available to the hierarchical planner (level 1 imagines in level-2 space); set collision to 0"
                    .into(),
            );
        }
        if !(1..=self.high.len()).contains(&self.subgoal_step) {
            return Err(format!(
                "hierarchy.subgoal_step = {} must be in 1..={} (the level-2 plan's length)",
                self.subgoal_step,
                self.high.len()
            ));
        }
        Ok(())
    }
}

/// Salt of level 1's random streams (apart from level 2's).
const LOW_SALT: u64 = 0x6a09_e667_f3bc_c909;

/// Receding-horizon hierarchical control of several problems at once.
pub struct HierMpc {
    pub cfg: HierarchyConfig,
    high_means: Vec<Vec<f32>>,
    high_rngs: Vec<ChaCha8Rng>,
    /// Environment steps since each problem's last level-2 plan (`None`: none yet).
    since_high: Vec<Option<usize>>,
    /// Each problem's current subgoal (level-2 state).
    pub subgoals: Vec<Vec<f32>>,
    /// The latest level-2 plan of each problem.
    pub last_high: Vec<Option<Plan>>,
    /// Whether each problem planned at level 2 at its latest action.
    planned_high: Vec<bool>,
    /// Level 1.
    pub low: Mpc,
}

impl HierMpc {
    pub fn new(cfg: HierarchyConfig, seeds: &[u64]) -> HierMpc {
        let low_seeds: Vec<u64> = seeds.iter().map(|s| s ^ LOW_SALT).collect();
        HierMpc {
            high_means: vec![vec![0.0; cfg.high.len() * 2]; seeds.len()],
            high_rngs: seeds.iter().map(|&s| ChaCha8Rng::seed_from_u64(s)).collect(),
            since_high: vec![None; seeds.len()],
            subgoals: vec![Vec::new(); seeds.len()],
            last_high: vec![None; seeds.len()],
            planned_high: vec![false; seeds.len()],
            low: Mpc::new(cfg.low.clone(), &low_seeds),
            cfg,
        }
    }

    /// Starts problem `i` afresh, its random streams from `seed` (as [`HierMpc::new`] makes
    /// them).
    pub fn reset(&mut self, i: usize, seed: u64) {
        self.high_means[i] = vec![0.0; self.cfg.high.len() * 2];
        self.high_rngs[i] = ChaCha8Rng::seed_from_u64(seed);
        self.since_high[i] = None;
        self.subgoals[i].clear();
        self.last_high[i] = None;
        self.planned_high[i] = false;
        self.low.reset(i, seed ^ LOW_SALT);
    }

    /// Whether problem `i` planned at level 2 at its latest action.
    pub fn planned_high_at_last_act(&self, i: usize) -> bool {
        self.planned_high[i]
    }

    /// Whether problem `i` plans at level 2 at its next action.
    pub fn needs_high(&self, i: usize) -> bool {
        self.since_high[i].is_none_or(|s| s >= self.cfg.replan_high_every)
    }

    /// Whether problem `i` plans (at either level) at its next action.
    pub fn needs_plan(&self, i: usize) -> bool {
        self.needs_high(i) || self.low.needs_plan(i)
    }

    /// Forgets problem `i`'s plans (a new goal, overridden actions): both levels plan again at
    /// its next action.
    pub fn interrupt(&mut self, i: usize) {
        self.since_high[i] = None;
        self.low.interrupt(i);
    }

    /// The next action of each problem in `active`. `high_starts[i]` is problem `i`'s level-2
    /// state and `low_starts[i]` what level 1 starts from; `goals` `[problems, high.dim()]`
    /// are level-2 states; `low` imagines in level-2 space. Returns the actions and whether
    /// any planning happened.
    #[allow(clippy::too_many_arguments)]
    pub fn act<H, L>(
        &mut self,
        high: &H,
        low: &L,
        high_starts: &[Vec<f32>],
        low_starts: &[L::Start],
        goals: &[f32],
        active: &[usize],
        trace: bool,
    ) -> (Vec<(usize, [f32; 2])>, bool)
    where
        H: Dynamics<Start = Vec<f32>>,
        L: Dynamics,
        L::Start: Clone,
    {
        let dim = high.dim();
        assert_eq!(low.dim(), dim, "both levels must imagine in one space");
        let due: Vec<usize> = active.iter().copied().filter(|&i| self.needs_high(i)).collect();
        for &i in active {
            self.planned_high[i] = false;
        }
        for &i in &due {
            self.planned_high[i] = true;
        }
        if !due.is_empty() {
            let plans = plan_for(
                &self.cfg.high,
                high,
                &due,
                high_starts,
                goals,
                &self.high_means,
                &mut self.high_rngs,
                trace,
            );
            let jumps = self.cfg.replan_high_every / self.cfg.k;
            let at = self.cfg.subgoal_step - 1;
            for (&i, p) in due.iter().zip(plans) {
                self.high_means[i] = shift(&p.actions, jumps);
                self.subgoals[i] = p.imagined[at * dim..(at + 1) * dim].to_vec();
                self.last_high[i] = Some(p);
                self.since_high[i] = Some(0);
                self.low.interrupt(i);
            }
        }
        let low_goals: Vec<f32> = (0..self.subgoals.len())
            .flat_map(|i| {
                let g = &self.subgoals[i];
                if g.len() == dim {
                    g.clone()
                } else {
                    vec![0.0; dim]
                }
            })
            .collect();
        let (actions, planned_low) = self.low.act(low, low_starts, &low_goals, active, trace);
        for &i in active {
            if let Some(s) = self.since_high[i].as_mut() {
                *s += 1;
            }
        }
        (actions, planned_low || !due.is_empty())
    }
}
