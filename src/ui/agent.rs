//! The agent thread of `amisim run`: it owns an environment and the agent — the same
//! [`Agent`](crate::agent::Agent) `eval` plays, built from a spec — acts at its own pace and
//! sends a snapshot of what it saw, imagined and paid after every step. The window only draws
//! the latest snapshot, so a plan never holds up a frame. A second thread computes the energy
//! landscape of each new goal.

use crate::actor::model::Dynamics;
use crate::actor::planner::{PlannerConfig, Trace};
use crate::agent::{encode, Agent, AgentSpec, Mode, Space};
use crate::agents::{self, Opened};
use crate::checkpoint::{cpu_device, load_checkpoint};
use crate::configurator::{Decision, Settings};
use crate::episode::EpisodeBatch;
use crate::probe::{position_probes, Probes, POSITION_PROBE_EPISODES};
use crate::world::env::env_rng;
use crate::world::oracle::SimDynamics;
use crate::world::sim::{self, EnvState};
use crate::world::{Obs, Scene, VecEnv};
use anyhow::{Context, Result};
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
    /// Act as another agent: a preset of the scene's folder, `default`, `oracle`, or the
    /// agent `amisim run` was started with.
    Agent(String),
    /// Planner settings of the agent's flat planner (level 1's when it plans hierarchically).
    Horizon(usize),
    Samples(usize),
    Iterations(usize),
    StepsPerSecond(f32),
    /// The action of the next step, from the keyboard, instead of the agent's.
    Drive([f32; 2]),
    /// Switch to another (top-down) scene.
    Scene(String),
}

/// Settings of the agent thread.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub scene: String,
    /// The agent, as `--agent` names it (default: the scene's shipped agent).
    pub agent: String,
    /// `KEY=VALUE` overrides of its spec.
    pub sets: Vec<String>,
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

/// What the window shows of the world models an agent plans with.
#[derive(Debug, Clone, Default)]
pub struct ModelsView {
    /// Each model's file name.
    pub names: Vec<String>,
    /// The one planning now.
    pub acting: usize,
    /// How the models plan together, in words (empty for one model).
    pub together: String,
    /// Passes to the next model, and stalls noticed, in this episode.
    pub switches: u32,
    pub stalls: u32,
    /// Directions remembered as blocked where the agent is (unit vectors).
    pub blocked: Vec<[f32; 2]>,
    /// The blocked-move memory is on.
    pub remembers_blocked: bool,
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
    /// The agent: its name, how it acts, and the other agents the menu offers.
    pub agent: String,
    pub mode: Mode,
    pub agents: Vec<String>,
    /// The chosen plan's imagined agent positions (the position probe reads the latents).
    pub plan: Vec<[f32; 2]>,
    pub candidates: Vec<Candidate>,
    pub executed: Vec<[f32; 2]>,
    /// (step, distance between the current and the goal latent).
    pub energy: Vec<[f64; 2]>,
    /// Lowest cost of each iteration of the last plan (level 1's when hierarchical).
    pub iteration_costs: Vec<f32>,
    /// Whether the agent plans hierarchically now; then `planner` is level 1's settings.
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
    /// The world models and what they do.
    pub models: ModelsView,
    /// What the agent plans with, in words.
    pub model: String,
    pub status: String,
    pub paused: bool,
    pub steps_per_second: f32,
    pub plans_made: usize,
    /// The configured agent's state, when it acts.
    pub whole: Option<WholeView>,
    /// Whether the agent has a critic and a mode-1 policy.
    pub has_critic: bool,
    pub has_mode1: bool,
}

/// What the window shows of the configured agent.
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

/// The agent with what the window needs to draw it: its name and spec's source, the probes
/// that read its plans, its first model's file (for the landscape).
struct Acting {
    name: String,
    agent: Agent,
    probes: Probes,
    /// Its model files, entry by entry (empty for the oracle).
    files: Vec<crate::agent::ModelFile>,
}

impl Acting {
    /// The first model's file, where the agent has models.
    fn first_model(&self) -> Option<PathBuf> {
        self.files
            .iter()
            .find(|f| f.entry == "models[0]")
            .map(|f| f.file.clone())
    }

