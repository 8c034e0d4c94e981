//! The agent's memories, both bounded.
//!
//! - [`ShortTermMemory`]: a ring buffer of the last `capacity` steps (latent, action taken,
//!   energy to the goal, the plan made there and its cost). The actor takes warm starts from
//!   the last plan in it; the configurator asks it whether the agent has stalled — energy not
//!   decreasing over a window, or back where it was a while ago.
//! - [`EpisodicMemory`]: landmarks — latents of places seen, at least `radius` apart — with the
//!   steps between neighbouring ones, at most `capacity` landmarks of at most `max_neighbours`
//!   neighbours each. It recognises loops (back at a landmark left long ago) and proposes
//!   waypoints toward a goal seen before (the next landmark on the shortest known way there).
//! - [`blocked::BlockedMoves`]: the moves the world did not let happen where the agent is now
//!   (a replan finds the view still where the last plan imagined it moving), which
//!   [`blocked::AvoidBlocked`] makes costly to the planner.
//!
//! Bounds: the default short-term memory holds 64 steps, the episodic memory 256 landmarks of
//! ≤ 8 neighbours: for 64-d latents and 96-step plans about 64·(64 + 2·96 + 4)·4 B ≈ 67 KB plus
//! 256·(64·4 + 8·12) B ≈ 90 KB, whatever the episode's length. Both serialise with the agent's
//! state ([`crate::agent::AgentState`]).

pub mod blocked;

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Euclidean distance between two latents.
pub fn dist(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>().sqrt()
}

/// Settings of both memories and of stall detection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryConfig {
    /// Steps the short-term memory holds.
    pub short_term: usize,
    /// Steps of the window stall detection looks at.
    pub stall_window: usize,
    /// The energy must fall by this share of its earlier best over the window, else a stall.
    pub stall_drop: f32,
    /// Landmarks the episodic memory holds, and neighbours per landmark.
    pub landmarks: usize,
    pub max_neighbours: usize,
    /// Landmarks are this many steps of latent motion apart (`radius = landmark_steps ·` the
    /// latent distance of a step).
    pub landmark_steps: f32,
    /// Back at a landmark left at least this many steps ago: a loop.
    pub loop_gap: u32,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            short_term: 64,
            stall_window: 24,
            stall_drop: 0.05,
            landmarks: 256,
            max_neighbours: 8,
            landmark_steps: 4.0,
            loop_gap: 24,
        }
    }
}

impl MemoryConfig {
    pub fn validate(&self) -> Result<(), String> {
        crate::require_counts(
            "memory",
            &[
                ("short_term", self.short_term),
                ("stall_window", self.stall_window),
                ("landmarks", self.landmarks),
                ("max_neighbours", self.max_neighbours),
            ],
        )?;
        if self.stall_window > self.short_term {
            return Err(format!(
                "memory.stall_window = {} exceeds memory.short_term = {} (the window must fit in the memory)",
                self.stall_window, self.short_term
            ));
        }
        if !(self.landmark_steps.is_finite() && self.landmark_steps > 0.0) {
            return Err(format!(
                "memory.landmark_steps = {} must be positive",
                self.landmark_steps
            ));
        }
        Ok(())
    }
}

/// One step remembered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Moment {
    pub step: u32,
    pub latent: Vec<f32>,
    /// The action taken from here.
    pub action: [f32; 2],
    /// Energy to the goal here (the critic's cost-to-go, or the latent distance).
    pub energy: f32,
    /// The plan made here (`[len, 2]`) and its cost, if one was.
    pub plan: Option<(Vec<f32>, f32)>,
}

/// Why the agent is judged stalled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Stall {
    /// The best energy of the window's second half is not below its first half's by the
    /// configured share.
    NoProgress { before: f32, after: f32, window: usize },
    /// Back within a step's distance of where it was `steps_ago` steps ago.
    Revisit { steps_ago: u32 },
}

impl std::fmt::Display for Stall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stall::NoProgress { before, after, window } => write!(
                f,
                "energy not decreasing over {window} steps (best {before:.2} before, {after:.2} since)"
            ),
            Stall::Revisit { steps_ago } => write!(f, "back where it was {steps_ago} steps ago"),
        }
    }
}

