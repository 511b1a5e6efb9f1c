//! The fact tables that indicators are computed over: their columns and types.
//!
//! This is the one schema shared by the catalogue (to validate measures and filters), the
//! analytics engine (to create tables and read department files) and the generator (to write
//! them). Every fact row is keyed on its community code and grid id, from which every region
//! level above follows by prefix. Tables published at a coarser level (county statistics, call
//! centre reports per community) say so with their [`RegionKey`].

use crate::level::Level;
use crate::period::Grain;

/// Column types, named after their SQL counterparts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    Integer,
    Double,
    Boolean,
    Timestamp,
}

impl ColumnType {
    pub fn sql(self) -> &'static str {
        match self {
            ColumnType::Text => "VARCHAR",
            ColumnType::Integer => "BIGINT",
            ColumnType::Double => "DOUBLE",
            ColumnType::Boolean => "BOOLEAN",
            ColumnType::Timestamp => "TIMESTAMP",
        }
    }

    pub fn is_numeric(self) -> bool {
        matches!(self, ColumnType::Integer | ColumnType::Double)
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Column {
    pub name: &'static str,
    pub ty: ColumnType,
    pub nullable: bool,
    /// Computed at ingest from other columns rather than read from files, as SQL over the
    /// row (e.g. hours between two timestamps).
    pub derived_sql: Option<&'static str>,
}

const fn col(name: &'static str, ty: ColumnType) -> Column {
    Column {
        name,
        ty,
        nullable: false,
        derived_sql: None,
    }
}

const fn opt(name: &'static str, ty: ColumnType) -> Column {
    Column {
        name,
        ty,
        nullable: true,
        derived_sql: None,
    }
}

const fn derived(name: &'static str, ty: ColumnType, sql: &'static str) -> Column {
    Column {
        name,
        ty,
        nullable: true,
        derived_sql: Some(sql),
    }
}

/// How a fact table's rows are placed in the region tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKey {
    /// `community_code` (12 digits) and `grid_id` (`<community>-<cell>`): every level down
    /// to grid cells.
    Grid,
    /// One column holding a division code of `level` (e.g. county statistics): every level
    /// from the province down to that one.
    Column { name: &'static str, level: Level },
}

/// What a fact table's rows are, for disclosure control.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disclosure {
    /// Each row is one record about a person, a case or a request (a work order, an
    /// application, a call-centre day): a value resting on few rows can identify them, so
    /// small cells are withheld from audiences that may not see them.
    Records,
    /// Rows are published official statistics (county GDP, resident population): they are
    /// already aggregates and are shown as they are.
    Published,
}

/// Where a fact table's rows come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Loaded from files (CSV or Parquet) with the table's file columns.
    File,
    /// Recomputed at every load by this `SELECT` over other fact tables, in column order.
    Derived(&'static str),
    /// Written by the engine itself, never loaded from files: the task ledger, one row per
    /// supervised task, rewritten from the task's events at each of them.
    System,
}

/// A rule every row must satisfy, as a SQL condition over the typed row, with the reason
/// given when a row breaks it.
#[derive(Clone, Copy, Debug)]
pub struct RowRule {
    pub sql: &'static str,
    pub reason: &'static str,
}

const fn rule(sql: &'static str, reason: &'static str) -> RowRule {
    RowRule { sql, reason }
}

#[derive(Clone, Copy, Debug)]
pub struct FactTable {
    pub name: &'static str,
    pub description: &'static str,
    /// The columns that identify a row; loading a row whose key exists replaces it, so
    /// loads are idempotent.
    pub key: &'static [&'static str],
    /// When a row enters the system (e.g. a work order's creation). The data of a load is
    /// complete up to the largest value of this column; `None` for tables without time.
    pub recorded_at: Option<&'static str>,
    /// The stretch of time one row describes: a day for events, a quarter for quarterly
    /// statistics and censuses. Data recorded up to a row's time is complete up to the end of
    /// the period of this grain that holds it.
    pub row_covers: Grain,
    /// Rows are the state at a census (a stock, such as systems on the cloud) rather than
    /// events in a period (a flow): a year's own state is its last census.
    pub census: bool,
    /// Whether small-cell suppression applies to values computed from this table.
    pub disclosure: Disclosure,
    /// The text columns a value may be broken down by (`Engine::breakdown`). Record
    /// identifiers, free text and region keys are never dimensions: a breakdown by them would
    /// list single records.
    pub dimensions: &'static [&'static str],
    pub region: RegionKey,
    pub source: Source,
    pub columns: &'static [Column],
    /// Ranges and orderings every row must satisfy (nulls of nullable columns pass).
    pub rules: &'static [RowRule],
}

