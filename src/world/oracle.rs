//! The true simulator as planning dynamics: what the oracle baseline imagines with (a perfect
//! world model), and what `amisim run` draws the oracle's candidates with.

use super::scene::Scene;
use super::sim::{self, EnvState};
use crate::actor::model::Dynamics;
use crate::actor::Mpc;
use crate::agent::{Decided, Simulator};
use anyhow::{Context, Result};
use rayon::prelude::*;
use std::any::Any;

/// The simulator of `scene`: imagined states are the agent's position, and the box's where the
/// scene has one.
pub struct SimDynamics {
    pub scene: Scene,
}

impl SimDynamics {
    /// The imagined state of a simulator state.
    pub fn observe(&self, s: &EnvState) -> Vec<f32> {
        match s.pushable {
            Some(b) => vec![s.agent.x, s.agent.y, b.x, b.y],
            None => vec![s.agent.x, s.agent.y],
        }
    }
}

impl Dynamics for SimDynamics {
    type Start = EnvState;

    fn dim(&self) -> usize {
        if self.scene.top_down().and_then(|s| s.pushable.as_ref()).is_some() {
            4
        } else {
            2
        }
    }

    fn rollout(&self, starts: &[EnvState], n: usize, actions: &[f32], len: usize) -> Vec<f32> {
        let dim = self.dim();
        let mut out = vec![0.0; starts.len() * n * len * dim];
        out.par_chunks_mut(len * dim).enumerate().for_each(|(i, rows)| {
            let mut s = starts[i / n].clone();
            for t in 0..len {
                let a = &actions[(i * len + t) * 2..(i * len + t) * 2 + 2];
                sim::step(&self.scene, &mut s, [a[0], a[1]]);
                rows[t * dim..(t + 1) * dim].copy_from_slice(&self.observe(&s));
            }
        });
        out
    }
}

/// The states the world passes as [`Observations::truth`](crate::agent::Observations::truth).
fn states(truth: &dyn Any) -> Result<&Vec<EnvState>> {
    truth
        .downcast_ref::<Vec<EnvState>>()
        .context("the oracle reads this world's states, and these are another world's")
}

impl Simulator for SimDynamics {
    fn act(&self, mpc: &mut Mpc, truth: &dyn Any, goals: &dyn Any, active: &[usize], trace: bool) -> Result<Decided> {
        let starts = states(truth)?;
        let goals: Vec<f32> = states(goals)?.iter().flat_map(|g| self.observe(g)).collect();
        Ok(mpc.act(self, starts, &goals, active, trace))
    }
}
