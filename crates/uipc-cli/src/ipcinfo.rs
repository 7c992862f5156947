//! What `uipc ipcs` and `uipc lsipc` read, read the way util-linux 2.38
//! reads it (`sys-utils/ipcutils.c`): the objects from the namespace's
//! `/proc/sysvipc/{shm,sem}` text (rendered by the daemon), the limits from
//! its `/proc/sys/kernel/*` values, usage from `SHM_INFO`/`SEM_INFO`, and
//! semaphore elements from `GETVAL`/`GETNCNT`/`GETZCNT`/`GETPID` — plus the
//! small formatting routines of util-linux's `lib/` that the output depends
//! on (`size_to_human_string`, `xstrmode`, `ctime`, `strtime_short`).
//!
//! Message queues are not implemented by uipc: a namespace has none, and
//! its `kernel.msg*` limits are still shown.

use std::collections::HashMap;
use std::path::PathBuf;

use uipc_client::{Client, Errno, SemCtlArg, SemOut};

/// How a command names itself in messages: `ipcs` when run through a link
/// of that name, `uipc ipcs` otherwise.
#[derive(Clone, Debug)]
pub struct Prog {
    /// The prefix of every message (`ipcs: ...`).
    pub name: String,
    /// The short name in "Try '... --help'".
    pub short: String,
}

impl Prog {
    /// `util` as a subcommand of `uipc`, or as itself when `multicall`.
    pub fn new(util: &str, multicall: Option<String>) -> Prog {
        match multicall {
            Some(argv0) => Prog { name: argv0, short: util.to_owned() },
            None => Prog { name: format!("uipc {util}"), short: format!("uipc {util}") },
        }
    }

    /// `warnx(3)`: `prog: msg` on stderr.
    pub fn warnx(&self, msg: &str) {
        eprintln!("{}: {msg}", self.short_prefix());
    }

    /// The name in messages: util-linux uses `program_invocation_short_name`.
    fn short_prefix(&self) -> &str {
        &self.short
    }

    /// A getopt error: glibc's line (prefixed with argv\[0\]), then util-linux's hint.
    pub fn usage_error(&self, msg: &str) -> std::process::ExitCode {
        eprintln!("{}: {msg}", self.name);
        eprintln!("Try '{} --help' for more information.", self.short);
        std::process::ExitCode::FAILURE
    }

    /// `-V`: the version line, and success.
    pub fn version(&self) -> std::process::ExitCode {
        println!("{} from uipc {} (util-linux 2.38.1 compatible)", self.short, env!("CARGO_PKG_VERSION"));
        std::process::ExitCode::SUCCESS
    }

    /// `errx(EXIT_FAILURE, msg)`.
    pub fn fail(&self, msg: &str) -> std::process::ExitCode {
        self.warnx(msg);
        std::process::ExitCode::FAILURE
    }
}

/// The util-linux names `uipc` answers to when invoked through a link.
pub const UTILS: [&str; 4] = ["ipcs", "ipcrm", "ipcmk", "lsipc"];

/// Multi-call: when `argv[0]`'s file name is `ipcs`, `ipcrm`, `ipcmk` or
/// `lsipc`, runs that command and returns its exit status.
pub fn multicall() -> Option<std::process::ExitCode> {
    let mut args = std::env::args_os().map(|a| a.to_string_lossy().into_owned());
    let argv0 = args.next()?;
    let base = std::path::Path::new(&argv0).file_name()?.to_string_lossy().into_owned();
    let util = UTILS.into_iter().find(|u| *u == base)?;
    let rest: Vec<String> = args.collect();
    Some(run(util, Some(argv0), &rest))
}

/// Runs one of [`UTILS`] with `args`; `argv0` when invoked through a link.
pub fn run(util: &str, argv0: Option<String>, args: &[String]) -> std::process::ExitCode {
    let prog = Prog::new(util, argv0);
    match util {
        "ipcs" => crate::ipcs::main(&prog, args),
        "ipcrm" => crate::ipcrm::main(&prog, args),
        "ipcmk" => crate::ipcmk::main(&prog, args),
        _ => crate::lsipc::main(&prog, args),
    }
}

