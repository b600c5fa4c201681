//! `--sign-key`: images signed in cosign's key-based scheme, checked by
//! containers/image itself: `skopeo copy` (Debian 13's, `skopeo-sigstore`)
//! under a policy requiring a `sigstoreSigned` signature by the test's key
//! accepts the signed index (every platform) and each platform manifest, and
//! rejects an unsigned image and one signed by another key; the index's own
//! signature, which containers/image never checks, by `verify_cosign.py`
//! (what `cosign verify --key` does, in Python with OpenSSL).
//! Keys are made by `openssl` and, in cosign's encrypted format, by a small
//! PyNaCl script; a rebuild signs nothing again, a second key's signature is
//! kept beside the first. Bad keys are refused before anything is built.
//! DSSE envelopes signed by the same keys verify with securesystemslib.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{Value, json};
use support::image::{self, PushedRef};
use support::krust::{KrustRun, build_on_scratch, hello_krust, krust};
use support::process::{output_with_input, output_with_timeout, run_ok};
use support::{shared, tools, unique_name};

const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

/// What installs the Python half of these checks (scripts/test runs it).
const PYTHON_SETUP: &str = "pip install pynacl 'securesystemslib[crypto]'";

/// A Python on PATH with PyNaCl and securesystemslib, or a failure naming
/// how to install them.
fn signing_python() -> PathBuf {
    let python = tools::require("python3", "python3");
    let probe = output_with_timeout(
        Command::new(&python).args(["-c", "import nacl, securesystemslib, cryptography"]),
        TOOL_TIMEOUT,
    )
    .expect("run python3");
    assert!(
        probe.status.success(),
        "{} lacks PyNaCl or securesystemslib; they make cosign keys and verify DSSE signatures.\n\
         Run `{}` (it installs them into its virtualenv, put first on PATH), or:\n    {PYTHON_SETUP}\n{}",
        python.display(),
        tools::SETUP,
        String::from_utf8_lossy(&probe.stderr)
    );
    python
}

