//! Shared mappings of real memfds and tmpfs files: a read-only reopen can
//! never be mapped or made writable, yet sees the writer's bytes;
//! `MAP_FIXED_NOREPLACE` refuses an occupied range, `MAP_FIXED` replaces
//! it; the fault-safe accessors give `EFAULT` instead of `SIGSEGV`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::path::Path;

use rustix::fs::OFlags;
use rustix::io::FdFlags;
use uipc_abi::Errno;
use uipc_core::Memory;
use uipc_sys::map::{map_shared, protect, read_at, reopen_read_only, unmap, write_at, Placement, Prot};
use uipc_sys::memfd::{DirMemory, MemfdMemory, SharedRegion};

const PAGE: u64 = 4096;

fn file_of(fd: BorrowedFd<'_>) -> File {
    File::from(fd.try_clone_to_owned().unwrap())
}

/// Maps `fd` where the kernel chooses.
fn map_anywhere(fd: BorrowedFd<'_>, len: u64, prot: Prot) -> Result<u64, Errno> {
    // SAFETY: Anywhere never replaces an existing mapping.
    unsafe { map_shared(fd, len, prot, Placement::Anywhere) }
}

/// A mapping this test made and nothing else uses.
struct Mapping(u64, u64);

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the range is a mapping this test created; no Rust
        // reference points into it.
        unsafe { unmap(self.0, self.1) }.unwrap();
    }
}

/// The read-only reopen of `region`, checked end to end.
fn read_only_reopen_of(region: &SharedRegion) {
    let len = region.len();
    let writer = file_of(region.fd());
    writer.write_all_at(b"written before", 0).unwrap();

    let ro = reopen_read_only(region.fd()).unwrap();
    assert_eq!(rustix::fs::fcntl_getfl(&ro).unwrap() & OFlags::ACCMODE, OFlags::RDONLY);
    assert!(rustix::io::fcntl_getfd(&ro).unwrap().contains(FdFlags::CLOEXEC));

    // A writable shared mapping of it is refused...
    assert_eq!(map_anywhere(ro.as_fd(), len, Prot::READ_WRITE), Err(Errno::EACCES));
    // ...a readable one sees the writer's bytes, before and after mapping...
    let m = Mapping(map_anywhere(ro.as_fd(), len, Prot::READ).unwrap(), len);
    assert_eq!(read_at(m.0, 14).unwrap(), b"written before");
    writer.write_all_at(b"written after", PAGE + 3).unwrap();
    assert_eq!(read_at(m.0 + PAGE + 3, 13).unwrap(), b"written after");
    // ...and can never become writable: mprotect refuses, stores fault.
    // SAFETY: `m` is this test's own mapping.
    assert_eq!(unsafe { protect(m.0, len, Prot::READ_WRITE) }, Err(Errno::EACCES));
    // SAFETY: `m` is this test's own mapping.
    assert_eq!(unsafe { write_at(m.0, b"x") }, Err(Errno::EFAULT));
    // Dropping access and restoring read is allowed.
    // SAFETY: `m` is this test's own mapping.
    unsafe { protect(m.0, len, Prot::NONE) }.unwrap();
    assert_eq!(read_at(m.0, 1), Err(Errno::EFAULT));
    // SAFETY: `m` is this test's own mapping.
    unsafe { protect(m.0, len, Prot::READ) }.unwrap();

    // A writable mapping of the original descriptor writes through to it.
    let w = Mapping(map_anywhere(region.fd(), len, Prot::READ_WRITE).unwrap(), len);
    // SAFETY: `w` is this test's own mapping.
    unsafe { write_at(w.0 + 8, b"through a mapping") }.unwrap();
    assert_eq!(read_at(m.0, 25).unwrap(), b"written through a mapping");
    let mut back = [0u8; 25];
    writer.read_exact_at(&mut back, 0).unwrap();
    assert_eq!(&back, b"written through a mapping");
}

#[test]
fn read_only_reopen_of_a_memfd() {
    let region = MemfdMemory.allocate(2 * PAGE).unwrap();
    read_only_reopen_of(&region);
}

#[test]
fn read_only_reopen_of_a_tmpfs_file() {
    let shm = Path::new("/dev/shm");
    match rustix::fs::statfs(shm) {
        // TMPFS_MAGIC
        Ok(st) if st.f_type == 0x0102_1994 => {}
        _ => {
            eprintln!("skipped: /dev/shm is not a tmpfs");
            return;
        }
    }
    let dir = shm.join(format!("uipc-map-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let region = DirMemory::new(&dir).allocate(2 * PAGE).unwrap();
    read_only_reopen_of(&region);
    drop(region);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn fixed_noreplace_refuses_an_occupied_range_and_fixed_replaces_it() {
    let mut mem = MemfdMemory;
    let a = mem.allocate(2 * PAGE).unwrap();
    let b = mem.allocate(PAGE).unwrap();
    file_of(a.fd()).write_all_at(b"AAAA", PAGE).unwrap();
    file_of(b.fd()).write_all_at(b"BBBB", 0).unwrap();

    let m = Mapping(map_anywhere(a.fd(), 2 * PAGE, Prot::READ).unwrap(), 2 * PAGE);
    // Overlapping only the second page is enough.
    // SAFETY: FixedNoReplace never replaces memory.
    let r = unsafe { map_shared(b.fd(), PAGE, Prot::READ, Placement::FixedNoReplace(m.0 + PAGE)) };
    assert_eq!(r, Err(Errno::EEXIST));
    assert_eq!(read_at(m.0 + PAGE, 4).unwrap(), b"AAAA");

    // SAFETY: the range is `m`, this test's own mapping, used by nothing else.
    let r = unsafe { map_shared(b.fd(), PAGE, Prot::READ, Placement::Fixed(m.0 + PAGE)) };
    assert_eq!(r, Ok(m.0 + PAGE));
    assert_eq!(read_at(m.0 + PAGE, 4).unwrap(), b"BBBB");

    // Once unmapped, the range is free for FixedNoReplace, and unreadable.
    let (addr, len) = (m.0, m.1);
    drop(m);
    assert_eq!(read_at(addr, 1), Err(Errno::EFAULT));
    // SAFETY: FixedNoReplace never replaces memory.
    let r = unsafe { map_shared(a.fd(), len, Prot::READ, Placement::FixedNoReplace(addr)) };
    assert_eq!(r, Ok(addr));
    let m = Mapping(addr, len);
    assert_eq!(read_at(m.0 + PAGE, 4).unwrap(), b"AAAA");
}

#[test]
fn bad_arguments() {
    let region = MemfdMemory.allocate(PAGE).unwrap();
    assert_eq!(map_anywhere(region.fd(), 0, Prot::READ), Err(Errno::EINVAL));
    // SAFETY: FixedNoReplace never replaces memory.
    let r = unsafe { map_shared(region.fd(), PAGE, Prot::READ, Placement::FixedNoReplace(PAGE + 1)) };
    assert_eq!(r, Err(Errno::EINVAL));
    assert_eq!(read_at(8, 8), Err(Errno::EFAULT));
    assert_eq!(read_at(0, 0), Ok(Vec::new()));
}
