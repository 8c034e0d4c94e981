//! The agent thread of `amisim run`: it owns an environment, the world model and the planner,
//! acts at its own pace and sends a snapshot of what it saw, imagined and paid after every
//! step. The window only draws the latest snapshot, so a plan never holds up a frame. A second
//! thread computes the energy landscape of each new goal.

use crate::actor::hierarchy::{HierMpc, HierarchyConfig};
use crate::actor::mode1::Mode1;
use crate::actor::model::{Abstracted, Dynamics, LatentDynamics, SimDynamics};
use crate::actor::planner::{PlannerConfig, PlannerKind, Trace};
use crate::actor::Mpc;
use crate::agent::{AgentBatch, AgentConfig, AgentModels};
use crate::configurator::{Available, Decision, GoalKind, Settings, Task};
use crate::cost::critic::Critic;
use crate::eval::probe::{position_probes, LinearProbe, POSITION_PROBE_EPISODES};
use crate::eval::run::encode;
use crate::goal_net::{companion_path, load_goal_net};
use crate::train::jepa::{cpu_device, load_checkpoint};
use crate::train::level2::{default_level2_path, load_level2};
use crate::world::env::env_rng;
use crate::world::sim::{self, EnvState};
use crate::world::{Obs, Scene, VecEnv};
use anyhow::{bail, Context, Result};
use burn::prelude::*;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use glam::Vec2;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the window asks of the agent.
#[derive(Debug, Clone)]
pub enum Command {
    Pause(bool),
    /// One step now (paused or not).
    Step,
    /// A new episode.
    Reset,
    /// A new goal position (arena coordinates) in the current episode.
    Goal(Vec2),
    Planner(PlannerKind),
    /// Plan hierarchically (level 2 sets level 1's subgoals) or flat.
    Hierarchical(bool),
    /// Act as the whole agent (configurator, memories, critic, mode 1 and mode 2) or with the
    /// chosen planner alone.
    Whole(bool),
    Horizon(usize),
    Samples(usize),
    Iterations(usize),
    StepsPerSecond(f32),
    /// The action of the next step, from the keyboard, instead of the planner's.
    Drive([f32; 2]),
    /// Switch to another (top-down) scene.
    Scene(String),
}

/// What the agent plans with.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSource {
    /// A trained world model.
    Checkpoint(PathBuf),
    /// The true simulator (the oracle of `amisim eval`).
    Oracle,
}

/// Settings of the agent thread.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub scene: String,
    pub model: ModelSource,
    /// Where the shipped models live (`<scene>.safetensors`), for switching scenes.
    pub assets: PathBuf,
    pub planner: PlannerConfig,
    /// Start planning hierarchically (where the model has a level-2 model).
    pub hierarchical: bool,
    /// Start as the whole agent.
    pub whole: bool,
    pub seed: u64,
    pub steps_per_second: f32,
}

/// One sampled plan of the last planning call, as the positions it imagines.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub path: Vec<[f32; 2]>,
    pub cost: f32,
    pub elite: bool,
}

/// Everything the window shows of the agent, after one step.
#[derive(Clone)]
pub struct Snapshot {
    pub scene: Arc<Scene>,
    pub state: EnvState,
    pub episode: u64,
    /// Changes with every new goal (the landscape answers to it).
    pub goal_id: u64,
    /// Side of the observations in pixels; `obs` and `goal_obs` are RGBA.
    pub side: usize,
    pub obs: Vec<u8>,
    pub goal_obs: Vec<u8>,
    /// The chosen plan's imagined agent positions (the position probe reads the latents).
    pub plan: Vec<[f32; 2]>,
    pub candidates: Vec<Candidate>,
    pub executed: Vec<[f32; 2]>,
    /// (step, distance between the current and the goal latent).
    pub energy: Vec<[f64; 2]>,
    /// Lowest cost of each iteration of the last plan (level 1's when hierarchical).
    pub iteration_costs: Vec<f32>,
    /// The level-2 model planned with, in words, when the world model has one.
    pub level2: Option<String>,
    /// Whether the agent plans hierarchically; then `planner` is level 1's settings.
    pub hierarchical: bool,
    /// The last level-2 plan's imagined agent positions, one per jump of `k` steps.
    pub high_plan: Vec<[f32; 2]>,
    /// Where the current subgoal puts the agent (the level-2 probe reads it).
    pub subgoal: Option<[f32; 2]>,
    /// Lowest cost of each iteration of the last level-2 plan.
    pub high_iteration_costs: Vec<f32>,
    /// (step, planning ms per environment step) of each plan.
    pub plan_ms: Vec<[f64; 2]>,
    pub planner: PlannerConfig,
    /// What the agent plans with, in words.
    pub model: String,
    pub status: String,
    pub paused: bool,
    pub steps_per_second: f32,
    pub plans_made: usize,
    /// The whole agent's state, when it acts.
    pub whole: Option<WholeView>,
    /// Whether the world model has a critic and a mode-1 policy (the whole agent uses them).
    pub has_critic: bool,
    pub has_mode1: bool,
}

/// What the window shows of the whole agent.
#[derive(Debug, Clone)]
pub struct WholeView {
    pub settings: Settings,
    /// The last step came from mode 1 (else mode 2).
    pub last_mode1: bool,
    pub mode1_steps: u32,
    pub mode2_steps: u32,
    /// The configurator's decisions, oldest first.
    pub decisions: Vec<Decision>,
    pub short_term: (usize, usize),
    pub landmarks: (usize, usize),
    pub loops: u32,
    pub waypoint: bool,
    /// The critic's cost-to-go to the goal per step (steps), where there is a critic.
    pub cost_to_go: Vec<[f64; 2]>,
}

