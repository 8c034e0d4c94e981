//! The agent: one object that acts. Built from an [`AgentSpec`] and the model files it names
//! (or models in memory), it takes a batch of observations and goal observations each step and
//! returns actions and a [`Trace`] of what it did. Everything that decides an action lives
//! behind [`Agent::act`]: encoding, the planner, which world model plans (and the switch to the
//! next when one stalls), the moves the world did not let happen, the hierarchy, the critic,
//! mode 1 and the configurator's choices. `eval`, `run` and mode-1 distillation all drive this
//! same object.
//!
//! ```text
//! let mut agent = Agent::new(spec, models, envs, world)?;
//! agent.reset(i, seed);                              // a new episode in environment i
//! let (actions, trace) = agent.act(&obs, &goals, &active)?;
//! ```

pub mod configured;
mod flat;
pub mod load;
pub mod spec;

pub use configured::{AgentState, PlansView};
pub use load::{load_models, ModelFile};
pub use spec::{AgentSpec, Mode, Mode1Check, PredictorKind, Together, SPEC_FILE};

use crate::actor::hierarchy::HierMpc;
use crate::actor::mode1::Mode1;
use crate::actor::model::{Abstracted, Dynamics, LatentDynamics};
use crate::actor::planner::{project, Plan};
use crate::actor::Mpc;
use crate::configurator::{Available, Decision, Task};
use crate::cost::critic::Critic;
use crate::world_model::jepa::Jepa;
use crate::world_model::level2::{Level2, Level2Config};
use anyhow::{bail, Result};
use burn::prelude::*;
use configured::{AgentModels, Configured};
use flat::Flat;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

/// A batch of observations: frames `[n, c, h, w]` (bytes, 0–255), and the true states behind
/// them as the world keeps them, which only an oracle agent reads.
#[derive(Clone, Copy)]
pub struct Observations<'a> {
    pub frames: &'a [u8],
    pub shape: [usize; 4],
    pub truth: Option<&'a (dyn Any + Sync)>,
}

impl<'a> Observations<'a> {
    /// Environment `i`'s frame.
    pub fn frame(&self, i: usize) -> &'a [u8] {
        let len = self.shape[1] * self.shape[2] * self.shape[3];
        &self.frames[i * len..(i + 1) * len]
    }

    /// The frames as a tensor `[n, c, h, w]` in `0..=1`.
    pub fn tensor(&self, device: &Device) -> Tensor<4> {
        let frames: Vec<f32> = self.frames.iter().map(|&v| v as f32 / 255.0).collect();
        Tensor::<4>::from_data(TensorData::new(frames, self.shape), device)
    }
}

/// Latents of every frame of an observation batch, `[n, d]` row-major.
pub fn encode(model: &Jepa, obs: &Observations, device: &Device) -> Vec<f32> {
    counted(crate::values(model.encode(obs.tensor(device))))
}

/// `model`'s open-loop prediction from latents `z` `[b, d]` under `actions` `[b, steps, 2]`:
/// `[b, steps, d]` row-major, step k the latent after action k.
pub fn predict(model: &Jepa, z: &[f32], actions: &[f32], b: usize, steps: usize, device: &Device) -> Vec<f32> {
    let d = model.latent();
    let z0 = Tensor::<2>::from_data(TensorData::new(z.to_vec(), [b, d]), device);
    let a = Tensor::<3>::from_data(TensorData::new(actions.to_vec(), [b, steps, 2]), device);
    crate::values(model.predictor.rollout(z0, a))
}

