//! Risks and trends: threshold breaches and anomalies in the latest period, the child regions
//! that drive them, and forecasts to each target year with an on-track verdict.
//!
//! An alert is raised per region at one level (counties by default) for the latest complete
//! period of the finest of month, quarter and year that the indicator allows:
//! - **threshold**: the value is past the indicator's warning or critical threshold;
//! - **anomaly** (always a warning): the change against the same period last year is far
//!   worse than the changes of the eleven periods before, measured by a robust score
//!   (median and median absolute deviation of those seasonal differences), so a region is
//!   compared with its own history, season removed.
//!
//! Values resting on fewer than `min_support` records (the denominator of ratios and means,
//! the count of counts and rates) raise nothing: small numbers swing by chance.

use crate::{AnalyticsError, Engine, IndicatorValue, Result};
use chrono::{Datelike, Days, NaiveDate};
use indicators::{Direction, Grain, Indicator, IndicatorQuery, Kind, Level, Period, Status};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

#[derive(Clone, Debug, PartialEq)]
pub struct AlertQuery {
    /// The level whose regions are checked.
    pub level: Level,
    /// The grain; by default the finest of month, quarter, year each indicator allows.
    pub grain: Option<Grain>,
    /// The period checked; by default the latest complete one of each indicator.
    pub period: Option<String>,
    /// Only regions in this subtree.
    pub region: Option<String>,
    /// Only this indicator.
    pub indicator: Option<String>,
    /// Fewest records a value must rest on to raise an alert.
    pub min_support: f64,
    /// Robust score from which a worsening is an anomaly.
    pub anomaly_score: f64,
}

