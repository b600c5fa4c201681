//! SPDX 2.3 JSON. The document DESCRIBES the image (a CONTAINER package
//! named by its platform manifest's purl), which CONTAINS the bin's package
//! and is a DESCENDANT_OF its base image; crates DEPENDS_ON what is linked
//! into them, and build dependencies and proc macros are
//! BUILD_DEPENDENCY_OF what they build; rustc is the BUILD_TOOL_OF the bin.
//! A crate without a valid license expression, or not fetched from
//! crates.io or git, says NOASSERTION, which validates.

use serde_json::{Value, json};

use super::{Component, Model, Source, TOOL, Use, content_hash, json_bytes, purl};

const NOASSERTION: &str = "NOASSERTION";
const IMAGE: &str = "SPDXRef-Image";
const BASE: &str = "SPDXRef-BaseImage";
const TOOLCHAIN: &str = "SPDXRef-Toolchain-rustc";

/// The document's bytes.
pub(super) fn document(model: &Model) -> Vec<u8> {
    let input = model.input;
    let image = input.image;
    let mut packages = vec![package(
        IMAGE,
        &format!("{}/{}", image.registry, image.repository),
        image.digest,
        "CONTAINER",
        Some(&purl::oci(&image)),
        &format!("the image for {}", image.platform),
    )];
    if let Some(base) = &input.base {
        packages.push(package(
            BASE,
            &format!("{}/{}", base.image.registry, base.image.repository),
            base.image.digest,
            "CONTAINER",
            Some(&purl::oci(&base.image)),
            &format!(
                "the base image {} (index {}), its {} manifest",
                base.configured, base.index_digest, base.image.platform
            ),
        ));
    }
    packages.push(package(
        TOOLCHAIN,
        "rustc",
        &input.toolchain.release,
        "APPLICATION",
        None,
        &model.toolchain_note(),
    ));
    packages.extend(model.components.iter().map(|c| crate_package(model, c)));

    let mut relationships: Vec<(String, &str, String)> =
        vec![("SPDXRef-DOCUMENT".into(), "DESCRIBES", IMAGE.into())];
    let root = spdx_id(model.root());
    relationships.push((IMAGE.into(), "CONTAINS", root.clone()));
    relationships.push((TOOLCHAIN.into(), "BUILD_TOOL_OF", root));
    if input.base.is_some() {
        relationships.push((IMAGE.into(), "DESCENDANT_OF", BASE.into()));
    }
    for &(from, to, how) in &model.edges {
        let (Some(from), Some(to)) = (model.components.get(from), model.components.get(to)) else {
            continue;
        };
        relationships.push(match how {
            Use::Linked => (spdx_id(from), "DEPENDS_ON", spdx_id(to)),
            Use::Build => (spdx_id(to), "BUILD_DEPENDENCY_OF", spdx_id(from)),
        });
    }
    relationships.sort();
    relationships.dedup();
    let relationships: Vec<Value> = relationships
        .into_iter()
        .map(|(element, kind, related)| {
            json!({
                "spdxElementId": element,
                "relationshipType": kind,
                "relatedSpdxElement": related,
            })
        })
        .collect();

    let mut document = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{}/{}@{} {}", image.registry, image.repository, image.digest, image.platform),
        "creationInfo": {
            "created": input.created,
            "creators": [format!("Tool: {TOOL}")],
        },
        "packages": packages,
        "relationships": relationships,
    });
    // Unique per content and the same for the same content: the hash of
    // the document without it.
    let hash = content_hash(&json_bytes(&document));
    document["documentNamespace"] = json!(format!(
        "https://spdx.org/spdxdocs/cargo-krust/{}/{}-{hash}",
        image.repository,
        model.platform_slug()
    ));
    json_bytes(&document)
}

fn spdx_id(component: &Component) -> String {
    format!("SPDXRef-Package-{}", component.id)
}

/// A package the build did not get from cargo (the image, its base, rustc).
fn package(
    id: &str,
    name: &str,
    version: &str,
    purpose: &str,
    purl: Option<&str>,
    comment: &str,
) -> Value {
    let mut package = json!({
        "SPDXID": id,
        "name": name,
        "versionInfo": version,
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": false,
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": NOASSERTION,
        "copyrightText": NOASSERTION,
        "primaryPackagePurpose": purpose,
        "comment": comment,
    });
    if let Some(purl) = purl {
        package["externalRefs"] = purl_ref(purl);
    }
    package
}

fn purl_ref(purl: &str) -> Value {
    json!([{
        "referenceCategory": "PACKAGE-MANAGER",
        "referenceType": "purl",
        "referenceLocator": purl,
    }])
}

fn crate_package(model: &Model, component: &Component) -> Value {
    let package = component.package;
    let download = match &component.source {
        Source::CratesIo => format!(
            "https://crates.io/api/v1/crates/{}/{}/download",
            package.name, package.version
        ),
        Source::Git { url, commit } if !commit.is_empty() && is_download_url(url) => {
            format!("git+{url}@{commit}")
        }
        _ => NOASSERTION.to_string(),
    };
    let mut value = json!({
        "SPDXID": spdx_id(component),
        "name": package.name,
        "versionInfo": package.version,
        "downloadLocation": download,
        "filesAnalyzed": false,
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": component.license.as_deref().unwrap_or(NOASSERTION),
        "copyrightText": NOASSERTION,
        "primaryPackagePurpose": if model.is_root(component) { "APPLICATION" } else { "LIBRARY" },
        "comment": model.role_note(component),
    });
    if let Some(purl) = &component.purl {
        value["externalRefs"] = purl_ref(purl);
    }
    if let Some(checksum) = &component.checksum {
        value["checksums"] = json!([{"algorithm": "SHA256", "checksumValue": checksum}]);
    }
    value
}

