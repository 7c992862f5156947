//! `uipc lsipc` — util-linux 2.38's `lsipc(1)` for a uipc namespace: the
//! same columns, defaults, `-o` lists and output modes (table, `--raw`,
//! `--json`, `--export`, `--newline`, the `--id` "pretty" listing), printed
//! as libsmartcols prints them to a pipe (columns as wide as their widest
//! cell or header, no truncation).
//!
//! The POSIX options are util-linux 2.41's (`-M`, `-Q`, `-S`, `-N`, and
//! `-g -Q`'s `do_posix_msg_global()` rows), on the namespace's POSIX
//! objects as the daemon lists them.
//!
//! # Compatibility
//! On a terminal util-linux may truncate or widen columns to the terminal
//! width; uipc always prints the pipe layout. POSIX objects are listed in
//! name order (util-linux: `readdir` order), and a bare `lsipc` prints
//! 2.38's summary, without 2.41's POSIX queue rows.
//!
//! # References
//!  - [lsipc(1)](https://man7.org/linux/man-pages/man1/lsipc.1.html)

use std::fmt::Write as _;
use std::process::ExitCode;

use uipc_client::Client;

use crate::getopt::{self, HasArg, Opt};
use crate::ipcinfo::{self, strmode, strtime_short, Names, Prog, Target};
use crate::ipcs::strtos32;

/// One column: name, help, pretty name, right-aligned.
struct Col {
    name: &'static str,
    help: &'static str,
    pretty: &'static str,
    right: bool,
}

const fn col(name: &'static str, help: &'static str, pretty: &'static str, right: bool) -> Col {
    Col { name, help, pretty, right }
}

/// util-linux 2.38's `coldescs[]`, in its order (indexes are column ids).
const COLS: &[Col] = &[
    col("KEY", "Resource key", "Key", false),
    col("ID", "Resource ID", "ID", false),
    col("OWNER", "Owner's username or UID", "Owner", true),
    col("PERMS", "Permissions", "Permissions", true),
    col("CUID", "Creator UID", "Creator UID", true),
    col("CUSER", "Creator user", "Creator user", false),
    col("CGID", "Creator GID", "Creator GID", true),
    col("CGROUP", "Creator group", "Creator group", false),
    col("UID", "User ID", "UID", true),
    col("USER", "User name", "User name", false),
    col("GID", "Group ID", "GID", true),
    col("GROUP", "Group name", "Group name", false),
    col("CTIME", "Time of the last change", "Last change", true),
    col("USEDBYTES", "Bytes used", "Bytes used", true),
    col("MSGS", "Number of messages", "Messages", false),
    col("SEND", "Time of last msg sent", "Msg sent", true),
    col("RECV", "Time of last msg received", "Msg received", true),
    col("LSPID", "PID of the last msg sender", "Msg sender", true),
    col("LRPID", "PID of the last msg receiver", "Msg receiver", true),
    col("SIZE", "Segment size", "Segment size", true),
    col("NATTCH", "Number of attached processes", "Attached processes", true),
    col("STATUS", "Status", "Status", false),
    col("ATTACH", "Attach time", "Attach time", true),
    col("DETACH", "Detach time", "Detach time", true),
    col("COMMAND", "Creator command line", "Creator command", false),
    col("CPID", "PID of the creator", "Creator PID", true),
    col("LPID", "PID of last user", "Last user PID", true),
    col("NSEMS", "Number of semaphores", "Semaphores", true),
    col("OTIME", "Time of the last operation", "Last operation", true),
    col("RESOURCE", "Resource name", "Resource", false),
    col("DESCRIPTION", "Resource description", "Description", false),
    col("LIMIT", "System-wide limit", "Limit", true),
    col("USED", "Currently used", "Used", true),
    col("USE%", "Currently use percentage", "Use", true),
    // util-linux 2.41's POSIX columns (its coldescs[] puts NAME and MTIME
    // after CTIME and SVAL last; see `PRETTY_ORDER`).
    col("NAME", "POSIX resource name", "Name", false),
    col("MTIME", "Time of last action", "Last action", true),
    col("SVAL", "Semaphore value", "Value", true),
];

// Column ids (indexes into COLS).
const KEY: usize = 0;
const ID: usize = 1;
const OWNER: usize = 2;
const PERMS: usize = 3;
const CUID: usize = 4;
const CUSER: usize = 5;
const CGID: usize = 6;
const CGROUP: usize = 7;
const UID: usize = 8;
const USER: usize = 9;
const GID: usize = 10;
const GROUP: usize = 11;
const CTIME: usize = 12;
const MSG_FIRST: usize = 13;
const USEDBYTES: usize = 13;
const MSGS: usize = 14;
const SEND: usize = 15;
const RECV: usize = 16;
const LSPID: usize = 17;
const LRPID: usize = 18;
const MSG_LAST: usize = 18;
const SHM_FIRST: usize = 19;
const SIZE: usize = 19;
const NATTCH: usize = 20;
const STATUS: usize = 21;
const ATTACH: usize = 22;
const DETACH: usize = 23;
const COMMAND: usize = 24;
const CPID: usize = 25;
const LPID: usize = 26;
const SHM_LAST: usize = 26;
const SEM_FIRST: usize = 27;
const NSEMS: usize = 27;
const OTIME: usize = 28;
const SEM_LAST: usize = 28;
const SUM_FIRST: usize = 29;
const RESOURCE: usize = 29;
const DESC: usize = 30;
const LIMIT: usize = 31;
const USED: usize = 32;
const USEPERC: usize = 33;
const SUM_LAST: usize = 33;
const POSIX_FIRST: usize = 34;
const NAME: usize = 34;
const MTIME: usize = 35;
const POSIX_LAST: usize = 35;
const SVAL: usize = 36;

