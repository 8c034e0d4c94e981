//! The pure simulator: state, episode sampling and one physics step, for both scene kinds.
//! Bevy's `FixedUpdate` calls [`step`]; planners that need the true dynamics (the oracle) call
//! it directly. Deterministic: no hidden randomness, every draw comes from the RNG passed in.

use super::layout::{Layout, Rect};
use super::scene::{FirstPersonScene, GoalObject, RoomPick, Scene, TopDownScene};
use glam::Vec2;
use rand::{Rng, RngExt};
use std::sync::Arc;

/// How far short of a wall a blocked move stops, so the agent stays strictly outside.
const CONTACT_GAP: f32 = 1e-3;

/// The full state of one environment.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvState {
    /// The drawn layout (top-down scenes), shared between states of one episode.
    pub layout: Option<Arc<Layout>>,
    /// Agent position: top-down (x right, y down), first-person (x, z) on the floor.
    pub agent: Vec2,
    /// Heading in radians (first-person): 0 looks along +x, positive turns toward +z.
    pub heading: f32,
    /// Box position (Push-Box).
    pub pushable: Option<Vec2>,
    /// Goal position: of the agent, or of the box when there is one.
    pub goal: Vec2,
    /// Index of the goal object (first-person).
    pub goal_object: Option<usize>,
    /// Heading of the goal pose (first-person: `goal` is where the goal image is seen from,
    /// facing the goal object; 0 for top-down scenes).
    pub goal_heading: f32,
    /// Steps taken in this episode.
    pub steps: u32,
    /// Whether the last step was blocked by a wall, object or box that did not move.
    pub collided: bool,
}

impl EnvState {
    /// Distance of the tracked thing (box if any, else agent) to the goal.
    pub fn goal_distance(&self, scene: &Scene) -> f32 {
        match scene {
            Scene::TopDown(_) => self.pushable.unwrap_or(self.agent).distance(self.goal),
            Scene::FirstPerson(s) => {
                let o = &s.objects[self.goal_object.unwrap_or(0)];
                (self.agent.distance(o.centre()) - o.radius - s.agent.radius).max(0.0)
            }
        }
    }

    /// Whether the goal is reached now.
    pub fn success(&self, scene: &Scene) -> bool {
        self.goal_distance(scene) <= scene.episode().success_radius
    }

    /// Ground truth as a flat vector: agent (x, y), heading, box (x, y) or NaN, goal (x, y).
    pub fn to_vec(&self) -> [f32; STATE_DIM] {
        let b = self.pushable.unwrap_or(Vec2::NAN);
        [
            self.agent.x,
            self.agent.y,
            self.heading,
            b.x,
            b.y,
            self.goal.x,
            self.goal.y,
        ]
    }
}

/// Length of [`EnvState::to_vec`].
pub const STATE_DIM: usize = 7;
/// Names of the entries of [`EnvState::to_vec`].
pub const STATE_NAMES: [&str; STATE_DIM] = ["agent_x", "agent_y", "heading", "box_x", "box_y", "goal_x", "goal_y"];

/// An episode start could not be drawn (the scene leaves no room for it).
#[derive(Debug, Clone, thiserror::Error)]
#[error("scene `{scene}`: cannot place {what} after {tries} tries; the layout leaves no room for it (check `task.margin` and the walls)")]
pub struct PlacementError {
    pub scene: String,
    pub what: &'static str,
    pub tries: usize,
}

const PLACEMENT_TRIES: usize = 10_000;

/// Draws a new episode: layout, start and goal.
pub fn sample_episode(scene: &Scene, rng: &mut impl Rng) -> Result<EnvState, PlacementError> {
    match scene {
        Scene::TopDown(s) => sample_top_down(s, rng),
        Scene::FirstPerson(s) => sample_first_person(s, rng),
    }
}

