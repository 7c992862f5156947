//! The kernel backend (the oracle): operations run for real, by the Linux
//! kernel, in worker processes of a `uipc-kernel-agent` inside a fresh IPC
//! namespace. See [`crate::agent`] for the agent's side and its protocol.
//!
//! The test process only spawns the agent (never forks: it is
//! multi-threaded) and exchanges JSON lines with it. Every read has a
//! watchdog, so a hung agent becomes an `Err`, never a hung test.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use crate::agent::{Request, Response};
use crate::backend::Backend;
use crate::op::{Identity, Op, Reply, Started};

/// How long any answer of the agent may take before the test gives up.
const WATCHDOG: Duration = Duration::from_secs(30);

/// How long the agent may take to exit once told to.
const QUIT_GRACE: Duration = Duration::from_secs(5);

/// Runs operations for real in processes inside a fresh IPC namespace.
pub struct KernelBackend {
    name: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Set once the agent is known to be dead or unusable.
    broken: Option<String>,
}

impl KernelBackend {
    /// Starts the agent binary `agent` (`uipc-kernel-agent`), which enters a
    /// fresh IPC namespace. Fails with the agent's reason if it cannot
    /// (not root, no `CAP_SYS_ADMIN`…).
    pub fn start(agent: &str) -> Result<KernelBackend, String> {
        Self::start_with(agent, &[], "kernel")
    }

    /// Starts the agent with extra arguments (`--daemon SOCKET NS` drives
    /// uipc instead of the kernel), reporting as backend `name`.
    pub fn start_with(agent: &str, args: &[&str], name: &'static str) -> Result<KernelBackend, String> {
        let mut cmd = Command::new(agent);
        cmd.args(args);
        Self::start_command(cmd, name)
    }

    /// Starts the agent as `cmd` says (arguments, environment, a seccomp
    /// filter…), reporting as backend `name`; its standard streams are
    /// set here.
    pub fn start_command(mut cmd: Command, name: &'static str) -> Result<KernelBackend, String> {
        let agent = cmd.get_program().to_string_lossy().into_owned();
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start the kernel agent {agent}: {e}"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or("agent has no stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::Builder::new()
            .name("uipc-kernel-agent-reader".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| format!("cannot start the agent reader thread: {e}"))?;
        let mut k = KernelBackend { name, child, stdin, lines, broken: None };
        match k.read()? {
            Response::Ready => Ok(k),
            Response::Failed(why) => Err(why),
            other => Err(format!("agent greeted with {other:?}")),
        }
    }

    /// The agent's next answer, within the watchdog.
    fn read(&mut self) -> Result<Response, String> {
        if let Some(why) = &self.broken {
            return Err(why.clone());
        }
        let r = match self.lines.recv_timeout(WATCHDOG) {
            Ok(line) => serde_json::from_str(&line).map_err(|e| format!("agent sent {line:?}: {e}")),
            Err(RecvTimeoutError::Timeout) => {
                let _ = self.child.kill();
                Err(format!("kernel agent did not answer within {WATCHDOG:?} (killed)"))
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.wait().map_or_else(|e| e.to_string(), |s| s.to_string());
                Err(format!("kernel agent exited ({status})"))
            }
        };
        if let Err(why) = &r {
            self.broken = Some(why.clone());
        }
        r
    }

    fn send(&mut self, req: &Request) -> Result<(), String> {
        if let Some(why) = &self.broken {
            return Err(why.clone());
        }
        let mut line = serde_json::to_vec(req).map_err(|e| format!("serialise {req:?}: {e}"))?;
        line.push(b'\n');
        let stdin = self.stdin.as_mut().ok_or("agent stdin closed")?;
        if let Err(e) = stdin.write_all(&line).and_then(|()| stdin.flush()) {
            // The agent is gone; read() reports how it ended.
            return match self.read() {
                Err(why) => Err(why),
                Ok(r) => Err(format!("writing to the agent failed ({e}) and it said {r:?}")),
            };
        }
        Ok(())
    }

    fn request(&mut self, req: &Request) -> Result<Response, String> {
        self.send(req)?;
        match self.read()? {
            Response::Failed(why) => Err(why),
            r => Ok(r),
        }
    }
}

impl Drop for KernelBackend {
    fn drop(&mut self) {
        if self.broken.is_none() {
            let _ = self.send(&Request::Quit);
        }
        // Closing stdin is a second way of saying quit.
        drop(self.stdin.take());
        // The reader thread ends when the agent closes stdout (by exiting).
        let gone = loop {
            match self.lines.recv_timeout(QUIT_GRACE) {
                Ok(_) => {}
                Err(RecvTimeoutError::Disconnected) => break true,
                Err(RecvTimeoutError::Timeout) => break false,
            }
        };
        if !gone {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Backend for KernelBackend {
    fn name(&self) -> &'static str {
        self.name
    }

    fn spawn(&mut self, who: &Identity) -> Result<u32, String> {
        match self.request(&Request::Spawn { identity: who.clone() })? {
            Response::Spawned(pid) => Ok(pid),
            other => Err(format!("spawn: agent answered {other:?}")),
        }
    }

    fn call(&mut self, pid: u32, op: &Op) -> Result<Reply, String> {
        match self.request(&Request::Call { pid, op: op.clone() })? {
            Response::Reply(r) => Ok(r),
            other => Err(format!("{op:?}: agent answered {other:?}")),
        }
    }

    fn start(&mut self, pid: u32, op: &Op) -> Result<Started, String> {
        match self.request(&Request::Start { pid, op: op.clone() })? {
            Response::Started(s) => Ok(s),
            other => Err(format!("start {op:?}: agent answered {other:?}")),
        }
    }

    fn finish(&mut self, pid: u32) -> Result<Reply, String> {
        match self.request(&Request::Finish { pid })? {
            Response::Reply(r) => Ok(r),
            other => Err(format!("finish: agent answered {other:?}")),
        }
    }

    fn sysctl_set(&mut self, name: &str, value: &str) -> Result<Result<(), i32>, String> {
        match self.request(&Request::SysctlSet { name: name.into(), value: value.into() })? {
            Response::SysctlSet(r) => Ok(r),
            other => Err(format!("sysctl_set: agent answered {other:?}")),
        }
    }

    fn sysctl_get(&mut self, name: &str) -> Result<Result<String, i32>, String> {
        match self.request(&Request::SysctlGet { name: name.into() })? {
            Response::SysctlGet(r) => Ok(r),
            other => Err(format!("sysctl_get: agent answered {other:?}")),
        }
    }
}
