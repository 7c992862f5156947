//! The memfd and directory memories: zero-filled, sized, resident pages
//! counted, named files removed with their last region.
#![allow(clippy::unwrap_used)]
use std::os::unix::fs::FileExt;

use uipc_core::Memory;
use uipc_sys::memfd::{DirMemory, MemfdMemory, SharedRegion};

fn file_of(r: &SharedRegion) -> std::fs::File {
    std::fs::File::from(r.fd().try_clone_to_owned().unwrap())
}

#[test]
fn memfd_regions_are_zeroed_and_counted() {
    let mut m = MemfdMemory;
    let r = m.allocate(3 * 4096).unwrap();
    assert_eq!(r.len(), 3 * 4096);
    let f = file_of(&r);
    assert_eq!(f.metadata().unwrap().len(), 3 * 4096);
    let mut buf = vec![1u8; 3 * 4096];
    f.read_exact_at(&mut buf, 0).unwrap();
    assert!(buf.iter().all(|&b| b == 0));
    assert_eq!(m.resident_pages(&r), 0);
    f.write_all_at(b"x", 4096 + 7).unwrap();
    assert_eq!(m.resident_pages(&r), 1);
}

#[test]
fn dir_regions_are_files_removed_on_drop() {
    let dir = std::env::temp_dir().join(format!("uipc-dirmem-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut m = DirMemory::new(&dir);
    let r = m.allocate(4096).unwrap();
    let path = r.path().unwrap().to_owned();
    assert!(path.exists());
    file_of(&r).write_all_at(b"hello", 0).unwrap();
    assert_eq!(std::fs::read(&path).unwrap()[..5], *b"hello");
    let r2 = m.allocate(4096).unwrap();
    assert_ne!(r2.path(), r.path());
    drop(r);
    assert!(!path.exists());
    drop(r2);
    std::fs::remove_dir(&dir).unwrap();
}

#[test]
fn memfd_regions_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt;
    let r = MemfdMemory.allocate(4096).unwrap();
    let mode = file_of(&r).metadata().unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "a read-only descriptor must not be reopenable for writing by others");
}
