//! A base image's documents as a registry sends them — index, manifest,
//! config — parsed and checked before anything in them is used: every
//! descriptor has a media type, a well-formed digest (it becomes a request
//! path) and a size that is a non-negative integer; an index lists
//! manifests and nests no index for a platform; a manifest is an image
//! manifest with a config and its layers; a config names its platform, which
//! must be the one its index entry promised, and one diff_id per layer.
//! Whatever of theirs an error quotes (a media type, a platform, a value)
//! goes through [`printable`]. Pure functions of bytes, so that any input a
//! registry could send can be tried on them (see the tests).

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::oci::{
    MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_DOCKER_MANIFEST_LIST, MEDIA_TYPE_OCI_INDEX,
    MEDIA_TYPE_OCI_MANIFEST, digest_hex, manifest_media_type,
};
use crate::platform::Platform;
use crate::registry::printable;

/// A content descriptor, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

impl Descriptor {
    /// Reads the descriptor `value` (`what` names it in errors).
    pub fn from_json(value: &Value, what: &str) -> Result<Descriptor> {
        let Some(fields) = value.as_object() else {
            bail!("{what} is not a descriptor object but {}", shown(value));
        };
        let field = |name: &str| fields.get(name).unwrap_or(&Value::Null);
        let media_type = field("mediaType")
            .as_str()
            .with_context(|| format!("{what} has no mediaType string"))?;
        let digest = field("digest")
            .as_str()
            .filter(|d| digest_hex(d).is_some())
            .with_context(|| {
                format!(
                    "{what} has no valid digest (sha256: and 64 hex digits): {}",
                    shown(field("digest"))
                )
            })?;
        let size = field("size")
            .as_i64()
            .and_then(|s| u64::try_from(s).ok())
            .with_context(|| {
                format!(
                    "{what} ({digest}) has a size that is not a non-negative integer: {}",
                    shown(field("size"))
                )
            })?;
        Ok(Descriptor {
            media_type: media_type.to_string(),
            digest: digest.to_string(),
            size,
        })
    }
}

/// A value as messages quote it: short, whatever a registry sent.
fn shown(value: &Value) -> String {
    printable(&value.to_string())
}

/// A platform a document names, as messages quote it.
pub fn shown_platform(platform: &Platform) -> String {
    printable(&platform.to_string())
}

/// Whether a media type names an image manifest.
pub fn is_image_manifest(media_type: &str) -> bool {
    media_type == MEDIA_TYPE_OCI_MANIFEST || media_type == MEDIA_TYPE_DOCKER_MANIFEST
}

/// Whether a media type names an index (or a Docker manifest list).
pub fn is_index(media_type: &str) -> bool {
    media_type == MEDIA_TYPE_OCI_INDEX || media_type == MEDIA_TYPE_DOCKER_MANIFEST_LIST
}

/// One platform entry of a base index.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexEntry {
    pub platform: Platform,
    /// The entry's `platform` object kept whole (os.version, features…).
    pub platform_json: Value,
    pub manifest: Descriptor,
    /// The entry as the index lists it (annotations and all).
    pub listed: Value,
}

/// What a base reference points at.
#[derive(Debug, Clone, PartialEq)]
pub enum Top {
    /// An index: its platform entries, attestations left out.
    Index(Vec<IndexEntry>),
    /// A single image manifest.
    Manifest(Manifest),
}

/// The document a base reference points at (`media_type` as it says).
pub fn parse_top(bytes: &[u8]) -> Result<(String, Top)> {
    let media_type = manifest_media_type(bytes).context("cannot read its manifest")?;
    let top = if is_index(&media_type) {
        Top::Index(index_entries(&json(bytes, "index")?)?)
    } else if is_image_manifest(&media_type) {
        Top::Manifest(parse_manifest(bytes)?)
    } else {
        bail!(
            "it has media type {}, which is neither an image manifest nor an index",
            printable(&media_type)
        )
    };
    Ok((media_type, top))
}

/// A JSON document (`what` names it in errors).
fn json(bytes: &[u8], what: &str) -> Result<Value> {
    serde_json::from_slice(bytes).with_context(|| format!("its {what} is not JSON"))
}