thread_local! {
    /// Non-finite values the encoder has produced on this thread (see [`Agent::act`]).
    static NON_FINITE: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// `v`, its non-finite values counted (the agent checks the count after each step).
fn counted(v: Vec<f32>) -> Vec<f32> {
    let bad = v.iter().filter(|x| !x.is_finite()).count() as u64;
    if bad > 0 {
        NON_FINITE.with(|c| c.set(c.get() + bad));
    }
    v
}

/// The encoder's spatial states of every frame, `[n, c, s, s]` row-major (empty for a model
/// without a spatial predictor).
pub fn encode_maps(model: &Jepa, obs: &Observations, device: &Device) -> Vec<f32> {
    encode_with_maps(model, obs, device).1
}

/// The latents and the spatial states of an observation batch from one pass of the encoder
/// (the maps empty for a model without a spatial predictor).
pub fn encode_with_maps(model: &Jepa, obs: &Observations, device: &Device) -> (Vec<f32>, Vec<f32>) {
    match model.encoder.forward_with_map(obs.tensor(device)) {
        (z, Some(map)) => (counted(crate::values(z)), counted(crate::values(map))),
        (z, None) => (counted(crate::values(z)), Vec::new()),
    }
}

/// Actions of the environments that acted (by index), and whether any plan was made.
pub type Decided = (Vec<(usize, [f32; 2])>, bool);

/// The true world as planning dynamics, for the oracle. The world implements it: the states in
/// [`Observations::truth`] are its own.
pub trait Simulator: Send + Sync {
    /// Plans with `mpc` for the environments `active` from the true states `truth` toward the
    /// goal states `goals` (both as the world passes them); returns the actions and whether
    /// any planning happened.
    fn act(&self, mpc: &mut Mpc, truth: &dyn Any, goals: &dyn Any, active: &[usize], trace: bool) -> Result<Decided>;
}

/// What the agent needs to know of the world it acts in.
#[derive(Clone)]
pub struct World {
    /// The task, as the configurator reads it.
    pub task: Task,
    /// The largest step the world takes (the random baseline's action ball).
    pub max_step: f32,
    /// The true simulator (the oracle plans with it).
    pub simulator: Option<Arc<dyn Simulator>>,
}

/// The models an agent acts with: loaded from a spec's files ([`load_models`]) or built in
/// memory.
pub struct Models {
    /// Level-1 world models; the first is the agent's own.
    pub members: Vec<Jepa>,
    /// The first model's predictor on an autodiff device (the gradient planner).
    pub differentiable: Option<crate::world_model::Predictor>,
    pub level2: Option<(Level2, Level2Config)>,
    pub critic: Option<Critic>,
    pub mode1: Option<Mode1>,
}

impl Models {
    /// No models (the random and oracle baselines).
    pub fn none() -> Models {
        Models {
            members: Vec::new(),
            differentiable: None,
            level2: None,
            critic: None,
            mode1: None,
        }
    }
}

/// The space a plan's imagined states are in, so that a probe can read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Space {
    /// Model `m`'s latents (a spatial rollout's read-out; an ensemble's members end to end,
    /// the first's first; keypoints after the latent where joined).
    Latent(usize),
    /// Level-2 states.
    Level2,
    /// The simulator's states: positions in pixels (agent, then box).
    Simulator,
}

impl Default for Space {
    fn default() -> Self {
        Space::Latent(0)
    }
}

/// What the agent did in one environment at one step.
#[derive(Debug, Clone, Default)]
pub struct EnvTrace {
    /// The world model that acted (its index in `models`).
    pub model: usize,
    /// The action came from mode 1.
    pub mode1: bool,
    /// The plan made at this step (flat, or level 1 of the hierarchy), and the space of its
    /// imagined states.
    pub plan: Option<Plan>,
    pub space: Space,
    /// The level-2 plan made at this step.
    pub high_plan: Option<Plan>,
    /// It passed to another world model at this step.
    pub switched: bool,
    /// It found itself stuck where its last plan imagined it moving.
    pub stalled: bool,
}

/// What the agent did at one step.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    /// One per environment (default for those not acting).
    pub envs: Vec<EnvTrace>,
    /// Time spent encoding observations, and deciding (planning, mode 1), in ms.
    pub encode_ms: f64,
    pub plan_ms: f64,
    /// Whether anything was planned (or, for mode 1 and the configured agent, decided).
    pub planned: bool,
    /// Environment steps a plan made now covers (its `replan_every`; 1 for per-step deciders).
    pub covers: usize,
}

/// One environment's episode so far, for reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EpisodeStats {
    pub mode1_steps: u32,
    pub mode2_steps: u32,
    /// Passes to another world model.
    pub switches: u32,
    /// Replans that found the agent stuck where its last plan imagined it moving.
    pub stalls: u32,
    /// Loops the episodic memory recognised, and the configurator's decisions.
    pub loops: u32,
    pub decisions: Vec<Decision>,
}

