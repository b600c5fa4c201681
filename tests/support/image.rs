//! Looking at what cargo-krust pushed with independent tools, and running it.
//!
//! - [`PushedRef`]: a `HOST/REPO@sha256:…` line as printed on stdout.
//! - [`fetch_index`]: the index, its manifests (via `skopeo inspect --raw`), configs
//!   and layers (via HTTP from the registry), every digest and size verified.
//! - [`pull_and_unpack`]: one platform copied with `skopeo copy` into an OCI layout
//!   and unpacked into a runtime bundle with `umoci unpack`.
//! - [`run_chroot`], [`run_chroot_qemu_aarch64`], [`run_runc`], [`run_platform`]: run it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;

use super::base::Descriptor;
use super::process::{output_with_timeout, run_ok};
use super::registry::Registry;
use super::{sha256_digest, tools};

/// How long a helper tool (skopeo, umoci, runc) may take.
const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

/// An image reference as printed by cargo-krust: `HOST/REPO@sha256:<64 hex>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedRef {
    /// The whole line.
    pub full: String,
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// Repository path, e.g. `x/hello-krust`.
    pub repo: String,
    /// `sha256:<hex>`.
    pub digest: String,
}

impl PushedRef {
    /// Parse and validate one printed line.
    pub fn parse(line: &str) -> Result<PushedRef, String> {
        let (name, digest) = line
            .split_once('@')
            .ok_or_else(|| format!("no '@' in {line:?}"))?;
        let hex = digest
            .strip_prefix("sha256:")
            .ok_or_else(|| format!("digest of {line:?} is not sha256"))?;
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(format!(
                "digest of {line:?} is not 64 lower-case hex digits"
            ));
        }
        let (host, repo) = name
            .split_once('/')
            .ok_or_else(|| format!("no registry host in {line:?}"))?;
        Ok(PushedRef {
            full: line.to_string(),
            host: host.to_string(),
            repo: repo.to_string(),
            digest: digest.to_string(),
        })
    }

    /// `HOST/REPO@DIGEST` for another digest in the same repository.
    pub fn with_digest(&self, digest: &str) -> String {
        format!("{}/{}@{digest}", self.host, self.repo)
    }
}

/// Raw bytes of a manifest or index: `skopeo inspect --raw docker://REF`.
/// Panics with skopeo's stderr when it fails or prints nothing.
pub fn inspect_raw(reference: &str) -> Vec<u8> {
    inspect_raw_as(reference, None)
}

