//! The `cargo-krust` executable: parses arguments, runs the pipeline, and is
//! the only place that writes to stdout (the image references).

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser};

use cargo_krust::cli::{BuildArgs, Cli, Command, normalize_args};
use cargo_krust::{pipeline, plan, progress};

fn main() -> ExitCode {
    let cli = Cli::parse_from(normalize_args(std::env::args_os()));
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            progress::error(format!("{err:#}"));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Build(args) => build(*args),
        Command::Version => {
            println!("cargo-krust {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Completions { shell } => {
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "cargo-krust", &mut std::io::stdout());
            Ok(())
        }
    }
}

fn build(args: BuildArgs) -> Result<()> {
    let options = &args.options;
    progress::init(options.quiet, options.verbose, options.color);
    let plan = plan::plan(args.directory.as_deref(), options, &args.cargo_args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let indexes = runtime.block_on(pipeline::run(&plan))?;
    let references: Vec<String> = indexes.iter().map(|i| i.reference()).collect();
    if let Some(path) = &options.image_refs {
        let mut text = references.join("\n");
        text.push('\n');
        std::fs::write(path, text)
            .with_context(|| format!("cannot write image references to {}", path.display()))?;
    }
    let mut stdout = std::io::stdout().lock();
    for reference in &references {
        writeln!(stdout, "{reference}").context("cannot write to stdout")?;
    }
    Ok(())
}
