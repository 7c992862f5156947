//! Facts about the test machine's privileges: read, never assumed.

use std::fs;

/// The effective capability set of this process (`CapEff` in
/// `/proc/self/status`), as a bit mask; 0 if it cannot be read.
pub fn effective_caps() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0)
}

/// Whether this process has capability number `cap` in its effective set.
pub fn has_cap(cap: u32) -> bool {
    cap < 64 && effective_caps() & (1u64 << cap) != 0
}

/// Why the kernel oracle cannot run here, or `None` if it can: it needs
/// root with CAP_SYS_ADMIN (for `unshare(CLONE_NEWIPC)`) and CAP_SETUID/
/// CAP_SETGID (for the test identities).
pub fn oracle_unavailable() -> Option<String> {
    let euid = fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|s| s.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_default();
    if euid != "0" {
        return Some(format!(
            "not root (euid {euid}); the kernel oracle needs root for unshare(CLONE_NEWIPC) and setuid"
        ));
    }
    for (cap, name) in [(21, "CAP_SYS_ADMIN"), (6, "CAP_SETGID"), (7, "CAP_SETUID")] {
        if !has_cap(cap) {
            return Some(format!("root lacks {name}"));
        }
    }
    None
}
