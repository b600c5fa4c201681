//! The configuration keys of SPEC §4 and their layering: one [`Settings`]
//! value per source (CLI, `KRUST_*` environment, per-bin table, package
//! table, workspace table, global file), folded by [`layered`] with the
//! higher layer winning key by key (maps merge entry by entry).
//!
//! Parsing is strict and happens per layer, where the source is still known:
//! an unknown key, a wrongly typed value or an invalid value (platform, image
//! name, tag, port, path) is an error naming the file (or variable, or flag),
//! the key and the fix, with a "did you mean" for near misses. Relative
//! `data` paths are resolved against the directory of the file that set them,
//! and must name a directory inside it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::image_name::{ImageName, parse_reference, validate_tag};
use crate::oci::LayerCompression;
use crate::platform::Platform;

/// Every key of SPEC §4. `None` means "not set in this layer".
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Settings {
    pub base_image: Option<String>,
    pub platforms: Option<Vec<String>>,
    pub name: Option<String>,
    pub tags: Option<Vec<String>>,
    pub env: Option<BTreeMap<String, String>>,
    pub args: Option<Vec<String>>,
    pub ports: Option<Vec<String>>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub annotations: Option<BTreeMap<String, String>>,
    /// Absolute once parsed (relative paths are resolved against the
    /// directory of the file that set them).
    pub data: Option<PathBuf>,
    pub features: Option<Vec<String>>,
    pub skip: Option<bool>,
    pub layer_compression: Option<String>,
    /// The directory the `data` directory must resolve inside: the package
    /// (or workspace, or config) directory of the layer that set `data`.
    #[serde(skip)]
    pub data_root: Option<PathBuf>,
    pub linker: Option<LinkerChoice>,
    pub build_std: Option<bool>,
    /// The SBOM format attached to every platform image.
    pub sbom: Option<SbomFormat>,
    /// Embed the dependency list in the binary (cargo-auditable's `.dep-v0`).
    pub auditable: Option<bool>,
    /// Attach a SLSA provenance statement to every platform image.
    pub provenance: Option<ProvenanceFormat>,
}

/// The `sbom` key and `--sbom`: the SBOM format attached to each platform image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum SbomFormat {
    /// SPDX 2.3 JSON.
    #[default]
    Spdx,
    /// CycloneDX 1.6 JSON.
    Cyclonedx,
    /// No SBOM.
    None,
}

/// The `provenance` key and `--provenance`: the provenance statement attached
/// to each platform image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ProvenanceFormat {
    /// A SLSA v1 provenance statement (in-toto) in a DSSE envelope.
    #[default]
    Slsa,
    /// No provenance.
    None,
}

/// The `linker` key: how a package's binaries are linked (and its C code
/// compiled) for non-host targets, overriding cargo-krust's choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinkerChoice {
    /// zig through cargo-zigbuild: C cross compiler, musl libc and linker.
    Zig,
    /// rust-lld alone: enough for pure-Rust crates.
    RustLld,
    /// cargo's own defaults: the target's default linker and `cc`-crate compilers.
    Cc,
}

/// The keys a `[…metadata.krust]` table may hold, for error messages.
pub const KEYS: &[&str] = &[
    "base-image",
    "platforms",
    "name",
    "tags",
    "env",
    "args",
    "ports",
    "user",
    "workdir",
    "labels",
    "annotations",
    "data",
    "features",
    "skip",
    "layer-compression",
    "linker",
    "build-std",
    "sbom",
    "auditable",
    "provenance",
];

/// The `KRUST_*` variables of the environment layer, with the key each sets.
/// Lists are comma-separated.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("KRUST_BASE_IMAGE", "base-image"),
    ("KRUST_PLATFORMS", "platforms"),
    ("KRUST_TAGS", "tags"),
];

/// Where a layer of settings comes from, for error messages.
#[derive(Debug, Clone)]
pub enum Origin {
    /// A TOML table, e.g. `[package.metadata.krust]` in `/p/Cargo.toml`.
    Table {
        table: String,
        file: PathBuf,
    },
    Environment,
    CommandLine,
}

