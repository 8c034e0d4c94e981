//! Mode 2, flat: plan with the world model(s) in receding horizon. One model, several as an
//! ensemble, or several taking turns (the next takes over where one stalls), with the moves
//! the world did not let happen made costly.

use super::spec::{AgentSpec, PredictorKind, Together};
use super::{encode, encode_maps, encode_with_maps, end_to_end, split_rows, EnvTrace, Observations, Space, Trace};
use crate::actor::model::{Dynamics, LatentDynamics};
use crate::actor::planner::PlannerConfig;
use crate::actor::spatial::{spatial_dynamics, EnsembleDynamics, SpatialDynamics};
use crate::actor::Mpc;
use crate::cost::critic::Critic;
use crate::memory::blocked::{AvoidBlocked, BlockedMoves, WithBlocked};
use crate::world_model::jepa::Jepa;
use anyhow::{bail, Result};
use burn::prelude::Device;
use std::time::Instant;

/// What the planner imagines with.
#[derive(Clone, Copy)]
enum Imagine<'m> {
    Latent,
    Spatial(&'m SpatialDynamics),
    Ensemble(&'m EnsembleDynamics),
}

/// What the planner reads: the ensemble, the first model's spatial dynamics, or its latent ones.
fn imagination<'a>(
    ensemble: &'a Option<EnsembleDynamics>,
    spatial: &'a Option<SpatialDynamics>,
    predictor: PredictorKind,
) -> Imagine<'a> {
    match (
        ensemble,
        spatial.as_ref().filter(|_| predictor == PredictorKind::Spatial),
    ) {
        (Some(e), _) => Imagine::Ensemble(e),
        (None, Some(sp)) => Imagine::Spatial(sp),
        (None, None) => Imagine::Latent,
    }
}

/// Flat planning and the state it keeps per environment.
pub(super) struct Flat {
    pub mpc: Mpc,
    cfg: PlannerConfig,
    together: Option<Together>,
    predictor: PredictorKind,
    blocked: f32,
    /// The first model's latent predictor (with its inverse-dynamics head and the critic).
    latent: LatentDynamics,
    /// The first model's spatial predictor (with the critic), keypoints joined where weighed.
    spatial: Option<SpatialDynamics>,
    /// Each model's own spatial predictor (models planning together), and a latent one for
    /// those that have none (taking turns).
    singles: Vec<Option<SpatialDynamics>>,
    latents: Vec<Option<LatentDynamics>>,
    ensemble: Option<EnsembleDynamics>,
    /// Goals: each model's view of the goal observation (taking turns), or what the planner
    /// reads (`[n, dim]`).
    goals_each: Vec<Vec<f32>>,
    goals: Vec<f32>,
    pub progress: Progress,
    moves: BlockedMoves,
    /// The start each environment's latest plan came from (for [`Flat::imagine`]).
    last_start: Vec<Option<Vec<f32>>>,
    /// Each environment's latest view of its acting model (blocked moves are remembered there).
    last_view: Vec<Option<Vec<f32>>>,
}

