//! One connection: frames out, frames (and descriptors) in; reconnects in a
//! forked child.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use uipc_abi::Errno;
use uipc_proto::{Request, Response, HEADER, VERSION};
use uipc_sys::net;

use crate::creds::CredKey;

/// Requests this process sent to a daemon ([`crate::requests_sent`]).
pub(crate) static REQUESTS_SENT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[derive(Debug)]
pub(crate) struct Conn {
    stream: UnixStream,
    /// The process that opened the connection: a forked child reconnects.
    pid: u32,
    socket: PathBuf,
    namespace: String,
    inbuf: Vec<u8>,
    /// Whose credentials the daemon holds for this connection (see the
    /// `creds` module); `None`: none known to be current.
    reported: Option<CredKey>,
    /// A send or receive failed in transport (the daemon died, or closed
    /// the connection, or the program closed our descriptor): the next
    /// call opens a new connection first.
    broken: bool,
    /// The descriptor no longer names our socket (the program closed it,
    /// `closefrom` in a daemonizing child, and may have reused the
    /// number): it is never closed by us.
    lost: bool,
    /// How many times this connection was opened anew after a break (the
    /// client drops what it derived from the old daemon when it moves).
    pub(crate) reopened: u64,
    /// This process's number for itself, and the number of its last
    /// tagged request ([`Request::Once`]): kept across a reopen, new in
    /// a forked child.
    client: u64,
    seq: u64,
}

/// How many times a call is sent again while its daemon keeps dying
/// under it (each time waiting up to [`RECONNECT_WAIT_MS`] for it).
const RESENDS: u32 = 8;

/// How long (milliseconds) a call waits for a daemon that went away to
/// answer again on its socket (a daemon restarted on its state directory
/// re-adopts the process), polling every [`RECONNECT_POLL`]; see
/// [`crate::set_reconnect_wait`].
pub(crate) static RECONNECT_WAIT_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(5000);
const RECONNECT_POLL: Duration = Duration::from_millis(5);
const RECONNECT_GONE: Duration = Duration::from_millis(50);

fn io(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(Errno::EIO.raw()))
}

impl Conn {
    /// The socket and namespace this connection uses.
    pub(crate) fn target(&self) -> (PathBuf, String) {
        (self.socket.clone(), self.namespace.clone())
    }

    pub(crate) fn open(socket: &Path, namespace: &str) -> Result<Conn, Errno> {
        // Taken before connecting: a change made meanwhile is rechecked.
        let key = CredKey::now();
        let stream = UnixStream::connect(socket).map_err(|e| io(&e))?;
        let mut conn = Conn {
            stream,
            pid: uipc_sys::proc::cached_pid(),
            socket: socket.to_owned(),
            namespace: namespace.to_owned(),
            inbuf: Vec::new(),
            reported: key.connect_suffices().then_some(key),
            broken: false,
            lost: false,
            reopened: 0,
            client: uipc_sys::proc::random_u64(),
            seq: 0,
        };
        match conn.exchange(&Request::Hello { version: VERSION, namespace: namespace.to_owned() }, 0)? {
            (Response::Welcome { .. }, _) => Ok(conn),
            (Response::Error(e), _) => Err(Errno::from_raw(e)),
            _ => Err(Errno::EPROTO),
        }
    }

    /// Before a request: a connection of this process (a forked child
    /// must not speak on its parent's: the daemon would take it for the
    /// parent), on which the daemon holds the calling thread's current
    /// credentials (the `creds` module).
    pub(crate) fn prepare(&mut self) -> Result<(), Errno> {
        if self.pid != uipc_sys::proc::cached_pid() {
            // (A daemon being restarted is waited for, as after a break.)
            *self = Conn::open_again(&self.socket.clone(), &self.namespace.clone())?;
        }
        if self.broken {
            self.reopen()?;
        }
        let key = CredKey::now();
        if self.reported != Some(key) {
            let tid = uipc_sys::proc::gettid();
            match self.exchange(&Request::Recheck { tid }, 0)? {
                (Response::Value(_), _) => self.reported = Some(key),
                (Response::Error(e), _) => return Err(Errno::from_raw(e)),
                _ => return Err(Errno::EPROTO),
            }
        }
        Ok(())
    }

