//! First-person views of every environment, drawn in one render pass.
//!
//! A Bevy camera per environment costs several milliseconds of per-view work each (at 256
//! environments that was 136–259 observations per second). Here there is no camera at all: the
//! scene's geometry (floor, walls, objects; the same in every environment) lives in one vertex
//! buffer, every environment's view-projection matrix in one storage buffer, and one render pass
//! over the shared atlas draws the geometry once per environment with that environment's tile as
//! viewport and scissor (`draw(.., i..i + 1)`: the instance index picks the matrix). Each tile
//! has its own depth, since the depth attachment is an atlas too.
//!
//! Lighting is Bevy's first-person lighting as it was with a camera per environment, in closed
//! form: a colour is `base · (A + D · max(n·l, 0))` with the directional light's direction `l`,
//! `A` and `D` measured from frames of the per-camera renderer (ambient 1500, directional light
//! 3000 lux, roughness 0.9, no tonemapping), clamped to 1 and stored as linear RGBA8 as before.

use super::env::Envs;
use super::render::{FrameReadback, Tiling, TilingRes};
use super::scene::{FirstPersonScene, Scene, Shape};
use bevy::prelude::*;
use bevy::render::render_asset::RenderAssets;
use bevy::render::render_resource::{
    BindGroupEntry, BindGroupLayoutEntry, BindingType, BufferBindingType, BufferDescriptor, BufferUsages,
    ColorTargetState, ColorWrites, CommandEncoderDescriptor, CompareFunction, DepthStencilState, Extent3d, Face,
    FrontFace, IndexFormat, LoadOp, MultisampleState, Operations, PipelineCompilationOptions, PipelineLayoutDescriptor,
    PrimitiveState, PrimitiveTopology, RawFragmentState, RawRenderPipelineDescriptor, RawVertexBufferLayout,
    RawVertexState, RenderPassColorAttachment, RenderPassDepthStencilAttachment, RenderPassDescriptor,
    ShaderModuleDescriptor, ShaderSource, ShaderStages, StoreOp, TextureDescriptor, TextureDimension, TextureFormat,
    TextureUsages, TextureViewDescriptor, VertexAttribute, VertexFormat, VertexStepMode,
};
use bevy::render::renderer::{RenderDevice, RenderQueue};
use bevy::render::texture::GpuImage;
use bevy::render::{Render, RenderApp, RenderSystems};
use std::sync::{Arc, Mutex};

/// The sky: the colour behind everything.
pub const SKY: [f32; 3] = [0.45, 0.6, 0.85];
/// The floor's colour.
pub const FLOOR: [f32; 3] = [0.35, 0.33, 0.3];
/// The four outer walls' colours (at z = 0, x = size, z = size, x = 0): each its own shade, so
/// the agent can tell where it faces.
pub const WALLS: [[f32; 3]; 4] = [[0.75, 0.72, 0.65], [0.55, 0.6, 0.7], [0.7, 0.6, 0.5], [0.5, 0.65, 0.55]];
/// Near and far planes of the agent's camera, metres (far: in units of the room's size).
const NEAR: f32 = 0.05;
const FAR_ROOMS: f32 = 2.0;
/// Segments around a sphere or cylinder, and rings of a sphere.
const SEGMENTS: usize = 12;
const RINGS: usize = 8;

/// Floats per vertex: position, normal, colour.
const VERTEX_FLOATS: usize = 9;

const SHADER: &str = r#"
struct VertexIn {
    @location(0) position: vec3<f32>,
    @location(1) normal: vec3<f32>,
    @location(2) color: vec3<f32>,
};
struct VertexOut {
    @builtin(position) clip: vec4<f32>,
    @location(0) normal: vec3<f32>,
    @location(1) color: vec3<f32>,
};
@group(0) @binding(0) var<storage, read> views: array<mat4x4<f32>>;

// Direction toward the directional light, and the ambient and diffuse factors.
const LIGHT: vec3<f32> = vec3<f32>(-0.039849, 0.996217, -0.069735);
const AMBIENT: f32 = 0.72;
const DIFFUSE: f32 = 1.07;

