//! `uipc`: the command-line tool.
#![forbid(unsafe_code)]

mod getopt;
mod ipcinfo;
mod ipcmk;
mod ipcrm;
mod ipcs;
mod lsipc;
mod ns;
mod nscommon;
mod run;
mod sysctl;

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// uipc — the Unix IPC subsystem in user space.
#[derive(Parser)]
#[command(name = "uipc", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon that hosts IPC namespaces.
    Daemon {
        /// Socket path [default: $UIPC_SOCKET, $XDG_RUNTIME_DIR/uipc/uipc.sock, /run/uipc/uipc.sock].
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Keep every object in this (tmpfs) directory, so that a daemon started again on it
        /// after any stop or crash (kill -9 included) finds them: memory and state pages as
        /// files, metadata in a checksummed write-ahead journal (docs/architecture.md).
        /// [default: none; started as a systemd service (by PID 1, $INVOCATION_ID set):
        /// $RUNTIME_DIRECTORY/state, else /run/uipc/state]
        #[arg(long, conflicts_with = "no_state_dir")]
        state_dir: Option<PathBuf>,
        /// Keep no state directory, even when started as a system service.
        #[arg(long)]
        no_state_dir: bool,
        /// Write "READY" to this inherited descriptor once accepting connections.
        #[arg(long)]
        ready_fd: Option<i32>,
        /// Append an audit record (one JSON line) for every create, remove, IPC_SET,
        /// namespace change, sysctl write and permission denial to FILE ("-" = stderr).
        #[arg(long, value_name = "FILE")]
        audit: Option<PathBuf>,
        /// `uipc run`'s private daemon: stop when this inherited descriptor hangs up
        /// (its supervisor is gone), and leave SIGINT, SIGTERM, SIGHUP and SIGQUIT to the program.
        #[arg(long, hide = true, value_name = "FD")]
        lifeline_fd: Option<i32>,
        /// `uipc run`'s private daemon: serve only this process and its descendants.
        #[arg(long, hide = true, value_name = "PID")]
        tree_root: Option<u32>,
    },
    /// Create, list, show and remove IPC namespaces.
    Ns {
        #[command(subcommand)]
        command: ns::NsCommand,
    },
    /// Read and write a namespace's IPC sysctls (kernel.shmmax, kernel.sem, fs.mqueue.*, ...).
    Sysctl(sysctl::SysctlArgs),
    /// Run a program against uipc: LD_PRELOAD set, and a daemon that answers
    /// (or a private one for the program's lifetime).
    Run {
        /// The IPC namespace the program joins (created if missing); "new" gives a
        /// fresh namespace that ends when the program and every process that joined it are gone.
        #[arg(long, default_value = "default")]
        ns: String,
        /// Socket of the daemon to use [default: $UIPC_SOCKET, $XDG_RUNTIME_DIR/uipc/uipc.sock, /run/uipc/uipc.sock];
        /// if none answers there, a private daemon is started.
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Make the kernel's System V IPC and POSIX message-queue system calls
        /// fail with ENOSYS (as on Android), so any call that escapes the shim fails loudly.
        #[arg(long)]
        deny_kernel_ipc: bool,
        /// Also serve the IPC system calls a program makes with the `syscall` instruction
        /// itself (inline assembly, Go, other libcs): a seccomp filter traps them (SIGSYS)
        /// for the shim to serve; the kernel's IPC calls are denied as with --deny-kernel-ipc.
        #[arg(long)]
        trap: bool,
        /// The shim [default: $UIPC_PRELOAD, else libuipc_preload.so next to `uipc`].
        #[arg(long)]
        preload: Option<PathBuf>,
        /// The program and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "PROGRAM")]
        command: Vec<OsString>,
    },
    /// util-linux ipcs(1) for a uipc namespace (`uipc ipcs --help`).
    #[command(disable_help_flag = true)]
    Ipcs {
        /// ipcs's options, plus --ns, --socket and --json.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "OPTIONS")]
        args: Vec<String>,
    },
    /// util-linux ipcrm(1) for a uipc namespace (`uipc ipcrm --help`).
    #[command(disable_help_flag = true)]
    Ipcrm {
        /// ipcrm's options and ids, plus --ns and --socket.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "OPTIONS")]
        args: Vec<String>,
    },
    /// util-linux ipcmk(1) for a uipc namespace (`uipc ipcmk --help`).
    #[command(disable_help_flag = true)]
    Ipcmk {
        /// ipcmk's options, plus --ns and --socket.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "OPTIONS")]
        args: Vec<String>,
    },
    /// util-linux lsipc(1) for a uipc namespace (`uipc lsipc --help`).
    #[command(disable_help_flag = true)]
    Lsipc {
        /// lsipc's options, plus --ns and --socket.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "OPTIONS")]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    // Multi-call: `ln -s uipc ipcs` makes `ipcs` util-linux's ipcs for uipc.
    if let Some(code) = ipcinfo::multicall() {
        return code;
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("UIPC_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Daemon { socket, state_dir, no_state_dir, ready_fd, audit, lifeline_fd, tree_root } => {
            let state_dir = if no_state_dir { None } else { state_dir.or_else(service_state_dir) };
            let adopted = ready_fd
                .map(|fd| adopt_fd("--ready-fd", fd))
                .transpose()
                .and_then(|r| Ok((r, lifeline_fd.map(|fd| adopt_fd("--lifeline-fd", fd)).transpose()?)));
            let (ready_fd, lifeline) = match adopted {
                Ok(fds) => fds,
                Err(msg) => {
                    eprintln!("uipc daemon: {msg}");
                    return ExitCode::from(2);
                }
            };
            if lifeline.is_some() {
                if let Err(e) = run::leave_signals_to_the_program() {
                    eprintln!("uipc daemon: signal handlers: {e}");
                    return ExitCode::from(2);
                }
            }
            let config = uipc_daemon::Config {
                socket: socket.unwrap_or_else(uipc_daemon::default_socket_path),
                state_dir,
                ready_fd,
                lifeline,
            };
            let audit = match audit.as_deref().map(open_audit).transpose() {
                Ok(a) => a,
                Err(msg) => {
                    eprintln!("uipc daemon: {msg}");
                    return ExitCode::from(2);
                }
            };
            let bound = uipc_daemon::Daemon::bind(config).map(|d| match tree_root {
                Some(root) => d.only_tree(root),
                None => d,
            });
            let served = bound.and_then(|d| match audit {
                Some(a) => d.with_audit(a).serve(),
                None => d.serve(),
            });
            match served {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("uipc daemon: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Ipcs { args } => ipcinfo::run("ipcs", None, &args),
        Command::Ipcrm { args } => ipcinfo::run("ipcrm", None, &args),
        Command::Ipcmk { args } => ipcinfo::run("ipcmk", None, &args),
        Command::Lsipc { args } => ipcinfo::run("lsipc", None, &args),
        Command::Ns { command } => ns::run(command),
        Command::Sysctl(args) => sysctl::run(args),
        Command::Run { ns, socket, deny_kernel_ipc, trap, preload, command } => {
            run::run(run::RunArgs { ns, socket, deny_kernel_ipc, trap, preload, command })
        }
    }
}

/// A command-line mistake in one line (help and version print as usual).
fn usage_error(e: &clap::Error) -> ExitCode {
    if !e.use_stderr() {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        eprintln!("uipc: a subcommand is required (see --help)");
        return ExitCode::from(2);
    }
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("invalid arguments");
    eprintln!("uipc: {} (see --help)", first.trim_start_matches("error: "));
    ExitCode::from(2)
}

/// The audit log's sink: `-` is stderr, anything else a file opened for appending.
fn open_audit(path: &std::path::Path) -> Result<uipc_daemon::audit::Audit, String> {
    if path.as_os_str() == "-" {
        return Ok(uipc_daemon::audit::Audit::new(Box::new(std::io::stderr())));
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(|f| uipc_daemon::audit::Audit::new(Box::new(f)))
        .map_err(|e| format!("--audit {}: {e}", path.display()))
}

/// Takes ownership of an inherited descriptor named on the command line
/// by `option`.
fn adopt_fd(option: &str, fd: i32) -> Result<OwnedFd, String> {
    uipc_sys::fd::adopt_inherited_fd(fd).map_err(|e| format!("{option} {fd}: {e}"))
}

/// The state directory of a daemon started as a systemd service (a child
/// of PID 1 with `INVOCATION_ID` set, which systemd sets for every unit it
/// runs; a daemon started by a program that merely inherited the variable
/// is not one): `state` in the unit's
/// runtime directory (`RuntimeDirectory=`, with `RuntimeDirectoryPreserve=yes`
/// so that it outlives a restart of the unit: `dist/uipc.service`), else
/// `/run/uipc/state`. A system service's objects outlive its crash as the
/// kernel's outlive any process (issue 15); `--no-state-dir` opts out.
fn service_state_dir() -> Option<PathBuf> {
    std::env::var_os("INVOCATION_ID").filter(|v| !v.is_empty())?;
    if std::os::unix::process::parent_id() != 1 {
        return None;
    }
    use std::os::unix::ffi::OsStrExt;
    let runtime = std::env::var_os("RUNTIME_DIRECTORY").unwrap_or_default();
    // RuntimeDirectory= may name several, separated by ':': the first.
    let first = runtime.as_bytes().split(|&b| b == b':').next().filter(|d| !d.is_empty());
    let dir = first.map_or_else(|| PathBuf::from("/run/uipc"), |d| PathBuf::from(std::ffi::OsStr::from_bytes(d)));
    Some(dir.join("state"))
}