/// Every column in util-linux 2.41's `coldescs[]` order: what `--id` and
/// `--name` print without `-o`, `-c` or `-t`.
const PRETTY_ORDER: [usize; 37] = [
    KEY, ID, OWNER, PERMS, CUID, CUSER, CGID, CGROUP, UID, USER, GID, GROUP, CTIME, NAME, MTIME, USEDBYTES, MSGS, SEND,
    RECV, LSPID, LRPID, SIZE, NATTCH, STATUS, ATTACH, DETACH, COMMAND, CPID, LPID, NSEMS, OTIME, RESOURCE, DESC, LIMIT,
    USED, USEPERC, SVAL,
];

const OPTS: &[Opt] = &[
    Opt::new("b", 'b', "bytes", HasArg::No),
    Opt::new("c", 'c', "creator", HasArg::No),
    Opt::new("e", 'e', "export", HasArg::No),
    Opt::new("g", 'g', "global", HasArg::No),
    Opt::new("h", 'h', "help", HasArg::No),
    Opt::new("i", 'i', "id", HasArg::Required),
    Opt::new("J", 'J', "json", HasArg::No),
    Opt::new("l", 'l', "list", HasArg::No),
    Opt::new("N", 'N', "name", HasArg::Required),
    Opt::new("n", 'n', "newline", HasArg::No),
    Opt::long("noheadings", "noheadings", HasArg::No),
    Opt::long("notruncate", "notruncate", HasArg::No),
    Opt::new("P", 'P', "numeric-perms", HasArg::No),
    Opt::new("o", 'o', "output", HasArg::Required),
    Opt::new("Q", 'Q', "posix-mqueues", HasArg::No),
    Opt::new("S", 'S', "posix-semaphores", HasArg::No),
    Opt::new("M", 'M', "posix-shmems", HasArg::No),
    Opt::new("q", 'q', "queues", HasArg::No),
    Opt::new("r", 'r', "raw", HasArg::No),
    Opt::new("s", 's', "semaphores", HasArg::No),
    Opt::new("m", 'm', "shmems", HasArg::No),
    Opt::new("t", 't', "time", HasArg::No),
    Opt::long("time-format", "time-format", HasArg::Required),
    Opt::new("V", 'V', "version", HasArg::No),
    Opt::new("y", 'y', "shell", HasArg::No),
    Opt::long("ns", "ns", HasArg::Required),
    Opt::long("socket", "socket", HasArg::Required),
];