    /// The daemon went away: a new connection to the same socket and
    /// namespace (`docs/architecture.md`, "Surviving the daemon's own
    /// crash": a daemon restarted on its state directory knows this
    /// process, its mappings, undo records and namespace). While nobody
    /// answers on the socket (the daemon is being restarted), waits up to
    /// [`RECONNECT_WAIT_MS`].
    fn reopen(&mut self) -> Result<(), Errno> {
        let mut fresh = Conn::open_again(&self.socket, &self.namespace)?;
        (fresh.reopened, fresh.client, fresh.seq) = (self.reopened + 1, self.client, self.seq);
        let old = std::mem::replace(self, fresh);
        if old.lost {
            // Closing the number would close whatever the program has there now.
            std::mem::forget(old);
        }
        Ok(())
    }

    /// [`open`](Self::open) to a daemon that answered before: while its
    /// socket is there and nobody answers (a daemon that died, before it is
    /// restarted), waits up to [`RECONNECT_WAIT_MS`]; a socket that is gone
    /// (a daemon that stopped: it removes its socket; or one restarting,
    /// which removes the stale socket just before it binds anew) is
    /// retried for [`RECONNECT_GONE`] only.
    pub(crate) fn open_again(socket: &Path, namespace: &str) -> Result<Conn, Errno> {
        let start = Instant::now();
        loop {
            let waited = start.elapsed();
            match Conn::open(socket, namespace) {
                // Nobody listens, or a dying daemon's socket took the
                // connection into its backlog and reset it.
                Err(Errno::ECONNREFUSED | Errno::ECONNRESET | Errno::EPIPE)
                    if waited < Duration::from_millis(RECONNECT_WAIT_MS.load(std::sync::atomic::Ordering::Relaxed)) =>
                {
                    std::thread::sleep(RECONNECT_POLL)
                }
                Err(Errno::ENOENT) if waited < RECONNECT_GONE => std::thread::sleep(RECONNECT_POLL),
                other => return other,
            }
        }
    }

    /// Whether a send or receive failed in transport.
    pub(crate) fn is_broken(&self) -> bool {
        self.broken
    }

    /// Notes a transport failure (any error but a signal's `EINTR`, which
    /// the callers handle): the connection is not used again.
    fn note<T>(&mut self, r: Result<T, Errno>) -> Result<T, Errno> {
        if let Err(e) = &r {
            if *e != Errno::EINTR {
                self.broken = true;
            }
            // EBADF, ENOTSOCK: the number is not our socket any more.
            if *e == Errno::EBADF || *e == Errno::ENOTSOCK {
                self.lost = true;
            }
        }
        r
    }

    /// Sends `req` and waits for its response (with up to `max_fds` descriptors).
    pub(crate) fn call(&mut self, req: &Request, max_fds: usize) -> Result<(Response, Vec<OwnedFd>), Errno> {
        self.prepare()?;
        self.round_trip(req, max_fds, Wait::Uninterruptible)
    }

    /// Sends `req` and waits for its answer as `wait` says. When the
    /// connection breaks before the answer (its daemon died), the request
    /// goes again on a new connection, up to [`RESENDS`] times — a query
    /// or lookup as it is, a change with its first sending's tag
    /// ([`Request::Once`]), which a daemon restarted on its state
    /// directory answers as it did (or serves, if it never had it), and a
    /// timed sleep with the time it has left.
    fn round_trip(&mut self, req: &Request, max_fds: usize, wait: Wait<'_>) -> Result<(Response, Vec<OwnedFd>), Errno> {
        let tag = self.tag(req);
        let sent = Instant::now();
        let mut again: Option<Request> = None;
        let mut resends = 0;
        loop {
            let this = again.as_ref().unwrap_or(req);
            match self.send_tagged(this, tag).and_then(|()| self.receive_with(max_fds, wait)) {
                Err(e) if self.resend_after(e, &mut resends) => {
                    // A new connection, waiting for the restart (none came:
                    // the call fails); one that breaks in turn before the
                    // request leaves counts as another resend.
                    self.reopen()?;
                    if let Err(e) = self.prepare() {
                        if !self.broken {
                            return Err(e);
                        }
                    }
                    again = Some(req.sent_again_after(sent.elapsed()));
                }
                other => return other,
            }
        }
    }

