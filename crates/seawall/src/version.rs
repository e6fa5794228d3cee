//! What this binary is: the package version and the git revision it was built from (see
//! `build.rs`), as `seawall --version` and `seawall_build_info` show them.

/// The package version, `0.1.0`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git revision: 12 hex digits, `-dirty` when built from a checkout with changes, or
/// `unknown` when built without the repository and without `SEAWALL_GIT_REVISION`.
pub const REVISION: &str = env!("SEAWALL_GIT_REVISION");

/// `seawall --version`'s text after the name: `0.1.0 (git 0123456789ab)`.
pub const LONG: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("SEAWALL_GIT_REVISION"),
    ")"
);
