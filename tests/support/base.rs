//! Base images built by the tests themselves (no internet): shaped like
//! distroless `static` — `/etc/passwd` with root and nonroot (65532), `/etc/group`,
//! a CA bundle, `/tmp` with mode 1777, `/home/nonroot` — written as an OCI image
//! layout and pushed with `skopeo copy --all` to the test registry:
//!
//! - `base:latest`: an index of linux/amd64 and linux/arm64/v8, each with its own
//!   config and one layer that differs per architecture; `User` = `65532`.
//! - `base-single:latest`: one linux/amd64 manifest (no index), `User` unset.
//!
//! Every config carries an unknown field `krustTestExtra` so tests can prove that
//! cargo-krust keeps fields it does not know.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};

use super::registry::Registry;
use super::{image, sha256_digest, tools};

/// OCI media types used by the bases.
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest media type.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image config media type.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// OCI gzip layer media type.
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// The base's unknown config field and its value.
pub const EXTRA_FIELD: &str = "krustTestExtra";
/// PATH of the multi-platform base.
pub const MULTI_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// PATH of the single-platform base.
pub const SINGLE_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// A content descriptor (`mediaType`, `digest`, `size`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// Media type.
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
}

impl Descriptor {
    /// The descriptor as OCI JSON.
    pub fn to_json(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size})
    }
}

/// One single-platform base image.
#[derive(Debug, Clone)]
pub struct BaseImage {
    /// `architecture` (`amd64`, `arm64`).
    pub architecture: String,
    /// `variant` (`v8` for arm64), if any.
    pub variant: Option<String>,
    /// The image manifest.
    pub manifest: Descriptor,
    /// The config blob.
    pub config: Descriptor,
    /// The config JSON.
    pub config_json: Value,
    /// The layer descriptors, in order.
    pub layers: Vec<Descriptor>,
    /// `rootfs.diff_ids`.
    pub diff_ids: Vec<String>,
}

/// The bases as pushed to a registry.
#[derive(Debug, Clone)]
pub struct PushedBases {
    /// `127.0.0.1:PORT/base:latest` (multi-platform index).
    pub multi_ref: String,
    /// Digest of the multi-platform index.
    pub multi_index_digest: String,
    /// The per-platform images of the index (amd64, then arm64/v8).
    pub multi: Vec<BaseImage>,
    /// `127.0.0.1:PORT/base-single:latest` (one linux/amd64 manifest).
    pub single_ref: String,
    /// The single-platform image.
    pub single: BaseImage,
}

impl PushedBases {
    /// The image of the multi-platform base for `architecture`.
    pub fn multi_for(&self, architecture: &str) -> &BaseImage {
        self.multi
            .iter()
            .find(|b| b.architecture == architecture)
            .unwrap_or_else(|| panic!("the multi-platform base has no {architecture} image"))
    }
}

/// Builds an OCI image layout on disk, blob by blob.
struct LayoutWriter {
    dir: PathBuf,
    refs: Vec<Value>,
}

impl LayoutWriter {
    /// Create `dir` with `oci-layout` and an empty `blobs/sha256`.
    fn create(dir: &Path) -> LayoutWriter {
        fs::create_dir_all(dir.join("blobs/sha256")).expect("create OCI layout blobs dir");
        fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
            .expect("write oci-layout");
        LayoutWriter {
            dir: dir.to_path_buf(),
            refs: Vec::new(),
        }
    }

    /// Store a blob and return its descriptor.
    fn blob(&self, media_type: &str, bytes: &[u8]) -> Descriptor {
        let digest = sha256_digest(bytes);
        let hex = digest.trim_start_matches("sha256:");
        fs::write(self.dir.join("blobs/sha256").join(hex), bytes).expect("write OCI blob");
        Descriptor {
            media_type: media_type.to_string(),
            digest,
            size: bytes.len() as u64,
        }
    }

    /// Store a JSON document as a blob.
    fn json_blob(&self, media_type: &str, value: &Value) -> Descriptor {
        let bytes = serde_json::to_vec(value).expect("serialize JSON blob");
        self.blob(media_type, &bytes)
    }

    /// Name a top-level manifest or index in `index.json`.
    fn tag(&mut self, descriptor: &Descriptor, ref_name: &str) {
        let mut entry = descriptor.to_json();
        entry["annotations"] = json!({"org.opencontainers.image.ref.name": ref_name});
        self.refs.push(entry);
    }

    /// Write `index.json`.
    fn finish(self) {
        let index =
            json!({"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": self.refs});
        fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec(&index).expect("serialize index.json"),
        )
        .expect("write index.json");
    }
}

/// One entry of a layer tar.
enum Entry<'a> {
    /// A directory: path, mode, uid/gid.
    Dir(&'a str, u32, u64),
    /// A regular file: path, mode, contents (owned by root).
    File(&'a str, u32, &'a [u8]),
}

