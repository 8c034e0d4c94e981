//! Moves the world did not let happen.
//!
//! A world model that pictures a wall's end a few pixels short, or a gap where there is none,
//! plans the same move into the wall at every replan: the plan is executed, the agent does not
//! move, the next plan is the same. [`BlockedMoves`] notices it from observations alone — at a
//! replan, the view moved less than [`STALL_FRACTION`] of what the last plan imagined for the
//! actions executed since — and remembers where (the view) and which way (the mean action
//! pushed), for the rest of the episode. A remembered stall applies wherever the view is as
//! close to where it happened as a stall would call "not moved". [`AvoidBlocked`] makes those
//! directions costly to the planner: a candidate whose first executed actions push along one
//! pays `weight · Σ max(0, mean action · direction) / max_action`, so the next plan tries
//! another way round the corner instead of the same one, also when the agent comes back.

use super::dist;
use crate::actor::model::Dynamics;
use crate::actor::planner::Plan;
use crate::cost::CostConfig;

/// A replan counts as stuck when the view moved less than this share of what the last plan
/// imagined for the same actions.
pub const STALL_FRACTION: f32 = 0.5;

/// Stalls remembered per episode (the oldest is forgotten first).
const MAX_REMEMBERED: usize = 32;

/// Below this share of the largest action the executed actions did not push anywhere.
const MIN_PUSH: f32 = 0.3;

/// What one problem's last plan expected.
#[derive(Debug, Clone)]
struct Expected {
    /// The planning model (of models taking turns): views of different models differ.
    model: usize,
    view: Vec<f32>,
    /// The imagined state after the executed actions.
    imagined: Vec<f32>,
    /// Their mean.
    push: [f32; 2],
}

/// One stall: where (the model's view there), how near counts as there, which way.
#[derive(Debug, Clone)]
struct Stall {
    model: usize,
    view: Vec<f32>,
    reach: f32,
    direction: [f32; 2],
}

/// Per problem: the last plan's expectation and the stalls seen so far.
#[derive(Debug, Clone)]
pub struct BlockedMoves {
    expected: Vec<Option<Expected>>,
    stalled: Vec<Vec<Stall>>,
    /// Stalls seen per problem.
    stalls: Vec<u32>,
    max_action: f32,
}

impl BlockedMoves {
    pub fn new(problems: usize, max_action: f32) -> BlockedMoves {
        BlockedMoves {
            expected: vec![None; problems],
            stalled: vec![Vec::new(); problems],
            stalls: vec![0; problems],
            max_action,
        }
    }

    /// Forgets problem `i`'s expectation and stalls (a new episode).
    pub fn reset(&mut self, i: usize) {
        self.expected[i] = None;
        self.stalled[i].clear();
        self.stalls[i] = 0;
    }

    /// At a replan of problem `i` by `model`, whose view of the observation is `view`: whether
    /// the last plan's executed actions moved the view as it imagined. A stall is remembered
    /// here, with the direction pushed. Views of another model are not compared.
    pub fn observe(&mut self, i: usize, model: usize, view: &[f32]) -> bool {
        let Some(e) = self.expected[i].take() else { return false };
        let norm = e.push[0].hypot(e.push[1]);
        let imagined = dist(&e.imagined, &e.view);
        let stalled =
            e.model == model && norm > MIN_PUSH * self.max_action && dist(view, &e.view) < STALL_FRACTION * imagined;
        if stalled {
            self.stalls[i] += 1;
            if self.stalled[i].len() == MAX_REMEMBERED {
                self.stalled[i].remove(0);
            }
            self.stalled[i].push(Stall {
                model,
                view: view.to_vec(),
                reach: STALL_FRACTION * imagined,
                direction: [e.push[0] / norm, e.push[1] / norm],
            });
        }
        stalled
    }

    /// After problem `i` planned with `model` from `view`: remembers what `plan` expects of its
    /// first `executed` actions (`dim`: the size of an imagined state).
    pub fn planned(&mut self, i: usize, model: usize, view: &[f32], plan: &Plan, executed: usize, dim: usize) {
        let len = plan.actions.len() / 2;
        let k = executed.min(len);
        if k == 0 || plan.imagined.len() < k * dim {
            self.expected[i] = None;
            return;
        }
        let mut push = [0.0f32; 2];
        for a in plan.actions[..2 * k].chunks_exact(2) {
            push[0] += a[0] / k as f32;
            push[1] += a[1] / k as f32;
        }
        self.expected[i] = Some(Expected {
            model,
            view: view.to_vec(),
            imagined: plan.imagined[(k - 1) * dim..k * dim].to_vec(),
            push,
        });
    }

    /// The directions (unit vectors) of problem `i`'s stalls that happened where `model`'s
    /// view is now `view`.
    pub fn blocked_at(&self, i: usize, model: usize, view: &[f32]) -> Vec<[f32; 2]> {
        self.stalled[i]
            .iter()
            .filter(|s| s.model == model && dist(view, &s.view) < s.reach)
            .map(|s| s.direction)
            .collect()
    }

    /// Stalls problem `i` has seen.
    pub fn stalls(&self, i: usize) -> u32 {
        self.stalls[i]
    }
}

/// A planning start with the directions blocked there.
#[derive(Debug, Clone)]
pub struct WithBlocked<S> {
    pub start: S,
    pub blocked: Vec<[f32; 2]>,
}

/// `inner`'s dynamics, with the blocked-move cost added to every candidate (see the module
/// documentation). Sampling planners only: the gradient planner's energy does not see it.
pub struct AvoidBlocked<'a, D> {
    pub inner: &'a D,
    pub weight: f32,
    /// Actions executed from each plan (the planner's `replan_every`).
    pub executed: usize,
    pub max_action: f32,
}

impl<D: Dynamics> Dynamics for AvoidBlocked<'_, D>
where
    D::Start: Clone + Send + Sync,
{
    type Start = WithBlocked<D::Start>;

    fn dim(&self) -> usize {
        self.inner.dim()
    }

    fn rollout(&self, starts: &[Self::Start], n: usize, actions: &[f32], len: usize) -> Vec<f32> {
        let inner: Vec<D::Start> = starts.iter().map(|s| s.start.clone()).collect();
        self.inner.rollout(&inner, n, actions, len)
    }

    fn task_costs(
        &self,
        starts: &[Self::Start],
        goals: &[f32],
        n: usize,
        actions: &[f32],
        states: &[f32],
        len: usize,
        cost: &CostConfig,
    ) -> Option<Vec<f32>> {
        let inner: Vec<D::Start> = starts.iter().map(|s| s.start.clone()).collect();
        let base = self.inner.task_costs(&inner, goals, n, actions, states, len, cost);
        if starts.iter().all(|s| s.blocked.is_empty()) {
            return base;
        }
        let mut out = base.unwrap_or_else(|| vec![0.0; starts.len() * n]);
        let k = self.executed.clamp(1, len);
        for (c, (j, e)) in actions.chunks_exact(len * 2).zip(out.iter_mut().enumerate()) {
            let blocked = &starts[j / n].blocked;
            if blocked.is_empty() {
                continue;
            }
            let (mut x, mut y) = (0.0f32, 0.0f32);
            for a in c[..2 * k].chunks_exact(2) {
                x += a[0] / k as f32;
                y += a[1] / k as f32;
            }
            let along: f32 = blocked.iter().map(|d| (x * d[0] + y * d[1]).max(0.0)).sum();
            *e += self.weight * along / self.max_action;
        }
        Some(out)
    }
}