impl FactTable {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Columns read from files (everything but derived columns), in file order.
    pub fn file_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| c.derived_sql.is_none())
    }

    /// The finest level this table's rows can be summed at.
    pub fn finest_level(&self) -> Level {
        match self.region {
            RegionKey::Grid => Level::Grid,
            RegionKey::Column { level, .. } => level,
        }
    }

    /// SQL giving a row's region code at `level` (which must not be finer than
    /// [`FactTable::finest_level`]).
    pub fn region_expr(&self, level: Level) -> String {
        match (self.region, level.code_len()) {
            (RegionKey::Grid, None) => "grid_id".to_owned(),
            (RegionKey::Grid, Some(12)) => "community_code".to_owned(),
            (RegionKey::Grid, Some(n)) => format!("SUBSTR(community_code, 1, {n})"),
            (RegionKey::Column { name, level: own }, _) if own == level => name.to_owned(),
            (RegionKey::Column { name, .. }, Some(n)) => format!("SUBSTR({name}, 1, {n})"),
            (RegionKey::Column { name, .. }, None) => name.to_owned(),
        }
    }

    /// The column a region-subtree filter applies to with `LIKE 'code%'`.
    pub fn region_column(&self) -> &'static str {
        match self.region {
            RegionKey::Grid => "community_code",
            RegionKey::Column { name, .. } => name,
        }
    }
}

use ColumnType::*;

/// Hours between two timestamp columns, for `derived` handling-time columns.
macro_rules! hours_between {
    ($from:literal, $to:literal) => {
        concat!(
            "CAST(EXTRACT(EPOCH FROM (",
            $to,
            " - ",
            $from,
            ")) AS DOUBLE) / 3600.0"
        )
    };
}

pub const WORK_ORDERS: FactTable = FactTable {
    name: "work_orders",
    description: "12345 hotline work orders (request types and content codes modelled on GB/T 39666-2020, synthetic in generated data)",
    key: &["order_id"],
    recorded_at: Some("created_at"),
    row_covers: Grain::Day,
    census: false,
    disclosure: Disclosure::Records,
    dimensions: &["request_type", "content_code", "channel"],
    region: RegionKey::Grid,
    source: Source::File,
    columns: &[
        col("order_id", Text),
        col("created_at", Timestamp),
        col("due_at", Timestamp),
        opt("closed_at", Timestamp),
        col("request_type", Text),
        col("content_code", Text),
        col("channel", Text),
        col("community_code", Text),
        col("grid_id", Text),
        opt("lon", Double),
        opt("lat", Double),
        opt("satisfaction", Integer),
        opt("repeat_of", Text),
        derived(
            "handling_hours",
            Double,
            hours_between!("created_at", "closed_at"),
        ),
    ],
    rules: &[
        rule("due_at >= created_at", "due_at is before created_at"),
        rule(
            "closed_at IS NULL OR closed_at >= created_at",
            "closed_at is before created_at",
        ),
        rule(
            "satisfaction IS NULL OR satisfaction BETWEEN 1 AND 5",
            "satisfaction is outside 1-5",
        ),
        rule(
            "lon IS NULL OR lon BETWEEN -180 AND 180",
            "lon is outside -180..180",
        ),
        rule(
            "lat IS NULL OR lat BETWEEN -90 AND 90",
            "lat is outside -90..90",
        ),
    ],
};

