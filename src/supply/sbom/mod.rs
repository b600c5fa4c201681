//! The SBOM of one platform image, as SPDX 2.3 JSON ([`spdx`]) or CycloneDX
//! 1.6 JSON ([`cyclonedx`]): pure functions from what the build really used
//! — the [`TargetGraph`] cargo resolved for the image's triple and the bin's
//! features, reduced to the bin's [`BuildUse`] — plus the base image, the
//! Rust toolchain and the image itself.
//!
//! Both formats are made from one [`Model`], so that they always agree:
//! - every package the bin's build uses, runtime ones (compiled for the
//!   target, linked into the binary) and build-time ones (build-script
//!   dependencies, proc macros and what only they use, compiled for the
//!   host) marked as such;
//! - purls `pkg:cargo/NAME@VERSION` for crates.io, with `repository_url`
//!   for another registry and `vcs_url` (with the commit) for git; path
//!   packages have none, since their name on crates.io may be another crate;
//! - the Cargo.lock checksum, the declared license when it is a valid SPDX
//!   expression, the dependency edges;
//! - the base image (`pkg:oci/…` of its platform manifest) and rustc.
//!
//! Deterministic: no clock (the build's epoch), no random ids (the document
//! namespace and serial number are derived from the content), no paths of
//! the build machine, everything sorted.

pub mod cyclonedx;
pub mod files;
mod purl;
pub mod run;
pub mod spdx;

use std::collections::{BTreeSet, HashMap};

use anyhow::{Context, Result, bail};
use sha2::{Digest as _, Sha256};

use crate::oci::Blob;
use crate::plan::SbomFormat;
use crate::plan::graph::{BuildUse, GraphPackage, Role, TargetGraph};
use crate::platform::Platform;

/// The media type of an SPDX JSON document.
pub const MEDIA_TYPE_SPDX: &str = "application/spdx+json";
/// The media type of a CycloneDX JSON document.
pub const MEDIA_TYPE_CYCLONEDX: &str = "application/vnd.cyclonedx+json";

/// What describes this tool in the documents.
const TOOL: &str = concat!("cargo-krust-", env!("CARGO_PKG_VERSION"));

/// The Rust toolchain that compiled the binary, as `rustc -vV` tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toolchain {
    pub release: String,
    pub host: String,
    pub commit_hash: Option<String>,
}

impl Toolchain {
    /// Reads `rustc -vV` output (`release:`, `host:`, `commit-hash:` lines).
    pub fn parse(version_output: &str) -> Result<Toolchain> {
        let parsed = crate::compile::toolchain::RustcVersion::parse(version_output);
        let Some(release) = parsed.as_ref().and_then(|p| p.release.clone()) else {
            anyhow::bail!("`rustc -vV` printed no release: {version_output:?}");
        };
        Ok(Toolchain {
            release,
            host: parsed
                .as_ref()
                .and_then(|p| p.host.clone())
                .unwrap_or_default(),
            commit_hash: parsed.and_then(|p| p.commit_hash),
        })
    }
}

/// An image (or base image) in a registry, by the digest of one platform
/// manifest.
#[derive(Debug, Clone, Copy)]
pub struct OciImage<'a> {
    pub registry: &'a str,
    pub repository: &'a str,
    /// The platform manifest's digest.
    pub digest: &'a str,
    pub platform: &'a Platform,
}

/// The base image of a platform image.
#[derive(Debug, Clone, Copy)]
pub struct BaseImage<'a> {
    pub image: OciImage<'a>,
    /// The reference as configured (tag and all).
    pub configured: &'a str,
    /// The digest of its index (or of its one manifest).
    pub index_digest: &'a str,
}

/// Everything one SBOM is made from.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub graph: &'a TargetGraph,
    pub build_use: &'a BuildUse,
    /// The bin, at `/app/<bin>` in the image.
    pub bin: &'a str,
    pub image: OciImage<'a>,
    pub base: Option<BaseImage<'a>>,
    pub toolchain: &'a Toolchain,
    /// RFC 3339, from the build's epoch.
    pub created: &'a str,
}

/// The SBOM of `input` in `format` as a blob of its media type (`None` for
/// [`SbomFormat::None`]).
pub fn document(format: SbomFormat, input: &Input) -> Result<Option<Blob>> {
    let model = Model::of(input)?;
    Ok(match format {
        SbomFormat::Spdx => Some(Blob::from_bytes(MEDIA_TYPE_SPDX, spdx::document(&model))),
        SbomFormat::Cyclonedx => Some(Blob::from_bytes(
            MEDIA_TYPE_CYCLONEDX,
            cyclonedx::document(&model),
        )),
        SbomFormat::None => None,
    })
}