/// Whether SPDX takes `url` in a download location: a URL of a network
/// scheme on a host name with a top-level domain (what its validators
/// check); a `file://` or IP-address repository is not one, and says
/// NOASSERTION (the purl's `vcs_url` still names it).
fn is_download_url(url: &str) -> bool {
    const SCHEMES: [&str; 7] = ["http", "https", "ssh", "git", "svn", "sftp", "ftp"];
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    let Some((authority, _path)) = rest.split_once('/') else {
        return false;
    };
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = host_port.split(':').next().unwrap_or(host_port);
    let Some((_, top_level)) = host.rsplit_once('.') else {
        return false;
    };
    SCHEMES.contains(&scheme.to_ascii_lowercase().as_str())
        && (2..=5).contains(&top_level.len())
        && top_level.chars().all(|c| c.is_ascii_alphabetic())
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use crate::plan::SbomFormat;
    use crate::supply::sbom::tests::{named, parsed};

    fn spdx() -> Value {
        parsed(SbomFormat::Spdx)
    }

    fn package<'a>(document: &'a Value, name: &str) -> &'a Value {
        named(document, "packages", name)
    }

    fn has_relationship(document: &Value, from: &str, kind: &str, to: &str) -> bool {
        let id = |name: &str| package(document, name)["SPDXID"].clone();
        document["relationships"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| {
                r["spdxElementId"] == id(from)
                    && r["relationshipType"] == kind
                    && r["relatedSpdxElement"] == id(to)
            })
    }

    #[test]
    fn packages_carry_purl_checksum_license_and_role() {
        let document = spdx();
        assert_eq!(document["spdxVersion"], "SPDX-2.3");
        assert_eq!(document["creationInfo"]["created"], "1970-01-01T00:00:00Z");
        let pure = package(&document, "pure");
        assert_eq!(
            pure["externalRefs"][0]["referenceLocator"],
            "pkg:cargo/pure@1.0.0"
        );
        assert_eq!(
            pure["downloadLocation"],
            "https://crates.io/api/v1/crates/pure/1.0.0/download"
        );
        assert_eq!(pure["licenseDeclared"], "MIT");
        assert!(pure["checksums"].is_null(), "abc is no sha256");
        assert!(pure["comment"].as_str().unwrap().starts_with("runtime"));
        let app = package(&document, "app");
        assert_eq!(app["downloadLocation"], "NOASSERTION");
        assert!(app["externalRefs"].is_null(), "a path package has no purl");
        assert_eq!(app["primaryPackagePurpose"], "APPLICATION");
        let mac = package(&document, "mac");
        assert!(mac["comment"].as_str().unwrap().contains("build-time"));
        let base = package(&document, "cgr.dev/chainguard/static");
        assert_eq!(
            base["externalRefs"][0]["referenceLocator"],
            "pkg:oci/static@sha256%3A2222222222222222222222222222222222222222222222222222222222222222?arch=arm64&repository_url=cgr.dev/chainguard/static"
        );
        assert_eq!(package(&document, "rustc")["versionInfo"], "1.95.0");
        let namespace = document["documentNamespace"].as_str().unwrap();
        assert!(
            namespace.starts_with("https://spdx.org/spdxdocs/cargo-krust/team/app/linux-arm64-"),
            "{namespace}"
        );
    }

    #[test]
    fn git_download_locations_only_for_network_hosts() {
        let table = [
            ("https://github.com/o/r", true),
            ("ssh://git@github.com/o/r", true),
            ("https://git.example.com:8443/o/r.git", true),
            ("file:///tmp/repo", false),
            ("https://127.0.0.1/o/r", false),
            ("https://localhost/o/r", false),
            ("https://github.com", false),
            ("github.com/o/r", false),
        ];
        for (url, valid) in table {
            assert_eq!(super::is_download_url(url), valid, "{url}");
        }
    }

    #[test]
    fn relationships_tell_runtime_from_build() {
        let document = spdx();
        let image = "127.0.0.1:5000/team/app";
        assert!(has_relationship(&document, image, "CONTAINS", "app"));
        assert!(has_relationship(
            &document,
            image,
            "DESCENDANT_OF",
            "cgr.dev/chainguard/static"
        ));
        assert!(has_relationship(&document, "app", "DEPENDS_ON", "pure"));
        assert!(has_relationship(&document, "app", "DEPENDS_ON", "sys"));
        assert!(has_relationship(
            &document,
            "mac",
            "BUILD_DEPENDENCY_OF",
            "app"
        ));
        assert!(has_relationship(
            &document,
            "cc",
            "BUILD_DEPENDENCY_OF",
            "sys"
        ));
        assert!(has_relationship(&document, "mac", "DEPENDS_ON", "deep-sys"));
        assert!(!has_relationship(&document, "app", "DEPENDS_ON", "mac"));
        assert!(has_relationship(&document, "rustc", "BUILD_TOOL_OF", "app"));
        assert!(
            document["packages"]
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p["name"] != "tester"),
            "dev-dependencies are not in the build"
        );
    }
}