/// The kinds of event in a 12345 work order's life (受理、派单、签收、办理、办结、回访 with its rating, and
/// returns, reassignments, extensions, merges of duplicates and reopenings).
pub const WORK_ORDER_EVENT_KINDS: [&str; 9] = [
    "accept",
    "dispatch",
    "acknowledge",
    "return",
    "extend",
    "merge",
    "close",
    "visit",
    "reopen",
];

pub const WORK_ORDER_EVENTS: FactTable = FactTable {
    name: "work_order_events",
    description: "the life of each 12345 work order, event by event: accepted by the hotline, dispatched (again after a return) to an organisation, acknowledged, extended, merged into an earlier duplicate, closed, visited back with a rating, reopened after an unhappy visit",
    key: &["order_id", "seq"],
    recorded_at: Some("event_at"),
    row_covers: Grain::Day,
    census: false,
    disclosure: Disclosure::Records,
    dimensions: &["kind", "org"],
    region: RegionKey::Grid,
    source: Source::File,
    columns: &[
        col("order_id", Text),
        col("seq", Integer),
        col("event_at", Timestamp),
        col("kind", Text),
        // The organisation acting (the hotline, or the one the order is dispatched to).
        opt("org", Text),
        // The time limit from this event on (dispatch, extend).
        opt("due_at", Timestamp),
        // The earlier order a duplicate is merged into (merge).
        opt("merged_into", Text),
        // The return visit's rating, 1 to 5 (visit).
        opt("satisfaction", Integer),
        col("community_code", Text),
        col("grid_id", Text),
    ],
    rules: &[
        rule(
            "kind IN ('accept', 'dispatch', 'acknowledge', 'return', 'extend', 'merge', 'close', 'visit', 'reopen')",
            "kind is not one of accept, dispatch, acknowledge, return, extend, merge, close, visit, reopen",
        ),
        rule("seq >= 1", "seq is below 1"),
        rule(
            "satisfaction IS NULL OR satisfaction BETWEEN 1 AND 5",
            "satisfaction is outside 1-5",
        ),
        rule(
            "kind NOT IN ('dispatch', 'extend') OR due_at IS NOT NULL",
            "a dispatch or extend event has no due_at",
        ),
        rule(
            "kind <> 'merge' OR merged_into IS NOT NULL",
            "a merge event has no merged_into",
        ),
    ],
};

pub const WORK_ORDER_OUTCOMES: FactTable = FactTable {
    name: "work_order_outcomes",
    description: "each 12345 work order as its events leave it: first and final closure, the time limit in force at the end (extensions included), whether it was closed on time and the first time (no return, no reopening), merged duplicates marked",
    key: &["order_id"],
    recorded_at: Some("accepted_at"),
    row_covers: Grain::Day,
    census: false,
    disclosure: Disclosure::Records,
    dimensions: &[],
    region: RegionKey::Grid,
    source: Source::Derived(
        "SELECT order_id, MIN(community_code), MIN(grid_id), MIN(event_at) FILTER (WHERE kind = 'accept'), \
         arg_max(due_at, seq) FILTER (WHERE due_at IS NOT NULL), MIN(event_at) FILTER (WHERE kind = 'close'), \
         MAX(event_at) FILTER (WHERE kind = 'close'), COUNT(*) FILTER (WHERE kind = 'dispatch'), \
         COUNT(*) FILTER (WHERE kind = 'return'), COUNT(*) FILTER (WHERE kind = 'reopen'), \
         COUNT(*) FILTER (WHERE kind = 'extend'), COUNT(*) FILTER (WHERE kind = 'merge') > 0, \
         CASE WHEN COUNT(*) FILTER (WHERE kind = 'close') = 0 THEN NULL \
              WHEN MAX(event_at) FILTER (WHERE kind = 'close') <= arg_max(due_at, seq) FILTER (WHERE due_at IS NOT NULL) THEN 1 ELSE 0 END, \
         CASE WHEN COUNT(*) FILTER (WHERE kind = 'close') = 0 THEN NULL \
              WHEN COUNT(*) FILTER (WHERE kind IN ('return', 'reopen')) = 0 THEN 1 ELSE 0 END \
         FROM work_order_events GROUP BY order_id",
    ),
    columns: &[
        col("order_id", Text),
        col("community_code", Text),
        col("grid_id", Text),
        opt("accepted_at", Timestamp),
        opt("due_at", Timestamp),
        opt("first_closed_at", Timestamp),
        opt("closed_at", Timestamp),
        col("dispatches", Integer),
        col("returns", Integer),
        col("reopenings", Integer),
        col("extensions", Integer),
        col("merged", Boolean),
        // 1 closed (finally) by the time limit in force, 0 late, NULL open.
        opt("on_time", Integer),
        // 1 closed without a return or a reopening, 0 otherwise, NULL open.
        opt("first_time", Integer),
    ],
    rules: &[],
};