/// The file name extension of each format's documents.
pub fn extension(format: SbomFormat) -> Option<&'static str> {
    match format {
        SbomFormat::Spdx => Some("spdx.json"),
        SbomFormat::Cyclonedx => Some("cdx.json"),
        SbomFormat::None => None,
    }
}

/// Where a package comes from, from cargo's source id.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    CratesIo,
    /// Another registry, by its index URL.
    Registry(String),
    /// A git repository at a commit.
    Git {
        url: String,
        commit: String,
    },
    /// A path (local or workspace) package.
    Path,
}

impl Source {
    fn of(source: Option<&str>) -> Source {
        let Some(source) = source else {
            return Source::Path;
        };
        if crate::plan::graph::is_crates_io(source) {
            return Source::CratesIo;
        }
        if let Some(git) = source.strip_prefix("git+") {
            let (url, commit) = git.split_once('#').unwrap_or((git, ""));
            // The query (`?branch=…`) only says how the commit was chosen.
            let url = url.split('?').next().unwrap_or(url);
            return Source::Git {
                url: url.to_string(),
                commit: commit.to_string(),
            };
        }
        let index = source
            .strip_prefix("registry+")
            .or_else(|| source.strip_prefix("sparse+"))
            .unwrap_or(source);
        Source::Registry(index.to_string())
    }
}

/// One package of the document.
#[derive(Debug, Clone)]
struct Component<'a> {
    package: &'a GraphPackage,
    /// Unique in the document and the same in every build of these inputs.
    id: String,
    role: Role,
    source: Source,
    purl: Option<String>,
    /// A valid SPDX license expression.
    license: Option<String>,
    /// Cargo.lock's sha256, when it is one.
    checksum: Option<String>,
}

/// How one package takes part in another's build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Use {
    /// Linked in (or, between two build-time packages, used by it).
    Linked,
    /// Compiled for the host to build it: a build dependency or proc macro.
    Build,
}

/// What both formats are written from.
#[derive(Debug)]
struct Model<'a> {
    input: &'a Input<'a>,
    /// In graph order (sorted by name, version, source); the root among them.
    components: Vec<Component<'a>>,
    root: usize,
    /// (dependent, dependency, how), by index into `components`, sorted.
    edges: BTreeSet<(usize, usize, Use)>,
}

impl<'a> Model<'a> {
    fn of(input: &'a Input<'a>) -> Result<Model<'a>> {
        let used = &input.build_use.packages;
        // Graph index → index into `components` (which follow `used`'s order).
        let positions: HashMap<usize, usize> =
            used.keys().enumerate().map(|(at, &i)| (i, at)).collect();
        let position = |graph_index: usize| positions.get(&graph_index).copied();
        let mut components = Vec::new();
        for (&index, &role) in used {
            let package = input
                .graph
                .packages
                .get(index)
                .context("the dependency graph names a package it does not hold")?;
            let source = Source::of(package.source.as_deref());
            components.push(Component {
                id: component_id(package),
                role,
                purl: purl::cargo(&package.name, &package.version, &source),
                source,
                license: package.license.as_deref().and_then(spdx_license),
                checksum: package.checksum.clone().filter(|c| is_sha256_hex(c)),
                package,
            });
        }
        let Some(root) = position(input.build_use.root) else {
            bail!(
                "bin `{}`: its package is not in the dependency graph of {}",
                input.bin,
                input.graph.triple
            );
        };
        let mut edges = BTreeSet::new();
        for (from, component) in components.iter().enumerate() {
            for edge in &component.package.dependencies {
                let Some(to) = position(edge.package) else {
                    continue;
                };
                let dependency_role = components.get(to).map(|c| c.role);
                if edge.build {
                    edges.insert((from, to, Use::Build));
                }
                if edge.normal {
                    // A proc macro a runtime package uses runs in the compiler.
                    let how = if component.role == Role::Runtime
                        && dependency_role == Some(Role::Build)
                    {
                        Use::Build
                    } else {
                        Use::Linked
                    };
                    edges.insert((from, to, how));
                }
            }
        }
        Ok(Model {
            input,
            components,
            root,
            edges,
        })
    }

    /// The bin's own package (`of` found it among the components).
    fn root(&self) -> &Component<'a> {
        &self.components[self.root]
    }

    fn is_root(&self, component: &Component) -> bool {
        component.id == self.root().id
    }

    /// `linux-arm-v7`: the platform in names and ids.
    fn platform_slug(&self) -> String {
        platform_slug(self.input.image.platform)
    }

    /// What a component's role means, in words.
    fn role_note(&self, component: &Component) -> String {
        let kind = match component.source {
            Source::Path => "path package (no purl: not fetched from a registry); ",
            _ => "",
        };
        match component.role {
            Role::Runtime => format!(
                "{kind}runtime: compiled for {} and linked into /app/{}",
                self.input.graph.triple, self.input.bin
            ),
            Role::Build => format!(
                "{kind}build-time: compiled for the build host (build script dependency, proc macro or used only by them), not in the image"
            ),
        }
    }

    fn toolchain_note(&self) -> String {
        let toolchain = self.input.toolchain;
        let mut note = format!(
            "the Rust toolchain that compiled /app/{} for {}",
            self.input.bin, self.input.graph.triple
        );
        if !toolchain.host.is_empty() {
            note.push_str(&format!(", running on {}", toolchain.host));
        }
        if let Some(commit) = &toolchain.commit_hash {
            note.push_str(&format!(", commit {commit}"));
        }
        note.push_str("; its standard library is linked into the binary");
        note
    }
}