impl Origin {
    /// How to name one key of this layer in an error.
    fn key(&self, key: &str) -> String {
        match self {
            Origin::Table { table, file } => {
                format!("[{table}] in {}: key `{key}`", file.display())
            }
            Origin::Environment => {
                let var = ENV_VARS
                    .iter()
                    .find(|(_, k)| *k == key)
                    .map_or("KRUST_*", |(var, _)| var);
                format!("environment variable {var}")
            }
            Origin::CommandLine => match key {
                "base-image" => "--base-image".into(),
                "platforms" => "--platform".into(),
                "tags" => "--tag".into(),
                "labels" => "--image-label".into(),
                "annotations" => "--image-annotation".into(),
                "user" => "--image-user".into(),
                other => format!("--{other}"),
            },
        }
    }

    fn whole(&self) -> String {
        match self {
            Origin::Table { table, file } => format!("[{table}] in {}", file.display()),
            Origin::Environment => "the environment".into(),
            Origin::CommandLine => "the command line".into(),
        }
    }
}

/// The `KEY=VALUE` arguments of a repeatable flag (`--image-label`,
/// `--image-annotation`) as the map of setting `key`, a later KEY winning;
/// `None` when the flag was not given, so that lower layers still count.
pub fn key_value_map(
    pairs: &[String],
    origin: &Origin,
    key: &str,
) -> Result<Option<BTreeMap<String, String>>> {
    if pairs.is_empty() {
        return Ok(None);
    }
    let parse = |pair: &String| match pair.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => Ok((name.to_string(), value.to_string())),
        _ => bail!(
            "{}: `{pair}` is not KEY=VALUE with a non-empty KEY; write e.g. `org.opencontainers.image.vendor=acme`",
            origin.key(key)
        ),
    };
    pairs.iter().map(parse).collect::<Result<_>>().map(Some)
}

/// A `[package.metadata.krust]` table: package settings plus per-bin tables.
#[derive(Debug, Clone, Default)]
pub struct PackageSettings {
    pub package: Settings,
    pub bins: BTreeMap<String, Settings>,
}

/// Folds layers, highest precedence first, into one.
pub fn layered(layers: impl IntoIterator<Item = Settings>) -> Settings {
    layers
        .into_iter()
        .reduce(Settings::over)
        .unwrap_or_default()
}

impl Settings {
    /// `self` layered over `lower`: every key set here wins; maps merge with
    /// this layer's entries winning.
    pub fn over(self, lower: Settings) -> Settings {
        fn merge_maps(
            high: Option<BTreeMap<String, String>>,
            low: Option<BTreeMap<String, String>>,
        ) -> Option<BTreeMap<String, String>> {
            match (high, low) {
                (Some(high), Some(mut low)) => {
                    low.extend(high);
                    Some(low)
                }
                (high, low) => high.or(low),
            }
        }
        let (data, data_root) = if self.data.is_some() {
            (self.data, self.data_root)
        } else {
            (lower.data, lower.data_root)
        };
        Settings {
            base_image: self.base_image.or(lower.base_image),
            platforms: self.platforms.or(lower.platforms),
            name: self.name.or(lower.name),
            tags: self.tags.or(lower.tags),
            env: merge_maps(self.env, lower.env),
            args: self.args.or(lower.args),
            ports: self.ports.or(lower.ports),
            user: self.user.or(lower.user),
            workdir: self.workdir.or(lower.workdir),
            labels: merge_maps(self.labels, lower.labels),
            annotations: merge_maps(self.annotations, lower.annotations),
            data,
            data_root,
            features: self.features.or(lower.features),
            skip: self.skip.or(lower.skip),
            layer_compression: self.layer_compression.or(lower.layer_compression),
            linker: self.linker.or(lower.linker),
            build_std: self.build_std.or(lower.build_std),
            sbom: self.sbom.or(lower.sbom),
            auditable: self.auditable.or(lower.auditable),
            provenance: self.provenance.or(lower.provenance),
        }
    }

    /// Parses the `krust` table of a Cargo.toml's metadata (`table` is the
    /// JSON cargo_metadata returns); `dir` resolves relative paths.
    pub fn from_table(table: &serde_json::Value, origin: &Origin, dir: &Path) -> Result<Settings> {
        let mut settings = parse_table(table, origin)?;
        settings.resolve_paths(dir);
        settings.validate(origin)?;
        Ok(settings)
    }