/// The ring buffer of recent steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShortTermMemory {
    pub capacity: usize,
    moments: VecDeque<Moment>,
    /// Steps before this one are not judged for stalls (set after a reconfiguration).
    pub judged_from: u32,
}

impl ShortTermMemory {
    pub fn new(capacity: usize) -> ShortTermMemory {
        ShortTermMemory {
            capacity: capacity.max(1),
            moments: VecDeque::with_capacity(capacity.max(1)),
            judged_from: 0,
        }
    }

    /// Remembers a step, forgetting the oldest when full.
    pub fn push(&mut self, m: Moment) {
        if self.moments.len() == self.capacity {
            self.moments.pop_front();
        }
        self.moments.push_back(m);
    }

    pub fn len(&self) -> usize {
        self.moments.len()
    }

    pub fn is_empty(&self) -> bool {
        self.moments.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Moment> {
        self.moments.iter()
    }

    pub fn last_mut(&mut self) -> Option<&mut Moment> {
        self.moments.back_mut()
    }

    /// The latest plan remembered (a warm start after the planner is reconfigured), with the
    /// steps taken since it was made.
    pub fn last_plan(&self) -> Option<(&[f32], u32)> {
        let now = self.moments.back()?.step;
        self.moments
            .iter()
            .rev()
            .find_map(|m| m.plan.as_ref().map(|(p, _)| (p.as_slice(), now - m.step)))
    }

    /// Median latent distance between consecutive remembered steps.
    pub fn step_length(&self) -> Option<f32> {
        let mut d: Vec<f32> = self
            .moments
            .iter()
            .zip(self.moments.iter().skip(1))
            .map(|(a, b)| dist(&a.latent, &b.latent))
            .collect();
        if d.is_empty() {
            return None;
        }
        d.sort_by(f32::total_cmp);
        Some(d[d.len() / 2])
    }

    /// Whether the agent has stalled over the last `cfg.stall_window` judged steps.
    pub fn stall(&self, cfg: &MemoryConfig) -> Option<Stall> {
        let w = cfg.stall_window;
        let recent: Vec<&Moment> = self
            .moments
            .iter()
            .rev()
            .take_while(|m| m.step >= self.judged_from)
            .take(w)
            .collect();
        if recent.len() < w || w < 2 {
            return None;
        }
        // `recent` runs newest first.
        let best = |ms: &[&Moment]| ms.iter().map(|m| m.energy).fold(f32::INFINITY, f32::min);
        let (after, before) = (best(&recent[..w / 2]), best(&recent[w / 2..]));
        if after > before - cfg.stall_drop * before.abs() {
            return Some(Stall::NoProgress {
                before,
                after,
                window: w,
            });
        }
        let step = self.step_length()?;
        let now = recent[0];
        recent[w / 2..]
            .iter()
            .find(|m| dist(&m.latent, &now.latent) <= step && now.energy >= m.energy)
            .map(|m| Stall::Revisit {
                steps_ago: now.step - m.step,
            })
    }
}

/// A place seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Landmark {
    pub id: u64,
    pub latent: Vec<f32>,
    pub visits: u32,
    pub last_seen: u32,
    /// `(landmark id, fewest steps seen between them)`.
    pub neighbours: Vec<(u64, u32)>,
}

/// What observing a latent found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    pub landmark: u64,
    pub new: bool,
    /// Back at a landmark left at least `loop_gap` steps ago.
    pub closed_loop: bool,
}

/// Landmarks and the ways between them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpisodicMemory {
    pub capacity: usize,
    pub max_neighbours: usize,
    pub loop_gap: u32,
    landmarks: Vec<Landmark>,
    next_id: u64,
    /// The landmark the agent is at, and the step it got there.
    current: Option<(u64, u32)>,
    pub loops: u32,
}

impl EpisodicMemory {
    pub fn new(cfg: &MemoryConfig) -> EpisodicMemory {
        EpisodicMemory {
            capacity: cfg.landmarks.max(1),
            max_neighbours: cfg.max_neighbours.max(1),
            loop_gap: cfg.loop_gap,
            landmarks: Vec::new(),
            next_id: 0,
            current: None,
            loops: 0,
        }
    }

    pub fn landmarks(&self) -> &[Landmark] {
        &self.landmarks
    }

