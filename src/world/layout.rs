//! A top-down scene's layout for one episode: the scene's walls with their random positions and
//! doors drawn, as rectangles, plus the rooms they enclose.

use super::scene::{Axis, Pick, TopDownScene};
use glam::Vec2;
use rand::{Rng, RngExt};

/// An axis-aligned rectangle `[min, max]` in arena units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    pub min: Vec2,
    pub max: Vec2,
}

impl Rect {
    /// The rectangle covered by pixels `x0..=x1` × `y0..=y1` (pixel `i` spans `i-0.5..i+0.5`).
    pub fn from_pixels(x0: i32, x1: i32, y0: i32, y1: i32) -> Rect {
        Rect {
            min: Vec2::new(x0 as f32 - 0.5, y0 as f32 - 0.5),
            max: Vec2::new(x1 as f32 + 0.5, y1 as f32 + 0.5),
        }
    }

    pub fn expand(&self, by: f32) -> Rect {
        Rect {
            min: self.min - Vec2::splat(by),
            max: self.max + Vec2::splat(by),
        }
    }

    pub fn center(&self) -> Vec2 {
        (self.min + self.max) * 0.5
    }

    pub fn size(&self) -> Vec2 {
        self.max - self.min
    }

    /// Strictly inside (touching the boundary is outside).
    pub fn contains_strict(&self, p: Vec2) -> bool {
        p.x > self.min.x && p.x < self.max.x && p.y > self.min.y && p.y < self.max.y
    }

    /// Euclidean distance from `p` to the rectangle (0 inside).
    pub fn distance(&self, p: Vec2) -> f32 {
        let d = (self.min - p).max(p - self.max).max(Vec2::ZERO);
        d.length()
    }
}

/// One door of a drawn layout: where it is and which way it crosses its wall.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Door {
    /// Centre of the opening.
    pub center: Vec2,
    /// Unit vector across the wall.
    pub normal: Vec2,
    /// Half the opening's width, in units.
    pub half_width: f32,
    /// Half the wall's thickness, in units.
    pub half_thickness: f32,
}

/// The drawn layout of one episode of a top-down scene.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Side of the arena in pixels.
    pub size: u32,
    /// Solid wall pieces (doors already cut out).
    pub walls: Vec<Rect>,
    pub doors: Vec<Door>,
    /// Room label of each pixel (`size × size`, row-major, `y * size + x`), `None` for walls
    /// (with doors closed) and the outside of the arena's border.
    pub rooms: Vec<Option<u16>>,
    pub room_count: usize,
    /// Rooms joined by each door.
    pub door_rooms: Vec<(u16, u16)>,
    /// The drawn wall centres (`at`) and door centres, per wall, for reports.
    pub drawn: Vec<(Axis, i32, Vec<i32>)>,
}

impl Layout {
    /// Draws a layout from `scene`: random wall positions, orientations and doors.
    pub fn sample(scene: &TopDownScene, rng: &mut impl Rng) -> Layout {
        let size = scene.size as i32;
        let mut walls = Vec::new();
        let mut doors = Vec::new();
        let mut drawn = Vec::new();
        let mut closed = vec![false; (size * size) as usize];
        for w in &scene.walls {
            let axis = match w.axis {
                Axis::Either => {
                    if rng.random_bool(0.5) {
                        Axis::Vertical
                    } else {
                        Axis::Horizontal
                    }
                }
                a => a,
            };
            let at = pick(w.at, rng);
            let half = (w.thickness as i32 - 1) / 2;
            // Openings along the wall, sorted.
            let mut openings: Vec<(i32, i32, i32)> = w
                .doors
                .iter()
                .map(|d| {
                    let c = pick(d.at, rng);
                    (c - d.half_width as i32, c + d.half_width as i32, c)
                })
                .collect();
            openings.sort();
            let door_centres: Vec<i32> = openings.iter().map(|o| o.2).collect();
            // Solid pieces between openings.
            let mut start = w.from;
            let mut pieces = Vec::new();
            for &(lo, hi, _) in &openings {
                if lo > start {
                    pieces.push((start, lo - 1));
                }
                start = start.max(hi + 1);
            }
            if start <= w.to {
                pieces.push((start, w.to));
            }
            let to_rect = |a: i32, b: i32| match axis {
                Axis::Vertical => Rect::from_pixels(at - half, at + half, a, b),
                _ => Rect::from_pixels(a, b, at - half, at + half),
            };
            walls.extend(pieces.iter().map(|&(a, b)| to_rect(a, b)));
            for &(lo, hi, c) in &openings {
                let (center, normal) = match axis {
                    Axis::Vertical => (Vec2::new(at as f32, c as f32), Vec2::X),
                    _ => (Vec2::new(c as f32, at as f32), Vec2::Y),
                };
                doors.push(Door {
                    center,
                    normal,
                    half_width: (hi - lo + 1) as f32 / 2.0,
                    half_thickness: w.thickness as f32 / 2.0,
                });
            }
            // The wall with its doors closed, for room labelling.
            for along in w.from..=w.to {
                for across in at - half..=at + half {
                    let (x, y) = match axis {
                        Axis::Vertical => (across, along),
                        _ => (along, across),
                    };
                    closed[(y * size + x) as usize] = true;
                }
            }
            drawn.push((axis, at, door_centres));
        }
        let (rooms, room_count) = label_rooms(&closed, size);
        let door_rooms = doors
            .iter()
            .map(|d| {
                let off = d.normal * (d.half_thickness + 0.5);
                let a = room_at(&rooms, size, d.center - off).unwrap_or(u16::MAX);
                let b = room_at(&rooms, size, d.center + off).unwrap_or(u16::MAX);
                (a, b)
            })
            .collect();
        Layout {
            size: scene.size,
            walls,
            doors,
            rooms,
            room_count,
            door_rooms,
            drawn,
        }
    }

