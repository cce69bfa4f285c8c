//! Providers behind HTTP: one request streamed with a stall timeout, retries with backoff
//! (`Retry-After` honoured), the structured-output fallback remembered per endpoint, and
//! cancellation (which drops the connection). What differs between the wire formats is asked
//! of `Wire` (`llm/wire.rs`); this module knows none of them.
//!
//! Its parts, each using only the ones listed after it: `retry` (a call: attempts, the rate
//! limit's turn, retries, the fallback), `exchange` (one attempt: send, status, the streamed
//! reply), `provider` ([`HttpProvider`]: the endpoint as configured, the request body, the
//! remembered mode, `list_models`), `net` (bounded reads, `Retry-After`, redirects, loopback).

mod exchange;
mod net;
mod provider;
mod retry;

pub use net::is_loopback;
pub use provider::HttpProvider;