    /// The tag of `req`'s first sending: `Some` for a request that must
    /// not be applied twice ([`Request::wants_once`]).
    fn tag(&mut self, req: &Request) -> Option<(u64, u64)> {
        req.wants_once().then(|| {
            self.seq += 1;
            (self.client, self.seq)
        })
    }

    /// Whether a call whose answer failed with `e` goes again: the
    /// connection broke (its daemon died), and it has not gone
    /// [`RESENDS`] times yet.
    fn resend_after(&self, e: Errno, resends: &mut u32) -> bool {
        *resends += 1;
        e != Errno::EPROTO && e != Errno::EINTR && self.broken && *resends <= RESENDS
    }

    /// Sends `req`, after its tag if it has one ([`Request::Once`]), in one write.
    fn send_tagged(&mut self, req: &Request, tag: Option<(u64, u64)>) -> Result<(), Errno> {
        match tag {
            Some((client, seq)) => {
                let mut bytes = uipc_proto::encode(&Request::Once { client, seq }).map_err(|_| Errno::EINVAL)?;
                bytes.extend(uipc_proto::encode(req).map_err(|_| Errno::EINVAL)?);
                self.send_bytes(&bytes)
            }
            None => self.send(req),
        }
    }

    /// Sends a request that may sleep in the daemon (a semop) and waits
    /// for its answer. A signal handler that interrupts the wait (with or
    /// without `SA_RESTART`: semop is never restarted, signal(7)) sends `Cancel`: the
    /// daemon then answers the request — `EINTR` if it had not happened,
    /// its real result if it had — and acknowledges the cancel.
    pub(crate) fn call_sleeping(&mut self, req: &Request) -> Result<Response, Errno> {
        self.prepare()?;
        // From before the request leaves until its answer is in, signals
        // are held: one that comes before the wait begins still interrupts
        // it (delivered as the wait starts), none is lost in between.
        let held = net::hold_signals()?;
        match self.round_trip(req, 0, Wait::Interruptible(&held)).map(|(r, _)| r) {
            Err(Errno::EINTR) => {
                self.send(&Request::Cancel)?;
                let (answer, _) = self.receive(0, None)?;
                let (ack, _) = self.receive(0, None)?;
                match ack {
                    Response::Value(_) => Ok(answer),
                    _ => Err(Errno::EPROTO),
                }
            }
            other => other,
        }
    }

    /// Sends a request that may sleep in the daemon and whose wait a
    /// signal handler ends as the kernel ends `mq_timedreceive`'s: restarted
    /// (the wait simply goes on) if the handler has `SA_RESTART`, else
    /// `Cancel` is sent and the daemon answers — `EINTR` if the call had
    /// not happened, its real result if it had.
    pub(crate) fn call_restartable(&mut self, req: &Request) -> Result<(Response, Vec<OwnedFd>), Errno> {
        if self.pid != uipc_sys::proc::cached_pid() {
            *self = Conn::open(&self.socket.clone(), &self.namespace.clone())?;
        }
        match self.round_trip(req, 0, Wait::Restartable) {
            Err(Errno::EINTR) => {
                self.send(&Request::Cancel)?;
                let answer = self.receive(0, None)?;
                let (ack, _) = self.receive(0, None)?;
                match ack {
                    Response::Value(_) => Ok(answer),
                    _ => Err(Errno::EPROTO),
                }
            }
            other => other,
        }
    }

    fn send(&mut self, req: &Request) -> Result<(), Errno> {
        let bytes = uipc_proto::encode(req).map_err(|_| Errno::EINVAL)?;
        self.send_bytes(&bytes)
    }

