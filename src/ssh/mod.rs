//! SSH transport on libssh2 (the ssh2 crate): connect, verify the host key,
//! authenticate, run commands, stream data into them.
//!
//! Owns everything about one SSH session. It never decides what to run (that is
//! `deploy`), and every call blocks: callers run it on tokio's blocking pool, one
//! session per host. Commands run through `exec`, whose stdout and stderr are read
//! interleaved without blocking, so a chatty stderr cannot deadlock a full stdout.
//! What comes back is bounded and cleaned (`output`); host keys are checked
//! against pinned known_hosts files (`known_hosts`), and the host-key algorithm
//! is negotiated to present a pinned key type.

pub mod config;
mod jump;
pub mod known_hosts;
pub mod output;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use base64::Engine;
use camino::{Utf8Path, Utf8PathBuf};
use ssh2::MethodType;

use self::known_hosts::{Shown, Verdict};
use self::output::Capture;

use crate::plan::Target;

/// How to connect: identities, trust, timeouts.
#[derive(Debug, Clone)]
pub struct SshOptions {
    /// Explicit identity (`--identity`); else ssh-agent, then ~/.ssh/id_ed25519, id_rsa.
    pub identity: Option<Utf8PathBuf>,
    /// known_hosts files, searched in order.
    pub known_hosts: Vec<Utf8PathBuf>,
    /// Where `potato trust` records keys (the repo's secrets/known_hosts).
    pub trust_file: Utf8PathBuf,
    pub connect_timeout: Duration,
    /// ssh_config file (`--ssh-config`); default ~/.ssh/config.
    pub ssh_config: Option<Utf8PathBuf>,
    /// What `potato trust` needs to reach the host (`trust_hint`: its inventory
    /// name, and --target if given); jump hosts and unnamed targets get their
    /// address instead.
    pub host_name: Option<String>,
}

/// Everything that can go wrong talking to a host, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("ssh config: {0}")]
    Config(String),
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        host: String,
        source: std::io::Error,
    },
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("SSH handshake with {addr} failed: {message}")]
    Handshake { addr: String, message: String },
    #[error(
        "unknown host key for {host}: {presented}\n  not in {files}\n  if this fingerprint is right, trust it: potato trust {trust_arg}"
    )]
    UnknownHostKey {
        host: String,
        /// "TYPE SHA256:FINGERPRINT"
        presented: String,
        /// The files searched, then why `@cert-authority` lines for this
        /// host did not help, if any did match.
        files: String,
        trust_arg: String,
    },
    #[error(
        "HOST KEY CHANGED for {host}: it now presents {presented}, but {file} pins {pinned} for it.\n  Someone may be intercepting the connection, or the host was reinstalled.\n  potato refuses to connect. If the change is expected: potato trust {trust_arg} --replace"
    )]
    HostKeyChanged {
        host: String,
        /// "TYPE SHA256:FINGERPRINT"
        presented: String,
        file: String,
        /// The pinned keys, "TYPE FINGERPRINT" joined by " and ".
        pinned: String,
        trust_arg: String,
    },
    #[error(
        "REVOKED host key for {host}: it presents {presented}, which {file}:{line} marks @revoked.\n  potato refuses to connect, whatever else trusts this key."
    )]
    RevokedHostKey {
        host: String,
        /// "TYPE SHA256:FINGERPRINT"
        presented: String,
        file: String,
        line: usize,
    },
    #[error("known_hosts: {0}")]
    KnownHosts(#[from] known_hosts::KnownHostsError),
    #[error("authentication as {user}@{host} failed (tried: {tried})")]
    Auth {
        user: String,
        host: String,
        tried: String,
    },
    #[error("{what} on {host}: {message}")]
    Channel {
        host: String,
        what: String,
        message: String,
    },
}

/// A host key as presented by a server.
#[derive(Debug, Clone)]
pub struct HostKey {
    pub key_type: String,
    pub base64: String,
    pub fingerprint: String,
}

