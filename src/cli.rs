//! Command-line interface: the clap definitions of SPEC §2 and the handling
//! of the `krust` word cargo inserts when it runs `cargo krust …`. Nothing
//! here knows how images are made.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Arg, Args, Parser, Subcommand, ValueEnum};

use crate::registry::{DEFAULT_BUDGET, Timeouts};
use crate::{plan, progress};

/// Build and publish container images of Rust binaries, without Docker.
///
/// Each bin target is cross-compiled into a static musl binary for every
/// platform, appended as a layer to a base image and pushed as a
/// multi-platform OCI image index. Only image references go to stdout.
#[derive(Debug, Parser)]
#[command(
    name = "cargo-krust",
    bin_name = "cargo krust",
    version,
    about,
    long_about
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build images for the bins of a package or workspace and push them.
    ///
    /// Prints one `REPO/NAME@sha256:…` line per image on stdout.
    #[command(visible_alias = "publish")]
    Build(Box<BuildArgs>),
    /// Build the `krust://PATH[#bin]` references in Kubernetes YAML and print
    /// the YAML with each replaced by its `REPO/NAME@sha256:…`.
    ///
    /// PATH is relative to the YAML file (stdin: the current directory) and
    /// names a package directory; `#bin` picks one of its bins. Only those
    /// scalars change: comments, quoting and layout are kept byte for byte.
    /// Files are printed in input order, each followed by a `---` line.
    Resolve(Box<ResolveArgs>),
    /// Resolve like `resolve`, then pipe the YAML into `kubectl apply -f -`.
    ///
    /// Arguments after `--` go to kubectl; the exit status is kubectl's.
    /// kubectl is not started when any build fails.
    Apply(Box<ApplyArgs>),
    /// Resolve like `resolve`, then pipe the YAML into `kubectl create -f -`.
    ///
    /// Arguments after `--` go to kubectl; the exit status is kubectl's.
    /// kubectl is not started when any build fails.
    Create(Box<ApplyArgs>),
    /// Print a Dockerfile equivalent to the image `build` makes for one bin
    /// (pick it with --bin when several are selected).
    ///
    /// The base by digest, resolved as a build resolves it; the binary (built
    /// first with the cargo command its comments show) and the data directory
    /// copied in; ENV, USER, WORKDIR, EXPOSE, LABEL, ENTRYPOINT and CMD as
    /// configured. Nothing is compiled or pushed.
    Dockerfile(Box<DockerfileArgs>),
    /// Build the image of one bin for this machine's platform, load it into
    /// podman (as --local) and run it there: `cargo run`, in the image.
    ///
    /// Runs `podman run --rm -i --pull never [--tty] --runtime runc PODMAN_ARGS… IMAGE
    /// ARGS…` with stdin, stdout and stderr attached; the exit status is the
    /// program's. Nothing is pushed; stdout holds only the program's output.
    Run(Box<RunArgs>),
    /// Log in to a registry: check the credentials with it, then store them
    /// as `docker login` does.
    ///
    /// They go into `$DOCKER_CONFIG/config.json` (else
    /// `~/.docker/config.json`), or to the credential helper that file names
    /// for the registry (`credHelpers`, `credsStore`). The password is read
    /// from stdin only.
    Login(LoginArgs),
    /// Log out of a registry: remove its credentials from the Docker config
    /// (or erase them from its credential helper).
    Logout(LogoutArgs),
    /// Make multi-platform indexes from images already pushed.
    #[command(subcommand)]
    Index(IndexCommand),
    /// Print the version of cargo-krust.
    Version,
    /// Print a shell completion script.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
#[command(mut_arg("manifest_path", |a| a.conflicts_with("directory")))]
pub struct BuildArgs {
    /// Package or workspace directory [default: current directory].
    pub directory: Option<PathBuf>,

    #[command(flatten)]
    pub options: BuildOptions,

    /// Also write a JSON report of the build to FILE: each image's digests,
    /// tags, layers and binaries, and the time of each stage (schema:
    /// schema/report-v1.json; replaced whole; checked writable before
    /// anything is built; `-` is refused, stdout holds the references).
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub report: Option<PathBuf>,

    /// Extra arguments passed to `cargo build` after `--`.
    #[arg(last = true, value_name = "CARGO_ARGS")]
    pub cargo_args: Vec<String>,
}

/// The options of `dockerfile`: `build`'s, the output ones hidden (it
/// writes nothing but the Dockerfile, and refuses them).
#[derive(Debug, Args)]
#[command(
    mut_args(hide_build_outputs),
    mut_arg("cargo_args", |a| a.hide(true))
)]
pub struct DockerfileArgs {
    #[command(flatten)]
    pub build: BuildArgs,
}