/// `strerror(errno)`: the C library's sentence ("Invalid argument").
pub fn strerror(e: Errno) -> String {
    let s = std::io::Error::from_raw_os_error(e.raw()).to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// Which daemon and namespace to ask (`--socket`, `--ns`).
#[derive(Clone, Debug, Default)]
pub struct Target {
    /// `--socket PATH` [default: `$UIPC_SOCKET`, ...].
    pub socket: Option<PathBuf>,
    /// `--ns NAME` [default: `$UIPC_NAMESPACE`, else `default`].
    pub ns: Option<String>,
}

impl Target {
    /// Connects, or says in one line why not.
    ///
    /// # Errors
    /// "cannot reach the uipc daemon at PATH: REASON".
    pub fn connect(&self) -> Result<Client, String> {
        let socket = self.socket.clone().unwrap_or_else(uipc_client::default_socket_path);
        let ns =
            self.ns.clone().or_else(|| std::env::var("UIPC_NAMESPACE").ok()).unwrap_or_else(|| "default".to_owned());
        Client::connect_to(&socket, &ns).map_err(|e| match e.raw() {
            // ENOENT, ECONNREFUSED: nobody listens there.
            2 | 111 => {
                format!("cannot reach the uipc daemon at {}: {}", socket.display(), strerror(e))
            }
            _ => format!("cannot join namespace '{ns}' at {}: {}", socket.display(), strerror(e)),
        })
    }
}

/// One line of `/proc/sysvipc/shm` (`struct shm_data` in util-linux).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShmRow {
    pub key: i32,
    pub id: i32,
    pub mode: u32,
    pub segsz: u64,
    pub cpid: u32,
    pub lpid: u32,
    pub nattch: u64,
    pub uid: u32,
    pub gid: u32,
    pub cuid: u32,
    pub cgid: u32,
    pub atime: i64,
    pub dtime: i64,
    pub ctime: i64,
}

/// One line of `/proc/sysvipc/sem` (`struct sem_data`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SemRow {
    pub key: i32,
    pub id: i32,
    pub mode: u32,
    pub nsems: u64,
    pub uid: u32,
    pub gid: u32,
    pub cuid: u32,
    pub cgid: u32,
    pub otime: i64,
    pub ctime: i64,
}

/// One line of `/proc/sysvipc/msg` (`struct msg_data`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct MsgRow {
    pub key: i32,
    pub id: i32,
    pub mode: u32,
    pub cbytes: u64,
    pub qnum: u64,
    pub lspid: u32,
    pub lrpid: u32,
    pub uid: u32,
    pub gid: u32,
    pub cuid: u32,
    pub cgid: u32,
    pub stime: i64,
    pub rtime: i64,
    pub ctime: i64,
}

/// `ipc_msg_get_info()`: every queue of the namespace, in slot order, from
/// its `/proc/sysvipc/msg`.
///
/// # Errors
/// The daemon's.
pub fn msg_rows(c: &Client) -> Result<Vec<MsgRow>, Errno> {
    let text = c.proc_sysvipc("msg")?;
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f = fields(l);
            Some(MsgRow {
                key: num(f.first())?,
                id: num(f.get(1))?,
                mode: octal(f.get(2))?,
                cbytes: num(f.get(3))?,
                qnum: num(f.get(4))?,
                lspid: num(f.get(5))?,
                lrpid: num(f.get(6))?,
                uid: num(f.get(7))?,
                gid: num(f.get(8))?,
                cuid: num(f.get(9))?,
                cgid: num(f.get(10))?,
                stime: num(f.get(11))?,
                rtime: num(f.get(12))?,
                ctime: num(f.get(13))?,
            })
        })
        .collect())
}

/// A queue's `msg_qbytes` (`msgctl(IPC_STAT)`, which needs read
/// permission); 0 when it cannot be had, as util-linux leaves it.
pub fn msg_qbytes(c: &Client, id: i32) -> u64 {
    match c.msgctl(id, uipc_abi::IPC_STAT, None) {
        Ok((_, uipc_client::MsgOut::MsgDs(ds))) => ds.msg_qbytes,
        _ => 0,
    }
}