    /// Reads the global configuration file, if it exists. Its keys are the
    /// same as in Cargo.toml; relative paths are relative to its directory.
    pub fn from_global_file(path: &Path) -> Result<Settings> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Settings::default());
            }
            Err(err) => {
                return Err(err).with_context(|| format!("cannot read {}", path.display()));
            }
        };
        let value: toml::Value = toml::from_str(&text).map_err(|err| {
            anyhow::anyhow!("invalid TOML in {}: {}", path.display(), err.message())
        })?;
        let json = serde_json::to_value(value)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let origin = Origin::Table {
            table: "global configuration".into(),
            file: path.to_path_buf(),
        };
        Settings::from_table(&json, &origin, path.parent().unwrap_or(Path::new(".")))
    }

    /// The `KRUST_*` environment layer (see [`ENV_VARS`]); `lookup` reads a
    /// variable, so tests can pass their own environment.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<Settings> {
        let list = |var: &str| {
            lookup(var)
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                })
                .filter(|list| !list.is_empty())
        };
        let settings = Settings {
            base_image: lookup("KRUST_BASE_IMAGE").filter(|v| !v.trim().is_empty()),
            platforms: list("KRUST_PLATFORMS"),
            tags: list("KRUST_TAGS"),
            ..Settings::default()
        };
        settings.validate(&Origin::Environment)?;
        Ok(settings)
    }

    fn resolve_paths(&mut self, dir: &Path) {
        if let Some(data) = &self.data {
            self.data = Some(dir.join(data));
            self.data_root = Some(dir.to_path_buf());
        }
    }

    /// Checks every value that is set, naming the layer and key on failure.
    pub fn validate(&self, origin: &Origin) -> Result<()> {
        let at = |key: &str| origin.key(key);
        if let Some(base) = &self.base_image
            && base.trim() != "scratch"
        {
            parse_reference(base).with_context(|| {
                format!(
                    "{}: use a reference like registry/repo:tag, or `scratch`",
                    at("base-image")
                )
            })?;
        }
        if let Some(platforms) = &self.platforms {
            Platform::parse_list(platforms).with_context(|| at("platforms"))?;
        }
        if let Some(name) = &self.name {
            ImageName::join("registry.invalid", name).with_context(|| {
                format!("{}: image names are lower-case letters, digits and separators `.`, `_`, `-`, `/`", at("name"))
            })?;
        }
        for tag in self.tags.iter().flatten() {
            validate_tag(tag).with_context(|| at("tags"))?;
        }
        for key in self.env.iter().flat_map(|env| env.keys()) {
            if key.is_empty() || key.contains('=') {
                bail!(
                    "{}: invalid variable name `{key}` (it must be non-empty and contain no `=`)",
                    at("env")
                );
            }
        }
        for port in self.ports.iter().flatten() {
            validate_port(port).with_context(|| at("ports"))?;
        }
        if self.user.as_deref().is_some_and(|u| u.trim().is_empty()) {
            bail!(
                "{}: must not be empty (e.g. \"65532:65532\" or \"nonroot\")",
                at("user")
            );
        }
        if let Some(workdir) = &self.workdir
            && !workdir.starts_with('/')
        {
            bail!(
                "{}: `{workdir}` must be an absolute path inside the image, e.g. \"/app\"",
                at("workdir")
            );
        }
        for (key, map) in [("labels", &self.labels), ("annotations", &self.annotations)] {
            if map
                .iter()
                .flat_map(|m| m.keys())
                .any(|k| k.trim().is_empty())
            {
                bail!("{}: keys must not be empty", at(key));
            }
        }
        if let Some(data) = &self.data {
            let root = self.data_root.as_deref().unwrap_or(Path::new("/"));
            data_directory(data, root).with_context(|| at("data"))?;
        }
        if let Some(name) = &self.layer_compression
            && LayerCompression::parse(name).is_none()
        {
            bail!(
                "{}: unknown compression `{name}`; use one of {}",
                at("layer-compression"),
                LayerCompression::NAMES.join(", ")
            );
        }
        if self.features.iter().flatten().any(|f| f.trim().is_empty()) {
            bail!("{}: feature names must not be empty", at("features"));
        }
        Ok(())
    }
}

