//! Who an answer is for, and what that audience may see: the one place of the access policy.
//!
//! Every question the engine answers for someone comes with an [`Audience`]: a region scope
//! (a division code: `32` the province, `3201` Nanjing) and whether small cells are shown.
//! The engine applies it where the numbers are made, before anything is compared, ranked,
//! summed, forecast or drawn, so no caller (route, page, picture, stream) ever holds a number
//! the audience may not see:
//!
//! - **Scope**: a query's region must lie in the scope and defaults to it; a level above the
//!   scope's own is refused ([`AnalyticsError::OutOfScope`]).
//! - **Support** is the number of fact records a value rests on (the `records` column of the
//!   indicator SQL: the denominator's records for ratios and means, the numerator's for counts
//!   and rates; never residents). Published statistics (GDP, population) have none and are
//!   never withheld. The same number is the floor of alerts.
//! - **Primary suppression**: a cell resting on fewer than the floor's records is withheld.
//! - **Complementary (secondary) suppression**, as statistical offices do it: where a withheld
//!   cell could be derived from a visible total and its visible neighbours, a second cell is
//!   withheld too. The groups are the children of one parent in one period (parent minus the
//!   visible siblings) and the periods of one region inside each coarser period (a year minus
//!   its visible quarters, a quarter minus its months, a month or week minus its days). The
//!   cell added is the visible one with the least support; this repeats until no group has
//!   exactly one withheld cell.
//! - The pattern depends on the data alone, never on the range or region asked: it is
//!   computed over whole sibling groups and whole years (see [`suppression_domain`]), so
//!   asking for a narrower range cannot move a withheld cell into view.
//!
//! - **Between levels and grains**: a cell withheld at the level above (or at a coarser grain)
//!   must not be the sum of visible cells here, so where all its parts are visible the
//!   least-supported one is withheld too. Patterns are made top-down (the province first, the
//!   year first) and kept per data snapshot (`Engine::withheld_pattern`).

use crate::{AnalyticsError, Result};
use chrono::Datelike;
use indicators::{Grain, IndicatorQuery, Level, Period};
use std::collections::{BTreeMap, HashSet};

/// The default floor: cells resting on fewer records are withheld from audiences that may
/// not see small cells.
pub const SMALL_CELL_FLOOR: f64 = 10.0;

/// The default (and, for audiences that may not see small cells, the lowest) number of
/// records a value must rest on to raise an alert.
pub const ALERT_FLOOR: f64 = 30.0;

/// Whether an audience sees values resting on few records.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SmallCells {
    /// Shown as they are (analysts, administrators, the operator at the command line).
    Shown,
    /// Withheld below `floor` records, with complementary suppression.
    Withheld { floor: f64 },
}

/// Who an answer is made for: a region scope and what they may see of small cells.
#[derive(Clone, Debug, PartialEq)]
pub struct Audience {
    /// `None`: every region of the database (the operator at the command line).
    scope: Option<String>,
    small_cells: SmallCells,
}

impl Audience {
    /// Every region with every cell shown: the operator of the database at the command line,
    /// who can read the file anyway.
    pub fn trusted() -> Audience {
        Audience {
            scope: None,
            small_cells: SmallCells::Shown,
        }
    }

    /// An audience over the subtree of `scope` (a division code, not a grid cell).
    pub fn new(scope: &str, small_cells: SmallCells) -> Result<Audience> {
        match indicators::region_level(scope) {
            Ok(Level::Grid) | Err(_) => Err(AnalyticsError::OutOfScope {
                parameter: "scope",
                message: format!("scope {scope:?} is not a division code"),
            }),
            Ok(_) => Ok(Audience {
                scope: Some(scope.to_owned()),
                small_cells,
            }),
        }
    }

