//! Running a command that comes from a workspace (`verify.command`): a cloned repository is
//! untrusted input. The command runs in a scratch copy kept in a private folder (never the
//! shared `/tmp`, where tools look for configuration in parent folders), with an allowlisted
//! environment that holds no credentials, in a process group of its own that is killed on
//! timeout, cancellation or drop, with bounded output and, where bubblewrap works, without
//! network, on a read-only filesystem with the credential stores hidden.
//!
//! `scratch.rs` keeps the private folder, `env.rs` the environment, `bwrap.rs` the sandbox,
//! `run.rs` the run itself, `copy.rs` the copy of a workspace into its scratch folder.

mod bwrap;
mod copy;
mod env;
mod home;
mod run;
mod scratch;

pub use bwrap::{Sandbox, describe, detect};
pub use copy::{MAX_COPY_BYTES, SKIP, copy_tree};
pub use env::clean_env;
pub use home::Home;
pub use run::{Run, RunError, RunResult};
pub use scratch::private_dir;

/// Whether commands run in the bubblewrap sandbox here.
pub fn available() -> bool {
    matches!(detect(), Sandbox::Bwrap(_))
}