/// The options of `resolve` (and of `apply`/`create`). The package selection
/// options of `build` are hidden: the YAML's references say what to build.
#[derive(Debug, Args)]
#[command(
    mut_arg("manifest_path", |a| a.hide(true)),
    mut_arg("packages", |a| a.hide(true)),
    mut_arg("workspace", |a| a.hide(true)),
    mut_arg("exclude", |a| a.hide(true)),
    mut_arg("bins", |a| a.hide(true)),
    mut_arg("image", |a| a.hide(true))
)]
pub struct ResolveArgs {
    /// YAML or JSON file, directory of them, or `-` for stdin (repeatable).
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE|DIR|-",
        required = true,
        help_heading = "Input"
    )]
    pub files: Vec<PathBuf>,

    /// Also read the subdirectories of directories given with -f.
    #[arg(short = 'R', long, help_heading = "Input")]
    pub recursive: bool,

    /// Keep only the documents whose `metadata.labels` match (kubectl's
    /// syntax: `k=v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`,
    /// joined by `,`); only their references are built.
    #[arg(short = 'l', long, value_name = "SELECTOR", help_heading = "Input")]
    pub selector: Option<String>,

    #[command(flatten)]
    pub options: BuildOptions,
}

/// The output options of `build`, which `dockerfile` and `run` hide (and
/// refuse): neither writes images anywhere but where its command says.
const BUILD_OUTPUTS: [&str; 7] = [
    "no_push",
    "local",
    "tag_only",
    "oci_layout_path",
    "oci_archive",
    "tarball",
    "image_refs",
];

fn hide_build_outputs(arg: Arg) -> Arg {
    if BUILD_OUTPUTS.contains(&arg.get_id().as_str()) {
        arg.hide(true)
    } else {
        arg
    }
}

/// The options of `run`: `build`'s, the output ones hidden (it loads into
/// podman and writes nothing else, and refuses them).
#[derive(Debug, Args)]
#[command(
    mut_arg("manifest_path", |a| a.conflicts_with("directory")),
    mut_args(hide_build_outputs)
)]
pub struct RunArgs {
    /// Package or workspace directory [default: current directory].
    pub directory: Option<PathBuf>,

    #[command(flatten)]
    pub options: BuildOptions,

    /// Extra argument for `podman run`, before the image (repeatable), e.g.
    /// `--podman-arg=--ulimit=nofile=1024:1024` where runc cannot raise
    /// podman's default limits.
    #[arg(
        long,
        value_name = "ARG",
        allow_hyphen_values = true,
        help_heading = "Podman"
    )]
    pub podman_arg: Vec<String>,

    /// Arguments for the program, after `--`.
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub resolve: ResolveArgs,

    /// The kubectl to run.
    #[arg(
        long,
        env = "KRUST_KUBECTL",
        value_name = "PATH",
        default_value = "kubectl",
        help_heading = "Kubernetes"
    )]
    pub kubectl: PathBuf,

    /// Extra arguments passed to kubectl after `--`.
    #[arg(last = true, value_name = "KUBECTL_ARGS")]
    pub kubectl_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The registry, as HOST[:PORT] (`docker.io` for Docker Hub).
    pub registry: String,

    /// The account to log in as.
    #[arg(short = 'u', long, value_name = "USER", required = true)]
    pub username: String,

    /// Read the password (or token) from stdin, e.g. `cat pw.txt | cargo krust login …`.
    #[arg(long)]
    pub password_stdin: bool,

    /// Refused: a password on the command line shows in `ps` and the shell
    /// history (use --password-stdin).
    #[arg(short = 'p', long, value_name = "PASSWORD", hide = true)]
    pub password: Option<String>,

    /// Allow plain HTTP to this registry (loopback registries always may).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub insecure_registry: Vec<String>,

    #[command(flatten)]
    pub timeout: RegistryTimeout,

    /// Use verbose output (-vv for every request; never a secret).
    #[arg(short = 'v', long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// Merge images already in registries into one multi-platform index,
    /// e.g. each architecture built on its own runner.
    ///
    /// Each SOURCE is an index (its platforms are taken) or an image (its
    /// platform read from its config). Nothing is rebuilt or downloaded:
    /// children keep their digests, and ones in another repository of the
    /// target's registry are mounted. Prints `REPO/NAME@sha256:…` of the
    /// index; a platform given twice is an error.
    Create(IndexCreateArgs),
}