/// Mutually exclusive groups (`err_exclusive_options`), long names in ASCII order of the letters.
const EXCL: &[&[(&str, &str)]] = &[
    &[("J", "json"), ("e", "export"), ("l", "list"), ("n", "newline"), ("r", "raw")],
    &[("N", "name"), ("g", "global"), ("i", "id")],
    &[("c", "creator"), ("o", "output"), ("t", "time")],
    &[
        ("M", "posix-shmems"),
        ("Q", "posix-mqueues"),
        ("S", "posix-semaphores"),
        ("m", "shmems"),
        ("q", "queues"),
        ("s", "semaphores"),
    ],
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Out {
    Table,
    Export,
    Newline,
    Raw,
    Json,
    Pretty,
    List,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TimeMode {
    Short,
    Full,
    Iso,
}

fn usage(p: &Prog) -> String {
    let mut s = format!(
        "\nUsage:\n {} [options]\n\nShow information on IPC facilities.\n\n\
Resource options:\n -m, --shmems      shared memory segments\n -q, --queues      message queues\n -s, --semaphores  semaphores\n -g, --global      info about system-wide usage (may be used with -m, -q and -s)\n -i, --id <id>     print details on resource identified by <id>\n\n\
POSIX resource options (util-linux 2.41):\n -M, --posix-shmems       POSIX shared memory segments\n -Q, --posix-mqueues      POSIX message queues\n -S, --posix-semaphores   POSIX semaphores\n -N, --name <name>        POSIX resource identified by <name>\n\n\
Options:\n     --noheadings         don't print headings\n     --notruncate         don't truncate output\n     --time-format=<type> display dates in short, full or iso format\n -b, --bytes              print SIZE in bytes rather than in human readable format\n -c, --creator            show creator and owner\n -e, --export             display in an export-able output format\n -J, --json               use the JSON output format\n -n, --newline            display each piece of information on a new line\n -l, --list               force list output format (for example with --id)\n -o, --output[=<list>]    define the columns to output\n -P, --numeric-perms      print numeric permissions (PERMS column)\n -r, --raw                display in raw mode\n -t, --time               show attach, detach and change times\n -y, --shell              use column names to be usable as shell variable identifiers\n\n\
 -h, --help               display this help\n -V, --version            display version\n\n\
uipc options:\n     --ns <name>          the uipc namespace [default: $UIPC_NAMESPACE, else default]\n     --socket <path>      the daemon's socket\n",
        p.short
    );
    let groups: [(&str, std::ops::RangeInclusive<usize>); 7] = [
        ("Generic columns", KEY..=CTIME),
        ("Shared-memory columns (--shmems)", SHM_FIRST..=SHM_LAST),
        ("Message-queue columns (--queues)", MSG_FIRST..=MSG_LAST),
        ("Semaphore columns (--semaphores)", SEM_FIRST..=SEM_LAST),
        ("Summary columns (--global)", SUM_FIRST..=SUM_LAST),
        ("Generic POSIX columns", NAME..=MTIME),
        ("POSIX Semaphore columns (--posix-semaphores)", SVAL..=SVAL),
    ];
    for (title, range) in groups {
        let _ = writeln!(s, "\n{title}:");
        for c in &COLS[range] {
            let _ = writeln!(s, " {:>14}  {}", c.name, c.help);
        }
    }
    s.push_str("\nFor more details see lsipc(1).\n");
    s
}

/// A table as libsmartcols holds it: columns, rows of optional cells.
struct Table {
    name: Option<&'static str>,
    cols: Vec<usize>,
    rows: Vec<Vec<Option<String>>>,
    /// For `--id` on a semaphore set: its elements.
    sub: Option<Vec<[String; 6]>>,
}

/// Runs `lsipc` with `args`.
pub fn main(prog: &Prog, args: &[String]) -> ExitCode {
    let parsed = match getopt::parse(args, OPTS) {
        Ok(p) => p,
        Err(e) => return prog.usage_error(&e),
    };
    let mut excl_seen: Vec<Option<&str>> = vec![None; EXCL.len()];
    let (mut msg, mut shm, mut sem, mut global) = (false, false, false, false);
    let (mut pmsg, mut pshm, mut psem) = (false, false, false);
    let mut name: Option<String> = None;
    let (mut show_time, mut show_creat) = (false, false);
    let mut id: Option<i32> = None;
    let mut out = Out::Table;
    let mut out_set = false;
    let (mut bytes, mut noheadings, mut numperms, mut shellvar) = (false, false, false, false);
    let mut time_mode: Option<TimeMode> = None;
    let mut outarg: Option<String> = None;
    let mut columns: Vec<usize> = Vec::new();
    let (mut lower, mut upper) = (0usize, 0usize);
    let mut target = Target::default();
    for (k, v) in parsed.opts {
        for (g, group) in EXCL.iter().enumerate() {
            if group.iter().any(|(key, _)| *key == k) {
                match excl_seen[g] {
                    Some(prev) if prev != k => {
                        let names: Vec<String> = group.iter().map(|(_, l)| format!("--{l}")).collect();
                        return prog.fail(&format!("mutually exclusive arguments: {}", names.join(" ")));
                    }
                    _ => excl_seen[g] = Some(k),
                }
            }
        }
        let v = v.unwrap_or_default();
        match k {
            "b" => bytes = true,
            "i" => match strtos32(&v, "failed to parse IPC identifier") {
                Ok(n) => id = Some(n),
                Err(m) => return prog.fail(&m),
            },
            "e" => (out, out_set) = (Out::Export, true),
            "r" => (out, out_set) = (Out::Raw, true),
            "o" => outarg = Some(v),
            "g" => global = true,
            "q" => {
                msg = true;
                columns.extend([KEY, ID, PERMS, OWNER, USEDBYTES, MSGS, LSPID, LRPID]);
                (lower, upper) = (MSG_FIRST, MSG_LAST);
            }
            "l" => (out, out_set) = (Out::List, true),
            "m" => {
                shm = true;
                columns.extend([KEY, ID, PERMS, OWNER, SIZE, NATTCH, STATUS, CTIME, CPID, LPID, COMMAND]);
                (lower, upper) = (SHM_FIRST, SHM_LAST);
            }
            "n" => (out, out_set) = (Out::Newline, true),
            "N" => name = Some(v),
            "M" => {
                pshm = true;
                columns.extend([NAME, PERMS, OWNER, SIZE, MTIME]);
                (lower, upper) = (POSIX_FIRST, POSIX_LAST);
            }
            "Q" => {
                pmsg = true;
                columns.extend([NAME, PERMS, OWNER, MTIME, USEDBYTES, MSGS]);
                (lower, upper) = (POSIX_FIRST, POSIX_LAST);
            }
            "S" => {
                psem = true;
                columns.extend([NAME, PERMS, OWNER, MTIME, SVAL]);
                (lower, upper) = (POSIX_FIRST, POSIX_LAST);
            }
            "P" => numperms = true,
            "s" => {
                sem = true;
                columns.extend([KEY, ID, PERMS, OWNER, NSEMS]);
                (lower, upper) = (SEM_FIRST, SEM_LAST);
            }
            "notruncate" => {}
            "noheadings" => noheadings = true,
            "time-format" => {
                time_mode = Some(match v.as_str() {
                    "iso" => TimeMode::Iso,
                    "full" => TimeMode::Full,
                    "short" => TimeMode::Short,
                    _ => return prog.fail(&format!("unknown time format: {v}")),
                })
            }
            "J" => (out, out_set) = (Out::Json, true),
            "t" => show_time = true,
            "c" => show_creat = true,
            "y" => shellvar = true,
            "h" => {
                print!("{}", usage(prog));
                return ExitCode::SUCCESS;
            }
            "V" => return prog.version(),
            "ns" => target.ns = Some(v),
            "socket" => target.socket = Some(v.into()),
            _ => {}
        }
    }
    let posix = pmsg || pshm || psem;
    if !msg && !shm && !sem && !posix {
        // util-linux 2.38's default (2.41 adds the POSIX mqueue limits).
        (msg, shm, sem, global) = (true, true, true, true);
        if name.is_some() {
            return prog.fail("--global is mutually exclusive with --creator, --id, --name and --time");
        }
        if show_time || show_creat || id.is_some() {
            return prog.fail("--global is mutually exclusive with --creator, --id and --time");
        }
    }
    if global {
        columns.extend([RESOURCE, DESC, LIMIT, USED, USEPERC]);
        (lower, upper) = (SUM_FIRST, SUM_LAST);
    }
    if (id.is_some() || name.is_some()) && !out_set {
        out = Out::Pretty;
    }
    let time_mode = time_mode.unwrap_or(if out == Out::Pretty { TimeMode::Full } else { TimeMode::Short });
    if out == Out::Pretty && !(show_creat || show_time) {
        columns = PRETTY_ORDER.to_vec();
    } else {
        if show_creat {
            columns.extend([CUID, CGID]);
            if !posix {
                columns.extend([UID, GID]);
            }
        }
        if msg && show_time {
            columns.extend([SEND, RECV, CTIME]);
        }
        if shm && show_time {
            // Keep COMMAND the last column.
            let cmd = columns.last() == Some(&COMMAND);
            if cmd {
                columns.pop();
            }
            columns.extend([ATTACH, DETACH]);
            if cmd {
                columns.push(COMMAND);
            }
        }
        if sem && show_time {
            columns.extend([OTIME, CTIME]);
        }
    }
    if let Some(list) = outarg {
        let (add, list) = match list.strip_prefix('+') {
            Some(l) => (true, l),
            None => (false, list.as_str()),
        };
        if list.is_empty() {
            return ExitCode::FAILURE;
        }
        if !add {
            columns.clear();
        }
        for name in list.split(',') {
            match COLS.iter().position(|c| c.name.eq_ignore_ascii_case(name)) {
                Some(i) if i <= CTIME || (lower..=upper).contains(&i) => columns.push(i),
                Some(_) => return prog.fail(&format!("column {name} does not apply to the specified IPC")),
                None => return prog.fail(&format!("unknown column: {name}")),
            }
        }
    }
    let client = match target.connect() {
        Ok(c) => c,
        Err(m) => return prog.fail(&m),
    };
    let mut tb = Table { name: None, cols: columns, rows: Vec::new(), sub: None };
    let ctx = Ctx { c: &client, bytes, numperms, time_mode, now: ipcinfo::now() };
    let mut names = Names::default();
    if global {
        tb.name = Some("ipclimits");
    }
    let r = (|| -> Result<(), String> {
        if msg {
            if global {
                ctx.msg_global(&mut tb)?;
            } else {
                ctx.msg(prog, &mut tb, id, &mut names)?;
            }
        }
        if shm {
            if global {
                ctx.shm_global(&mut tb)?;
            } else {
                ctx.shm(prog, &mut tb, id, &mut names)?;
            }
        }
        if pmsg {
            if global {
                ctx.pmsg_global(&mut tb)?;
            } else {
                ctx.pmsg(prog, &mut tb, name.as_deref(), &mut names)?;
            }
        }
        if pshm && !global {
            ctx.pshm(prog, &mut tb, name.as_deref(), &mut names)?;
        }
        if sem {
            if global {
                ctx.sem_global(&mut tb)?;
            } else {
                ctx.sem(prog, &mut tb, id, &mut names)?;
            }
        }
        if psem && !global {
            ctx.psem(prog, &mut tb, name.as_deref(), &mut names)?;
        }
        Ok(())
    })();
    if let Err(m) = r {
        return prog.fail(&m);
    }
    let text = match out {
        Out::Pretty => print_pretty(&tb),
        _ => print_table(&tb, out, noheadings, shellvar),
    };
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return prog.fail(&format!("write error: {e}"));
        }
    }
    ExitCode::SUCCESS
}

