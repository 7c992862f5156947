//! `uipc sysctl`: reads and writes a namespace's IPC sysctls with Linux's
//! names, values and errors, printing as `sysctl(8)` (procps-ng) does.
//!
//! - `KEY` reads (`kernel.shmmax = 18446744073692774399`); `KEY=VALUE`
//!   writes and echoes `KEY = VALUE`; `-a` lists every IPC sysctl, sorted
//!   by name; `-n` prints values only; `-q` keeps quiet after a write.
//! - Keys may use `/` for `.` (`kernel/shmmni`).
//! - Errors are procps's lines with `uipc sysctl:` for `sysctl:`:
//!   `cannot stat /proc/sys/KEY-PATH: No such file or directory` (unknown
//!   key), `permission denied on key "KEY"` (EACCES),
//!   `setting key "KEY": Invalid argument` (EINVAL; likewise ERANGE
//!   "Numerical result out of range"). Every key is tried; the exit status
//!   is 1 if any failed.
//!
//! Values are checked by the daemon exactly as writing `/proc/sys` checks
//! them (`uipc_core::limits`, SPEC section 7), in the namespace named by
//! `--ns`, else `$UIPC_NAMESPACE`, else `default`.

use std::process::ExitCode;

use clap::Args;
use uipc_client::{Admin, Errno};

use crate::ns::{ns_error, SocketArg};
use crate::nscommon::{connect, errno_text, fail};

const WHO: &str = "uipc sysctl";

/// `uipc sysctl`.
#[derive(Args, Debug)]
pub struct SysctlArgs {
    /// The namespace [default: $UIPC_NAMESPACE, else "default"].
    #[arg(long, value_name = "NAME")]
    ns: Option<String>,
    /// Display every IPC sysctl of the namespace.
    #[arg(short = 'a', long = "all")]
    all: bool,
    /// Print only values.
    #[arg(short = 'n', long = "values")]
    values: bool,
    /// Every argument is a write (KEY=VALUE).
    #[arg(short = 'w', long = "write")]
    write: bool,
    /// Print nothing after a successful write.
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,
    #[command(flatten)]
    socket: SocketArg,
    /// KEY to read or KEY=VALUE to write (kernel.shmmax, kernel.sem, fs.mqueue.msg_max, ...).
    #[arg(value_name = "KEY[=VALUE]")]
    settings: Vec<String>,
}

/// The `/proc/sys` path of a dotted key (what sysctl(8) names in errors).
fn proc_path(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

/// Runs `uipc sysctl`.
pub fn run(a: SysctlArgs) -> ExitCode {
    if !a.all && a.settings.is_empty() {
        return fail(WHO, "no variables specified (give KEY, KEY=VALUE or -a)");
    }
    let ns = a.ns.clone().or_else(|| std::env::var("UIPC_NAMESPACE").ok().filter(|n| !n.is_empty()));
    let ns = ns.unwrap_or_else(|| "default".to_owned());
    let mut admin = match connect(WHO, &a.socket) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(e) = admin.join(&ns) {
        return ns_error(WHO, &ns, e);
    }
    let mut ok = true;
    if a.all {
        match admin.ns_show(&ns) {
            Ok(info) => {
                let mut all = info.sysctls;
                all.sort();
                for (k, v) in all {
                    print_value(&a, &k, &v);
                }
            }
            Err(e) => return ns_error(WHO, &ns, e),
        }
    }
    for arg in &a.settings {
        ok &= match arg.split_once('=') {
            Some((k, v)) => write(&a, &mut admin, &k.trim().replace('/', "."), v.trim()),
            None if a.write => {
                eprintln!("{WHO}: \"{arg}\" must be of the form KEY=VALUE");
                false
            }
            None => read(&a, &mut admin, &arg.trim().replace('/', ".")),
        };
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn print_value(a: &SysctlArgs, key: &str, value: &str) {
    if a.values {
        println!("{value}");
    } else {
        println!("{key} = {value}");
    }
}

fn read(a: &SysctlArgs, admin: &mut Admin, key: &str) -> bool {
    match admin.sysctl_read(key) {
        Ok(v) => {
            print_value(a, key, &v);
            true
        }
        Err(e) => report(key, e),
    }
}

fn write(a: &SysctlArgs, admin: &mut Admin, key: &str, value: &str) -> bool {
    // What sysctl(8) writes: the value and a newline (so an empty value is
    // "\n", which the kernel refuses with EINVAL).
    match admin.sysctl_write(key, &format!("{value}\n")) {
        Ok(()) => {
            if !a.quiet {
                print_value(a, key, value);
            }
            true
        }
        Err(e) => report(key, e),
    }
}

/// Says why `key` failed, in sysctl(8)'s words; always `false`.
fn report(key: &str, e: Errno) -> bool {
    match e {
        Errno::ENOENT => eprintln!("{WHO}: cannot stat {}: {}", proc_path(key), errno_text(e)),
        Errno::EACCES => eprintln!("{WHO}: permission denied on key \"{key}\""),
        e => eprintln!("{WHO}: setting key \"{key}\": {}", errno_text(e)),
    }
    false
}
