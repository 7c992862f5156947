//! The C return convention: the one place in uipc that sets C `errno`
//! (STYLE rule 3).
//!
//! Each helper turns a `Result<T, Errno>` into what the libc function
//! returns: the value on success; on failure `errno` is set and the
//! function's error value (`-1`, or `(void *) -1` for `shmat`) returned.

use std::ffi::c_void;

use uipc_abi::Errno;

/// Sets the calling thread's `errno`.
fn set_errno(e: Errno) {
    // SAFETY: `__errno_location` returns the calling thread's errno slot,
    // valid and writable for the thread's lifetime; no Rust reference to
    // it exists.
    unsafe { *libc::__errno_location() = e.raw() };
}

/// `int` results (`shmget`, `shmdt`, `shmctl`): the value, or `-1` with `errno` set.
pub(crate) fn int(r: Result<libc::c_int, Errno>) -> libc::c_int {
    match r {
        Ok(v) => v,
        Err(e) => {
            set_errno(e);
            -1
        }
    }
}

/// `ssize_t` results (`msgrcv`, `read`, `mq_receive`): the value, or `-1` with `errno` set.
pub(crate) fn ssize(r: Result<libc::ssize_t, Errno>) -> libc::ssize_t {
    match r {
        Ok(v) => v,
        Err(e) => {
            set_errno(e);
            -1
        }
    }
}

/// `shmat`'s result: the address, or `(void *) -1` with `errno` set.
pub(crate) fn addr(r: Result<u64, Errno>) -> *mut c_void {
    let failed = usize::MAX as *mut c_void;
    match r.and_then(|a| usize::try_from(a).map_err(|_| Errno::ENOMEM)) {
        // The integer is the address the segment is mapped at: the caller
        // gets it as the pointer `shmat` returns.
        Ok(a) => a as *mut c_void,
        Err(e) => {
            set_errno(e);
            failed
        }
    }
}

/// Pointer results (`fopen`): the pointer, or null with `errno` set.
pub(crate) fn ptr<T>(r: Result<*mut T, Errno>) -> *mut T {
    match r {
        Ok(p) => p,
        Err(e) => {
            set_errno(e);
            std::ptr::null_mut()
        }
    }
}