/// Level 2: its predictor as dynamics and the abstraction `z ↦ z·W + b`.
struct Level2Parts {
    model: Level2,
    high: LatentDynamics,
    w: Vec<f32>,
    b: Vec<f32>,
    cfg: Level2Config,
}

impl Level2Parts {
    fn low<'a>(&self, latent: &'a LatentDynamics) -> Abstracted<'a, LatentDynamics> {
        Abstracted::new(latent, self.w.clone(), self.b.clone())
    }
}

/// How actions are chosen, with the state each way keeps.
enum Brain {
    Random(Vec<ChaCha8Rng>),
    Oracle(Box<Mpc>, Arc<dyn Simulator>),
    Flat(Box<Flat>),
    Hierarchical(Box<HierMpc>),
    Mode1,
    Configured(Box<Configured>),
}

/// The agent acting in `n` environments side by side (see the module documentation).
pub struct Agent {
    spec: AgentSpec,
    n: usize,
    members: Vec<Jepa>,
    /// The first model's latent predictor (with its inverse-dynamics head and the critic).
    latent: Option<LatentDynamics>,
    level2: Option<Level2Parts>,
    critic: Option<Critic>,
    mode1: Option<Mode1>,
    world: World,
    brain: Brain,
    /// Per environment: steps since its reset, the goal frame its goal latents were made of.
    steps: Vec<u32>,
    goal_frames: Vec<Vec<u8>>,
    /// The first model's latents of the goals (`[n, latent]`), where the brain reads them.
    goal_latents: Vec<f32>,
    /// The first model's latent of each environment's observation when last encoded (the
    /// start of its latest plan, for [`Agent::imagine`]).
    last_latent: Vec<Option<Vec<f32>>>,
    stats: Vec<EpisodeStats>,
    device: Device,
    /// Keep the planners' candidates and costs in the plans of the trace (for display).
    pub keep_candidates: bool,
}

impl Agent {
    /// An agent of `spec` acting in `n` environments with `models`. Checks that the models fit
    /// the spec (and each other); the error names the entry at fault.
    pub fn new(spec: AgentSpec, models: Models, n: usize, world: World) -> Result<Agent> {
        if n == 0 {
            bail!("an agent acts in at least one environment");
        }
        let Models {
            members,
            differentiable,
            level2,
            critic,
            mode1,
        } = models;
        spec.validate_with(members.len())
            .map_err(|(field, m)| anyhow::anyhow!("agent spec, {field}: {m}"))?;
        if spec.learned() && members.is_empty() {
            bail!(
                "agent spec, models: {:?} acts with a world model and none was given",
                spec.mode
            );
        }
        if !spec.models.is_empty() && spec.models.len() != members.len() {
            bail!(
                "agent spec, models: it names {} models, {} were given",
                spec.models.len(),
                members.len()
            );
        }
        for (entry, needed, given) in [
            (
                "level2",
                spec.mode == Mode::Hierarchical || spec.level2.is_some(),
                level2.is_some(),
            ),
            (
                "critic",
                spec.critic.is_some() || (spec.mode == Mode::Plan && spec.planner.cost.critic != 0.0),
                critic.is_some(),
            ),
            (
                "mode1",
                spec.mode == Mode::Mode1 || spec.mode1.is_some(),
                mode1.is_some(),
            ),
        ] {
            if needed && !given {
                bail!("agent spec, {entry}: the agent needs this model, and none was given");
            }
        }
        let latent = members.first().map(|m| {
            LatentDynamics::new(&m.predictor, differentiable.clone())
                .with_idm(&m.idm)
                .with_critic(critic.clone())
        });
        let level2 = level2.map(|(model, cfg)| {
            let (w, b) = model.abstraction_weights();
            Level2Parts {
                high: LatentDynamics::new(&model.predictor, None),
                model,
                w,
                b,
                cfg,
            }
        });
        let mut spec = spec;
        if spec.models.is_empty() {
            // Models given in memory: the resolved spec says so.
            spec.models = (0..members.len())
                .map(|i| format!("(model {i}, in memory)").into())
                .collect();
        }
        if spec.hierarchy.is_none() && matches!(spec.mode, Mode::Hierarchical | Mode::Configured) {
            spec.hierarchy = level2
                .as_ref()
                .map(|l| crate::actor::hierarchy::HierarchyConfig::default_for(l.cfg.k, l.cfg.macro_radius));
        }
        if let (Some(h), Some(l)) = (&spec.hierarchy, &level2) {
            if h.k != l.cfg.k {
                bail!(
                    "agent spec, hierarchy.k: {} but the level-2 model jumps k = {} steps",
                    h.k,
                    l.cfg.k
                );
            }
        }
        let seeds = vec![0u64; n];
        let brain = match spec.mode {
            Mode::Random => Brain::Random(seeds.iter().map(|&s| ChaCha8Rng::seed_from_u64(s)).collect()),
            Mode::Oracle => {
                let Some(sim) = world.simulator.clone() else {
                    bail!("the oracle plans with the true simulator, and this world gave none");
                };
                Brain::Oracle(Box::new(Mpc::new(spec.planner.clone(), &seeds)), sim)
            }
            Mode::Plan => Brain::Flat(Box::new(Flat::new(
                &spec,
                &members,
                critic.as_ref(),
                differentiable,
                &seeds,
            )?)),
            Mode::Hierarchical => {
                let h = spec.hierarchy.clone().expect("the level-2 model gives the defaults");
                Brain::Hierarchical(Box::new(HierMpc::new(h, &seeds)))
            }
            Mode::Mode1 => Brain::Mode1,
            Mode::Configured => {
                let available = Available {
                    critic: critic.is_some(),
                    level2: level2.is_some(),
                    mode1: mode1.is_some(),
                };
                Brain::Configured(Box::new(Configured::new(&spec, &world.task, available, &seeds)))
            }
        };
        let device = crate::checkpoint::cpu_device();
        Ok(Agent {
            n,
            members,
            latent,
            level2,
            critic,
            mode1,
            brain,
            steps: vec![0; n],
            goal_frames: vec![Vec::new(); n],
            goal_latents: Vec::new(),
            last_latent: vec![None; n],
            stats: vec![EpisodeStats::default(); n],
            device,
            keep_candidates: false,
            world,
            spec,
        })
    }

