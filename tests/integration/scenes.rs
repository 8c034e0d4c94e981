//! Scene files: every shipped scene loads; each kind of bad file gives a readable error.

use amisim::world::scene::{shipped_scene_names, Scene, SceneError};
use std::path::Path;

const GOOD: &str = r#"TopDown(
    name: "t",
    size: 65,
    walls: [
        (axis: Vertical, at: Fixed(4), thickness: 1, from: 4, to: 60),
        (axis: Vertical, at: Range(20, 45), thickness: 3, from: 5, to: 59,
         doors: [(at: Range(10, 55), half_width: 4)]),
    ],
    agent: (radius: 0.5, blob_std: 1.3, max_step: 2.45),
    task: (rooms: Any, margin: 2.0),
    episode: (max_steps: 200, success_radius: 4.5),
)"#;

fn parse(text: &str) -> Result<Scene, SceneError> {
    Scene::parse(text, Path::new("bad.ron"))
}

#[test]
fn every_shipped_scene_loads() {
    let names = shipped_scene_names();
    for required in [
        "two_rooms",
        "two_rooms_fixed",
        "four_rooms",
        "push_box",
        "room_3d",
        "two_rooms_3d",
    ] {
        assert!(names.iter().any(|n| n == required), "missing scene {required}");
    }
    for name in names {
        let scene = Scene::load(&name).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(scene.name(), name);
    }
}

#[test]
fn template_is_valid() {
    parse(GOOD).unwrap();
    // The task's cost terms are optional, each declared alone or both.
    let s = parse(&GOOD.replace(
        "success_radius: 4.5)",
        "success_radius: 4.5, task_cost: (collision: 0.5))",
    ))
    .unwrap();
    assert_eq!(s.episode().task_cost.collision, 0.5);
    assert_eq!(s.episode().task_cost.effort, 0.0);
}

#[test]
fn unknown_field_names_file_line_column_and_field() {
    let text = GOOD.replace("blob_std: 1.3,", "blob_std: 1.3, speed: 3.0,");
    let e = parse(&text).unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("bad.ron:9:"), "{msg}");
    assert!(msg.contains("speed"), "{msg}");
}

#[test]
fn wall_outside_the_arena() {
    let text = GOOD.replace("at: Range(20, 45), thickness: 3", "at: Range(20, 70), thickness: 3");
    let e = parse(&text).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("walls[1].at"));
    assert_eq!(e.position, Some((6, 30)));
    let msg = e.to_string();
    assert!(
        msg.contains("wall outside the arena") && msg.contains("bad.ron:6:30"),
        "{msg}"
    );
}

#[test]
fn door_wider_than_its_wall() {
    let text = GOOD.replace("half_width: 4", "half_width: 40");
    let e = parse(&text).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("walls[1].doors[0].half_width"));
    let msg = e.to_string();
    assert!(
        msg.contains("door wider than its wall") && msg.contains("81 pixels"),
        "{msg}"
    );
    assert_eq!(e.position, Some((7, 50)));
}

#[test]
fn syntax_error_has_position() {
    let text = GOOD.replace("size: 65,", "size: 65");
    let e = parse(&text).unwrap_err();
    assert_eq!(e.position.map(|p| p.0), Some(4), "{e}");
}

#[test]
fn wrong_type_and_bad_values_are_errors_not_panics() {
    for (from, to, field) in [
        ("size: 65", "size: \"big\"", None),
        ("thickness: 3", "thickness: 2", Some("walls[1].thickness")),
        ("max_step: 2.45", "max_step: -1.0", Some("agent.max_step")),
        ("max_steps: 200", "max_steps: 0", Some("episode.max_steps")),
        ("from: 5, to: 59", "from: 59, to: 5", Some("walls[1].to")),
        (
            "success_radius: 4.5)",
            "success_radius: 4.5, task_cost: (effort: -1.0))",
            Some("episode.task_cost.effort"),
        ),
    ] {
        let e = parse(&GOOD.replace(from, to)).unwrap_err();
        assert_eq!(e.field.as_deref(), field, "{e}");
        assert!(!e.to_string().is_empty());
    }
    let e = Scene::load("no_such_scene").unwrap_err();
    assert!(e.to_string().contains("no_such_scene"), "{e}");
}

#[test]
fn first_person_goal_must_name_an_object() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scenes/room_3d.ron")).unwrap();
    let e = parse(&text.replace("goal: Random", "goal: Named(\"unicorn\")")).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("goal"));
    assert!(e.to_string().contains("unicorn"));
}

#[test]
fn first_person_inner_walls_and_start_rules_are_checked() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scenes/two_rooms_3d.ron")).unwrap();
    for (from, to, field) in [
        ("max: (4.1, 3.25)", "max: (3.0, 3.25)", "walls[0]"),
        (
            "color: (0.85, 0.85, 0.82))",
            "color: (1.5, 0.85, 0.82))",
            "walls[0].color",
        ),
        (
            "behind_wall: true",
            "behind_wall: true, min_goal_distance: -1.0",
            "start.min_goal_distance",
        ),
    ] {
        let e = parse(&text.replacen(from, to, 1)).unwrap_err();
        assert_eq!(e.field.as_deref(), Some(field), "{e}");
    }
    // Standing behind a wall needs a wall.
    let room = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scenes/room_3d.ron")).unwrap();
    let e = parse(&room.replace("margin: 0.3,", "margin: 0.3, start: (behind_wall: true),")).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("start.behind_wall"), "{e}");
}

/// Two rooms with a dividing wall and no door.
const SEALED: &str = r#"TopDown(
    name: "sealed",
    size: 65,
    walls: [
        (axis: Vertical, at: Fixed(4), thickness: 1, from: 4, to: 60),
        (axis: Vertical, at: Fixed(60), thickness: 1, from: 4, to: 60),
        (axis: Horizontal, at: Fixed(4), thickness: 1, from: 4, to: 60),
        (axis: Horizontal, at: Fixed(60), thickness: 1, from: 4, to: 60),
        (axis: Vertical, at: Range(20, 45), thickness: 3, from: 5, to: 59),
    ],
    agent: (radius: 0.5, blob_std: 1.3, max_step: 2.45),
    task: (rooms: DifferentRooms, margin: 2.1),
    episode: (max_steps: 200, success_radius: 4.5),
)"#;

#[test]
fn a_task_that_cannot_be_reached_is_refused_and_goals_are_reachable() {
    use amisim::world::{env::env_rng, sim::sample_episode};
    // Start and goal in different rooms that no door joins: an error naming the scene and why,
    // at once (not after an endless redraw), for every episode.
    let sealed = parse(SEALED).unwrap();
    for k in 0..20 {
        let e = sample_episode(&sealed, &mut env_rng(0, k)).unwrap_err().to_string();
        assert!(e.contains("sealed") && e.contains("joined by a door"), "{e}");
    }
    // Any room: the goal is always in a room the start reaches (here, the same room).
    let any = parse(&SEALED.replace("DifferentRooms", "Any")).unwrap();
    for k in 0..200 {
        let s = sample_episode(&any, &mut env_rng(0, k)).unwrap();
        let layout = s.layout.as_ref().unwrap();
        let (a, g) = (layout.room_of(s.agent).unwrap(), layout.room_of(s.goal).unwrap());
        assert_eq!(a, g, "episode {k}: the goal is in a room the start cannot reach");
    }
}