fn sample_top_down(s: &TopDownScene, rng: &mut impl Rng) -> Result<EnvState, PlacementError> {
    let fail = |what| PlacementError {
        scene: s.name.clone(),
        what,
        tries: PLACEMENT_TRIES,
    };
    let layout = Layout::sample(s, rng);
    if layout.room_count == 0 {
        return Err(fail("anything (the walls enclose no room)"));
    }
    let margin = s.task.margin;
    let room_count = layout.room_count as u16;
    // Doors between each pair of rooms (`usize::MAX`: no way through).
    let hops = layout.room_hops();
    let n = layout.room_count;
    let mut start_room = rng.random_range(0..room_count);
    let mut goal_room = match s.task.rooms {
        RoomPick::Any => rng.random_range(0..room_count),
        RoomPick::DifferentRooms => {
            if room_count < 2 {
                return Err(fail("start and goal in different rooms (only one room)"));
            }
            let r = rng.random_range(0..room_count - 1);
            if r >= start_room {
                r + 1
            } else {
                r
            }
        }
        RoomPick::FarthestRooms => {
            let row = &hops[start_room as usize * n..(start_room as usize + 1) * n];
            let far = row.iter().filter(|&&h| h != usize::MAX).max().copied().unwrap_or(0);
            let candidates: Vec<u16> = (0..n as u16).filter(|&r| row[r as usize] == far).collect();
            candidates[rng.random_range(0..candidates.len())]
        }
    };
    // Walls without doors can cut rooms off: a goal that cannot be reached is drawn again among
    // those that can (no draw is added where every room reaches every other).
    let reachable = |a: u16, b: u16| hops[a as usize * n + b as usize] != usize::MAX;
    if !reachable(start_room, goal_room) {
        let other = s.task.rooms == RoomPick::DifferentRooms;
        let partners = |a: u16| -> Vec<u16> {
            (0..room_count)
                .filter(|&b| reachable(a, b) && !(other && b == a))
                .collect()
        };
        if partners(start_room).is_empty() {
            let starts: Vec<u16> = (0..room_count).filter(|&a| !partners(a).is_empty()).collect();
            if starts.is_empty() {
                return Err(fail(
                    "start and goal in different rooms joined by a door (no door joins any two rooms)",
                ));
            }
            start_room = starts[rng.random_range(0..starts.len())];
        }
        let goals = partners(start_room);
        goal_room = goals[rng.random_range(0..goals.len())];
    }
    let agent_radius = s.agent.radius;
    let (agent, pushable, goal) = if let Some(p) = &s.pushable {
        // Box start and goal in their rooms, clear of walls by a box and a margin; the agent
        // anywhere clear of the box.
        let clearance = p.half_size * std::f32::consts::SQRT_2 + margin;
        let box_start = place(&layout, rng, Some(start_room), clearance, &[]).ok_or_else(|| fail("the box"))?;
        let goal = place(
            &layout,
            rng,
            Some(goal_room),
            clearance,
            &[(box_start, p.min_goal_distance)],
        )
        .ok_or_else(|| fail("the box's goal"))?;
        let keep_off = p.half_size * std::f32::consts::SQRT_2 + agent_radius + margin;
        let agent = place(&layout, rng, None, margin.max(agent_radius), &[(box_start, keep_off)])
            .ok_or_else(|| fail("the agent"))?;
        (agent, Some(box_start), goal)
    } else {
        // The margin counts from the wall pixels' edges (never less than the body).
        let clearance = margin.max(agent_radius);
        let agent = place(&layout, rng, Some(start_room), clearance, &[]).ok_or_else(|| fail("the start"))?;
        let goal = place(&layout, rng, Some(goal_room), clearance, &[]).ok_or_else(|| fail("the goal"))?;
        (agent, None, goal)
    };
    Ok(EnvState {
        layout: Some(Arc::new(layout)),
        agent,
        heading: 0.0,
        pushable,
        goal,
        goal_object: None,
        goal_heading: 0.0,
        steps: 0,
        collided: false,
    })
}

/// Draws a point uniformly in `room` (or anywhere inside the border) that keeps `clearance`
/// from every wall and the given distances from the given points.
fn place(
    layout: &Layout,
    rng: &mut impl Rng,
    room: Option<u16>,
    clearance: f32,
    avoid: &[(Vec2, f32)],
) -> Option<Vec2> {
    let full = Rect {
        min: Vec2::ZERO,
        max: Vec2::splat(layout.size as f32 - 1.0),
    };
    let b = room.and_then(|r| layout.room_bounds(r)).unwrap_or(full);
    for _ in 0..PLACEMENT_TRIES {
        let p = Vec2::new(rng.random_range(b.min.x..b.max.x), rng.random_range(b.min.y..b.max.y));
        let in_room = match room {
            Some(r) => layout.room_of(p) == Some(r),
            None => layout.room_of(p).is_some(),
        };
        if in_room && layout.wall_distance(p) >= clearance && avoid.iter().all(|(q, d)| p.distance(*q) >= *d) {
            return Some(p);
        }
    }
    None
}

