//! `amisim run` in a window under a virtual X server (Xvfb): the screenshot exists, has the
//! window's size, and shows a world and an overlay that differ.

use std::path::{Path, PathBuf};
use std::process::Command;

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

fn read_png(path: &Path) -> (usize, usize, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(path).expect("screenshot exists"),
    ));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("PNG data");
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf.truncate(info.buffer_size());
    (info.width as usize, info.height as usize, buf)
}

/// Mean and standard deviation of the grey level over a rectangle.
fn stats(rgb: &[u8], width: usize, x: std::ops::Range<usize>, y: std::ops::Range<usize>) -> (f64, f64) {
    let mut v = Vec::new();
    for row in y {
        for col in x.clone() {
            let p = &rgb[(row * width + col) * 3..][..3];
            v.push((p[0] as f64 + p[1] as f64 + p[2] as f64) / 3.0);
        }
    }
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let s = (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64).sqrt();
    (m, s)
}

/// The window's size in the screenshot tests.
const W: usize = 1100;
const H: usize = 700;

/// Runs `amisim run ARGS` under Xvfb in a `W × H` window and takes a screenshot
/// (`<tmp>/window/NAME.png`); returns the run's stderr and the screenshot's RGB pixels, after
/// checking that the run succeeded and the screenshot has the window's size.
fn screenshot(name: &str, args: &[&str]) -> (String, Vec<u8>) {
    assert!(
        on_path("xvfb-run"),
        "this test runs `amisim run` under a virtual X server: install it with `sudo apt-get install -y xvfb`"
    );
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("window");
    std::fs::create_dir_all(&dir).unwrap();
    let shot = dir.join(format!("{name}.png"));
    let _ = std::fs::remove_file(&shot);
    let out = Command::new("xvfb-run")
        .args(["-a", "-s", "-screen 0 1280x800x24", env!("CARGO_BIN_EXE_amisim"), "run"])
        .args(args)
        .args(["--width", &W.to_string(), "--height", &H.to_string()])
        .arg("--screenshot")
        .arg(&shot)
        .output()
        .expect("running xvfb-run");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "amisim run failed: {stderr}");
    let (width, height, rgb) = read_png(&shot);
    assert_eq!((width, height), (W, H), "the screenshot has the window's size");
    (stderr, rgb)
}

/// Pixels of columns `xs` in the rows where the overlay shows the observation and the goal
/// (60..220) for which `keep` holds.
fn panel_pixels(rgb: &[u8], xs: std::ops::Range<usize>, keep: impl Fn(&[u8]) -> bool) -> usize {
    (60..220)
        .flat_map(|y| xs.clone().map(move |x| (x, y)))
        .filter(|&(x, y)| keep(&rgb[(y * W + x) * 3..][..3]))
        .count()
}

#[test]
fn window_screenshot_under_xvfb() {
    let (stderr, rgb) = screenshot("two_rooms", &["--scene", "two_rooms", "--frames", "10"]);
    assert!(stderr.contains("frames/s"), "the run reports its frame rate: {stderr}");
    let (w, h) = (W, H);
    // The world (Bevy, centre) and the overlay's left panel (egui) look different, and
    // neither is a blank fill.
    let world = stats(&rgb, w, w / 2 - 100..w / 2 + 100, h / 2 - 100..h / 2 + 100);
    let panel = stats(&rgb, w, 5..280, 60..h - 20);
    assert!(
        world.1 > 3.0,
        "the world area is blank: mean {:.1}, std {:.1}",
        world.0,
        world.1
    );
    assert!(
        panel.1 > 3.0,
        "the overlay is blank: mean {:.1}, std {:.1}",
        panel.0,
        panel.1
    );
    assert!(
        (world.0 - panel.0).abs() > 3.0 || (world.1 - panel.1).abs() > 3.0,
        "world {world:?} and overlay {panel:?} look alike"
    );
    // The agent's observation and the goal observation are on screen, side by side at the top
    // of the left panel: each holds its pure-green wall pixels (the overlay's own colours are
    // greys).
    let green = |xs| panel_pixels(&rgb, xs, |p| p[1] > 200 && p[0] < 60 && p[2] < 60);
    let (obs, goal) = (green(5..148), green(150..295));
    assert!(obs > 100, "no observation image in the overlay ({obs} green pixels)");
    assert!(goal > 100, "no goal image in the overlay ({goal} green pixels)");
}

