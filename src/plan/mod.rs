//! Planning: reads the package graph with cargo_metadata, selects packages and
//! bins with cargo's semantics, layers the configuration of SPEC §4, and turns
//! it all into a [`Plan`]: one [`ImageJob`] per bin, in workspace-member order
//! then bin order. Nothing here touches a registry or the file system beyond
//! reading manifests and configuration.

pub mod graph;
pub mod packages;
pub mod select;
pub mod settings;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use cargo_metadata::{Metadata, MetadataCommand, Package};

use crate::image_name::{ImageName, parse_reference, validate_tag};
use crate::oci::LayerCompression;
use crate::platform::{Listed, Platform};
use crate::progress;
pub use settings::{
    LinkerChoice, Origin, PackageSettings, ProvenanceFormat, SbomFormat, Settings, layered,
};

/// The built-in default base image (SPEC §4).
pub const DEFAULT_BASE_IMAGE: &str = "cgr.dev/chainguard/static:latest";

/// Repository prefix used for the printed reference when nothing is pushed
/// and no repository is configured (as ko's `ko.local`).
pub const LOCAL_REPO: &str = "krust.local";

/// Repository prefix meaning "load into podman, push nowhere" (`--local`).
pub const PODMAN_REPO: &str = "podman.local";

/// Repository prefix meaning "load into the Docker engine, push nowhere".
pub const DOCKER_REPO: &str = "docker.local";

/// The local container engine images are loaded into instead of pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalEngine {
    /// `--local` or `podman.local`: podman's storage, no daemon.
    Podman,
    /// `docker.local`: whatever Docker engine `docker` talks to.
    Docker,
}

/// What the user asked for on the command line (filled in by the CLI
/// layer; the environment and the Cargo.toml files are read here).
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub manifest_path: Option<PathBuf>,
    /// `-p` specs.
    pub packages: Vec<String>,
    pub workspace: bool,
    pub exclude: Vec<String>,
    /// `--bin` names.
    pub bins: Vec<String>,
    pub repo: Option<String>,
    /// `-i`: the full name (optionally `:tag`) of the one image.
    pub image: Option<String>,
    pub tags: Vec<String>,
    pub platforms: Vec<String>,
    pub base_image: Option<String>,
    /// `--image-label KEY=VALUE`, as given (parsed with the command-line layer).
    pub image_labels: Vec<String>,
    /// `--image-annotation KEY=VALUE`, as given.
    pub image_annotations: Vec<String>,
    pub image_user: Option<String>,
    /// `--tag-only`: references name the first tag instead of the digest.
    pub tag_only: bool,
    pub no_push: bool,
    pub oci_layout_path: Option<PathBuf>,
    pub oci_archive: Option<PathBuf>,
    pub tarball: Option<PathBuf>,
    /// `--local`: load into podman (also when the repository is `podman.local`).
    pub local: bool,
    pub insecure_registry: Vec<String>,
    /// `--registry-timeout`, in seconds.
    pub registry_timeout: Option<u64>,
    pub profile: Option<String>,
    pub features: Vec<String>,
    pub all_features: bool,
    pub no_default_features: bool,
    pub locked: bool,
    pub frozen: bool,
    pub offline: bool,
    pub build_std: bool,
    /// `--sbom`: overrides the `sbom` key.
    pub sbom: Option<SbomFormat>,
    /// `--sbom-dir`: also write every SBOM there.
    pub sbom_dir: Option<PathBuf>,
    /// `--provenance`: overrides the `provenance` key.
    pub provenance: Option<ProvenanceFormat>,
    /// `--sign-key` (or `KRUST_SIGN_KEY`): the key that signs images and provenance.
    pub sign_key: Option<PathBuf>,
    pub target_dir: Option<PathBuf>,
    pub jobs: Option<u16>,
    pub quiet: bool,
    pub verbose: u8,
    pub color: progress::Color,
}

