//! The package graph cargo resolves for one target triple: `cargo metadata`
//! with dependencies, `--filter-platform TRIPLE` and the build's features,
//! reduced to what the later stages ask of it — which packages a bin
//! compiles for its target and which for the host, their sources, Cargo.lock
//! checksums and licenses — and remembered under a hash of what decides it
//! (Cargo.lock, the manifests involved, the triple and the features), since a
//! resolved `cargo metadata` costs tens of milliseconds per triple.
//!
//! Like cargo-auditable, this reads cargo's resolve, which unifies features
//! over the packages of one `cargo metadata` call; cargo's build may enable
//! fewer features for host-side crates (resolver 2), never more.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};

use anyhow::Result;
use cargo_metadata::{CargoOpt, DependencyKind, Metadata, MetadataCommand, TargetKind};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::{CargoOptions, metadata_error};
use crate::store::BlobStore;

/// Bumped whenever [`TargetGraph`]'s shape or meaning changes, so that
/// remembered graphs of an older cargo-krust are not misread.
const RECORD_VERSION: &str = "graph-v1";

/// What one `cargo metadata` run for a triple needs.
pub struct Query<'a> {
    /// The manifest cargo builds with (package or workspace root).
    pub manifest_path: &'a Path,
    pub triple: &'a str,
    /// The manifests of the packages built for this triple.
    pub roots: &'a BTreeSet<PathBuf>,
    /// Features exactly as the build passes them (`pkg/feature` included).
    pub features: Vec<String>,
    pub cargo: &'a CargoOptions,
}

/// The resolved graph of one triple (dev-dependencies left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetGraph {
    pub triple: String,
    /// Sorted by (name, version, source).
    pub packages: Vec<GraphPackage>,
}

/// One package of a [`TargetGraph`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphPackage {
    pub name: String,
    pub version: String,
    /// cargo's source id (`registry+…`, `sparse+…`, `git+…#rev`); `None`
    /// for a path (local) package.
    pub source: Option<String>,
    /// The sha256 Cargo.lock records for it (registry packages only).
    pub checksum: Option<String>,
    /// The declared license expression.
    pub license: Option<String>,
    pub repository: Option<String>,
    pub manifest_path: PathBuf,
    /// The `links` key: it links a native library.
    pub links: Option<String>,
    /// It is a proc macro: compiled for the host, run by the compiler.
    pub proc_macro: bool,
    pub dependencies: Vec<GraphEdge>,
}

/// A dependency edge, by index into [`TargetGraph::packages`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphEdge {
    pub package: usize,
    /// A normal dependency (linked into the dependent).
    pub normal: bool,
    /// A build dependency (used by the dependent's build script).
    pub build: bool,
}

/// How a package takes part in a bin's build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Compiled for the target and linked into the binary.
    Runtime,
    /// Compiled for the host: a build dependency, a proc macro, or
    /// something only they depend on.
    Build,
}

/// The packages one bin's build uses, by index, with their role (a package
/// used both ways counts as [`Role::Runtime`]). The root comes first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildUse {
    pub root: usize,
    pub packages: BTreeMap<usize, Role>,
}

impl TargetGraph {
    /// The graph for `query`, from the cache when nothing that decides it
    /// changed, else from `cargo metadata`.
    pub fn load(query: &Query, records: &BlobStore) -> Result<TargetGraph> {
        let key = cache_key(query);
        if let Some(cached) = key
            .as_ref()
            .and_then(|key| records.read_record("graph", key))
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        {
            return Ok(cached);
        }
        let metadata = metadata_for(query)?;
        let checksums = lock_checksums(query.manifest_path, &metadata);
        let graph = TargetGraph::from_metadata(query.triple, &metadata, &checksums);
        if let Some(key) = key
            && let Ok(bytes) = serde_json::to_vec(&graph)
        {
            records.write_record("graph", &key, &bytes)?;
        }
        Ok(graph)
    }

