//! The access policy where the numbers are made, played as an attacker would: every row in
//! scope, no withheld value recoverable from comparisons, ranks, parents minus children,
//! years minus quarters, narrower ranges, breakdowns or alerts. Each oracle is computed here
//! from the trusted values, not by asking the policy again.

mod common;

use analytics::{AlertQuery, Audience, Engine, IndicatorValue, SmallCells, TrendQuery};
use common::loaded;
use indicators::{Grain, IndicatorQuery, Level, Period};
use std::collections::{BTreeMap, HashMap};

fn viewer(scope: &str) -> Audience {
    Audience::new(scope, SmallCells::Withheld { floor: 10.0 }).unwrap()
}

fn query(level: Level, grain: Grain, region: Option<&str>) -> IndicatorQuery {
    IndicatorQuery {
        level,
        grain,
        from: None,
        to: None,
        region: region.map(str::to_owned),
    }
}

fn values(engine: &Engine, a: &Audience, id: &str, q: &IndicatorQuery) -> Vec<IndicatorValue> {
    let ind = engine.catalogue().get(id).unwrap().clone();
    engine.values(a, &ind, q).unwrap()
}

/// The trusted value of each (region, period).
fn truth(rows: &[IndicatorValue]) -> HashMap<(String, String), IndicatorValue> {
    rows.iter()
        .map(|r| ((r.region_code.clone(), r.period.clone()), r.clone()))
        .collect()
}

#[test]
fn withheld_cells_cannot_be_recovered() {
    let (_tmp, engine, _) = loaded(42);
    let nanjing = viewer("3201");
    let cases = [
        ("hotline_orders", Level::Community, Grain::Quarter),
        ("hotline_on_time_rate", Level::Grid, Grain::Month),
        ("hotline_intensity", Level::Community, Grain::Month),
        ("service_applications", Level::Township, Grain::Month),
    ];
    let mut withheld_total = 0;
    for (id, level, grain) in cases {
        let q = query(level, grain, None);
        let seen = values(&engine, &nanjing, id, &q);
        let all = truth(&values(
            &engine,
            &Audience::trusted(),
            id,
            &query(level, grain, Some("3201")),
        ));
        assert!(!seen.is_empty(), "{id}");
        // Every row is in scope, and none is missing or added.
        assert_eq!(seen.len(), all.len(), "{id}");
        for r in &seen {
            assert!(r.region_code.starts_with("3201"), "{id}: {}", r.region_code);
        }
        let hidden: Vec<&IndicatorValue> = seen.iter().filter(|r| r.suppressed).collect();
        withheld_total += hidden.len();
        for r in &hidden {
            assert_eq!(r.value, None);
            assert_eq!(r.numerator, 0.0);
            assert_eq!(r.denominator, None);
            assert_eq!(r.support, None);
            assert_eq!(r.rank, None);
        }
        // Every small cell is withheld (primary suppression, support from records).
        for r in &seen {
            let t = &all[&(r.region_code.clone(), r.period.clone())];
            if t.support.is_some_and(|s| s < 10.0) {
                assert!(r.suppressed, "{id} {} {}", r.region_code, r.period);
            }
        }
        let is_hidden: HashMap<(String, String), bool> = seen
            .iter()
            .map(|r| ((r.region_code.clone(), r.period.clone()), r.suppressed))
            .collect();
        // No comparison of a visible row shows a withheld cell's value.
        for r in seen.iter().filter(|r| !r.suppressed) {
            let p = Period::parse(grain, &r.period).unwrap();
            for (other, shown) in [
                (p.previous(), r.previous_value),
                (p.same_period_last_year(), r.last_year_value),
            ] {
                if is_hidden
                    .get(&(r.region_code.clone(), other.label()))
                    .copied()
                    .unwrap_or(false)
                {
                    assert_eq!(shown, None, "{id} {} {}", r.region_code, r.period);
                }
            }
        }
        // Parent minus visible children: no (parent, period) has exactly one withheld child
        // beside visible ones, and a lone withheld child (the parent's only one with data, so
        // equal to it) has its parent withheld too.
        let parent_level = level.parent().unwrap();
        let parents = truth(&values(
            &engine,
            &nanjing,
            id,
            &query(parent_level, grain, None),
        ));
        let mut groups: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new();
        for r in &seen {
            let parent = indicators::level::ancestor(&r.region_code, parent_level)
                .unwrap()
                .to_owned();
            let g = groups.entry((parent, r.period.clone())).or_default();
            g.0 += usize::from(r.suppressed);
            g.1 += 1;
        }
        for (key, (hidden, members)) in &groups {
            match (*hidden, *members) {
                (1, 1) => assert!(
                    parents.get(key).is_none_or(|p| p.suppressed),
                    "{id}: {key:?} equals its only child, which is withheld"
                ),
                (1, _) => panic!("{id}: {key:?} has one withheld child beside visible ones"),
                _ => {}
            }
        }
        // Year minus its visible periods: no region-year has exactly one withheld period
        // beside visible ones, and a lone withheld period (so equal to its year) has its
        // year withheld too.
        let yearly = truth(&values(
            &engine,
            &nanjing,
            id,
            &query(level, Grain::Year, None),
        ));
        let mut years: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new();
        for r in &seen {
            let p = Period::parse(grain, &r.period).unwrap();
            let y = Period::containing(Grain::Year, p.start).label();
            let e = years.entry((r.region_code.clone(), y)).or_default();
            e.0 += usize::from(r.suppressed);
            e.1 += 1;
        }
        for (key, (hidden, members)) in &years {
            match (*hidden, *members) {
                (1, 1) => assert!(
                    yearly.get(key).is_none_or(|y| y.suppressed),
                    "{id}: {key:?} equals its only period, which is withheld"
                ),
                (1, _) => panic!("{id}: {key:?} has one withheld period beside visible ones"),
                _ => {}
            }
        }
        // Ranks are among the visible siblings only: 1..=k with k the visible ones.
        for ((parent, period), _) in groups.iter().take(50) {
            let mut ranks: Vec<u32> = seen
                .iter()
                .filter(|r| &r.period == period && r.region_code.starts_with(parent.as_str()))
                .filter_map(|r| r.rank)
                .collect();
            ranks.sort();
            let visible = seen
                .iter()
                .filter(|r| &r.period == period && r.region_code.starts_with(parent.as_str()))
                .filter(|r| r.value.is_some())
                .count();
            assert_eq!(ranks.len(), visible, "{id} {parent} {period}");
            assert!(ranks.iter().all(|&k| k as usize <= visible));
        }
        // A narrower question (one region, one period) sees the same pattern.
        for r in seen.iter().filter(|r| r.suppressed).take(5) {
            let narrow = values(
                &engine,
                &nanjing,
                id,
                &IndicatorQuery {
                    from: Some(r.period.clone()),
                    to: Some(r.period.clone()),
                    region: Some(r.region_code.clone()),
                    ..q.clone()
                },
            );
            assert_eq!(narrow.len(), 1, "{id} {}", r.region_code);
            assert!(narrow[0].suppressed, "{id} {} {}", r.region_code, r.period);
        }
    }
    assert!(
        withheld_total > 0,
        "the small sample has small cells to withhold"
    );
}

