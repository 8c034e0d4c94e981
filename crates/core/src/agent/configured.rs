//! The configured agent: the configurator, both memories, the critic, mode 1 and mode 2,
//! acting together. Each step, per environment:
//!
//! 1. the step is remembered (short-term) and the place recognised (episodic, loops counted);
//! 2. if the short-term memory says the agent stalled, the configurator reconfigures (logged);
//! 3. mode 1 proposes an action where it is on; the proposal stands when imagining a few steps
//!    of it with the world model lowers the energy (the critic's cost-to-go) enough;
//! 4. everything else is planned (mode 2): flat, at the horizon the configurator set, with the
//!    critic as terminal cost, or hierarchically; all environments that plan alike in one batch.
//!
//! [`AgentState`] (configurator, memories, waypoint) saves to JSON and loads back unchanged.

use super::spec::{AgentSpec, Mode1Check};
use super::Space;
use crate::actor::hierarchy::HierMpc;
use crate::actor::mode1::Mode1;
use crate::actor::model::{Abstracted, Dynamics, LatentDynamics};
use crate::actor::planner::{Plan, PlannerConfig};
use crate::actor::{shift, Mpc};
use crate::configurator::{Available, Configurator, ConfiguratorConfig, Decision, Remedy, Task};
use crate::cost::critic::Critic;
use crate::gather_rows;
use crate::memory::{dist, EpisodicMemory, MemoryConfig, Moment, ShortTermMemory};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Everything one agent carries between steps (and between runs: it saves and loads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentState {
    pub step: u32,
    pub configurator: Configurator,
    pub short_term: ShortTermMemory,
    pub episodic: EpisodicMemory,
    /// The episodic waypoint steered to, if any.
    pub waypoint: Option<Vec<f32>>,
    /// Steps acted by mode 1 and by mode 2.
    pub mode1_steps: u32,
    pub mode2_steps: u32,
}

const STATE_FORMAT: &str = "amisim-agent-state-v1";

impl AgentState {
    pub fn new(
        configurator: &ConfiguratorConfig,
        memory: &MemoryConfig,
        task: &Task,
        available: Available,
    ) -> AgentState {
        AgentState {
            step: 0,
            configurator: Configurator::new(configurator.clone(), task, available),
            short_term: ShortTermMemory::new(memory.short_term),
            episodic: EpisodicMemory::new(memory),
            waypoint: None,
            mode1_steps: 0,
            mode2_steps: 0,
        }
    }

    pub fn decisions(&self) -> &[Decision] {
        &self.configurator.log
    }

    /// Writes the state as JSON to `path`, atomically (a temporary file, then renamed).
    pub fn save(&self, path: &Path) -> Result<()> {
        let doc = serde_json::json!({ "format": STATE_FORMAT, "state": self });
        crate::write_file_atomic(path, serde_json::to_vec(&doc)?)
    }

    /// Reads a state written by [`save`](Self::save).
    pub fn load(path: &Path) -> Result<AgentState> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading agent state {}", path.display()))?;
        let doc: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
        if doc.get("format").and_then(|f| f.as_str()) != Some(STATE_FORMAT) {
            anyhow::bail!(
                "{}: not an agent state (format is {:?}, expected {STATE_FORMAT})",
                path.display(),
                doc.get("format")
            );
        }
        serde_json::from_value(doc["state"].clone()).with_context(|| format!("{}: field `state`", path.display()))
    }
}

/// The models an agent acts with.
pub(super) struct AgentModels<'a> {
    /// The level-1 dynamics (carrying the critic for the terminal cost).
    pub latent: &'a LatentDynamics,
    pub critic: Option<&'a Critic>,
    pub mode1: Option<&'a Mode1>,
    /// Level 2 and level 1 seen through the abstraction.
    pub level2: Option<(&'a LatentDynamics, &'a Abstracted<'a, LatentDynamics>)>,
}

/// Salt of the agents' planner streams for the hierarchy (apart from the flat tiers').
const HIER_SALT: u64 = 0x3c6e_f372_fe94_f82b;

