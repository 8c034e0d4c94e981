//! Scene files: RON layouts (walls, objects, agent, goal sampler, camera), loaded with serde
//! and validated. A scene holds layout only, never hyperparameters.
//!
//! Two kinds of scene exist:
//! - [`TopDownScene`]: a flat arena seen from above (Two-Rooms, Four-Rooms, Push-Box). One unit
//!   of the arena is one pixel of the observation; pixel `i` is centred on coordinate `i`.
//! - [`FirstPersonScene`]: a 3-D room seen by a perspective camera on the agent.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A scene file, either kind. In RON the kind is the outer name: `TopDown(name: "…", …)`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Scene {
    /// A flat arena rendered from above.
    TopDown(TopDownScene),
    /// A 3-D room seen from the agent's eyes.
    FirstPerson(FirstPersonScene),
}

/// A flat, square arena with axis-aligned walls seen from above.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopDownScene {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Side of the square arena, in units (= pixels of the observation).
    pub size: u32,
    /// Walls, each a bar of whole pixels, optionally with doors.
    pub walls: Vec<WallSpec>,
    pub agent: AgentSpec,
    /// A movable box the agent can push (Push-Box); its goal is a box position.
    #[serde(default)]
    pub pushable: Option<PushableSpec>,
    /// How start and goal are drawn for each episode.
    pub task: TopDownTask,
    pub episode: EpisodeSpec,
}

/// A wall: a bar `thickness` pixels thick whose first pixel row/column is `at`, spanning
/// pixel indices `from..=to` along its length. Doors are openings in it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WallSpec {
    pub axis: Axis,
    /// Index of the wall's centre pixel row (horizontal) or column (vertical).
    pub at: Pick,
    /// Thickness in pixels (odd, so the wall is centred on `at`).
    pub thickness: u32,
    /// First pixel along the wall.
    pub from: i32,
    /// Last pixel along the wall (inclusive).
    pub to: i32,
    #[serde(default)]
    pub doors: Vec<DoorSpec>,
}

/// An opening in a wall: pixels `at - half_width ..= at + half_width` along the wall are open.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DoorSpec {
    pub at: Pick,
    pub half_width: u32,
}

/// Orientation of a wall. `Either` draws vertical or horizontal per episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Axis {
    /// A wall along y at a fixed x.
    Vertical,
    /// A wall along x at a fixed y.
    Horizontal,
    /// Vertical or horizontal with equal probability, drawn per episode.
    Either,
}

/// A whole number that is fixed or drawn uniformly per episode from `lo..hi` (half-open).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Pick {
    Fixed(i32),
    Range(i32, i32),
}

impl Pick {
    /// The smallest and largest value this pick can take.
    pub fn bounds(&self) -> (i32, i32) {
        match *self {
            Pick::Fixed(v) => (v, v),
            Pick::Range(lo, hi) => (lo, hi - 1),
        }
    }
}

/// The agent of a top-down scene: a point mass drawn as a Gaussian blob.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// Collision radius in units; the agent's centre keeps this far from walls.
    pub radius: f32,
    /// Standard deviation of the drawn Gaussian blob, in pixels.
    pub blob_std: f32,
    /// Each action component is clipped to `[-max_step, max_step]`.
    pub max_step: f32,
}

/// A square box that the agent pushes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushableSpec {
    /// Half the side of the square box, in units.
    pub half_size: f32,
    /// Smallest distance between the box's start and its goal.
    pub min_goal_distance: f32,
}

/// How each episode's start and goal are drawn in a top-down scene.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopDownTask {
    pub rooms: RoomPick,
    /// Start and goal keep at least this distance from every wall pixel (and at least the
    /// agent's radius); a box keeps this distance plus its half-diagonal.
    pub margin: f32,
}

/// Which rooms start and goal are drawn in. Rooms are the regions the walls enclose with the
/// doors closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoomPick {
    /// Any room for both (and, with a box, box and agent anywhere).
    Any,
    /// Start and goal in two different rooms.
    DifferentRooms,
    /// The goal in a room as many doors away from the start's room as the layout allows.
    FarthestRooms,
}

/// Episode length and success rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpisodeSpec {
    /// Steps allowed per episode.
    pub max_steps: u32,
    /// Success when the tracked thing (agent, or the box) ends within this distance of the goal.
    pub success_radius: f32,
    /// The task's own cost terms, which the configurator adds to the goal energy.
    #[serde(default)]
    pub task_cost: TaskCost,
}

