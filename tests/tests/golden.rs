//! Golden images: scenes rendered through `databrain render` on the real GPU path (lavapipe on
//! machines without a GPU), compared with reviewed PNGs in `tests/golden/` within a tolerance.
//!
//! The comparison is `databrain_tests::golden` (tolerance below). After a reviewed
//! change, re-bless every golden image with `make bless` (which runs this test with
//! `DATABRAIN_BLESS=1`). Scenes drawn from `../shared/data` skip when it is absent.

use databrain_tests::golden::{Tolerance, check};
use databrain_tests::{run, sample_db};
use std::path::{Path, PathBuf};

/// Renders on lavapipe are close to deterministic: a few edge pixels may move.
const TOLERANCE: Tolerance = Tolerance {
    channel_tolerance: 24,
    max_differing_share: 0.005,
};
const SIZE: (u32, u32) = (480, 270);

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The scenes with golden images and the shared file each needs, if any.
const SCENES: &[(&str, Option<&str>)] = &[
    ("delft", Some("cityjson_citygml/delft.json")),
    ("rotterdam", Some("cityjson_citygml/rotterdam_subset.json")),
    (
        "shanghai_bund",
        Some("buildings_osm_china/shanghai_bund_lujiazui_buildings.geojson"),
    ),
    (
        "jiangsu_by_city",
        Some("boundaries_jiangsu/jiangsu_cities.geojson"),
    ),
    (
        "nanjing_by_county",
        Some("boundaries_jiangsu/nanjing_districts.geojson"),
    ),
    ("demo_district", None),
    ("demo_district_density", None),
];

#[test]
fn scenes_match_their_golden_images() {
    let tmp = tempfile::tempdir().unwrap();
    let db = sample_db(tmp.path(), 7);
    let db = db.to_str().unwrap();
    let root = workspace_root();
    let shared = root.join("../shared/data");
    let mut problems = Vec::new();
    let mut rendered = 0;
    for (scene, needs) in SCENES {
        if let Some(file) = needs
            && !shared.join(file).exists()
        {
            eprintln!("skipped {scene}: ../shared/data/{file} is absent");
            continue;
        }
        let out = tmp.path().join(format!("{scene}.png"));
        run(&[
            "render",
            "--db",
            db,
            "--scene",
            scene,
            "--data-dir",
            root.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--width",
            &SIZE.0.to_string(),
            "--height",
            &SIZE.1.to_string(),
        ]);
        rendered += 1;
        let got = image::open(&out).unwrap().to_rgba8();
        problems.extend(check(scene, &got, &[], TOLERANCE));
    }
    assert!(rendered > 0, "no scene was rendered");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
