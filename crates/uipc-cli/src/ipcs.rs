//! `uipc ipcs` — util-linux 2.38's `ipcs(1)` for a uipc namespace: the same
//! options, the same output byte for byte (`sys-utils/ipcs.c`), read from
//! the daemon instead of the kernel; plus `--ns`, `--socket` and `--json`.
//!
//! # References
//!  - [ipcs(1)](https://man7.org/linux/man-pages/man1/ipcs.1.html)

use std::fmt::Write as _;
use std::process::ExitCode;

use serde_json::{json, Value};
use uipc_client::Client;

use crate::getopt::{self, HasArg, Opt};
use crate::ipcinfo::{self, ctime, left, size_to_human, Limits, MsgRow, Names, Prog, SemRow, ShmRow, Target};

const OPTS: &[Opt] = &[
    Opt::new("i", 'i', "id", HasArg::Required),
    Opt::new("q", 'q', "queues", HasArg::No),
    Opt::new("m", 'm', "shmems", HasArg::No),
    Opt::new("s", 's', "semaphores", HasArg::No),
    Opt::new("a", 'a', "all", HasArg::No),
    Opt::new("t", 't', "time", HasArg::No),
    Opt::new("p", 'p', "pid", HasArg::No),
    Opt::new("c", 'c', "creator", HasArg::No),
    Opt::new("l", 'l', "limits", HasArg::No),
    Opt::new("u", 'u', "summary", HasArg::No),
    Opt::long("human", "human", HasArg::No),
    Opt::new("b", 'b', "bytes", HasArg::No),
    Opt::new("V", 'V', "version", HasArg::No),
    Opt::new("h", 'h', "help", HasArg::No),
    Opt::long("ns", "ns", HasArg::Required),
    Opt::long("socket", "socket", HasArg::Required),
    Opt::long("json", "json", HasArg::No),
];

/// `ipcs`'s output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Default,
    Limits,
    Status,
    Creator,
    Time,
    Pid,
}

/// `IPC_UNIT_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Default,
    Kb,
    Bytes,
    Human,
}

const SHM_DEST: u32 = 0o1000;
const SHM_LOCKED: u32 = 0o2000;

fn usage(p: &Prog) -> String {
    let n = &p.short;
    format!(
        "\nUsage:\n {n} [resource-option...] [output-option]\n {n} -m|-q|-s -i <id>\n\n\
Show information on IPC facilities.\n\n\
Options:\n -i, --id <id>  print details on resource identified by <id>\n -h, --help     display this help\n -V, --version  display version\n\n\
Resource options:\n -m, --shmems      shared memory segments\n -q, --queues      message queues\n -s, --semaphores  semaphores\n -a, --all         all (default)\n\n\
Output options:\n -t, --time        show attach, detach and change times\n -p, --pid         show PIDs of creator and last operator\n -c, --creator     show creator and owner\n -l, --limits      show resource limits\n -u, --summary     show status summary\n     --human       show sizes in human-readable format\n -b, --bytes       show sizes in bytes\n\n\
uipc options:\n     --ns <name>       the uipc namespace [default: $UIPC_NAMESPACE, else default]\n     --socket <path>   the daemon's socket [default: $UIPC_SOCKET, $XDG_RUNTIME_DIR/uipc/uipc.sock, /run/uipc/uipc.sock]\n     --json            print the objects (or -l limits, -u summary) as JSON\n\n\
For more details see ipcs(1).\n"
    )
}

/// `printf("%#o", m)`: "0640", and "0" for zero.
pub fn alt_octal(m: u32) -> String {
    if m == 0 {
        "0".to_owned()
    } else {
        format!("0{m:o}")
    }
}

/// util-linux `strtos32_or_err()`: the number, or the message to exit with.
pub fn strtos32(s: &str, what: &str) -> Result<i32, String> {
    let t = s.trim_start();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what}: '{s}'"));
    }
    let range = || format!("{what}: '{s}': Numerical result out of range");
    let v: i128 = digits.parse().map_err(|_| range())?;
    let v = if neg { -v } else { v };
    i32::try_from(v).map_err(|_| range())
}

