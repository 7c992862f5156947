//! One name table for POSIX objects: the directory entries of a filesystem
//! instance (for message queues, the mqueue filesystem's root of an IPC
//! namespace), with the kernel's rules for a single path component.
//!
//! A name here is what the kernel sees: glibc has already checked and
//! stripped the leading `/` (SPEC MQ-NAME-1).
//!
//! # References
//! - `fs/namei.c:getname()`, `lookup_one_common()`, `fs/libfs.c:simple_lookup()` (Linux 6.12)

use uipc_abi::Errno;

/// `NAME_MAX`: the longest directory entry.
pub const NAME_MAX: usize = 255;
/// `PATH_MAX`: the longest string `getname()` copies (with its NUL).
pub const PATH_MAX: usize = 4096;

/// A checked name: one path component, 1..=[`NAME_MAX`] bytes, no `/` or
/// NUL, not `.` or `..`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PosixName(Vec<u8>);

impl PosixName {
    /// The name's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Checks `name` (the kernel's view, without glibc's leading `/`) as
    /// `mq_open`/`mq_unlink` do, in the kernel's order.
    ///
    /// # Errors
    /// - `ENOENT`: empty (`getname()`; so glibc's `"/"`).
    /// - `ENAMETOOLONG`: [`PATH_MAX`] bytes or more (`getname()`).
    /// - `EACCES`: `.`, `..`, or a `/` or NUL inside (`lookup_one_common()`).
    /// - `ENAMETOOLONG`: more than [`NAME_MAX`] bytes (`simple_lookup()`).
    ///
    /// # References
    /// SPEC MQ-NAME-2.
    pub fn check(name: &[u8]) -> Result<PosixName, Errno> {
        // getname(): an empty string is ENOENT, one that fills PATH_MAX is too long.
        if name.is_empty() {
            return Err(Errno::ENOENT);
        }
        if name.len() >= PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        // lookup_one_common(): "." and "..", and any '/' or NUL, are EACCES.
        if name == b"." || name == b".." || name.iter().any(|&c| c == b'/' || c == 0) {
            return Err(Errno::EACCES);
        }
        // simple_lookup(): a component longer than NAME_MAX.
        if name.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        Ok(PosixName(name.to_vec()))
    }
}

/// The directory of named POSIX objects of one kind in one instance: name
/// → the object's number (an inode number). Objects that lose their name
/// (unlinked while open) live on outside the table.
#[derive(Clone, Debug, Default)]
pub struct NameTable {
    pub(crate) entries: crate::tracked::Tracked<PosixName, u64>,
}

impl NameTable {
    /// The object named `name`.
    pub fn lookup(&self, name: &PosixName) -> Option<u64> {
        self.entries.get(name).copied()
    }

    /// Links `name` to `object`.
    ///
    /// # Errors
    /// `EEXIST` if the name is taken (callers look up first, as `open`
    /// does under the directory's lock).
    pub fn link(&mut self, name: PosixName, object: u64) -> Result<(), Errno> {
        if self.entries.contains_key(&name) {
            return Err(Errno::EEXIST);
        }
        self.entries.insert(name, object);
        Ok(())
    }

    /// Removes `name`; returns the object it named.
    pub fn unlink(&mut self, name: &PosixName) -> Option<u64> {
        self.entries.remove(name)
    }

    /// The name of `object`, if it still has one.
    pub fn name_of(&self, object: u64) -> Option<&PosixName> {
        self.entries.iter().find(|(_, o)| **o == object).map(|(n, _)| n)
    }

    /// Every `(name, object)`, in byte order of the names.
    pub fn iter(&self) -> impl Iterator<Item = (&PosixName, u64)> {
        self.entries.iter().map(|(n, o)| (n, *o))
    }

    /// How many names.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is no name.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_rules_in_kernel_order() {
        assert_eq!(PosixName::check(b""), Err(Errno::ENOENT));
        assert_eq!(PosixName::check(b"a/b"), Err(Errno::EACCES));
        assert_eq!(PosixName::check(b"/x"), Err(Errno::EACCES));
        assert_eq!(PosixName::check(b"."), Err(Errno::EACCES));
        assert_eq!(PosixName::check(b".."), Err(Errno::EACCES));
        assert!(PosixName::check(b"...").is_ok());
        assert!(PosixName::check(&[b'a'; 255]).is_ok());
        assert_eq!(PosixName::check(&[b'a'; 256]), Err(Errno::ENAMETOOLONG));
        // A '/' in an overlong component: EACCES comes first.
        let mut long = vec![b'a'; 300];
        long[299] = b'/';
        assert_eq!(PosixName::check(&long), Err(Errno::EACCES));
        assert_eq!(PosixName::check(&[b'a'; 4096]), Err(Errno::ENAMETOOLONG));
    }

    #[test]
    fn link_lookup_unlink() {
        let mut t = NameTable::default();
        let n = PosixName::check(b"q").unwrap();
        t.link(n.clone(), 7).unwrap();
        assert_eq!(t.link(n.clone(), 8), Err(Errno::EEXIST));
        assert_eq!(t.lookup(&n), Some(7));
        assert_eq!(t.name_of(7), Some(&n));
        assert_eq!(t.unlink(&n), Some(7));
        assert!(t.is_empty());
    }
}
