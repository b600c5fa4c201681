//! The SBOMs of a run: what each platform image's SBOM is made from, loaded
//! before anything compiles (the package graph of its triple and the bin's
//! features, and `rustc -vV`, both remembered in the store of the
//! workspace's target dir, where the build's native-code check finds the
//! same graph),
//! and, once the image is assembled, the document attached to its platform
//! manifest as an OCI 1.1 referrer.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};

use super::{BaseImage as SbomBase, Input, OciImage, Toolchain, document, files};
use crate::assemble::ImageIndex;
use crate::assemble::referrer::referrer;
use crate::base::{BaseImage, BasePlatformImage};
use crate::compile::{self, toolchain};
use crate::oci::Blob;
use crate::plan::graph::{BuildUse, Query, TargetGraph};
use crate::plan::{ImageJob, Plan, SbomFormat};
use crate::platform::Platform;
use crate::store::BlobStore;

/// What the SBOM of one platform image is made from.
pub struct Sources {
    graph: TargetGraph,
    build_use: BuildUse,
    toolchain: Arc<Toolchain>,
}

/// The SBOM sources of every platform of every job (`None` where the job
/// has no SBOM), in plan order; `store` is the plan's, already open.
pub fn load(
    plan: &Plan,
    platforms: &[Vec<Platform>],
    store: &BlobStore,
) -> Result<Vec<Vec<Option<Sources>>>> {
    let mut loader = Loader {
        stores: HashMap::from([(plan.target_dir.clone(), store.clone())]),
        toolchains: HashMap::new(),
    };
    plan.images
        .iter()
        .zip(platforms)
        .map(|(job, job_platforms)| {
            job_platforms
                .iter()
                .map(|platform| {
                    if job.artefacts.sbom == SbomFormat::None {
                        return Ok(None);
                    }
                    let store = loader.store(&job.workspace.target_dir)?;
                    let toolchain = loader.toolchain(job, &store)?;
                    let (graph, build_use) = graph_of(plan, job, platform, &store)?;
                    Ok(Some(Sources {
                        graph,
                        build_use,
                        toolchain,
                    }))
                })
                .collect()
        })
        .collect()
}

/// What [`load`] opens or asks once per run.
#[derive(Default)]
struct Loader {
    /// By target dir.
    stores: HashMap<PathBuf, BlobStore>,
    /// By (workspace directory, build-std).
    toolchains: HashMap<(PathBuf, bool), Arc<Toolchain>>,
}

impl Loader {
    /// The store of a workspace's target dir, where its builds keep records.
    fn store(&mut self, target_dir: &Path) -> Result<BlobStore> {
        if let Some(store) = self.stores.get(target_dir) {
            return Ok(store.clone());
        }
        let store = BlobStore::open(&target_dir.join("krust"))?;
        self.stores.insert(target_dir.to_path_buf(), store.clone());
        Ok(store)
    }

    /// The toolchain that builds the job: the active one in its workspace,
    /// or with build-std the nightly that builds std.
    fn toolchain(&mut self, job: &ImageJob, records: &BlobStore) -> Result<Arc<Toolchain>> {
        let dir = job
            .workspace
            .manifest_path
            .parent()
            .context("manifest path has no directory")?;
        let key = (dir.to_path_buf(), job.build_std);
        if let Some(toolchain) = self.toolchains.get(&key) {
            return Ok(toolchain.clone());
        }
        let nightly = if job.build_std {
            toolchain::build_std_toolchain(dir)?
        } else {
            None
        };
        let version = toolchain::version(dir, nightly.as_deref(), records)?;
        let toolchain = Arc::new(Toolchain::parse(&version)?);
        self.toolchains.insert(key, toolchain.clone());
        Ok(toolchain)
    }
}

/// The graph cargo resolves for the job's bin on `platform`, with the
/// features its build passes, and what of it the bin's build uses.
fn graph_of(
    plan: &Plan,
    job: &ImageJob,
    platform: &Platform,
    store: &BlobStore,
) -> Result<(TargetGraph, BuildUse)> {
    let triple = platform
        .rust_target()
        .with_context(|| format!("no Rust target for {platform}"))?;
    let manifest = job.package_dir.join("Cargo.toml");
    let packages = BTreeSet::from([job.package.as_str()]);
    let features = compile::features(
        &plan.cargo,
        &packages,
        &HashMap::from([(job.package.clone(), job.features.clone())]),
    );
    let graph = TargetGraph::load(
        &Query {
            manifest_path: &job.workspace.manifest_path,
            triple,
            roots: &BTreeSet::from([manifest.clone()]),
            features: compile::batch::qualified_features(&features, &packages),
            cargo: &plan.cargo,
        },
        store,
    )?;
    let root = graph.package_at(&manifest).with_context(|| {
        format!(
            "package `{}` ({}) is not in the dependency graph cargo resolved for {triple}",
            job.package,
            manifest.display()
        )
    })?;
    let build_use = graph.build_use(root);
    Ok((graph, build_use))
}

