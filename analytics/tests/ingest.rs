//! Loading generated data into DuckDB and computing indicators from it.

mod common;

use analytics::{AnalyticsError, Engine};
use common::{count, whole};
use indicators::{Catalogue, Grain, IndicatorQuery, Level};
use std::collections::HashMap;
use std::path::Path;

fn sample(dir: &Path) {
    common::sample(dir, 11);
}

fn loaded() -> (tempfile::TempDir, Engine) {
    let (tmp, engine, _) = common::loaded(11);
    (tmp, engine)
}

#[test]
fn ingest_is_complete_idempotent_and_all_or_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sample");
    sample(&dir);
    let engine = Engine::open(&tmp.path().join("db.duckdb")).unwrap();
    assert!(matches!(
        engine.snapshot(),
        Err(AnalyticsError::Empty { .. })
    ));
    let report = engine.ingest_dir(&dir).unwrap();
    let tables: HashMap<String, u64> = report.tables.into_iter().collect();
    assert_eq!(tables["work_orders"], 100_000);
    assert_eq!(count(&engine, "work_orders"), 100_000);
    let applications = count(&engine, "service_applications");

    // Loading the same directory again changes nothing but the ingest number.
    let again = engine.ingest_dir(&dir).unwrap();
    assert_eq!(again.ingest_id, report.ingest_id + 1);
    assert_eq!(count(&engine, "work_orders"), 100_000);
    assert_eq!(count(&engine, "service_applications"), applications);

    // A work order in an unknown grid cell fails the whole load, naming the row and file.
    let broken = tmp.path().join("broken");
    sample(&broken);
    let path = broken.join("work_orders.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let fields: Vec<&str> = lines[5].split(',').collect();
    let bad_row = format!(
        "{},{}",
        fields[..8].join(","),
        "320102001001-999,".to_owned() + &fields[9..].join(",")
    );
    let bad_id = fields[0].to_owned();
    lines[5] = bad_row;
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let e = engine.ingest_dir(&broken).unwrap_err().to_string();
    assert!(e.contains(&bad_id) && e.contains("320102001001-999"), "{e}");
    assert!(e.ends_with(&format!("in {}", path.display())), "{e}");
    assert_eq!(
        count(&engine, "work_orders"),
        100_000,
        "nothing half-loaded"
    );
    assert_eq!(engine.snapshot().unwrap().ingest_id, again.ingest_id);

    // A file with the wrong header names the table and the columns.
    std::fs::write(
        broken.join("population.csv"),
        "grid,community_code,residents\n",
    )
    .unwrap();
    let e = engine.ingest_dir(&broken).unwrap_err().to_string();
    assert!(
        e.contains("missing [grid_id]") && e.contains("unexpected [grid]"),
        "{e}"
    );
}