pub const HOTLINE_CALLS: FactTable = FactTable {
    name: "hotline_calls",
    description: "12345 hotline calls per community and day, from the call centre's ACD reports",
    key: &["community_code", "day"],
    recorded_at: Some("day"),
    row_covers: Grain::Day,
    census: false,
    disclosure: Disclosure::Records,
    dimensions: &[],
    region: RegionKey::Column {
        name: "community_code",
        level: Level::Community,
    },
    source: Source::File,
    columns: &[
        col("day", Timestamp),
        col("community_code", Text),
        col("calls_offered", Integer),
        col("calls_answered", Integer),
    ],
    rules: &[
        rule("calls_offered >= 0", "calls_offered is negative"),
        rule(
            "calls_answered BETWEEN 0 AND calls_offered",
            "calls_answered is outside 0..calls_offered",
        ),
    ],
};

pub const SERVICE_APPLICATIONS: FactTable = FactTable {
    name: "service_applications",
    description: "government service applications (政务服务办件) with 好差评 ratings",
    key: &["app_id"],
    recorded_at: Some("submitted_at"),
    row_covers: Grain::Day,
    census: false,
    disclosure: Disclosure::Records,
    dimensions: &["item_code", "item_name"],
    region: RegionKey::Grid,
    source: Source::File,
    columns: &[
        col("app_id", Text),
        col("item_code", Text),
        col("item_name", Text),
        col("one_thing", Boolean),
        col("joint_handled", Boolean),
        col("online", Boolean),
        col("submitted_at", Timestamp),
        col("due_at", Timestamp),
        opt("completed_at", Timestamp),
        opt("rating", Integer),
        opt("rectified_at", Timestamp),
        col("community_code", Text),
        col("grid_id", Text),
        derived(
            "handling_hours",
            Double,
            hours_between!("submitted_at", "completed_at"),
        ),
    ],
    rules: &[
        rule("due_at >= submitted_at", "due_at is before submitted_at"),
        rule(
            "completed_at IS NULL OR completed_at >= submitted_at",
            "completed_at is before submitted_at",
        ),
        rule(
            "rating IS NULL OR rating BETWEEN 1 AND 5",
            "rating is outside 1-5",
        ),
        rule(
            "rectified_at IS NULL OR (rating IS NOT NULL AND completed_at IS NOT NULL AND rectified_at >= completed_at)",
            "rectified_at needs a rating and must follow completed_at",
        ),
    ],
};

pub const SERVICE_SCENARIOS: FactTable = FactTable {
    name: "service_scenarios",
    description: "quarterly census of service items and 一件事/一类事/一体事 scenarios per county: whether each is online or implemented",
    key: &["scenario_id", "census_at"],
    recorded_at: Some("census_at"),
    row_covers: Grain::Quarter,
    census: true,
    disclosure: Disclosure::Records,
    dimensions: &["kind"],
    region: RegionKey::Column {
        name: "county_code",
        level: Level::County,
    },
    source: Source::File,
    columns: &[
        col("scenario_id", Text),
        col("census_at", Timestamp),
        col("county_code", Text),
        col("kind", Text),
        col("name", Text),
        col("online_available", Boolean),
        col("implemented", Boolean),
    ],
    rules: &[rule(
        "kind IN ('item', 'one_thing', 'one_class', 'one_body')",
        "kind is not one of item, one_thing, one_class, one_body",
    )],
};

