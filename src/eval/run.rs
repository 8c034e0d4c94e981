//! `amisim eval`: goal-reaching episodes in the world, planned with the learned world model,
//! against a random policy and an oracle that plans with the true simulator.
//!
//! Episodes run in batches of `envs` environments side by side; batch `b` holds episodes
//! `b·envs ..`, each drawn from its own seed, and every planner draws from its own stream per
//! episode, so an episode's result does not depend on the run around it. `--shard i/n` takes
//! the batches with `b mod n = i`; [`merge`] joins shard reports into the report of the
//! whole run.

use crate::actor::hierarchy::{HierMpc, HierarchyConfig};
use crate::actor::mode1::Mode1;
use crate::actor::model::{Abstracted, Dynamics, LatentDynamics, SimDynamics};
use crate::actor::planner::{project, PlannerConfig};
use crate::actor::spatial::{EnsembleDynamics, SpatialDynamics, SpatialRollout};
use crate::actor::Mpc;
use crate::agent::{AgentBatch, AgentConfig, AgentModels};
use crate::configurator::{Available, Decision, GoalKind, Task};
use crate::cost::critic::Critic;
use crate::eval::probe::LinearProbe;
use crate::memory::blocked::{AvoidBlocked, BlockedMoves, WithBlocked};
use crate::train::collect::Recorder;
use crate::world::env::{env_rng, Obs, VecEnv};
use crate::world::scene::Scene;
use crate::world::sim::{self, EnvState};
use crate::world_model::jepa::Jepa;
use crate::world_model::level2::{Level2, Level2Config};
use anyhow::{bail, Context, Result};
use burn::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What acts in a row of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Uniform random actions in the action ball.
    Random,
    /// The planner with the learned world model (latents of the encoder).
    Latent(PlannerConfig),
    /// The planner with the true simulator: what the planner could do with a perfect model.
    Oracle(PlannerConfig),
    /// The hierarchical planner: level 2 (macro-actions, far ahead) sets level 1's subgoals.
    Hierarchical(HierarchyConfig),
    /// Mode 1 alone: the distilled policy `π(z, z_goal)`, one forward pass per step.
    Mode1,
    /// The whole agent: configurator, memories, critic, mode 1 checked and mode 2 behind it.
    Agent(Box<AgentConfig>),
}

impl Policy {
    /// Whether the row acts with the learned model (every row but random and oracle).
    pub fn learned(&self) -> bool {
        !matches!(self, Policy::Random | Policy::Oracle(_))
    }

    pub fn name(&self) -> String {
        let kind = |c: &PlannerConfig| serde_json::to_value(c.kind).unwrap().as_str().unwrap_or("").to_string();
        match self {
            Policy::Random => "random".into(),
            Policy::Latent(c) => {
                let mut name = kind(c);
                if c.horizon != PlannerConfig::default_for(c.kind).horizon {
                    name += &format!("@{}", c.horizon);
                }
                if c.cost.critic != 0.0 {
                    name += "+critic";
                }
                if c.spatial {
                    name += "+spatial";
                }
                if c.ensemble {
                    name += "+ensemble";
                }
                if c.switch_after > 0 {
                    name += "+switch";
                }
                name
            }
            Policy::Oracle(c) => format!("oracle-{}", kind(c)),
            Policy::Hierarchical(_) => "hierarchical".into(),
            Policy::Mode1 => "mode1".into(),
            Policy::Agent(_) => "agent".into(),
        }
    }
}

/// Settings of an evaluation run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EvalConfig {
    pub scene: String,
    pub episodes: usize,
    /// Environments side by side (the batch).
    pub envs: usize,
    pub seed: u64,
    /// Step budget of an episode (the scene's by default).
    pub max_steps: u32,
    pub policies: Vec<Policy>,
    /// `(i, n)`: this process runs the batches `b` with `b mod n = i`.
    pub shard: (usize, usize),
    /// The checkpoint planned with, and its training step.
    pub checkpoint: String,
    pub checkpoint_step: usize,
    /// The checkpoint's resolved training config (model included).
    pub model: serde_json::Value,
    /// The critic and the mode-1 policy (checkpoint, step, config) where rows use them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critic: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode1: Option<serde_json::Value>,
    /// The level-2 model (checkpoint, step, config) when a row plans hierarchically.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level2: Option<serde_json::Value>,
    /// The other models of `+ensemble` rows (checkpoint, step, config).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ensemble: Vec<serde_json::Value>,
}

/// One episode's outcome.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EpisodeResult {
    pub episode: usize,
    pub success: bool,
    /// Steps taken: until success, or the episode's budget.
    pub steps: u32,
    /// Distance of the tracked thing (agent, or box) to its goal at the end, in pixels.
    pub final_distance: f32,
    pub start_distance: f32,
    /// Plans made (for the hierarchical planner: level-2 plans), and how many of them imagine
    /// the agent going through a wall rather than a door: their imagined states read by the
    /// position probe, one position every `k` (8) imagined steps (a level-2 plan's own
    /// spacing), joined by straight moves from the agent's position (see
    /// [`Layout::path_crosses_wall`](crate::world::layout::Layout::path_crosses_wall)).
    #[serde(default)]
    pub plans: u32,
    #[serde(default)]
    pub plans_through_walls: u32,
    /// Steps acted by mode 1 (the policy) and by mode 2 (planning), for the agent and mode-1
    /// rows.
    #[serde(default)]
    pub mode1_steps: u32,
    #[serde(default)]
    pub mode2_steps: u32,
    /// The configurator's decisions in this episode, with their reasons (the agent row).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decisions: Vec<Decision>,
    /// Loops the episodic memory recognised (the agent row).
    #[serde(default)]
    pub loops: u32,
    /// Times a `+switch` row passed to the next world model.
    #[serde(default, skip_serializing_if = "crate::is_zero")]
    pub switches: u32,
    /// Replans that found the agent stuck where the last plan imagined it moving (`--blocked`).
    #[serde(default, skip_serializing_if = "crate::is_zero")]
    pub stalls: u32,
}

/// One row of the report: a policy over all episodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RowReport {
    pub name: String,
    pub policy: Policy,
    pub success_rate: f64,
    /// Wilson score interval, 95 %.
    pub success_ci95: [f64; 2],
    pub final_distance_mean: f64,
    /// Mean steps of the successful episodes.
    pub steps_mean_success: f64,
    /// Planning time per environment step, amortised: each planning call's time, divided by
    /// the environments it planned for and by the steps its plan covers (`replan_every`).
    pub plan_ms_median: f64,
    pub plan_ms_p95: f64,
    /// All planning time over all environment steps.
    pub plan_ms_per_step: f64,
    /// Encoding the observations, per environment step.
    pub encode_ms_per_step: f64,
    /// Share of the plans that imagine going through a wall, in failed and in successful
    /// episodes (see [`EpisodeResult::plans_through_walls`]; 0 where nothing was judged).
    #[serde(default)]
    pub through_walls_failed: f64,
    #[serde(default)]
    pub through_walls_succeeded: f64,
    /// Share of the steps acted by mode 1.
    #[serde(default)]
    pub mode1_share: f64,
    /// How often the configurator made each kind of decision (after the setup), over all
    /// episodes.
    #[serde(default)]
    pub decisions: std::collections::BTreeMap<String, usize>,
    /// A `+switch` row's passes to another world model over all episodes, the episodes with at
    /// least one, and how many of those reached the goal.
    #[serde(default)]
    pub switches: u64,
    #[serde(default)]
    pub switched_episodes: usize,
    #[serde(default)]
    pub switched_succeeded: usize,
    pub episodes: Vec<EpisodeResult>,
    /// Every planning call's per-step time (for merging shards).
    pub plan_ms_samples: Vec<f64>,
    pub plan_ms_total: f64,
    pub encode_ms_total: f64,
    pub env_steps: u64,
}

