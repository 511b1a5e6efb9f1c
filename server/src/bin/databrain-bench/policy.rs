//! `databrain-bench policy`: what the access policy costs. The same queries run for the
//! operator (no scope, every cell shown) and for a province viewer (scope checks, support
//! from records, primary and complementary suppression over whole sibling groups and years),
//! interleaved in one run so that both see the same caches; p50 and p95 of each.

use crate::catalogue::{machine, percentile, write_section};
use analytics::{Audience, Engine, OpenMode, SmallCells};
use anyhow::{Context, Result};
use indicators::{Grain, IndicatorQuery, Level};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

pub fn run(db: &Path, rounds: usize, out: &Path) -> Result<()> {
    let engine = Engine::open_read_only(db, OpenMode::ReadOnly)
        .with_context(|| format!("cannot open {}", db.display()))?;
    engine.snapshot()?;
    let viewer = Audience::new(
        "32",
        SmallCells::Withheld {
            floor: analytics::SMALL_CELL_FLOOR,
        },
    )?;
    let operator = Audience::trusted();
    let catalogue = engine.catalogue().clone();
    let queries: Vec<(&str, IndicatorQuery)> = [
        ("hotline_on_time_rate", Level::County, Grain::Month),
        ("hotline_orders", Level::Township, Grain::Month),
        ("hotline_intensity", Level::Community, Grain::Quarter),
        ("service_good_rating_rate", Level::Grid, Grain::Year),
    ]
    .into_iter()
    .map(|(id, level, grain)| {
        (
            id,
            IndicatorQuery {
                level,
                grain,
                from: None,
                to: None,
                region: None,
            },
        )
    })
    .collect();
    let mut text = String::new();
    writeln!(
        text,
        "## The cost of the access policy\n\n`databrain-bench policy --db {}` ({rounds} rounds, {}), {}.\n",
        db.display(),
        chrono::Local::now().format("%Y-%m-%d"),
        machine()
    )?;
    writeln!(
        text,
        "| query | rows | operator p50 / p95 | viewer, first | viewer p50 / p95 after | viewer ÷ operator (p95 after) | withheld |"
    )?;
    writeln!(text, "|---|---:|---:|---:|---:|---:|---:|")?;
    for (id, q) in &queries {
        let ind = catalogue.get(id).context("indicator in the catalogue")?;
        let (mut plain, mut policed) = (Vec::new(), Vec::new());
        let (mut rows, mut withheld) = (0, 0);
        for _ in 0..rounds {
            let t = Instant::now();
            rows = engine.values(&operator, ind, q)?.len();
            plain.push(t.elapsed().as_secs_f64() * 1000.0);
            let t = Instant::now();
            let seen = engine.values(&viewer, ind, q)?;
            policed.push(t.elapsed().as_secs_f64() * 1000.0);
            withheld = seen.iter().filter(|r| r.suppressed).count();
        }
        let (p50, p95) = (percentile(&mut plain, 50.0), percentile(&mut plain, 95.0));
        // The first viewer query of a snapshot makes the patterns (this table's, the levels
        // above' and the coarser grains'); later ones read them from the engine's cache.
        let first = policed.remove(0);
        let (v50, v95) = if policed.is_empty() {
            (first, first)
        } else {
            (
                percentile(&mut policed, 50.0),
                percentile(&mut policed, 95.0),
            )
        };
        writeln!(
            text,
            "| {id} by {} per {} | {rows} | {p50:.1} / {p95:.1} ms | {first:.1} ms | {v50:.1} / {v95:.1} ms | {:.2}× | {withheld} |",
            q.level.as_str(),
            q.grain.as_str(),
            v95 / p95.max(1e-9)
        )?;
    }
    writeln!(
        text,
        "\nThe operator's answers carry no policy; the viewer's (a province viewer: scope \
         checks, support from records, primary, complementary and cross-level suppression) \
         read whole sibling groups and years, and the first of a data snapshot also makes the \
         patterns of the levels above and of the coarser grains, which later questions read \
         from the engine's per-snapshot cache. Rows and withheld cells are those of one answer.\n"
    )?;
    print!("{text}");
    write_section(out, "policy", &text)
}