    /// The spec, as resolved (the hierarchy's defaults filled in).
    pub fn spec(&self) -> &AgentSpec {
        &self.spec
    }

    /// Environments it acts in.
    pub fn envs(&self) -> usize {
        self.n
    }

    /// Its world models (the first is its own).
    pub fn models(&self) -> &[Jepa] {
        &self.members
    }

    /// Its level-2 model's `k`, where it has one.
    pub fn level2_k(&self) -> Option<usize> {
        self.level2.as_ref().map(|l| l.cfg.k)
    }

    /// Its level-2 model, where it has one.
    pub fn level2_model(&self) -> Option<&Level2> {
        self.level2.as_ref().map(|l| &l.model)
    }

    /// Its critic, where it has one.
    pub fn critic(&self) -> Option<&Critic> {
        self.critic.as_ref()
    }

    /// Starts a new episode in environment `i`: its plans, memories and counters are
    /// forgotten, and every random draw of its episode comes from `seed`.
    pub fn reset(&mut self, i: usize, seed: u64) {
        self.steps[i] = 0;
        self.stats[i] = EpisodeStats::default();
        self.goal_frames[i].clear();
        match &mut self.brain {
            Brain::Random(rngs) => rngs[i] = ChaCha8Rng::seed_from_u64(seed),
            Brain::Oracle(mpc, _) => mpc.reset(i, seed),
            Brain::Flat(f) => f.reset(i, seed),
            Brain::Hierarchical(h) => h.reset(i, seed),
            Brain::Mode1 => {}
            Brain::Configured(c) => c.reset(i, seed, &self.world.task),
        }
    }

    /// Drops the rest of environment `i`'s current plans (its next action is planned afresh):
    /// for actions overridden from outside, or a teacher asked for a fresh label.
    pub fn interrupt(&mut self, i: usize) {
        match &mut self.brain {
            Brain::Oracle(mpc, _) => mpc.interrupt(i),
            Brain::Flat(f) => f.mpc.interrupt(i),
            Brain::Hierarchical(h) => h.interrupt(i),
            Brain::Configured(c) => c.interrupt(i),
            Brain::Random(_) | Brain::Mode1 => {}
        }
    }

