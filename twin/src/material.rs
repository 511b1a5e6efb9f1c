//! The twin's materials. [`TwinMaterial`] (shader `twin.wgsl`) draws everything but far
//! tiles: unlit, its colour the product of a base colour, the vertex shade (lighting baked at
//! meshing) and the object's texel in the colour table. Much cheaper per pixel than Bevy's
//! standard material, which is what a software rasteriser spends its time on.
//! [`ImpostorMaterial`] (shader `impostor.wgsl`) draws a far tile's impostor
//! ([`crate::impostor`]): one premultiplied, mip-mapped texture, blended.

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

/// A far tile's roofs from above ([`crate::impostor::Impostor::rgba_mips`]).
#[derive(Asset, TypePath, AsBindGroup, Clone, Debug)]
pub struct ImpostorMaterial {
    #[texture(0)]
    #[sampler(1)]
    pub roofs: Handle<Image>,
}

impl Material for ImpostorMaterial {
    fn fragment_shader() -> ShaderRef {
        "embedded://twin/impostor.wgsl".into()
    }

    // Blended, not alpha-tested: a test erodes the mip levels' partly covered texels into
    // holes (tried), where blending shows them as the coverage they are.
    fn alpha_mode(&self) -> AlphaMode {
        AlphaMode::Premultiplied
    }
}

/// Registers the materials and their embedded shaders.
pub struct TwinMaterialPlugin;

impl Plugin for TwinMaterialPlugin {
    fn build(&self, app: &mut App) {
        embedded_asset!(app, "twin.wgsl");
        embedded_asset!(app, "impostor.wgsl");
        app.add_plugins((
            MaterialPlugin::<TwinMaterial>::default(),
            MaterialPlugin::<ImpostorMaterial>::default(),
        ));
    }
}
