//! Signing keys from `--sign-key FILE`: an ECDSA P-256 private key as PEM
//! (PKCS#8 `PRIVATE KEY`, SEC1 `EC PRIVATE KEY`), or cosign's encrypted
//! format (`ENCRYPTED SIGSTORE PRIVATE KEY`, formerly `ENCRYPTED COSIGN
//! PRIVATE KEY`: JSON naming scrypt and NaCl secretbox, sealing the PKCS#8
//! DER), whose password is `COSIGN_PASSWORD`. The key is loaded and checked
//! before anything is built; errors name the file and the fix, never the
//! password or any key material.
//!
//! Signatures are ECDSA-SHA256 in ASN.1 DER, deterministic (RFC 6979): an
//! unchanged image gets the same signature bytes on every run, so a rebuild
//! uploads nothing new. The key id (for DSSE) is the hex SHA-256 of the
//! public key's DER (SubjectPublicKeyInfo), the id go-securesystemslib
//! derives for a verifier that names none (as cosign's).

use std::path::Path;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use crypto_secretbox::XSalsa20Poly1305;
use crypto_secretbox::aead::{Aead, KeyInit};
use p256::ecdsa::SigningKey;
use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::der::pem;
use p256::pkcs8::{DecodePrivateKey, EncodePublicKey, ObjectIdentifier, PrivateKeyInfoRef};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::sign::{Signature, Signer};

/// The environment variable holding the password of an encrypted key (as
/// cosign reads it).
pub const PASSWORD_VARIABLE: &str = "COSIGN_PASSWORD";

/// Key files are a few hundred bytes; anything much larger is not one.
const KEY_FILE_LIMIT: u64 = 64 * 1024;

/// The largest scrypt memory (128·r·N bytes) and parallelism accepted from a
/// key file (cosign's N=2^15, r=8, p=1 takes 32 MiB): a crafted file must
/// not make the run compute for minutes or take gigabytes.
const MAX_SCRYPT_MEMORY: u64 = 256 * 1024 * 1024;
const MAX_SCRYPT_P: u32 = 16;

const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

/// How to make a key cargo-krust takes, for error messages.
const MAKE_A_KEY: &str = "make one with `cosign generate-key-pair` or `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out key.pem`";

/// An ECDSA P-256 private key that signs.
pub struct KeySigner {
    key: SigningKey,
    key_id: String,
}

impl std::fmt::Debug for KeySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself.
        f.debug_struct("KeySigner")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl KeySigner {
    fn new(key: SigningKey) -> Result<KeySigner> {
        let public = key
            .verifying_key()
            .to_public_key_der()
            .context("cannot encode the public key")?;
        Ok(KeySigner {
            key,
            key_id: hex::encode(Sha256::digest(public.as_bytes())),
        })
    }

    /// The public key as PEM (`PUBLIC KEY`), what `cosign verify --key` and
    /// skopeo's `keyPath` take.
    pub fn public_key_pem(&self) -> Result<String> {
        self.key
            .verifying_key()
            .to_public_key_pem(pem::LineEnding::LF)
            .context("cannot encode the public key")
    }

    /// The key id DSSE signatures carry.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }
}

impl Signer for KeySigner {
    fn sign(&self, message: &[u8]) -> Result<Signature> {
        let signature: p256::ecdsa::DerSignature = self.key.sign(message);
        Ok(Signature {
            bytes: signature.to_bytes().to_vec(),
            key_id: Some(self.key_id.clone()),
        })
    }
}

/// Loads the key of `--sign-key`, decrypting cosign's format with
/// `COSIGN_PASSWORD`.
pub fn load(path: &Path) -> Result<KeySigner> {
    let password =
        std::env::var_os(PASSWORD_VARIABLE).map(|value| Zeroizing::new(value.into_encoded_bytes()));
    load_with_password(path, password.as_deref().map(Vec::as_slice))
        .with_context(|| format!("cannot use signing key {}", path.display()))
}

fn load_with_password(path: &Path, password: Option<&[u8]>) -> Result<KeySigner> {
    let text = read_key_file(path)?;
    let key = parse_key(&text, password)?;
    KeySigner::new(key)
}

