//! Target platforms: parsing and normalising `os/arch[/variant]` strings, the
//! mapping to Rust musl target triples (SPEC §6), platform lists with `all`
//! (expanded once the base image's platforms are known), and matching against
//! the platform entries of a base image index.

use std::fmt;

use anyhow::{Result, bail};
use serde_json::Value;

/// A normalised OCI platform such as `linux/arm64` or `linux/arm/v7`.
///
/// `arm64/v8` is folded into `arm64` (they name the same thing); other
/// variants are kept because they select different Rust targets.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

/// Every platform cargo-krust can build, with its Rust target triple.
const SUPPORTED: &[(&str, &str, Option<&str>, &str)] = &[
    ("linux", "amd64", None, "x86_64-unknown-linux-musl"),
    ("linux", "arm64", None, "aarch64-unknown-linux-musl"),
    ("linux", "arm", Some("v7"), "armv7-unknown-linux-musleabihf"),
    ("linux", "arm", Some("v6"), "arm-unknown-linux-musleabihf"),
    ("linux", "386", None, "i686-unknown-linux-musl"),
    ("linux", "ppc64le", None, "powerpc64le-unknown-linux-musl"),
    ("linux", "s390x", None, "s390x-unknown-linux-musl"),
    ("linux", "riscv64", None, "riscv64gc-unknown-linux-musl"),
];

impl Platform {
    /// Builds a normalised platform from its parts (lower-cased, `arm64/v8` → `arm64`).
    pub fn new(os: &str, arch: &str, variant: Option<&str>) -> Platform {
        let os = os.trim().to_ascii_lowercase();
        let arch = match arch.trim().to_ascii_lowercase().as_str() {
            "x86_64" | "x86-64" => "amd64".to_string(),
            "aarch64" => "arm64".to_string(),
            "i386" | "i686" => "386".to_string(),
            other => other.to_string(),
        };
        let variant = variant
            .map(|v| v.trim().to_ascii_lowercase())
            .filter(|v| !v.is_empty())
            .filter(|v| !(arch == "arm64" && v == "v8"))
            .filter(|v| !(arch == "amd64" && v == "v1"));
        // `linux/arm` without a variant means v7 by convention (as in containerd).
        let variant = match (arch.as_str(), variant) {
            ("arm", None) => Some("v7".to_string()),
            (_, v) => v,
        };
        Platform { os, arch, variant }
    }

    /// Parses one `os/arch[/variant]` string. Only platforms of SPEC §6 are accepted.
    pub fn parse(text: &str) -> Result<Platform> {
        let parts: Vec<&str> = text.trim().split('/').collect();
        let platform = match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Platform::new(os, arch, None),
            [os, arch, variant] if !os.is_empty() && !arch.is_empty() => {
                Platform::new(os, arch, Some(variant))
            }
            _ => bail!(
                "invalid platform `{}`: expected os/arch[/variant], e.g. linux/amd64",
                text.trim()
            ),
        };
        if platform.rust_target().is_none() {
            bail!(
                "unsupported platform `{}`: cargo-krust builds {}",
                text.trim(),
                Platform::all()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Ok(platform)
    }

    /// Parses a list of `--platform` values: each may be comma-separated, and
    /// `all` stands for every platform of the base image (see [`expand`]).
    /// Duplicates are dropped, the first occurrence keeps its place.
    pub fn parse_list<S: AsRef<str>>(values: &[S]) -> Result<Vec<Listed>> {
        let mut listed: Vec<Listed> = Vec::new();
        for value in values {
            for item in value.as_ref().split(',').map(str::trim) {
                if item.is_empty() {
                    continue;
                }
                let parsed = if item.eq_ignore_ascii_case("all") {
                    Listed::All
                } else {
                    Listed::Platform(Platform::parse(item)?)
                };
                if !listed.contains(&parsed) {
                    listed.push(parsed);
                }
            }
        }
        Ok(listed)
    }

    /// Every platform of SPEC §6, in table order.
    pub fn all() -> Vec<Platform> {
        SUPPORTED
            .iter()
            .map(|(os, arch, variant, _)| Platform::new(os, arch, *variant))
            .collect()
    }

    /// The Rust target triple for this platform, if cargo-krust supports it.
    pub fn rust_target(&self) -> Option<&'static str> {
        SUPPORTED
            .iter()
            .find(|(os, arch, variant, _)| {
                *os == self.os && *arch == self.arch && *variant == self.variant.as_deref()
            })
            .map(|(_, _, _, triple)| *triple)
    }

    /// The platform of the machine running cargo-krust, used when there is no
    /// base image to take platforms from.
    pub fn host() -> Platform {
        Platform::new("linux", std::env::consts::ARCH, None)
    }