/// [`inspect_raw`] with `user:password` credentials (HTTPS registries are
/// read without verifying their certificate: what is checked is the bytes).
pub fn inspect_raw_as(reference: &str, creds: Option<&str>) -> Vec<u8> {
    let skopeo = tools::require("skopeo", "skopeo");
    let mut command = Command::new(skopeo);
    command.args(["inspect", "--raw", "--tls-verify=false"]);
    if let Some(creds) = creds {
        command.arg(format!("--creds={creds}"));
    }
    let output = output_with_timeout(command.arg(format!("docker://{reference}")), TOOL_TIMEOUT)
        .unwrap_or_else(|e| panic!("skopeo inspect {reference}: {e}"));
    assert!(
        output.status.success() && !output.stdout.is_empty(),
        "skopeo inspect --raw docker://{reference} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// [`inspect_raw`] parsed as JSON.
pub fn inspect_json(reference: &str) -> Value {
    let raw = inspect_raw(reference);
    serde_json::from_slice(&raw).unwrap_or_else(|e| {
        panic!(
            "{reference} is not JSON ({e}): {}",
            String::from_utf8_lossy(&raw)
        )
    })
}

/// `bytes` as JSON, or a panic showing them.
pub fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

/// A layer blob as stored, and its uncompressed tar.
#[derive(Debug, Clone)]
pub struct LayerBlob {
    /// Descriptor from the manifest.
    pub descriptor: Descriptor,
    /// The blob bytes (verified against digest and size).
    pub compressed: Vec<u8>,
    /// The tar stream (gunzipped when the media type says gzip).
    pub tar: Vec<u8>,
}

/// One platform's image as pushed.
#[derive(Debug, Clone)]
pub struct PushedImage {
    /// The descriptor in the index (with `platform`).
    pub descriptor: Value,
    /// `platform.os`.
    pub os: String,
    /// `platform.architecture`.
    pub architecture: String,
    /// `platform.variant`.
    pub variant: Option<String>,
    /// The manifest digest.
    pub manifest_digest: String,
    /// The manifest JSON.
    pub manifest: Value,
    /// The config JSON.
    pub config: Value,
    /// The layers, in manifest order.
    pub layers: Vec<LayerBlob>,
}

/// A pushed index and everything it references.
#[derive(Debug, Clone)]
pub struct PushedIndex {
    /// The printed reference.
    pub reference: PushedRef,
    /// The index JSON.
    pub index: Value,
    /// One entry per manifest of the index.
    pub images: Vec<PushedImage>,
}

impl PushedIndex {
    /// The image for `architecture` (panics when absent).
    pub fn image(&self, architecture: &str) -> &PushedImage {
        self.images
            .iter()
            .find(|i| i.architecture == architecture)
            .unwrap_or_else(|| {
                panic!(
                    "{} has no {architecture} image; index: {}",
                    self.reference.full, self.index
                )
            })
    }

    /// `os/arch[/variant]` of every image, sorted.
    pub fn platforms(&self) -> Vec<String> {
        let mut platforms: Vec<String> = self
            .images
            .iter()
            .map(|i| match &i.variant {
                Some(v) => format!("{}/{}/{v}", i.os, i.architecture),
                None => format!("{}/{}", i.os, i.architecture),
            })
            .collect();
        platforms.sort();
        platforms
    }
}

/// String field of a JSON object, or "" when absent.
fn str_field<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Parse a descriptor object, panicking with `what` when it is malformed.
pub fn descriptor(value: &Value, what: &str) -> Descriptor {
    let size = value
        .get("size")
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{what}: descriptor without size: {value}"));
    let digest = str_field(value, "digest");
    assert!(
        digest.starts_with("sha256:"),
        "{what}: descriptor without sha256 digest: {value}"
    );
    Descriptor {
        media_type: str_field(value, "mediaType").to_string(),
        digest: digest.to_string(),
        size,
    }
}

/// Fetch the index printed as `pushed` and everything below it, checking that
/// each manifest, config and layer hashes to its digest and has its size. Media
/// types and contents are left for the tests to check.
pub fn fetch_index(registry: &Registry, pushed: &PushedRef) -> PushedIndex {
    assert_eq!(
        pushed.host,
        registry.host(),
        "image pushed to the wrong registry"
    );
    let raw = inspect_raw(&pushed.full);
    assert_eq!(
        sha256_digest(&raw),
        pushed.digest,
        "the printed digest is not the digest of what the registry serves for {}",
        pushed.full
    );
    let index: Value = serde_json::from_slice(&raw).expect("index is JSON");
    let entries = index
        .get("manifests")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("{} is not an image index: {index}", pushed.full))
        .clone();
    let images = entries
        .iter()
        .map(|entry| fetch_image(registry, pushed, entry))
        .collect();
    PushedIndex {
        reference: pushed.clone(),
        index,
        images,
    }
}

/// Fetch one manifest of an index with its config and layers.
fn fetch_image(registry: &Registry, pushed: &PushedRef, entry: &Value) -> PushedImage {
    let desc = descriptor(entry, "index entry");
    let raw = inspect_raw(&pushed.with_digest(&desc.digest));
    assert_eq!(sha256_digest(&raw), desc.digest, "manifest digest mismatch");
    assert_eq!(
        raw.len() as u64,
        desc.size,
        "manifest size mismatch for {}",
        desc.digest
    );
    let manifest: Value = serde_json::from_slice(&raw).expect("manifest is JSON");
    let config_desc = descriptor(&manifest["config"], "manifest config");
    let config_raw = registry.blob(&pushed.repo, &config_desc.digest);
    assert_eq!(
        config_raw.len() as u64,
        config_desc.size,
        "config size mismatch"
    );
    let config: Value = serde_json::from_slice(&config_raw).expect("config is JSON");
    let layers = manifest["layers"]
        .as_array()
        .unwrap_or_else(|| panic!("manifest without layers: {manifest}"))
        .iter()
        .map(|layer| {
            let descriptor = descriptor(layer, "layer");
            let compressed = registry.blob(&pushed.repo, &descriptor.digest);
            assert_eq!(
                compressed.len() as u64,
                descriptor.size,
                "layer size mismatch for {}",
                descriptor.digest
            );
            let tar = if descriptor.media_type.ends_with("gzip") {
                gunzip(&compressed)
            } else {
                compressed.clone()
            };
            LayerBlob {
                descriptor,
                compressed,
                tar,
            }
        })
        .collect();
    let platform = &entry["platform"];
    PushedImage {
        descriptor: entry.clone(),
        os: str_field(platform, "os").to_string(),
        architecture: str_field(platform, "architecture").to_string(),
        variant: platform
            .get("variant")
            .and_then(Value::as_str)
            .map(str::to_string),
        manifest_digest: desc.digest,
        manifest,
        config,
        layers,
    }
}

/// Decompress a gzip stream, every member of it (cargo-krust writes layers
/// as several gzip members; panics on corrupt data).
pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("layer is not valid gzip");
    out
}