/// The report (`DIR/report.json`): the first planner row's headline numbers, then every row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub episodes: usize,
    pub success_rate: f64,
    pub success_ci95: [f64; 2],
    pub plan_ms_median: f64,
    pub plan_ms_p95: f64,
    pub settings: EvalConfig,
    pub rows: Vec<RowReport>,
}

/// Wilson score interval for `k` successes in `n` trials, 95 %.
pub fn wilson(k: usize, n: usize) -> [f64; 2] {
    if n == 0 {
        return [0.0, 1.0];
    }
    let (z, n, p) = (1.96f64, n as f64, k as f64 / n as f64);
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denom;
    [(centre - half).max(0.0), (centre + half).min(1.0)]
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

impl RowReport {
    /// Statistics from the raw results.
    fn summarise(
        name: String,
        policy: Policy,
        mut episodes: Vec<EpisodeResult>,
        mut plan_ms_samples: Vec<f64>,
        plan_ms_total: f64,
        encode_ms_total: f64,
        env_steps: u64,
    ) -> RowReport {
        episodes.sort_by_key(|e| e.episode);
        plan_ms_samples.sort_by(|a, b| a.total_cmp(b));
        let n = episodes.len();
        let wins: Vec<&EpisodeResult> = episodes.iter().filter(|e| e.success).collect();
        let mean = |v: &mut dyn Iterator<Item = f64>, n: usize| if n == 0 { 0.0 } else { v.sum::<f64>() / n as f64 };
        let share = |success: bool| {
            let (through, plans) = episodes
                .iter()
                .filter(|e| e.success == success)
                .fold((0u64, 0u64), |(t, p), e| {
                    (t + e.plans_through_walls as u64, p + e.plans as u64)
                });
            through as f64 / plans.max(1) as f64
        };
        let (m1, m2) = episodes.iter().fold((0u64, 0u64), |(a, b), e| {
            (a + e.mode1_steps as u64, b + e.mode2_steps as u64)
        });
        let mut decisions = std::collections::BTreeMap::new();
        for d in episodes.iter().flat_map(|e| &e.decisions).filter(|d| d.kind != "setup") {
            *decisions.entry(d.kind.clone()).or_insert(0) += 1;
        }
        let switched = || episodes.iter().filter(|e| e.switches > 0);
        RowReport {
            switches: episodes.iter().map(|e| e.switches as u64).sum(),
            switched_episodes: switched().count(),
            switched_succeeded: switched().filter(|e| e.success).count(),
            name,
            policy,
            mode1_share: m1 as f64 / (m1 + m2).max(1) as f64,
            decisions,
            success_rate: if n == 0 { 0.0 } else { wins.len() as f64 / n as f64 },
            success_ci95: wilson(wins.len(), n),
            final_distance_mean: mean(&mut episodes.iter().map(|e| e.final_distance as f64), n),
            steps_mean_success: mean(&mut wins.iter().map(|e| e.steps as f64), wins.len()),
            plan_ms_median: percentile(&plan_ms_samples, 0.5),
            plan_ms_p95: percentile(&plan_ms_samples, 0.95),
            plan_ms_per_step: plan_ms_total / env_steps.max(1) as f64,
            encode_ms_per_step: encode_ms_total / env_steps.max(1) as f64,
            through_walls_failed: share(false),
            through_walls_succeeded: share(true),
            episodes,
            plan_ms_samples,
            plan_ms_total,
            encode_ms_total,
            env_steps,
        }
    }
}

impl Report {
    fn new(settings: EvalConfig, rows: Vec<RowReport>) -> Report {
        let main = rows.iter().find(|r| r.policy.learned()).or(rows.first());
        Report {
            episodes: main.map_or(0, |r| r.episodes.len()),
            success_rate: main.map_or(0.0, |r| r.success_rate),
            success_ci95: main.map_or([0.0, 1.0], |r| r.success_ci95),
            plan_ms_median: main.map_or(0.0, |r| r.plan_ms_median),
            plan_ms_p95: main.map_or(0.0, |r| r.plan_ms_p95),
            settings,
            rows,
        }
    }

    /// Writes `report.json` and `report.csv` (one line per row) into `dir`, atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let write = |name: &str, text: String| crate::write_file_atomic(&dir.join(name), text);
        write("report.json", serde_json::to_string_pretty(self)?)?;
        let mut csv = String::from(
            "policy,episodes,success_rate,ci95_low,ci95_high,final_distance_mean,steps_mean_success,plan_ms_median,plan_ms_p95,plan_ms_per_step,encode_ms_per_step,through_walls_failed,through_walls_succeeded,switches,switched_episodes,switched_succeeded\n",
        );
        for r in &self.rows {
            csv += &format!(
                "{},{},{:.4},{:.4},{:.4},{:.3},{:.2},{:.3},{:.3},{:.3},{:.3},{:.4},{:.4},{},{},{}\n",
                r.name,
                r.episodes.len(),
                r.success_rate,
                r.success_ci95[0],
                r.success_ci95[1],
                r.final_distance_mean,
                r.steps_mean_success,
                r.plan_ms_median,
                r.plan_ms_p95,
                r.plan_ms_per_step,
                r.encode_ms_per_step,
                r.through_walls_failed,
                r.through_walls_succeeded,
                r.switches,
                r.switched_episodes,
                r.switched_succeeded
            );
        }
        write("report.csv", csv)
    }

    /// A table for the terminal.
    pub fn table(&self) -> String {
        // The policy column is as wide as its longest name (`cem@16+spatial+switch`).
        let w = self.rows.iter().map(|r| r.name.chars().count()).fold(14, usize::max);
        let mut s = format!(
            "{:<w$} {:>8} {:>9} {:>15} {:>10} {:>8} {:>10} {:>10} {:>10} {:>17}\n",
            "policy",
            "episodes",
            "success",
            "95% interval",
            "final px",
            "steps",
            "plan ms",
            "p95 ms",
            "ms/step",
            "thru walls f/s"
        );
        for r in &self.rows {
            s += &format!(
                "{:<w$} {:>8} {:>8.1}% {:>6.1}–{:>5.1}% {:>10.2} {:>8.1} {:>10.2} {:>10.2} {:>10.2} {:>8.0}%/{:>3.0}%\n",
                r.name,
                r.episodes.len(),
                100.0 * r.success_rate,
                100.0 * r.success_ci95[0],
                100.0 * r.success_ci95[1],
                r.final_distance_mean,
                r.steps_mean_success,
                r.plan_ms_median,
                r.plan_ms_p95,
                r.plan_ms_per_step,
                100.0 * r.through_walls_failed,
                100.0 * r.through_walls_succeeded
            );
        }
        for r in &self.rows {
            if matches!(&r.policy, Policy::Latent(c) if c.switch_after > 0) {
                s += &format!(
                    "{}: {} of {} episodes passed to another model ({} passes in all); {} of those reached the goal\n",
                    r.name,
                    r.switched_episodes,
                    r.episodes.len(),
                    r.switches,
                    r.switched_succeeded
                );
            }
            if matches!(&r.policy, Policy::Latent(c) if c.blocked > 0.0) {
                let stalled = || r.episodes.iter().filter(|e| e.stalls > 0);
                s += &format!(
                    "{}: stalls noticed in {} of {} episodes ({} in all); {} of those reached the goal\n",
                    r.name,
                    stalled().count(),
                    r.episodes.len(),
                    r.episodes.iter().map(|e| e.stalls as u64).sum::<u64>(),
                    stalled().filter(|e| e.success).count()
                );
            }
            if matches!(r.policy, Policy::Agent(_)) {
                let counts: Vec<String> = r.decisions.iter().map(|(k, v)| format!("{k} {v}")).collect();
                s += &format!(
                    "{}: mode 1 acted {:.1}% of steps; configurator decisions on stalls: {}\n",
                    r.name,
                    100.0 * r.mode1_share,
                    if counts.is_empty() {
                        "none".to_string()
                    } else {
                        counts.join(", ")
                    }
                );
            }
        }
        s
    }
}

