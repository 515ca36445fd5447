//! The Proxmox VE API client: just what `potato vm` needs (read a VM's config
//! and status, upload a disk image with content=import, create, resize and
//! start a VM, wait for tasks), authenticated with an API token.
//!
//! TLS: Proxmox ships a self-signed certificate, so a `fingerprint` (the
//! certificate's SHA-256, as the Proxmox UI shows it) pins it; without one the
//! usual web roots verify it. Errors carry the method, path and PVE's message.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ProxmoxError {
    #[error("{method} {path}: HTTP {status}: {message}")]
    Api {
        method: &'static str,
        path: String,
        status: u16,
        message: String,
    },
    #[error("{method} {path}: {message}")]
    Transport {
        method: &'static str,
        path: String,
        message: String,
    },
    #[error("task {upid} failed: {status}")]
    Task { upid: String, status: String },
    #[error("task {upid} did not finish within {secs}s")]
    TaskTimeout { upid: String, secs: u64 },
    #[error("{0}")]
    Config(String),
}

pub struct Client {
    base: String,
    auth: String,
    agent: ureq::Agent,
}

impl Client {
    /// `api` is the base URL ("https://host:8006"); `token` reads
    /// "USER@REALM!TOKENID=SECRET"; `fingerprint` is hex SHA-256 (colons allowed).
    pub fn new(api: &str, token: &str, fingerprint: Option<&str>) -> Result<Client, ProxmoxError> {
        let token = token.trim();
        let valid = token
            .split_once('!')
            .and_then(|(user, rest)| rest.split_once('=').map(|(id, secret)| (user, id, secret)))
            .is_some_and(|(user, id, secret)| {
                user.contains('@') && !id.is_empty() && !secret.is_empty()
            });
        if !valid {
            return Err(ProxmoxError::Config(
                "the Proxmox token secret must read USER@REALM!TOKENID=SECRET (e.g. potato@pve!deploy=…); store it with `potato secrets set NAME --shared`".into(),
            ));
        }
        let mut builder = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .timeout_read(Duration::from_secs(120));
        if let Some(fp) = fingerprint {
            builder = builder.tls_config(Arc::new(pinned_tls(fp)?));
        }
        Ok(Client {
            base: format!("{}/api2/json", api.trim_end_matches('/')),
            auth: format!("PVEAPIToken={token}"),
            agent: builder.build(),
        })
    }

    fn call(
        &self,
        method: &'static str,
        path: &str,
        form: &[(&str, String)],
    ) -> Result<Value, ProxmoxError> {
        let req = self
            .agent
            .request(method, &format!("{}{path}", self.base))
            .set("Authorization", &self.auth);
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let res = if method == "GET" {
            req.call()
        } else {
            req.send_form(&pairs)
        };
        self.answer(method, path, res)
    }

