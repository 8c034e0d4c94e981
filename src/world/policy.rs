//! Exploration policies that generate training data: the random walk of the Two-Rooms
//! reference (heading drifting by a von Mises draw, step length from a truncated normal, a share
//! of episodes forced through a door) and a uniform-random policy.

use super::layout::Layout;
use super::scene::{Scene, TopDownScene};
use super::sim::{self, EnvState};
use glam::Vec2;
use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};
use std::f32::consts::{FRAC_PI_4, PI};

/// Which exploration policy to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    /// Von Mises random walk, with door crossings forced at `cross_rate`.
    RandomWalk,
    /// Each action component uniform in the scene's limits.
    Uniform,
}

/// Settings of the random walk (defaults: the Two-Rooms reference data generator).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RandomWalkConfig {
    /// Concentration of the per-step heading change (von Mises, mean 0).
    pub kappa: f32,
    pub step_mean: f32,
    pub step_std: f32,
    pub step_min: f32,
    pub step_max: f32,
    /// Share of episodes placed so that the walk passes through a door.
    pub cross_rate: f32,
    /// Share of episodes (in scenes with a box) that start next to the box heading into it, so
    /// that the walk pushes it: a plain random walk meets the box too rarely to learn pushing.
    #[serde(default)]
    pub push_rate: f32,
    /// Share of episodes that start next to a wall heading into it, so that the data shows
    /// walls stopping the agent (what a planner pushing toward a goal behind a wall meets).
    #[serde(default)]
    pub wall_rate: f32,
    /// Share of episodes aimed at a dividing wall close to a door's edge (within 5 units of
    /// it on either side), so that the data holds walks that pass next to ones that are
    /// stopped: what tells the world model where the door is.
    #[serde(default)]
    pub door_rate: f32,
    /// Share of episodes that start near a room's corner heading into it, so that the data
    /// shows the agent stopped in corners (where a planner can pin it). Drawn after the push
    /// and wall shares: a share of the episodes those leave, as the door share is of the rest.
    #[serde(default)]
    pub corner_rate: f32,
}

impl Default for RandomWalkConfig {
    fn default() -> Self {
        RandomWalkConfig {
            kappa: 5.0,
            step_mean: 1.0,
            step_std: 0.4,
            step_min: 0.2,
            step_max: 1.8,
            cross_rate: 0.35,
            push_rate: 0.5,
            wall_rate: 0.0,
            door_rate: 0.0,
            corner_rate: 0.0,
        }
    }
}

/// Attempts at drawing a door-crossing walk before falling back to a plain one.
const CROSSING_TRIES: usize = 50;

/// Draws an angle from a von Mises distribution (Best & Fisher, 1979).
pub fn von_mises(rng: &mut impl Rng, mu: f32, kappa: f32) -> f32 {
    if kappa < 1e-6 {
        return mu + rng.random_range(-PI..PI);
    }
    let k = kappa as f64;
    let tau = 1.0 + (1.0 + 4.0 * k * k).sqrt();
    let rho = (tau - (2.0 * tau).sqrt()) / (2.0 * k);
    let r = (1.0 + rho * rho) / (2.0 * rho);
    loop {
        let (u1, u2, u3): (f64, f64, f64) = (rng.random(), rng.random(), rng.random());
        let z = (std::f64::consts::PI * u1).cos();
        let f = (1.0 + r * z) / (r + z);
        let c = k * (r - f);
        if c * (2.0 - c) - u2 > 0.0 || (c / u2).ln() + 1.0 - c >= 0.0 {
            let theta = f.clamp(-1.0, 1.0).acos() * if u3 > 0.5 { 1.0 } else { -1.0 };
            return mu + theta as f32;
        }
    }
}

pub use crate::actor::planner::normal;

/// A normal draw truncated to `[lo, hi]` (by rejection).
pub fn truncated_normal(rng: &mut impl Rng, mean: f32, std: f32, lo: f32, hi: f32) -> f32 {
    for _ in 0..1000 {
        let v = mean + std * normal(rng);
        if (lo..=hi).contains(&v) {
            return v;
        }
    }
    mean.clamp(lo, hi)
}