#[test]
fn support_counts_records_not_residents() {
    let (_tmp, engine, _) = loaded(42);
    let q = query(Level::Community, Grain::Month, Some("320102"));
    let intensity = truth(&values(
        &engine,
        &Audience::trusted(),
        "hotline_intensity",
        &q,
    ));
    let orders = truth(&values(&engine, &Audience::trusted(), "hotline_orders", &q));
    let mut checked = 0;
    for (key, rate) in &intensity {
        let count = orders.get(key).map_or(0.0, |o| o.numerator);
        assert_eq!(rate.support, Some(count), "{key:?}");
        checked += 1;
    }
    assert!(checked > 0);
    // Published statistics are shown as they are.
    let gdp = values(
        &engine,
        &viewer("32"),
        "gdp",
        &query(Level::County, Grain::Quarter, None),
    );
    assert!(!gdp.is_empty() && gdp.iter().all(|r| !r.suppressed && r.support.is_none()));
}

#[test]
fn scope_is_enforced_by_the_engine() {
    let (_tmp, engine, _) = loaded(42);
    let ind = engine.catalogue().get("hotline_orders").unwrap().clone();
    let xuanwu = viewer("320102");
    for (q, parameter) in [
        (query(Level::County, Grain::Year, Some("3202")), "region"),
        (query(Level::City, Grain::Year, None), "level"),
        (query(Level::Province, Grain::Year, Some("32")), "level"),
    ] {
        match engine.values(&xuanwu, &ind, &q) {
            Err(analytics::AnalyticsError::OutOfScope { parameter: p, .. }) => {
                assert_eq!(p, parameter)
            }
            other => panic!("{q:?}: {other:?}"),
        }
    }
    let rows = values(
        &engine,
        &xuanwu,
        "hotline_orders",
        &query(Level::Grid, Grain::Year, None),
    );
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r.region_code.starts_with("320102")));
    let trends = engine.trends(&xuanwu, &TrendQuery::default());
    assert!(
        trends.is_err(),
        "the province's trends are outside a district's scope"
    );
}

