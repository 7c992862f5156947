//! Runs one test body against the kernel (the oracle) and every uipc
//! backend, and compares the transcripts.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::backend::Backend;
use crate::core_backend::CoreBackend;
use crate::deviations;
use crate::kernel::KernelBackend;
use crate::sandbox;
use crate::session::Session;

/// Runs `body` on `backend` and returns its transcript; a panic in the body
/// (an `unwrap` on a result the backend got wrong, say) ends the transcript.
pub fn transcript_of(backend: &mut dyn Backend, body: &dyn Fn(&mut Session)) -> Vec<String> {
    let mut s = Session::new(backend);
    let outcome = catch_unwind(AssertUnwindSafe(|| body(&mut s)));
    let mut t = s.transcript().to_vec();
    if let Err(p) = outcome {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "panic".into());
        t.push(format!("PANIC: {msg}"));
    }
    t
}

/// The uipc backends to compare with the kernel: `UIPC_BACKENDS`
/// (comma-separated: `core`, `daemon`, `preload`), default all three.
fn uipc_backends(agent: &str) -> Vec<Box<dyn Backend>> {
    let names = std::env::var("UIPC_BACKENDS").unwrap_or_else(|_| "core,daemon,preload".into());
    names
        .split(',')
        .filter(|n| !n.is_empty())
        .map(|n| -> Box<dyn Backend> {
            match n.trim() {
                "core" => Box::new(CoreBackend::new()),
                "daemon" => match crate::daemon_backend::start(agent) {
                    Ok(b) => Box::new(b),
                    Err(why) => panic!("the daemon backend did not start: {why}"),
                },
                "preload" => match crate::preload_backend::start(agent) {
                    Ok(b) => Box::new(b),
                    Err(why) => panic!("the preload backend did not start: {why}"),
                },
                other => panic!("UIPC_BACKENDS names an unknown backend {other:?}"),
            }
        })
        .collect()
}

/// Where two transcripts first differ, as a readable report.
pub fn diff(kernel: &[String], other: &[String]) -> Option<String> {
    let n = kernel.len().max(other.len());
    let first = (0..n).find(|&i| kernel.get(i) != other.get(i))?;
    let mut out = String::new();
    for i in first.saturating_sub(3)..n.min(first + 4) {
        let k = kernel.get(i).map_or("<end>", String::as_str);
        let o = other.get(i).map_or("<end>", String::as_str);
        if k == o {
            out += &format!("    {i:3}   {k}\n");
        } else {
            out += &format!("  ! {i:3} kernel: {k}\n  ! {i:3}   uipc: {o}\n");
        }
    }
    Some(out)
}

/// The differential test of SPEC rule `rule`: runs `body` on the kernel
/// (through the agent binary `agent`, `uipc-kernel-agent`) and on each uipc
/// backend, and panics on an unlisted mismatch or on a listed deviation that
/// no longer differs. Without root it prints why and skips.
///
/// Tests call it through [`conformance!`](crate::conformance!), which names
/// the agent binary of the calling crate.
pub fn conformance_with(agent: &str, rule: &str, body: impl Fn(&mut Session)) {
    if let Some(why) = sandbox::oracle_unavailable() {
        eprintln!("SKIP {rule}: {why}");
        return;
    }
    let mut kernel = match KernelBackend::start(agent) {
        Ok(k) => k,
        Err(why) => {
            eprintln!("SKIP {rule}: kernel oracle did not start: {why}");
            return;
        }
    };
    let expected = transcript_of(&mut kernel, &body);
    drop(kernel);
    if let Some(last) = expected.last().filter(|l| l.starts_with("PANIC")) {
        panic!("{rule}: the test body panicked on the kernel itself ({last}); transcript:\n{}", expected.join("\n"));
    }
    for mut backend in uipc_backends(agent) {
        let got = transcript_of(backend.as_mut(), &body);
        let listed = deviations::find(rule, backend.name());
        match (diff(&expected, &got), listed) {
            (None, None) => {}
            (Some(d), Some(dev)) => eprintln!("{rule}: known deviation on {}: {}\n{d}", backend.name(), dev.reason),
            (Some(d), None) => panic!("{rule}: {} differs from the kernel:\n{d}", backend.name()),
            (None, Some(_)) => panic!(
                "{rule}: listed in known-deviations.toml for {} but now matches the kernel: remove the entry",
                backend.name()
            ),
        }
    }
}