/// Joins shard reports of one run. Their settings must agree except for the shard.
pub fn merge(reports: Vec<Report>) -> Result<Report> {
    let Some(first) = reports.first() else {
        bail!("nothing to merge")
    };
    let mut settings = first.settings.clone();
    settings.shard = (0, 1);
    for r in &reports {
        let mut s = r.settings.clone();
        s.shard = (0, 1);
        if s != settings {
            bail!(
                "the reports come from different runs (settings differ beyond the shard): {} vs {}",
                serde_json::to_string(&settings)?,
                serde_json::to_string(&s)?
            );
        }
    }
    let mut shards: Vec<usize> = reports.iter().map(|r| r.settings.shard.0).collect();
    shards.sort();
    let n = first.settings.shard.1;
    if shards != (0..n).collect::<Vec<_>>() {
        bail!("merging needs shards 0..{n} once each, got {shards:?}");
    }
    let rows = (0..first.rows.len())
        .map(|i| {
            let parts: Vec<&RowReport> = reports.iter().map(|r| &r.rows[i]).collect();
            RowReport::summarise(
                parts[0].name.clone(),
                parts[0].policy.clone(),
                parts.iter().flat_map(|r| r.episodes.clone()).collect(),
                parts.iter().flat_map(|r| r.plan_ms_samples.clone()).collect(),
                parts.iter().map(|r| r.plan_ms_total).sum(),
                parts.iter().map(|r| r.encode_ms_total).sum(),
                parts.iter().map(|r| r.env_steps).sum(),
            )
        })
        .collect();
    Ok(Report::new(settings, rows))
}

/// An observation batch as frames `[n, c, h, w]` in `0..=1`.
fn frames(obs: &Obs, device: &Device) -> Tensor<4> {
    let frames: Vec<f32> = obs.frames.iter().map(|&v| v as f32 / 255.0).collect();
    Tensor::<4>::from_data(TensorData::new(frames, obs.shape), device)
}

/// Latents of every frame of an observation batch, `[n, d]` row-major.
pub fn encode(model: &Jepa, obs: &Obs, device: &Device) -> Vec<f32> {
    crate::values(model.encode(frames(obs, device)))
}

/// The encoder's spatial states of every frame of an observation batch, `[n, c, s, s]`
/// row-major (empty for a model without a spatial predictor).
pub fn encode_maps(model: &Jepa, obs: &Obs, device: &Device) -> Vec<f32> {
    encode_with_maps(model, obs, device).1
}

/// The latents and the spatial states of an observation batch, from one pass of the encoder
/// (the maps empty for a model without a spatial predictor).
fn encode_with_maps(model: &Jepa, obs: &Obs, device: &Device) -> (Vec<f32>, Vec<f32>) {
    match model.encoder.forward_with_map(frames(obs, device)) {
        (z, Some(map)) => (crate::values(z), crate::values(map)),
        (z, None) => (crate::values(z), Vec::new()),
    }
}

/// The spatial predictor as planning dynamics, when the model has one.
pub fn spatial_dynamics(model: &Jepa, critic: Option<crate::cost::critic::Critic>) -> Option<SpatialDynamics> {
    let (Some(sp), crate::perception::Encoder::Conv(enc)) = (&model.spatial, &model.encoder) else {
        return None;
    };
    Some(SpatialDynamics {
        rollout: SpatialRollout::new(sp, enc),
        critic,
    })
}

/// What a flat planner row imagines with: the latent predictor, the spatial one, or an
/// ensemble of spatial ones. Each starts from its own kind of state.
#[derive(Clone, Copy)]
enum Imagine<'m> {
    Latent,
    Spatial(&'m SpatialDynamics),
    Ensemble(&'m EnsembleDynamics),
}

impl Imagine<'_> {
    /// Every environment's start from an observation batch, `[n, width]` row-major, and its
    /// width: the latent, the spatial state, or every member's spatial state end to end
    /// (`members`: the checkpoint's model first, then the ensemble's others).
    fn starts(self, members: &[&Jepa], obs: &Obs, device: &Device) -> (Vec<f32>, usize) {
        let model = members[0];
        match self {
            Imagine::Latent => (encode(model, obs, device), model.latent()),
            Imagine::Spatial(sp) => (encode_maps(model, obs, device), sp.rollout.map_len()),
            Imagine::Ensemble(e) => {
                let maps = members.iter().map(|m| encode_maps(m, obs, device)).collect();
                (end_to_end(maps, obs.shape[0]), e.start_len())
            }
        }
    }
}

/// Imagined steps between the positions at which a flat plan is judged for walls when no
/// level-2 model sets the spacing (its `k` by default).
const JUDGE_EVERY: usize = 8;

/// [`encode`], its time added to `total` for the `active` environments' share of the batch.
fn timed_encode(model: &Jepa, obs: &Obs, device: &Device, total: &mut f64, active: usize) -> Vec<f32> {
    timed(obs, total, active, || encode(model, obs, device))
}

/// `f` (an encoding of `obs`), its time added to `total` for the `active` environments' share
/// of the batch.
fn timed(obs: &Obs, total: &mut f64, active: usize, f: impl FnOnce() -> Vec<f32>) -> Vec<f32> {
    let t0 = Instant::now();
    let x = f();
    *total += t0.elapsed().as_secs_f64() * 1e3 * active as f64 / obs.shape[0] as f64;
    x
}

/// A `+switch` row's member `m` plans for the environments it has (`mine`) from `starts`,
/// through the blocked-move cost where the row weighs one (`view`: the member's view of this
/// observation, `[problems, dim]`, where it was needed).
#[allow(clippy::too_many_arguments)]
fn member_act<D: Dynamics<Start = Vec<f32>>>(
    mpc: &mut Mpc,
    dynamics: &D,
    starts: Vec<Vec<f32>>,
    goals: &[f32],
    mine: &[usize],
    trace: bool,
    c: &PlannerConfig,
    moves: &mut BlockedMoves,
    view: Option<&[f32]>,
    m: usize,
) -> (Vec<(usize, [f32; 2])>, bool) {
    if c.blocked <= 0.0 {
        return mpc.act(dynamics, &starts, goals, mine, trace);
    }
    let avoid = AvoidBlocked {
        inner: dynamics,
        weight: c.blocked,
        executed: c.replan_every,
        max_action: c.max_action,
    };
    let d = goals.len() / starts.len();
    let starts: Vec<WithBlocked<Vec<f32>>> = starts
        .into_iter()
        .enumerate()
        .map(|(i, start)| {
            let blocked = match view {
                Some(z) => moves.blocked_at(i, m, &z[i * d..(i + 1) * d]),
                None => Vec::new(),
            };
            WithBlocked { start, blocked }
        })
        .collect();
    let (a, p) = mpc.act(&avoid, &starts, goals, mine, trace);
    for &i in mine.iter().filter(|&&i| mpc.planned_at_last_act(i)) {
        if let (Some(z), Some(plan)) = (view, &mpc.last[i]) {
            moves.planned(i, m, &z[i * d..(i + 1) * d], plan, c.replan_every, d);
        }
    }
    (a, p)
}