/// `msgctl(0, MSG_INFO)`: queues, messages and bytes in the namespace.
///
/// # Errors
/// The daemon's.
pub fn msg_info(c: &Client) -> Result<uipc_abi::Msginfo, Errno> {
    match c.msgctl(0, uipc_abi::MSG_INFO, None)? {
        (_, uipc_client::MsgOut::Msginfo(i)) => Ok(i),
        _ => Err(Errno::EIO),
    }
}

/// One semaphore of a set (`struct sem_elem`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SemElem {
    pub semval: i64,
    pub ncount: i64,
    pub zcount: i64,
    pub pid: i64,
}

fn fields(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

fn num<T: std::str::FromStr>(s: Option<&&str>) -> Option<T> {
    s.and_then(|s| s.parse().ok())
}

fn octal(s: Option<&&str>) -> Option<u32> {
    s.and_then(|s| u32::from_str_radix(s, 8).ok())
}

/// The segments, as `ipc_shm_get_info()` scans `/proc/sysvipc/shm`
/// (lines that do not scan are skipped, as there).
///
/// # Errors
/// The daemon's errno.
pub fn shm_rows(c: &Client) -> Result<Vec<ShmRow>, Errno> {
    let text = c.proc_sysvipc("shm")?;
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f = fields(l);
            Some(ShmRow {
                key: num(f.first())?,
                id: num(f.get(1))?,
                mode: octal(f.get(2))?,
                segsz: num(f.get(3))?,
                cpid: num(f.get(4))?,
                lpid: num(f.get(5))?,
                nattch: num(f.get(6))?,
                uid: num(f.get(7))?,
                gid: num(f.get(8))?,
                cuid: num(f.get(9))?,
                cgid: num(f.get(10))?,
                atime: num(f.get(11))?,
                dtime: num(f.get(12))?,
                ctime: num(f.get(13))?,
            })
        })
        .collect())
}

/// The semaphore sets, as `ipc_sem_get_info()` scans `/proc/sysvipc/sem`.
///
/// # Errors
/// The daemon's errno.
pub fn sem_rows(c: &Client) -> Result<Vec<SemRow>, Errno> {
    let text = c.proc_sysvipc("sem")?;
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f = fields(l);
            Some(SemRow {
                key: num(f.first())?,
                id: num(f.get(1))?,
                mode: octal(f.get(2))?,
                nsems: num(f.get(3))?,
                uid: num(f.get(4))?,
                gid: num(f.get(5))?,
                cuid: num(f.get(6))?,
                cgid: num(f.get(7))?,
                otime: num(f.get(8))?,
                ctime: num(f.get(9))?,
            })
        })
        .collect())
}

/// `get_sem_elements()`: each semaphore's value, waiter counts and last pid.
///
/// # Errors
/// The first failing `semctl`, named as util-linux names it
/// ("semctl(GETVAL) failed: Permission denied").
pub fn sem_elements(c: &Client, row: &SemRow) -> Result<Vec<SemElem>, String> {
    let mut out = Vec::new();
    let n = i32::try_from(row.nsems).unwrap_or(0);
    for i in 0..n {
        let get = |cmd: i32, name: &str| -> Result<i64, String> {
            c.semctl(row.id, i, cmd, SemCtlArg::None)
                .map(|(v, _)| v)
                .map_err(|e| format!("semctl({name}) failed: {}", strerror(e)))
        };
        out.push(SemElem {
            semval: get(uipc_abi::GETVAL, "GETVAL")?,
            ncount: get(uipc_abi::GETNCNT, "GETNCNT")?,
            zcount: get(uipc_abi::GETZCNT, "GETZCNT")?,
            pid: get(uipc_abi::GETPID, "GETPID")?,
        });
    }
    Ok(out)
}

/// `struct ipc_limits`, filled as `ipc_{shm,sem,msg}_get_limits()` fill it
/// from the `/proc/sys/kernel` files.
#[derive(Clone, Copy, Debug, Default)]
pub struct Limits {
    pub shmmni: u64,
    pub shmmax: u64,
    pub shmall: u64,
    pub shmmin: u64,
    pub semmsl: i32,
    pub semmns: i32,
    pub semopm: i32,
    pub semmni: i32,
    pub semvmx: u32,
    pub msgmni: i32,
    pub msgmnb: i32,
    pub msgmax: u64,
}