#[derive(Debug, Args)]
pub struct IndexCreateArgs {
    /// Where the index goes: REPO/NAME[:TAG] (tag `latest` when none).
    pub target: String,

    /// The images or indexes to merge (by tag or digest), in index order.
    #[arg(required = true, value_name = "SOURCE")]
    pub sources: Vec<String>,

    /// More tags for the index (repeatable, comma-separated).
    #[arg(short = 't', long, value_name = "TAG")]
    pub tag: Vec<String>,

    /// Allow plain HTTP to this registry (loopback registries always may).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub insecure_registry: Vec<String>,

    #[command(flatten)]
    pub timeout: RegistryTimeout,

    /// Print nothing but the reference on stdout (errors still go to stderr).
    #[arg(short = 'q', long)]
    pub quiet: bool,

    /// Use verbose output (-vv for every request; never a secret).
    #[arg(short = 'v', long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The registry, as HOST[:PORT] (`docker.io` for Docker Hub).
    pub registry: String,

    #[command(flatten)]
    pub timeout: RegistryTimeout,
}

/// How long `login` and `logout` wait for a registry and a credential helper.
#[derive(Debug, Args)]
pub struct RegistryTimeout {
    /// Give up on the registry (at login) after SECONDS, on a credential
    /// helper after half [default: 60].
    #[arg(
        long,
        env = "KRUST_REGISTRY_TIMEOUT",
        value_name = "SECONDS",
        value_parser = clap::value_parser!(u64).range(1..=86_400)
    )]
    pub registry_timeout: Option<u64>,
}

impl RegistryTimeout {
    pub fn timeouts(&self) -> Timeouts {
        Timeouts::new(
            self.registry_timeout
                .map_or(DEFAULT_BUDGET, std::time::Duration::from_secs),
        )
    }
}

/// Options shared by every command that builds images.
#[derive(Debug, Clone, Default, Args)]
pub struct BuildOptions {
    /// Path to Cargo.toml (instead of DIRECTORY).
    #[arg(long, value_name = "PATH", help_heading = "Package selection")]
    pub manifest_path: Option<PathBuf>,