/// Runs `ipcs` with `args` (without `argv[0]`).
pub fn main(prog: &Prog, args: &[String]) -> ExitCode {
    let parsed = match getopt::parse(args, OPTS) {
        Ok(p) => p,
        Err(e) => return prog.usage_error(&e),
    };
    let (mut msg, mut shm, mut sem) = (false, false, false);
    let mut id = None;
    let mut format = Format::Default;
    let mut unit = Unit::Default;
    let mut target = Target::default();
    let mut json_out = false;
    for (k, v) in parsed.opts {
        let v = v.unwrap_or_default();
        match k {
            "i" => match strtos32(&v, "failed to parse id argument") {
                Ok(n) => id = Some(n),
                Err(m) => return prog.fail(&m),
            },
            "a" => (msg, shm, sem) = (true, true, true),
            "q" => msg = true,
            "m" => shm = true,
            "s" => sem = true,
            "t" => format = Format::Time,
            "c" => format = Format::Creator,
            "p" => format = Format::Pid,
            "l" => format = Format::Limits,
            "u" => format = Format::Status,
            "human" => unit = Unit::Human,
            "b" => unit = Unit::Bytes,
            "h" => {
                print!("{}", usage(prog));
                return ExitCode::SUCCESS;
            }
            "V" => return prog.version(),
            "ns" => target.ns = Some(v),
            "socket" => target.socket = Some(v.into()),
            "json" => json_out = true,
            _ => {}
        }
    }
    if id.is_some() && usize::from(msg) + usize::from(shm) + usize::from(sem) != 1 {
        return prog.fail("when using an ID, a single resource must be specified");
    }
    let client = match target.connect() {
        Ok(c) => c,
        Err(m) => return prog.fail(&m),
    };
    let mut ctx = Ctx { c: &client, names: Names::default(), out: String::new() };
    if json_out {
        return match ctx.json(id, (msg, shm, sem), format) {
            Ok(v) => {
                ctx.out = serde_json::to_string_pretty(&v).unwrap_or_default() + "\n";
                flush(prog, &ctx.out, None)
            }
            Err(m) => prog.fail(&m),
        };
    }
    let r = match id {
        Some(id) => {
            if msg {
                ctx.print_msg(prog, id, unit)
            } else if shm {
                ctx.print_shm(prog, id, unit)
            } else {
                ctx.print_sem(prog, id)
            }
        }
        None => {
            if !msg && !shm && !sem {
                (msg, shm, sem) = (true, true, true);
            }
            ctx.out.push('\n');
            let mut r = Ok(());
            if msg {
                r = r.and_then(|()| ctx.do_msg(format, unit));
                ctx.out.push('\n');
            }
            if shm && r.is_ok() {
                r = ctx.do_shm(format, unit);
                ctx.out.push('\n');
            }
            if sem && r.is_ok() {
                r = ctx.do_sem(format);
                ctx.out.push('\n');
            }
            r
        }
    };
    flush(prog, &ctx.out, r.err())
}

/// Writes what was produced, then the error that stopped it (if any).
fn flush(prog: &Prog, out: &str, err: Option<String>) -> ExitCode {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let wrote = stdout.write_all(out.as_bytes()).and_then(|()| stdout.flush());
    if let Err(e) = wrote {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return prog.fail(&format!("write error: {e}"));
        }
    }
    match err {
        Some(m) => prog.fail(&m),
        None => ExitCode::SUCCESS,
    }
}

struct Ctx<'a> {
    c: &'a Client,
    names: Names,
    out: String,
}

fn daemon_err(e: uipc_client::Errno) -> String {
    format!("the daemon refused: {}", ipcinfo::strerror(e))
}