fn read_key_file(path: &Path) -> Result<Zeroizing<String>> {
    use std::io::Read as _;
    let unreadable = |what: &str| {
        format!(
            "it cannot be {what}; give --sign-key (or KRUST_SIGN_KEY) an ECDSA P-256 private key file ({MAKE_A_KEY})"
        )
    };
    let file = std::fs::File::open(path).with_context(|| unreadable("opened"))?;
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(KEY_FILE_LIMIT + 1)
        .read_to_end(&mut bytes)
        .with_context(|| unreadable("read"))?;
    if bytes.len() as u64 > KEY_FILE_LIMIT {
        bail!("it is larger than {KEY_FILE_LIMIT} bytes, so not a key file; {MAKE_A_KEY}");
    }
    match String::from_utf8(std::mem::take(&mut *bytes)) {
        Ok(text) => Ok(Zeroizing::new(text)),
        Err(_) => bail!("it is not a PEM file (not text); {MAKE_A_KEY}"),
    }
}

/// The signing key in a PEM key file's text.
pub fn parse_key(text: &str, password: Option<&[u8]>) -> Result<SigningKey> {
    let Some((label, block)) = pem_block(text) else {
        bail!("it holds no PEM block (-----BEGIN … -----); {MAKE_A_KEY}");
    };
    let der = || -> Result<Zeroizing<Vec<u8>>> {
        let (_, der) = pem::decode_vec(block.as_bytes())
            .map_err(|err| anyhow::anyhow!("its {label} block is not valid PEM ({err})"))?;
        Ok(Zeroizing::new(der))
    };
    match label {
        "PRIVATE KEY" => pkcs8_key(&der()?),
        "EC PRIVATE KEY" => {
            let secret = p256::SecretKey::from_sec1_der(&der()?).map_err(|_| {
                anyhow::anyhow!("its EC PRIVATE KEY is not a P-256 key; {MAKE_A_KEY}")
            })?;
            Ok(SigningKey::from(secret))
        }
        "ENCRYPTED SIGSTORE PRIVATE KEY" | "ENCRYPTED COSIGN PRIVATE KEY" => {
            let Some(password) = password else {
                bail!(
                    "it is encrypted (cosign's format) and {PASSWORD_VARIABLE} is not set; set {PASSWORD_VARIABLE} to its password"
                );
            };
            pkcs8_key(&decrypt_cosign_key(&der()?, password)?)
        }
        "ENCRYPTED PRIVATE KEY" => bail!(
            "it is a password-protected PKCS#8 key, which cargo-krust does not read; decrypt it with `openssl pkcs8 -in KEY -out plain.pem` or use cosign's encrypted format"
        ),
        "RSA PRIVATE KEY" => not_p256("an RSA key"),
        "OPENSSH PRIVATE KEY" => not_p256("an OpenSSH key"),
        other => bail!(
            "it holds a {} block, not a private key; {MAKE_A_KEY}",
            crate::registry::printable(other)
        ),
    }
}

fn not_p256<T>(what: &str) -> Result<T> {
    bail!("it is {what}, and cargo-krust signs with ECDSA P-256 keys only; {MAKE_A_KEY}")
}

/// The first PEM block of a text: its label and the block itself (explanatory
/// text around it is allowed, as RFC 7468 says).
fn pem_block(text: &str) -> Option<(&str, &str)> {
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start..];
    let label_end = rest["-----BEGIN ".len()..].find("-----")? + "-----BEGIN ".len();
    let label = &rest["-----BEGIN ".len()..label_end];
    let end_line = format!("-----END {label}-----");
    let end = rest.find(&end_line)? + end_line.len();
    Some((label, &rest[..end]))
}