/// The key of `private` (PEM PKCS#8) in cosign's encrypted format under
/// `password`, written independently of cargo-krust: scrypt (hashlib) and
/// NaCl secretbox (PyNaCl) over the PKCS#8 DER, as cosign does.
fn cosign_encrypted(dir: &Path, private: &Path, password: &str) -> PathBuf {
    let encrypted = dir.join("cosign.key");
    let script = r#"
import base64, hashlib, json, os, subprocess, sys, textwrap
import nacl.secret
private, out, password = sys.argv[1], sys.argv[2], sys.argv[3].encode()
der = subprocess.run(["openssl", "pkcs8", "-topk8", "-nocrypt", "-outform", "DER", "-in", private],
                     check=True, capture_output=True).stdout
salt, nonce = os.urandom(32), os.urandom(24)
key = hashlib.scrypt(password, salt=salt, n=32768, r=8, p=1, maxmem=64 * 1024 * 1024, dklen=32)
sealed = nacl.secret.SecretBox(key).encrypt(der, nonce).ciphertext
b64 = lambda b: base64.b64encode(b).decode()
document = json.dumps({
    "kdf": {"name": "scrypt", "params": {"N": 32768, "r": 8, "p": 1}, "salt": b64(salt)},
    "cipher": {"name": "nacl/secretbox", "nonce": b64(nonce)},
    "ciphertext": b64(sealed),
}).encode()
body = "\n".join(textwrap.wrap(b64(document), 64))
with open(out, "w") as f:
    f.write(f"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n{body}\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
"#;
    run_ok(
        Command::new(signing_python())
            .args(["-c", script])
            .arg(private)
            .arg(&encrypted)
            .arg(password),
        TOOL_TIMEOUT,
        "write a cosign encrypted key",
    );
    encrypted
}

/// `skopeo-sigstore`: Debian 13's skopeo 1.18 (containers/image), which
/// scripts/test installs under target/krust-tools/skopeo because Debian 12's
/// is built with sigstore disabled ("Debian-local change: sigstore
/// disabled"). Found on PATH (scripts/test puts it there), else where
/// scripts/test installs it.
fn sigstore_skopeo() -> PathBuf {
    let installed = support::repo_root().join("target/krust-tools/skopeo/bin/skopeo-sigstore");
    let skopeo = tools::find_in_path("skopeo-sigstore")
        .or_else(|| installed.is_file().then_some(installed))
        .unwrap_or_else(|| {
            panic!(
                "skopeo-sigstore is not installed; the signing checks need a skopeo built with \
                 sigstore. Run `{}` (it unpacks Debian 13's skopeo under target/krust-tools/skopeo).",
                tools::SETUP
            )
        });
    let version = output_with_timeout(Command::new(&skopeo).arg("--version"), TOOL_TIMEOUT)
        .expect("run skopeo-sigstore --version");
    assert!(
        version.status.success(),
        "{} does not run: {}\nRun `{}` again (it reinstalls what does not run).",
        skopeo.display(),
        String::from_utf8_lossy(&version.stderr),
        tools::SETUP
    );
    skopeo
}

/// containers/image's reason for rejecting an image without signatures.
const NO_SIGNATURE: &str = "A signature was required, but no signature exists";
/// ... and for one whose signatures are all by other keys.
const WRONG_KEY: &str = "cryptographic signature verification failed";

/// One public key trusted for the test registry, checked two ways:
/// - `skopeo copy` under a containers/image policy that admits from the test
///   registry only images with a `sigstoreSigned` signature by that key (and
///   a `registries.d` entry that makes skopeo read cosign's
///   `sha256-<hex>.sig` attachments there), as a cluster's admission would;
/// - `tests/fixtures/signing/verify_cosign.py` (what `cosign verify --key`
///   does, in Python against the registry's HTTP API) for the index's own
///   signature: containers/image checks the signature of every platform
///   manifest it copies but never the index's (even `--multi-arch
///   index-only` copies an unsigned index), and cosign is in no registry
///   this machine reaches.
struct TrustedKey {
    config: tempfile::TempDir,
    public_key: PathBuf,
}

impl TrustedKey {
    fn new(host: &str, public_key: &Path) -> TrustedKey {
        let config = tempfile::tempdir().expect("tempdir");
        let policy = json!({
            "default": [{"type": "reject"}],
            "transports": {"docker": {host: [{
                "type": "sigstoreSigned",
                "keyPath": public_key,
                // cosign's payload names the repository alone, which only
                // matchRepository and exactRepository accept.
                "signedIdentity": {"type": "matchRepository"},
            }]}},
        });
        std::fs::write(config.path().join("policy.json"), policy.to_string())
            .expect("write policy.json");
        let registries_d = config.path().join("registries.d");
        std::fs::create_dir(&registries_d).expect("mkdir registries.d");
        std::fs::write(
            registries_d.join("krust-test.yaml"),
            format!("docker:\n  {host}:\n    use-sigstore-attachments: true\n"),
        )
        .expect("write registries.d");
        TrustedKey {
            config,
            public_key: public_key.to_path_buf(),
        }
    }

    /// `skopeo copy` of `digest` in `pushed`'s repository, every platform
    /// (`--multi-arch all`) when it is an index, into a fresh OCI layout
    /// under this key's policy; its output and the layout's `index.json`
    /// when one was written.
    fn skopeo_copy(&self, pushed: &PushedRef, digest: &str) -> (Output, Option<Value>) {
        let layout = tempfile::tempdir().expect("tempdir");
        let output = output_with_timeout(
            Command::new(sigstore_skopeo())
                .arg("copy")
                .arg("--policy")
                .arg(self.config.path().join("policy.json"))
                .arg("--registries.d")
                .arg(self.config.path().join("registries.d"))
                // The OCI layout holds no signatures; the check is on the source.
                .args(["--src-tls-verify=false", "--remove-signatures"])
                .args(["--multi-arch", "all"])
                .arg(format!("docker://{}", pushed.with_digest(digest)))
                .arg(format!("oci:{}:copied", layout.path().display())),
            TOOL_TIMEOUT,
        )
        .expect("run skopeo-sigstore copy");
        let index = std::fs::read(layout.path().join("index.json"))
            .ok()
            .map(|bytes| serde_json::from_slice(&bytes).expect("index.json is JSON"));
        (output, index)
    }

    /// skopeo accepts `digest` and copies exactly it.
    fn expect_accepted(&self, pushed: &PushedRef, digest: &str) {
        let (output, index) = self.skopeo_copy(pushed, digest);
        let copied = index
            .as_ref()
            .map(|index| index["manifests"][0]["digest"].clone());
        assert!(
            output.status.success() && copied == Some(json!(digest)),
            "skopeo rejects {}@{digest} under a policy requiring a signature by {} \
             (copied {copied:?}): {}{}",
            pushed.repo,
            self.public_key.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// skopeo refuses `digest` for `reason` and copies nothing.
    fn expect_rejected(&self, pushed: &PushedRef, digest: &str, reason: &str) {
        let (output, index) = self.skopeo_copy(pushed, digest);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success()
                && stderr.contains("Source image rejected")
                && stderr.contains(reason)
                && index.is_none_or(|index| index["manifests"] == json!([])),
            "skopeo should reject {}@{digest} ({reason}) under a policy requiring a \
             signature by {}: {:?}\n{}{stderr}",
            pushed.repo,
            self.public_key.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
        );
    }

    /// Runs verify_cosign.py on `digest` in `pushed`'s repository.
    fn cosign_verify(&self, pushed: &PushedRef, digest: &str) -> Output {
        let script = support::repo_root().join("tests/fixtures/signing/verify_cosign.py");
        output_with_timeout(
            Command::new(signing_python())
                .arg(script)
                .args([&pushed.host, &pushed.repo, digest])
                .arg(&self.public_key),
            TOOL_TIMEOUT,
        )
        .expect("run verify_cosign.py")
    }

    /// The index and every platform manifest of `index` are signed by this
    /// key: skopeo copies the index (every platform) and each platform
    /// manifest alone, and the index's own signature verifies.
    fn expect_image_signed(&self, pushed: &PushedRef, index: &image::PushedIndex) {
        self.expect_accepted(pushed, &pushed.digest);
        for platform in &index.images {
            self.expect_accepted(pushed, &platform.manifest_digest);
        }
        let output = self.cosign_verify(pushed, &pushed.digest);
        assert!(
            output.status.success() && String::from_utf8_lossy(&output.stdout).trim() == "verified",
            "the index {}@{} is not signed by {}: {}{}",
            pushed.repo,
            pushed.digest,
            self.public_key.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Neither the index nor any platform manifest of `index` is signed by
    /// this key: skopeo refuses the index and each platform for `reason`,
    /// and the index carries no signature by it.
    fn expect_image_rejected(&self, pushed: &PushedRef, index: &image::PushedIndex, reason: &str) {
        self.expect_rejected(pushed, &pushed.digest, reason);
        for platform in &index.images {
            self.expect_rejected(pushed, &platform.manifest_digest, reason);
        }
        let output = self.cosign_verify(pushed, &pushed.digest);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.code() == Some(1) && stdout.starts_with("no signature"),
            "the index {}@{} should carry no signature by {}: {stdout}{}",
            pushed.repo,
            pushed.digest,
            self.public_key.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// A two-platform build of hello-krust on the multi-platform base into `repo`.
fn build(repo: &str) -> support::krust::Krust {
    krust(["build"])
        .arg(hello_krust())
        .args(["--platform", "linux/amd64,linux/arm64"])
        .env("KRUST_BASE_IMAGE", &shared().bases.multi_ref)
        .env("KRUST_REPO", repo)
}

/// The signature manifest of `digest` in `pushed`'s repository, raw.
fn signature_manifest(pushed: &PushedRef, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    image::inspect_raw(&format!("{}/{}:sha256-{hex}.sig", pushed.host, pushed.repo))
}

fn layers_of(manifest: &[u8]) -> Vec<Value> {
    let manifest: Value = serde_json::from_slice(manifest).expect("signature manifest is JSON");
    manifest["layers"].as_array().cloned().unwrap_or_default()
}

/// Verifies a DSSE envelope with securesystemslib (an implementation
/// independent of cargo-krust): the public key PEM at `public`, known as
/// `key_id`. Succeeds and prints `verified KEYID` when the signature holds.
fn verify_dsse(python: &Path, public: &Path, key_id: &str, envelope: &Value) -> Output {
    let script = r#"
import json, sys
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey
public, key_id = sys.argv[1], sys.argv[2]
key = SSlibKey.from_crypto(load_pem_public_key(open(public, "rb").read()), keyid=key_id)
envelope = Envelope.from_dict(json.load(sys.stdin))
verified = envelope.verify([key], 1)
print("verified", ",".join(verified))
"#;
    output_with_input(
        Command::new(python)
            .args(["-c", script])
            .arg(public)
            .arg(key_id),
        Some(envelope.to_string().as_bytes()),
        TOOL_TIMEOUT,
    )
    .expect("run securesystemslib")
}

/// The hex SHA-256 of a public key's DER: the key id of a DSSE signature.
fn key_id(public: &Path) -> String {
    let der = run_ok(
        Command::new(tools::require("openssl", "openssl"))
            .args(["pkey", "-pubin", "-outform", "DER", "-in"])
            .arg(public),
        TOOL_TIMEOUT,
        "openssl pkey -outform DER",
    )
    .stdout;
    support::sha256_digest(&der)
        .trim_start_matches("sha256:")
        .to_string()
}

/// The provenance envelope of the platform manifest `subject` of `pushed`,
/// found under its fallback tag (distribution has no referrers API).
fn provenance_envelope(pushed: &PushedRef, subject: &str) -> Value {
    let listed: Value = serde_json::from_slice(&image::inspect_raw(&format!(
        "{}/{}:{}",
        pushed.host,
        pushed.repo,
        subject.replacen(':', "-", 1)
    )))
    .expect("fallback index JSON");
    let entry = listed["manifests"]
        .as_array()
        .and_then(|m| {
            m.iter()
                .find(|e| e["artifactType"] == "application/vnd.dsse.envelope.v1+json")
        })
        .unwrap_or_else(|| panic!("no provenance of {subject}: {listed}"));
    let digest = entry["digest"].as_str().expect("digest");
    let artifact: Value = serde_json::from_slice(&image::inspect_raw(&format!(
        "{}/{}@{digest}",
        pushed.host, pushed.repo
    )))
    .expect("artifact manifest JSON");
    let layer = artifact["layers"][0]["digest"]
        .as_str()
        .expect("layer digest");
    serde_json::from_slice(&shared().registry.blob(&pushed.repo, layer)).expect("envelope JSON")
}

#[test]
fn signed_images_verify_with_their_key_only() {
    tools::require_default_rust_targets();
    let shared = shared();
    let keys = tempfile::tempdir().expect("tempdir");
    let (key_a, public_a) = support::certs::p256_key_pair(keys.path(), "a");
    let (key_b, public_b) = support::certs::p256_key_pair(keys.path(), "b");
    let cosign_b = cosign_encrypted(keys.path(), &key_b, "correct horse");
    let host = shared.registry.host();
    let signed_repo = format!("{host}/{}", unique_name("signed"));
    let unsigned_repo = format!("{host}/{}", unique_name("unsigned"));

    let report = keys.path().join("report.json");
    let signed = build(&signed_repo)
        .arg("--sign-key")
        .arg(&key_a)
        .arg("--report")
        .arg(&report)
        .run()
        .single_ref();
    let unsigned = build(&unsigned_repo).run().single_ref();

    let trust_a = TrustedKey::new(&host, &public_a);
    let trust_b = TrustedKey::new(&host, &public_b);
    let index = image::fetch_index(&shared.registry, &signed);
    assert_eq!(index.images.len(), 2, "two platforms");
    trust_a.expect_image_signed(&signed, &index);
    trust_b.expect_image_rejected(&signed, &index, WRONG_KEY);
    let unsigned_index = image::fetch_index(&shared.registry, &unsigned);
    trust_a.expect_image_rejected(&unsigned, &unsigned_index, NO_SIGNATURE);

    // The report names each signature's tag.
    let reported: Value =
        serde_json::from_slice(&std::fs::read(&report).expect("read the report")).expect("JSON");
    let hex_tag = |digest: &str| format!("sha256-{}.sig", &digest["sha256:".len()..]);
    let image_report = &reported["images"][0];
    assert_eq!(
        image_report["signature"]["tag"],
        json!(hex_tag(&signed.digest))
    );
    for platform in image_report["platforms"].as_array().expect("platforms") {
        let digest = platform["manifestDigest"].as_str().expect("digest");
        assert_eq!(
            platform["signature"]["tag"],
            json!(hex_tag(digest)),
            "{platform}"
        );
    }

    // The provenance of each platform is signed by the same key, and an
    // independent DSSE implementation (securesystemslib) verifies it with
    // that key only.
    let python = signing_python();
    let (id_a, id_b) = (key_id(&public_a), key_id(&public_b));
    for image in &index.images {
        let envelope = provenance_envelope(&signed, &image.manifest_digest);
        assert_eq!(
            envelope["signatures"][0]["keyid"],
            json!(id_a),
            "{envelope}"
        );
        let verified = verify_dsse(&python, &public_a, &id_a, &envelope);
        assert!(
            verified.status.success(),
            "securesystemslib rejects the provenance of {}: {}",
            image.architecture,
            String::from_utf8_lossy(&verified.stderr)
        );
        let other = verify_dsse(&python, &public_b, &id_b, &envelope);
        assert!(
            !other.status.success(),
            "another key verified the provenance"
        );
    }

    // An unchanged rebuild with the same key writes nothing: the signature
    // is the same bytes, found in place.
    let before = signature_manifest(&signed, &signed.digest);
    assert_eq!(layers_of(&before).len(), 1, "one signature");
    let mark = shared.registry.mark();
    let again = build(&signed_repo).arg("--sign-key").arg(&key_a).run();
    assert_eq!(again.single_ref().digest, signed.digest);
    assert!(again.stderr.contains("Unchanged"), "{}", again.describe());
    let writes: Vec<_> = shared
        .registry
        .requests_since(mark)
        .into_iter()
        .filter(|r| r.is_write())
        .collect();
    assert!(
        writes.is_empty(),
        "an unchanged signed rebuild wrote {writes:?}"
    );
    assert_eq!(signature_manifest(&signed, &signed.digest), before);

    // A wrong password is a clean error naming the key and the fix.
    let wrong = build(&signed_repo)
        .env("KRUST_SIGN_KEY", &cosign_b)
        .env("COSIGN_PASSWORD", "battery staple")
        .run();
    wrong.expect_clean_error(&["cosign.key", "COSIGN_PASSWORD", "password"]);
    assert!(
        !wrong.stderr.contains("battery"),
        "the password is never shown"
    );

    // A second key (cosign's format, from the environment) signs the same,
    // unchanged image: both signatures are kept, both keys verify.
    let second = build(&signed_repo)
        .env("KRUST_SIGN_KEY", &cosign_b)
        .env("COSIGN_PASSWORD", "correct horse")
        .run();
    assert_eq!(second.single_ref().digest, signed.digest);
    assert!(second.stderr.contains("Signed"), "{}", second.describe());
    let after = layers_of(&signature_manifest(&signed, &signed.digest));
    assert_eq!(after.len(), 2, "both signatures kept: {after:?}");
    assert_eq!(
        after[0],
        layers_of(&before)[0],
        "the first is kept as it was"
    );
    trust_b.expect_image_signed(&signed, &index);
    trust_a.expect_image_signed(&signed, &index);
}

/// Runs a scratch build of hello-krust with `--sign-key key` (and
/// `COSIGN_PASSWORD` when given) in a fresh target dir; the run must fail cleanly with `words` in its
/// error, before anything is stored or built.
fn refused_key(key: &Path, password: Option<&str>, words: &[&str]) -> KrustRun {
    let target = tempfile::tempdir().expect("tempdir");
    let mut command = build_on_scratch(&hello_krust())
        .arg("--sign-key")
        .arg(key)
        .arg("--target-dir")
        .arg(target.path())
        // Nothing listens there: a run that got past the key would fail on
        // the push, with another error.
        .env("KRUST_REPO", "127.0.0.1:1/never");
    command = match password {
        Some(password) => command.env("COSIGN_PASSWORD", password),
        None => command.env_remove("COSIGN_PASSWORD"),
    };
    let run = command.run();
    run.expect_clean_error(words);
    assert!(
        !target.path().join("krust").exists(),
        "the store was opened before the key was checked:\n{}",
        run.describe()
    );
    run
}

#[test]
fn bad_keys_are_refused_before_anything_is_built() {
    let keys = tempfile::tempdir().expect("tempdir");
    let dir = keys.path();
    let openssl = tools::require("openssl", "openssl");
    let (p256, _) = support::certs::p256_key_pair(dir, "good");
    for (name, algorithm) in [("rsa.key", "RSA"), ("ed25519.key", "ED25519")] {
        run_ok(
            Command::new(&openssl)
                .args(["genpkey", "-algorithm", algorithm, "-out"])
                .arg(dir.join(name)),
            TOOL_TIMEOUT,
            "openssl genpkey",
        );
    }
    let garbage = dir.join("garbage.key");
    std::fs::write(&garbage, "not a key at all\n").expect("write");
    let encrypted = cosign_encrypted(dir, &p256, "pw");

    let missing = dir.join("missing.key");
    let (rsa, ed25519) = (dir.join("rsa.key"), dir.join("ed25519.key"));
    let cases: [(&Path, Option<&str>, &[&str]); 6] = [
        (
            &missing,
            None,
            &["missing.key", "cannot be opened", "--sign-key"],
        ),
        (
            &garbage,
            None,
            &["garbage.key", "no PEM block", "openssl genpkey"],
        ),
        (&rsa, None, &["rsa.key", "RSA", "P-256"]),
        (&ed25519, None, &["ed25519.key", "Ed25519", "P-256"]),
        (
            &encrypted,
            None,
            &["cosign.key", "COSIGN_PASSWORD is not set"],
        ),
        (
            &encrypted,
            Some("nope"),
            &["cosign.key", "does not decrypt"],
        ),
    ];
    for (key, password, words) in cases {
        refused_key(key, password, words);
    }

    // A key with nothing to sign in a registry is refused, not ignored.
    let no_push = build_on_scratch(&hello_krust())
        .args(["--no-push", "--sign-key"])
        .arg(&p256)
        .run();
    no_push.expect_clean_error(&["--sign-key", "does neither", "leave the key out"]);
}

#[test]
fn dsse_envelopes_verify_with_securesystemslib() {
    use cargo_krust::supply::{dsse, keys};
    let python = signing_python();
    let dir = tempfile::tempdir().expect("tempdir");
    let (private, public) = support::certs::p256_key_pair(dir.path(), "dsse");
    let signer = keys::load(&private).expect("load the openssl key");
    let payload = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[]}"#;
    let envelope = dsse::envelope(dsse::IN_TOTO_PAYLOAD_TYPE, payload, Some(&signer))
        .expect("sign an envelope");
    // The key id an independent party derives: SHA-256 of the public key DER.
    let key_id = key_id(&public);
    assert_eq!(envelope["signatures"][0]["keyid"], json!(key_id));

    let verify = |envelope: &Value| verify_dsse(&python, &public, &key_id, envelope);
    let verified = verify(&envelope);
    assert!(
        verified.status.success(),
        "securesystemslib rejects the envelope: {}",
        String::from_utf8_lossy(&verified.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&verified.stdout).trim(),
        format!("verified {key_id}")
    );
    // A changed payload type no longer verifies: the PAE is what is signed.
    let mut tampered = envelope.clone();
    tampered["payloadType"] = json!("text/plain");
    assert!(
        !verify(&tampered).status.success(),
        "a tampered envelope verified"
    );
}

#[test]
fn commands_that_push_nothing_refuse_a_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (key, _) = support::certs::p256_key_pair(dir.path(), "unused");
    for command in ["dockerfile", "run"] {
        let run = krust([command, "--base-image", "scratch", "--sign-key"])
            .arg(&key)
            .arg(hello_krust())
            .run();
        run.expect_clean_error(&["--sign-key", command]);
        assert!(!run.stderr.contains("Building"), "{}", run.describe());
    }
}

#[test]
fn a_signature_tag_holding_something_else_is_a_clean_error() {
    let shared = shared();
    let dir = tempfile::tempdir().expect("tempdir");
    let (key, _) = support::certs::p256_key_pair(dir.path(), "squatted");
    let repo = format!("{}/{}", shared.registry.host(), unique_name("squatted"));
    let build = || build_on_scratch(&hello_krust()).env("KRUST_REPO", &repo);
    let pushed = build().run().single_ref();
    // An index, not a signature manifest, under the image's signature tag.
    let tag = format!("sha256-{}.sig", pushed.digest.trim_start_matches("sha256:"));
    run_ok(
        Command::new(tools::require("skopeo", "skopeo"))
            .args([
                "copy",
                "--all",
                "--quiet",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
            ])
            .arg(format!("docker://{}", shared.bases.multi_ref))
            .arg(format!("docker://{}/{}:{tag}", pushed.host, pushed.repo)),
        TOOL_TIMEOUT,
        "skopeo copy an index under the signature tag",
    );
    let squatted = image::inspect_raw(&format!("{}/{}:{tag}", pushed.host, pushed.repo));

    build()
        .arg("--sign-key")
        .arg(&key)
        .run()
        .expect_clean_error(&[&tag, "not an image manifest", "delete that tag"]);
    assert_eq!(
        image::inspect_raw(&format!("{}/{}:{tag}", pushed.host, pushed.repo)),
        squatted,
        "the tag is left as it was"
    );
}