impl Options {
    /// `--local` or a repository under `podman.local`: podman; a
    /// repository under `docker.local`: Docker (as ko's `ko.local`).
    pub fn local_engine(&self) -> Option<LocalEngine> {
        let under = |prefix: &str| {
            self.repo
                .as_deref()
                .is_some_and(|repo| repo == prefix || repo.starts_with(&format!("{prefix}/")))
        };
        if self.local || under(PODMAN_REPO) {
            Some(LocalEngine::Podman)
        } else if under(DOCKER_REPO) {
            Some(LocalEngine::Docker)
        } else {
            None
        }
    }

    /// Whether references are printed as `REPO/NAME:TAG`: with `--tag-only`,
    /// and for Docker, which keeps no digest for a loaded image (`docker run
    /// NAME@sha256:…` would look for it in a registry).
    pub fn prints_tags(&self) -> bool {
        self.tag_only || self.local_engine() == Some(LocalEngine::Docker)
    }
}

/// Everything the later stages need, decided up front.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Where cargo-krust keeps its blob store (`<target_dir>/krust`).
    pub target_dir: PathBuf,
    pub images: Vec<ImageJob>,
    pub cargo: CargoOptions,
    pub push: bool,
    pub oci_layout: Option<PathBuf>,
    /// `--oci-archive`.
    pub oci_archive: Option<PathBuf>,
    /// `--tarball`: a docker-archive.
    pub tarball: Option<PathBuf>,
    /// `--local` or repository `podman.local` / `docker.local`: load into
    /// that engine, no push.
    pub local: Option<LocalEngine>,
    pub insecure_registries: Vec<String>,
    /// The budget of one registry operation with its retries.
    pub registry_timeout: std::time::Duration,
    /// Parallel transfers (and cargo jobs when `-j` is given).
    pub jobs: usize,
    /// Image timestamps and layer mtimes: `SOURCE_DATE_EPOCH` or 0.
    pub epoch: u64,
    /// `--sbom-dir`: every SBOM is also written there.
    pub sbom_dir: Option<PathBuf>,
    /// `--sign-key`: signs every index and platform manifest, and the provenance.
    pub sign_key: Option<PathBuf>,
}

/// The cargo workspace a job is compiled in: cargo runs once per
/// (workspace, target triple).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Workspace {
    /// The manifest cargo is run with (package or workspace root).
    pub manifest_path: PathBuf,
    pub target_dir: PathBuf,
}

/// One image to build: one bin of one package, for one or more platforms.
#[derive(Debug, Clone)]
pub struct ImageJob {
    pub workspace: Workspace,
    pub package: String,
    pub package_dir: PathBuf,
    pub bin: String,
    pub name: ImageName,
    pub tags: Vec<String>,
    pub base: BaseSpec,
    /// Platforms asked for by the user or configuration, `all` still
    /// unexpanded; `None` means "the platforms of the base image".
    pub platforms: Option<Vec<Listed>>,
    /// Cargo features configured for this bin (`features` key of its bin
    /// table, else of its package).
    pub features: Vec<String>,
    /// The `linker` key: overrides cargo-krust's linker choice.
    pub linker: Option<LinkerChoice>,
    /// `build-std` key or `--build-std`: build std with nightly `-Zbuild-std`.
    pub build_std: bool,
    pub config: ImageSettings,
    /// How the added layers are compressed (`layer-compression`).
    pub compression: LayerCompression,
    /// The supply-chain artefacts of this image.
    pub artefacts: Artefacts,
}

/// What a job's images carry besides their layers (the `sbom`, `auditable`
/// and `provenance` keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Artefacts {
    pub sbom: SbomFormat,
    /// The dependency list is embedded in the binary (`.dep-v0`).
    pub auditable: bool,
    pub provenance: ProvenanceFormat,
}

/// The base image of a job as configured.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BaseSpec {
    Scratch,
    /// The reference exactly as configured (it goes into the base.name annotation).
    Image(String),
}

