//! The vectorised environment: N environments of one scene in one Bevy app, stepped together
//! in `FixedUpdate` and drawn in one frame.
//!
//! ```no_run
//! use amisim::world::{Scene, VecEnv};
//! let scene = Scene::load("two_rooms").unwrap();
//! let mut env = VecEnv::new(scene, 64).unwrap();
//! let obs = env.reset(0).unwrap();               // frames [64, 3, 65, 65] u8
//! let (obs, info) = env.step(&vec![[1.0, 0.5]; 64]).unwrap();
//! ```

use super::render::{new_target, FrameReadback, RenderViewsPlugin, Tiling};
use super::scene::Scene;
use super::sim::{self, EnvState, PlacementError};
use bevy::app::{PluginsState, TerminalCtrlCHandlerPlugin};
use bevy::log::LogPlugin;
use bevy::prelude::*;
use bevy::render::pipelined_rendering::PipelinedRenderingPlugin;
use bevy::render::settings::{Backends, RenderCreation, WgpuSettings};
use bevy::render::RenderPlugin;
use bevy::window::ExitCondition;
use bevy::winit::WinitPlugin;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::{Arc, Mutex, OnceLock};

/// Largest side of the shared target: the texture size every Vulkan device supports.
pub const MAX_TARGET_SIDE: u32 = 8192;

/// Most frames drawn at start-up while assets become ready.
const WARMUP_FRAMES: usize = 200;

/// The exact line that installs a software Vulkan driver on Debian/Ubuntu.
pub const VULKAN_INSTALL_HINT: &str = "sudo apt-get install -y mesa-vulkan-drivers libvulkan1";

/// Errors of the environment.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error(
        "no Vulkan adapter found: amisim renders observations with Vulkan. On a machine without a \
         GPU, install Mesa's software driver (lavapipe):\n    {VULKAN_INSTALL_HINT}\n({0})"
    )]
    NoAdapter(String),
    #[error(transparent)]
    Placement(#[from] PlacementError),
    #[error("expected {expected} actions (one per environment), got {got}")]
    ActionCount { expected: usize, got: usize },
    #[error("the renderer produced no frame")]
    NoFrame,
    #[error("need at least one environment")]
    NoEnvironments,
    #[error("{n} environments of {tile}×{tile} px need a {width}×{height} px target; the limit is {MAX_TARGET_SIDE} px a side (use fewer environments per app)")]
    TooManyEnvironments {
        n: usize,
        tile: u32,
        width: u32,
        height: u32,
    },
}

/// Observations of all environments: `[n, channels, height, width]` u8, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Obs {
    pub frames: Vec<u8>,
    pub shape: [usize; 4],
}

impl Obs {
    /// The frame of environment `i`, `[channels, height, width]`.
    pub fn frame(&self, i: usize) -> &[u8] {
        self.view().frame(i)
    }

    /// The frames as an agent takes them (without the true states).
    pub fn view(&self) -> crate::agent::Observations<'_> {
        crate::agent::Observations {
            frames: &self.frames,
            shape: self.shape,
            truth: None,
        }
    }
}

/// Ground truth of one environment after a step: for success checks and probes only, never
/// model input.
#[derive(Debug, Clone, PartialEq)]
pub struct Info {
    pub agent: Vec2,
    pub heading: f32,
    pub pushable: Option<Vec2>,
    pub goal: Vec2,
    pub goal_object: Option<String>,
    pub goal_distance: f32,
    pub success: bool,
    pub collided: bool,
    pub steps: u32,
    /// The episode has used its step budget.
    pub done: bool,
}

/// The state of all environments, and the actions to apply at the next fixed step.
#[derive(Resource)]
pub struct Envs {
    pub scene: Arc<Scene>,
    pub states: Vec<EnvState>,
    /// Actions for the next `FixedUpdate`; taken (and so applied once) by [`step_envs`].
    pub pending: Option<Vec<[f32; 2]>>,
    /// Environments whose layout changed since the views were last built.
    pub layout_dirty: Vec<bool>,
}