    fn nearest(&self, z: &[f32]) -> Option<(usize, f32)> {
        self.landmarks
            .iter()
            .enumerate()
            .map(|(i, l)| (i, dist(&l.latent, z)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
    }

    fn index(&self, id: u64) -> Option<usize> {
        self.landmarks.iter().position(|l| l.id == id)
    }

    /// Records being at `z` at `step`: at the nearest landmark within `radius`, or at a new one
    /// (evicting the least recently seen when full). Links it with the previous landmark.
    pub fn observe(&mut self, z: &[f32], step: u32, radius: f32) -> Observed {
        let (idx, new) = match self.nearest(z) {
            Some((i, d)) if d <= radius => (i, false),
            _ => {
                if self.landmarks.len() == self.capacity {
                    let current = self.current.map(|c| c.0);
                    let victim = (0..self.landmarks.len())
                        .filter(|&i| Some(self.landmarks[i].id) != current)
                        .min_by_key(|&i| (self.landmarks[i].last_seen, self.landmarks[i].id))
                        .unwrap_or(0);
                    let gone = self.landmarks.swap_remove(victim).id;
                    for l in &mut self.landmarks {
                        l.neighbours.retain(|(n, _)| *n != gone);
                    }
                }
                self.landmarks.push(Landmark {
                    id: self.next_id,
                    latent: z.to_vec(),
                    visits: 0,
                    last_seen: step,
                    neighbours: Vec::new(),
                });
                self.next_id += 1;
                (self.landmarks.len() - 1, true)
            }
        };
        let id = self.landmarks[idx].id;
        let left_long_ago = !new && step.saturating_sub(self.landmarks[idx].last_seen) >= self.loop_gap;
        let mut closed_loop = false;
        match self.current {
            Some((prev, _)) if prev == id => {}
            Some((prev, since)) => {
                closed_loop = left_long_ago;
                self.link(prev, id, step.saturating_sub(since).max(1));
                self.current = Some((id, step));
            }
            None => self.current = Some((id, step)),
        }
        self.loops += closed_loop as u32;
        let l = &mut self.landmarks[idx];
        l.visits += 1;
        l.last_seen = step;
        Observed {
            landmark: id,
            new,
            closed_loop,
        }
    }

    fn link(&mut self, a: u64, b: u64, steps: u32) {
        let max = self.max_neighbours;
        for (x, y) in [(a, b), (b, a)] {
            let Some(i) = self.index(x) else { continue };
            let ns = &mut self.landmarks[i].neighbours;
            match ns.iter_mut().find(|(n, _)| *n == y) {
                Some(e) => e.1 = e.1.min(steps),
                None => {
                    ns.push((y, steps));
                    if ns.len() > max {
                        // Keep the shortest ways.
                        ns.sort_by_key(|&(n, s)| (s, n));
                        ns.truncate(max);
                    }
                }
            }
        }
    }

    /// A waypoint toward `goal` from `z`: when a landmark within `radius` of the goal has been
    /// seen and a known way leads there from the landmark nearest `z`, the latent of the next
    /// landmark on the shortest such way (fewest steps). `None` when the goal was not seen,
    /// no way is known, or the agent is at the goal's landmark already.
    pub fn waypoint(&self, z: &[f32], goal: &[f32], radius: f32) -> Option<Vec<f32>> {
        let (target, d) = self.nearest(goal)?;
        if d > radius {
            return None;
        }
        let (start, _) = self.nearest(z)?;
        if start == target {
            return None;
        }
        // Dijkstra over at most `capacity` landmarks.
        let n = self.landmarks.len();
        let mut best = vec![u64::MAX; n];
        let mut prev = vec![usize::MAX; n];
        let mut done = vec![false; n];
        best[start] = 0;
        while let Some(u) = (0..n)
            .filter(|&i| !done[i] && best[i] < u64::MAX)
            .min_by_key(|&i| best[i])
        {
            done[u] = true;
            if u == target {
                break;
            }
            for &(nid, s) in &self.landmarks[u].neighbours {
                if let Some(v) = self.index(nid) {
                    let c = best[u] + s as u64;
                    if c < best[v] {
                        best[v] = c;
                        prev[v] = u;
                    }
                }
            }
        }
        if best[target] == u64::MAX {
            return None;
        }
        let mut hop = target;
        while prev[hop] != start {
            hop = prev[hop];
        }
        Some(self.landmarks[hop].latent.clone())
    }
}