/// Runtime settings that end up in the image config and annotations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageSettings {
    pub env: BTreeMap<String, String>,
    pub args: Option<Vec<String>>,
    pub ports: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub data: Option<DataDir>,
}

/// A data directory copied into the image at /var/run/krust.
#[derive(Debug, Clone, PartialEq)]
pub struct DataDir {
    pub path: PathBuf,
    /// The directory of the file that configured it: `path` must resolve
    /// inside it.
    pub root: PathBuf,
}

/// Options handed through to `cargo build`.
#[derive(Debug, Clone, Default)]
pub struct CargoOptions {
    pub profile: String,
    pub features: Vec<String>,
    pub all_features: bool,
    pub no_default_features: bool,
    pub locked: bool,
    pub frozen: bool,
    pub offline: bool,
    pub jobs: Option<u16>,
    pub quiet: bool,
    pub verbose: u8,
    pub color: &'static str,
    pub extra_args: Vec<String>,
}

/// Plans a build from a directory (or `--manifest-path`) and the flags.
pub fn plan(directory: Option<&Path>, options: &Options, cargo_args: &[String]) -> Result<Plan> {
    let manifest_path = manifest_path(directory, options)?;
    progress::trace("running cargo metadata");
    let metadata = read_metadata(&manifest_path)?;
    progress::trace("cargo metadata read");

    let workspace = Workspace {
        manifest_path: manifest_path.clone(),
        target_dir: target_dir(&metadata, options)?,
    };
    let layers = CommonLayers::load(&metadata, options)?;

    // Every member's configuration is read (and so validated) up front:
    // nothing is built or pushed when any of it is invalid.
    let mut package_settings: BTreeMap<String, PackageSettings> = BTreeMap::new();
    for package in select::members(&metadata) {
        let parsed = PackageSettings::from_metadata(
            &package.metadata,
            package.manifest_path.as_std_path(),
            &select::bin_names(package),
        )?;
        package_settings.insert(package.id.repr.clone(), parsed);
    }
    let settings_of = |package: &Package| {
        package_settings
            .get(&package.id.repr)
            .cloned()
            .unwrap_or_default()
    };
    let merged_package = |package: &Package| layers.for_package(&settings_of(package));

    let packages = select::packages(&metadata, &manifest_path, options, |package| {
        Ok(merged_package(package).skip == Some(true))
    })?;

    let mut images = Vec::new();
    for package in &packages {
        let package_table = settings_of(package);
        let features = |bin: &str| {
            let configured = layers.for_bin(&package_table, bin).features;
            select::EnabledFeatures::new(
                package,
                options,
                configured.as_deref().unwrap_or_default(),
            )
        };
        let bins = select::bins(package, &options.bins, features, |bin| {
            package_table.bins.get(bin).and_then(|b| b.skip) == Some(true)
        })?;
        for target in bins {
            let merged = layers.for_bin(&package_table, &target.name);
            images.push(image_job(
                package,
                &target.name,
                merged,
                options,
                &workspace,
            )?);
        }
    }
    let missing: Vec<String> = options
        .bins
        .iter()
        .filter(|b| !images.iter().any(|i| &i.bin == *b))
        .map(|b| format!("`{b}`"))
        .collect();
    if !missing.is_empty() {
        bail!(
            "no bin target named {} in the selected packages ({})",
            missing.join(", "),
            packages
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if images.is_empty() {
        bail!(
            "no bin target to build: every bin was left out (skip = true or missing required-features)"
        );
    }
    if options.image.is_some() && images.len() > 1 {
        bail!(
            "--image names one image but {} bins are selected ({}); select one with --bin or use --repo",
            images.len(),
            images
                .iter()
                .map(|i| i.bin.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    finish(images, workspace.target_dir, options, cargo_args)
}

/// The configuration layers that are the same for every package of a
/// workspace: command line, environment, `[workspace.metadata.krust]` and
/// the global file.
struct CommonLayers {
    cli: Settings,
    env: Settings,
    workspace: Settings,
    global: Settings,
}

impl CommonLayers {
    fn load(metadata: &Metadata, options: &Options) -> Result<CommonLayers> {
        let workspace = match metadata.workspace_metadata.get("krust") {
            Some(table) => {
                let file = metadata
                    .workspace_root
                    .join("Cargo.toml")
                    .into_std_path_buf();
                let origin = Origin::Table {
                    table: "workspace.metadata.krust".into(),
                    file,
                };
                Settings::from_table(table, &origin, metadata.workspace_root.as_std_path())?
            }
            None => Settings::default(),
        };
        Ok(CommonLayers {
            cli: cli_settings(options)?,
            env: Settings::from_env(|var| std::env::var(var).ok())?,
            workspace,
            global: Settings::from_global_file(&global_config_path())?,
        })
    }

    /// The layers of SPEC §4 that apply to a package as a whole.
    fn for_package(&self, package: &PackageSettings) -> Settings {
        layered([
            self.cli.clone(),
            self.env.clone(),
            package.package.clone(),
            self.workspace.clone(),
            self.global.clone(),
        ])
    }

    /// Every layer of SPEC §4 for one bin of a package.
    fn for_bin(&self, package: &PackageSettings, bin: &str) -> Settings {
        layered([
            self.cli.clone(),
            self.env.clone(),
            package.bins.get(bin).cloned().unwrap_or_default(),
            package.package.clone(),
            self.workspace.clone(),
            self.global.clone(),
        ])
    }
}

/// The target dir of a workspace: `--target-dir`, else cargo's.
fn target_dir(metadata: &Metadata, options: &Options) -> Result<PathBuf> {
    match &options.target_dir {
        Some(dir) => absolute(dir),
        None => Ok(metadata.target_directory.clone().into_std_path_buf()),
    }
}

/// The plan around a list of jobs: the options every job shares.
fn finish(
    images: Vec<ImageJob>,
    target_dir: PathBuf,
    options: &Options,
    cargo_args: &[String],
) -> Result<Plan> {
    ensure_one_image_per_repository(&images)?;
    Ok(Plan {
        target_dir,
        images,
        cargo: cargo_options(options, cargo_args),
        push: !options.no_push && options.local_engine().is_none(),
        local: options.local_engine(),
        oci_layout: options
            .oci_layout_path
            .as_deref()
            .map(absolute)
            .transpose()?,
        oci_archive: options.oci_archive.as_deref().map(absolute).transpose()?,
        tarball: options.tarball.as_deref().map(absolute).transpose()?,
        insecure_registries: options.insecure_registry.clone(),
        registry_timeout: options.registry_timeout.map_or(
            crate::registry::DEFAULT_BUDGET,
            std::time::Duration::from_secs,
        ),
        jobs: options
            .jobs
            .map(usize::from)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(4, |n| n.get().max(4))),
        epoch: source_date_epoch()?,
        sbom_dir: options.sbom_dir.as_deref().map(absolute).transpose()?,
        sign_key: options.sign_key.as_deref().map(absolute).transpose()?,
    })
}

/// Two images pushed to one repository would take turns on its tags
/// (`latest` naming whichever was pushed last): refused before anything is
/// built, naming both bins and what to change.
fn ensure_one_image_per_repository(images: &[ImageJob]) -> Result<()> {
    let mut owners: BTreeMap<(&str, &str), &ImageJob> = BTreeMap::new();
    for job in images {
        let repository = (job.name.registry(), job.name.repository());
        let Some(first) = owners.insert(repository, job) else {
            continue;
        };
        let describe = |job: &ImageJob| {
            format!(
                "bin `{}` of package `{}` ({})",
                job.bin,
                job.package,
                job.package_dir.join("Cargo.toml").display()
            )
        };
        bail!(
            "{} and {} would both be pushed to {}, each replacing the other's tags: give one of them another image name, e.g. `name = \"…\"` in [package.metadata.krust.bin.{}]",
            describe(first),
            describe(job),
            job.name,
            job.bin
        );
    }
    Ok(())
}

/// The last second an RFC 3339 timestamp (a four-digit year) can name,
/// 9999-12-31T23:59:59Z: image configs carry `created` in that form.
pub const MAX_SOURCE_DATE_EPOCH: u64 = 253_402_300_799;

/// `SOURCE_DATE_EPOCH` (reproducible-builds.org), 0 when unset.
fn source_date_epoch() -> Result<u64> {
    parse_source_date_epoch(std::env::var_os("SOURCE_DATE_EPOCH").as_deref())
}

fn parse_source_date_epoch(value: Option<&std::ffi::OsStr>) -> Result<u64> {
    let allowed = format!(
        "use a whole number of seconds from 0 to {MAX_SOURCE_DATE_EPOCH} (9999-12-31T23:59:59Z)"
    );
    let Some(value) = value else {
        return Ok(0);
    };
    let Some(text) = value.to_str() else {
        bail!(
            "SOURCE_DATE_EPOCH={} is not a number of seconds since 1970: {allowed}",
            value.to_string_lossy()
        );
    };
    if text.trim().is_empty() {
        return Ok(0);
    }
    match text.trim().parse::<u64>() {
        Ok(epoch) if epoch <= MAX_SOURCE_DATE_EPOCH => Ok(epoch),
        Ok(_) => bail!(
            "SOURCE_DATE_EPOCH=`{text}` is past 9999-12-31T23:59:59Z, the last time an image's `created` field can hold: {allowed}"
        ),
        Err(_) => {
            bail!("SOURCE_DATE_EPOCH=`{text}` is not a number of seconds since 1970: {allowed}")
        }
    }
}

/// The absolute path of the manifest a build starts from: `--manifest-path`,
/// else `Cargo.toml` in DIRECTORY or the current directory.
pub fn manifest_path(directory: Option<&Path>, options: &Options) -> Result<PathBuf> {
    locate_manifest(directory, options.manifest_path.as_deref())
}

fn locate_manifest(directory: Option<&Path>, manifest_path: Option<&Path>) -> Result<PathBuf> {
    let path = match (manifest_path, directory) {
        // Named as given: a directory or a typo is the culprit, not a guess.
        (Some(manifest), _) if !manifest.is_file() => bail!(
            "--manifest-path {} is not a file: pass the path of the package's Cargo.toml, or its directory as DIRECTORY",
            manifest.display()
        ),
        (Some(manifest), _) => manifest.to_path_buf(),
        (None, Some(dir)) => dir.join("Cargo.toml"),
        (None, None) => PathBuf::from("Cargo.toml"),
    };
    if !path.is_file() {
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
        bail!(
            "no Cargo.toml at {}: run cargo krust in a package directory, or pass its path (DIRECTORY or --manifest-path)",
            dir.map(|d| format!("{}", d.display()))
                .map(|d| format!("{d}/Cargo.toml"))
                .unwrap_or_else(|| "./Cargo.toml".into())
        );
    }
    absolute(&path)
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot resolve path {}", path.display()))
}

fn read_metadata(manifest_path: &Path) -> Result<Metadata> {
    let mut command = MetadataCommand::new();
    command.manifest_path(manifest_path).no_deps();
    // cargo loads the system's CA bundle when it starts (libgit2's TLS set-up)
    // whether or not it will use the network: ~5 ms of a ~12 ms `cargo
    // metadata`, which is on every build's critical path. With `--no-deps`
    // it never does, so it gets an empty bundle. Only when `CARGO` names
    // cargo itself: through rustup's proxy, a toolchain may be installed.
    if std::env::var_os("CARGO").is_some() {
        command.env("SSL_CERT_FILE", "/dev/null");
    }
    command.exec().map_err(|err| {
        metadata_error(
            err,
            &format!("cargo metadata failed for {}", manifest_path.display()),
        )
    })
}

/// One line for a failed `cargo metadata`: `what`, then cargo's own error.
pub fn metadata_error(err: cargo_metadata::Error, what: &str) -> anyhow::Error {
    match err {
        cargo_metadata::Error::CargoMetadata { stderr } => anyhow::anyhow!(
            "{what}: {}",
            stderr
                .lines()
                .find(|l| l.starts_with("error"))
                .unwrap_or(stderr.trim())
                .trim_start_matches("error: ")
        ),
        other => anyhow::Error::new(other).context(what.to_string()),
    }
}

/// The command-line layer: `--base-image`, `--platform`, `--tag`,
/// `--image-label`, `--image-annotation`, `--image-user`, `--build-std`.
fn cli_settings(options: &Options) -> Result<Settings> {
    let origin = Origin::CommandLine;
    let settings = Settings {
        labels: settings::key_value_map(&options.image_labels, &origin, "labels")?,
        annotations: settings::key_value_map(&options.image_annotations, &origin, "annotations")?,
        user: options.image_user.clone(),
        base_image: options.base_image.clone(),
        // `--platform ""` (an empty variable in a script) sets nothing, as
        // an empty KRUST_PLATFORMS does: it must not become zero platforms.
        platforms: (options
            .platforms
            .iter()
            .any(|p| !p.replace(',', "").trim().is_empty()))
        .then(|| options.platforms.clone()),
        tags: (!options.tags.is_empty()).then(|| options.tags.clone()),
        build_std: options.build_std.then_some(true),
        sbom: options.sbom,
        provenance: options.provenance,
        ..Settings::default()
    };
    settings.validate(&origin)?;
    Ok(settings)
}

fn global_config_path() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from(".config"));
    base.join("krust").join("config.toml")
}

fn image_job(
    package: &Package,
    bin: &str,
    settings: Settings,
    options: &Options,
    workspace: &Workspace,
) -> Result<ImageJob> {
    let manifest = package.manifest_path.as_std_path();
    let package_dir = manifest.parent().map(Path::to_path_buf).unwrap_or_default();

    let (name, image_tag) = match &options.image {
        Some(image) => image_name_with_tag(image)?,
        None => {
            let short = settings.name.as_deref().unwrap_or(bin);
            let prefix = match (&options.repo, options.no_push) {
                (Some(repo), _) => repo.as_str(),
                (None, _) if options.local => PODMAN_REPO,
                (None, true) => LOCAL_REPO,
                (None, false) => bail!(
                    "KRUST_REPO is not set: say where to push with KRUST_REPO=<registry>/<path> or --repo (or use --no-push)"
                ),
            };
            let name = ImageName::join(prefix, short).with_context(|| {
                format!("cannot name the image of bin `{bin}` (repository `{prefix}`)")
            })?;
            (name, None)
        }
    };

    let mut tags = settings.tags.clone().unwrap_or_default();
    if let Some(tag) = image_tag {
        tags.push(tag);
    }
    if tags.is_empty() {
        tags.push("latest".to_string());
    }
    let mut seen = std::collections::BTreeSet::new();
    tags.retain(|tag| seen.insert(tag.clone()));
    for tag in &tags {
        validate_tag(tag)?;
    }

    // Values were validated in their layer; here they are only interpreted.
    let base = match settings.base_image.as_deref().map(str::trim) {
        Some("scratch") => BaseSpec::Scratch,
        Some(reference) => BaseSpec::Image(reference.to_string()),
        None => BaseSpec::Image(DEFAULT_BASE_IMAGE.to_string()),
    };

    let platforms = match &settings.platforms {
        Some(list) => Some(Platform::parse_list(list)?).filter(|parsed| !parsed.is_empty()),
        None => None,
    };

    let data = settings.data.clone().map(|path| DataDir {
        root: settings
            .data_root
            .clone()
            .unwrap_or_else(|| package_dir.clone()),
        path,
    });

    let mut labels = cargo_labels(package);
    labels.extend(settings.labels.clone().unwrap_or_default());

    Ok(ImageJob {
        workspace: workspace.clone(),
        package: package.name.to_string(),
        package_dir,
        bin: bin.to_string(),
        name,
        tags,
        base,
        platforms,
        features: settings.features.clone().unwrap_or_default(),
        compression: settings
            .layer_compression
            .as_deref()
            .and_then(LayerCompression::parse)
            .unwrap_or_default(),
        linker: settings.linker,
        build_std: settings.build_std.unwrap_or(false),
        artefacts: Artefacts {
            sbom: settings.sbom.unwrap_or_default(),
            auditable: settings.auditable.unwrap_or(true),
            provenance: settings.provenance.unwrap_or_default(),
        },
        config: ImageSettings {
            env: settings.env.clone().unwrap_or_default(),
            args: settings.args.clone(),
            ports: settings.ports.clone().unwrap_or_default(),
            user: settings.user.clone(),
            workdir: settings.workdir.clone(),
            labels,
            annotations: settings.annotations.clone().unwrap_or_default(),
            data,
        },
    })
}

/// `-i REF`: a repository with an optional tag.
fn image_name_with_tag(image: &str) -> Result<(ImageName, Option<String>)> {
    let reference = parse_reference(image)?;
    if reference.digest().is_some() {
        bail!("invalid image name `{image}` for --image: a digest cannot be pushed to, drop `@…`");
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, tag)) => {
            let name = &image[..image.len() - tag.len() - 1];
            Ok((ImageName::parse(name)?, Some(tag.to_string())))
        }
        None => Ok((ImageName::parse(image)?, None)),
    }
}