/// Applies the pending actions to every environment: the physics step.
pub fn step_envs(mut envs: ResMut<Envs>) {
    let Some(actions) = envs.pending.take() else { return };
    let envs = &mut *envs;
    for (state, action) in envs.states.iter_mut().zip(actions) {
        sim::step(&envs.scene, state, action);
    }
}

/// The physics plugin: environments are stepped in `FixedUpdate`.
pub struct PhysicsPlugin;

impl Plugin for PhysicsPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(FixedUpdate, step_envs);
    }
}

/// The RNG of environment `env` for episodes drawn from `seed`: one ChaCha stream per
/// environment, so an environment's episodes do not depend on how many run beside it.
pub fn env_rng(seed: u64, env: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(env as u64);
    rng
}

/// Checks once per process that a Vulkan adapter exists, so a missing driver is a clear
/// error instead of a panic deep in the renderer.
pub fn check_adapter() -> Result<String, EnvError> {
    static RESULT: OnceLock<Result<String, String>> = OnceLock::new();
    RESULT
        .get_or_init(|| {
            let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
                backends: wgpu::Backends::VULKAN,
                ..wgpu::InstanceDescriptor::new_without_display_handle()
            });
            let adapters = bevy::tasks::block_on(instance.enumerate_adapters(wgpu::Backends::VULKAN));
            match adapters.first() {
                Some(a) => {
                    let info = a.get_info();
                    Ok(format!("{} ({:?}, {})", info.name, info.device_type, info.driver))
                }
                None => Err("the Vulkan loader found no device".to_string()),
            }
        })
        .clone()
        .map_err(EnvError::NoAdapter)
}

/// N environments of one scene, in one Bevy app.
pub struct VecEnv {
    app: App,
    scene: Arc<Scene>,
    n: usize,
    tiling: Tiling,
    rgba: Arc<Mutex<Option<Vec<u8>>>>,
    seed: u64,
    rngs: Vec<ChaCha8Rng>,
    /// Action components that were NaN or ∞ (the world took 0 in their place).
    non_finite_actions: u64,
    /// Observations as `[n, h, w, c]` instead of `[n, c, h, w]` (see [`VecEnv::channels_last`]).
    channels_last: bool,
}

impl VecEnv {
    /// Builds the Bevy app with `n` environments of `scene`. Fails with a clear message when
    /// no Vulkan adapter exists.
    pub fn new(scene: Scene, n: usize) -> Result<VecEnv, EnvError> {
        if n == 0 {
            return Err(EnvError::NoEnvironments);
        }
        let tiling = Tiling::new(n, scene.resolution());
        if tiling.width() > MAX_TARGET_SIDE || tiling.height() > MAX_TARGET_SIDE {
            return Err(EnvError::TooManyEnvironments {
                n,
                tile: tiling.tile,
                width: tiling.width(),
                height: tiling.height(),
            });
        }
        check_adapter()?;
        let scene = Arc::new(scene);
        let mut app = App::new();
        app.add_plugins(
            DefaultPlugins
                .build()
                .disable::<LogPlugin>()
                .disable::<PipelinedRenderingPlugin>()
                .disable::<TerminalCtrlCHandlerPlugin>()
                // Headless: no window and no event loop (`amisim run` has its own app for that).
                .disable::<WinitPlugin>()
                .set(WindowPlugin {
                    primary_window: None,
                    exit_condition: ExitCondition::DontExit,
                    ..default()
                })
                .set(RenderPlugin {
                    render_creation: RenderCreation::Automatic(Box::new(WgpuSettings {
                        backends: Some(Backends::VULKAN),
                        ..default()
                    })),
                    synchronous_pipeline_compilation: true,
                    ..default()
                }),
        );
        // Placeholder states until the first reset; views are built from them at startup.
        let mut rng = env_rng(0, 0);
        let first = sim::sample_episode(&scene, &mut rng)?;
        app.insert_resource(Envs {
            scene: scene.clone(),
            states: vec![first; n],
            pending: None,
            layout_dirty: vec![true; n],
        });
        let target = new_target(&mut app.world_mut().resource_mut::<Assets<Image>>(), tiling);
        let rgba = Arc::new(Mutex::new(None));
        let readback = FrameReadback {
            target,
            width: tiling.width(),
            height: tiling.height(),
            rgba: rgba.clone(),
        };
        app.add_plugins((
            PhysicsPlugin,
            RenderViewsPlugin {
                scene: scene.clone(),
                tiling,
                readback,
            },
        ));
        while app.plugins_state() == PluginsState::Adding {
            bevy::tasks::tick_global_task_pools_on_main_thread();
        }
        app.finish();
        app.cleanup();
        // Simulation time only advances through `step`: one call, one fixed step.
        app.world_mut().resource_mut::<Time<Virtual>>().pause();
        let mut env = VecEnv {
            app,
            scene,
            n,
            tiling,
            rgba,
            seed: 0,
            rngs: (0..n).map(|i| env_rng(0, i)).collect(),
            non_finite_actions: 0,
            channels_last: false,
        };
        // Meshes and materials become drawable a few frames after they are added (more when
        // another app shares the device, as `amisim run`'s window does); draw until the frame
        // shows something and stops changing, so the first observation a caller sees is
        // complete.
        let mut last = env.render()?;
        for _ in 0..WARMUP_FRAMES {
            let next = env.render()?;
            if next == last && next.frames.iter().any(|&v| v != 0) {
                return Ok(env);
            }
            last = next;
        }
        Err(EnvError::NoFrame)
    }

