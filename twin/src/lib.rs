//! The city twin: buildings placed in a local metric frame, extruded into merged meshes,
//! coloured by indicator values and rendered by Bevy (on wgpu) into RGBA images.
//!
//! Data flows one way: the caller hands in building footprints (lon/lat) and indicator values
//! per grid cell ([`SceneInput`]); [`prepare`] projects, validates and meshes them and derives
//! the colour ramp and legend ([`PreparedScene`], no GPU needed); [`Renderer`] owns one Bevy
//! app on its own thread and renders a prepared scene from an orbit camera at a size. The twin
//! receives values; it never queries a database.

pub mod frame;
pub mod mesh;
pub mod ramp;
mod render;

pub use frame::LocalFrame;
pub use mesh::MeshData;
pub use ramp::{Legend, LegendEntry, Ramp};
pub use render::Renderer;
pub use scenes::OrbitCamera;

use std::collections::HashMap;

/// A building as handed to the twin: outer ring in lon/lat (WGS84), height in metres.
#[derive(Clone, Debug, PartialEq)]
pub struct BuildingInput {
    pub id: String,
    pub grid_id: String,
    pub footprint_lon_lat: Vec<[f64; 2]>,
    pub height_m: f64,
}

/// What an overlay shows, for the legend and the ramp's direction.
#[derive(Clone, Debug, PartialEq)]
pub struct OverlaySpec {
    pub title: String,
    pub unit: String,
    pub period: String,
    pub higher_is_better: bool,
}

/// Everything needed to draw one scene.
#[derive(Clone, Debug)]
pub struct SceneInput {
    /// Identifies the content (scene id plus data snapshot); the renderer keeps meshes per key.
    pub key: String,
    pub buildings: Vec<BuildingInput>,
    /// Indicator value per grid cell (buildings take their cell's value).
    pub values: HashMap<String, f64>,
    pub overlay: OverlaySpec,
}

/// A scene ready to render: meshes in the local frame, legend, extent.
#[derive(Clone, Debug)]
pub struct PreparedScene {
    pub key: String,
    pub frame: LocalFrame,
    pub mesh: MeshData,
    pub legend: Legend,
    /// What the colours show (indicator, unit, period).
    pub overlay: OverlaySpec,
    /// Half the larger side of the buildings' bounding box, metres.
    pub radius_m: f32,
    pub building_count: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum TwinError {
    #[error("building {id}: {message}")]
    BadFootprint { id: String, message: String },
    #[error("the scene has no buildings to draw")]
    NoBuildings,
    #[error(
        "rendering is unavailable: no usable GPU or Vulkan device was found ({detail}); install Mesa's lavapipe (Debian package mesa-vulkan-drivers) for CPU rendering"
    )]
    NoDevice { detail: String },
    #[error("the renderer stopped: {0}")]
    RendererGone(String),
    #[error("image size {width}x{height} is outside 16..=4096 pixels per side")]
    BadSize { width: u32, height: u32 },
}

/// Projects, validates and meshes the buildings and colours them by their grid cell's value.
pub fn prepare(input: &SceneInput) -> Result<PreparedScene, TwinError> {
    if input.buildings.is_empty() {
        return Err(TwinError::NoBuildings);
    }
    let frame = LocalFrame::around(
        input
            .buildings
            .iter()
            .flat_map(|b| b.footprint_lon_lat.iter().copied()),
    );
    let ramp = Ramp::new(input.overlay.higher_is_better);
    let legend = ramp.legend(&input.overlay, input.values.values().copied());
    let mut footprints = Vec::with_capacity(input.buildings.len());
    for b in &input.buildings {
        let ring = frame
            .ring_to_local(&b.footprint_lon_lat)
            .map_err(|message| TwinError::BadFootprint {
                id: b.id.clone(),
                message,
            })?;
        if !(b.height_m.is_finite() && b.height_m > 0.0) {
            return Err(TwinError::BadFootprint {
                id: b.id.clone(),
                message: format!("height {} m is not positive", b.height_m),
            });
        }
        let colour = legend.colour_of(input.values.get(&b.grid_id).copied());
        footprints.push(mesh::Footprint {
            ring_en_m: ring,
            height_m: b.height_m as f32,
            colour_srgb: colour,
        });
    }
    let mesh = mesh::extrude(&footprints).map_err(|(i, message)| TwinError::BadFootprint {
        id: input.buildings[i].id.clone(),
        message,
    })?;
    let radius_m = footprints
        .iter()
        .flat_map(|f| f.ring_en_m.iter())
        .fold(0.0f32, |r, p| r.max(p[0].abs()).max(p[1].abs()));
    Ok(PreparedScene {
        key: input.key.clone(),
        frame,
        mesh,
        legend,
        overlay: input.overlay.clone(),
        radius_m,
        building_count: footprints.len(),
    })
}
