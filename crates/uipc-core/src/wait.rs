//! Blocking, as model state: an operation that must sleep returns
//! [`Outcome::Blocked`] with a [`WaiterId`]; the host parks the caller.
//! Whatever later completes or ends the wait — another caller's operation
//! (the kernel's hand-off: the waker applies the sleeper's operation), a
//! removal (`EIDRM`), a timeout (`EAGAIN`), a signal (`EINTR`) — produces a
//! [`Wakeup`], which the host delivers. The core never sleeps (STYLE rule 6).

use uipc_abi::Errno;

pub use crate::sysv::msg::Message;

/// One parked caller (one blocked system call).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct WaiterId(pub u64);

/// What an operation that may sleep did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome<T> {
    /// It completed (or failed) at once.
    Done(T),
    /// The caller sleeps until a [`Wakeup`] names this waiter.
    Blocked(WaiterId),
}

/// A parked caller's call has finished, with this result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wakeup {
    /// Who.
    pub waiter: WaiterId,
    /// The call's result (for a `msgrcv`, the number of text bytes).
    pub result: Result<i64, Errno>,
    /// The message a sleeping `msgrcv` was handed (`None` for every other
    /// call and for a failed receive).
    pub message: Option<Message>,
}

impl Wakeup {
    /// A wake-up that carries no message.
    pub fn new(waiter: WaiterId, result: Result<i64, Errno>) -> Wakeup {
        Wakeup { waiter, result, message: None }
    }
}

/// Why a parked caller stops waiting without being completed by someone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interrupt {
    /// A signal: `EINTR` (System V semaphore waits are never restarted).
    Signal,
    /// The `semtimedop` timeout expired: `EAGAIN`.
    Timeout,
}

impl Interrupt {
    /// The errno the interrupted call returns.
    pub fn errno(self) -> Errno {
        match self {
            Interrupt::Signal => Errno::EINTR,
            Interrupt::Timeout => Errno::EAGAIN,
        }
    }
}
