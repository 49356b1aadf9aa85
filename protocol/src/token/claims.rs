//! What a token grants: the claims of docs/PROTOCOL.md § Access tokens, parsed once when the
//! token is verified so that each request's permission check is a few comparisons.

use super::pattern::SubjectPattern;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A set of actions, one bit each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Actions(u8);

impl Actions {
    pub const NONE: Actions = Actions(0);
    pub const PUB: Actions = Actions(1);
    pub const SUB: Actions = Actions(2);
    pub const STATE: Actions = Actions(4);
    pub const ADMIN: Actions = Actions(8);
    pub const FILES_READ: Actions = Actions(16);
    pub const FILES_WRITE: Actions = Actions(32);
    /// Everything on a subject (what the API key holds there).
    pub const ALL_SUBJECT: Actions = Actions(1 | 2 | 4 | 8);
    const NAMES: [(&'static str, Actions); 6] = [
        ("pub", Actions::PUB),
        ("sub", Actions::SUB),
        ("state", Actions::STATE),
        ("admin", Actions::ADMIN),
        ("files:read", Actions::FILES_READ),
        ("files:write", Actions::FILES_WRITE),
    ];

    pub fn contains(self, other: Actions) -> bool {
        self.0 & other.0 == other.0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn union(self, other: Actions) -> Actions {
        Actions(self.0 | other.0)
    }
    pub fn without(self, other: Actions) -> Actions {
        Actions(self.0 & !other.0)
    }

    /// The wire name of a single action.
    pub fn name(self) -> &'static str {
        Self::NAMES.iter().find(|(_, a)| *a == self).map_or("?", |(name, _)| name)
    }

    pub fn parse(name: &str) -> Option<Actions> {
        Self::NAMES.iter().find(|(n, _)| *n == name).map(|(_, a)| *a)
    }

    /// The single actions in the set.
    pub fn each(self) -> impl Iterator<Item = Actions> {
        Self::NAMES.into_iter().map(|(_, a)| a).filter(move |a| self.contains(*a))
    }

    pub fn names(self) -> Vec<&'static str> {
        self.each().map(Actions::name).collect()
    }
}

impl fmt::Display for Actions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

impl Serialize for Actions {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.names().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Actions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        names.iter().try_fold(Actions::NONE, |set, name| {
            Actions::parse(name).map(|a| set.union(a)).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "unknown action {name:?} (expected pub, sub, state, admin, files:read or files:write)"
                ))
            })
        })
    }
}

/// What one `allow` or `deny` entry covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Subjects(Vec<SubjectPattern>),
    /// Key prefixes under `/v1/files` (`""` covers every file).
    Files(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub target: Target,
    pub actions: Actions,
}

/// The wire form of a rule, checked into a [`Rule`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleJson {
    #[serde(default)]
    subjects: Option<Vec<String>>,
    #[serde(default)]
    files: Option<OneOrMany>,
    actions: Actions,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// Most patterns and prefixes in one token, all entries together: a token is checked on every
/// request, so its cost must stay small.
pub const MAX_TOKEN_PATTERNS: usize = 64;

impl Rule {
    fn from_json(json: RuleJson) -> Result<Rule, String> {
        let subject_actions = Actions::ALL_SUBJECT;
        let file_actions = Actions::FILES_READ.union(Actions::FILES_WRITE);
        if json.actions.is_empty() {
            return Err("every entry needs at least one action".into());
        }
        let target = match (json.subjects, json.files) {
            (Some(patterns), None) => {
                if !subject_actions.contains(json.actions) {
                    return Err(format!("a subjects entry may only name pub, sub, state and admin (found {})", json.actions));
                }
                Target::Subjects(patterns.iter().map(|p| SubjectPattern::parse(p)).collect::<Result<_, _>>()?)
            }
            (None, Some(prefixes)) => {
                if !file_actions.contains(json.actions) {
                    return Err(format!("a files entry may only name files:read and files:write (found {})", json.actions));
                }
                Target::Files(match prefixes {
                    OneOrMany::One(prefix) => vec![prefix],
                    OneOrMany::Many(prefixes) => prefixes,
                })
            }
            _ => return Err("every entry needs exactly one of \"subjects\" and \"files\"".into()),
        };
        Ok(Rule { target, actions: json.actions })
    }

