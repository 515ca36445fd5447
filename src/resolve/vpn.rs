//! gluetun's VPN from the host file's `[vpn]`: validated (provider, private key
//! as a secret, tunnel addresses, and for a custom server its endpoint address
//! and public key) and rendered into gluetun's environment under the names its
//! documentation and source read (VPN_SERVICE_PROVIDER, WIREGUARD_PRIVATE_KEY,
//! WIREGUARD_ADDRESSES, WIREGUARD_PUBLIC_KEY, VPN_ENDPOINT_IP, VPN_ENDPOINT_PORT,
//! FIREWALL_OUTBOUND_SUBNETS). It does not decide which services share gluetun's
//! namespace (that is the catalog) nor check required variables (that is
//! `containers`, against the image contract).

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::{HostCx, is_wg_key};
use crate::catalog::EnvPart;
use crate::harden::firewall::parse_net;
use crate::inventory::ident::shown;
use crate::plan::ServicePlan;

/// The catalog service `[vpn]` configures.
const VPN_SERVICE: &str = "gluetun";

impl HostCx<'_> {
    /// Puts `[vpn]` into gluetun's environment. `[vpn]` without gluetun is an error.
    pub(super) fn vpn(
        &mut self,
        services: &mut [ServicePlan],
        zones: &BTreeMap<String, Vec<IpNet>>,
    ) {
        let Some(vpn) = self.host.raw.vpn.as_ref() else {
            return;
        };
        let span = vpn.span.clone();
        let vpn = &vpn.value;
        let Some(gluetun) = services.iter_mut().find(|s| s.name == VPN_SERVICE) else {
            self.error(
                &span,
                "[vpn] configures gluetun, but this host does not run it",
                "add \"gluetun\" to [containers] services, or remove [vpn]",
            );
            return;
        };
        let mut env: BTreeMap<String, Vec<EnvPart>> = BTreeMap::new();
        let text = |s: String| vec![EnvPart::Text(s)];

        let provider = vpn.provider.value.trim();
        let provider_ok = !provider.is_empty()
            && provider
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, ' ' | '-'));
        if !provider_ok {
            self.error(
                &vpn.provider.span,
                format!("`{}` is not a gluetun provider name", shown(provider)),
                "write \"custom\" for your own WireGuard server, or a provider gluetun lists, e.g. \"mullvad\"",
            );
        }
        env.insert("VPN_SERVICE_PROVIDER".into(), text(provider.to_string()));
        env.insert("VPN_TYPE".into(), text("wireguard".into()));
        if let Some(name) = self.secret(&vpn.private_key) {
            env.insert("WIREGUARD_PRIVATE_KEY".into(), vec![EnvPart::Secret(name)]);
        }

        let mut addresses = Vec::new();
        for a in &vpn.addresses {
            match parse_net(&a.value) {
                Some(n) => addresses.push(n.to_string()),
                None => self.error(
                    &a.span,
                    format!("`{}` is not a tunnel address", shown(&a.value)),
                    "write an address with its prefix, e.g. \"10.64.0.2/32\"",
                ),
            }
        }
        if vpn.addresses.is_empty() {
            self.error(
                &span,
                "[vpn] has no tunnel addresses",
                "add addresses = [\"10.64.0.2/32\"] (from your provider or server)",
            );
        }
        env.insert("WIREGUARD_ADDRESSES".into(), text(addresses.join(",")));

        let custom = provider == "custom";
        match (&vpn.endpoint, custom) {
            (Some(e), true) => match parse_endpoint(&e.value) {
                Ok((ip, port)) => {
                    env.insert("VPN_ENDPOINT_IP".into(), text(ip.to_string()));
                    env.insert("VPN_ENDPOINT_PORT".into(), text(port.to_string()));
                }
                Err(m) => self.error(
                    &e.span,
                    m,
                    "write the server as \"IP:PORT\", e.g. \"203.0.113.7:51820\"",
                ),
            },
            (None, true) => self.error(
                &span,
                "a custom VPN needs the server's `endpoint`",
                "add endpoint = \"IP:PORT\" (gluetun needs the server's address, not a name)",
            ),
            (Some(e), false) => self.error(
                &e.span,
                format!(
                    "`endpoint` is only for provider \"custom\"; gluetun knows {}'s servers",
                    shown(provider)
                ),
                "remove `endpoint`",
            ),
            (None, false) => {}
        }
        match (&vpn.server_public_key, custom) {
            (Some(k), true) => {
                if is_wg_key(&k.value) {
                    env.insert("WIREGUARD_PUBLIC_KEY".into(), text(k.value.clone()));
                } else {
                    self.error(
                        &k.span,
                        "`server_public_key` is not a WireGuard public key",
                        "paste the server's public key: 44 characters of base64 ending in '='",
                    );
                }
            }
            (None, true) => self.error(
                &span,
                "a custom VPN needs the server's `server_public_key`",
                "add server_public_key = \"...\" (the server's WireGuard public key)",
            ),
            (Some(k), false) => self.error(
                &k.span,
                format!(
                    "`server_public_key` is only for provider \"custom\"; gluetun knows {}'s keys",
                    shown(provider)
                ),
                "remove `server_public_key`",
            ),
            (None, false) => {}
        }
        // The namespace's members must still reach the LAN (and the LAN them).
        let lan: Vec<String> = zones
            .get("lan")
            .into_iter()
            .flatten()
            .filter(|n| matches!(n, IpNet::V4(_)))
            .map(|n| n.to_string())
            .collect();
        if !lan.is_empty() {
            env.insert("FIREWALL_OUTBOUND_SUBNETS".into(), text(lan.join(",")));
        }
        gluetun.env.extend(env);
    }
}

/// "IP:PORT" (an IPv6 address in brackets).
fn parse_endpoint(s: &str) -> Result<(IpAddr, u16), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("`{s}` is not \"IP:PORT\""))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = host.parse().map_err(|_| {
        format!("`{host}` is not an IP address: gluetun connects to an address, not a name")
    })?;
    let port = crate::catalog::parse_port(port)?;
    Ok((ip, port))
}

#[cfg(test)]
mod tests {
    use super::parse_endpoint;

    #[test]
    fn endpoints_are_addresses() {
        assert_eq!(
            parse_endpoint("203.0.113.7:51820").unwrap(),
            ("203.0.113.7".parse().unwrap(), 51820)
        );
        assert!(parse_endpoint("[2001:db8::1]:51820").is_ok());
        assert!(
            parse_endpoint("gw.example.net:51820")
                .unwrap_err()
                .contains("not an IP")
        );
        assert!(parse_endpoint("203.0.113.7").is_err());
    }
}
