//! Row filters of measures, written in a tiny, validated subset of SQL.
//!
//! A filter is one condition: `column OP operand` (OP one of `= != <> < <= > >=`, operand a
//! column, a `'string'`, a number, `true` or `false`), `column IS [NOT] NULL`, or
//! `[NOT] boolean_column`. Parsing checks every column against the fact table, so a typo in the
//! catalogue fails at load time instead of producing wrong numbers, and the emitted SQL is
//! rebuilt from the parsed form (nothing from the file is pasted into a query).

use crate::facts::{ColumnType, FactTable};

#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    Column(String),
    Text(String),
    Number(f64),
    Bool(bool),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Condition {
    Compare {
        column: String,
        op: &'static str,
        operand: Operand,
    },
    IsNull {
        column: String,
        negated: bool,
    },
    Flag {
        column: String,
        negated: bool,
    },
}

const OPS: [&str; 7] = ["<=", ">=", "!=", "<>", "=", "<", ">"];

fn tokens(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '\'' {
            chars.next();
            let mut s = String::from("'");
            loop {
                match chars.next() {
                    Some('\'') if chars.peek() == Some(&'\'') => {
                        chars.next();
                        s.push('\'');
                    }
                    Some('\'') => break,
                    Some(ch) => s.push(ch),
                    None => return Err("unterminated string literal".into()),
                }
            }
            out.push(s);
        } else if "<>=!".contains(c) {
            let mut s = String::new();
            while let Some(&ch) = chars.peek() {
                if "<>=!".contains(ch) {
                    s.push(ch);
                    chars.next();
                } else {
                    break;
                }
            }
            out.push(s);
        } else {
            let mut s = String::new();
            while let Some(&ch) = chars.peek() {
                if ch.is_whitespace() || "<>=!'".contains(ch) {
                    break;
                }
                s.push(ch);
                chars.next();
            }
            out.push(s);
        }
    }
    Ok(out)
}

fn column_of<'t>(table: &'t FactTable, name: &str) -> Result<&'t crate::facts::Column, String> {
    table
        .column(name)
        .ok_or_else(|| format!("unknown column {name:?} of fact table {}", table.name))
}

impl Condition {
    /// Parses and validates one condition against `table`.
    pub fn parse(text: &str, table: &FactTable) -> Result<Condition, String> {
        let t = tokens(text)?;
        let upper: Vec<String> = t.iter().map(|s| s.to_ascii_uppercase()).collect();
        let words: Vec<&str> = upper.iter().map(String::as_str).collect();
        match words.as_slice() {
            [_, "IS", "NULL"] | [_, "IS", "NOT", "NULL"] => {
                column_of(table, &t[0])?;
                Ok(Condition::IsNull {
                    column: t[0].clone(),
                    negated: words.len() == 4,
                })
            }
            [_] | ["NOT", _] => {
                let name = t.last().expect("one token");
                let c = column_of(table, name)?;
                if c.ty != ColumnType::Boolean {
                    return Err(format!("column {name:?} is not boolean"));
                }
                Ok(Condition::Flag {
                    column: name.clone(),
                    negated: words.len() == 2,
                })
            }
            [_, op, _] => {
                let op = OPS
                    .into_iter()
                    .find(|o| o == op)
                    .ok_or_else(|| format!("unknown operator {op:?}"))?;
                let left = column_of(table, &t[0])?;
                let raw = &t[2];
                let operand = if let Some(s) = raw.strip_prefix('\'') {
                    if left.ty != ColumnType::Text {
                        return Err(format!("column {:?} is not text", left.name));
                    }
                    Operand::Text(s.to_owned())
                } else if words[2] == "TRUE" || words[2] == "FALSE" {
                    if left.ty != ColumnType::Boolean {
                        return Err(format!("column {:?} is not boolean", left.name));
                    }
                    Operand::Bool(words[2] == "TRUE")
                } else if let Ok(n) = raw.parse::<f64>() {
                    if !left.ty.is_numeric() || !n.is_finite() {
                        return Err(format!("column {:?} is not numeric", left.name));
                    }
                    Operand::Number(n)
                } else {
                    let right = column_of(table, raw)?;
                    if right.ty != left.ty && !(right.ty.is_numeric() && left.ty.is_numeric()) {
                        return Err(format!(
                            "cannot compare {:?} with {:?}: different types",
                            left.name, right.name
                        ));
                    }
                    Operand::Column(raw.clone())
                };
                Ok(Condition::Compare {
                    column: t[0].clone(),
                    op,
                    operand,
                })
            }
            _ => Err(format!(
                "cannot parse filter {text:?} (expected `column OP value`, `column IS [NOT] NULL` or `[NOT] flag`)"
            )),
        }
    }

    /// The condition as SQL in `dialect`, rebuilt from its parsed parts.
    pub fn sql(&self, dialect: crate::sql::Dialect) -> String {
        match self {
            Condition::Compare {
                column,
                op,
                operand,
            } => {
                let rhs = match operand {
                    Operand::Column(c) => c.clone(),
                    Operand::Text(s) => dialect.string_literal(s),
                    Operand::Number(n) => format!("{n}"),
                    Operand::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_owned(),
                };
                format!("{column} {op} {rhs}")
            }
            Condition::IsNull { column, negated } => {
                format!("{column} IS {}NULL", if *negated { "NOT " } else { "" })
            }
            Condition::Flag { column, negated } => {
                format!("{}{column}", if *negated { "NOT " } else { "" })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{SERVICE_APPLICATIONS, WORK_ORDERS};
    use crate::sql::Dialect;

    #[test]
    fn parses_and_rebuilds() {
        let cases = [
            ("closed_at <= due_at", "closed_at <= due_at"),
            ("closed_at is not null", "closed_at IS NOT NULL"),
            ("satisfaction >= 4", "satisfaction >= 4"),
            ("request_type = '投诉'", "request_type = '投诉'"),
            ("request_type = 'it''s'", "request_type = 'it''s'"),
        ];
        for (text, sql) in cases {
            assert_eq!(
                Condition::parse(text, &WORK_ORDERS)
                    .unwrap()
                    .sql(Dialect::DuckDb),
                sql
            );
        }
        let flag = Condition::parse("not online", &SERVICE_APPLICATIONS).unwrap();
        assert_eq!(flag.sql(Dialect::DuckDb), "NOT online");
    }

    #[test]
    fn text_is_quoted_for_each_dialect() {
        // Spark reads a backslash as an escape and joins adjacent literals ('it''s' would be
        // "its"), so its quotes and backslashes are escaped with backslashes instead.
        let c = Condition::parse(r"request_type = 'a\b''c'", &WORK_ORDERS).unwrap();
        assert_eq!(c.sql(Dialect::DuckDb), r"request_type = 'a\b''c'");
        assert_eq!(c.sql(Dialect::Spark), r"request_type = 'a\\b\'c'");
    }

    #[test]
    fn rejects_unknown_columns_and_type_errors() {
        let cases = [
            ("closed <= due_at", "unknown column \"closed\""),
            ("satisfaction = 'high'", "not text"),
            ("request_type > 3", "not numeric"),
            ("request_type", "not boolean"),
            ("satisfaction >= 4; DROP TABLE x", "cannot parse"),
            ("created_at <= satisfaction", "different types"),
        ];
        for (text, msg) in cases {
            let e = Condition::parse(text, &WORK_ORDERS).unwrap_err();
            assert!(e.contains(msg), "{text}: {e}");
        }
    }
}
