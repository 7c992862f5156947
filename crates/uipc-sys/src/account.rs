//! What the operator's tools (`uipc ipcs`, `uipc lsipc`) need from the C
//! library to print exactly what util-linux prints: user and group names
//! through NSS (`getpwuid_r`, `getgrgid_r`), broken-down local time
//! (`localtime_r`) and the page size.
//!
//! # References
//!  - [getpwuid_r(3)], [getgrgid_r(3)], [localtime_r(3)], [sysconf(3)]
//!
//! [getpwuid_r(3)]: https://man7.org/linux/man-pages/man3/getpwuid_r.3.html
//! [getgrgid_r(3)]: https://man7.org/linux/man-pages/man3/getgrgid_r.3.html
//! [localtime_r(3)]: https://man7.org/linux/man-pages/man3/localtime_r.3.html
//! [sysconf(3)]: https://man7.org/linux/man-pages/man3/sysconf.3.html

use std::ffi::CStr;

/// Largest buffer tried for one passwd or group entry (big groups need room).
const MAX_BUF: usize = 1 << 20;

/// `getpwuid_r(uid)` — the user name NSS gives `uid`, or `None` when it has
/// no entry (util-linux then prints the number).
#[doc(alias = "getpwuid")]
pub fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: all-zero bytes are a valid `struct passwd` (null pointers, zero ids).
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut out: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: `pw`, `buf` (with its true length) and `out` outlive the
        // call; glibc writes only inside them.
        let rc = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut out) };
        if rc == libc::ERANGE && buf.len() < MAX_BUF {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 || out.is_null() || pw.pw_name.is_null() {
            return None;
        }
        // SAFETY: on success `pw_name` points to a NUL-terminated string in `buf`.
        return Some(unsafe { CStr::from_ptr(pw.pw_name) }.to_string_lossy().into_owned());
    }
}

/// `getgrgid_r(gid)` — the group name NSS gives `gid`, or `None`.
#[doc(alias = "getgrgid")]
pub fn group_name(gid: u32) -> Option<String> {
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: all-zero bytes are a valid `struct group`.
        let mut gr: libc::group = unsafe { std::mem::zeroed() };
        let mut out: *mut libc::group = std::ptr::null_mut();
        // SAFETY: as in `user_name`.
        let rc = unsafe { libc::getgrgid_r(gid, &mut gr, buf.as_mut_ptr().cast(), buf.len(), &mut out) };
        if rc == libc::ERANGE && buf.len() < MAX_BUF {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 || out.is_null() || gr.gr_name.is_null() {
            return None;
        }
        // SAFETY: on success `gr_name` points to a NUL-terminated string in `buf`.
        return Some(unsafe { CStr::from_ptr(gr.gr_name) }.to_string_lossy().into_owned());
    }
}

/// A broken-down local time, as `struct tm` holds it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LocalTime {
    /// Seconds, 0..=60.
    pub sec: i32,
    /// Minutes, 0..=59.
    pub min: i32,
    /// Hours, 0..=23.
    pub hour: i32,
    /// Day of the month, 1..=31.
    pub mday: i32,
    /// Month, 0..=11.
    pub mon: i32,
    /// Years since 1900.
    pub year: i32,
    /// Day of the week, 0 (Sunday)..=6.
    pub wday: i32,
    /// Day of the year, 0..=365.
    pub yday: i32,
}

/// `localtime_r(t)` — `t` (seconds since the epoch) in the local time zone
/// (`TZ`, `/etc/localtime`), as `ctime(3)` and `strftime(3)` see it.
/// `None` if the C library cannot represent it.
#[doc(alias = "localtime")]
pub fn local_time(t: i64) -> Option<LocalTime> {
    let t = libc::time_t::try_from(t).ok()?;
    // SAFETY: `tzset` only reads the environment and the zone files.
    unsafe { tzset() };
    // SAFETY: all-zero bytes are a valid `struct tm`.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: `t` and `tm` outlive the call.
    let r = unsafe { libc::localtime_r(&t, &mut tm) };
    if r.is_null() {
        return None;
    }
    Some(LocalTime {
        sec: tm.tm_sec,
        min: tm.tm_min,
        hour: tm.tm_hour,
        mday: tm.tm_mday,
        mon: tm.tm_mon,
        year: tm.tm_year,
        wday: tm.tm_wday,
        yday: tm.tm_yday,
    })
}

extern "C" {
    fn tzset();
}

/// `sysconf(_SC_PAGESIZE)` — what `getpagesize()` returns.
pub fn page_size() -> u64 {
    // SAFETY: `sysconf` has no memory effects.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(n).unwrap_or(4096)
}
