//! `uipc ipcrm` — util-linux 2.38's `ipcrm(1)` for a uipc namespace:
//! removes segments and semaphore sets by id (`-m`, `-s`) or key (`-M`,
//! `-S`), everything (`-a[=shm|msg|sem]`), or by the old syntax
//! (`ipcrm shm|msg|sem ID...`), with util-linux's messages and exit status
//! (1 if anything failed). From util-linux 2.41: POSIX shared memory and
//! semaphores and message queues by name (`--posix-shmem NAME`,
//! `--posix-semaphore NAME`, `--posix-mqueue NAME`) and in `-a`
//! (`-a=pshm`, `-a=psem`, `-a=pmsg`, and all of them with `-a`).
//!
//! # Compatibility
//! uipc has no System V message queues: `-q ID` says "invalid id (ID)" and
//! `-Q KEY` "invalid key (KEY)", as for a namespace without queues.
//!
//! # References
//!  - [ipcrm(1)](https://man7.org/linux/man-pages/man1/ipcrm.1.html)

use std::process::ExitCode;

use uipc_client::{Client, Errno, SemCtlArg};

use crate::getopt::{self, HasArg, Opt};
use crate::ipcinfo::{strerror, Prog, Target};
use crate::ipcs::strtos32;

const OPTS: &[Opt] = &[
    Opt::new("m", 'm', "shmem-id", HasArg::Required),
    Opt::new("M", 'M', "shmem-key", HasArg::Required),
    Opt::new("q", 'q', "queue-id", HasArg::Required),
    Opt::new("Q", 'Q', "queue-key", HasArg::Required),
    Opt::new("s", 's', "semaphore-id", HasArg::Required),
    Opt::new("S", 'S', "semaphore-key", HasArg::Required),
    Opt::long("pshm", "posix-shmem", HasArg::Required),
    Opt::long("psem", "posix-semaphore", HasArg::Required),
    Opt::long("pmsg", "posix-mqueue", HasArg::Required),
    Opt::new("a", 'a', "all", HasArg::Optional),
    Opt::new("v", 'v', "verbose", HasArg::No),
    Opt::new("V", 'V', "version", HasArg::No),
    Opt::new("h", 'h', "help", HasArg::No),
    Opt::long("ns", "ns", HasArg::Required),
    Opt::long("socket", "socket", HasArg::Required),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Shm,
    Msg,
    Sem,
    /// POSIX shared memory.
    Pshm,
    /// POSIX semaphores.
    Psem,
    /// POSIX message queues.
    Pmsg,
    All,
}

fn usage(p: &Prog) -> String {
    let n = &p.short;
    format!(
        "\nUsage:\n {n} [options]\n {n} shm|msg|sem <id>...\n\nRemove certain IPC resources.\n\n\
Options:\n -m, --shmem-id <id>        remove shared memory segment by id\n -M, --shmem-key <key>      remove shared memory segment by key\n -q, --queue-id <id>        remove message queue by id\n -Q, --queue-key <key>      remove message queue by key\n -s, --semaphore-id <id>    remove semaphore by id\n -S, --semaphore-key <key>  remove semaphore by key\n     --posix-shmem <name>   remove POSIX shared memory segment by name\n     --posix-mqueue <name>  remove POSIX message queue by name\n     --posix-semaphore <name> remove POSIX semaphore by name\n -a, --all[=shm|pshm|msg|pmsg|sem|psem] remove all (in the specified category)\n -v, --verbose              explain what is being done\n\n\
 -h, --help                 display this help\n -V, --version              display version\n\n\
uipc options:\n     --ns <name>            the uipc namespace [default: $UIPC_NAMESPACE, else default]\n     --socket <path>        the daemon's socket\n\n\
For more details see ipcrm(1).\n"
    )
}

/// A fatal error (util-linux `err()`/`errx()`): the message, then exit 1.
struct Fatal(String);

struct Rm<'a> {
    prog: &'a Prog,
    client: Option<Client>,
    target: Target,
    verbose: bool,
}

