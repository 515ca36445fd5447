//! How a host is reached and what potato leaves on it.
//!
//! Owns the host handle (`Remote`: one SSH session, the commands potato runs
//! there, the on-host agent, installed only by operations that change the host),
//! the on-host paths (`paths`), the push pipeline that streams a closure into a
//! host's store (`push`), and the parallel runner that works on many hosts at
//! once (`runner`). Shell words sent to a host are quoted by the one function,
//! `render::format::sh::word`. It does not decide what a deploy does (that is
//! `deploy`), build anything (`nix`), or print (callers get events).

pub mod paths;
pub mod push;
mod remote;
pub mod runner;

pub use remote::{AGENT_SCRIPT, HostError, HostState, Remote};
