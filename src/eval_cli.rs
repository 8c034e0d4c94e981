//! `amisim eval`: arguments and the command.

use amisim::actor::hierarchy::HierarchyConfig;
use amisim::actor::mode1::Mode1;
use amisim::actor::planner::{PlannerConfig, PlannerKind};
use amisim::agent::AgentConfig;
use amisim::cost::critic::Critic;
use amisim::cost::{Distance, Horizon};
use amisim::eval::probe::position_probes;
use amisim::eval::run::{merge, run_recorded, write_strips, EvalConfig, Loaded, LoadedLevel2, Policy, Report};
use amisim::goal_net::{companion_path, load_goal_net, GoalNetMeta};
use amisim::train::collect::Recorder;
use amisim::train::jepa::{cpu_device, load_checkpoint};
use amisim::train::level2::{default_level2_path, load_level2};
use amisim::world::Scene;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct EvalArgs {
    /// Scene to evaluate in.
    #[arg(long, default_value = "two_rooms")]
    pub scene: String,
    /// Checkpoint to plan with (default: the shipped model for the scene, assets/<scene>.safetensors).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    #[arg(long, default_value_t = 200)]
    pub episodes: usize,
    /// Environments run (and planned for) side by side.
    #[arg(long, default_value_t = 20)]
    pub envs: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Rows with the learned world model, one each: cem, mppi, gradient (flat planners; `@H`
    /// sets a row's horizon, `+critic` adds the critic's terminal cost: `cem@4+critic`,
    /// `+spatial` imagines with the spatial predictor where the model has one: `cem+spatial`,
    /// `+ensemble` with it and every --ensemble model's together: `cem+spatial+ensemble`,
    /// `+switch` with one of them at a time, the next when progress stalls: `cem+spatial+switch`),
    /// hierarchical (level 2 sets level 1's subgoals; needs a level-2 model), mode1 (the
    /// distilled policy alone), agent (configurator, memories, critic, mode 1 checked and
    /// mode 2 behind it, with whichever of critic, level 2 and mode 1 exist), or none.
    #[arg(long, value_delimiter = ',', default_value = "cem", value_parser = parse_planner)]
    pub planner: Vec<PlannerRow>,
    /// Baseline rows: random, oracle (the first sampling planner with the true simulator), none.
    #[arg(long, value_delimiter = ',', default_value = "random,oracle")]
    pub baseline: Vec<String>,
    /// Decision steps per plan (each held for --repeat environment steps).
    #[arg(long)]
    pub horizon: Option<usize>,
    #[arg(long)]
    pub repeat: Option<usize>,
    /// Candidates per iteration (CEM, MPPI) or starting points (gradient).
    #[arg(long)]
    pub samples: Option<usize>,
    #[arg(long)]
    pub iterations: Option<usize>,
    #[arg(long)]
    pub elites: Option<usize>,
    /// Candidates per iteration drawn as straight full-speed legs (CEM, MPPI).
    #[arg(long)]
    pub legs: Option<usize>,
    /// Straight legs in each of those candidates (default 2: a heading and one turn).
    #[arg(long)]
    pub leg_count: Option<usize>,
    /// Environment steps executed between plans.
    #[arg(long)]
    pub replan_every: Option<usize>,
    #[arg(long)]
    pub init_std: Option<f32>,
    #[arg(long)]
    pub temperature: Option<f32>,
    #[arg(long)]
    pub lr: Option<f32>,
    #[arg(long)]
    pub max_action: Option<f32>,
    /// Goal distance: l1 or l2.
    #[arg(long, value_enum)]
    pub distance: Option<Distance>,
    /// Which imagined steps count: terminal, sum (the mean) or closest (the least distance,
    /// plus a tenth of the mean; the default).
    #[arg(long, value_enum)]
    pub cost: Option<Horizon>,
    /// Weight of the effort term.
    #[arg(long)]
    pub effort: Option<f32>,
    /// Weight of the predicted-collision term (inverse dynamics on imagined latents).
    #[arg(long)]
    pub collision: Option<f32>,
    /// The level-2 model for the hierarchical planner (default: `level2.safetensors` beside a
    /// run folder's checkpoint, `<name>.level2.safetensors` beside any other).
    #[arg(long)]
    pub level2: Option<PathBuf>,
    /// Hierarchical planner: level-2 decisions (macro-actions) per plan.
    #[arg(long)]
    pub high_horizon: Option<usize>,
    /// Hierarchical planner: level-2 candidates per iteration.
    #[arg(long)]
    pub high_samples: Option<usize>,
    /// Hierarchical planner: level-2 iterations per plan.
    #[arg(long)]
    pub high_iterations: Option<usize>,
    /// Hierarchical planner: level-2 candidates drawn as two straight legs of macro-actions.
    #[arg(long)]
    pub high_legs: Option<usize>,
    /// Hierarchical planner: level-1 decisions per plan (each held --repeat steps).
    #[arg(long)]
    pub low_horizon: Option<usize>,
    /// Hierarchical planner: level-1 candidates per iteration.
    #[arg(long)]
    pub low_samples: Option<usize>,
    /// Hierarchical planner: environment steps between level-2 plans (default: its k).
    #[arg(long)]
    pub replan_high_every: Option<usize>,
    /// Hierarchical planner: the level-2 step whose predicted state is level 1's subgoal.
    #[arg(long)]
    pub subgoal_step: Option<usize>,
    /// The trained critic (default: `critic.safetensors` beside a run folder's checkpoint,
    /// `<name>.critic.safetensors` beside any other).
    #[arg(long)]
    pub critic: Option<PathBuf>,
    /// Weight of the critic's terminal cost in `+critic` rows and the agent.
    #[arg(long, default_value_t = 1.0)]
    pub critic_weight: f32,
    /// The mode-1 policy (default: `mode1.safetensors` beside a run folder's checkpoint,
    /// `<name>.mode1.safetensors` beside any other).
    #[arg(long)]
    pub mode1: Option<PathBuf>,
    /// Any setting of the agent row, as in its report's settings:
    /// `--agent-set configurator.hierarchy_rooms=1 --agent-set memory.stall_window=16`.
    #[arg(long = "agent-set", value_name = "KEY=VALUE")]
    pub agent_sets: Vec<String>,
    /// Step budget per episode (default: the scene's).
    #[arg(long)]
    pub max_steps: Option<u32>,
    /// Run only part of the episodes: `i/n` takes batches i, i+n, … (merge with --merge).
    #[arg(long)]
    pub shard: Option<String>,
    /// Write report.json, report.csv and PNG strips here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Episodes per row drawn as PNG strips (with --out).
    #[arg(long, default_value_t = 3)]
    pub strips: usize,
    /// Record the episodes the learned-model rows play (not random, not oracle) as a dataset
    /// in this folder, cut into pieces of --record-steps actions, for `train --data A,B`.
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// Actions per recorded piece (the collected datasets' episode length).
    #[arg(long, default_value_t = 16)]
    pub record_steps: usize,
    /// More spatial world models (checkpoints) that `+ensemble` and `+switch` rows plan with,
    /// beside --checkpoint's: in `+ensemble` rows each rolls out every candidate, which is
    /// scored on all their latents; `+switch` rows plan with one at a time, --checkpoint's
    /// first (a model without a spatial predictor, --checkpoint's too, with its latent one).
    #[arg(long, value_delimiter = ',')]
    pub ensemble: Vec<PathBuf>,
    /// `+switch` rows: pass to the next model when the goal distance (in the planning model's
    /// latents, with --keypoints too; checked at each replan) has not reached a new low for
    /// this many environment steps (default 32).
    #[arg(long)]
    pub switch_after: Option<usize>,
    /// `+switch` rows: weight of the blocked-move cost. At each replan, when the view moved
    /// less than half of what the last plan imagined for the actions executed since, the
    /// direction pushed is remembered there for the episode; near there, candidates whose
    /// first actions push along it pay W · (their mean action along it) / the largest action.
    #[arg(long, value_name = "W")]
    pub blocked: Option<f32>,
    /// `+spatial` rows: weigh the spatial state's keypoints (soft-argmax coordinates, in
    /// [-1, 1]) with W beside the latent in the goal distance, which then keeps growing with
    /// how far what they track is from where the goal has it (the latent's alone levels off).
    #[arg(long, value_name = "W")]
    pub keypoints: Option<f32>,
    /// Merge shard reports (report.json files) into one, written to --out.
    #[arg(long, num_args = 1..)]
    pub merge: Vec<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `--switch-after` when not given: a stalled model has 8 plans (replanning every 4 steps) to
/// find a new low before the next takes over.
const DEFAULT_SWITCH_AFTER: usize = 32;

/// One `--planner` value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PlannerRow {
    None,
    Flat {
        kind: PlannerKind,
        horizon: Option<usize>,
        critic: bool,
        spatial: bool,
        ensemble: bool,
        switch: bool,
    },
    Hierarchical,
    Mode1,
    Agent,
}

fn parse_planner(s: &str) -> Result<PlannerRow, String> {
    match s {
        "none" => return Ok(PlannerRow::None),
        "hierarchical" => return Ok(PlannerRow::Hierarchical),
        "mode1" => return Ok(PlannerRow::Mode1),
        "agent" => return Ok(PlannerRow::Agent),
        _ => {}
    }
    // Suffixes, in any order: +critic (the critic's terminal cost), +spatial (the spatial
    // predictor imagines), +ensemble (with the --ensemble models' too), +switch (with one of
    // them at a time).
    let (mut head, mut critic, mut spatial, mut ensemble, mut switch) = (s, false, false, false, false);
    loop {
        if let Some(h) = head.strip_suffix("+critic") {
            (head, critic) = (h, true);
        } else if let Some(h) = head.strip_suffix("+ensemble") {
            (head, ensemble) = (h, true);
        } else if let Some(h) = head.strip_suffix("+switch") {
            (head, switch) = (h, true);
        } else if let Some(h) = head.strip_suffix("+spatial") {
            (head, spatial) = (h, true);
        } else {
            break;
        }
    }
    let (kind, horizon) = match head.split_once('@') {
        Some((k, h)) => (
            k,
            Some(
                h.parse::<usize>()
                    .map_err(|_| format!("{s}: `{h}` after @ is not a horizon (a number of decisions)"))?,
            ),
        ),
        None => (head, None),
    };
    let kind = <PlannerKind as clap::ValueEnum>::from_str(kind, true).map_err(|_| {
        format!("{s}: expected cem, mppi, gradient (with optional @H, +critic, +spatial, +ensemble or +switch), hierarchical, mode1, agent or none")
    })?;
    Ok(PlannerRow::Flat {
        kind,
        horizon,
        critic,
        spatial,
        ensemble,
        switch,
    })
}

impl EvalArgs {
    /// The flat planners asked for with the learned model.
    fn kinds(&self) -> Vec<PlannerKind> {
        self.planner
            .iter()
            .filter_map(|r| match r {
                PlannerRow::Flat { kind, .. } => Some(*kind),
                _ => None,
            })
            .collect()
    }

    /// The hierarchical planner's settings for a level-2 model jumping `k` steps.
    fn hierarchy(&self, k: usize, macro_radius: f32) -> HierarchyConfig {
        let mut h = HierarchyConfig::default_for(k, macro_radius);
        macro_rules! over {
            ($($f:ident => $($path:ident).+),*) => { $( if let Some(v) = self.$f { h.$($path).+ = v; } )* };
        }
        over!(
            high_horizon => high.horizon,
            high_samples => high.samples,
            high_iterations => high.iterations,
            high_legs => high.legs,
            low_horizon => low.horizon,
            low_samples => low.samples,
            replan_high_every => replan_high_every,
            subgoal_step => subgoal_step
        );
        // Level 1 takes the flat planner's step settings; its horizon covers a jump unless set.
        if let Some(r) = self.repeat {
            h.low.repeat = r;
            if self.low_horizon.is_none() {
                h.low.horizon = k.div_ceil(r).max(1) + 1;
            }
        }
        macro_rules! low {
            ($($f:ident),*) => { $( if let Some(v) = self.$f { h.low.$f = v; } )* };
        }
        low!(replan_every, max_action, init_std, temperature, elites);
        // The goal distance applies to both levels, effort and collision to level 1 (where
        // the validation refuses what it cannot do).
        for c in [&mut h.high.cost, &mut h.low.cost] {
            if let Some(d) = self.distance {
                c.distance = d;
            }
            if let Some(x) = self.cost {
                c.horizon = x;
            }
        }
        if let Some(e) = self.effort {
            h.low.cost.effort = e;
        }
        if let Some(w) = self.collision {
            h.low.cost.collision = w;
        }
        h
    }

    fn planner(&self, kind: PlannerKind) -> PlannerConfig {
        let mut c = PlannerConfig::default_for(kind);
        macro_rules! over {
            ($($f:ident),*) => { $( if let Some(v) = self.$f { c.$f = v; } )* };
        }
        over!(
            horizon,
            repeat,
            samples,
            iterations,
            elites,
            legs,
            leg_count,
            replan_every,
            init_std,
            temperature,
            lr,
            max_action
        );
        if let Some(d) = self.distance {
            c.cost.distance = d;
        }
        if let Some(h) = self.cost {
            c.cost.horizon = h;
        }
        if let Some(e) = self.effort {
            c.cost.effort = e;
        }
        if let Some(w) = self.collision {
            c.cost.collision = w;
        }
        c
    }
}

/// What a report's settings say of a critic or mode-1 model: its file, training step and config.
fn companion_json(path: &std::path::Path, meta: &GoalNetMeta) -> serde_json::Value {
    serde_json::json!({
        "checkpoint": path.display().to_string(),
        "step": meta.step,
        "scale": meta.scale,
        "distance_per_step": meta.distance_per_step,
        "config": meta.config,
    })
}

/// A model's entry in the report's settings: its checkpoint, step and resolved config.
fn model_json(path: &std::path::Path, step: usize, config: &impl ToString) -> serde_json::Value {
    serde_json::json!({
        "checkpoint": path.display().to_string(),
        "step": step,
        "config": serde_json::from_str::<serde_json::Value>(&config.to_string()).unwrap_or_default(),
    })
}

pub fn default_checkpoint(scene: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets")
        .join(format!("{scene}.safetensors"))
}

pub fn missing_checkpoint(path: &std::path::Path, scene: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "no checkpoint at {}: train one with `amisim train --scene {scene} --out runs/{scene}` and pass --checkpoint runs/{scene}/checkpoint.safetensors",
        path.display()
    )
}

