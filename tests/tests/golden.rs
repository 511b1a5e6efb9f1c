//! Golden images: scenes rendered through `databrain render` on the real GPU path (lavapipe on
//! machines without a GPU), compared with reviewed PNGs in `tests/golden/` within a tolerance.
//!
//! A pixel differs when any channel is more than [`CHANNEL_TOLERANCE`] off; a scene fails when
//! more than [`MAX_DIFFERING_SHARE`] of its pixels differ. On failure the new image and a diff
//! are written next to the target directory and the message names them. After a reviewed
//! change, re-bless every golden image with `make bless` (which runs this test with
//! `DATABRAIN_BLESS=1`). Scenes drawn from `../shared/data` skip when it is absent.

use databrain_tests::{run, sample_db};
use std::path::{Path, PathBuf};

const CHANNEL_TOLERANCE: u8 = 24;
const MAX_DIFFERING_SHARE: f64 = 0.005;
const SIZE: (u32, u32) = (480, 270);

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn golden_dir() -> PathBuf {
    workspace_root().join("tests/golden")
}

/// Compares `actual` with the golden file (or writes it when blessing); returns a problem.
fn check(name: &str, actual: &Path) -> Option<String> {
    let golden = golden_dir().join(format!("{name}.png"));
    if std::env::var_os("DATABRAIN_BLESS").is_some() {
        std::fs::copy(actual, &golden).unwrap();
        eprintln!("blessed {}", golden.display());
        return None;
    }
    let Ok(expected) = image::open(&golden) else {
        return Some(format!(
            "{name}: no golden image at {}; review the render and run `make bless`",
            golden.display()
        ));
    };
    let expected = expected.to_rgba8();
    let got = image::open(actual).unwrap().to_rgba8();
    if expected.dimensions() != got.dimensions() {
        return Some(format!(
            "{name}: size {:?} differs from the golden {:?}",
            got.dimensions(),
            expected.dimensions()
        ));
    }
    let mut diff = image::RgbaImage::new(got.width(), got.height());
    let mut differing = 0usize;
    for (x, y, p) in got.enumerate_pixels() {
        let q = expected.get_pixel(x, y);
        let off = (0..3).any(|c| p.0[c].abs_diff(q.0[c]) > CHANNEL_TOLERANCE);
        if off {
            differing += 1;
            diff.put_pixel(x, y, image::Rgba([255, 0, 255, 255]));
        } else {
            let g = (p.0[0] as u32 + p.0[1] as u32 + p.0[2] as u32) / 12;
            diff.put_pixel(x, y, image::Rgba([g as u8, g as u8, g as u8, 255]));
        }
    }
    let share = differing as f64 / (got.width() * got.height()) as f64;
    if share <= MAX_DIFFERING_SHARE {
        return None;
    }
    let out = std::env::temp_dir().join("databrain-golden");
    std::fs::create_dir_all(&out).unwrap();
    let (new, diff_path) = (
        out.join(format!("{name}.png")),
        out.join(format!("{name}.diff.png")),
    );
    std::fs::copy(actual, &new).unwrap();
    diff.save(&diff_path).unwrap();
    Some(format!(
        "{name}: {:.2}% of pixels differ (limit {:.2}%); new image {}, diff {}; if the change is \
         intended, run `make bless`",
        share * 100.0,
        MAX_DIFFERING_SHARE * 100.0,
        new.display(),
        diff_path.display()
    ))
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
        problems.extend(check(scene, &out));
    }
    assert!(rendered > 0, "no scene was rendered");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