pub const GRID_EVENTS: FactTable = FactTable {
    name: "grid_events",
    description: "grid governance events (网格事件) found by grid workers or reported, with their disposal",
    key: &["event_id"],
    recorded_at: Some("reported_at"),
    row_covers: Grain::Day,
    census: false,
    disclosure: Disclosure::Records,
    dimensions: &["category", "source"],
    region: RegionKey::Grid,
    source: Source::File,
    columns: &[
        col("event_id", Text),
        col("reported_at", Timestamp),
        col("due_at", Timestamp),
        opt("resolved_at", Timestamp),
        col("category", Text),
        col("source", Text),
        col("community_code", Text),
        col("grid_id", Text),
        derived(
            "handling_hours",
            Double,
            hours_between!("reported_at", "resolved_at"),
        ),
    ],
    rules: &[
        rule("due_at >= reported_at", "due_at is before reported_at"),
        rule(
            "resolved_at IS NULL OR resolved_at >= reported_at",
            "resolved_at is before reported_at",
        ),
    ],
};

pub const ENFORCEMENT_CASES: FactTable = FactTable {
    name: "enforcement_cases",
    description: "administrative enforcement cases, flagged when handled with the mobile (掌上执法) app",
    key: &["case_id"],
    recorded_at: Some("opened_at"),
    row_covers: Grain::Day,
    census: false,
    disclosure: Disclosure::Records,
    dimensions: &["department"],
    region: RegionKey::Grid,
    source: Source::File,
    columns: &[
        col("case_id", Text),
        col("opened_at", Timestamp),
        opt("closed_at", Timestamp),
        col("department", Text),
        col("mobile", Boolean),
        col("community_code", Text),
        col("grid_id", Text),
    ],
    rules: &[rule(
        "closed_at IS NULL OR closed_at >= opened_at",
        "closed_at is before opened_at",
    )],
};

pub const AIR_QUALITY: FactTable = FactTable {
    name: "air_quality",
    description: "hourly air-quality readings per monitoring station (HJ 633-2012 AQI)",
    key: &["station_id", "measured_at"],
    recorded_at: Some("measured_at"),
    row_covers: Grain::Day,
    census: false,
    disclosure: Disclosure::Records,
    dimensions: &[],
    region: RegionKey::Column {
        name: "county_code",
        level: Level::County,
    },
    source: Source::File,
    columns: &[
        col("station_id", Text),
        col("measured_at", Timestamp),
        col("county_code", Text),
        col("aqi", Integer),
        col("pm25_ug_m3", Double),
    ],
    rules: &[
        rule("aqi BETWEEN 0 AND 500", "aqi is outside 0-500"),
        rule(
            "pm25_ug_m3 BETWEEN 0 AND 1000",
            "pm25_ug_m3 is outside 0-1000",
        ),
    ],
};

pub const AIR_QUALITY_DAYS: FactTable = FactTable {
    name: "air_quality_days",
    description: "station days with at least 20 valid hours (GB 3095-2012), from air_quality: mean PM2.5, daily AQI and whether the day was good (AQI <= 100)",
    key: &["station_id", "day"],
    recorded_at: Some("day"),
    row_covers: Grain::Day,
    census: false,
    disclosure: Disclosure::Records,
    dimensions: &[],
    region: RegionKey::Column {
        name: "county_code",
        level: Level::County,
    },
    source: Source::Derived(
        "SELECT station_id, CAST(CAST(measured_at AS DATE) AS TIMESTAMP) AS day, MIN(county_code), \
         CAST(ROUND(AVG(aqi)) AS BIGINT) AS aqi, AVG(pm25_ug_m3), ROUND(AVG(aqi)) <= 100, COUNT(*) \
         FROM air_quality GROUP BY 1, 2 HAVING COUNT(*) >= 20",
    ),
    columns: &[
        col("station_id", Text),
        col("day", Timestamp),
        col("county_code", Text),
        col("aqi", Integer),
        col("pm25_ug_m3", Double),
        col("good", Boolean),
        col("hours", Integer),
    ],
    rules: &[],
};