    fn answer(
        &self,
        method: &'static str,
        path: &str,
        res: Result<ureq::Response, ureq::Error>,
    ) -> Result<Value, ProxmoxError> {
        match res {
            Ok(r) => {
                let v: Value = r.into_json().map_err(|e| ProxmoxError::Transport {
                    method,
                    path: path.into(),
                    message: format!("not JSON: {e}"),
                })?;
                Ok(v.get("data").cloned().unwrap_or(Value::Null))
            }
            Err(ureq::Error::Status(status, r)) => {
                let reason = r.status_text().to_string();
                let body = r.into_string().unwrap_or_default();
                let message = serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| {
                        v.get("message")
                            .and_then(|m| m.as_str())
                            .map(str::to_string)
                    })
                    .unwrap_or(if body.trim().is_empty() { reason } else { body });
                Err(ProxmoxError::Api {
                    method,
                    path: path.into(),
                    status,
                    message: message.trim().to_string(),
                })
            }
            Err(e) => Err(ProxmoxError::Transport {
                method,
                path: path.into(),
                message: e.to_string(),
            }),
        }
    }

    /// The VM's configuration, or None when no VM has this vmid on the node.
    pub fn vm_config(&self, node: &str, vmid: u32) -> Result<Option<Value>, ProxmoxError> {
        match self.call("GET", &format!("/nodes/{node}/qemu/{vmid}/config"), &[]) {
            Ok(v) => Ok(Some(v)),
            // PVE answers a missing VM with 500 "Configuration file ... does not exist".
            Err(ProxmoxError::Api { message, .. }) if message.contains("does not exist") => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// "running", "stopped", ...
    pub fn vm_status(&self, node: &str, vmid: u32) -> Result<String, ProxmoxError> {
        let v = self.call(
            "GET",
            &format!("/nodes/{node}/qemu/{vmid}/status/current"),
            &[],
        )?;
        Ok(v["status"].as_str().unwrap_or("unknown").to_string())
    }

    /// Uploads a disk image to `storage` as content=import; returns the task.
    pub fn upload_import(
        &self,
        node: &str,
        storage: &str,
        file_name: &str,
        file: &std::path::Path,
    ) -> Result<String, ProxmoxError> {
        let path = format!("/nodes/{node}/storage/{storage}/upload");
        let boundary = format!("potato-{:x}", std::process::id() as u64 * 7919 + 17);
        let head = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"content\"\r\n\r\nimport\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"filename\"; filename=\"{file_name}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        );
        let tail = format!("\r\n--{boundary}--\r\n");
        let data = std::fs::File::open(file)
            .map_err(|e| ProxmoxError::Config(format!("{}: {e}", file.display())))?;
        let len = data.metadata().map(|m| m.len()).unwrap_or(0);
        let body = std::io::Cursor::new(head.clone().into_bytes())
            .chain(data)
            .chain(std::io::Cursor::new(tail.clone().into_bytes()));
        let res = self
            .agent
            .post(&format!("{}{path}", self.base))
            .set("Authorization", &self.auth)
            .set(
                "Content-Type",
                &format!("multipart/form-data; boundary={boundary}"),
            )
            .set(
                "Content-Length",
                &(head.len() as u64 + len + tail.len() as u64).to_string(),
            )
            .send(body);
        let v = self.answer("POST", &path, res)?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    pub fn create_vm(&self, node: &str, params: &[(&str, String)]) -> Result<String, ProxmoxError> {
        let v = self.call("POST", &format!("/nodes/{node}/qemu"), params)?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// Sets configuration options of an existing VM (synchronously).
    pub fn set_config(
        &self,
        node: &str,
        vmid: u32,
        params: &[(&str, String)],
    ) -> Result<Value, ProxmoxError> {
        self.call("PUT", &format!("/nodes/{node}/qemu/{vmid}/config"), params)
    }

    pub fn resize_disk(
        &self,
        node: &str,
        vmid: u32,
        disk: &str,
        size: &str,
    ) -> Result<Value, ProxmoxError> {
        self.call(
            "PUT",
            &format!("/nodes/{node}/qemu/{vmid}/resize"),
            &[("disk", disk.to_string()), ("size", size.to_string())],
        )
    }

    pub fn start_vm(&self, node: &str, vmid: u32) -> Result<String, ProxmoxError> {
        let v = self.call(
            "POST",
            &format!("/nodes/{node}/qemu/{vmid}/status/start"),
            &[],
        )?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// Polls a task until it stops; Ok when its exit status is "OK".
    pub fn wait_task(&self, node: &str, upid: &str, timeout: Duration) -> Result<(), ProxmoxError> {
        if upid.is_empty() {
            return Ok(());
        }
        let start = Instant::now();
        let path = format!("/nodes/{node}/tasks/{}/status", encode(upid));
        loop {
            let v = self.call("GET", &path, &[])?;
            if v["status"] == "stopped" {
                let exit = v["exitstatus"].as_str().unwrap_or("").to_string();
                return if exit == "OK" {
                    Ok(())
                } else {
                    Err(ProxmoxError::Task {
                        upid: upid.into(),
                        status: exit,
                    })
                };
            }
            if start.elapsed() > timeout {
                return Err(ProxmoxError::TaskTimeout {
                    upid: upid.into(),
                    secs: timeout.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// Percent-encodes a path segment (UPIDs contain ':' and '@').
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A rustls config that accepts exactly the certificate with this SHA-256.
fn pinned_tls(fingerprint: &str) -> Result<rustls::ClientConfig, ProxmoxError> {
    let hex: String = fingerprint.chars().filter(|c| *c != ':').collect();
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .filter_map(|i| {
            hex.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect();
    let sha256: [u8; 32] = bytes.try_into().map_err(|_| {
        ProxmoxError::Config(format!(
            "fingerprint `{fingerprint}` is not a SHA-256 (64 hex digits, colons allowed)"
        ))
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(Pinned {
        sha256,
        provider: provider.clone(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ProxmoxError::Config(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(config)
}

#[derive(Debug)]
struct Pinned {
    sha256: [u8; 32],
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use sha2::Digest;
        let got: [u8; 32] = sha2::Sha256::digest(end_entity.as_ref()).into();
        if got == self.sha256 {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the server's certificate does not match [proxmox] fingerprint".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
