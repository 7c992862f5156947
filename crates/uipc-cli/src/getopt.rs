//! `getopt_long(3)` as glibc does it, for the util-linux look-alikes
//! (`ipcs`, `ipcrm`, `ipcmk`, `lsipc`): short-option clusters (`-mt`),
//! attached or separate arguments (`-i0`, `-i 0`), optional arguments only
//! attached (`-ashm`, `--all=shm`), unambiguous prefixes of long options
//! (`--hum`), operands permuted to the end, `--` ending the options, and
//! glibc's own error sentences — so scripts written for util-linux see the
//! same behaviour and the same messages.
//!
//! # References
//!  - [getopt(3)](https://man7.org/linux/man-pages/man3/getopt.3.html)

/// Whether an option takes an argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HasArg {
    /// `no_argument`.
    No,
    /// `required_argument`.
    Required,
    /// `optional_argument`: only attached (`-ax`, `--all=x`).
    Optional,
}

/// One option: its short letter and/or long name, and its key in the result.
#[derive(Clone, Copy, Debug)]
pub struct Opt {
    /// The key the caller matches on.
    pub key: &'static str,
    /// `-x`.
    pub short: Option<char>,
    /// `--name`.
    pub long: Option<&'static str>,
    /// Its argument.
    pub arg: HasArg,
}

impl Opt {
    /// An option with a short and a long form.
    pub const fn new(key: &'static str, short: char, long: &'static str, arg: HasArg) -> Opt {
        Opt { key, short: Some(short), long: Some(long), arg }
    }

    /// A long-only option.
    pub const fn long(key: &'static str, long: &'static str, arg: HasArg) -> Opt {
        Opt { key, short: None, long: Some(long), arg }
    }
}

/// Options in command-line order, then the operands.
#[derive(Debug, Default)]
pub struct Parsed {
    /// `(key, argument)` in the order given.
    pub opts: Vec<(&'static str, Option<String>)>,
    /// Non-option arguments, in order.
    pub operands: Vec<String>,
}

/// Parses `args` (without `argv[0]`) as `getopt_long` would.
///
/// # Errors
/// glibc's message (without the `prog: ` prefix), e.g.
/// `invalid option -- 'Z'`, `unrecognized option '--foo'`,
/// `option requires an argument -- 'i'`.
pub fn parse(args: &[String], table: &[Opt]) -> Result<Parsed, String> {
    let mut out = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            out.operands.extend(args[i..].iter().cloned());
            break;
        }
        if let Some(body) = a.strip_prefix("--") {
            let (name, attached) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (body, None),
            };
            let opt = find_long(table, name)?;
            let long = opt.long.unwrap_or(name);
            let arg = match (opt.arg, attached) {
                (HasArg::No, Some(_)) => return Err(format!("option '--{long}' doesn't allow an argument")),
                (HasArg::No, None) => None,
                (HasArg::Optional, v) => v,
                (HasArg::Required, Some(v)) => Some(v),
                (HasArg::Required, None) => match args.get(i) {
                    Some(v) => {
                        i += 1;
                        Some(v.clone())
                    }
                    None => return Err(format!("option '--{long}' requires an argument")),
                },
            };
            out.opts.push((opt.key, arg));
        } else if a.len() > 1 && a.starts_with('-') {
            let chars: Vec<char> = a.chars().skip(1).collect();
            let mut j = 0;
            while j < chars.len() {
                let c = chars[j];
                j += 1;
                let Some(opt) = table.iter().find(|o| o.short == Some(c)) else {
                    return Err(format!("invalid option -- '{c}'"));
                };
                let rest: String = chars[j..].iter().collect();
                match opt.arg {
                    HasArg::No => out.opts.push((opt.key, None)),
                    HasArg::Optional => {
                        out.opts.push((opt.key, (!rest.is_empty()).then_some(rest)));
                        break;
                    }
                    HasArg::Required => {
                        if !rest.is_empty() {
                            out.opts.push((opt.key, Some(rest)));
                        } else if let Some(v) = args.get(i) {
                            i += 1;
                            out.opts.push((opt.key, Some(v.clone())));
                        } else {
                            return Err(format!("option requires an argument -- '{c}'"));
                        }
                        break;
                    }
                }
            }
        } else {
            out.operands.push(a.clone());
        }
    }
    Ok(out)
}

/// An exact long name, else the only option it abbreviates.
fn find_long<'t>(table: &'t [Opt], name: &str) -> Result<&'t Opt, String> {
    if let Some(o) = table.iter().find(|o| o.long == Some(name)) {
        return Ok(o);
    }
    let matches: Vec<&Opt> = table.iter().filter(|o| o.long.is_some_and(|l| l.starts_with(name))).collect();
    match matches.as_slice() {
        [o] if !name.is_empty() => Ok(o),
        [] => Err(format!("unrecognized option '--{name}'")),
        [first, rest @ ..] if rest.iter().all(|o| o.key == first.key) && !name.is_empty() => Ok(first),
        many => {
            let list: Vec<String> = many.iter().filter_map(|o| o.long).map(|l| format!("'--{l}'")).collect();
            Err(format!("option '--{name}' is ambiguous; possibilities: {}", list.join(" ")))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const T: &[Opt] = &[
        Opt::new("i", 'i', "id", HasArg::Required),
        Opt::new("m", 'm', "shmems", HasArg::No),
        Opt::new("a", 'a', "all", HasArg::Optional),
        Opt::long("human", "human", HasArg::No),
        Opt::long("help", "help", HasArg::No),
    ];

    fn p(a: &[&str]) -> Result<Parsed, String> {
        parse(&a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(), T)
    }

    #[test]
    fn clusters_prefixes_and_permutation() {
        let r = p(&["x", "-mi0", "--hum", "-a", "-ashm", "--all=sem", "--", "-m"]).unwrap();
        let keys: Vec<_> = r.opts.iter().map(|(k, v)| (*k, v.clone())).collect();
        assert_eq!(
            keys,
            vec![
                ("m", None),
                ("i", Some("0".into())),
                ("human", None),
                ("a", None),
                ("a", Some("shm".into())),
                ("a", Some("sem".into()))
            ]
        );
        assert_eq!(r.operands, vec!["x", "-m"]);
    }

    #[test]
    fn glibc_messages() {
        assert_eq!(p(&["-Z"]).unwrap_err(), "invalid option -- 'Z'");
        assert_eq!(p(&["-i"]).unwrap_err(), "option requires an argument -- 'i'");
        assert_eq!(p(&["--foo"]).unwrap_err(), "unrecognized option '--foo'");
        assert_eq!(p(&["--id"]).unwrap_err(), "option '--id' requires an argument");
        assert_eq!(p(&["--human=1"]).unwrap_err(), "option '--human' doesn't allow an argument");
        assert_eq!(p(&["--h"]).unwrap_err(), "option '--h' is ambiguous; possibilities: '--human' '--help'");
    }
}
