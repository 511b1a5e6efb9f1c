//! Scene files: what a view of the city twin shows and from where.
//!
//! A scene is a small TOML file (see `scenes/*.toml`): the region whose buildings are drawn, the
//! indicator binding that colours them (indicator id, level, grain, period or `latest`) and the
//! camera. This crate parses and validates the format and owns the orbit-camera arithmetic; it
//! knows nothing about how scenes are drawn or where indicator values come from.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The scenes compiled into the binary: (file name, contents).
pub const BUILTIN_FILES: &[(&str, &str)] = &[
    (
        "jiangsu_by_city.toml",
        include_str!("../jiangsu_by_city.toml"),
    ),
    (
        "nanjing_by_county.toml",
        include_str!("../nanjing_by_county.toml"),
    ),
    ("demo_district.toml", include_str!("../demo_district.toml")),
    (
        "demo_district_intensity.toml",
        include_str!("../demo_district_intensity.toml"),
    ),
    (
        "demo_district_density.toml",
        include_str!("../demo_district_density.toml"),
    ),
    ("delft.toml", include_str!("../delft.toml")),
    ("rotterdam.toml", include_str!("../rotterdam.toml")),
    ("shanghai_bund.toml", include_str!("../shanghai_bund.toml")),
];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scene {
    pub id: String,
    pub title_zh: String,
    pub title_en: String,
    /// Division code the scene covers: buildings and regions from the database are taken in
    /// its subtree. Scenes of CIM files outside the province have none.
    #[serde(default)]
    pub region: Option<String>,
    /// What is drawn, bottom first. Without layers: the database's buildings in `region`.
    #[serde(default)]
    pub layers: Vec<Layer>,
    /// The indicator that colours the scene; a scene without one shows plain geometry.
    #[serde(default)]
    pub binding: Option<Binding>,
    /// Where the view starts.
    pub camera: OrbitCamera,
    /// Named cameras, e.g. for a planner's quick jumps and the tour.
    #[serde(default)]
    pub bookmarks: Vec<Bookmark>,
    /// Bookmarks shown in turn on a command-centre wall, each for a while, then from the top.
    #[serde(default)]
    pub tour: Vec<TourStop>,
}

/// One source of geometry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Layer {
    /// The generated buildings stored in the database, within the scene's region.
    Buildings,
    /// A CIM file: CityJSON (1.1, 2.0), CityJSONSeq (`.jsonl`) or GeoJSON footprints. A
    /// relative path is taken from the data directory (the working directory by default).
    Cim {
        file: PathBuf,
        /// Overrides the file's CRS (`EPSG:7415`, `GCJ-02`); needed when the file names none.
        #[serde(default)]
        crs: Option<String>,
        /// Preferred LoD (`"1"`, `"2.2"`); the nearest available is drawn.
        #[serde(default)]
        lod: Option<String>,
    },
    /// Region boundaries of one level within the scene's region: from `file` when it is given
    /// and exists, else the database's shapes.
    Regions {
        level: String,
        #[serde(default)]
        file: Option<PathBuf>,
        #[serde(default)]
        crs: Option<String>,
    },
}

/// The views of a binding that are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Show {
    /// Buildings coloured by their region's value.
    Buildings,
    /// Regions filled by value.
    Choropleth,
    /// 3-D columns at region centroids.
    Columns,
    /// Region names and values.
    Labels,
    /// Regions filled by value per km² (counts of events such as work orders).
    Density,
    /// Red markers over regions whose value is critical.
    Alerts,
}

/// How values map to colours.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RampKind {
    /// Diverging around the target when the indicator has one, else sequential.
    #[default]
    Auto,
    /// Light to dark, darker is worse.
    Sequential,
    /// Red through yellow to green, worst to best.
    Diverging,
}

/// Which indicator colours the scene. `level` and `grain` use the catalogue's names; the server
/// checks them against the catalogue when it loads the scene.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    pub indicator: String,
    pub level: String,
    pub grain: String,
    /// A period label of the grain, or `latest` for the newest period with data.
    #[serde(default = "latest")]
    pub period: String,
    #[serde(default)]
    pub ramp: RampKind,
    #[serde(default = "default_show")]
    pub show: Vec<Show>,
}