impl Flat {
    /// `differentiable`: the first model's predictor on an autodiff device, for the gradient
    /// planner.
    pub fn new(
        spec: &AgentSpec,
        members: &[Jepa],
        critic: Option<&Critic>,
        differentiable: Option<crate::world_model::Predictor>,
        seeds: &[u64],
    ) -> Result<Flat> {
        let cfg = spec.planner.clone();
        let n = seeds.len();
        let kp = cfg.cost.keypoints;
        let first = &members[0];
        if cfg.kind == crate::actor::planner::PlannerKind::Gradient && differentiable.is_none() {
            bail!("agent spec, planner.kind: gradient planning needs the first model's predictor on an autodiff device (load_models makes it; in memory, give Models::differentiable)");
        }
        let latent = LatentDynamics::new(&first.predictor, differentiable)
            .with_idm(&first.idm)
            .with_critic(critic.cloned());
        let spatial = spatial_dynamics(first, critic.cloned());
        // Models planning together each imagine with their own spatial predictor (where they
        // have one and the spec asks for it), else with their latent one. A model alone that
        // remembers blocked moves plans the same way, as a turn that never passes.
        let several = spec.together.is_some() || spec.blocked > 0.0;
        let singles: Vec<Option<SpatialDynamics>> = match (several, spec.predictor) {
            // The critic was trained on the first model's latents: only that model adds it.
            (true, PredictorKind::Spatial) => members
                .iter()
                .enumerate()
                .map(|(i, m)| spatial_dynamics(m, critic.filter(|_| i == 0).cloned()))
                .collect(),
            (true, PredictorKind::Latent) => members.iter().map(|_| None).collect(),
            (false, _) => Vec::new(),
        };
        let latents: Vec<Option<LatentDynamics>> = singles
            .iter()
            .zip(members)
            .enumerate()
            .map(|(i, (d, m))| {
                d.is_none().then(|| {
                    LatentDynamics::new(&m.predictor, None)
                        .with_idm(&m.idm)
                        .with_critic(critic.filter(|_| i == 0).cloned())
                })
            })
            .collect();
        if spec.predictor == PredictorKind::Spatial {
            if !several && spatial.is_none() {
                bail!("agent spec, predictor: Spatial, but models[0] has no spatial predictor (train one with `--set model.encoder.spatial_state=8`)");
            }
            if !singles.iter().any(Option::is_some) && several {
                bail!("agent spec, predictor: Spatial, but no model has a spatial predictor (train one with `--set model.encoder.spatial_state=8`)");
            }
        }
        if kp != 0.0 {
            let all = spatial.iter().all(|d| d.rollout.has_keypoints())
                && singles
                    .iter()
                    .all(|d| d.as_ref().is_some_and(|d| d.rollout.has_keypoints()));
            if !all {
                bail!("agent spec, planner.cost.keypoints: every model needs a spatial predictor on an encoder with spatial soft-argmax (model.encoder.spatial_softmax = true)");
            }
        }
        // The keypoints joined to the latents where the cost weighs them.
        let spatial = spatial.map(|d| d.with_keypoints(kp));
        let singles: Vec<Option<SpatialDynamics>> =
            singles.into_iter().map(|d| d.map(|d| d.with_keypoints(kp))).collect();
        let ensemble = match spec.together {
            Some(Together::Ensemble) => {
                if let Some(i) = singles.iter().position(Option::is_none) {
                    bail!("agent spec, models[{i}]: models planning as an ensemble each need a spatial predictor, and this one has none");
                }
                Some(EnsembleDynamics {
                    members: singles.iter().flatten().map(|d| d.rollout.clone()).collect(),
                })
            }
            _ => None,
        };
        Ok(Flat {
            mpc: Mpc::new(cfg.clone(), seeds),
            moves: BlockedMoves::new(n, cfg.max_action),
            progress: Progress::new(n),
            together: spec.together,
            predictor: spec.predictor,
            blocked: spec.blocked,
            cfg,
            latent,
            spatial,
            singles,
            latents,
            ensemble,
            goals_each: Vec::new(),
            goals: Vec::new(),
            last_start: vec![None; n],
            last_view: vec![None; n],
        })
    }

    pub fn reset(&mut self, i: usize, seed: u64) {
        self.mpc.reset(i, seed);
        self.progress.reset(i);
        self.moves.reset(i);
        self.last_start[i] = None;
        self.last_view[i] = None;
    }

    /// The steps without progress after which a model passes the turn: a model alone with the
    /// blocked-move cost plans in turns that never pass.
    fn switching(&self) -> Option<usize> {
        match self.together {
            Some(Together::Switch { after }) => Some(after),
            None if self.blocked > 0.0 => Some(usize::MAX),
            _ => None,
        }
    }