/// Plans a whole exploration episode of `steps` actions for one environment. The random walk
/// may move the start (`state.agent`) so that the walk passes through a door.
pub fn plan_episode(
    scene: &Scene,
    kind: PolicyKind,
    cfg: &RandomWalkConfig,
    state: &mut EnvState,
    steps: usize,
    rng: &mut impl Rng,
) -> Vec<[f32; 2]> {
    match (scene, kind) {
        (Scene::TopDown(s), PolicyKind::Uniform) => {
            let m = s.agent.max_step;
            (0..steps)
                .map(|_| [rng.random_range(-m..=m), rng.random_range(-m..=m)])
                .collect()
        }
        (Scene::FirstPerson(s), PolicyKind::Uniform) => {
            let (f, t) = (s.agent.max_forward, s.agent.max_turn_degrees.to_radians());
            (0..steps)
                .map(|_| [rng.random_range(-f..=f), rng.random_range(-t..=t)])
                .collect()
        }
        (Scene::TopDown(s), PolicyKind::RandomWalk) => {
            let layout = state.layout.clone().expect("top-down state has a layout");
            if let (Some(b), Some(spec)) = (state.pushable, &s.pushable) {
                if steps >= 1 && rng.random::<f32>() < cfg.push_rate {
                    if let Some(plan) = push_walk(scene, cfg, state, b, spec.half_size, steps, rng) {
                        return plan;
                    }
                }
            }
            if steps >= 1 && cfg.wall_rate > 0.0 && rng.random::<f32>() < cfg.wall_rate {
                if let Some(plan) = wall_walk(scene, cfg, state, steps, rng) {
                    return plan;
                }
            }
            if steps >= 1 && cfg.corner_rate > 0.0 && rng.random::<f32>() < cfg.corner_rate {
                if let Some(plan) = corner_walk(scene, cfg, state, steps, rng) {
                    return plan;
                }
            }
            if steps >= 1 && cfg.door_rate > 0.0 && rng.random::<f32>() < cfg.door_rate {
                if let Some(plan) = door_edge_walk(scene, cfg, state, steps, rng) {
                    return plan;
                }
            }
            let crossing = !layout.doors.is_empty() && steps >= 2 && rng.random::<f32>() < cfg.cross_rate;
            if !crossing {
                let h0 = rng.random_range(-PI..PI);
                return to_arrays(walk(rng, cfg, h0, steps));
            }
            // A walk through a door: pick a point in the doorway and the step `k` at which the
            // walk passes it, walk outward from there both ways, and start where the backward
            // half ends. The plan is checked with the simulator and kept only if it really
            // changes rooms (walls can block a drawn walk); otherwise draw again.
            let r = s.agent.radius;
            for _ in 0..CROSSING_TRIES {
                let door = layout.doors[rng.random_range(0..layout.doors.len())];
                let room = (door.half_width - r - 0.25).max(0.0);
                let along = truncated_normal(rng, 0.0, 1.4, -room, room);
                let across = rng.random_range(-door.half_thickness..=door.half_thickness);
                let point = door.center + door.normal.perp() * along + door.normal * across;
                let k = rng.random_range(1..steps);
                let side = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
                let base = (door.normal * side).to_angle() + rng.random_range(-FRAC_PI_4..FRAC_PI_4);
                let backward = walk(rng, cfg, base + PI, k);
                let forward = walk(rng, cfg, base, steps - k);
                let mut actions: Vec<Vec2> = backward.iter().rev().map(|a| -*a).collect();
                actions.extend(forward);
                let before: Vec2 = actions[..k].iter().copied().sum();
                let start = point - before;
                if !clear_start(&layout, start, r) {
                    continue;
                }
                let start_room = layout.room_of(start);
                let mut crossed = false;
                simulate_from(scene, state, start, &actions, |t| {
                    let now = layout.room_of(t.agent);
                    crossed |= now.is_some() && now != start_room;
                });
                if crossed {
                    state.agent = start;
                    return to_arrays(actions);
                }
            }
            let h0 = rng.random_range(-PI..PI);
            to_arrays(walk(rng, cfg, h0, steps))
        }
        (Scene::FirstPerson(s), PolicyKind::RandomWalk) => {
            let (f, t) = (s.agent.max_forward, s.agent.max_turn_degrees.to_radians());
            (0..steps)
                .map(|_| {
                    let speed = truncated_normal(rng, 0.6 * f, 0.3 * f, 0.0, f);
                    let turn = (normal(rng) * t / 3.0).clamp(-t, t);
                    [speed, turn]
                })
                .collect()
        }
    }
}

/// A walk that starts 1–6 units off a side of the box, heading into it; checked with the
/// simulator and kept only if the box moves. Moves `state.agent` to the start.
fn push_walk(
    scene: &Scene,
    cfg: &RandomWalkConfig,
    state: &mut EnvState,
    b: Vec2,
    half_size: f32,
    steps: usize,
    rng: &mut impl Rng,
) -> Option<Vec<[f32; 2]>> {
    let Scene::TopDown(s) = scene else { return None };
    let layout = state.layout.clone()?;
    let r = s.agent.radius;
    for _ in 0..CROSSING_TRIES {
        let dir = Vec2::from_angle(rng.random_range(-PI..PI));
        // Distance from the box centre to its boundary along `dir` (a square), plus a gap.
        let to_edge = half_size / dir.x.abs().max(dir.y.abs());
        let start = b + dir * (to_edge + r + rng.random_range(1.0..6.0));
        if !clear_start(&layout, start, r) {
            continue;
        }
        let h0 = (-dir).to_angle() + rng.random_range(-PI / 8.0..PI / 8.0);
        let actions = walk(rng, cfg, h0, steps);
        let end = simulate_from(scene, state, start, &actions, |_| {});
        if end.pushable.is_some_and(|p| p.distance(b) > 1.0) {
            state.agent = start;
            return Some(to_arrays(actions));
        }
    }
    None
}

