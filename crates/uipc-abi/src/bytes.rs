//! The structures as the bytes a C caller's buffer receives: native byte
//! order, every field at its `offset_of!`, padding zero — written field by
//! field, so no padding byte is ever read and no `unsafe` is needed. The
//! shim copies these to the address the caller of `shmctl`/`semctl` gave
//! (`copy_to_user` of the kernel's `copy_shmid_to_user`,
//! `copy_semid_to_user`, `shmctl_ipc_info`…).

use core::mem::{offset_of, size_of};

use crate::{Ipc64Perm, Msginfo, Msqid64Ds, Semid64Ds, Seminfo, ShmInfo, Shmid64Ds, Shminfo64};

/// A structure's image in C memory.
pub trait CBytes: Sized {
    /// The bytes of `self` as C code sees the structure.
    fn to_c_bytes(&self) -> Vec<u8>;

    /// The structure a C caller's bytes hold (as `copy_from_user` of a
    /// whole structure reads it: `IPC_SET`'s buffer); `None` if `bytes` is
    /// not exactly its size.
    fn from_c_bytes(bytes: &[u8]) -> Option<Self>;
}

/// A zeroed image being filled.
struct Image(Vec<u8>);

impl Image {
    fn of<T>() -> Image {
        Image(vec![0; size_of::<T>()])
    }

    fn put(&mut self, at: usize, bytes: &[u8]) {
        if let Some(dst) = self.0.get_mut(at..at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    }
}

/// Puts each named field of `$value` (of type `$ty`) at `$base` plus its offset.
macro_rules! put_fields {
    ($image:expr, $base:expr, $value:expr, $ty:ty, [$($field:ident),* $(,)?]) => {
        $( $image.put($base + offset_of!($ty, $field), &$value.$field.to_ne_bytes()); )*
    };
}

/// Reads each named field of a `$ty` at `$base` plus its offset, from `$bytes`.
macro_rules! get_fields {
    ($bytes:expr, $base:expr, $ty:ident { $($field:ident: $fty:ty),* $(,)? } $(, ..$rest:expr)?) => {
        $ty { $( $field: field::<$fty>($bytes, $base + offset_of!($ty, $field))?, )* $(..$rest)? }
    };
}

/// The native-endian integer of type `T` at byte `at`; `None` past the end.
fn field<T: FromNe>(bytes: &[u8], at: usize) -> Option<T> {
    T::from_ne(bytes.get(at..at + size_of::<T>())?)
}

/// Integers read from native-endian bytes.
trait FromNe: Sized {
    fn from_ne(bytes: &[u8]) -> Option<Self>;
}

macro_rules! from_ne {
    ($($t:ty),*) => { $( impl FromNe for $t {
        fn from_ne(bytes: &[u8]) -> Option<Self> {
            Some(<$t>::from_ne_bytes(bytes.try_into().ok()?))
        }
    } )* };
}
from_ne!(i32, u32, u16, u64, i64);

fn get_perm(bytes: &[u8], base: usize) -> Option<Ipc64Perm> {
    Some(get_fields!(
        bytes,
        base,
        Ipc64Perm {
            key: i32,
            uid: u32,
            gid: u32,
            cuid: u32,
            cgid: u32,
            mode: u32,
            seq: u16,
            pad2: u16,
            unused1: u64,
            unused2: u64,
        }
    ))
}

fn put_perm(image: &mut Image, base: usize, perm: &Ipc64Perm) {
    put_fields!(image, base, perm, Ipc64Perm, [key, uid, gid, cuid, cgid, mode, seq, pad2, unused1, unused2]);
}

impl CBytes for Ipc64Perm {
    fn to_c_bytes(&self) -> Vec<u8> {
        let mut image = Image::of::<Self>();
        put_perm(&mut image, 0, self);
        image.0
    }

    fn from_c_bytes(bytes: &[u8]) -> Option<Self> {
        (bytes.len() == size_of::<Self>()).then(|| get_perm(bytes, 0))?
    }
}

impl CBytes for Shmid64Ds {
    fn to_c_bytes(&self) -> Vec<u8> {
        let mut image = Image::of::<Self>();
        put_perm(&mut image, offset_of!(Self, shm_perm), &self.shm_perm);
        put_fields!(
            image,
            0,
            self,
            Self,
            [shm_segsz, shm_atime, shm_dtime, shm_ctime, shm_cpid, shm_lpid, shm_nattch, unused4, unused5]
        );
        image.0
    }

    fn from_c_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != size_of::<Self>() {
            return None;
        }
        let shm_perm = get_perm(bytes, offset_of!(Self, shm_perm))?;
        Some(get_fields!(
            bytes,
            0,
            Shmid64Ds {
                shm_segsz: u64,
                shm_atime: i64,
                shm_dtime: i64,
                shm_ctime: i64,
                shm_cpid: i32,
                shm_lpid: i32,
                shm_nattch: u64,
                unused4: u64,
                unused5: u64,
            },
            ..Shmid64Ds { shm_perm, ..Shmid64Ds::default() }
        ))
    }
}

impl CBytes for Shminfo64 {
    fn to_c_bytes(&self) -> Vec<u8> {
        let mut image = Image::of::<Self>();
        put_fields!(image, 0, self, Self, [shmmax, shmmin, shmmni, shmseg, shmall]);
        for (n, u) in self.unused.iter().enumerate() {
            image.put(offset_of!(Self, unused) + n * size_of::<u64>(), &u.to_ne_bytes());
        }
        image.0
    }