pub use amisim_core::configurator::TaskCost;

/// A 3-D room with coloured objects, seen by a perspective camera on the agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirstPersonScene {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Side of the square room, in metres; the room spans `0..size` on x and z.
    pub size: f32,
    pub wall_height: f32,
    /// Observation width and height in pixels.
    pub resolution: u32,
    /// Vertical field of view of the agent's camera, in degrees.
    pub fov_degrees: f32,
    pub agent: FirstPersonAgentSpec,
    pub objects: Vec<ObjectSpec>,
    /// Walls inside the room, floor to ceiling (none by default).
    #[serde(default)]
    pub walls: Vec<InnerWall>,
    /// The object to reach: `Named("red_cube")`, or `Random` (one of the objects, per episode).
    pub goal: GoalObject,
    /// The goal image is the view from the goal pose: this far (metres) in front of the goal
    /// object's surface, facing it, on a side drawn per episode.
    #[serde(default = "default_goal_gap")]
    pub goal_gap: f32,
    /// Start keeps at least this distance from walls and objects.
    pub margin: f32,
    /// Where episodes may start relative to the goal.
    #[serde(default)]
    pub start: StartRule,
    pub episode: EpisodeSpec,
}

fn default_goal_gap() -> f32 {
    0.25
}

/// An axis-aligned wall inside a first-person room, from the floor to `wall_height`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InnerWall {
    /// Corners on the floor: (x, z).
    pub min: (f32, f32),
    pub max: (f32, f32),
    /// Linear RGB in `0..=1` (light grey by default).
    #[serde(default)]
    pub color: Option<(f32, f32, f32)>,
}

/// The colour of an inner wall that names none.
pub const INNER_WALL_COLOR: (f32, f32, f32) = (0.8, 0.8, 0.78);

impl InnerWall {
    /// Its rectangle on the floor.
    pub fn rect(&self) -> super::layout::Rect {
        super::layout::Rect {
            min: glam::Vec2::new(self.min.0, self.min.1),
            max: glam::Vec2::new(self.max.0, self.max.1),
        }
    }

    /// Its colour, linear RGB.
    pub fn rgb(&self) -> [f32; 3] {
        let c = self.color.unwrap_or(INNER_WALL_COLOR);
        [c.0, c.1, c.2]
    }
}

impl ObjectSpec {
    /// Where it stands on the floor: (x, z).
    pub fn centre(&self) -> glam::Vec2 {
        glam::Vec2::new(self.at.0, self.at.1)
    }
}

/// Where a first-person episode may start.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRule {
    /// The start is at least this far (metres) from the goal pose.
    #[serde(default)]
    pub min_goal_distance: f32,
    /// The straight line from the start to the goal pose crosses an inner wall: the goal is
    /// out of direct reach and the agent has to find the way round.
    #[serde(default)]
    pub behind_wall: bool,
}

/// The body and controls of a first-person agent. Action = (forward speed, turn rate).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirstPersonAgentSpec {
    pub radius: f32,
    pub eye_height: f32,
    /// Largest forward (or backward) move per step, metres.
    pub max_forward: f32,
    /// Largest turn per step, degrees.
    pub max_turn_degrees: f32,
}

