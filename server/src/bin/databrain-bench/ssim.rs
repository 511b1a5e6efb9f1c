//! SSIM of two grey pictures (Wang, Bovik, Sheikh and Simoncelli, "Image quality assessment:
//! from error visibility to structural similarity", IEEE TIP 13(4), 2004): the mean over
//! non-overlapping 8×8 windows (smaller at the right and bottom edges) of
//! `(2 μx μy + C1)(2 σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2))`, with the window's
//! population mean, variances and covariance and `C1 = (0.01 L)²`, `C2 = (0.03 L)²`, L = 255.
//!
//! Written here rather than taken from `image-compare`: its `MSSIMSimple` (0.5.0, the latest)
//! sums each window's products of deviations without dividing by the window's area, so its
//! variances are 64 times the formula's and its C2 in effect 64 times smaller; nearly flat
//! windows with a grey level or two of noise then score far below 1. This project's stream
//! and twin figures before 2026-12-04 were measured with it. `dssim` is AGPL and measures a
//! different (multi-scale) index.

use anyhow::{Result, ensure};
use image::GrayImage;

const WINDOW_PX: u32 = 8;
const C1: f64 = (0.01 * 255.0) * (0.01 * 255.0);
const C2: f64 = (0.03 * 255.0) * (0.03 * 255.0);

/// Mean SSIM of two pictures of the same size over 8×8 windows.
pub(crate) fn grey_ssim(a: &GrayImage, b: &GrayImage) -> Result<f64> {
    ensure!(
        a.dimensions() == b.dimensions(),
        "SSIM of pictures of different sizes: {:?} and {:?}",
        a.dimensions(),
        b.dimensions()
    );
    let (width, height) = a.dimensions();
    ensure!(width > 0 && height > 0, "SSIM of an empty picture");
    let (mut sum, mut windows) = (0.0, 0usize);
    for y0 in (0..height).step_by(WINDOW_PX as usize) {
        for x0 in (0..width).step_by(WINDOW_PX as usize) {
            let (x1, y1) = ((x0 + WINDOW_PX).min(width), (y0 + WINDOW_PX).min(height));
            sum += window_ssim(a, b, (x0, y0), (x1, y1));
            windows += 1;
        }
    }
    Ok(sum / windows as f64)
}

/// The score this project reported before 2026-12-04 (`image-compare`'s `MSSIMSimple`), kept
/// for one row of the stream table so that old and new figures can be read side by side.
pub(crate) fn image_compare_score(a: &GrayImage, b: &GrayImage) -> Result<f64> {
    Ok(
        image_compare::gray_similarity_structure(&image_compare::Algorithm::MSSIMSimple, a, b)?
            .score,
    )
}

/// SSIM of one window, `[x0, x1) × [y0, y1)`.
fn window_ssim(a: &GrayImage, b: &GrayImage, (x0, y0): (u32, u32), (x1, y1): (u32, u32)) -> f64 {
    let n = f64::from((x1 - x0) * (y1 - y0));
    let (mut sa, mut sb, mut saa, mut sbb, mut sab) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for y in y0..y1 {
        for x in x0..x1 {
            let (p, q) = (
                f64::from(a.get_pixel(x, y)[0]),
                f64::from(b.get_pixel(x, y)[0]),
            );
            sa += p;
            sb += q;
            saa += p * p;
            sbb += q * q;
            sab += p * q;
        }
    }
    let (mean_a, mean_b) = (sa / n, sb / n);
    let var_a = saa / n - mean_a * mean_a;
    let var_b = sbb / n - mean_b * mean_b;
    let cov = sab / n - mean_a * mean_b;
    ((2.0 * mean_a * mean_b + C1) * (2.0 * cov + C2))
        / ((mean_a * mean_a + mean_b * mean_b + C1) * (var_a + var_b + C2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(width: u32, height: u32, f: impl Fn(u32, u32) -> u8) -> GrayImage {
        GrayImage::from_fn(width, height, |x, y| image::Luma([f(x, y)]))
    }

    #[test]
    fn identical_pictures_score_one() {
        let a = picture(37, 21, |x, y| ((x * 7 + y * 13) % 256) as u8);
        assert!((grey_ssim(&a, &a).unwrap() - 1.0).abs() < 1e-12);
    }

    /// One 8×8 window worked by hand: x alternates 100 and 110 in columns (mean 105,
    /// variance 25), y is x plus 2 (the same variance, covariance 25, mean 107). The
    /// structure term is (50 + C2) / (50 + C2) = 1; the luminance term is
    /// (2·105·107 + C1) / (105² + 107² + C1).
    #[test]
    fn a_window_worked_by_hand() {
        let a = picture(8, 8, |x, _| if x % 2 == 0 { 100 } else { 110 });
        let b = picture(8, 8, |x, _| if x % 2 == 0 { 102 } else { 112 });
        let want = (2.0 * 105.0 * 107.0 + C1) / (105.0f64.powi(2) + 107.0f64.powi(2) + C1);
        assert!((grey_ssim(&a, &b).unwrap() - want).abs() < 1e-12);
    }

    /// A flat window against the same grey with one pixel off by 2: the formula gives
    /// nearly 1 (σ's are tiny next to C2); a score that sums rather than averages the
    /// deviations would give far less.
    #[test]
    fn a_grey_level_of_noise_in_a_flat_window_scores_near_one() {
        let a = picture(8, 8, |_, _| 128);
        let b = picture(8, 8, |x, y| if (x, y) == (3, 4) { 130 } else { 128 });
        // μy = 128 + 2/64; σy² = 4/64 − (2/64)²; σxy = 0.
        let mean_b = 128.0 + 2.0 / 64.0;
        let var_b = 4.0 / 64.0 - (2.0f64 / 64.0).powi(2);
        let want = ((2.0 * 128.0 * mean_b + C1) * C2)
            / ((128.0f64.powi(2) + mean_b * mean_b + C1) * (var_b + C2));
        let got = grey_ssim(&a, &b).unwrap();
        assert!((got - want).abs() < 1e-12, "{got} against {want}");
        assert!(got > 0.98, "{got}");
    }

    #[test]
    fn pictures_of_different_sizes_are_an_error() {
        let (a, b) = (picture(8, 8, |_, _| 0), picture(9, 8, |_, _| 0));
        assert!(grey_ssim(&a, &b).is_err());
    }
}
