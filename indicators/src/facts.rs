//! The fact tables that indicators are computed over: their columns and types.
//!
//! This is the one schema shared by the catalogue (to validate measures and filters), the
//! analytics engine (to create tables and read department files) and the generator (to write
//! them). Every fact row is keyed on its community code and grid id, from which every region
//! level above follows by prefix.

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

#[derive(Clone, Copy, Debug)]
pub struct FactTable {
    pub name: &'static str,
    pub description: &'static str,
    /// The row's identity, used to make loads idempotent.
    pub key: &'static str,
    /// When a row enters the system (e.g. a work order's creation). The data of a load is
    /// complete up to the largest value of this column; `None` for tables without time.
    pub recorded_at: Option<&'static str>,
    pub columns: &'static [Column],
}

impl FactTable {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Columns read from files (everything but derived columns), in file order.
    pub fn file_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| c.derived_sql.is_none())
    }
}

use ColumnType::*;

pub const WORK_ORDERS: FactTable = FactTable {
    name: "work_orders",
    description: "12345 hotline work orders",
    key: "order_id",
    recorded_at: Some("created_at"),
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
        derived(
            "handling_hours",
            Double,
            "CAST(EXTRACT(EPOCH FROM (closed_at - created_at)) AS DOUBLE) / 3600.0",
        ),
    ],
};

pub const SERVICE_APPLICATIONS: FactTable = FactTable {
    name: "service_applications",
    description: "government service applications (政务服务办件)",
    key: "app_id",
    recorded_at: Some("submitted_at"),
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
        col("community_code", Text),
        col("grid_id", Text),
        derived(
            "handling_hours",
            Double,
            "CAST(EXTRACT(EPOCH FROM (completed_at - submitted_at)) AS DOUBLE) / 3600.0",
        ),
    ],
};

pub const POPULATION: FactTable = FactTable {
    name: "population",
    description: "resident population per grid cell",
    key: "grid_id",
    recorded_at: None,
    columns: &[
        col("grid_id", Text),
        col("community_code", Text),
        col("residents", Integer),
    ],
};

pub const FACT_TABLES: &[FactTable] = &[WORK_ORDERS, SERVICE_APPLICATIONS, POPULATION];

pub fn fact_table(name: &str) -> Option<&'static FactTable> {
    FACT_TABLES.iter().find(|t| t.name == name)
}