/// The energy between the goal latent and the latent of the agent drawn at each point of a
/// grid over the arena.
#[derive(Debug, Clone)]
pub struct Landscape {
    pub goal_id: u64,
    /// Cells per side; cell `(i, j)` is centred at `origin + (i + 0.5, j + 0.5) · cell`.
    pub n: usize,
    pub origin: f32,
    pub cell: f32,
    /// Row-major (`j` rows, `i` columns); NaN where the agent cannot be (walls).
    pub values: Vec<f32>,
    pub ms: f64,
}

/// Messages from the agent's threads to the window.
pub enum Event {
    /// Loading, fitting the probe and the like.
    Status(String),
    Snapshot(Box<Snapshot>),
    Landscape(Landscape),
    /// The agent stopped; the message says why.
    Failed(String),
}

/// Starts the agent thread; returns the sender of its commands. The thread stops when the
/// sender is dropped.
pub fn spawn(opts: AgentOptions, events: Sender<Event>) -> Sender<Command> {
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::Builder::new()
        .name("agent".into())
        .spawn(move || {
            if let Err(e) = agent_main(opts, rx, events.clone()) {
                let _ = events.send(Event::Failed(format!("{e:#}")));
            }
        })
        .expect("spawning the agent thread");
    tx
}

/// Cells per side of the energy landscape.
pub const LANDSCAPE_CELLS: usize = 32;
/// Environments the landscape renders at once.
const LANDSCAPE_BATCH: usize = 64;
/// Candidate paths shown per plan (the elites among them).
const SHOWN_CANDIDATES: usize = 32;
/// How long a finished episode stays on screen before the next one starts.
const PAUSE_AFTER_EPISODE: Duration = Duration::from_millis(1500);

/// The world model with what goes with it.
struct Model {
    path: PathBuf,
    step: usize,
    jepa: crate::world_model::jepa::Jepa,
    latent: LatentDynamics,
    probe: LinearProbe,
    level2: Option<Level2Brain>,
    critic: Option<Critic>,
    mode1: Option<Mode1>,
}

/// The level-2 model: its predictor as planning dynamics, the abstraction's weights, and a
/// probe from level-2 states to positions.
struct Level2Brain {
    path: PathBuf,
    k: usize,
    macro_radius: f32,
    high: LatentDynamics,
    w: Vec<f32>,
    b: Vec<f32>,
    probe: LinearProbe,
}

impl Level2Brain {
    /// Level 1 seen through the abstraction.
    fn low<'a>(&self, latent: &'a LatentDynamics) -> Abstracted<'a, LatentDynamics> {
        Abstracted::new(latent, self.w.clone(), self.b.clone())
    }

    fn positions(&self, states: &[f32]) -> Vec<[f32; 2]> {
        let k = self.probe.k;
        self.probe
            .predict(states)
            .chunks_exact(k)
            .map(|p| [p[0], p[1]])
            .collect()
    }
}

enum Brain {
    Model(Box<Model>),
    Oracle(SimDynamics),
}

impl Brain {
    fn describe(&self) -> String {
        match self {
            Brain::Model(m) => format!("world model {} (step {})", m.path.display(), m.step),
            Brain::Oracle(_) => "the true simulator (oracle)".into(),
        }
    }

    /// The state as the planner sees it: the encoder's latent of the frame, or the simulator's
    /// state vector.
    fn perceive(&self, obs: &Obs, state: &EnvState, device: &Device) -> Vec<f32> {
        match self {
            Brain::Model(m) => encode(&m.jepa, obs, device),
            Brain::Oracle(sim) => sim.observe(state),
        }
    }

    /// Agent positions of imagined states `[rows, dim]`.
    fn positions(&self, states: &[f32]) -> Vec<[f32; 2]> {
        match self {
            Brain::Model(m) => {
                let k = m.probe.k;
                m.probe.predict(states).chunks_exact(k).map(|p| [p[0], p[1]]).collect()
            }
            Brain::Oracle(sim) => states.chunks_exact(sim.dim()).map(|s| [s[0], s[1]]).collect(),
        }
    }
}

/// The agent's world: the scene, its environment, the model and the current episode.
struct Agent {
    opts: AgentOptions,
    scene: Arc<Scene>,
    env: VecEnv,
    brain: Brain,
    device: Device,
    mpc: Mpc,
    /// The hierarchical planner, while the agent plans hierarchically.
    hier: Option<HierMpc>,
    /// The whole agent, while it acts.
    whole: Option<AgentBatch>,
    cost_to_go: Vec<[f64; 2]>,
    high_plan: Vec<[f32; 2]>,
    subgoal: Option<[f32; 2]>,
    high_iteration_costs: Vec<f32>,
    episode: u64,
    goal_id: u64,
    obs: Obs,
    goal_obs: Vec<u8>,
    /// The goal as the planner sees it: a latent, or the simulator's state vector.
    goal: Vec<f32>,
    /// The current state as the planner sees it.
    z: Vec<f32>,
    executed: Vec<[f32; 2]>,
    energy: Vec<[f64; 2]>,
    plan_ms: Vec<[f64; 2]>,
    plan: Vec<[f32; 2]>,
    candidates: Vec<Candidate>,
    iteration_costs: Vec<f32>,
    plans_made: usize,
    status: String,
    paused: bool,
    finished_at: Option<Instant>,
    landscape: Sender<LandscapeJob>,
    events: Sender<Event>,
}

