//! What never leaves the machine: credentials in the code under review are replaced by
//! placeholders before any prompt is sent, and put back when a revision comes home. A revision
//! that still holds a placeholder (one the model invented or mangled) is refused, so a
//! placeholder is never written into the user's file. Files that are secrets by nature
//! (`.env*`, `*.pem`, `*.key`, `id_rsa*`, `.netrc`, kubeconfigs, …) are not reviewed at all
//! unless configured.
//!
//! Each review's placeholders carry a random part (`REDACTED_SECRET_k3f9qa_1`), so code that
//! itself holds placeholder-like text (this project's own tests) is neither mistaken for a
//! secret on the way back nor confused with one.
//!
//! No mature secret-scanning crate exists for Rust; this is the usual approach: a set of
//! patterns for known key formats, plus an entropy check for values assigned to names that
//! sound like secrets.
//!
//! `patterns.rs` finds secrets, `vault.rs` replaces and restores them, `files.rs` knows the
//! files that are secrets by nature and keeps the record's files private.

mod files;
mod patterns;
#[cfg(test)]
mod tests;
mod vault;

pub use files::{create_private, is_sensitive_file, is_sensitive_path, private};
pub use vault::{MIN_FRAGMENT, Secret, Vault};
