//! Exit codes: one number per kind of failure, so scripts can tell a typo
//! from a missing file from a database that is down.

use std::fmt;

/// Text for `costtrace --help`.
pub(crate) const HELP: &str = "\
Exit codes:
  0  success
  1  any other failure (the message says what went wrong)
  2  bad arguments (as clap reports them); `prices calc`: the usage has no price
  3  an input file (import file, price overrides) could not be read
  4  the store could not be opened or reached (--database-url)
  5  `import` skipped bad lines (the good ones were imported)";

/// Bad arguments, also those clap cannot check (e.g. a malformed date).
pub(crate) const USAGE: u8 = 2;
/// An input file could not be read.
pub(crate) const INPUT: u8 = 3;
/// The store could not be opened or reached.
pub(crate) const STORE: u8 = 4;

/// `import` finished but skipped bad lines.
pub(crate) const BAD_LINES: u8 = 5;

/// An error that carries its exit code; `main` finds it under any context
/// added later.
#[derive(Debug)]
pub(crate) struct Coded {
    pub(crate) code: u8,
    error: anyhow::Error,
}

impl fmt::Display for Coded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

impl std::error::Error for Coded {}

/// Wraps `error` so the process exits with `code`.
pub(crate) fn coded(code: u8, error: impl Into<anyhow::Error>) -> anyhow::Error {
    anyhow::Error::new(Coded {
        code,
        error: error.into(),
    })
}

/// The exit code for a failed command.
pub(crate) fn code_of(e: &anyhow::Error) -> u8 {
    e.chain()
        .find_map(|c| c.downcast_ref::<Coded>())
        .map_or(1, |c| c.code)
}

/// Whether `e` is a write to a closed pipe.
pub(crate) fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
