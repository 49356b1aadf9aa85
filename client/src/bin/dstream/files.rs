//! `dstream files ...`: transfers with a progress bar on a terminal.

use crate::{out, stdout_failure, Failure};
use clap::{Args, Subcommand};
use durable_stream_client::{AtomicFile, ByteRange, Client, Error, LinkMethod, LinkOptions, ListFiles, PartOptions, Upload};
use indicatif::{ProgressBar, ProgressStyle};
use std::future::Future;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Subcommand)]
pub enum FilesCommand {
    /// Upload a file (`-` reads standard input: `pg_dump db | dstream files put backups/db.sql -`).
    /// Files larger than one part, and standard input, go up in parts sent in parallel.
    Put {
        key: String,
        path: PathBuf,
        /// Content type stored with the file.
        #[arg(long, default_value = "application/octet-stream")]
        content_type: String,
        /// Size of each part (5MiB to 5GiB; bytes, or with KiB, MiB or GiB). Each part in flight
        /// is held in memory.
        #[arg(long, default_value = "16MiB", value_parser = parse_size)]
        part_size: u64,
        /// Parts sent at the same time.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
        concurrency: u16,
        /// Continue the unfinished upload UPLOAD_ID of this file (printed when it started; also
        /// `dstream files uploads`): the parts already stored are not sent again.
        #[arg(long, value_name = "UPLOAD_ID")]
        resume: Option<String>,
    },
    /// Download a file to PATH (default: standard output).
    Get {
        key: String,
        path: Option<PathBuf>,
        /// Byte range: `START-END` (inclusive), `START-` or `-LAST_N`.
        #[arg(long, value_parser = parse_range)]
        range: Option<ByteRange>,
    },
    /// List files: `SIZE  UPLOADED  KEY` per line, `PRE  PREFIX` for common prefixes.
    Ls {
        #[arg(long)]
        delimiter: Option<String>,
        #[command(flatten)]
        page: Page,
    },
    /// Delete a file.
    Rm { key: String },
    /// Print a signed link to a file that works without the API key until it expires.
    Link {
        key: String,
        /// How long the link works: seconds, or with s, m, h or d (at most 7d).
        #[arg(long, default_value = "1h", value_parser = parse_ttl)]
        ttl: u64,
        /// What the link allows: get (download; also HEAD) or put (upload).
        #[arg(long, default_value = "get", value_parser = parse_method)]
        method: LinkMethod,
        /// For an upload link: the only Content-Type it accepts.
        #[arg(long)]
        content_type: Option<String>,
        /// For an upload link: the largest file it accepts (bytes, or with KiB, MiB or GiB).
        #[arg(long, value_parser = parse_size)]
        max_bytes: Option<u64>,
    },
    /// List unfinished uploads in parts: `CREATED  KEY  UPLOAD_ID` per line.
    Uploads {
        #[command(flatten)]
        page: Page,
    },
    /// Drop an unfinished upload in parts and the parts stored for it.
    Abort { key: String, upload_id: String },
}

/// Which page of a listing, and how to print it.
#[derive(Args)]
pub struct Page {
    #[arg(long)]
    prefix: Option<String>,
    #[arg(long)]
    cursor: Option<String>,
    #[arg(long)]
    limit: Option<u32>,
    /// Print the server's JSON listing instead.
    #[arg(long)]
    json: bool,
}

impl Page {
    fn options(&self, delimiter: Option<String>) -> ListFiles {
        ListFiles { prefix: self.prefix.clone(), delimiter, cursor: self.cursor.clone(), limit: self.limit }
    }
}

/// `123`, `5MiB`, `1GiB`, `64KiB`.
fn parse_size(text: &str) -> Result<u64, String> {
    with_unit(text, &[("", 1), ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30)])
        .ok_or_else(|| "expected bytes, or a number with KiB, MiB or GiB (e.g. 16MiB)".into())
}