struct Ctx<'a> {
    c: &'a Client,
    bytes: bool,
    numperms: bool,
    time_mode: TimeMode,
    now: i64,
}

fn daemon_err(e: uipc_client::Errno) -> String {
    format!("the daemon refused: {}", ipcinfo::strerror(e))
}

/// `pid_get_cmdline()`: the process's command line, arguments joined by
/// spaces; `None` for a process that is gone or has none.
fn pid_cmdline(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let raw = raw.strip_suffix(&[0]).unwrap_or(&raw);
    if raw.is_empty() {
        return None;
    }
    Some(raw.iter().map(|&b| if b == 0 { ' ' } else { char::from(b) }).collect())
}

/// The columns every kind of object has (`KEY` to `CTIME`).
struct Common {
    key: i32,
    id: i32,
    mode: u32,
    uid: u32,
    gid: u32,
    cuid: u32,
    cgid: u32,
    /// What the `CGID` column shows (util-linux 2.38 shows a segment's cuid).
    cgid_shown: u32,
    ctime: i64,
}

/// The rows to show: all, or the one with `id` (`id N not found` warned
/// when there is none, as `lsipc -i` does).
fn select<T>(prog: &Prog, rows: Vec<T>, id: Option<i32>, id_of: impl Fn(&T) -> i32) -> Vec<T> {
    let Some(id) = id else { return rows };
    let one: Vec<T> = rows.into_iter().filter(|r| id_of(r) == id).take(1).collect();
    if one.is_empty() {
        prog.warnx(&format!("id {id} not found"));
    }
    one
}

/// One POSIX object's row: its name as lsipc shows it, its file's owner,
/// group, mode and modification time, and the cells of its kind's own
/// columns (`SIZE`, `SVAL`, `USEDBYTES`, `MSGS`).
struct PosixObject {
    name: String,
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: i64,
    own: Vec<(usize, String)>,
}