/// The platform entries of an index, in order: entries without a platform
/// and attestations (`unknown/unknown`) are left out, a nested index for a
/// platform is an error.
pub fn index_entries(index: &Value) -> Result<Vec<IndexEntry>> {
    let manifests = index
        .get("manifests")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .context("its index lists no manifests")?;
    let mut entries = Vec::new();
    for (n, entry) in manifests.iter().enumerate() {
        let manifest = Descriptor::from_json(entry, &format!("entry {n} of its index"))?;
        let Some(platform_json) = entry.get("platform") else {
            continue;
        };
        let Some(platform) = Platform::from_json(platform_json) else {
            continue;
        };
        if platform.os == "unknown" {
            continue;
        }
        if is_index(&manifest.media_type) {
            bail!(
                "it nests an index for {}; cargo-krust needs one image manifest per platform",
                shown_platform(&platform)
            );
        }
        entries.push(IndexEntry {
            platform,
            platform_json: platform_json.clone(),
            manifest,
            listed: entry.clone(),
        });
    }
    Ok(entries)
}

/// An image manifest, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The document kept whole.
    pub value: Value,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// An image manifest: OCI or Docker v2, with a config and a list of layers.
pub fn parse_manifest(bytes: &[u8]) -> Result<Manifest> {
    let media_type = manifest_media_type(bytes).context("cannot read its manifest")?;
    if is_index(&media_type) {
        bail!(
            "it nests an index inside its index; cargo-krust needs one image manifest per platform"
        );
    }
    if !is_image_manifest(&media_type) {
        bail!(
            "its manifest has media type {}, which is no image manifest",
            printable(&media_type)
        );
    }
    let value = json(bytes, "manifest")?;
    let config = Descriptor::from_json(
        value.get("config").unwrap_or(&Value::Null),
        "the config of its manifest",
    )?;
    let layers = value
        .get("layers")
        .and_then(Value::as_array)
        .context("its manifest has no list of layers")?
        .iter()
        .enumerate()
        .map(|(n, layer)| Descriptor::from_json(layer, &format!("layer {n} of its manifest")))
        .collect::<Result<Vec<_>>>()?;
    Ok(Manifest {
        value,
        config,
        layers,
    })
}

/// An image config, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The document kept whole.
    pub value: Value,
    pub platform: Platform,
    /// Whether the config names a variant itself (else any variant of its
    /// architecture matches).
    pub states_variant: bool,
    /// How many `rootfs.diff_ids` it lists.
    pub diff_ids: usize,
}

/// An image config: its os and architecture, and its diff_ids, each a
/// digest.
pub fn parse_config(bytes: &[u8]) -> Result<Config> {
    let value = json(bytes, "config")?;
    if !value.is_object() {
        bail!("its config is not a JSON object");
    }
    let platform = Platform::from_json(&value).context("its config names no os/architecture")?;
    let states_variant = match value.get("variant") {
        None | Some(Value::Null) => false,
        Some(Value::String(_)) => true,
        Some(other) => bail!(
            "its config has a variant that is not a string: {}",
            shown(other)
        ),
    };
    let diff_ids = match value.get("rootfs").map(|r| r.get("diff_ids")) {
        None => 0,
        Some(Some(Value::Array(ids))) => {
            if let Some(bad) = ids
                .iter()
                .find(|id| id.as_str().and_then(digest_hex).is_none())
            {
                bail!(
                    "its config lists a diff_id that is no sha256 digest: {}",
                    shown(bad)
                );
            }
            ids.len()
        }
        Some(_) => bail!("its config has a rootfs without a list of diff_ids"),
    };
    Ok(Config {
        value,
        platform,
        states_variant,
        diff_ids,
    })
}

