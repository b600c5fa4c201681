//! The configuration keys of SPEC §4 and their layering: one [`Settings`]
//! value per source (CLI, environment, per-bin table, package table,
//! workspace table, global file, defaults), merged by [`Settings::over`] with
//! the higher layer winning key by key (maps merge entry by entry).
//!
//! Parsing is strict: an unknown key or a wrongly typed value is an error that
//! names the file and the key, with a "did you mean" for near misses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;

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
    pub data: Option<PathBuf>,
    pub features: Option<Vec<String>>,
    pub skip: Option<bool>,
}

/// The keys a `[…metadata.krust]` table may hold, for error messages.
const KEYS: &[&str] = &[
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
];

/// A `[package.metadata.krust]` table: package settings plus per-bin tables.
#[derive(Debug, Clone, Default)]
pub struct PackageSettings {
    pub package: Settings,
    pub bins: BTreeMap<String, Settings>,
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
            data: self.data.or(lower.data),
            features: self.features.or(lower.features),
            skip: self.skip.or(lower.skip),
        }
    }

    /// Parses the `krust` table of a Cargo.toml's metadata (`table` is the
    /// JSON cargo_metadata returns). `origin` names the table in errors, e.g.
    /// `[package.metadata.krust] in /p/Cargo.toml`.
    pub fn from_metadata(table: &serde_json::Value, origin: &str) -> Result<Settings> {
        parse_table(table, origin)
    }

    /// Reads the global configuration file, if it exists. Its keys are the
    /// same as in Cargo.toml.
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
        let value: toml::Value =
            toml::from_str(&text).with_context(|| format!("invalid TOML in {}", path.display()))?;
        let json = serde_json::to_value(value)
            .with_context(|| format!("cannot read {}", path.display()))?;
        parse_table(&json, &path.display().to_string())
    }
}

impl PackageSettings {
    /// Parses `[package.metadata.krust]` (with its `bin.<name>` sub-tables).
    pub fn from_metadata(metadata: &serde_json::Value, manifest: &Path) -> Result<PackageSettings> {
        let Some(table) = metadata.get("krust") else {
            return Ok(PackageSettings::default());
        };
        let origin = format!("[package.metadata.krust] in {}", manifest.display());
        let mut table = table.clone();
        let bins = match table.as_object_mut().and_then(|t| t.remove("bin")) {
            None => BTreeMap::new(),
            Some(serde_json::Value::Object(bins)) => bins
                .into_iter()
                .map(|(bin, value)| {
                    let origin = format!(
                        "[package.metadata.krust.bin.{bin}] in {}",
                        manifest.display()
                    );
                    Ok((bin, parse_table(&value, &origin)?))
                })
                .collect::<Result<_>>()?,
            Some(_) => bail!(
                "{origin}: key `bin` must be a table of per-bin settings, e.g. [package.metadata.krust.bin.worker]"
            ),
        };
        Ok(PackageSettings {
            package: parse_table(&table, &origin)?,
            bins,
        })
    }
}

/// Deserialises one table strictly, turning serde's messages into one line
/// that names the origin, the key and the fix.
fn parse_table(table: &serde_json::Value, origin: &str) -> Result<Settings> {
    if !table.is_object() {
        bail!("{origin}: expected a table of settings, found {table}");
    }
    if let Some(object) = table.as_object() {
        for key in object.keys() {
            if !KEYS.contains(&key.as_str()) {
                let hint = strsim_suggestion(key)
                    .map(|near| format!("; did you mean `{near}`?"))
                    .unwrap_or_else(|| format!("; known keys: {}", KEYS.join(", ")));
                bail!("{origin}: unknown key `{key}`{hint}");
            }
        }
    }
    // Deserialise key by key so that a type error names its key.
    if let Some(object) = table.as_object() {
        for (key, value) in object {
            let single = serde_json::json!({ key.clone(): value.clone() });
            if let Err(err) = serde_json::from_value::<Settings>(single) {
                bail!("{origin}: key `{key}` has the wrong type: {err}");
            }
        }
    }
    serde_json::from_value::<Settings>(table.clone()).map_err(|err| anyhow!("{origin}: {err}"))
}

/// The closest known key, when it is close enough to be a typo.
fn strsim_suggestion(key: &str) -> Option<&'static str> {
    KEYS.iter()
        .map(|known| (strsim::damerau_levenshtein(key, known), *known))
        .filter(|(distance, known)| *distance <= 2.max(known.len() / 4))
        .min()
        .map(|(_, known)| known)
        .or_else(|| {
            let normalised = key.replace('_', "-").to_ascii_lowercase();
            KEYS.iter().copied().find(|known| *known == normalised)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(value: serde_json::Value) -> Settings {
        Settings::from_metadata(&value, "test").unwrap()
    }

    #[test]
    fn higher_layer_wins_and_maps_merge() {
        let high = settings(json!({"user": "1", "env": {"A": "high"}}));
        let low = settings(json!({"user": "2", "workdir": "/w", "env": {"A": "low", "B": "low"}}));
        let merged = high.over(low);
        assert_eq!(merged.user.as_deref(), Some("1"));
        assert_eq!(merged.workdir.as_deref(), Some("/w"));
        let env = merged.env.unwrap();
        assert_eq!(env["A"], "high");
        assert_eq!(env["B"], "low");
    }

    #[test]
    fn unknown_key_suggests_the_near_one() {
        let err = Settings::from_metadata(&json!({"base_image": "x"}), "[t] in C")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown key `base_image`"), "{err}");
        assert!(err.contains("did you mean `base-image`"), "{err}");
        let err = Settings::from_metadata(&json!({"plaforms": []}), "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("did you mean `platforms`"), "{err}");
    }

    #[test]
    fn wrong_type_names_origin() {
        let err = Settings::from_metadata(&json!({"tags": "latest"}), "[t] in C")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("[t] in C: key `tags` has the wrong type: invalid type"),
            "{err}"
        );
    }

    #[test]
    fn package_table_splits_bins() {
        let metadata = json!({"krust": {"user": "1", "bin": {"w": {"args": ["x"]}}}});
        let parsed = PackageSettings::from_metadata(&metadata, Path::new("C")).unwrap();
        assert_eq!(parsed.package.user.as_deref(), Some("1"));
        assert_eq!(
            parsed.bins["w"].args.as_deref(),
            Some(&["x".to_string()][..])
        );
    }
}