/// `SHMMIN`, and `SEMVMX` as util-linux defines them.
const SHMMIN: u64 = 1;
const SEMVMX: u32 = 32767;

/// Reads the namespace's limits.
///
/// # Errors
/// The daemon's errno.
pub fn limits(c: &Client) -> Result<Limits, Errno> {
    let u64_of = |name: &str| -> Result<u64, Errno> {
        let t = c.sysctl_read(name)?;
        Ok(t.trim().parse().unwrap_or(0))
    };
    let i32_of = |name: &str| -> Result<i32, Errno> {
        let t = c.sysctl_read(name)?;
        Ok(t.trim().parse().unwrap_or(0))
    };
    let sem: Vec<i32> = c.sysctl_read("kernel.sem")?.split_whitespace().map(|v| v.parse().unwrap_or(0)).collect();
    let s = |i: usize| sem.get(i).copied().unwrap_or(0);
    Ok(Limits {
        shmmni: u64_of("kernel.shmmni")?,
        shmmax: u64_of("kernel.shmmax")?,
        shmall: u64_of("kernel.shmall")?,
        shmmin: SHMMIN,
        semmsl: s(0),
        semmns: s(1),
        semopm: s(2),
        semmni: s(3),
        semvmx: SEMVMX,
        msgmni: i32_of("kernel.msgmni")?,
        msgmnb: i32_of("kernel.msgmnb")?,
        msgmax: u64_of("kernel.msgmax")?,
    })
}

/// `semctl(0, 0, SEM_INFO)`: (used arrays, allocated semaphores).
///
/// # Errors
/// The daemon's errno.
pub fn sem_info(c: &Client) -> Result<(i32, i32), Errno> {
    match c.semctl(0, 0, uipc_abi::SEM_INFO, SemCtlArg::None)? {
        (_, SemOut::Seminfo(i)) => Ok((i.semusz, i.semaem)),
        _ => Err(Errno::EIO),
    }
}

/// User and group names through NSS, asked once per id.
#[derive(Default)]
pub struct Names {
    users: HashMap<u32, Option<String>>,
    groups: HashMap<u32, Option<String>>,
}

impl Names {
    /// `getpwuid(uid)->pw_name`.
    pub fn user(&mut self, uid: u32) -> Option<String> {
        self.users.entry(uid).or_insert_with(|| uipc_sys::account::user_name(uid)).clone()
    }

    /// `getgrgid(gid)->gr_name`.
    pub fn group(&mut self, gid: u32) -> Option<String> {
        self.groups.entry(gid).or_insert_with(|| uipc_sys::account::group_name(gid)).clone()
    }
}

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

fn idx<'a>(names: &[&'a str], i: i32) -> &'a str {
    usize::try_from(i).ok().and_then(|i| names.get(i)).copied().unwrap_or("???")
}

/// `ctime(t)` without its newline: "Tue Nov 24 21:37:51 2026" (`asctime`'s
/// format, local time).
pub fn ctime(t: i64) -> String {
    match uipc_sys::account::local_time(t) {
        Some(tm) => format!(
            "{} {}{:3} {:02}:{:02}:{:02} {}",
            idx(&DAYS, tm.wday),
            idx(&MONTHS, tm.mon),
            tm.mday,
            tm.hour,
            tm.min,
            tm.sec,
            i64::from(tm.year) + 1900
        ),
        None => String::new(),
    }
}

/// util-linux `strtime_short()`: "21:38" today, "Nov24" this year, else
/// "2025-Nov24".
pub fn strtime_short(t: i64, now: i64) -> String {
    let (Some(tm), Some(n)) = (uipc_sys::account::local_time(t), uipc_sys::account::local_time(now)) else {
        return String::new();
    };
    if tm.yday == n.yday && tm.year == n.year {
        format!("{:02}:{:02}", tm.hour, tm.min)
    } else if tm.year == n.year {
        format!("{}{:02}", idx(&MONTHS, tm.mon), tm.mday)
    } else {
        format!("{}-{}{:02}", i64::from(tm.year) + 1900, idx(&MONTHS, tm.mon), tm.mday)
    }
}

