//! Every indicator of the catalogue answers, the cube changes no answer, and one indicator of
//! each kind matches a computation straight from the generated CSV files.

mod common;

use analytics::Engine;
use common::{close, loaded, sample_file, whole};
use indicators::{Grain, Indicator, IndicatorQuery, Kind, Level};
use std::collections::{BTreeMap, BTreeSet, HashMap};

#[test]
fn every_indicator_answers_at_every_level_it_allows() {
    let (_tmp, engine, _) = loaded(11);
    // The ledger's indicators need a task: one assigned, resolved and verified.
    supervised_task(&engine);
    let catalogue = engine.catalogue().clone();
    assert!(catalogue.indicators.len() >= 40);
    for ind in &catalogue.indicators {
        let grain = *ind.grains.last().unwrap();
        for &level in &ind.levels {
            let rows = engine
                .values(&analytics::Audience::trusted(), ind, &whole(level, grain))
                .unwrap_or_else(|e| panic!("{} at {level}: {e}", ind.id));
            assert!(
                rows.iter().any(|r| r.value.is_some()),
                "{} at {level} per {grain}: no values",
                ind.id
            );
        }
    }
}

fn supervised_task(engine: &analytics::Engine) {
    use workflow::{Action, Actor, ActorRole, Event, NewTask, Outcome, Severity};
    let at = |s: &str| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
    let who = |role| Actor {
        name: "test".into(),
        role,
        scope: "320102".into(),
        org: Some("320102/城管局".into()),
    };
    let steps = [
        (Action::Accept, ActorRole::Department, "2025-04-07 09:00:00"),
        (
            Action::Resolve,
            ActorRole::Department,
            "2025-04-08 09:00:00",
        ),
        (
            Action::Verify {
                effective: false,
                outcome: Outcome::Unchanged,
            },
            ActorRole::Supervisor,
            "2025-07-08 09:00:00",
        ),
    ];
    let new = NewTask {
        region_code: "320102".into(),
        indicator: "hotline_on_time_rate".into(),
        grain: "quarter".into(),
        period: "2025-Q1".into(),
        value: 0.7,
        threshold: Some(0.8),
        support: Some(400.0),
        severity: Severity::Critical,
        owner_org: "320102/城管局".into(),
        working_days: 5,
    };
    let id = engine
        .task_event(None, |_| {
            Ok(Event {
                action: Action::Assign(new),
                actor: who(ActorRole::Leader),
                at: at("2025-04-03 09:00:00"),
                note: String::new(),
            })
        })
        .unwrap()
        .task
        .id;
    for (action, role, time) in steps {
        engine
            .task_event(Some(&id), |_| {
                Ok(Event {
                    action,
                    actor: who(role),
                    at: at(time),
                    note: "done".into(),
                })
            })
            .unwrap();
    }
}

/// A short range for fine grains, everything for coarse ones.
fn range_for(grain: Grain) -> (Option<String>, Option<String>) {
    match grain {
        Grain::Day => (Some("2025-03-01".into()), Some("2025-03-10".into())),
        Grain::Week => (Some("2025-W10".into()), Some("2025-W13".into())),
        _ => (None, None),
    }
}

/// One statement's rows: `(level tag or -1, region, period, numerator, denominator, records)`.
type Row = (i64, String, String, f64, Option<f64>, Option<f64>);

fn rows_of(engine: &Engine, sql: &indicators::CompiledSql, tagged: bool) -> Vec<Row> {
    engine
        .with_conn(|c| {
            let mut stmt = c.prepare(&sql.sql).unwrap();
            let at = usize::from(tagged);
            let rows = stmt
                .query_map(duckdb::params_from_iter(sql.params.iter()), |r| {
                    Ok((
                        if tagged { r.get(0)? } else { -1 },
                        r.get(at)?,
                        r.get(at + 1)?,
                        r.get(at + 2)?,
                        r.get(at + 3)?,
                        r.get(at + 4)?,
                    ))
                })
                .unwrap();
            Ok(rows.map(Result::unwrap).collect())
        })
        .unwrap()
}

