//! Formulas of derived indicators: arithmetic over other indicators' values.
//!
//! A formula is `+ - * /`, parentheses, unary minus, numbers and indicator ids, e.g.
//! `gdp_comparable / gdp_last_year - 1`. It is evaluated per region and period on the values
//! of the indicators it names, at the same level and grain; any missing value or a division by
//! zero makes the result missing rather than a wrong number.

use serde::{Serialize, Serializer};

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Number(f64),
    Indicator(String),
    Negate(Box<Expr>),
    Binary(char, Box<Expr>, Box<Expr>),
}

/// A parsed formula and the text it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Formula {
    pub text: String,
    pub expr: Expr,
}

impl Serialize for Formula {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Number(f64),
    Ident(String),
    Op(char),
}

fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if "+-*/()".contains(c) {
            out.push(Token::Op(c));
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            let n = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
            out.push(Token::Number(n));
        } else if c.is_ascii_lowercase() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_lowercase() || chars[i].is_ascii_digit() || chars[i] == '_')
            {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
        } else {
            return Err(format!("unexpected character {c:?}"));
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    /// sum := product (('+' | '-') product)*
    fn sum(&mut self) -> Result<Expr, String> {
        let mut left = self.product()?;
        while let Some(Token::Op(op @ ('+' | '-'))) = self.peek().cloned() {
            self.at += 1;
            let right = self.product()?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// product := unary (('*' | '/') unary)*
    fn product(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        while let Some(Token::Op(op @ ('*' | '/'))) = self.peek().cloned() {
            self.at += 1;
            let right = self.unary()?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// unary := '-' unary | number | indicator | '(' sum ')'
    fn unary(&mut self) -> Result<Expr, String> {
        match self.next() {
            Some(Token::Op('-')) => Ok(Expr::Negate(Box::new(self.unary()?))),
            Some(Token::Number(n)) => Ok(Expr::Number(n)),
            Some(Token::Ident(id)) => Ok(Expr::Indicator(id)),
            Some(Token::Op('(')) => {
                let inner = self.sum()?;
                match self.next() {
                    Some(Token::Op(')')) => Ok(inner),
                    _ => Err("missing `)`".into()),
                }
            }
            Some(t) => Err(format!("unexpected {t:?}")),
            None => Err("the formula ends too early".into()),
        }
    }
}

impl Formula {
    pub fn parse(text: &str) -> Result<Formula, String> {
        let mut p = Parser {
            tokens: tokens(text)?,
            at: 0,
        };
        let expr = p.sum()?;
        if let Some(t) = p.peek() {
            return Err(format!("unexpected {t:?} after the formula"));
        }
        Ok(Formula {
            text: text.to_owned(),
            expr,
        })
    }

    /// The indicator ids the formula reads, each once, in order of appearance.
    pub fn indicators(&self) -> Vec<&str> {
        fn walk<'a>(e: &'a Expr, out: &mut Vec<&'a str>) {
            match e {
                Expr::Number(_) => {}
                Expr::Indicator(id) => {
                    if !out.contains(&id.as_str()) {
                        out.push(id);
                    }
                }
                Expr::Negate(inner) => walk(inner, out),
                Expr::Binary(_, a, b) => {
                    walk(a, out);
                    walk(b, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.expr, &mut out);
        out
    }

    /// The value for one region and period; `None` when a value is missing, a divisor is zero
    /// or the result is not finite.
    pub fn eval(&self, value_of: &dyn Fn(&str) -> Option<f64>) -> Option<f64> {
        fn go(e: &Expr, value_of: &dyn Fn(&str) -> Option<f64>) -> Option<f64> {
            match e {
                Expr::Number(n) => Some(*n),
                Expr::Indicator(id) => value_of(id),
                Expr::Negate(inner) => go(inner, value_of).map(|v| -v),
                Expr::Binary(op, a, b) => {
                    let (a, b) = (go(a, value_of)?, go(b, value_of)?);
                    match op {
                        '+' => Some(a + b),
                        '-' => Some(a - b),
                        '*' => Some(a * b),
                        _ if b == 0.0 => None,
                        _ => Some(a / b),
                    }
                }
            }
        }
        go(&self.expr, value_of).filter(|v| v.is_finite())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_parentheses_and_missing_values() {
        let f = Formula::parse("a / b - 1").unwrap();
        assert_eq!(f.indicators(), ["a", "b"]);
        let v = |id: &str| match id {
            "a" => Some(110.0),
            "b" => Some(100.0),
            _ => None,
        };
        assert!((f.eval(&v).unwrap() - 0.1).abs() < 1e-12);
        let g = Formula::parse("-(a - b) * 2 + c").unwrap();
        assert_eq!(g.eval(&v), None, "c is missing");
        let h = Formula::parse("(a - b) * 2").unwrap();
        assert_eq!(h.eval(&v), Some(20.0));
        let zero = Formula::parse("a / (b - 100)").unwrap();
        assert_eq!(zero.eval(&v), None);
    }

    #[test]
    fn bad_formulas_say_why() {
        for (text, why) in [
            ("a +", "ends too early"),
            ("(a", "missing `)`"),
            ("a b", "after the formula"),
            ("a % b", "unexpected character"),
            ("1.2.3", "not a number"),
        ] {
            let e = Formula::parse(text).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
        }
    }
}
