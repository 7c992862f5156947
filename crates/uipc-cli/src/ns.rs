//! `uipc ns`: create, list, show and remove IPC namespaces.
//!
//! Who may do what is the daemon's decision, from the caller's kernel
//! credentials (see `uipc-daemon`'s `namespaces` module): anyone may
//! create (and owns what they create), entering and seeing follow the
//! namespace's mode like a directory's `x`, removing needs the owner or
//! `CAP_SYS_ADMIN`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use uipc_client::{Admin, Errno, NsInfo};

use crate::nscommon::{connect, errno_text, fail};

/// `uipc ns` subcommands.
#[derive(Subcommand, Debug)]
pub enum NsCommand {
    /// Create a namespace owned by you (fails if the name is taken).
    Create(Box<CreateArgs>),
    /// List the namespaces you may enter.
    #[command(alias = "ls")]
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Show one namespace: owner, mode, objects and every sysctl.
    Show {
        /// The namespace.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Remove a namespace and every object in it (owner or CAP_SYS_ADMIN).
    /// Callers blocked in it get EIDRM; mappings stay valid until unmapped.
    #[command(alias = "remove")]
    Rm {
        /// The namespace.
        name: String,
        #[command(flatten)]
        socket: SocketArg,
    },
}

/// `--socket`, shared by every command that talks to a daemon.
#[derive(Args, Debug, Clone)]
pub struct SocketArg {
    /// Socket of the daemon [default: $UIPC_SOCKET, $XDG_RUNTIME_DIR/uipc/uipc.sock, /run/uipc/uipc.sock].
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

/// `uipc ns create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The namespace's name (1..255 bytes, no '/').
    name: String,
    /// Permission bits, octal, read like a directory's: x = may enter.
    #[arg(long, default_value = "0755", value_parser = parse_mode)]
    mode: u32,
    /// kernel.shmmax: largest segment, bytes.
    #[arg(long, value_name = "BYTES")]
    shmmax: Option<String>,
    /// kernel.shmall: pages in all segments.
    #[arg(long, value_name = "PAGES")]
    shmall: Option<String>,
    /// kernel.shmmni: most segments (0..32768).
    #[arg(long, value_name = "N")]
    shmmni: Option<String>,
    /// kernel.shm_rmid_forced (0 or 1).
    #[arg(long, value_name = "0|1")]
    shm_rmid_forced: Option<String>,
    /// kernel.msgmax: largest message.
    #[arg(long, value_name = "BYTES")]
    msgmax: Option<String>,
    /// kernel.msgmnb: default queue capacity.
    #[arg(long, value_name = "BYTES")]
    msgmnb: Option<String>,
    /// kernel.msgmni: most queues (0..32768).
    #[arg(long, value_name = "N")]
    msgmni: Option<String>,
    /// kernel.sem: "SEMMSL SEMMNS SEMOPM SEMMNI".
    #[arg(long, value_name = "'MSL MNS OPM MNI'")]
    sem: Option<String>,
    /// Any IPC sysctl (repeatable), e.g. --sysctl fs.mqueue.msg_max=20.
    #[arg(long = "sysctl", value_name = "KEY=VALUE", value_parser = parse_setting)]
    sysctls: Vec<(String, String)>,
    #[command(flatten)]
    socket: SocketArg,
}

fn parse_mode(s: &str) -> Result<u32, String> {
    match u32::from_str_radix(s, 8) {
        Ok(m) if m <= 0o777 => Ok(m),
        _ => Err(format!("invalid mode '{s}' (octal, at most 0777)")),
    }
}

/// `KEY=VALUE`, with `/` in the key read as `.` (as sysctl(8) does).
pub fn parse_setting(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().replace('/', "."), v.trim().to_owned())),
        _ => Err(format!("'{s}' is not KEY=VALUE")),
    }
}

/// Runs `uipc ns`.
pub fn run(cmd: NsCommand) -> ExitCode {
    match cmd {
        NsCommand::Create(a) => create(*a),
        NsCommand::List { json, socket } => list(json, &socket),
        NsCommand::Show { name, json, socket } => show(&name, json, &socket),
        NsCommand::Rm { name, socket } => remove(&name, &socket),
    }
}

const WHO: &str = "uipc ns";