pub const ECONOMY: FactTable = FactTable {
    name: "economy",
    description: "quarterly economic statistics per county (100 million CNY)",
    key: &["county_code", "quarter_start"],
    recorded_at: Some("quarter_start"),
    row_covers: Grain::Quarter,
    census: false,
    disclosure: Disclosure::Published,
    dimensions: &[],
    region: RegionKey::Column {
        name: "county_code",
        level: Level::County,
    },
    source: Source::File,
    columns: &[
        col("county_code", Text),
        col("quarter_start", Timestamp),
        col("gdp_100m_cny", Double),
        col("gdp_comparable_100m_cny", Double),
        col("gdp_last_year_100m_cny", Double),
        col("tertiary_100m_cny", Double),
    ],
    rules: &[
        rule("gdp_100m_cny >= 0", "gdp_100m_cny is negative"),
        rule(
            "gdp_comparable_100m_cny >= 0",
            "gdp_comparable_100m_cny is negative",
        ),
        rule(
            "gdp_last_year_100m_cny >= 0",
            "gdp_last_year_100m_cny is negative",
        ),
        rule(
            "tertiary_100m_cny BETWEEN 0 AND gdp_100m_cny",
            "tertiary_100m_cny is outside 0..gdp_100m_cny",
        ),
        rule(
            "EXTRACT(DAY FROM quarter_start) = 1 AND EXTRACT(MONTH FROM quarter_start) IN (1, 4, 7, 10)",
            "quarter_start is not the first day of a quarter",
        ),
    ],
};

pub const IT_SYSTEMS: FactTable = FactTable {
    name: "it_systems",
    description: "quarterly census of government IT systems, apps and private networks: cloud, integration and 苏服办 portal flags",
    key: &["system_id", "census_at"],
    recorded_at: Some("census_at"),
    row_covers: Grain::Quarter,
    census: true,
    disclosure: Disclosure::Records,
    dimensions: &["department", "kind"],
    region: RegionKey::Column {
        name: "county_code",
        level: Level::County,
    },
    source: Source::File,
    columns: &[
        col("system_id", Text),
        col("census_at", Timestamp),
        col("county_code", Text),
        col("department", Text),
        col("kind", Text),
        col("classified", Boolean),
        col("on_cloud", Boolean),
        col("integrated", Boolean),
        col("in_portal", Boolean),
    ],
    rules: &[rule(
        "kind IN ('system', 'app', 'network')",
        "kind is not one of system, app, network",
    )],
};

pub const DATA_SHARING_REQUESTS: FactTable = FactTable {
    name: "data_sharing_requests",
    description: "requests for public data between departments (公共数据共享申请) and when they were fulfilled",
    key: &["request_id"],
    recorded_at: Some("requested_at"),
    row_covers: Grain::Day,
    census: false,
    disclosure: Disclosure::Records,
    dimensions: &["requesting_department", "providing_department"],
    region: RegionKey::Column {
        name: "county_code",
        level: Level::County,
    },
    source: Source::File,
    columns: &[
        col("request_id", Text),
        col("requested_at", Timestamp),
        col("due_at", Timestamp),
        opt("fulfilled_at", Timestamp),
        col("requesting_department", Text),
        col("providing_department", Text),
        col("county_code", Text),
        derived(
            "handling_hours",
            Double,
            hours_between!("requested_at", "fulfilled_at"),
        ),
    ],
    rules: &[
        rule("due_at >= requested_at", "due_at is before requested_at"),
        rule(
            "fulfilled_at IS NULL OR fulfilled_at >= requested_at",
            "fulfilled_at is before requested_at",
        ),
    ],
};

pub const POPULATION: FactTable = FactTable {
    name: "population",
    description: "resident population per grid cell",
    key: &["grid_id"],
    recorded_at: None,
    row_covers: Grain::Year,
    census: false,
    disclosure: Disclosure::Published,
    dimensions: &[],
    region: RegionKey::Grid,
    source: Source::File,
    columns: &[
        col("grid_id", Text),
        col("community_code", Text),
        col("residents", Integer),
    ],
    rules: &[rule("residents >= 0", "residents is negative")],
};

/// Every fact table, derived ones after the tables they are computed from.
/// The tables loaded from files (departments' data), not derived from others.
pub fn file_tables() -> impl Iterator<Item = &'static FactTable> {
    FACT_TABLES.iter().filter(|t| t.source == Source::File)
}

