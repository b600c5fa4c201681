//! Provenance for a run: the environment of each workspace probed once
//! (the toolchain while cargo builds, git and Cargo.lock after), then a
//! statement per platform image attached as a referrer of its manifest,
//! for the jobs that want one (`provenance` key, `--provenance`).

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use anyhow::{Context, Result};

use super::sign::Signer;
use super::{cosign, provenance};
use crate::assemble::ImageIndex;
use crate::base::BasePlatformImage;
use crate::plan::{BaseSpec, ImageJob, Plan, ProvenanceFormat};
use crate::store::BlobStore;

/// What a job's provenance environment is probed by: its workspace
/// directory, and whether std is built from source (another toolchain).
pub type EnvironmentKey = (PathBuf, bool);

/// The probed environment of every key.
pub type Environments = HashMap<EnvironmentKey, provenance::Environment>;

fn environment_key(job: &ImageJob) -> EnvironmentKey {
    let dir = job
        .workspace
        .manifest_path
        .parent()
        .unwrap_or(&job.package_dir);
    (dir.to_path_buf(), job.build_std)
}

/// The work that probes the toolchain of every job that wants provenance,
/// once per [`EnvironmentKey`].
pub fn probe_toolchains(
    plan: &Plan,
    records: BlobStore,
) -> impl FnOnce() -> Result<Vec<(EnvironmentKey, Option<provenance::Toolchain>)>> + use<> {
    let keys: BTreeSet<EnvironmentKey> = plan
        .images
        .iter()
        .filter(|job| job.artefacts.provenance != ProvenanceFormat::None)
        .map(environment_key)
        .collect();
    move || {
        keys.into_iter()
            .map(|(dir, build_std)| {
                let toolchain = if build_std {
                    crate::compile::toolchain::build_std_toolchain(&dir)?
                } else {
                    None
                };
                let probed = provenance::Toolchain::probe(&dir, toolchain.as_deref(), &records)?;
                Ok(((dir, build_std), probed))
            })
            .collect()
    }
}

/// The environment of each key, once cargo is done (see
/// [`provenance::Environment::probe`]).
pub fn probe_environments(
    toolchains: Vec<(EnvironmentKey, Option<provenance::Toolchain>)>,
) -> Result<Environments> {
    toolchains
        .into_iter()
        .map(|(key, toolchain)| {
            let environment = provenance::Environment::probe(&key.0, toolchain)?;
            Ok((key, environment))
        })
        .collect()
}

/// Attaches the signature of each platform manifest of `index` as a
/// referrer too (cosign's OCI 1.1 form), besides the `.sig` tags the
/// registry sink writes: the same signature layer, found by listing the
/// manifest's referrers, and kept by an OCI layout.
pub fn signatures(index: &mut ImageIndex, signer: &dyn Signer, created: &str) -> Result<()> {
    let reference = cosign::docker_reference(&index.name);
    for image in &mut index.images {
        let layer = cosign::SignatureLayer::new(&reference, &image.manifest.digest, signer)?;
        image
            .referrers
            .push(layer.referrer(&image.manifest, created));
    }
    Ok(())
}

/// Attaches the provenance statement of each platform image of `index` as
/// a referrer of its manifest, unless the job wants none.
pub fn provenance(
    plan: &Plan,
    job: &ImageJob,
    index: &mut ImageIndex,
    base_images: &[Option<BasePlatformImage>],
    environments: &Environments,
    created: &str,
    signer: Option<&dyn crate::supply::sign::Signer>,
) -> Result<()> {
    // The environments are probed per workspace, for any job that wants
    // provenance: another job of the same workspace may want none.
    if job.artefacts.provenance == ProvenanceFormat::None {
        return Ok(());
    }
    let Some(environment) = environments.get(&environment_key(job)) else {
        return Ok(());
    };
    let mut features: Vec<String> = job
        .features
        .iter()
        .chain(&plan.cargo.features)
        .cloned()
        .collect();
    features.sort();
    features.dedup();
    for (image, base_image) in index.images.iter_mut().zip(base_images) {
        let base = match (&job.base, base_image) {
            (BaseSpec::Image(reference), Some(base)) => {
                Some((reference.as_str(), base.manifest_digest.as_str()))
            }
            _ => None,
        };
        let build = provenance::Build {
            image: &job.name,
            package: &job.package,
            bin: &job.bin,
            platform: &image.platform,
            profile: &plan.cargo.profile,
            features: features.clone(),
            all_features: plan.cargo.all_features,
            no_default_features: plan.cargo.no_default_features,
            build_std: job.build_std,
            base,
            cargo_args: &plan.cargo.extra_args,
            environment,
        };
        let statement = provenance::statement(&build, &image.manifest);
        let referrer = provenance::attach(&statement, &image.manifest, created, signer)
            .with_context(|| {
                format!(
                    "cannot make the provenance of {} for {}",
                    job.name, image.platform
                )
            })?;
        image.referrers.push(referrer);
    }
    Ok(())
}