@vertex
fn vertex(v: VertexIn, @builtin(instance_index) env: u32) -> VertexOut {
    var out: VertexOut;
    out.clip = views[env] * vec4<f32>(v.position, 1.0);
    out.normal = v.normal;
    out.color = v.color;
    return out;
}

@fragment
fn fragment(v: VertexOut) -> @location(0) vec4<f32> {
    let k = AMBIENT + DIFFUSE * max(dot(normalize(v.normal), LIGHT), 0.0);
    return vec4<f32>(min(v.color * k, vec3<f32>(1.0)), 1.0);
}
"#;

/// Every environment's clip-from-world matrix, written by the main world after each step and
/// read by the render world in the same frame.
#[derive(Resource, Clone, Default)]
pub struct FirstPersonViews(pub Arc<Mutex<Vec<Mat4>>>);

/// Plugin that draws every environment's first-person view into the atlas each frame.
pub struct FirstPersonPlugin {
    pub scene: Arc<Scene>,
    pub tiling: Tiling,
    pub readback: FrameReadback,
}

/// The scene's geometry, built once (render world).
#[derive(Resource, Clone)]
struct SceneMesh(Arc<SceneGeometry>);

/// Triangles of a first-person scene, in parts that are drawn or skipped together.
#[derive(Debug, Clone)]
pub struct SceneGeometry {
    /// `[position, normal, colour]` floats per distinct vertex.
    pub vertices: Vec<f32>,
    /// Three indices into `vertices` per triangle, counter-clockwise seen from outside
    /// (indexed, so a vertex shared by several triangles is shaded once).
    pub indices: Vec<u32>,
    /// The floor and walls: indices `0..room`, always drawn.
    pub room: u32,
    /// Each object's index range and bounding sphere (centre, radius): drawn only in the
    /// views whose frustum the sphere touches.
    pub objects: Vec<(std::ops::Range<u32>, Vec3, f32)>,
}

impl SceneGeometry {
    /// Vertex ranges to draw in the view `clip_from_world`: the room, then every object whose
    /// bounding sphere is not wholly outside one of the frustum's planes; adjacent ranges
    /// merged.
    pub fn visible(&self, clip_from_world: &Mat4) -> Vec<std::ops::Range<u32>> {
        let (r0, r1, r2, r3) = (
            clip_from_world.row(0),
            clip_from_world.row(1),
            clip_from_world.row(2),
            clip_from_world.row(3),
        );
        // Left, right, bottom, top, near (depth 0..1), far: inside where p·plane >= 0.
        let planes = [r3 + r0, r3 - r0, r3 + r1, r3 - r1, r2, r3 - r2];
        let mut out: Vec<std::ops::Range<u32>> = Vec::with_capacity(1 + self.objects.len());
        out.push(0..self.room);
        for (range, c, r) in &self.objects {
            let inside = planes
                .iter()
                .all(|p| p.truncate().dot(*c) + p.w >= -r * p.truncate().length());
            if !inside {
                continue;
            }
            match out.last_mut() {
                Some(last) if last.end == range.start => last.end = range.end,
                _ => out.push(range.clone()),
            }
        }
        out
    }
}

impl Plugin for FirstPersonPlugin {
    fn build(&self, app: &mut App) {
        let views = FirstPersonViews::default();
        app.insert_resource(views.clone());
        app.add_systems(PostUpdate, update_views);
        let mesh = SceneMesh(Arc::new(scene_geometry(
            self.scene
                .first_person()
                .expect("first-person views of a first-person scene"),
        )));
        let render_app = app.sub_app_mut(RenderApp);
        render_app.insert_resource(views);
        render_app.insert_resource(mesh);
        render_app.insert_resource(TilingRes(self.tiling));
        render_app.add_systems(
            Render,
            draw_views
                .in_set(RenderSystems::Cleanup)
                .before(super::render::read_back_frame),
        );
    }
}