fn sample_first_person(s: &FirstPersonScene, rng: &mut impl Rng) -> Result<EnvState, PlacementError> {
    let fail = |what| PlacementError {
        scene: s.name.clone(),
        what,
        tries: PLACEMENT_TRIES,
    };
    let goal_object = match &s.goal {
        GoalObject::Named(n) => s.objects.iter().position(|o| &o.name == n).unwrap_or(0),
        GoalObject::Random => rng.random_range(0..s.objects.len()),
    };
    let walls = s.wall_rects();
    let r = s.agent.radius;
    // Free for the agent's body, with `margin` to spare.
    let free = |p: Vec2, margin: f32| {
        let m = r + margin;
        p.x >= m
            && p.y >= m
            && p.x <= s.size - m
            && p.y <= s.size - m
            && s.objects.iter().all(|o| p.distance(o.centre()) >= o.radius + m)
            && walls.iter().all(|w| w.distance(p) >= m)
    };
    // The goal pose: in front of the goal object, facing it, on a side that is free.
    let o = &s.objects[goal_object];
    let centre = o.centre();
    let mut goal = None;
    for _ in 0..PLACEMENT_TRIES {
        let pose = goal_pose(
            s,
            goal_object,
            rng.random_range(-std::f32::consts::PI..std::f32::consts::PI),
        );
        if free(pose.0, 1e-3) {
            goal = Some(pose);
            break;
        }
    }
    let (goal, goal_heading) = goal.ok_or_else(|| fail("the goal pose (no free side of the goal object)"))?;
    for _ in 0..PLACEMENT_TRIES {
        let p = Vec2::new(rng.random_range(0.0..s.size), rng.random_range(0.0..s.size));
        if !free(p, s.margin) || p.distance(goal) < s.start.min_goal_distance {
            continue;
        }
        if s.start.behind_wall && !walls.iter().any(|w| sweep(p, goal - p, w).is_some()) {
            continue;
        }
        // Not at the goal already.
        if p.distance(centre) - o.radius - r <= s.episode.success_radius {
            continue;
        }
        return Ok(EnvState {
            layout: None,
            agent: p,
            heading: rng.random_range(-std::f32::consts::PI..std::f32::consts::PI),
            pushable: None,
            goal,
            goal_object: Some(goal_object),
            goal_heading,
            steps: 0,
            collided: false,
        });
    }
    Err(fail("the agent"))
}

/// The pose `goal_gap` in front of object `object`'s surface in direction `angle` (radians,
/// from its centre) and facing it: where a first-person goal image is seen from. Not checked
/// for walls or other objects.
pub fn goal_pose(s: &FirstPersonScene, object: usize, angle: f32) -> (Vec2, f32) {
    let o = &s.objects[object];
    let at = o.centre() + Vec2::from_angle(angle) * (o.radius + s.agent.radius + s.goal_gap);
    (at, wrap_angle(angle + std::f32::consts::PI))
}

/// Clips an action to the scene's limits.
pub fn clip_action(scene: &Scene, action: [f32; 2]) -> [f32; 2] {
    let clean = |v: f32| if v.is_finite() { v } else { 0.0 };
    match scene {
        Scene::TopDown(s) => {
            let m = s.agent.max_step;
            [clean(action[0]).clamp(-m, m), clean(action[1]).clamp(-m, m)]
        }
        Scene::FirstPerson(s) => {
            let f = s.agent.max_forward;
            let t = s.agent.max_turn_degrees.to_radians();
            [clean(action[0]).clamp(-f, f), clean(action[1]).clamp(-t, t)]
        }
    }
}

/// The state the goal observation shows: the agent at its goal; with a box, the box at its
/// goal and the agent just behind it, where pushing it straight from its start would leave it.
pub fn goal_state(scene: &Scene, s: &EnvState) -> EnvState {
    let mut g = s.clone();
    match (scene, s.pushable) {
        (Scene::TopDown(t), Some(b)) => {
            let half = t.pushable.as_ref().map_or(0.0, |p| p.half_size);
            let dir = (s.goal - b).normalize_or(Vec2::X);
            let to_edge = half / dir.x.abs().max(dir.y.abs());
            g.pushable = Some(s.goal);
            g.agent = s.goal - dir * (to_edge + t.agent.radius + 0.5);
        }
        (Scene::FirstPerson(_), _) => {
            g.agent = s.goal;
            g.heading = s.goal_heading;
        }
        _ => g.agent = s.goal,
    }
    g
}

/// One physics step: clip the action, move the agent (and box), stop at walls.
pub fn step(scene: &Scene, state: &mut EnvState, action: [f32; 2]) {
    let action = clip_action(scene, action);
    match scene {
        Scene::TopDown(s) => step_top_down(s, state, Vec2::from(action)),
        Scene::FirstPerson(s) => step_first_person(s, state, action),
    }
    state.steps += 1;
}