    pub fn scene(&self) -> &Scene {
        &self.scene
    }

    pub fn num_envs(&self) -> usize {
        self.n
    }

    pub fn tiling(&self) -> Tiling {
        self.tiling
    }

    /// The seed of the last [`reset`](Self::reset).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Starts a new episode in every environment, drawn from `seed`, and returns the first
    /// observations.
    pub fn reset(&mut self, seed: u64) -> Result<Obs, EnvError> {
        self.reseed(seed);
        let states = self
            .rngs
            .iter_mut()
            .map(|rng| sim::sample_episode(&self.scene, rng))
            .collect::<Result<Vec<_>, _>>()?;
        self.set_states(states);
        self.render()
    }

    /// Environment `i`'s episodes are drawn from `env_rng(seed, i)` from now on; the states
    /// stay as they are.
    pub fn reseed(&mut self, seed: u64) {
        self.seed = seed;
        self.rngs = (0..self.n).map(|i| env_rng(seed, i)).collect();
    }

    /// Starts a new episode in environment `i` only (drawn from its own RNG stream); the
    /// frame shows up in the next observation.
    pub fn reset_one(&mut self, i: usize) -> Result<(), EnvError> {
        let state = self.draw_episode(i)?;
        self.set_state(i, state);
        Ok(())
    }

    /// The next episode start of environment `i`'s RNG stream, without placing it.
    pub fn draw_episode(&mut self, i: usize) -> Result<EnvState, EnvError> {
        Ok(sim::sample_episode(&self.scene, &mut self.rngs[i])?)
    }

    /// Replaces environment `i`'s state; its view follows at the next render.
    pub fn set_state(&mut self, i: usize, state: EnvState) {
        let mut envs = self.app.world_mut().resource_mut::<Envs>();
        if envs.states[i].layout != state.layout {
            envs.layout_dirty[i] = true;
        }
        envs.states[i] = state;
    }

    /// Applies one action per environment (clipped to the scene's limits) in one fixed step,
    /// draws the frame and returns observations and ground truth.
    pub fn step(&mut self, actions: &[[f32; 2]]) -> Result<(Obs, Vec<Info>), EnvError> {
        self.advance(actions)?;
        let obs = self.render()?;
        Ok((obs, self.info()))
    }