/// A gzip-compressed tar layer: returns (compressed bytes, diff_id).
fn tar_gz_layer(entries: &[Entry]) -> (Vec<u8>, String) {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_ustar();
        header.set_mtime(1_700_000_000);
        match entry {
            Entry::Dir(path, mode, owner) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(*mode);
                header.set_uid(*owner);
                header.set_gid(*owner);
                header.set_size(0);
                builder
                    .append_data(&mut header, path, std::io::empty())
                    .expect("append dir to layer tar");
            }
            Entry::File(path, mode, contents) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                header.set_uid(0);
                header.set_gid(0);
                header.set_size(contents.len() as u64);
                builder
                    .append_data(&mut header, path, *contents)
                    .expect("append file to layer tar");
            }
        }
    }
    let tar = builder.into_inner().expect("finish layer tar");
    let diff_id = sha256_digest(&tar);
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    std::io::Write::write_all(&mut gz, &tar).expect("gzip layer");
    (gz.finish().expect("finish gzip layer"), diff_id)
}

/// The distroless-like layer shared by every base image.
fn common_layer() -> (Vec<u8>, String) {
    let passwd = b"root:x:0:0:root:/root:/sbin/nologin\n\
                   nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n\
                   nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n";
    let group = b"root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n";
    let certs = b"-----BEGIN CERTIFICATE-----\n\
                  MIIBkrustTESTcertificateNOTrealAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n\
                  -----END CERTIFICATE-----\n";
    tar_gz_layer(&[
        Entry::Dir("etc/", 0o755, 0),
        Entry::File("etc/group", 0o644, group),
        Entry::File("etc/passwd", 0o644, passwd),
        Entry::Dir("etc/ssl/", 0o755, 0),
        Entry::Dir("etc/ssl/certs/", 0o755, 0),
        Entry::File("etc/ssl/certs/ca-certificates.crt", 0o644, certs),
        Entry::Dir("home/", 0o755, 0),
        Entry::Dir("home/nonroot/", 0o700, 65532),
        Entry::Dir("root/", 0o700, 0),
        Entry::Dir("tmp/", 0o1777, 0),
    ])
}

/// A layer that differs per architecture (`/etc/krust-base-arch`) and per
/// build of the bases (`/etc/krust-base-run`, see [`write_base_layout`]).
fn arch_layer(architecture: &str, nonce: &str) -> (Vec<u8>, String) {
    let contents = format!("{architecture}\n");
    tar_gz_layer(&[
        Entry::Dir("etc/", 0o755, 0),
        Entry::File("etc/krust-base-arch", 0o644, contents.as_bytes()),
        Entry::File("etc/krust-base-run", 0o644, nonce.as_bytes()),
    ])
}

/// What distinguishes one base image from another.
struct ImageSpec<'a> {
    architecture: &'a str,
    variant: Option<&'a str>,
    user: Option<&'a str>,
    path: &'a str,
    label: &'a str,
    nonce: &'a str,
}

/// Write one image (layers, config, manifest) into the layout.
fn write_image(layout: &LayoutWriter, spec: &ImageSpec) -> BaseImage {
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for (gz, diff_id) in [common_layer(), arch_layer(spec.architecture, spec.nonce)] {
        layers.push(layout.blob(LAYER_MEDIA_TYPE, &gz));
        diff_ids.push(diff_id);
    }
    let mut config = json!({
        "created": "2024-01-01T00:00:00Z",
        "architecture": spec.architecture,
        "os": "linux",
        "config": {
            "Env": [
                format!("PATH={}", spec.path),
                "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
            ],
            "WorkingDir": "/",
            "Labels": {"org.example.krust-test.base": spec.label},
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [
            {"created": "2024-01-01T00:00:00Z", "created_by": "krust-tests: distroless-like files"},
            {"created": "2024-01-01T00:00:00Z", "created_by": "krust-tests: arch marker"},
        ],
        EXTRA_FIELD: {"keep": true, "nested": [1, 2, 3]},
        "krustTestRun": spec.nonce,
    });
    if let Some(variant) = spec.variant {
        config["variant"] = json!(variant);
    }
    if let Some(user) = spec.user {
        config["config"]["User"] = json!(user);
    }
    let config_descriptor = layout.json_blob(CONFIG_MEDIA_TYPE, &config);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": config_descriptor.to_json(),
        "layers": layers.iter().map(Descriptor::to_json).collect::<Vec<_>>(),
    });
    BaseImage {
        architecture: spec.architecture.to_string(),
        variant: spec.variant.map(str::to_string),
        manifest: layout.json_blob(MANIFEST_MEDIA_TYPE, &manifest),
        config: config_descriptor,
        config_json: config,
        layers,
        diff_ids,
    }
}