fn parse_shard(s: &str) -> Result<(usize, usize)> {
    let (i, n) = s
        .split_once('/')
        .with_context(|| format!("--shard {s}: expected i/n, e.g. 0/4"))?;
    let (i, n): (usize, usize) = (
        i.trim()
            .parse()
            .with_context(|| format!("--shard {s}: `{i}` is not a number"))?,
        n.trim()
            .parse()
            .with_context(|| format!("--shard {s}: `{n}` is not a number"))?,
    );
    if n == 0 || i >= n {
        bail!("--shard {s}: expected i/n with 0 ≤ i < n");
    }
    Ok((i, n))
}

fn print(report: &Report, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

pub fn eval_command(a: EvalArgs) -> Result<()> {
    if !a.merge.is_empty() {
        let reports = a
            .merge
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
                serde_json::from_str::<Report>(&text).with_context(|| format!("{}: not an eval report", p.display()))
            })
            .collect::<Result<Vec<_>>>()?;
        let merged = merge(reports)?;
        if let Some(dir) = &a.out {
            merged.write(dir)?;
            eprintln!("wrote {}", dir.join("report.json").display());
        }
        return print(&merged, a.json);
    }
    let path = a.checkpoint.clone().unwrap_or_else(|| default_checkpoint(&a.scene));
    if !path.exists() {
        return Err(missing_checkpoint(&path, &a.scene));
    }
    let device = cpu_device();
    let ck = load_checkpoint(&path, None, &device)?;
    let scene = Scene::load(&a.scene)?;
    let wants_ensemble = a.planner.iter().any(|r| {
        matches!(
            r,
            PlannerRow::Flat { ensemble: true, .. } | PlannerRow::Flat { switch: true, .. }
        )
    });
    let wants_switch = a
        .planner
        .iter()
        .any(|r| matches!(r, PlannerRow::Flat { switch: true, .. }));
    match a.switch_after {
        Some(_) if !wants_switch => {
            bail!("--switch-after: no row switches models (add one such as cem+spatial+switch to --planner)")
        }
        Some(0) => bail!("--switch-after 0: a +switch row needs a number of steps ≥ 1"),
        _ => {}
    }
    if let Some(w) = a.blocked {
        if !wants_switch {
            bail!("--blocked: no row switches models (add one such as cem@16+spatial+switch to --planner)");
        }
        if !(w.is_finite() && w >= 0.0) {
            bail!("--blocked {w}: expected a finite weight ≥ 0");
        }
    }
    let wants_spatial = a
        .planner
        .iter()
        .any(|r| matches!(r, PlannerRow::Flat { spatial: true, .. }));
    if let Some(w) = a.keypoints.filter(|w| !(w.is_finite() && *w >= 0.0)) {
        bail!("--keypoints {w}: expected a finite weight ≥ 0");
    }
    if a.keypoints.is_some() && !wants_spatial {
        bail!("--keypoints: no row imagines with the spatial predictor (add one such as cem+spatial to --planner)");
    }
    if wants_ensemble == a.ensemble.is_empty() {
        bail!(if wants_ensemble {
            "a +ensemble or +switch row plans with more models: give them with --ensemble A,B"
        } else {
            "--ensemble: no row plans with more models (add one such as cem+spatial+ensemble or cem+spatial+switch to --planner)"
        });
    }
    // A +switch row's other models may plan with their latent predictor instead.
    let ensemble_rows = a
        .planner
        .iter()
        .any(|r| matches!(r, PlannerRow::Flat { ensemble: true, .. }));
    let mut ensemble = Vec::new();
    for p in &a.ensemble {
        let m = load_checkpoint(p, None, &device)?;
        if m.model.spatial.is_none() && ensemble_rows {
            bail!("--ensemble {}: this model has no spatial predictor (a +ensemble row rolls every candidate out through each model's)", p.display());
        }
        let (want, got) = (&ck.config.model.encoder.resolution, &m.config.model.encoder.resolution);
        if want != got {
            bail!(
                "--ensemble {}: its encoder reads {got}×{got} frames, --checkpoint's {want}×{want}",
                p.display()
            );
        }
        ensemble.push(m);
    }
    let mut policies = Vec::new();
    for b in &a.baseline {
        match b.as_str() {
            "random" => policies.push(Policy::Random),
            "oracle" | "none" => {}
            other => bail!("--baseline {other}: expected random, oracle or none"),
        }
    }
    let wants_agent = a.planner.contains(&PlannerRow::Agent);
    let hierarchical = a.planner.contains(&PlannerRow::Hierarchical)
        || (wants_agent && a.level2.clone().unwrap_or_else(|| default_level2_path(&path)).exists());
    let level2 = if hierarchical {
        let p = a.level2.clone().unwrap_or_else(|| default_level2_path(&path));
        if !p.exists() {
            bail!(
                "--planner hierarchical: no level-2 model at {}: train one with `amisim train --level 2 --checkpoint {} --scene {} --out DIR` (or pass --level2)",
                p.display(),
                path.display(),
                a.scene
            );
        }
        Some((p.clone(), load_level2(&p, Some(&ck.model), &device)?))
    } else {
        None
    };
    // The critic: needed by `+critic` rows, used by the agent where it exists.
    let critic_path = a.critic.clone().unwrap_or_else(|| companion_path(&path, "critic"));
    let wants_critic = a
        .planner
        .iter()
        .any(|r| matches!(r, PlannerRow::Flat { critic: true, .. }));
    let critic = if wants_critic || (wants_agent && critic_path.exists()) {
        if !critic_path.exists() {
            bail!(
                "a +critic row needs a critic: none at {}; train one with `amisim train --level critic --checkpoint {} --scene {} --out DIR` (or pass --critic)",
                critic_path.display(),
                path.display(),
                a.scene
            );
        }
        let (net, meta) = load_goal_net(&critic_path, "critic", Some(&ck.model), &device)?;
        Some((
            critic_path.clone(),
            Critic::new(&net, meta.scale, meta.distance_per_step),
            meta,
        ))
    } else {
        None
    };
    let mode1_path = a.mode1.clone().unwrap_or_else(|| companion_path(&path, "mode1"));
    let wants_mode1 = a.planner.contains(&PlannerRow::Mode1);
    let mode1 = if wants_mode1 || (wants_agent && mode1_path.exists()) {
        if !mode1_path.exists() {
            bail!(
                "--planner mode1 needs a mode-1 policy: none at {}; train one with `amisim train --level mode1 --checkpoint {} --scene {} --out DIR` (or pass --mode1)",
                mode1_path.display(),
                path.display(),
                a.scene
            );
        }
        let (net, meta) = load_goal_net(&mode1_path, "mode1", Some(&ck.model), &device)?;
        Some((mode1_path.clone(), Mode1::new(&net, meta.scale), meta))
    } else {
        None
    };
    for row in &a.planner {
        match row {
            PlannerRow::Flat {
                kind,
                horizon,
                critic,
                spatial,
                ensemble,
                switch,
            } => {
                let mut c = a.planner(*kind);
                if let Some(h) = horizon {
                    c.horizon = *h;
                    c.replan_every = c.replan_every.min(c.len());
                }
                if *critic {
                    c.cost.critic = a.critic_weight;
                }
                c.spatial = *spatial;
                c.ensemble = *ensemble;
                if *spatial {
                    c.cost.keypoints = a.keypoints.unwrap_or(0.0);
                }
                if *switch {
                    c.switch_after = a.switch_after.unwrap_or(DEFAULT_SWITCH_AFTER);
                    c.blocked = a.blocked.unwrap_or(0.0);
                }
                policies.push(Policy::Latent(c));
            }
            PlannerRow::Mode1 => policies.push(Policy::Mode1),
            PlannerRow::Agent => {
                let hierarchy = level2.as_ref().map(|(_, l2)| {
                    let m = &l2.config.model;
                    a.hierarchy(m.k, m.macro_radius)
                });
                let mut agent = AgentConfig::new(a.planner(PlannerKind::Cem), hierarchy);
                agent.configurator.critic_weight = a.critic_weight;
                if let Some(h) = a.horizon {
                    agent.configurator.max_horizon = h.max(agent.configurator.short_horizon);
                }
                let agent = crate::with_sets(agent, &a.agent_sets).context("--agent-set")?;
                policies.push(Policy::Agent(Box::new(agent)));
            }
            PlannerRow::Hierarchical => {
                let l2 = &level2.as_ref().expect("loaded above").1.config.model;
                policies.push(Policy::Hierarchical(a.hierarchy(l2.k, l2.macro_radius)));
            }
            PlannerRow::None => {}
        }
    }
    if a.baseline.iter().any(|b| b == "oracle") {
        let kind = a
            .kinds()
            .into_iter()
            .find(|k| *k != PlannerKind::Gradient)
            .unwrap_or(PlannerKind::Cem);
        policies.push(Policy::Oracle(a.planner(kind)));
    }
    if !a.agent_sets.is_empty() && !a.planner.contains(&PlannerRow::Agent) {
        bail!("--agent-set applies to the agent row: add agent to --planner");
    }
    let cfg = EvalConfig {
        scene: a.scene.clone(),
        episodes: a.episodes,
        envs: a.envs.min(a.episodes.max(1)),
        seed: a.seed,
        max_steps: a.max_steps.unwrap_or(scene.episode().max_steps),
        policies,
        shard: a.shard.as_deref().map(parse_shard).transpose()?.unwrap_or((0, 1)),
        checkpoint: path.display().to_string(),
        checkpoint_step: ck.step,
        model: serde_json::from_str(&ck.config.to_string())?,
        critic: critic.as_ref().map(|(p, _, m)| companion_json(p, m)),
        mode1: mode1.as_ref().map(|(p, _, m)| companion_json(p, m)),
        level2: level2.as_ref().map(|(p, l2)| model_json(p, l2.step, &l2.config)),
        ensemble: a
            .ensemble
            .iter()
            .zip(&ensemble)
            .map(|(p, m)| model_json(p, m.step, &m.config))
            .collect(),
    };
    let differentiable = if a.kinds().contains(&PlannerKind::Gradient) {
        Some(
            load_checkpoint(&path, None, &device.clone().autodiff())?
                .model
                .predictor,
        )
    } else {
        None
    };
    let strips = if a.out.is_some() { a.strips } else { 0 };
    let (probe, probe2) = if !a.kinds().is_empty() || level2.is_some() {
        // Linear position probes on fresh random-walk episodes, to draw imagined paths and
        // judge whether plans go through walls.
        let (p, p2) = position_probes(&ck.model, level2.as_ref().map(|l| &l.1.model), &a.scene, &device)?;
        (Some(p), p2)
    } else {
        (None, None)
    };
    // The same for each --ensemble model, whose plans a +switch row draws and judges.
    let ensemble_probes = if wants_switch {
        ensemble
            .iter()
            .map(|m| Ok(position_probes(&m.model, None, &a.scene, &device)?.0))
            .collect::<Result<Vec<_>>>()?
    } else {
        Vec::new()
    };
    let loaded = Loaded {
        model: &ck.model,
        differentiable,
        probe,
        level2: level2.map(|(_, l2)| LoadedLevel2 {
            model: l2.model,
            cfg: l2.config.model,
            probe: probe2,
        }),
        critic: critic.map(|(_, c, _)| c),
        mode1: mode1.map(|(_, m, _)| m),
        ensemble: ensemble.iter().map(|m| &m.model).collect(),
        ensemble_probes,
    };
    let per_row = cfg.episodes.div_ceil(cfg.envs).div_ceil(cfg.shard.1) * cfg.envs;
    let bar = indicatif::ProgressBar::new((per_row * cfg.policies.len()) as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} episodes {elapsed}<{eta}")
            .expect("template")
            .progress_chars("=> "),
    );
    if a.record.is_some() && cfg.policies.iter().all(|p| !p.learned()) {
        bail!("--record records the rows that act with the learned model, and this run has none (see --planner)");
    }
    let mut recorder = a
        .record
        .as_ref()
        .map(|_| Recorder::new(&scene, &a.scene, a.record_steps))
        .transpose()?;
    let (report, strip_frames) = run_recorded(
        &cfg,
        &loaded,
        strips,
        |name, _| {
            bar.set_prefix(name.to_string());
            bar.inc(1);
        },
        recorder.as_mut(),
    )?;
    bar.finish_and_clear();
    if let (Some(dir), Some(r)) = (&a.record, &recorder) {
        let rows: Vec<String> = report
            .rows
            .iter()
            .filter(|row| row.policy.learned())
            .map(|row| row.name.clone())
            .collect();
        r.write(
            dir,
            &format!("eval: {}", rows.join(",")),
            cfg.seed,
            serde_json::to_value(&cfg)?,
        )?;
        eprintln!(
            "recorded {} episodes as {} pieces of {} steps in {}",
            r.episodes,
            r.pieces(),
            a.record_steps,
            dir.display()
        );
    }
    if let Some(dir) = &a.out {
        report.write(dir)?;
        let side = scene.resolution() as usize;
        let pngs = write_strips(dir, &strip_frames, side)?;
        eprintln!(
            "wrote {} and {} strip(s) to {}",
            dir.join("report.json").display(),
            pngs.len(),
            dir.display()
        );
    }
    print(&report, a.json)
}