/// OCI labels from the package's Cargo.toml (SPEC §5).
fn cargo_labels(package: &Package) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut add = |key: &str, value: Option<String>| {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            labels.insert(format!("org.opencontainers.image.{key}"), value);
        }
    };
    add("title", Some(package.name.to_string()));
    add("version", Some(package.version.to_string()));
    add("description", package.description.clone());
    add("source", package.repository.clone());
    add("licenses", package.license.clone());
    labels
}

fn cargo_options(options: &Options, cargo_args: &[String]) -> CargoOptions {
    CargoOptions {
        profile: options.profile.clone().unwrap_or_else(|| "release".into()),
        features: options.features.clone(),
        all_features: options.all_features,
        no_default_features: options.no_default_features,
        locked: options.locked,
        frozen: options.frozen,
        offline: options.offline,
        jobs: options.jobs,
        quiet: options.quiet,
        verbose: options.verbose,
        color: options.color.as_str(),
        extra_args: cargo_args.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn source_date_epoch_is_bounded_by_what_rfc3339_can_name() {
        let parse = |text: &str| parse_source_date_epoch(Some(OsStr::new(text)));
        assert_eq!(parse_source_date_epoch(None).unwrap(), 0);
        assert_eq!(parse(" ").unwrap(), 0);
        assert_eq!(parse(" 1700000000\n").unwrap(), 1_700_000_000);
        assert_eq!(parse("253402300799").unwrap(), MAX_SOURCE_DATE_EPOCH);
        // The largest accepted value is one the image timestamps can be written for.
        let last = std::time::UNIX_EPOCH + std::time::Duration::from_secs(MAX_SOURCE_DATE_EPOCH);
        assert_eq!(
            humantime::format_rfc3339(last).to_string(),
            "9999-12-31T23:59:59Z"
        );
        for (bad, words) in [
            ("253402300800", "past 9999-12-31T23:59:59Z"),
            ("18446744073709551615", "past 9999-12-31T23:59:59Z"),
            ("-1", "not a number"),
            ("1e9", "not a number"),
        ] {
            let err = format!("{:#}", parse(bad).unwrap_err());
            assert!(err.contains(words), "{bad}: {err}");
            assert!(
                err.contains("SOURCE_DATE_EPOCH") && err.contains("from 0 to 253402300799"),
                "{bad}: {err}"
            );
        }
    }
}
