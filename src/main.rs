//! The `cargo-krust` executable: parses arguments, runs the pipeline, and is
//! the only place that writes to stdout (the image references, or the
//! resolved YAML). `apply`/`create` hand that YAML to kubectl instead and
//! exit with its status.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser};
use clap_complete::Shell;

use cargo_krust::cli::{
    ApplyArgs, BuildArgs, BuildOptions, Cli, Command, DockerfileArgs, IndexCommand,
    IndexCreateArgs, LoginArgs, ResolveArgs, RunArgs, normalize_args,
};
use cargo_krust::fsutil::PendingFile;
use cargo_krust::registry::login;
use cargo_krust::resolve::{self, kubectl};
use cargo_krust::{pipeline, plan, progress, report};

fn main() -> ExitCode {
    // Started by cargo as the rustc wrapper that links dependency data in.
    if let Some(code) = cargo_krust::compile::audit_link::wrapper_main() {
        return code;
    }
    let cli = Cli::parse_from(normalize_args(std::env::args_os()));
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            progress::error(format!("{err:#}"));
            match err.downcast_ref::<pipeline::Interrupted>() {
                Some(interrupted) => ExitCode::from(interrupted.exit_code),
                None => ExitCode::FAILURE,
            }
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Build(args) => build(*args)?,
        Command::Resolve(args) => write_stdout(resolve_with(&args)?.text.as_bytes())?,
        Command::Apply(args) => return kubectl_with("apply", *args),
        Command::Create(args) => return kubectl_with("create", *args),
        Command::Dockerfile(args) => write_stdout(dockerfile(*args)?.as_bytes())?,
        Command::Run(args) => return run_in_podman(*args),
        Command::Login(args) => log_in(args)?,
        Command::Logout(args) => {
            progress::init(false, 0, progress::Color::Auto);
            login::logout(&args.registry, args.timeout.timeouts())?
        }
        Command::Index(IndexCommand::Create(args)) => {
            write_stdout(lines(&[create_index(args)?]).as_bytes())?
        }
        Command::Version => {
            write_stdout(format!("cargo-krust {}\n", env!("CARGO_PKG_VERSION")).as_bytes())?
        }
        Command::Completions { shell } => write_stdout(&completion_script(shell))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes to stdout: a closed pipe or a full disk is an error, not a panic.
fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .context("cannot write to stdout")
}

/// The completion script for `shell`, for the command `cargo-krust` (which
/// cargo's own completion hands `cargo krust …` to).
fn completion_script(shell: Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "cargo-krust", &mut script);
    if shell != Shell::Bash {
        return script;
    }
    // clap_complete's bash script names a subcommand's state
    // `cargo__subcmd__krust__subcmd__build` where it is matched but
    // `cargo__krust__subcmd__build` where it is set, so nothing after the
    // subcommand completes for a bin name with a hyphen
    // (clap-rs/clap#6421, in clap_complete 4.6.12 still).
    String::from_utf8_lossy(&script)
        .replace("cargo__subcmd__krust__subcmd__", "cargo__krust__subcmd__")
        .into_bytes()
}

fn build(args: BuildArgs) -> Result<()> {
    let options = args.options.plan_options();
    progress::init(options.quiet, options.verbose, options.color);
    let refs_file = image_refs_file(args.options.image_refs.as_deref())?;
    let report_file = report_file(args.report.as_deref())?;
    let recorder = report::Recorder::new(report_file.is_some());
    let plan = plan::plan(args.directory.as_deref(), &options, &args.cargo_args)?;
    let indexes = pipeline::run_blocking_recorded(&plan, &recorder)?;
    let references: Vec<String> = indexes
        .iter()
        .map(|i| i.printed_reference(options.prints_tags()))
        .collect();
    write_image_refs(refs_file, &references)?;
    if let Some(file) = report_file {
        let document = report::document(&indexes, &references, &recorder);
        let mut text = serde_json::to_vec_pretty(&document).context("cannot write the report")?;
        text.push(b'\n');
        file.commit(&text)
            .context("cannot write the build report (--report)")?;
    }
    write_stdout(lines(&references).as_bytes())
}

/// `dockerfile`: the build's plan and bases, nothing compiled or pushed.
fn dockerfile(DockerfileArgs { build: args }: DockerfileArgs) -> Result<String> {
    refuse_outputs(
        &args.options,
        !args.cargo_args.is_empty(),
        "`dockerfile`, which builds nothing and only prints the Dockerfile",
    )?;
    let mut options = args.options.plan_options();
    options.no_push = true;
    progress::init(options.quiet, options.verbose, options.color);
    let plan = plan::plan(args.directory.as_deref(), &options, &args.cargo_args)?;
    let bases = pipeline::block_on_interruptible(pipeline::resolve_bases(&plan))?;
    cargo_krust::dockerfile::render(&plan, &bases)
}