/// Makes the SBOM (in `format`) of every platform image of `index`, whose
/// binary is `/app/<bin>`, and attaches it as a referrer of its manifest;
/// returns each document with its `--sbom-dir` file name.
pub fn attach(
    index: &mut ImageIndex,
    bin: &str,
    format: SbomFormat,
    base: Option<&BaseImage>,
    base_images: &[Option<BasePlatformImage>],
    sources: &[Option<Sources>],
    created: &str,
) -> Result<Vec<(String, Blob)>> {
    let mut documents = Vec::new();
    let name = index.name.clone();
    for ((image, base_image), sources) in index.images.iter_mut().zip(base_images).zip(sources) {
        let Some(sources) = sources else {
            continue;
        };
        let platform = image.platform.clone();
        let input = Input {
            graph: &sources.graph,
            build_use: &sources.build_use,
            bin,
            image: OciImage {
                registry: name.registry(),
                repository: name.repository(),
                digest: &image.manifest.digest,
                platform: &platform,
            },
            base: base
                .zip(base_image.as_ref())
                .map(|(base, base_image)| SbomBase {
                    image: OciImage {
                        registry: base.reference.registry(),
                        repository: base.reference.repository(),
                        digest: &base_image.manifest_digest,
                        platform: &platform,
                    },
                    configured: &base.configured,
                    index_digest: &base.digest,
                }),
            toolchain: &sources.toolchain,
            created,
        };
        let Some(sbom) = document(format, &input)
            .with_context(|| format!("cannot make the SBOM of {name} for {platform}"))?
        else {
            continue;
        };
        image.referrers.push(referrer(
            &image.manifest,
            sbom.clone(),
            created,
            BTreeMap::new(),
        ));
        if let Some(file) = files::file_name(&name, &platform, format) {
            documents.push((file, sbom));
        }
    }
    Ok(documents)
}

/// Every (image, platform, format) whose SBOM the run makes, for
/// [`files::check`].
pub fn planned<'a>(
    plan: &'a Plan,
    platforms: &'a [Vec<Platform>],
) -> Vec<(&'a crate::image_name::ImageName, &'a Platform, SbomFormat)> {
    plan.images
        .iter()
        .zip(platforms)
        .flat_map(|(job, job_platforms)| {
            job_platforms
                .iter()
                .map(move |platform| (&job.name, platform, job.artefacts.sbom))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::assemble::PlatformImage;
    use crate::image_name::ImageName;
    use crate::oci::MEDIA_TYPE_OCI_MANIFEST;
    use crate::plan::graph::tests::graph;
    use crate::supply::sbom::MEDIA_TYPE_CYCLONEDX;
    use crate::supply::sbom::tests::toolchain;

    fn platform_image(platform: Platform, manifest: &str) -> PlatformImage {
        PlatformImage {
            platform,
            platform_json: json!({}),
            manifest: Blob::from_bytes(MEDIA_TYPE_OCI_MANIFEST, manifest.to_string()),
            config: Blob::from_bytes("application/vnd.oci.image.config.v1+json", "{}"),
            layers: Vec::new(),
            referrers: Vec::new(),
        }
    }

    fn sources() -> Sources {
        let graph = graph();
        let root = graph
            .package_at(Path::new("/w/app/Cargo.toml"))
            .expect("app");
        Sources {
            build_use: graph.build_use(root),
            graph,
            toolchain: Arc::new(toolchain()),
        }
    }

    #[test]
    fn each_platform_manifest_gets_its_sbom_as_a_referrer() {
        let amd64 = Platform::new("linux", "amd64", None);
        let arm64 = Platform::new("linux", "arm64", None);
        let mut index = ImageIndex {
            name: ImageName::parse("127.0.0.1:5000/team/app").unwrap(),
            tags: vec!["latest".into()],
            index: Blob::from_bytes("application/vnd.oci.image.index.v1+json", "{}"),
            images: vec![
                platform_image(amd64, "{\"a\":1}"),
                platform_image(arm64, "{\"b\":1}"),
            ],
        };
        let created = "2023-11-14T22:13:20Z";
        let documents = attach(
            &mut index,
            "app",
            SbomFormat::Cyclonedx,
            None,
            &[None, None],
            &[Some(sources()), None],
            created,
        )
        .unwrap();

        let names: Vec<&str> = documents.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["app-linux-amd64.cdx.json"]);
        let [amd64, arm64] = &index.images[..] else {
            panic!("two images");
        };
        assert!(arm64.referrers.is_empty(), "no sources, no SBOM");
        let [referrer] = &amd64.referrers[..] else {
            panic!("one referrer: {:?}", amd64.referrers);
        };
        assert_eq!(referrer.artifact_type, MEDIA_TYPE_CYCLONEDX);
        let manifest: Value = serde_json::from_slice(referrer.manifest.bytes().unwrap()).unwrap();
        assert_eq!(manifest["subject"]["digest"], json!(amd64.manifest.digest));
        assert_eq!(
            manifest["annotations"]["org.opencontainers.image.created"],
            created
        );
        assert_eq!(
            manifest["layers"][0]["digest"],
            json!(documents[0].1.digest)
        );
        let sbom: Value = serde_json::from_slice(documents[0].1.bytes().unwrap()).unwrap();
        assert_eq!(
            sbom["metadata"]["component"]["version"],
            json!(amd64.manifest.digest)
        );
        assert_eq!(sbom["metadata"]["timestamp"], created);
    }
}
