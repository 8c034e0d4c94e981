//! `amisim run`: a window onto a scene with the agent acting in it, and an egui overlay that
//! shows why it acts — what it sees, what it imagined, what that cost.
//!
//! Planning runs on the agent thread ([`agent`]); the window's systems only take the latest
//! snapshot from a channel (never waiting), so the frame rate does not depend on the planner.
//! The world is drawn by Bevy from a viewer camera (the arena at window scale, not the agent's
//! 65-pixel observation); the overlay paints imagined paths on top of it.

pub mod agent;

use crate::actor::planner::PlannerConfig;
use crate::agent::Mode;
use crate::world::check_adapter;
use agent::{AgentOptions, Command, Event, Landscape, ModelsView, Snapshot, WholeView};
use anyhow::{bail, Result};
use bevy::camera::visibility::RenderLayers;
use bevy::camera::{CameraOutputMode, ScalingMode, Viewport};
use bevy::log::{Level, LogPlugin};
use bevy::prelude::*;
use bevy::render::render_resource::BlendState;
use bevy::render::settings::{Backends, RenderCreation, WgpuSettings};
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};
use bevy::render::view::Msaa;
use bevy::render::RenderPlugin;
use bevy::window::{PrimaryWindow, WindowResolution};
use bevy_egui::{egui, EguiContexts, EguiGlobalSettings, EguiPlugin, EguiPrimaryContextPass, PrimaryEguiContext};
use crossbeam_channel::{Receiver, Sender};
use egui_plot::{Line, Plot, PlotPoints, Points};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Settings of `amisim run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub agent: AgentOptions,
    /// Save a screenshot of the window here after `frames` frames, then exit.
    pub screenshot: Option<PathBuf>,
    /// Frames to run before the screenshot, counted from when the agent has planned and the
    /// energy landscape of its goal is in.
    pub frames: usize,
    pub width: u32,
    pub height: u32,
    /// Scenes offered in the scene switcher.
    pub scenes: Vec<String>,
}

/// The line that installs a virtual X server, printed when no display is set.
pub const XVFB_INSTALL_HINT: &str = "sudo apt-get install -y xvfb";

/// Fails with a clear message when there is no display to open a window on: `DISPLAY` unset,
/// or naming a local display whose X server socket is missing.
pub fn check_display() -> Result<()> {
    let fix = format!(
        "On a machine without a display, run it under a virtual one: xvfb-run -a amisim run … \
         (install it with: {XVFB_INSTALL_HINT})"
    );
    let display = std::env::var("DISPLAY").unwrap_or_default();
    if display.is_empty() {
        bail!("amisim run opens a window and no X display is set (DISPLAY). {fix}");
    }
    // A local display `:N` or `:N.S` listens on /tmp/.X11-unix/XN.
    if let Some(n) = display.strip_prefix(':').and_then(|r| r.split('.').next()) {
        let socket = std::path::Path::new("/tmp/.X11-unix").join(format!("X{n}"));
        if !socket.exists() {
            bail!(
                "DISPLAY={display}: no X server is running there ({} is missing). {fix}",
                socket.display()
            );
        }
    }
    Ok(())
}

/// Opens the window and runs until it is closed (or the screenshot is saved).
pub fn run(opts: RunOptions) -> Result<()> {
    crate::world::Scene::load(&opts.agent.scene)?;
    check_display()?;
    check_adapter()?;
    let (events_tx, events_rx) = crossbeam_channel::unbounded();
    let commands = agent::spawn(opts.agent.clone(), events_tx);
    let outcome: Arc<Mutex<Option<Result<String, String>>>> = Arc::new(Mutex::new(None));
    let mut app = App::new();
    app.add_plugins(
        DefaultPlugins
            .set(WindowPlugin {
                primary_window: Some(Window {
                    title: format!("amisim — {}", opts.agent.scene),
                    resolution: WindowResolution::new(opts.width, opts.height).with_scale_factor_override(1.0),
                    ..default()
                }),
                ..default()
            })
            .set(RenderPlugin {
                render_creation: RenderCreation::Automatic(Box::new(WgpuSettings {
                    backends: Some(Backends::VULKAN),
                    ..default()
                })),
                ..default()
            })
            .set(LogPlugin {
                level: Level::WARN,
                filter: "warn,wgpu=error,naga=error,bevy_render=error".into(),
                ..default()
            }),
    );
    app.add_plugins(EguiPlugin::default());
    app.insert_resource(ClearColor(Color::srgb(0.06, 0.06, 0.08)));
    app.insert_resource(Link {
        events: events_rx,
        commands,
    });
    app.insert_resource(View::new(&opts));
    app.insert_resource(Shot {
        path: opts.screenshot.clone(),
        frames: opts.frames,
        counted: 0,
        since: None,
        taken: false,
        started: Instant::now(),
        outcome: outcome.clone(),
    });
    app.add_systems(Startup, setup);
    app.add_systems(Update, (receive, sync_world, screenshot).chain());
    app.add_systems(EguiPrimaryContextPass, overlay);
    app.run();
    let result = outcome.lock().expect("outcome lock").take();
    match result {
        Some(Ok(msg)) => {
            eprintln!("{msg}");
            Ok(())
        }
        Some(Err(msg)) => bail!("{msg}"),
        None if opts.screenshot.is_some() => bail!("the window closed before the screenshot was taken"),
        None => Ok(()),
    }
}

#[derive(Resource)]
struct Link {
    events: Receiver<Event>,
    commands: Sender<Command>,
}

impl Link {
    fn send(&self, c: Command) {
        let _ = self.commands.send(c);
    }
}

/// What the window shows and the state of its controls.
#[derive(Resource)]
struct View {
    snapshot: Option<Box<Snapshot>>,
    landscape: Option<Landscape>,
    /// The landscape's colours (made once, when it arrives) and its energy range.
    landscape_image: Option<(egui::ColorImage, f32, f32)>,
    status: String,
    failed: Option<String>,
    obs_tex: LiveTexture,
    goal_tex: LiveTexture,
    landscape_tex: LiveTexture,
    /// Slider values.
    horizon: usize,
    samples: usize,
    iterations: usize,
    steps_per_second: f32,
    show_candidates: bool,
    show_landscape: bool,
    scenes: Vec<String>,
    /// Frames per second (exponential average) and its history.
    fps: f64,
    fps_history: Vec<[f64; 2]>,
    frame: u64,
    /// The world's layout as drawn, to respawn sprites when it changes.
    drawn_layout: Option<(String, u64, u64)>,
    /// The central area (logical pixels): where the world is drawn.
    world_rect: Option<egui::Rect>,
}

impl View {
    fn new(opts: &RunOptions) -> View {
        let p = PlannerConfig::default();
        View {
            snapshot: None,
            landscape: None,
            landscape_image: None,
            status: "starting".into(),
            failed: None,
            obs_tex: LiveTexture::default(),
            goal_tex: LiveTexture::default(),
            landscape_tex: LiveTexture::default(),
            horizon: p.horizon,
            samples: p.samples,
            iterations: p.iterations,
            steps_per_second: opts.agent.steps_per_second,
            show_candidates: true,
            show_landscape: false,
            scenes: opts.scenes.clone(),
            fps: 0.0,
            fps_history: Vec::new(),
            frame: 0,
            drawn_layout: None,
            world_rect: None,
        }
    }

    /// Whether everything a screenshot should show is in: a plan, its goal's landscape, and
    /// the images on screen.
    fn ready(&self) -> bool {
        match (&self.snapshot, &self.landscape) {
            (Some(s), Some(l)) => {
                s.plans_made > 0
                    && l.goal_id == s.goal_id
                    && !s.candidates.is_empty()
                    && [&self.obs_tex, &self.goal_tex, &self.landscape_tex]
                        .iter()
                        .all(|t| t.id().is_some())
            }
            _ => false,
        }
    }
}

#[derive(Resource)]
struct Shot {
    path: Option<PathBuf>,
    frames: usize,
    counted: usize,
    since: Option<Instant>,
    taken: bool,
    started: Instant,
    outcome: Arc<Mutex<Option<Result<String, String>>>>,
}

/// How long a screenshot run waits for the agent's first plan and landscape.
const READY_TIMEOUT_S: u64 = 600;

#[derive(Component)]
struct WorldCamera;
/// Every sprite of the arena (respawned when the layout changes).
#[derive(Component)]
struct ArenaItem;
#[derive(Component)]
struct AgentSprite;
#[derive(Component)]
struct BoxSprite;
#[derive(Component)]
struct GoalSprite;

fn setup(mut commands: Commands, mut egui_settings: ResMut<EguiGlobalSettings>) {
    egui_settings.auto_create_primary_context = false;
    // No multisampling: on a software Vulkan driver it costs more than the whole overlay.
    commands.spawn((WorldCamera, Camera2d, Camera { order: 0, ..default() }, Msaa::Off));
    commands.spawn((
        PrimaryEguiContext,
        Camera2d,
        RenderLayers::none(),
        Camera {
            order: 1,
            output_mode: CameraOutputMode::Write {
                blend_state: Some(BlendState::ALPHA_BLENDING),
                clear_color: ClearColorConfig::None,
            },
            clear_color: ClearColorConfig::Custom(Color::NONE),
            ..default()
        },
        Msaa::Off,
    ));
}

/// Takes every message the agent sent since the last frame (never waits).
fn receive(link: Res<Link>, mut view: ResMut<View>, time: Res<Time>) {
    for e in link.events.try_iter() {
        match e {
            Event::Status(s) => view.status = s,
            Event::Snapshot(s) => {
                view.status = s.status.clone();
                if !s.obs.is_empty() {
                    view.obs_tex.update(color_image(&s.obs, s.side));
                }
                if !s.goal_obs.is_empty() {
                    view.goal_tex.update(color_image(&s.goal_obs, s.side));
                }
                // The sliders follow the planner that is on (flat, or the hierarchy's level 1).
                let switched = view
                    .snapshot
                    .as_ref()
                    .is_none_or(|old| old.hierarchical != s.hierarchical || old.planner != s.planner);
                if switched {
                    (view.horizon, view.samples, view.iterations) =
                        (s.planner.horizon, s.planner.samples, s.planner.iterations);
                }
                view.snapshot = Some(s);
            }
            Event::Landscape(l) => {
                let (img, lo, hi) = landscape_image(&l);
                view.landscape_tex.update(img.clone());
                view.landscape_image = Some((img, lo, hi));
                view.landscape = Some(l);
            }
            Event::Failed(msg) => {
                view.status = format!("the agent stopped: {msg}");
                view.failed = Some(msg);
            }
        }
    }
    let dt = time.delta_secs_f64();
    if dt > 0.0 {
        let f = 1.0 / dt;
        view.fps = if view.fps == 0.0 { f } else { 0.9 * view.fps + 0.1 * f };
    }
    view.frame += 1;
    let (frame, fps) = (view.frame as f64, view.fps);
    view.fps_history.push([frame, fps]);
    if view.fps_history.len() > 600 {
        view.fps_history.remove(0);
    }
}

/// Arena point (x right, y down) → world position.
fn world(p: Vec2, z: f32) -> Vec3 {
    Vec3::new(p.x, -p.y, z)
}

/// The arena's moving sprites, and which one each is.
type Movers<'w, 's> = Query<
    'w,
    's,
    (
        &'static mut Transform,
        Has<AgentSprite>,
        Has<BoxSprite>,
        Has<GoalSprite>,
    ),
    With<ArenaItem>,
>;
/// The camera that draws the world into the central area.
type WorldCam<'w, 's> = Query<
    'w,
    's,
    (&'static mut Camera, &'static mut Projection, &'static mut Transform),
    (With<WorldCamera>, Without<ArenaItem>),
>;

/// Keeps the sprites of the arena in step with the snapshot, and the camera on the central area.
#[allow(clippy::too_many_arguments)]
fn sync_world(
    mut commands: Commands,
    mut view: ResMut<View>,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<ColorMaterial>>,
    items: Query<Entity, With<ArenaItem>>,
    mut movers: Movers,
    mut camera: WorldCam,
    window: Query<&Window, With<PrimaryWindow>>,
) {
    let view = &mut *view;
    let Some(snap) = view.snapshot.as_ref() else { return };
    let Some(s) = snap.scene.top_down() else { return };
    let size = s.size as f32;
    let layout_key = snap.state.layout.as_ref().map_or(0, |l| Arc::as_ptr(l) as u64);
    let key = (snap.scene.name().to_string(), layout_key, snap.goal_id);
    if view.drawn_layout.as_ref() != Some(&key) {
        for e in &items {
            commands.entity(e).despawn();
        }
        let c = Vec2::splat(size / 2.0 - 0.5);
        commands.spawn((
            ArenaItem,
            Sprite::from_color(Color::srgb(0.13, 0.14, 0.17), Vec2::splat(size)),
            Transform::from_translation(world(c, 0.0)),
        ));
        if let Some(layout) = &snap.state.layout {
            for r in &layout.walls {
                commands.spawn((
                    ArenaItem,
                    Sprite::from_color(Color::srgb(0.72, 0.74, 0.80), r.size()),
                    Transform::from_translation(world(r.center(), 1.0)),
                ));
            }
        }
        let r = snap.scene.episode().success_radius;
        commands.spawn((
            ArenaItem,
            GoalSprite,
            Mesh2d(meshes.add(Annulus::new(r - 0.6, r))),
            MeshMaterial2d(materials.add(ColorMaterial::from_color(Color::srgb(0.25, 0.95, 0.45)))),
            Transform::from_translation(world(snap.state.goal, 2.0)),
        ));
        if let Some(p) = &s.pushable {
            commands.spawn((
                ArenaItem,
                BoxSprite,
                Sprite::from_color(Color::srgb(0.25, 0.5, 1.0), Vec2::splat(2.0 * p.half_size)),
                Transform::from_translation(world(snap.state.pushable.unwrap_or_default(), 3.0)),
            ));
        }
        commands.spawn((
            ArenaItem,
            AgentSprite,
            Mesh2d(meshes.add(Circle::new(1.6))),
            MeshMaterial2d(materials.add(ColorMaterial::from_color(Color::srgb(1.0, 0.55, 0.15)))),
            Transform::from_translation(world(snap.state.agent, 4.0)),
        ));
        view.drawn_layout = Some(key);
    }
    for (mut t, is_agent, is_box, is_goal) in &mut movers {
        if is_agent {
            t.translation = world(snap.state.agent, 4.0);
        } else if is_box {
            t.translation = world(snap.state.pushable.unwrap_or_default(), 3.0);
        } else if is_goal {
            t.translation = world(snap.state.goal, 2.0);
        }
    }
    let (Some(rect), Ok(window)) = (view.world_rect, window.single()) else {
        return;
    };
    let sf = window.scale_factor();
    let pos = UVec2::new((rect.min.x * sf).max(0.0) as u32, (rect.min.y * sf).max(0.0) as u32);
    let size_px = UVec2::new(
        (rect.width() * sf).max(1.0) as u32,
        (rect.height() * sf).max(1.0) as u32,
    );
    let (w, h) = (window.physical_width(), window.physical_height());
    if pos.x + size_px.x > w || pos.y + size_px.y > h {
        return;
    }
    if let Ok((mut cam, mut proj, mut t)) = camera.single_mut() {
        cam.viewport = Some(Viewport {
            physical_position: pos,
            physical_size: size_px,
            ..default()
        });
        *proj = Projection::Orthographic(OrthographicProjection {
            scaling_mode: ScalingMode::AutoMin {
                min_width: size,
                min_height: size,
            },
            ..OrthographicProjection::default_2d()
        });
        t.translation = world(Vec2::splat(size / 2.0 - 0.5), 100.0);
    }
}

/// An RGBA image for egui.
fn color_image(rgba: &[u8], side: usize) -> egui::ColorImage {
    egui::ColorImage::from_rgba_unmultiplied([side, side], rgba)
}

/// An egui texture that changes while shown. Every egui image update becomes a new Bevy image
/// that the renderer has a frame or two later; until then the image would draw blank. So a new
/// image is shown only once it is two frames old (the previous one stays up meanwhile), and at
/// most one waits: updates faster than that keep only the latest.
#[derive(Default)]
struct LiveTexture {
    shown: Option<egui::TextureHandle>,
    pending: Option<(egui::TextureHandle, u64)>,
    next: Option<egui::ColorImage>,
}

/// Frames before any texture is made (the renderer's egui context is being set up) and before
/// a new texture is shown.
const TEXTURE_SETTLE_FRAMES: u64 = 2;

impl LiveTexture {
    fn update(&mut self, img: egui::ColorImage) {
        self.next = Some(img);
    }

    /// Once per frame: promotes a settled texture, starts the next.
    fn tick(&mut self, ctx: &egui::Context, name: &str, frame: u64) {
        if frame < 5 * TEXTURE_SETTLE_FRAMES {
            return;
        }
        if self
            .pending
            .as_ref()
            .is_some_and(|(_, born)| frame >= born + TEXTURE_SETTLE_FRAMES)
        {
            self.shown = self.pending.take().map(|(t, _)| t);
        }
        if self.pending.is_none() {
            if let Some(img) = self.next.take() {
                self.pending = Some((ctx.load_texture(name, img, egui::TextureOptions::NEAREST), frame));
            }
        }
    }

    fn id(&self) -> Option<egui::TextureId> {
        self.shown.as_ref().map(|t| t.id())
    }
}

/// Low energy yellow, high energy deep blue (a viridis-like ramp); `t` in 0..=1.
fn ramp(t: f32) -> egui::Color32 {
    const STOPS: [[f32; 3]; 5] = [
        [0.99, 0.91, 0.15],
        [0.37, 0.79, 0.38],
        [0.13, 0.57, 0.55],
        [0.23, 0.32, 0.55],
        [0.27, 0.00, 0.33],
    ];
    let t = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f32;
    let i = (t.floor() as usize).min(STOPS.len() - 2);
    let f = t - i as f32;
    let c: Vec<u8> = (0..3)
        .map(|k| ((STOPS[i][k] * (1.0 - f) + STOPS[i + 1][k] * f) * 255.0) as u8)
        .collect();
    egui::Color32::from_rgb(c[0], c[1], c[2])
}

/// The landscape as an image, with its range.
fn landscape_image(l: &Landscape) -> (egui::ColorImage, f32, f32) {
    let finite = l.values.iter().copied().filter(|v| v.is_finite());
    let lo = finite.clone().fold(f32::INFINITY, f32::min);
    let hi = finite.fold(f32::NEG_INFINITY, f32::max);
    let mut img = egui::ColorImage::new([l.n, l.n], vec![egui::Color32::BLACK; l.n * l.n]);
    for (k, v) in l.values.iter().enumerate() {
        img.pixels[k] = if v.is_finite() {
            ramp((v - lo) / (hi - lo).max(1e-6))
        } else {
            egui::Color32::from_gray(200)
        };
    }
    (img, lo, hi)
}

/// The overlay: panels around the world, paths painted over it, controls.
fn overlay(
    mut contexts: EguiContexts,
    mut view: ResMut<View>,
    link: Res<Link>,
    keys: Res<ButtonInput<KeyCode>>,
) -> bevy::ecs::error::Result {
    let ctx = contexts.ctx_mut()?.clone();
    let view = &mut *view;
    let landscape_range = match (&view.landscape, &view.landscape_image) {
        (Some(l), Some((_, lo, hi))) => Some((*lo, *hi, l.ms)),
        _ => None,
    };
    let frame = view.frame;
    view.obs_tex.tick(&ctx, "observation", frame);
    view.goal_tex.tick(&ctx, "goal", frame);
    view.landscape_tex.tick(&ctx, "landscape", frame);
    let mut root = egui::Ui::new(
        ctx.clone(),
        "root".into(),
        egui::UiBuilder::new()
            .layer_id(egui::LayerId::background())
            .max_rect(ctx.content_rect()),
    );
    top_bar(&mut root, view, &link);
    egui::Panel::left("left")
        .exact_size(300.0)
        .show(&mut root, |ui| left_panel(ui, view, &link, landscape_range));
    egui::Panel::right("right")
        .exact_size(330.0)
        .show(&mut root, |ui| right_panel(ui, view));
    egui::CentralPanel::default()
        .frame(egui::Frame::NONE)
        .show(&mut root, |ui| world_area(ui, view, &link));
    // Keyboard driving (arrows or WASD), unless a text field has the keyboard.
    if !ctx.egui_wants_keyboard_input() {
        let mut d = Vec2::ZERO;
        for (k, v) in [
            (KeyCode::ArrowLeft, -Vec2::X),
            (KeyCode::KeyA, -Vec2::X),
            (KeyCode::ArrowRight, Vec2::X),
            (KeyCode::KeyD, Vec2::X),
            (KeyCode::ArrowUp, -Vec2::Y),
            (KeyCode::KeyW, -Vec2::Y),
            (KeyCode::ArrowDown, Vec2::Y),
            (KeyCode::KeyS, Vec2::Y),
        ] {
            if keys.pressed(k) {
                d += v;
            }
        }
        if d != Vec2::ZERO {
            if let Some(s) = view
                .snapshot
                .as_ref()
                .and_then(|s| s.scene.top_down().map(|t| t.agent.max_step))
            {
                let a = d.normalize() * s;
                link.send(Command::Drive([a.x, a.y]));
            }
        }
        if keys.just_pressed(KeyCode::Space) {
            let paused = view.snapshot.as_ref().is_some_and(|s| s.paused);
            link.send(Command::Pause(!paused));
        }
        if keys.just_pressed(KeyCode::Period) {
            link.send(Command::Step);
        }
        if keys.just_pressed(KeyCode::KeyR) {
            link.send(Command::Reset);
        }
    }
    Ok(())
}

fn top_bar(ui: &mut egui::Ui, view: &mut View, link: &Link) {
    egui::Panel::top("top").show(ui, |ui| {
        ui.horizontal(|ui| {
            ui.heading("amisim");
            let Some(s) = view.snapshot.as_ref() else {
                ui.label(&view.status);
                return;
            };
            let scene = s.scene.name().to_string();
            egui::ComboBox::from_id_salt("scene")
                .selected_text(format!("scene: {scene}"))
                .show_ui(ui, |ui| {
                    for name in &view.scenes {
                        if ui.selectable_label(*name == scene, name).clicked() && *name != scene {
                            link.send(Command::Scene(name.clone()));
                        }
                    }
                });
            egui::ComboBox::from_id_salt("agent")
                .selected_text(format!("agent: {} ({})", s.agent, mode_name(s.mode)))
                .show_ui(ui, |ui| {
                    for name in &s.agents {
                        if ui.selectable_label(*name == s.agent, name).clicked() && *name != s.agent {
                            link.send(Command::Agent(name.clone()));
                        }
                    }
                });
            let paused = s.paused;
            if ui.button(if paused { "▶ run" } else { "⏸ pause" }).clicked() {
                link.send(Command::Pause(!paused));
            }
            if ui.button("step").clicked() {
                link.send(Command::Step);
            }
            if ui.button("reset").clicked() {
                link.send(Command::Reset);
            }
            ui.separator();
            let st = &s.state;
            let unit = s.scene.position_unit();
            ui.label(format!(
                "step {} / {}   distance {:.1} {unit}   {:.0} frames/s",
                st.steps,
                s.scene.episode().max_steps,
                st.goal_distance(&s.scene),
                view.fps
            ));
        });
        ui.horizontal(|ui| {
            let text = match &view.failed {
                Some(_) => egui::RichText::new(&view.status).color(egui::Color32::LIGHT_RED),
                None => egui::RichText::new(&view.status),
            };
            ui.label(text);
            if let Some(s) = &view.snapshot {
                ui.separator();
                ui.label(egui::RichText::new(format!("plans with {}", s.model)).weak());
            }
        });
    });
}

/// The colour of the (level-1) planner's costs.
const LOW_COLOUR: egui::Color32 = egui::Color32::from_rgb(255, 80, 200);
/// The colour of level 2 (its plan, the subgoal, its costs).
const HIGH_COLOUR: egui::Color32 = egui::Color32::from_rgb(60, 210, 255);

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Random => "random actions",
        Mode::Oracle => "the true simulator",
        Mode::Plan => "planning",
        Mode::Hierarchical => "hierarchical planning",
        Mode::Mode1 => "mode 1",
        Mode::Configured => "configured",
    }
}

fn left_panel(ui: &mut egui::Ui, view: &mut View, link: &Link, landscape_range: Option<(f32, f32, f64)>) {
    ui.horizontal(|ui| {
        ui.vertical(|ui| {
            ui.label("observation");
            match view.obs_tex.id() {
                Some(t) => ui.image((t, egui::vec2(136.0, 136.0))),
                None => ui.label("…"),
            };
        });
        ui.vertical(|ui| {
            ui.label("goal");
            match view.goal_tex.id() {
                Some(t) => ui.image((t, egui::vec2(136.0, 136.0))),
                None => ui.label("…"),
            };
        });
    });
    ui.separator();
    ui.label("energy landscape: goal vs. agent drawn at each point");
    match (view.landscape_tex.id(), landscape_range) {
        (Some(t), Some((lo, hi, ms))) => {
            let r = ui.image((t, egui::vec2(240.0, 240.0)));
            // The goal and the agent on the map.
            if let (Some(s), Some(l)) = (&view.snapshot, &view.landscape) {
                let span = l.n as f32 * l.cell;
                let to =
                    |p: Vec2| r.rect.min + egui::vec2((p.x - l.origin) / span, (p.y - l.origin) / span) * r.rect.size();
                let painter = ui.painter_at(r.rect);
                painter.circle_stroke(to(s.state.goal), 5.0, egui::Stroke::new(2.0, egui::Color32::WHITE));
                painter.circle_filled(to(s.state.agent), 3.0, egui::Color32::from_rgb(255, 140, 40));
            }
            ui.label(format!("energy {lo:.2} (yellow) … {hi:.2} (purple), {ms:.0} ms"));
        }
        _ => {
            ui.label("computing…");
        }
    }
    ui.separator();
    ui.label("planner");
    let mut changed = Vec::new();
    if ui
        .add(egui::Slider::new(&mut view.horizon, 2..=48).text("horizon (decisions)"))
        .drag_stopped()
    {
        changed.push(Command::Horizon(view.horizon));
    }
    if ui
        .add(egui::Slider::new(&mut view.samples, 20..=1000).text("samples"))
        .drag_stopped()
    {
        changed.push(Command::Samples(view.samples));
    }
    if ui
        .add(egui::Slider::new(&mut view.iterations, 1..=20).text("iterations"))
        .drag_stopped()
    {
        changed.push(Command::Iterations(view.iterations));
    }
    if ui
        .add(egui::Slider::new(&mut view.steps_per_second, 1.0..=60.0).text("steps / s"))
        .drag_stopped()
    {
        changed.push(Command::StepsPerSecond(view.steps_per_second));
    }
    for c in changed {
        link.send(c);
    }
    if let Some(s) = &view.snapshot {
        let p: &PlannerConfig = &s.planner;
        let text = if s.whole.is_some() {
            "the configured agent sets its own horizon (right); the sliders set its planner's samples and iterations"
                .to_string()
        } else if s.hierarchical {
            format!(
                "level 1 (the sliders): {} × {} steps toward the subgoal, replan every {}; level 2: {} jumps ahead",
                p.horizon,
                p.repeat,
                p.replan_every,
                s.high_plan.len()
            )
        } else {
            format!(
                "{} × {} steps ahead, replan every {}, {:?} cost",
                p.horizon, p.repeat, p.replan_every, p.cost.horizon
            )
        };
        ui.label(egui::RichText::new(text).weak());
    }
    ui.checkbox(&mut view.show_candidates, "candidate plans");
    ui.checkbox(&mut view.show_landscape, "landscape over the world");
    ui.separator();
    ui.label(
        egui::RichText::new("click the world: new goal · arrows/WASD: drive · space: pause · .: step · R: reset")
            .weak(),
    );
}

/// A plot of `height` that the mouse does not move: the live plots follow their data.
fn fixed_plot(id: &str, height: f32) -> Plot<'_> {
    Plot::new(id)
        .height(height)
        .allow_drag(false)
        .allow_zoom(false)
        .allow_scroll(false)
}

fn right_panel(ui: &mut egui::Ui, view: &View) {
    let h = 150.0;
    let Some(s) = &view.snapshot else {
        ui.label("waiting for the agent…");
        return;
    };
    if !s.models.names.is_empty() {
        world_models(ui, &s.models);
        ui.separator();
    }
    if let Some(w) = &s.whole {
        whole_agent(ui, w, s);
        ui.separator();
    }
    ui.label("energy to goal (latent distance) per step");
    let energy = s.energy.clone();
    fixed_plot("energy", h)
        .include_y(0.0)
        .show(ui, move |p| p.line(Line::new("energy", PlotPoints::from(energy))));
    ui.label(if s.hierarchical {
        "best cost per planner iteration (last plans: level 1, level 2)"
    } else {
        "best cost per planner iteration (last plan)"
    });
    let series = |costs: &[f32]| -> Vec<[f64; 2]> {
        costs
            .iter()
            .enumerate()
            .map(|(i, c)| [i as f64 + 1.0, *c as f64])
            .collect()
    };
    let iters = series(&s.iteration_costs);
    let high = if s.hierarchical {
        series(&s.high_iteration_costs)
    } else {
        Vec::new()
    };
    let mut plot = fixed_plot("iterations", h);
    if !high.is_empty() {
        plot = plot.legend(egui_plot::Legend::default());
    }
    plot.show(ui, move |p| {
        let name = if high.is_empty() { "best cost" } else { "level 1" };
        p.line(Line::new(name, PlotPoints::from(iters.clone())).color(LOW_COLOUR));
        p.points(Points::new(name, PlotPoints::from(iters)).radius(3.0).color(LOW_COLOUR));
        if !high.is_empty() {
            p.line(Line::new("level 2", PlotPoints::from(high.clone())).color(HIGH_COLOUR));
            p.points(
                Points::new("level 2", PlotPoints::from(high))
                    .radius(3.0)
                    .color(HIGH_COLOUR),
            );
        }
    });
    let last = s.plan_ms.last().map_or(0.0, |m| m[1]);
    ui.label(format!("planning ms per step (last {last:.1})"));
    let ms = s.plan_ms.clone();
    fixed_plot("plan_ms", h)
        .include_y(0.0)
        .show(ui, move |p| p.line(Line::new("ms per step", PlotPoints::from(ms))));
    ui.label(format!("frames per second ({:.0})", view.fps));
    let fps = view.fps_history.clone();
    fixed_plot("fps", 80.0)
        .include_y(0.0)
        .show(ui, move |p| p.line(Line::new("frames/s", PlotPoints::from(fps))));
}

/// The world models the agent plans with: which one plans now, how they take turns, and the
/// moves the world did not let happen.
fn world_models(ui: &mut egui::Ui, m: &ModelsView) {
    ui.label(
        egui::RichText::new(if m.names.len() > 1 {
            "world models"
        } else {
            "world model"
        })
        .strong(),
    );
    for (i, name) in m.names.iter().enumerate() {
        let text = if i == m.acting && m.names.len() > 1 {
            egui::RichText::new(format!("▶ {name} (planning)")).color(LOW_COLOUR)
        } else {
            egui::RichText::new(format!("  {name}"))
        };
        ui.label(text);
    }
    if !m.together.is_empty() {
        ui.label(egui::RichText::new(&m.together).weak());
        ui.label(format!("passed to the next model {} time(s) this episode", m.switches));
    }
    if m.remembers_blocked {
        ui.label(format!(
            "moves the world did not let happen: {} noticed, {} blocked here (red arrows)",
            m.stalls,
            m.blocked.len()
        ));
    }
}

/// The configured agent: its settings, which mode acted, its memories, the configurator's decisions
/// with their reasons, and the critic's cost-to-go.
fn whole_agent(ui: &mut egui::Ui, w: &WholeView, s: &Snapshot) {
    let st = &w.settings;
    ui.label(egui::RichText::new("configured agent").strong());
    ui.label(format!(
        "last step: {}   mode 1 {} / mode 2 {} steps",
        if w.last_mode1 {
            "mode 1 (policy)"
        } else {
            "mode 2 (planned)"
        },
        w.mode1_steps,
        w.mode2_steps
    ));
    ui.label(format!(
        "mode 1 {}, {}, critic weight {}{}",
        if st.mode1 { "on" } else { "off" },
        if st.hierarchical {
            "hierarchical".to_string()
        } else {
            format!("flat, horizon {}", st.horizon)
        },
        st.critic,
        if w.waypoint { ", steering to a waypoint" } else { "" }
    ));
    ui.label(
        egui::RichText::new(format!(
            "short-term memory {}/{} steps · episodic {}/{} landmarks · {} loop(s){}{}",
            w.short_term.0,
            w.short_term.1,
            w.landmarks.0,
            w.landmarks.1,
            w.loops,
            if s.has_critic { "" } else { " · no critic" },
            if s.has_mode1 { "" } else { " · no mode-1 policy" },
        ))
        .weak(),
    );
    egui::ScrollArea::vertical()
        .id_salt("decisions")
        .max_height(130.0)
        .stick_to_bottom(true)
        .show(ui, |ui| {
            for d in &w.decisions {
                ui.label(egui::RichText::new(format!("step {}: {} — {}", d.step, d.change, d.reason)).small());
            }
        });
    if !w.cost_to_go.is_empty() {
        ui.label("critic: cost-to-go (steps)");
        let c = w.cost_to_go.clone();
        fixed_plot("cost_to_go", 90.0)
            .include_y(0.0)
            .show(ui, move |p| p.line(Line::new("cost-to-go", PlotPoints::from(c))));
    }
}

/// The central area: the world shows through; imagined paths are painted over it; a click
/// sets the goal.
fn world_area(ui: &mut egui::Ui, view: &mut View, link: &Link) {
    let rect = ui.available_rect_before_wrap();
    view.world_rect = Some(rect);
    let response = ui.allocate_rect(rect, egui::Sense::click());
    let Some(s) = &view.snapshot else { return };
    // Top-down: the camera fits the arena (-0.5 .. size-0.5) into the area, centred (AutoMin).
    // First-person: a map of the room (0 .. size metres, z down) painted here.
    let size = s.scene.size();
    let mid = if s.scene.top_down().is_some() {
        size / 2.0 - 0.5
    } else {
        size / 2.0
    };
    let scale = rect.width().min(rect.height()) / size;
    let centre = rect.center();
    let to = |p: [f32; 2]| centre + egui::vec2(p[0] - mid, p[1] - mid) * scale;
    let painter = ui.painter_at(rect);
    if let Some(fp) = s.scene.first_person() {
        first_person_map(&painter, &to, scale, fp, &s.state);
    }
    if view.show_landscape {
        if let (Some(l), Some((img, _, _))) = (&view.landscape, &view.landscape_image) {
            for j in 0..l.n {
                for i in 0..l.n {
                    let c = img.pixels[j * l.n + i];
                    if l.values[j * l.n + i].is_finite() {
                        let a = [l.origin + i as f32 * l.cell, l.origin + j as f32 * l.cell];
                        let b = [a[0] + l.cell, a[1] + l.cell];
                        painter.rect_filled(
                            egui::Rect::from_min_max(to(a), to(b)),
                            0.0,
                            egui::Color32::from_rgba_unmultiplied(c.r(), c.g(), c.b(), 110),
                        );
                    }
                }
            }
        }
    }
    if view.show_candidates && !s.candidates.is_empty() {
        let lo = s.candidates.iter().map(|c| c.cost).fold(f32::INFINITY, f32::min);
        let hi = s.candidates.iter().map(|c| c.cost).fold(f32::NEG_INFINITY, f32::max);
        // Worst first, so the best lie on top; elites last of all.
        let mut order: Vec<usize> = (0..s.candidates.len()).collect();
        order.sort_by(|&a, &b| {
            let (ca, cb) = (&s.candidates[a], &s.candidates[b]);
            ca.elite.cmp(&cb.elite).then(cb.cost.total_cmp(&ca.cost))
        });
        for i in order {
            let c = &s.candidates[i];
            let col = ramp((c.cost - lo) / (hi - lo).max(1e-6));
            let pts: Vec<egui::Pos2> = std::iter::once([s.state.agent.x, s.state.agent.y])
                .chain(c.path.iter().copied())
                .map(to)
                .collect();
            let stroke = if c.elite {
                egui::Stroke::new(2.0, col)
            } else {
                egui::Stroke::new(1.0, col.gamma_multiply(0.6))
            };
            painter.add(egui::Shape::line(pts, stroke));
        }
    }
    if s.executed.len() > 1 {
        let pts: Vec<egui::Pos2> = s.executed.iter().copied().map(to).collect();
        painter.add(egui::Shape::line(
            pts,
            egui::Stroke::new(2.0, egui::Color32::from_rgb(250, 250, 250)),
        ));
    }
    for d in &s.models.blocked {
        // A move remembered as blocked here: an arrow from the agent the way it pushed.
        let from = to([s.state.agent.x, s.state.agent.y]);
        let tip = from + egui::vec2(d[0], d[1]) * 7.0 * scale;
        painter.arrow(
            from,
            tip - from,
            egui::Stroke::new(3.0, egui::Color32::from_rgb(255, 60, 60)),
        );
    }
    if !s.plan.is_empty() {
        let pts: Vec<egui::Pos2> = std::iter::once([s.state.agent.x, s.state.agent.y])
            .chain(s.plan.iter().copied())
            .map(to)
            .collect();
        painter.add(egui::Shape::line(
            pts.clone(),
            egui::Stroke::new(3.0, egui::Color32::from_rgb(255, 80, 200)),
        ));
        for p in pts.iter().step_by(s.planner.repeat.max(1)) {
            painter.circle_filled(*p, 2.5, egui::Color32::from_rgb(255, 80, 200));
        }
    }
    if s.hierarchical && !s.high_plan.is_empty() {
        // The level-2 plan: one imagined position per jump of k steps.
        let pts: Vec<egui::Pos2> = std::iter::once([s.state.agent.x, s.state.agent.y])
            .chain(s.high_plan.iter().copied())
            .map(to)
            .collect();
        painter.add(egui::Shape::dashed_line(
            &pts,
            egui::Stroke::new(2.0, HIGH_COLOUR),
            6.0,
            4.0,
        ));
        for p in &pts[1..] {
            painter.circle_filled(*p, 3.5, HIGH_COLOUR);
        }
    }
    if let (true, Some(g)) = (s.hierarchical, s.subgoal) {
        painter.circle_stroke(to(g), 9.0, egui::Stroke::new(3.0, HIGH_COLOUR));
        painter.circle_stroke(to(g), 4.0, egui::Stroke::new(2.0, egui::Color32::WHITE));
    }
    let legend = if s.hierarchical {
        "white: executed · cyan dashed: level-2 plan (a dot per jump) · cyan ring: subgoal\nmagenta: level-1 plan toward it · thin: level-1 candidates by cost (yellow low)"
    } else {
        "white: executed · magenta: chosen plan (imagined) · thin: candidates by cost (yellow low) · thick: elites · red: blocked moves"
    };
    painter.text(
        rect.left_top() + egui::vec2(8.0, 6.0),
        egui::Align2::LEFT_TOP,
        legend,
        egui::FontId::proportional(12.0),
        egui::Color32::from_gray(210),
    );
    if response.clicked() {
        if let Some(p) = response.interact_pointer_pos() {
            let q = (p - centre) / scale;
            let goal = Vec2::new(q.x + mid, q.y + mid);
            link.send(Command::Goal(goal));
        }
    }
}

/// A first-person scene seen from above: floor, inner walls, objects in their colours, the goal
/// object's success ring and the goal pose, the agent and where it looks (its field of view).
fn first_person_map(
    painter: &egui::Painter,
    to: &dyn Fn([f32; 2]) -> egui::Pos2,
    scale: f32,
    fp: &crate::world::scene::FirstPersonScene,
    st: &crate::world::EnvState,
) {
    // Linear colours as the frames store them (no sRGB encoding), so the map matches the views.
    let lin = |c: [f32; 3]| {
        egui::Color32::from_rgb(
            (c[0].clamp(0.0, 1.0) * 255.0) as u8,
            (c[1].clamp(0.0, 1.0) * 255.0) as u8,
            (c[2].clamp(0.0, 1.0) * 255.0) as u8,
        )
    };
    let floor = crate::world::first_person::FLOOR;
    painter.rect_filled(
        egui::Rect::from_min_max(to([0.0, 0.0]), to([fp.size, fp.size])),
        0.0,
        lin(floor.map(|v| v * 1.8)),
    );
    let walls = crate::world::first_person::WALLS;
    let edge = |a: [f32; 2], b: [f32; 2], c: [f32; 3]| {
        painter.line_segment([to(a), to(b)], egui::Stroke::new(4.0, lin(c)));
    };
    let w = fp.size;
    edge([0.0, 0.0], [w, 0.0], walls[0]);
    edge([w, 0.0], [w, w], walls[1]);
    edge([w, w], [0.0, w], walls[2]);
    edge([0.0, w], [0.0, 0.0], walls[3]);
    for wall in &fp.walls {
        painter.rect_filled(
            egui::Rect::from_min_max(to([wall.min.0, wall.min.1]), to([wall.max.0, wall.max.1])),
            0.0,
            lin(wall.rgb()),
        );
    }
    for (k, o) in fp.objects.iter().enumerate() {
        let c = to([o.at.0, o.at.1]);
        let col = lin([o.color.0, o.color.1, o.color.2]);
        match o.shape {
            crate::world::scene::Shape::Cube => {
                painter.rect_filled(
                    egui::Rect::from_center_size(c, egui::Vec2::splat(2.0 * o.radius * scale)),
                    0.0,
                    col,
                );
            }
            _ => {
                painter.circle_filled(c, o.radius * scale, col);
            }
        }
        if st.goal_object == Some(k) {
            let ring = o.radius + fp.agent.radius + fp.episode.success_radius;
            painter.circle_stroke(
                c,
                ring * scale,
                egui::Stroke::new(2.0, egui::Color32::from_rgb(64, 242, 115)),
            );
        }
    }
    // The goal pose: where the goal image is seen from, and which way.
    let g = to([st.goal.x, st.goal.y]);
    let gd = Vec2::from_angle(st.goal_heading) * 0.5 * scale;
    painter.circle_stroke(
        g,
        fp.agent.radius * scale,
        egui::Stroke::new(2.0, egui::Color32::from_rgb(64, 242, 115)),
    );
    painter.arrow(
        g,
        egui::vec2(gd.x, gd.y),
        egui::Stroke::new(2.0, egui::Color32::from_rgb(64, 242, 115)),
    );
    // The agent and its field of view (the horizontal field equals the vertical: square frames).
    let a = to([st.agent.x, st.agent.y]);
    let half = fp.fov_degrees.to_radians() / 2.0;
    for side in [-half, half] {
        let d = Vec2::from_angle(st.heading + side) * 1.5 * scale;
        painter.line_segment(
            [a, a + egui::vec2(d.x, d.y)],
            egui::Stroke::new(1.0, egui::Color32::from_gray(235)),
        );
    }
    painter.circle_filled(a, fp.agent.radius * scale, egui::Color32::from_rgb(255, 140, 38));
    let d = Vec2::from_angle(st.heading) * fp.agent.radius * scale;
    painter.line_segment(
        [a, a + egui::vec2(d.x, d.y)],
        egui::Stroke::new(2.0, egui::Color32::BLACK),
    );
}

/// Counts frames once the agent has planned and the landscape is in; at `frames`, captures the
/// window and exits.
fn screenshot(mut commands: Commands, mut shot: ResMut<Shot>, view: Res<View>, mut exit: MessageWriter<AppExit>) {
    let Some(path) = shot.path.clone() else { return };
    if shot.taken {
        return;
    }
    if let Some(msg) = &view.failed {
        *shot.outcome.lock().expect("outcome lock") = Some(Err(format!("the agent stopped: {msg}")));
        exit.write(AppExit::error());
        return;
    }
    if !view.ready() {
        if shot.started.elapsed().as_secs() > READY_TIMEOUT_S {
            *shot.outcome.lock().expect("outcome lock") = Some(Err(format!(
                "no plan and landscape after {READY_TIMEOUT_S} s: {}",
                view.status
            )));
            exit.write(AppExit::error());
        }
        return;
    }
    if shot.since.is_none() {
        shot.since = Some(Instant::now());
    }
    shot.counted += 1;
    if shot.counted < shot.frames {
        return;
    }
    shot.taken = true;
    let secs = shot.since.map_or(0.0, |t| t.elapsed().as_secs_f64());
    let frames = shot.counted;
    let fps = frames as f64 / secs.max(1e-9);
    let outcome = shot.outcome.clone();
    let plans = view.snapshot.as_ref().map_or(0, |s| s.plans_made);
    commands
        .spawn(Screenshot::primary_window())
        .observe(move |captured: On<ScreenshotCaptured>, mut exit: MessageWriter<AppExit>| {
            let result = write_png(&path, &captured.image).map(|(w, h)| {
                format!(
                    "wrote {} ({w}×{h}); {frames} frames in {secs:.1} s with the agent running: {fps:.1} frames/s; {plans} plans",
                    path.display(),
                )
            });
            let ok = result.is_ok();
            *outcome.lock().expect("outcome lock") = Some(result.map_err(|e| format!("{e:#}")));
            exit.write(if ok { AppExit::Success } else { AppExit::error() });
        });
}

/// Writes a captured window image as an RGB PNG; returns its size.
fn write_png(path: &std::path::Path, img: &Image) -> Result<(u32, u32)> {
    use bevy::render::render_resource::TextureFormat;
    let (w, h) = (img.width(), img.height());
    let data = img
        .data
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("the screenshot has no pixels"))?;
    let bgra = matches!(
        img.texture_descriptor.format,
        TextureFormat::Bgra8Unorm | TextureFormat::Bgra8UnormSrgb
    );
    if !bgra
        && !matches!(
            img.texture_descriptor.format,
            TextureFormat::Rgba8Unorm | TextureFormat::Rgba8UnormSrgb
        )
    {
        bail!("screenshot in an unexpected format {:?}", img.texture_descriptor.format);
    }
    let mut rgb = Vec::with_capacity((w * h * 3) as usize);
    for px in data.chunks_exact(4).take((w * h) as usize) {
        if bgra {
            rgb.extend_from_slice(&[px[2], px[1], px[0]]);
        } else {
            rgb.extend_from_slice(&px[..3]);
        }
    }
    crate::image::save_rgb_png(path, w, h, &rgb)?;
    Ok((w, h))
}
