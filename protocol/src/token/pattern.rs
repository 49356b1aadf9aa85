//! Subject patterns in access tokens, NATS-style over `.`-separated tokens: `*` stands for
//! exactly one token, `>` (last only) for one or more trailing tokens; anything else matches
//! itself.

use crate::subject::validate_subject;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// `*`: any one token.
    One,
    /// `>`: one or more trailing tokens.
    Rest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectPattern {
    parts: Vec<Part>,
}

impl SubjectPattern {
    pub fn parse(pattern: &str) -> Result<SubjectPattern, String> {
        // A pattern is a subject name in which whole tokens may be wildcards.
        let as_subject = pattern.replace(['*', '>'], "x");
        validate_subject(&as_subject).map_err(|e| format!("subject pattern {pattern:?}: {}", e.message))?;
        let tokens: Vec<&str> = pattern.split('.').collect();
        let mut parts = Vec::with_capacity(tokens.len());
        for (i, token) in tokens.iter().enumerate() {
            parts.push(match *token {
                "*" => Part::One,
                ">" if i + 1 == tokens.len() => Part::Rest,
                ">" => return Err(format!("subject pattern {pattern:?}: `>` may only be the last token")),
                t if t.contains(['*', '>']) => {
                    return Err(format!("subject pattern {pattern:?}: `*` and `>` must be whole tokens (between dots)"))
                }
                t => Part::Literal(t.to_owned()),
            });
        }
        Ok(SubjectPattern { parts })
    }

    pub fn matches(&self, subject: &str) -> bool {
        let mut tokens = subject.split('.');
        for part in &self.parts {
            match part {
                Part::Rest => return tokens.next().is_some(),
                Part::One => {
                    if tokens.next().is_none() {
                        return false;
                    }
                }
                Part::Literal(literal) => {
                    if tokens.next() != Some(literal.as_str()) {
                        return false;
                    }
                }
            }
        }
        tokens.next().is_none()
    }
}

impl fmt::Display for SubjectPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            f.write_str(match part {
                Part::Literal(literal) => literal,
                Part::One => "*",
                Part::Rest => ">",
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, subject: &str) -> bool {
        SubjectPattern::parse(pattern).unwrap().matches(subject)
    }

    #[test]
    fn literals_match_only_themselves() {
        assert!(matches("orders", "orders"));
        assert!(!matches("orders", "orders.eu"));
        assert!(!matches("orders.eu", "orders"));
        assert!(!matches("orders", "Orders"));
    }

    #[test]
    fn star_is_exactly_one_token() {
        assert!(matches("telemetry.*.raw", "telemetry.dev1.raw"));
        assert!(!matches("telemetry.*.raw", "telemetry.raw"));
        assert!(!matches("telemetry.*.raw", "telemetry.a.b.raw"));
        assert!(matches("*", "orders"));
        assert!(!matches("*", "orders.eu"));
    }

    #[test]
    fn greater_than_is_one_or_more_trailing_tokens() {
        assert!(matches("orders.>", "orders.eu"));
        assert!(matches("orders.>", "orders.eu.1"));
        assert!(!matches("orders.>", "orders"));
        assert!(!matches("orders.>", "ordersx.eu"));
        assert!(matches(">", "anything.at.all"));
        assert!(matches("*.>", "a.b"));
        assert!(!matches("*.>", "a"));
    }

    #[test]
    fn malformed_patterns_are_refused_with_a_reason() {
        for bad in ["", "orders.>.x", "ord*", "a.b>", "a b", "a/b", &"x".repeat(129)] {
            assert!(SubjectPattern::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(SubjectPattern::parse("a.>.b").unwrap_err().contains("last token"));
    }

    #[test]
    fn display_gives_the_pattern_back() {
        for p in ["orders.>", "telemetry.*.raw", "*"] {
            assert_eq!(SubjectPattern::parse(p).unwrap().to_string(), p);
        }
    }
}
