//! The catalogue format: TOML files of `[[indicator]]` tables, validated into [`Indicator`]s.
//!
//! Load errors name the file, the indicator and the field. The built-in catalogue is compiled
//! into the binary from `indicators/catalogue/*.toml`, so it works from any directory.

use crate::facts::{FactTable, fact_table};
use crate::filter::Condition;
use crate::formula::Formula;
use crate::level::Level;
use crate::period::Grain;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The built-in catalogue files: (file name, contents).
pub const BUILTIN_FILES: &[(&str, &str)] = &[
    (
        "governance.toml",
        include_str!("../catalogue/governance.toml"),
    ),
    (
        "public_service.toml",
        include_str!("../catalogue/public_service.toml"),
    ),
    (
        "digital_infrastructure.toml",
        include_str!("../catalogue/digital_infrastructure.toml"),
    ),
    (
        "environment.toml",
        include_str!("../catalogue/environment.toml"),
    ),
    ("economy.toml", include_str!("../catalogue/economy.toml")),
    ("safety.toml", include_str!("../catalogue/safety.toml")),
    (
        "supervision.toml",
        include_str!("../catalogue/supervision.toml"),
    ),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Domain {
    Economy,
    PublicService,
    Governance,
    Environment,
    DigitalInfrastructure,
    Safety,
}

impl Domain {
    pub const ALL: [Domain; 6] = [
        Domain::Economy,
        Domain::PublicService,
        Domain::Governance,
        Domain::Environment,
        Domain::DigitalInfrastructure,
        Domain::Safety,
    ];
}

/// How the value follows from the numerator and denominator.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The numerator's count.
    Count,
    /// The numerator's sum.
    Sum,
    /// numerator / denominator, a share between 0 and 1.
    Ratio,
    /// numerator / denominator × `per` (e.g. per 10 000 residents).
    Rate,
    /// numerator / denominator as a mean (e.g. summed hours / orders).
    Mean,
    /// The numerator's count of distinct values (not additive: computed from rows at every
    /// level, never summed from children).
    DistinctCount,
    /// A formula over other indicators' values at the same level and period.
    Derived,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Count,
        Kind::Sum,
        Kind::Ratio,
        Kind::Rate,
        Kind::Mean,
        Kind::DistinctCount,
        Kind::Derived,
    ];
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    HigherIsBetter,
    LowerIsBetter,
}

impl Direction {
    pub const ALL: [Direction; 2] = [Direction::HigherIsBetter, Direction::LowerIsBetter];
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    Count,
    Sum,
    CountDistinct,
}

impl Aggregate {
    pub const ALL: [Aggregate; 3] = [Aggregate::Count, Aggregate::Sum, Aggregate::CountDistinct];
}

/// One side of an indicator: an aggregate over a fact table's rows that pass the filters,
/// bucketed by the time column (or static when there is none, like resident population).
#[derive(Clone, Debug, Serialize)]
pub struct Measure {
    pub fact: &'static str,
    pub agg: Aggregate,
    pub column: Option<String>,
    pub time: Option<String>,
    pub filter: Vec<String>,
    #[serde(skip)]
    pub conditions: Vec<Condition>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub value: f64,
    pub year: i32,
    pub source: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    pub warning: f64,
    pub critical: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Warning,
    Critical,
    NoData,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Critical => "critical",
            Status::NoData => "no_data",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Indicator {
    pub id: String,
    pub name_zh: String,
    pub name_en: String,
    pub domain: Domain,
    pub unit: String,
    pub kind: Kind,
    /// Scale of a rate: the value is per this many of the denominator.
    pub per: Option<f64>,
    pub direction: Direction,
    pub levels: Vec<Level>,
    pub grains: Vec<Grain>,
    /// What is counted or summed; `None` for derived indicators.
    pub numerator: Option<Measure>,
    pub denominator: Option<Measure>,
    /// How a derived indicator follows from others.
    pub formula: Option<Formula>,
    pub target: Option<Target>,
    pub thresholds: Option<Thresholds>,
    pub description: String,
    pub standard: Option<String>,
    /// Counterpart in ISO 37120 (sustainable cities) or ISO 37122 (smart cities), e.g.
    /// `ISO 37120:2018 8.1`.
    pub iso: Option<String>,
    /// The catalogue file it was declared in.
    pub source_file: String,
}

impl Indicator {
    /// The value from summed parts; `None` when a ratio's denominator is missing or zero.
    pub fn value(&self, numerator: f64, denominator: Option<f64>) -> Option<f64> {
        match self.kind {
            Kind::Count | Kind::Sum | Kind::DistinctCount | Kind::Derived => Some(numerator),
            Kind::Ratio | Kind::Mean | Kind::Rate => {
                let d = denominator.filter(|d| *d != 0.0)?;
                Some(numerator / d * self.per.unwrap_or(1.0))
            }
        }
    }