/// Rows of `d` values, one vector each.
fn split_rows(x: &[f32], d: usize) -> Vec<Vec<f32>> {
    x.chunks_exact(d).map(<[f32]>::to_vec).collect()
}

/// Salt of the planners' random streams (apart from the episodes').
const PLAN_SALT: u64 = 0x9e37_79b9_7f4a_7c15;

/// The seed of a policy's random stream in episode `ep`.
fn plan_seed(seed: u64, ep: usize) -> u64 {
    seed.wrapping_mul(PLAN_SALT) ^ (ep as u64).wrapping_add(1).wrapping_mul(0xbf58_476d_1ce4_e5b9)
}

/// Draws, for the PNG strips: per step of an episode, its frame and the imagined path.
#[derive(Default, Clone)]
pub struct StripFrame {
    pub frame: Vec<u8>,
    /// Positions (x, y) of the chosen plan's imagined states, in pixels.
    pub path: Vec<[f32; 2]>,
    /// The hierarchical planner's level-2 plan (its imagined states every `k` steps).
    pub high_path: Vec<[f32; 2]>,
    /// Where the agent (or the box) should go, in pixels.
    pub goal: Option<[f32; 2]>,
}

/// The frames of one episode of one row: `(row name, episode, frames)`.
pub type Strip = (String, usize, Vec<StripFrame>);

/// The world model and what goes with it.
pub struct Loaded<'a> {
    pub model: &'a Jepa,
    /// The same predictor on an autodiff device (the gradient planner).
    pub differentiable: Option<crate::world_model::Predictor>,
    /// Latent → agent position, to draw imagined paths.
    pub probe: Option<LinearProbe>,
    /// The level-2 model, for the hierarchical planner.
    pub level2: Option<LoadedLevel2>,
    /// The trained critic (terminal cost; the agent's energy and mode-1 check).
    pub critic: Option<Critic>,
    /// The mode-1 policy.
    pub mode1: Option<Mode1>,
    /// More spatial world models, planning with `model`'s in `+ensemble` and `+switch` rows.
    pub ensemble: Vec<&'a Jepa>,
    /// Their position probes, where a `+switch` row draws and judges their plans (without
    /// them, those plans are neither drawn nor counted in `plans`).
    pub ensemble_probes: Vec<LinearProbe>,
}

/// A level-2 model and what goes with it.
pub struct LoadedLevel2 {
    pub model: Level2,
    pub cfg: Level2Config,
    /// Level-2 state → agent position, to draw imagined paths.
    pub probe: Option<LinearProbe>,
}

/// Runs every policy of `cfg` over its episodes (this shard's). `progress` is told each
/// finished episode; `strips` receives the frames of the first `strips` episodes of each row.
pub fn run(
    cfg: &EvalConfig,
    loaded: &Loaded,
    strips: usize,
    progress: impl FnMut(&str, usize),
) -> Result<(Report, Vec<Strip>)> {
    run_recorded(cfg, loaded, strips, progress, None)
}

