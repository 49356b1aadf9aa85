//! `dstream token ...`: create (server-minted or signed here), revoke, make signing keys, and
//! inspect access tokens. Only `token create` prints a token, and only on standard output.

use crate::{out, Failure, Server};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{ArgGroup, Args, Subcommand};
use durable_stream_client::{Action, Ed25519Key, IssuedToken, Revoke, TokenBuilder, TokenLimits};
use durable_stream_protocol::token::jwt::decode_unverified;
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token: minted by the server (needs the API key and the server's TOKEN_SECRET),
    /// or signed here with --sign-with. Prints the token alone (with --json: {"token","exp","jti"}).
    Create(Box<CreateArgs>),
    /// Revoke tokens (needs the API key): one by its jti, or every token of a client issued
    /// before a time. Live connections using them are closed within seconds.
    Revoke(RevokeArgs),
    /// Make an Ed25519 key for signing tokens: the private key goes to KEYFILE (created with
    /// mode 0600), and its entry for the server's TOKEN_PUBLIC_KEYS to standard output.
    Keygen {
        /// Where to write the private key (a JWK); an existing file is not replaced.
        keyfile: PathBuf,
        /// The key's id (default: the start of its public key).
        #[arg(long)]
        kid: Option<String>,
    },
    /// Show a token's header, claims and time left, WITHOUT verifying its signature.
    Inspect {
        /// The token, or `-` to read it from standard input (default: --token / DSTREAM_TOKEN).
        token: Option<String>,
    },
}

impl TokenCommand {
    /// Whether the command asks the server for something only the API key may do.
    pub fn needs_api_key(&self) -> bool {
        match self {
            TokenCommand::Create(args) => args.sign_with.is_none(),
            TokenCommand::Revoke(_) => true,
            TokenCommand::Keygen { .. } | TokenCommand::Inspect { .. } => false,
        }
    }
}

/// Subject actions (for --allow and --deny) or file actions (for --allow-files).
fn actions(files: bool) -> impl TypedValueParser<Value = Action> {
    let names = Action::ALL.into_iter().filter(move |a| a.name().starts_with("files:") == files).map(Action::name);
    PossibleValuesParser::new(names).map(|name| name.parse::<Action>().expect("a possible value is an action"))
}

#[derive(Args)]
pub struct CreateArgs {
    /// Who the token is for: its `sub`, shown in the server's logs.
    #[arg(long)]
    sub: String,
    /// A subject pattern the --allow actions apply to (repeatable): `*` stands for one
    /// `.`-separated token, `>` (last) for the rest, e.g. 'orders.>'.
    #[arg(long = "subject", value_name = "PATTERN", requires = "allow")]
    subjects: Vec<String>,
    /// An action allowed on the --subject patterns (repeatable).
    #[arg(long, value_name = "ACTION", value_parser = actions(false), requires = "subjects")]
    allow: Vec<Action>,
    /// A subject pattern the --deny actions apply to (repeatable); deny wins over allow.
    #[arg(long = "deny-subject", value_name = "PATTERN", requires = "deny")]
    deny_subjects: Vec<String>,
    /// An action denied on the --deny-subject patterns (repeatable).
    #[arg(long, value_name = "ACTION", value_parser = actions(false), requires = "deny_subjects")]
    deny: Vec<Action>,
    /// A file key prefix the --allow-files actions apply to (repeatable; '' for every file).
    #[arg(long = "files", value_name = "PREFIX", requires = "allow_files")]
    files: Vec<String>,
    /// A file action allowed under the --files prefixes (repeatable).
    #[arg(long = "allow-files", value_name = "ACTION", value_parser = actions(true), requires = "files")]
    allow_files: Vec<Action>,
    /// How long the token lives: seconds, or a number with s, m, h or d (90s, 15m, 1h, 7d).
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    ttl: Duration,
    /// Publishes per second allowed to this client on one subject.
    #[arg(long)]
    pub_rate: Option<f64>,
    /// Published bytes per second allowed to this client on one subject.
    #[arg(long)]
    pub_bytes_rate: Option<f64>,
    /// WebSocket connections this client may hold open on one subject.
    #[arg(long)]
    connections: Option<u32>,
    /// Sign here instead of asking the server: `ed25519:KEYFILE[:KID]` (a key from `dstream
    /// token keygen`) or `hs256:SECRETFILE` (a file holding the server's TOKEN_SECRET).
    #[arg(long, value_name = "ALG:FILE", value_parser = parse_signer)]
    sign_with: Option<Signer>,
    /// The token's id (only with --sign-with; the server chooses its own). Default: random.
    #[arg(long, requires = "sign_with")]
    jti: Option<String>,
    /// Print {"token","exp","jti"} instead of the token alone.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(group(ArgGroup::new("which").required(true).args(["jti", "sub"])))]
pub struct RevokeArgs {
    /// The id of the token to revoke.
    #[arg(long)]
    jti: Option<String>,
    /// The client whose tokens to revoke (those issued before --issued-before).
    #[arg(long)]
    sub: Option<String>,
    /// With --sub: `now` (default), an RFC 3339 time (2025-01-31T12:00:00Z) or milliseconds
    /// since 1970.
    #[arg(long, value_name = "TIME", conflicts_with = "jti", value_parser = parse_time)]
    issued_before: Option<SystemTime>,
}

/// How `token create --sign-with` signs.
#[derive(Clone, Debug)]
pub enum Signer {
    Ed25519 { keyfile: PathBuf, kid: Option<String> },
    Hs256 { secret_file: PathBuf },
}

fn parse_signer(text: &str) -> Result<Signer, String> {
    const EXPECTED: &str = "expected ed25519:KEYFILE[:KID] or hs256:SECRETFILE";
    match text.split_once(':') {
        Some(("ed25519", rest)) if !rest.is_empty() => Ok(match rest.rsplit_once(':') {
            Some((keyfile, kid)) if !keyfile.is_empty() && !kid.is_empty() => {
                Signer::Ed25519 { keyfile: keyfile.into(), kid: Some(kid.to_owned()) }
            }
            _ => Signer::Ed25519 { keyfile: rest.into(), kid: None },
        }),
        Some(("hs256", file)) if !file.is_empty() => Ok(Signer::Hs256 { secret_file: file.into() }),
        _ => Err(EXPECTED.into()),
    }
}

/// `90`, `90s`, `15m`, `1h`, `7d`.
fn parse_ttl(text: &str) -> Result<Duration, String> {
    const EXPECTED: &str = "expected seconds or a number with s, m, h or d (e.g. 90s, 15m, 1h, 7d)";
    let (number, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c),
        _ => (text, 's'),
    };
    let seconds_per_unit = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(EXPECTED.into()),
    };
    let number: u64 = number.parse().map_err(|_| EXPECTED.to_string())?;
    match number.checked_mul(seconds_per_unit) {
        Some(0) => Err("the time to live must be at least 1 s".into()),
        Some(seconds) => Ok(Duration::from_secs(seconds)),
        None => Err(EXPECTED.into()),
    }
}

