//! Whether an action worked: the indicator that raised a task, on the task's region, in the
//! period that raised it and in a period of the same length after the task was resolved.
//!
//! Each side carries its 95% interval where the value has one (the caller computes it the
//! way the alerts do: Wilson for shares, Poisson for counts and rates). A change counts only
//! when the intervals do not overlap; a side resting on fewer records than the floor makes
//! the verdict `insufficient`, and a missing after-period makes it `pending`.

use serde::{Deserialize, Serialize};

/// One side of the comparison.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub value: Option<f64>,
    /// The 95% interval of the value, when it has one.
    pub low: Option<f64>,
    pub high: Option<f64>,
    /// Records the value rests on (`None`: a published statistic, no floor applies).
    pub support: Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Better beyond the uncertainty of both values.
    Improved,
    /// Within the uncertainty.
    Unchanged,
    /// Worse beyond the uncertainty.
    Worse,
    /// A value rests on fewer records than the floor, or is withheld.
    Insufficient,
    /// The period after the resolution has not ended yet (or has no data).
    Pending,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Improved => "improved",
            Outcome::Unchanged => "unchanged",
            Outcome::Worse => "worse",
            Outcome::Insufficient => "insufficient",
            Outcome::Pending => "pending",
        }
    }

    /// Whether a task may be verified as effective on this outcome.
    pub fn shows_effect(self) -> bool {
        self == Outcome::Improved
    }
}

/// The verdict on `before` and `after` (`None`: the after-period is not complete).
pub fn compare(
    before: &Comparison,
    after: Option<&Comparison>,
    higher_is_better: bool,
    min_support: f64,
) -> Outcome {
    let Some(after) = after else {
        return Outcome::Pending;
    };
    let enough = |c: &Comparison| c.value.is_some() && c.support.is_none_or(|s| s >= min_support);
    if !enough(before) || !enough(after) {
        return Outcome::Insufficient;
    }
    let (b, a) = (before.value.unwrap_or(0.0), after.value.unwrap_or(0.0));
    let (b_low, b_high) = (before.low.unwrap_or(b), before.high.unwrap_or(b));
    let (a_low, a_high) = (after.low.unwrap_or(a), after.high.unwrap_or(a));
    let higher = a_low > b_high;
    let lower = a_high < b_low;
    match (higher, lower, higher_is_better) {
        (true, _, true) | (_, true, false) => Outcome::Improved,
        (true, _, false) | (_, true, true) => Outcome::Worse,
        _ => Outcome::Unchanged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(value: f64, low: f64, high: f64, support: f64) -> Comparison {
        Comparison {
            value: Some(value),
            low: Some(low),
            high: Some(high),
            support: Some(support),
        }
    }

    #[test]
    fn only_changes_beyond_both_intervals_count() {
        let before = side(0.70, 0.65, 0.75, 300.0);
        let better = side(0.85, 0.80, 0.89, 300.0);
        let overlapping = side(0.74, 0.69, 0.79, 300.0);
        assert_eq!(
            compare(&before, Some(&better), true, 30.0),
            Outcome::Improved
        );
        assert_eq!(compare(&before, Some(&better), false, 30.0), Outcome::Worse);
        assert_eq!(
            compare(&before, Some(&overlapping), true, 30.0),
            Outcome::Unchanged
        );
        assert_eq!(
            compare(&better, Some(&before), false, 30.0),
            Outcome::Improved
        );
    }

    #[test]
    fn too_few_records_or_no_after_period_give_no_verdict() {
        let before = side(0.70, 0.65, 0.75, 300.0);
        let thin = side(0.95, 0.90, 0.99, 12.0);
        assert_eq!(
            compare(&before, Some(&thin), true, 30.0),
            Outcome::Insufficient
        );
        assert_eq!(compare(&before, None, true, 30.0), Outcome::Pending);
        let withheld = Comparison {
            value: None,
            low: None,
            high: None,
            support: None,
        };
        assert_eq!(
            compare(&before, Some(&withheld), true, 30.0),
            Outcome::Insufficient
        );
    }
}