/// [`run`], and with `record` every episode of the rows that act with the learned model (not
/// the random or oracle rows) is recorded: frames, actions, states (`eval --record`).
pub fn run_recorded(
    cfg: &EvalConfig,
    loaded: &Loaded,
    strips: usize,
    mut progress: impl FnMut(&str, usize),
    mut record: Option<&mut Recorder>,
) -> Result<(Report, Vec<Strip>)> {
    let scene = Scene::load(&cfg.scene)?;
    let (i_shard, n_shard) = cfg.shard;
    if n_shard == 0 || i_shard >= n_shard {
        bail!("--shard {i_shard}/{n_shard}: expected i/n with i < n");
    }
    if cfg.envs == 0 {
        bail!("--envs must be ≥ 1");
    }
    for p in &cfg.policies {
        // The oracle imagines with the simulator (hierarchical and agent rows refuse learned
        // spatial models in their own validation).
        if let Some(m) = match p {
            Policy::Oracle(c) => c.model_modifier(),
            _ => None,
        } {
            bail!("{}: {m} is for the cem and mppi rows with a learned model", p.name());
        }
        if let Policy::Latent(c) | Policy::Oracle(c) = p {
            c.validate().map_err(|e| anyhow::anyhow!("{}: {e}", p.name()))?;
            if matches!(p, Policy::Oracle(_)) && c.kind == crate::actor::planner::PlannerKind::Gradient {
                bail!("the oracle plans with the simulator, which has no gradient: use cem or mppi");
            }
        }
        if let Policy::Latent(c) = p {
            // Rows that plan with several models: all of them at once, or one at a time.
            if c.ensemble && c.switch_after > 0 {
                bail!(
                    "{}: a +switch row plans with one spatial predictor at a time: drop +ensemble",
                    p.name()
                );
            }
            if c.ensemble || c.switch_after > 0 {
                if !c.spatial {
                    bail!("{}: it plans with spatial predictors: add +spatial", p.name());
                }
                if loaded.ensemble.is_empty() {
                    bail!(
                        "{}: no other models to plan with: give them with --ensemble A,B",
                        p.name()
                    );
                }
                if c.cost.critic != 0.0 {
                    bail!("{}: the other models have no critic (drop +critic)", p.name());
                }
            }
            if c.ensemble && c.kind == crate::actor::planner::PlannerKind::Gradient {
                bail!("{}: an ensemble plans by sampling: use cem or mppi", p.name());
            }
            if c.cost.keypoints != 0.0 {
                if !c.spatial {
                    bail!("{}: keypoints come from the spatial state: add +spatial", p.name());
                }
                if c.cost.critic != 0.0 {
                    bail!(
                        "{}: the critic reads latents alone: drop +critic or --keypoints",
                        p.name()
                    );
                }
            }
            if c.cost.critic != 0.0 && loaded.critic.is_none() {
                bail!(
                    "{}: the critic's terminal cost needs a critic (train one with `amisim train --level critic`)",
                    p.name()
                );
            }
            if c.spatial {
                // A `+switch` row's members each plan with their spatial predictor where they
                // have one (the checkpoint's model too), and with their latent one otherwise.
                let spatial_somewhere = loaded.model.spatial.is_some()
                    || (c.switch_after > 0 && loaded.ensemble.iter().any(|m| m.spatial.is_some()));
                if !spatial_somewhere {
                    bail!(
                        "{}: this world model has no spatial predictor (train one with `--set model.encoder.spatial_state=8`)",
                        p.name()
                    );
                }
                if c.kind == crate::actor::planner::PlannerKind::Gradient {
                    bail!(
                        "{}: the spatial predictor's rollout is not differentiable here (use cem or mppi)",
                        p.name()
                    );
                }
                if c.cost.collision != 0.0 {
                    bail!(
                        "{}: the predicted-collision cost reads latents step by step; the spatial predictor jumps (use --collision 0)",
                        p.name()
                    );
                }
            }
            if c.cost.critic != 0.0 && c.kind == crate::actor::planner::PlannerKind::Gradient {
                bail!(
                    "{}: the gradient planner cannot use the critic's terminal cost (use cem or mppi)",
                    p.name()
                );
            }
        }
        if matches!(p, Policy::Mode1) && loaded.mode1.is_none() {
            bail!("mode1: no mode-1 policy (train one with `amisim train --level mode1`)");
        }
        if let Policy::Agent(a) = p {
            a.validate().map_err(|e| anyhow::anyhow!("agent: {e}"))?;
            if a.flat.kind == crate::actor::planner::PlannerKind::Gradient {
                bail!("agent: its flat planner samples (cem or mppi)");
            }
        }
        if let Policy::Hierarchical(h) = p {
            h.validate().map_err(|e| anyhow::anyhow!("hierarchical: {e}"))?;
            let Some(l2) = &loaded.level2 else {
                bail!("the hierarchical planner needs a level-2 model (train one with `amisim train --level 2`)");
            };
            if h.k != l2.cfg.k {
                bail!(
                    "hierarchical: k = {} but the level-2 model jumps k = {} steps",
                    h.k,
                    l2.cfg.k
                );
            }
        }
    }
    let device = Device::flex();
    let mut env = VecEnv::new(scene.clone(), cfg.envs)?;
    let batches: Vec<usize> = (0..cfg.episodes.div_ceil(cfg.envs))
        .filter(|b| b % n_shard == i_shard)
        .collect();
    let latent = LatentDynamics::new(&loaded.model.predictor, loaded.differentiable.clone())
        .with_idm(&loaded.model.idm)
        .with_critic(loaded.critic.clone());
    let spatial = spatial_dynamics(loaded.model, loaded.critic.clone());
    // The checkpoint's model first, then the others.
    let members: Vec<&Jepa> = std::iter::once(loaded.model)
        .chain(loaded.ensemble.iter().copied())
        .collect();
    let ensembled = |p: &Policy| matches!(p, Policy::Latent(c) if c.ensemble);
    let switched = |p: &Policy| matches!(p, Policy::Latent(c) if c.switch_after > 0);
    // Each model's own spatial predictor, where a row plans with several: a `+switch` row with
    // one at a time, an ensemble with all of them. A `+switch` row's other models without one
    // plan with their latent predictor.
    let singles: Vec<Option<SpatialDynamics>> = if cfg.policies.iter().any(|p| ensembled(p) || switched(p)) {
        members.iter().map(|m| spatial_dynamics(m, None)).collect()
    } else {
        Vec::new()
    };
    if cfg.policies.iter().any(ensembled) && singles.iter().any(Option::is_none) {
        bail!("+ensemble: every model (the checkpoint's too) needs a spatial predictor");
    }
    let latents: Vec<Option<LatentDynamics>> = singles
        .iter()
        .zip(&members)
        .map(|(d, m)| d.is_none().then(|| LatentDynamics::new(&m.predictor, None)))
        .collect();
    if let Some(p) = cfg
        .policies
        .iter()
        .find(|p| matches!(p, Policy::Latent(c) if c.cost.keypoints != 0.0))
    {
        if !(spatial.iter().all(|d| d.rollout.has_keypoints())
            && singles
                .iter()
                .all(|d| d.as_ref().is_some_and(|d| d.rollout.has_keypoints())))
        {
            bail!(
                "{}: --keypoints needs encoders with spatial soft-argmax (model.encoder.spatial_softmax = true), every model's",
                p.name()
            );
        }
    }
    let oracle = SimDynamics { scene: scene.clone() };
    // Level 2 (the predictor over macro-actions) and level 1 seen through the abstraction.
    let level2 = loaded.level2.as_ref().map(|l2| {
        let (w, b) = l2.model.abstraction_weights();
        (
            LatentDynamics::new(&l2.model.predictor, None),
            Abstracted::new(&latent, w, b),
        )
    });
    let mut rows = Vec::new();
    let mut all_strips = Vec::new();
    for policy in &cfg.policies {
        let name = policy.name();
        // This row's spatial dynamics, with the keypoints joined to the latents where its cost
        // weighs them.
        let kp = match policy {
            Policy::Latent(c) => c.cost.keypoints,
            _ => 0.0,
        };
        let spatial = spatial.as_ref().map(|d| d.with_keypoints(kp));
        let singles: Vec<Option<SpatialDynamics>> = singles
            .iter()
            .map(|d| d.as_ref().map(|d| d.with_keypoints(kp)))
            .collect();
        let ensemble = ensembled(policy).then(|| EnsembleDynamics {
            members: singles.iter().flatten().map(|d| d.rollout.clone()).collect(),
        });
        // Model `m`'s view of observations, to compare imagined states with: its latents, or,
        // with keypoints joined, the states its spatial rollout starts at. A spatial model's
        // maps come from the same encoder pass and are kept in `maps`.
        let view = |m: usize, obs: &Obs, maps: &mut Option<Vec<f32>>| -> Vec<f32> {
            let Some(d) = singles
                .get(m)
                .and_then(Option::as_ref)
                .or(spatial.as_ref().filter(|_| m == 0))
            else {
                return encode(members[m], obs, &device);
            };
            let (z, x) = encode_with_maps(members[m], obs, &device);
            let x = maps.insert(x);
            if kp != 0.0 {
                d.rollout.states_of(x, cfg.envs)
            } else {
                z
            }
        };
        let mut episodes = Vec::new();
        let (mut samples, mut plan_total, mut encode_total, mut env_steps) = (Vec::new(), 0.0, 0.0, 0u64);
        for &b in &batches {
            let ids: Vec<usize> = (b * cfg.envs..(b + 1) * cfg.envs).collect();
            let starts: Vec<EnvState> = ids
                .iter()
                .map(|&ep| sim::sample_episode(&scene, &mut env_rng(cfg.seed, ep)))
                .collect::<Result<_, _>>()?;
            let goal_states: Vec<EnvState> = starts.iter().map(|s| sim::goal_state(&scene, s)).collect();
            // Goals: the model's view of the goal observation, or the goal state; every
            // member's view for an ensemble (end to end) or a `+switch` row (one each).
            let goals_each: Vec<Vec<f32>> = if ensembled(policy) || switched(policy) {
                env.set_states(goal_states.clone());
                let obs = env.render()?;
                (0..members.len()).map(|m| view(m, &obs, &mut None)).collect()
            } else {
                Vec::new()
            };
            let goals_latent = if ensembled(policy) {
                end_to_end(goals_each.clone(), cfg.envs)
            } else if switched(policy) {
                Vec::new()
            } else if policy.learned() {
                env.set_states(goal_states.clone());
                view(0, &env.render()?, &mut None)
            } else {
                Vec::new()
            };
            let goals_sim: Vec<f32> = goal_states.iter().flat_map(|g| oracle.observe(g)).collect();
            env.set_states(starts.clone());
            let mut obs = env.render()?;
            let n = cfg.envs;
            // Recorded: this row's episodes that count (not a last batch's padding).
            let mut rec = record.as_deref_mut().filter(|_| policy.learned());
            let counts = |i: usize| ids[i] < cfg.episodes;
            if let Some(r) = rec.as_deref_mut() {
                r.start(n);
                for i in (0..n).filter(|&i| counts(i)) {
                    r.frame(i, obs.frame(i), &env.states()[i]);
                }
            }
            let seeds: Vec<u64> = ids.iter().map(|&ep| plan_seed(cfg.seed, ep)).collect();
            let mut mpc = match policy {
                Policy::Latent(c) | Policy::Oracle(c) => Some(Mpc::new(c.clone(), &seeds)),
                _ => None,
            };
            let mut hier = match policy {
                Policy::Hierarchical(h) => Some(HierMpc::new(h.clone(), &seeds)),
                _ => None,
            };
            let mut agents = match policy {
                Policy::Agent(a) => {
                    let task = Task {
                        scene: cfg.scene.clone(),
                        goal: if starts[0].pushable.is_some() {
                            GoalKind::Object
                        } else {
                            GoalKind::Place
                        },
                        rooms: starts[0].layout.as_ref().map_or(1, |l| l.room_count),
                        cost: scene.episode().task_cost,
                    };
                    let available = Available {
                        critic: loaded.critic.is_some(),
                        level2: level2.is_some() && a.hierarchy.is_some(),
                        mode1: loaded.mode1.is_some(),
                    };
                    Some(AgentBatch::new((**a).clone(), &task, available, &seeds))
                }
                _ => None,
            };
            let goals_high: Vec<f32> = match &level2 {
                Some((_, low)) if hier.is_some() => low.map(&goals_latent),
                _ => Vec::new(),
            };
            let mut rngs: Vec<ChaCha8Rng> = seeds.iter().map(|&s| ChaCha8Rng::seed_from_u64(s)).collect();
            let mut active: Vec<usize> = (0..n).collect();
            let mut result: Vec<Option<EpisodeResult>> = vec![None; n];
            let start_distance: Vec<f32> = starts.iter().map(|s| s.goal_distance(&scene)).collect();
            let drawn: Vec<usize> = (0..n).filter(|&i| ids[i] < strips.min(cfg.episodes)).collect();
            let mut strip: Vec<Vec<StripFrame>> = vec![Vec::new(); n];
            let (mut plans, mut through) = (vec![0u32; n], vec![0u32; n]);
            let mut mode1_steps = vec![0u32; n];
            let mut progress_of = Progress::new(n);
            let max_action = match policy {
                Policy::Latent(c) => c.max_action,
                _ => 0.0,
            };
            let mut moves = BlockedMoves::new(n, max_action);
            let max_steps = cfg.max_steps;
            for t in 0..max_steps {
                let mut actions = vec![[0.0f32; 2]; n];
                // Planner rows: the actions, whether a plan was made, how long it took, and the
                // steps a plan covers.
                // Who plans now (level 2 for the hierarchical planner), to judge their plans.
                let planning: Vec<usize> = active
                    .iter()
                    .copied()
                    .filter(|&i| match (&mpc, &hier) {
                        (Some(m), _) => m.needs_plan(i),
                        (_, Some(h)) => h.needs_high(i),
                        _ => false,
                    })
                    .collect();
                let decided = match (policy, &mut mpc) {
                    (Policy::Latent(c), Some(mpc)) if c.switch_after > 0 => {
                        // One member plans for each environment; a stalled one passes it on.
                        let t0 = Instant::now();
                        let mut views: Vec<Option<Vec<f32>>> = vec![None; members.len()];
                        let mut maps: Vec<Option<Vec<f32>>> = vec![None; members.len()];
                        let due: Vec<usize> = active.iter().copied().filter(|&i| mpc.needs_plan(i)).collect();
                        let mut distance = |m: usize, i: usize| {
                            let z = views[m].get_or_insert_with(|| view(m, &obs, &mut maps[m]));
                            goal_distance(z, &goals_each[m], i, goals_each[m].len() / n)
                        };
                        for &i in &due {
                            let m = progress_of.member[i];
                            if !progress_of.advances(i, t, distance(m, i), c.switch_after) {
                                let next = (m + 1) % members.len();
                                progress_of.pass_to(i, next, t, distance(next, i));
                                mpc.set_warm_start(i, &[]);
                            }
                        }
                        if c.blocked > 0.0 {
                            // What the last plan's actions did, against what it imagined.
                            for &i in &due {
                                let m = progress_of.member[i];
                                let d = goals_each[m].len() / n;
                                let z = views[m].get_or_insert_with(|| view(m, &obs, &mut maps[m]));
                                moves.observe(i, m, &z[i * d..(i + 1) * d]);
                            }
                        }
                        for &i in &due {
                            let m = progress_of.member[i];
                            if singles[m].is_some() {
                                maps[m].get_or_insert_with(|| encode_maps(members[m], &obs, &device));
                            } else {
                                views[m].get_or_insert_with(|| view(m, &obs, &mut maps[m]));
                            }
                        }
                        encode_total += t0.elapsed().as_secs_f64() * 1e3 * active.len() as f64 / n as f64;
                        let t1 = Instant::now();
                        let (mut acts, mut planned) = (Vec::new(), false);
                        for m in 0..members.len() {
                            let mine: Vec<usize> =
                                active.iter().copied().filter(|&i| progress_of.member[i] == m).collect();
                            if mine.is_empty() {
                                continue;
                            }
                            let trace = !drawn.is_empty();
                            let goals = &goals_each[m];
                            let view_m = views[m].as_deref();
                            // A spatial member starts from its maps, a latent one from its view
                            // (the latents), computed above for the environments that plan.
                            let (a, p) = match (&singles[m], &latents[m]) {
                                (Some(dynamics), _) => {
                                    let starts = match &maps[m] {
                                        Some(x) => split_rows(x, dynamics.rollout.map_len()),
                                        None => vec![Vec::new(); n],
                                    };
                                    member_act(mpc, dynamics, starts, goals, &mine, trace, c, &mut moves, view_m, m)
                                }
                                (None, Some(dynamics)) => {
                                    let starts = match view_m {
                                        Some(z) => split_rows(z, goals.len() / n),
                                        None => vec![Vec::new(); n],
                                    };
                                    member_act(mpc, dynamics, starts, goals, &mine, trace, c, &mut moves, view_m, m)
                                }
                                (None, None) => unreachable!("every member has a spatial or a latent predictor"),
                            };
                            acts.extend(a);
                            planned |= p;
                        }
                        Some((acts, planned, t1.elapsed(), c.replan_every))
                    }
                    (Policy::Latent(c), Some(mpc)) => {
                        // Between plans the controller executes queued actions: encode only
                        // when some environment plans now.
                        // Starts are latents, or the encoder's spatial states for the spatial
                        // predictor.
                        let imagine = match (
                            ensemble.as_ref().filter(|_| c.ensemble),
                            spatial.as_ref().filter(|_| c.spatial),
                        ) {
                            (Some(e), _) => Imagine::Ensemble(e),
                            (None, Some(sp)) => Imagine::Spatial(sp),
                            (None, None) => Imagine::Latent,
                        };
                        let starts: Vec<Vec<f32>> = if active.iter().any(|&i| mpc.needs_plan(i)) {
                            let mut width = 0;
                            let x = timed(&obs, &mut encode_total, active.len(), || {
                                let (x, w) = imagine.starts(&members, &obs, &device);
                                width = w;
                                x
                            });
                            split_rows(&x, width)
                        } else {
                            vec![Vec::new(); n]
                        };
                        let t1 = Instant::now();
                        let trace = !drawn.is_empty();
                        let (acts, planned) = match imagine {
                            Imagine::Ensemble(e) => mpc.act(e, &starts, &goals_latent, &active, trace),
                            Imagine::Spatial(sp) => mpc.act(sp, &starts, &goals_latent, &active, trace),
                            Imagine::Latent => mpc.act(&latent, &starts, &goals_latent, &active, trace),
                        };
                        Some((acts, planned, t1.elapsed(), c.replan_every))
                    }
                    (Policy::Hierarchical(h), _) => {
                        let hier = hier.as_mut().expect("a hierarchical controller");
                        let (high, low) = level2.as_ref().expect("checked above");
                        let (zs, z2s): (Vec<Vec<f32>>, Vec<Vec<f32>>) = if active.iter().any(|&i| hier.needs_plan(i)) {
                            let z = timed_encode(loaded.model, &obs, &device, &mut encode_total, active.len());
                            (
                                split_rows(&z, loaded.model.latent()),
                                split_rows(&low.map(&z), high.dim()),
                            )
                        } else {
                            (vec![Vec::new(); n], vec![Vec::new(); n])
                        };
                        let t1 = Instant::now();
                        let (acts, planned) = hier.act(high, low, &z2s, &zs, &goals_high, &active, !drawn.is_empty());
                        Some((acts, planned, t1.elapsed(), h.low.replan_every))
                    }
                    (Policy::Mode1, _) => {
                        let pi = loaded.mode1.as_ref().expect("checked above");
                        let z = timed_encode(loaded.model, &obs, &device, &mut encode_total, active.len());
                        let d = loaded.model.latent();
                        let t1 = Instant::now();
                        let zr = crate::gather_rows(&z, d, &active);
                        let gr = crate::gather_rows(&goals_latent, d, &active);
                        let a = pi.act(&zr, &gr, active.len());
                        let acts: Vec<(usize, [f32; 2])> = active
                            .iter()
                            .enumerate()
                            .map(|(k, &i)| (i, [a[2 * k], a[2 * k + 1]]))
                            .collect();
                        for &i in &active {
                            mode1_steps[i] += 1;
                        }
                        Some((acts, true, t1.elapsed(), 1))
                    }
                    (Policy::Agent(_), _) => {
                        let batch = agents.as_mut().expect("an agent batch");
                        let z = timed_encode(loaded.model, &obs, &device, &mut encode_total, active.len());
                        let d = loaded.model.latent();
                        let zs: Vec<Vec<f32>> = (0..n)
                            .map(|i| {
                                if active.contains(&i) {
                                    z[i * d..(i + 1) * d].to_vec()
                                } else {
                                    Vec::new()
                                }
                            })
                            .collect();
                        let models = AgentModels {
                            latent: &latent,
                            critic: loaded.critic.as_ref(),
                            mode1: loaded.mode1.as_ref(),
                            level2: level2.as_ref().map(|(h, l)| (h, l)),
                        };
                        let t1 = Instant::now();
                        let acts = batch.act(&models, &zs, &goals_latent);
                        Some((acts, true, t1.elapsed(), 1))
                    }
                    (Policy::Oracle(c), Some(mpc)) => {
                        let states = env.states().to_vec();
                        let t1 = Instant::now();
                        let (acts, planned) = mpc.act(&oracle, &states, &goals_sim, &active, false);
                        Some((acts, planned, t1.elapsed(), c.replan_every))
                    }
                    _ => {
                        let m = match &scene {
                            Scene::TopDown(s) => s.agent.max_step,
                            Scene::FirstPerson(s) => s.agent.max_forward,
                        };
                        for &i in &active {
                            let mut a = [rngs[i].random_range(-m..=m), rngs[i].random_range(-m..=m)];
                            project(&mut a, m);
                            actions[i] = a;
                        }
                        None
                    }
                };
                if let Some((acts, planned, elapsed, covers)) = decided {
                    if planned {
                        let ms = elapsed.as_secs_f64() * 1e3;
                        plan_total += ms;
                        samples.push(ms / active.len() as f64 / covers as f64);
                    }
                    for (i, a) in acts {
                        actions[i] = a;
                    }
                }
                for &i in &planning {
                    // Level-2 plans hold a position every `k` steps; flat plans are judged
                    // at the same spacing, so the straight moves between positions cut the
                    // same corners in both.
                    let (path, every) = match (&hier, &loaded.level2) {
                        (Some(h), Some(l2)) => (probe_path(h.last_high[i].as_ref(), l2.probe.as_ref()), 1),
                        _ => (
                            imagined_path(
                                policy,
                                mpc.as_ref(),
                                i,
                                progress_of.probe(i, loaded.probe.as_ref(), &loaded.ensemble_probes),
                            ),
                            loaded.level2.as_ref().map_or(JUDGE_EVERY, |l2| l2.cfg.k),
                        ),
                    };
                    let state = &env.states()[i];
                    if let (Some(layout), false) = (&state.layout, path.is_empty()) {
                        let here = glam::Vec2::new(state.agent.x, state.agent.y);
                        let pts: Vec<glam::Vec2> = std::iter::once(here)
                            .chain(
                                path.iter()
                                    .skip(every - 1)
                                    .step_by(every)
                                    .map(|p| glam::Vec2::new(p[0], p[1])),
                            )
                            .collect();
                        plans[i] += 1;
                        through[i] += layout.path_crosses_wall(&pts) as u32;
                    }
                }
                for &i in &drawn {
                    if active.contains(&i) {
                        let (path, high_path) = match (&hier, &loaded.level2) {
                            (Some(h), Some(l2)) => (
                                probe_path(h.low.last[i].as_ref(), l2.probe.as_ref()),
                                probe_path(h.last_high[i].as_ref(), l2.probe.as_ref()),
                            ),
                            _ => (
                                imagined_path(
                                    policy,
                                    mpc.as_ref(),
                                    i,
                                    progress_of.probe(i, loaded.probe.as_ref(), &loaded.ensemble_probes),
                                ),
                                Vec::new(),
                            ),
                        };
                        strip[i].push(StripFrame {
                            frame: obs.frame(i).to_vec(),
                            path,
                            high_path,
                            goal: scene.top_down().map(|_| [starts[i].goal.x, starts[i].goal.y]),
                        });
                    }
                }
                let (next, infos) = env.step(&actions)?;
                obs = next;
                if let Some(r) = rec.as_deref_mut() {
                    for i in active.iter().copied().filter(|&i| counts(i)) {
                        r.action(i, actions[i]);
                        r.frame(i, obs.frame(i), &env.states()[i]);
                    }
                }
                env_steps += active.len() as u64;
                active.retain(|&i| {
                    let info = &infos[i];
                    let over = info.success || info.steps >= max_steps;
                    if over {
                        if let Some(r) = rec.as_deref_mut().filter(|_| counts(i)) {
                            r.finish(i);
                        }
                        let agent = agents.as_ref().map(|a| &a.states[i]);
                        result[i] = Some(EpisodeResult {
                            episode: ids[i],
                            success: info.success,
                            steps: info.steps,
                            final_distance: info.goal_distance,
                            start_distance: start_distance[i],
                            plans: plans[i],
                            plans_through_walls: through[i],
                            mode1_steps: agent.map_or(mode1_steps[i], |a| a.mode1_steps),
                            mode2_steps: agent.map_or(0, |a| a.mode2_steps),
                            decisions: agent.map_or(Vec::new(), |a| a.decisions().to_vec()),
                            loops: agent.map_or(0, |a| a.episodic.loops),
                            switches: progress_of.switches[i],
                            stalls: moves.stalls(i),
                        });
                    }
                    !over
                });
                if active.is_empty() {
                    break;
                }
            }
            for &i in &drawn {
                strip[i].push(StripFrame {
                    frame: obs.frame(i).to_vec(),
                    goal: scene.top_down().map(|_| [starts[i].goal.x, starts[i].goal.y]),
                    ..Default::default()
                });
                all_strips.push((name.clone(), ids[i], std::mem::take(&mut strip[i])));
            }
            for (i, r) in result.into_iter().enumerate() {
                if counts(i) {
                    episodes.push(r.context("an episode did not finish")?);
                    progress(&name, ids[i]);
                }
            }
        }
        rows.push(RowReport::summarise(
            name,
            policy.clone(),
            episodes,
            samples,
            plan_total,
            encode_total,
            env_steps,
        ));
    }
    Ok((Report::new(cfg.clone(), rows), all_strips))
}