fn agent_main(opts: AgentOptions, commands: Receiver<Command>, events: Sender<Event>) -> Result<()> {
    let (ltx, lrx) = crossbeam_channel::unbounded();
    {
        let events = events.clone();
        std::thread::Builder::new()
            .name("landscape".into())
            .spawn(move || {
                if let Err(e) = landscape_main(lrx, events.clone()) {
                    let _ = events.send(Event::Status(format!("energy landscape stopped: {e:#}")));
                }
            })
            .context("spawning the landscape thread")?;
    }
    let mut agent = Agent::load(opts, ltx, events)?;
    agent.new_episode()?;
    let mut next_due = Instant::now();
    let mut step_now = false;
    let mut drive: Option<[f32; 2]> = None;
    loop {
        // Wait for a command until the next step is due (forever while paused).
        let due = !agent.paused && agent.finished_at.is_none();
        let received = if step_now || drive.is_some() {
            commands.try_recv().map_err(|e| match e {
                crossbeam_channel::TryRecvError::Empty => RecvTimeoutError::Timeout,
                crossbeam_channel::TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
            })
        } else if due {
            commands.recv_deadline(next_due)
        } else if let Some(t) = agent.finished_at.filter(|_| !agent.paused) {
            commands.recv_deadline(t + PAUSE_AFTER_EPISODE)
        } else {
            commands.recv().map_err(|_| RecvTimeoutError::Disconnected)
        };
        match received {
            Ok(cmd) => {
                match cmd {
                    Command::Step => step_now = true,
                    Command::Drive(a) => drive = Some(a),
                    other => agent.command(other)?,
                }
                agent.publish();
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
            Err(RecvTimeoutError::Timeout) => {}
        }
        if let Some(t) = agent.finished_at {
            // The episode is over: keys wait for the next one.
            drive = None;
            if agent.paused && !step_now {
                continue;
            }
            if t.elapsed() >= PAUSE_AFTER_EPISODE || step_now {
                agent.episode += 1;
                agent.new_episode()?;
                step_now = false;
                next_due = Instant::now();
            }
            continue;
        }
        if !(step_now || drive.is_some()) && Instant::now() < next_due {
            continue;
        }
        // Keyboard steps come at the same pace as the planner's.
        if drive.is_some() && !step_now && Instant::now() < next_due {
            std::thread::sleep(next_due - Instant::now());
        }
        agent.step(drive.take())?;
        step_now = false;
        next_due = Instant::now() + Duration::from_secs_f32(1.0 / agent.opts.steps_per_second.max(0.1));
        agent.publish();
    }
}

/// RGBA pixels of an environment's frame (channels as drawn).
fn rgba(obs: &Obs, i: usize) -> Vec<u8> {
    let [_, _, h, w] = obs.shape;
    let plane = h * w;
    let f = obs.frame(i);
    let mut out = Vec::with_capacity(plane * 4);
    for p in 0..plane {
        out.extend_from_slice(&[f[p], f[plane + p], f[2 * plane + p], 255]);
    }
    out
}

impl Agent {
    fn load(opts: AgentOptions, landscape: Sender<LandscapeJob>, events: Sender<Event>) -> Result<Agent> {
        let scene = Arc::new(load_top_down(&opts.scene)?);
        let device = cpu_device();
        let status = |s: String| {
            let _ = events.send(Event::Status(s));
        };
        status(format!("starting the {} world", scene.name()));
        let env = VecEnv::new((*scene).clone(), 1)?;
        let brain = load_brain(&opts.model, &scene, &device, &status)?;
        let obs = Obs {
            frames: Vec::new(),
            shape: [0, 3, 0, 0],
        };
        let mut agent = Agent {
            mpc: Mpc::new(opts.planner.clone(), &[opts.seed]),
            hier: None,
            whole: None,
            cost_to_go: Vec::new(),
            high_plan: Vec::new(),
            subgoal: None,
            high_iteration_costs: Vec::new(),
            episode: 0,
            goal_id: 0,
            obs,
            goal_obs: Vec::new(),
            goal: Vec::new(),
            z: Vec::new(),
            executed: Vec::new(),
            energy: Vec::new(),
            plan_ms: Vec::new(),
            plan: Vec::new(),
            candidates: Vec::new(),
            iteration_costs: Vec::new(),
            plans_made: 0,
            status: String::new(),
            paused: false,
            finished_at: None,
            opts,
            scene,
            env,
            brain,
            device,
            landscape,
            events,
        };
        if agent.opts.hierarchical {
            agent.set_hierarchical(true);
        }
        Ok(agent)
    }

    /// Starts (or stops) the whole agent for the current episode: its configurator reads the
    /// task and what the world model has; its memories start empty.
    fn set_whole(&mut self, on: bool) {
        self.opts.whole = on;
        self.whole = None;
        self.cost_to_go.clear();
        if !on {
            return;
        }
        let Brain::Model(m) = &self.brain else {
            self.status = "the whole agent needs a world model (not the oracle)".into();
            return;
        };
        let state = &self.env.states()[0];
        let task = Task {
            scene: self.scene.name().to_string(),
            goal: if state.pushable.is_some() {
                GoalKind::Object
            } else {
                GoalKind::Place
            },
            rooms: state.layout.as_ref().map_or(1, |l| l.room_count),
            cost: self.scene.episode().task_cost,
        };
        let available = Available {
            critic: m.critic.is_some(),
            level2: m.level2.is_some(),
            mode1: m.mode1.is_some(),
        };
        let mut flat = PlannerConfig::default_for(PlannerKind::Cem);
        flat.cost = self.mpc.cfg.cost.clone();
        let hierarchy = m
            .level2
            .as_ref()
            .map(|l| HierarchyConfig::default_for(l.k, l.macro_radius));
        let cfg = AgentConfig::new(flat, hierarchy);
        let mut batch = AgentBatch::new(cfg, &task, available, &[self.plan_seed()]);
        batch.trace = true;
        self.whole = Some(batch);
    }

    /// The whole agent's next action, and what it shows: its plans and its state.
    fn act_whole(&mut self, z: &[f32]) -> Option<[f32; 2]> {
        let (Brain::Model(m), Some(w)) = (&self.brain, self.whole.as_mut()) else {
            return None;
        };
        let low = m.level2.as_ref().map(|l| l.low(&m.latent));
        let models = AgentModels {
            latent: &m.latent,
            critic: m.critic.as_ref(),
            mode1: m.mode1.as_ref(),
            level2: m.level2.as_ref().zip(low.as_ref()).map(|(l, low)| (&l.high, low)),
        };
        let t0 = Instant::now();
        let acts = w.act(&models, &[z.to_vec()], &self.goal);
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        let t = self.env.states()[0].steps as f64;
        self.plan_ms.push([t, ms]);
        if let Some(c) = &m.critic {
            self.cost_to_go.push([t, c.steps(z, &self.goal, 1)[0] as f64]);
        }
        if !w.last_mode1[0] {
            self.plans_made += 1;
        }
        let view = w.plans(0);
        let hier = m.level2.as_ref().filter(|_| view.high.is_some());
        // Level 2's plan and the subgoal, and the (level-1 or flat) plan with its candidates.
        if let (Some(l2), Some(high)) = (hier, view.high) {
            self.high_plan = l2.positions(&high.imagined);
            self.subgoal = view.subgoal.and_then(|g| l2.positions(g).first().copied());
            self.high_iteration_costs = high.trace.as_ref().map_or(Vec::new(), |t| t.best_per_iteration.clone());
        } else {
            self.high_plan.clear();
            self.subgoal = None;
            self.high_iteration_costs.clear();
        }
        if let Some(p) = view.low {
            let len = p.actions.len() / 2;
            match hier {
                Some(l2) => {
                    self.plan = l2.positions(&p.imagined);
                    if let Some(t) = &p.trace {
                        self.iteration_costs = t.best_per_iteration.clone();
                        self.candidates = drawn_candidates(
                            t,
                            len,
                            |n, a| l2.low(&m.latent).rollout(&[z.to_vec()], n, a, len),
                            |s| l2.positions(s),
                        );
                    }
                }
                None => {
                    self.plan = m
                        .probe
                        .predict(&p.imagined)
                        .chunks_exact(m.probe.k)
                        .map(|q| [q[0], q[1]])
                        .collect();
                    if let Some(t) = &p.trace {
                        self.iteration_costs = t.best_per_iteration.clone();
                        let k = m.probe.k;
                        self.candidates = drawn_candidates(
                            t,
                            len,
                            |n, a| m.latent.rollout(&[z.to_vec()], n, a, len),
                            |s| m.probe.predict(s).chunks_exact(k).map(|q| [q[0], q[1]]).collect(),
                        );
                    }
                }
            }
        }
        acts.first().map(|(_, a)| *a)
    }

    fn level2(&self) -> Option<&Level2Brain> {
        match &self.brain {
            Brain::Model(m) => m.level2.as_ref(),
            Brain::Oracle(_) => None,
        }
    }

    /// Switches hierarchical planning on (where the model has a level-2 model) or off.
    fn set_hierarchical(&mut self, on: bool) {
        self.opts.hierarchical = on;
        // Level 1's settings as edited, kept while the level-2 model's k stays.
        let kept = self.hier.take().map(|h| h.cfg);
        self.mpc.interrupt(0);
        self.high_plan.clear();
        self.subgoal = None;
        self.high_iteration_costs.clear();
        if !on {
            return;
        }
        let Some(l2) = self.level2() else {
            self.status = match &self.brain {
                Brain::Oracle(_) => {
                    "hierarchical planning needs a world model with a level-2 model (not the oracle)".into()
                }
                Brain::Model(m) => format!(
                    "no level-2 model for {} (expected {}): planning flat",
                    m.path.display(),
                    default_level2_path(&m.path).display()
                ),
            };
            return;
        };
        let mut cfg = HierarchyConfig::default_for(l2.k, l2.macro_radius);
        if let Some(old) = kept.filter(|c| c.k == l2.k) {
            cfg.low = old.low;
        }
        self.hier = Some(HierMpc::new(cfg, &[self.plan_seed()]));
    }

    /// The level-1 planner's settings: the flat planner's, or the hierarchy's lower level.
    fn low_cfg(&self) -> &PlannerConfig {
        match &self.hier {
            Some(h) => &h.cfg.low,
            None => &self.mpc.cfg,
        }
    }

    fn command(&mut self, cmd: Command) -> Result<()> {
        let mut cfg = self.low_cfg().clone();
        match cmd {
            Command::Hierarchical(on) => {
                self.set_whole(false);
                self.set_hierarchical(on);
                return Ok(());
            }
            Command::Whole(on) => {
                self.set_whole(on);
                return Ok(());
            }
            Command::Pause(p) => self.paused = p,
            Command::Reset => {
                self.episode += 1;
                self.new_episode()?;
            }
            Command::Goal(p) => self.set_goal(p)?,
            Command::Planner(kind) => {
                self.set_whole(false);
                if kind == PlannerKind::Gradient && matches!(self.brain, Brain::Oracle(_)) {
                    self.status = "the simulator has no gradient: plan with CEM or MPPI".into();
                    return Ok(());
                }
                if self.hier.is_some() {
                    // A flat planner is asked for: leave the hierarchy.
                    self.set_hierarchical(false);
                    cfg = self.mpc.cfg.clone();
                }
                let d = PlannerConfig::default_for(kind);
                (cfg.kind, cfg.samples, cfg.iterations) = (kind, d.samples, d.iterations);
            }
            Command::Horizon(h) => cfg.horizon = h.max(1),
            Command::Samples(n) => cfg.samples = n.max(cfg.elites.max(cfg.legs + 1)),
            Command::Iterations(n) => cfg.iterations = n.max(1),
            Command::StepsPerSecond(s) => self.opts.steps_per_second = s.clamp(0.5, 120.0),
            Command::Scene(name) => {
                if name != self.scene.name() {
                    self.switch_scene(&name)?;
                }
                return Ok(());
            }
            Command::Step | Command::Drive(_) => {}
        }
        if cfg != *self.low_cfg() {
            cfg.replan_every = cfg.replan_every.min(cfg.len());
            if let Err(e) = cfg.validate() {
                self.status = e;
            } else if let Some(h) = &self.hier {
                let mut hc = h.cfg.clone();
                hc.low = cfg;
                if hc.low.kind == PlannerKind::Gradient {
                    self.status = "the hierarchical planner samples: its level 1 plans with CEM or MPPI".into();
                } else {
                    self.hier = Some(HierMpc::new(hc, &[self.plan_seed()]));
                }
            } else {
                self.opts.planner = cfg.clone();
                self.mpc = Mpc::new(cfg, &[self.plan_seed()]);
            }
        }
        Ok(())
    }

    fn plan_seed(&self) -> u64 {
        self.opts.seed ^ (self.episode + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    fn switch_scene(&mut self, name: &str) -> Result<()> {
        let scene = match load_top_down(name) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                self.status = format!("{e:#}");
                return Ok(());
            }
        };
        let send = |s: String| {
            let _ = self.events.send(Event::Status(s));
        };
        send(format!("switching to {name}"));
        let model = match &self.opts.model {
            ModelSource::Oracle => ModelSource::Oracle,
            ModelSource::Checkpoint(_) => {
                let p = self.opts.assets.join(format!("{name}.safetensors"));
                if p.exists() {
                    ModelSource::Checkpoint(p)
                } else {
                    ModelSource::Oracle
                }
            }
        };
        let brain = load_brain(&model, &scene, &self.device, &send)?;
        self.env = VecEnv::new((*scene).clone(), 1)?;
        self.brain = brain;
        self.scene = scene;
        self.opts.scene = name.to_string();
        self.episode = 0;
        // The hierarchy follows the new model's level 2 (its k may differ).
        self.set_hierarchical(self.opts.hierarchical);
        self.new_episode()?;
        if model == ModelSource::Oracle && self.opts.model != ModelSource::Oracle {
            self.status = format!("no shipped model for {name}: planning with the true simulator (oracle)");
        }
        Ok(())
    }

    /// Starts episode `self.episode` (drawn from the seed), with its own goal.
    fn new_episode(&mut self) -> Result<()> {
        let state = sim::sample_episode(&self.scene, &mut env_rng(self.opts.seed, self.episode as usize))?;
        self.start_from(state)
    }

    /// Sets a new goal position for the current episode (ignored inside walls).
    fn set_goal(&mut self, p: Vec2) -> Result<()> {
        let mut state = self.env.states()[0].clone();
        let mut probe = state.clone();
        probe.agent = p;
        if let Some(b) = probe.pushable.as_mut() {
            *b = p;
            probe.agent = Vec2::new(-100.0, -100.0);
        }
        let size = self.scene.top_down().map_or(0.0, |s| s.size as f32);
        if p.x < 0.0 || p.y < 0.0 || p.x > size || p.y > size || sim::inside_wall(&self.scene, &probe) {
            self.status = format!("({:.0}, {:.0}) is not a free position: goal unchanged", p.x, p.y);
            return Ok(());
        }
        state.goal = p;
        state.steps = 0;
        self.start_from(state)
    }

    fn start_from(&mut self, state: EnvState) -> Result<()> {
        let goal_state = sim::goal_state(&self.scene, &state);
        self.env.set_states(vec![goal_state.clone()]);
        let goal_obs = self.env.render()?;
        self.goal_obs = rgba(&goal_obs, 0);
        self.goal = self.brain.perceive(&goal_obs, &goal_state, &self.device);
        self.env.set_states(vec![state.clone()]);
        self.obs = self.env.render()?;
        self.mpc = Mpc::new(self.mpc.cfg.clone(), &[self.plan_seed()]);
        let seed = self.plan_seed();
        if let Some(h) = self.hier.as_mut() {
            *h = HierMpc::new(h.cfg.clone(), &[seed]);
        }
        self.high_plan.clear();
        self.subgoal = None;
        self.high_iteration_costs.clear();
        self.set_whole(self.opts.whole);
        self.goal_id += 1;
        self.executed = vec![[state.agent.x, state.agent.y]];
        self.energy.clear();
        self.plan_ms.clear();
        self.plan.clear();
        self.candidates.clear();
        self.iteration_costs.clear();
        self.finished_at = None;
        self.status = format!(
            "episode {}: go to ({:.0}, {:.0}){}",
            self.episode,
            state.goal.x,
            state.goal.y,
            if self.opts.hierarchical && self.hier.is_none() {
                " (planning flat: no level-2 model here)"
            } else {
                ""
            }
        );
        self.record_energy()?;
        let _ = self.landscape.send(LandscapeJob {
            goal_id: self.goal_id,
            scene: self.scene.clone(),
            template: state,
            goal: self.goal.clone(),
            model: match &self.brain {
                Brain::Model(m) => Some(m.path.clone()),
                Brain::Oracle(_) => None,
            },
            cost: self.mpc.cfg.cost.clone(),
        });
        self.publish();
        Ok(())
    }

    /// Reads the current latent (or simulator state) and records its distance to the goal.
    fn record_energy(&mut self) -> Result<()> {
        self.z = self.brain.perceive(&self.obs, &self.env.states()[0], &self.device);
        let t = self.env.states()[0].steps as f64;
        self.energy
            .push([t, self.mpc.cfg.cost.dist(&self.z, &self.goal) as f64]);
        Ok(())
    }

    fn step(&mut self, drive: Option<[f32; 2]>) -> Result<()> {
        let z = self.z.clone();
        let action = match drive {
            Some(a) => {
                self.mpc.interrupt(0);
                if let Some(h) = self.hier.as_mut() {
                    h.interrupt(0);
                }
                a
            }
            None if self.whole.is_some() => self.act_whole(&z).unwrap_or([0.0, 0.0]),
            None => {
                let t0 = Instant::now();
                let (acts, planned) = match (&self.brain, self.hier.as_mut()) {
                    (Brain::Model(m), Some(h)) => {
                        let l2 = m
                            .level2
                            .as_ref()
                            .expect("the hierarchy is on only with a level-2 model");
                        let low = l2.low(&m.latent);
                        let (z2, goal2) = (low.map(&z), low.map(&self.goal));
                        h.act(&l2.high, &low, &[z2], std::slice::from_ref(&z), &goal2, &[0], true)
                    }
                    (Brain::Model(m), None) => {
                        self.mpc
                            .act(&m.latent, std::slice::from_ref(&z), &self.goal, &[0], true)
                    }
                    (Brain::Oracle(sim), _) => {
                        let states = self.env.states().to_vec();
                        self.mpc.act(sim, &states, &self.goal, &[0], true)
                    }
                };
                if planned {
                    let ms = t0.elapsed().as_secs_f64() * 1e3 / self.low_cfg().replan_every as f64;
                    self.plan_ms.push([self.env.states()[0].steps as f64, ms]);
                    self.plans_made += 1;
                    if self.hier.is_some() {
                        self.read_hierarchical_plan(&z);
                    } else {
                        self.read_plan(&z);
                    }
                }
                acts[0].1
            }
        };
        let (obs, info) = self.env.step(&[action])?;
        self.obs = obs;
        let s = &self.env.states()[0];
        self.executed.push([s.agent.x, s.agent.y]);
        self.record_energy()?;
        let info = &info[0];
        if info.success || info.done {
            self.finished_at = Some(Instant::now());
            self.status = if info.success {
                format!("episode {}: reached the goal in {} steps", self.episode, info.steps)
            } else {
                format!(
                    "episode {}: out of steps, {:.1} px from the goal",
                    self.episode, info.goal_distance
                )
            };
        } else if drive.is_some() {
            self.status = format!("episode {}: driven by keyboard", self.episode);
        }
        Ok(())
    }

    /// Decodes the last plan and a sample of its candidates into positions.
    fn read_plan(&mut self, z: &[f32]) {
        let Some(plan) = self.mpc.last[0].as_ref() else { return };
        let len = self.mpc.cfg.len();
        self.plan = self.brain.positions(&plan.imagined);
        let Some(trace) = plan.trace.as_ref() else { return };
        self.iteration_costs = trace.best_per_iteration.clone();
        let candidates = drawn_candidates(
            trace,
            len,
            |n, actions| match &self.brain {
                Brain::Model(m) => m.latent.rollout(&[z.to_vec()], n, actions, len),
                Brain::Oracle(sim) => sim.rollout(&[self.env.states()[0].clone()], n, actions, len),
            },
            |states| self.brain.positions(states),
        );
        self.candidates = candidates;
    }

    /// Decodes the hierarchy's plans: level 1's chosen plan and candidates, level 2's plan and
    /// the subgoal, all read by the level-2 probe.
    fn read_hierarchical_plan(&mut self, z: &[f32]) {
        let (Brain::Model(m), Some(h)) = (&self.brain, &self.hier) else {
            return;
        };
        let Some(l2) = m.level2.as_ref() else { return };
        if let Some(p) = h.last_high[0].as_ref() {
            self.high_plan = l2.positions(&p.imagined);
            if let Some(t) = &p.trace {
                self.high_iteration_costs = t.best_per_iteration.clone();
            }
        }
        self.subgoal = l2.positions(&h.subgoals[0]).first().copied();
        let Some(plan) = h.low.last[0].as_ref() else { return };
        self.plan = l2.positions(&plan.imagined);
        let Some(trace) = plan.trace.as_ref() else { return };
        self.iteration_costs = trace.best_per_iteration.clone();
        let len = h.cfg.low.len();
        self.candidates = drawn_candidates(
            trace,
            len,
            |n, actions| l2.low(&m.latent).rollout(&[z.to_vec()], n, actions, len),
            |states| l2.positions(states),
        );
    }

    fn publish(&self) {
        let side = self.obs.shape[2];
        let snapshot = Snapshot {
            scene: self.scene.clone(),
            state: self.env.states()[0].clone(),
            episode: self.episode,
            goal_id: self.goal_id,
            side,
            obs: rgba(&self.obs, 0),
            goal_obs: self.goal_obs.clone(),
            plan: self.plan.clone(),
            candidates: self.candidates.clone(),
            executed: self.executed.clone(),
            energy: self.energy.clone(),
            iteration_costs: self.iteration_costs.clone(),
            level2: self.level2().map(|l| l.path.display().to_string()),
            hierarchical: self.hier.is_some()
                || self
                    .whole
                    .as_ref()
                    .is_some_and(|w| w.states[0].configurator.settings.hierarchical),
            high_plan: self.high_plan.clone(),
            subgoal: self.subgoal,
            high_iteration_costs: self.high_iteration_costs.clone(),
            plan_ms: self.plan_ms.clone(),
            planner: self.low_cfg().clone(),
            model: self.brain.describe(),
            status: self.status.clone(),
            paused: self.paused,
            steps_per_second: self.opts.steps_per_second,
            plans_made: self.plans_made,
            whole: self.whole.as_ref().map(|w| {
                let st = &w.states[0];
                WholeView {
                    settings: st.configurator.settings.clone(),
                    last_mode1: w.last_mode1[0],
                    mode1_steps: st.mode1_steps,
                    mode2_steps: st.mode2_steps,
                    decisions: st.decisions().to_vec(),
                    short_term: (st.short_term.len(), st.short_term.capacity),
                    landmarks: (st.episodic.landmarks().len(), st.episodic.capacity),
                    loops: st.episodic.loops,
                    waypoint: st.waypoint.is_some(),
                    cost_to_go: self.cost_to_go.clone(),
                }
            }),
            has_critic: matches!(&self.brain, Brain::Model(m) if m.critic.is_some()),
            has_mode1: matches!(&self.brain, Brain::Model(m) if m.mode1.is_some()),
        };
        let _ = self.events.send(Event::Snapshot(Box::new(snapshot)));
    }
}

/// The candidates of a plan's trace worth drawing ([`shown_candidates`]), each imagined again
/// by `rollout` (`(count, actions [count, len, 2]) → states`) and read into positions.
fn drawn_candidates(
    trace: &Trace,
    len: usize,
    rollout: impl FnOnce(usize, &[f32]) -> Vec<f32>,
    positions: impl FnOnce(&[f32]) -> Vec<[f32; 2]>,
) -> Vec<Candidate> {
    let shown = shown_candidates(trace);
    let mut actions = Vec::with_capacity(shown.len() * len * 2);
    for &i in &shown {
        actions.extend_from_slice(&trace.candidates[i * len * 2..(i + 1) * len * 2]);
    }
    let paths = positions(&rollout(shown.len(), &actions));
    shown
        .iter()
        .enumerate()
        .map(|(k, &i)| Candidate {
            path: paths[k * len..(k + 1) * len].to_vec(),
            cost: trace.costs[i],
            elite: trace.elites.contains(&i),
        })
        .collect()
}

/// The candidates worth drawing: the elites, then others spread evenly over the cost ranking.
fn shown_candidates(trace: &Trace) -> Vec<usize> {
    let n = trace.costs.len();
    if n == 0 {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| trace.costs[a].total_cmp(&trace.costs[b]));
    let mut shown: Vec<usize> = trace.elites.iter().copied().take(SHOWN_CANDIDATES / 2).collect();
    let rest = SHOWN_CANDIDATES - shown.len();
    for k in 0..rest {
        let i = order[k * n / rest.max(1)];
        if !shown.contains(&i) {
            shown.push(i);
        }
    }
    shown
}

/// Loads a scene `amisim run` can show (top-down).
pub fn load_top_down(name: &str) -> Result<Scene> {
    let scene = Scene::load(name)?;
    if scene.top_down().is_none() {
        bail!("{name} is a first-person scene: amisim run shows top-down scenes (two_rooms, four_rooms, push_box, …)");
    }
    Ok(scene)
}

fn load_brain(model: &ModelSource, scene: &Scene, device: &Device, status: &dyn Fn(String)) -> Result<Brain> {
    match model {
        ModelSource::Oracle => Ok(Brain::Oracle(SimDynamics { scene: scene.clone() })),
        ModelSource::Checkpoint(path) => {
            status(format!("loading {}", path.display()));
            let ck = load_checkpoint(path, None, device)?;
            let differentiable = load_checkpoint(path, None, &device.clone().autodiff())?.model.predictor;
            // The level-2 model beside the checkpoint, where there is one that fits it.
            let l2_path = default_level2_path(path);
            let level2 = if l2_path.exists() {
                match load_level2(&l2_path, Some(&ck.model), device) {
                    Ok(l2) => Some(l2),
                    Err(e) => {
                        status(format!("level-2 model not used: {e:#}"));
                        None
                    }
                }
            } else {
                None
            };
            status(format!(
                "fitting the position probe ({POSITION_PROBE_EPISODES} random-walk episodes)"
            ));
            let (probe, probe2) = position_probes(&ck.model, level2.as_ref().map(|l| &l.model), scene.name(), device)?;
            // The critic and the mode-1 policy beside the checkpoint, where they fit it.
            let companion = |what: &str| {
                let p = companion_path(path, what);
                if !p.exists() {
                    return None;
                }
                match load_goal_net(&p, what, Some(&ck.model), device) {
                    Ok(x) => Some(x),
                    Err(e) => {
                        status(format!("{what} not used: {e:#}"));
                        None
                    }
                }
            };
            let critic = companion("critic").map(|(n, m)| Critic::new(&n, m.scale, m.distance_per_step));
            let mode1 = companion("mode1").map(|(n, m)| Mode1::new(&n, m.scale));
            let latent = LatentDynamics::new(&ck.model.predictor, Some(differentiable))
                .with_idm(&ck.model.idm)
                .with_critic(critic.clone());
            let level2 = match (level2, probe2) {
                (Some(l2), Some(probe)) => {
                    let (w, b) = l2.model.abstraction_weights();
                    Some(Level2Brain {
                        path: l2_path,
                        k: l2.config.model.k,
                        macro_radius: l2.config.model.macro_radius,
                        high: LatentDynamics::new(&l2.model.predictor, None),
                        w,
                        b,
                        probe,
                    })
                }
                _ => None,
            };
            Ok(Brain::Model(Box::new(Model {
                path: path.clone(),
                step: ck.step,
                jepa: ck.model,
                latent,
                probe,
                level2,
                critic,
                mode1,
            })))
        }
    }
}

/// A landscape to compute.
struct LandscapeJob {
    goal_id: u64,
    scene: Arc<Scene>,
    /// The episode's state (layout, box); the agent is moved over the grid.
    template: EnvState,
    goal: Vec<f32>,
    model: Option<PathBuf>,
    cost: crate::cost::CostConfig,
}

fn landscape_main(jobs: Receiver<LandscapeJob>, events: Sender<Event>) -> Result<()> {
    let device = cpu_device();
    let mut env: Option<(String, VecEnv)> = None;
    let mut model: Option<(PathBuf, crate::world_model::jepa::Jepa)> = None;
    while let Ok(mut job) = jobs.recv() {
        // Only the latest goal matters.
        while let Ok(next) = jobs.try_recv() {
            job = next;
        }
        let t0 = Instant::now();
        let s = job.scene.top_down().expect("top-down scene");
        let n = LANDSCAPE_CELLS;
        let cell = s.size as f32 / n as f32;
        let origin = -0.5;
        let mut states = Vec::with_capacity(n * n);
        let mut free = Vec::with_capacity(n * n);
        for j in 0..n {
            for i in 0..n {
                let mut st = job.template.clone();
                st.agent = Vec2::new(origin + (i as f32 + 0.5) * cell, origin + (j as f32 + 0.5) * cell);
                let blocked = sim::inside_wall(&job.scene, &st)
                    || st.pushable.is_some_and(|b| {
                        let h = s.pushable.as_ref().map_or(0.0, |p| p.half_size);
                        (st.agent - b).abs().max_element() < h
                    });
                free.push(!blocked);
                states.push(st);
            }
        }
        let mut values = vec![f32::NAN; n * n];
        match &job.model {
            None => {
                let sim = SimDynamics {
                    scene: (*job.scene).clone(),
                };
                for (k, st) in states.iter().enumerate() {
                    if free[k] {
                        values[k] = job.cost.dist(&sim.observe(st), &job.goal);
                    }
                }
            }
            Some(path) => {
                if model.as_ref().is_none_or(|(p, _)| p != path) {
                    model = Some((path.clone(), load_checkpoint(path, None, &device)?.model));
                }
                let jepa = &model.as_ref().expect("loaded").1;
                if env.as_ref().is_none_or(|(name, _)| name != job.scene.name()) {
                    // One landscape world at a time: the old one goes first.
                    drop(env.take());
                    env = Some((
                        job.scene.name().to_string(),
                        VecEnv::new((*job.scene).clone(), LANDSCAPE_BATCH)?,
                    ));
                }
                let e = &mut env.as_mut().expect("made").1;
                let cells: Vec<usize> = (0..n * n).filter(|&k| free[k]).collect();
                for chunk in cells.chunks(LANDSCAPE_BATCH) {
                    let mut batch: Vec<EnvState> = chunk.iter().map(|&k| states[k].clone()).collect();
                    while batch.len() < LANDSCAPE_BATCH {
                        batch.push(batch[0].clone());
                    }
                    e.set_states(batch);
                    let obs = e.render()?;
                    let z = encode(jepa, &obs, &device);
                    let d = jepa.latent();
                    for (m, &k) in chunk.iter().enumerate() {
                        values[k] = job.cost.dist(&z[m * d..(m + 1) * d], &job.goal);
                    }
                }
            }
        }
        let _ = events.send(Event::Landscape(Landscape {
            goal_id: job.goal_id,
            n,
            origin,
            cell,
            values,
            ms: t0.elapsed().as_secs_f64() * 1e3,
        }));
    }
    Ok(())
}
