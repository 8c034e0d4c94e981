// The agent of a top-down scene: a Gaussian blob written to the red channel only, so the
// green (walls) and blue (box) channels underneath stay intact. The quad is `side` pixels wide
// and centred on the agent; each pixel gets exp(-d²/2σ²) at its centre, as in the reference.
#import bevy_sprite::mesh2d_vertex_output::VertexOutput

// x: std in pixels, y: side of the quad in pixels.
@group(#{MATERIAL_BIND_GROUP}) @binding(0) var<uniform> blob: vec4<f32>;

@fragment
fn fragment(mesh: VertexOutput) -> @location(0) vec4<f32> {
    let d = (mesh.uv - vec2<f32>(0.5, 0.5)) * blob.y;
    let a = exp(-dot(d, d) / (2.0 * blob.x * blob.x));
    return vec4<f32>(a, 0.0, 0.0, 1.0);
}