    fn from_c_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != size_of::<Self>() {
            return None;
        }
        let mut unused = [0u64; 4];
        for (n, u) in unused.iter_mut().enumerate() {
            *u = field(bytes, offset_of!(Self, unused) + n * size_of::<u64>())?;
        }
        Some(get_fields!(
            bytes,
            0,
            Shminfo64 { shmmax: u64, shmmin: u64, shmmni: u64, shmseg: u64, shmall: u64 },
            ..Shminfo64 { unused, ..Shminfo64::default() }
        ))
    }
}

impl CBytes for ShmInfo {
    fn to_c_bytes(&self) -> Vec<u8> {
        let mut image = Image::of::<Self>();
        put_fields!(image, 0, self, Self, [used_ids, pad, shm_tot, shm_rss, shm_swp, swap_attempts, swap_successes]);
        image.0
    }

    fn from_c_bytes(bytes: &[u8]) -> Option<Self> {
        (bytes.len() == size_of::<Self>()).then_some(())?;
        Some(get_fields!(
            bytes,
            0,
            ShmInfo {
                used_ids: i32,
                pad: i32,
                shm_tot: u64,
                shm_rss: u64,
                shm_swp: u64,
                swap_attempts: u64,
                swap_successes: u64,
            }
        ))
    }
}

impl CBytes for Semid64Ds {
    fn to_c_bytes(&self) -> Vec<u8> {
        let mut image = Image::of::<Self>();
        put_perm(&mut image, offset_of!(Self, sem_perm), &self.sem_perm);
        put_fields!(image, 0, self, Self, [sem_otime, sem_ctime, sem_nsems, unused3, unused4]);
        #[cfg(target_arch = "x86_64")]
        put_fields!(image, 0, self, Self, [unused1, unused2]);
        image.0
    }

    fn from_c_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != size_of::<Self>() {
            return None;
        }
        let sem_perm = get_perm(bytes, offset_of!(Self, sem_perm))?;
        let ds = get_fields!(
            bytes,
            0,
            Semid64Ds { sem_otime: i64, sem_ctime: i64, sem_nsems: u64, unused3: u64, unused4: u64 },
            ..Semid64Ds { sem_perm, ..Semid64Ds::default() }
        );
        #[cfg(target_arch = "x86_64")]
        let ds = get_fields!(bytes, 0, Semid64Ds { unused1: u64, unused2: u64 }, ..ds);
        Some(ds)
    }
}

impl CBytes for Seminfo {
    fn to_c_bytes(&self) -> Vec<u8> {
        let mut image = Image::of::<Self>();
        put_fields!(
            image,
            0,
            self,
            Self,
            [semmap, semmni, semmns, semmnu, semmsl, semopm, semume, semusz, semvmx, semaem]
        );
        image.0
    }

    fn from_c_bytes(bytes: &[u8]) -> Option<Self> {
        (bytes.len() == size_of::<Self>()).then_some(())?;
        Some(get_fields!(
            bytes,
            0,
            Seminfo {
                semmap: i32,
                semmni: i32,
                semmns: i32,
                semmnu: i32,
                semmsl: i32,
                semopm: i32,
                semume: i32,
                semusz: i32,
                semvmx: i32,
                semaem: i32,
            }
        ))
    }
}

impl CBytes for Msqid64Ds {
    fn to_c_bytes(&self) -> Vec<u8> {
        let mut image = Image::of::<Self>();
        put_perm(&mut image, offset_of!(Self, msg_perm), &self.msg_perm);
        put_fields!(
            image,
            0,
            self,
            Self,
            [msg_stime, msg_rtime, msg_ctime, msg_cbytes, msg_qnum, msg_qbytes, msg_lspid, msg_lrpid, unused4, unused5]
        );
        image.0
    }

    fn from_c_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != size_of::<Self>() {
            return None;
        }
        let msg_perm = get_perm(bytes, offset_of!(Self, msg_perm))?;
        Some(get_fields!(
            bytes,
            0,
            Msqid64Ds {
                msg_stime: i64,
                msg_rtime: i64,
                msg_ctime: i64,
                msg_cbytes: u64,
                msg_qnum: u64,
                msg_qbytes: u64,
                msg_lspid: i32,
                msg_lrpid: i32,
                unused4: u64,
                unused5: u64,
            },
            ..Msqid64Ds { msg_perm, ..Msqid64Ds::default() }
        ))
    }
}

impl CBytes for Msginfo {
    fn to_c_bytes(&self) -> Vec<u8> {
        let mut image = Image::of::<Self>();
        put_fields!(image, 0, self, Self, [msgpool, msgmap, msgmax, msgmnb, msgmni, msgssz, msgtql, msgseg, pad]);
        image.0
    }

    fn from_c_bytes(bytes: &[u8]) -> Option<Self> {
        (bytes.len() == size_of::<Self>()).then_some(())?;
        Some(get_fields!(
            bytes,
            0,
            Msginfo {
                msgpool: i32,
                msgmap: i32,
                msgmax: i32,
                msgmnb: i32,
                msgmni: i32,
                msgssz: i32,
                msgtql: i32,
                msgseg: u16,
                pad: u16,
            }
        ))
    }
}