    /// The scope's division code; `None` for every region.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    pub fn small_cells(&self) -> SmallCells {
        self.small_cells
    }

    /// The record floor below which cells are withheld, if any.
    pub fn floor(&self) -> Option<f64> {
        match self.small_cells {
            SmallCells::Shown => None,
            SmallCells::Withheld { floor } => Some(floor),
        }
    }

    /// Whether `code` (a division code or grid id) lies in the scope.
    pub fn covers(&self, code: &str) -> bool {
        indicators::region_level(code).is_ok()
            && self.scope.as_deref().is_none_or(|s| code.starts_with(s))
    }

    /// The alert floor for an asked one: audiences that may not see small cells cannot go
    /// below [`ALERT_FLOOR`] (nor below their own small-cell floor).
    pub fn alert_floor(&self, asked: f64) -> f64 {
        match self.small_cells {
            SmallCells::Shown => asked,
            SmallCells::Withheld { floor } => asked.max(ALERT_FLOOR).max(floor),
        }
    }

    /// A key that tells audiences apart wherever answers are kept (caches).
    pub fn key(&self) -> String {
        let scope = self.scope.as_deref().unwrap_or("*");
        match self.small_cells {
            SmallCells::Shown => format!("{scope}:all"),
            SmallCells::Withheld { floor } => format!("{scope}:min{floor}"),
        }
    }

    /// Checks that `region` lies in the scope; `None` becomes the scope itself (and stays
    /// `None` for every region).
    pub fn region(&self, region: Option<&str>, parameter: &'static str) -> Result<Option<String>> {
        match (region, &self.scope) {
            (None, scope) => Ok(scope.clone()),
            (Some(r), scope) => {
                indicators::region_level(r).map_err(indicators::QueryError::Region)?;
                if self.covers(r) {
                    Ok(Some(r.to_owned()))
                } else {
                    Err(AnalyticsError::OutOfScope {
                        parameter,
                        message: format!(
                            "region {r} is outside your scope {}",
                            scope.as_deref().unwrap_or("")
                        ),
                    })
                }
            }
        }
    }

    /// Checks that `level` is not above the scope's own level.
    pub fn level(&self, level: Level) -> Result<()> {
        let Some(scope) = &self.scope else {
            return Ok(());
        };
        let own = indicators::region_level(scope).expect("checked at construction");
        if level < own {
            return Err(AnalyticsError::OutOfScope {
                parameter: "level",
                message: format!(
                    "level {} is above your scope {scope} ({})",
                    level.as_str(),
                    own.as_str()
                ),
            });
        }
        Ok(())
    }

    /// The query as this audience may ask it: region in scope (the scope by default), level
    /// not above it.
    pub fn scope_query(&self, q: &IndicatorQuery) -> Result<IndicatorQuery> {
        self.level(q.level)?;
        let region = self.region(q.region.as_deref(), "region")?;
        Ok(IndicatorQuery {
            region,
            ..q.clone()
        })
    }
}

/// The query over which a suppression pattern is computed for `q`: whole sibling groups
/// (the region widened to the parent of `q.level` when it is at that level) and whole years
/// (from the start of `from`'s year to the end of `to`'s; callers pass the query already
/// widened by a year for the comparisons).
pub(crate) fn suppression_domain(q: &IndicatorQuery) -> IndicatorQuery {
    let region = q
        .region
        .as_ref()
        .map(|r| match (indicators::region_level(r), q.level.parent()) {
            (Ok(own), Some(parent)) if own >= q.level => indicators::level::ancestor(r, parent)
                .unwrap_or(r)
                .to_owned(),
            _ => r.clone(),
        });
    let year_bound = |label: &Option<String>, first: bool| {
        label.as_ref().and_then(|l| {
            let p = Period::parse(q.grain, l).ok()?;
            let year = Period::containing(Grain::Year, p.start);
            let day = if first {
                year.start
            } else {
                year.end() - chrono::Days::new(1)
            };
            Some(Period::containing(q.grain, day).label())
        })
    };
    IndicatorQuery {
        level: q.level,
        grain: q.grain,
        from: year_bound(&q.from, true),
        to: year_bound(&q.to, false),
        region,
    }
}