impl Default for AlertQuery {
    fn default() -> Self {
        AlertQuery {
            level: Level::County,
            grain: None,
            period: None,
            region: None,
            indicator: None,
            min_support: 30.0,
            anomaly_score: 3.5,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    Threshold,
    Anomaly,
}

/// A child region and how much it pulls its parent's value the wrong way.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Driver {
    pub region_code: String,
    pub region_name: String,
    pub value: Option<f64>,
    pub numerator: f64,
    pub denominator: Option<f64>,
    /// For ratios, means and rates: the child's weight times its distance from the parent's
    /// value, in the worse direction (in the value's unit). For counts and sums: the child's
    /// share of the parent's value.
    pub contribution: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    pub indicator: String,
    pub name_zh: String,
    pub name_en: String,
    pub kind: AlertKind,
    pub severity: Status,
    pub region_code: String,
    pub region_name: String,
    pub level: Level,
    pub grain: Grain,
    pub period: String,
    pub value: f64,
    pub unit: String,
    /// The threshold passed (threshold alerts).
    pub threshold: Option<f64>,
    /// What the history expected (anomaly alerts).
    pub expected: Option<f64>,
    /// The robust score in the worse direction (anomaly alerts).
    pub score: Option<f64>,
    /// How many records the value rests on.
    pub support: f64,
    pub message: String,
    pub drivers: Vec<Driver>,
}

/// How many records a value rests on.
fn support(indicator: &Indicator, v: &IndicatorValue) -> f64 {
    match indicator.kind {
        Kind::Ratio | Kind::Mean => v.denominator.unwrap_or(0.0),
        Kind::Count | Kind::Sum | Kind::DistinctCount | Kind::Rate => v.numerator,
        Kind::Derived => f64::INFINITY,
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The robust score of `latest` against `history`, positive when `latest` is higher; `None`
/// with fewer than six points or no spread.
pub(crate) fn robust_score(latest: f64, history: &[f64]) -> Option<(f64, f64)> {
    if history.len() < 6 {
        return None;
    }
    let mut h = history.to_vec();
    let centre = median(&mut h);
    let mut deviations: Vec<f64> = history.iter().map(|x| (x - centre).abs()).collect();
    let mad = median(&mut deviations) * 1.4826;
    if mad <= f64::EPSILON * centre.abs().max(1.0) {
        return None;
    }
    Some(((latest - centre) / mad, centre))
}

/// The newest period of `grain` that had ended by `through` (the last day with data).
pub(crate) fn latest_complete(grain: Grain, through: NaiveDate) -> Period {
    let p = Period::containing(grain, through);
    if p.end() > through + Days::new(1) {
        p.previous()
    } else {
        p
    }
}

fn child_level(level: Level) -> Option<Level> {
    Level::ALL.into_iter().find(|l| l.parent() == Some(level))
}

impl Engine {
    /// Threshold breaches and anomalies of every indicator (or one) at a level, worst first.
    pub fn alerts(&self, q: &AlertQuery) -> Result<Vec<Alert>> {
        let mut out = Vec::new();
        let catalogue = self.catalogue.clone();
        for ind in &catalogue.indicators {
            if q.indicator.as_ref().is_some_and(|id| *id != ind.id) || !ind.levels.contains(&q.level)
            {
                continue;
            }
            out.extend(self.alerts_of(ind, q)?);
        }
        if let Some(id) = &q.indicator
            && catalogue.get(id).is_none()
        {
            return Err(AnalyticsError::UnknownIndicator(id.clone()));
        }
        out.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(a.kind.cmp(&b.kind))
                .then(a.indicator.cmp(&b.indicator))
                .then(a.region_code.cmp(&b.region_code))
        });
        Ok(out)
    }

    fn alerts_of(&self, ind: &Indicator, q: &AlertQuery) -> Result<Vec<Alert>> {
        let grain = match q.grain {
            Some(g) if ind.grains.contains(&g) => g,
            Some(_) => return Ok(Vec::new()),
            None => match [Grain::Month, Grain::Quarter, Grain::Year]
                .into_iter()
                .find(|g| ind.grains.contains(g))
            {
                Some(g) => g,
                None => return Ok(Vec::new()),
            },
        };
        let period = match &q.period {
            Some(label) => Period::parse(grain, label).map_err(|source| {
                indicators::QueryError::Period {
                    parameter: "period",
                    source,
                }
            })?,
            None => match self.recorded_through(ind)? {
                Some(through) => latest_complete(grain, through),
                None => return Ok(Vec::new()),
            },
        };
        let mut first = period;
        for _ in 0..11 {
            first = first.previous();
        }
        let query = IndicatorQuery {
            level: q.level,
            grain,
            from: Some(first.label()),
            to: Some(period.label()),
            region: q.region.clone(),
        };
        let values = self.values(ind, &query)?;
        let label = period.label();
        let mut by_region: BTreeMap<&str, Vec<&IndicatorValue>> = BTreeMap::new();
        for v in &values {
            by_region.entry(&v.region_code).or_default().push(v);
        }
        let mut alerts = Vec::new();
        for (region, series) in by_region {
            let Some(latest) = series.iter().find(|v| v.period == label) else {
                continue;
            };
            let (Some(value), n) = (latest.value, support(ind, latest)) else {
                continue;
            };
            if n < q.min_support {
                continue;
            }
            let base = |kind, severity, message: String| Alert {
                indicator: ind.id.clone(),
                name_zh: ind.name_zh.clone(),
                name_en: ind.name_en.clone(),
                kind,
                severity,
                region_code: region.to_owned(),
                region_name: latest.region_name.clone(),
                level: q.level,
                grain,
                period: label.clone(),
                value,
                unit: ind.unit.clone(),
                threshold: None,
                expected: None,
                score: None,
                support: n,
                message,
                drivers: Vec::new(),
            };
            if matches!(latest.status, Status::Warning | Status::Critical)
                && let Some(t) = ind.thresholds
            {
                let limit = if latest.status == Status::Critical {
                    t.critical
                } else {
                    t.warning
                };
                let mut a = base(
                    AlertKind::Threshold,
                    latest.status,
                    format!(
                        "{} {} is {value:.4} {}, past the {} threshold {limit}",
                        latest.region_name,
                        ind.name_zh,
                        ind.unit,
                        latest.status.as_str()
                    ),
                );
                a.threshold = Some(limit);
                alerts.push(a);
            }
            // Seasonal differences: this period against the same period last year.
            let diffs: Vec<(&str, f64)> = series
                .iter()
                .filter_map(|v| Some((v.period.as_str(), v.change_vs_last_year?)))
                .collect();
            let latest_diff = diffs.iter().find(|(p, _)| *p == label).map(|(_, d)| *d);
            let history: Vec<f64> = diffs
                .iter()
                .filter(|(p, _)| *p != label)
                .map(|(_, d)| *d)
                .collect();
            if let (Some(d), Some(last_year)) = (latest_diff, latest.last_year_value)
                && let Some((score, centre)) = robust_score(d, &history)
            {
                let worse = match ind.direction {
                    Direction::HigherIsBetter => -score,
                    Direction::LowerIsBetter => score,
                };
                if worse >= q.anomaly_score {
                    let expected = last_year + centre;
                    let mut a = base(
                        AlertKind::Anomaly,
                        Status::Warning,
                        format!(
                            "{} {} is {value:.4} {}, where its history expects {expected:.4} (robust score {worse:.1})",
                            latest.region_name, ind.name_zh, ind.unit
                        ),
                    );
                    a.expected = Some(expected);
                    a.score = Some(worse);
                    alerts.push(a);
                }
            }
        }
        if !alerts.is_empty() {
            self.add_drivers(ind, q, grain, &label, &values, &mut alerts)?;
        }
        Ok(alerts)
    }

    /// Fills each alert's drivers: the child regions that pull its value the wrong way.
    fn add_drivers(
        &self,
        ind: &Indicator,
        q: &AlertQuery,
        grain: Grain,
        period: &str,
        parents: &[IndicatorValue],
        alerts: &mut [Alert],
    ) -> Result<()> {
        let Some(child) = child_level(q.level).filter(|l| ind.levels.contains(l)) else {
            return Ok(());
        };
        let children = self.values(
            ind,
            &IndicatorQuery {
                level: child,
                grain,
                from: Some(period.to_owned()),
                to: Some(period.to_owned()),
                region: q.region.clone(),
            },
        )?;
        let parent_of: HashMap<&str, &IndicatorValue> = parents
            .iter()
            .filter(|p| p.period == period)
            .map(|p| (p.region_code.as_str(), p))
            .collect();
        let worse_sign = match ind.direction {
            Direction::HigherIsBetter => -1.0,
            Direction::LowerIsBetter => 1.0,
        };
        for alert in alerts.iter_mut() {
            let Some(parent) = parent_of.get(alert.region_code.as_str()) else {
                continue;
            };
            let parent_value = parent.value.unwrap_or(0.0);
            let mut drivers: Vec<Driver> = children
                .iter()
                .filter(|c| {
                    indicators::level::ancestor(&c.region_code, q.level)
                        == Some(alert.region_code.as_str())
                })
                .filter_map(|c| {
                    let value = c.value?;
                    let contribution = match ind.kind {
                        Kind::Count | Kind::Sum | Kind::DistinctCount => {
                            if parent_value == 0.0 {
                                return None;
                            }
                            value / parent_value
                        }
                        Kind::Derived => (value - parent_value) * worse_sign,
                        Kind::Ratio | Kind::Mean | Kind::Rate => {
                            let weight = match (c.denominator, parent.denominator) {
                                (Some(d), Some(pd)) if pd > 0.0 => d / pd,
                                _ => return None,
                            };
                            weight * (value - parent_value) * worse_sign
                        }
                    };
                    (contribution > 0.0).then(|| Driver {
                        region_code: c.region_code.clone(),
                        region_name: c.region_name.clone(),
                        value: c.value,
                        numerator: c.numerator,
                        denominator: c.denominator,
                        contribution,
                    })
                })
                .collect();
            drivers.sort_by(|a, b| b.contribution.total_cmp(&a.contribution));
            drivers.truncate(5);
            alert.drivers = drivers;
        }
        Ok(())
    }
}

/// What trends are asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct TrendQuery {
    /// The region whose progress is forecast (the province `32` by default).
    pub region: String,
    /// Pretend the data ends on this day (to see what a forecast said back then).
    pub as_of: Option<NaiveDate>,
    /// Only this indicator.
    pub indicator: Option<String>,
}

