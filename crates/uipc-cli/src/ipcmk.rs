//! `uipc ipcmk` — util-linux 2.38's `ipcmk(1)` for a uipc namespace:
//! creates a segment (`-M size`), a semaphore set (`-S nsems`) or a message
//! queue (`-Q`) with a random key and mode `-p` (default 0644), and prints
//! "Shared memory id: N" as util-linux does. From util-linux 2.41: a POSIX
//! shared memory object (`-m size -n NAME`: `shm_open(NAME, O_RDWR |
//! O_CREAT, mode)` then `ftruncate`) and a POSIX semaphore (`-s -n NAME`:
//! `sem_open(NAME, O_CREAT, mode, 0)`) and a POSIX message queue (`-q -n
//! NAME`: `mq_open(NAME, O_RDWR | O_CREAT, mode, NULL)`), the mode less
//! the umask.
//!
//! # Compatibility
//!
//! # References
//!  - [ipcmk(1)](https://man7.org/linux/man-pages/man1/ipcmk.1.html)

use std::hash::{BuildHasher, Hasher};
use std::process::ExitCode;

use crate::getopt::{self, HasArg, Opt};
use crate::ipcinfo::{strerror, Prog, Target};
use crate::ipcs::strtos32;

const OPTS: &[Opt] = &[
    Opt::new("M", 'M', "shmem", HasArg::Required),
    Opt::new("m", 'm', "posix-shmem", HasArg::Required),
    Opt::new("S", 'S', "semaphore", HasArg::Required),
    Opt::new("s", 's', "posix-semaphore", HasArg::No),
    Opt::new("n", 'n', "name", HasArg::Required),
    Opt::new("Q", 'Q', "queue", HasArg::No),
    Opt::new("q", 'q', "posix-mqueue", HasArg::No),
    Opt::new("p", 'p', "mode", HasArg::Required),
    Opt::new("V", 'V', "version", HasArg::No),
    Opt::new("h", 'h', "help", HasArg::No),
    Opt::long("ns", "ns", HasArg::Required),
    Opt::long("socket", "socket", HasArg::Required),
];

fn usage(p: &Prog) -> String {
    format!(
        "\nUsage:\n {} [options]\n\nCreate various IPC resources.\n\n\
Options:\n -M, --shmem <size>       create shared memory segment of size <size>\n -m, --posix-shmem <size> create POSIX shared memory segment of size <size>\n -S, --semaphore <number> create semaphore array with <number> elements\n -s, --posix-semaphore    create POSIX semaphore\n -Q, --queue              create message queue\n -q, --posix-mqueue       create POSIX message queue\n -p, --mode <mode>        permission for the resource (default is 0644)\n -n, --name <name>        name of the POSIX resource\n\n\
 -h, --help               display this help\n -V, --version            display version\n\n\
uipc options:\n     --ns <name>          the uipc namespace [default: $UIPC_NAMESPACE, else default]\n     --socket <path>      the daemon's socket\n\n\
Arguments:\n <size> arguments may be followed by the suffixes for\n   GiB, TiB, PiB, EiB, ZiB, and YiB (the \"iB\" is optional)\n\n\
For more details see ipcmk(1).\n",
        p.short
    )
}

