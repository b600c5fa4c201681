//! The `krust://PATH[#bin]` references of SPEC §8: parsing, and the package
//! directory they name relative to the YAML file that holds them.

use std::path::Path;

use anyhow::{Result, bail};

use crate::plan::packages::PackageRequest;

/// What marks a string scalar as a reference to build.
pub const SCHEME: &str = "krust://";

/// A parsed `krust://PATH[#bin]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KrustRef {
    pub path: String,
    pub bin: Option<String>,
}

impl KrustRef {
    /// Parses a scalar value that starts with [`SCHEME`].
    pub fn parse(value: &str) -> Result<KrustRef> {
        let Some(rest) = value.strip_prefix(SCHEME) else {
            bail!("`{value}` does not start with {SCHEME}");
        };
        let (path, bin) = match rest.split_once('#') {
            Some((path, bin)) => (path, Some(bin)),
            None => (rest, None),
        };
        if path.is_empty() {
            bail!(
                "`{value}` names no package: write {SCHEME}PATH or {SCHEME}PATH#BIN, PATH relative to the YAML file"
            );
        }
        if bin.is_some_and(str::is_empty) {
            bail!("`{value}` has an empty bin name after `#`: write {SCHEME}PATH#BIN");
        }
        Ok(KrustRef {
            path: path.to_string(),
            bin: bin.map(str::to_string),
        })
    }

    /// The package asked for, PATH taken relative to `base` (the directory of
    /// the YAML file, or the current directory for stdin).
    pub fn request(&self, base: &Path) -> PackageRequest {
        PackageRequest {
            dir: base.join(&self.path),
            bin: self.bin.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_path_and_bin() {
        let table = [
            ("krust://.", ".", None),
            ("krust://../apps/api", "../apps/api", None),
            ("krust://./svc#worker", "./svc", Some("worker")),
            ("krust:///abs/pkg#b", "/abs/pkg", Some("b")),
        ];
        for (value, path, bin) in table {
            let parsed = KrustRef::parse(value).unwrap();
            assert_eq!(parsed.path, path, "{value}");
            assert_eq!(parsed.bin.as_deref(), bin, "{value}");
        }
    }

    #[test]
    fn rejects_empty_parts() {
        for value in ["krust://", "krust://#bin", "krust://./x#", "other://x"] {
            assert!(KrustRef::parse(value).is_err(), "{value}");
        }
    }

    #[test]
    fn paths_are_relative_to_the_yaml_directory() {
        let parsed = KrustRef::parse("krust://../pkg#b").unwrap();
        let request = parsed.request(Path::new("/deploy/base"));
        assert_eq!(request.dir, Path::new("/deploy/base/../pkg"));
        assert_eq!(request.bin.as_deref(), Some("b"));
        let parsed = KrustRef::parse("krust:///abs").unwrap();
        assert_eq!(parsed.request(Path::new("/x")).dir, Path::new("/abs"));
    }
}
