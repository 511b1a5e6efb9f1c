//! Colour ramps and legends for indicator overlays.
//!
//! Two kinds, both respecting the indicator's direction:
//! - diverging (red through yellow to green, worse to better): five classes; with a target,
//!   symmetric around it (the middle, yellow class straddles the target), else equal intervals
//!   between the smallest and largest value shown;
//! - sequential (light to dark yellow-orange-red, darker is worse): five equal intervals, for
//!   indicators without a target and for densities.
//!
//! So for "lower is better" indicators high values are red or dark. Regions without a value
//! are grey.

use crate::OverlaySpec;

/// Five classes, best (light) to worst (dark) (ColorBrewer YlOrRd, sRGB).
const SEQUENTIAL_BEST_TO_WORST: [[u8; 3]; 5] = [
    [255, 255, 178],
    [254, 204, 92],
    [253, 141, 60],
    [240, 59, 32],
    [189, 0, 38],
];

/// Five classes, worst to best (ColorBrewer RdYlGn, sRGB).
const WORST_TO_BEST: [[u8; 3]; 5] = [
    [215, 48, 39],
    [252, 141, 89],
    [254, 224, 139],
    [145, 207, 96],
    [26, 152, 80],
];
pub const NO_DATA_SRGB: [f32; 4] = [0.55, 0.55, 0.58, 1.0];

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ramp {
    pub higher_is_better: bool,
    /// Sequential (light to dark) rather than diverging (red to green).
    pub sequential: bool,
    /// The value the diverging ramp centres on.
    pub target: Option<f64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LegendEntry {
    pub colour_srgb: [f32; 4],
    pub label: String,
}

/// Class breaks, colours and labels, lowest value first.
#[derive(Clone, Debug, PartialEq)]
pub struct Legend {
    pub title: String,
    pub subtitle: String,
    /// Lower bound of each class, lowest first; the last class ends at `max`.
    pub lower_bounds: Vec<f64>,
    pub max: f64,
    pub entries: Vec<LegendEntry>,
    ramp: Ramp,
}

fn rgb(c: [u8; 3]) -> [f32; 4] {
    [
        c[0] as f32 / 255.0,
        c[1] as f32 / 255.0,
        c[2] as f32 / 255.0,
        1.0,
    ]
}

pub fn format_value(v: f64, unit: &str) -> String {
    if unit == "ratio" {
        format!("{:.1}%", v * 100.0)
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

impl Ramp {
    /// A diverging ramp with equal intervals.
    pub fn new(higher_is_better: bool) -> Ramp {
        Ramp {
            higher_is_better,
            sequential: false,
            target: None,
        }
    }

    /// The ramp a scene asks for: `Auto` is diverging around the target when there is one,
    /// else sequential.
    pub fn for_overlay(
        kind: scenes::RampKind,
        higher_is_better: bool,
        target: Option<f64>,
    ) -> Ramp {
        let target = target.filter(|t| t.is_finite());
        let sequential = match kind {
            scenes::RampKind::Sequential => true,
            scenes::RampKind::Diverging => false,
            scenes::RampKind::Auto => target.is_none(),
        };
        Ramp {
            higher_is_better,
            sequential,
            target: if sequential { None } else { target },
        }
    }

    /// Colour of class `k` of `n` counted from the lowest values.
    fn class_colour(&self, k: usize, n: usize) -> [f32; 4] {
        let worst_to_best: [[u8; 3]; 5] = if self.sequential {
            let mut c = SEQUENTIAL_BEST_TO_WORST;
            c.reverse();
            c
        } else {
            WORST_TO_BEST
        };
        if n == 1 {
            return rgb(worst_to_best[worst_to_best.len() / 2]);
        }
        let rank = if self.higher_is_better { k } else { n - 1 - k };
        rgb(worst_to_best[rank * (worst_to_best.len() - 1) / (n - 1)])
    }

    pub fn legend(&self, overlay: &OverlaySpec, values: impl Iterator<Item = f64>) -> Legend {
        let finite: Vec<f64> = values.filter(|v| v.is_finite()).collect();
        let min = finite.iter().copied().fold(f64::INFINITY, f64::min);
        let max = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let n = if finite.is_empty() {
            0
        } else if max > min {
            WORST_TO_BEST.len()
        } else {
            1
        };
        // The lower bound of each class, and where the last class ends.
        let (lower_bounds, last_end): (Vec<f64>, f64) = match self.target {
            // Symmetric around the target: the middle class is target ± half a step, and the
            // classes reach as far above the target as below it, whichever side the data
            // spreads to (so the last class ends at target + 2.5 steps, not at the data's
            // maximum, which may lie below the last class's lower bound).
            Some(t) if n > 1 => {
                let span = (max - t).abs().max((t - min).abs()).max(1e-12);
                let step = span / 2.5;
                (
                    (0..n).map(|k| t + step * (k as f64 - 2.5)).collect(),
                    t + step * 2.5,
                )
            }
            _ => {
                let step = if n > 1 { (max - min) / n as f64 } else { 0.0 };
                ((0..n).map(|k| min + step * k as f64).collect(), max)
            }
        };
        let mut entries: Vec<LegendEntry> = lower_bounds
            .iter()
            .enumerate()
            .map(|(k, lo)| {
                let hi = if k + 1 < n {
                    lower_bounds[k + 1]
                } else {
                    last_end
                };
                let label = if n == 1 {
                    format_value(*lo, &overlay.unit)
                } else {
                    format!(
                        "{} - {}",
                        format_value(*lo, &overlay.unit),
                        format_value(hi, &overlay.unit)
                    )
                };
                LegendEntry {
                    colour_srgb: self.class_colour(k, n),
                    label,
                }
            })
            .collect();
        entries.push(LegendEntry {
            colour_srgb: NO_DATA_SRGB,
            label: "无数据 no data".into(),
        });
        Legend {
            title: overlay.title.clone(),
            subtitle: format!(
                "{} | {} | {}{}",
                overlay.period,
                if overlay.unit == "ratio" {
                    "%"
                } else {
                    overlay.unit.as_str()
                },
                if self.higher_is_better {
                    "higher is better"
                } else {
                    "lower is better"
                },
                match self.target {
                    Some(t) => format!(" | 目标 target {}", format_value(t, &overlay.unit)),
                    None => String::new(),
                }
            ),
            lower_bounds,
            max,
            entries,
            ramp: *self,
        }
    }
}

impl Legend {
    /// The class colour of a value, grey for none.
    pub fn colour_of(&self, value: Option<f64>) -> [f32; 4] {
        let Some(v) = value.filter(|v| v.is_finite()) else {
            return NO_DATA_SRGB;
        };
        let n = self.lower_bounds.len();
        if n == 0 {
            return NO_DATA_SRGB;
        }
        let k = self
            .lower_bounds
            .iter()
            .rposition(|lo| v >= *lo)
            .unwrap_or(0);
        self.ramp.class_colour(k, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(unit: &str) -> OverlaySpec {
        OverlaySpec {
            title: "t".into(),
            unit: unit.into(),
            period: "2025".into(),
            higher_is_better: true,
            target: None,
            ramp: scenes::RampKind::Auto,
        }
    }

    #[test]
    fn a_target_centres_the_diverging_ramp() {
        let r = Ramp::for_overlay(scenes::RampKind::Auto, true, Some(0.8));
        let l = r.legend(&spec("ratio"), [0.6, 0.7, 0.85].into_iter());
        // Span 0.2 around 0.8 in steps of 0.08: the yellow middle class is 0.76..0.84.
        let bounds: Vec<String> = l.lower_bounds.iter().map(|b| format!("{b:.2}")).collect();
        assert_eq!(bounds, ["0.60", "0.68", "0.76", "0.84", "0.92"]);
        assert_eq!(l.colour_of(Some(0.80)), rgb(WORST_TO_BEST[2]));
        assert_eq!(l.colour_of(Some(0.60)), rgb(WORST_TO_BEST[0]));
        assert!(l.subtitle.contains("target 80.0%"), "{}", l.subtitle);
        // Without a target, auto is sequential: darker is worse.
        let s = Ramp::for_overlay(scenes::RampKind::Auto, false, None);
        let l = s.legend(&spec("h"), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0].into_iter());
        assert_eq!(l.colour_of(Some(6.0)), rgb(SEQUENTIAL_BEST_TO_WORST[4]));
        assert_eq!(l.colour_of(Some(1.0)), rgb(SEQUENTIAL_BEST_TO_WORST[0]));
    }

    #[test]
    fn legend_classes_run_upwards_whichever_side_of_the_target_the_data_lies() {
        let spec = OverlaySpec {
            title: "t".into(),
            unit: "ratio".into(),
            period: "2025".into(),
            higher_is_better: true,
            target: Some(0.9),
            ramp: scenes::RampKind::Auto,
        };
        let ramp = Ramp::for_overlay(scenes::RampKind::Auto, true, Some(0.9));
        // Every value below the target, as when a district misses it everywhere.
        let legend = ramp.legend(&spec, [0.70, 0.75, 0.80, 0.832].into_iter());
        for e in legend.entries.iter().filter(|e| e.label.contains(" - ")) {
            let (lo, hi) = e.label.split_once(" - ").unwrap();
            let pct = |s: &str| s.trim_end_matches('%').parse::<f64>().unwrap();
            assert!(pct(lo) < pct(hi), "{}", e.label);
        }
    }

    #[test]
    fn classes_follow_direction() {
        let values = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0];
        let good = Ramp::new(true).legend(&spec("ratio"), values.iter().copied());
        let bad = Ramp::new(false).legend(&spec("ratio"), values.iter().copied());
        let red = rgb(WORST_TO_BEST[0]);
        let green = rgb(WORST_TO_BEST[4]);
        assert_eq!(good.colour_of(Some(0.5)), red);
        assert_eq!(good.colour_of(Some(1.0)), green);
        assert_eq!(bad.colour_of(Some(0.5)), green);
        assert_eq!(bad.colour_of(Some(1.0)), red);
        assert_eq!(good.colour_of(None), NO_DATA_SRGB);
        assert_eq!(good.entries.len(), 6);
        assert_eq!(good.entries[0].label, "50.0% - 60.0%");
        assert_eq!(good.entries[5].label, "无数据 no data");
    }

    #[test]
    fn a_single_value_gets_one_class() {
        let l = Ramp::new(true).legend(&spec("h"), [3.0, 3.0].into_iter());
        assert_eq!(l.entries.len(), 2);
        assert_eq!(l.colour_of(Some(3.0)), rgb(WORST_TO_BEST[2]));
        let empty = Ramp::new(true).legend(&spec("h"), std::iter::empty());
        assert_eq!(empty.colour_of(Some(1.0)), NO_DATA_SRGB);
    }
}