/// A first-person scene in the window: the agent's view and the goal view in the overlay (sky
/// pixels), and the room's map in the centre.
#[test]
fn first_person_window_screenshot_under_xvfb() {
    let args = [
        "--scene",
        "room_3d",
        "--agent",
        "oracle",
        "--frames",
        "5",
        "--set",
        "planner.samples=60",
    ];
    let (_, rgb) = screenshot("room_3d", &args);
    let (w, h) = (W, H);
    let world = stats(&rgb, w, w / 2 - 100..w / 2 + 100, h / 2 - 100..h / 2 + 100);
    assert!(world.1 > 3.0, "the map is blank: {world:?}");
    // The sky (linear 0.45, 0.6, 0.85 as stored) in the observation and in the goal view.
    let near = |v: u8, want: i32| (v as i32 - want).abs() < 12;
    let sky = |xs| panel_pixels(&rgb, xs, |p| near(p[0], 115) && near(p[1], 153) && near(p[2], 217));
    let (obs, goal) = (sky(5..148), sky(150..295));
    assert!(
        obs + goal > 100,
        "no first-person view in the overlay ({obs}, {goal} sky pixels)"
    );
}

/// Runs `amisim` with `DISPLAY` set to `display` (unset for `None`), expects it to fail, and
/// returns what it printed on stderr.
fn failed_run(args: &[&str], display: Option<&str>) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_amisim"));
    cmd.args(args);
    match display {
        Some(d) => cmd.env("DISPLAY", d),
        None => cmd.env_remove("DISPLAY"),
    };
    let out = cmd.output().expect("running amisim");
    assert!(!out.status.success(), "amisim {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn run_without_a_display_names_the_fix() {
    let oracle = ["run", "--scene", "two_rooms", "--agent", "oracle"];
    let stderr = failed_run(&oracle, None);
    assert!(
        stderr.contains("xvfb-run") && stderr.contains("apt-get install -y xvfb"),
        "{stderr}"
    );
    // A display that names no running X server.
    let stderr = failed_run(&oracle, Some(":987"));
    assert!(
        stderr.contains("DISPLAY=:987: no X server") && stderr.contains("xvfb-run"),
        "{stderr}"
    );
    // A scene that is not there is named before the display is looked at.
    let stderr = failed_run(&["run", "--scene", "no_such_scene"], None);
    assert!(stderr.contains("no_such_scene"), "{stderr}");
}

mod agent_thread {
    use amisim::actor::planner::{PlannerConfig, PlannerKind};
    use amisim::agent::Mode;
    use amisim::ui::agent::{spawn, AgentOptions, Command, Event, Snapshot};
    use crossbeam_channel::Receiver;
    use glam::Vec2;
    use std::time::{Duration, Instant};

