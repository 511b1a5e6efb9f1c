// Impostors (far tiles): the tile's roofs from above, premultiplied, filtered through its mip
// levels. Texels without a roof are transparent and discarded, so the ground and the overlays
// under them show and nothing is blended there.

#import bevy_pbr::forward_io::VertexOutput

@group(#{MATERIAL_BIND_GROUP}) @binding(0) var roofs: texture_2d<f32>;
@group(#{MATERIAL_BIND_GROUP}) @binding(1) var roofs_sampler: sampler;

@fragment
fn fragment(in: VertexOutput) -> @location(0) vec4<f32> {
#ifdef VERTEX_UVS_A
    let colour = textureSample(roofs, roofs_sampler, in.uv);
    if colour.a < 0.004 {
        discard;
    }
    return colour;
#else
    return vec4<f32>(0.0);
#endif
}
