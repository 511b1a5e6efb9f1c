//! Working days: Monday to Friday, less public holidays, plus the weekend days that are worked
//! in their place (调休). The holiday lists are the operator's to give (they are published
//! each year); without them only weekends are days off.

use chrono::{Datelike, Days, NaiveDate, NaiveDateTime, NaiveTime, Weekday};
use std::collections::BTreeSet;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Calendar {
    /// Days off that would otherwise be working days.
    pub holidays: BTreeSet<NaiveDate>,
    /// Weekend days that are working days.
    pub working_weekends: BTreeSet<NaiveDate>,
}

impl Calendar {
    pub fn is_working_day(&self, day: NaiveDate) -> bool {
        if self.working_weekends.contains(&day) {
            return true;
        }
        !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) && !self.holidays.contains(&day)
    }

    /// The `n`-th working day after `day` (`day` itself never counts).
    pub fn add_working_days(&self, day: NaiveDate, n: u32) -> NaiveDate {
        let mut d = day;
        let mut left = n;
        while left > 0 {
            d = d + Days::new(1);
            if self.is_working_day(d) {
                left -= 1;
            }
        }
        d
    }

    /// The end (23:59:59) of the `n`-th working day after the day of `at`: a deadline of
    /// `n` working days given at `at`.
    pub fn deadline(&self, at: NaiveDateTime, n: u32) -> NaiveDateTime {
        let day = self.add_working_days(at.date(), n);
        day.and_time(NaiveTime::from_hms_opt(23, 59, 59).expect("valid time"))
    }

    /// A deadline moved on by `n` working days.
    pub fn extend(&self, deadline: NaiveDateTime, n: u32) -> NaiveDateTime {
        self.deadline(deadline, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn weekends_are_skipped() {
        let c = Calendar::default();
        // 2025-01-03 is a Friday: one working day later is Monday the 6th.
        assert_eq!(c.add_working_days(d("2025-01-03"), 1), d("2025-01-06"));
        assert_eq!(c.add_working_days(d("2025-01-03"), 5), d("2025-01-10"));
        // From a Saturday, the first working day is Monday.
        assert_eq!(c.add_working_days(d("2025-01-04"), 1), d("2025-01-06"));
        assert_eq!(c.add_working_days(d("2025-01-06"), 0), d("2025-01-06"));
    }

    #[test]
    fn holidays_and_worked_weekends_count_as_given() {
        let c = Calendar {
            holidays: [d("2025-01-06")].into(),
            working_weekends: [d("2025-01-04")].into(),
        };
        assert!(c.is_working_day(d("2025-01-04")));
        assert!(!c.is_working_day(d("2025-01-06")));
        assert_eq!(c.add_working_days(d("2025-01-03"), 1), d("2025-01-04"));
        assert_eq!(c.add_working_days(d("2025-01-03"), 2), d("2025-01-07"));
    }

    #[test]
    fn a_deadline_is_the_end_of_its_day() {
        let c = Calendar::default();
        let at = d("2025-01-03").and_hms_opt(9, 30, 0).unwrap();
        assert_eq!(
            c.deadline(at, 1),
            d("2025-01-06").and_hms_opt(23, 59, 59).unwrap()
        );
        assert_eq!(
            c.extend(c.deadline(at, 1), 2),
            d("2025-01-08").and_hms_opt(23, 59, 59).unwrap()
        );
    }
}