impl PackageSettings {
    /// Parses `[package.metadata.krust]` with its `bin.<name>` sub-tables.
    /// `bins` are the package's bin targets: a table for another name is an error.
    pub fn from_metadata(
        metadata: &serde_json::Value,
        manifest: &Path,
        bins: &[&str],
    ) -> Result<PackageSettings> {
        let Some(table) = metadata.get("krust") else {
            return Ok(PackageSettings::default());
        };
        let dir = manifest.parent().unwrap_or(Path::new("."));
        let origin = Origin::Table {
            table: "package.metadata.krust".into(),
            file: manifest.to_path_buf(),
        };
        let mut table = table.clone();
        let bin_tables = match table.as_object_mut().and_then(|t| t.remove("bin")) {
            None => BTreeMap::new(),
            Some(serde_json::Value::Object(tables)) => tables
                .into_iter()
                .map(|(bin, value)| {
                    if !bins.contains(&bin.as_str()) {
                        bail!(
                            "{}: no bin target named `{bin}` in this package (bins: {})",
                            origin.key(&format!("bin.{bin}")),
                            bins.join(", ")
                        );
                    }
                    let origin = Origin::Table {
                        table: format!("package.metadata.krust.bin.{bin}"),
                        file: manifest.to_path_buf(),
                    };
                    Ok((bin, Settings::from_table(&value, &origin, dir)?))
                })
                .collect::<Result<_>>()?,
            Some(_) => bail!(
                "{}: must be a table of per-bin settings, e.g. [package.metadata.krust.bin.worker]",
                origin.key("bin")
            ),
        };
        Ok(PackageSettings {
            package: Settings::from_table(&table, &origin, dir)?,
            bins: bin_tables,
        })
    }
}

/// The canonical path of a `data` directory, which must be a directory
/// that resolves inside `root`, the directory of the file that configures
/// it: through `..` or a symlink it could copy any directory of the machine
/// into the image.
pub fn data_directory(data: &Path, root: &Path) -> Result<PathBuf> {
    let resolved = match data.canonicalize() {
        Ok(resolved) => resolved,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => bail!(
            "data directory {} does not exist; create it or fix the path (relative to the file's directory)",
            data.display()
        ),
        Err(err) => {
            return Err(err)
                .with_context(|| format!("cannot resolve data directory {}", data.display()));
        }
    };
    if !resolved.is_dir() {
        bail!(
            "data path {} is not a directory: `data` names a directory whose contents are copied to /var/run/krust",
            data.display()
        );
    }
    let root_resolved = root
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", root.display()))?;
    if !resolved.starts_with(&root_resolved) {
        bail!(
            "data directory {} resolves to {}, outside {} (the directory of the file that configures it); move or copy the data into it",
            data.display(),
            resolved.display(),
            root.display()
        );
    }
    Ok(resolved)
}

/// Deserialises one table strictly: unknown keys get a suggestion, and type
/// errors name their key.
fn parse_table(table: &serde_json::Value, origin: &Origin) -> Result<Settings> {
    let Some(object) = table.as_object() else {
        bail!(
            "{}: expected a table of settings, found {table}",
            origin.whole()
        );
    };
    for (key, value) in object {
        if !KEYS.contains(&key.as_str()) {
            let hint = suggestion(key)
                .map(|near| format!("did you mean `{near}`?"))
                .unwrap_or_else(|| format!("known keys: {}", KEYS.join(", ")));
            bail!("{}: unknown key `{key}`; {hint}", origin.whole());
        }
        // Deserialise key by key so that a type error names its key.
        let single = serde_json::json!({ key.clone(): value.clone() });
        if let Err(err) = serde_json::from_value::<Settings>(single) {
            bail!("{}: wrong type: {err}", origin.key(key));
        }
    }
    serde_json::from_value::<Settings>(table.clone()).with_context(|| origin.whole())
}

/// The closest known key, when it is close enough to be a typo.
fn suggestion(key: &str) -> Option<&'static str> {
    let normalised = key.replace('_', "-").to_ascii_lowercase();
    KEYS.iter()
        .map(|known| (strsim::damerau_levenshtein(&normalised, known), *known))
        .filter(|(distance, known)| *distance <= 2.max(known.len() / 4))
        .min()
        .map(|(_, known)| known)
}