impl Ctx<'_> {
    /// A cell of one of the [`Common`] columns.
    fn common_cell(&self, c: usize, p: &Common, names: &mut Names) -> Option<String> {
        match c {
            KEY => Some(format!("0x{:08x}", p.key)),
            ID => Some(p.id.to_string()),
            OWNER => Some(names.user(p.uid).unwrap_or_else(|| p.uid.to_string())),
            PERMS => Some(self.perms(p.mode)),
            CUID => Some(p.cuid.to_string()),
            CUSER => names.user(p.cuid),
            CGID => Some(p.cgid_shown.to_string()),
            CGROUP => names.group(p.cgid),
            UID => Some(p.uid.to_string()),
            USER => names.user(p.uid),
            GID => Some(p.gid.to_string()),
            GROUP => names.group(p.gid),
            CTIME => self.time(p.ctime),
            _ => None,
        }
    }

    fn time(&self, t: i64) -> Option<String> {
        (t != 0).then(|| match self.time_mode {
            TimeMode::Full => ipcinfo::ctime(t),
            TimeMode::Short => strtime_short(t, self.now),
            TimeMode::Iso => ipcinfo::strtime_iso(t),
        })
    }

    fn perms(&self, mode: u32) -> String {
        if self.numperms {
            crate::ipcs::alt_octal(mode & 0o777)
        } else {
            strmode(mode & 0o777)
        }
    }

    fn size(&self, n: u64) -> String {
        if self.bytes {
            n.to_string()
        } else {
            ipcinfo::size_to_human(n)
        }
    }

    /// `global_set_data()`: one summary row.
    #[allow(clippy::too_many_arguments)]
    fn global_row(&self, tb: &mut Table, res: &str, desc: &str, used: u64, limit: u64, usage: bool, byte_unit: bool) {
        let fmt = |v: u64| if !byte_unit || self.bytes { v.to_string() } else { ipcinfo::size_to_human(v) };
        let mut row = vec![None; tb.cols.len()];
        for (n, &c) in tb.cols.iter().enumerate() {
            row[n] = match c {
                RESOURCE => Some(res.to_owned()),
                DESC => Some(desc.to_owned()),
                USED => Some(if usage { fmt(used) } else { "-".to_owned() }),
                USEPERC => Some(if usage {
                    #[allow(clippy::cast_precision_loss)]
                    let p = used as f64 / limit as f64 * 100.0;
                    format!("{p:2.2}%")
                } else {
                    "-".to_owned()
                }),
                LIMIT => Some(fmt(limit)),
                _ => None,
            };
        }
        tb.rows.push(row);
    }

    fn msg_global(&self, tb: &mut Table) -> Result<(), String> {
        let l = ipcinfo::limits(self.c).map_err(daemon_err)?;
        let nonneg = |v: i32| u64::try_from(v).unwrap_or(0);
        let queues = u64::try_from(ipcinfo::msg_rows(self.c).map_err(daemon_err)?.len()).unwrap_or(0);
        self.global_row(tb, "MSGMNI", "Number of message queues", queues, nonneg(l.msgmni), true, false);
        self.global_row(tb, "MSGMAX", "Max size of message (bytes)", 0, l.msgmax, false, true);
        self.global_row(tb, "MSGMNB", "Default max size of queue (bytes)", 0, nonneg(l.msgmnb), false, true);
        Ok(())
    }

    fn shm_global(&self, tb: &mut Table) -> Result<(), String> {
        let l = ipcinfo::limits(self.c).map_err(daemon_err)?;
        let rows = ipcinfo::shm_rows(self.c).map_err(daemon_err)?;
        let n = u64::try_from(rows.len()).unwrap_or(0);
        let sum: u64 = rows.iter().map(|r| r.segsz).fold(0, u64::wrapping_add);
        let pages = sum / uipc_sys::account::page_size();
        self.global_row(tb, "SHMMNI", "Shared memory segments", n, l.shmmni, true, false);
        self.global_row(tb, "SHMALL", "Shared memory pages", pages, l.shmall, true, false);
        self.global_row(tb, "SHMMAX", "Max size of shared memory segment (bytes)", 0, l.shmmax, false, true);
        self.global_row(tb, "SHMMIN", "Min size of shared memory segment (bytes)", 0, l.shmmin, false, true);
        Ok(())
    }

    fn sem_global(&self, tb: &mut Table) -> Result<(), String> {
        let l = ipcinfo::limits(self.c).map_err(daemon_err)?;
        let rows = ipcinfo::sem_rows(self.c).map_err(daemon_err)?;
        let sets = u64::try_from(rows.len()).unwrap_or(0);
        // util-linux 2.38 adds the first set's nsems once per set (its
        // do_sem_global() reads the list head): mirrored, so the totals agree.
        let sems: u64 = rows.first().map_or(0, |f| f.nsems) * sets;
        let nonneg = |v: i32| u64::try_from(v).unwrap_or(0);
        self.global_row(tb, "SEMMNI", "Number of semaphore identifiers", sets, nonneg(l.semmni), true, false);
        self.global_row(tb, "SEMMNS", "Total number of semaphores", sems, nonneg(l.semmns), true, false);
        self.global_row(tb, "SEMMSL", "Max semaphores per semaphore set.", 0, nonneg(l.semmsl), false, false);
        self.global_row(tb, "SEMOPM", "Max number of operations per semop(2)", 0, nonneg(l.semopm), false, false);
        self.global_row(tb, "SEMVMX", "Semaphore max value", 0, u64::from(l.semvmx), false, false);
        Ok(())
    }

    fn shm(&self, prog: &Prog, tb: &mut Table, id: Option<i32>, names: &mut Names) -> Result<(), String> {
        let rows = select(prog, ipcinfo::shm_rows(self.c).map_err(daemon_err)?, id, |r| r.id);
        if rows.is_empty() {
            return Ok(());
        }
        tb.name = Some("sharedmemory");
        for p in rows {
            // util-linux 2.38 prints the creator's uid in CGID for segments.
            let common = Common {
                key: p.key,
                id: p.id,
                mode: p.mode,
                uid: p.uid,
                gid: p.gid,
                cuid: p.cuid,
                cgid: p.cgid,
                cgid_shown: p.cuid,
                ctime: p.ctime,
            };
            let mut row = vec![None; tb.cols.len()];
            for (n, &c) in tb.cols.iter().enumerate() {
                row[n] = match c {
                    KEY..=CTIME => self.common_cell(c, &common, names),
                    SIZE => Some(self.size(p.segsz)),
                    NATTCH => Some(p.nattch.to_string()),
                    STATUS => {
                        let mut s = Vec::new();
                        if p.mode & 0o1000 != 0 {
                            s.push("dest");
                        }
                        if p.mode & 0o2000 != 0 {
                            s.push("locked");
                        }
                        Some(s.join(","))
                    }
                    ATTACH => self.time(p.atime),
                    DETACH => self.time(p.dtime),
                    CPID => Some(p.cpid.to_string()),
                    LPID => Some(p.lpid.to_string()),
                    COMMAND => pid_cmdline(p.cpid),
                    _ => None,
                };
            }
            tb.rows.push(row);
        }
        Ok(())
    }

    fn msg(&self, prog: &Prog, tb: &mut Table, id: Option<i32>, names: &mut Names) -> Result<(), String> {
        let rows = select(prog, ipcinfo::msg_rows(self.c).map_err(daemon_err)?, id, |r| r.id);
        if rows.is_empty() {
            return Ok(());
        }
        tb.name = Some("messages");
        for p in rows {
            let common = Common {
                key: p.key,
                id: p.id,
                mode: p.mode,
                uid: p.uid,
                gid: p.gid,
                cuid: p.cuid,
                cgid: p.cgid,
                cgid_shown: p.cgid,
                ctime: p.ctime,
            };
            let mut row = vec![None; tb.cols.len()];
            for (n, &c) in tb.cols.iter().enumerate() {
                row[n] = match c {
                    // util-linux 2.38 formats a queue's numeric PERMS (-P)
                    // but never puts it in the cell: it stays empty.
                    PERMS if self.numperms => None,
                    KEY..=CTIME => self.common_cell(c, &common, names),
                    USEDBYTES => Some(self.size(p.cbytes)),
                    MSGS => Some(p.qnum.to_string()),
                    SEND => self.time(p.stime),
                    RECV => self.time(p.rtime),
                    LSPID => Some(p.lspid.to_string()),
                    LRPID => Some(p.lrpid.to_string()),
                    _ => None,
                };
            }
            tb.rows.push(row);
        }
        Ok(())
    }

    fn sem(&self, prog: &Prog, tb: &mut Table, id: Option<i32>, names: &mut Names) -> Result<(), String> {
        tb.name = Some("semaphores");
        let rows = select(prog, ipcinfo::sem_rows(self.c).map_err(daemon_err)?, id, |r| r.id);
        for p in &rows {
            let common = Common {
                key: p.key,
                id: p.id,
                mode: p.mode,
                uid: p.uid,
                gid: p.gid,
                cuid: p.cuid,
                cgid: p.cgid,
                cgid_shown: p.cgid,
                ctime: p.ctime,
            };
            let mut row = vec![None; tb.cols.len()];
            for (n, &c) in tb.cols.iter().enumerate() {
                row[n] = match c {
                    KEY..=CTIME => self.common_cell(c, &common, names),
                    NSEMS => Some(p.nsems.to_string()),
                    OTIME => self.time(p.otime),
                    _ => None,
                };
            }
            tb.rows.push(row);
            if id.is_some() && p.nsems > 0 {
                let elems = ipcinfo::sem_elements(self.c, p)?;
                tb.sub = Some(
                    elems
                        .iter()
                        .enumerate()
                        .map(|(i, e)| {
                            let cmd = u32::try_from(e.pid).ok().and_then(pid_cmdline).unwrap_or_default();
                            [
                                i.to_string(),
                                e.semval.to_string(),
                                e.ncount.to_string(),
                                e.zcount.to_string(),
                                e.pid.to_string(),
                                cmd,
                            ]
                        })
                        .collect(),
                );
            }
        }
        Ok(())
    }

    /// The cells util-linux 2.41 fills for a POSIX object (`do_posix_shm()`,
    /// `do_posix_msg()`, `do_posix_sem()`): the owner is the file's uid, no
    /// key, id, ctime or current ids.
    fn posix_cell(&self, c: usize, o: &PosixObject, names: &mut Names) -> Option<String> {
        match c {
            NAME => Some(o.name.clone()),
            OWNER => Some(names.user(o.uid).unwrap_or_else(|| o.uid.to_string())),
            PERMS => Some(self.perms(o.mode & 0o777)),
            CUID => Some(o.uid.to_string()),
            CUSER => names.user(o.uid),
            CGID => Some(o.gid.to_string()),
            CGROUP => names.group(o.gid),
            MTIME => self.time(o.mtime),
            _ => None,
        }
    }

    /// `lsipc -M`: the namespace's POSIX shared memory objects (not the
    /// `sem.*` ones), or the one named `only` (`-N`).
    fn pshm(&self, prog: &Prog, tb: &mut Table, only: Option<&str>, names: &mut Names) -> Result<(), String> {
        let rows = self.c.pshm_list().map_err(daemon_err)?.into_iter().filter(|o| !o.name.starts_with(b"sem."));
        let rows = rows.map(|o| PosixObject {
            name: String::from_utf8_lossy(&o.name).into_owned(),
            uid: o.uid,
            gid: o.gid,
            mode: o.mode,
            mtime: o.mtime,
            own: vec![(SIZE, self.size(o.size))],
        });
        self.posix_table(prog, tb, "posix-sharedmemory", rows, only, "shared memory segment", names);
        Ok(())
    }

    /// `lsipc -S`: the namespace's named semaphores with their values (read
    /// as `sem_getvalue()` does; one lsipc may not open is skipped, as
    /// util-linux skips a failed `sem_open`).
    fn psem(&self, prog: &Prog, tb: &mut Table, only: Option<&str>, names: &mut Names) -> Result<(), String> {
        use std::os::unix::fs::FileExt;
        let mut rows = Vec::new();
        for o in self.c.pshm_list().map_err(daemon_err)? {
            let Some(sname) = o.name.strip_prefix(b"sem.") else { continue };
            let Ok(fd) = self.c.sem_open_fd(sname, 0, 0, 0, 0) else { continue };
            let mut value = [0u8; 4];
            if std::fs::File::from(fd).read_exact_at(&mut value, 0).is_err() {
                continue;
            }
            rows.push(PosixObject {
                name: String::from_utf8_lossy(sname).into_owned(),
                uid: o.uid,
                gid: o.gid,
                mode: o.mode,
                mtime: o.mtime,
                own: vec![(SVAL, i32::from_le_bytes(value).to_string())],
            });
        }
        // util-linux 2.41 says "message queue" here too.
        self.posix_table(prog, tb, "posix-semaphores", rows.into_iter(), only, "message queue", names);
        Ok(())
    }

    /// `lsipc -Q`: the namespace's POSIX message queues, named `/NAME`.
    fn pmsg(&self, prog: &Prog, tb: &mut Table, only: Option<&str>, names: &mut Names) -> Result<(), String> {
        if let Some(n) = only.filter(|n| !n.starts_with('/')) {
            prog.warnx(&format!("message queue name must start with '/': {n}"));
            return Ok(());
        }
        let rows = self.c.mq_list().map_err(daemon_err)?.into_iter().map(|q| PosixObject {
            name: format!("/{}", String::from_utf8_lossy(&q.name)),
            uid: q.uid,
            gid: q.gid,
            mode: q.mode,
            mtime: q.mtime,
            own: vec![(USEDBYTES, self.size(q.qsize)), (MSGS, q.curmsgs.to_string())],
        });
        self.posix_table(prog, tb, "posix-messages", rows, only, "message queue", names);
        Ok(())
    }

    /// The rows of one POSIX kind: all, or the one named `only` ("`what`
    /// NAME not found" warned when there is none); the table is named only
    /// when it has rows, as util-linux names it after its "not found" check.
    #[allow(clippy::too_many_arguments)]
    fn posix_table(
        &self,
        prog: &Prog,
        tb: &mut Table,
        table: &'static str,
        rows: impl Iterator<Item = PosixObject>,
        only: Option<&str>,
        what: &str,
        names: &mut Names,
    ) {
        let rows: Vec<PosixObject> = match only {
            None => rows.collect(),
            Some(only) => {
                let one: Vec<PosixObject> = rows.filter(|o| o.name == only).take(1).collect();
                if one.is_empty() {
                    prog.warnx(&format!("{what} {only} not found"));
                }
                one
            }
        };
        if rows.is_empty() {
            return;
        }
        tb.name = Some(table);
        for o in rows {
            let row = tb.cols.iter().map(|&c| match o.own.iter().find(|(col, _)| *col == c) {
                Some((_, v)) => Some(v.clone()),
                None => self.posix_cell(c, &o, names),
            });
            tb.rows.push(row.collect());
        }
    }

    /// `lsipc -g -Q`: `do_posix_msg_global()`, from the namespace's
    /// `fs.mqueue` sysctls.
    fn pmsg_global(&self, tb: &mut Table) -> Result<(), String> {
        let queues = u64::try_from(self.c.mq_list().map_err(daemon_err)?.len()).unwrap_or(0);
        let sysctl = |k: &str| -> Result<u64, String> {
            let v = self.c.sysctl_read(k).map_err(daemon_err)?;
            Ok(v.trim().parse().unwrap_or(0))
        };
        self.global_row(
            tb,
            "MQUMNI",
            "Number of POSIX message queues",
            queues,
            sysctl("fs.mqueue.queues_max")?,
            true,
            false,
        );
        self.global_row(
            tb,
            "MQUMAX",
            "Max size of POSIX message (bytes)",
            0,
            sysctl("fs.mqueue.msgsize_max")?,
            false,
            true,
        );
        self.global_row(
            tb,
            "MQUMNB",
            "Number of messages in POSIX message queue",
            0,
            sysctl("fs.mqueue.msg_max")?,
            false,
            false,
        );
        Ok(())
    }
}

