//! `dstream files ...`: transfers with a progress bar on a terminal.

use crate::{out, stdout_failure, Failure};
use clap::Subcommand;
use durable_stream_client::{AtomicFile, ByteRange, Client, Error, ListFiles};
use indicatif::{ProgressBar, ProgressStyle};
use std::future::Future;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum FilesCommand {
    /// Upload a file (`-` reads standard input).
    Put {
        key: String,
        path: PathBuf,
        /// Content type stored with the file.
        #[arg(long, default_value = "application/octet-stream")]
        content_type: String,
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
        prefix: Option<String>,
        #[arg(long)]
        delimiter: Option<String>,
        #[arg(long)]
        cursor: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
        /// Print the server's JSON listing instead.
        #[arg(long)]
        json: bool,
    },
    /// Delete a file.
    Rm { key: String },
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
        FilesCommand::Put { key, path, content_type } => {
            let upload = if path.as_os_str() == "-" {
                let bar = progress(None);
                // Standard input is spooled to a temporary file first (to learn its size);
                // dropping the upload on Ctrl-C removes it.
                let upload = client.put_file(&key, bar.wrap_async_read(tokio::io::stdin()), &content_type, None);
                let upload = unless_interrupted(upload, "; the upload was abandoned".into()).await;
                bar.finish_and_clear();
                upload??
            } else {
                let cannot_read = |e: std::io::Error| Failure::Local(format!("cannot read {}: {e}", path.display()));
                let file = tokio::fs::File::open(&path).await.map_err(cannot_read)?;
                let metadata = file.metadata().await.map_err(cannot_read)?;
                if !metadata.is_file() {
                    return Err(Failure::Local(format!("cannot upload {}: not a file", path.display())));
                }
                let len = metadata.len();
                let bar = progress(Some(len));
                let upload = client.put_file(&key, bar.wrap_async_read(file), &content_type, Some(len)).await;
                bar.finish_and_clear();
                upload?
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
        FilesCommand::Ls { prefix, delimiter, cursor, limit, json } => {
            let list = client.list_files(&ListFiles { prefix, delimiter, cursor, limit }).await?;
            if json {
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
}
