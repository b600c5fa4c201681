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

/// Parses any image reference (`name[:tag][@digest]`) by the distribution
/// grammar, normalised as docker does (`busybox` is
/// `docker.io/library/busybox`), with an error that names the input and the
/// rule it breaks.
///
/// Hand-written rather than oci-spec's `Reference::from_str`: that compiles
/// a large Unicode regex on first use, ~50 ms, two thirds of the time of a
/// whole no-op `cargo krust build`.
pub fn parse_reference(text: &str) -> Result<Reference> {
    let trimmed = text.trim();
    split_reference(trimmed)
        .map_err(|why| anyhow::anyhow!("invalid image reference `{trimmed}`: {why}"))
}

fn split_reference(text: &str) -> std::result::Result<Reference, String> {
    if text.is_empty() {
        return Err("it is empty".into());
    }
    let (rest, digest) = match text.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (text, None),
    };
    if let Some(digest) = digest {
        check_digest(digest)?;
    }
    // A tag follows the last `:` after the last `/` (a `:` before it is a port).
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(tag) = tag {
        validate_tag(tag).map_err(|e| e.to_string())?;
    }
    if name.len() > 255 {
        return Err("the name is longer than 255 characters".into());
    }
    let (domain, path) = match name.split_once('/') {
        Some((first, path))
            if first.contains(['.', ':']) || first == "localhost" || first.starts_with('[') =>
        {
            check_domain(first)?;
            (first.to_string(), path.to_string())
        }
        _ => ("docker.io".to_string(), name.to_string()),
    };
    for component in path.split('/') {
        check_path_component(component)?;
    }
    let domain = if domain == "index.docker.io" {
        "docker.io".to_string()
    } else {
        domain
    };
    let path = if domain == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    Ok(match (tag, digest) {
        (Some(tag), Some(digest)) => {
            Reference::with_tag_and_digest(domain, path, tag.to_string(), digest.to_string())
        }
        (None, Some(digest)) => Reference::with_digest(domain, path, digest.to_string()),
        (tag, None) => Reference::with_tag(domain, path, tag.unwrap_or("latest").to_string()),
    })
}

/// `[a-z0-9]+` runs joined by one `.`, one or two `_`, or any number of `-`.
fn check_path_component(component: &str) -> std::result::Result<(), String> {
    let bad = || {
        Err(format!(
            "`{component}` is not a valid repository path component (lower-case letters and digits, joined by `.`, `_`, `__` or `-`)"
        ))
    };
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return bad();
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let ok = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !ok {
            return bad();
        }
    }
    Ok(())
}

/// `host[:port]`: dot-separated labels of letters, digits and inner `-`, or
/// a bracketed IPv6 address.
fn check_domain(domain: &str) -> std::result::Result<(), String> {
    let bad = || Err(format!("`{domain}` is not a valid registry host[:port]"));
    let (host, port) = match domain.strip_prefix('[') {
        Some(rest) => {
            let Some((ip, after)) = rest.split_once(']') else {
                return bad();
            };
            if ip.parse::<std::net::Ipv6Addr>().is_err() {
                return bad();
            }
            match (after, after.strip_prefix(':')) {
                ("", _) => (None, None),
                (_, Some(port)) => (None, Some(port)),
                (_, None) => return bad(),
            }
        }
        None => match domain.rsplit_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(domain), None),
        },
    };
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return bad();
    }
    if let Some(host) = host {
        let label_ok = |label: &str| {
            let bytes = label.as_bytes();
            !bytes.is_empty()
                && bytes[0].is_ascii_alphanumeric()
                && bytes[bytes.len() - 1].is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        };
        if !host.split('.').all(label_ok) {
            return bad();
        }
    }
    Ok(())
}