/// One entry of a layer tar, as the tests want to see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarEntry {
    /// Path exactly as stored.
    pub path: String,
    /// 'd' for directories, 'f' for regular files, 'o' otherwise.
    pub kind: char,
    /// Permission bits (including setuid/sticky).
    pub mode: u32,
    /// Owner uid.
    pub uid: u64,
    /// Owner gid.
    pub gid: u64,
    /// Modification time.
    pub mtime: u64,
    /// User name field.
    pub uname: String,
    /// Group name field.
    pub gname: String,
    /// Entry contents (regular files only).
    pub data: Vec<u8>,
}

/// List a tar stream's entries with their headers and contents.
pub fn tar_entries(tar: &[u8]) -> Vec<TarEntry> {
    let mut archive = tar::Archive::new(tar);
    let mut out = Vec::new();
    for entry in archive.entries().expect("layer is a tar stream") {
        let mut entry = entry.expect("readable tar entry");
        let header = entry.header().clone();
        let kind = match header.entry_type() {
            tar::EntryType::Directory => 'd',
            tar::EntryType::Regular => 'f',
            _ => 'o',
        };
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let mut data = Vec::new();
        if kind == 'f' {
            entry.read_to_end(&mut data).expect("read tar entry");
        }
        out.push(TarEntry {
            path,
            kind,
            mode: header.mode().expect("tar mode"),
            uid: header.uid().expect("tar uid"),
            gid: header.gid().expect("tar gid"),
            mtime: header.mtime().expect("tar mtime"),
            uname: header
                .username()
                .ok()
                .flatten()
                .unwrap_or_default()
                .to_string(),
            gname: header
                .groupname()
                .ok()
                .flatten()
                .unwrap_or_default()
                .to_string(),
            data,
        });
    }
    out
}

/// An image unpacked into a runtime bundle (`BUNDLE/config.json`, `BUNDLE/rootfs`).
pub struct Unpacked {
    dir: tempfile::TempDir,
    /// The umoci bundle.
    pub bundle: PathBuf,
    /// `bundle/rootfs`.
    pub rootfs: PathBuf,
    /// The single-platform OCI layout skopeo wrote (ref `img`).
    pub oci_dir: PathBuf,
}

/// Copy one platform of `reference` with skopeo into an OCI layout and unpack it
/// with `umoci unpack`.
pub fn pull_and_unpack(reference: &str, architecture: &str, variant: Option<&str>) -> Unpacked {
    let skopeo = tools::require("skopeo", "skopeo");
    let umoci = tools::require("umoci", "umoci");
    tools::require_root();
    let dir = tempfile::Builder::new()
        .prefix("krust-unpack-")
        .tempdir()
        .expect("create unpack tempdir");
    let oci_dir = dir.path().join("oci");
    let bundle = dir.path().join("bundle");
    let mut copy = Command::new(skopeo);
    copy.args([
        "copy",
        "--src-tls-verify=false",
        "--quiet",
        "--override-os",
        "linux",
    ])
    .args(["--override-arch", architecture]);
    if let Some(variant) = variant {
        copy.args(["--override-variant", variant]);
    }
    copy.arg(format!("docker://{reference}"))
        .arg(format!("oci:{}:img", oci_dir.display()));
    run_ok(&mut copy, TOOL_TIMEOUT, "skopeo copy (pull for unpack)");
    assert!(
        oci_dir.join("index.json").is_file(),
        "skopeo copy of {reference} wrote no OCI layout"
    );
    run_ok(
        Command::new(umoci)
            .args(["unpack", "--image"])
            .arg(format!("{}:img", oci_dir.display()))
            .arg(&bundle),
        TOOL_TIMEOUT,
        "umoci unpack",
    );
    let rootfs = bundle.join("rootfs");
    assert!(rootfs.is_dir(), "umoci unpack produced no rootfs");
    Unpacked {
        dir,
        bundle,
        rootfs,
        oci_dir,
    }
}

impl Unpacked {
    /// A path inside the rootfs (`path` is absolute in the image).
    pub fn file(&self, path: &str) -> PathBuf {
        self.rootfs.join(path.trim_start_matches('/'))
    }

    /// Scratch space next to the bundle.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }
}

/// `chroot ROOTFS argv…` with a minimal environment (amd64 binaries).
pub fn run_chroot(rootfs: &Path, argv: &[String]) -> Output {
    let chroot = tools::require("chroot", "coreutils");
    tools::require_root();
    output_with_timeout(
        Command::new(chroot)
            .arg(rootfs)
            .args(argv)
            .env_clear()
            .env("PATH", "/app:/usr/bin:/bin"),
        TOOL_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("chroot {} {argv:?}: {e}", rootfs.display()))
}

/// Run an arm64 program in `rootfs` under qemu: copies `qemu-aarch64-static` into
/// the rootfs (binfmt_misc is not mounted) and runs `chroot ROOTFS
/// /qemu-aarch64-static argv…`.
pub fn run_chroot_qemu_aarch64(rootfs: &Path, argv: &[String]) -> Output {
    run_chroot_qemu(rootfs, "qemu-aarch64-static", argv)
}

