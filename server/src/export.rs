//! Tabular exports of indicator values shared by the CLI and the API: plain CSV and SDMX-CSV.

use analytics::IndicatorValue;
use indicators::{Grain, Indicator};

fn cell(v: Option<f64>) -> String {
    v.map(|v| format!("{v}")).unwrap_or_default()
}

fn finish(w: csv::Writer<Vec<u8>>) -> Vec<u8> {
    w.into_inner().expect("writing to memory cannot fail")
}

/// One row per value with every field of [`IndicatorValue`].
pub fn values_csv(rows: &[IndicatorValue]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let header = [
        "indicator",
        "region_code",
        "region_name",
        "period",
        "value",
        "numerator",
        "denominator",
        "unit",
        "target",
        "gap_to_target",
        "status",
        "previous_value",
        "change_vs_previous",
        "last_year_value",
        "change_vs_last_year",
        "rank",
        "siblings",
        "support",
        "partial",
        "suppressed",
    ];
    w.write_record(header).expect("in memory");
    for r in rows {
        let record: [&str; 20] = [
            &r.indicator,
            &r.region_code,
            &r.region_name,
            &r.period,
            &cell(r.value),
            &if r.suppressed {
                String::new()
            } else {
                format!("{}", r.numerator)
            },
            &cell(r.denominator),
            &r.unit,
            &cell(r.target),
            &cell(r.gap_to_target),
            r.status.as_str(),
            &cell(r.previous_value),
            &cell(r.change_vs_previous),
            &cell(r.last_year_value),
            &cell(r.change_vs_last_year),
            &r.rank.map(|x| x.to_string()).unwrap_or_default(),
            &r.siblings.to_string(),
            &cell(r.support),
            if r.partial { "true" } else { "false" },
            if r.suppressed { "true" } else { "false" },
        ];
        w.write_record(record).expect("in memory");
    }
    finish(w)
}

/// SDMX frequency codes.
fn frequency(grain: Grain) -> &'static str {
    match grain {
        Grain::Day => "D",
        Grain::Week => "W",
        Grain::Month => "M",
        Grain::Quarter => "Q",
        Grain::Year => "A",
    }
}

/// The dataflow every export belongs to.
pub const SDMX_DATAFLOW: &str = "DATABRAIN:DF_INDICATORS(1.0)";

/// SDMX-CSV (version 1): the dataflow, the dimensions FREQ, REF_AREA, INDICATOR and
/// TIME_PERIOD, the observation and the attributes UNIT_MEASURE, OBS_STATUS (`A` normal,
/// `P` provisional for a period the data does not cover to its end, `M` missing) and
/// CONF_STATUS (`F` free, `C` confidential: withheld from this audience, with no value). Period labels (2024, 2024-Q3, 2024-07, 2024-W27, 2024-07-15) are already the
/// ISO 8601 forms SDMX uses.
pub fn values_sdmx_csv(indicator: &Indicator, grain: Grain, rows: &[IndicatorValue]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "DATAFLOW",
        "FREQ",
        "REF_AREA",
        "INDICATOR",
        "TIME_PERIOD",
        "OBS_VALUE",
        "UNIT_MEASURE",
        "OBS_STATUS",
        "CONF_STATUS",
    ])
    .expect("in memory");
    for r in rows {
        let record: [&str; 9] = [
            SDMX_DATAFLOW,
            frequency(grain),
            &r.region_code,
            &indicator.id,
            &r.period,
            &cell(r.value),
            &indicator.unit,
            match (r.value.is_some(), r.partial) {
                (false, _) => "M",
                (true, true) => "P",
                (true, false) => "A",
            },
            if r.suppressed { "C" } else { "F" },
        ];
        w.write_record(record).expect("in memory");
    }
    finish(w)
}