    /// Package to build (repeatable).
    #[arg(
        short = 'p',
        long = "package",
        value_name = "SPEC",
        help_heading = "Package selection"
    )]
    pub packages: Vec<String>,

    /// Build every workspace member that has bin targets.
    #[arg(long, help_heading = "Package selection")]
    pub workspace: bool,

    /// Leave a package out of --workspace (repeatable).
    #[arg(
        long,
        value_name = "SPEC",
        requires = "workspace",
        help_heading = "Package selection"
    )]
    pub exclude: Vec<String>,

    /// Only build this bin target (repeatable).
    #[arg(long = "bin", value_name = "NAME", help_heading = "Package selection")]
    pub bins: Vec<String>,

    /// Repository prefix images are pushed under, as `REPO/<bin>`.
    #[arg(long, env = "KRUST_REPO", value_name = "REPO", help_heading = "Image")]
    pub repo: Option<String>,

    /// Full image name for the single selected bin (overrides --repo naming).
    #[arg(short = 'i', long, value_name = "REF", help_heading = "Image")]
    pub image: Option<String>,

    /// Tag to apply (repeatable, comma-separated; env KRUST_TAGS) [default: latest].
    #[arg(
        short = 't',
        long = "tag",
        value_name = "TAG",
        value_delimiter = ',',
        help_heading = "Image"
    )]
    pub tags: Vec<String>,

    /// Target platform os/arch[/variant], repeatable and comma-separated; `all`
    /// = every platform of the base image cargo-krust builds (on scratch: all
    /// it supports) (env KRUST_PLATFORMS) [default: the platforms of the base image].
    #[arg(
        long = "platform",
        value_name = "PLATFORM",
        value_delimiter = ',',
        help_heading = "Image"
    )]
    pub platforms: Vec<String>,

    /// Base image; `scratch` means no base (env KRUST_BASE_IMAGE)
    /// [default: cgr.dev/chainguard/static:latest].
    #[arg(long, value_name = "REF", help_heading = "Image")]
    pub base_image: Option<String>,

    /// Label to set in the image config, KEY=VALUE (repeatable; overrides
    /// the `labels` key entry by entry).
    #[arg(long, value_name = "KEY=VALUE", help_heading = "Image")]
    pub image_label: Vec<String>,

    /// Annotation to set on every manifest and the index, KEY=VALUE
    /// (repeatable; overrides the `annotations` key entry by entry).
    #[arg(long, value_name = "KEY=VALUE", help_heading = "Image")]
    pub image_annotation: Vec<String>,

    /// User the image runs as, e.g. `65532:65532` or `nonroot` (overrides
    /// the `user` key).
    #[arg(long, value_name = "USER", help_heading = "Image")]
    pub image_user: Option<String>,

    /// Print `REPO/NAME:TAG` (the first tag) instead of `REPO/NAME@sha256:…`,
    /// on stdout, in resolved YAML and in --image-refs.
    #[arg(long, help_heading = "Image")]
    pub tag_only: bool,

    /// Build everything but push nothing; still print the reference (same digest).
    #[arg(long, help_heading = "Output")]
    pub no_push: bool,

    /// Also write the images into an OCI image layout at DIR (entries named
    /// REPOSITORY:TAG, e.g. team-a/api:latest; all or nothing).
    #[arg(long, value_name = "DIR", help_heading = "Output")]
    pub oci_layout_path: Option<PathBuf>,

    /// Also write the images, every platform, as an OCI archive (the OCI
    /// layout as one tar, for `podman load` or skopeo's `oci-archive:`).
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub oci_archive: Option<PathBuf>,

    /// Also write the images as a docker-archive for `docker load`, one
    /// platform: the host's, unless an image is built for one only.
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub tarball: Option<PathBuf>,

    /// Load the images into podman's local storage instead of pushing
    /// (as `KRUST_REPO=podman.local`): the host's platform as NAME:TAG,
    /// every platform as NAME:TAG-ARCH. `KRUST_REPO=docker.local` does the
    /// same with `docker load`.
    #[arg(long, help_heading = "Output")]
    pub local: bool,

    /// Also write the printed references to FILE (replaced whole; checked
    /// writable before anything is built).
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub image_refs: Option<PathBuf>,

    /// Allow plain HTTP to this registry (loopback registries always may).
    #[arg(long, value_name = "HOST[:PORT]", help_heading = "Registry")]
    pub insecure_registry: Vec<String>,

    /// Give up on a registry operation, retries included, after SECONDS; a
    /// transfer that keeps moving (1 KiB/s or more) is only stopped by
    /// silence of half that [default: 60].
    #[arg(
        long,
        env = "KRUST_REGISTRY_TIMEOUT",
        value_name = "SECONDS",
        value_parser = clap::value_parser!(u64).range(1..=86_400),
        help_heading = "Registry"
    )]
    pub registry_timeout: Option<u64>,

    /// Cargo profile to build with [default: release].
    #[arg(long, value_name = "NAME", help_heading = "Cargo")]
    pub profile: Option<String>,

    /// Build with the release profile (the default).
    #[arg(long, conflicts_with = "profile", help_heading = "Cargo")]
    pub release: bool,

    /// Cargo features to activate (repeatable, comma- or space-separated).
    #[arg(short = 'F', long, value_name = "FEATURES", help_heading = "Cargo")]
    pub features: Vec<String>,

    /// Activate all features.
    #[arg(long, help_heading = "Cargo")]
    pub all_features: bool,

    /// Do not activate the default feature.
    #[arg(long, help_heading = "Cargo")]
    pub no_default_features: bool,

    /// Require Cargo.lock to be up to date.
    #[arg(long, help_heading = "Cargo")]
    pub locked: bool,

    /// Require Cargo.lock and the cache to be up to date.
    #[arg(long, help_heading = "Cargo")]
    pub frozen: bool,

    /// Run without accessing the network (cargo).
    #[arg(long, help_heading = "Cargo")]
    pub offline: bool,

    /// Build the standard library from source with nightly `-Zbuild-std`, for
    /// targets rustup has no prebuilt std for (needs nightly with rust-src).
    #[arg(long, help_heading = "Cargo")]
    pub build_std: bool,

    /// SBOM attached to every platform image as an OCI referrer (overrides
    /// the `sbom` key) [default: spdx].
    #[arg(long, value_name = "FORMAT", help_heading = "Supply chain")]
    pub sbom: Option<crate::plan::SbomFormat>,

    /// Also write every SBOM into DIR (`<image>-<os>-<arch>.<format>.json`).
    #[arg(long, value_name = "DIR", help_heading = "Supply chain")]
    pub sbom_dir: Option<PathBuf>,

    /// SLSA provenance attached to every platform image (overrides the
    /// `provenance` key) [default: slsa].
    #[arg(long, value_name = "FORMAT", help_heading = "Supply chain")]
    pub provenance: Option<crate::plan::ProvenanceFormat>,

    /// Sign every index and platform manifest (cosign's key-based scheme)
    /// and the provenance with this key: ECDSA P-256, PEM PKCS#8 or cosign's
    /// encrypted format (password from COSIGN_PASSWORD).
    #[arg(
        long,
        env = "KRUST_SIGN_KEY",
        value_name = "FILE",
        help_heading = "Supply chain"
    )]
    pub sign_key: Option<PathBuf>,

    /// Directory for all generated artifacts.
    #[arg(long, value_name = "DIR", help_heading = "Cargo")]
    pub target_dir: Option<PathBuf>,

    /// Number of parallel jobs for builds and pushes.
    #[arg(
        short = 'j',
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u16).range(1..),
        help_heading = "Cargo"
    )]
    pub jobs: Option<u16>,

    /// Use verbose output (-vv for more).
    #[arg(short = 'v', long, action = clap::ArgAction::Count, conflicts_with = "quiet", help_heading = "Output")]
    pub verbose: u8,

    /// Print nothing on stderr but errors (and rustc's warnings, as `cargo build -q`).
    #[arg(short = 'q', long, help_heading = "Output")]
    pub quiet: bool,

    /// Coloring of stderr.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN", help_heading = "Output")]
    pub color: ColorChoice,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