/// The coarser grains whose periods a period of `grain` adds up to (or nearly: weeks are
/// grouped by their ISO year, which a calendar year almost equals).
fn coarser(grain: Grain) -> &'static [Grain] {
    match grain {
        Grain::Day => &[Grain::Week, Grain::Month, Grain::Quarter, Grain::Year],
        Grain::Week => &[Grain::Year],
        Grain::Month => &[Grain::Quarter, Grain::Year],
        Grain::Quarter => &[Grain::Year],
        Grain::Year => &[],
    }
}

/// One cell of a table to protect: region, period and support (`None`: not subject to
/// disclosure control).
pub(crate) struct Cell<'a> {
    pub region: &'a str,
    pub period: &'a str,
    pub support: Option<f64>,
}

/// The members of one group that adds up to a visible total (a breakdown's categories:
/// `(support, label)`) to withhold at `floor`: those resting on fewer records, and when that
/// is exactly one, the least-supported other (by label on ties), as `withheld` does for the
/// groups of a table.
pub(crate) fn withheld_in_group(members: &[(Option<f64>, &str)], floor: f64) -> Vec<usize> {
    let mut hidden: Vec<usize> = (0..members.len())
        .filter(|&i| members[i].0.is_some_and(|r| r < floor))
        .collect();
    if hidden.len() == 1
        && let Some(partner) =
            (0..members.len())
                .filter(|i| !hidden.contains(i))
                .min_by(|&a, &b| {
                    let support = |i: usize| members[i].0.unwrap_or(f64::INFINITY);
                    support(a)
                        .total_cmp(&support(b))
                        .then(members[a].1.cmp(members[b].1))
                })
    {
        hidden.push(partner);
    }
    hidden
}

/// A pattern already fixed for a coarser table the cells add up to: the level above (a
/// parent is the sum of its children) or a coarser grain (a year is the sum of its quarters).
pub(crate) enum Outer<'a> {
    Parent {
        level: Level,
        withheld: &'a HashSet<(String, String)>,
    },
    Grain {
        grain: Grain,
        withheld: &'a HashSet<(String, String)>,
    },
}

/// The coarser grains whose patterns a grain's pattern must respect (weeks straddle years,
/// so their years are not sums of them and impose nothing).
pub(crate) fn outer_grains(grain: Grain) -> &'static [Grain] {
    match grain {
        Grain::Week => &[],
        g => coarser(g),
    }
}