    /// Room of the pixel containing `p`, if any.
    pub fn room_of(&self, p: Vec2) -> Option<u16> {
        room_at(&self.rooms, self.size as i32, p)
    }

    /// Whether the straight move `a → b` goes from one room into another through a wall
    /// rather than a door (for judging imagined paths; a point in no room never counts).
    pub fn crosses_wall(&self, a: Vec2, b: Vec2) -> bool {
        match (self.room_of(a), self.room_of(b)) {
            (Some(x), Some(y)) if x != y => self.walls.iter().any(|w| super::sim::sweep(a, b - a, w).is_some()),
            _ => false,
        }
    }

    /// Whether a path (points joined by straight moves) goes from one room into another
    /// through a wall: points in no room (in a wall, in a doorway) are skipped, and the move
    /// from the last point in one room to the first in the next is judged by
    /// [`crosses_wall`](Self::crosses_wall).
    pub fn path_crosses_wall(&self, points: &[Vec2]) -> bool {
        let mut last: Option<Vec2> = None;
        for &p in points {
            if self.room_of(p).is_none() {
                continue;
            }
            if let Some(q) = last {
                if self.crosses_wall(q, p) {
                    return true;
                }
            }
            last = Some(p);
        }
        false
    }

    /// Distance from `p` to the nearest wall.
    pub fn wall_distance(&self, p: Vec2) -> f32 {
        self.walls.iter().map(|w| w.distance(p)).fold(f32::INFINITY, f32::min)
    }

    /// Number of doors between each pair of rooms along the fewest-doors path (`usize::MAX`
    /// when unreachable), as `hops[a * room_count + b]`.
    pub fn room_hops(&self) -> Vec<usize> {
        let n = self.room_count;
        let mut hops = vec![usize::MAX; n * n];
        for s in 0..n {
            hops[s * n + s] = 0;
            let mut frontier = vec![s];
            let mut d = 0;
            while !frontier.is_empty() {
                d += 1;
                let mut next = Vec::new();
                for &r in &frontier {
                    for &(a, b) in &self.door_rooms {
                        let (a, b) = (a as usize, b as usize);
                        let other = if a == r {
                            b
                        } else if b == r {
                            a
                        } else {
                            continue;
                        };
                        if other < n && hops[s * n + other] == usize::MAX {
                            hops[s * n + other] = d;
                            next.push(other);
                        }
                    }
                }
                frontier = next;
            }
        }
        hops
    }

    /// Bounding box of a room's pixels, in units.
    pub fn room_bounds(&self, room: u16) -> Option<Rect> {
        let size = self.size as i32;
        let mut bounds: Option<(i32, i32, i32, i32)> = None;
        for (i, r) in self.rooms.iter().enumerate() {
            if *r == Some(room) {
                let (x, y) = (i as i32 % size, i as i32 / size);
                bounds = Some(match bounds {
                    None => (x, x, y, y),
                    Some((x0, x1, y0, y1)) => (x0.min(x), x1.max(x), y0.min(y), y1.max(y)),
                });
            }
        }
        bounds.map(|(x0, x1, y0, y1)| Rect::from_pixels(x0, x1, y0, y1))
    }
}

fn pick(p: Pick, rng: &mut impl Rng) -> i32 {
    match p {
        Pick::Fixed(v) => v,
        Pick::Range(lo, hi) => rng.random_range(lo..hi),
    }
}

fn room_at(rooms: &[Option<u16>], size: i32, p: Vec2) -> Option<u16> {
    let (x, y) = (p.x.round() as i32, p.y.round() as i32);
    if x < 0 || y < 0 || x >= size || y >= size {
        return None;
    }
    rooms[(y * size + x) as usize]
}

/// Labels 4-connected free regions; regions touching the image edge (outside the border) get
/// no label.
fn label_rooms(closed: &[bool], size: i32) -> (Vec<Option<u16>>, usize) {
    let n = (size * size) as usize;
    let mut comp = vec![u32::MAX; n];
    let mut touches_edge = Vec::new();
    let mut count = 0u32;
    for start in 0..n {
        if closed[start] || comp[start] != u32::MAX {
            continue;
        }
        let mut edge = false;
        let mut stack = vec![start];
        comp[start] = count;
        while let Some(i) = stack.pop() {
            let (x, y) = (i as i32 % size, i as i32 / size);
            if x == 0 || y == 0 || x == size - 1 || y == size - 1 {
                edge = true;
            }
            for (dx, dy) in [(1, 0), (-1, 0), (0, 1), (0, -1)] {
                let (nx, ny) = (x + dx, y + dy);
                if nx < 0 || ny < 0 || nx >= size || ny >= size {
                    continue;
                }
                let j = (ny * size + nx) as usize;
                if !closed[j] && comp[j] == u32::MAX {
                    comp[j] = count;
                    stack.push(j);
                }
            }
        }
        touches_edge.push(edge);
        count += 1;
    }
    let mut relabel = vec![None; count as usize];
    let mut rooms = 0u16;
    for (c, edge) in touches_edge.iter().enumerate() {
        if !edge {
            relabel[c] = Some(rooms);
            rooms += 1;
        }
    }
    let labels = comp
        .iter()
        .map(|&c| if c == u32::MAX { None } else { relabel[c as usize] })
        .collect();
    (labels, rooms as usize)
}
