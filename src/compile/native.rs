//! Finding the C (and other native) code a build compiles for its target:
//! the package graph resolved for one target triple ([`TargetGraph`]),
//! walked from each package cargo-krust builds through its target-side
//! dependencies. A package there compiles native code when its build script
//! depends on a C build crate (`cc`, `cmake`, …) or it declares `links` (it
//! links a native library). Build dependencies and proc macros run on the
//! host, so their own dependencies are not followed: the host's C compiler
//! serves them.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::plan::graph::{Query, TargetGraph};
use crate::store::BlobStore;

/// Build-script dependencies that compile C, C++ or assembly for the target.
const NATIVE_BUILD_CRATES: &[&str] = &["cc", "cmake", "autotools", "cxx-build", "nasm-rs"];

/// One target-side package of the build graph that compiles native code.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct NativeCode {
    pub package: String,
    /// Why, e.g. `build script uses cc` or `links = "zstd"`.
    pub reason: String,
}

impl std::fmt::Display for NativeCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.package, self.reason)
    }
}

/// For each root manifest, the packages of its target-side build graph that
/// compile native code for the triple (sorted, empty for pure Rust).
pub fn native_code(
    query: &Query,
    records: &BlobStore,
) -> Result<HashMap<PathBuf, Vec<NativeCode>>> {
    let graph = TargetGraph::load(query, records)?;
    Ok(query
        .roots
        .iter()
        .map(|root| (root.clone(), native_in_graph(&graph, root)))
        .collect())
}

/// Breadth-first walk over normal dependencies from the root package.
fn native_in_graph(graph: &TargetGraph, root_manifest: &Path) -> Vec<NativeCode> {
    let Some(root) = graph.package_at(root_manifest) else {
        return Vec::new();
    };
    let mut found = BTreeMap::new();
    let mut seen: BTreeSet<usize> = BTreeSet::from([root]);
    let mut queue = VecDeque::from([root]);
    while let Some(index) = queue.pop_front() {
        let Some(package) = graph.packages.get(index) else {
            continue;
        };
        if package.proc_macro {
            continue;
        }
        if let Some(reason) = native_reason(graph, index) {
            found.entry(package.name.clone()).or_insert(reason);
        }
        for edge in &package.dependencies {
            if edge.normal && seen.insert(edge.package) {
                queue.push_back(edge.package);
            }
        }
    }
    found
        .into_iter()
        .map(|(package, reason)| NativeCode { package, reason })
        .collect()
}

/// Why this package compiles native code for the target, if it does.
fn native_reason(graph: &TargetGraph, index: usize) -> Option<String> {
    let package = graph.packages.get(index)?;
    let build_crates: BTreeSet<&str> = package
        .dependencies
        .iter()
        .filter(|edge| edge.build)
        .filter_map(|edge| graph.packages.get(edge.package))
        .map(|p| p.name.as_str())
        .filter(|name| NATIVE_BUILD_CRATES.contains(name))
        .collect();
    if !build_crates.is_empty() {
        let list: Vec<&str> = build_crates.into_iter().collect();
        return Some(format!("build script uses {}", list.join(", ")));
    }
    package
        .links
        .as_ref()
        .map(|links| format!("links = \"{links}\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::graph::tests::graph;

    #[test]
    fn finds_target_side_native_code_only() {
        let found = native_in_graph(&graph(), Path::new("/w/app/Cargo.toml"));
        assert_eq!(
            found,
            [NativeCode {
                package: "sys".into(),
                reason: "build script uses cc".into()
            }]
        );
        assert_eq!(found[0].to_string(), "sys: build script uses cc");
    }

    #[test]
    fn links_key_counts_and_pure_roots_have_none() {
        let found = native_in_graph(&graph(), Path::new("/w/deep-sys/Cargo.toml"));
        assert_eq!(found[0].reason, "links = \"deep\"");
        assert!(native_in_graph(&graph(), Path::new("/w/pure/Cargo.toml")).is_empty());
        assert!(native_in_graph(&graph(), Path::new("/w/none/Cargo.toml")).is_empty());
    }
}