/// The bases as written to an OCI layout (refs `multi` and `single`).
pub struct BaseLayout {
    /// The layout directory.
    pub dir: PathBuf,
    /// The multi-platform index.
    pub multi_index: Descriptor,
    /// Images of the index (amd64, arm64/v8).
    pub multi: Vec<BaseImage>,
    /// The single-platform image.
    pub single: BaseImage,
}

/// Write both bases into an OCI layout at `dir`. `nonce` goes into every config
/// and arch layer, so each test run pushes bases cargo-krust has never seen
/// (its blob cache in the shared target dir cannot hide the download path);
/// the common layer stays identical across runs and images.
pub fn write_base_layout(dir: &Path, nonce: &str) -> BaseLayout {
    let mut layout = LayoutWriter::create(dir);
    let multi = vec![
        write_image(
            &layout,
            &ImageSpec {
                architecture: "amd64",
                variant: None,
                user: Some("65532"),
                path: MULTI_PATH,
                label: "multi",
                nonce,
            },
        ),
        write_image(
            &layout,
            &ImageSpec {
                architecture: "arm64",
                variant: Some("v8"),
                user: Some("65532"),
                path: MULTI_PATH,
                label: "multi",
                nonce,
            },
        ),
    ];
    let manifests: Vec<Value> = multi
        .iter()
        .map(|image| {
            let mut entry = image.manifest.to_json();
            entry["platform"] = json!({"architecture": image.architecture, "os": "linux"});
            if let Some(variant) = &image.variant {
                entry["platform"]["variant"] = json!(variant);
            }
            entry
        })
        .collect();
    let index = json!({"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": manifests});
    let multi_index = layout.json_blob(INDEX_MEDIA_TYPE, &index);
    layout.tag(&multi_index, "multi");
    let single = write_image(
        &layout,
        &ImageSpec {
            architecture: "amd64",
            variant: None,
            user: None,
            path: SINGLE_PATH,
            label: "single",
            nonce,
        },
    );
    layout.tag(&single.manifest, "single");
    layout.finish();
    BaseLayout {
        dir: dir.to_path_buf(),
        multi_index,
        multi,
        single,
    }
}

/// `skopeo copy --all` one ref of an OCI layout to `docker://dest`, then check
/// that the registry serves exactly `expected_digest` (skopeo 1.9 can exit 0 on
/// usage errors, so its exit code alone proves nothing).
pub fn skopeo_push(layout_dir: &Path, ref_name: &str, dest: &str, expected_digest: &str) {
    skopeo_push_as(layout_dir, ref_name, dest, expected_digest, None);
}

/// [`skopeo_push`] with `user:password` credentials for the registry.
pub fn skopeo_push_as(
    layout_dir: &Path,
    ref_name: &str,
    dest: &str,
    expected_digest: &str,
    creds: Option<&str>,
) {
    let skopeo = tools::require("skopeo", "skopeo");
    let mut command = Command::new(skopeo);
    command.args([
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
        "--quiet",
    ]);
    if let Some(creds) = creds {
        command.arg(format!("--dest-creds={creds}"));
    }
    let output = command
        .arg(format!("oci:{}:{ref_name}", layout_dir.display()))
        .arg(format!("docker://{dest}"))
        .output()
        .expect("failed to run skopeo copy");
    assert!(
        output.status.success(),
        "skopeo copy to {dest} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let raw = image::inspect_raw_as(dest, creds);
    assert_eq!(
        sha256_digest(&raw),
        expected_digest,
        "after `skopeo copy`, {dest} is not the image that was pushed\nskopeo stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Build the bases and push them to `registry` as `base:latest` and
/// `base-single:latest`.
pub fn push_bases(registry: &Registry) -> PushedBases {
    push_bases_as(registry, None)
}

/// [`push_bases`] to a registry that wants `user:password` credentials.
pub fn push_bases_as(registry: &Registry, creds: Option<&str>) -> PushedBases {
    let dir = tempfile::Builder::new()
        .prefix("krust-base-layout-")
        .tempdir()
        .expect("create base layout tempdir");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let nonce = format!("{}-{nanos}", super::unique_name("bases"));
    let layout = write_base_layout(dir.path(), &nonce);
    let multi_ref = format!("{}/base:latest", registry.host());
    let single_ref = format!("{}/base-single:latest", registry.host());
    skopeo_push_as(
        &layout.dir,
        "multi",
        &multi_ref,
        &layout.multi_index.digest,
        creds,
    );
    skopeo_push_as(
        &layout.dir,
        "single",
        &single_ref,
        &layout.single.manifest.digest,
        creds,
    );
    PushedBases {
        multi_ref,
        multi_index_digest: layout.multi_index.digest,
        multi: layout.multi,
        single_ref,
        single: layout.single,
    }
}