/// `print_pretty()`: "Name:<padding>value" for each cell that has data.
fn print_pretty(tb: &Table) -> String {
    let mut s = String::new();
    let Some(row) = tb.rows.first() else { return s };
    for (n, &c) in tb.cols.iter().enumerate() {
        if let Some(Some(d)) = row.get(n) {
            let h = COLS[c].pretty;
            let pad = 35usize.saturating_sub(h.len()).max(1);
            let _ = writeln!(s, "{h}:{:pad$}{d:<36}", ' ');
        }
    }
    if let Some(sub) = &tb.sub {
        s.push_str("Elements:\n\n");
        let t = Table {
            name: Some("elements"),
            cols: Vec::new(),
            rows: sub.iter().map(|r| r.iter().map(|c| Some(c.clone())).collect()).collect(),
            sub: None,
        };
        let heads = ["SEMNUM", "VALUE", "NCOUNT", "ZCOUNT", "PID", "COMMAND"];
        s.push_str(&render_plain(&heads, &[true; 6], &t.rows, false));
    }
    s
}

/// The layout libsmartcols gives a table printed to a pipe.
fn render_plain(heads: &[&str], right: &[bool], rows: &[Vec<Option<String>>], noheadings: bool) -> String {
    let ncols = heads.len();
    let mut width: Vec<usize> = heads.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(c) = c {
                width[i] = width[i].max(c.chars().count());
            }
        }
    }
    let mut s = String::new();
    let mut line = |cells: Vec<&str>| {
        for (i, c) in cells.iter().enumerate() {
            let last = i + 1 == ncols;
            let w = width[i];
            if i > 0 {
                s.push(' ');
            }
            if last && c.is_empty() {
                continue;
            }
            if right[i] {
                let _ = write!(s, "{c:>w$}");
            } else if last {
                s.push_str(c);
            } else {
                let _ = write!(s, "{c:<w$}");
            }
        }
        s.push('\n');
    };
    if !noheadings {
        line(heads.to_vec());
    }
    for r in rows {
        line(r.iter().map(|c| c.as_deref().unwrap_or("")).collect());
    }
    s
}

