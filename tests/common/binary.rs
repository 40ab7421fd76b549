//! The real `belroute` binary, started as a child process on a loopback port.

use std::io::{BufRead, BufReader};
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Variables that would point belroute at an operator's files or change its output.
const OPERATOR_ENV: [&str; 10] = [
    "RUST_LOG",
    "BELROUTE_LOG",
    "BELROUTE_LOG_FORMAT",
    "BELROUTE_CONFIG",
    "BELROUTE_RULES",
    "BELROUTE_DATABASE",
    "DATABASE_URL",
    "BELROUTE_LISTEN",
    "BELROUTE_WORKERS",
    "BELROUTE_ADMIN_TOKEN",
];

/// A `belroute` command that runs in an empty directory of its own (removed when this is
/// dropped), with a clean environment: a test reads no `belroute.yaml`, `rules/` or
/// `belroute.db` that happens to be where `cargo test` runs (an operator following the quick
/// start puts them at the checkout's root), and leaves nothing behind there.
pub struct Belroute {
    command: Command,
    cwd: tempfile::TempDir,
}

impl Belroute {
    /// The working directory the command runs in (unless the test sets another).
    pub fn cwd(&self) -> &Path {
        self.cwd.path()
    }
}

impl Deref for Belroute {
    type Target = Command;
    fn deref(&self) -> &Command {
        &self.command
    }
}

impl DerefMut for Belroute {
    fn deref_mut(&mut self) -> &mut Command {
        &mut self.command
    }
}

/// `belroute` in an empty working directory, with a clean logging environment.
pub fn belroute() -> Belroute {
    let cwd = tempfile::Builder::new()
        .prefix("belroute-cwd-")
        .tempdir()
        .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_belroute"));
    command.current_dir(cwd.path()).env("NO_COLOR", "1");
    for var in OPERATOR_ENV {
        command.env_remove(var);
    }
    Belroute { command, cwd }
}

/// A `belroute serve` child process, its address read from its log.
pub struct Served {
    pub child: Child,
    pub addr: String,
    log: mpsc::Receiver<String>,
    /// The working directory: it lives as long as the process.
    _cwd: tempfile::TempDir,
}

impl Served {
    /// Runs `belroute serve --listen 127.0.0.1:0 <args>` with `env` added.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Served {
        let mut command = belroute();
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args);
        let Belroute { command, cwd } = command;
        Self::spawn(command, cwd, env)
    }

    /// As [`Served::start`], listening on `listen` (a restarted instance keeps its address),
    /// in working directory `cwd` (a restarted instance keeps its spill file).
    pub fn start_on(listen: &str, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Served {
        let mut command = belroute();
        command
            .current_dir(cwd)
            .args(["serve", "--listen", listen])
            .args(args);
        let Belroute { command, cwd } = command;
        Self::spawn(command, cwd, env)
    }

    /// Kills the process with SIGKILL (a crash: nothing runs after it), and waits for it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// As [`Served::start`], in a process whose soft file limit is `soft` (systemd's default
    /// is 1024), set by the shell that then becomes belroute.
    pub fn start_with_file_limit(args: &[&str], env: &[(&str, &str)], soft: u64) -> Served {
        let Belroute {
            command: plain,
            cwd,
        } = belroute();
        let mut command = Command::new("sh");
        command
            .current_dir(cwd.path())
            .arg("-c")
            .arg(format!("ulimit -S -n {soft} && exec \"$0\" \"$@\""))
            .arg(plain.get_program())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .env("NO_COLOR", "1");
        for var in OPERATOR_ENV {
            command.env_remove(var);
        }
        Self::spawn(command, cwd, env)
    }

    fn spawn(mut command: Command, cwd: tempfile::TempDir, env: &[(&str, &str)]) -> Served {
        command.stderr(Stdio::piped()).stdout(Stdio::null());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let (tx, log) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let addr = loop {
            let line = log
                .recv_timeout(Duration::from_secs(20))
                .expect("server start-up log");
            if let Some(addr) = line.split("listening on http://").nth(1) {
                break addr.trim().to_string();
            }
        };
        Served {
            child,
            addr,
            log,
            _cwd: cwd,
        }
    }

    /// Sends SIGTERM, as an orchestrator does.
    pub fn terminate(&self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
    }

    /// The log lines so far.
    pub fn log(&self) -> Vec<String> {
        self.log.try_iter().collect()
    }

    /// SIGTERM, wait for a clean exit, and return the log.
    pub fn stop(mut self) -> String {
        self.terminate();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "clean exit on SIGTERM: {status:?}");
        self.log().join("\n")
    }
}