fn create(a: CreateArgs) -> ExitCode {
    let named = [
        ("kernel.shmmax", a.shmmax),
        ("kernel.shmall", a.shmall),
        ("kernel.shmmni", a.shmmni),
        ("kernel.shm_rmid_forced", a.shm_rmid_forced),
        ("kernel.msgmax", a.msgmax),
        ("kernel.msgmnb", a.msgmnb),
        ("kernel.msgmni", a.msgmni),
        ("kernel.sem", a.sem),
    ];
    let mut settings: Vec<(String, String)> = named.into_iter().filter_map(|(k, v)| Some((k.to_owned(), v?))).collect();
    settings.extend(a.sysctls);
    // Written as sysctl(8) writes them: value and newline.
    let settings: Vec<(String, String)> = settings.into_iter().map(|(k, v)| (k, format!("{v}\n"))).collect();
    if !valid_name(&a.name) {
        return fail(WHO, &format!("cannot create namespace '{}': invalid name", a.name));
    }
    let mut admin = match connect(WHO, &a.socket) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match admin.ns_create(&a.name, a.mode, &settings, false) {
        Ok(_) => ExitCode::SUCCESS,
        Err(Errno::EEXIST) => fail(WHO, &format!("cannot create namespace '{}': namespace exists", a.name)),
        Err(e) if !settings.is_empty() => {
            // The daemon applies the settings all or nothing, in order.
            let list: Vec<String> = settings.iter().map(|(k, v)| format!("{k} = {}", v.trim_end())).collect();
            let what = if e == Errno::ENOENT { "unknown sysctl".to_owned() } else { errno_text(e) };
            fail(WHO, &format!("cannot create namespace '{}': {}: {what}", a.name, list.join(", ")))
        }
        Err(e) => fail(WHO, &format!("cannot create namespace '{}': {}", a.name, errno_text(e))),
    }
}

/// Whether the daemon would accept `name` (`uipc_proto::valid_namespace`).
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 255 && !name.contains(['/', '\0']) && name != "." && name != ".."
}

fn list(json: bool, socket: &SocketArg) -> ExitCode {
    let mut admin = match connect(WHO, socket) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let all = match admin.ns_list() {
        Ok(v) => v,
        Err(e) => return fail(WHO, &format!("cannot list namespaces: {}", errno_text(e))),
    };
    if json {
        let v: Vec<_> = all.iter().map(info_json).collect();
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "namespaces": v })).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    println!(
        "{:<20} {:>6} {:>6} {:>5} {:>5} {:>5} {:>5} {:>5} {:>9}",
        "NAME", "UID", "GID", "MODE", "PROCS", "SHM", "SEM", "MSG", "EPHEMERAL"
    );
    for i in &all {
        println!(
            "{:<20} {:>6} {:>6} {:>5} {:>5} {:>5} {:>5} {:>5} {:>9}",
            i.name,
            i.uid,
            i.gid,
            format!("{:04o}", i.mode),
            i.processes,
            i.shm,
            i.sem,
            i.msg,
            if i.ephemeral { "yes" } else { "no" }
        );
    }
    ExitCode::SUCCESS
}

fn info_json(i: &NsInfo) -> serde_json::Value {
    let mut v = serde_json::json!({
        "name": i.name,
        "uid": i.uid,
        "gid": i.gid,
        "mode": format!("{:04o}", i.mode),
        "ephemeral": i.ephemeral,
        "processes": i.processes,
        "shm": i.shm,
        "shm_bytes": i.shm_bytes,
        "sem": i.sem,
        "msg": i.msg,
    });
    if !i.sysctls.is_empty() {
        let map: serde_json::Map<String, serde_json::Value> =
            i.sysctls.iter().map(|(k, val)| (k.clone(), serde_json::Value::String(val.clone()))).collect();
        v["sysctls"] = serde_json::Value::Object(map);
    }
    v
}

/// The one line for a namespace the daemon refused to name.
pub fn ns_error(who: &str, name: &str, e: Errno) -> ExitCode {
    match e {
        Errno::ENOENT => fail(who, &format!("namespace '{name}': no such namespace")),
        Errno::EACCES => fail(who, &format!("namespace '{name}': permission denied")),
        Errno::EPERM => fail(who, &format!("namespace '{name}': operation not permitted (not the owner)")),
        Errno::EBUSY => fail(who, &format!("namespace '{name}': the default namespace cannot be removed")),
        Errno::EINVAL => fail(who, &format!("namespace '{name}': invalid name")),
        e => fail(who, &format!("namespace '{name}': {}", errno_text(e))),
    }
}

fn show(name: &str, json: bool, socket: &SocketArg) -> ExitCode {
    let mut admin = match connect(WHO, socket) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let i = match admin.ns_show(name) {
        Ok(i) => i,
        Err(e) => return ns_error(WHO, name, e),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&info_json(&i)).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    println!("name:      {}", i.name);
    println!("owner:     {}", i.uid);
    println!("group:     {}", i.gid);
    println!("mode:      {:04o}", i.mode);
    println!("ephemeral: {}", if i.ephemeral { "yes" } else { "no" });
    println!("processes: {}", i.processes);
    println!("shm:       {} segments, {} bytes", i.shm, i.shm_bytes);
    println!("sem:       {} sets", i.sem);
    println!("msg:       {} queues", i.msg);
    let mut sysctls = i.sysctls;
    sysctls.sort();
    for (k, v) in sysctls {
        println!("{k} = {v}");
    }
    ExitCode::SUCCESS
}

fn remove(name: &str, socket: &SocketArg) -> ExitCode {
    let mut admin: Admin = match connect(WHO, socket) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match admin.ns_remove(name) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => ns_error(WHO, name, e),
    }
}
