//! ProxyJump: reaching a host through another one's direct-tcpip channel.
//!
//! libssh2 needs a file descriptor as its transport, so the new session gets one
//! end of a Unix socket pair, and a thread pumps bytes between the other end and
//! the jump host's channel. The thread owns the jump session and ends when
//! either side closes.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::{Session, SshError};

/// Opens a channel from `jump` to `host:port` and returns the local end.
pub fn tunnel(jump: Session, host: &str, port: u16) -> Result<UnixStream, SshError> {
    let fail = |what: &str, message: String| SshError::Channel {
        host: jump.label.clone(),
        what: what.into(),
        message,
    };
    let channel = jump
        .sess
        .channel_direct_tcpip(host, port, None)
        .map_err(|e| fail(&format!("opening a tunnel to {host}:{port}"), e.to_string()))?;
    let (ours, theirs) =
        UnixStream::pair().map_err(|e| fail("creating a socket pair", e.to_string()))?;
    theirs
        .set_read_timeout(Some(Duration::from_millis(2)))
        .map_err(|e| fail("configuring the tunnel", e.to_string()))?;
    std::thread::spawn(move || pump(jump, channel, theirs));
    Ok(ours)
}

fn pump(jump: Session, mut channel: ssh2::Channel, mut sock: UnixStream) {
    jump.sess.set_blocking(false);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut idle = true;
        match channel.read(&mut buf) {
            Ok(0) if channel.eof() => break,
            Ok(0) => {}
            Ok(n) => {
                idle = false;
                if sock.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
        match sock.read(&mut buf) {
            Ok(0) => break, // our session closed its end
            Ok(n) => {
                idle = false;
                if write_all(&mut channel, &buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
        if idle && channel.eof() {
            break;
        }
    }
    let _ = channel.close();
    drop(jump);
}

/// write_all for a channel of a non-blocking session.
fn write_all(channel: &mut ssh2::Channel, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        match channel.write(data) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_micros(200))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