/// The clip-from-world matrix of an agent at `(x, z)` on the floor facing `heading`.
pub fn view_matrix(s: &FirstPersonScene, agent: Vec2, heading: f32) -> Mat4 {
    let eye = Vec3::new(agent.x, s.agent.eye_height, agent.y);
    let dir = Vec3::new(heading.cos(), 0.0, heading.sin());
    let proj = Mat4::perspective_rh(s.fov_degrees.to_radians(), 1.0, NEAR, FAR_ROOMS * s.size);
    proj * Mat4::look_to_rh(eye, dir, Vec3::Y)
}

fn update_views(envs: Res<Envs>, views: Res<FirstPersonViews>) {
    let s = envs
        .scene
        .first_person()
        .expect("first-person views of a first-person scene");
    let mut v = views.0.lock().expect("views lock");
    v.clear();
    v.extend(envs.states.iter().map(|st| view_matrix(s, st.agent, st.heading)));
}

/// The scene's triangles: room first, then each object.
pub fn scene_geometry(s: &FirstPersonScene) -> SceneGeometry {
    let mut m = Mesh::default();
    let (w, h) = (s.size, s.wall_height);
    m.quad(
        [
            Vec3::ZERO,
            Vec3::new(w, 0.0, 0.0),
            Vec3::new(w, 0.0, w),
            Vec3::new(0.0, 0.0, w),
        ],
        Vec3::Y,
        FLOOR,
    );
    // The outer walls, seen from inside.
    let corners = [
        (Vec3::ZERO, Vec3::new(w, 0.0, 0.0), Vec3::Z),
        (Vec3::new(w, 0.0, 0.0), Vec3::new(w, 0.0, w), -Vec3::X),
        (Vec3::new(w, 0.0, w), Vec3::new(0.0, 0.0, w), -Vec3::Z),
        (Vec3::new(0.0, 0.0, w), Vec3::ZERO, Vec3::X),
    ];
    for (k, (a, b, n)) in corners.into_iter().enumerate() {
        let up = Vec3::new(0.0, h, 0.0);
        m.quad([a, b, b + up, a + up], n, WALLS[k]);
    }
    for wall in &s.walls {
        m.cuboid(
            Vec3::new(wall.min.0, 0.0, wall.min.1),
            Vec3::new(wall.max.0, h, wall.max.1),
            wall.rgb(),
        );
    }
    // Index ranges: the soup's vertex k becomes index k.
    let vertex = |m: &Mesh| (m.0.len() / VERTEX_FLOATS) as u32;
    let room = vertex(&m);
    let mut objects = Vec::with_capacity(s.objects.len());
    for o in &s.objects {
        let first = vertex(&m);
        let c = [o.color.0, o.color.1, o.color.2];
        let at = Vec3::new(o.at.0, 0.0, o.at.1);
        match o.shape {
            Shape::Cube => m.cuboid(
                at - Vec3::new(o.radius, 0.0, o.radius),
                at + Vec3::new(o.radius, o.height, o.radius),
                c,
            ),
            Shape::Sphere => m.sphere(at + Vec3::new(0.0, o.radius, 0.0), o.radius, c),
            Shape::Cylinder => m.cylinder(at, o.radius, o.height, c),
        }
        let height = match o.shape {
            Shape::Sphere => 2.0 * o.radius,
            _ => o.height,
        };
        // The sphere around the object's bounding box.
        let centre = at + Vec3::new(0.0, height / 2.0, 0.0);
        let radius = Vec3::new(o.radius, height / 2.0, o.radius).length();
        objects.push((first..vertex(&m), centre, radius));
    }
    // One copy of each distinct vertex; the soup's order becomes the index order.
    let mut seen = std::collections::HashMap::new();
    let mut vertices = Vec::new();
    let indices =
        m.0.chunks(VERTEX_FLOATS)
            .map(|v| {
                let key: Vec<u32> = v.iter().map(|f| f.to_bits()).collect();
                *seen.entry(key).or_insert_with(|| {
                    vertices.extend_from_slice(v);
                    (vertices.len() / VERTEX_FLOATS - 1) as u32
                })
            })
            .collect();
    SceneGeometry {
        vertices,
        indices,
        room,
        objects,
    }
}

