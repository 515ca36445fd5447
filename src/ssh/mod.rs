//! SSH transport on libssh2 (the ssh2 crate): connect, verify the host key,
//! authenticate, run commands, stream data into them.
//!
//! Owns everything about one SSH session. It never decides what to run (that is
//! `deploy`), and every call blocks: callers run it on tokio's blocking pool, one
//! session per host. Commands run through `exec`, whose stdout and stderr are read
//! interleaved without blocking, so a chatty stderr cannot deadlock a full stdout.

pub mod config;
mod jump;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use base64::Engine;
use camino::{Utf8Path, Utf8PathBuf};
use ssh2::{CheckResult, HashType, KnownHostFileKind};

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
    /// The inventory name of the host being reached, for `potato trust NAME` hints.
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
        "unknown host key for {host}: {key_type} {fingerprint}\n  not in {files}\n  if this fingerprint is right, trust it: potato trust {trust_arg}"
    )]
    UnknownHostKey {
        host: String,
        key_type: String,
        fingerprint: String,
        files: String,
        trust_arg: String,
    },
    #[error(
        "HOST KEY CHANGED for {host}: it now presents {key_type} {fingerprint}, which differs from the key recorded in {files}.\n  Someone may be intercepting the connection, or the host was reinstalled.\n  potato refuses to connect. If the change is expected, remove the old line and run `potato trust`."
    )]
    HostKeyChanged {
        host: String,
        key_type: String,
        fingerprint: String,
        files: String,
    },
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

