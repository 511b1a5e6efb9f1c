//! Risks and trends: threshold breaches and anomalies in the latest period, the child regions
//! that drive them, and forecasts to each target year with an on-track verdict.
//!
//! Alerts are raised per region at one level (counties by default):
//! - **threshold**: in the latest complete quarter (or the indicator's finest grain above it),
//!   the value is past the indicator's warning or critical threshold; a quarter is long
//!   enough for a county's counts to settle, so chance rarely crosses a threshold;
//! - **anomaly** (always a warning): in the latest complete month, the change against the
//!   same month last year is far worse than the changes of the eleven months before, measured
//!   by a robust score (median and median absolute deviation of those seasonal differences),
//!   so a region is compared with its own history, season removed.
//!
//! A ratio breaches a threshold only when the whole 95% Wilson interval of its share is past
//! it, so chance in a small county does not raise a false alarm. An explicit grain applies to
//! both kinds of alert. Values resting on fewer than `min_support` records (their support, as
//! `policy` defines it; audiences that may not see small cells cannot lower it below
//! [`crate::ALERT_FLOOR`]) raise nothing: small numbers swing by chance. Alerts are made from
//! the values the audience sees, so a withheld cell raises no alert that would show it.

use crate::{AnalyticsError, Audience, Engine, IndicatorValue, Result};
use chrono::{Datelike, Days, NaiveDate};
use indicators::{Direction, Grain, Indicator, IndicatorQuery, Kind, Level, Period, Status};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

