//! Time grains and periods, labelled `2024`, `2024-Q3`, `2024-07`, `2024-W27`, `2024-07-15`.
//!
//! A [`Period`] is a half-open date range `[start, end)`; its label is what the SQL emitted by
//! [`crate::sql`] produces for timestamps inside it, so parsed periods and query results agree.

use chrono::{Datelike, Days, Months, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grain {
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl Grain {
    pub const ALL: [Grain; 5] = [
        Grain::Day,
        Grain::Week,
        Grain::Month,
        Grain::Quarter,
        Grain::Year,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Grain::Day => "day",
            Grain::Week => "week",
            Grain::Month => "month",
            Grain::Quarter => "quarter",
            Grain::Year => "year",
        }
    }

    /// SQL in `dialect` that labels the timestamp column `column` with this grain's period
    /// label.
    pub fn sql_label(self, column: &str, dialect: crate::sql::Dialect) -> String {
        let text = dialect.text_type();
        let part = |field: &str| format!("CAST(EXTRACT({field} FROM {column}) AS {text})");
        let padded =
            |field: &str| format!("LPAD(CAST(EXTRACT({field} FROM {column}) AS {text}), 2, '0')");
        match self {
            Grain::Year => part("YEAR"),
            Grain::Quarter => format!("{} || '-Q' || {}", part("YEAR"), part("QUARTER")),
            Grain::Month => format!("{} || '-' || {}", part("YEAR"), padded("MONTH")),
            Grain::Week => format!(
                "{} || '-W' || {}",
                part(dialect.iso_year_field()),
                padded("WEEK")
            ),
            Grain::Day => format!(
                "{} || '-' || {} || '-' || {}",
                part("YEAR"),
                padded("MONTH"),
                padded("DAY")
            ),
        }
    }
}

impl fmt::Display for Grain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown grain {0:?} (expected day, week, month, quarter or year)")]
pub struct ParseGrainError(pub String);

impl FromStr for Grain {
    type Err = ParseGrainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Grain::ALL
            .into_iter()
            .find(|g| g.as_str() == s)
            .ok_or_else(|| ParseGrainError(s.to_owned()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("period {label:?} is not a {grain} period (expected e.g. {example})")]
pub struct PeriodError {
    pub label: String,
    pub grain: Grain,
    pub example: &'static str,
}

/// One period of a grain: the half-open range of days `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    pub grain: Grain,
    pub start: NaiveDate,
}

impl Period {
    /// Parses a period label of the given grain.
    pub fn parse(grain: Grain, label: &str) -> Result<Period, PeriodError> {
        let err = || PeriodError {
            label: label.to_owned(),
            grain,
            example: match grain {
                Grain::Day => "2024-07-15",
                Grain::Week => "2024-W27",
                Grain::Month => "2024-07",
                Grain::Quarter => "2024-Q3",
                Grain::Year => "2024",
            },
        };
        let num = |s: &str| -> Result<u32, PeriodError> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err());
            }
            s.parse().map_err(|_| err())
        };
        let year = |s: &str| -> Result<i32, PeriodError> {
            if s.len() != 4 {
                return Err(err());
            }
            Ok(num(s)? as i32)
        };
        let start = match grain {
            Grain::Year => NaiveDate::from_ymd_opt(year(label)?, 1, 1),
            Grain::Quarter => {
                let (y, q) = label.split_once("-Q").ok_or_else(err)?;
                let q = num(q)?;
                if !(1..=4).contains(&q) {
                    return Err(err());
                }
                NaiveDate::from_ymd_opt(year(y)?, (q - 1) * 3 + 1, 1)
            }
            Grain::Month => {
                let (y, m) = label.split_once('-').ok_or_else(err)?;
                if m.len() != 2 {
                    return Err(err());
                }
                NaiveDate::from_ymd_opt(year(y)?, num(m)?, 1)
            }
            Grain::Week => {
                let (y, w) = label.split_once("-W").ok_or_else(err)?;
                if w.len() != 2 {
                    return Err(err());
                }
                NaiveDate::from_isoywd_opt(year(y)?, num(w)?, Weekday::Mon)
            }
            Grain::Day => {
                let parts: Vec<&str> = label.split('-').collect();
                if parts.len() != 3 || parts[1].len() != 2 || parts[2].len() != 2 {
                    return Err(err());
                }
                NaiveDate::from_ymd_opt(year(parts[0])?, num(parts[1])?, num(parts[2])?)
            }
        }
        .ok_or_else(err)?;
        Ok(Period { grain, start })
    }

    /// The period of `grain` that contains `date`.
    /// The newest period of `grain` that had ended by the end of `last_day` (the last day
    /// with data), so a period that has only just begun is not taken for the latest.
    pub fn latest_complete(grain: Grain, last_day: NaiveDate) -> Period {
        let p = Period::containing(grain, last_day);
        if p.end() > last_day + Days::new(1) {
            p.previous()
        } else {
            p
        }
    }

    pub fn containing(grain: Grain, date: NaiveDate) -> Period {
        let start = match grain {
            Grain::Day => date,
            Grain::Week => date - Days::new(u64::from(date.weekday().num_days_from_monday())),
            Grain::Month => date.with_day(1).expect("day 1 exists"),
            Grain::Quarter => NaiveDate::from_ymd_opt(date.year(), (date.month0() / 3) * 3 + 1, 1)
                .expect("quarter start exists"),
            Grain::Year => NaiveDate::from_ymd_opt(date.year(), 1, 1).expect("1 January exists"),
        };
        Period { grain, start }
    }

    /// First day after the period.
    pub fn end(self) -> NaiveDate {
        match self.grain {
            Grain::Day => self.start + Days::new(1),
            Grain::Week => self.start + Days::new(7),
            Grain::Month => self.start + Months::new(1),
            Grain::Quarter => self.start + Months::new(3),
            Grain::Year => self.start + Months::new(12),
        }
    }

    pub fn next(self) -> Period {
        Period {
            grain: self.grain,
            start: self.end(),
        }
    }

    pub fn previous(self) -> Period {
        let day_before = self.start - Days::new(1);
        Period::containing(self.grain, day_before)
    }

    /// The same period one year earlier: 2025-Q3 → 2024-Q3, 2025-W07 → 2024-W07,
    /// 2024-02-29 → 2023-02-28.
    pub fn same_period_last_year(self) -> Period {
        let start = match self.grain {
            Grain::Week => {
                let w = self.start.iso_week();
                NaiveDate::from_isoywd_opt(w.year() - 1, w.week(), Weekday::Mon)
                    .unwrap_or(self.start - Days::new(364))
            }
            _ => self.start - Months::new(12),
        };
        Period::containing(self.grain, start)
    }

    pub fn label(self) -> String {
        let d = self.start;
        match self.grain {
            Grain::Year => format!("{}", d.year()),
            Grain::Quarter => format!("{}-Q{}", d.year(), d.month0() / 3 + 1),
            Grain::Month => format!("{}-{:02}", d.year(), d.month()),
            Grain::Week => {
                let w = d.iso_week();
                format!("{}-W{:02}", w.year(), w.week())
            }
            Grain::Day => d.format("%Y-%m-%d").to_string(),
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip() {
        let cases = [
            (Grain::Year, "2024", "2024-01-01", "2025-01-01"),
            (Grain::Quarter, "2024-Q3", "2024-07-01", "2024-10-01"),
            (Grain::Month, "2024-12", "2024-12-01", "2025-01-01"),
            (Grain::Week, "2025-W01", "2024-12-30", "2025-01-06"),
            (Grain::Day, "2024-02-29", "2024-02-29", "2024-03-01"),
        ];
        for (grain, label, start, end) in cases {
            let p = Period::parse(grain, label).unwrap();
            assert_eq!(p.label(), label);
            assert_eq!(p.start.to_string(), start, "{label}");
            assert_eq!(p.end().to_string(), end, "{label}");
            assert_eq!(p.next().previous(), p);
        }
    }

    #[test]
    fn bad_labels_name_the_expected_shape() {
        for (grain, label) in [
            (Grain::Month, "2024-13"),
            (Grain::Month, "2024-7"),
            (Grain::Quarter, "2024-Q5"),
            (Grain::Year, "24"),
            (Grain::Day, "2023-02-29"),
            (Grain::Week, "2024-W54"),
            (Grain::Month, "'; DROP TABLE x"),
        ] {
            let e = Period::parse(grain, label).unwrap_err();
            assert!(e.to_string().contains(label), "{e}");
        }
    }

    #[test]
    fn same_period_last_year() {
        let cases = [
            (Grain::Quarter, "2025-Q3", "2024-Q3"),
            // A year without week 53 compares it with the week 52 weeks earlier.
            (Grain::Week, "2020-W53", "2020-W01"),
            (Grain::Week, "2025-W07", "2024-W07"),
            (Grain::Day, "2024-02-29", "2023-02-28"),
            (Grain::Month, "2025-01", "2024-01"),
            (Grain::Year, "2025", "2024"),
        ];
        for (grain, label, expected) in cases {
            let p = Period::parse(grain, label).unwrap();
            assert_eq!(p.same_period_last_year().label(), expected, "{label}");
        }
    }

    #[test]
    fn containing_periods() {
        let d = NaiveDate::from_ymd_opt(2024, 8, 17).unwrap();
        assert_eq!(Period::containing(Grain::Quarter, d).label(), "2024-Q3");
        assert_eq!(Period::containing(Grain::Month, d).label(), "2024-08");
        assert_eq!(Period::containing(Grain::Week, d).label(), "2024-W33");
        assert_eq!(
            Period::containing(Grain::Year, d).previous().label(),
            "2023"
        );
    }
}
