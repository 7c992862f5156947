//! `known-deviations.toml`: the differences from Linux that uipc admits,
//! as data (STYLE rule 13). The runner fails an unlisted mismatch and also a
//! listed deviation that now matches.

use serde::Deserialize;

/// One admitted difference.
#[derive(Clone, Debug, Deserialize)]
pub struct Deviation {
    /// The conformance test (SPEC rule id) it applies to.
    pub rule: String,
    /// The backends that differ (`core`, `daemon`, `preload`).
    pub backends: Vec<String>,
    /// Why, in a sentence; the long form is in `docs/deviations.md`.
    pub reason: String,
}

#[derive(Deserialize)]
struct File {
    #[serde(default)]
    deviation: Vec<Deviation>,
}

/// Where the file lives.
pub const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../uipc-conformance/known-deviations.toml");

/// Every listed deviation (empty if the file is absent).
pub fn load() -> Vec<Deviation> {
    let text = match std::fs::read_to_string(PATH) {
        Ok(t) => t,
        Err(_) => return Vec::new(),
    };
    match toml::from_str::<File>(&text) {
        Ok(f) => f.deviation,
        Err(e) => panic!("{PATH} does not parse: {e}"),
    }
}

/// The listed deviation for `rule` on `backend`, if any.
pub fn find(rule: &str, backend: &str) -> Option<Deviation> {
    load().into_iter().find(|d| d.rule == rule && d.backends.iter().any(|b| b == backend))
}
