//! The `cargo-krust` executable: parses arguments, runs the pipeline, and is
//! the only place that writes to stdout (the image references, or the
//! resolved YAML). `apply`/`create` hand that YAML to kubectl instead and
//! exit with its status.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser};

use cargo_krust::cli::{ApplyArgs, BuildArgs, Cli, Command, ResolveArgs, normalize_args};
use cargo_krust::resolve::{self, kubectl};
use cargo_krust::{fsutil, pipeline, plan, progress};

fn main() -> ExitCode {
    let cli = Cli::parse_from(normalize_args(std::env::args_os()));
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            progress::error(format!("{err:#}"));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Build(args) => build(*args)?,
        Command::Resolve(args) => {
            let resolved = resolve_with(&args)?;
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(resolved.text.as_bytes())
                .and_then(|()| stdout.flush())
                .context("cannot write to stdout")?;
        }
        Command::Apply(args) => return kubectl_with("apply", *args),
        Command::Create(args) => return kubectl_with("create", *args),
        Command::Version => {
            println!("cargo-krust {}", env!("CARGO_PKG_VERSION"));
        }
        Command::Completions { shell } => {
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "cargo-krust", &mut std::io::stdout());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn build(args: BuildArgs) -> Result<()> {
    let options = args.options.plan_options();
    progress::init(options.quiet, options.verbose, options.color);
    let plan = plan::plan(args.directory.as_deref(), &options, &args.cargo_args)?;
    let indexes = pipeline::run_blocking(&plan)?;
    let references: Vec<String> = indexes.iter().map(|i| i.reference()).collect();
    write_image_refs(args.options.image_refs.as_deref(), &references)?;
    let mut stdout = std::io::stdout().lock();
    for reference in &references {
        writeln!(stdout, "{reference}").context("cannot write to stdout")?;
    }
    Ok(())
}

/// Runs a resolve with logging set up, and writes `--image-refs`.
fn resolve_with(args: &ResolveArgs) -> Result<resolve::Resolved> {
    let options = args.options.plan_options();
    progress::init(options.quiet, options.verbose, options.color);
    let resolved = resolve::resolve(&args.files, args.recursive, &options)?;
    write_image_refs(args.options.image_refs.as_deref(), &resolved.references)?;
    Ok(resolved)
}

/// `apply`/`create`: kubectl runs only once everything is resolved.
fn kubectl_with(verb: &str, args: ApplyArgs) -> Result<ExitCode> {
    let resolved = resolve_with(&args.resolve)?;
    let code = kubectl::pipe(&args.kubectl, verb, &args.kubectl_args, &resolved.text)?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// `--image-refs FILE`: the printed references, one a line, written whole
/// (an existing FILE keeps its content when the write fails).
fn write_image_refs(path: Option<&Path>, references: &[String]) -> Result<()> {
    let Some(path) = path else {
        return Ok(());
    };
    let text: String = references.iter().map(|r| format!("{r}\n")).collect();
    fsutil::write_atomic(path, text.as_bytes()).context("cannot write --image-refs")
}