    /// What the planner reads: the first model's latent dynamics, or its spatial ones, or the
    /// ensemble (one model at a time when taking turns: see [`Flat::act`]).
    fn imagination(&self) -> Imagine<'_> {
        imagination(&self.ensemble, &self.spatial, self.predictor)
    }

    /// Model `m`'s view of observations, to compare imagined states with: its latents, or, with
    /// keypoints joined, the states its spatial rollout starts at. A spatial model's maps come
    /// from the same encoder pass and are kept in `maps`.
    fn view(
        &self,
        members: &[Jepa],
        m: usize,
        obs: &Observations,
        maps: &mut Option<Vec<f32>>,
        device: &Device,
    ) -> Vec<f32> {
        let Some(d) = self
            .singles
            .get(m)
            .and_then(Option::as_ref)
            .or(self.spatial.as_ref().filter(|_| m == 0))
        else {
            return encode(&members[m], obs, device);
        };
        let (z, x) = encode_with_maps(&members[m], obs, device);
        let x = maps.insert(x);
        if self.cfg.cost.keypoints != 0.0 {
            d.rollout.states_of(x, obs.shape[0])
        } else {
            z
        }
    }

    /// Encodes the goal observations: each model's view (taking turns), all of them end to end
    /// (an ensemble), or the first model's.
    pub fn set_goals(&mut self, members: &[Jepa], goals: &Observations, device: &Device) {
        let n = goals.shape[0];
        if self.switching().is_some() || self.together == Some(Together::Ensemble) {
            self.goals_each = (0..members.len())
                .map(|m| self.view(members, m, goals, &mut None, device))
                .collect();
            if self.together == Some(Together::Ensemble) {
                self.goals = end_to_end(self.goals_each.clone(), n);
            }
        } else {
            self.goals = self.view(members, 0, goals, &mut None, device);
        }
    }

    pub fn switches(&self, i: usize) -> u32 {
        self.progress.switches[i]
    }

    pub fn stalls(&self, i: usize) -> u32 {
        self.moves.stalls(i)
    }

    /// The directions remembered as blocked where environment `i`'s acting model last saw it.
    pub fn blocked_here(&self, i: usize) -> Vec<[f32; 2]> {
        match &self.last_view[i] {
            Some(z) => self.moves.blocked_at(i, self.progress.member[i], z),
            None => Vec::new(),
        }
    }

    /// Imagines `count` action sequences from environment `i`'s latest plan's start, with the
    /// model that made it.
    pub fn imagine(&self, i: usize, actions: &[f32], count: usize, len: usize) -> Option<Vec<f32>> {
        let start = self.last_start[i].clone()?;
        let m = self.progress.member[i];
        let starts = [start];
        Some(match self.switching() {
            Some(_) => match (&self.singles[m], &self.latents[m]) {
                (Some(d), _) => d.rollout(&starts, count, actions, len),
                (None, Some(d)) => d.rollout(&starts, count, actions, len),
                (None, None) => return None,
            },
            None => match self.imagination() {
                Imagine::Ensemble(e) => e.rollout(&starts, count, actions, len),
                Imagine::Spatial(sp) => sp.rollout(&starts, count, actions, len),
                Imagine::Latent => self.latent.rollout(&starts, count, actions, len),
            },
        })
    }

    /// The next actions of the environments in `active`; `steps[i]` is environment `i`'s step
    /// in its episode. Fills in `trace`.
    #[allow(clippy::too_many_arguments)]
    pub fn act(
        &mut self,
        members: &[Jepa],
        obs: &Observations,
        active: &[usize],
        steps: &[u32],
        keep: bool,
        device: &Device,
        trace: &mut Trace,
    ) -> Vec<(usize, [f32; 2])> {
        let due: Vec<usize> = active.iter().copied().filter(|&i| self.mpc.needs_plan(i)).collect();
        trace.covers = self.cfg.replan_every;
        let acts = match self.switching() {
            Some(after) => self.act_in_turns(members, obs, active, &due, steps, after, keep, device, trace),
            None => {
                let n = obs.shape[0];
                let imagine = imagination(&self.ensemble, &self.spatial, self.predictor);
                // Between plans the controller executes queued actions: encode only when some
                // environment plans now.
                let starts: Vec<Vec<f32>> = if due.is_empty() {
                    vec![Vec::new(); n]
                } else {
                    let t0 = Instant::now();
                    let (x, width) = match imagine {
                        Imagine::Latent => (encode(&members[0], obs, device), members[0].latent()),
                        Imagine::Spatial(sp) => (encode_maps(&members[0], obs, device), sp.rollout.map_len()),
                        Imagine::Ensemble(e) => {
                            let maps = members.iter().map(|m| encode_maps(m, obs, device)).collect();
                            (end_to_end(maps, n), e.start_len())
                        }
                    };
                    trace.encode_ms += t0.elapsed().as_secs_f64() * 1e3;
                    split_rows(&x, width)
                };
                let t1 = Instant::now();
                let (mpc, goals) = (&mut self.mpc, &self.goals);
                let (acts, planned) = match imagine {
                    Imagine::Ensemble(e) => mpc.act(e, &starts, goals, active, keep),
                    Imagine::Spatial(sp) => mpc.act(sp, &starts, goals, active, keep),
                    Imagine::Latent => mpc.act(&self.latent, &starts, goals, active, keep),
                };
                trace.plan_ms += t1.elapsed().as_secs_f64() * 1e3;
                trace.planned |= planned;
                for &i in &due {
                    self.last_start[i] = Some(starts[i].clone());
                }
                acts
            }
        };
        for &i in &due {
            let e: &mut EnvTrace = &mut trace.envs[i];
            e.plan = self.mpc.last[i].clone();
            e.model = self.progress.member[i];
            e.space = Space::Latent(self.progress.member[i]);
        }
        acts
    }

    /// One model plans for each environment; a stalled one passes it on. With the blocked-move
    /// cost, what the last plan's actions did is compared with what it imagined.
    #[allow(clippy::too_many_arguments)]
    fn act_in_turns(
        &mut self,
        members: &[Jepa],
        obs: &Observations,
        active: &[usize],
        due: &[usize],
        steps: &[u32],
        after: usize,
        keep: bool,
        device: &Device,
        trace: &mut Trace,
    ) -> Vec<(usize, [f32; 2])> {
        let n = obs.shape[0];
        let count = members.len();
        let t0 = Instant::now();
        let mut views: Vec<Option<Vec<f32>>> = vec![None; count];
        let mut maps: Vec<Option<Vec<f32>>> = vec![None; count];
        for &i in due {
            let m = self.progress.member[i];
            let d = self.distance(members, m, i, obs, &mut views, &mut maps, device);
            if !self.progress.advances(i, steps[i], d, after) {
                let next = (m + 1) % count;
                let d = self.distance(members, next, i, obs, &mut views, &mut maps, device);
                self.progress.pass_to(i, next, steps[i], d);
                self.mpc.set_warm_start(i, &[]);
                trace.envs[i].switched = true;
            }
        }
        if self.blocked > 0.0 {
            for &i in due {
                let m = self.progress.member[i];
                let d = self.goals_each[m].len() / n;
                if views[m].is_none() {
                    views[m] = Some(self.view(members, m, obs, &mut maps[m], device));
                }
                let z = views[m].as_ref().expect("just made");
                trace.envs[i].stalled = self.moves.observe(i, m, &z[i * d..(i + 1) * d]);
            }
        }
        for &i in due {
            let m = self.progress.member[i];
            if self.singles[m].is_some() {
                if maps[m].is_none() {
                    maps[m] = Some(encode_maps(&members[m], obs, device));
                }
            } else if views[m].is_none() {
                views[m] = Some(self.view(members, m, obs, &mut maps[m], device));
            }
        }
        trace.encode_ms += t0.elapsed().as_secs_f64() * 1e3;
        let t1 = Instant::now();
        let mut acts = Vec::new();
        for m in 0..count {
            let mine: Vec<usize> = active
                .iter()
                .copied()
                .filter(|&i| self.progress.member[i] == m)
                .collect();
            if mine.is_empty() {
                continue;
            }
            let goals = self.goals_each[m].clone();
            let view_m = views[m].as_deref();
            // A spatial model starts from its maps, a latent one from its view (the latents),
            // computed above for the environments that plan.
            let (from, width) = match &self.singles[m] {
                Some(d) => (maps[m].as_deref(), d.rollout.map_len()),
                None => (view_m, goals.len() / n),
            };
            let starts = match from {
                Some(x) => split_rows(x, width),
                None => vec![Vec::new(); n],
            };
            let (mpc, moves, cfg) = (&mut self.mpc, &mut self.moves, &self.cfg);
            let (a, p) = match (&self.singles[m], &self.latents[m]) {
                (Some(d), _) => member_act(
                    mpc,
                    d,
                    &starts,
                    &goals,
                    &mine,
                    keep,
                    cfg,
                    self.blocked,
                    moves,
                    view_m,
                    m,
                ),
                (None, Some(d)) => member_act(
                    mpc,
                    d,
                    &starts,
                    &goals,
                    &mine,
                    keep,
                    cfg,
                    self.blocked,
                    moves,
                    view_m,
                    m,
                ),
                (None, None) => unreachable!("every model has a spatial or a latent predictor"),
            };
            for &i in mine.iter().filter(|&&i| self.mpc.planned_at_last_act(i)) {
                self.last_start[i] = Some(starts[i].clone());
                if let Some(z) = view_m {
                    let d = goals.len() / n;
                    self.last_view[i] = Some(z[i * d..(i + 1) * d].to_vec());
                }
            }
            acts.extend(a);
            trace.planned |= p;
        }
        trace.plan_ms += t1.elapsed().as_secs_f64() * 1e3;
        acts
    }

    /// Model `m`'s goal distance in environment `i` (its view of the observation, made once).
    #[allow(clippy::too_many_arguments)]
    fn distance(
        &self,
        members: &[Jepa],
        m: usize,
        i: usize,
        obs: &Observations,
        views: &mut [Option<Vec<f32>>],
        maps: &mut [Option<Vec<f32>>],
        device: &Device,
    ) -> f32 {
        if views[m].is_none() {
            views[m] = Some(self.view(members, m, obs, &mut maps[m], device));
        }
        let z = views[m].as_ref().expect("just made");
        let goals = &self.goals_each[m];
        let d = goals.len() / obs.shape[0];
        crate::memory::dist(&z[i * d..(i + 1) * d], &goals[i * d..(i + 1) * d])
    }
}