/// The statement for every level at once (what an engine on Spark runs) gives each level
/// exactly the rows of that level's own statement: checked here on DuckDB, for every
/// indicator with SQL of its own and every grain, over the whole province and over one
/// city's subtree (the region's level and those above it are then left out, as the engine
/// on Spark leaves them).
#[test]
fn one_statement_for_every_level_gives_each_levels_own_rows() {
    let (_tmp, engine, _) = loaded(11);
    let catalogue = engine.catalogue().clone();
    let mut compared = 0;
    for ind in catalogue
        .indicators
        .iter()
        .filter(|i| i.numerator.is_some())
    {
        for &grain in &ind.grains {
            let (from, to) = range_for(grain);
            // Fine grains over a short range (as `range_for` says), coarse ones over all.
            for region in [None, Some("3201".to_owned())] {
                let base = IndicatorQuery {
                    level: Level::Province,
                    grain,
                    from: from.clone(),
                    to: to.clone(),
                    region: region.clone(),
                };
                let levels: Vec<Level> = ind
                    .levels
                    .iter()
                    .copied()
                    .filter(|&l| region.is_none() || l > Level::City)
                    .collect();
                if levels.is_empty() {
                    continue;
                }
                let all = indicators::sql::compile_levels(
                    ind,
                    &base,
                    &levels,
                    indicators::sql::Dialect::DuckDb,
                )
                .unwrap();
                assert!(!all.sql.contains("ORDER BY"), "{}", all.sql);
                let mut tagged = rows_of(&engine, &all, true);
                tagged.sort_by(|a, b| (a.0, &a.2, &a.1).cmp(&(b.0, &b.2, &b.1)));
                for (i, &level) in levels.iter().enumerate() {
                    let one = indicators::sql::compile(
                        ind,
                        &IndicatorQuery {
                            level,
                            ..base.clone()
                        },
                    )
                    .unwrap();
                    let own = rows_of(&engine, &one, false);
                    let mine: Vec<&Row> = tagged.iter().filter(|r| r.0 == i as i64).collect();
                    let what = format!("{} {level} {grain} {region:?}", ind.id);
                    assert_eq!(mine.len(), own.len(), "{what}");
                    for (a, b) in mine.iter().zip(&own) {
                        assert_eq!((&a.1, &a.2, a.5), (&b.1, &b.2, b.5), "{what}");
                        let denominators = match (a.4, b.4) {
                            (Some(x), Some(y)) => close(x, y),
                            (x, y) => x == y,
                        };
                        assert!(close(a.3, b.3) && denominators, "{what}: {a:?} / {b:?}");
                    }
                    compared += own.len();
                }
            }
        }
    }
    assert!(compared > 10_000, "{compared} rows compared");
}

#[test]
fn the_cube_changes_no_answer() {
    let (_tmp, engine, _) = loaded(11);
    let catalogue = engine.catalogue().clone();
    let mut from_cube = 0;
    for ind in catalogue.indicators.iter() {
        // A coarse level, the finest the day tables keep, and grid cells (month tables).
        for level in [Level::City, Level::Community, Level::Grid]
            .into_iter()
            .filter(|l| ind.levels.contains(l))
        {
            for &grain in &ind.grains {
                if level == Level::Grid && grain < Grain::Month {
                    continue; // grid cells are kept per month only; keep the test quick
                }
                let (from, to) = range_for(grain);
                let q = IndicatorQuery {
                    level,
                    grain,
                    from,
                    to,
                    region: None,
                };
                if ind.kind != Kind::Derived
                    && engine.compiled_sql(ind, &q).unwrap().sql.contains("cube_")
                {
                    from_cube += 1;
                }
                let cube = engine
                    .values(&analytics::Audience::trusted(), ind, &q)
                    .unwrap();
                let facts = engine
                    .values_from_facts(&analytics::Audience::trusted(), ind, &q)
                    .unwrap();
                assert_eq!(cube.len(), facts.len(), "{} {level} {grain}", ind.id);
                for (a, b) in cube.iter().zip(&facts) {
                    let at = format!("{} {level} {grain} {} {}", ind.id, a.region_code, a.period);
                    assert_eq!(
                        (&a.region_code, &a.period),
                        (&b.region_code, &b.period),
                        "{at}"
                    );
                    // Counts add up exactly; sums of fractional hours up to rounding.
                    assert!(
                        close(a.numerator, b.numerator),
                        "{at}: {} vs {}",
                        a.numerator,
                        b.numerator
                    );
                    assert_eq!(a.denominator.is_some(), b.denominator.is_some(), "{at}");
                    if let (Some(x), Some(y)) = (a.denominator, b.denominator) {
                        assert!(close(x, y), "{at}");
                    }
                    assert_eq!(a.status, b.status, "{at}");
                    assert_eq!(a.rank, b.rank, "{at}");
                }
            }
        }
    }
    assert!(from_cube > 100, "only {from_cube} queries read the cube");
}

fn csv_rows(path: &std::path::Path) -> Vec<HashMap<String, String>> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            header
                .iter()
                .cloned()
                .zip(r.iter().map(str::to_owned))
                .collect()
        })
        .collect()
}

fn hours(from: &str, to: &str) -> f64 {
    let t = |s: &str| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
    (t(to) - t(from)).num_seconds() as f64 / 3600.0
}

/// (city, year) → value, as the engine computes it.
fn engine_values(engine: &analytics::Engine, ind: &Indicator) -> BTreeMap<(String, String), f64> {
    engine
        .values(
            &analytics::Audience::trusted(),
            ind,
            &whole(Level::City, Grain::Year),
        )
        .unwrap()
        .into_iter()
        .filter_map(|v| Some(((v.region_code, v.period), v.value?)))
        .collect()
}

fn assert_same(
    id: &str,
    ours: &BTreeMap<(String, String), f64>,
    theirs: &BTreeMap<(String, String), f64>,
) {
    assert!(!theirs.is_empty(), "{id}: nothing computed");
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "{id}: regions and years"
    );
    for (k, v) in theirs {
        assert!(
            close(ours[k], *v),
            "{id} {k:?}: engine {} vs CSV {v}",
            ours[k]
        );
    }
}