/// `algorithm:hex`, the hex part at least 32 digits.
fn check_digest(digest: &str) -> std::result::Result<(), String> {
    let bad = || {
        Err(format!(
            "`{digest}` is not a valid digest (e.g. sha256:<64 hex digits>)"
        ))
    };
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return bad();
    };
    let algorithm_ok = !algorithm.is_empty()
        && algorithm.as_bytes()[0].is_ascii_alphabetic()
        && algorithm
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'.' | b'-' | b'_'));
    let hex_ok = hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    let length_ok = algorithm != "sha256" || hex.len() == 64;
    if !algorithm_ok || !hex_ok || !length_ok {
        return bad();
    }
    Ok(())
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

    /// Strings built from the grammar's own pieces and from anything else
    /// (multi-byte characters, control bytes, huge runs) never panic a
    /// parser of user input: references, names, tags, platforms.
    #[test]
    fn arbitrary_input_never_panics() {
        const PIECES: &[&str] = &[
            "a",
            "Z",
            "0",
            ".",
            "-",
            "_",
            "__",
            "/",
            ":",
            "@",
            "sha256:",
            "[",
            "]",
            "::1",
            "localhost",
            "docker.io",
            "5000",
            "é",
            "日",
            "\0",
            "\n",
            " ",
            "%",
            "latest",
            "linux",
            "amd64",
            "arm",
            "v7",
            "all",
            ",",
        ];
        let mut rng = fastrand::Rng::with_seed(14);
        for round in 0..3000 {
            let text: String = match round % 3 {
                0 => (0..rng.usize(0..12))
                    .map(|_| PIECES[rng.usize(0..PIECES.len())])
                    .collect(),
                1 => (0..rng.usize(0..40)).map(|_| rng.char(..)).collect(),
                _ => PIECES[rng.usize(0..PIECES.len())].repeat(rng.usize(0..300)),
            };
            let _ = parse_reference(&text);
            let _ = ImageName::parse(&text);
            let _ = ImageName::join(&text, &text);
            let _ = validate_tag(&text);
            let _ = crate::platform::Platform::parse_list(&[text.as_str()]);
            if let Ok(name) = ImageName::parse(&text) {
                let _ = (name.short_name(), name.with_tag("t"), name.to_string());
            }
        }
    }

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
    fn parses_references_like_distribution() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let cases = [
            (
                "busybox",
                "docker.io",
                "library/busybox",
                Some("latest"),
                None,
            ),
            (
                "index.docker.io/me/app:v1",
                "docker.io",
                "me/app",
                Some("v1"),
                None,
            ),
            ("me/app", "docker.io", "me/app", Some("latest"), None),
            ("localhost/app", "localhost", "app", Some("latest"), None),
            (
                "127.0.0.1:5000/x/y:t",
                "127.0.0.1:5000",
                "x/y",
                Some("t"),
                None,
            ),
            ("[::1]:5000/x", "[::1]:5000", "x", Some("latest"), None),
            ("[::1]/x", "[::1]", "x", Some("latest"), None),
            (
                "ghcr.io/a/b-c__d.e/f",
                "ghcr.io",
                "a/b-c__d.e/f",
                Some("latest"),
                None,
            ),
            (
                "cgr.dev/chainguard/static:latest",
                "cgr.dev",
                "chainguard/static",
                Some("latest"),
                None,
            ),
        ];
        for (text, registry, repository, tag, digest_part) in cases {
            let parsed = parse_reference(text).unwrap();
            assert_eq!(parsed.registry(), registry, "{text}");
            assert_eq!(parsed.repository(), repository, "{text}");
            assert_eq!(parsed.tag(), tag, "{text}");
            assert_eq!(parsed.digest(), digest_part, "{text}");
        }
        let pinned = parse_reference(&format!("r.io/a:t@{digest}")).unwrap();
        assert_eq!(pinned.tag(), Some("t"));
        assert_eq!(pinned.digest(), Some(digest.as_str()));
        let by_digest = parse_reference(&format!("r.io/a@{digest}")).unwrap();
        assert_eq!(by_digest.tag(), None);

        for bad in [
            "",
            "UPPER",
            "a//b",
            "a/",
            "-a",
            "a--",
            "a...b",
            "a___b",
            "r.io/a:-tag",
            "r.io/a@sha256:abc",
            "r.io/a@md5",
            "bad_host.io:x/a",
            "r.io:/a",
            "[::1]x/a",
            "[zz]/a",
            "UPPER CASE!!",
            &format!("r.io/{}", "a".repeat(260)),
        ] {
            assert!(parse_reference(bad).is_err(), "{bad} should be rejected");
        }
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