/// Earliest fraction `t ∈ [0, 1]` of the move `p → p + d` at which the point enters `rect`,
/// or `None` if it does not. A point already inside (or touching) and moving further in
/// returns `Some(0)`.
pub fn sweep(p: Vec2, d: Vec2, rect: &Rect) -> Option<f32> {
    let mut t_enter = 0.0f32;
    let mut t_exit = 1.0f32;
    for axis in 0..2 {
        let (p, d, lo, hi) = (p[axis], d[axis], rect.min[axis], rect.max[axis]);
        if d.abs() < 1e-12 {
            if p <= lo || p >= hi {
                return None;
            }
        } else {
            let (a, b) = ((lo - p) / d, (hi - p) / d);
            let (near, far) = if a < b { (a, b) } else { (b, a) };
            t_enter = t_enter.max(near);
            t_exit = t_exit.min(far);
            if t_enter >= t_exit {
                return None;
            }
        }
    }
    (t_enter < 1.0 && t_exit > 0.0).then_some(t_enter)
}

/// Moves a point by `d` through `rects`, stopping just short of the first one hit.
/// Returns the travelled fraction and whether anything was hit.
fn move_point(p: Vec2, d: Vec2, rects: impl Iterator<Item = Rect>) -> (f32, bool) {
    let len = d.length();
    if len == 0.0 {
        return (0.0, false);
    }
    // A rectangle the point already sits in does not hold it (physics never puts it there,
    // but a state set from outside might): it can move out.
    let hit = rects
        .filter(|r| !r.contains_strict(p))
        .filter_map(|r| sweep(p, d, &r))
        .fold(None, |m: Option<f32>, t| Some(m.map_or(t, |m| m.min(t))));
    match hit {
        Some(t) => (((t * len - CONTACT_GAP) / len).max(0.0), true),
        None => (1.0, false),
    }
}

fn step_top_down(s: &TopDownScene, state: &mut EnvState, d: Vec2) {
    let layout = state.layout.clone().expect("top-down state has a layout");
    let r = s.agent.radius;
    let walls = || layout.walls.iter().map(move |w| w.expand(r));
    let (t_wall, hit_wall) = move_point(state.agent, d, walls());
    let Some(box_pos) = state.pushable else {
        state.agent += d * t_wall;
        state.collided = hit_wall;
        return;
    };
    let half = s.pushable.as_ref().map_or(0.0, |p| p.half_size);
    let box_rect = Rect {
        min: box_pos - Vec2::splat(half),
        max: box_pos + Vec2::splat(half),
    }
    .expand(r);
    match sweep(state.agent, d, &box_rect).filter(|&t| t <= t_wall) {
        None => {
            state.agent += d * t_wall;
            state.collided = hit_wall;
        }
        Some(t_box) => {
            // Contact: the agent reaches the box, then pushes it along the face's normal by the
            // rest of its move; the box stops at walls, and the agent stays in contact.
            let contact = state.agent + d * ((t_box * d.length() - CONTACT_GAP).max(0.0) / d.length());
            let rest = d * (1.0 - t_box);
            let q = contact - box_pos;
            let normal_axis = if (q.x.abs() - (half + r)).abs() < (q.y.abs() - (half + r)).abs() {
                0
            } else {
                1
            };
            let mut push = Vec2::ZERO;
            push[normal_axis] = rest[normal_axis];
            let box_walls = layout.walls.iter().map(|w| w.expand(half));
            let (t_push, box_blocked) = move_point(box_pos, push, box_walls);
            let moved = push * t_push;
            state.pushable = Some(box_pos + moved);
            // The agent follows the box, itself stopped by walls.
            let (t_follow, agent_blocked) = move_point(contact, moved, walls());
            state.agent = contact + moved * t_follow;
            state.collided = box_blocked || agent_blocked || moved.length() < push.length() * 0.5;
        }
    }
}

