//! Saved subscription positions, so a restarted process resumes where the previous one stopped.

use durable_stream_protocol::Seq;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A subscription's position in one epoch of a subject: every message up to and including
/// `seq` was consumed (acknowledged in manual mode, delivered in auto mode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The subject's epoch the sequence belongs to.
    pub epoch: String,
    /// The last consumed sequence.
    pub seq: Seq,
}

/// Where cursors are kept. Keys are built by [`cursor_key`]: the subject, plus `@consumer` for
/// durable consumers.
///
/// Implementations are called from the subscription's task and from `Drop`, so they should be
/// quick (a small local write); saves are coalesced to about one per second.
pub trait CursorStore: Send + Sync + fmt::Debug {
    /// The saved cursor for `key`, or `None` when there is none yet.
    fn load(&self, key: &str) -> io::Result<Option<Cursor>>;
    /// Replaces the saved cursor for `key`.
    fn save(&self, key: &str, cursor: &Cursor) -> io::Result<()>;
}

/// The key a subscription's cursor is stored under: `subject` or `subject@consumer`
/// (`@` cannot appear in subject or consumer names, so keys never collide).
pub fn cursor_key(subject: &str, consumer: Option<&str>) -> String {
    match consumer {
        Some(consumer) => format!("{subject}@{consumer}"),
        None => subject.to_owned(),
    }
}

/// Keeps each cursor in a small JSON file `<dir>/<key>.cursor.json`, replaced atomically
/// (written to a temporary file, synced, then renamed over the old one), so a crash leaves
/// either the old or the new cursor, never a torn one.
#[derive(Debug, Clone)]
pub struct FileCursorStore {
    dir: PathBuf,
}

impl FileCursorStore {
    /// Uses `dir` (created if missing) for the cursor files.
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| at_path("cannot create the cursor directory", &dir, e))?;
        Ok(FileCursorStore { dir })
    }

    /// The directory holding the cursor files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &str) -> io::Result<PathBuf> {
        // Keys come from validated subject and consumer names; refuse anything that could
        // escape the directory anyway.
        if key.is_empty() || key.contains(['/', '\\']) || key.starts_with('.') {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("unusable cursor key {key:?}")));
        }
        Ok(self.dir.join(format!("{key}.cursor.json")))
    }
}

impl CursorStore for FileCursorStore {
    fn load(&self, key: &str) -> io::Result<Option<Cursor>> {
        let path = self.path(key)?;
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(at_path("cannot read", &path, e)),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| at_path("cannot read", &path, io::Error::new(io::ErrorKind::InvalidData, e)))
    }

    fn save(&self, key: &str, cursor: &Cursor) -> io::Result<()> {
        static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);
        let path = self.path(key)?;
        // Unique per process and per call, so concurrent saves never share a temporary file.
        let temp = self.dir.join(format!(
            ".{key}.{}.{}.tmp",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let written = (|| {
            let mut file = std::fs::File::create(&temp)?;
            file.write_all(&serde_json::to_vec(cursor).map_err(io::Error::other)?)?;
            file.sync_all()?;
            std::fs::rename(&temp, &path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        written.map_err(|e| at_path("cannot write", &path, e))
    }
}

/// The same error, with what was done to which path in its message.
fn at_path(action: &str, path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{action} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads_per_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCursorStore::new(dir.path().join("nested")).unwrap();
        assert_eq!(store.load("orders").unwrap(), None);
        let cursor = Cursor { epoch: "e1".into(), seq: 42 };
        store.save("orders", &cursor).unwrap();
        store.save(&cursor_key("orders", Some("billing")), &Cursor { epoch: "e1".into(), seq: 7 }).unwrap();
        assert_eq!(store.load("orders").unwrap(), Some(cursor));
        assert_eq!(store.load("orders@billing").unwrap().unwrap().seq, 7);
        store.save("orders", &Cursor { epoch: "e2".into(), seq: 1 }).unwrap();
        assert_eq!(store.load("orders").unwrap().unwrap().epoch, "e2");
    }

    #[test]
    fn leaves_no_temporary_files_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCursorStore::new(dir.path()).unwrap();
        for seq in 0..20 {
            store.save("s", &Cursor { epoch: "e".into(), seq }).unwrap();
        }
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["s.cursor.json"]);
    }

    #[test]
    fn corrupt_files_and_bad_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCursorStore::new(dir.path()).unwrap();
        std::fs::write(dir.path().join("s.cursor.json"), "{not json").unwrap();
        let corrupt = store.load("s").unwrap_err();
        assert_eq!(corrupt.kind(), io::ErrorKind::InvalidData);
        assert!(corrupt.to_string().contains("s.cursor.json"), "{corrupt}");
        let blocked = FileCursorStore::new(dir.path().join("s.cursor.json/sub")).unwrap_err();
        assert!(blocked.to_string().starts_with("cannot create the cursor directory"), "{blocked}");
        for bad in ["", "../x", "a/b", ".hidden"] {
            assert_eq!(store.load(bad).unwrap_err().kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
    }
}