/// `90`, `90s`, `15m`, `1h`, `7d`.
fn parse_ttl(text: &str) -> Result<u64, String> {
    with_unit(text, &[("", 1), ("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)])
        .ok_or_else(|| "expected seconds, or a number with s, m, h or d (e.g. 1h)".into())
}

/// Digits followed by one of `units`, as the number times the unit's multiplier.
fn with_unit(text: &str, units: &[(&str, u64)]) -> Option<u64> {
    let (digits, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let (_, multiplier) = units.iter().find(|(name, _)| *name == unit)?;
    digits.parse::<u64>().ok()?.checked_mul(*multiplier)
}

fn parse_method(text: &str) -> Result<LinkMethod, String> {
    match text.to_ascii_lowercase().as_str() {
        "get" => Ok(LinkMethod::Get),
        "put" => Ok(LinkMethod::Put),
        _ => Err("expected get or put".into()),
    }
}

fn parse_range(text: &str) -> Result<ByteRange, String> {
    const EXPECTED: &str = "expected START-END, START- or -LAST_N";
    let (start, end) = text.split_once('-').ok_or(EXPECTED)?;
    let number = |s: &str| s.parse::<u64>().map_err(|_| EXPECTED.to_string());
    match (start.is_empty(), end.is_empty()) {
        (true, false) => Ok(ByteRange::Suffix(number(end)?)),
        (false, true) => Ok(ByteRange::From(number(start)?)),
        (false, false) => {
            let (start, end) = (number(start)?, number(end)?);
            if end < start {
                return Err("range end is before its start".into());
            }
            Ok(ByteRange::Inclusive { start, end })
        }
        (true, true) => Err(EXPECTED.into()),
    }
}

/// A byte progress bar on stderr, hidden when stderr is not a terminal.
fn progress(len: Option<u64>) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(len) => ProgressBar::new(len).with_style(
            ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                .expect("valid template"),
        ),
        None => ProgressBar::new_spinner()
            .with_style(ProgressStyle::with_template("{spinner} {bytes} {bytes_per_sec}").expect("valid template")),
    };
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    bar
}

pub async fn run(client: &Client, command: FilesCommand) -> Result<(), Failure> {
    match command {
        FilesCommand::Put { key, path, content_type, part_size, concurrency, resume } => {
            let options = PartOptions { part_size, concurrency: concurrency.into(), resume, ..PartOptions::default() };
            let upload = if path.as_os_str() == "-" {
                put_stdin(client, &key, &content_type, options).await?
            } else {
                put_path(client, &key, &path, &content_type, options).await?
            };
            eprintln!("uploaded {} ({} bytes, etag {})", upload.key, upload.size, upload.etag.as_deref().unwrap_or("-"));
            Ok(())
        }
        FilesCommand::Get { key, path, range } => {
            // The size is only needed for the bar, so ask for it only when the bar shows.
            let len = match range {
                None if std::io::stderr().is_terminal() => Some(client.head_file(&key).await.map_err(missing_file)?.size),
                Some(ByteRange::Inclusive { start, end }) => Some(end - start + 1),
                _ => None,
            };
            let bar = progress(len);
            let downloaded = match path.filter(|p| p.as_os_str() != "-") {
                Some(path) => download_to(client, &key, &path, range, &bar).await,
                None => match client.get_file(&key, &mut bar.wrap_async_write(tokio::io::stdout()), range).await {
                    Ok(_) => Ok(()),
                    Err(Error::Io(e)) => Err(stdout_failure(std::io::Error::new(e.kind(), e.to_string()))),
                    Err(e) => Err(missing_file(e)),
                },
            };
            bar.finish_and_clear();
            downloaded
        }
        FilesCommand::Ls { delimiter, page } => {
            let list = client.list_files(&page.options(delimiter)).await?;
            if page.json {
                return out(serde_json::to_string_pretty(&list).expect("listings serialize"));
            }
            for prefix in &list.prefixes {
                out(format_args!("{:>12}  {:<24}  {prefix}", "PRE", ""))?;
            }
            for object in &list.objects {
                out(format_args!("{:>12}  {:<24}  {}", object.size, object.uploaded.as_deref().unwrap_or("-"), object.key))?;
            }
            if let (true, Some(cursor)) = (list.truncated, &list.cursor) {
                eprintln!("more: --cursor {cursor}");
            }
            Ok(())
        }
        FilesCommand::Rm { key } => client.delete_file(&key).await.map_err(missing_file),
        FilesCommand::Link { key, ttl, method, content_type, max_bytes } => {
            let link = client.file_link(&key, &LinkOptions { ttl, method, content_type, max_bytes }).await?;
            eprintln!("expires {}", link.expires);
            out(link.url)
        }
        FilesCommand::Uploads { page } => {
            let list = client.list_uploads(&page.options(None)).await?;
            if page.json {
                return out(serde_json::to_string_pretty(&list).expect("listings serialize"));
            }
            for upload in &list.uploads {
                out(format_args!("{:<24}  {}  {}", upload.created, upload.key, upload.upload_id))?;
            }
            if let (true, Some(cursor)) = (list.truncated, &list.cursor) {
                eprintln!("more: --cursor {cursor}");
            }
            Ok(())
        }
        FilesCommand::Abort { key, upload_id } => client.abort_upload(&key, &upload_id).await.map_err(Failure::from),
    }
}

/// Standard input goes up in parts as it is read (it fits in one request if it is within one
/// part). It cannot be read again, so an upload that fails or is interrupted is aborted.
async fn put_stdin(client: &Client, key: &str, content_type: &str, mut options: PartOptions) -> Result<Upload, Failure> {
    if let Some(upload_id) = &options.resume {
        return Err(Failure::Usage(format!(
            "--resume {upload_id} needs the same bytes again, and standard input cannot be read a second time;              upload from a file, or start over (and drop the old upload: dstream files abort {key} {upload_id})"
        )));
    }
    let bar = progress(None);
    let started = track(&mut options, &bar);
    let upload = client.put_file_in_parts(key, tokio::io::stdin(), content_type, &options);
    let outcome = unless_interrupted(upload, String::new()).await;
    bar.finish_and_clear();
    let upload_id = started.lock().expect("not poisoned").take();
    let failure = match outcome {
        Ok(Ok(upload)) => return Ok(upload),
        Ok(Err(error)) => Failure::Client(error),
        Err(interrupted) => interrupted,
    };
    let Some(upload_id) = upload_id else {
        return Err(noting(failure, "; the upload was abandoned"));
    };
    let note = match client.abort_upload(key, &upload_id).await {
        Ok(()) => "; the upload was aborted".to_string(),
        Err(e) => format!("; aborting upload {upload_id} failed too ({e}): drop it with `dstream files abort {key} {upload_id}`"),
    };
    Err(noting(failure, &note))
}

/// A file within one part goes up in one request; a larger one in parts, and an upload that
/// fails or is interrupted stays on the server to be resumed.
async fn put_path(client: &Client, key: &str, path: &Path, content_type: &str, mut options: PartOptions) -> Result<Upload, Failure> {
    let cannot_read = |e: std::io::Error| Failure::Local(format!("cannot read {}: {e}", path.display()));
    let file = tokio::fs::File::open(path).await.map_err(cannot_read)?;
    let metadata = file.metadata().await.map_err(cannot_read)?;
    if !metadata.is_file() {
        return Err(Failure::Local(format!("cannot upload {}: not a file", path.display())));
    }
    let len = metadata.len();
    let bar = progress(Some(len));
    if len <= options.part_size && options.resume.is_none() {
        let upload = client.put_file(key, bar.wrap_async_read(file), content_type, Some(len)).await;
        bar.finish_and_clear();
        return Ok(upload?);
    }
    let started = track(&mut options, &bar);
    let upload = unless_interrupted(client.put_file_in_parts(key, file, content_type, &options), String::new()).await;
    bar.finish_and_clear();
    let failure = match upload {
        Ok(Ok(upload)) => return Ok(upload),
        Ok(Err(error)) => Failure::Client(error),
        Err(interrupted) => interrupted,
    };
    let Some(upload_id) = started.lock().expect("not poisoned").take() else { return Err(failure) };
    let note = format!(
        "; upload {upload_id} is kept: resume it with `dstream files put {key} {} --resume {upload_id}`, \
         or drop it with `dstream files abort {key} {upload_id}`",
        path.display()
    );
    Err(noting(failure, &note))
}

/// Shows the bytes stored on `bar`, and keeps the upload id once the upload exists (printed,
/// so that it is known even if this process is killed).
fn track(options: &mut PartOptions, bar: &ProgressBar) -> Arc<Mutex<Option<String>>> {
    let started = Arc::new(Mutex::new(None));
    let (kept, shown) = (started.clone(), bar.clone());
    options.on_upload_id = Some(Arc::new(move |upload_id: String| {
        shown.suspend(|| eprintln!("upload id {upload_id}"));
        *kept.lock().expect("not poisoned") = Some(upload_id);
    }));
    let shown = bar.clone();
    options.on_progress = Some(Arc::new(move |bytes| shown.set_position(bytes)));
    started
}

/// Adds what happened to the upload to a failure's message.
fn noting(failure: Failure, note: &str) -> Failure {
    match failure {
        Failure::Interrupted(left) => Failure::Interrupted(format!("{left}{note}")),
        Failure::Client(error) => Failure::Noted(error, note.to_owned()),
        other => other,
    }
}

/// Downloads into `path` through a temporary file, so that a failed or interrupted download
/// leaves whatever was at `path` as it was.
async fn download_to(client: &Client, key: &str, path: &Path, range: Option<ByteRange>, bar: &ProgressBar) -> Result<(), Failure> {
    let mut file = AtomicFile::create(path).await.map_err(|e| cannot_write(path, e))?;
    let mut writer = bar.wrap_async_write(file.writer());
    let download = client.get_file(key, &mut writer, range);
    // On Ctrl-C, returning drops `file`, which removes the temporary file.
    let finished = unless_interrupted(download, format!("; {} was left as it was", path.display())).await?;
    drop(writer);
    match finished {
        Ok(_) => file.commit().await.map_err(|e| cannot_write(path, e)),
        // Local I/O errors come from writing the file, which they do not name.
        Err(Error::Io(e)) => Err(Failure::Local(format!("cannot write {}: {e}", path.display()))),
        Err(e) => Err(missing_file(e)),
    }
}

/// Runs `work` to the end, or stops it on Ctrl-C (dropping it, so that it cleans up after
/// itself); `left` says what that left behind.
async fn unless_interrupted<T>(work: impl Future<Output = T>, left: String) -> Result<T, Failure> {
    tokio::select! {
        done = work => Ok(done),
        _ = tokio::signal::ctrl_c() => Err(Failure::Interrupted(left)),
    }
}

/// A download target that cannot be written, named as the user gave it (not by the temporary
/// file next to it that the download goes into first).
fn cannot_write(path: &Path, e: Error) -> Failure {
    let Error::Io(e) = e else { return Failure::Client(e) };
    let reason = match e.kind() {
        std::io::ErrorKind::NotFound => "its directory does not exist".to_string(),
        std::io::ErrorKind::IsADirectory => "it is a directory; give a file path".to_string(),
        std::io::ErrorKind::InvalidInput => "it does not name a file; give a file path".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    };
    Failure::Local(format!("cannot write {}: {reason}", path.display()))
}

/// Points at the listing when a file is not there.
fn missing_file(e: Error) -> Failure {
    match e {
        Error::NotFound(message) => Failure::Local(format!("not found: {message} — `dstream files ls` lists the stored files")),
        other => Failure::Client(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse() {
        assert_eq!(parse_range("0-99"), Ok(ByteRange::Inclusive { start: 0, end: 99 }));
        assert_eq!(parse_range("100-"), Ok(ByteRange::From(100)));
        assert_eq!(parse_range("-5"), Ok(ByteRange::Suffix(5)));
        for bad in ["", "-", "5", "a-b", "9-3"] {
            assert!(parse_range(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sizes_durations_and_methods_parse() {
        assert_eq!(parse_size("1234"), Ok(1234));
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        for bad in ["", "MiB", "5MB", "5 MiB", "-1", "99999999999GiB"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_ttl("90"), Ok(90));
        assert_eq!(parse_ttl("90s"), Ok(90));
        assert_eq!(parse_ttl("15m"), Ok(900));
        assert_eq!(parse_ttl("1h"), Ok(3600));
        assert_eq!(parse_ttl("7d"), Ok(604_800));
        for bad in ["", "h", "1w", "1.5h", "-1"] {
            assert!(parse_ttl(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_method("PUT"), Ok(LinkMethod::Put));
        assert_eq!(parse_method("get"), Ok(LinkMethod::Get));
        assert!(parse_method("delete").is_err());
    }
}
