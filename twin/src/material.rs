//! The twin's one material ([`TwinMaterial`], shader `twin.wgsl`): unlit, its colour the
//! product of a base colour, the vertex shade (lighting baked at meshing) and the object's
//! texel in the colour table. Much cheaper per pixel than Bevy's standard material, which is
//! what a software rasteriser spends its time on.

use bevy::{
    asset::embedded_asset,
    pbr::{Material, MaterialPlugin},
    prelude::*,
    render::render_resource::AsBindGroup,
    shader::ShaderRef,
};

#[derive(Asset, TypePath, AsBindGroup, Clone, Debug)]
pub struct TwinMaterial {
    /// Multiplies everything (linear).
    #[uniform(0)]
    pub base: LinearRgba,
    /// The colour table (one texel per object); a 1×1 white image where meshes carry no
    /// colour-table coordinates.
    #[texture(1)]
    #[sampler(2)]
    pub table: Handle<Image>,
}

impl Material for TwinMaterial {
    fn fragment_shader() -> ShaderRef {
        "embedded://twin/twin.wgsl".into()
    }
}

/// Registers the material and its embedded shader.
pub struct TwinMaterialPlugin;

impl Plugin for TwinMaterialPlugin {
    fn build(&self, app: &mut App) {
        embedded_asset!(app, "twin.wgsl");
        app.add_plugins(MaterialPlugin::<TwinMaterial>::default());
    }
}