/// A PKCS#8 private key, which must be ECDSA on P-256.
fn pkcs8_key(der: &[u8]) -> Result<SigningKey> {
    let info = PrivateKeyInfoRef::try_from(der)
        .map_err(|err| anyhow::anyhow!("its PRIVATE KEY is not PKCS#8 ({err}); {MAKE_A_KEY}"))?;
    let algorithm = info.algorithm.oid;
    if algorithm != OID_EC_PUBLIC_KEY {
        let name = match algorithm.to_string().as_str() {
            "1.2.840.113549.1.1.1" | "1.2.840.113549.1.1.10" => "an RSA key",
            "1.3.101.112" => "an Ed25519 key",
            "1.3.101.113" => "an Ed448 key",
            _ => "not an elliptic-curve key",
        };
        return not_p256(name);
    }
    match info.algorithm.parameters_oid() {
        Ok(curve) if curve == OID_P256 => {}
        Ok(curve) => {
            let name = match curve.to_string().as_str() {
                "1.3.132.0.34" => "P-384".to_string(),
                "1.3.132.0.35" => "P-521".to_string(),
                "1.3.132.0.10" => "secp256k1".to_string(),
                other => format!("curve {other}"),
            };
            return not_p256(&format!("an ECDSA key on {name}"));
        }
        Err(_) => bail!("its PRIVATE KEY names no curve; {MAKE_A_KEY}"),
    }
    SigningKey::from_pkcs8_der(der)
        .map_err(|err| anyhow::anyhow!("its P-256 PRIVATE KEY is malformed ({err}); {MAKE_A_KEY}"))
}

/// cosign's encrypted key: the JSON go-securesystemslib's `encrypted`
/// package writes.
#[derive(Deserialize)]
struct EncryptedKey {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    salt: String,
}

#[derive(Deserialize)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

