//! Alerts find the risks the generator planted, and trends judge progress toward targets.

mod common;

use analytics::{AlertKind, AlertQuery, TrendQuery, Verdict};
use chrono::NaiveDate;
use common::loaded;
use indicators::{Kind, Status};
use std::collections::BTreeSet;

#[test]
fn alerts_find_the_drifting_counties_and_only_those_are_critical() {
    for seed in [42, 11] {
        let (_tmp, engine, manifest) = loaded(seed);
        let alerts = engine
            .alerts(&analytics::Audience::trusted(), &AlertQuery::default())
            .unwrap();
        let critical: BTreeSet<&str> = alerts
            .iter()
            .filter(|a| a.severity == Status::Critical)
            .map(|a| a.region_code.as_str())
            .collect();
        let planted: BTreeSet<&str> = manifest
            .drifting_counties
            .iter()
            .map(String::as_str)
            .collect();
        let summary: Vec<String> = alerts
            .iter()
            .filter(|a| a.severity == Status::Critical)
            .map(|a| {
                format!(
                    "{} {} {} {:.3}",
                    a.region_code, a.indicator, a.period, a.value
                )
            })
            .collect();
        assert_eq!(critical, planted, "seed {seed}: {summary:#?}");
        // Every planted county breaches the 12345 on-time threshold, and the demo district's
        // worst township (planted too) leads its drivers.
        for county in &planted {
            assert!(
                alerts.iter().any(|a| a.region_code == *county
                    && a.indicator == "hotline_on_time_rate"
                    && a.kind == AlertKind::Threshold
                    && a.severity == Status::Critical),
                "seed {seed}: {county}"
            );
        }
        let xuanwu = alerts
            .iter()
            .find(|a| a.region_code == "320102" && a.indicator == "hotline_on_time_rate")
            .unwrap();
        assert_eq!(
            xuanwu.drivers.first().map(|d| d.region_code.as_str()),
            manifest.drifting_townships.first().map(String::as_str),
            "seed {seed}: {:?}",
            xuanwu.drivers
        );
        assert!(
            xuanwu
                .drivers
                .iter()
                .all(|d| d.region_code.starts_with("320102"))
        );
        assert!(xuanwu.support >= 30.0);
    }
}

#[test]
fn trends_measure_finished_targets_and_forecast_open_ones() {
    let (_tmp, engine, _) = loaded(11);
    let catalogue = engine.catalogue().clone();
    let with_target: Vec<&str> = catalogue
        .indicators
        .iter()
        .filter(|i| i.target.is_some())
        .map(|i| i.id.as_str())
        .collect();
    assert!(with_target.len() >= 8);

    // The data runs to the end of 2025, the plan's target year: measured verdicts.
    let done = engine
        .trends(&analytics::Audience::trusted(), &TrendQuery::default())
        .unwrap();
    assert_eq!(
        done.iter()
            .map(|t| t.indicator.as_str())
            .collect::<Vec<_>>(),
        with_target
    );
    for t in &done {
        let measured = t
            .forecast
            .unwrap_or_else(|| panic!("{}: no 2025 value", t.indicator));
        let met = measured >= t.target;
        assert_eq!(
            t.verdict,
            if met {
                Verdict::Achieved
            } else {
                Verdict::Missed
            },
            "{}",
            t.indicator
        );
    }

    // As of mid-2025 the target year is still open: forecasts from the periods before.
    let as_of = NaiveDate::from_ymd_opt(2025, 6, 30);
    let open = engine
        .trends(
            &analytics::Audience::trusted(),
            &TrendQuery {
                as_of,
                ..TrendQuery::default()
            },
        )
        .unwrap();
    for t in &open {
        assert!(
            matches!(t.verdict, Verdict::OnTrack | Verdict::OffTrack),
            "{}: {:?}",
            t.indicator,
            t.verdict
        );
        let latest =
            indicators::Period::parse(t.grain, t.latest_period.as_deref().unwrap()).unwrap();
        assert!(
            latest.end() <= NaiveDate::from_ymd_opt(2025, 7, 1).unwrap(),
            "{}: {latest:?} is after the as-of day",
            t.indicator
        );
        assert!(t.periods >= 3, "{}", t.indicator);
        let f = t.forecast.unwrap();
        if catalogue.get(&t.indicator).unwrap().kind == Kind::Ratio {
            assert!((0.0..=1.0).contains(&f), "{}: {f}", t.indicator);
        }
    }
    // Adoption grows over the plan period, so the fitted trend rises.
    let cloud = open
        .iter()
        .find(|t| t.indicator == "system_cloud_rate")
        .unwrap();
    assert!(cloud.slope_per_year.unwrap() > 0.0);
}