    /// The first snapshot that satisfies `want`, within two minutes.
    fn wait(events: &Receiver<Event>, what: &str, want: impl Fn(&Snapshot) -> bool) -> Box<Snapshot> {
        let until = Instant::now() + Duration::from_secs(120);
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match events.recv_timeout(left) {
                Ok(Event::Snapshot(s)) if want(&s) => return s,
                Ok(Event::Failed(e)) => panic!("the agent stopped: {e}"),
                Ok(_) => {}
                Err(_) => panic!("no snapshot with {what} within two minutes"),
            }
        }
    }

    fn options(scene: &str, agent: &str, sets: &[&str]) -> AgentOptions {
        AgentOptions {
            scene: scene.into(),
            agent: agent.into(),
            sets: sets.iter().map(|s| s.to_string()).collect(),
            seed: 3,
            steps_per_second: 200.0,
        }
    }

    /// The agent thread without a window: it plans and reports its trace, and follows pause,
    /// step, a new goal, another agent and a scene switch.
    #[test]
    fn agent_thread_follows_commands() {
        let mut planner = PlannerConfig::default_for(PlannerKind::Cem);
        (planner.samples, planner.iterations) = (60, 3);
        let (tx, events) = crossbeam_channel::unbounded();
        let commands = spawn(
            options("two_rooms", "oracle", &["planner.samples=60", "planner.iterations=3"]),
            tx,
        );
        let s = wait(&events, "a plan", |s| s.plans_made > 0);
        assert!(s.mode == Mode::Oracle && !s.hierarchical);
        assert_eq!(s.planner, planner, "--set reaches the oracle's planner");
        assert_eq!(s.plan.len(), planner.len(), "one imagined position per planned step");
        assert!(s.candidates.iter().any(|c| c.elite) && s.candidates.len() > 1);
        assert_eq!(s.iteration_costs.len(), planner.iterations);
        assert!(!s.plan_ms.is_empty() && !s.energy.is_empty());
        // The menu offers the scene's shipped agents.
        for name in ["default", "cem", "configured", "oracle"] {
            assert!(s.agents.iter().any(|a| a == name), "{name}: {:?}", s.agents);
        }

        commands.send(Command::Pause(true)).unwrap();
        let goal = Vec2::new(12.0, 50.0);
        commands.send(Command::Goal(goal)).unwrap();
        let g = wait(&events, "the new goal", |s| s.paused && s.state.goal == goal);
        assert!(g.goal_id > s.goal_id);
        // Paused: no steps until asked for one.
        std::thread::sleep(Duration::from_millis(300));
        let steps = g.state.steps;
        commands.send(Command::Step).unwrap();
        let stepped = wait(&events, "one more step", |s| s.state.steps > steps);
        assert_eq!(stepped.state.steps, steps + 1);
        // A goal inside a wall is refused, and says so.
        commands.send(Command::Goal(Vec2::new(4.0, 30.0))).unwrap();
        let refused = wait(&events, "the refusal", |s| s.status.contains("not a free position"));
        assert_eq!(refused.state.goal, goal);
        // An agent that is not there is refused by name; the oracle stays.
        commands.send(Command::Agent("nope".into())).unwrap();
        let kept = wait(&events, "the refusal", |s| s.status.contains("--agent nope"));
        assert_eq!(kept.mode, Mode::Oracle, "{}", kept.status);

        commands.send(Command::Scene("four_rooms".into())).unwrap();
        let switched = wait(&events, "four_rooms", |s| s.scene.name() == "four_rooms");
        assert_eq!(switched.episode, 0);
    }

    /// A first-person scene in the window's thread: the oracle plans, its imagined path is in
    /// metres inside the room, and a click makes the nearest object the goal, seen from the
    /// click's side.
    #[test]
    fn agent_thread_plans_in_a_first_person_scene() {
        let (tx, events) = crossbeam_channel::unbounded();
        let commands = spawn(
            options("room_3d", "oracle", &["planner.samples=60", "planner.iterations=3"]),
            tx,
        );
        let s = wait(&events, "a plan", |s| s.plans_made > 0);
        assert!(!s.plan.is_empty());
        assert!(s
            .plan
            .iter()
            .all(|p| (0.0..=8.0).contains(&p[0]) && (0.0..=8.0).contains(&p[1])));
        commands.send(Command::Pause(true)).unwrap();
        // Next to the green sphere at (6.4, 1.8), on its left (smaller x).
        commands.send(Command::Goal(Vec2::new(5.0, 1.8))).unwrap();
        let g = wait(&events, "the new goal", |s| s.paused && s.state.goal_object == Some(1));
        assert!(
            (g.state.goal.y - 1.8).abs() < 1e-3 && g.state.goal.x < 6.0,
            "{:?}",
            g.state.goal
        );
        assert!(
            g.state.goal_heading.abs() < 1e-3,
            "faces +x, the sphere: {}",
            g.state.goal_heading
        );
        assert!(g.status.contains("green_sphere"), "{}", g.status);
    }

    /// The shipped Two-Rooms agent in the window's thread: its three world models, the one
    /// planning, the blocked-move memory; a plan read by the planning model's probe, with
    /// candidates.
    #[test]
    fn agent_thread_shows_the_shipped_agent() {
        let (tx, events) = crossbeam_channel::unbounded();
        let _commands = spawn(options("two_rooms", "default", &[]), tx);
        let s = wait(&events, "a plan", |s| s.plans_made > 0);
        assert_eq!(s.agent, "default");
        // The goal observation shows the walls (green) and the agent at its goal (red).
        let green = s.goal_obs.chunks(4).filter(|p| p[1] > 100).count();
        let red = s.goal_obs.chunks(4).filter(|p| p[0] > 100).count();
        assert!(
            green > 100 && red > 0,
            "goal observation: {green} green, {red} red pixels"
        );
        // One world model, named as the scene's folder holds it (no machine path).
        assert_eq!(s.models.names, ["checkpoint.safetensors"]);
        assert!(s.models.acting == 0 && s.models.remembers_blocked);
        assert!(!s.model.contains(env!("CARGO_MANIFEST_DIR")), "{}", s.model);
        assert!(s.model.contains("checkpoint.safetensors"), "{}", s.model);
        assert_eq!(s.plan.len(), s.planner.len(), "one imagined position per planned step");
        assert!(s.candidates.len() > 1);
    }

    /// With the shipped Four-Rooms model and its level-2 model, the hierarchical preset plans
    /// hierarchically: a level-2 plan (one position per jump), a subgoal, level 1's plan toward
    /// it, both levels' costs per iteration; choosing a flat agent leaves the hierarchy.
    #[test]
    fn agent_thread_plans_hierarchically() {
        let (tx, events) = crossbeam_channel::unbounded();
        let commands = spawn(options("four_rooms", "hierarchical", &[]), tx);
        let h = amisim::actor::hierarchy::HierarchyConfig::default_for(8, 2.0);
        let s = wait(&events, "a hierarchical plan", |s| s.plans_made > 0);
        assert!(s.hierarchical && s.mode == Mode::Hierarchical, "{}", s.status);
        assert_eq!(s.high_plan.len(), h.high.len(), "one imagined position per jump");
        assert!(s.subgoal.is_some());
        assert_eq!(s.plan.len(), h.low.len(), "level 1's plan toward the subgoal");
        assert_eq!(s.planner, h.low, "the snapshot shows level 1's settings");
        assert_eq!(s.high_iteration_costs.len(), h.high.iterations);
        assert_eq!(s.iteration_costs.len(), h.low.iterations);
        commands.send(Command::Agent("mppi".into())).unwrap();
        let flat = wait(&events, "a flat plan", |s| {
            !s.hierarchical && s.planner.kind == PlannerKind::Mppi && s.plans_made > 0
        });
        assert!(flat.subgoal.is_none() && flat.high_plan.is_empty());
    }

    /// With the shipped Four-Rooms models (level 1, level 2, critic, mode 1), the configured
    /// agent acts: its configurator logs the setup with reasons (hierarchical in four rooms),
    /// both modes are counted, the memories fill, the critic's cost-to-go is plotted; choosing
    /// a planner leaves it.
    #[test]
    fn agent_thread_acts_as_the_configured_agent() {
        let (tx, events) = crossbeam_channel::unbounded();
        let commands = spawn(options("four_rooms", "configured", &[]), tx);
        let s = wait(&events, "20 steps of the configured agent", |s| {
            s.whole.is_some() && s.state.steps >= 20
        });
        let w = s.whole.as_ref().unwrap();
        assert!(
            s.has_critic && s.has_mode1,
            "the shipped Four-Rooms critic and mode-1 policy load"
        );
        assert!(w
            .decisions
            .iter()
            .any(|d| d.change == "hierarchical planning" && d.reason.contains("4 rooms")));
        assert!(w.decisions.iter().all(|d| !d.reason.is_empty()));
        assert_eq!(w.mode1_steps + w.mode2_steps, s.state.steps);
        assert_eq!(w.short_term.0, s.state.steps as usize);
        assert!(w.landmarks.0 >= 1 && w.cost_to_go.len() == s.state.steps as usize + 1);
        commands.send(Command::Agent("cem".into())).unwrap();
        let alone = wait(&events, "the planner alone", |s| s.whole.is_none() && s.plans_made > 0);
        assert!(!alone.hierarchical);
    }
}
