// The twin's one material: unlit, colour = base × vertex shade × the object's colour-table
// texel. Lighting is baked into the vertex shade, so the fragment stage is two multiplies and
// one unfiltered texel fetch: cheap on software rasterisers such as lavapipe.

#import bevy_pbr::forward_io::VertexOutput

@group(#{MATERIAL_BIND_GROUP}) @binding(0) var<uniform> base: vec4<f32>;
@group(#{MATERIAL_BIND_GROUP}) @binding(1) var table: texture_2d<f32>;
@group(#{MATERIAL_BIND_GROUP}) @binding(2) var table_sampler: sampler;

@fragment
fn fragment(in: VertexOutput) -> @location(0) vec4<f32> {
    var colour = base;
#ifdef VERTEX_COLORS
    colour = colour * in.color;
#endif
#ifdef VERTEX_UVS_A
    colour = colour * textureSampleLevel(table, table_sampler, in.uv, 0.0);
#endif
    return colour;
}