/// Checks that a manifest and its config make the image `expected` that
/// an index entry (or the user) asked for: the config's platform is that one
/// (a wrong one would label a binary with another architecture), and it has
/// one diff_id per layer (else the image would be broken).
pub fn check_image(manifest: &Manifest, config: &Config, expected: &Platform) -> Result<()> {
    let found = &config.platform;
    let same = found.os == expected.os
        && found.arch == expected.arch
        && (!config.states_variant || found.variant == expected.variant);
    let (expected, found) = (shown_platform(expected), shown_platform(found));
    if !same {
        bail!(
            "its {expected} image has a config for {found}: the index and the config disagree, and the image would be labelled with the wrong platform"
        );
    }
    if config.diff_ids != manifest.layers.len() {
        bail!(
            "its {expected} image has {} layers but its config lists {} diff_ids",
            manifest.layers.len(),
            config.diff_ids
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn digest(n: u8) -> String {
        format!("sha256:{}", format!("{n:02x}").repeat(32))
    }

    fn descriptor(media_type: &str, n: u8) -> Value {
        json!({"mediaType": media_type, "digest": digest(n), "size": 100 + u64::from(n)})
    }

    fn index() -> Value {
        let mut amd64 = descriptor(MEDIA_TYPE_OCI_MANIFEST, 1);
        amd64["platform"] = json!({"os": "linux", "architecture": "amd64"});
        let mut arm64 = descriptor(MEDIA_TYPE_OCI_MANIFEST, 2);
        arm64["platform"] = json!({"os": "linux", "architecture": "arm64", "variant": "v8"});
        let mut attestation = descriptor(MEDIA_TYPE_OCI_MANIFEST, 3);
        attestation["platform"] = json!({"os": "unknown", "architecture": "unknown"});
        json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_OCI_INDEX,
               "manifests": [amd64, arm64, attestation]})
    }

    fn manifest() -> Value {
        json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_OCI_MANIFEST,
               "config": descriptor("application/vnd.oci.image.config.v1+json", 4),
               "layers": [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", 5),
                          descriptor("application/vnd.oci.image.layer.v1.tar+gzip", 6)]})
    }

    fn config() -> Value {
        json!({"os": "linux", "architecture": "amd64", "config": {"Env": ["PATH=/bin"]},
               "rootfs": {"type": "layers", "diff_ids": [digest(7), digest(8)]}})
    }

    fn bytes(value: &Value) -> Vec<u8> {
        serde_json::to_vec(value).unwrap()
    }

    fn error(result: Result<impl std::fmt::Debug>) -> String {
        format!("{:#}", result.unwrap_err())
    }

    #[test]
    fn good_documents_are_read() {
        let (media_type, top) = parse_top(&bytes(&index())).unwrap();
        assert_eq!(media_type, MEDIA_TYPE_OCI_INDEX);
        let Top::Index(entries) = top else {
            panic!("not an index")
        };
        let platforms: Vec<String> = entries.iter().map(|e| e.platform.to_string()).collect();
        assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
        assert_eq!(entries[1].manifest.size, 102);

        let manifest = parse_manifest(&bytes(&manifest())).unwrap();
        assert_eq!(manifest.layers.len(), 2);
        let config = parse_config(&bytes(&config())).unwrap();
        check_image(&manifest, &config, &Platform::new("linux", "amd64", None)).unwrap();
        assert!(matches!(
            parse_top(&bytes(&self::manifest())).unwrap().1,
            Top::Manifest(_)
        ));
    }

    #[test]
    fn descriptors_must_be_well_formed() {
        let cases = [
            (
                "digest",
                json!("sha256:../../../../etc/passwd"),
                "valid digest",
            ),
            ("digest", json!("sha256:abc"), "valid digest"),
            ("digest", json!(12), "valid digest"),
            ("size", json!(-1), "non-negative integer"),
            ("size", json!(1.5), "non-negative integer"),
            ("size", json!("100"), "non-negative integer"),
            (
                "size",
                json!(18446744073709551615u64),
                "non-negative integer",
            ),
            ("mediaType", json!(null), "mediaType"),
            ("mediaType", json!(["x"]), "mediaType"),
        ];
        for (field, value, words) in cases {
            let mut index = index();
            index["manifests"][1][field] = value.clone();
            let err = error(parse_top(&bytes(&index)));
            assert!(
                err.contains("entry 1 of its index") && err.contains(words),
                "{err}"
            );
            let mut manifest = manifest();
            manifest["layers"][1][field] = value;
            let err = error(parse_manifest(&bytes(&manifest)));
            assert!(err.contains("layer 1") && err.contains(words), "{err}");
        }
        let mut manifest = manifest();
        manifest.as_object_mut().unwrap().remove("config");
        assert!(error(parse_manifest(&bytes(&manifest))).contains("config"));
    }

    #[test]
    fn shapes_that_cannot_be_built_on() {
        let mut nested = index();
        nested["manifests"][0]["mediaType"] = json!(MEDIA_TYPE_DOCKER_MANIFEST_LIST);
        assert!(error(parse_top(&bytes(&nested))).contains("nests an index for linux/amd64"));

        for manifests in [json!([]), json!(null), json!({})] {
            let mut empty = index();
            empty["manifests"] = manifests;
            assert!(error(parse_top(&bytes(&empty))).contains("lists no manifests"));
        }

        let mut odd = index();
        odd["mediaType"] = json!("application/vnd.example+json");
        assert!(error(parse_top(&bytes(&odd))).contains("application/vnd.example+json"));

        let mut no_layers = manifest();
        no_layers.as_object_mut().unwrap().remove("layers");
        assert!(error(parse_manifest(&bytes(&no_layers))).contains("no list of layers"));
        assert!(error(parse_manifest(&bytes(&index()))).contains("nests an index"));
        assert!(error(parse_manifest(b"{nope")).contains("not JSON"));
    }

    #[test]
    fn config_and_manifest_must_make_the_promised_image() {
        let manifest = parse_manifest(&bytes(&manifest())).unwrap();
        let amd64 = Platform::new("linux", "amd64", None);
        let mut arm64 = config();
        arm64["architecture"] = json!("arm64");
        let err = error(check_image(
            &manifest,
            &parse_config(&bytes(&arm64)).unwrap(),
            &amd64,
        ));
        assert!(
            err.contains("linux/amd64") && err.contains("linux/arm64"),
            "{err}"
        );

        let mut extra = config();
        extra["rootfs"]["diff_ids"] = json!([digest(7), digest(8), digest(9)]);
        let err = error(check_image(
            &manifest,
            &parse_config(&bytes(&extra)).unwrap(),
            &amd64,
        ));
        assert!(
            err.contains("2 layers") && err.contains("3 diff_ids"),
            "{err}"
        );

        // A config that names no variant fits any variant of its
        // architecture; one that names another does not.
        let arm = |variant: Option<&str>| {
            let mut config = config();
            config["architecture"] = json!("arm");
            config["rootfs"]["diff_ids"] = json!([digest(7), digest(8)]);
            if let Some(variant) = variant {
                config["variant"] = json!(variant);
            }
            parse_config(&bytes(&config)).unwrap()
        };
        let v6 = Platform::new("linux", "arm", Some("v6"));
        check_image(&manifest, &arm(None), &v6).unwrap();
        check_image(&manifest, &arm(Some("v6")), &v6).unwrap();
        assert!(check_image(&manifest, &arm(Some("v7")), &v6).is_err());

        for (field, value) in [
            ("architecture", json!(64)),
            ("variant", json!(8)),
            ("rootfs", json!({"diff_ids": "x"})),
            ("rootfs", json!({"diff_ids": ["sha256:../x"]})),
        ] {
            let mut config = config();
            config[field] = value;
            assert!(parse_config(&bytes(&config)).is_err(), "{config}");
        }
        assert!(parse_config(b"[1]").is_err());
    }

    /// Strings a registry chose reach messages escaped: one line, no
    /// terminal escapes.
    #[test]
    fn registry_strings_are_quoted_safely() {
        const EVIL: &str = "x\nerror: fake\u{1b}[31m";
        let assert_safe = |err: String| {
            assert!(!err.contains('\n') && !err.contains('\u{1b}'), "{err}");
            assert!(err.contains("\\n") && err.contains("\\u{1b}[31m"), "{err}");
        };
        let mut odd = index();
        odd["mediaType"] = json!(EVIL);
        assert_safe(error(parse_top(&bytes(&odd))));
        let mut odd = manifest();
        odd["mediaType"] = json!(EVIL);
        assert_safe(error(parse_manifest(&bytes(&odd))));
        let mut nested = index();
        nested["manifests"][0]["mediaType"] = json!(MEDIA_TYPE_OCI_INDEX);
        nested["manifests"][0]["platform"]["architecture"] = json!(EVIL);
        assert_safe(error(parse_top(&bytes(&nested))));
        let manifest = parse_manifest(&bytes(&manifest())).unwrap();
        let mut config = config();
        config["variant"] = json!(EVIL);
        let config = parse_config(&bytes(&config)).unwrap();
        let expected = Platform::new("linux", "amd64", Some("v1"));
        assert_safe(error(check_image(&manifest, &config, &expected)));
    }

    /// Odd JSON values for the mutations below.
    fn odd_value(rng: &mut fastrand::Rng) -> Value {
        match rng.usize(..12) {
            0 => Value::Null,
            1 => json!(-1),
            2 => json!(1e308),
            3 => json!(u64::MAX),
            4 => json!(i64::MIN),
            5 => json!(0.5),
            6 => json!("sha256:../../../../etc/passwd"),
            7 => json!(""),
            8 => json!([]),
            9 => json!({}),
            10 => {
                let mut deep = json!(1);
                for _ in 0..rng.usize(1..100) {
                    deep = json!([deep]);
                }
                deep
            }
            _ => json!("x".repeat(rng.usize(..300))),
        }
    }

    /// Every path (object keys, array indexes) in a value.
    fn paths(value: &Value, prefix: String, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, inner) in map {
                    let path = format!("{prefix}/{key}");
                    out.push(path.clone());
                    paths(inner, path, out);
                }
            }
            Value::Array(items) => {
                for (i, inner) in items.iter().enumerate() {
                    let path = format!("{prefix}/{i}");
                    out.push(path.clone());
                    paths(inner, path, out);
                }
            }
            _ => {}
        }
    }

    /// A valid document mangled one way or another.
    fn mangled(rng: &mut fastrand::Rng, valid: &Value) -> Vec<u8> {
        let mut all = Vec::new();
        paths(valid, String::new(), &mut all);
        match rng.usize(..7) {
            // A value replaced by an odd one.
            0 | 1 => {
                let mut value = valid.clone();
                let path = &all[rng.usize(..all.len())];
                if let Some(slot) = value.pointer_mut(path) {
                    *slot = odd_value(rng);
                }
                bytes(&value)
            }
            // A field removed.
            2 => {
                let mut value = valid.clone();
                let path = &all[rng.usize(..all.len())];
                let (parent, key) = path.rsplit_once('/').unwrap_or(("", path));
                if let Some(Value::Object(map)) = value.pointer_mut(parent) {
                    map.remove(key);
                }
                bytes(&value)
            }
            // A truncation.
            3 => {
                let whole = bytes(valid);
                whole[..rng.usize(..whole.len())].to_vec()
            }
            // Bytes changed at random.
            4 => {
                let mut whole = bytes(valid);
                for _ in 0..rng.usize(1..6) {
                    let at = rng.usize(..whole.len());
                    whole[at] = rng.u8(..);
                }
                whole
            }
            // Deep nesting, past serde_json's recursion limit.
            5 => {
                let depth = rng.usize(100..5000);
                let mut text = "[".repeat(depth);
                text.push_str(&"]".repeat(depth));
                text.into_bytes()
            }
            // Random bytes.
            _ => (0..rng.usize(..200)).map(|_| rng.u8(..)).collect(),
        }
    }

    /// A few hundred malformed indexes, manifests and configs through every
    /// parser and check: each gives Ok or Err, none panics.
    #[test]
    fn generated_malformed_documents_never_panic() {
        let mut rng = fastrand::Rng::with_seed(0xba5e);
        let valid_manifest = parse_manifest(&bytes(&manifest())).unwrap();
        let valid_config = parse_config(&bytes(&config())).unwrap();
        let amd64 = Platform::new("linux", "amd64", None);
        let mut refused = 0;
        for round in 0..600 {
            let source = [index(), manifest(), config()][round % 3].clone();
            let document = mangled(&mut rng, &source);
            refused += usize::from(parse_top(&document).is_err());
            if let Ok(manifest) = parse_manifest(&document) {
                let _ = check_image(&manifest, &valid_config, &amd64);
            }
            if let Ok(config) = parse_config(&document) {
                let _ = check_image(&valid_manifest, &config, &amd64);
            }
            if let Ok(value) = serde_json::from_slice::<Value>(&document) {
                let _ = index_entries(&value);
                let _ = Descriptor::from_json(&value, "a descriptor");
            }
        }
        assert!(refused > 100, "the mutations should mostly break documents");
    }
}
