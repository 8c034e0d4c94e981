//! Physics: agents never enter or tunnel through walls, doors are crossable, boxes are pushed
//! and stopped by walls; the Bevy plugin steps environments in `FixedUpdate`.

use amisim::world::env::{env_rng, Envs, PhysicsPlugin};
use amisim::world::scene::Scene;
use amisim::world::sim::{self, inside_wall, EnvState};
use bevy::prelude::*;
use glam::Vec2;
use rand::RngExt;
use std::sync::Arc;

#[test]
fn ten_thousand_random_steps_never_leave_an_agent_inside_a_wall() {
    for name in ["two_rooms", "four_rooms", "push_box", "room_3d", "two_rooms_3d"] {
        let scene = Scene::load(name).unwrap();
        let mut rng = env_rng(7, 0);
        let mut state = sim::sample_episode(&scene, &mut rng).unwrap();
        let mut collisions = 0;
        for i in 0..10_000 {
            if i % 500 == 0 {
                state = sim::sample_episode(&scene, &mut rng).unwrap();
            }
            // Large actions (beyond the clip) make tunnelling likely if the sweep were wrong.
            let a = [rng.random_range(-6.0..6.0), rng.random_range(-6.0..6.0)];
            sim::step(&scene, &mut state, a);
            collisions += state.collided as usize;
            assert!(
                !inside_wall(&scene, &state),
                "{name}: step {i} left the agent in a wall: {:?}",
                state.agent
            );
        }
        assert!(
            collisions > 100,
            "{name}: only {collisions} collisions, the test is not exercising walls"
        );
    }
}

#[test]
fn actions_are_clipped_per_component() {
    let scene = Scene::load("two_rooms").unwrap();
    assert_eq!(sim::clip_action(&scene, [10.0, -10.0]), [2.45, -2.45]);
    assert_eq!(sim::clip_action(&scene, [f32::NAN, 1.0]), [0.0, 1.0]);
}

fn fixed_two_rooms_start(agent: Vec2) -> (Scene, EnvState) {
    let scene = Scene::load("two_rooms_fixed").unwrap();
    let mut state = sim::sample_episode(&scene, &mut env_rng(0, 0)).unwrap();
    state.agent = agent;
    (scene, state)
}

#[test]
fn the_door_is_crossable_and_the_wall_is_not() {
    // Wall pixels are columns 31..=33, the door rows 14..=22 (centre 18).
    let (scene, mut state) = fixed_two_rooms_start(Vec2::new(20.0, 18.0));
    let left = state.layout.as_ref().unwrap().room_of(state.agent).unwrap();
    for _ in 0..12 {
        sim::step(&scene, &mut state, [2.0, 0.0]);
    }
    assert!(state.agent.x > 40.0, "agent stuck at {:?}", state.agent);
    assert_ne!(state.layout.as_ref().unwrap().room_of(state.agent), Some(left));

    // Away from the door the wall stops the agent at its face (pixel 31 spans 30.5..31.5).
    let (scene, mut state) = fixed_two_rooms_start(Vec2::new(20.0, 40.0));
    for _ in 0..12 {
        sim::step(&scene, &mut state, [2.45, 0.0]);
    }
    assert!(state.collided);
    assert!(
        state.agent.x < 30.0 && state.agent.x > 29.9,
        "stopped at {:?}",
        state.agent
    );
    assert_eq!(state.agent.y, 40.0);
}

#[test]
fn a_single_long_move_does_not_tunnel() {
    // Even without clipping, the sweep stops a move across the whole wall.
    let scene = Scene::load("two_rooms_fixed").unwrap();
    let Scene::TopDown(mut s) = scene else { unreachable!() };
    s.agent.max_step = 100.0;
    let scene = Scene::TopDown(s);
    let mut state = sim::sample_episode(&scene, &mut env_rng(0, 0)).unwrap();
    state.agent = Vec2::new(20.0, 40.0);
    sim::step(&scene, &mut state, [50.0, 3.0]);
    assert!(state.agent.x < 30.0, "tunnelled to {:?}", state.agent);
    assert!(!inside_wall(&scene, &state));
}