    /// The next action of each environment in `active` (others get `[0, 0]`), from the
    /// observations `obs` and the goal observations `goals` (both `[n, c, h, w]`), and what it
    /// did. A goal is encoded when its frame changes.
    pub fn act(
        &mut self,
        obs: &Observations,
        goals: &Observations,
        active: &[usize],
    ) -> Result<(Vec<[f32; 2]>, Trace)> {
        let n = self.n;
        if obs.shape[0] != n || goals.shape[0] != n {
            bail!(
                "the agent acts in {n} environments; got {} observations and {} goals",
                obs.shape[0],
                goals.shape[0]
            );
        }
        if let Some(&i) = active.iter().find(|&&i| i >= n) {
            bail!("environment {i} is not one of the agent's {n}");
        }
        let mut trace = Trace {
            envs: vec![EnvTrace::default(); n],
            covers: 1,
            ..Default::default()
        };
        let non_finite = NON_FINITE.with(|c| c.get());
        if self.spec.learned() {
            self.update_goals(goals);
        }
        let keep = self.keep_candidates;
        let device = self.device.clone();
        let mut actions = vec![[0.0f32; 2]; n];
        let decided: Vec<(usize, [f32; 2])> = match &mut self.brain {
            Brain::Random(rngs) => {
                let m = self.world.max_step;
                for &i in active {
                    let mut a = [rngs[i].random_range(-m..=m), rngs[i].random_range(-m..=m)];
                    project(&mut a, m);
                    actions[i] = a;
                }
                Vec::new()
            }
            Brain::Oracle(mpc, sim) => {
                let (Some(truth), Some(goal_truth)) = (obs.truth, goals.truth) else {
                    bail!("the oracle reads the true states: the observations carry none");
                };
                let t1 = Instant::now();
                let (acts, planned) = sim.act(mpc, truth, goal_truth, active, keep)?;
                trace.plan_ms = t1.elapsed().as_secs_f64() * 1e3;
                trace.planned = planned;
                trace.covers = mpc.cfg.replan_every;
                for &i in active.iter().filter(|&&i| mpc.planned_at_last_act(i)) {
                    trace.envs[i].plan = mpc.last[i].clone();
                    trace.envs[i].space = Space::Simulator;
                }
                acts
            }
            Brain::Flat(f) => f.act(&self.members, obs, active, &self.steps, keep, &device, &mut trace),
            Brain::Hierarchical(hier) => {
                let (model, latent) = (&self.members[0], self.latent.as_ref().expect("a model"));
                let l2 = self.level2.as_ref().expect("checked at build");
                let low = l2.low(latent);
                let high_due: Vec<usize> = active.iter().copied().filter(|&i| hier.needs_high(i)).collect();
                let (zs, z2s): (Vec<Vec<f32>>, Vec<Vec<f32>>) = if active.iter().any(|&i| hier.needs_plan(i)) {
                    let t0 = Instant::now();
                    let z = encode(model, obs, &device);
                    trace.encode_ms = t0.elapsed().as_secs_f64() * 1e3;
                    let zs = split_rows(&z, model.latent());
                    for &i in active {
                        self.last_latent[i] = Some(zs[i].clone());
                    }
                    (zs, split_rows(&low.map(&z), l2.high.dim()))
                } else {
                    (vec![Vec::new(); n], vec![Vec::new(); n])
                };
                let goals_high = low.map(&self.goal_latents);
                let t1 = Instant::now();
                let (acts, planned) = hier.act(&l2.high, &low, &z2s, &zs, &goals_high, active, keep);
                trace.plan_ms = t1.elapsed().as_secs_f64() * 1e3;
                trace.planned = planned;
                trace.covers = hier.cfg.low.replan_every;
                for &i in &high_due {
                    trace.envs[i].high_plan = hier.last_high[i].clone();
                }
                for &i in active.iter().filter(|&&i| hier.low.planned_at_last_act(i)) {
                    trace.envs[i].plan = hier.low.last[i].clone();
                    trace.envs[i].space = Space::Level2;
                }
                for &i in active {
                    self.stats[i].mode2_steps += 1;
                }
                acts
            }
            Brain::Mode1 => {
                let model = &self.members[0];
                let pi = self.mode1.as_ref().expect("checked at build");
                let t0 = Instant::now();
                let z = encode(model, obs, &device);
                trace.encode_ms = t0.elapsed().as_secs_f64() * 1e3;
                let d = model.latent();
                let t1 = Instant::now();
                let a = pi.act(
                    &crate::gather_rows(&z, d, active),
                    &crate::gather_rows(&self.goal_latents, d, active),
                    active.len(),
                );
                trace.plan_ms = t1.elapsed().as_secs_f64() * 1e3;
                trace.planned = true;
                for &i in active {
                    self.stats[i].mode1_steps += 1;
                    trace.envs[i].mode1 = true;
                }
                active
                    .iter()
                    .enumerate()
                    .map(|(k, &i)| (i, [a[2 * k], a[2 * k + 1]]))
                    .collect()
            }
            Brain::Configured(c) => {
                let model = &self.members[0];
                let latent = self.latent.as_ref().expect("a model");
                let t0 = Instant::now();
                let z = encode(model, obs, &device);
                trace.encode_ms = t0.elapsed().as_secs_f64() * 1e3;
                let d = model.latent();
                let zs: Vec<Vec<f32>> = (0..n)
                    .map(|i| {
                        if active.contains(&i) {
                            z[i * d..(i + 1) * d].to_vec()
                        } else {
                            Vec::new()
                        }
                    })
                    .collect();
                for &i in active {
                    self.last_latent[i] = Some(zs[i].clone());
                }
                let low = self.level2.as_ref().map(|l| l.low(latent));
                let models = AgentModels {
                    latent,
                    critic: self.critic.as_ref(),
                    mode1: self.mode1.as_ref(),
                    level2: self.level2.as_ref().zip(low.as_ref()).map(|(l, low)| (&l.high, low)),
                };
                c.trace = keep;
                let t1 = Instant::now();
                let acts = c.act(&models, &zs, &self.goal_latents);
                trace.plan_ms = t1.elapsed().as_secs_f64() * 1e3;
                trace.planned = true;
                for &i in active {
                    let e = &mut trace.envs[i];
                    e.mode1 = c.last_mode1[i];
                    if let Some((plan, space, high)) = c.planned_now(i) {
                        e.plan = plan;
                        e.space = space;
                        e.high_plan = high;
                    }
                    let s = &c.states[i];
                    self.stats[i] = EpisodeStats {
                        mode1_steps: s.mode1_steps,
                        mode2_steps: s.mode2_steps,
                        loops: s.episodic.loops,
                        decisions: s.decisions().to_vec(),
                        ..Default::default()
                    };
                }
                acts
            }
        };
        if let Brain::Flat(f) = &self.brain {
            for &i in active {
                let s = &mut self.stats[i];
                s.switches = f.switches(i);
                s.stalls = f.stalls(i);
                s.mode2_steps += 1;
            }
        }
        if let Brain::Oracle(..) = &self.brain {
            for &i in active {
                self.stats[i].mode2_steps += 1;
            }
        }
        // NaN or ∞ in what the models saw or chose is an error, never passed to the world.
        let encoded = NON_FINITE.with(|c| c.get()) - non_finite;
        if encoded > 0 {
            bail!(
                "the world model encoded {encoded} non-finite value(s) (NaN or ∞) from this step's observations or goals; \
                 its weights or the input statistics in its model file are broken"
            );
        }
        for (i, a) in decided {
            if !(a[0].is_finite() && a[1].is_finite()) {
                bail!("environment {i}: the agent chose a non-finite action {a:?} (its models imagined NaN or ∞)");
            }
            actions[i] = a;
        }
        for &i in active {
            self.steps[i] += 1;
        }
        Ok((actions, trace))
    }

