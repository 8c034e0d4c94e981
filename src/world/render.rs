//! Drawing the environments with Bevy's renderer: every environment of a vectorised env lives
//! in one Bevy world, all are drawn in one frame into one offscreen target (a grid of tiles),
//! and the target is copied back to CPU memory once per frame.
//!
//! - Top-down scenes: one orthographic `Camera2d` over a grid of sprite arenas. Channels are
//!   colour-coded: red = agent (a Gaussian blob), green = walls, blue = box; each drawn
//!   channel stays intact where the blob overlaps it.
//! - First-person scenes: no camera; one render pass draws every environment's view into its
//!   tile (see [`super::first_person`]).

use super::env::Envs;
use super::scene::{Scene, TopDownScene};
use bevy::asset::RenderAssetUsages;
use bevy::asset::{embedded_asset, embedded_path, AssetPath};
use bevy::camera::{RenderTarget, ScalingMode};
use bevy::core_pipeline::tonemapping::{DebandDither, Tonemapping};
use bevy::mesh::MeshVertexBufferLayoutRef;
use bevy::prelude::*;
use bevy::render::render_asset::RenderAssets;
use bevy::render::render_resource::{
    AsBindGroup, BufferDescriptor, BufferUsages, ColorWrites, CommandEncoderDescriptor, Extent3d, MapMode, PollType,
    RenderPipelineDescriptor, SpecializedMeshPipelineError, TexelCopyBufferInfo, TexelCopyBufferLayout,
    TextureDimension, TextureFormat, TextureUsages,
};
use bevy::render::renderer::{RenderDevice, RenderQueue};
use bevy::render::texture::GpuImage;
use bevy::render::view::Msaa;
use bevy::render::{Render, RenderApp, RenderSystems};
use bevy::shader::ShaderRef;
use bevy::sprite_render::{AlphaMode2d, Material2d, Material2dKey, Material2dPlugin};
use std::sync::{Arc, Mutex};

/// How environments are laid out as tiles in the shared target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiling {
    pub cols: u32,
    pub rows: u32,
    /// Side of one tile (one observation) in pixels.
    pub tile: u32,
}

impl Tiling {
    pub fn new(n: usize, tile: u32) -> Tiling {
        let cols = (n as f64).sqrt().ceil().max(1.0) as u32;
        let rows = (n as u32).div_ceil(cols).max(1);
        Tiling { cols, rows, tile }
    }
    pub fn width(&self) -> u32 {
        self.cols * self.tile
    }
    pub fn height(&self) -> u32 {
        self.rows * self.tile
    }
    /// Top-left pixel of environment `i`'s tile.
    pub fn origin(&self, i: usize) -> UVec2 {
        let i = i as u32;
        UVec2::new(i % self.cols * self.tile, i / self.cols * self.tile)
    }
}

/// The frame read back after the last render, shared between the main and render worlds.
///
/// The frame is a grid of tiles (`width × height` RGBA), drawn into one target image.
#[derive(Resource, Clone)]
pub struct FrameReadback {
    /// The target image every environment draws into.
    pub target: Handle<Image>,
    pub width: u32,
    pub height: u32,
    /// Tightly packed RGBA rows of the whole grid, filled by the render world each frame.
    pub rgba: Arc<Mutex<Option<Vec<u8>>>>,
}

/// Marks the sprite or camera that shows environment `.0`'s agent.
#[derive(Component)]
pub struct AgentView(pub usize);

/// Marks the sprite that shows environment `.0`'s box.
#[derive(Component)]
pub struct BoxView(pub usize);

/// Marks a wall sprite of environment `.0` (respawned when the layout changes).
#[derive(Component)]
pub struct WallView(pub usize);

/// Plugin that spawns the views of every environment and reads the frame back each update.
pub struct RenderViewsPlugin {
    pub scene: Arc<Scene>,
    pub tiling: Tiling,
    pub readback: FrameReadback,
}

impl Plugin for RenderViewsPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(self.readback.clone());
        app.insert_resource(TilingRes(self.tiling));
        match &*self.scene {
            Scene::TopDown(_) => {
                embedded_asset!(app, "blob.wgsl");
                app.add_plugins(Material2dPlugin::<BlobMaterial>::default());
                app.add_systems(Startup, spawn_top_down_views);
                app.add_systems(
                    PostUpdate,
                    (respawn_walls, sync_top_down_views).before(TransformSystems::Propagate),
                );
            }
            Scene::FirstPerson(_) => {
                app.add_plugins(super::first_person::FirstPersonPlugin {
                    scene: self.scene.clone(),
                    tiling: self.tiling,
                    readback: self.readback.clone(),
                });
            }
        }
        let render_app = app.sub_app_mut(RenderApp);
        render_app.insert_resource(self.readback.clone());
        render_app.add_systems(Render, read_back_frame.in_set(RenderSystems::Cleanup));
    }
}

