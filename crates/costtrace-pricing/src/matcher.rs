//! Match clauses: how the price data says which names refer to a model or a
//! provider (`equals`, `starts_with`, `ends_with`, `contains`, `regex`, `or`,
//! `and`).
//!
//! As in the upstream reference implementation, matching is case-insensitive:
//! the text is lower-cased once by the caller and the literal patterns are
//! lower-cased here. Regexes are searched (not anchored unless the pattern
//! says so) in the lower-cased text.

use std::fmt;

use serde::Deserialize;

/// A match clause as written in the data or an override file.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum RawClause {
    Equals(String),
    StartsWith(String),
    EndsWith(String),
    Contains(String),
    Regex(String),
    Or(Vec<RawClause>),
    And(Vec<RawClause>),
}

/// A compiled clause, ready to test lower-cased names against.
#[derive(Clone, Debug)]
pub(crate) enum Clause {
    Equals(Box<str>),
    StartsWith(Box<str>),
    EndsWith(Box<str>),
    Contains(Box<str>),
    Regex(regex_lite::Regex),
    Or(Vec<Clause>),
    And(Vec<Clause>),
}

impl Clause {
    /// Compiles a raw clause; the error names the regex that failed.
    pub(crate) fn compile(raw: &RawClause) -> Result<Clause, String> {
        let lower = |s: &str| s.to_lowercase().into_boxed_str();
        Ok(match raw {
            RawClause::Equals(s) => Clause::Equals(lower(s)),
            RawClause::StartsWith(s) => Clause::StartsWith(lower(s)),
            RawClause::EndsWith(s) => Clause::EndsWith(lower(s)),
            RawClause::Contains(s) => Clause::Contains(lower(s)),
            RawClause::Regex(s) => Clause::Regex(
                regex_lite::Regex::new(s).map_err(|e| format!("invalid regex {s:?}: {e}"))?,
            ),
            RawClause::Or(v) => {
                Clause::Or(v.iter().map(Clause::compile).collect::<Result<_, _>>()?)
            }
            RawClause::And(v) => {
                Clause::And(v.iter().map(Clause::compile).collect::<Result<_, _>>()?)
            }
        })
    }

    /// True when the lower-cased `text` matches.
    pub(crate) fn is_match(&self, text: &str) -> bool {
        match self {
            Clause::Equals(p) => text == &**p,
            Clause::StartsWith(p) => text.starts_with(&**p),
            Clause::EndsWith(p) => text.ends_with(&**p),
            Clause::Contains(p) => text.contains(&**p),
            Clause::Regex(r) => r.is_match(text),
            Clause::Or(v) => v.iter().any(|c| c.is_match(text)),
            Clause::And(v) => v.iter().all(|c| c.is_match(text)),
        }
    }
}

impl fmt::Display for Clause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |f: &mut fmt::Formatter<'_>, v: &[Clause], sep: &str| {
            f.write_str("(")?;
            for (i, c) in v.iter().enumerate() {
                if i > 0 {
                    f.write_str(sep)?;
                }
                write!(f, "{c}")?;
            }
            f.write_str(")")
        };
        match self {
            Clause::Equals(p) => write!(f, "equals {p:?}"),
            Clause::StartsWith(p) => write!(f, "starts_with {p:?}"),
            Clause::EndsWith(p) => write!(f, "ends_with {p:?}"),
            Clause::Contains(p) => write!(f, "contains {p:?}"),
            Clause::Regex(r) => write!(f, "regex {:?}", r.as_str()),
            Clause::Or(v) => join(f, v, " or "),
            Clause::And(v) => join(f, v, " and "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clause(json: &str) -> Clause {
        let raw: RawClause = serde_json::from_str(json).unwrap();
        Clause::compile(&raw).unwrap()
    }

    #[test]
    fn all_clause_kinds_match_case_insensitively() {
        let c = clause(r#"{"or": [{"equals": "GPT-4o"}, {"starts_with": "o3-"}]}"#);
        assert!(c.is_match("gpt-4o"));
        assert!(c.is_match("o3-mini"));
        assert!(!c.is_match("gpt-4o-mini"));
        let c = clause(r#"{"and": [{"contains": "huggingface"}, {"ends_with": "groq"}]}"#);
        assert!(c.is_match("huggingface-groq"));
        assert!(!c.is_match("huggingface"));
        let c = clause(r#"{"regex": "^grok-4\\.3-\\d{8}$"}"#);
        assert!(c.is_match("grok-4.3-20260101"));
        assert!(!c.is_match("grok-4.3"));
    }

    #[test]
    fn bad_regex_is_reported() {
        let raw: RawClause = serde_json::from_str(r#"{"regex": "("}"#).unwrap();
        assert!(Clause::compile(&raw).unwrap_err().contains("invalid regex"));
    }
}
