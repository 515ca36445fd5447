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
mod substitute;

pub use remote::{AGENT_SCRIPT, CachePublish, Finished, HostError, HostState, Remote};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_on_a_host_is_exit_1_and_keeps_its_kind() {
        let e = crate::error::Error::remote(
            "n250",
            HostError::Locked {
                host: "n250".into(),
                holder: "potato deploy by a@b".into(),
            },
        );
        assert_eq!(e.exit_code(), crate::error::EXIT_FAILURE);
        assert_eq!(
            e.to_string(),
            "n250: another deploy holds n250's lock: potato deploy by a@b"
        );
        let crate::error::Error::Remote { source, .. } = &e else {
            panic!("{e:?}")
        };
        assert!(matches!(**source, HostError::Locked { .. }));
    }
}