/// util-linux `parse_size()`: a number (decimal, 0x hex or 0 octal) with an
/// optional fraction and a K/M/G/T/P/E suffix (`KiB`, `K`: 1024; `KB`: 1000).
///
/// # Errors
/// `EINVAL` or `ERANGE`, as the errno util-linux would report.
pub fn parse_size(s: &str) -> Result<u64, uipc_client::Errno> {
    use uipc_client::Errno;
    let t = s.trim_start();
    if t.is_empty() || t.starts_with('-') {
        return Err(Errno::EINVAL);
    }
    let t = t.strip_prefix('+').unwrap_or(t);
    let (radix, body) = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        (16, h)
    } else if t.len() > 1 && t.starts_with('0') {
        (8, &t[1..])
    } else {
        (10, t)
    };
    let end = body.find(|c: char| !c.is_digit(radix)).unwrap_or(body.len());
    if end == 0 && radix == 10 {
        return Err(Errno::EINVAL);
    }
    let mut num = if end == 0 { 0 } else { u64::from_str_radix(&body[..end], radix).map_err(|_| Errno::ERANGE)? };
    let mut rest = &body[end..];
    let mut frac: Option<&str> = None;
    if let Some(r) = rest.strip_prefix('.') {
        let fe = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
        frac = Some(&r[..fe]);
        rest = &r[fe..];
    }
    if rest.is_empty() {
        return if frac.is_some() { Err(Errno::EINVAL) } else { Ok(num) };
    }
    let mut chars = rest.chars();
    let letter = chars.next().ok_or(Errno::EINVAL)?;
    let power = "KMGTPEZY".find(letter.to_ascii_uppercase()).ok_or(Errno::EINVAL)?;
    let base: u64 = match chars.as_str() {
        "" | "iB" | "ib" => 1024,
        "B" | "b" => 1000,
        _ => return Err(Errno::EINVAL),
    };
    let mut mult: u64 = 1;
    for _ in 0..=power {
        mult = mult.checked_mul(base).ok_or(Errno::ERANGE)?;
    }
    num = num.checked_mul(mult).ok_or(Errno::ERANGE)?;
    if let Some(f) = frac.filter(|f| !f.is_empty()) {
        // The fraction of one unit, truncated to bytes.
        let digits: u32 = u32::try_from(f.len().min(18)).unwrap_or(18);
        let fv: u128 = f[..usize::try_from(digits).unwrap_or(0)].parse().unwrap_or(0);
        let add = fv * u128::from(mult) / 10u128.pow(digits);
        num = num.checked_add(u64::try_from(add).map_err(|_| Errno::ERANGE)?).ok_or(Errno::ERANGE)?;
    }
    Ok(num)
}

/// A random key, as util-linux draws one (`random_get_bytes`).
fn random_key() -> i32 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.write_u32(std::process::id());
    i32::from_ne_bytes(h.finish().to_ne_bytes()[..4].try_into().unwrap_or([1, 0, 0, 0]))
}

