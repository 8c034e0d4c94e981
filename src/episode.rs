//! The episode loop's world side, shared by every harness that runs an agent in episodes —
//! `eval`, `run`'s agent thread and mode-1 distillation: draw episode `k` from its own seed,
//! render the goal observation and the first frame, step all environments with the agent's
//! actions, and end each episode at success or at the step budget.

use crate::agent::{Observations, Simulator};
use crate::world::env::{env_rng, Info, Obs, VecEnv};
use crate::world::scene::Scene;
use crate::world::sim::{self, EnvState};
use anyhow::{bail, Result};
use std::any::Any;

/// `n` environments playing one episode each.
pub struct EpisodeBatch {
    env: VecEnv,
    scene: Scene,
    max_steps: u32,
    /// The episode each environment plays.
    pub ids: Vec<usize>,
    pub starts: Vec<EnvState>,
    pub goal_states: Vec<EnvState>,
    /// The current observations and the goal observations, `[n, c, h, w]`.
    pub obs: Obs,
    pub goal_obs: Obs,
    /// The environments whose episode goes on.
    pub active: Vec<usize>,
    /// The environments' true states (what an oracle reads).
    truth: Vec<EnvState>,
    /// Observations and goal images pass through JPEG at this quality before anyone sees them.
    jpeg: Option<u8>,
}

impl EpisodeBatch {
    pub fn new(scene: &Scene, n: usize, max_steps: u32) -> Result<EpisodeBatch> {
        if max_steps == 0 {
            bail!("an episode needs a step budget of at least 1");
        }
        let env = VecEnv::new(scene.clone(), n)?;
        let empty = Obs {
            frames: Vec::new(),
            shape: [0, 3, 0, 0],
        };
        Ok(EpisodeBatch {
            env,
            scene: scene.clone(),
            max_steps,
            ids: Vec::new(),
            starts: Vec::new(),
            goal_states: Vec::new(),
            obs: empty.clone(),
            goal_obs: empty,
            active: Vec::new(),
            truth: Vec::new(),
            jpeg: None,
        })
    }

    /// Passes every observation and goal image through JPEG at `quality` (1–100; `None`:
    /// the frames as rendered), as users' tools and stable-worldmodel's datasets store them.
    pub fn with_jpeg(mut self, quality: Option<u8>) -> Result<EpisodeBatch> {
        quality.map(crate::jpeg::check_quality).transpose()?;
        self.jpeg = quality;
        Ok(self)
    }

    /// `obs` as the agent sees it: through JPEG where asked.
    fn seen(&self, mut obs: Obs) -> Result<Obs> {
        if let Some(q) = self.jpeg {
            crate::jpeg::round_trip_all(&mut obs.frames, obs.shape, q)?;
        }
        Ok(obs)
    }

    /// The environments rendered, as the agent sees them.
    fn render_seen(&mut self) -> Result<Obs> {
        let obs = self.env.render()?;
        self.seen(obs)
    }

    /// Starts episodes `ids` (one per environment), episode `k` drawn from `env_rng(seed, k)`.
    pub fn begin(&mut self, seed: u64, ids: &[usize]) -> Result<()> {
        let starts = ids
            .iter()
            .map(|&ep| sim::sample_episode(&self.scene, &mut env_rng(seed, ep)))
            .collect::<Result<Vec<_>, _>>()?;
        self.ids = ids.to_vec();
        self.begin_from(starts)
    }

    /// Starts episodes from `starts` (their goals included).
    pub fn begin_from(&mut self, starts: Vec<EnvState>) -> Result<()> {
        if starts.len() != self.env.num_envs() {
            bail!("{} starts for {} environments", starts.len(), self.env.num_envs());
        }
        if self.ids.len() != starts.len() {
            self.ids = (0..starts.len()).collect();
        }
        self.goal_states = starts.iter().map(|s| sim::goal_state(&self.scene, s)).collect();
        self.env.set_states(self.goal_states.clone());
        self.goal_obs = self.render_seen()?;
        self.env.set_states(starts.clone());
        self.obs = self.render_seen()?;
        self.truth = starts.clone();
        self.starts = starts;
        self.active = (0..self.starts.len()).collect();
        Ok(())
    }

    /// The observations as the agent takes them (with the true states, for an oracle).
    pub fn observations(&self) -> Observations<'_> {
        Observations {
            frames: &self.obs.frames,
            shape: self.obs.shape,
            truth: Some(&self.truth as &(dyn Any + Sync)),
        }
    }

    /// The goal observations (with the goal states, for an oracle).
    pub fn goals(&self) -> Observations<'_> {
        Observations {
            frames: &self.goal_obs.frames,
            shape: self.goal_obs.shape,
            truth: Some(&self.goal_states as &(dyn Any + Sync)),
        }
    }

    /// The environments' true states.
    pub fn states(&self) -> &[EnvState] {
        &self.truth
    }

    pub fn scene(&self) -> &Scene {
        &self.scene
    }

    /// Steps every environment with `actions` (those whose episode is over stand still) and
    /// renders the new frames. Returns every environment's info and the environments whose
    /// episode ended at this step (success or the step budget); they leave `active`.
    pub fn step(&mut self, actions: &[[f32; 2]]) -> Result<(Vec<Info>, Vec<usize>)> {
        let (obs, infos) = self.env.step(actions)?;
        self.obs = self.seen(obs)?;
        self.truth.clear();
        self.truth.extend_from_slice(self.env.states());
        let max = self.max_steps;
        let mut ended = Vec::new();
        self.active.retain(|&i| {
            let over = infos[i].success || infos[i].steps >= max;
            if over {
                ended.push(i);
            }
            !over
        });
        Ok((infos, ended))
    }
}

/// The true simulator as the oracle's planning dynamics (see [`crate::world::oracle`]).
pub fn simulator(scene: &Scene) -> std::sync::Arc<dyn Simulator> {
    std::sync::Arc::new(crate::world::oracle::SimDynamics { scene: scene.clone() })
}