    fn size(&self) -> usize {
        match &self.target {
            Target::Subjects(patterns) => patterns.len(),
            Target::Files(prefixes) => prefixes.len(),
        }
    }

    fn covers_subject(&self, subject: &str) -> bool {
        matches!(&self.target, Target::Subjects(patterns) if patterns.iter().any(|p| p.matches(subject)))
    }
}

/// Optional per-token limits (`limits` claim).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Limits {
    /// Publishes per second by this token's `sub` on one subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pub_rate: Option<f64>,
    /// Bytes of published data per second by this token's `sub` on one subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pub_bytes_rate: Option<f64>,
    /// WebSocket connections this token's `sub` may hold open on one subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<u32>,
}

impl Limits {
    fn check(&self) -> Result<(), String> {
        for (name, rate) in [("pubRate", self.pub_rate), ("pubBytesRate", self.pub_bytes_rate)] {
            if rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
                return Err(format!("limits.{name} must be a positive number"));
            }
        }
        Ok(())
    }
}

/// The claims of a verified token.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    /// The client's identity, shown in logs and used for per-client limits.
    pub sub: String,
    /// Expiry, seconds since the epoch (RFC 7519 NumericDate).
    pub exp: u64,
    pub nbf: Option<u64>,
    pub iat: Option<u64>,
    pub jti: Option<String>,
    pub allow: Vec<Rule>,
    pub deny: Vec<Rule>,
    pub limits: Limits,
}

#[derive(Deserialize)]
struct ClaimsJson {
    sub: Option<String>,
    exp: Option<f64>,
    nbf: Option<f64>,
    iat: Option<f64>,
    jti: Option<String>,
    #[serde(default)]
    allow: Vec<RuleJson>,
    #[serde(default)]
    deny: Vec<RuleJson>,
    #[serde(default)]
    limits: Limits,
}

/// Longest `sub` and `jti`.
pub const MAX_ID_LEN: usize = 256;

fn numeric_date(name: &str, value: Option<f64>) -> Result<Option<u64>, String> {
    match value {
        None => Ok(None),
        // RFC 7519 allows fractions; whole seconds are what we compare.
        Some(v) if v.is_finite() && (0.0..1e13).contains(&v) => Ok(Some(v as u64)),
        Some(_) => Err(format!("{name} must be a time in seconds since 1970")),
    }
}

fn identifier(name: &str, value: Option<String>) -> Result<Option<String>, String> {
    match value {
        Some(v) if v.is_empty() || v.len() > MAX_ID_LEN || v.chars().any(char::is_control) => {
            Err(format!("{name} must be 1 to {MAX_ID_LEN} characters without control characters"))
        }
        other => Ok(other),
    }
}

impl Claims {
    /// Reads the claims from the token's payload (already strict-JSON checked).
    pub fn parse(payload: &str) -> Result<Claims, String> {
        let json: ClaimsJson = serde_json::from_str(payload).map_err(|e| e.to_string())?;
        let sub = identifier("sub", json.sub)?.ok_or("the sub claim (who the token is for) is required")?;
        let exp = numeric_date("exp", json.exp)?.ok_or("the exp claim (expiry) is required")?;
        json.limits.check()?;
        let rules = |entries: Vec<RuleJson>| entries.into_iter().map(Rule::from_json).collect::<Result<Vec<_>, _>>();
        let claims = Claims {
            sub,
            exp,
            nbf: numeric_date("nbf", json.nbf)?,
            iat: numeric_date("iat", json.iat)?,
            jti: identifier("jti", json.jti)?,
            allow: rules(json.allow)?,
            deny: rules(json.deny)?,
            limits: json.limits,
        };
        let patterns: usize = claims.allow.iter().chain(&claims.deny).map(Rule::size).sum();
        if patterns > MAX_TOKEN_PATTERNS {
            return Err(format!("{patterns} subject patterns and file prefixes; at most {MAX_TOKEN_PATTERNS}"));
        }
        Ok(claims)
    }