/// Output of a finished remote command.
#[derive(Debug, Clone)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    /// stdout exactly as received (for binary protocols).
    pub stdout_raw: Vec<u8>,
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
        let Some((first, rest)) = r.jumps.split_first() else {
            return Self::direct(&r, opts);
        };
        // Connect to the first jump host, then tunnel through each in turn.
        let mut hop = Self::connect_with(cfg, first, opts, depth + 1)?;
        for next in rest {
            let nr = cfg.resolve(next, None).map_err(SshError::Config)?;
            let stream = jump::tunnel(hop, &nr.host, nr.port)?;
            hop = Self::handshake(stream, &nr, opts)?;
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
        let sess = open_session(stream, &addr_text, opts.connect_timeout)?;
        verify_host_key(&sess, &r.host, r.port, opts)?;
        let mut auth_opts = opts.clone();
        auth_opts.identity = r.identity.clone();
        authenticate(&sess, &r.user, &r.host, &auth_opts)?;
        sess.set_keepalive(true, 15);
        // Long operations (imports, activations) are bounded by their own deadlines.
        sess.set_timeout(0);
        Ok(Session { sess, label })
    }

    /// Runs `command`, feeding it `stdin` (then EOF), and collects its output.
    /// `progress` is called with the number of stdin bytes sent so far.
    pub fn exec_with(
        &self,
        command: &str,
        stdin: Option<&mut dyn Read>,
        progress: &mut dyn FnMut(u64),
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
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
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
                ch.write_all(&buf[..n]).map_err(|e| SshError::Channel {
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
        read_to_end(&self.sess, &mut ch, &mut stdout, &mut stderr).map_err(|e| {
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
        Ok(Output {
            code,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stdout_raw: stdout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
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

/// Reads whatever stdout/stderr data is ready, without blocking.
fn drain_available(
    sess: &ssh2::Session,
    ch: &mut ssh2::Channel,
    out: &mut Vec<u8>,
    err: &mut Vec<u8>,
) {
    sess.set_blocking(false);
    let mut buf = [0u8; 32 * 1024];
    loop {
        let a = ch.read(&mut buf).unwrap_or(0);
        out.extend_from_slice(&buf[..a]);
        let b = ch.stderr().read(&mut buf).unwrap_or(0);
        err.extend_from_slice(&buf[..b]);
        if a == 0 && b == 0 {
            break;
        }
    }
    sess.set_blocking(true);
}

/// Reads stdout and stderr interleaved until the remote closes both.
fn read_to_end(
    sess: &ssh2::Session,
    ch: &mut ssh2::Channel,
    out: &mut Vec<u8>,
    err: &mut Vec<u8>,
) -> std::io::Result<()> {
    sess.set_blocking(false);
    let mut buf = [0u8; 32 * 1024];
    let result = loop {
        let mut progressed = false;
        match ch.read(&mut buf) {
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                progressed |= n > 0;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => break Err(e),
        }
        match ch.stderr().read(&mut buf) {
            Ok(n) => {
                err.extend_from_slice(&buf[..n]);
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
    let hash = sess.host_key_hash(HashType::Sha256)?;
    Some(HostKey {
        key_type: key_type.to_string(),
        base64: base64::engine::general_purpose::STANDARD.encode(key),
        fingerprint: format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(hash)
        ),
    })
}

/// A libssh2 session on `stream`, handshake done, nothing verified yet.
fn open_session(
    stream: impl AsRawFd + 'static,
    addr: &str,
    timeout: Duration,
) -> Result<ssh2::Session, SshError> {
    let handshake_error = |e: ssh2::Error| SshError::Handshake {
        addr: addr.to_string(),
        message: e.to_string(),
    };
    let mut sess = ssh2::Session::new().map_err(handshake_error)?;
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
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

fn verify_host_key(
    sess: &ssh2::Session,
    host: &str,
    port: u16,
    opts: &SshOptions,
) -> Result<(), SshError> {
    let presented = host_key_of(sess).ok_or_else(|| SshError::Handshake {
        addr: host.into(),
        message: "the server sent no host key".into(),
    })?;
    let (raw, _) = sess.host_key().expect("host key present, checked above");
    let mut mismatch_in = Vec::new();
    let mut searched = Vec::new();
    for file in &opts.known_hosts {
        if !file.exists() {
            continue;
        }
        searched.push(file.to_string());
        let mut kh = sess.known_hosts().map_err(|e| SshError::Handshake {
            addr: host.into(),
            message: e.to_string(),
        })?;
        if kh
            .read_file(file.as_std_path(), KnownHostFileKind::OpenSSH)
            .is_err()
        {
            continue;
        }
        match kh.check_port(host, port, raw) {
            CheckResult::Match => return Ok(()),
            CheckResult::Mismatch => mismatch_in.push(file.to_string()),
            CheckResult::NotFound | CheckResult::Failure => {}
        }
    }
    if !mismatch_in.is_empty() {
        return Err(SshError::HostKeyChanged {
            host: known_hosts_name(host, port),
            key_type: presented.key_type,
            fingerprint: presented.fingerprint,
            files: mismatch_in.join(", "),
        });
    }
    let files = if searched.is_empty() {
        opts.known_hosts
            .iter()
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        searched.join(", ")
    };
    Err(SshError::UnknownHostKey {
        host: known_hosts_name(host, port),
        key_type: presented.key_type,
        fingerprint: presented.fingerprint,
        files,
        trust_arg: opts.host_name.clone().unwrap_or_else(|| host.to_string()),
    })
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

/// Connects without verifying the key (only to show it), for `potato trust`.
/// Returns the known_hosts name (address and port after ~/.ssh/config) and the key.
pub fn fetch_host_key(
    target: &Target,
    opts: &SshOptions,
) -> Result<(String, u16, HostKey), SshError> {
    let cfg = config::Config::load(opts.ssh_config.as_deref()).map_err(SshError::Config)?;
    let r = cfg.resolve(target, None).map_err(SshError::Config)?;
    if !r.jumps.is_empty() {
        return Err(SshError::Config(format!(
            "{} is reached through ProxyJump; add its key to {} by hand (ssh-keyscan on the jump host)",
            target.host, opts.trust_file
        )));
    }
    let addr = endpoint(&r.host, r.port);
    let a = (r.host.as_str(), r.port)
        .to_socket_addrs()
        .map_err(|source| SshError::Resolve {
            host: r.host.clone(),
            source,
        })?
        .next()
        .ok_or_else(|| SshError::Connect {
            addr: addr.clone(),
            source: std::io::Error::new(ErrorKind::NotFound, "no address"),
        })?;
    let tcp = TcpStream::connect_timeout(&a, opts.connect_timeout).map_err(|source| {
        SshError::Connect {
            addr: addr.clone(),
            source,
        }
    })?;
    let sess = open_session(tcp, &addr, opts.connect_timeout)?;
    let key = host_key_of(&sess).ok_or_else(|| SshError::Handshake {
        addr,
        message: "no host key".into(),
    })?;
    Ok((r.host, r.port, key))
}

/// Appends `host key` to a known_hosts file (creating it).
pub fn record_host_key(
    file: &Utf8Path,
    host: &str,
    port: u16,
    key: &HostKey,
) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)?;
    writeln!(
        f,
        "{} {} {}",
        known_hosts_name(host, port),
        key.key_type,
        key.base64
    )
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