/// A coloured object standing on the floor.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectSpec {
    pub name: String,
    pub shape: Shape,
    /// Colour as linear RGB in `0..=1`.
    pub color: (f32, f32, f32),
    /// Position of the object's centre on the floor: (x, z).
    pub at: (f32, f32),
    /// Half the width of the object (its collision radius).
    pub radius: f32,
    pub height: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shape {
    Cube,
    Sphere,
    Cylinder,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GoalObject {
    Named(String),
    Random,
}

/// A scene file that could not be read, parsed or validated.
pub type SceneError = crate::file::FileError;

impl Scene {
    /// Loads and validates a scene. `name_or_path` is a path to a `.ron` file, or a bare scene
    /// name looked up as `scenes/<name>.ron` (relative to the working directory, then to the
    /// crate's own folder).
    pub fn load(name_or_path: &str) -> Result<Scene, SceneError> {
        let path = resolve_scene_path(name_or_path);
        let text = std::fs::read_to_string(&path).map_err(|e| SceneError {
            file: path.clone(),
            position: None,
            field: None,
            message: format!("cannot read scene file: {e}"),
        })?;
        Scene::parse(&text, &path)
    }

    /// Parses and validates scene text; `file` is used in error messages.
    pub fn parse(text: &str, file: &Path) -> Result<Scene, SceneError> {
        let scene: Scene = crate::file::parse_ron(text, file)?;
        scene.validate().map_err(|(field, message)| SceneError {
            file: file.to_path_buf(),
            position: crate::file::locate_field(text, &field),
            field: Some(field),
            message,
        })?;
        Ok(scene)
    }

    pub fn name(&self) -> &str {
        match self {
            Scene::TopDown(s) => &s.name,
            Scene::FirstPerson(s) => &s.name,
        }
    }

    pub fn episode(&self) -> &EpisodeSpec {
        match self {
            Scene::TopDown(s) => &s.episode,
            Scene::FirstPerson(s) => &s.episode,
        }
    }

    /// The top-down scene, if this is one.
    pub fn top_down(&self) -> Option<&TopDownScene> {
        match self {
            Scene::TopDown(s) => Some(s),
            Scene::FirstPerson(_) => None,
        }
    }

    /// The first-person scene, if this is one.
    pub fn first_person(&self) -> Option<&FirstPersonScene> {
        match self {
            Scene::FirstPerson(s) => Some(s),
            Scene::TopDown(_) => None,
        }
    }

    /// Side of the square world: pixels top-down, metres first-person.
    pub fn size(&self) -> f32 {
        match self {
            Scene::TopDown(s) => s.size as f32,
            Scene::FirstPerson(s) => s.size,
        }
    }

    /// The unit of positions (and of `size`): `px` top-down, `m` first-person.
    pub fn position_unit(&self) -> &'static str {
        match self {
            Scene::TopDown(_) => "px",
            Scene::FirstPerson(_) => "m",
        }
    }

    /// Observation side in pixels.
    pub fn resolution(&self) -> u32 {
        match self {
            Scene::TopDown(s) => s.size,
            Scene::FirstPerson(s) => s.resolution,
        }
    }

    /// Checks the layout; an error is `(field path, message)`.
    fn validate(&self) -> Result<(), (String, String)> {
        match self {
            Scene::TopDown(s) => s.validate(),
            Scene::FirstPerson(s) => s.validate(),
        }
    }
}

/// A linear RGB colour: every component in `0..=1`.
fn unit_color(field: &str, c: (f32, f32, f32)) -> Result<(), (String, String)> {
    if [c.0, c.1, c.2].iter().all(|v| (0.0..=1.0).contains(v)) {
        Ok(())
    } else {
        Err((field.into(), format!("components must be in 0..=1, got {c:?}")))
    }
}

fn positive(field: &str, v: f32) -> Result<(), (String, String)> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err((field.into(), format!("must be a positive number, got {v}")))
    }
}

fn validate_episode(e: &EpisodeSpec) -> Result<(), (String, String)> {
    if e.max_steps == 0 {
        return Err(("episode.max_steps".into(), "must be at least 1, got 0".into()));
    }
    positive("episode.success_radius", e.success_radius)?;
    for (name, v) in [("effort", e.task_cost.effort), ("collision", e.task_cost.collision)] {
        if !(v.is_finite() && v >= 0.0) {
            return Err((
                format!("episode.task_cost.{name}"),
                format!("must be a number ≥ 0, got {v}"),
            ));
        }
    }
    Ok(())
}