/// A walk that starts 0.5–6 units off a wall face, heading into it (±45°); checked with the
/// simulator and kept only if a wall stops the agent. Moves `state.agent` to the start.
fn wall_walk(
    scene: &Scene,
    cfg: &RandomWalkConfig,
    state: &mut EnvState,
    steps: usize,
    rng: &mut impl Rng,
) -> Option<Vec<[f32; 2]>> {
    let Scene::TopDown(s) = scene else { return None };
    let layout = state.layout.clone()?;
    if layout.walls.is_empty() {
        return None;
    }
    let r = s.agent.radius;
    for _ in 0..CROSSING_TRIES {
        let w = layout.walls[rng.random_range(0..layout.walls.len())];
        let size = w.size();
        let side = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
        let (point, normal) = if size.x < size.y {
            let y = rng.random_range(w.min.y..=w.max.y);
            let x = if side > 0.0 { w.max.x } else { w.min.x };
            (Vec2::new(x, y), Vec2::new(side, 0.0))
        } else {
            let x = rng.random_range(w.min.x..=w.max.x);
            let y = if side > 0.0 { w.max.y } else { w.min.y };
            (Vec2::new(x, y), Vec2::new(0.0, side))
        };
        let start = point + normal * (r + rng.random_range(0.5..6.0));
        if !clear_of_walls_and_box(s, &layout, state, start) {
            continue;
        }
        let h0 = (-normal).to_angle() + rng.random_range(-FRAC_PI_4..FRAC_PI_4);
        if let Some(plan) = stopped_walk(scene, cfg, state, start, h0, steps, rng) {
            return Some(plan);
        }
    }
    None
}

/// A walk whose start is 0.5–6 units farther than the agent's radius from a corner of a room's
/// bounding box (within ±45° of its diagonal), heading (±30°) into the corner; checked with
/// the simulator and kept only if a wall stops the agent. Moves `state.agent` to the start.
fn corner_walk(
    scene: &Scene,
    cfg: &RandomWalkConfig,
    state: &mut EnvState,
    steps: usize,
    rng: &mut impl Rng,
) -> Option<Vec<[f32; 2]>> {
    let Scene::TopDown(s) = scene else { return None };
    let layout = state.layout.clone()?;
    if layout.room_count == 0 {
        return None;
    }
    let r = s.agent.radius;
    for _ in 0..CROSSING_TRIES {
        let bounds = layout.room_bounds(rng.random_range(0..layout.room_count) as u16)?;
        let (right, down) = (rng.random_bool(0.5), rng.random_bool(0.5));
        let corner = Vec2::new(
            if right { bounds.max.x } else { bounds.min.x },
            if down { bounds.max.y } else { bounds.min.y },
        );
        let inward = Vec2::new(if right { -1.0 } else { 1.0 }, if down { -1.0 } else { 1.0 });
        let angle = inward.to_angle() + rng.random_range(-FRAC_PI_4..FRAC_PI_4);
        let start = corner + Vec2::from_angle(angle) * (r + rng.random_range(0.5..6.0));
        if !clear_of_walls_and_box(s, &layout, state, start) {
            continue;
        }
        let h0 = (corner - start).to_angle() + rng.random_range(-PI / 6.0..PI / 6.0);
        if let Some(plan) = stopped_walk(scene, cfg, state, start, h0, steps, rng) {
            return Some(plan);
        }
    }
    None
}