/// Run a foreign program in `rootfs` under the named static qemu (copied into
/// the rootfs, since binfmt_misc is not mounted).
pub fn run_chroot_qemu(rootfs: &Path, qemu_name: &str, argv: &[String]) -> Output {
    let qemu = tools::require(qemu_name, "qemu-user-static");
    let inside = rootfs.join(qemu_name);
    // A hard link when it can be: a copy is written through a file
    // descriptor that a child forked meanwhile by another test thread keeps
    // open until its exec, and exec'ing the copy then fails with "Text file
    // busy" (ETXTBSY).
    if std::fs::hard_link(&qemu, &inside).is_err() {
        std::fs::copy(&qemu, &inside)
            .unwrap_or_else(|e| panic!("copy {} into the rootfs: {e}", qemu.display()));
    }
    let mut full = vec![format!("/{qemu_name}")];
    full.extend_from_slice(argv);
    let mut output = run_chroot(rootfs, &full);
    for _ in 0..10 {
        if !String::from_utf8_lossy(&output.stderr).contains("Text file busy") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        output = run_chroot(rootfs, &full);
    }
    output
}

/// The bytes of `/app/<bin>` in the app layer (the last one).
pub fn app_binary(image: &PushedImage, bin: &str) -> Vec<u8> {
    let app = image.layers.last().expect("an app layer");
    tar_entries(&app.tar)
        .into_iter()
        .find(|e| e.path == format!("app/{bin}"))
        .unwrap_or_else(|| panic!("no app/{bin} in the app layer"))
        .data
}

/// Pull one platform of `pushed`, unpack it and run its Entrypoint with
/// `args` under chroot: amd64 and 386 natively, arm64 and arm under qemu.
/// Panics unless it exits 0; returns its stdout.
pub fn run_platform(pushed: &PushedRef, image: &PushedImage, args: &[&str]) -> String {
    let unpacked = pull_and_unpack(&pushed.full, &image.architecture, image.variant.as_deref());
    let argv = docker_argv(&image.config, args);
    let output = match image.architecture.as_str() {
        "amd64" | "386" => run_chroot(&unpacked.rootfs, &argv),
        "arm64" => run_chroot_qemu_aarch64(&unpacked.rootfs, &argv),
        "arm" => run_chroot_qemu(&unpacked.rootfs, "qemu-arm-static", &argv),
        other => panic!("cannot run {other}"),
    };
    expect_ran(
        &output,
        &format!("{} ({})", pushed.full, image.architecture),
    )
}

/// The argv Docker would run: `Entrypoint + (extra args, or Cmd when none)`.
pub fn docker_argv(config: &Value, extra: &[&str]) -> Vec<String> {
    let list = |key: &str| -> Vec<String> {
        config["config"][key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut argv = list("Entrypoint");
    if extra.is_empty() {
        argv.extend(list("Cmd"));
    } else {
        argv.extend(extra.iter().map(|s| s.to_string()));
    }
    argv
}

/// Run a bundle with `runc run` (as root): `process.args` gets `extra` appended to
/// what umoci derived from the image config, `process.terminal` is turned off, and
/// runc keeps its state in a private `--root` so nothing leaks into /run/runc.
pub fn run_runc(unpacked: &Unpacked, extra: &[&str]) -> Output {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let runc = tools::require("runc", "runc");
    tools::require_root();
    let config_path = unpacked.bundle.join("config.json");
    let text = std::fs::read_to_string(&config_path).expect("read bundle config.json");
    let mut config: Value = serde_json::from_str(&text).expect("bundle config.json is JSON");
    let args = config["process"]["args"]
        .as_array_mut()
        .expect("bundle config.json has process.args");
    args.extend(extra.iter().map(|s| Value::String(s.to_string())));
    config["process"]["terminal"] = Value::Bool(false);
    std::fs::write(
        &config_path,
        serde_json::to_vec_pretty(&config).expect("serialize config.json"),
    )
    .expect("write bundle config.json");
    let state = unpacked.scratch().join("runc-state");
    let id = format!(
        "krust-test-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    );
    let output = output_with_timeout(
        Command::new(&runc)
            .arg("--root")
            .arg(&state)
            .args(["run", "--bundle"])
            .arg(&unpacked.bundle)
            .arg(&id),
        TOOL_TIMEOUT,
    );
    let _ = Command::new(&runc)
        .arg("--root")
        .arg(&state)
        .args(["delete", "--force", &id])
        .output();
    output.unwrap_or_else(|e| panic!("runc run {id}: {e}"))
}

/// Panic with both streams unless `output` exited 0; return stdout as text.
pub fn expect_ran(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} exited with {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
