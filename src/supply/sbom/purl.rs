//! Package URLs (purl): `pkg:cargo/…` for crates, `pkg:oci/…` for images,
//! percent-encoded as the purl specification asks (a version's `+` and a
//! digest's `:` encoded; `:` and `/` kept in qualifier values, as the
//! reference implementations do).

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::{OciImage, Source};

/// What a purl component keeps unencoded: the URL-unreserved characters.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// What a qualifier value also keeps.
const QUALIFIER: &AsciiSet = &COMPONENT.remove(b':').remove(b'/');

fn component(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

fn qualifier(text: &str) -> String {
    utf8_percent_encode(text, QUALIFIER).to_string()
}

/// The purl of a crate: none for a path package, whose name on crates.io
/// may be someone else's crate.
pub fn cargo(name: &str, version: &str, source: &Source) -> Option<String> {
    let base = format!("pkg:cargo/{}@{}", component(name), component(version));
    match source {
        Source::CratesIo => Some(base),
        Source::Registry(index) => Some(format!("{base}?repository_url={}", qualifier(index))),
        Source::Git { url, commit } => {
            let vcs = if commit.is_empty() {
                format!("git+{url}")
            } else {
                format!("git+{url}@{commit}")
            };
            Some(format!("{base}?vcs_url={}", qualifier(&vcs)))
        }
        Source::Path => None,
    }
}

/// The purl of one platform manifest of an image.
pub fn oci(image: &OciImage) -> String {
    let name = image
        .repository
        .rsplit('/')
        .next()
        .unwrap_or(image.repository)
        .to_ascii_lowercase();
    format!(
        "pkg:oci/{}@{}?arch={}&repository_url={}",
        component(&name),
        component(image.digest),
        qualifier(&image.platform.arch),
        qualifier(&format!("{}/{}", image.registry, image.repository))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::Platform;

    #[test]
    fn crates_by_source() {
        let table = [
            (Source::CratesIo, "1.0.0", Some("pkg:cargo/serde@1.0.0")),
            (
                Source::CratesIo,
                "1.0.0+zstd.1.5",
                Some("pkg:cargo/serde@1.0.0%2Bzstd.1.5"),
            ),
            (
                Source::Registry("https://my.example/index/".into()),
                "0.1.0",
                Some("pkg:cargo/serde@0.1.0?repository_url=https://my.example/index/"),
            ),
            (
                Source::Git {
                    url: "https://github.com/o/r".into(),
                    commit: "0123abc".into(),
                },
                "0.2.0",
                Some("pkg:cargo/serde@0.2.0?vcs_url=git%2Bhttps://github.com/o/r%400123abc"),
            ),
            (Source::Path, "0.1.0", None),
        ];
        for (source, version, expected) in table {
            assert_eq!(
                cargo("serde", version, &source).as_deref(),
                expected,
                "{source:?}"
            );
        }
    }

    #[test]
    fn images_by_platform_manifest() {
        let platform = Platform::new("linux", "arm64", Some("v8"));
        let image = OciImage {
            registry: "127.0.0.1:5000",
            repository: "team/App",
            digest: "sha256:abcd",
            platform: &platform,
        };
        assert_eq!(
            oci(&image),
            "pkg:oci/app@sha256%3Aabcd?arch=arm64&repository_url=127.0.0.1:5000/team/App"
        );
    }
}