#[derive(Clone, Debug, PartialEq)]
pub struct AlertQuery {
    /// The level whose regions are checked.
    pub level: Level,
    /// The grain; by default quarters for thresholds and months for anomalies.
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
            min_support: crate::ALERT_FLOOR,
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

/// How many records a value rests on: its support (see `policy`); published statistics have
/// no floor, and a withheld cell none at all.
fn support(v: &IndicatorValue) -> f64 {
    match (v.suppressed, v.support) {
        (true, _) => 0.0,
        (false, Some(records)) => records,
        (false, None) => f64::INFINITY,
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

fn child_level(level: Level) -> Option<Level> {
    Level::ALL.into_iter().find(|l| l.parent() == Some(level))
}

fn new_alert(
    ind: &Indicator,
    q: &AlertQuery,
    grain: Grain,
    latest: &IndicatorValue,
    kind: AlertKind,
    severity: Status,
    message: String,
) -> Alert {
    Alert {
        indicator: ind.id.clone(),
        name_zh: ind.name_zh.clone(),
        name_en: ind.name_en.clone(),
        kind,
        severity,
        region_code: latest.region_code.clone(),
        region_name: latest.region_name.clone(),
        level: q.level,
        grain,
        period: latest.period.clone(),
        value: latest.value.unwrap_or(f64::NAN),
        unit: ind.unit.clone(),
        threshold: None,
        expected: None,
        score: None,
        support: support(latest),
        message,
        drivers: Vec::new(),
    }
}

/// The 95% Wilson score interval of a share of `n` successes in `d` trials.
pub(crate) fn wilson(n: f64, d: f64) -> (f64, f64) {
    const Z: f64 = 1.96;
    if d <= 0.0 {
        return (0.0, 1.0);
    }
    let p = n / d;
    let denom = 1.0 + Z * Z / d;
    let centre = (p + Z * Z / (2.0 * d)) / denom;
    let half = Z * (p * (1.0 - p) / d + Z * Z / (4.0 * d * d)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// The status a value has even at the most favourable end of its uncertainty: for ratios,
/// the end of the 95% Wilson interval nearest to "ok", so that a few unlucky records in a
/// small county do not read as a breach; other kinds as they are.
fn confident_status(ind: &Indicator, v: &IndicatorValue) -> Status {
    match (ind.kind, v.denominator) {
        (Kind::Ratio, Some(d)) => {
            let (lo, hi) = wilson(v.numerator, d);
            let favourable = match ind.direction {
                Direction::HigherIsBetter => hi,
                Direction::LowerIsBetter => lo,
            };
            ind.status(Some(favourable))
        }
        _ => v.status,
    }
}

/// Regions whose value in `period` is past a threshold, on enough records.
fn threshold_alerts(
    ind: &Indicator,
    q: &AlertQuery,
    grain: Grain,
    period: &str,
    values: &[IndicatorValue],
) -> Vec<Alert> {
    let Some(t) = ind.thresholds else {
        return Vec::new();
    };
    values
        .iter()
        .filter(|v| v.period == period && support(v) >= q.min_support)
        .filter_map(|v| {
            let value = v.value?;
            let severity = confident_status(ind, v);
            let limit = match severity {
                Status::Critical => t.critical,
                Status::Warning => t.warning,
                Status::Ok | Status::NoData => return None,
            };
            let mut a = new_alert(
                ind,
                q,
                grain,
                v,
                AlertKind::Threshold,
                severity,
                format!(
                    "{} {} is {value:.4} {} in {period}, past the {} threshold {limit}",
                    v.region_name,
                    ind.name_zh,
                    ind.unit,
                    severity.as_str()
                ),
            );
            a.threshold = Some(limit);
            Some(a)
        })
        .collect()
}

/// Regions whose change against the same period last year is far worse in `period` than in
/// the periods before it.
fn anomaly_alerts(
    ind: &Indicator,
    q: &AlertQuery,
    grain: Grain,
    period: &str,
    values: &[IndicatorValue],
) -> Vec<Alert> {
    let mut by_region: BTreeMap<&str, Vec<&IndicatorValue>> = BTreeMap::new();
    for v in values {
        by_region.entry(&v.region_code).or_default().push(v);
    }
    let mut out = Vec::new();
    for series in by_region.values() {
        let Some(latest) = series.iter().find(|v| v.period == period) else {
            continue;
        };
        let (Some(value), Some(d), Some(last_year)) = (
            latest.value,
            latest.change_vs_last_year,
            latest.last_year_value,
        ) else {
            continue;
        };
        if support(latest) < q.min_support {
            continue;
        }
        let history: Vec<f64> = series
            .iter()
            .filter(|v| v.period != period)
            .filter_map(|v| v.change_vs_last_year)
            .collect();
        let Some((score, centre)) = robust_score(d, &history) else {
            continue;
        };
        let worse = match ind.direction {
            Direction::HigherIsBetter => -score,
            Direction::LowerIsBetter => score,
        };
        if worse < q.anomaly_score {
            continue;
        }
        let expected = last_year + centre;
        let mut a = new_alert(
            ind,
            q,
            grain,
            latest,
            AlertKind::Anomaly,
            Status::Warning,
            format!(
                "{} {} is {value:.4} {} in {period}, where its history expects {expected:.4} (robust score {worse:.1})",
                latest.region_name, ind.name_zh, ind.unit
            ),
        );
        a.expected = Some(expected);
        a.score = Some(worse);
        out.push(a);
    }
    out
}

impl Engine {
    /// Threshold breaches and anomalies of every indicator (or one) at a level, worst first,
    /// as `audience` may see them: in its scope, from the values it sees, on at least its
    /// alert floor of records.
    pub fn alerts(&self, audience: &Audience, q: &AlertQuery) -> Result<Vec<Alert>> {
        self.consistent(|| self.alerts_now(audience, q))
    }

    fn alerts_now(&self, audience: &Audience, q: &AlertQuery) -> Result<Vec<Alert>> {
        audience.level(q.level)?;
        let q = &AlertQuery {
            region: audience.region(q.region.as_deref(), "region")?,
            min_support: audience.alert_floor(q.min_support),
            ..q.clone()
        };
        let mut out = Vec::new();
        let catalogue = self.catalogue.clone();
        for ind in &catalogue.indicators {
            if q.indicator.as_ref().is_some_and(|id| *id != ind.id)
                || !ind.levels.contains(&q.level)
            {
                continue;
            }
            out.extend(self.alerts_of(audience, ind, q)?);
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

    /// The period checked at `grain`: the one asked for, or the latest complete one.
    fn alert_period(
        &self,
        q: &AlertQuery,
        grain: Grain,
        through: Option<NaiveDate>,
    ) -> Result<Option<Period>> {
        match &q.period {
            Some(label) => Ok(Some(Period::parse(grain, label).map_err(|source| {
                indicators::QueryError::Period {
                    parameter: "period",
                    source,
                }
            })?)),
            None => Ok(through.map(|t| Period::latest_complete(grain, t))),
        }
    }

    fn alerts_of(
        &self,
        audience: &Audience,
        ind: &Indicator,
        q: &AlertQuery,
    ) -> Result<Vec<Alert>> {
        // The asked grain, or the first of `order` the indicator allows.
        let pick = |order: &[Grain]| match q.grain {
            Some(g) => ind.grains.contains(&g).then_some(g),
            None => order.iter().copied().find(|g| ind.grains.contains(g)),
        };
        let through = self.recorded_through(ind)?;
        let mut alerts = Vec::new();
        // Thresholds per quarter by default: long enough for counts to settle.
        if ind.thresholds.is_some()
            && let Some(grain) = pick(&[Grain::Quarter, Grain::Month, Grain::Year])
            && let Some(period) = self.alert_period(q, grain, through)?
        {
            let values = self.values(audience, ind, &self.alert_query(q, grain, period, period))?;
            let mut found = threshold_alerts(ind, q, grain, &period.label(), &values);
            self.add_drivers(
                audience,
                ind,
                q,
                grain,
                &period.label(),
                &values,
                &mut found,
            )?;
            alerts.extend(found);
        }
        // Anomalies per month by default: eleven months of history to compare with.
        if let Some(grain) = pick(&[Grain::Month])
            && let Some(period) = self.alert_period(q, grain, through)?
        {
            let mut first = period;
            for _ in 0..11 {
                first = first.previous();
            }
            let values = self.values(audience, ind, &self.alert_query(q, grain, first, period))?;
            let mut found = anomaly_alerts(ind, q, grain, &period.label(), &values);
            self.add_drivers(
                audience,
                ind,
                q,
                grain,
                &period.label(),
                &values,
                &mut found,
            )?;
            alerts.extend(found);
        }
        Ok(alerts)
    }

    fn alert_query(
        &self,
        q: &AlertQuery,
        grain: Grain,
        from: Period,
        to: Period,
    ) -> IndicatorQuery {
        IndicatorQuery {
            level: q.level,
            grain,
            from: Some(from.label()),
            to: Some(to.label()),
            region: q.region.clone(),
        }
    }

    /// Fills each alert's drivers: the child regions that pull its value the wrong way.
    #[expect(clippy::too_many_arguments, reason = "one private step of alerts_of")]
    fn add_drivers(
        &self,
        audience: &Audience,
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
            audience,
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
    /// A forecast to the target year for every indicator with a target (or one), from the
    /// values `audience` sees of a region in its scope.
    pub fn trends(&self, audience: &Audience, q: &TrendQuery) -> Result<Vec<Trend>> {
        self.consistent(|| self.trends_now(audience, q))
    }

    fn trends_now(&self, audience: &Audience, q: &TrendQuery) -> Result<Vec<Trend>> {
        let level = indicators::region_level(&q.region).map_err(indicators::QueryError::Region)?;
        audience.region(Some(&q.region), "region")?;
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
                audience,
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
                // Measured, not forecast: the target year's own value, or for a census
                // table the year's last census.
                let census = ind.numerator.as_ref().is_some_and(|m| {
                    indicators::facts::fact_table(m.fact).is_some_and(|t| t.census)
                });
                let year_values = self.values(
                    audience,
                    ind,
                    &IndicatorQuery {
                        level,
                        grain: if ind.grains.contains(&Grain::Year) && !census {
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
                let points: Vec<(f64, f64)> = recent
                    .iter()
                    .map(|(p, v)| (year_fraction(*p), *v))
                    .collect();
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
    fn wilson_interval_narrows_with_more_records() {
        let (lo, hi) = wilson(28.0, 36.0);
        assert!(lo < 0.7778 && hi > 0.8, "{lo} {hi}");
        let (lo, hi) = wilson(2800.0, 3600.0);
        assert!(hi < 0.8 && lo > 0.75, "{lo} {hi}");
        assert_eq!(wilson(0.0, 0.0), (0.0, 1.0));
    }

    #[test]
    fn line_fit_recovers_a_trend() {
        let points: Vec<(f64, f64)> = (0..8)
            .map(|i| (2024.0 + i as f64 / 4.0, 0.5 + 0.1 * i as f64 / 4.0))
            .collect();
        let (slope, intercept) = fit_line(&points).unwrap();
        assert!((slope - 0.1).abs() < 1e-9, "{slope}");
        assert!((slope * 2025.875 + intercept - 0.6875).abs() < 1e-9);
        assert!(fit_line(&points[..2]).is_none());
    }

    #[test]
    fn latest_complete_period_waits_for_the_period_to_end() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        assert_eq!(
            Period::latest_complete(Grain::Month, d(2025, 12, 31)).label(),
            "2025-12"
        );
        assert_eq!(
            Period::latest_complete(Grain::Month, d(2025, 12, 30)).label(),
            "2025-11"
        );
        assert_eq!(
            Period::latest_complete(Grain::Quarter, d(2025, 11, 15)).label(),
            "2025-Q3"
        );
    }
}