    /// Applies one action per environment in one fixed step, without drawing.
    pub fn advance(&mut self, actions: &[[f32; 2]]) -> Result<(), EnvError> {
        if actions.len() != self.n {
            return Err(EnvError::ActionCount {
                expected: self.n,
                got: actions.len(),
            });
        }
        // NaN or ∞ never reaches the world's state: the simulator takes 0 for it, counted here
        // and said once.
        let bad = actions.iter().flatten().filter(|v| !v.is_finite()).count() as u64;
        if bad > 0 {
            if self.non_finite_actions == 0 {
                eprintln!("warning: {bad} non-finite action component(s) (NaN or ∞) were taken as 0; later ones are counted (VecEnv::non_finite_actions)");
            }
            self.non_finite_actions += bad;
        }
        self.app.world_mut().resource_mut::<Envs>().pending = Some(actions.to_vec());
        self.app.world_mut().run_schedule(bevy::app::FixedMain);
        Ok(())
    }

    /// Action components that were NaN or ∞ so far (each taken as 0).
    pub fn non_finite_actions(&self) -> u64 {
        self.non_finite_actions
    }

    /// Current states of all environments.
    pub fn states(&self) -> &[EnvState] {
        &self.app.world().resource::<Envs>().states
    }

    /// Replaces the states (e.g. to render chosen positions); views follow at the next render.
    pub fn set_states(&mut self, states: Vec<EnvState>) {
        assert_eq!(states.len(), self.n, "one state per environment");
        for (i, s) in states.into_iter().enumerate() {
            self.set_state(i, s);
        }
    }

    /// Ground truth of every environment.
    pub fn info(&self) -> Vec<Info> {
        let scene = &*self.scene;
        let max_steps = scene.episode().max_steps;
        self.states()
            .iter()
            .map(|s| Info {
                agent: s.agent,
                heading: s.heading,
                pushable: s.pushable,
                goal: s.goal,
                goal_object: match (scene, s.goal_object) {
                    (Scene::FirstPerson(f), Some(k)) => Some(f.objects[k].name.clone()),
                    _ => None,
                },
                goal_distance: s.goal_distance(scene),
                success: s.success(scene),
                collided: s.collided,
                steps: s.steps,
                done: s.steps >= max_steps,
            })
            .collect()
    }

    /// Draws the current states and reads the frame back.
    pub fn render(&mut self) -> Result<Obs, EnvError> {
        self.app.update();
        let rgba = self
            .rgba
            .lock()
            .expect("readback lock")
            .take()
            .ok_or(EnvError::NoFrame)?;
        Ok(self.split_tiles(&rgba))
    }

    /// Observations as `[n, h, w, c]` (Gymnasium's and stable-worldmodel's image layout) from
    /// now on, or as `[n, c, h, w]` (the agent's; the default). The tiles are cut into either
    /// layout in one pass.
    pub fn channels_last(&mut self, on: bool) {
        self.channels_last = on;
    }

    /// `[c, h, w]` of one observation (`[h, w, c]` when [`channels_last`](Self::channels_last)).
    pub fn frame_shape(&self) -> [usize; 3] {
        let t = self.tiling.tile as usize;
        if self.channels_last {
            [t, t, 3]
        } else {
            [3, t, t]
        }
    }

    /// Cuts the RGBA grid into `[n, 3, tile, tile]` (or `[n, tile, tile, 3]`).
    fn split_tiles(&self, rgba: &[u8]) -> Obs {
        let t = self.tiling.tile as usize;
        let width = self.tiling.width() as usize;
        let plane = t * t;
        let mut frames = vec![0u8; self.n * 3 * plane];
        for i in 0..self.n {
            let o = self.tiling.origin(i);
            let (ox, oy) = (o.x as usize, o.y as usize);
            let out = &mut frames[i * 3 * plane..(i + 1) * 3 * plane];
            for y in 0..t {
                let row = &rgba[((oy + y) * width + ox) * 4..((oy + y) * width + ox + t) * 4];
                if self.channels_last {
                    for (px, dst) in row
                        .chunks_exact(4)
                        .zip(out[y * t * 3..(y + 1) * t * 3].chunks_exact_mut(3))
                    {
                        dst.copy_from_slice(&px[..3]);
                    }
                } else {
                    for x in 0..t {
                        for c in 0..3 {
                            out[c * plane + y * t + x] = row[x * 4 + c];
                        }
                    }
                }
            }
        }
        let [a, b, c] = self.frame_shape();
        Obs {
            frames,
            shape: [self.n, a, b, c],
        }
    }
}