/// `PORT` or `PORT/tcp|udp|sctp`, PORT in 1..=65535.
fn validate_port(port: &str) -> Result<()> {
    let (number, protocol) = port.trim().split_once('/').unwrap_or((port.trim(), "tcp"));
    let number_ok = number.parse::<u16>().is_ok_and(|n| n > 0);
    let protocol_ok = matches!(
        protocol.to_ascii_lowercase().as_str(),
        "tcp" | "udp" | "sctp"
    );
    if !number_ok || !protocol_ok {
        bail!("invalid port `{port}`: use PORT or PORT/tcp|udp|sctp, e.g. \"8080/tcp\"");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn origin() -> Origin {
        Origin::Table {
            table: "package.metadata.krust".into(),
            file: PathBuf::from("/p/Cargo.toml"),
        }
    }

    fn settings(value: serde_json::Value) -> Settings {
        Settings::from_table(&value, &origin(), Path::new("/p")).unwrap()
    }

    fn error(value: serde_json::Value) -> String {
        format!(
            "{:#}",
            Settings::from_table(&value, &origin(), Path::new("/p")).unwrap_err()
        )
    }

    /// Each layer sets `user` (and an env entry) to its own name; removing
    /// the layers above it in turn must make it win. Covers every layer of
    /// SPEC §4 in order.
    #[test]
    fn precedence_covers_every_layer() {
        let names = ["cli", "env", "bin", "package", "workspace", "global"];
        let layer = |name: &str| Settings {
            user: Some(name.to_string()),
            env: Some([(name.to_string(), "1".to_string())].into()),
            ..Settings::default()
        };
        for top in 0..names.len() {
            let merged = layered(names[top..].iter().map(|n| layer(n)));
            assert_eq!(
                merged.user.as_deref(),
                Some(names[top]),
                "top layer {}",
                names[top]
            );
            let env = merged.env.unwrap();
            assert_eq!(env.len(), names.len() - top, "maps merge across layers");
        }
        // An unset key falls through to the first layer that sets it.
        let merged = layered([
            Settings::default(),
            Settings {
                workdir: Some("/bin-layer".into()),
                ..Settings::default()
            },
            Settings {
                workdir: Some("/global".into()),
                args: Some(vec!["g".into()]),
                ..Settings::default()
            },
        ]);
        assert_eq!(merged.workdir.as_deref(), Some("/bin-layer"));
        assert_eq!(merged.args, Some(vec!["g".to_string()]));
        assert_eq!(layered([]), Settings::default());
    }

    #[test]
    fn maps_merge_with_the_higher_entry_winning() {
        let high = settings(json!({"env": {"A": "high"}}));
        let low = settings(json!({"env": {"A": "low", "B": "low"}}));
        let env = high.over(low).env.unwrap();
        assert_eq!(env["A"], "high");
        assert_eq!(env["B"], "low");
    }

    #[test]
    fn environment_layer_reads_krust_variables() {
        let env = Settings::from_env(|var| match var {
            "KRUST_BASE_IMAGE" => Some("scratch".into()),
            "KRUST_PLATFORMS" => Some("linux/amd64, linux/arm64".into()),
            "KRUST_TAGS" => Some("a,b".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(env.base_image.as_deref(), Some("scratch"));
        assert_eq!(env.platforms.unwrap(), ["linux/amd64", "linux/arm64"]);
        assert_eq!(env.tags.unwrap(), ["a", "b"]);
        let err = Settings::from_env(|var| (var == "KRUST_PLATFORMS").then(|| "linux/mips".into()))
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("environment variable KRUST_PLATFORMS"),
            "{err:#}"
        );
    }

    #[test]
    fn linker_and_build_std_keys() {
        let parsed = settings(json!({"linker": "rust-lld", "build-std": true}));
        assert_eq!(parsed.linker, Some(LinkerChoice::RustLld));
        assert_eq!(parsed.build_std, Some(true));
        assert_eq!(
            settings(json!({"linker": "zig"})).linker,
            Some(LinkerChoice::Zig)
        );
        assert_eq!(
            settings(json!({"linker": "cc"})).linker,
            Some(LinkerChoice::Cc)
        );
    }

    #[test]
    fn invalid_values_name_file_and_key() {
        let cases = [
            (
                json!({"base_image": "x"}),
                "unknown key `base_image`; did you mean `base-image`?",
            ),
            (json!({"plaforms": []}), "did you mean `platforms`?"),
            (json!({"frobnicate": 1}), "known keys: base-image"),
            (json!({"tags": "latest"}), "key `tags`: wrong type"),
            (json!({"skip": "yes"}), "key `skip`: wrong type"),
            (
                json!({"platforms": ["linux/mips"]}),
                "key `platforms`: unsupported platform `linux/mips`",
            ),
            (json!({"base-image": "UPPER CASE!!"}), "key `base-image`"),
            (json!({"name": "Bad Name!"}), "key `name`"),
            (json!({"tags": ["-x"]}), "key `tags`: invalid tag"),
            (
                json!({"ports": ["http"]}),
                "key `ports`: invalid port `http`",
            ),
            (json!({"ports": ["0"]}), "key `ports`"),
            (json!({"workdir": "relative"}), "key `workdir`"),
            (json!({"env": {"A=B": "x"}}), "key `env`"),
            (
                json!({"data": "does-not-exist"}),
                "key `data`: data directory /p/does-not-exist does not exist",
            ),
            (
                json!({"layer-compression": "lz4"}),
                "key `layer-compression`: unknown compression `lz4`",
            ),
            (
                json!({"linker": "gold"}),
                "key `linker`: wrong type: unknown variant `gold`, expected one of `zig`, `rust-lld`, `cc`",
            ),
            (json!({"build-std": "yes"}), "key `build-std`: wrong type"),
            (json!({"build_std": true}), "did you mean `build-std`?"),
        ];
        for (value, expected) in cases {
            let err = error(value.clone());
            assert!(
                err.contains("[package.metadata.krust] in /p/Cargo.toml"),
                "{value}: {err}"
            );
            assert!(err.contains(expected), "{value}: {err}");
        }
    }

    #[test]
    fn command_line_key_values_become_maps_and_name_their_flag() {
        let cli = Origin::CommandLine;
        let pairs = ["a=1", "b=x=y", "a=2"].map(String::from);
        let map = key_value_map(&pairs, &cli, "labels").unwrap().unwrap();
        assert_eq!(map["a"], "2", "a later KEY wins");
        assert_eq!(map["b"], "x=y", "split at the first `=`");
        assert_eq!(key_value_map(&[], &cli, "labels").unwrap(), None);
        for (pair, key, flag) in [
            ("novalue", "labels", "--image-label"),
            ("=v", "annotations", "--image-annotation"),
        ] {
            let err = key_value_map(&[pair.to_string()], &cli, key).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with(&format!("{flag}: `{pair}` is not KEY=VALUE")),
                "{err}"
            );
        }
        let user = Settings {
            user: Some(String::new()),
            ..Settings::default()
        };
        let err = user.validate(&cli).unwrap_err().to_string();
        assert!(err.starts_with("--image-user: must not be empty"), "{err}");
    }

    #[test]
    fn package_table_splits_bins_and_rejects_unknown_bins() {
        let metadata = json!({"krust": {"user": "1", "bin": {"w": {"args": ["x"]}}}});
        let parsed =
            PackageSettings::from_metadata(&metadata, Path::new("/p/Cargo.toml"), &["w"]).unwrap();
        assert_eq!(parsed.package.user.as_deref(), Some("1"));
        assert_eq!(
            parsed.bins["w"].args.as_deref(),
            Some(&["x".to_string()][..])
        );
        let err = PackageSettings::from_metadata(&metadata, Path::new("/p/Cargo.toml"), &["v"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("no bin target named `w`"), "{err}");
    }

    #[test]
    fn data_paths_resolve_against_their_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        let parsed = Settings::from_table(&json!({"data": "d"}), &origin(), dir.path()).unwrap();
        assert_eq!(parsed.data.unwrap(), dir.path().join("d"));
        assert_eq!(parsed.data_root.unwrap(), dir.path());
    }

    #[test]
    fn data_must_be_a_directory_inside_the_files_directory() {
        let dir = tempfile::tempdir().unwrap();
        let package = dir.path().join("p");
        std::fs::create_dir_all(package.join("d")).unwrap();
        std::fs::create_dir_all(dir.path().join("outside")).unwrap();
        std::fs::write(package.join("file"), "x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside"), package.join("link-out")).unwrap();
        std::os::unix::fs::symlink("d", package.join("link-in")).unwrap();
        let parse =
            |data: &str| Settings::from_table(&json!({ "data": data }), &origin(), &package);
        parse("link-in").unwrap();
        for (data, expected) in [
            ("file", "is not a directory"),
            ("../outside", "outside"),
            ("link-out", "outside"),
            ("..", "outside"),
        ] {
            let err = format!("{:#}", parse(data).unwrap_err());
            assert!(
                err.contains("key `data`") && err.contains(expected),
                "{data}: {err}"
            );
        }
    }
}