fn step_first_person(s: &FirstPersonScene, state: &mut EnvState, action: [f32; 2]) {
    state.heading = wrap_angle(state.heading + action[1]);
    let d = Vec2::new(state.heading.cos(), state.heading.sin()) * action[0];
    let r = s.agent.radius;
    let room = Rect {
        min: Vec2::splat(r),
        max: Vec2::splat(s.size - r),
    };
    // Walls: stop at the room's inner boundary (the agent moves inside `room`).
    let mut t = 1.0f32;
    let mut hit = false;
    for axis in 0..2 {
        let target = state.agent[axis] + d[axis];
        if d[axis] != 0.0 && (target < room.min[axis] || target > room.max[axis]) {
            let bound = if d[axis] < 0.0 { room.min[axis] } else { room.max[axis] };
            let ta = ((bound - state.agent[axis]) / d[axis]).clamp(0.0, 1.0);
            t = t.min(ta);
            hit = true;
        }
    }
    // Inner walls: rectangles grown by `r`.
    for w in &s.walls {
        if let Some(tw) = sweep(state.agent, d, &w.rect().expand(r)) {
            if tw < t {
                t = tw;
                hit = true;
            }
        }
    }
    // Objects: circles of radius `o.radius + r`.
    for o in &s.objects {
        if let Some(tc) = sweep_circle(state.agent, d, o.centre(), o.radius + r) {
            if tc < t {
                t = tc;
                hit = true;
            }
        }
    }
    let len = d.length();
    if hit && len > 0.0 {
        t = ((t * len - CONTACT_GAP) / len).max(0.0);
    }
    state.agent += d * t;
    state.collided = hit;
}

/// Earliest fraction at which the point `p + t·d` enters the circle (`None` if never, or if it
/// starts inside and moves out).
fn sweep_circle(p: Vec2, d: Vec2, c: Vec2, radius: f32) -> Option<f32> {
    let f = p - c;
    let a = d.dot(d);
    if a == 0.0 {
        return None;
    }
    let b = 2.0 * f.dot(d);
    let cc = f.dot(f) - radius * radius;
    if cc <= 0.0 {
        // Inside or touching: blocked only when moving inward.
        return (b < 0.0).then_some(0.0);
    }
    let disc = b * b - 4.0 * a * cc;
    if disc < 0.0 {
        return None;
    }
    let t = (-b - disc.sqrt()) / (2.0 * a);
    (0.0..=1.0).contains(&t).then_some(t)
}

fn wrap_angle(a: f32) -> f32 {
    let tau = std::f32::consts::TAU;
    let mut a = a % tau;
    if a > std::f32::consts::PI {
        a -= tau;
    } else if a < -std::f32::consts::PI {
        a += tau;
    }
    a
}

/// Whether the agent (or box) overlaps any wall: the invariant physics must keep.
pub fn inside_wall(scene: &Scene, state: &EnvState) -> bool {
    match scene {
        Scene::TopDown(s) => {
            let layout = state.layout.as_ref().expect("top-down state has a layout");
            let agent_in = layout
                .walls
                .iter()
                .any(|w| w.expand(s.agent.radius).contains_strict(state.agent));
            let box_in = match (state.pushable, &s.pushable) {
                (Some(b), Some(p)) => layout.walls.iter().any(|w| w.expand(p.half_size).contains_strict(b)),
                _ => false,
            };
            agent_in || box_in
        }
        Scene::FirstPerson(s) => {
            let r = s.agent.radius;
            let p = state.agent;
            let in_wall = s.walls.iter().any(|w| w.rect().expand(r - 1e-4).contains_strict(p));
            in_wall || p.x < r - 1e-4 || p.y < r - 1e-4 || p.x > s.size - r + 1e-4 || p.y > s.size - r + 1e-4
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_finds_entry_fraction() {
        let r = Rect {
            min: Vec2::new(10.0, -5.0),
            max: Vec2::new(12.0, 5.0),
        };
        assert_eq!(sweep(Vec2::new(0.0, 0.0), Vec2::new(20.0, 0.0), &r), Some(0.5));
        assert_eq!(sweep(Vec2::new(0.0, 0.0), Vec2::new(5.0, 0.0), &r), None);
        assert_eq!(sweep(Vec2::new(0.0, 10.0), Vec2::new(20.0, 0.0), &r), None);
        // Tunnelling: a long move across a thin wall is caught.
        let thin = Rect {
            min: Vec2::new(10.0, -5.0),
            max: Vec2::new(10.01, 5.0),
        };
        assert!(sweep(Vec2::new(9.0, 0.0), Vec2::new(2.0, 0.3), &thin).is_some());
    }

    #[test]
    fn circle_sweep() {
        let t = sweep_circle(Vec2::ZERO, Vec2::new(10.0, 0.0), Vec2::new(5.0, 0.0), 1.0).unwrap();
        assert!((t - 0.4).abs() < 1e-6);
        assert_eq!(
            sweep_circle(Vec2::ZERO, Vec2::new(10.0, 0.0), Vec2::new(5.0, 3.0), 1.0),
            None
        );
    }
}