/// `now`, milliseconds since 1970, or RFC 3339 (`2025-01-31T12:00:00Z`, `…+02:00`).
fn parse_time(text: &str) -> Result<SystemTime, String> {
    const EXPECTED: &str = "expected now, an RFC 3339 time (2025-01-31T12:00:00Z) or milliseconds since 1970";
    if text == "now" {
        return Ok(SystemTime::now());
    }
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(UNIX_EPOCH + Duration::from_millis(ms));
    }
    rfc3339_seconds(text).map(|s| UNIX_EPOCH + Duration::from_secs(s)).ok_or_else(|| EXPECTED.to_string())
}

/// Seconds since 1970 of `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` (the fraction is dropped).
fn rfc3339_seconds(text: &str) -> Option<u64> {
    // Unsigned fields: a sign inside one is an error, not a negative number.
    let numbers = |text: &str, separator: char| -> Option<Vec<i64>> {
        let fields: Vec<&str> = text.split(separator).collect();
        fields.iter().map(|f| f.parse::<u32>().ok().map(i64::from)).collect::<Option<Vec<_>>>().filter(|_| fields.len() == 3)
    };
    let (date, time) = text.split_once(['T', 't'])?;
    let (clock, offset_s) = match time.strip_suffix(['Z', 'z']) {
        Some(clock) => (clock, 0),
        None => {
            let (clock, offset) = time.split_at(time.rfind(['+', '-'])?);
            let (hours, minutes) = offset[1..].split_once(':')?;
            let offset_s = i64::from(hours.parse::<u8>().ok()?) * 3600 + i64::from(minutes.parse::<u8>().ok()?) * 60;
            (clock, if offset.starts_with('-') { -offset_s } else { offset_s })
        }
    };
    let (ymd, hms) = (numbers(date, '-')?, numbers(clock.split('.').next()?, ':')?);
    let valid = (1..=12).contains(&ymd[1]) && (1..=31).contains(&ymd[2]) && hms[0] < 24 && hms[1] < 60 && hms[2] <= 60;
    let seconds = days_from_civil(ymd[0], ymd[1], ymd[2]) * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2] - offset_s;
    valid.then(|| u64::try_from(seconds).ok())?
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since 1970 (the inverse of [`days_from_civil`]).
fn rfc3339(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    let time = seconds % 86_400;
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", time / 3600, time % 3600 / 60, time % 60)
}