#[derive(Default)]
struct Mesh(Vec<f32>);

impl Mesh {
    /// One triangle; `n` are the vertices' normals. Wound counter-clockwise around the
    /// triangle's outward side (the side its normals point to).
    fn triangle(&mut self, p: [Vec3; 3], n: [Vec3; 3], c: [f32; 3]) {
        let out = n[0] + n[1] + n[2];
        let order = if (p[1] - p[0]).cross(p[2] - p[0]).dot(out) >= 0.0 {
            [0, 1, 2]
        } else {
            [0, 2, 1]
        };
        for k in order {
            self.0
                .extend_from_slice(&[p[k].x, p[k].y, p[k].z, n[k].x, n[k].y, n[k].z, c[0], c[1], c[2]]);
        }
    }

    /// A flat quad with corners in order around it.
    fn quad(&mut self, p: [Vec3; 4], n: Vec3, c: [f32; 3]) {
        self.triangle([p[0], p[1], p[2]], [n; 3], c);
        self.triangle([p[0], p[2], p[3]], [n; 3], c);
    }

    /// An axis-aligned box, every face but the bottom.
    fn cuboid(&mut self, lo: Vec3, hi: Vec3, c: [f32; 3]) {
        let p = |x: bool, y: bool, z: bool| {
            Vec3::new(
                if x { hi.x } else { lo.x },
                if y { hi.y } else { lo.y },
                if z { hi.z } else { lo.z },
            )
        };
        let (f, t) = (false, true);
        self.quad([p(f, t, f), p(t, t, f), p(t, t, t), p(f, t, t)], Vec3::Y, c);
        self.quad([p(t, f, f), p(t, t, f), p(t, t, t), p(t, f, t)], Vec3::X, c);
        self.quad([p(f, f, f), p(f, t, f), p(f, t, t), p(f, f, t)], -Vec3::X, c);
        self.quad([p(f, f, t), p(t, f, t), p(t, t, t), p(f, t, t)], Vec3::Z, c);
        self.quad([p(f, f, f), p(t, f, f), p(t, t, f), p(f, t, f)], -Vec3::Z, c);
    }

    /// A UV sphere with smooth normals.
    fn sphere(&mut self, centre: Vec3, r: f32, c: [f32; 3]) {
        let dir = |i: usize, j: usize| {
            let phi = std::f32::consts::TAU * i as f32 / SEGMENTS as f32;
            let theta = std::f32::consts::PI * j as f32 / RINGS as f32;
            Vec3::new(theta.sin() * phi.cos(), theta.cos(), theta.sin() * phi.sin())
        };
        for j in 0..RINGS {
            for i in 0..SEGMENTS {
                let d = [dir(i, j), dir(i + 1, j), dir(i + 1, j + 1), dir(i, j + 1)];
                let p = d.map(|d| centre + d * r);
                if j > 0 {
                    self.triangle([p[0], p[1], p[2]], [d[0], d[1], d[2]], c);
                }
                if j + 1 < RINGS {
                    self.triangle([p[0], p[2], p[3]], [d[0], d[2], d[3]], c);
                }
            }
        }
    }

    /// An upright cylinder standing on `base`, smooth sides and a flat top.
    fn cylinder(&mut self, base: Vec3, r: f32, height: f32, c: [f32; 3]) {
        let dir = |i: usize| {
            let phi = std::f32::consts::TAU * i as f32 / SEGMENTS as f32;
            Vec3::new(phi.cos(), 0.0, phi.sin())
        };
        let up = Vec3::new(0.0, height, 0.0);
        let top = base + up;
        for i in 0..SEGMENTS {
            let (d0, d1) = (dir(i), dir(i + 1));
            let (a, b) = (base + d0 * r, base + d1 * r);
            self.triangle([a, b, b + up], [d0, d1, d1], c);
            self.triangle([a, b + up, a + up], [d0, d1, d0], c);
            self.triangle([top, a + up, b + up], [Vec3::Y; 3], c);
        }
    }
}