    /// Reads the `platform` object of an index entry or the os/architecture/variant
    /// fields of an image config.
    pub fn from_json(value: &Value) -> Option<Platform> {
        let os = value.get("os")?.as_str()?;
        let arch = value.get("architecture")?.as_str()?;
        let variant = value.get("variant").and_then(Value::as_str);
        Some(Platform::new(os, arch, variant))
    }

    /// The OCI `platform` object for an index entry.
    pub fn to_json(&self) -> Value {
        let mut object = serde_json::Map::new();
        object.insert("architecture".into(), Value::String(self.arch.clone()));
        object.insert("os".into(), Value::String(self.os.clone()));
        if let Some(variant) = &self.variant {
            object.insert("variant".into(), Value::String(variant.clone()));
        }
        Value::Object(object)
    }
}

/// One entry of a platform list as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listed {
    /// `all`: every platform of the base image that cargo-krust can build
    /// (as ko's `--platform=all`), known only once the base is fetched.
    All,
    Platform(Platform),
}

/// The platforms a list names, `all` replaced in place by `available` (the
/// base image's buildable platforms, or every platform of SPEC §6 on
/// `scratch`); duplicates dropped, the first occurrence keeping its place.
pub fn expand(listed: &[Listed], available: &[Platform]) -> Vec<Platform> {
    let mut platforms: Vec<Platform> = Vec::new();
    for entry in listed {
        let named = match entry {
            Listed::All => available,
            Listed::Platform(platform) => std::slice::from_ref(platform),
        };
        for platform in named {
            if !platforms.contains(platform) {
                platforms.push(platform.clone());
            }
        }
    }
    platforms
}

/// The platforms a list names explicitly (without `all`).
pub fn named(listed: &[Listed]) -> impl Iterator<Item = &Platform> {
    listed.iter().filter_map(|entry| match entry {
        Listed::Platform(platform) => Some(platform),
        Listed::All => None,
    })
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        let cases = [
            ("linux/amd64", "linux/amd64", "x86_64-unknown-linux-musl"),
            (" Linux/AMD64 ", "linux/amd64", "x86_64-unknown-linux-musl"),
            (
                "linux/arm64/v8",
                "linux/arm64",
                "aarch64-unknown-linux-musl",
            ),
            ("linux/arm64", "linux/arm64", "aarch64-unknown-linux-musl"),
            (
                "linux/arm",
                "linux/arm/v7",
                "armv7-unknown-linux-musleabihf",
            ),
            (
                "linux/arm/v6",
                "linux/arm/v6",
                "arm-unknown-linux-musleabihf",
            ),
            ("linux/386", "linux/386", "i686-unknown-linux-musl"),
            (
                "linux/riscv64",
                "linux/riscv64",
                "riscv64gc-unknown-linux-musl",
            ),
        ];
        for (input, display, triple) in cases {
            let platform = Platform::parse(input).unwrap();
            assert_eq!(platform.to_string(), display, "{input}");
            assert_eq!(platform.rust_target(), Some(triple), "{input}");
        }
    }

    #[test]
    fn rejects_unknown_and_malformed() {
        for input in [
            "linux/mips",
            "windows/amd64",
            "linux",
            "/amd64",
            "a/b/c/d",
            "",
        ] {
            let err = Platform::parse(input).unwrap_err().to_string();
            assert!(err.contains("platform"), "{input}: {err}");
        }
    }

    #[test]
    fn list_splits_commas_keeps_all_and_dedupes() {
        let amd64 = Platform::new("linux", "amd64", None);
        let arm64 = Platform::new("linux", "arm64", None);
        let list = Platform::parse_list(&["linux/amd64,linux/arm64", "linux/amd64"]).unwrap();
        assert_eq!(
            list,
            [
                Listed::Platform(amd64.clone()),
                Listed::Platform(arm64.clone())
            ]
        );
        let list = Platform::parse_list(&["linux/arm64, ALL", "all,linux/386"]).unwrap();
        let i386 = Platform::new("linux", "386", None);
        assert_eq!(
            list,
            [
                Listed::Platform(arm64.clone()),
                Listed::All,
                Listed::Platform(i386.clone())
            ]
        );
        assert_eq!(named(&list).collect::<Vec<_>>(), [&arm64, &i386]);
        // `all` expands in place to what the base has, without duplicates.
        assert_eq!(
            expand(&list, &[amd64.clone(), arm64.clone()]),
            [arm64.clone(), amd64.clone(), i386.clone()]
        );
        assert_eq!(
            expand(&[Listed::All], &Platform::all()).len(),
            SUPPORTED.len()
        );
    }

    #[test]
    fn reads_index_entries() {
        let entry = serde_json::json!({"architecture": "arm64", "os": "linux", "variant": "v8"});
        assert_eq!(
            Platform::from_json(&entry),
            Some(Platform::new("linux", "arm64", None))
        );
        let unknown = serde_json::json!({"architecture": "unknown", "os": "unknown"});
        assert_eq!(Platform::from_json(&unknown).unwrap().rust_target(), None);
    }
}