impl Rm<'_> {
    fn client(&mut self) -> Result<&Client, Fatal> {
        if self.client.is_none() {
            self.client = Some(self.target.connect().map_err(Fatal)?);
        }
        self.client.as_ref().ok_or_else(|| Fatal("no daemon".into()))
    }

    /// `remove_id()`: `Ok(true)` if it failed with a reported error.
    fn remove_id(&mut self, kind: Kind, iskey: bool, id: i32) -> Result<bool, Fatal> {
        let verbose = self.verbose;
        let c = self.client()?;
        let r = match kind {
            Kind::Shm => {
                if verbose {
                    println!("removing shared memory segment id `{id}'");
                }
                c.shmctl(id, uipc_abi::IPC_RMID, None).map(drop)
            }
            Kind::Msg => {
                if verbose {
                    println!("removing message queue id `{id}'");
                }
                c.msgctl(id, uipc_abi::IPC_RMID, None).map(drop)
            }
            Kind::Sem | Kind::All | Kind::Pshm | Kind::Psem | Kind::Pmsg => {
                if verbose {
                    println!("removing semaphore id `{id}'");
                }
                c.semctl(id, 0, uipc_abi::IPC_RMID, SemCtlArg::None).map(drop)
            }
        };
        let Err(e) = r else { return Ok(false) };
        let what = match e {
            Errno::EACCES | Errno::EPERM => "permission denied for",
            Errno::EINVAL => "invalid",
            Errno::EIDRM => "already removed",
            e => return Err(Fatal(format!("{} failed: {}", if iskey { "key" } else { "id" }, strerror(e)))),
        };
        self.prog.warnx(&format!("{what} {} ({id})", if iskey { "key" } else { "id" }));
        Ok(true)
    }

    /// `remove_name()` (util-linux 2.41): `shm_unlink` or `sem_unlink`;
    /// `Ok(true)` if it failed with a reported error.
    fn remove_name(&mut self, kind: Kind, name: &str) -> Result<bool, Fatal> {
        let verbose = self.verbose;
        let c = self.client()?;
        let r = if kind == Kind::Pshm {
            if verbose {
                println!("removing POSIX shared memory `{name}'");
            }
            c.shm_unlink(name)
        } else if kind == Kind::Pmsg {
            if verbose {
                println!("removing POSIX message queue `{name}'");
            }
            // glibc's mq_unlink: a name without its leading '/' is EINVAL.
            match name.strip_prefix('/') {
                Some(rest) => c.mq_unlink(rest.as_bytes()),
                None => Err(Errno::EINVAL),
            }
        } else {
            if verbose {
                println!("removing POSIX semaphore `{name}'");
            }
            c.sem_unlink(name)
        };
        let Err(e) = r else { return Ok(false) };
        let what = match e {
            Errno::EACCES | Errno::EPERM => format!("permission denied for name `{name}'"),
            Errno::ENOENT => format!("name `{name}' not found"),
            Errno::ENAMETOOLONG => format!("name `{name}' too long"),
            e => return Err(Fatal(format!("name failed: {}", strerror(e)))),
        };
        self.prog.warnx(&what);
        Ok(true)
    }

    /// The names `-a` walks, as util-linux 2.41's `posix_ipc_shm_get_info()`
    /// and `posix_ipc_sem_get_info()` list `/dev/shm`: objects not named
    /// `sem.*`, or the semaphores (without `sem.`) the caller can open.
    fn posix_names(&mut self, kind: Kind) -> Result<Vec<String>, Fatal> {
        let c = self.client()?;
        if kind == Kind::Pmsg {
            // posix_ipc_msg_get_info(): the queues of the mqueue directory, as "/NAME".
            let list = c.mq_list().map_err(|e| Fatal(format!("cannot open /dev/mqueue: {}", strerror(e))))?;
            return Ok(list.into_iter().map(|q| format!("/{}", String::from_utf8_lossy(&q.name))).collect());
        }
        let list = c.pshm_list().map_err(|e| Fatal(format!("cannot open /dev/shm: {}", strerror(e))))?;
        let mut names = Vec::new();
        for o in list {
            let name = String::from_utf8_lossy(&o.name).into_owned();
            match (kind, name.strip_prefix("sem.")) {
                (Kind::Pshm, None) => names.push(name),
                // sem_open(name, 0): only semaphores the caller may open.
                (Kind::Psem, Some(sem)) if c.sem_open_fd(sem, 0, 0, 0, 0).is_ok() => names.push(sem.to_owned()),
                _ => {}
            }
        }
        Ok(names)
    }

    /// `key_to_id()`: the id, or `None` after a warning.
    fn key_to_id(&mut self, kind: Kind, s: &str) -> Result<Option<i32>, Fatal> {
        let key = strtokey(s).map_err(Fatal)?;
        if key == 0 {
            self.prog.warnx(&format!("illegal key ({s})"));
            return Ok(None);
        }
        let c = self.client()?;
        let r = match kind {
            Kind::Shm => c.shmget(key, 0, 0).map(|i| i.0),
            Kind::Sem => c.semget(key, 0, 0).map(|i| i.0),
            _ => c.msgget(key, 0).map(|i| i.0),
        };
        match r {
            Ok(id) => Ok(Some(id)),
            Err(e) => {
                let what = match e {
                    Errno::EACCES => "permission denied for key",
                    Errno::EIDRM => "already removed key",
                    Errno::ENOENT => "invalid key",
                    e => return Err(Fatal(format!("key failed: {}", strerror(e)))),
                };
                self.prog.warnx(&format!("{what} ({s})"));
                Ok(None)
            }
        }
    }

    /// `remove_all()`: every segment, POSIX shared memory object, set and
    /// POSIX semaphore, in util-linux 2.41's order.
    fn remove_all(&mut self, kind: Kind) -> Result<bool, Fatal> {
        let mut failed = false;
        let posix = |this: &mut Self, want: Kind, failed: &mut bool| -> Result<(), Fatal> {
            if matches!(kind, Kind::All) || kind == want {
                for name in this.posix_names(want)? {
                    // util-linux 2.41 says it here and again in remove_name().
                    if this.verbose {
                        match want {
                            Kind::Pshm => println!("removing POSIX shared memory `{name}'"),
                            Kind::Pmsg => println!("removing POSIX message queue `{name}'"),
                            _ => println!("removing POSIX semaphore `{name}'"),
                        }
                    }
                    *failed |= this.remove_name(want, &name)?;
                }
            }
            Ok(())
        };
        if matches!(kind, Kind::Shm | Kind::All) {
            let c = self.client()?;
            let (max, _) = c.shm_info().map_err(|_| Fatal("kernel not configured for shared memory".into()))?;
            let mut ids = Vec::new();
            for i in 0..=max {
                if let Ok((id, _)) = c.shmctl(i32::try_from(i).unwrap_or(i32::MAX), uipc_abi::SHM_STAT, None) {
                    ids.push(id);
                }
            }
            for id in ids {
                failed |= self.remove_id(Kind::Shm, false, i32::try_from(id).unwrap_or(-1))?;
            }
        }
        posix(self, Kind::Pshm, &mut failed)?;
        if matches!(kind, Kind::Sem | Kind::All) {
            let c = self.client()?;
            let (max, _) = c
                .semctl(0, 0, uipc_abi::SEM_INFO, SemCtlArg::None)
                .map_err(|_| Fatal("kernel not configured for semaphores".into()))?;
            let mut ids = Vec::new();
            for i in 0..=max {
                if let Ok((id, _)) =
                    c.semctl(i32::try_from(i).unwrap_or(i32::MAX), 0, uipc_abi::SEM_STAT, SemCtlArg::None)
                {
                    ids.push(id);
                }
            }
            for id in ids {
                failed |= self.remove_id(Kind::Sem, false, i32::try_from(id).unwrap_or(-1))?;
            }
        }
        posix(self, Kind::Psem, &mut failed)?;
        if matches!(kind, Kind::Msg | Kind::All) {
            let c = self.client()?;
            let (max, _) = c
                .msgctl(0, uipc_abi::MSG_INFO, None)
                .map_err(|_| Fatal("kernel not configured for message queues".into()))?;
            let mut ids = Vec::new();
            for i in 0..=max {
                if let Ok((id, _)) = c.msgctl(i32::try_from(i).unwrap_or(i32::MAX), uipc_abi::MSG_STAT, None) {
                    ids.push(id);
                }
            }
            for id in ids {
                failed |= self.remove_id(Kind::Msg, false, i32::try_from(id).unwrap_or(-1))?;
            }
        }
        posix(self, Kind::Pmsg, &mut failed)?;
        Ok(failed)
    }
}

