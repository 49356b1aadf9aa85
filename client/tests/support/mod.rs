//! Runs the real Worker on workerd (through `miniflare-tests/serve.mjs`) for integration tests.
//!
//! Each [`Server`] sits behind a small TCP proxy with a fixed address, so a test can stop and
//! restart workerd (which comes back on a new port) or cut every connection, while its clients
//! keep one URL. Missing prerequisites fail the test with instructions: nothing is skipped.
#![allow(dead_code)] // Each test binary uses a different part of this module.

pub mod mock;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

pub const API_KEY: &str = "test-key";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("client/ is inside the repository").to_owned()
}

/// One `serve.mjs` process (workerd underneath).
struct Process {
    child: Child,
    /// Closing it tells serve.mjs to stop workerd and exit (also if this process dies).
    stdin: Option<ChildStdin>,
    addr: SocketAddr,
}

impl Process {
    fn spawn(persist: &Path, vars: &[String]) -> Process {
        let root = repo_root();
        let node = root.join("node_modules/.bin/node");
        let serve = root.join("miniflare-tests/serve.mjs");
        let build = root.join("build/index.js");
        for (path, fix) in [
            (&node, "run `npm ci` in the repository root"),
            (&serve, "miniflare-tests/serve.mjs is part of the repository"),
            (&build, "build the Worker first: `bash scripts/build-worker.sh`"),
        ] {
            assert!(path.exists(), "integration tests need {}: {fix}", path.display());
        }
        let mut command = Command::new(&node);
        command.arg(&serve).arg("--persist").arg(persist).current_dir(&root);
        for var in vars {
            command.arg("--var").arg(var);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", node.display()));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let line = loop {
            match lines.next() {
                Some(Ok(line)) if line.starts_with("READY ") => break line,
                Some(Ok(_)) => continue,
                _ => panic!("serve.mjs exited before printing READY (see its stderr above)"),
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let url = line["READY ".len()..].trim();
        let addr = url.trim_start_matches("http://").parse().unwrap_or_else(|e| panic!("READY line {line:?}: {e}"));
        Process { child, stdin, addr }
    }

    fn stop(mut self) {
        self.stdin.take();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server with its own storage behind a stable proxy address.
pub struct Server {
    persist: TempDir,
    vars: Vec<String>,
    process: Option<Process>,
    upstream: Arc<Mutex<Option<SocketAddr>>>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    proxy_addr: SocketAddr,
    proxy: AbortHandle,
}

impl Server {
    /// Starts a server with default settings.
    pub async fn start() -> Server {
        Server::start_with(&[]).await
    }

    /// Starts a server with `NAME=VALUE` variable overrides.
    pub async fn start_with(vars: &[&str]) -> Server {
        let persist = tempfile::tempdir().expect("temporary directory");
        let vars: Vec<String> = vars.iter().map(|v| v.to_string()).collect();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let proxy_addr = listener.local_addr().unwrap();
        let upstream = Arc::new(Mutex::new(None));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let proxy = tokio::spawn(proxy(listener, upstream.clone(), connections.clone())).abort_handle();
        let mut server = Server { persist, vars, process: None, upstream, connections, proxy_addr, proxy };
        server.start_process().await;
        server
    }

    /// The URL clients use (the proxy's).
    pub fn url(&self) -> String {
        format!("http://{}", self.proxy_addr)
    }

    async fn start_process(&mut self) {
        let (persist, vars) = (self.persist.path().to_owned(), self.vars.clone());
        let process = tokio::task::spawn_blocking(move || Process::spawn(&persist, &vars)).await.expect("spawn task");
        *self.upstream.lock().unwrap() = Some(process.addr);
        self.process = Some(process);
    }

    /// Stops workerd (its storage stays) and cuts every proxied connection.
    pub async fn stop(&mut self) {
        *self.upstream.lock().unwrap() = None;
        self.drop_connections();
        if let Some(process) = self.process.take() {
            tokio::task::spawn_blocking(move || process.stop()).await.expect("stop task");
        }
    }

    /// Stops workerd and starts it again on the same storage.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.start_process().await;
    }

    /// Cuts every open connection without stopping the server.
    pub fn drop_connections(&self) {
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.proxy.abort();
        self.drop_connections();
        if let Some(process) = self.process.take() {
            process.stop();
        }
    }
}

async fn proxy(listener: TcpListener, upstream: Arc<Mutex<Option<SocketAddr>>>, connections: Arc<Mutex<Vec<AbortHandle>>>) {
    loop {
        let Ok((mut downstream, _)) = listener.accept().await else { continue };
        let target = *upstream.lock().unwrap();
        let connection = tokio::spawn(async move {
            // With the server down the connection is closed at once, like a refused connect.
            let Some(target) = target else { return };
            if let Ok(mut upstream) = TcpStream::connect(target).await {
                let _ = tokio::io::copy_bidirectional(&mut downstream, &mut upstream).await;
            }
        });
        let mut connections = connections.lock().unwrap();
        connections.retain(|c| !c.is_finished());
        connections.push(connection.abort_handle());
    }
}

/// Cuts every connection of a server again and again while the work under test runs: every
/// 60 ms, at most 20 times, so that the work always gets through whatever the machine's speed.
pub struct Cutter {
    stop: Arc<AtomicBool>,
    drops: Arc<AtomicU32>,
    task: tokio::task::JoinHandle<()>,
}

impl Cutter {
    pub fn start(server: Arc<Server>) -> Cutter {
        let (stop, drops) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU32::new(0)));
        let task = {
            let (stop, drops) = (stop.clone(), drops.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) && drops.load(Ordering::SeqCst) < 20 {
                    tokio::time::sleep(Duration::from_millis(60)).await;
                    server.drop_connections();
                    drops.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        Cutter { stop, drops, task }
    }

    /// Stops cutting; returns how many times it cut.
    pub async fn stop(self) -> u32 {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("the cutter task");
        self.drops.load(Ordering::SeqCst)
    }
}

/// A subject name no other test uses.
pub fn unique_subject(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}