    /// The graph of a resolved `cargo metadata`; `checksums` maps (name,
    /// version, source) to Cargo.lock's checksum.
    pub fn from_metadata(
        triple: &str,
        metadata: &Metadata,
        checksums: &HashMap<(String, String, String), String>,
    ) -> TargetGraph {
        let Some(resolve) = &metadata.resolve else {
            return TargetGraph {
                triple: triple.to_string(),
                packages: Vec::new(),
            };
        };
        let resolved: BTreeSet<&cargo_metadata::PackageId> =
            resolve.nodes.iter().map(|n| &n.id).collect();
        let mut packages: Vec<&cargo_metadata::Package> = metadata
            .packages
            .iter()
            .filter(|p| resolved.contains(&p.id))
            .collect();
        let sort_key = |p: &cargo_metadata::Package| {
            (
                p.name.to_string(),
                p.version.clone(),
                p.source.as_ref().map(|s| s.repr.clone()),
            )
        };
        packages.sort_by_key(|p| sort_key(p));
        let index: HashMap<&cargo_metadata::PackageId, usize> = packages
            .iter()
            .enumerate()
            .map(|(i, p)| (&p.id, i))
            .collect();
        let nodes: HashMap<&cargo_metadata::PackageId, &cargo_metadata::Node> =
            resolve.nodes.iter().map(|n| (&n.id, n)).collect();
        let packages = packages
            .iter()
            .map(|package| {
                let mut dependencies: Vec<GraphEdge> = nodes
                    .get(&package.id)
                    .map(|node| node.deps.as_slice())
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|dep| {
                        let has = |kind| dep.dep_kinds.iter().any(|k| k.kind == kind);
                        let (normal, build) =
                            (has(DependencyKind::Normal), has(DependencyKind::Build));
                        (normal || build).then_some(())?;
                        Some(GraphEdge {
                            package: *index.get(&dep.pkg)?,
                            normal,
                            build,
                        })
                    })
                    .collect();
                dependencies.sort_by_key(|edge| edge.package);
                let source = package.source.as_ref().map(|s| s.repr.clone());
                let checksum = source.as_ref().and_then(|source| {
                    checksums
                        .get(&(
                            package.name.to_string(),
                            package.version.to_string(),
                            source.clone(),
                        ))
                        .cloned()
                });
                GraphPackage {
                    name: package.name.to_string(),
                    version: package.version.to_string(),
                    source,
                    checksum,
                    license: package.license.clone(),
                    repository: package.repository.clone(),
                    manifest_path: package.manifest_path.clone().into_std_path_buf(),
                    links: package.links.clone(),
                    proc_macro: package
                        .targets
                        .iter()
                        .any(|t| t.is_kind(TargetKind::ProcMacro)),
                    dependencies,
                }
            })
            .collect();
        TargetGraph {
            triple: triple.to_string(),
            packages,
        }
    }

    /// The index of the package whose manifest is `manifest_path`.
    pub fn package_at(&self, manifest_path: &Path) -> Option<usize> {
        self.packages
            .iter()
            .position(|p| p.manifest_path == manifest_path)
    }

    /// What the build of `root` compiles: its normal dependencies (and
    /// theirs) for the target, build dependencies and proc macros (and
    /// everything below them) for the host.
    pub fn build_use(&self, root: usize) -> BuildUse {
        let mut roles: BTreeMap<usize, Role> = BTreeMap::new();
        let mut queue = VecDeque::from([(root, Role::Runtime)]);
        while let Some((index, role)) = queue.pop_front() {
            let Some(package) = self.packages.get(index) else {
                continue;
            };
            // A proc macro runs in the compiler, whatever depends on it.
            let role = if package.proc_macro && index != root {
                Role::Build
            } else {
                role
            };
            match roles.get(&index) {
                // Runtime is the strongest role; Build is only upgraded.
                Some(Role::Runtime) => continue,
                Some(Role::Build) if role == Role::Build => continue,
                _ => {}
            }
            roles.insert(index, role);
            for edge in &package.dependencies {
                if edge.normal {
                    queue.push_back((edge.package, role));
                }
                if edge.build {
                    queue.push_back((edge.package, Role::Build));
                }
            }
        }
        BuildUse {
            root,
            packages: roles,
        }
    }
}

/// The cache key of a query: `None` without a Cargo.lock (the graph is not
/// pinned yet, so nothing is remembered).
fn cache_key(query: &Query) -> Option<String> {
    let lock = lock_file(query.manifest_path)?;
    let mut hasher = Sha256::new();
    hasher.update(format!("{RECORD_VERSION}\n{}\n", query.triple).as_bytes());
    for feature in &query.features {
        hasher.update(format!("feature {feature}\n").as_bytes());
    }
    let options = query.cargo;
    hasher.update(format!("{} {}\n", options.all_features, options.no_default_features).as_bytes());
    let manifests =
        std::iter::once(query.manifest_path).chain(query.roots.iter().map(PathBuf::as_path));
    for file in std::iter::once(lock.as_path()).chain(manifests) {
        hasher.update(file.as_os_str().as_encoded_bytes());
        hasher.update(std::fs::read(file).ok()?);
    }
    Some(hex::encode(hasher.finalize()))
}