/// The output options of `build` that do nothing for `command` (and
/// `-- CARGO_ARGS` when given): refused, never silently ignored.
fn refuse_outputs(options: &BuildOptions, cargo_args: bool, command: &str) -> Result<()> {
    let outputs = [
        ("--no-push", options.no_push),
        ("--local", options.local),
        ("--oci-layout-path", options.oci_layout_path.is_some()),
        ("--oci-archive", options.oci_archive.is_some()),
        ("--tarball", options.tarball.is_some()),
        ("--image-refs", options.image_refs.is_some()),
        ("--sbom-dir", options.sbom_dir.is_some()),
        ("--tag-only", options.tag_only),
        ("--sign-key (or KRUST_SIGN_KEY)", options.sign_key.is_some()),
        ("-- CARGO_ARGS", cargo_args),
    ];
    match outputs.iter().find(|(_, given)| *given) {
        Some((flag, _)) => anyhow::bail!(
            "{flag} does nothing for {command}; leave it out (or run `cargo krust build`)"
        ),
        None => Ok(()),
    }
}

/// `run`: one image for the host's platform, loaded into podman and run
/// there; the exit status is the program's.
fn run_in_podman(args: RunArgs) -> Result<ExitCode> {
    refuse_outputs(
        &args.options,
        false,
        "`run`, which only loads the image into podman and runs it",
    )?;
    let mut options = args.options.plan_options();
    options.platforms = vec![cargo_krust::run::host_platform(&options.platforms)?];
    options.local = true;
    progress::init(options.quiet, options.verbose, options.color);
    cargo_krust::run::check_podman()?;
    let plan = plan::plan(args.directory.as_deref(), &options, &[])?;
    if plan.images.len() != 1 {
        anyhow::bail!(
            "`run` runs one bin, but {} are selected; pick one with --bin NAME (or -p PACKAGE)",
            plan.images.len()
        );
    }
    let indexes = pipeline::run_blocking(&plan)?;
    let [index] = indexes.as_slice() else {
        anyhow::bail!("`run` built {} images, expected one", indexes.len());
    };
    cargo_krust::run::podman_run(
        &index.printed_reference(false),
        &args.podman_arg,
        &args.args,
    )
}

/// `index create`: one index from images already pushed.
fn create_index(args: IndexCreateArgs) -> Result<String> {
    progress::init(args.quiet, args.verbose, progress::Color::Auto);
    pipeline::block_on_interruptible(cargo_krust::index::create(&cargo_krust::index::Request {
        target: args.target,
        tags: args.tag,
        sources: args.sources,
        insecure: args.insecure_registry,
        timeouts: args.timeout.timeouts(),
    }))
}

/// `login`: the password from stdin only, never from the command line.
fn log_in(args: LoginArgs) -> Result<()> {
    progress::init(false, args.verbose, progress::Color::Auto);
    if args.password.is_some() {
        anyhow::bail!(
            "-p/--password is refused: a password on the command line shows in `ps` and the shell history; pipe it to --password-stdin instead"
        );
    }
    if !args.password_stdin {
        anyhow::bail!(
            "no password: pipe it to --password-stdin, e.g. `cat password.txt | cargo krust login {} -u {} --password-stdin`",
            cargo_krust::registry::printable(&args.registry),
            cargo_krust::registry::printable(&args.username)
        );
    }
    let password = login::password_from(std::io::stdin().lock())?;
    login::login(&login::Login {
        registry: args.registry,
        username: args.username,
        password,
        insecure: args.insecure_registry,
        timeouts: args.timeout.timeouts(),
    })
}

/// Runs a resolve with logging set up, and writes `--image-refs`.
fn resolve_with(args: &ResolveArgs) -> Result<resolve::Resolved> {
    let options = args.options.plan_options();
    progress::init(options.quiet, options.verbose, options.color);
    let refs_file = image_refs_file(args.options.image_refs.as_deref())?;
    let resolved = resolve::resolve(
        &args.files,
        args.recursive,
        args.selector.as_deref(),
        &options,
    )?;
    write_image_refs(refs_file, &resolved.references)?;
    Ok(resolved)
}

/// `apply`/`create`: kubectl runs only once everything is resolved.
fn kubectl_with(verb: &str, args: ApplyArgs) -> Result<ExitCode> {
    let resolved = resolve_with(&args.resolve)?;
    let code = kubectl::pipe(&args.kubectl, verb, &args.kubectl_args, &resolved.text)?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// `--image-refs FILE`, checked writable before anything is built or pushed.
fn image_refs_file(path: Option<&Path>) -> Result<Option<PendingFile>> {
    path.map(PendingFile::create)
        .transpose()
        .context("cannot write the image references (--image-refs)")
}

/// `--report FILE`, checked writable before anything is built or pushed.
fn report_file(path: Option<&Path>) -> Result<Option<PendingFile>> {
    if path == Some(Path::new("-")) {
        anyhow::bail!(
            "--report -: stdout holds the image references; name a file for the report, e.g. --report report.json"
        );
    }
    path.map(PendingFile::create)
        .transpose()
        .context("cannot write the build report (--report)")
}

/// The printed references, one a line, written whole (an existing FILE keeps
/// its content when the write fails).
fn write_image_refs(file: Option<PendingFile>, references: &[String]) -> Result<()> {
    match file {
        Some(file) => file
            .commit(lines(references).as_bytes())
            .context("cannot write the image references (--image-refs)"),
        None => Ok(()),
    }
}

/// The references one per line, as printed and as written to `--image-refs`.
fn lines(references: &[String]) -> String {
    references.iter().map(|r| format!("{r}\n")).collect()
}