impl From<ColorChoice> for progress::Color {
    fn from(choice: ColorChoice) -> progress::Color {
        match choice {
            ColorChoice::Auto => progress::Color::Auto,
            ColorChoice::Always => progress::Color::Always,
            ColorChoice::Never => progress::Color::Never,
        }
    }
}

impl BuildOptions {
    /// The options as the planner takes them.
    pub fn plan_options(&self) -> plan::Options {
        plan::Options {
            manifest_path: self.manifest_path.clone(),
            packages: self.packages.clone(),
            workspace: self.workspace,
            exclude: self.exclude.clone(),
            bins: self.bins.clone(),
            repo: self.repo.clone(),
            image: self.image.clone(),
            tags: self.tags.clone(),
            platforms: self.platforms.clone(),
            base_image: self.base_image.clone(),
            image_labels: self.image_label.clone(),
            image_annotations: self.image_annotation.clone(),
            image_user: self.image_user.clone(),
            tag_only: self.tag_only,
            no_push: self.no_push,
            oci_layout_path: self.oci_layout_path.clone(),
            oci_archive: self.oci_archive.clone(),
            tarball: self.tarball.clone(),
            local: self.local,
            insecure_registry: self.insecure_registry.clone(),
            registry_timeout: self.registry_timeout,
            profile: self.profile.clone(),
            features: self.features.clone(),
            all_features: self.all_features,
            no_default_features: self.no_default_features,
            locked: self.locked,
            frozen: self.frozen,
            offline: self.offline,
            build_std: self.build_std,
            sbom: self.sbom,
            sbom_dir: self.sbom_dir.clone(),
            provenance: self.provenance,
            sign_key: self.sign_key.clone(),
            target_dir: self.target_dir.clone(),
            jobs: self.jobs,
            quiet: self.quiet,
            verbose: self.verbose,
            color: self.color.into(),
        }
    }
}

/// Drops the `krust` word cargo inserts: `cargo krust build` runs
/// `cargo-krust krust build`.
pub fn normalize_args(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut args: Vec<OsString> = args.into_iter().collect();
    if args.get(1).is_some_and(|arg| arg == "krust") {
        args.remove(1);
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn cargo_subcommand_word_is_dropped() {
        let args = normalize_args(["cargo-krust", "krust", "build"].map(OsString::from));
        assert_eq!(args, ["cargo-krust", "build"].map(OsString::from));
        let args = normalize_args(["cargo-krust", "build"].map(OsString::from));
        assert_eq!(args, ["cargo-krust", "build"].map(OsString::from));
    }

    #[test]
    fn tags_and_platforms_split_on_commas() {
        let cli = Cli::try_parse_from([
            "cargo-krust",
            "build",
            "-t",
            "a,b",
            "--platform",
            "linux/amd64,linux/arm64",
            "--",
            "--verbose",
        ])
        .unwrap();
        let Command::Build(args) = cli.command else {
            panic!("not build")
        };
        assert_eq!(args.options.tags, ["a", "b"]);
        assert_eq!(args.options.platforms, ["linux/amd64", "linux/arm64"]);
        assert_eq!(args.cargo_args, ["--verbose"]);
    }
}