/// A walk that starts 1–8 units off a wall that has a door, heading (±30°) at a point of the
/// wall line within 5 units of the door's edge, inside or outside the doorway; checked with the
/// simulator and kept only if the agent reaches the wall (stopped) or passes the door.
fn door_edge_walk(
    scene: &Scene,
    cfg: &RandomWalkConfig,
    state: &mut EnvState,
    steps: usize,
    rng: &mut impl Rng,
) -> Option<Vec<[f32; 2]>> {
    let Scene::TopDown(s) = scene else { return None };
    let layout = state.layout.clone()?;
    if layout.doors.is_empty() {
        return None;
    }
    let r = s.agent.radius;
    for _ in 0..CROSSING_TRIES {
        let door = layout.doors[rng.random_range(0..layout.doors.len())];
        let edge = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
        let along = edge * (door.half_width + rng.random_range(-5.0..5.0));
        let side = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
        let target = door.center + door.normal.perp() * along;
        let off = door.half_thickness + r + rng.random_range(1.0..8.0);
        let start = target + door.normal * side * off;
        if !clear_start(&layout, start, r) {
            continue;
        }
        let start_room = layout.room_of(start);
        let h0 = (-door.normal * side).to_angle() + rng.random_range(-PI / 6.0..PI / 6.0);
        let actions = walk(rng, cfg, h0, steps);
        let mut met = false;
        simulate_from(scene, state, start, &actions, |t| {
            let now = layout.room_of(t.agent);
            met |= t.collided || (now.is_some() && now != start_room);
        });
        if met {
            state.agent = start;
            return Some(to_arrays(actions));
        }
    }
    None
}

/// [`clear_start`] for the scene's agent, and clear of the box where there is one.
fn clear_of_walls_and_box(s: &TopDownScene, layout: &Layout, state: &EnvState, p: Vec2) -> bool {
    let r = s.agent.radius;
    let off_box = match (state.pushable, &s.pushable) {
        (Some(b), Some(spec)) => (p - b).abs().max_element() >= spec.half_size + r + 0.1,
        _ => true,
    };
    clear_start(layout, p, r) && off_box
}

/// A random walk of `steps` from `start` with initial heading `h0`, checked with the simulator
/// and kept only if a wall stops the agent (then `state.agent` moves to `start`).
fn stopped_walk(
    scene: &Scene,
    cfg: &RandomWalkConfig,
    state: &mut EnvState,
    start: Vec2,
    h0: f32,
    steps: usize,
    rng: &mut impl Rng,
) -> Option<Vec<[f32; 2]>> {
    let actions = walk(rng, cfg, h0, steps);
    let mut hit = false;
    simulate_from(scene, state, start, &actions, |t| hit |= t.collided);
    hit.then(|| {
        state.agent = start;
        to_arrays(actions)
    })
}

/// Whether an agent of radius `r` can start at `p`: inside a room and clear of every wall.
fn clear_start(layout: &Layout, p: Vec2, r: f32) -> bool {
    layout.room_of(p).is_some() && !layout.walls.iter().any(|w| w.expand(r).contains_strict(p))
}

/// Runs `actions` in the simulator on a copy of `state` with the agent moved to `start`,
/// calling `after_step` after each step; returns the final state. `state` is not changed.
fn simulate_from(
    scene: &Scene,
    state: &EnvState,
    start: Vec2,
    actions: &[Vec2],
    mut after_step: impl FnMut(&EnvState),
) -> EnvState {
    let mut trial = state.clone();
    trial.agent = start;
    for a in actions {
        sim::step(scene, &mut trial, [a.x, a.y]);
        after_step(&trial);
    }
    trial
}

/// A random walk of `n` steps starting with heading `h0`.
fn walk(rng: &mut impl Rng, cfg: &RandomWalkConfig, h0: f32, n: usize) -> Vec<Vec2> {
    let mut h = h0;
    (0..n)
        .map(|_| {
            let len = truncated_normal(rng, cfg.step_mean, cfg.step_std, cfg.step_min, cfg.step_max);
            let a = Vec2::from_angle(h) * len;
            h += von_mises(rng, 0.0, cfg.kappa);
            a
        })
        .collect()
}

fn to_arrays(v: Vec<Vec2>) -> Vec<[f32; 2]> {
    v.into_iter().map(|a| [a.x, a.y]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn von_mises_concentrates_around_mean() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let draws: Vec<f32> = (0..20_000).map(|_| von_mises(&mut rng, 0.0, 5.0)).collect();
        let mean_cos = draws.iter().map(|a| a.cos()).sum::<f32>() / draws.len() as f32;
        // E[cos θ] = I1(κ)/I0(κ) = 0.8934 for κ = 5.
        assert!((mean_cos - 0.8934).abs() < 0.01, "mean cos {mean_cos}");
        let mean_sin = draws.iter().map(|a| a.sin()).sum::<f32>() / draws.len() as f32;
        assert!(mean_sin.abs() < 0.01);
    }

    #[test]
    fn truncated_normal_stays_in_bounds() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let v: Vec<f32> = (0..10_000)
            .map(|_| truncated_normal(&mut rng, 1.0, 0.4, 0.2, 1.8))
            .collect();
        assert!(v.iter().all(|x| (0.2..=1.8).contains(x)));
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        assert!((mean - 1.0).abs() < 0.02, "mean {mean}");
    }
}