    /// Sends encoded request frames.
    fn send_bytes(&mut self, bytes: &[u8]) -> Result<(), Errno> {
        REQUESTS_SENT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut sent = 0;
        while sent < bytes.len() {
            sent += self.note(net::send_msg(self.stream.as_fd(), &bytes[sent..], &[]))?;
        }
        Ok(())
    }

    fn exchange(&mut self, req: &Request, max_fds: usize) -> Result<(Response, Vec<OwnedFd>), Errno> {
        self.send(req)?;
        self.receive(max_fds, None)
    }

    /// Reads one response (and the descriptors sent with it); with
    /// `interruptible`, a signal handler's run ends the wait with `EINTR`.
    fn receive(
        &mut self,
        max_fds: usize,
        interruptible: Option<&net::SignalsHeld>,
    ) -> Result<(Response, Vec<OwnedFd>), Errno> {
        match interruptible {
            Some(held) => self.receive_with(max_fds, Wait::Interruptible(held)),
            None => self.receive_with(max_fds, Wait::Uninterruptible),
        }
    }

    /// Reads one response, waiting as `wait` says.
    fn receive_with(&mut self, max_fds: usize, wait: Wait<'_>) -> Result<(Response, Vec<OwnedFd>), Errno> {
        let r = self.receive_once(max_fds, wait);
        self.note(r)
    }

    fn receive_once(&mut self, max_fds: usize, wait: Wait<'_>) -> Result<(Response, Vec<OwnedFd>), Errno> {
        let mut fds = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            match uipc_proto::decode::<Response>(&self.inbuf) {
                Ok(Some((resp, used))) => {
                    self.inbuf.drain(..used);
                    return Ok((resp, fds));
                }
                Ok(None) => {}
                Err(_) => return Err(Errno::EPROTO),
            }
            let (n, got) = match spin_recv(self.stream.as_fd(), &mut buf, max_fds.max(1))? {
                Some(got) => got,
                None => match wait {
                    Wait::Interruptible(held) => {
                        held.recv_msg_interruptible(self.stream.as_fd(), &mut buf, max_fds.max(1))?
                    }
                    Wait::Restartable => net::recv_msg_restartable(self.stream.as_fd(), &mut buf, max_fds.max(1))?,
                    Wait::Uninterruptible => net::recv_msg(self.stream.as_fd(), &mut buf, max_fds.max(1))?,
                },
            };
            fds.extend(got);
            if n == 0 {
                // The daemon went away mid-call.
                return Err(Errno::ECONNRESET);
            }
            self.inbuf.extend_from_slice(&buf[..n]);
            if self.inbuf.len() > HEADER + uipc_proto::MAX_FRAME {
                return Err(Errno::EPROTO);
            }
        }
    }
}

/// How a caller waits for an answer once the spin is over.
#[derive(Clone, Copy)]
enum Wait<'a> {
    /// Signal handlers never end the wait.
    Uninterruptible,
    /// A handler's run ends it (`EINTR`), `SA_RESTART` or not.
    Interruptible(&'a net::SignalsHeld),
    /// A handler without `SA_RESTART` ends it; with it, the wait goes on.
    Restartable,
}

/// How long a caller polls for the daemon's answer before it sleeps: an
/// answer usually comes within a few microseconds, and waking a sleeping
/// CPU costs tens of them on a virtual machine (DESIGN's "spinning briefly").
const SPIN: Duration = Duration::from_micros(30);

/// The answer if it arrives within [`SPIN`], polling without blocking and
/// yielding the CPU between tries (so that a daemon on the same CPU runs).
fn spin_recv(sock: BorrowedFd<'_>, buf: &mut [u8], max_fds: usize) -> Result<Option<(usize, Vec<OwnedFd>)>, Errno> {
    let start = Instant::now();
    loop {
        match net::try_recv_msg(sock, buf, max_fds) {
            Ok(got) => return Ok(Some(got)),
            Err(Errno::EAGAIN) if start.elapsed() < SPIN => std::thread::yield_now(),
            Err(Errno::EAGAIN) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}