/// Output of a finished remote command. Each stream keeps at most its first
/// and last `limit` bytes (see `exec_with_limit`), with a marker where bytes
/// were cut.
#[derive(Debug, Clone)]
pub struct Output {
    pub code: i32,
    /// stdout as text safe to show (`output::clean`).
    pub stdout: String,
    /// stdout exactly as received, when nothing was cut (for binary protocols).
    pub stdout_raw: Vec<u8>,
    /// stderr as text safe to show (`output::clean`).
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == 0
    }
}

pub struct Session {
    sess: ssh2::Session,
    /// "user@host:port", for messages.
    pub label: String,
}

impl Session {
    /// Connects (through ProxyJump hosts when ~/.ssh/config says so), verifies
    /// the host key against known_hosts, authenticates. Each call is a new TCP
    /// connection: no multiplexing, ever.
    pub fn connect(target: &Target, opts: &SshOptions) -> Result<Session, SshError> {
        let cfg = config::Config::load(opts.ssh_config.as_deref()).map_err(SshError::Config)?;
        Self::connect_with(&cfg, target, opts, 0)
    }

    fn connect_with(
        cfg: &config::Config,
        target: &Target,
        opts: &SshOptions,
        depth: usize,
    ) -> Result<Session, SshError> {
        if depth > 4 {
            return Err(SshError::Config(format!(
                "more than 4 ProxyJump hops on the way to {}",
                target.host
            )));
        }
        let r = cfg
            .resolve(target, opts.identity.as_deref())
            .map_err(SshError::Config)?;
        // Only the final target is the inventory host named in hints.
        let mut hop_opts = opts.clone();
        hop_opts.host_name = None;
        let Some((first, rest)) = r.jumps.split_first() else {
            return Self::direct(&r, opts);
        };
        // Connect to the first jump host, then tunnel through each in turn.
        let mut hop = Self::connect_with(cfg, first, &hop_opts, depth + 1)?;
        for next in rest {
            let nr = cfg.resolve(next, None).map_err(SshError::Config)?;
            let stream = jump::tunnel(hop, &nr.host, nr.port)?;
            hop = Self::handshake(stream, &nr, &hop_opts)?;
        }
        let stream = jump::tunnel(hop, &r.host, r.port)?;
        Self::handshake(stream, &r, opts)
    }