#[test]
fn the_agent_pushes_the_box_and_walls_stop_it() {
    let scene = Scene::load("push_box").unwrap();
    let mut state = sim::sample_episode(&scene, &mut env_rng(3, 0)).unwrap();
    state.pushable = Some(Vec2::new(30.0, 30.0));
    state.agent = Vec2::new(20.0, 30.0);
    for _ in 0..4 {
        sim::step(&scene, &mut state, [2.0, 0.0]);
    }
    let b = state.pushable.unwrap();
    assert!(b.x > 30.5, "box not pushed: {b:?}");
    assert!((b.y - 30.0).abs() < 1e-4, "pushed sideways: {b:?}");
    // The agent stays behind the box (half size 3.5 + radius 0.5).
    assert!(
        b.x - state.agent.x >= 3.99 && b.x - state.agent.x < 4.1,
        "{:?} {b:?}",
        state.agent
    );
    // Keep pushing: the right border wall (pixel 60 spans 59.5..60.5) stops the box.
    for _ in 0..40 {
        sim::step(&scene, &mut state, [2.45, 0.0]);
    }
    let b = state.pushable.unwrap();
    assert!(b.x <= 56.0 && b.x > 55.9, "box at {b:?}");
    assert!(state.collided);
    assert!(!inside_wall(&scene, &state));
}

#[test]
fn first_person_moves_forward_and_turns() {
    let scene = Scene::load("room_3d").unwrap();
    let mut state = sim::sample_episode(&scene, &mut env_rng(1, 0)).unwrap();
    state.agent = Vec2::new(4.0, 3.0);
    state.heading = 0.0;
    sim::step(&scene, &mut state, [0.3, 0.0]);
    assert!((state.agent - Vec2::new(4.3, 3.0)).length() < 1e-5);
    sim::step(&scene, &mut state, [0.0, 10.0]);
    assert!(
        (state.heading - 20f32.to_radians()).abs() < 1e-5,
        "turn clipped to 20°: {}",
        state.heading
    );
}

#[test]
fn first_person_inner_walls_block_and_their_door_lets_through() {
    let scene = Scene::load("two_rooms_3d").unwrap();
    let fp = scene.first_person().unwrap().clone();
    let mut state = sim::sample_episode(&scene, &mut env_rng(2, 0)).unwrap();
    // Straight at the wall (x = 3.9 .. 4.1) away from the door (z 3.25 .. 4.75): stopped at
    // the wall's face less the body's radius.
    state.agent = Vec2::new(2.0, 1.5);
    state.heading = 0.0;
    for _ in 0..20 {
        sim::step(&scene, &mut state, [0.3, 0.0]);
    }
    assert!(state.collided);
    assert!(
        (state.agent.x - (3.9 - fp.agent.radius)).abs() < 0.01,
        "{:?}",
        state.agent
    );
    // Through the door's middle: into the other room.
    state.agent = Vec2::new(2.0, 4.0);
    for _ in 0..20 {
        sim::step(&scene, &mut state, [0.3, 0.0]);
        assert!(!inside_wall(&scene, &state));
    }
    assert!(state.agent.x > 5.0, "did not pass the door: {:?}", state.agent);
}