/// Which world model plans for each environment of a `+switch` row, and its progress: the
/// lowest goal distance it has seen (in its own view: latents, with keypoints where weighted)
/// and the step it saw it at.
struct Progress {
    member: Vec<usize>,
    best: Vec<f32>,
    since: Vec<u32>,
    switches: Vec<u32>,
}

/// A new low of the goal distance must undercut the last by this share.
const SWITCH_GAIN: f32 = 0.02;

impl Progress {
    fn new(n: usize) -> Progress {
        Progress {
            member: vec![0; n],
            best: vec![f32::INFINITY; n],
            since: vec![0; n],
            switches: vec![0; n],
        }
    }

    /// Records environment `i`'s goal distance `d` at step `t`; false when no new low has come
    /// for `patience` steps.
    fn advances(&mut self, i: usize, t: u32, d: f32, patience: usize) -> bool {
        if d < self.best[i] * (1.0 - SWITCH_GAIN) {
            (self.best[i], self.since[i]) = (d, t);
        }
        ((t - self.since[i]) as usize) < patience
    }

    /// Environment `i` passes to member `m`, whose goal distance is `d` now.
    fn pass_to(&mut self, i: usize, m: usize, t: u32, d: f32) {
        (self.member[i], self.best[i], self.since[i]) = (m, d, t);
        self.switches[i] += 1;
    }

