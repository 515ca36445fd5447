//! The cache's signing key in Nix's format (Ed25519, via `ring`).
//!
//! Nix writes both halves as "<name>:<base64>": the secret key is libsodium's
//! 64-byte form (the 32-byte seed followed by the 32-byte public key), the
//! public key the 32 bytes (`nix key generate-secret`, "Format":
//! https://github.com/NixOS/nix/blob/master/src/nix/key-generate-secret.md;
//! `nix-store --generate-binary-cache-key`). tests/cache.rs proves the format
//! with real Nix (`nix store sign --key-file` / `nix store verify
//! --trusted-public-keys`). Pure: no I/O but the OS random source.

use base64::Engine;
use ring::signature::{Ed25519KeyPair, KeyPair};
use thiserror::Error;

/// A key pair as Nix writes it.
pub struct NixKeyPair {
    /// "<name>:<base64 of seed || public>" (the secret's value).
    pub secret: String,
    /// "<name>:<base64 of public>" (`trusted-public-keys`).
    pub public: String,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum KeyError {
    #[error(
        "`{0}` is not a key name: use letters, digits, '.', '-' and '_' (e.g. potato-fleet-cache-1)"
    )]
    BadName(String),
    #[error("it is not \"<name>:<base64>\"")]
    NoName,
    #[error("its key data is not base64")]
    NotBase64,
    #[error("its key data is {0} bytes, not {1}")]
    WrongLength(usize, usize),
    #[error("its key data is not an Ed25519 key pair")]
    NotAKeyPair,
}

/// A key name Nix accepts and that is safe anywhere: nonempty, at most 64
/// characters, letters, digits, '.', '-', '_' (Nix splits at the first ':').
pub fn check_name(name: &str) -> Result<(), KeyError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        && !name.starts_with(['.', '-']);
    if ok {
        Ok(())
    } else {
        Err(KeyError::BadName(name.to_string()))
    }
}

/// A new key pair named `name`.
pub fn generate(name: &str) -> Result<NixKeyPair, KeyError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("the OS random source works");
    from_seed(name, &seed)
}

/// The key pair of a 32-byte seed (deterministic: for tests and `generate`).
pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<NixKeyPair, KeyError> {
    check_name(name)?;
    let pair = Ed25519KeyPair::from_seed_unchecked(seed).map_err(|_| KeyError::NotAKeyPair)?;
    let public = pair.public_key().as_ref();
    let mut secret = Vec::with_capacity(64);
    secret.extend_from_slice(seed);
    secret.extend_from_slice(public);
    let b64 = &base64::engine::general_purpose::STANDARD;
    Ok(NixKeyPair {
        secret: format!("{name}:{}", b64.encode(&secret)),
        public: format!("{name}:{}", b64.encode(public)),
    })
}

/// Splits "<name>:<base64>" into the name and the decoded bytes, which must
/// be `len` long.
fn split(text: &str, len: usize) -> Result<(&str, Vec<u8>), KeyError> {
    let (name, data) = text.split_once(':').ok_or(KeyError::NoName)?;
    check_name(name)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|_| KeyError::NotBase64)?;
    if bytes.len() != len {
        return Err(KeyError::WrongLength(bytes.len(), len));
    }
    Ok((name, bytes))
}

/// Checks a public key ("<name>:<base64 of 32 bytes>"); returns its name.
pub fn parse_public(text: &str) -> Result<&str, KeyError> {
    split(text, 32).map(|(name, _)| name)
}

/// The public key of a secret key ("<name>:<base64 of 64 bytes>"), checking
/// that its second half is the public key of its seed.
pub fn public_of_secret(text: &str) -> Result<String, KeyError> {
    let (name, bytes) = split(text, 64)?;
    let seed: [u8; 32] = bytes[..32].try_into().expect("64 bytes");
    let pair = from_seed(name, &seed)?;
    if pair.secret != text {
        return Err(KeyError::NotAKeyPair);
    }
    Ok(pair.public)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8032, section 7.1, TEST 1: a known seed and its public key.
    const RFC8032_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const RFC8032_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn a_known_seed_gives_the_rfc_public_key() {
        let seed: [u8; 32] = hex(RFC8032_SEED).try_into().unwrap();
        let pair = from_seed("k-1", &seed).unwrap();
        let b64 = &base64::engine::general_purpose::STANDARD;
        assert_eq!(
            pair.public,
            format!("k-1:{}", b64.encode(hex(RFC8032_PUBLIC)))
        );
        let mut both = hex(RFC8032_SEED);
        both.extend(hex(RFC8032_PUBLIC));
        assert_eq!(pair.secret, format!("k-1:{}", b64.encode(both)));
    }

    #[test]
    fn generated_pairs_differ_and_parse() {
        let a = generate(crate::cache::DEFAULT_KEY_NAME).unwrap();
        let b = generate(crate::cache::DEFAULT_KEY_NAME).unwrap();
        assert_ne!(a.secret, b.secret);
        assert!(a.public.starts_with("potato-fleet-cache-1:"));
        assert_eq!(parse_public(&a.public), Ok("potato-fleet-cache-1"));
        assert_eq!(public_of_secret(&a.secret).unwrap(), a.public);
        assert_eq!(
            public_of_secret(&a.public),
            Err(KeyError::WrongLength(32, 64))
        );
    }

    #[test]
    fn bad_names_and_keys_are_refused() {
        for name in ["", "a:b", "a b", "-x", &"x".repeat(65), "ü"] {
            assert!(generate(name).is_err(), "{name:?}");
        }
        assert_eq!(parse_public("nocolon"), Err(KeyError::NoName));
        assert_eq!(parse_public("k:!!!"), Err(KeyError::NotBase64));
        assert_eq!(parse_public("k:AAAA"), Err(KeyError::WrongLength(3, 32)));
        // A secret whose public half does not belong to its seed.
        let a = generate("k").unwrap();
        let b = generate("k").unwrap();
        let b64 = &base64::engine::general_purpose::STANDARD;
        let mut mixed = b64.decode(&a.secret[2..]).unwrap();
        mixed[32..].copy_from_slice(&b64.decode(&b.public[2..]).unwrap());
        assert_eq!(
            public_of_secret(&format!("k:{}", b64.encode(mixed))),
            Err(KeyError::NotAKeyPair)
        );
    }
}