/// The flat planner at `horizon` in `tiers` (made on first use from `flat`).
fn tier<'a>(
    tiers: &'a mut BTreeMap<usize, Mpc>,
    flat: &PlannerConfig,
    seeds: &[u64],
    horizon: usize,
    st: &crate::configurator::Settings,
) -> &'a mut Mpc {
    tiers.entry(horizon).or_insert_with(|| {
        let mut c = flat.clone();
        c.horizon = horizon;
        c.cost.critic = st.critic;
        c.cost.effort = st.effort;
        c.cost.collision = st.collision;
        c.replan_every = c.replan_every.min(c.len());
        let s: Vec<u64> = seeds.iter().map(|&s| tier_seed(s, horizon)).collect();
        Mpc::new(c, &s)
    })
}

/// The seed of the flat planner at `horizon` of an environment whose episode seed is `seed`.
fn tier_seed(seed: u64, horizon: usize) -> u64 {
    seed ^ (horizon as u64).wrapping_mul(0x9e37_79b9)
}

/// Configured agents acting side by side in `n` environments, their planning batched.
pub(super) struct Configured {
    flat: PlannerConfig,
    memory: MemoryConfig,
    configurator: ConfiguratorConfig,
    check: Mode1Check,
    available: Available,
    pub states: Vec<AgentState>,
    seeds: Vec<u64>,
    /// Flat planners by horizon, each over all environments.
    tiers: BTreeMap<usize, Mpc>,
    hier: Option<HierMpc>,
    /// Whether each environment's last action came from mode 1.
    pub last_mode1: Vec<bool>,
    /// Keep the planners' traces (candidates, costs) for display.
    pub trace: bool,
}

/// The plans behind an environment's current settings, for display: the flat plan (or level
/// 1's), level 2's plan and the subgoal when hierarchical.
pub struct PlansView<'a> {
    pub low: Option<&'a crate::actor::planner::Plan>,
    pub high: Option<&'a crate::actor::planner::Plan>,
    pub subgoal: Option<&'a [f32]>,
}

impl Configured {
    pub fn new(spec: &AgentSpec, task: &Task, available: Available, seeds: &[u64]) -> Configured {
        let states = seeds
            .iter()
            .map(|_| AgentState::new(&spec.configurator, &spec.memory, task, available))
            .collect();
        let hier = spec.hierarchy.as_ref().filter(|_| available.level2).map(|h| {
            let s: Vec<u64> = seeds.iter().map(|s| s ^ HIER_SALT).collect();
            HierMpc::new(h.clone(), &s)
        });
        Configured {
            flat: spec.planner.clone(),
            memory: spec.memory.clone(),
            configurator: spec.configurator.clone(),
            check: spec.mode1_check.clone(),
            available,
            states,
            seeds: seeds.to_vec(),
            tiers: BTreeMap::new(),
            hier,
            last_mode1: vec![false; seeds.len()],
            trace: false,
        }
    }