    /// The position probe of the model environment `i` plans with: the checkpoint's model's
    /// (`first`), or that of the `+switch` row's other model it has passed to.
    fn probe<'p>(
        &self,
        i: usize,
        first: Option<&'p LinearProbe>,
        others: &'p [LinearProbe],
    ) -> Option<&'p LinearProbe> {
        match self.member[i] {
            0 => first,
            m => others.get(m - 1),
        }
    }
}

/// Euclidean distance of row `i` of `z` to row `i` of `goals` (rows of `d` values).
fn goal_distance(z: &[f32], goals: &[f32], i: usize, d: usize) -> f32 {
    z[i * d..(i + 1) * d]
        .iter()
        .zip(&goals[i * d..(i + 1) * d])
        .map(|(a, b)| (a - b) * (a - b))
        .sum::<f32>()
        .sqrt()
}

/// The agent positions a probe reads from a plan's imagined states.
fn probe_path(plan: Option<&crate::actor::planner::Plan>, probe: Option<&LinearProbe>) -> Vec<[f32; 2]> {
    let (Some(plan), Some(probe)) = (plan, probe) else {
        return Vec::new();
    };
    // An ensemble's states are its members' latents end to end: the probe reads the first's
    // (so its plans are drawn, and judged for walls, as the checkpoint's model imagines them).
    let len = (plan.actions.len() / 2).max(1);
    let dim = plan.imagined.len() / len;
    let pred = if dim > probe.d {
        let first: Vec<f32> = plan
            .imagined
            .chunks_exact(dim)
            .flat_map(|z| z[..probe.d].iter().copied())
            .collect();
        probe.predict(&first)
    } else {
        probe.predict(&plan.imagined)
    };
    pred.chunks_exact(probe.k).map(|p| [p[0], p[1]]).collect()
}