/// The indexes of the cells to withhold at `floor`: primary (support below the floor); then,
/// for every cell withheld in a coarser table (`outer`) whose parts here are all visible, its
/// part with the least support (else the coarser cell would be the sum of visible ones); then
/// complementary until no group of cells that adds up to a visible total has exactly one
/// withheld.
pub(crate) fn withheld(
    cells: &[Cell],
    level: Level,
    grain: Grain,
    floor: f64,
    outer: &[Outer],
) -> HashSet<usize> {
    let mut out: HashSet<usize> = cells
        .iter()
        .enumerate()
        .filter(|(_, c)| c.support.is_some_and(|s| s < floor))
        .map(|(i, _)| i)
        .collect();
    // Groups: children of one parent in one period, periods of one region in a coarser one.
    let mut groups: BTreeMap<(u8, String, String), Vec<usize>> = BTreeMap::new();
    for (i, c) in cells.iter().enumerate() {
        if c.support.is_none() {
            continue;
        }
        if let Some(parent) = level
            .parent()
            .and_then(|p| indicators::level::ancestor(c.region, p))
        {
            groups
                .entry((0, parent.to_owned(), c.period.to_owned()))
                .or_default()
                .push(i);
        }
        if let Ok(p) = Period::parse(grain, c.period) {
            for (k, g) in coarser(grain).iter().enumerate() {
                let outer = match g {
                    Grain::Year if grain == Grain::Week => p.start.iso_week().year().to_string(),
                    _ => Period::containing(*g, p.start).label(),
                };
                groups
                    .entry((1 + k as u8, c.region.to_owned(), outer))
                    .or_default()
                    .push(i);
            }
        }
    }
    // A cell alone in one of its groups equals that group's total (a parent's only child
    // with data, a region's only period of a year): withholding it as a complement would let
    // the total, shown at another level or grain, give it away. Such cells are taken last.
    let mut lonely = vec![false; cells.len()];
    for members in groups.values() {
        if let [only] = members.as_slice() {
            lonely[*only] = true;
        }
    }
    let least = |members: &[usize], out: &HashSet<usize>| {
        members
            .iter()
            .filter(|i| !out.contains(i))
            .min_by(|a, b| {
                let (ca, cb) = (&cells[**a], &cells[**b]);
                lonely[**a]
                    .cmp(&lonely[**b])
                    .then(
                        ca.support
                            .unwrap_or(f64::INFINITY)
                            .total_cmp(&cb.support.unwrap_or(f64::INFINITY)),
                    )
                    .then(ca.region.cmp(cb.region))
                    .then(ca.period.cmp(cb.period))
            })
            .copied()
    };
    for o in outer {
        let withheld = match o {
            Outer::Parent { withheld, .. } | Outer::Grain { withheld, .. } => *withheld,
        };
        // The coarser cell a cell is part of.
        let key_of = |c: &Cell| -> Option<(String, String)> {
            match o {
                Outer::Parent { level: p, .. } => Some((
                    indicators::level::ancestor(c.region, *p)?.to_owned(),
                    c.period.to_owned(),
                )),
                Outer::Grain { grain: g, .. } => {
                    let p = Period::parse(grain, c.period).ok()?;
                    Some((c.region.to_owned(), Period::containing(*g, p.start).label()))
                }
            }
        };
        let mut parts: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
        for (i, c) in cells.iter().enumerate() {
            if c.support.is_none() {
                continue;
            }
            if let Some(key) = key_of(c)
                && withheld.contains(&key)
            {
                parts.entry(key).or_default().push(i);
            }
        }
        for members in parts.values() {
            if !members.iter().any(|i| out.contains(i))
                && let Some(i) = least(members, &out)
            {
                out.insert(i);
            }
        }
    }
    if out.is_empty() {
        return out;
    }
    loop {
        let mut changed = false;
        for members in groups.values() {
            let hidden = members.iter().filter(|i| out.contains(i)).count();
            if hidden != 1 {
                continue;
            }
            if let Some(i) = least(members, &out) {
                out.insert(i);
                changed = true;
            }
        }
        if !changed {
            return out;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell<'a>(region: &'a str, period: &'a str, support: f64) -> Cell<'a> {
        Cell {
            region,
            period,
            support: Some(support),
        }
    }

    #[test]
    fn a_lone_withheld_sibling_takes_the_smallest_other_with_it() {
        let cells = [
            cell("320102", "2024", 5.0),
            cell("320104", "2024", 40.0),
            cell("320105", "2024", 12.0),
            cell("320106", "2024", 900.0),
        ];
        let out = withheld(&cells, Level::County, Grain::Year, 10.0, &[]);
        assert_eq!(out, HashSet::from([0, 2]));
    }

    #[test]
    fn a_lone_withheld_quarter_takes_another_quarter_of_its_year() {
        let cells = [
            cell("320102", "2024-Q1", 50.0),
            cell("320102", "2024-Q2", 3.0),
            cell("320102", "2024-Q3", 20.0),
            cell("320102", "2024-Q4", 60.0),
        ];
        // The province level has no parent: only the year groups the quarters.
        let out = withheld(&cells, Level::Province, Grain::Quarter, 10.0, &[]);
        assert_eq!(out, HashSet::from([1, 2]));
    }

    #[test]
    fn complementary_cells_repeat_until_every_group_is_safe() {
        // Two counties, two quarters. County A's Q1 is small: its sibling B's Q1 is withheld
        // (parent group), which leaves B's year with one withheld quarter, so B's Q2 goes,
        // which leaves Q2's parent group with one: A's Q2 goes too.
        let cells = [
            cell("320102", "2024-Q1", 4.0),
            cell("320104", "2024-Q1", 50.0),
            cell("320102", "2024-Q2", 70.0),
            cell("320104", "2024-Q2", 80.0),
        ];
        let out = withheld(&cells, Level::County, Grain::Quarter, 10.0, &[]);
        assert_eq!(out, HashSet::from([0, 1, 2, 3]));
        for group in [[0, 1], [2, 3], [0, 2], [1, 3]] {
            let hidden = group.iter().filter(|i| out.contains(i)).count();
            assert_ne!(hidden, 1, "{group:?}");
        }
    }

    #[test]
    fn a_withheld_parent_is_never_the_sum_of_visible_children() {
        // The county 320102 is withheld at the county level (as a complement); its townships
        // are all large, so without the rule they would add up to it.
        let above = HashSet::from([("320102".to_owned(), "2024".to_owned())]);
        let cells = [
            cell("320102001", "2024", 40.0),
            cell("320102002", "2024", 25.0),
            cell("320102003", "2024", 60.0),
        ];
        let outer = [Outer::Parent {
            level: Level::County,
            withheld: &above,
        }];
        let out = withheld(&cells, Level::Township, Grain::Year, 10.0, &outer);
        // The least-supported township, and then (siblings) the next one.
        assert_eq!(out, HashSet::from([0, 1]));
        // A withheld year is never the sum of its visible quarters either.
        let year = HashSet::from([("320102".to_owned(), "2024".to_owned())]);
        let quarters = [
            cell("320102", "2024-Q1", 50.0),
            cell("320102", "2024-Q2", 30.0),
            cell("320102", "2024-Q3", 70.0),
            cell("320102", "2024-Q4", 90.0),
        ];
        let outer = [Outer::Grain {
            grain: Grain::Year,
            withheld: &year,
        }];
        let out = withheld(&quarters, Level::Province, Grain::Quarter, 10.0, &outer);
        assert_eq!(out, HashSet::from([1, 0]));
    }

    #[test]
    fn published_statistics_are_never_withheld() {
        let cells = [
            Cell {
                region: "320102",
                period: "2024",
                support: None,
            },
            cell("320104", "2024", 3.0),
        ];
        let out = withheld(&cells, Level::County, Grain::Year, 10.0, &[]);
        assert_eq!(out, HashSet::from([1]));
    }

    #[test]
    fn the_domain_covers_whole_sibling_groups_and_years() {
        let q = IndicatorQuery {
            level: Level::County,
            grain: Grain::Month,
            from: Some("2025-03".into()),
            to: Some("2025-05".into()),
            region: Some("320102".into()),
        };
        let d = suppression_domain(&q);
        assert_eq!(d.region.as_deref(), Some("3201"));
        assert_eq!(d.from.as_deref(), Some("2025-01"));
        assert_eq!(d.to.as_deref(), Some("2025-12"));
    }

    #[test]
    fn scopes_refuse_outside_regions_and_higher_levels() {
        let a = Audience::new("3201", SmallCells::Withheld { floor: 10.0 }).unwrap();
        assert!(a.region(Some("3202"), "region").is_err());
        assert_eq!(a.region(None, "region").unwrap().as_deref(), Some("3201"));
        assert_eq!(Audience::trusted().region(None, "region").unwrap(), None);
        assert!(a.region(Some("320102"), "region").is_ok());
        assert!(a.level(Level::Province).is_err());
        assert!(a.level(Level::City).is_ok());
        assert!(Audience::new("320102002001-001", SmallCells::Shown).is_err());
        assert_eq!(a.alert_floor(0.0), ALERT_FLOOR);
        assert_eq!(Audience::trusted().alert_floor(0.0), 0.0);
    }
}