/// Whether a cargo source id is crates.io, through either protocol.
pub fn is_crates_io(source: &str) -> bool {
    source == "registry+https://github.com/rust-lang/crates.io-index"
        || source == "sparse+https://index.crates.io/"
}

/// The Cargo.lock that pins the build of `manifest_path`.
pub fn lock_file(manifest_path: &Path) -> Option<PathBuf> {
    lock_file_of_dir(manifest_path.parent()?)
}

/// The Cargo.lock that pins builds of the manifest in `dir`: in it, or in
/// the nearest ancestor that has one (the workspace root).
pub fn lock_file_of_dir(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .map(|d| d.join("Cargo.lock"))
        .find(|lock| lock.is_file())
}

/// (name, version, source) → checksum, from the Cargo.lock of the
/// workspace (empty when there is none or it cannot be read: checksums are
/// then simply not reported).
fn lock_checksums(
    manifest_path: &Path,
    metadata: &Metadata,
) -> HashMap<(String, String, String), String> {
    let lock = metadata.workspace_root.as_std_path().join("Cargo.lock");
    let lock = if lock.is_file() {
        Some(lock)
    } else {
        lock_file(manifest_path)
    };
    lock.and_then(|lock| std::fs::read_to_string(lock).ok())
        .map(|text| parse_lock_checksums(&text))
        .unwrap_or_default()
}

#[derive(Deserialize)]
struct LockFile {
    #[serde(default)]
    package: Vec<LockedPackage>,
}

#[derive(Deserialize)]
struct LockedPackage {
    name: String,
    version: String,
    source: Option<String>,
    checksum: Option<String>,
}

fn parse_lock_checksums(text: &str) -> HashMap<(String, String, String), String> {
    let Ok(lock) = toml::from_str::<LockFile>(text) else {
        return HashMap::new();
    };
    lock.package
        .into_iter()
        .filter_map(|p| Some(((p.name, p.version, p.source?), p.checksum?)))
        .collect()
}