impl Ctx<'_> {
    /// `ipc_print_size()`.
    fn print_size(&mut self, unit: Unit, msg: Option<&str>, size: u64, end: &str, width: i32) {
        if let Some(m) = msg {
            if m.ends_with('=') {
                self.out.push_str(m);
            } else {
                match unit {
                    Unit::Bytes => {
                        let _ = write!(self.out, "{m} (bytes) = ");
                    }
                    Unit::Kb => {
                        let _ = write!(self.out, "{m} (kbytes) = ");
                    }
                    _ => {
                        let _ = write!(self.out, "{m} = ");
                    }
                }
            }
        }
        let text = match unit {
            Unit::Default | Unit::Bytes => size.to_string(),
            Unit::Kb => (size / 1024).to_string(),
            Unit::Human => size_to_human(size),
        };
        let w = usize::try_from(width.unsigned_abs()).unwrap_or(0);
        if width < 0 {
            let _ = write!(self.out, "{text:<w$}");
        } else {
            let _ = write!(self.out, "{text:>w$}");
        }
        self.out.push_str(end);
    }

    /// `"%-W.10s"` of the user name, or `"%-Wu"` of the uid.
    fn owner(&mut self, uid: u32) -> String {
        match self.names.user(uid) {
            Some(n) => left(&n, 10, Some(10)),
            None => format!("{uid:<10}"),
        }
    }

    /// `ipc_print_perms()`.
    fn perms(&mut self, id: i32, mode: u32, cuid: u32, cgid: u32, uid: u32, gid: u32) {
        let _ = write!(self.out, "{id:<10} {:<10o}", mode & 0o777);
        let u = |n: &mut Names, v: u32| n.user(v).unwrap_or_else(|| v.to_string());
        let g = |n: &mut Names, v: u32| n.group(v).unwrap_or_else(|| v.to_string());
        let (a, b, c, d) =
            (u(&mut self.names, cuid), g(&mut self.names, cgid), u(&mut self.names, uid), g(&mut self.names, gid));
        let _ = writeln!(self.out, " {a:<10} {b:<10} {c:<10} {d:<10}");
    }

    fn limits(&self) -> Result<Limits, String> {
        ipcinfo::limits(self.c).map_err(daemon_err)
    }

    fn do_msg(&mut self, format: Format, unit: Unit) -> Result<(), String> {
        match format {
            Format::Limits => {
                let lim = self.limits()?;
                self.out.push_str("------ Messages Limits --------\n");
                let _ = writeln!(self.out, "max queues system wide = {}", lim.msgmni);
                let u = if unit == Unit::Default { Unit::Bytes } else { unit };
                self.print_size(u, Some("max size of message"), lim.msgmax, "\n", 0);
                self.print_size(u, Some("default max size of queue"), u64::try_from(lim.msgmnb).unwrap_or(0), "\n", 0);
                return Ok(());
            }
            Format::Status => {
                let i = ipcinfo::msg_info(self.c).map_err(daemon_err)?;
                self.out.push_str("------ Messages Status --------\n");
                let _ = write!(self.out, "allocated queues = {}\nused headers = {}\n", i.msgpool, i.msgmap);
                let used = u64::try_from(i.msgtql).unwrap_or(0);
                self.print_size(
                    unit,
                    Some("used space"),
                    used,
                    if unit == Unit::Default { " bytes\n" } else { "\n" },
                    0,
                );
                return Ok(());
            }
            Format::Creator => {
                self.out.push_str("------ Message Queues Creators/Owners --------\n");
                let _ = writeln!(
                    self.out,
                    "{:<10} {:<10} {:<10} {:<10} {:<10} {:<10}",
                    "msqid", "perms", "cuid", "cgid", "uid", "gid"
                );
            }
            Format::Time => {
                self.out.push_str("------ Message Queues Send/Recv/Change Times --------\n");
                let _ =
                    writeln!(self.out, "{:<8} {:<10} {:<20} {:<20} {:<20}", "msqid", "owner", "send", "recv", "change");
            }
            Format::Pid => {
                self.out.push_str("------ Message Queues PIDs --------\n");
                let _ = writeln!(self.out, "{:<10} {:<10} {:<10} {:<10}", "msqid", "owner", "lspid", "lrpid");
            }
            Format::Default => {
                self.out.push_str("------ Message Queues --------\n");
                let bytes = if unit == Unit::Human { "size" } else { "used-bytes" };
                let _ = writeln!(
                    self.out,
                    "{:<10} {:<10} {:<10} {:<10} {:<12} {:<12}",
                    "key", "msqid", "owner", "perms", bytes, "messages"
                );
            }
        }
        let rows = ipcinfo::msg_rows(self.c).map_err(daemon_err)?;
        for r in &rows {
            self.msg_line(r, format, unit);
        }
        Ok(())
    }

    fn msg_line(&mut self, r: &MsgRow, format: Format, unit: Unit) {
        if format == Format::Creator {
            self.perms(r.id, r.mode, r.cuid, r.cgid, r.uid, r.gid);
            return;
        }
        let owner = self.owner(r.uid);
        let short_time = |t: i64| if t != 0 { ctime(t).chars().skip(4).collect() } else { "Not set".to_owned() };
        match format {
            Format::Time => {
                let _ = writeln!(
                    self.out,
                    "{:<8} {owner} {} {} {}",
                    r.id,
                    left(&short_time(r.stime), 20, Some(16)),
                    left(&short_time(r.rtime), 20, Some(16)),
                    left(&short_time(r.ctime), 20, Some(16))
                );
            }
            Format::Pid => {
                let _ = writeln!(self.out, "{:<8} {owner}  {:>5}     {:>5}", r.id, r.lspid, r.lrpid);
            }
            _ => {
                let _ = write!(self.out, "0x{:08x} {:<10} {owner} {:<10o} ", r.key, r.id, r.mode & 0o777);
                if unit == Unit::Human {
                    self.print_size(unit, None, r.cbytes, "      ", 6);
                } else {
                    self.print_size(unit, None, r.cbytes, "", -12);
                }
                let _ = writeln!(self.out, " {:<12}", r.qnum);
            }
        }
    }

    fn do_shm(&mut self, format: Format, unit: Unit) -> Result<(), String> {
        match format {
            Format::Limits => {
                let lim = self.limits()?;
                let pgsz = uipc_sys::account::page_size();
                self.out.push_str("------ Shared Memory Limits --------\n");
                let _ = writeln!(self.out, "max number of segments = {}", lim.shmmni);
                self.print_size(
                    if unit == Unit::Default { Unit::Kb } else { unit },
                    Some("max seg size"),
                    lim.shmmax,
                    "\n",
                    0,
                );
                if unit == Unit::Kb || unit == Unit::Default {
                    let k = pgsz / 1024;
                    let tmp = match lim.shmall.checked_mul(k) {
                        Some(t) => t,
                        // Overflow: at least no ridiculously small value (as util-linux).
                        None => u64::MAX - (u64::MAX % k.max(1)),
                    };
                    self.print_size(Unit::Default, Some("max total shared memory (kbytes)"), tmp, "\n", 0);
                } else {
                    let tmp = lim.shmall.checked_mul(pgsz).unwrap_or(u64::MAX - (u64::MAX % pgsz.max(1)));
                    self.print_size(unit, Some("max total shared memory"), tmp, "\n", 0);
                }
                self.print_size(
                    if unit == Unit::Default { Unit::Bytes } else { unit },
                    Some("min seg size"),
                    lim.shmmin,
                    "\n",
                    0,
                );
                return Ok(());
            }
            Format::Status => {
                let (_, i) = self.c.shm_info().map_err(daemon_err)?;
                self.out.push_str("------ Shared Memory Status --------\n");
                let _ = write!(
                    self.out,
                    "segments allocated {}\npages allocated {}\npages resident  {}\npages swapped   {}\nSwap performance: {} attempts\t {} successes\n",
                    i.used_ids, i.shm_tot, i.shm_rss, i.shm_swp, i.swap_attempts, i.swap_successes
                );
                return Ok(());
            }
            Format::Creator => {
                self.out.push_str("------ Shared Memory Segment Creators/Owners --------\n");
                let _ = writeln!(
                    self.out,
                    "{:<10} {:<10} {:<10} {:<10} {:<10} {:<10}",
                    "shmid", "perms", "cuid", "cgid", "uid", "gid"
                );
            }
            Format::Time => {
                self.out.push_str("------ Shared Memory Attach/Detach/Change Times --------\n");
                let _ = writeln!(
                    self.out,
                    "{:<10} {:<10} {:<20} {:<20} {:<20}",
                    "shmid", "owner", "attached", "detached", "changed"
                );
            }
            Format::Pid => {
                self.out.push_str("------ Shared Memory Creator/Last-op PIDs --------\n");
                let _ = writeln!(self.out, "{:<10} {:<10} {:<10} {:<10}", "shmid", "owner", "cpid", "lpid");
            }
            Format::Default => {
                self.out.push_str("------ Shared Memory Segments --------\n");
                let bytes = if unit == Unit::Human { "size" } else { "bytes" };
                let _ = writeln!(
                    self.out,
                    "{:<10} {:<10} {:<10} {:<10} {:<10} {:<10} {:<12}",
                    "key", "shmid", "owner", "perms", bytes, "nattch", "status"
                );
            }
        }
        let rows = ipcinfo::shm_rows(self.c).map_err(daemon_err)?;
        for r in &rows {
            self.shm_line(r, format, unit);
        }
        Ok(())
    }

    fn shm_line(&mut self, r: &ShmRow, format: Format, unit: Unit) {
        if format == Format::Creator {
            self.perms(r.id, r.mode, r.cuid, r.cgid, r.uid, r.gid);
            return;
        }
        let owner = self.owner(r.uid);
        let short_time = |t: i64| if t != 0 { ctime(t).chars().skip(4).collect() } else { "Not set".to_owned() };
        match format {
            Format::Time => {
                let _ = writeln!(
                    self.out,
                    "{:<10} {owner} {} {} {}",
                    r.id,
                    left(&short_time(r.atime), 20, Some(16)),
                    left(&short_time(r.dtime), 20, Some(16)),
                    left(&short_time(r.ctime), 20, Some(16))
                );
            }
            Format::Pid => {
                let _ = writeln!(self.out, "{:<10} {owner} {:<10} {:<10}", r.id, r.cpid, r.lpid);
            }
            _ => {
                let _ = write!(self.out, "0x{:08x} {:<10} {owner} {:<10o} ", r.key, r.id, r.mode & 0o777);
                if unit == Unit::Human {
                    self.print_size(unit, None, r.segsz, "    ", 6);
                } else {
                    self.print_size(unit, None, r.segsz, "", -10);
                }
                let _ = writeln!(
                    self.out,
                    " {:<10} {:<6} {:<6}",
                    r.nattch,
                    if r.mode & SHM_DEST != 0 { "dest" } else { " " },
                    if r.mode & SHM_LOCKED != 0 { "locked" } else { " " }
                );
            }
        }
    }

    fn do_sem(&mut self, format: Format) -> Result<(), String> {
        match format {
            Format::Limits => {
                let lim = self.limits()?;
                self.out.push_str("------ Semaphore Limits --------\n");
                let _ = write!(
                    self.out,
                    "max number of arrays = {}\nmax semaphores per array = {}\nmax semaphores system wide = {}\nmax ops per semop call = {}\nsemaphore max value = {}\n",
                    lim.semmni, lim.semmsl, lim.semmns, lim.semopm, lim.semvmx
                );
                return Ok(());
            }
            Format::Status => {
                let (used, sems) = ipcinfo::sem_info(self.c).map_err(daemon_err)?;
                self.out.push_str("------ Semaphore Status --------\n");
                let _ = write!(self.out, "used arrays = {used}\nallocated semaphores = {sems}\n");
                return Ok(());
            }
            Format::Creator => {
                self.out.push_str("------ Semaphore Arrays Creators/Owners --------\n");
                let _ = writeln!(
                    self.out,
                    "{:<10} {:<10} {:<10} {:<10} {:<10} {:<10}",
                    "semid", "perms", "cuid", "cgid", "uid", "gid"
                );
            }
            Format::Time => {
                self.out.push_str("------ Semaphore Operation/Change Times --------\n");
                let _ = writeln!(self.out, "{:<8} {:<10} {:<26} {:<26}", "semid", "owner", "last-op", "last-changed");
            }
            Format::Pid => {}
            Format::Default => {
                self.out.push_str("------ Semaphore Arrays --------\n");
                let _ =
                    writeln!(self.out, "{:<10} {:<10} {:<10} {:<10} {:<10}", "key", "semid", "owner", "perms", "nsems");
            }
        }
        let rows = ipcinfo::sem_rows(self.c).map_err(daemon_err)?;
        for r in &rows {
            self.sem_line(r, format);
        }
        Ok(())
    }

    fn sem_line(&mut self, r: &SemRow, format: Format) {
        if format == Format::Creator {
            self.perms(r.id, r.mode, r.cuid, r.cgid, r.uid, r.gid);
            return;
        }
        let owner = self.owner(r.uid);
        let full = |t: i64| if t != 0 { ctime(t) } else { "Not set".to_owned() };
        match format {
            Format::Time => {
                let _ = writeln!(
                    self.out,
                    "{:<8} {owner}  {} {}",
                    r.id,
                    left(&full(r.otime), 26, Some(24)),
                    left(&full(r.ctime), 26, Some(24))
                );
            }
            Format::Pid => {}
            _ => {
                let _ =
                    writeln!(self.out, "0x{:08x} {:<10} {owner} {:<10o} {:<10}", r.key, r.id, r.mode & 0o777, r.nsems);
            }
        }
    }

    fn print_msg(&mut self, prog: &Prog, id: i32, unit: Unit) -> Result<(), String> {
        let rows = ipcinfo::msg_rows(self.c).map_err(daemon_err)?;
        let Some(r) = rows.iter().find(|r| r.id == id) else {
            prog.warnx(&format!("id {id} not found"));
            return Ok(());
        };
        let qbytes = ipcinfo::msg_qbytes(self.c, id);
        let _ = write!(
            self.out,
            "\nMessage Queue msqid={id}\nuid={}\tgid={}\tcuid={}\tcgid={}\tmode={}\n",
            r.uid,
            r.gid,
            r.cuid,
            r.cgid,
            alt_octal(r.mode)
        );
        let human = unit == Unit::Human;
        self.print_size(unit, Some(if human { "csize=" } else { "cbytes=" }), r.cbytes, "\t", 0);
        self.print_size(unit, Some(if human { "qsize=" } else { "qbytes=" }), qbytes, "\t", 0);
        let not_set = |t: i64| if t != 0 { ctime(t) } else { "Not set".to_owned() };
        let _ = write!(
            self.out,
            "qnum={}\tlspid={}\tlrpid={}\nsend_time={}\nrcv_time={}\nchange_time={}\n\n",
            r.qnum,
            r.lspid,
            r.lrpid,
            left(&not_set(r.stime), 26, Some(24)),
            left(&not_set(r.rtime), 26, Some(24)),
            left(&not_set(r.ctime), 26, Some(24))
        );
        Ok(())
    }

    fn print_shm(&mut self, prog: &Prog, id: i32, unit: Unit) -> Result<(), String> {
        let rows = ipcinfo::shm_rows(self.c).map_err(daemon_err)?;
        let Some(r) = rows.iter().find(|r| r.id == id) else {
            prog.warnx(&format!("id {id} not found"));
            return Ok(());
        };
        let _ = write!(
            self.out,
            "\nShared memory Segment shmid={id}\nuid={}\tgid={}\tcuid={}\tcgid={}\nmode={}\taccess_perms={}\n",
            r.uid,
            r.gid,
            r.cuid,
            r.cgid,
            alt_octal(r.mode),
            alt_octal(r.mode & 0o777)
        );
        self.print_size(unit, Some(if unit == Unit::Human { "size=" } else { "bytes=" }), r.segsz, "\t", 0);
        let not_set = |t: i64| if t != 0 { ctime(t) } else { "Not set".to_owned() };
        let _ = write!(
            self.out,
            "lpid={}\tcpid={}\tnattch={}\natt_time={}\ndet_time={}\nchange_time={}\n\n",
            r.lpid,
            r.cpid,
            r.nattch,
            left(&not_set(r.atime), 26, Some(24)),
            left(&not_set(r.dtime), 26, Some(24)),
            left(&ctime(r.ctime), 26, Some(24))
        );
        Ok(())
    }

    fn print_sem(&mut self, prog: &Prog, id: i32) -> Result<(), String> {
        let rows = ipcinfo::sem_rows(self.c).map_err(daemon_err)?;
        let Some(r) = rows.iter().find(|r| r.id == id) else {
            prog.warnx(&format!("id {id} not found"));
            return Ok(());
        };
        let elems = ipcinfo::sem_elements(self.c, r)?;
        let not_set = |t: i64| if t != 0 { ctime(t) } else { "Not set".to_owned() };
        let _ = write!(
            self.out,
            "\nSemaphore Array semid={id}\nuid={}\t gid={}\t cuid={}\t cgid={}\nmode={}, access_perms={}\nnsems = {}\notime = {}\nctime = {}\n",
            r.uid,
            r.gid,
            r.cuid,
            r.cgid,
            alt_octal(r.mode),
            alt_octal(r.mode & 0o777),
            r.nsems,
            left(&not_set(r.otime), 26, Some(24)),
            left(&ctime(r.ctime), 26, Some(24))
        );
        let _ = writeln!(self.out, "{:<10} {:<10} {:<10} {:<10} {:<10}", "semnum", "value", "ncount", "zcount", "pid");
        for (i, e) in elems.iter().enumerate() {
            let _ = writeln!(self.out, "{i:<10} {:<10} {:<10} {:<10} {:<10}", e.semval, e.ncount, e.zcount, e.pid);
        }
        self.out.push('\n');
        Ok(())
    }

    /// `--json`: the same facts, typed.
    fn json(&mut self, id: Option<i32>, (msg, shm, sem): (bool, bool, bool), format: Format) -> Result<Value, String> {
        let (msg, shm, sem) = if !msg && !shm && !sem { (true, true, true) } else { (msg, shm, sem) };
        let mut top = serde_json::Map::new();
        match format {
            Format::Limits => {
                let l = self.limits()?;
                if msg {
                    top.insert("msg".into(), json!({"msgmni": l.msgmni, "msgmax": l.msgmax, "msgmnb": l.msgmnb}));
                }
                if shm {
                    top.insert(
                        "shm".into(),
                        json!({"shmmni": l.shmmni, "shmmax": l.shmmax, "shmall": l.shmall, "shmmin": l.shmmin}),
                    );
                }
                if sem {
                    top.insert(
                        "sem".into(),
                        json!({"semmni": l.semmni, "semmsl": l.semmsl, "semmns": l.semmns, "semopm": l.semopm, "semvmx": l.semvmx}),
                    );
                }
                return Ok(Value::Object(top));
            }
            Format::Status => {
                if msg {
                    let i = ipcinfo::msg_info(self.c).map_err(daemon_err)?;
                    top.insert(
                        "msg".into(),
                        json!({"allocated_queues": i.msgpool, "used_headers": i.msgmap, "used_space": i.msgtql}),
                    );
                }
                if shm {
                    let (_, i) = self.c.shm_info().map_err(daemon_err)?;
                    top.insert(
                        "shm".into(),
                        json!({"segments_allocated": i.used_ids, "pages_allocated": i.shm_tot,
                               "pages_resident": i.shm_rss, "pages_swapped": i.shm_swp}),
                    );
                }
                if sem {
                    let (used, sems) = ipcinfo::sem_info(self.c).map_err(daemon_err)?;
                    top.insert("sem".into(), json!({"used_arrays": used, "allocated_semaphores": sems}));
                }
                return Ok(Value::Object(top));
            }
            _ => {}
        }
        if msg {
            let rows = ipcinfo::msg_rows(self.c).map_err(daemon_err)?;
            let mut v = Vec::new();
            for r in rows.iter().filter(|r| id.is_none_or(|i| i == r.id)) {
                let owner = self.names.user(r.uid);
                let mut o = json!({
                    "key": r.key, "msqid": r.id, "owner": owner, "perms": r.mode & 0o777, "mode": r.mode,
                    "used_bytes": r.cbytes, "messages": r.qnum, "uid": r.uid, "gid": r.gid, "cuid": r.cuid,
                    "cgid": r.cgid, "lspid": r.lspid, "lrpid": r.lrpid, "stime": r.stime, "rtime": r.rtime,
                    "ctime": r.ctime,
                });
                if id.is_some() {
                    o["qbytes"] = json!(ipcinfo::msg_qbytes(self.c, r.id));
                }
                v.push(o);
            }
            top.insert("msg".into(), Value::Array(v));
        }
        if shm {
            let rows = ipcinfo::shm_rows(self.c).map_err(daemon_err)?;
            let mut v = Vec::new();
            for r in rows.iter().filter(|r| id.is_none_or(|i| i == r.id)) {
                let owner = self.names.user(r.uid);
                v.push(json!({
                    "key": r.key, "shmid": r.id, "owner": owner, "perms": r.mode & 0o777, "mode": r.mode,
                    "bytes": r.segsz, "nattch": r.nattch, "dest": r.mode & SHM_DEST != 0,
                    "locked": r.mode & SHM_LOCKED != 0, "uid": r.uid, "gid": r.gid, "cuid": r.cuid, "cgid": r.cgid,
                    "cpid": r.cpid, "lpid": r.lpid, "atime": r.atime, "dtime": r.dtime, "ctime": r.ctime,
                }));
            }
            top.insert("shm".into(), Value::Array(v));
        }
        if sem {
            let rows = ipcinfo::sem_rows(self.c).map_err(daemon_err)?;
            let mut v = Vec::new();
            for r in rows.iter().filter(|r| id.is_none_or(|i| i == r.id)) {
                let owner = self.names.user(r.uid);
                let mut o = json!({
                    "key": r.key, "semid": r.id, "owner": owner, "perms": r.mode & 0o777, "mode": r.mode,
                    "nsems": r.nsems, "uid": r.uid, "gid": r.gid, "cuid": r.cuid, "cgid": r.cgid,
                    "otime": r.otime, "ctime": r.ctime,
                });
                if id.is_some() {
                    let elems = ipcinfo::sem_elements(self.c, r)?;
                    o["elements"] = elems
                        .iter()
                        .map(|e| json!({"value": e.semval, "ncount": e.ncount, "zcount": e.zcount, "pid": e.pid}))
                        .collect();
                }
                v.push(o);
            }
            top.insert("sem".into(), Value::Array(v));
        }
        Ok(Value::Object(top))
    }
}