#[test]
fn one_indicator_of_each_kind_matches_an_independent_computation() {
    let (tmp, engine, _) = loaded(11);
    let catalogue = engine.catalogue().clone();
    let get = |id: &str| catalogue.get(id).unwrap();
    let orders = csv_rows(&sample_file(&tmp, "work_orders.csv"));
    let key = |code: &str, ts: &str| (code[..4].to_owned(), ts[..4].to_owned());

    // count: work orders created per city and year.
    let mut count: BTreeMap<(String, String), f64> = BTreeMap::new();
    for o in &orders {
        *count
            .entry(key(&o["community_code"], &o["created_at"]))
            .or_default() += 1.0;
    }
    assert_same(
        "hotline_orders",
        &engine_values(&engine, get("hotline_orders")),
        &count,
    );

    // distinct count: grid cells with an order.
    let mut grids: BTreeMap<(String, String), BTreeSet<&str>> = BTreeMap::new();
    for o in &orders {
        grids
            .entry(key(&o["community_code"], &o["created_at"]))
            .or_default()
            .insert(&o["grid_id"]);
    }
    let distinct = grids
        .into_iter()
        .map(|(k, g)| (k, g.len() as f64))
        .collect();
    assert_same(
        "hotline_active_grids",
        &engine_values(&engine, get("hotline_active_grids")),
        &distinct,
    );

    // rate: orders per 10,000 residents.
    let mut residents: HashMap<String, f64> = HashMap::new();
    for p in csv_rows(&sample_file(&tmp, "population.csv")) {
        *residents
            .entry(p["community_code"][..4].to_owned())
            .or_default() += p["residents"].parse::<f64>().unwrap();
    }
    let rate = count
        .iter()
        .map(|(k, n)| (k.clone(), n / residents[&k.0] * 10_000.0))
        .collect();
    assert_same(
        "hotline_intensity",
        &engine_values(&engine, get("hotline_intensity")),
        &rate,
    );

    // mean: hours from submission to completion of applications completed in the year.
    let mut sums: BTreeMap<(String, String), (f64, f64)> = BTreeMap::new();
    for a in csv_rows(&sample_file(&tmp, "service_applications.csv")) {
        if a["completed_at"].is_empty() {
            continue;
        }
        let e = sums
            .entry(key(&a["community_code"], &a["completed_at"]))
            .or_default();
        e.0 += hours(&a["submitted_at"], &a["completed_at"]);
        e.1 += 1.0;
    }
    let mean = sums.into_iter().map(|(k, (h, n))| (k, h / n)).collect();
    assert_same(
        "service_mean_handling_hours",
        &engine_values(&engine, get("service_mean_handling_hours")),
        &mean,
    );

    // ratio: 一类事 scenarios implemented at the census, over all listed.
    let mut parts: BTreeMap<(String, String), (f64, f64)> = BTreeMap::new();
    for s in csv_rows(&sample_file(&tmp, "service_scenarios.csv")) {
        if s["kind"] != "one_class" {
            continue;
        }
        let e = parts
            .entry(key(&s["county_code"], &s["census_at"]))
            .or_default();
        e.0 += f64::from(u8::from(s["implemented"] == "true"));
        e.1 += 1.0;
    }
    let ratio = parts.into_iter().map(|(k, (n, d))| (k, n / d)).collect();
    assert_same(
        "one_class_completion_rate",
        &engine_values(&engine, get("one_class_completion_rate")),
        &ratio,
    );

    // sum and derived: GDP, and real growth = comparable GDP / last year's GDP - 1.
    let mut gdp: BTreeMap<(String, String), f64> = BTreeMap::new();
    let mut growth_parts: BTreeMap<(String, String), (f64, f64)> = BTreeMap::new();
    for e in csv_rows(&sample_file(&tmp, "economy.csv")) {
        let k = key(&e["county_code"], &e["quarter_start"]);
        *gdp.entry(k.clone()).or_default() += e["gdp_100m_cny"].parse::<f64>().unwrap();
        let g = growth_parts.entry(k).or_default();
        g.0 += e["gdp_comparable_100m_cny"].parse::<f64>().unwrap();
        g.1 += e["gdp_last_year_100m_cny"].parse::<f64>().unwrap();
    }
    assert_same("gdp", &engine_values(&engine, get("gdp")), &gdp);
    let growth = growth_parts
        .into_iter()
        .map(|(k, (c, l))| (k, c / l - 1.0))
        .collect();
    assert_same(
        "gdp_growth_rate",
        &engine_values(&engine, get("gdp_growth_rate")),
        &growth,
    );

    // The kinds covered above are all the kinds there are.
    let covered = [
        "hotline_orders",
        "hotline_active_grids",
        "hotline_intensity",
        "service_mean_handling_hours",
        "one_class_completion_rate",
        "gdp",
        "gdp_growth_rate",
    ];
    let kinds: BTreeSet<String> = covered
        .iter()
        .map(|id| format!("{:?}", get(id).kind))
        .collect();
    assert_eq!(kinds.len(), Kind::ALL.len(), "{kinds:?}");
}
