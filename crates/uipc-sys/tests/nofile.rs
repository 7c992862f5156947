//! `raise_nofile_limit` (its own test binary: it changes the process's
//! limit): a lowered soft limit comes back up to the hard one.
#![allow(clippy::unwrap_used)]

fn limits() -> (u64, u64) {
    let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: a live rlimit the kernel fills in.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) }, 0);
    (l.rlim_cur, l.rlim_max)
}

#[test]
fn the_soft_limit_is_raised_to_the_hard_one() {
    let (_, hard) = limits();
    let low = libc::rlimit { rlim_cur: 64.min(hard), rlim_max: hard };
    // SAFETY: a live rlimit the kernel reads.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &low) }, 0);
    assert_eq!(limits().0, 64.min(hard));
    assert_eq!(uipc_sys::proc::raise_nofile_limit().unwrap(), hard);
    assert_eq!(limits(), (hard, hard));
}
