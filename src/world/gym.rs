//! Environments with Gymnasium's contract, for the Python package (`python/`): episodes that
//! end by success (`terminated`) or by the step budget (`truncated`), next-step autoreset, and
//! the goal observation of every episode drawn with its start.
//!
//! An environment whose episode ended at one [`GymEnvs::step`] ignores its action at the next
//! and starts a new episode (drawn from its own RNG stream), as Gymnasium's
//! `AutoresetMode.NEXT_STEP` prescribes. The goal observations are drawn only at the steps
//! where an episode starts, in one extra render of every environment.

use super::env::{Info, Obs, VecEnv};
use super::scene::Scene;
use super::sim::{self, EnvState};
use anyhow::{bail, Result};

/// What one reset or step gives back, for every environment.
#[derive(Debug, Clone)]
pub struct GymStep {
    /// Frames `[n, c, h, w]` u8: the state after the step (or the new episode's first frame).
    pub obs: Obs,
    /// 1 at the step that reaches the goal, else 0.
    pub reward: Vec<f32>,
    /// The episode ended by success.
    pub terminated: Vec<bool>,
    /// The episode ended by the step budget without success.
    pub truncated: Vec<bool>,
    /// A new episode started at this call (its goal observation changed).
    pub started: Vec<bool>,
    pub info: Vec<Info>,
}

/// `n` environments of one scene with Gymnasium's semantics.
pub struct GymEnvs {
    env: VecEnv,
    /// The goal observations `[n, c, h, w]` and the goal states of the running episodes.
    goal_frames: Vec<u8>,
    goal_states: Vec<EnvState>,
    /// The episode ended at the last step: the next step starts a new one.
    ended: Vec<bool>,
    /// Resets so far (the first one before any step is required).
    resets: u64,
}

impl GymEnvs {
    /// `n` environments of `scene`; observations `[n, h, w, c]` when `channels_last`, else
    /// `[n, c, h, w]`.
    pub fn new(scene: Scene, n: usize, channels_last: bool) -> Result<GymEnvs> {
        let mut env = VecEnv::new(scene, n)?;
        env.channels_last(channels_last);
        Ok(GymEnvs {
            env,
            goal_frames: Vec::new(),
            goal_states: Vec::new(),
            ended: vec![false; n],
            resets: 0,
        })
    }

    pub fn num_envs(&self) -> usize {
        self.env.num_envs()
    }

    pub fn scene(&self) -> &Scene {
        self.env.scene()
    }

    /// `[c, h, w]` (or `[h, w, c]`) of one observation.
    pub fn frame_shape(&self) -> [usize; 3] {
        self.env.frame_shape()
    }

    /// Goal observations `[n, c, h, w]` of the running episodes.
    pub fn goal_frames(&self) -> &[u8] {
        &self.goal_frames
    }

    pub fn goal_states(&self) -> &[EnvState] {
        &self.goal_states
    }

    pub fn states(&self) -> &[EnvState] {
        self.env.states()
    }

    /// Action components that were NaN or ∞ so far (each taken as 0).
    pub fn non_finite_actions(&self) -> u64 {
        self.env.non_finite_actions()
    }

    /// New episodes in every environment, environment `i`'s episodes drawn from
    /// `env_rng(seed, i)` from now on.
    pub fn reset(&mut self, seed: u64) -> Result<GymStep> {
        let n = self.num_envs();
        self.env.reseed(seed);
        if self.goal_states.len() != n {
            self.goal_states = self.env.states().to_vec();
        }
        self.resets += 1;
        self.restart(&(0..n).collect::<Vec<_>>())
    }

    /// New episodes in the environments `which` only (the next draws of their streams); the
    /// others keep their state. Needs a [`reset`](Self::reset) first.
    pub fn restart(&mut self, which: &[usize]) -> Result<GymStep> {
        if self.resets == 0 {
            bail!("reset the environments (with a seed) before restarting some of them");
        }
        let n = self.num_envs();
        if let Some(&i) = which.iter().find(|&&i| i >= n) {
            bail!("environment {i} does not exist (there are {n})");
        }
        let starts = which
            .iter()
            .map(|&i| self.env.draw_episode(i))
            .collect::<Result<Vec<_>, _>>()?;
        self.start(which, starts)
    }

    /// Steps every environment whose episode goes on with its action; an environment whose
    /// episode ended at the last step starts a new one instead (its action ignored).
    pub fn step(&mut self, actions: &[[f32; 2]]) -> Result<GymStep> {
        if self.resets == 0 {
            bail!("reset the environments before stepping them");
        }
        let n = self.num_envs();
        if actions.len() != n {
            bail!("expected {n} actions (one per environment), got {}", actions.len());
        }
        self.env.advance(actions)?;
        let which: Vec<usize> = (0..n).filter(|&i| self.ended[i]).collect();
        let starts = which
            .iter()
            .map(|&i| self.env.draw_episode(i))
            .collect::<Result<Vec<_>, _>>()?;
        self.start(&which, starts)
    }