#[test]
fn alerts_keep_the_floor_and_show_no_withheld_cell() {
    let (_tmp, engine, _) = loaded(42);
    let viewer = viewer("32");
    let asked = AlertQuery {
        level: Level::Community,
        min_support: 0.0,
        ..AlertQuery::default()
    };
    let alerts = engine.alerts(&viewer, &asked).unwrap();
    for a in &alerts {
        assert!(a.support >= analytics::ALERT_FLOOR, "{a:?}");
        for d in &a.drivers {
            assert!(d.value.is_some());
        }
    }
    // The trusted operator may lower it and then sees more.
    let all = engine.alerts(&Audience::trusted(), &asked).unwrap();
    assert!(
        all.len() > alerts.len(),
        "{} vs {}",
        all.len(),
        alerts.len()
    );
}

#[test]
fn breakdowns_split_by_dimensions_only_and_withhold_small_categories() {
    let (_tmp, engine, _) = loaded(42);
    let ind = engine.catalogue().get("hotline_orders").unwrap().clone();
    let viewer = viewer("3201");
    for by in ["order_id", "grid_id", "community_code", "repeat_of", "lon"] {
        let e = engine
            .breakdown(&viewer, &ind, by, Grain::Year, "2025", None, 10)
            .unwrap_err();
        assert!(
            matches!(e, analytics::AnalyticsError::BadBreakdown(_)),
            "{by}: {e}"
        );
    }
    let shares = engine
        .breakdown(
            &viewer,
            &ind,
            "content_code",
            Grain::Month,
            "2025-03",
            Some("320102002001"),
            1000,
        )
        .unwrap();
    let hidden = shares.iter().filter(|s| s.suppressed).count();
    assert_ne!(
        hidden, 1,
        "one withheld category is the total minus the rest"
    );
    for s in &shares {
        assert!(
            s.suppressed || s.support.is_some_and(|r| r >= 10.0),
            "{s:?}"
        );
        if s.suppressed {
            assert_eq!((s.numerator, s.value, s.share), (0.0, None, None));
        }
    }
    assert!(
        engine
            .breakdown(
                &viewer,
                &ind,
                "content_code",
                Grain::Year,
                "2025",
                Some("3202"),
                10
            )
            .is_err()
    );
}

#[test]
fn a_withheld_total_is_never_the_sum_of_visible_parts() {
    let (_tmp, engine, _) = loaded(42);
    let nanjing = viewer("3201");
    let mut checked = 0;
    for id in [
        "hotline_orders",
        "hotline_on_time_rate",
        "service_applications",
    ] {
        // Levels: each withheld township of 320102 has a withheld community in that period.
        for (upper, lower) in [
            (Level::Township, Level::Community),
            (Level::Community, Level::Grid),
            (Level::County, Level::Township),
        ] {
            let above = values(
                &engine,
                &nanjing,
                id,
                &query(upper, Grain::Month, Some("320102")),
            );
            let below = values(
                &engine,
                &nanjing,
                id,
                &query(lower, Grain::Month, Some("320102")),
            );
            for a in above.iter().filter(|a| a.suppressed) {
                let parts: Vec<&IndicatorValue> = below
                    .iter()
                    .filter(|b| b.period == a.period && b.region_code.starts_with(&a.region_code))
                    .collect();
                if !parts.is_empty() {
                    assert!(
                        parts.iter().any(|b| b.suppressed),
                        "{id}: {} {} is withheld but its parts are all visible",
                        a.region_code,
                        a.period
                    );
                    checked += 1;
                }
            }
        }
        // Grains: each withheld year of a community has a withheld quarter.
        let years = values(
            &engine,
            &nanjing,
            id,
            &query(Level::Community, Grain::Year, Some("320102")),
        );
        let quarters = values(
            &engine,
            &nanjing,
            id,
            &query(Level::Community, Grain::Quarter, Some("320102")),
        );
        for y in years.iter().filter(|y| y.suppressed) {
            let parts: Vec<&IndicatorValue> = quarters
                .iter()
                .filter(|q| q.region_code == y.region_code && q.period.starts_with(&y.period))
                .collect();
            if !parts.is_empty() {
                assert!(
                    parts.iter().any(|q| q.suppressed),
                    "{id}: {} {}",
                    y.region_code,
                    y.period
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 0, "no withheld totals to check");
}
