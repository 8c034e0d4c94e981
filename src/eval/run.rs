//! `amisim eval`: goal-reaching episodes in the world, played by agents (one row each: the
//! shipped agent, presets, the random and oracle baselines), and the report.
//!
//! Episodes run in batches of `envs` environments side by side; batch `b` holds episodes
//! `b·envs ..`, each drawn from its own seed, and every agent draws from its own stream per
//! episode, so an episode's result does not depend on the run around it. `--shard i/n` takes
//! the batches with `b mod n = i`; [`merge`] joins shard reports into the report of the
//! whole run. The loop is the same for every row: the agent acts, the world steps.

use crate::agent::{Agent, AgentSpec, EpisodeStats, ModelFile, Space, Together};
use crate::configurator::Decision;
use crate::data::collect::Recorder;
use crate::episode::EpisodeBatch;
use crate::eval::journal::{BatchResult, Journal};
use crate::probe::Probes;
use crate::world::scene::Scene;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One row of an evaluation: an agent's name, its resolved spec and the model files it read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub name: String,
    pub spec: AgentSpec,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<ModelFile>,
}

impl Row {
    /// Whether the row acts with learned models (not random, not the oracle).
    pub fn learned(&self) -> bool {
        self.spec.learned()
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
    /// `(i, n)`: this process runs the batches `b` with `b mod n = i`.
    pub shard: (usize, usize),
    pub rows: Vec<Row>,
    /// Observations and goal images pass through JPEG at this quality before the agents see
    /// them (absent: as rendered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jpeg: Option<u8>,
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
    /// position probe, every imagined step of a flat plan (a level-2 plan: its positions, one
    /// every `k` steps), joined by straight moves from the agent's position (see
    /// [`Layout::path_crosses_wall`](crate::world::layout::Layout::path_crosses_wall)).
    /// Before 2026-12-08 flat plans were read every 8 steps too, and those 8-step chords cut
    /// the corners of doors: the oracle's true paths counted 13–16 %.
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
    /// Times the agent passed to its next world model (models taking turns).
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
    pub spec: AgentSpec,
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
    /// Passes to another world model (models taking turns) over all episodes, the episodes with at
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
        spec: AgentSpec,
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
            spec,
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
        let main = rows.iter().find(|r| r.spec.learned()).or(rows.first());
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
        // The policy column is as wide as its longest name.
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
            s += &format!("{}: {}\n", r.name, r.spec.describe());
        }
        if let Some(q) = self.settings.jpeg {
            s += &format!(
                "observations and goal images passed through JPEG at quality {q} (4:2:0) before the agents saw them\n"
            );
        }
        for r in &self.rows {
            if matches!(r.spec.together, Some(Together::Switch { .. })) {
                s += &format!(
                    "{}: {} of {} episodes passed to another model ({} passes in all); {} of those reached the goal\n",
                    r.name,
                    r.switched_episodes,
                    r.episodes.len(),
                    r.switches,
                    r.switched_succeeded
                );
            }
            if r.spec.blocked > 0.0 {
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
            if r.spec.mode == crate::agent::Mode::Configured {
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
    let first_names: Vec<&str> = first.rows.iter().map(|row| row.name.as_str()).collect();
    for (k, r) in reports.iter().enumerate() {
        let names: Vec<&str> = r.rows.iter().map(|row| row.name.as_str()).collect();
        if r.rows.len() != r.settings.rows.len() || names != first_names {
            bail!(
                "report {k} holds rows {names:?} but its settings name {} rows and the first report {first_names:?}",
                r.settings.rows.len()
            );
        }
    }
    let mut shards: Vec<usize> = reports.iter().map(|r| r.settings.shard.0).collect();
    shards.sort();
    let n = first.settings.shard.1;
    if shards.len() != n || !shards.iter().copied().eq(0..n) {
        bail!("merging needs shards 0..{n} once each, got {shards:?}");
    }
    let rows = (0..first.rows.len())
        .map(|i| {
            let parts: Vec<&RowReport> = reports.iter().map(|r| &r.rows[i]).collect();
            RowReport::summarise(
                parts[0].name.clone(),
                parts[0].spec.clone(),
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

/// An agent playing one row, and the probes that read its plans.
pub struct Player {
    pub agent: Agent,
    pub probes: Probes,
}

/// Salt of the agents' random streams (apart from the episodes').
const PLAN_SALT: u64 = 0x9e37_79b9_7f4a_7c15;

/// The seed of an agent's random stream in episode `ep`.
pub fn plan_seed(seed: u64, ep: usize) -> u64 {
    seed.wrapping_mul(PLAN_SALT) ^ (ep as u64).wrapping_add(1).wrapping_mul(0xbf58_476d_1ce4_e5b9)
}

/// Runs every row of `cfg` over its episodes (this shard's), each with its player (in the
/// order of `cfg.rows`). `progress` is told each finished episode; `strips` receives the frames
/// of the first `strips` episodes of each row; with `record`, every episode of the rows that
/// act with learned models is recorded: frames, actions, states (`eval --record`). With a
/// `journal`, each finished batch is written to it, and batches it already holds are not
/// played again.
pub fn run(
    cfg: &EvalConfig,
    players: &mut [Player],
    strips: usize,
    mut progress: impl FnMut(&str, usize),
    mut record: Option<&mut Recorder>,
    mut journal: Option<&mut Journal>,
) -> Result<(Report, Vec<Strip>)> {
    let scene = Scene::load(&cfg.scene)?;
    let (i_shard, n_shard) = cfg.shard;
    if n_shard == 0 || i_shard >= n_shard {
        bail!("shard {i_shard}/{n_shard}: expected i/n with i < n");
    }
    if cfg.envs == 0 {
        bail!("envs must be ≥ 1");
    }
    if players.len() != cfg.rows.len() {
        bail!("{} rows and {} agents", cfg.rows.len(), players.len());
    }
    if let Some(p) = players.iter().find(|p| p.agent.envs() != cfg.envs) {
        bail!(
            "an agent acts in {} environments, the evaluation runs {}",
            p.agent.envs(),
            cfg.envs
        );
    }
    let n = cfg.envs;
    let mut batch = EpisodeBatch::new(&scene, n, cfg.max_steps)?.with_jpeg(cfg.jpeg)?;
    let batches: Vec<usize> = (0..cfg.episodes.div_ceil(n))
        .filter(|b| b % n_shard == i_shard)
        .collect();
    let mut rows = Vec::new();
    let mut all_strips = Vec::new();
    if record.is_some() && journal.as_ref().is_some_and(|j| j.finished() > 0) {
        bail!("a resumed evaluation cannot record (the finished batches' frames are gone): run it whole");
    }
    for (row_index, (row, player)) in cfg.rows.iter().zip(players.iter_mut()).enumerate() {
        let name = &row.name;
        let agent = &mut player.agent;
        let probes = &player.probes;
        // The row's batches, summed as they finish (or as the journal holds them).
        let mut total = BatchResult::new(row_index, 0);
        for &b in &batches {
            let ids: Vec<usize> = (b * n..(b + 1) * n).collect();
            if let Some(done) = journal.as_ref().and_then(|j| j.done(row_index, b)) {
                for e in &done.episodes {
                    progress(name, e.episode);
                }
                total.add(done.clone());
                continue;
            }
            let mut got = BatchResult::new(row_index, b);
            batch.begin(cfg.seed, &ids)?;
            for (i, &ep) in ids.iter().enumerate() {
                agent.reset(i, plan_seed(cfg.seed, ep));
            }
            // Recorded: this row's episodes that count (not a last batch's padding).
            let mut rec = record.as_deref_mut().filter(|_| row.learned());
            let counts = |i: usize| ids[i] < cfg.episodes;
            if let Some(r) = rec.as_deref_mut() {
                r.start(n);
                for i in (0..n).filter(|&i| counts(i)) {
                    r.frame(i, batch.obs.frame(i), &batch.states()[i]);
                }
            }
            let mut result: Vec<Option<EpisodeResult>> = vec![None; n];
            let start_distance: Vec<f32> = batch.starts.iter().map(|s| s.goal_distance(&scene)).collect();
            let goal_px: Vec<Option<[f32; 2]>> = batch
                .starts
                .iter()
                .map(|s| scene.top_down().map(|_| [s.goal.x, s.goal.y]))
                .collect();
            let drawn: Vec<usize> = (0..n).filter(|&i| ids[i] < strips.min(cfg.episodes)).collect();
            agent.keep_candidates = false;
            let mut strip: Vec<Vec<StripFrame>> = vec![Vec::new(); n];
            let (mut plans, mut through) = (vec![0u32; n], vec![0u32; n]);
            // Each environment's latest plan (and its space) and level-2 plan, for the strips.
            let mut last: Vec<Option<(crate::actor::planner::Plan, Space)>> = vec![None; n];
            let mut last_high: Vec<Option<crate::actor::planner::Plan>> = vec![None; n];
            for _ in 0..cfg.max_steps {
                let active = batch.active.clone();
                let (actions, trace) = agent.act(&batch.observations(), &batch.goals(), &active)?;
                if trace.planned {
                    got.plan_ms_total += trace.plan_ms;
                    got.plan_ms_samples
                        .push(trace.plan_ms / active.len() as f64 / trace.covers.max(1) as f64);
                }
                got.encode_ms_total += trace.encode_ms * active.len() as f64 / n as f64;
                for &i in &active {
                    let e = &trace.envs[i];
                    // Level-2 plans hold a position every `k` steps and are judged as they are;
                    // flat plans at every imagined step (chords of several steps would cut the
                    // corners of doors).
                    let judged = match (&e.high_plan, &e.plan) {
                        (Some(high), _) => Some((probes.path(high, Space::Level2), 1)),
                        (None, Some(p)) if e.space != Space::Level2 => Some((probes.path(p, e.space), 1)),
                        _ => None,
                    };
                    if let Some(p) = &e.plan {
                        last[i] = Some((p.clone(), e.space));
                    }
                    if let Some(h) = &e.high_plan {
                        last_high[i] = Some(h.clone());
                    }
                    let state = &batch.states()[i];
                    if let (Some(layout), Some((path, every))) = (&state.layout, judged) {
                        if path.is_empty() {
                            continue;
                        }
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
                // Imagined paths are drawn over top-down frames, whose pixels are the arena's;
                // a first-person frame is a view, not a map, so its strip shows the frames alone.
                let on_map = scene.top_down().is_some();
                for &i in drawn.iter().filter(|i| active.contains(i)) {
                    strip[i].push(StripFrame {
                        frame: batch.obs.frame(i).to_vec(),
                        path: match &last[i] {
                            Some((p, s)) if on_map => probes.path(p, *s),
                            _ => Vec::new(),
                        },
                        high_path: match &last_high[i] {
                            Some(p) if on_map => probes.path(p, Space::Level2),
                            _ => Vec::new(),
                        },
                        goal: goal_px[i],
                    });
                }
                let (infos, ended) = batch.step(&actions)?;
                if let Some(r) = rec.as_deref_mut() {
                    for i in active.iter().copied().filter(|&i| counts(i)) {
                        r.action(i, actions[i]);
                        r.frame(i, batch.obs.frame(i), &batch.states()[i]);
                    }
                }
                got.env_steps += active.len() as u64;
                for i in ended {
                    if let Some(r) = rec.as_deref_mut().filter(|_| counts(i)) {
                        r.finish(i);
                    }
                    let info = &infos[i];
                    let EpisodeStats {
                        mode1_steps,
                        mode2_steps,
                        switches,
                        stalls,
                        loops,
                        decisions,
                    } = agent.episode(i).clone();
                    result[i] = Some(EpisodeResult {
                        episode: ids[i],
                        success: info.success,
                        steps: info.steps,
                        final_distance: info.goal_distance,
                        start_distance: start_distance[i],
                        plans: plans[i],
                        plans_through_walls: through[i],
                        mode1_steps,
                        mode2_steps,
                        decisions,
                        loops,
                        switches,
                        stalls,
                    });
                }
                if batch.active.is_empty() {
                    break;
                }
            }
            for &i in &drawn {
                strip[i].push(StripFrame {
                    frame: batch.obs.frame(i).to_vec(),
                    goal: goal_px[i],
                    ..Default::default()
                });
                all_strips.push((name.clone(), ids[i], std::mem::take(&mut strip[i])));
            }
            for (i, r) in result.into_iter().enumerate() {
                if counts(i) {
                    got.episodes.push(r.context("an episode did not finish")?);
                    progress(name, ids[i]);
                }
            }
            if let Some(j) = journal.as_deref_mut() {
                j.record(&got)?;
            }
            total.add(got);
        }
        rows.push(RowReport::summarise(
            name.clone(),
            agent.spec().clone(),
            total.episodes,
            total.plan_ms_samples,
            total.plan_ms_total,
            total.encode_ms_total,
            total.env_steps,
        ));
    }
    Ok((Report::new(cfg.clone(), rows), all_strips))
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