    /// Moves environment `i`'s agent (and box) to where the state row `row` (see
    /// [`EnvState::to_vec`]) has them, in its current layout and toward its current goal (a
    /// step count of 0, no collision), and draws the observations.
    pub fn set_agent(&mut self, i: usize, row: &[f32]) -> Result<GymStep> {
        self.check(i)?;
        let mut s = self.env.states()[i].clone();
        apply_row(&mut s, row, "state")?;
        s.steps = 0;
        s.collided = false;
        self.env.set_state(i, s);
        self.ended[i] = false;
        self.observe(vec![false; self.num_envs()])
    }

    /// Gives environment `i`'s episode a new goal: the agent's place (or, with a box, the box's)
    /// in the state row `row`, and its heading (the first-person goal pose); draws its goal
    /// observation.
    pub fn set_goal(&mut self, i: usize, row: &[f32]) -> Result<()> {
        self.check(i)?;
        let mut s = self.env.states()[i].clone();
        let mut at = s.clone();
        apply_row(&mut at, row, "goal_state")?;
        s.goal = at.pushable.unwrap_or(at.agent);
        s.goal_heading = at.heading;
        let g = sim::goal_state(self.env.scene(), &s);
        self.draw_goals(&[i], vec![g])?;
        self.env.set_state(i, s);
        Ok(())
    }

    /// Makes `goals` the goal states of the environments `which` and draws their goal frames:
    /// every environment rendered once, those of `which` in their goal state (the others as
    /// they are, not read). The environments of `which` are left in their goal state.
    fn draw_goals(&mut self, which: &[usize], goals: Vec<EnvState>) -> Result<()> {
        for (&i, g) in which.iter().zip(&goals) {
            self.env.set_state(i, g.clone());
        }
        let drawn = self.env.render()?;
        if self.goal_frames.len() != drawn.frames.len() {
            self.goal_frames = vec![0; drawn.frames.len()];
        }
        let len = drawn.frames.len() / self.num_envs();
        for (&i, g) in which.iter().zip(goals) {
            self.goal_frames[i * len..(i + 1) * len].copy_from_slice(drawn.frame(i));
            self.goal_states[i] = g;
        }
        Ok(())
    }

    fn check(&self, i: usize) -> Result<()> {
        if self.resets == 0 {
            bail!("reset the environments before placing anything in them");
        }
        if i >= self.num_envs() {
            bail!("environment {i} does not exist (there are {})", self.num_envs());
        }
        Ok(())
    }

    /// Places the new episodes `starts` in the environments `which` (the others keep the
    /// state they are in), draws their goals if any, then the observations.
    fn start(&mut self, which: &[usize], starts: Vec<EnvState>) -> Result<GymStep> {
        let n = self.num_envs();
        let mut started = vec![false; n];
        if !which.is_empty() {
            let goals: Vec<EnvState> = starts.iter().map(|s| sim::goal_state(self.env.scene(), s)).collect();
            self.draw_goals(which, goals)?;
            for (&i, s) in which.iter().zip(starts) {
                self.env.set_state(i, s);
                started[i] = true;
            }
        }
        self.observe(started)
    }

    /// Draws the observations; an environment not `started` now ends its episode if it is at
    /// its goal or out of steps.
    fn observe(&mut self, started: Vec<bool>) -> Result<GymStep> {
        let n = self.num_envs();
        let obs = self.env.render()?;
        let info = self.env.info();
        let mut step = GymStep {
            obs,
            reward: vec![0.0; n],
            terminated: vec![false; n],
            truncated: vec![false; n],
            started,
            info,
        };
        for i in 0..n {
            let inf = &step.info[i];
            if !step.started[i] {
                step.terminated[i] = inf.success;
                step.truncated[i] = !inf.success && inf.done;
                step.reward[i] = if inf.success { 1.0 } else { 0.0 };
            }
            self.ended[i] = step.terminated[i] || step.truncated[i];
        }
        Ok(step)
    }
}

/// Writes a state row's agent, heading and box (`[agent_x, agent_y, heading, box_x, box_y, …]`)
/// into `s`.
fn apply_row(s: &mut EnvState, row: &[f32], what: &str) -> Result<()> {
    if row.len() < 5 {
        bail!(
            "{what}: expected a row of at least 5 values (agent_x, agent_y, heading, box_x, box_y, …), got {}",
            row.len()
        );
    }
    if row[..3].iter().any(|v| !v.is_finite()) {
        bail!(
            "{what}: the agent's position and heading must be finite, got {:?}",
            &row[..3]
        );
    }
    s.agent = glam::Vec2::new(row[0], row[1]);
    s.heading = row[2];
    if s.pushable.is_some() {
        if !(row[3].is_finite() && row[4].is_finite()) {
            bail!(
                "{what}: this scene has a box, whose position must be finite, got {:?}",
                &row[3..5]
            );
        }
        s.pushable = Some(glam::Vec2::new(row[3], row[4]));
    }
    Ok(())
}