impl Default for TrendQuery {
    fn default() -> Self {
        TrendQuery {
            region: "32".into(),
            as_of: None,
            indicator: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The target year is over and the target was met.
    Achieved,
    /// The target year is over and the target was missed.
    Missed,
    /// The forecast for the end of the target year meets the target.
    OnTrack,
    /// The forecast falls short.
    OffTrack,
    /// Too few periods to forecast.
    NoData,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Trend {
    pub indicator: String,
    pub name_zh: String,
    pub name_en: String,
    pub region_code: String,
    pub region_name: String,
    pub target: f64,
    pub target_year: i32,
    pub target_source: String,
    pub grain: Grain,
    /// Periods the forecast rests on.
    pub periods: usize,
    pub latest_period: Option<String>,
    pub latest_value: Option<f64>,
    /// Least-squares slope over the periods used, per year.
    pub slope_per_year: Option<f64>,
    /// The value forecast for (or measured in) the target year.
    pub forecast: Option<f64>,
    pub verdict: Verdict,
}

/// Fraction of a year at the middle of a period, e.g. 2024.04 for January 2024.
fn year_fraction(p: Period) -> f64 {
    let mid = p.start + Days::new(((p.end() - p.start).num_days() / 2).max(0) as u64);
    let days_in_year = if mid.leap_year() { 366.0 } else { 365.0 };
    mid.year() as f64 + f64::from(mid.ordinal0()) / days_in_year
}

/// Least-squares line through `(x, y)`: (slope, intercept); `None` for fewer than 3 points
/// or no spread in x.
pub(crate) fn fit_line(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    if points.len() < 3 {
        return None;
    }
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let slope = sxy / sxx;
    Some((slope, my - slope * mx))
}

fn meets(ind: &Indicator, value: f64, target: f64) -> bool {
    match ind.direction {
        Direction::HigherIsBetter => value >= target,
        Direction::LowerIsBetter => value <= target,
    }
}

impl Engine {
    /// A forecast to the target year for every indicator with a target (or one).
    pub fn trends(&self, q: &TrendQuery) -> Result<Vec<Trend>> {
        let level = indicators::region_level(&q.region).map_err(indicators::QueryError::Region)?;
        let catalogue = self.catalogue.clone();
        if let Some(id) = &q.indicator
            && catalogue.get(id).is_none()
        {
            return Err(AnalyticsError::UnknownIndicator(id.clone()));
        }
        let mut out = Vec::new();
        for ind in &catalogue.indicators {
            let Some(target) = &ind.target else { continue };
            if q.indicator.as_ref().is_some_and(|id| *id != ind.id) || !ind.levels.contains(&level)
            {
                continue;
            }
            let Some(grain) = [Grain::Month, Grain::Quarter, Grain::Year]
                .into_iter()
                .find(|g| ind.grains.contains(g))
            else {
                continue;
            };
            let through = match (self.recorded_through(ind)?, q.as_of) {
                (Some(t), Some(a)) => Some(t.min(a)),
                (t, _) => t,
            };
            let values = self.values(
                ind,
                &IndicatorQuery {
                    level,
                    grain,
                    from: None,
                    to: None,
                    region: Some(q.region.clone()),
                },
            )?;
            let complete: Vec<(Period, f64)> = values
                .iter()
                .filter_map(|v| {
                    let p = Period::parse(grain, &v.period).ok()?;
                    let ended = through.is_some_and(|t| p.end() <= t + Days::new(1));
                    Some((p, v.value?)).filter(|_| ended)
                })
                .collect();
            let region_name = self
                .regions()
                .get(&q.region)
                .map(|r| r.name.clone())
                .unwrap_or_default();
            let mut trend = Trend {
                indicator: ind.id.clone(),
                name_zh: ind.name_zh.clone(),
                name_en: ind.name_en.clone(),
                region_code: q.region.clone(),
                region_name,
                target: target.value,
                target_year: target.year,
                target_source: target.source.clone(),
                grain,
                periods: 0,
                latest_period: complete.last().map(|(p, _)| p.label()),
                latest_value: complete.last().map(|(_, v)| *v),
                slope_per_year: None,
                forecast: None,
                verdict: Verdict::NoData,
            };
            let year_end = NaiveDate::from_ymd_opt(target.year, 12, 31).expect("valid year");
            let year_over = through.is_some_and(|t| t >= year_end);
            if year_over {
                // Measured, not forecast: the target year's own value.
                let year_values = self.values(
                    ind,
                    &IndicatorQuery {
                        level,
                        grain: if ind.grains.contains(&Grain::Year) {
                            Grain::Year
                        } else {
                            grain
                        },
                        from: None,
                        to: None,
                        region: Some(q.region.clone()),
                    },
                )?;
                let measured = year_values
                    .iter()
                    .filter(|v| v.period.starts_with(&target.year.to_string()))
                    .filter_map(|v| v.value)
                    .next_back();
                trend.forecast = measured;
                trend.periods = 1;
                trend.verdict = match measured {
                    Some(v) if meets(ind, v, target.value) => Verdict::Achieved,
                    Some(_) => Verdict::Missed,
                    None => Verdict::NoData,
                };
            } else {
                let window = match grain {
                    Grain::Month => 12,
                    Grain::Quarter => 8,
                    _ => 4,
                };
                let recent = &complete[complete.len().saturating_sub(window)..];
                let points: Vec<(f64, f64)> =
                    recent.iter().map(|(p, v)| (year_fraction(*p), *v)).collect();
                trend.periods = points.len();
                if let Some((slope, intercept)) = fit_line(&points) {
                    let last = Period::containing(grain, year_end);
                    let mut forecast = slope * year_fraction(last) + intercept;
                    if ind.kind == Kind::Ratio {
                        forecast = forecast.clamp(0.0, 1.0);
                    }
                    trend.slope_per_year = Some(slope);
                    trend.forecast = Some(forecast);
                    trend.verdict = if meets(ind, forecast, target.value) {
                        Verdict::OnTrack
                    } else {
                        Verdict::OffTrack
                    };
                }
            }
            out.push(trend);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn robust_score_ignores_one_outlier_in_the_history() {
        let history = [0.01, -0.02, 0.0, 0.015, -0.01, 0.005, 0.5];
        let (score, centre) = robust_score(-0.3, &history).unwrap();
        assert!(centre.abs() < 0.02, "{centre}");
        assert!(score < -10.0, "{score}");
        assert!(robust_score(1.0, &history[..5]).is_none(), "too short");
        assert!(robust_score(1.0, &[0.2; 8]).is_none(), "no spread");
    }

    #[test]
    fn line_fit_recovers_a_trend() {
        let points: Vec<(f64, f64)> = (0..8).map(|i| (2024.0 + i as f64 / 4.0, 0.5 + 0.1 * i as f64 / 4.0)).collect();
        let (slope, intercept) = fit_line(&points).unwrap();
        assert!((slope - 0.1).abs() < 1e-9, "{slope}");
        assert!((slope * 2025.875 + intercept - 0.6875).abs() < 1e-9);
        assert!(fit_line(&points[..2]).is_none());
    }

    #[test]
    fn latest_complete_period_waits_for_the_period_to_end() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        assert_eq!(latest_complete(Grain::Month, d(2025, 12, 31)).label(), "2025-12");
        assert_eq!(latest_complete(Grain::Month, d(2025, 12, 30)).label(), "2025-11");
        assert_eq!(latest_complete(Grain::Quarter, d(2025, 11, 15)).label(), "2025-Q3");
    }
}