#[derive(Resource)]
pub(super) struct TilingRes(pub(super) Tiling);

/// Creates the offscreen target every environment draws into: one grid of tiles.
pub fn new_target(images: &mut Assets<Image>, tiling: Tiling) -> Handle<Image> {
    let mut image = Image::new_uninit(
        Extent3d {
            width: tiling.width(),
            height: tiling.height(),
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        TextureFormat::Rgba8Unorm,
        RenderAssetUsages::RENDER_WORLD,
    );
    image.texture_descriptor.usage |=
        TextureUsages::RENDER_ATTACHMENT | TextureUsages::COPY_SRC | TextureUsages::TEXTURE_BINDING;
    images.add(image)
}

/// The agent's Gaussian blob (see `blob.wgsl`): written to the red channel only, without
/// blending, so walls and box keep their channels where the blob overlaps them.
#[derive(Asset, TypePath, AsBindGroup, Debug, Clone)]
pub struct BlobMaterial {
    /// x: std in pixels, y: side of the quad in pixels.
    #[uniform(0)]
    pub params: Vec4,
}

impl Material2d for BlobMaterial {
    fn fragment_shader() -> ShaderRef {
        ShaderRef::Path(AssetPath::from_path_buf(embedded_path!("blob.wgsl")).with_source("embedded"))
    }

    fn alpha_mode(&self) -> AlphaMode2d {
        // Drawn in the sorted (transparent) phase, after walls and box.
        AlphaMode2d::Blend
    }

    fn specialize(
        descriptor: &mut RenderPipelineDescriptor,
        _layout: &MeshVertexBufferLayoutRef,
        _key: Material2dKey<Self>,
    ) -> Result<(), SpecializedMeshPipelineError> {
        if let Some(fragment) = descriptor.fragment.as_mut() {
            for target in fragment.targets.iter_mut().flatten() {
                target.blend = None;
                target.write_mask = ColorWrites::RED;
            }
        }
        Ok(())
    }
}

/// World position of arena point `p` of environment `i` (top-down; image y grows downward).
fn top_down_world(tiling: Tiling, size: f32, i: usize, p: Vec2) -> Vec2 {
    let col = (i as u32 % tiling.cols) as f32;
    let row = (i as u32 / tiling.cols) as f32;
    Vec2::new(col * size + p.x, -(row * size + p.y))
}

fn top_down_scene(scene: &Scene) -> &TopDownScene {
    match scene {
        Scene::TopDown(s) => s,
        Scene::FirstPerson(_) => unreachable!("top-down system on a first-person scene"),
    }
}

fn spawn_top_down_views(
    mut commands: Commands,
    mut meshes: ResMut<Assets<Mesh>>,
    mut blobs: ResMut<Assets<BlobMaterial>>,
    envs: Res<Envs>,
    tiling: Res<TilingRes>,
    readback: Res<FrameReadback>,
) {
    let s = top_down_scene(&envs.scene);
    let tiling = tiling.0;
    let size = s.size as f32;
    let (w, h) = (tiling.cols as f32 * size, tiling.rows as f32 * size);
    commands.spawn((
        Camera2d,
        Camera {
            clear_color: ClearColorConfig::Custom(Color::BLACK),
            ..default()
        },
        RenderTarget::from(readback.target.clone()),
        Projection::Orthographic(OrthographicProjection {
            scaling_mode: ScalingMode::Fixed { width: w, height: h },
            ..OrthographicProjection::default_2d()
        }),
        // Pixel `i` is centred on coordinate `i`, so the grid spans -0.5 .. w-0.5.
        Transform::from_xyz(w / 2.0 - 0.5, -(h / 2.0 - 0.5), 0.0),
        Msaa::Off,
        Tonemapping::None,
        DebandDither::Disabled,
    ));
    // The blob is cut at 3σ (plus half a pixel, so every pixel centre within 3σ is covered).
    let side = 2.0 * (3.0 * s.agent.blob_std).ceil() + 1.0;
    let quad = meshes.add(Rectangle::new(side, side));
    let blob = blobs.add(BlobMaterial {
        params: Vec4::new(s.agent.blob_std, side, 0.0, 0.0),
    });
    for i in 0..envs.states.len() {
        commands.spawn((
            AgentView(i),
            Mesh2d(quad.clone()),
            MeshMaterial2d(blob.clone()),
            Transform::from_xyz(0.0, 0.0, 2.0),
        ));
        if let Some(p) = &s.pushable {
            commands.spawn((
                BoxView(i),
                Sprite::from_color(Color::linear_rgb(0.0, 0.0, 1.0), Vec2::splat(2.0 * p.half_size)),
                Transform::from_xyz(0.0, 0.0, 1.0),
            ));
        }
    }
}

/// Respawns the wall sprites of environments whose layout changed.
fn respawn_walls(
    mut commands: Commands,
    mut envs: ResMut<Envs>,
    walls: Query<(Entity, &WallView)>,
    tiling: Res<TilingRes>,
) {
    if !envs.layout_dirty.iter().any(|d| *d) {
        return;
    }
    for (e, w) in &walls {
        if envs.layout_dirty[w.0] {
            commands.entity(e).despawn();
        }
    }
    let size = top_down_scene(&envs.scene).size as f32;
    let envs = &mut *envs;
    for (i, dirty) in envs.layout_dirty.iter_mut().enumerate() {
        if !std::mem::take(dirty) {
            continue;
        }
        let Some(layout) = &envs.states[i].layout else { continue };
        for r in &layout.walls {
            let c = top_down_world(tiling.0, size, i, r.center());
            commands.spawn((
                WallView(i),
                Sprite::from_color(Color::linear_rgb(0.0, 1.0, 0.0), r.size()),
                Transform::from_xyz(c.x, c.y, 0.0),
            ));
        }
    }
}

fn sync_top_down_views(
    envs: Res<Envs>,
    tiling: Res<TilingRes>,
    mut agents: Query<(&AgentView, &mut Transform), Without<BoxView>>,
    mut boxes: Query<(&BoxView, &mut Transform), Without<AgentView>>,
) {
    let size = top_down_scene(&envs.scene).size as f32;
    for (v, mut t) in &mut agents {
        let p = top_down_world(tiling.0, size, v.0, envs.states[v.0].agent);
        t.translation = Vec3::new(p.x, p.y, 2.0);
    }
    for (v, mut t) in &mut boxes {
        if let Some(b) = envs.states[v.0].pushable {
            let p = top_down_world(tiling.0, size, v.0, b);
            t.translation = Vec3::new(p.x, p.y, 1.0);
        }
    }
}

/// Render-world system: after the frame is submitted, copy the target into a buffer (one
/// submission, one map), wait for it and hand the packed RGBA grid to the main world. Runs
/// every frame, so the frame read is the one just drawn (no frame of lag).
pub(super) fn read_back_frame(
    readback: Res<FrameReadback>,
    images: Res<RenderAssets<GpuImage>>,
    device: Res<RenderDevice>,
    queue: Res<RenderQueue>,
) {
    let Some(gpu) = images.get(&readback.target) else {
        return;
    };
    let (w, h) = (gpu.texture_descriptor.size.width, gpu.texture_descriptor.size.height);
    // Copied rows are padded to the copy alignment.
    let row = RenderDevice::align_copy_bytes_per_row((w * 4) as usize) as u32;
    let buffer = device.create_buffer(&BufferDescriptor {
        label: Some("amisim frame readback"),
        size: (row * h) as u64,
        usage: BufferUsages::COPY_DST | BufferUsages::MAP_READ,
        mapped_at_creation: false,
    });
    let mut encoder = device.create_command_encoder(&CommandEncoderDescriptor {
        label: Some("amisim readback"),
    });
    encoder.copy_texture_to_buffer(
        gpu.texture.as_image_copy(),
        TexelCopyBufferInfo {
            buffer: &buffer,
            layout: TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(row),
                rows_per_image: None,
            },
        },
        Extent3d {
            width: w,
            height: h,
            depth_or_array_layers: 1,
        },
    );
    queue.submit([encoder.finish()]);
    let slice = buffer.slice(..);
    slice.map_async(MapMode::Read, |r| r.expect("mapping the readback buffer failed"));
    device
        .wgpu_device()
        .poll(PollType::Wait {
            submission_index: None,
            timeout: None,
        })
        .expect("waiting for the GPU failed");
    let data = slice.get_mapped_range();
    let packed = (w * 4) as usize;
    let mut rgba = Vec::with_capacity(packed * h as usize);
    for y in 0..h as usize {
        let src = y * row as usize;
        rgba.extend_from_slice(&data[src..src + packed]);
    }
    drop(data);
    buffer.unmap();
    *readback.rgba.lock().expect("readback lock") = Some(rgba);
}