/// Runs `ipcmk` with `args`.
pub fn main(prog: &Prog, args: &[String]) -> ExitCode {
    let parsed = match getopt::parse(args, OPTS) {
        Ok(p) => p,
        Err(e) => return prog.usage_error(&e),
    };
    let mut size = None;
    let mut psize = None;
    let mut psem = false;
    let mut name: Option<String> = None;
    let mut nsems = None;
    let mut queue = false;
    let mut pqueue = false;
    let mut mode: i32 = 0o644;
    let mut target = Target::default();
    for (k, v) in parsed.opts {
        let v = v.unwrap_or_default();
        match k {
            "M" => match parse_size(&v) {
                Ok(n) => size = Some(n),
                Err(e) => return prog.fail(&format!("failed to parse size: '{v}': {}", strerror(e))),
            },
            "m" => match parse_size(&v) {
                Ok(n) => psize = Some(n),
                Err(e) => return prog.fail(&format!("failed to parse size: '{v}': {}", strerror(e))),
            },
            "s" => psem = true,
            "n" => name = Some(v),
            "S" => match strtos32(&v, "failed to parse elements") {
                Ok(n) => nsems = Some(n),
                Err(m) => return prog.fail(&m),
            },
            "Q" => queue = true,
            "q" => pqueue = true,
            "p" => {
                // strtoul(optarg, &end, 8) with the whole argument required;
                // err(3) then reports whatever errno the parse left.
                if v.is_empty() || !v.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                    return prog.fail("failed to parse mode: Success");
                }
                match u64::from_str_radix(&v, 8) {
                    // The int it is stored in keeps the low 32 bits.
                    Ok(m) => mode = i32::from_ne_bytes(u32::try_from(m & 0xffff_ffff).unwrap_or(0).to_ne_bytes()),
                    Err(_) => return prog.fail("failed to parse mode: Numerical result out of range"),
                }
            }
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
    if size.is_none() && nsems.is_none() && !queue && psize.is_none() && !psem && !pqueue {
        prog.warnx("bad usage");
        eprintln!("Try '{} --help' for more information.", prog.short);
        return ExitCode::FAILURE;
    }
    let posix_name = match (&name, psize.is_some() || psem || pqueue) {
        (Some(n), _) => n.clone(),
        (None, false) => String::new(),
        (None, true) => {
            prog.warnx("name is required for POSIX IPC");
            eprintln!("Try '{} --help' for more information.", prog.short);
            return ExitCode::FAILURE;
        }
    };
    let client = match target.connect() {
        Ok(c) => c,
        Err(m) => return prog.fail(&m),
    };
    let flags = mode | uipc_abi::IPC_CREAT;
    if let Some(size) = size {
        match client.shmget(random_key(), size, flags) {
            Ok(id) => println!("Shared memory id: {}", id.0),
            Err(e) => return prog.fail(&format!("create share memory failed: {}", strerror(e))),
        }
    }
    if let Some(psize) = psize {
        let mode = u32::from_ne_bytes(mode.to_ne_bytes());
        let made =
            client.shm_open(&posix_name, uipc_abi::pshm::O_RDWR | uipc_abi::pshm::O_CREAT, mode).and_then(|fd| {
                let file = std::fs::File::from(fd);
                file.set_len(psize).map_err(|e| uipc_client::Errno::from_raw(e.raw_os_error().unwrap_or(5)))
            });
        match made {
            Ok(()) => println!("POSIX shared memory name: {posix_name}"),
            Err(e) => return prog.fail(&format!("create POSIX shared memory failed: {}", strerror(e))),
        }
    }
    if queue {
        match client.msgget(random_key(), flags) {
            Ok(id) => println!("Message queue id: {}", id.0),
            Err(e) => return prog.fail(&format!("create message queue failed: {}", strerror(e))),
        }
    }
    if pqueue {
        // mq_open(name, O_RDWR | O_CREAT, mode, NULL) through glibc: the
        // name must start with '/', which the kernel does not see.
        let mode = u32::from_ne_bytes(mode.to_ne_bytes());
        let made = match posix_name.strip_prefix('/') {
            Some(rest) => client
                .mq_open(rest.as_bytes(), uipc_abi::pshm::O_RDWR | uipc_abi::pshm::O_CREAT, mode, None)
                .and_then(|(h, fd)| {
                    drop(fd);
                    client.mq_close(h)
                }),
            None => Err(uipc_client::Errno::EINVAL),
        };
        match made {
            Ok(()) => println!("POSIX message queue name: {posix_name}"),
            Err(e) => return prog.fail(&format!("create POSIX message queue failed: {}", strerror(e))),
        }
    }
    if let Some(n) = nsems {
        match client.semget(random_key(), n, flags) {
            Ok(id) => println!("Semaphore id: {}", id.0),
            Err(e) => return prog.fail(&format!("create semaphore failed: {}", strerror(e))),
        }
    }
    if psem {
        let mode = u32::from_ne_bytes(mode.to_ne_bytes());
        match client.sem_open(&posix_name, uipc_abi::pshm::O_CREAT, mode, 0) {
            Ok(sem) => {
                drop(sem);
                println!("POSIX semaphore name: {posix_name}");
            }
            Err(e) => return prog.fail(&format!("create POSIX semaphore failed: {}", strerror(e))),
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sizes_as_util_linux() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("1K").unwrap(), 1024);
        assert_eq!(parse_size("1KiB").unwrap(), 1024);
        assert_eq!(parse_size("1KB").unwrap(), 1000);
        assert_eq!(parse_size("1.5K").unwrap(), 1536);
        assert_eq!(parse_size("0x10").unwrap(), 16);
        assert_eq!(parse_size("abc").unwrap_err(), uipc_client::Errno::EINVAL);
        assert_eq!(parse_size("-1").unwrap_err(), uipc_client::Errno::EINVAL);
        assert_eq!(parse_size("1X").unwrap_err(), uipc_client::Errno::EINVAL);
        assert_eq!(parse_size("99999999E").unwrap_err(), uipc_client::Errno::ERANGE);
    }
}