/// Model `m` plans for the environments it has (`mine`) from `starts`, through the blocked-move
/// cost where `weight` > 0 (`view`: the model's view of this observation, `[n, dim]`, where it
/// was made).
#[allow(clippy::too_many_arguments)]
fn member_act<D: Dynamics<Start = Vec<f32>>>(
    mpc: &mut Mpc,
    dynamics: &D,
    starts: &[Vec<f32>],
    goals: &[f32],
    mine: &[usize],
    keep: bool,
    c: &PlannerConfig,
    weight: f32,
    moves: &mut BlockedMoves,
    view: Option<&[f32]>,
    m: usize,
) -> (Vec<(usize, [f32; 2])>, bool) {
    if weight <= 0.0 {
        return mpc.act(dynamics, starts, goals, mine, keep);
    }
    let avoid = AvoidBlocked {
        inner: dynamics,
        weight,
        executed: c.replan_every,
        max_action: c.max_action,
    };
    let d = goals.len() / starts.len();
    let starts: Vec<WithBlocked<Vec<f32>>> = starts
        .iter()
        .enumerate()
        .map(|(i, start)| {
            let blocked = match view {
                Some(z) => moves.blocked_at(i, m, &z[i * d..(i + 1) * d]),
                None => Vec::new(),
            };
            WithBlocked {
                start: start.clone(),
                blocked,
            }
        })
        .collect();
    let (a, p) = mpc.act(&avoid, &starts, goals, mine, keep);
    for &i in mine.iter().filter(|&&i| mpc.planned_at_last_act(i)) {
        if let (Some(z), Some(plan)) = (view, &mpc.last[i]) {
            moves.planned(i, m, &z[i * d..(i + 1) * d], plan, c.replan_every, d);
        }
    }
    (a, p)
}

/// Which world model plans for each environment when they take turns, and its progress: the
/// lowest goal distance it has seen (in its own view) and the step it saw it at.
pub(super) struct Progress {
    pub member: Vec<usize>,
    best: Vec<f32>,
    since: Vec<u32>,
    pub switches: Vec<u32>,
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

    fn reset(&mut self, i: usize) {
        (self.member[i], self.best[i], self.since[i], self.switches[i]) = (0, f32::INFINITY, 0, 0);
    }

    /// Records environment `i`'s goal distance `d` at step `t`; false when no new low has come
    /// for `patience` steps.
    fn advances(&mut self, i: usize, t: u32, d: f32, patience: usize) -> bool {
        if d < self.best[i] * (1.0 - SWITCH_GAIN) {
            (self.best[i], self.since[i]) = (d, t);
        }
        ((t - self.since[i]) as usize) < patience
    }

    /// Environment `i` passes to model `m`, whose goal distance is `d` now.
    fn pass_to(&mut self, i: usize, m: usize, t: u32, d: f32) {
        (self.member[i], self.best[i], self.since[i]) = (m, d, t);
        self.switches[i] += 1;
    }
}