fn default_show() -> Vec<Show> {
    vec![Show::Buildings]
}

fn latest() -> String {
    "latest".to_owned()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bookmark {
    pub name: String,
    pub camera: OrbitCamera,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TourStop {
    /// A bookmark's name.
    pub bookmark: String,
    pub seconds: f32,
}

/// A camera orbiting a target point on the ground of the scene's local frame, described by
/// heading, elevation and distance; the target is given in metres east and north of the
/// scene centre.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrbitCamera {
    /// Heading of the camera seen from the target, degrees clockwise from north.
    pub yaw_deg: f32,
    /// Elevation above the horizon, degrees.
    pub pitch_deg: f32,
    pub distance_m: f32,
    /// Target offset from the scene centre, metres east and north.
    #[serde(default)]
    pub target_en_m: [f32; 2],
}

impl OrbitCamera {
    pub const MIN_PITCH_DEG: f32 = 5.0;
    pub const MAX_PITCH_DEG: f32 = 89.0;
    pub const MIN_DISTANCE_M: f32 = 50.0;
    pub const MAX_DISTANCE_M: f32 = 1_000_000.0;

    /// Turns the camera around its target; pitch is clamped so it stays above the ground.
    pub fn orbit(&mut self, d_yaw_deg: f32, d_pitch_deg: f32) {
        self.yaw_deg = (self.yaw_deg + d_yaw_deg).rem_euclid(360.0);
        self.pitch_deg =
            (self.pitch_deg + d_pitch_deg).clamp(Self::MIN_PITCH_DEG, Self::MAX_PITCH_DEG);
    }

    /// Moves closer (factor < 1) or further (factor > 1), within limits.
    pub fn zoom(&mut self, factor: f32) {
        if factor.is_finite() && factor > 0.0 {
            self.distance_m =
                (self.distance_m * factor).clamp(Self::MIN_DISTANCE_M, Self::MAX_DISTANCE_M);
        }
    }

    /// Moves the target over the ground: `d_right_m` along the screen's right and `d_up_m`
    /// along the screen's up (forward on the ground), as seen from this camera.
    pub fn pan(&mut self, d_right_m: f32, d_up_m: f32) {
        if !(d_right_m.is_finite() && d_up_m.is_finite()) {
            return;
        }
        let yaw = self.yaw_deg.to_radians();
        // The camera looks from heading `yaw` towards the target: forward is the opposite.
        let right = [-yaw.cos(), yaw.sin()];
        let forward = [-yaw.sin(), -yaw.cos()];
        self.target_en_m[0] += right[0] * d_right_m + forward[0] * d_up_m;
        self.target_en_m[1] += right[1] * d_right_m + forward[1] * d_up_m;
    }

    /// Camera position relative to the scene centre, metres east, up and north.
    pub fn eye_enu_m(&self) -> [f32; 3] {
        let (yaw, pitch) = (self.yaw_deg.to_radians(), self.pitch_deg.to_radians());
        let horizontal = self.distance_m * pitch.cos();
        [
            self.target_en_m[0] + horizontal * yaw.sin(),
            self.distance_m * pitch.sin(),
            self.target_en_m[1] + horizontal * yaw.cos(),
        ]
    }

    /// Checks the camera is finite, above the ground and within the distance limits.
    pub fn validate(&self) -> Result<(), String> {
        let finite = [
            self.yaw_deg,
            self.pitch_deg,
            self.distance_m,
            self.target_en_m[0],
            self.target_en_m[1],
        ]
        .iter()
        .all(|v| v.is_finite());
        if !finite {
            return Err("camera values must be finite numbers".into());
        }
        if !(Self::MIN_PITCH_DEG..=Self::MAX_PITCH_DEG).contains(&self.pitch_deg) {
            return Err(format!(
                "camera.pitch_deg {} is outside {}..={}",
                self.pitch_deg,
                Self::MIN_PITCH_DEG,
                Self::MAX_PITCH_DEG
            ));
        }
        if !(Self::MIN_DISTANCE_M..=Self::MAX_DISTANCE_M).contains(&self.distance_m) {
            return Err(format!(
                "camera.distance_m {} is outside {}..={}",
                self.distance_m,
                Self::MIN_DISTANCE_M,
                Self::MAX_DISTANCE_M
            ));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SceneError {
    #[error("cannot read scene file: {source}, in {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("malformed scene: {message}, in {file}")]
    Format { file: String, message: String },
    #[error("scene id {id:?} is used twice, in {file}")]
    Duplicate { id: String, file: String },
}

impl Scene {
    /// The layers drawn: the declared ones, or the database's buildings.
    pub fn layers(&self) -> Vec<Layer> {
        if self.layers.is_empty() {
            vec![Layer::Buildings]
        } else {
            self.layers.clone()
        }
    }

    /// Parses and validates one scene file's text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Scene, SceneError> {
        let fail = |message: String| SceneError::Format {
            file: file.to_owned(),
            message,
        };
        let scene: Scene = toml::from_str(text).map_err(|e| fail(e.to_string()))?;
        if scene.id.is_empty()
            || !scene
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(fail(format!(
                "id {:?} must be ascii letters, digits, _ or -",
                scene.id
            )));
        }
        if let Some(region) = &scene.region
            && (region.is_empty() || !region.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(fail(format!("region {region:?} must be a division code")));
        }
        if let Some(b) = &scene.binding {
            if b.indicator.is_empty() {
                return Err(fail("binding.indicator is empty".into()));
            }
            if b.show.is_empty() {
                return Err(fail(
                    "binding.show is empty: nothing would show the values".into(),
                ));
            }
        }
        for (i, layer) in scene.layers.iter().enumerate() {
            let needs_region =
                matches!(layer, Layer::Buildings | Layer::Regions { file: None, .. });
            if needs_region && scene.region.is_none() {
                return Err(fail(format!(
                    "layers[{i}] takes its data from the database and needs the scene's region"
                )));
            }
            if let Layer::Cim { file, .. } = layer
                && file.as_os_str().is_empty()
            {
                return Err(fail(format!("layers[{i}].file is empty")));
            }
        }
        if scene.layers.is_empty() && scene.region.is_none() {
            return Err(fail("a scene needs layers or a region".into()));
        }
        scene.camera.validate().map_err(fail)?;
        for b in &scene.bookmarks {
            b.camera
                .validate()
                .map_err(|e| fail(format!("bookmark {:?}: {e}", b.name)))?;
        }
        for (i, stop) in scene.tour.iter().enumerate() {
            if !scene.bookmarks.iter().any(|b| b.name == stop.bookmark) {
                return Err(fail(format!(
                    "tour[{i}] names bookmark {:?}, which the scene does not define",
                    stop.bookmark
                )));
            }
            if !(1.0..=600.0).contains(&stop.seconds) {
                return Err(fail(format!(
                    "tour[{i}].seconds {} is outside 1..=600",
                    stop.seconds
                )));
            }
        }
        Ok(scene)
    }

    pub fn load(path: &Path) -> Result<Scene, SceneError> {
        let text = std::fs::read_to_string(path).map_err(|source| SceneError::Read {
            path: path.to_owned(),
            source,
        })?;
        Scene::parse(&text, &path.display().to_string())
    }
}

/// The built-in scenes, in file order.
pub fn builtin() -> Result<Vec<Scene>, SceneError> {
    let mut scenes: Vec<Scene> = Vec::new();
    for (file, text) in BUILTIN_FILES {
        let scene = Scene::parse(text, file)?;
        if scenes.iter().any(|s| s.id == scene.id) {
            return Err(SceneError::Duplicate {
                id: scene.id,
                file: file.to_string(),
            });
        }
        scenes.push(scene);
    }
    Ok(scenes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_scenes_parse() {
        let scenes = builtin().unwrap();
        assert!(
            scenes
                .iter()
                .any(|s| s.id == "demo_district" && s.region.as_deref() == Some("320102"))
        );
        let province = scenes.iter().find(|s| s.id == "jiangsu_by_city").unwrap();
        assert_eq!(province.tour.len(), 3);
        assert_eq!(
            province.binding.as_ref().unwrap().show,
            [Show::Choropleth, Show::Columns, Show::Labels, Show::Alerts]
        );
        let delft = scenes.iter().find(|s| s.id == "delft").unwrap();
        assert!(delft.binding.is_none() && delft.region.is_none());
        assert!(matches!(&delft.layers[0], Layer::Cim { lod: Some(l), .. } if l == "1"));
    }

    #[test]
    fn bad_scenes_name_the_problem_and_file() {
        let good = include_str!("../demo_district.toml");
        let cases = [
            (
                good.replace("pitch_deg = 42.0", "pitch_deg = 120.0"),
                "camera.pitch_deg 120",
            ),
            (
                good.replace("distance_m = 7000.0", "distance_m = -1.0"),
                "camera.distance_m -1",
            ),
            (
                good.replace("region = \"320102\"", "region = \"xuanwu\""),
                "region \"xuanwu\"",
            ),
            (
                good.replace("[camera]", "[camera]\nfov = 3"),
                "unknown field `fov`",
            ),
            (
                good.replace("id = \"demo_district\"", "id = \"a b\""),
                "id \"a b\"",
            ),
            (
                good.replace("bookmark = \"close\"", "bookmark = \"far\""),
                "tour[1] names bookmark \"far\"",
            ),
            (
                good.replace("seconds = 10\n", "seconds = 0\n"),
                "tour[0].seconds 0 is outside",
            ),
            (
                good.replace("kind = \"buildings\"", "kind = \"meshes\""),
                "unknown variant `meshes`",
            ),
            (
                good.replace("show = [\"buildings\", \"choropleth\"]", "show = []"),
                "binding.show is empty",
            ),
            (
                good.replace("region = \"320102\"\n", ""),
                "layers[0] takes its data from the database",
            ),
        ];
        for (text, msg) in cases {
            let e = Scene::parse(&text, "bad.toml").unwrap_err().to_string();
            assert!(e.contains(msg), "{e}");
            assert!(e.ends_with("in bad.toml"), "{e}");
        }
    }

    #[test]
    fn pan_follows_the_screen() {
        // Looking north (camera south of the target, yaw 180): right is east, up is north.
        let mut c = OrbitCamera {
            yaw_deg: 180.0,
            pitch_deg: 45.0,
            distance_m: 100.0,
            target_en_m: [0.0, 0.0],
        };
        c.pan(10.0, 5.0);
        assert!((c.target_en_m[0] - 10.0).abs() < 1e-4 && (c.target_en_m[1] - 5.0).abs() < 1e-4);
        c.pan(f32::NAN, 1.0);
        assert!((c.target_en_m[1] - 5.0).abs() < 1e-4);
    }

    #[test]
    fn orbit_clamps_and_wraps() {
        let mut c = OrbitCamera {
            yaw_deg: 350.0,
            pitch_deg: 80.0,
            distance_m: 1000.0,
            target_en_m: [0.0, 0.0],
        };
        c.orbit(20.0, 30.0);
        assert!((c.yaw_deg - 10.0).abs() < 1e-4);
        assert_eq!(c.pitch_deg, OrbitCamera::MAX_PITCH_DEG);
        c.zoom(1e-9);
        assert_eq!(c.distance_m, OrbitCamera::MIN_DISTANCE_M);
        c.zoom(f32::NAN);
        assert_eq!(c.distance_m, OrbitCamera::MIN_DISTANCE_M);
        let eye = OrbitCamera {
            yaw_deg: 90.0,
            pitch_deg: 45.0,
            distance_m: 100.0,
            target_en_m: [0.0, 0.0],
        }
        .eye_enu_m();
        assert!(
            (eye[0] - 70.7107).abs() < 1e-3
                && (eye[1] - 70.7107).abs() < 1e-3
                && eye[2].abs() < 1e-3
        );
    }
}
