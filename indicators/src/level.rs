//! Region levels and the 12-digit statistics division codes that key every fact.
//!
//! The level follows from the code: province `32`, city `3201`, county `320102`, township
//! `320102002`, community `320102002001`, and a grid cell `<community code>-<nnn>`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A level of the administrative hierarchy, from the province down to grid cells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Province,
    City,
    County,
    Township,
    Community,
    Grid,
}

impl Level {
    pub const ALL: [Level; 6] = [
        Level::Province,
        Level::City,
        Level::County,
        Level::Township,
        Level::Community,
        Level::Grid,
    ];

    /// Length of a region code at this level; `None` for grid cells, whose ids are
    /// `<community code>-<nnn>`.
    pub fn code_len(self) -> Option<usize> {
        match self {
            Level::Province => Some(2),
            Level::City => Some(4),
            Level::County => Some(6),
            Level::Township => Some(9),
            Level::Community => Some(12),
            Level::Grid => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Province => "province",
            Level::City => "city",
            Level::County => "county",
            Level::Township => "township",
            Level::Community => "community",
            Level::Grid => "grid",
        }
    }

    /// The level one step up, `None` for the province.
    /// The level below, if any (grid cells have none).
    pub fn child(self) -> Option<Level> {
        let i = Level::ALL.iter().position(|l| *l == self)?;
        Level::ALL.get(i + 1).copied()
    }

    pub fn parent(self) -> Option<Level> {
        let i = Level::ALL.iter().position(|l| *l == self)?;
        i.checked_sub(1).map(|p| Level::ALL[p])
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown level {0:?} (expected province, city, county, township, community or grid)")]
pub struct ParseLevelError(pub String);

impl FromStr for Level {
    type Err = ParseLevelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Level::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| ParseLevelError(s.to_owned()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "region code {0:?} is not a division code (2, 4, 6, 9 or 12 digits) nor a grid id (<12 digits>-<3 digits>)"
)]
pub struct RegionCodeError(pub String);

/// The level of a region code or grid id, or an error when the code has neither shape.
pub fn region_level(code: &str) -> Result<Level, RegionCodeError> {
    let bad = || RegionCodeError(code.to_owned());
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if let Some((community, cell)) = code.split_once('-') {
        return if community.len() == 12
            && all_digits(community)
            && cell.len() == 3
            && all_digits(cell)
        {
            Ok(Level::Grid)
        } else {
            Err(bad())
        };
    }
    if !all_digits(code) {
        return Err(bad());
    }
    Level::ALL
        .into_iter()
        .find(|l| l.code_len() == Some(code.len()))
        .ok_or_else(bad)
}

/// The code of the region that contains `code` at `level` (which must be at or above the
/// code's own level), e.g. `ancestor("320102002001-003", Level::City) == "3201"`.
pub fn ancestor(code: &str, level: Level) -> Option<&str> {
    let own = region_level(code).ok()?;
    if level > own {
        return None;
    }
    match level.code_len() {
        Some(n) => code.get(..n),
        None => Some(code),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_from_codes() {
        let cases = [
            ("32", Level::Province),
            ("3201", Level::City),
            ("320102", Level::County),
            ("320102002", Level::Township),
            ("320102002001", Level::Community),
            ("320102002001-007", Level::Grid),
        ];
        for (code, level) in cases {
            assert_eq!(region_level(code), Ok(level), "{code}");
        }
        for bad in [
            "",
            "3",
            "32a1",
            "3201020",
            "320102002001-7",
            "32010200200-001",
            "32;--",
        ] {
            assert!(region_level(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn ancestors_are_prefixes() {
        assert_eq!(ancestor("320102002001-003", Level::City), Some("3201"));
        assert_eq!(
            ancestor("320102002001-003", Level::Grid),
            Some("320102002001-003")
        );
        assert_eq!(ancestor("3201", Level::County), None);
        assert_eq!(Level::Grid.parent(), Some(Level::Community));
        assert_eq!(Level::Province.parent(), None);
        assert_eq!("county".parse::<Level>(), Ok(Level::County));
        assert!("district".parse::<Level>().is_err());
    }
}