    /// Status of a value against the warning and critical thresholds, in the indicator's
    /// direction.
    pub fn status(&self, value: Option<f64>) -> Status {
        let Some(v) = value else {
            return Status::NoData;
        };
        let Some(t) = self.thresholds else {
            return Status::Ok;
        };
        let worse_than = |limit: f64| match self.direction {
            Direction::HigherIsBetter => v < limit,
            Direction::LowerIsBetter => v > limit,
        };
        if worse_than(t.critical) {
            Status::Critical
        } else if worse_than(t.warning) {
            Status::Warning
        } else {
            Status::Ok
        }
    }

    /// Signed distance to the target, positive when the value is better than the target.
    pub fn gap_to_target(&self, value: Option<f64>) -> Option<f64> {
        let (v, t) = (value?, self.target.as_ref()?);
        Some(match self.direction {
            Direction::HigherIsBetter => v - t.value,
            Direction::LowerIsBetter => t.value - v,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("cannot read catalogue file: {source}, in {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("malformed TOML: {message}, in {file}")]
    Toml { file: String, message: String },
    #[error("indicator {indicator:?}, field `{field}`: {message}, in {file}")]
    Field {
        file: String,
        indicator: String,
        field: String,
        message: String,
    },
    #[error("derived indicators form a cycle: {cycle}, in {file}")]
    Cycle { cycle: String, file: String },
    #[error("indicator {indicator:?} is declared twice, in {file} and {first_file}")]
    Duplicate {
        indicator: String,
        file: String,
        first_file: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    indicator: Vec<RawIndicator>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIndicator {
    id: String,
    name_zh: String,
    name_en: String,
    domain: Domain,
    unit: String,
    kind: Kind,
    per: Option<f64>,
    direction: Direction,
    levels: Vec<Level>,
    grains: Vec<Grain>,
    numerator: Option<RawMeasure>,
    denominator: Option<RawMeasure>,
    formula: Option<String>,
    target: Option<Target>,
    thresholds: Option<Thresholds>,
    description: String,
    standard: Option<String>,
    iso: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMeasure {
    fact: String,
    agg: Aggregate,
    column: Option<String>,
    time: Option<String>,
    #[serde(default)]
    filter: Vec<String>,
}

/// A validated set of indicators, in declaration order, with a version that changes whenever
/// any definition does.
#[derive(Clone, Debug, Serialize)]
pub struct Catalogue {
    pub version: String,
    pub indicators: Vec<Indicator>,
}

impl Catalogue {
    /// The catalogue compiled into the binary.
    pub fn builtin() -> Catalogue {
        Catalogue::from_sources(
            BUILTIN_FILES
                .iter()
                .map(|(n, s)| (n.to_string(), s.to_string())),
        )
        .expect("the built-in catalogue is valid (checked by tests)")
    }

    /// Loads every `*.toml` file of a directory, in name order.
    pub fn load_dir(dir: &Path) -> Result<Catalogue, CatalogueError> {
        let read_err = |source| CatalogueError::Read {
            path: dir.to_owned(),
            source,
        };
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(read_err)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        let mut sources = Vec::new();
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|source| CatalogueError::Read {
                path: path.clone(),
                source,
            })?;
            sources.push((path.display().to_string(), text));
        }
        Catalogue::from_sources(sources)
    }

    /// Parses and validates (file name, text) pairs.
    pub fn from_sources(
        sources: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Catalogue, CatalogueError> {
        let mut indicators: Vec<Indicator> = Vec::new();
        let mut hash = Fnv64::default();
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for (file, text) in sources {
            hash.write(file.as_bytes());
            hash.write(text.as_bytes());
            let raw: RawFile = toml::from_str(&text).map_err(|e| CatalogueError::Toml {
                file: file.clone(),
                message: e.to_string(),
            })?;
            for r in raw.indicator {
                if let Some(first) = seen.get(&r.id) {
                    return Err(CatalogueError::Duplicate {
                        indicator: r.id,
                        file,
                        first_file: first.clone(),
                    });
                }
                seen.insert(r.id.clone(), file.clone());
                indicators.push(validate(r, &file)?);
            }
        }
        check_derived(&indicators)?;
        Ok(Catalogue {
            version: format!("{:016x}", hash.0),
            indicators,
        })
    }

    pub fn get(&self, id: &str) -> Option<&Indicator> {
        self.indicators.iter().find(|i| i.id == id)
    }
}

/// FNV-1a, enough for a stable content version (not for security).
struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv64 {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

fn validate(r: RawIndicator, file: &str) -> Result<Indicator, CatalogueError> {
    let fail = |field: &str, message: String| CatalogueError::Field {
        file: file.to_owned(),
        indicator: r.id.clone(),
        field: field.to_owned(),
        message,
    };
    if r.id.is_empty()
        || !r
            .id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(fail(
            "id",
            "must be lowercase ascii letters, digits and _".into(),
        ));
    }
    if r.levels.is_empty() {
        return Err(fail("levels", "at least one level is required".into()));
    }
    if r.grains.is_empty() {
        return Err(fail("grains", "at least one grain is required".into()));
    }
    let (numerator, formula) = match (r.kind, &r.numerator, &r.formula) {
        (Kind::Derived, None, Some(text)) => (
            None,
            Some(Formula::parse(text).map_err(|e| fail("formula", e))?),
        ),
        (Kind::Derived, Some(_), _) => {
            return Err(fail(
                "numerator",
                "a derived indicator has a formula, not a numerator".into(),
            ));
        }
        (Kind::Derived, None, None) => {
            return Err(fail("formula", "a derived indicator needs one".into()));
        }
        (_, _, Some(_)) => {
            return Err(fail("formula", "only derived indicators have one".into()));
        }
        (_, None, None) => return Err(fail("numerator", "is required".into())),
        (kind, Some(raw), None) => {
            let m = measure(raw, "numerator", &fail)?;
            if m.time.is_none() {
                return Err(fail(
                    "numerator.time",
                    "the numerator needs a time column".into(),
                ));
            }
            let expected = match kind {
                Kind::Count => Some(Aggregate::Count),
                Kind::Sum => Some(Aggregate::Sum),
                Kind::DistinctCount => Some(Aggregate::CountDistinct),
                _ => None,
            };
            if let Some(agg) = expected
                && m.agg != agg
            {
                return Err(fail(
                    "numerator.agg",
                    format!("a {kind:?} indicator aggregates with {agg:?}"),
                ));
            }
            (Some(m), None)
        }
    };
    let denominator = match (&r.denominator, r.kind) {
        (None, Kind::Count | Kind::Sum | Kind::DistinctCount | Kind::Derived) => None,
        (Some(_), Kind::Count | Kind::Sum | Kind::DistinctCount | Kind::Derived) => {
            return Err(fail(
                "denominator",
                format!("a {:?} indicator has no denominator", r.kind),
            ));
        }
        (None, _) => {
            return Err(fail(
                "denominator",
                format!("a {:?} indicator needs one", r.kind),
            ));
        }
        (Some(d), _) => Some(measure(d, "denominator", &fail)?),
    };
    match (r.kind, r.per) {
        (Kind::Rate, Some(p)) if p > 0.0 => {}
        (Kind::Rate, _) => return Err(fail("per", "a rate needs a positive `per`".into())),
        (_, Some(_)) => return Err(fail("per", "only rates have `per`".into())),
        _ => {}
    }
    if r.kind == Kind::Ratio {
        if let Some(t) = &r.target
            && !(0.0..=1.0).contains(&t.value)
        {
            return Err(fail(
                "target.value",
                format!("{} is outside a ratio's 0-1 range", t.value),
            ));
        }
        if let Some(t) = &r.thresholds
            && !((0.0..=1.0).contains(&t.warning) && (0.0..=1.0).contains(&t.critical))
        {
            return Err(fail("thresholds", "outside a ratio's 0-1 range".into()));
        }
    }
    if let Some(t) = &r.thresholds {
        let ordered = match r.direction {
            Direction::HigherIsBetter => t.critical <= t.warning,
            Direction::LowerIsBetter => t.critical >= t.warning,
        };
        if !ordered {
            return Err(fail(
                "thresholds",
                "critical must be worse than warning".into(),
            ));
        }
    }
    let mut levels = r.levels.clone();
    levels.sort();
    levels.dedup();
    for (side, m) in [("numerator", &numerator), ("denominator", &denominator)] {
        if let Some(m) = m {
            let finest = fact_table(m.fact).expect("validated").finest_level();
            if let Some(too_fine) = levels.iter().find(|l| **l > finest) {
                return Err(fail(
                    "levels",
                    format!(
                        "{too_fine} is finer than the {side}'s fact table {} (down to {finest})",
                        m.fact
                    ),
                ));
            }
        }
    }
    let mut grains = r.grains.clone();
    grains.sort();
    grains.dedup();
    Ok(Indicator {
        id: r.id.clone(),
        name_zh: r.name_zh.clone(),
        name_en: r.name_en.clone(),
        domain: r.domain,
        unit: r.unit.clone(),
        kind: r.kind,
        per: r.per,
        direction: r.direction,
        levels,
        grains,
        numerator,
        denominator,
        formula,
        target: r.target.clone(),
        thresholds: r.thresholds,
        description: r.description.clone(),
        standard: r.standard.clone(),
        iso: r.iso.clone(),
        source_file: file.to_owned(),
    })
}

/// Derived indicators name existing indicators, allow only levels and grains that all of
/// them allow, and never depend on themselves.
fn check_derived(indicators: &[Indicator]) -> Result<(), CatalogueError> {
    let by_id: BTreeMap<&str, &Indicator> = indicators.iter().map(|i| (i.id.as_str(), i)).collect();
    for ind in indicators {
        let Some(formula) = &ind.formula else {
            continue;
        };
        let fail = |field: &str, message: String| CatalogueError::Field {
            file: ind.source_file.clone(),
            indicator: ind.id.clone(),
            field: field.to_owned(),
            message,
        };
        for id in formula.indicators() {
            let Some(dep) = by_id.get(id) else {
                return Err(fail("formula", format!("unknown indicator {id:?}")));
            };
            if let Some(l) = ind.levels.iter().find(|l| !dep.levels.contains(l)) {
                return Err(fail("levels", format!("{id} is not computed at level {l}")));
            }
            if let Some(g) = ind.grains.iter().find(|g| !dep.grains.contains(g)) {
                return Err(fail("grains", format!("{id} is not computed per {g}")));
            }
        }
        // Depth-first walk from this indicator; reaching it again is a cycle.
        let mut stack: Vec<Vec<&str>> = vec![vec![ind.id.as_str()]];
        while let Some(path) = stack.pop() {
            let last: &Indicator = by_id[path.last().expect("non-empty path")];
            for next in last.formula.iter().flat_map(|f| f.indicators()) {
                if next == ind.id {
                    let mut cycle = path.clone();
                    cycle.push(next);
                    return Err(CatalogueError::Cycle {
                        cycle: cycle.join(" -> "),
                        file: ind.source_file.clone(),
                    });
                }
                if !path.contains(&next) && by_id.contains_key(next) {
                    let mut longer = path.clone();
                    longer.push(next);
                    stack.push(longer);
                }
            }
        }
    }
    Ok(())
}

fn measure(
    m: &RawMeasure,
    side: &str,
    fail: &dyn Fn(&str, String) -> CatalogueError,
) -> Result<Measure, CatalogueError> {
    let table: &'static FactTable = fact_table(&m.fact).ok_or_else(|| {
        fail(
            &format!("{side}.fact"),
            format!("unknown fact table {:?}", m.fact),
        )
    })?;
    match (m.agg, &m.column) {
        (Aggregate::Count, None) => {}
        (Aggregate::Count, Some(_)) => {
            return Err(fail(
                &format!("{side}.column"),
                "count takes no column".into(),
            ));
        }
        (_, None) => {
            return Err(fail(
                &format!("{side}.column"),
                format!("{:?} needs a column", m.agg),
            ));
        }
        (agg, Some(c)) => {
            let col = table.column(c).ok_or_else(|| {
                fail(
                    &format!("{side}.column"),
                    format!("unknown column {c:?} of {}", table.name),
                )
            })?;
            if agg == Aggregate::Sum && !col.ty.is_numeric() {
                return Err(fail(
                    &format!("{side}.column"),
                    format!("{c:?} is not numeric"),
                ));
            }
        }
    }
    if let Some(t) = &m.time {
        let col = table.column(t).ok_or_else(|| {
            fail(
                &format!("{side}.time"),
                format!("unknown column {t:?} of {}", table.name),
            )
        })?;
        if col.ty != crate::facts::ColumnType::Timestamp {
            return Err(fail(
                &format!("{side}.time"),
                format!("{t:?} is not a timestamp"),
            ));
        }
    }
    let conditions = m
        .filter
        .iter()
        .map(|f| Condition::parse(f, table))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(&format!("{side}.filter"), e))?;
    Ok(Measure {
        fact: table.name,
        agg: m.agg,
        column: m.column.clone(),
        time: m.time.clone(),
        filter: m.filter.clone(),
        conditions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalogue_is_valid() {
        let c = Catalogue::from_sources(
            BUILTIN_FILES
                .iter()
                .map(|(n, s)| (n.to_string(), s.to_string())),
        )
        .unwrap();
        assert!(c.indicators.len() >= 40, "{}", c.indicators.len());
        for d in Domain::ALL {
            assert!(
                c.indicators.iter().any(|i| i.domain == d),
                "no indicator in {d:?}"
            );
        }
        for k in Kind::ALL {
            assert!(
                c.indicators.iter().any(|i| i.kind == k),
                "no {k:?} indicator"
            );
        }
        // Every 2025 target the provincial plan names.
        for (id, value) in [
            ("one_thing_completion_rate", 0.80),
            ("one_class_completion_rate", 0.80),
            ("one_body_completion_rate", 0.80),
            ("mobile_enforcement_coverage", 0.95),
            ("sufu_portal_entry_rate", 0.90),
            ("private_network_integration_rate", 0.90),
            ("system_cloud_rate", 0.95),
            ("data_sharing_on_demand_rate", 0.99),
        ] {
            let t = c.get(id).and_then(|i| i.target.as_ref());
            assert_eq!(t.map(|t| (t.value, t.year)), Some((value, 2025)), "{id}");
        }
        let on_time = c.get("hotline_on_time_rate").unwrap();
        assert_eq!(on_time.kind, Kind::Ratio);
        let one_thing = c.get("one_thing_completion_rate").unwrap();
        assert_eq!(one_thing.target.as_ref().unwrap().value, 0.80);
        assert_eq!(c.get("hotline_intensity").unwrap().per, Some(10_000.0));
    }

    fn one(body: &str) -> Result<Catalogue, CatalogueError> {
        let text = format!(
            r#"[[indicator]]
id = "x"
name_zh = "x"
name_en = "x"
domain = "governance"
unit = "%"
direction = "higher_is_better"
levels = ["city", "grid"]
grains = ["month"]
description = "x"
{body}"#
        );
        Catalogue::from_sources([("test.toml".to_string(), text)])
    }

    #[test]
    fn errors_name_file_indicator_and_field() {
        let ratio = "kind = \"ratio\"\n[indicator.numerator]\nfact = \"work_orders\"\nagg = \"count\"\ntime = \"due_at\"\n";
        let cases = [
            (
                "kind = \"count\"\n[indicator.numerator]\nfact = \"orders\"\nagg = \"count\"\ntime = \"due_at\"\n",
                "numerator.fact",
                "unknown fact table",
            ),
            (
                "kind = \"count\"\n[indicator.numerator]\nfact = \"work_orders\"\nagg = \"count\"\ntime = \"due\"\n",
                "numerator.time",
                "unknown column",
            ),
            (
                "kind = \"count\"\n[indicator.numerator]\nfact = \"work_orders\"\nagg = \"count\"\ntime = \"due_at\"\nfilter = [\"closed <= due_at\"]\n",
                "numerator.filter",
                "unknown column",
            ),
            (ratio, "denominator", "needs one"),
            (
                "kind = \"count\"\n[indicator.numerator]\nfact = \"hotline_calls\"\nagg = \"count\"\ntime = \"day\"\n",
                "levels",
                "finer than",
            ),
            (
                "kind = \"derived\"\nformula = \"nope / 2\"\n",
                "formula",
                "unknown indicator",
            ),
            (
                "kind = \"derived\"\nformula = \"(1 +\"\n",
                "formula",
                "ends too early",
            ),
            (
                "kind = \"sum\"\n[indicator.numerator]\nfact = \"work_orders\"\nagg = \"count\"\ntime = \"due_at\"\n",
                "numerator.agg",
                "aggregates with Sum",
            ),
            (
                &format!(
                    "{ratio}[indicator.denominator]\nfact = \"work_orders\"\nagg = \"count\"\ntime = \"due_at\"\n[indicator.target]\nvalue = 80.0\nyear = 2025\nsource = \"plan\"\n"
                ),
                "target.value",
                "0-1",
            ),
        ];
        for (body, field, msg) in cases {
            let e = one(body).unwrap_err().to_string();
            assert!(e.contains(&format!("`{field}`")), "{e}");
            assert!(e.contains(msg), "{e}");
            assert!(e.contains("\"x\"") && e.ends_with("in test.toml"), "{e}");
        }
    }

    #[test]
    fn malformed_toml_names_the_file_and_place() {
        let e = Catalogue::from_sources([(
            "broken.toml".to_string(),
            "[[indicator]\nid = \"x\"\n".to_string(),
        )])
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("malformed TOML"), "{e}");
        assert!(e.contains("line 1"), "{e}");
        assert!(e.ends_with("in broken.toml"), "{e}");
    }

    #[test]
    fn derived_cycles_are_named() {
        let derived = |id: &str, formula: &str| {
            format!(
                "[[indicator]]\nid = \"{id}\"\nname_zh = \"x\"\nname_en = \"x\"\ndomain = \"economy\"\nunit = \"x\"\nkind = \"derived\"\nformula = \"{formula}\"\ndirection = \"higher_is_better\"\nlevels = [\"city\"]\ngrains = [\"year\"]\ndescription = \"x\"\n"
            )
        };
        let text = derived("a", "b + 1") + &derived("b", "c * 2") + &derived("c", "a - 1");
        let e = Catalogue::from_sources([("cycle.toml".to_string(), text)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("a -> b -> c -> a"), "{e}");
        assert!(e.ends_with("in cycle.toml"), "{e}");
        let ok = derived("a", "b + 1") + &derived("b", "2");
        Catalogue::from_sources([("ok.toml".to_string(), ok)]).unwrap();
    }

    #[test]
    fn status_respects_direction() {
        let c = Catalogue::builtin();
        let on_time = c.get("hotline_on_time_rate").unwrap();
        let t = on_time.thresholds.unwrap();
        assert_eq!(on_time.status(Some(t.warning + 0.01)), Status::Ok);
        assert_eq!(on_time.status(Some(t.warning - 0.001)), Status::Warning);
        assert_eq!(on_time.status(Some(t.critical - 0.001)), Status::Critical);
        assert_eq!(on_time.status(None), Status::NoData);
        let hours = c.get("hotline_mean_handling_hours").unwrap();
        let t = hours.thresholds.unwrap();
        assert_eq!(hours.status(Some(t.critical + 1.0)), Status::Critical);
        assert_eq!(hours.status(Some(t.warning - 1.0)), Status::Ok);
        let intensity = c.get("hotline_intensity").unwrap();
        assert_eq!(intensity.value(5.0, Some(20_000.0)), Some(2.5));
        assert_eq!(
            intensity.status(Some(1e9)),
            Status::Ok,
            "no thresholds, no alarm"
        );
        assert_eq!(on_time.value(5.0, Some(0.0)), None);
    }
}