impl TopDownScene {
    fn validate(&self) -> Result<(), (String, String)> {
        let size = self.size as i32;
        if !(8..=512).contains(&size) {
            return Err(("size".into(), format!("must be in 8..=512 pixels, got {size}")));
        }
        for (i, w) in self.walls.iter().enumerate() {
            let field = |f: &str| format!("walls[{i}].{f}");
            if w.thickness > self.size {
                return Err((
                    field("thickness"),
                    format!("{} is thicker than the arena ({size})", w.thickness),
                ));
            }
            if let Some(d) = w.doors.iter().position(|d| d.half_width > self.size) {
                return Err((
                    format!("walls[{i}].doors[{d}].half_width"),
                    format!(
                        "door wider than its wall: half_width {} exceeds the arena",
                        w.doors[d].half_width
                    ),
                ));
            }
            if w.thickness == 0 || w.thickness % 2 == 0 {
                return Err((
                    field("thickness"),
                    format!("must be odd and at least 1, got {}", w.thickness),
                ));
            }
            let half = (w.thickness as i32 - 1) / 2;
            if let Pick::Range(lo, hi) = w.at {
                if lo >= hi {
                    return Err((field("at"), format!("empty range Range({lo}, {hi})")));
                }
            }
            let (lo, hi) = w.at.bounds();
            if lo - half < 0 || hi + half > size - 1 {
                return Err((
                    field("at"),
                    format!(
                        "wall outside the arena: a {}-pixel wall at {:?} covers pixels {}..={}, \
                         the arena has pixels 0..={}",
                        w.thickness,
                        w.at,
                        lo - half,
                        hi + half,
                        size - 1
                    ),
                ));
            }
            if w.from > w.to {
                return Err((field("to"), format!("`to` ({}) is before `from` ({})", w.to, w.from)));
            }
            if w.from < 0 || w.to > size - 1 {
                return Err((
                    field(if w.from < 0 { "from" } else { "to" }),
                    format!(
                        "wall outside the arena: it spans pixels {}..={}, the arena has pixels 0..={}",
                        w.from,
                        w.to,
                        size - 1
                    ),
                ));
            }
            let length = w.to - w.from + 1;
            for (j, d) in w.doors.iter().enumerate() {
                let dfield = |f: &str| format!("walls[{i}].doors[{j}].{f}");
                let width = 2 * d.half_width as i32 + 1;
                if width >= length {
                    return Err((
                        dfield("half_width"),
                        format!(
                            "door wider than its wall: half_width {} opens {width} pixels, the \
                             wall is {length} pixels long",
                            d.half_width
                        ),
                    ));
                }
                if let Pick::Range(lo, hi) = d.at {
                    if lo >= hi {
                        return Err((dfield("at"), format!("empty range Range({lo}, {hi})")));
                    }
                }
                let (lo, hi) = d.at.bounds();
                let (open_lo, open_hi) = (lo - d.half_width as i32, hi + d.half_width as i32);
                if open_lo < w.from || open_hi > w.to {
                    return Err((
                        dfield("at"),
                        format!(
                            "door outside its wall: at {:?} it opens pixels {open_lo}..={open_hi}, \
                             the wall spans {}..={}",
                            d.at, w.from, w.to
                        ),
                    ));
                }
            }
        }
        positive("agent.max_step", self.agent.max_step)?;
        positive("agent.blob_std", self.agent.blob_std)?;
        if self.agent.blob_std > 16.0 {
            return Err((
                "agent.blob_std".into(),
                format!("at most 16 pixels, got {}", self.agent.blob_std),
            ));
        }
        if !(self.agent.radius.is_finite() && self.agent.radius >= 0.0) {
            return Err((
                "agent.radius".into(),
                format!("must be zero or positive, got {}", self.agent.radius),
            ));
        }
        if let Some(p) = &self.pushable {
            positive("pushable.half_size", p.half_size)?;
            if !(p.min_goal_distance.is_finite() && p.min_goal_distance >= 0.0) {
                return Err((
                    "pushable.min_goal_distance".into(),
                    format!("must be zero or positive, got {}", p.min_goal_distance),
                ));
            }
        }
        if !(self.task.margin.is_finite() && self.task.margin >= 0.0) {
            return Err((
                "task.margin".into(),
                format!("must be zero or positive, got {}", self.task.margin),
            ));
        }
        validate_episode(&self.episode)
    }
}

impl FirstPersonScene {
    /// The inner walls as rectangles on the floor.
    pub fn wall_rects(&self) -> Vec<super::layout::Rect> {
        self.walls.iter().map(InnerWall::rect).collect()
    }