    /// What the token may do on `subject`: every allowed action, less every denied one.
    pub fn subject_actions(&self, subject: &str) -> Actions {
        let sum = |rules: &[Rule]| {
            rules.iter().filter(|r| r.covers_subject(subject)).fold(Actions::NONE, |set, r| set.union(r.actions))
        };
        sum(&self.allow).without(sum(&self.deny))
    }

    /// Whether the token may do `action` (files:read or files:write) on the file `key`.
    pub fn allows_file(&self, action: Actions, key: &str) -> bool {
        let covers = |rules: &[Rule]| {
            rules.iter().any(|r| {
                r.actions.contains(action) && matches!(&r.target, Target::Files(prefixes) if prefixes.iter().any(|p| key.starts_with(p.as_str())))
            })
        };
        covers(&self.allow) && !covers(&self.deny)
    }

    /// Whether the token may list the files under `prefix`: it must read every key there, so
    /// an allowed prefix must cover it and no denied prefix may reach into it.
    pub fn allows_file_listing(&self, prefix: &str) -> bool {
        let read = Actions::FILES_READ;
        let allowed = self.allow.iter().any(|r| {
            r.actions.contains(read) && matches!(&r.target, Target::Files(p) if p.iter().any(|p| prefix.starts_with(p.as_str())))
        });
        let denied = self.deny.iter().any(|r| {
            r.actions.contains(read)
                && matches!(&r.target, Target::Files(p) if p.iter().any(|p| prefix.starts_with(p.as_str()) || p.starts_with(prefix)))
        });
        allowed && !denied
    }