#[test]
fn first_person_episodes_start_behind_the_wall_and_the_goal_pose_faces_the_object() {
    use amisim::world::layout::Rect;
    let scene = Scene::load("two_rooms_3d").unwrap();
    let fp = scene.first_person().unwrap().clone();
    let walls: Vec<Rect> = fp.wall_rects();
    let mut rng = env_rng(3, 0);
    for _ in 0..500 {
        let s = sim::sample_episode(&scene, &mut rng).unwrap();
        assert!(!s.success(&scene));
        // The wall stands between start and goal pose.
        assert!(walls.iter().any(|w| sim::sweep(s.agent, s.goal - s.agent, w).is_some()));
        // The goal pose faces its object, `goal_gap` from its surface.
        let o = &fp.objects[s.goal_object.unwrap()];
        let centre = Vec2::new(o.at.0, o.at.1);
        let to_object = (centre - s.goal).normalize();
        assert!((Vec2::from_angle(s.goal_heading) - to_object).length() < 1e-4);
        let gap = s.goal.distance(centre) - o.radius - fp.agent.radius;
        assert!((gap - fp.goal_gap).abs() < 1e-4, "{gap}");
        let g = sim::goal_state(&scene, &s);
        assert!(g.success(&scene), "the goal pose reaches the goal");
        assert!(!inside_wall(&scene, &g));
    }
}

#[test]
fn the_physics_plugin_steps_in_fixed_update() {
    let scene = Arc::new(Scene::load("two_rooms_fixed").unwrap());
    let mut state = sim::sample_episode(&scene, &mut env_rng(0, 0)).unwrap();
    state.agent = Vec2::new(20.0, 40.0);
    let mut app = App::new();
    app.add_plugins((MinimalPlugins, PhysicsPlugin));
    app.insert_resource(Envs {
        scene,
        states: vec![state],
        pending: Some(vec![[1.0, -1.0]]),
        layout_dirty: vec![false],
    });
    app.world_mut().run_schedule(bevy::app::FixedMain);
    let envs = app.world().resource::<Envs>();
    assert_eq!(envs.states[0].agent, Vec2::new(21.0, 39.0));
    assert_eq!(envs.states[0].steps, 1);
    assert!(envs.pending.is_none(), "actions are applied once");
}

#[test]
fn two_rooms_episodes_follow_the_reference_geometry() {
    use amisim::world::scene::Axis;
    let scene = Scene::load("two_rooms").unwrap();
    let (mut walls, mut doors) = (std::collections::BTreeSet::new(), std::collections::BTreeSet::new());
    for k in 0..2000 {
        let st = sim::sample_episode(&scene, &mut env_rng(k, 0)).unwrap();
        let layout = st.layout.as_ref().unwrap();
        // Border walls at 4 and 60, then the dividing wall with its door.
        let borders: Vec<(Axis, i32)> = layout.drawn[..4].iter().map(|(a, at, _)| (*a, *at)).collect();
        assert_eq!(
            borders,
            [
                (Axis::Vertical, 4),
                (Axis::Vertical, 60),
                (Axis::Horizontal, 4),
                (Axis::Horizontal, 60)
            ]
        );
        let (axis, at, ref door) = layout.drawn[4];
        assert_eq!(axis, Axis::Vertical);
        walls.insert(at);
        doors.insert(door[0]);
        // The wall covers columns at-1..=at+1; the door opens rows door-4..=door+4.
        let open_rows: Vec<i32> = (5..=59)
            .filter(|&y| {
                !layout
                    .walls
                    .iter()
                    .any(|r| r.contains_strict(Vec2::new(at as f32, y as f32)))
            })
            .collect();
        assert_eq!(open_rows, ((door[0] - 4)..=(door[0] + 4)).collect::<Vec<_>>());
        // Start and goal in different rooms, 2.6 from the wall lines (2.1 from pixel edges).
        assert_ne!(layout.room_of(st.agent), layout.room_of(st.goal));
        for p in [st.agent, st.goal] {
            assert!(layout.wall_distance(p) >= 2.1 - 1e-4, "{p:?} too close to a wall");
            assert!(
                (6.6 - 1e-4..=57.4 + 1e-4).contains(&p.x) && (6.6 - 1e-4..=57.4 + 1e-4).contains(&p.y),
                "{p:?}"
            );
        }
    }
    assert_eq!(walls, (20..=44).collect());
    assert_eq!(doors, (10..=54).collect());
}
