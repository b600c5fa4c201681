//! Image names and references as the user writes them: validation against the
//! OCI distribution grammar, the `REPO/NAME` naming rule of SPEC §3, and the
//! registry/repository split the registry client needs.

use std::fmt;

use anyhow::{Result, bail};
use oci_client::Reference;

/// A repository to publish to, e.g. `127.0.0.1:5000/x/hello`, kept as the user
/// wrote it (that is what is printed) together with its parsed parts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageName {
    text: String,
    registry: String,
    repository: String,
}

impl ImageName {
    /// Parses a repository name without tag or digest.
    pub fn parse(text: &str) -> Result<ImageName> {
        let reference = parse_reference(text)?;
        if reference.digest().is_some() || text.rsplit('/').next().is_some_and(|l| l.contains(':'))
        {
            bail!("invalid image name `{text}`: expected a repository without tag or digest");
        }
        Ok(ImageName {
            text: text.trim_end_matches('/').to_string(),
            registry: reference.registry().to_string(),
            repository: reference.repository().to_string(),
        })
    }

    /// `PREFIX/name`, the name lower-cased (SPEC §3).
    pub fn join(prefix: &str, name: &str) -> Result<ImageName> {
        let prefix = prefix.trim().trim_end_matches('/');
        ImageName::parse(&format!("{prefix}/{}", name.to_ascii_lowercase()))
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The last path component, e.g. `hello` for `127.0.0.1:5000/x/hello`.
    pub fn short_name(&self) -> &str {
        self.repository
            .rsplit('/')
            .next()
            .unwrap_or(&self.repository)
    }

    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference::with_tag(
            self.registry.clone(),
            self.repository.clone(),
            tag.to_string(),
        )
    }

    pub fn with_digest(&self, digest: &str) -> Reference {
        Reference::with_digest(
            self.registry.clone(),
            self.repository.clone(),
            digest.to_string(),
        )
    }
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Parses any image reference (`name[:tag][@digest]`), with an error that
/// names the input and the rule it breaks.
pub fn parse_reference(text: &str) -> Result<Reference> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        bail!("invalid image reference ``: it is empty");
    }
    trimmed
        .parse::<Reference>()
        .map_err(|err| anyhow::anyhow!("invalid image reference `{trimmed}`: {err}"))
}

/// Validates a tag against the distribution grammar `[\w][\w.-]{0,127}`.
pub fn validate_tag(tag: &str) -> Result<()> {
    let mut chars = tag.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !first_ok || !rest_ok || tag.len() > 128 {
        bail!(
            "invalid tag `{tag}`: tags are 1-128 characters of letters, digits, `_`, `.` and `-`, not starting with `.` or `-`"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_prefix_and_lowercases_name() {
        let name = ImageName::join("127.0.0.1:5000/x", "Hello_Krust").unwrap();
        assert_eq!(name.to_string(), "127.0.0.1:5000/x/hello_krust");
        assert_eq!(name.registry(), "127.0.0.1:5000");
        assert_eq!(name.repository(), "x/hello_krust");
        assert_eq!(name.short_name(), "hello_krust");
    }

    #[test]
    fn rejects_invalid_names() {
        for bad in [
            "bad repo//x",
            "UPPER/Case",
            "a/b:tag",
            "a/b@sha256:00",
            "",
            "x//y",
        ] {
            assert!(ImageName::parse(bad).is_err(), "{bad}");
        }
        assert!(parse_reference("UPPER CASE!!").is_err());
    }

    #[test]
    fn validates_tags() {
        for good in ["latest", "v1.2.3", "_x", "A-b.c"] {
            validate_tag(good).unwrap();
        }
        for bad in ["", ".x", "-x", "a b", "a/b", &"x".repeat(129)] {
            assert!(validate_tag(bad).is_err(), "{bad}");
        }
    }
}