    /// Encodes the goals whose frames changed since the last call (all of them at once, as a
    /// batch): the brain's goal views and the first model's goal latents.
    fn update_goals(&mut self, goals: &Observations) {
        let changed = (0..self.n).any(|i| self.goal_frames[i] != goals.frame(i));
        if !changed {
            return;
        }
        for i in 0..self.n {
            self.goal_frames[i].clear();
            self.goal_frames[i].extend_from_slice(goals.frame(i));
        }
        if let Brain::Flat(f) = &mut self.brain {
            f.set_goals(&self.members, goals, &self.device);
        }
        self.goal_latents = encode(&self.members[0], goals, &self.device);
    }

    /// Environment `i`'s episode so far.
    pub fn episode(&self, i: usize) -> &EpisodeStats {
        &self.stats[i]
    }

    /// The configured agent's state of environment `i` (configurator, memories), where the
    /// agent is configured.
    pub fn state(&self, i: usize) -> Option<&AgentState> {
        match &self.brain {
            Brain::Configured(c) => Some(&c.states[i]),
            _ => None,
        }
    }

    /// Replaces the configured agent's state of environment `i` (as saved by
    /// [`AgentState::save`]).
    pub fn set_state(&mut self, i: usize, state: AgentState) -> Result<()> {
        match &mut self.brain {
            Brain::Configured(c) => {
                c.states[i] = state;
                Ok(())
            }
            _ => bail!("only a configured agent keeps a state to load"),
        }
    }

