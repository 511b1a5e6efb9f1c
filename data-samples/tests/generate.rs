//! The generator is deterministic and its files hang together.

use data_samples::{Config, Scale, generate};
use std::collections::HashSet;

fn files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn same_seed_same_bytes_and_consistent_keys() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let config = |seed| Config {
        scale: Scale::Small,
        seed,
        progress: false,
    };
    let manifest = generate(a.path(), &config(3)).unwrap();
    generate(b.path(), &config(3)).unwrap();
    generate(c.path(), &config(4)).unwrap();
    let (fa, fb, fc) = (files(a.path()), files(b.path()), files(c.path()));
    assert_eq!(fa, fb, "same seed, same files");
    let orders = |f: &[(String, Vec<u8>)]| {
        f.iter()
            .find(|(n, _)| n == "work_orders.csv")
            .unwrap()
            .1
            .clone()
    };
    assert_ne!(orders(&fa), orders(&fc), "another seed, other data");

    assert_eq!(manifest.work_orders, 100_000);
    // End-2023 resident populations of the 13 cities (published, 10k) sum to 8,526.05.
    assert_eq!(manifest.residents, 85_260_500);
    assert!(manifest.buildings > 500, "{}", manifest.buildings);

    // Every fact row points at a known grid cell inside its community.
    let mut regions = csv::Reader::from_path(a.path().join("regions.csv")).unwrap();
    let grids: HashSet<String> = regions
        .records()
        .map(|r| r.unwrap())
        .filter(|r| &r[2] == "grid")
        .map(|r| r[0].to_owned())
        .collect();
    let mut orders = csv::Reader::from_path(a.path().join("work_orders.csv")).unwrap();
    let mut types = HashSet::new();
    for r in orders.records() {
        let r = r.unwrap();
        assert!(grids.contains(&r[8]), "unknown grid {}", &r[8]);
        assert_eq!(
            &r[8][..12],
            &r[7],
            "grid {} outside community {}",
            &r[8],
            &r[7]
        );
        assert!(r[2] > r[1], "due before created");
        assert!(r[3].is_empty() || r[3] > r[1], "closed before created");
        types.insert(r[4].to_owned());
    }
    let mut types: Vec<String> = types.into_iter().collect();
    types.sort();
    assert_eq!(types, ["举报", "咨询", "建议", "投诉", "求助"]);
}

#[test]
fn every_fact_table_is_written_with_the_schema_columns() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = generate(
        dir.path(),
        &Config {
            scale: Scale::Small,
            seed: 9,
            progress: false,
        },
    )
    .unwrap();
    for table in indicators::facts::FACT_TABLES
        .iter()
        .filter(|t| t.source == indicators::facts::Source::File)
    {
        let path = dir.path().join(format!("{}.csv", table.name));
        let mut reader = csv::Reader::from_path(&path).unwrap();
        let header: Vec<String> = reader
            .headers()
            .unwrap()
            .iter()
            .map(str::to_owned)
            .collect();
        let expected: Vec<&str> = table.file_columns().map(|c| c.name).collect();
        assert_eq!(header, expected, "{}", table.name);
        let rows = reader.records().count();
        assert!(rows > 0, "{} is empty", table.name);
        assert_eq!(manifest.rows[table.name], rows, "{}", table.name);
    }
    // Four distinct drifting counties, the demo district among them, and its township.
    let mut counties = manifest.drifting_counties.clone();
    counties.dedup();
    assert_eq!(counties.len(), 4);
    assert!(counties.contains(&"320102".to_owned()));
    assert_eq!(manifest.drifting_townships, ["320102002"]);
}
