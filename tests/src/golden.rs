//! Golden images: a picture made now against a reviewed PNG under `tests/golden/`, within a
//! tolerance. A pixel differs when any channel is more than `channel_tolerance` off; a
//! picture fails when more than `max_differing_share` of its pixels (outside the masked
//! rectangles: a clock, a live stream) differ. On failure the new image and a diff (differing
//! pixels magenta, masks blue) go to `$TMPDIR/databrain-golden/` and the message names them.
//! With `DATABRAIN_BLESS` set (`make bless`) the picture becomes the golden image instead.

use std::path::{Path, PathBuf};

/// How close a picture must be to its golden image.
#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    pub channel_tolerance: u8,
    pub max_differing_share: f64,
}

/// A rectangle left out of the comparison, in pixels of the picture.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mask {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl Mask {
    fn contains(&self, x: u32, y: u32) -> bool {
        x >= self.x && y >= self.y && x < self.x + self.width && y < self.y + self.height
    }
}

/// The golden images' directory, `tests/golden/`.
pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("golden")
}

/// Whether this run re-blesses the golden images (`make bless`).
pub fn blessing() -> bool {
    std::env::var_os("DATABRAIN_BLESS").is_some()
}

/// Compares `got` with the golden `name` (a path under `tests/golden/`, without `.png`), or
/// writes it when blessing; returns the problem, if any.
pub fn check(name: &str, got: &image::RgbaImage, masks: &[Mask], tol: Tolerance) -> Option<String> {
    let golden = golden_dir().join(format!("{name}.png"));
    if blessing() {
        if let Some(dir) = golden.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        got.save(&golden).unwrap();
        eprintln!("blessed {}", golden.display());
        return None;
    }
    let Ok(expected) = image::open(&golden) else {
        return Some(format!(
            "{name}: no golden image at {}; review the picture and run `make bless`",
            golden.display()
        ));
    };
    let expected = expected.to_rgba8();
    if expected.dimensions() != got.dimensions() {
        return Some(format!(
            "{name}: size {:?} differs from the golden {:?}",
            got.dimensions(),
            expected.dimensions()
        ));
    }
    let mut diff = image::RgbaImage::new(got.width(), got.height());
    let (mut differing, mut compared) = (0usize, 0usize);
    for (x, y, p) in got.enumerate_pixels() {
        if masks.iter().any(|m| m.contains(x, y)) {
            diff.put_pixel(x, y, image::Rgba([0, 0, 255, 255]));
            continue;
        }
        compared += 1;
        let q = expected.get_pixel(x, y);
        if (0..3).any(|c| p.0[c].abs_diff(q.0[c]) > tol.channel_tolerance) {
            differing += 1;
            diff.put_pixel(x, y, image::Rgba([255, 0, 255, 255]));
        } else {
            let g = ((p.0[0] as u32 + p.0[1] as u32 + p.0[2] as u32) / 12) as u8;
            diff.put_pixel(x, y, image::Rgba([g, g, g, 255]));
        }
    }
    let share = differing as f64 / compared.max(1) as f64;
    if share <= tol.max_differing_share {
        return None;
    }
    let out = std::env::temp_dir().join("databrain-golden");
    let (new, diff_path) = (
        out.join(format!("{name}.png")),
        out.join(format!("{name}.diff.png")),
    );
    std::fs::create_dir_all(new.parent().unwrap()).unwrap();
    got.save(&new).unwrap();
    diff.save(&diff_path).unwrap();
    Some(format!(
        "{name}: {:.2}% of pixels differ (limit {:.2}%); new image {}, diff {}; if the change is \
         intended, run `make bless`",
        share * 100.0,
        tol.max_differing_share * 100.0,
        new.display(),
        diff_path.display()
    ))
}