    /// What acts, for the window's header: model files named from the scene's folder
    /// (`assets/<scene>/`) or the current one, never by this machine's absolute paths.
    fn describe(&self, scene: &str) -> String {
        let shown = |p: &std::path::Path| crate::agents::shown_path(p, scene).display().to_string();
        match self.first_model() {
            Some(p) if self.files.iter().filter(|f| f.entry.starts_with("models")).count() > 1 => {
                format!("{} world models, {} first", self.agent.models().len(), shown(&p))
            }
            Some(p) => format!("world model {}", shown(&p)),
            None if self.agent.spec().mode == Mode::Oracle => "the true simulator (oracle)".into(),
            None => "no world model (random actions)".into(),
        }
    }
}

/// The agent's world: the scene, its environment, the agent and the current episode.
struct Runner {
    opts: AgentOptions,
    scene: Arc<Scene>,
    batch: EpisodeBatch,
    acting: Acting,
    device: burn::prelude::Device,
    cost_to_go: Vec<[f64; 2]>,
    high_plan: Vec<[f32; 2]>,
    subgoal: Option<[f32; 2]>,
    high_iteration_costs: Vec<f32>,
    episode: u64,
    goal_id: u64,
    goal_obs: Vec<u8>,
    /// The goal as the energy plot reads it: the first model's latent, or the simulator's
    /// state vector.
    goal: Vec<f32>,
    executed: Vec<[f32; 2]>,
    energy: Vec<[f64; 2]>,
    plan_ms: Vec<[f64; 2]>,
    plan: Vec<[f32; 2]>,
    candidates: Vec<Candidate>,
    iteration_costs: Vec<f32>,
    plans_made: usize,
    /// The last step's action came from mode 1.
    last_mode1: bool,
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
    let mut runner = Runner::load(opts, ltx, events)?;
    runner.new_episode()?;
    let mut next_due = Instant::now();
    let mut step_now = false;
    let mut drive: Option<[f32; 2]> = None;
    loop {
        // Wait for a command until the next step is due (forever while paused).
        let due = !runner.paused && runner.finished_at.is_none();
        let received = if step_now || drive.is_some() {
            commands.try_recv().map_err(|e| match e {
                crossbeam_channel::TryRecvError::Empty => RecvTimeoutError::Timeout,
                crossbeam_channel::TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
            })
        } else if due {
            commands.recv_deadline(next_due)
        } else if let Some(t) = runner.finished_at.filter(|_| !runner.paused) {
            commands.recv_deadline(t + PAUSE_AFTER_EPISODE)
        } else {
            commands.recv().map_err(|_| RecvTimeoutError::Disconnected)
        };
        match received {
            Ok(cmd) => {
                match cmd {
                    Command::Step => step_now = true,
                    Command::Drive(a) => drive = Some(a),
                    other => runner.command(other)?,
                }
                runner.publish();
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
            Err(RecvTimeoutError::Timeout) => {}
        }
        if let Some(t) = runner.finished_at {
            // The episode is over: keys wait for the next one.
            drive = None;
            if runner.paused && !step_now {
                continue;
            }
            if t.elapsed() >= PAUSE_AFTER_EPISODE || step_now {
                runner.episode += 1;
                runner.new_episode()?;
                step_now = false;
                next_due = Instant::now();
            }
            continue;
        }
        if !(step_now || drive.is_some()) && Instant::now() < next_due {
            continue;
        }
        // Keyboard steps come at the same pace as the agent's.
        if drive.is_some() && !step_now && Instant::now() < next_due {
            std::thread::sleep(next_due - Instant::now());
        }
        runner.step(drive.take())?;
        step_now = false;
        next_due = Instant::now() + Duration::from_secs_f32(1.0 / runner.opts.steps_per_second.max(0.1));
        runner.publish();
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

/// Opens agent `name` for `scene` (with `sets` applied where it is the agent the window was
/// started with), fits the probes of its models and builds it for one environment.
fn open(name: &str, sets: &[String], scene: &Scene, status: &dyn Fn(String)) -> Result<Acting> {
    status(format!("loading agent {name}"));
    let Opened {
        name,
        spec,
        models,
        files,
    } = agents::open(&[name.to_string()], scene.name(), sets)?
        .pop()
        .context("an agent")?;
    let world = agents::world(scene)?;
    let agent = Agent::new(spec, models, 1, world).with_context(|| format!("agent {name}"))?;
    let mut probes = Probes::default();
    if agent.spec().learned() {
        status(format!(
            "fitting the position probes ({POSITION_PROBE_EPISODES} random-walk episodes per model)"
        ));
        let device = cpu_device();
        for (i, m) in agent.models().iter().enumerate() {
            let level2 = if i == 0 { agent.level2_model() } else { None };
            let (p, p2) = position_probes(m, level2, scene.name(), &device)?;
            probes.models.push(Some(p));
            if i == 0 {
                probes.level2 = p2;
            }
        }
    }
    let mut agent = agent;
    agent.keep_candidates = true;
    Ok(Acting {
        name,
        agent,
        probes,
        files,
    })
}

impl Runner {
    fn load(opts: AgentOptions, landscape: Sender<LandscapeJob>, events: Sender<Event>) -> Result<Runner> {
        let scene = Arc::new(Scene::load(&opts.scene)?);
        let status = |s: String| {
            let _ = events.send(Event::Status(s));
        };
        status(format!("starting the {} world", scene.name()));
        let batch = EpisodeBatch::new(&scene, 1, scene.episode().max_steps)?;
        let acting = open(&opts.agent, &opts.sets, &scene, &status)?;
        Ok(Runner {
            acting,
            batch,
            device: cpu_device(),
            cost_to_go: Vec::new(),
            high_plan: Vec::new(),
            subgoal: None,
            high_iteration_costs: Vec::new(),
            episode: 0,
            goal_id: 0,
            goal_obs: Vec::new(),
            goal: Vec::new(),
            executed: Vec::new(),
            energy: Vec::new(),
            plan_ms: Vec::new(),
            plan: Vec::new(),
            candidates: Vec::new(),
            iteration_costs: Vec::new(),
            plans_made: 0,
            last_mode1: false,
            status: String::new(),
            paused: false,
            finished_at: None,
            opts,
            scene,
            landscape,
            events,
        })
    }

    /// The agents the menu offers: the one the window started with, the scene's presets, the
    /// oracle.
    fn menu(&self) -> Vec<String> {
        let mut names = vec![self.opts.agent.clone()];
        for n in agents::presets(self.scene.name()) {
            if !names.contains(&n) {
                names.push(n);
            }
        }
        names.push("oracle".into());
        names
    }

    /// The planner settings the sliders edit: level 1's when the agent plans hierarchically.
    fn low_cfg(&self) -> PlannerConfig {
        let spec = self.acting.agent.spec();
        match (spec.mode, &spec.hierarchy) {
            (Mode::Hierarchical, Some(h)) => h.low.clone(),
            _ => spec.planner.clone(),
        }
    }

    /// Rebuilds the agent from `spec` (the same models), for the current episode.
    fn rebuild(&mut self, spec: AgentSpec) -> Result<()> {
        if let Err((field, m)) = spec.validate() {
            self.status = format!("{field}: {m}");
            return Ok(());
        }
        let (models, _) = crate::agent::load_models(&spec, &self.device)?;
        let world = agents::world(&self.scene)?;
        match Agent::new(spec, models, 1, world) {
            Ok(mut a) => {
                a.keep_candidates = true;
                self.acting.agent = a;
                self.acting.agent.reset(0, self.plan_seed());
            }
            Err(e) => self.status = format!("{e:#}"),
        }
        Ok(())
    }

    fn command(&mut self, cmd: Command) -> Result<()> {
        let mut cfg = self.low_cfg();
        match cmd {
            Command::Agent(name) => {
                let send = |s: String| {
                    let _ = self.events.send(Event::Status(s));
                };
                let sets = if name == self.opts.agent {
                    self.opts.sets.clone()
                } else {
                    Vec::new()
                };
                match open(&name, &sets, &self.scene, &send) {
                    Ok(a) => {
                        self.acting = a;
                        self.start_from(self.batch.states()[0].clone())?;
                    }
                    Err(e) => self.status = format!("{e:#}"),
                }
                return Ok(());
            }
            Command::Pause(p) => self.paused = p,
            Command::Reset => {
                self.episode += 1;
                self.new_episode()?;
            }
            Command::Goal(p) => self.set_goal(p)?,
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
        if cfg != self.low_cfg() {
            cfg.replan_every = cfg.replan_every.min(cfg.len());
            let mut spec = self.acting.agent.spec().clone();
            match (spec.mode, spec.hierarchy.as_mut()) {
                (Mode::Hierarchical, Some(h)) => h.low = cfg,
                _ => spec.planner = cfg,
            }
            self.rebuild(spec)?;
        }
        Ok(())
    }

    fn plan_seed(&self) -> u64 {
        self.opts.seed ^ (self.episode + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    fn switch_scene(&mut self, name: &str) -> Result<()> {
        let scene = match Scene::load(name) {
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
        // The same preset there where it has one, else its default agent, else the oracle.
        let offered = agents::presets(name);
        let wanted = if offered.contains(&self.acting.name) {
            self.acting.name.clone()
        } else if offered.iter().any(|n| n == "default") {
            "default".to_string()
        } else {
            "oracle".to_string()
        };
        let acting = open(&wanted, &[], &scene, &send)?;
        self.batch = EpisodeBatch::new(&scene, 1, scene.episode().max_steps)?;
        self.acting = acting;
        self.scene = scene;
        self.opts.scene = name.to_string();
        self.episode = 0;
        self.new_episode()?;
        if wanted == "oracle" {
            self.status = format!("no shipped agent for {name}: planning with the true simulator (oracle)");
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
        let mut state = self.batch.states()[0].clone();
        let mut probe = state.clone();
        probe.agent = p;
        if let Some(b) = probe.pushable.as_mut() {
            *b = p;
            probe.agent = Vec2::new(-100.0, -100.0);
        }
        let size = self.scene.size();
        if p.x < 0.0 || p.y < 0.0 || p.x > size || p.y > size || sim::inside_wall(&self.scene, &probe) {
            self.status = format!("({:.1}, {:.1}) is not a free position: goal unchanged", p.x, p.y);
            return Ok(());
        }
        if let Some(fp) = self.scene.first_person() {
            // First-person: the object nearest the click becomes the goal, seen from the
            // click's side of it.
            let (k, o) = fp
                .objects
                .iter()
                .enumerate()
                .min_by(|a, b| p.distance(a.1.centre()).total_cmp(&p.distance(b.1.centre())))
                .expect("a first-person scene has objects");
            let side = p - o.centre();
            let (pose, heading) = sim::goal_pose(fp, k, side.y.atan2(side.x));
            let mut at = state.clone();
            at.agent = pose;
            if sim::inside_wall(&self.scene, &at) {
                self.status = format!("{} cannot be seen from that side: goal unchanged", o.name);
                return Ok(());
            }
            state.goal = pose;
            state.goal_heading = heading;
            state.goal_object = Some(k);
            state.steps = 0;
            return self.start_from(state);
        }
        state.goal = p;
        state.steps = 0;
        self.start_from(state)
    }

    fn start_from(&mut self, state: EnvState) -> Result<()> {
        self.batch.begin_from(vec![state.clone()])?;
        self.goal_obs = rgba(&self.batch.goal_obs, 0);
        self.goal = self.perceive(true);
        self.acting.agent.reset(0, self.plan_seed());
        self.high_plan.clear();
        self.subgoal = None;
        self.high_iteration_costs.clear();
        self.cost_to_go.clear();
        self.goal_id += 1;
        self.executed = vec![[state.agent.x, state.agent.y]];
        self.energy.clear();
        self.plan_ms.clear();
        self.plan.clear();
        self.candidates.clear();
        self.iteration_costs.clear();
        self.finished_at = None;
        self.status = match self.scene.first_person() {
            Some(fp) => format!(
                "episode {}: go to the {} — {}",
                self.episode,
                fp.objects[state.goal_object.unwrap_or(0)].name,
                self.acting.name
            ),
            None => format!(
                "episode {}: go to ({:.0}, {:.0}) — {}",
                self.episode, state.goal.x, state.goal.y, self.acting.name
            ),
        };
        self.record_energy();
        let _ = self.landscape.send(LandscapeJob {
            goal_id: self.goal_id,
            scene: self.scene.clone(),
            template: state,
            goal: self.goal.clone(),
            model: self.acting.first_model(),
            cost: self.acting.agent.spec().planner.cost.clone(),
        });
        self.publish();
        Ok(())
    }

    /// The current observation (or, with `goal`, the goal) as the energy plot reads it: the
    /// first model's latent, or the simulator's state vector.
    fn perceive(&self, goal: bool) -> Vec<f32> {
        let (obs, truth) = if goal {
            (self.batch.goals(), &self.batch.goal_states[0])
        } else {
            (self.batch.observations(), &self.batch.states()[0])
        };
        match self.acting.agent.models().first() {
            Some(m) => encode(m, &obs, &self.device),
            None => SimDynamics {
                scene: (*self.scene).clone(),
            }
            .observe(truth),
        }
    }

    /// Records the current distance to the goal (and the critic's cost-to-go).
    fn record_energy(&mut self) {
        let z = self.perceive(false);
        let t = self.batch.states()[0].steps as f64;
        let cost = &self.acting.agent.spec().planner.cost;
        self.energy.push([t, cost.dist(&z, &self.goal) as f64]);
        if let Some(c) = self
            .acting
            .agent
            .critic()
            .filter(|_| self.acting.agent.spec().mode == Mode::Configured)
        {
            self.cost_to_go.push([t, c.steps(&z, &self.goal, 1)[0] as f64]);
        }
    }

    fn step(&mut self, drive: Option<[f32; 2]>) -> Result<()> {
        let action = match drive {
            Some(a) => {
                self.acting.agent.interrupt(0);
                a
            }
            None => {
                let (actions, trace) = self
                    .acting
                    .agent
                    .act(&self.batch.observations(), &self.batch.goals(), &[0])?;
                if trace.planned && self.acting.agent.spec().mode != Mode::Random {
                    let ms = trace.plan_ms / trace.covers.max(1) as f64;
                    self.plan_ms.push([self.batch.states()[0].steps as f64, ms]);
                }
                self.last_mode1 = trace.envs[0].mode1;
                self.read(&trace.envs[0]);
                actions[0]
            }
        };
        let (infos, _) = self.batch.step(&[action])?;
        let s = &self.batch.states()[0];
        self.executed.push([s.agent.x, s.agent.y]);
        self.record_energy();
        let info = &infos[0];
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

    /// Reads what the agent did: its new plans and their candidates, as positions.
    fn read(&mut self, e: &crate::agent::EnvTrace) {
        let probes = &self.acting.probes;
        if let Some(high) = &e.high_plan {
            self.high_plan = probes.path(high, Space::Level2);
            self.high_iteration_costs = high.trace.as_ref().map_or(Vec::new(), |t| t.best_per_iteration.clone());
        }
        let hierarchical = match self.acting.agent.spec().mode {
            Mode::Hierarchical => true,
            Mode::Configured => self.acting.agent.plans(0).is_some_and(|p| p.high.is_some()),
            _ => false,
        };
        if !hierarchical {
            self.high_plan.clear();
            self.high_iteration_costs.clear();
        }
        self.subgoal = self
            .acting
            .agent
            .subgoal(0)
            .filter(|_| hierarchical)
            .and_then(|g| probes.path_of_states(g, 1, Space::Level2).first().copied());
        let Some(plan) = &e.plan else { return };
        self.plans_made += 1;
        self.plan = probes.path(plan, e.space);
        let Some(trace) = &plan.trace else { return };
        self.iteration_costs = trace.best_per_iteration.clone();
        let len = plan.actions.len() / 2;
        let dim = (plan.imagined.len() / len.max(1)).max(1);
        let agent = &self.acting.agent;
        let state = &self.batch.states()[0];
        let scene = &self.scene;
        self.candidates = drawn_candidates(
            trace,
            len,
            |n, a| match (e.space, agent.imagine(0, a, n, len)) {
                (_, Some(states)) => states,
                // The oracle's candidates, imagined again with the simulator from here.
                (Space::Simulator, None) => SimDynamics {
                    scene: (**scene).clone(),
                }
                .rollout(std::slice::from_ref(state), n, a, len),
                (_, None) => Vec::new(),
            },
            |states| probes.path_of_states(states, states.len() / dim, e.space),
        );
    }

    fn publish(&self) {
        let side = self.batch.obs.shape[2];
        let agent = &self.acting.agent;
        let spec = agent.spec();
        let state = agent.state(0);
        let hierarchical = match spec.mode {
            Mode::Hierarchical => true,
            Mode::Configured => state.is_some_and(|s| s.configurator.settings.hierarchical),
            _ => false,
        };
        let names: Vec<String> = self
            .acting
            .files
            .iter()
            .filter(|f| f.entry.starts_with("models"))
            .map(|f| {
                f.file
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
            })
            .collect();
        let stats = agent.episode(0);
        let snapshot = Snapshot {
            scene: self.scene.clone(),
            state: self.batch.states()[0].clone(),
            episode: self.episode,
            goal_id: self.goal_id,
            side,
            obs: rgba(&self.batch.obs, 0),
            goal_obs: self.goal_obs.clone(),
            agent: self.acting.name.clone(),
            mode: spec.mode,
            agents: self.menu(),
            plan: self.plan.clone(),
            candidates: self.candidates.clone(),
            executed: self.executed.clone(),
            energy: self.energy.clone(),
            iteration_costs: self.iteration_costs.clone(),
            hierarchical,
            high_plan: self.high_plan.clone(),
            subgoal: self.subgoal,
            high_iteration_costs: self.high_iteration_costs.clone(),
            plan_ms: self.plan_ms.clone(),
            planner: self.low_cfg(),
            models: ModelsView {
                names,
                acting: agent.acting_model(0),
                together: match spec.together {
                    Some(crate::agent::Together::Switch { after }) => {
                        format!("taking turns: the next plans after {after} steps without progress")
                    }
                    Some(crate::agent::Together::Ensemble) => "as an ensemble: every plan scored by all".into(),
                    None => String::new(),
                },
                switches: stats.switches,
                stalls: stats.stalls,
                blocked: agent.blocked_here(0),
                remembers_blocked: spec.blocked > 0.0,
            },
            model: self.acting.describe(&self.opts.scene),
            status: self.status.clone(),
            paused: self.paused,
            steps_per_second: self.opts.steps_per_second,
            plans_made: self.plans_made,
            whole: state.map(|st| WholeView {
                settings: st.configurator.settings.clone(),
                last_mode1: self.last_mode1,
                mode1_steps: st.mode1_steps,
                mode2_steps: st.mode2_steps,
                decisions: st.decisions().to_vec(),
                short_term: (st.short_term.len(), st.short_term.capacity),
                landmarks: (st.episodic.landmarks().len(), st.episodic.capacity),
                loops: st.episodic.loops,
                waypoint: st.waypoint.is_some(),
                cost_to_go: self.cost_to_go.clone(),
            }),
            has_critic: agent.critic().is_some(),
            has_mode1: spec.mode1.is_some(),
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
    if paths.len() < shown.len() * len {
        return Vec::new();
    }
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
        let n = LANDSCAPE_CELLS;
        // Top-down arenas span pixel centres -0.5 .. size - 0.5; first-person rooms 0 .. size.
        let origin = if job.scene.top_down().is_some() { -0.5 } else { 0.0 };
        let cell = job.scene.size() / n as f32;
        let mut states = Vec::with_capacity(n * n);
        let mut free = Vec::with_capacity(n * n);
        for j in 0..n {
            for i in 0..n {
                let mut st = job.template.clone();
                st.agent = Vec2::new(origin + (i as f32 + 0.5) * cell, origin + (j as f32 + 0.5) * cell);
                let blocked = sim::inside_wall(&job.scene, &st)
                    || st.pushable.is_some_and(|b| {
                        let h = job
                            .scene
                            .top_down()
                            .and_then(|s| s.pushable.as_ref())
                            .map_or(0.0, |p| p.half_size);
                        (st.agent - b).abs().max_element() < h
                    })
                    || job.scene.first_person().is_some_and(|s| {
                        // Inside an object; elsewhere the agent looks at the goal object (a
                        // first-person view depends on where it faces).
                        s.objects
                            .iter()
                            .any(|o| st.agent.distance(o.centre()) < o.radius + s.agent.radius)
                    });
                if let Some(s) = job.scene.first_person() {
                    let o = &s.objects[st.goal_object.unwrap_or(0)];
                    let to = o.centre() - st.agent;
                    st.heading = to.y.atan2(to.x);
                }
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
                    let z = encode(jepa, &obs.view(), &device);
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