    /// The file prefixes the token may read, to name in an error.
    pub fn readable_file_prefixes(&self) -> Vec<&str> {
        self.allow
            .iter()
            .filter(|r| r.actions.contains(Actions::FILES_READ))
            .flat_map(|r| match &r.target {
                Target::Files(prefixes) => prefixes.iter().map(String::as_str).collect(),
                Target::Subjects(_) => Vec::new(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUE_EXAMPLE: &str = r#"{"sub":"svc","exp":2000000000,
        "allow":[{"subjects":["orders.>","telemetry.*.raw"],"actions":["pub","sub"]},
                 {"files":"reports/","actions":["files:read"]}],
        "deny":[{"subjects":["orders.internal.>"],"actions":["sub"]}]}"#;

    #[test]
    fn the_documented_example_grants_what_it_says() {
        let c = Claims::parse(ISSUE_EXAMPLE).unwrap();
        let pub_sub = Actions::PUB.union(Actions::SUB);
        assert_eq!(c.subject_actions("orders.eu"), pub_sub);
        assert_eq!(c.subject_actions("telemetry.dev1.raw"), pub_sub);
        assert_eq!(c.subject_actions("orders.internal.audit"), Actions::PUB, "deny wins over allow");
        assert_eq!(c.subject_actions("orders"), Actions::NONE);
        assert_eq!(c.subject_actions("payments"), Actions::NONE);
        assert!(c.allows_file(Actions::FILES_READ, "reports/2026.csv"));
        assert!(!c.allows_file(Actions::FILES_WRITE, "reports/2026.csv"));
        assert!(!c.allows_file(Actions::FILES_READ, "secrets/x"));
        assert_eq!(c.sub, "svc");
        assert_eq!(c.exp, 2_000_000_000);
    }

    #[test]
    fn file_listing_needs_an_allowed_prefix_and_no_denied_key_inside() {
        let c = Claims::parse(
            r#"{"sub":"s","exp":1,"allow":[{"files":["reports/"],"actions":["files:read"]}],
                "deny":[{"files":"reports/private/","actions":["files:read"]}]}"#,
        )
        .unwrap();
        assert!(c.allows_file_listing("reports/2026/"));
        assert!(!c.allows_file_listing("reports/"), "the listing would show denied keys");
        assert!(!c.allows_file_listing("reports/private/x"));
        assert!(!c.allows_file_listing(""));
        assert_eq!(c.readable_file_prefixes(), vec!["reports/"]);
    }

    #[test]
    fn claims_are_checked_strictly() {
        let cases = [
            (r#"{"exp":1}"#, "sub claim"),
            (r#"{"sub":"s"}"#, "exp claim"),
            (r#"{"sub":"","exp":1}"#, "sub must be"),
            (r#"{"sub":"s","exp":-1}"#, "exp must be"),
            (r#"{"sub":"s","exp":1,"allow":[{"subjects":["a"],"actions":["publish"]}]}"#, "unknown action"),
            (r#"{"sub":"s","exp":1,"allow":[{"subjects":["a"],"actions":[]}]}"#, "at least one action"),
            (r#"{"sub":"s","exp":1,"allow":[{"subject":["a"],"actions":["pub"]}]}"#, "unknown field"),
            (r#"{"sub":"s","exp":1,"allow":[{"actions":["pub"]}]}"#, "exactly one of"),
            (r#"{"sub":"s","exp":1,"allow":[{"subjects":["a"],"files":"b","actions":["pub"]}]}"#, "exactly one of"),
            (r#"{"sub":"s","exp":1,"allow":[{"subjects":["a"],"actions":["files:read"]}]}"#, "may only name pub"),
            (r#"{"sub":"s","exp":1,"allow":[{"files":"a","actions":["pub"]}]}"#, "may only name files"),
            (r#"{"sub":"s","exp":1,"allow":[{"subjects":["a.>.b"],"actions":["pub"]}]}"#, "last token"),
            (r#"{"sub":"s","exp":1,"limits":{"pubRate":0}}"#, "pubRate must be"),
            (r#"{"sub":"s","exp":1,"limits":{"rate":1}}"#, "unknown field"),
        ];
        for (payload, expected) in cases {
            let error = Claims::parse(payload).unwrap_err();
            assert!(error.contains(expected), "{payload}: {error}");
        }
        let many = format!(r#"{{"sub":"s","exp":1,"allow":[{{"subjects":{:?},"actions":["pub"]}}]}}"#, vec!["a"; 65]);
        assert!(Claims::parse(&many).unwrap_err().contains("at most 64"));
    }

    #[test]
    fn unknown_top_level_claims_are_ignored_and_limits_read() {
        let c = Claims::parse(r#"{"sub":"s","exp":1.5,"iss":"me","aud":"x","limits":{"pubRate":10,"connections":2}}"#).unwrap();
        assert_eq!(c.exp, 1);
        assert_eq!(c.limits, Limits { pub_rate: Some(10.0), pub_bytes_rate: None, connections: Some(2) });
        assert!(c.allow.is_empty());
        assert_eq!(c.subject_actions("a"), Actions::NONE);
    }

    #[test]
    fn actions_have_wire_names() {
        let set = Actions::PUB.union(Actions::ADMIN);
        assert_eq!(serde_json::to_string(&set).unwrap(), r#"["pub","admin"]"#);
        assert_eq!(serde_json::from_str::<Actions>(r#"["admin","pub"]"#).unwrap(), set);
        assert_eq!(Actions::FILES_WRITE.name(), "files:write");
        assert!(Actions::ALL_SUBJECT.contains(Actions::STATE));
        assert!(!Actions::ALL_SUBJECT.contains(Actions::FILES_READ));
    }
}