fn metadata_for(query: &Query) -> Result<Metadata> {
    let mut command = MetadataCommand::new();
    command.manifest_path(query.manifest_path);
    let options = query.cargo;
    if !query.features.is_empty() {
        command.features(CargoOpt::SomeFeatures(query.features.clone()));
    }
    if options.all_features {
        command.features(CargoOpt::AllFeatures);
    }
    if options.no_default_features {
        command.features(CargoOpt::NoDefaultFeatures);
    }
    let mut other = vec!["--filter-platform".to_string(), query.triple.to_string()];
    for (flag, on) in [
        ("--locked", options.locked),
        ("--frozen", options.frozen),
        ("--offline", options.offline),
    ] {
        if on {
            other.push(flag.to_string());
        }
    }
    command.other_options(other);
    command.exec().map_err(|err| {
        metadata_error(
            err,
            &format!(
                "cannot read the dependency graph of {} for {}",
                query.manifest_path.display(),
                query.triple
            ),
        )
    })
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A tiny metadata document: `app` → `sys` (build-dep `cc`, links),
    /// `app` → `pure`, `app` → proc macro `mac` → `deep-sys` (host side),
    /// `app` build-dep → `host-sys` (host side), `app` dev-dep → `tester`.
    pub fn metadata() -> Metadata {
        let package = |name: &str, links: Option<&str>, kind: &str| {
            serde_json::json!({
                "name": name, "version": "1.0.0", "id": format!("{name} 1.0.0"),
                "source": if name == "app" { serde_json::Value::Null } else {
                    serde_json::json!("registry+https://github.com/rust-lang/crates.io-index") },
                "dependencies": [], "features": {},
                "manifest_path": format!("/w/{name}/Cargo.toml"),
                "targets": [{"name": name, "kind": [kind], "crate_types": [kind],
                             "src_path": format!("/w/{name}/src/lib.rs"), "edition": "2021",
                             "doctest": false, "test": false}],
                "links": links, "edition": "2021", "metadata": null, "publish": null,
                "authors": [], "categories": [], "keywords": [], "readme": null,
                "repository": null, "homepage": null, "documentation": null,
                "license": "MIT", "license_file": null, "description": null,
                "default_run": null, "rust_version": null
            })
        };
        let dep = |name: &str, kind: Option<&str>| {
            serde_json::json!({"name": name, "pkg": format!("{name} 1.0.0"),
                               "dep_kinds": [{"kind": kind, "target": null}]})
        };
        let node = |name: &str, deps: Vec<serde_json::Value>| {
            serde_json::json!({"id": format!("{name} 1.0.0"), "deps": deps,
                               "dependencies": [], "features": []})
        };
        serde_json::from_value(serde_json::json!({
            "packages": [
                package("app", None, "bin"),
                package("sys", Some("sys"), "lib"),
                package("cc", None, "lib"),
                package("pure", None, "lib"),
                package("mac", None, "proc-macro"),
                package("deep-sys", Some("deep"), "lib"),
                package("host-sys", Some("host"), "lib"),
                package("tester", None, "lib"),
            ],
            "workspace_members": ["app 1.0.0"],
            "workspace_default_members": ["app 1.0.0"],
            "resolve": {"root": "app 1.0.0", "nodes": [
                node("app", vec![dep("sys", None), dep("pure", None), dep("mac", None),
                                 dep("host-sys", Some("build")), dep("tester", Some("dev"))]),
                node("sys", vec![dep("cc", Some("build"))]),
                node("cc", vec![]),
                node("pure", vec![]),
                node("mac", vec![dep("deep-sys", None)]),
                node("deep-sys", vec![]),
                node("host-sys", vec![]),
                node("tester", vec![]),
            ]},
            "target_directory": "/w/target",
            "version": 1,
            "workspace_root": "/w",
            "metadata": null
        }))
        .expect("test metadata parses")
    }

    pub fn graph() -> TargetGraph {
        let checksums = HashMap::from([(
            (
                "pure".to_string(),
                "1.0.0".to_string(),
                "registry+https://github.com/rust-lang/crates.io-index".to_string(),
            ),
            "abc".to_string(),
        )]);
        TargetGraph::from_metadata("x86_64-unknown-linux-musl", &metadata(), &checksums)
    }

    fn roles(graph: &TargetGraph, root: &str) -> Vec<(String, Role)> {
        let root = graph
            .package_at(Path::new(&format!("/w/{root}/Cargo.toml")))
            .unwrap();
        graph
            .build_use(root)
            .packages
            .into_iter()
            .map(|(i, role)| (graph.packages[i].name.clone(), role))
            .collect()
    }

    #[test]
    fn roles_follow_where_each_package_is_compiled() {
        let graph = graph();
        assert_eq!(
            roles(&graph, "app"),
            [
                ("app".to_string(), Role::Runtime),
                ("cc".to_string(), Role::Build),
                ("deep-sys".to_string(), Role::Build),
                ("host-sys".to_string(), Role::Build),
                ("mac".to_string(), Role::Build),
                ("pure".to_string(), Role::Runtime),
                ("sys".to_string(), Role::Runtime),
            ]
        );
        assert_eq!(roles(&graph, "pure"), [("pure".to_string(), Role::Runtime)]);
    }

    #[test]
    fn checksums_come_from_the_lock_and_dev_dependencies_are_dropped() {
        let graph = graph();
        let pure = graph.packages.iter().find(|p| p.name == "pure").unwrap();
        assert_eq!(pure.checksum.as_deref(), Some("abc"));
        let app = graph.packages.iter().find(|p| p.name == "app").unwrap();
        assert_eq!(app.source, None);
        assert_eq!(app.dependencies.len(), 4);
        let lock = "version = 4\n[[package]]\nname = \"a\"\nversion = \"1.0.0\"\nsource = \"registry+x\"\nchecksum = \"ff\"\n\n[[package]]\nname = \"local\"\nversion = \"0.1.0\"\n";
        let parsed = parse_lock_checksums(lock);
        assert_eq!(parsed.len(), 1);
        assert_eq!(
            parsed[&("a".into(), "1.0.0".into(), "registry+x".into())],
            "ff"
        );
        assert!(parse_lock_checksums("not toml [").is_empty());
    }
}