/// `strtoul(s, &end, 0)` as util-linux's `strtokey()` takes it; the key
/// keeps the low 32 bits, as the `key_t` it is stored in.
fn strtokey(s: &str) -> Result<i32, String> {
    let bad = || format!("failed to parse argument: '{s}'");
    let t = s.trim_start();
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (radix, body) = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        (16, h)
    } else if t.len() > 1 && t.starts_with('0') {
        (8, &t[1..])
    } else {
        (10, t)
    };
    if s.is_empty() || body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return Err(bad());
    }
    let v = u64::from_str_radix(body, radix).map_err(|_| format!("{}: Numerical result out of range", bad()))?;
    let v = if neg { v.wrapping_neg() } else { v };
    Ok(i32::from_ne_bytes(u32::try_from(v & 0xffff_ffff).unwrap_or(0).to_ne_bytes()))
}

/// Runs `ipcrm` with `args`.
pub fn main(prog: &Prog, args: &[String]) -> ExitCode {
    match run(prog, args) {
        Ok(code) => code,
        Err(Fatal(m)) => prog.fail(&m),
    }
}

fn run(prog: &Prog, args: &[String]) -> Result<ExitCode, Fatal> {
    // `--ns`/`--socket` may precede the old syntax (`ipcrm --ns x shm 1`).
    let mut target = Target::default();
    let mut rest: Vec<String> = Vec::new();
    let mut it = args.iter().peekable();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--ns" | "--socket" if rest.is_empty() => {
                let Some(v) = it.next() else { break };
                if a == "--ns" {
                    target.ns = Some(v.clone());
                } else {
                    target.socket = Some(v.into());
                }
            }
            _ if rest.is_empty() && a.starts_with("--ns=") => target.ns = Some(a["--ns=".len()..].to_owned()),
            _ if rest.is_empty() && a.starts_with("--socket=") => {
                target.socket = Some(a["--socket=".len()..].into());
            }
            _ => {
                rest.push(a.clone());
                rest.extend(it.by_ref().cloned());
            }
        }
    }
    let mut rm = Rm { prog, client: None, target, verbose: false };
    if rest.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(kind) = match rest[0].as_str() {
        "shm" => Some(Kind::Shm),
        "msg" => Some(Kind::Msg),
        "sem" => Some(Kind::Sem),
        _ => None,
    } {
        if rest.len() < 2 {
            prog.warnx("not enough arguments");
            eprintln!("Try '{} --help' for more information.", prog.short);
            return Ok(ExitCode::FAILURE);
        }
        let mut errors = 0;
        for a in &rest[1..] {
            match a.parse::<i64>() {
                Ok(v) => {
                    let id = i32::from_ne_bytes(u32::try_from(v & 0xffff_ffff).unwrap_or(0).to_ne_bytes());
                    if rm.remove_id(kind, false, id)? {
                        errors += 1;
                    }
                }
                Err(_) => {
                    prog.warnx(&format!("invalid id: {a}"));
                    errors += 1;
                }
            }
        }
        if errors > 0 {
            return Ok(ExitCode::FAILURE);
        }
        println!("resource(s) deleted");
        return Ok(ExitCode::SUCCESS);
    }
    let parsed = match getopt::parse(&rest, OPTS) {
        Ok(p) => p,
        Err(e) => return Ok(prog.usage_error(&e)),
    };
    for (k, v) in &parsed.opts {
        match (*k, v) {
            ("ns", Some(v)) => rm.target.ns = Some(v.clone()),
            ("socket", Some(v)) => rm.target.socket = Some(v.into()),
            _ => {}
        }
    }
    let mut failures = 0;
    let mut all: Option<Kind> = None;
    for (k, v) in parsed.opts {
        let v = v.unwrap_or_default();
        let by_id = |kind| (kind, false);
        let (kind, iskey) = match k {
            "m" => by_id(Kind::Shm),
            "q" => by_id(Kind::Msg),
            "s" => by_id(Kind::Sem),
            "M" => (Kind::Shm, true),
            "Q" => (Kind::Msg, true),
            "S" => (Kind::Sem, true),
            "a" => {
                all = Some(match v.as_str() {
                    "" => Kind::All,
                    "shm" => Kind::Shm,
                    "msg" => Kind::Msg,
                    "sem" => Kind::Sem,
                    "pshm" => Kind::Pshm,
                    "psem" => Kind::Psem,
                    "pmsg" => Kind::Pmsg,
                    other => return Err(Fatal(format!("unknown argument: {other}"))),
                });
                continue;
            }
            "v" => {
                rm.verbose = true;
                continue;
            }
            "pshm" | "psem" | "pmsg" => {
                let kind = match k {
                    "pshm" => Kind::Pshm,
                    "pmsg" => Kind::Pmsg,
                    _ => Kind::Psem,
                };
                if rm.remove_name(kind, &v)? {
                    failures += 1;
                }
                continue;
            }
            "h" => {
                print!("{}", usage(prog));
                return Ok(ExitCode::SUCCESS);
            }
            "V" => return Ok(prog.version()),
            _ => continue,
        };
        let id = if iskey {
            match rm.key_to_id(kind, &v)? {
                Some(id) => id,
                None => {
                    failures += 1;
                    continue;
                }
            }
        } else {
            strtos32(&v, "failed to parse argument").map_err(Fatal)?
        };
        if rm.remove_id(kind, iskey, id)? {
            failures += 1;
        }
    }
    if let Some(kind) = all {
        if rm.remove_all(kind)? {
            failures += 1;
        }
    }
    if let Some(extra) = parsed.operands.first() {
        prog.warnx(&format!("unknown argument: {extra}"));
        eprintln!("Try '{} --help' for more information.", prog.short);
        return Ok(ExitCode::FAILURE);
    }
    Ok(if failures == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