    /// Environment `i`'s latest plans under its current settings.
    pub fn plans(&self, i: usize) -> PlansView<'_> {
        let st = &self.states[i].configurator.settings;
        match (&self.hier, st.hierarchical) {
            (Some(h), true) => PlansView {
                low: h.low.last[i].as_ref(),
                high: h.last_high[i].as_ref(),
                subgoal: Some(h.subgoals[i].as_slice()).filter(|g| !g.is_empty()),
            },
            _ => PlansView {
                low: self.tiers.get(&st.horizon).and_then(|m| m.last[i].as_ref()),
                high: None,
                subgoal: None,
            },
        }
    }

    /// The flat planner at `horizon` (made on first use).
    fn tier(&mut self, horizon: usize, st: &crate::configurator::Settings) -> &mut Mpc {
        tier(&mut self.tiers, &self.flat, &self.seeds, horizon, st)
    }

    /// Environment `i` starts a new episode: a fresh state, its planners' streams from `seed`.
    pub fn reset(&mut self, i: usize, seed: u64, task: &Task) {
        self.seeds[i] = seed;
        self.states[i] = AgentState::new(&self.configurator, &self.memory, task, self.available);
        for (&h, m) in self.tiers.iter_mut() {
            m.reset(i, tier_seed(seed, h));
        }
        if let Some(h) = self.hier.as_mut() {
            h.reset(i, seed ^ HIER_SALT);
        }
        self.last_mode1[i] = false;
    }

    /// The plans environment `i` made at its latest step, and their space: the flat plan or level
    /// 1's, and level 2's. `None` when it did not plan (mode 1 acted, or a plan was running).
    pub fn planned_now(&self, i: usize) -> Option<(Option<Plan>, Space, Option<Plan>)> {
        if self.last_mode1[i] {
            return None;
        }
        let st = &self.states[i].configurator.settings;
        match (&self.hier, st.hierarchical) {
            (Some(h), true) => {
                let low = h.low.planned_at_last_act(i).then(|| h.low.last[i].clone()).flatten();
                let high = h.planned_high_at_last_act(i).then(|| h.last_high[i].clone()).flatten();
                (low.is_some() || high.is_some()).then_some((low, Space::Level2, high))
            }
            _ => {
                let m = self.tiers.get(&st.horizon)?;
                m.planned_at_last_act(i)
                    .then(|| (m.last[i].clone(), Space::Latent(0), None))
            }
        }
    }

    pub fn interrupt(&mut self, i: usize) {
        for m in self.tiers.values_mut() {
            m.interrupt(i);
        }
        if let Some(h) = self.hier.as_mut() {
            h.interrupt(i);
        }
    }

    /// Energies of rows of latents `z` to their goals `g`, in steps: the critic's cost-to-go,
    /// or the latent distance in units of each row's step length `lens`.
    fn energies(models: &AgentModels, z: &[f32], g: &[f32], lens: &[f32]) -> Vec<f32> {
        let m = lens.len();
        match models.critic {
            Some(c) => c.steps(z, g, m),
            None => {
                let d = z.len() / m.max(1);
                (0..m)
                    .map(|i| dist(&z[i * d..(i + 1) * d], &g[i * d..(i + 1) * d]) / lens[i])
                    .collect()
            }
        }
    }

    /// The next action of each environment in `active`: `zs[i]` its latent (`[latent]`),
    /// `goals` `[n, latent]`.
    pub(super) fn act(&mut self, models: &AgentModels, zs: &[Vec<f32>], goals: &[f32]) -> Vec<(usize, [f32; 2])> {
        let active: Vec<usize> = (0..zs.len()).filter(|&i| !zs[i].is_empty()).collect();
        let d = models.latent.dim();
        let mcfg = self.memory.clone();
        // Latent distance of a step: the critic's calibration, else the memory's median.
        let step_length = |s: &AgentState| {
            models
                .critic
                .map(|c| c.distance_per_step)
                .or_else(|| s.short_term.step_length())
                .unwrap_or(1.0)
                .max(1e-6)
        };
        // 1–2: remember, recognise, reconfigure on a stall.
        let z_all: Vec<f32> = active.iter().flat_map(|&i| zs[i].clone()).collect();
        let lens: Vec<f32> = active.iter().map(|&i| step_length(&self.states[i])).collect();
        let energy = Self::energies(models, &z_all, &gather_rows(goals, d, &active), &lens);
        for (k, &i) in active.iter().enumerate() {
            let radius = mcfg.landmark_steps * lens[k];
            let goal = &goals[i * d..(i + 1) * d];
            let s = &mut self.states[i];
            let step = s.step;
            s.short_term.push(Moment {
                step,
                latent: zs[i].clone(),
                action: [0.0, 0.0],
                energy: energy[k],
                plan: None,
            });
            s.episodic.observe(&zs[i], step, radius);
            if s.waypoint.as_ref().is_some_and(|w| dist(w, &zs[i]) <= radius) {
                s.waypoint = None;
            }
            if let Some(stall) = s.short_term.stall(&mcfg) {
                let way = s.episodic.waypoint(&zs[i], goal, radius);
                let remedy = s.configurator.on_stall(step, &stall, way.is_some());
                if let Some(r) = remedy {
                    s.short_term.judged_from = step + 1;
                    if r == Remedy::Waypoint {
                        s.waypoint = way;
                    }
                    let warm = s.short_term.last_plan().map(|(p, since)| shift(p, since as usize));
                    let st = s.configurator.settings.clone();
                    self.interrupt(i);
                    if let (Remedy::Horizon { to, .. }, Some(w)) = (&r, warm) {
                        self.tier(*to, &st).set_warm_start(i, &w);
                    }
                }
            }
        }
        let target: Vec<f32> = (0..zs.len())
            .flat_map(|i| match &self.states[i].waypoint {
                Some(w) => w.clone(),
                None => goals[i * d..(i + 1) * d].to_vec(),
            })
            .collect();
        let mut out: Vec<(usize, [f32; 2])> = Vec::with_capacity(active.len());
        // 3: mode 1 where it is on, kept when the imagined steps lower the energy enough.
        let mut planning: Vec<usize> = Vec::new();
        let reactive: Vec<usize> = active
            .iter()
            .copied()
            .filter(|&i| self.states[i].configurator.settings.mode1)
            .collect();
        match models.mode1 {
            Some(pi) if !reactive.is_empty() => {
                let m = reactive.len();
                let z0: Vec<f32> = reactive.iter().flat_map(|&i| zs[i].clone()).collect();
                let g = gather_rows(&target, d, &reactive);
                let first = pi.act(&z0, &g, m);
                let mut z = z0.clone();
                let mut a = first.clone();
                for k in 0..self.check.steps {
                    if k > 0 {
                        a = pi.act(&z, &g, m);
                    }
                    z = models.latent.mlp.rollout_rows(&z, &a, m, 1);
                }
                let ls: Vec<f32> = reactive.iter().map(|&i| step_length(&self.states[i])).collect();
                let e0 = Self::energies(models, &z0, &g, &ls);
                let e1 = Self::energies(models, &z, &g, &ls);
                let need = self.check.gain * self.check.steps as f32;
                for (k, &i) in reactive.iter().enumerate() {
                    if e0[k] - e1[k] >= need {
                        out.push((i, [first[2 * k], first[2 * k + 1]]));
                        self.states[i].mode1_steps += 1;
                        self.interrupt(i);
                    } else {
                        planning.push(i);
                    }
                }
            }
            _ => planning.extend(reactive),
        }
        planning.extend(
            active
                .iter()
                .copied()
                .filter(|&i| !self.states[i].configurator.settings.mode1),
        );
        planning.sort_unstable();
        // 4: mode 2, batched: flat planners by horizon, and the hierarchy.
        let mut by_tier: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        let mut hier_envs = Vec::new();
        for &i in &planning {
            let st = &self.states[i].configurator.settings;
            match (&models.level2, st.hierarchical && self.hier.is_some()) {
                (Some(_), true) => hier_envs.push(i),
                _ => by_tier.entry(st.horizon).or_default().push(i),
            }
        }
        for (h, envs) in by_tier {
            let st = self.states[envs[0]].configurator.settings.clone();
            let mpc = tier(&mut self.tiers, &self.flat, &self.seeds, h, &st);
            let (acts, _) = mpc.act(models.latent, zs, &target, &envs, self.trace);
            for (i, a) in acts {
                if let (Some(p), Some(m)) = (&mpc.last[i], self.states[i].short_term.last_mut()) {
                    if mpc.planned_at_last_act(i) {
                        m.plan = Some((p.actions.clone(), p.cost));
                    }
                }
                out.push((i, a));
            }
        }
        if let (Some((high, low)), false) = (&models.level2, hier_envs.is_empty()) {
            let hier = self.hier.as_mut().expect("checked");
            let z2: Vec<Vec<f32>> = zs
                .iter()
                .map(|z| if z.is_empty() { Vec::new() } else { low.map(z) })
                .collect();
            let g2 = low.map(&target);
            let (acts, _) = hier.act(*high, *low, &z2, zs, &g2, &hier_envs, self.trace);
            out.extend(acts);
        }
        for (i, a) in &out {
            let s = &mut self.states[*i];
            if let Some(m) = s.short_term.last_mut() {
                m.action = *a;
            }
        }
        for &i in &active {
            self.last_mode1[i] = !planning.contains(&i);
        }
        for &i in &planning {
            self.states[i].mode2_steps += 1;
        }
        for &i in &active {
            self.states[i].step += 1;
        }
        out.sort_by_key(|(i, _)| *i);
        out
    }
}
