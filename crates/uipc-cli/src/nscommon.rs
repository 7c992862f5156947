//! What the operator's commands share: finding the daemon and saying what
//! went wrong in one line.

use std::path::PathBuf;
use std::process::ExitCode;

use uipc_client::{Admin, Errno};

use crate::ns::SocketArg;

/// `--socket`, else the default path.
pub fn socket_path(s: &SocketArg) -> PathBuf {
    s.socket.clone().unwrap_or_else(uipc_daemon::default_socket_path)
}

/// Connects to the daemon, or says in one line that none answers.
pub fn connect(who: &str, s: &SocketArg) -> Result<Admin, ExitCode> {
    let path = socket_path(s);
    Admin::connect(&path).map_err(|e| fail(who, &format!("no daemon answers at {}: {}", path.display(), errno_text(e))))
}

/// Prints `who: msg` to stderr; the exit status of a failed command.
pub fn fail(who: &str, msg: &str) -> ExitCode {
    eprintln!("{who}: {msg}");
    ExitCode::FAILURE
}

/// `strerror(e)`: the C library's text for an errno ("Invalid argument").
pub fn errno_text(e: Errno) -> String {
    let text = std::io::Error::from_raw_os_error(e.raw()).to_string();
    // std renders "Invalid argument (os error 22)".
    match text.rfind(" (os error ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}