/// The PKCS#8 DER inside cosign's encrypted key (the PEM block's bytes).
pub fn decrypt_cosign_key(document: &[u8], password: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let malformed = "it is not a valid cosign encrypted key";
    let key: EncryptedKey = serde_json::from_slice(document)
        .map_err(|err| anyhow::anyhow!("{malformed} ({err}); {MAKE_A_KEY}"))?;
    if key.kdf.name != "scrypt" || key.cipher.name != "nacl/secretbox" {
        bail!(
            "{malformed}: it uses {} with {}, where cosign's format has scrypt with nacl/secretbox",
            crate::registry::printable(&key.kdf.name),
            crate::registry::printable(&key.cipher.name)
        );
    }
    let ScryptParams { n, r, p } = key.kdf.params;
    let memory = 128u64.saturating_mul(u64::from(r)).saturating_mul(n);
    if !n.is_power_of_two() || memory > MAX_SCRYPT_MEMORY || p > MAX_SCRYPT_P {
        bail!("{malformed}: its scrypt parameters (N={n}, r={r}, p={p}) are out of range");
    }
    let log_n = u8::try_from(n.trailing_zeros()).unwrap_or(u8::MAX);
    let params = scrypt::Params::new(log_n, r, p)
        .map_err(|err| anyhow::anyhow!("{malformed}: its scrypt parameters are invalid ({err})"))?;
    let decode = |field: &str, value: &str| {
        STANDARD
            .decode(value)
            .map_err(|_| anyhow::anyhow!("{malformed}: its {field} is not base64"))
    };
    let salt = decode("salt", &key.kdf.salt)?;
    let nonce = decode("nonce", &key.cipher.nonce)?;
    let ciphertext = decode("ciphertext", &key.ciphertext)?;
    let nonce = <[u8; 24]>::try_from(nonce.as_slice())
        .map_err(|_| anyhow::anyhow!("{malformed}: its nonce is not 24 bytes"))?;
    let mut secret = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(password, &salt, &params, &mut secret[..])
        .map_err(|err| anyhow::anyhow!("cannot derive its key ({err})"))?;
    let cipher = XSalsa20Poly1305::new(&(*secret).into());
    cipher
        .decrypt(&nonce.into(), ciphertext.as_slice())
        .map(Zeroizing::new)
        .map_err(|_| {
            anyhow::anyhow!(
                "it does not decrypt with the password in {PASSWORD_VARIABLE}; set {PASSWORD_VARIABLE} to the key's password"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier as _;
    use p256::pkcs8::EncodePrivateKey;

    fn fixed_key() -> SigningKey {
        SigningKey::from_slice(&[7u8; 32]).unwrap()
    }

    fn pkcs8_pem(key: &SigningKey) -> String {
        key.to_pkcs8_pem(pem::LineEnding::LF).unwrap().to_string()
    }

    /// cosign's encrypted key of `key` under `password`, made as cosign
    /// does (scrypt then secretbox), with small scrypt parameters.
    fn cosign_pem(key: &SigningKey, password: &[u8], label: &str) -> String {
        let der = key.to_pkcs8_der().unwrap();
        let salt = [3u8; 32];
        let nonce = [5u8; 24];
        let mut secret = [0u8; 32];
        scrypt::scrypt(
            password,
            &salt,
            &scrypt::Params::new(10, 8, 1).unwrap(),
            &mut secret,
        )
        .unwrap();
        let sealed = XSalsa20Poly1305::new(&secret.into())
            .encrypt(&nonce.into(), der.as_bytes())
            .unwrap();
        let document = serde_json::json!({
            "kdf": {"name": "scrypt", "params": {"N": 1024, "r": 8, "p": 1}, "salt": STANDARD.encode(salt)},
            "cipher": {"name": "nacl/secretbox", "nonce": STANDARD.encode(nonce)},
            "ciphertext": STANDARD.encode(sealed),
        });
        pem::encode_string(
            label,
            pem::LineEnding::LF,
            &serde_json::to_vec(&document).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn every_accepted_format_gives_the_same_key() {
        let key = fixed_key();
        let sec1 = p256::SecretKey::from(*key.as_nonzero_scalar())
            .to_sec1_pem(pem::LineEnding::LF)
            .unwrap()
            .to_string();
        let texts = [
            (pkcs8_pem(&key), None),
            (format!("a comment\n{}", pkcs8_pem(&key)), None),
            (sec1, None),
            (
                cosign_pem(&key, b"pw", "ENCRYPTED SIGSTORE PRIVATE KEY"),
                Some(&b"pw"[..]),
            ),
            (
                cosign_pem(&key, b"", "ENCRYPTED COSIGN PRIVATE KEY"),
                Some(&b""[..]),
            ),
        ];
        for (text, password) in texts {
            let parsed = parse_key(&text, password).unwrap();
            assert_eq!(parsed.to_bytes(), key.to_bytes(), "{text}");
        }
    }

    #[test]
    fn refusals_say_why_and_how_to_fix() {
        let key = fixed_key();
        let encrypted = cosign_pem(&key, b"pw", "ENCRYPTED SIGSTORE PRIVATE KEY");
        let ed25519 = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";
        let cases: [(&str, Option<&[u8]>, &str); 7] = [
            ("garbage", None, "no PEM block"),
            (&encrypted, None, "COSIGN_PASSWORD is not set"),
            (&encrypted, Some(b"wrong"), "does not decrypt"),
            (ed25519, None, "an Ed25519 key"),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
                None,
                "an RSA key",
            ),
            (
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                None,
                "a CERTIFICATE block, not a private key",
            ),
            (
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                None,
                "not PKCS#8",
            ),
        ];
        for (text, password, expected) in cases {
            let err = format!("{:#}", parse_key(text, password).unwrap_err());
            assert!(err.contains(expected), "{err} lacks {expected}");
        }
    }

    #[test]
    fn hostile_scrypt_costs_are_refused_before_any_work() {
        let costs: [(u64, u32, u32); 4] = [
            (1 << 40, 8, 1),
            (1024, 1 << 20, 1),
            (1024, 8, 1000),
            (1000, 8, 1),
        ];
        for (n, r, p) in costs {
            let document = serde_json::json!({
                "kdf": {"name": "scrypt", "params": {"N": n, "r": r, "p": p}, "salt": ""},
                "cipher": {"name": "nacl/secretbox", "nonce": ""},
                "ciphertext": "",
            });
            let err = decrypt_cosign_key(&serde_json::to_vec(&document).unwrap(), b"")
                .unwrap_err()
                .to_string();
            assert!(err.contains("out of range"), "N={n} r={r} p={p}: {err}");
        }
    }

    #[test]
    fn signatures_are_deterministic_der_and_verify() {
        let signer = KeySigner::new(fixed_key()).unwrap();
        let first = signer.sign(b"payload").unwrap();
        assert_eq!(first, signer.sign(b"payload").unwrap());
        let signature = p256::ecdsa::DerSignature::try_from(first.bytes.as_slice()).unwrap();
        signer
            .key
            .verifying_key()
            .verify(b"payload", &signature)
            .unwrap();
        assert_eq!(first.key_id.as_deref(), Some(signer.key_id()));
        assert_eq!(signer.key_id().len(), 64);
        assert!(
            signer
                .public_key_pem()
                .unwrap()
                .starts_with("-----BEGIN PUBLIC KEY-----")
        );
        assert!(!format!("{signer:?}").contains("key:"));
    }
}