/// util-linux `strtime_iso(ISO_TIMESTAMP_T)`: "2026-11-24T21:38:03+00:00".
pub fn strtime_iso(t: i64) -> String {
    let Some(tm) = uipc_sys::account::local_time(t) else { return String::new() };
    // The offset from UTC: local broken-down time read back as if UTC, minus t.
    let days = days_from_civil(i64::from(tm.year) + 1900, i64::from(tm.mon) + 1, i64::from(tm.mday));
    let as_utc = days * 86400 + i64::from(tm.hour) * 3600 + i64::from(tm.min) * 60 + i64::from(tm.sec);
    let off = (as_utc - t) / 60;
    let sign = if off < 0 { '-' } else { '+' };
    format!(
        "{}-{:02}-{:02}T{:02}:{:02}:{:02}{}{:02}:{:02}",
        i64::from(tm.year) + 1900,
        tm.mon + 1,
        tm.mday,
        tm.hour,
        tm.min,
        tm.sec,
        sign,
        off.abs() / 60,
        off.abs() % 60
    )
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds since the epoch, now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// util-linux `size_to_human_string(SIZE_SUFFIX_1LETTER, bytes)`: "4K",
/// "97.7K", "16E", "1B".
pub fn size_to_human(bytes: u64) -> String {
    // get_exp(): the first power of 1024 the value is below, minus one.
    let mut shft = 10u32;
    while shft <= 60 && bytes >= (1u64 << shft) {
        shft += 10;
    }
    let exp = shft - 10;
    let letter = b"BKMGTPE"[usize::try_from(exp / 10).unwrap_or(0)] as char;
    let mut dec = if exp > 0 { bytes >> exp } else { bytes };
    let mut frac = if exp > 0 { bytes % (1u64 << exp) } else { 0 };
    if frac != 0 {
        frac = if frac >= u64::MAX / 1000 {
            ((frac / 1024) * 1000) / (1u64 << (exp - 10))
        } else {
            (frac * 1000) / (1u64 << exp)
        };
        // Round 4/5, one digit after the point.
        frac = (frac + 50) / 100 * 10;
        if frac == 100 {
            dec += 1;
            frac = 0;
        }
    }
    if frac != 0 {
        let s = format!("{dec}.{frac:02}");
        let s = s.strip_suffix('0').unwrap_or(&s).to_owned();
        format!("{s}{letter}")
    } else {
        format!("{dec}{letter}")
    }
}

/// util-linux `xstrmode(mode & 0777)`: "rw-r-----".
pub fn strmode(mode: u32) -> String {
    let bits = [
        (0o400, 'r'),
        (0o200, 'w'),
        (0o100, 'x'),
        (0o040, 'r'),
        (0o020, 'w'),
        (0o010, 'x'),
        (0o004, 'r'),
        (0o002, 'w'),
        (0o001, 'x'),
    ];
    bits.iter().map(|&(b, c)| if mode & b != 0 { c } else { '-' }).collect()
}

/// `printf("%-W.Ps", s)`: at most `prec` characters, left-aligned in `width`.
pub fn left(s: &str, width: usize, prec: Option<usize>) -> String {
    let s: String = match prec {
        Some(p) => s.chars().take(p).collect(),
        None => s.to_owned(),
    };
    format!("{s:<width$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes_as_util_linux() {
        assert_eq!(size_to_human(0), "0B");
        assert_eq!(size_to_human(1), "1B");
        assert_eq!(size_to_human(1023), "1023B");
        assert_eq!(size_to_human(4096), "4K");
        assert_eq!(size_to_human(100_000), "97.7K");
        assert_eq!(size_to_human(8192), "8K");
        assert_eq!(size_to_human(1_048_576 + 1), "1M");
        assert_eq!(size_to_human(1536), "1.5K");
        assert_eq!(size_to_human(18_446_744_073_692_774_399), "16E");
        assert_eq!(size_to_human(u64::MAX), "16E");
    }

    #[test]
    fn modes() {
        assert_eq!(strmode(0o640), "rw-r-----");
        assert_eq!(strmode(0o777), "rwxrwxrwx");
    }

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }
}
