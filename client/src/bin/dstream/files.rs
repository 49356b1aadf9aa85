//! `dstream files ...`: transfers with a progress bar on a terminal.

use clap::Subcommand;
use durable_stream_client::{ByteRange, Client, Error, ListFiles};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;

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

pub async fn run(client: &Client, command: FilesCommand) -> Result<(), Error> {
    match command {
        FilesCommand::Put { key, path, content_type } => {
            let upload = if path.as_os_str() == "-" {
                let bar = progress(None);
                let upload = client.put_file(&key, bar.wrap_async_read(tokio::io::stdin()), &content_type, None).await;
                bar.finish_and_clear();
                upload?
            } else {
                let file = tokio::fs::File::open(&path).await?;
                let len = file.metadata().await?.len();
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
                None if std::io::stderr().is_terminal() => Some(client.head_file(&key).await?.size),
                Some(ByteRange::Inclusive { start, end }) => Some(end - start + 1),
                _ => None,
            };
            let bar = progress(len);
            let download = match path.filter(|p| p.as_os_str() != "-") {
                Some(path) => {
                    let mut file = bar.wrap_async_write(tokio::fs::File::create(&path).await?);
                    client.get_file(&key, &mut file, range).await
                }
                None => client.get_file(&key, &mut bar.wrap_async_write(tokio::io::stdout()), range).await,
            };
            bar.finish_and_clear();
            download.map(drop)
        }
        FilesCommand::Ls { prefix, delimiter, cursor, limit, json } => {
            let list = client.list_files(&ListFiles { prefix, delimiter, cursor, limit }).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list).expect("listings serialize"));
                return Ok(());
            }
            for prefix in &list.prefixes {
                println!("{:>12}  {:<24}  {prefix}", "PRE", "");
            }
            for object in &list.objects {
                println!("{:>12}  {:<24}  {}", object.size, object.uploaded.as_deref().unwrap_or("-"), object.key);
            }
            if let (true, Some(cursor)) = (list.truncated, &list.cursor) {
                eprintln!("more: --cursor {cursor}");
            }
            Ok(())
        }
        FilesCommand::Rm { key } => client.delete_file(&key).await,
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
