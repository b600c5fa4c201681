//! Test keys and certificates, made with the `openssl` command: a CA and a
//! server certificate for 127.0.0.1 shaped the way rustls insists on
//! (`CA:TRUE` + `keyCertSign` on the CA, an IP subjectAltName and
//! `serverAuth` on the server), and an RSA key with a self-signed
//! certificate that signs the token server's RS256 JWTs; P-256 signing keys.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;

use super::process::run_ok;
use super::tools;

const TIMEOUT: Duration = Duration::from_secs(60);

fn openssl() -> Command {
    Command::new(tools::require("openssl", "openssl"))
}

/// A CA and a server certificate it signed, in PEM files.
#[derive(Debug, Clone)]
pub struct ServerPki {
    /// The CA certificate (what a client must trust).
    pub ca_cert: PathBuf,
    /// The server certificate for 127.0.0.1 and localhost.
    pub server_cert: PathBuf,
    /// The server's private key.
    pub server_key: PathBuf,
}

/// A self-signed CA named `name`, as `dir/NAME.crt` and `dir/NAME.key`.
pub fn make_ca(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    run_ok(
        openssl()
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
            .args(["-subj", &format!("/CN=cargo-krust test {name}")])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
        TIMEOUT,
        "openssl: make a test CA",
    );
    (cert, key)
}

/// A fresh CA and a server certificate signed by it, in `dir`.
pub fn make_server_pki(dir: &Path) -> ServerPki {
    let (ca_cert, ca_key) = make_ca(dir, "ca");
    let server_key = dir.join("server.key");
    let csr = dir.join("server.csr");
    let server_cert = dir.join("server.crt");
    let extensions = dir.join("server.ext");
    std::fs::write(
        &extensions,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n\
         extendedKeyUsage=serverAuth\n\
         basicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\n",
    )
    .expect("write server.ext");
    run_ok(
        openssl()
            .args(["req", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes"])
            .args(["-subj", "/CN=127.0.0.1"])
            .arg("-keyout")
            .arg(&server_key)
            .arg("-out")
            .arg(&csr),
        TIMEOUT,
        "openssl: make a server key and CSR",
    );
    run_ok(
        openssl()
            .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
            .arg("-in")
            .arg(&csr)
            .arg("-CA")
            .arg(&ca_cert)
            .arg("-CAkey")
            .arg(&ca_key)
            .arg("-extfile")
            .arg(&extensions)
            .arg("-out")
            .arg(&server_cert),
        TIMEOUT,
        "openssl: sign the server certificate",
    );
    ServerPki {
        ca_cert,
        server_cert,
        server_key,
    }
}

/// An RSA key and a self-signed certificate for it, for signing tokens:
/// `(key, cert)` in `dir`.
pub fn make_signing_key(dir: &Path) -> (PathBuf, PathBuf) {
    let key = dir.join("token-signing.key");
    let cert = dir.join("token-signing.crt");
    run_ok(
        openssl()
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=cargo-krust test token issuer"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
        TIMEOUT,
        "openssl: make the token signing key",
    );
    (key, cert)
}

/// A PEM certificate as base64 of its DER bytes (a JWT `x5c` entry).
pub fn der_base64(cert: &Path) -> String {
    let output = run_ok(
        openssl().args(["x509", "-outform", "DER", "-in"]).arg(cert),
        TIMEOUT,
        "openssl: convert a certificate to DER",
    );
    base64::engine::general_purpose::STANDARD.encode(output.stdout)
}

/// An RSASSA-PKCS1-v1_5 SHA-256 signature of `data` with `key`.
pub fn sign_rs256(key: &Path, data: &[u8]) -> Vec<u8> {
    let mut child = openssl()
        .args(["dgst", "-sha256", "-binary", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl dgst");
    child
        .stdin
        .take()
        .expect("openssl stdin")
        .write_all(data)
        .expect("write to openssl");
    let output = child.wait_with_output().expect("openssl dgst output");
    assert!(
        output.status.success(),
        "openssl dgst -sign failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// A P-256 key pair made by openssl: (PKCS#8 private key, public key PEM),
/// as `NAME.key` and `NAME.pub` in `dir`.
pub fn p256_key_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    run_ok(
        openssl()
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
            ])
            .arg(&private),
        TIMEOUT,
        "openssl genpkey",
    );
    run_ok(
        openssl()
            .args(["pkey", "-pubout", "-in"])
            .arg(&private)
            .arg("-out")
            .arg(&public),
        TIMEOUT,
        "openssl pkey -pubout",
    );
    (private, public)
}
