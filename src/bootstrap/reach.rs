//! Finding a machine again when it does not answer at the address it had (a
//! reboot gave it another DHCP lease): knock on port 22 across the /24 around
//! the old address, which fills the kernel's neighbour table, then look the
//! machine's MAC addresses (from the hardware detection) up in /proc/net/arp.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// The IPv4 neighbours in `arp` (the text of /proc/net/arp) that have one of
/// `macs`, skipping incomplete entries.
pub fn neighbours_with_mac(arp: &str, macs: &[String]) -> Vec<Ipv4Addr> {
    arp.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (ip, flags, mac) = (f.first()?, f.get(2)?, f.get(3)?);
            let complete = *flags != "0x0";
            let ours = macs.iter().any(|m| m.eq_ignore_ascii_case(mac));
            (complete && ours).then(|| ip.parse().ok()).flatten()
        })
        .collect()
}

/// Addresses of the /24 around `near` whose `port` accepts a TCP connection
/// within `timeout`, probed 64 at a time.
pub fn knock(near: Ipv4Addr, port: u16, timeout: Duration) -> Vec<Ipv4Addr> {
    let [a, b, c, _] = near.octets();
    let all: Vec<Ipv4Addr> = (1..=254).map(|d| Ipv4Addr::new(a, b, c, d)).collect();
    let mut open = Vec::new();
    for chunk in all.chunks(64) {
        let handles: Vec<_> = chunk
            .iter()
            .map(|ip| {
                let ip = *ip;
                std::thread::spawn(move || {
                    TcpStream::connect_timeout(&SocketAddr::from((ip, port)), timeout)
                        .is_ok()
                        .then_some(ip)
                })
            })
            .collect();
        open.extend(handles.into_iter().filter_map(|h| h.join().ok().flatten()));
    }
    open
}

/// Where a machine with one of `macs` answers on `port` now, near `near`.
/// Only on a private LAN (10/8, 172.16/12, 192.168/16): a public /24 is
/// somebody else's network, and a MAC is only seen on the local link anyway.
pub fn find_by_mac(near: Ipv4Addr, port: u16, macs: &[String]) -> Option<Ipv4Addr> {
    if macs.is_empty() || !near.is_private() {
        return None;
    }
    let open = knock(near, port, Duration::from_millis(400));
    let arp = std::fs::read_to_string("/proc/net/arp").ok()?;
    neighbours_with_mac(&arp, macs)
        .into_iter()
        .find(|ip| open.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arp_entries_match_by_mac_ignoring_case_and_incomplete_ones() {
        let arp = "IP address       HW type     Flags       HW address            Mask     Device\n\
                   192.168.1.7      0x1         0x2         aa:bb:cc:dd:ee:01     *        eth0\n\
                   192.168.1.8      0x1         0x0         aa:bb:cc:dd:ee:02     *        eth0\n\
                   192.168.1.9      0x1         0x2         11:22:33:44:55:66     *        eth0\n";
        let macs = vec!["AA:BB:CC:DD:EE:01".to_string(), "aa:bb:cc:dd:ee:02".into()];
        assert_eq!(
            neighbours_with_mac(arp, &macs),
            vec![Ipv4Addr::new(192, 168, 1, 7)]
        );
        assert!(neighbours_with_mac(arp, &[]).is_empty());
    }
}