/// libsmartcols' JSON string quoting.
fn json_str(v: &str) -> String {
    let mut s = String::from("\"");
    for ch in v.chars() {
        match ch {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// `fputs_nonblank()` of raw mode: blanks and backslashes as `\xNN`.
fn raw_cell(v: &str) -> String {
    let mut s = String::new();
    for ch in v.chars() {
        if ch == ' ' || ch == '\t' || ch == '\\' || (ch as u32) < 0x20 {
            let _ = write!(s, "\\x{:02x}", ch as u32);
        } else {
            s.push(ch);
        }
    }
    s
}

/// Export mode's quoting (`fputs_quoted`): `"` and `\`, `` ` ``, `$` escaped.
fn quoted(v: &str) -> String {
    let mut s = String::from("\"");
    for ch in v.chars() {
        if matches!(ch, '"' | '\\' | '`' | '$') {
            s.push('\\');
        }
        s.push(ch);
    }
    s.push('"');
    s
}

/// A column name as a shell variable (`--shell`): `USE%` → `USE_PCT`.
fn shell_name(n: &str) -> String {
    let n = n.replace('%', "_PCT");
    n.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
}

fn print_table(tb: &Table, out: Out, noheadings: bool, shellvar: bool) -> String {
    let heads: Vec<&str> = tb.cols.iter().map(|&c| COLS[c].name).collect();
    let right: Vec<bool> = tb.cols.iter().map(|&c| COLS[c].right).collect();
    match out {
        Out::Json => {
            let mut s = format!("{{\n   {}: [\n", json_str(tb.name.unwrap_or("")));
            if tb.rows.is_empty() {
                s.push('\n');
            }
            for (i, r) in tb.rows.iter().enumerate() {
                s.push_str(if i == 0 { "      {\n" } else { "      },{\n" });
                for (n, c) in r.iter().enumerate() {
                    let key = heads[n].to_lowercase();
                    let key = if shellvar { shell_name(&key) } else { key };
                    let v = match c.as_deref() {
                        Some(v) if !v.is_empty() => json_str(v),
                        _ => "null".to_owned(),
                    };
                    let comma = if n + 1 < r.len() { "," } else { "" };
                    let _ = writeln!(s, "         {}: {v}{comma}", json_str(&key));
                }
            }
            if !tb.rows.is_empty() {
                s.push_str("      }\n");
            }
            s.push_str("   ]\n}\n");
            s
        }
        _ if tb.rows.is_empty() => String::new(),
        Out::Raw => {
            let mut s = String::new();
            if !noheadings {
                let h: Vec<String> = heads.iter().map(|h| if shellvar { shell_name(h) } else { raw_cell(h) }).collect();
                s.push_str(&h.join(" "));
                s.push('\n');
            }
            for r in &tb.rows {
                let cells: Vec<String> = r.iter().map(|c| raw_cell(c.as_deref().unwrap_or(""))).collect();
                s.push_str(&cells.join(" "));
                s.push('\n');
            }
            s
        }
        Out::Export | Out::Newline => {
            let sep = if out == Out::Newline { "\n" } else { " " };
            let mut s = String::new();
            for r in &tb.rows {
                let cells: Vec<String> = r
                    .iter()
                    .enumerate()
                    .map(|(n, c)| {
                        let name = if shellvar { shell_name(heads[n]) } else { heads[n].to_owned() };
                        format!("{name}={}", quoted(c.as_deref().unwrap_or("")))
                    })
                    .collect();
                s.push_str(&cells.join(sep));
                s.push('\n');
            }
            s
        }
        _ => {
            let heads: Vec<String> =
                heads.iter().map(|h| if shellvar { shell_name(h) } else { (*h).to_owned() }).collect();
            let heads: Vec<&str> = heads.iter().map(String::as_str).collect();
            render_plain(&heads, &right, &tb.rows, noheadings)
        }
    }
}