pub const TASK_OUTCOMES: FactTable = FactTable {
    name: "task_outcomes",
    description: "supervised tasks (督办) as their events leave them, one row per task: the accountability ledger of the owner organisations",
    key: &["task_id"],
    recorded_at: Some("created_at"),
    row_covers: Grain::Day,
    census: false,
    // A row is one case handled by named people: few of them can point at one official.
    disclosure: Disclosure::Records,
    dimensions: &["owner_org", "indicator", "state"],
    region: RegionKey::Column {
        name: "county_code",
        level: Level::County,
    },
    source: Source::System,
    columns: &[
        col("task_id", Text),
        col("county_code", Text),
        col("region_code", Text),
        col("indicator", Text),
        col("owner_org", Text),
        col("state", Text),
        col("created_at", Timestamp),
        col("deadline_at", Timestamp),
        opt("resolved_at", Timestamp),
        opt("closed_at", Timestamp),
        // 1 resolved by the deadline in force, 0 resolved late or overdue (carded) while
        // open, NULL while open and not yet late.
        opt("on_time", Integer),
        col("reopened", Integer),
        // 0 none, 1 yellow card, 2 red card.
        col("escalated", Integer),
        // 1 verified effective, 0 verified not (yet) effective, NULL not verified.
        opt("effective", Integer),
    ],
    rules: &[],
};

pub const FACT_TABLES: &[FactTable] = &[
    WORK_ORDERS,
    WORK_ORDER_EVENTS,
    WORK_ORDER_OUTCOMES,
    HOTLINE_CALLS,
    SERVICE_APPLICATIONS,
    SERVICE_SCENARIOS,
    GRID_EVENTS,
    ENFORCEMENT_CASES,
    AIR_QUALITY,
    AIR_QUALITY_DAYS,
    ECONOMY,
    IT_SYSTEMS,
    DATA_SHARING_REQUESTS,
    POPULATION,
    TASK_OUTCOMES,
];

pub fn fact_table(name: &str) -> Option<&'static FactTable> {
    FACT_TABLES.iter().find(|t| t.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_rules_and_region_columns_name_real_columns() {
        for t in FACT_TABLES {
            for k in t.key {
                assert!(t.column(k).is_some(), "{}: key {k}", t.name);
            }
            if let Some(r) = t.recorded_at {
                assert_eq!(t.column(r).map(|c| c.ty), Some(Timestamp), "{}", t.name);
            }
            assert!(t.column(t.region_column()).is_some(), "{}", t.name);
            if t.region == RegionKey::Grid {
                assert!(t.column("grid_id").is_some(), "{}", t.name);
            }
        }
    }

    #[test]
    fn dimensions_are_text_columns_and_never_keys_or_regions() {
        for t in FACT_TABLES {
            for d in t.dimensions {
                let c = t
                    .column(d)
                    .unwrap_or_else(|| panic!("{}: dimension {d}", t.name));
                assert_eq!(c.ty, Text, "{}.{d}", t.name);
                assert!(!t.key.contains(d), "{}.{d} is a key", t.name);
                assert!(!d.ends_with("_id"), "{}.{d} names records", t.name);
                assert_ne!(*d, t.region_column(), "{}.{d}", t.name);
                assert!(!["community_code", "grid_id", "county_code"].contains(d));
            }
        }
    }

    #[test]
    fn region_expressions_follow_the_key() {
        assert_eq!(WORK_ORDERS.region_expr(Level::Grid), "grid_id");
        assert_eq!(
            WORK_ORDERS.region_expr(Level::City),
            "SUBSTR(community_code, 1, 4)"
        );
        assert_eq!(ECONOMY.region_expr(Level::County), "county_code");
        assert_eq!(
            ECONOMY.region_expr(Level::Province),
            "SUBSTR(county_code, 1, 2)"
        );
        assert_eq!(ECONOMY.finest_level(), Level::County);
        assert_eq!(
            HOTLINE_CALLS.region_expr(Level::Community),
            "community_code"
        );
    }
}