    fn validate(&self) -> Result<(), (String, String)> {
        positive("size", self.size)?;
        positive("wall_height", self.wall_height)?;
        if !(8..=512).contains(&self.resolution) {
            return Err((
                "resolution".into(),
                format!("must be in 8..=512, got {}", self.resolution),
            ));
        }
        if !(self.fov_degrees > 1.0 && self.fov_degrees < 179.0) {
            return Err((
                "fov_degrees".into(),
                format!("must be in (1, 179), got {}", self.fov_degrees),
            ));
        }
        positive("agent.radius", self.agent.radius)?;
        positive("agent.max_forward", self.agent.max_forward)?;
        positive("agent.max_turn_degrees", self.agent.max_turn_degrees)?;
        if !(self.agent.eye_height > 0.0 && self.agent.eye_height < self.wall_height) {
            return Err((
                "agent.eye_height".into(),
                format!(
                    "must be above the floor and below the walls, got {}",
                    self.agent.eye_height
                ),
            ));
        }
        if self.objects.is_empty() {
            return Err(("objects".into(), "needs at least one object".into()));
        }
        for (i, o) in self.objects.iter().enumerate() {
            positive(&format!("objects[{i}].radius"), o.radius)?;
            positive(&format!("objects[{i}].height"), o.height)?;
            let (x, z) = o.at;
            if !(x - o.radius >= 0.0 && x + o.radius <= self.size && z - o.radius >= 0.0 && z + o.radius <= self.size) {
                return Err((
                    format!("objects[{i}].at"),
                    format!("object `{}` at ({x}, {z}) is outside the room 0..{}", o.name, self.size),
                ));
            }
            unit_color(&format!("objects[{i}].color"), o.color)?;
            if self.objects[..i].iter().any(|p| p.name == o.name) {
                return Err((format!("objects[{i}].name"), format!("`{}` is used twice", o.name)));
            }
        }
        for (i, w) in self.walls.iter().enumerate() {
            let ok = [w.min.0, w.min.1, w.max.0, w.max.1].iter().all(|v| v.is_finite())
                && w.min.0 < w.max.0
                && w.min.1 < w.max.1;
            if !ok {
                return Err((
                    format!("walls[{i}]"),
                    format!(
                        "needs finite corners with min < max on both axes, got min {:?} max {:?}",
                        w.min, w.max
                    ),
                ));
            }
            if let Some(c) = w.color {
                unit_color(&format!("walls[{i}].color"), c)?;
            }
        }
        if !(self.goal_gap.is_finite() && self.goal_gap >= 0.0) {
            return Err((
                "goal_gap".into(),
                format!("must be zero or positive, got {}", self.goal_gap),
            ));
        }
        if !(self.start.min_goal_distance.is_finite() && self.start.min_goal_distance >= 0.0) {
            return Err((
                "start.min_goal_distance".into(),
                format!("must be zero or positive, got {}", self.start.min_goal_distance),
            ));
        }
        if self.start.behind_wall && self.walls.is_empty() {
            return Err((
                "start.behind_wall".into(),
                "needs at least one entry in `walls` to stand behind".into(),
            ));
        }
        if let GoalObject::Named(n) = &self.goal {
            if !self.objects.iter().any(|o| &o.name == n) {
                let names: Vec<_> = self.objects.iter().map(|o| o.name.as_str()).collect();
                return Err(("goal".into(), format!("no object named `{n}`; objects are {names:?}")));
            }
        }
        if !(self.margin.is_finite() && self.margin >= 0.0) {
            return Err((
                "margin".into(),
                format!("must be zero or positive, got {}", self.margin),
            ));
        }
        let r = self.agent.radius + self.margin;
        if 2.0 * r >= self.size {
            return Err((
                "margin".into(),
                format!(
                    "agent.radius + margin = {r} leaves no room to start in a room of size {}",
                    self.size
                ),
            ));
        }
        validate_episode(&self.episode)
    }
}

/// Finds a scene file: an existing path as given, else `scenes/<name>.ron` in the working
/// directory, else in the crate's own `scenes/`.
pub fn resolve_scene_path(name_or_path: &str) -> PathBuf {
    let given = PathBuf::from(name_or_path);
    if given.exists() || name_or_path.ends_with(".ron") || name_or_path.contains('/') {
        return given;
    }
    let local = PathBuf::from("scenes").join(format!("{name_or_path}.ron"));
    if local.exists() {
        return local;
    }
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenes")
        .join(format!("{name_or_path}.ron"));
    if shipped.exists() {
        shipped
    } else {
        local
    }
}

/// Names of the scenes shipped in `scenes/`.
pub fn shipped_scene_names() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenes");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            if p.extension()? == "ron" {
                Some(p.file_stem()?.to_string_lossy().into_owned())
            } else {
                None
            }
        })
        .collect();
    names.sort();
    names
}