/// `linux-arm-v7`.
pub fn platform_slug(platform: &Platform) -> String {
    platform.to_string().replace('/', "-")
}

/// A component id: readable, made of `[A-Za-z0-9.-]` (what SPDX ids allow),
/// with a hash of (name, version, source) so that `a_b` and `a-b`, or two
/// versions from two sources, stay apart.
fn component_id(package: &GraphPackage) -> String {
    let mut hasher = Sha256::new();
    for part in [
        package.name.as_str(),
        package.version.as_str(),
        package.source.as_deref().unwrap_or(""),
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    let hash = hex::encode(hasher.finalize());
    format!(
        "cargo-{}-{}-{}",
        id_safe(&package.name),
        id_safe(&package.version),
        hash.get(..8).unwrap_or(&hash)
    )
}

/// `text` with every character SPDX ids refuse replaced by `-`.
fn id_safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The declared license as a valid SPDX expression (cargo's legacy
/// `MIT/Apache-2.0` made `MIT OR Apache-2.0`), or `None` when it is not one.
/// `LicenseRef-` needs the license text in the document, which cargo
/// metadata does not give: those count as unknown too.
fn spdx_license(declared: &str) -> Option<String> {
    let canonical = match ::spdx::Expression::canonicalize(declared) {
        Ok(Some(canonical)) => canonical,
        Ok(None) => declared.trim().to_string(),
        Err(_) => return None,
    };
    if canonical.contains("LicenseRef-") || canonical.contains("DocumentRef-") {
        return None;
    }
    ::spdx::Expression::parse(&canonical).ok()?;
    Some(canonical)
}

fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The sha256 hex of `bytes`: what makes a content-derived id.
fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A pretty-printed JSON document with a final newline.
fn json_bytes(document: &serde_json::Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(document).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::plan::graph::tests::graph;

    pub fn toolchain() -> Toolchain {
        Toolchain::parse(
            "rustc 1.95.0 (59807616e 2026-04-14)\nbinary: rustc\ncommit-hash: 59807616e1fa2540724bfbac14d7976d7e4a3860\nhost: x86_64-unknown-linux-gnu\nrelease: 1.95.0\n",
        )
        .unwrap()
    }

    /// The SBOM of `app` from the graph test fixture, on a base image.
    pub fn with_input<T>(f: impl FnOnce(&Input) -> T) -> T {
        let graph = graph();
        let root = graph
            .package_at(std::path::Path::new("/w/app/Cargo.toml"))
            .unwrap();
        let build_use = graph.build_use(root);
        let platform = Platform::new("linux", "arm64", Some("v8"));
        let toolchain = toolchain();
        let input = Input {
            graph: &graph,
            build_use: &build_use,
            bin: "app",
            image: OciImage {
                registry: "127.0.0.1:5000",
                repository: "team/app",
                digest: "sha256:1111111111111111111111111111111111111111111111111111111111111111",
                platform: &platform,
            },
            base: Some(BaseImage {
                image: OciImage {
                    registry: "cgr.dev",
                    repository: "chainguard/static",
                    digest: "sha256:2222222222222222222222222222222222222222222222222222222222222222",
                    platform: &platform,
                },
                configured: "cgr.dev/chainguard/static:latest",
                index_digest: "sha256:3333333333333333333333333333333333333333333333333333333333333333",
            }),
            toolchain: &toolchain,
            created: "1970-01-01T00:00:00Z",
        };
        f(&input)
    }

    /// The document of the test input in `format`, parsed.
    pub fn parsed(format: SbomFormat) -> serde_json::Value {
        let blob = with_input(|input| document(format, input).unwrap().unwrap());
        serde_json::from_slice(blob.bytes().unwrap()).unwrap()
    }

    /// The entry of `document[list]` whose `name` is `name`.
    pub fn named<'a>(
        document: &'a serde_json::Value,
        list: &str,
        name: &str,
    ) -> &'a serde_json::Value {
        document[list]
            .as_array()
            .unwrap()
            .iter()
            .find(|entry| entry["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {list}"))
    }

    #[test]
    fn toolchain_comes_from_rustc_vv() {
        let toolchain = toolchain();
        assert_eq!(toolchain.release, "1.95.0");
        assert_eq!(toolchain.host, "x86_64-unknown-linux-gnu");
        assert_eq!(
            toolchain.commit_hash.as_deref(),
            Some("59807616e1fa2540724bfbac14d7976d7e4a3860")
        );
        let unknown = Toolchain::parse("release: 1.0.0\ncommit-hash: unknown\n").unwrap();
        assert_eq!(unknown.commit_hash, None);
        assert!(Toolchain::parse("garbage").is_err());
    }

    #[test]
    fn sources_are_told_apart() {
        let table = [
            (None, Source::Path),
            (
                Some("registry+https://github.com/rust-lang/crates.io-index"),
                Source::CratesIo,
            ),
            (Some("sparse+https://index.crates.io/"), Source::CratesIo),
            (
                Some("sparse+https://my.example/index/"),
                Source::Registry("https://my.example/index/".into()),
            ),
            (
                Some("git+https://github.com/o/r?branch=main#0123abc"),
                Source::Git {
                    url: "https://github.com/o/r".into(),
                    commit: "0123abc".into(),
                },
            ),
        ];
        for (source, expected) in table {
            assert_eq!(Source::of(source), expected, "{source:?}");
        }
    }

    #[test]
    fn licenses_are_valid_spdx_expressions_or_nothing() {
        let table = [
            ("MIT OR Apache-2.0", Some("MIT OR Apache-2.0")),
            ("MIT/Apache-2.0", Some("MIT OR Apache-2.0")),
            (
                "Apache-2.0 WITH LLVM-exception",
                Some("Apache-2.0 WITH LLVM-exception"),
            ),
            ("Made-Up-License", None),
            ("LicenseRef-Proprietary", None),
            ("MIT OR", None),
            ("", None),
        ];
        for (declared, expected) in table {
            assert_eq!(spdx_license(declared).as_deref(), expected, "{declared:?}");
        }
    }

    #[test]
    fn model_marks_roles_and_edges() {
        with_input(|input| {
            let model = Model::of(input).unwrap();
            let names: Vec<(&str, Role)> = model
                .components
                .iter()
                .map(|c| (c.package.name.as_str(), c.role))
                .collect();
            assert_eq!(
                names,
                [
                    ("app", Role::Runtime),
                    ("cc", Role::Build),
                    ("deep-sys", Role::Build),
                    ("host-sys", Role::Build),
                    ("mac", Role::Build),
                    ("pure", Role::Runtime),
                    ("sys", Role::Runtime),
                ]
            );
            assert_eq!(model.root().package.name, "app");
            let edge = |from: &str, to: &str| {
                let at = |name: &str| {
                    model
                        .components
                        .iter()
                        .position(|c| c.package.name == name)
                        .unwrap()
                };
                model
                    .edges
                    .iter()
                    .filter(|(f, t, _)| *f == at(from) && *t == at(to))
                    .map(|(_, _, how)| *how)
                    .collect::<Vec<_>>()
            };
            assert_eq!(edge("app", "pure"), [Use::Linked]);
            assert_eq!(edge("app", "mac"), [Use::Build], "a proc macro");
            assert_eq!(edge("app", "host-sys"), [Use::Build]);
            assert_eq!(edge("mac", "deep-sys"), [Use::Linked], "both host-side");
            assert_eq!(edge("sys", "cc"), [Use::Build]);
            assert!(
                model.components.iter().all(|c| c.package.name != "tester"),
                "dev-dependencies are not in the build"
            );
            let ids: BTreeSet<&str> = model.components.iter().map(|c| c.id.as_str()).collect();
            assert_eq!(ids.len(), model.components.len());
            assert!(ids.iter().all(|id| id.starts_with("cargo-")));
        });
    }

    #[test]
    fn documents_are_deterministic_and_typed() {
        for (format, media_type) in [
            (SbomFormat::Spdx, MEDIA_TYPE_SPDX),
            (SbomFormat::Cyclonedx, MEDIA_TYPE_CYCLONEDX),
        ] {
            let first = with_input(|input| document(format, input).unwrap().unwrap());
            let second = with_input(|input| document(format, input).unwrap().unwrap());
            assert_eq!(first.media_type, media_type);
            assert_eq!(first.bytes(), second.bytes());
            let text = String::from_utf8(first.bytes().unwrap().to_vec()).unwrap();
            assert!(!text.contains("/w/"), "no build-machine paths: {text}");
        }
        assert!(with_input(|input| document(SbomFormat::None, input).unwrap()).is_none());
    }
}