#[test]
fn ratios_are_recomputed_from_parts_at_every_level() {
    let (_tmp, engine) = loaded();
    let catalogue = Catalogue::builtin();
    for id in [
        "hotline_on_time_rate",
        "one_thing_completion_rate",
        "hotline_intensity",
        "hotline_mean_handling_hours",
    ] {
        let ind = catalogue.get(id).unwrap();
        let province = engine
            .values(
                &analytics::Audience::trusted(),
                ind,
                &whole(Level::Province, Grain::Year),
            )
            .unwrap();
        let periods: Vec<&str> = province.iter().map(|p| p.period.as_str()).collect();
        // Due dates and closures run into 2026, after the last created order.
        assert!(periods.starts_with(&["2024", "2025"]), "{id}: {periods:?}");
        for level in [Level::City, Level::County, Level::Community, Level::Grid] {
            let rows = engine
                .values(
                    &analytics::Audience::trusted(),
                    ind,
                    &whole(level, Grain::Year),
                )
                .unwrap();
            for p in &province {
                let children: Vec<_> = rows.iter().filter(|r| r.period == p.period).collect();
                let num: f64 = children.iter().map(|r| r.numerator).sum();
                let den: f64 = children.iter().filter_map(|r| r.denominator).sum();
                let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
                assert!(
                    close(num, p.numerator),
                    "{id} {level} {}: {num} vs {}",
                    p.period,
                    p.numerator
                );
                assert!(
                    close(den, p.denominator.unwrap()),
                    "{id} {level} {}",
                    p.period
                );
                let value = ind.value(num, Some(den)).unwrap();
                assert!((value - p.value.unwrap()).abs() < 1e-9, "{id} {level}");
                // Summed parts differ from the mean of child values in general.
                if level == Level::Grid && ind.id == "hotline_on_time_rate" {
                    let mean = children.iter().filter_map(|r| r.value).sum::<f64>()
                        / children.len() as f64;
                    assert!((mean - value).abs() > 1e-9);
                }
            }
        }
    }
    // A region limits the answer to its subtree and months add up to quarters.
    let ind = catalogue.get("hotline_on_time_rate").unwrap();
    let mut q = whole(Level::County, Grain::Month);
    q.region = Some("3201".into());
    q.from = Some("2024-04".into());
    q.to = Some("2024-06".into());
    let months = engine
        .values(&analytics::Audience::trusted(), ind, &q)
        .unwrap();
    assert!(months.iter().all(|r| r.region_code.starts_with("3201")));
    assert_eq!(
        months
            .iter()
            .map(|r| r.period.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        3
    );
    q.grain = Grain::Quarter;
    q.from = Some("2024-Q2".into());
    q.to = Some("2024-Q2".into());
    let quarter = engine
        .values(&analytics::Audience::trusted(), ind, &q)
        .unwrap();
    let xuanwu_q: f64 = quarter
        .iter()
        .find(|r| r.region_code == "320102")
        .unwrap()
        .numerator;
    let xuanwu_m: f64 = months
        .iter()
        .filter(|r| r.region_code == "320102")
        .map(|r| r.numerator)
        .sum();
    assert_eq!(xuanwu_q, xuanwu_m);
    assert_eq!(
        quarter
            .iter()
            .find(|r| r.region_code == "320102")
            .unwrap()
            .region_name,
        "玄武区"
    );

    let buildings = engine.buildings("320102").unwrap();
    assert!(!buildings.is_empty());
    assert!(
        buildings
            .iter()
            .all(|b| b.grid_id.starts_with("320102") && b.footprint_lon_lat.len() == 5)
    );
}

#[test]
fn values_compare_with_earlier_periods_and_rank_siblings() {
    let (_tmp, engine) = loaded();
    let catalogue = Catalogue::builtin();
    let ind = catalogue.get("hotline_on_time_rate").unwrap();
    let month = |from: &str, to: &str| IndicatorQuery {
        level: Level::City,
        grain: Grain::Month,
        from: Some(from.into()),
        to: Some(to.into()),
        region: None,
    };
    let rows = engine
        .values(
            &analytics::Audience::trusted(),
            ind,
            &month("2025-02", "2025-03"),
        )
        .unwrap();
    assert!(
        rows.iter()
            .all(|r| r.period == "2025-02" || r.period == "2025-03"),
        "only the asked range"
    );
    // Earlier values come from separate queries of those periods alone.
    let feb = engine
        .values(
            &analytics::Audience::trusted(),
            ind,
            &month("2025-02", "2025-02"),
        )
        .unwrap();
    let march_2024 = engine
        .values(
            &analytics::Audience::trusted(),
            ind,
            &month("2024-03", "2024-03"),
        )
        .unwrap();
    let value_in = |rows: &[analytics::IndicatorValue], code: &str| {
        rows.iter()
            .find(|r| r.region_code == code)
            .unwrap()
            .value
            .unwrap()
    };
    for r in rows.iter().filter(|r| r.period == "2025-03") {
        let value = r.value.unwrap();
        assert_eq!(r.previous_value, Some(value_in(&feb, &r.region_code)));
        assert_eq!(
            r.last_year_value,
            Some(value_in(&march_2024, &r.region_code))
        );
        let change = value - value_in(&march_2024, &r.region_code);
        assert!((r.change_vs_last_year.unwrap() - change).abs() < 1e-12);
        assert_eq!(r.siblings, 13);
    }
    // Rank 1 is the best city (higher is better), and ranks follow the values.
    let mut march: Vec<_> = rows.iter().filter(|r| r.period == "2025-03").collect();
    march.sort_by_key(|r| r.rank.unwrap());
    assert_eq!(march[0].rank, Some(1));
    assert!(
        march
            .windows(2)
            .all(|w| w[0].value.unwrap() >= w[1].value.unwrap())
    );
}

/// Real boundaries replace the generated ones region by region, holes and several parts
/// kept; a file naming a region the database lacks, or with a broken ring, changes nothing
/// and says which.
#[test]
fn boundaries_replace_shapes_all_or_nothing() {
    let (_tmp, engine) = loaded();
    let before = engine.region_shapes("3201", "city").unwrap();
    let snapshot = engine.snapshot().unwrap().ingest_id;
    let square =
        |x: f64, y: f64, s: f64| vec![[x, y], [x + s, y], [x + s, y + s], [x, y + s], [x, y]];
    let nanjing = vec![
        // Binary fractions, so that the stored JSON reads back to the same numbers.
        vec![square(118.0, 31.0, 1.0), square(118.25, 31.25, 0.25)],
        vec![square(119.5, 31.0, 0.125)],
    ];
    let source = std::path::Path::new("cities.geojson");
    // Broken ring, unknown region: refused, nothing changed.
    let open_ring = vec![vec![vec![
        [118.0, 31.0],
        [119.0, 31.0],
        [119.0, 32.0],
        [118.0, 32.5],
    ]]];
    let e = engine
        .replace_region_shapes(
            source,
            &[("3201".into(), nanjing.clone()), ("3202".into(), open_ring)],
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("region 3202") && e.contains("not closed") && e.contains("cities.geojson"),
        "{e}"
    );
    let e = engine
        .replace_region_shapes(
            source,
            &[
                ("3201".into(), nanjing.clone()),
                ("3299".into(), nanjing.clone()),
            ],
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("3299"), "{e}");
    assert_eq!(engine.region_shapes("3201", "city").unwrap(), before);
    assert_eq!(engine.snapshot().unwrap().ingest_id, snapshot);
    // Accepted: a new load, the polygons as given, the other cities untouched.
    let others = engine.region_shapes("3202", "city").unwrap();
    let report = engine
        .replace_region_shapes(source, &[("3201".into(), nanjing.clone())])
        .unwrap();
    assert_eq!(report.replaced, 1);
    assert_eq!(engine.snapshot().unwrap().ingest_id, report.ingest_id);
    assert!(report.ingest_id > snapshot);
    let after = engine.region_shapes("3201", "city").unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].polygons_lon_lat, nanjing);
    assert_eq!(engine.region_shapes("3202", "city").unwrap(), others);
    // The generated counties below keep their rectangles.
    assert!(!engine.region_shapes("3201", "county").unwrap().is_empty());
}