/// `2d 3h`, `1h 5m`, `4m 10s`, `12s`: the two largest units.
fn human(seconds: u64) -> String {
    let parts = [(seconds / 86_400, "d"), (seconds / 3600 % 24, "h"), (seconds / 60 % 60, "m"), (seconds % 60, "s")];
    let first = parts.iter().position(|(n, _)| *n > 0).unwrap_or(parts.len() - 1);
    parts[first..].iter().take(2).map(|(n, unit)| format!("{n}{unit}")).collect::<Vec<_>>().join(" ")
}

fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// How long a token with this `exp` has left, in words.
fn time_left(exp: u64) -> String {
    let now = now_s();
    if exp > now {
        format!("expires {} (in {})", rfc3339(exp), human(exp - now))
    } else {
        format!("expired {} ({} ago)", rfc3339(exp), human(now - exp))
    }
}

/// A token's header and claims, decoded without verifying it.
fn decode(token: &str) -> Result<(Value, Value), Failure> {
    let (header, claims) = decode_unverified(token).map_err(|e| Failure::Local(format!("cannot read the token: {e}")))?;
    let parse = |text: &str| serde_json::from_str::<Value>(text).map_err(|e| Failure::Local(format!("cannot read the token: {e}")));
    Ok((parse(&header)?, parse(&claims)?))
}

pub async fn run(server: &Server, command: TokenCommand) -> Result<(), Failure> {
    match command {
        TokenCommand::Create(args) => create(server, *args).await,
        TokenCommand::Revoke(args) => {
            let which = match (args.jti, args.sub) {
                (Some(jti), _) => Revoke::Token { jti },
                (None, Some(sub)) => Revoke::Client { sub, issued_before: args.issued_before },
                (None, None) => unreachable!("clap requires --jti or --sub"),
            };
            let revoked = server.admin_client("revoking tokens").await?.revoke_tokens(which).await?;
            out(serde_json::to_string_pretty(&revoked).expect("values serialize"))
        }
        TokenCommand::Keygen { keyfile, kid } => keygen(&keyfile, kid.as_deref()),
        TokenCommand::Inspect { token } => inspect(token.or_else(|| server.token.clone())),
    }
}

async fn create(server: &Server, args: CreateArgs) -> Result<(), Failure> {
    let mut builder = TokenBuilder::new(&args.sub).ttl(args.ttl).limits(TokenLimits {
        pub_rate: args.pub_rate,
        pub_bytes_rate: args.pub_bytes_rate,
        connections: args.connections,
    });
    if !args.subjects.is_empty() {
        builder = builder.allow_subjects(args.subjects, args.allow);
    }
    if !args.deny_subjects.is_empty() {
        builder = builder.deny_subjects(args.deny_subjects, args.deny);
    }
    for prefix in args.files {
        builder = builder.allow_files(prefix, args.allow_files.iter().copied());
    }
    if let Some(jti) = args.jti {
        builder = builder.jti(jti);
    }
    let IssuedToken { token, exp, jti } = match &args.sign_with {
        Some(signer) => {
            let token = sign(&builder, signer)?;
            let (_, claims) = decode(&token)?;
            let (exp, jti) = (claims["exp"].as_u64().unwrap_or_default(), claims["jti"].as_str().unwrap_or_default().to_owned());
            IssuedToken { token, exp, jti }
        }
        None => server.admin_client("minting tokens (or sign here with --sign-with)").await?.create_token(&builder).await?,
    };
    if args.json {
        out(json!({ "token": token, "exp": exp, "jti": jti }))
    } else {
        out(&token)?;
        eprintln!("token for {:?}, jti {jti}; {}", args.sub, time_left(exp));
        Ok(())
    }
}

fn sign(builder: &TokenBuilder, signer: &Signer) -> Result<String, Failure> {
    let read = |path: &Path, what: &str| {
        std::fs::read_to_string(path).map_err(|e| Failure::Local(format!("cannot read the {what} {}: {e}", path.display())))
    };
    let token = match signer {
        Signer::Ed25519 { keyfile, kid } => {
            let key = Ed25519Key::from_jwk(&read(keyfile, "key file")?)
                .map_err(|e| Failure::Local(format!("{}: {e} — make one with `dstream token keygen FILE`", keyfile.display())))?;
            builder.sign_ed25519(Some(kid.as_deref().unwrap_or(&key.kid)), key.private_key())
        }
        Signer::Hs256 { secret_file } => {
            let secret = read(secret_file, "secret file")?;
            builder.sign_hs256(secret.trim_end_matches(['\r', '\n']).as_bytes())
        }
    };
    token.map_err(|e| Failure::Local(e.to_string()))
}