    fn direct(r: &config::Resolved, opts: &SshOptions) -> Result<Session, SshError> {
        let addr_text = endpoint(&r.host, r.port);
        let addrs: Vec<_> = (r.host.as_str(), r.port)
            .to_socket_addrs()
            .map_err(|source| SshError::Resolve {
                host: r.host.clone(),
                source,
            })?
            .collect();
        let mut last = None;
        for a in &addrs {
            match TcpStream::connect_timeout(a, opts.connect_timeout) {
                Ok(tcp) => {
                    let _ = tcp.set_nodelay(true);
                    return Self::handshake(tcp, r, opts);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(SshError::Connect {
            addr: addr_text,
            source: last.unwrap_or_else(|| std::io::Error::new(ErrorKind::NotFound, "no address")),
        })
    }

    fn handshake(
        stream: impl AsRawFd + 'static,
        r: &config::Resolved,
        opts: &SshOptions,
    ) -> Result<Session, SshError> {
        let addr_text = endpoint(&r.host, r.port);
        let label = format!("{}@{addr_text}", r.user);
        let files = load_known_hosts(opts)?;
        let name = known_hosts_name(&r.host, r.port);
        let pinned = known_hosts::pinned_types(&files, &name);
        let sess = open_session(stream, &addr_text, opts.connect_timeout, &pinned)?;
        verify_host_key(&sess, &files, &r.host, r.port, opts)?;
        let mut auth_opts = opts.clone();
        auth_opts.identity = r.identity.clone();
        authenticate(&sess, &r.user, &r.host, &auth_opts)?;
        sess.set_keepalive(true, 15);
        // Long operations (imports, activations) are bounded by their own deadlines.
        sess.set_timeout(0);
        Ok(Session { sess, label })
    }

    /// Runs `command`, feeding it `stdin` (then EOF), and collects its output
    /// (at most `output::DEFAULT_LIMIT` bytes from each end of each stream).
    /// `progress` is called with the number of stdin bytes sent so far.
    pub fn exec_with(
        &self,
        command: &str,
        stdin: Option<&mut dyn Read>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Output, SshError> {
        self.exec_with_limit(command, stdin, progress, output::DEFAULT_LIMIT)
    }

    /// `exec_with`, keeping up to `limit` bytes from each end of each stream
    /// (what a binary reply of known size needs); the rest is read and dropped.
    pub fn exec_with_limit(
        &self,
        command: &str,
        stdin: Option<&mut dyn Read>,
        progress: &mut dyn FnMut(u64),
        limit: usize,
    ) -> Result<Output, SshError> {
        self.exec_until(command, stdin, progress, limit, None)
    }

    /// `exec`, giving up when the command has not ended within `within`: for
    /// a quick probe of a machine that may vanish mid-command (a reboot that
    /// takes its address away sends no FIN, and a read would wait for TCP to
    /// give up, many minutes later).
    pub fn exec_within(&self, command: &str, within: Duration) -> Result<Output, SshError> {
        self.exec_until(
            command,
            None,
            &mut |_| {},
            output::DEFAULT_LIMIT,
            Some(Instant::now() + within),
        )
    }

    fn exec_until(
        &self,
        command: &str,
        stdin: Option<&mut dyn Read>,
        progress: &mut dyn FnMut(u64),
        limit: usize,
        deadline: Option<Instant>,
    ) -> Result<Output, SshError> {
        let err = |what: &str, e: ssh2::Error| SshError::Channel {
            host: self.label.clone(),
            what: what.into(),
            message: e.to_string(),
        };
        let mut ch = self
            .sess
            .channel_session()
            .map_err(|e| err("opening a channel", e))?;
        ch.exec(command).map_err(|e| err("starting a command", e))?;
        let mut stdout = Capture::new(limit);
        let mut stderr = Capture::new(limit);
        if let Some(input) = stdin {
            let mut buf = vec![0u8; 256 * 1024];
            let mut sent = 0u64;
            loop {
                let n = input.read(&mut buf).map_err(|e| SshError::Channel {
                    host: self.label.clone(),
                    what: "reading local data".into(),
                    message: e.to_string(),
                })?;
                if n == 0 {
                    break;
                }
                write_patiently(&mut ch, &buf[..n]).map_err(|e| SshError::Channel {
                    host: self.label.clone(),
                    what: "sending data".into(),
                    message: e.to_string(),
                })?;
                sent += n as u64;
                progress(sent);
                // Keep the remote's output window open while we stream.
                drain_available(&self.sess, &mut ch, &mut stdout, &mut stderr);
            }
        }
        ch.send_eof().map_err(|e| err("closing stdin", e))?;
        read_to_end(&self.sess, &mut ch, &mut stdout, &mut stderr, deadline).map_err(|e| {
            SshError::Channel {
                host: self.label.clone(),
                what: "reading output".into(),
                message: e.to_string(),
            }
        })?;
        ch.wait_eof().map_err(|e| err("waiting for EOF", e))?;
        ch.wait_close().map_err(|e| err("closing the channel", e))?;
        let code = ch
            .exit_status()
            .map_err(|e| err("reading the exit status", e))?;
        let stdout = stdout.into_bytes();
        Ok(Output {
            code,
            stdout: output::clean(&stdout),
            stdout_raw: stdout,
            stderr: output::clean(&stderr.into_bytes()),
        })
    }

    pub fn exec(&self, command: &str) -> Result<Output, SshError> {
        self.exec_with(command, None, &mut |_| {})
    }

    /// The underlying libssh2 session, for long-lived channels (the deploy lock).
    pub fn raw(&self) -> &ssh2::Session {
        &self.sess
    }

    /// The server's host key (for `potato trust`).
    pub fn host_key(&self) -> Option<HostKey> {
        host_key_of(&self.sess)
    }
}

/// How long a host may read nothing of what we send before the write fails.
/// A host busy importing a large path onto slow storage (an SD card) can
/// pause for minutes; a dead one fails sooner through TCP itself.
const WRITE_STALL: Duration = Duration::from_secs(600);

/// Writes all of `data` to the channel, waiting out libssh2's keepalive
/// wake-ups. With keepalive on, a blocking wait longer than the keepalive
/// interval comes back as "Timed out waiting on socket" although nothing is
/// wrong (libssh2 `session.c`, `_libssh2_wait_socket`: its poll() is bounded
/// by the keepalive's `seconds_to_next`, and a poll that times out returns
/// LIBSSH2_ERROR_TIMEOUT even with no API timeout set). Such a write left
/// libssh2 as an EAGAIN does, so the same write is repeated, as long as the
/// host read something within `WRITE_STALL`.
fn write_patiently(ch: &mut ssh2::Channel, mut data: &[u8]) -> std::io::Result<()> {
    let mut progress_at = Instant::now();
    while !data.is_empty() {
        match ch.write(data) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => {
                data = &data[n..];
                progress_at = Instant::now();
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::TimedOut && progress_at.elapsed() < WRITE_STALL => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads whatever stdout/stderr data is ready, without blocking.
fn drain_available(
    sess: &ssh2::Session,
    ch: &mut ssh2::Channel,
    out: &mut Capture,
    err: &mut Capture,
) {
    sess.set_blocking(false);
    let mut buf = [0u8; 32 * 1024];
    loop {
        let a = ch.read(&mut buf).unwrap_or(0);
        out.push(&buf[..a]);
        let b = ch.stderr().read(&mut buf).unwrap_or(0);
        err.push(&buf[..b]);
        if a == 0 && b == 0 {
            break;
        }
    }
    sess.set_blocking(true);
}

/// Reads stdout and stderr interleaved until the remote closes both (or,
/// with a `deadline`, until it passes: `TimedOut`).
fn read_to_end(
    sess: &ssh2::Session,
    ch: &mut ssh2::Channel,
    out: &mut Capture,
    err: &mut Capture,
    deadline: Option<Instant>,
) -> std::io::Result<()> {
    sess.set_blocking(false);
    let mut buf = [0u8; 32 * 1024];
    let result = loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break Err(std::io::Error::new(
                ErrorKind::TimedOut,
                "the command did not end in time",
            ));
        }
        let mut progressed = false;
        match ch.read(&mut buf) {
            Ok(n) => {
                out.push(&buf[..n]);
                progressed |= n > 0;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => break Err(e),
        }
        match ch.stderr().read(&mut buf) {
            Ok(n) => {
                err.push(&buf[..n]);
                progressed |= n > 0;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => break Err(e),
        }
        if ch.eof() && !progressed {
            break Ok(());
        }
        if !progressed {
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    sess.set_blocking(true);
    result
}

fn host_key_of(sess: &ssh2::Session) -> Option<HostKey> {
    let (key, kind) = sess.host_key()?;
    let key_type = match kind {
        ssh2::HostKeyType::Rsa => "ssh-rsa",
        ssh2::HostKeyType::Dss => "ssh-dss",
        ssh2::HostKeyType::Ecdsa256 => "ecdsa-sha2-nistp256",
        ssh2::HostKeyType::Ecdsa384 => "ecdsa-sha2-nistp384",
        ssh2::HostKeyType::Ecdsa521 => "ecdsa-sha2-nistp521",
        ssh2::HostKeyType::Ed25519 => "ssh-ed25519",
        ssh2::HostKeyType::Unknown => "unknown",
    };
    Some(HostKey {
        key_type: key_type.to_string(),
        base64: base64::engine::general_purpose::STANDARD.encode(key),
        fingerprint: known_hosts::fingerprint(key),
    })
}

/// The known_hosts files in search order; the pin file must be well formed
/// (a broken pin must not silently hand the decision to ~/.ssh/known_hosts).
fn load_known_hosts(opts: &SshOptions) -> Result<Vec<known_hosts::File>, SshError> {
    let mut files = Vec::new();
    for path in &opts.known_hosts {
        let f = known_hosts::File::load(path)?;
        if *path == opts.trust_file {
            f.require_clean()?;
        }
        files.push(f);
    }
    Ok(files)
}

/// Host-key algorithms to offer: those presenting the pinned key types first,
/// then the rest libssh2 supports, without host certificates (never verified).
fn hostkey_preference(sess: &ssh2::Session, pinned: &[String]) -> String {
    let supported = sess.supported_algs(MethodType::HostKey).unwrap_or_default();
    let mut order: Vec<&str> = Vec::new();
    let wanted = pinned
        .iter()
        .flat_map(|t| known_hosts::algorithms_for(t))
        .chain(supported.iter().copied());
    for alg in wanted {
        if supported.contains(&alg) && !alg.contains("-cert-") && !order.contains(&alg) {
            order.push(alg);
        }
    }
    order.join(",")
}

/// A libssh2 session on `stream`, handshake done, nothing verified yet.
/// `pinned`: key types to have the server present, most wanted first.
fn open_session(
    stream: impl AsRawFd + 'static,
    addr: &str,
    timeout: Duration,
    pinned: &[String],
) -> Result<ssh2::Session, SshError> {
    let handshake_error = |e: ssh2::Error| SshError::Handshake {
        addr: addr.to_string(),
        message: e.to_string(),
    };
    let mut sess = ssh2::Session::new().map_err(handshake_error)?;
    sess.method_pref(MethodType::HostKey, &hostkey_preference(&sess, pinned))
        .map_err(handshake_error)?;
    sess.set_tcp_stream(stream);
    sess.set_timeout(timeout.as_millis() as u32);
    sess.handshake().map_err(handshake_error)?;
    Ok(sess)
}

fn endpoint(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The known_hosts name of a host: "host" on port 22, "[host]:port" otherwise.
pub fn known_hosts_name(host: &str, port: u16) -> String {
    known_hosts::host_name(host, port)
}

/// What `potato trust` needs to reach the inventory host `name`: the name, and
/// the `--target` the command was given, if any (for `SshOptions::host_name`).
pub fn trust_hint(name: &str, target_override: Option<String>) -> String {
    match target_override {
        Some(t) => format!("{name} --target {t}"),
        None => name.to_string(),
    }
}

/// What to pass to `potato trust` for this host: its inventory name when it
/// is the named target, else its address (and port).
fn trust_arg(host: &str, port: u16, opts: &SshOptions) -> String {
    opts.host_name.clone().unwrap_or_else(|| {
        let h = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        if port == 22 { h } else { format!("{h}:{port}") }
    })
}

/// "FILE, FILE", plus a note when `@cert-authority` lines named the host.
fn searched_files(opts: &SshOptions, ca_lines: &[String]) -> String {
    let files: Vec<String> = opts.known_hosts.iter().map(|f| f.to_string()).collect();
    let mut text = files.join(", ");
    if !ca_lines.is_empty() {
        text.push_str(&format!(
            "\n  {} trust a certificate authority for it (@cert-authority), but potato's SSH library cannot verify host certificates; pin the host key instead",
            ca_lines.join(", ")
        ));
    }
    text
}

fn shown_list(keys: &[Shown]) -> String {
    keys.iter()
        .map(|k| format!("{} {}", k.key_type, k.fingerprint))
        .collect::<Vec<_>>()
        .join(" and ")
}

fn verify_host_key(
    sess: &ssh2::Session,
    files: &[known_hosts::File],
    host: &str,
    port: u16,
    opts: &SshOptions,
) -> Result<(), SshError> {
    let presented = host_key_of(sess).ok_or_else(|| SshError::Handshake {
        addr: host.into(),
        message: "the server sent no host key".into(),
    })?;
    let (raw, _) = sess.host_key().expect("host key present, checked above");
    let name = known_hosts_name(host, port);
    let presented = format!("{} {}", presented.key_type, presented.fingerprint);
    match known_hosts::decide(files, &name, raw) {
        Verdict::Trusted { .. } => Ok(()),
        Verdict::Revoked { file, line } => Err(SshError::RevokedHostKey {
            host: name,
            presented: presented.clone(),
            file: file.to_string(),
            line,
        }),
        Verdict::Changed { file, pinned } => Err(SshError::HostKeyChanged {
            host: name,
            presented: presented.clone(),
            file: file.to_string(),
            pinned: shown_list(&pinned),
            trust_arg: trust_arg(host, port, opts),
        }),
        Verdict::Unknown { ca_lines } => Err(SshError::UnknownHostKey {
            host: name,
            presented: presented.clone(),
            files: searched_files(opts, &ca_lines),
            trust_arg: trust_arg(host, port, opts),
        }),
    }
}

fn authenticate(
    sess: &ssh2::Session,
    user: &str,
    host: &str,
    opts: &SshOptions,
) -> Result<(), SshError> {
    let mut tried = Vec::new();
    if let Some(id) = &opts.identity {
        tried.push(format!("key {id}"));
        if sess
            .userauth_pubkey_file(user, None, id.as_std_path(), None)
            .is_ok()
            && sess.authenticated()
        {
            return Ok(());
        }
    } else {
        if std::env::var_os("SSH_AUTH_SOCK").is_some() {
            tried.push("ssh-agent".into());
            if sess.userauth_agent(user).is_ok() && sess.authenticated() {
                return Ok(());
            }
        }
        if let Some(home) = std::env::var_os("HOME") {
            for name in ["id_ed25519", "id_ecdsa", "id_rsa"] {
                let p = Utf8PathBuf::from(home.to_string_lossy().as_ref())
                    .join(".ssh")
                    .join(name);
                if p.exists() {
                    tried.push(format!("key {p}"));
                    if sess
                        .userauth_pubkey_file(user, None, p.as_std_path(), None)
                        .is_ok()
                        && sess.authenticated()
                    {
                        return Ok(());
                    }
                }
            }
        }
    }
    if tried.is_empty() {
        tried.push("nothing: no --identity, no ssh-agent, no ~/.ssh/id_*".into());
    }
    Err(SshError::Auth {
        user: user.into(),
        host: host.into(),
        tried: tried.join(", "),
    })
}

/// Connects without verifying the key (only to show it), for `potato trust`;
/// jump hosts on the way (ProxyJump) are verified as always.
/// Returns the known_hosts name (address and port after ~/.ssh/config) and the key.
pub fn fetch_host_key(
    target: &Target,
    opts: &SshOptions,
) -> Result<(String, u16, HostKey), SshError> {
    let cfg = config::Config::load(opts.ssh_config.as_deref()).map_err(SshError::Config)?;
    let r = cfg.resolve(target, None).map_err(SshError::Config)?;
    let addr = endpoint(&r.host, r.port);
    // Ask for the key type already pinned, so a changed key is compared like for like.
    let pins = known_hosts::File::load(&opts.trust_file)?;
    let pinned = known_hosts::pinned_types(&[pins], &known_hosts_name(&r.host, r.port));
    let timeout = opts.connect_timeout;
    let sess = match r.jumps.split_first() {
        None => open_session(
            connect_tcp(&r.host, r.port, timeout)?,
            &addr,
            timeout,
            &pinned,
        )?,
        Some((first, rest)) => {
            // Jump hosts are verified like any connection; only the last hop is not.
            let mut hop_opts = opts.clone();
            hop_opts.host_name = None;
            let mut hop = Session::connect_with(&cfg, first, &hop_opts, 1)?;
            for next in rest {
                let nr = cfg.resolve(next, None).map_err(SshError::Config)?;
                let stream = jump::tunnel(hop, &nr.host, nr.port)?;
                hop = Session::handshake(stream, &nr, &hop_opts)?;
            }
            let stream = jump::tunnel(hop, &r.host, r.port)?;
            open_session(stream, &addr, timeout, &pinned)?
        }
    };
    let key = host_key_of(&sess).ok_or_else(|| SshError::Handshake {
        addr,
        message: "no host key".into(),
    })?;
    Ok((r.host, r.port, key))
}

/// A TCP connection to the first address of `host` that answers.
fn connect_tcp(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, SshError> {
    let addr = endpoint(host, port);
    let a = (host, port)
        .to_socket_addrs()
        .map_err(|source| SshError::Resolve {
            host: host.to_string(),
            source,
        })?
        .next()
        .ok_or_else(|| SshError::Connect {
            addr: addr.clone(),
            source: std::io::Error::new(ErrorKind::NotFound, "no address"),
        })?;
    TcpStream::connect_timeout(&a, timeout).map_err(|source| SshError::Connect { addr, source })
}

/// Where a presented key stands in the pin file (`opts.trust_file`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinCheck {
    /// Already pinned for this host.
    Pinned,
    /// The file pins nothing for this host.
    New,
    /// The file pins these other keys for this host.
    Differs(Vec<Shown>),
    /// A known_hosts file marks the key `@revoked` (file:line).
    Revoked(String),
}

/// Compares `key`, presented by `host:port`, with the pins and revocations.
pub fn check_pin(
    opts: &SshOptions,
    host: &str,
    port: u16,
    key: &HostKey,
) -> Result<PinCheck, SshError> {
    let files = load_known_hosts(opts)?;
    let pins = known_hosts::File::load(&opts.trust_file)?;
    pins.require_clean()?;
    let blob = base64::engine::general_purpose::STANDARD
        .decode(&key.base64)
        .unwrap_or_default();
    let name = known_hosts_name(host, port);
    if let Verdict::Revoked { file, line } =
        known_hosts::decide(&[files, vec![pins.clone()]].concat(), &name, &blob)
    {
        return Ok(PinCheck::Revoked(format!("{file}:{line}")));
    }
    let pinned: Vec<&known_hosts::Entry> = pins.pins_for(&name).collect();
    Ok(if pinned.is_empty() {
        PinCheck::New
    } else if pinned.iter().any(|e| e.key == blob) {
        PinCheck::Pinned
    } else {
        PinCheck::Differs(pinned.iter().map(|e| e.shown()).collect())
    })
}

/// Pins `key` for `host:port` in `file`: appended, or (`replace`) in place of
/// every key the file pinned for that host. Written to a temporary file and
/// renamed, so a failure leaves the old file.
pub fn pin_host_key(
    file: &Utf8Path,
    host: &str,
    port: u16,
    key: &HostKey,
    replace: bool,
) -> Result<(), SshError> {
    let io = |source| known_hosts::KnownHostsError::Io {
        path: file.to_path_buf(),
        source,
    };
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io(e).into()),
    };
    let name = known_hosts_name(host, port);
    let line = format!("{name} {} {}", key.key_type, key.base64);
    let new = if replace {
        known_hosts::replace_pins(file, &text, &name, &line)?
    } else {
        let sep = if text.is_empty() || text.ends_with('\n') {
            ""
        } else {
            "\n"
        };
        format!("{text}{sep}{line}\n")
    };
    let dir = file.parent().filter(|d| !d.as_str().is_empty());
    let dir = dir.unwrap_or(Utf8Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let mode = std::fs::metadata(file).map(|m| m.permissions());
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    tmp.write_all(new.as_bytes()).map_err(io)?;
    let mode = mode.unwrap_or_else(|_| std::os::unix::fs::PermissionsExt::from_mode(0o644));
    tmp.as_file().set_permissions(mode).map_err(io)?;
    tmp.persist(file).map_err(|e| io(e.error))?;
    Ok(())
}

/// Pins `key` as the one key of `host:port` in a known_hosts file (creating
/// it): keys pinned before for that exact host are replaced, not kept.
pub fn record_host_key(
    file: &Utf8Path,
    host: &str,
    port: u16,
    key: &HostKey,
) -> std::io::Result<()> {
    pin_host_key(file, host, port, key, true).map_err(|e| match e {
        SshError::KnownHosts(known_hosts::KnownHostsError::Io { source, .. }) => source,
        other => std::io::Error::other(other.to_string()),
    })
}

/// Polls `f` until it returns Some or `timeout` passes.
pub fn wait_for<T>(
    timeout: Duration,
    every: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(every);
    }
}