/// Rows of several `[n, w_i]` row-major blocks put end to end: `[n, Σ w_i]`.
fn end_to_end(parts: Vec<Vec<f32>>, n: usize) -> Vec<f32> {
    let widths: Vec<usize> = parts.iter().map(|p| p.len() / n.max(1)).collect();
    let mut out = Vec::with_capacity(parts.iter().map(Vec::len).sum());
    for i in 0..n {
        for (p, &w) in parts.iter().zip(&widths) {
            out.extend_from_slice(&p[i * w..(i + 1) * w]);
        }
    }
    out
}

/// The agent positions along the latest plan of problem `i` (the probe reads latents; the
/// oracle's states are positions already).
fn imagined_path(policy: &Policy, mpc: Option<&Mpc>, i: usize, probe: Option<&LinearProbe>) -> Vec<[f32; 2]> {
    let Some(plan) = mpc.and_then(|m| m.last[i].as_ref()) else {
        return Vec::new();
    };
    match policy {
        Policy::Latent(_) => probe_path(Some(plan), probe),
        Policy::Oracle(_) => {
            let len = plan.actions.len() / 2;
            let dim = plan.imagined.len() / len.max(1);
            plan.imagined.chunks_exact(dim).map(|p| [p[0], p[1]]).collect()
        }
        Policy::Random | Policy::Hierarchical(_) | Policy::Mode1 | Policy::Agent(_) => Vec::new(),
    }
}

/// Writes one PNG per strip: frames left to right (every `every`-th step), ×4, the imagined
/// path in yellow (and a level-2 plan in cyan), the goal as a white cross.
pub fn write_strips(dir: &Path, strips: &[Strip], side: usize) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let scale = 4usize;
    let cols = 10usize;
    for (name, ep, frames) in strips {
        if frames.is_empty() {
            continue;
        }
        let every = frames.len().div_ceil(cols).max(1);
        let picked: Vec<&StripFrame> = frames
            .iter()
            .step_by(every)
            .chain(std::iter::once(frames.last().unwrap()))
            .collect();
        let tile = side * scale;
        let width = picked.len() * (tile + 2);
        let mut canvas = crate::image::Canvas::new(width, tile);
        for (k, f) in picked.iter().enumerate() {
            let ox = k * (tile + 2);
            let plane = side * side;
            for y in 0..tile {
                for x in 0..tile {
                    let p = (y / scale) * side + x / scale;
                    let c = [f.frame[p], f.frame[plane + p], f.frame[2 * plane + p]];
                    canvas.set((ox + x) as i64, y as i64, c);
                }
            }
            if let Some(g) = f.goal {
                let (x, y, r) = (ox as f64 + g[0] as f64 * scale as f64, g[1] as f64 * scale as f64, 5.0);
                canvas.line(x - r, y - r, x + r, y + r, [255, 255, 255], 1);
                canvas.line(x - r, y + r, x + r, y - r, [255, 255, 255], 1);
            }
            for (path, colour) in [(&f.high_path, [0, 200, 255]), (&f.path, [255, 220, 0])] {
                for w in path.windows(2) {
                    let s = scale as f64;
                    canvas.line(
                        ox as f64 + w[0][0] as f64 * s,
                        w[0][1] as f64 * s,
                        ox as f64 + w[1][0] as f64 * s,
                        w[1][1] as f64 * s,
                        colour,
                        1,
                    );
                }
            }
        }
        let path = dir.join(format!("episode_{ep:04}_{name}.png"));
        crate::image::save_rgb_png(&path, canvas.width as u32, canvas.height as u32, &canvas.rgb)?;
        written.push(path);
    }
    Ok(written)
}