/// GPU resources of the first-person pass, made on the first frame.
struct Gpu {
    pipeline: bevy::render::render_resource::RenderPipeline,
    vertices: bevy::render::render_resource::Buffer,
    indices: bevy::render::render_resource::Buffer,
    views: bevy::render::render_resource::Buffer,
    bind_group: bevy::render::render_resource::BindGroup,
    depth: bevy::render::render_resource::TextureView,
}

impl Gpu {
    fn new(
        device: &RenderDevice,
        queue: &RenderQueue,
        mesh: &SceneGeometry,
        envs: usize,
        width: u32,
        height: u32,
    ) -> Gpu {
        let shader = device.wgpu_device().create_shader_module(ShaderModuleDescriptor {
            label: Some("amisim first-person views"),
            source: ShaderSource::Wgsl(SHADER.into()),
        });
        let layout_entries = [BindGroupLayoutEntry {
            binding: 0,
            visibility: ShaderStages::VERTEX,
            ty: BindingType::Buffer {
                ty: BufferBindingType::Storage { read_only: true },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        }];
        let bind_layout = device.create_bind_group_layout("amisim first-person views", &layout_entries);
        let pipeline_layout = device.create_pipeline_layout(&PipelineLayoutDescriptor {
            label: Some("amisim first-person views"),
            bind_group_layouts: &[Some(&bind_layout)],
            immediate_size: 0,
        });
        let attributes = [
            VertexAttribute {
                format: VertexFormat::Float32x3,
                offset: 0,
                shader_location: 0,
            },
            VertexAttribute {
                format: VertexFormat::Float32x3,
                offset: 12,
                shader_location: 1,
            },
            VertexAttribute {
                format: VertexFormat::Float32x3,
                offset: 24,
                shader_location: 2,
            },
        ];
        let pipeline = device.create_render_pipeline(&RawRenderPipelineDescriptor {
            label: Some("amisim first-person views"),
            layout: Some(&pipeline_layout),
            vertex: RawVertexState {
                module: &shader,
                entry_point: Some("vertex"),
                compilation_options: PipelineCompilationOptions::default(),
                buffers: &[RawVertexBufferLayout {
                    array_stride: (VERTEX_FLOATS * 4) as u64,
                    step_mode: VertexStepMode::Vertex,
                    attributes: &attributes,
                }],
            },
            primitive: PrimitiveState {
                topology: PrimitiveTopology::TriangleList,
                front_face: FrontFace::Ccw,
                cull_mode: Some(Face::Back),
                ..Default::default()
            },
            depth_stencil: Some(DepthStencilState {
                format: TextureFormat::Depth32Float,
                depth_write_enabled: Some(true),
                depth_compare: Some(CompareFunction::Less),
                stencil: Default::default(),
                bias: Default::default(),
            }),
            multisample: MultisampleState::default(),
            fragment: Some(RawFragmentState {
                module: &shader,
                entry_point: Some("fragment"),
                compilation_options: PipelineCompilationOptions::default(),
                targets: &[Some(ColorTargetState {
                    format: TextureFormat::Rgba8Unorm,
                    blend: None,
                    write_mask: ColorWrites::ALL,
                })],
            }),
            multiview_mask: None,
            cache: None,
        });
        let buffer = |bytes: Vec<u8>, usage: BufferUsages| {
            let b = device.create_buffer(&BufferDescriptor {
                label: Some("amisim first-person geometry"),
                size: bytes.len() as u64,
                usage: usage | BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            queue.write_buffer(&b, 0, &bytes);
            b
        };
        let vertices = buffer(
            mesh.vertices.iter().flat_map(|v| v.to_le_bytes()).collect(),
            BufferUsages::VERTEX,
        );
        let indices = buffer(
            mesh.indices.iter().flat_map(|v| v.to_le_bytes()).collect(),
            BufferUsages::INDEX,
        );
        let views = device.create_buffer(&BufferDescriptor {
            label: Some("amisim first-person view matrices"),
            size: (envs.max(1) * 64) as u64,
            usage: BufferUsages::STORAGE | BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let bind_group = device.create_bind_group(
            "amisim first-person views",
            &bind_layout,
            &[BindGroupEntry {
                binding: 0,
                resource: views.as_entire_binding(),
            }],
        );
        let depth = device
            .create_texture(&TextureDescriptor {
                label: Some("amisim first-person depth"),
                size: Extent3d {
                    width,
                    height,
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: TextureDimension::D2,
                format: TextureFormat::Depth32Float,
                usage: TextureUsages::RENDER_ATTACHMENT,
                view_formats: &[],
            })
            .create_view(&TextureViewDescriptor::default());
        Gpu {
            pipeline,
            vertices,
            indices,
            views,
            bind_group,
            depth,
        }
    }
}

/// Render-world system: one pass draws every environment's view into its tile of the atlas.
#[allow(clippy::too_many_arguments)]
fn draw_views(
    views: Res<FirstPersonViews>,
    mesh: Res<SceneMesh>,
    readback: Res<FrameReadback>,
    tiling: Res<TilingRes>,
    images: Res<RenderAssets<GpuImage>>,
    device: Res<RenderDevice>,
    queue: Res<RenderQueue>,
    mut gpu: Local<Option<Gpu>>,
) {
    let Some(target) = images.get(&readback.target) else {
        return;
    };
    let matrices = views.0.lock().expect("views lock").clone();
    if matrices.is_empty() {
        return;
    }
    let tiling = tiling.0;
    let gpu = gpu.get_or_insert_with(|| {
        Gpu::new(
            &device,
            &queue,
            &mesh.0,
            matrices.len(),
            tiling.width(),
            tiling.height(),
        )
    });
    let bytes: Vec<u8> = matrices
        .iter()
        .flat_map(|m| m.to_cols_array())
        .flat_map(|v| v.to_le_bytes())
        .collect();
    queue.write_buffer(&gpu.views, 0, &bytes);
    let mut encoder = device.create_command_encoder(&CommandEncoderDescriptor {
        label: Some("amisim first-person views"),
    });
    {
        let mut pass = encoder.begin_render_pass(&RenderPassDescriptor {
            label: Some("amisim first-person views"),
            color_attachments: &[Some(RenderPassColorAttachment {
                view: &target.texture_view,
                depth_slice: None,
                resolve_target: None,
                ops: Operations {
                    load: LoadOp::Clear(LinearRgba::rgb(SKY[0], SKY[1], SKY[2]).into()),
                    store: StoreOp::Store,
                },
            })],
            depth_stencil_attachment: Some(RenderPassDepthStencilAttachment {
                view: &gpu.depth,
                depth_ops: Some(Operations {
                    load: LoadOp::Clear(1.0),
                    store: StoreOp::Discard,
                }),
                stencil_ops: None,
            }),
            timestamp_writes: None,
            occlusion_query_set: None,
            multiview_mask: None,
        });
        pass.set_pipeline(&gpu.pipeline);
        pass.set_bind_group(0, &gpu.bind_group, &[]);
        pass.set_vertex_buffer(0, *gpu.vertices.slice(..));
        pass.set_index_buffer(*gpu.indices.slice(..), IndexFormat::Uint32);
        let t = tiling.tile;
        for (i, view) in matrices.iter().enumerate() {
            let o = tiling.origin(i);
            pass.set_viewport(o.x as f32, o.y as f32, t as f32, t as f32, 0.0, 1.0);
            pass.set_scissor_rect(o.x, o.y, t, t);
            for range in mesh.0.visible(view) {
                pass.draw_indexed(range, 0, i as u32..i as u32 + 1);
            }
        }
    }
    queue.submit([encoder.finish()]);
}