fn keygen(keyfile: &Path, kid: Option<&str>) -> Result<(), Failure> {
    use std::os::unix::fs::OpenOptionsExt;
    let key = Ed25519Key::generate(kid);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(keyfile)
        .and_then(|mut file| writeln!(file, "{}", key.to_jwk()).and_then(|()| file.sync_all()));
    written.map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            Failure::Usage(format!("{} exists already; choose another file (a key is never overwritten)", keyfile.display()))
        }
        _ => Failure::Local(format!("cannot write {}: {e}", keyfile.display())),
    })?;
    eprintln!(
        "wrote the private key to {} (keep it secret); add this entry to the server's TOKEN_PUBLIC_KEYS list:",
        keyfile.display()
    );
    out(key.public_entry())
}

fn inspect(token: Option<String>) -> Result<(), Failure> {
    let token = match token.as_deref() {
        None => return Err(Failure::Usage("no token to inspect: pass it, `-` to read standard input, or set DSTREAM_TOKEN".into())),
        Some("-") => {
            let mut text = String::new();
            std::io::stdin().read_line(&mut text).map_err(|e| Failure::Local(format!("cannot read standard input: {e}")))?;
            text.trim().to_owned()
        }
        Some(token) => token.trim().to_owned(),
    };
    let (header, claims) = decode(&token)?;
    let mut shown = json!({ "header": header, "claims": claims });
    if let Some(exp) = claims["exp"].as_u64() {
        shown["expires"] = rfc3339(exp).into();
        shown["secondsLeft"] = (exp as i64 - now_s() as i64).into();
    }
    out(serde_json::to_string_pretty(&shown).expect("values serialize"))?;
    if let Some(exp) = claims["exp"].as_u64() {
        eprintln!("{} (the signature is not verified: only the server can)", time_left(exp));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_to_live_parse_with_units() {
        assert_eq!(parse_ttl("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_ttl("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_ttl("7d"), Ok(Duration::from_secs(604_800)));
        for bad in ["", "h", "1w", "-1h", "1.5h", "0m"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_parse_as_rfc_3339_or_milliseconds() {
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(parse_time("1700000000123"), Ok(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(at(1_700_000_000)));
        assert_eq!(parse_time("2023-11-14T22:13:20.999Z"), Ok(at(1_700_000_000)));
        assert_eq!(parse_time("2023-11-15T00:13:20+02:00"), Ok(at(1_700_000_000)));
        assert_eq!(parse_time("2023-11-14T20:13:20-02:00"), Ok(at(1_700_000_000)));
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Ok(at(0)));
        assert_eq!(parse_time("2000-02-29T12:00:00Z"), Ok(at(951_825_600)));
        assert!(parse_time("now").unwrap().duration_since(UNIX_EPOCH).unwrap().as_secs() > 1_700_000_000);
        for bad in ["yesterday", "2023-13-01T00:00:00Z", "2023-11-14", "2023-11-14T25:00:00Z", "2023-11-14T22:13:20"] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_print_as_rfc_3339() {
        for seconds in [0, 951_825_600, 1_700_000_000, 4_102_444_800] {
            assert_eq!(rfc3339_seconds(&rfc3339(seconds)), Some(seconds), "{}", rfc3339(seconds));
        }
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_825_600), "2000-02-29T12:00:00Z");
    }

    #[test]
    fn durations_read_in_their_two_largest_units() {
        assert_eq!(human(12), "12s");
        assert_eq!(human(250), "4m 10s");
        assert_eq!(human(3900), "1h 5m");
        assert_eq!(human(3600), "1h 0m");
        assert_eq!(human(2 * 86_400 + 3 * 3600 + 59), "2d 3h");
        assert_eq!(human(0), "0s");
    }

    #[test]
    fn signers_name_an_algorithm_and_a_file() {
        assert!(matches!(parse_signer("ed25519:k.jwk"), Ok(Signer::Ed25519 { keyfile, kid: None }) if keyfile == Path::new("k.jwk")));
        assert!(
            matches!(parse_signer("ed25519:keys/k.jwk:k2"), Ok(Signer::Ed25519 { keyfile, kid: Some(kid) }) if keyfile == Path::new("keys/k.jwk") && kid == "k2")
        );
        assert!(matches!(parse_signer("hs256:secret.txt"), Ok(Signer::Hs256 { secret_file }) if secret_file == Path::new("secret.txt")));
        for bad in ["rs256:x", "ed25519:", "hs256", "k.jwk"] {
            assert!(parse_signer(bad).is_err(), "{bad}");
        }
    }
}
