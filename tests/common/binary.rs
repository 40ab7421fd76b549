//! The real `belroute` binary, started as a child process on a loopback port.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// `belroute` with a clean logging environment.
pub fn belroute() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_belroute"));
    command
        .env_remove("RUST_LOG")
        .env_remove("BELROUTE_LOG")
        .env("NO_COLOR", "1");
    command
}

/// A `belroute serve` child process, its address read from its log.
pub struct Served {
    pub child: Child,
    pub addr: String,
    log: mpsc::Receiver<String>,
}

impl Served {
    /// Runs `belroute serve --listen 127.0.0.1:0 <args>` with `env` added.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Served {
        let mut command = belroute();
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args);
        Self::spawn(command, env)
    }

    /// As [`Served::start`], in a process whose soft file limit is `soft` (systemd's default
    /// is 1024), set by the shell that then becomes belroute.
    pub fn start_with_file_limit(args: &[&str], env: &[(&str, &str)], soft: u64) -> Served {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("ulimit -S -n {soft} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_belroute"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("BELROUTE_LOG")
            .env("NO_COLOR", "1");
        Self::spawn(command, env)
    }

    fn spawn(mut command: Command, env: &[(&str, &str)]) -> Served {
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
        Served { child, addr, log }
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