    /// The model environment `i` plans with now.
    pub fn acting_model(&self, i: usize) -> usize {
        match &self.brain {
            Brain::Flat(f) => f.progress.member[i],
            _ => 0,
        }
    }

    /// Directions (unit vectors) of the stalls that environment `i`'s memory holds for where
    /// its acting model last saw it, for display.
    pub fn blocked_here(&self, i: usize) -> Vec<[f32; 2]> {
        match &self.brain {
            Brain::Flat(f) => f.blocked_here(i),
            _ => Vec::new(),
        }
    }

    /// The configured agent's plans of environment `i` under its current settings.
    pub fn plans(&self, i: usize) -> Option<PlansView<'_>> {
        match &self.brain {
            Brain::Configured(c) => Some(c.plans(i)),
            _ => None,
        }
    }

    /// The hierarchy's current subgoal of environment `i` (a level-2 state).
    pub fn subgoal(&self, i: usize) -> Option<&[f32]> {
        let g = match &self.brain {
            Brain::Hierarchical(h) => h.subgoals[i].as_slice(),
            Brain::Configured(c) => c.plans(i).subgoal?,
            _ => return None,
        };
        (!g.is_empty()).then_some(g)
    }

    /// Imagines `count` action sequences (`[count, len, 2]`) from where environment `i`'s latest
    /// plan started, in that plan's space: what its candidates look like (for display).
    pub fn imagine(&self, i: usize, actions: &[f32], count: usize, len: usize) -> Option<Vec<f32>> {
        match &self.brain {
            Brain::Flat(f) => f.imagine(i, actions, count, len),
            Brain::Hierarchical(_) | Brain::Configured(_) => {
                let start = self.last_latent.get(i)?.clone()?;
                let latent = self.latent.as_ref()?;
                let hierarchical = match &self.brain {
                    Brain::Configured(c) => c.plans(i).high.is_some(),
                    _ => true,
                };
                match (hierarchical, &self.level2) {
                    (true, Some(l2)) => Some(l2.low(latent).rollout(&[start], count, actions, len)),
                    _ => Some(latent.rollout(&[start], count, actions, len)),
                }
            }
            _ => None,
        }
    }
}

/// Rows of `d` values, one vector each.
pub(crate) fn split_rows(x: &[f32], d: usize) -> Vec<Vec<f32>> {
    x.chunks_exact(d).map(<[f32]>::to_vec).collect()
}

/// Rows of several `[n, w_i]` row-major blocks put end to end: `[n, Σ w_i]`.
pub(crate) fn end_to_end(parts: Vec<Vec<f32>>, n: usize) -> Vec<f32> {
    let widths: Vec<usize> = parts.iter().map(|p| p.len() / n.max(1)).collect();
    let mut out = Vec::with_capacity(parts.iter().map(Vec::len).sum());
    for i in 0..n {
        for (p, &w) in parts.iter().zip(&widths) {
            out.extend_from_slice(&p[i * w..(i + 1) * w]);
        }
    }
    out
}
