//! Reporting on stderr: cargo-style status lines, verbose detail and warnings,
//! coloured when stderr is a terminal (or `--color always`), silent but for
//! errors with `--quiet`. Nothing in cargo-krust writes to stderr except
//! through here (and cargo's own output, which is passed through).

use std::sync::OnceLock;

use console::style;

use crate::cli::ColorChoice;

#[derive(Debug, Clone, Copy)]
struct Reporter {
    quiet: bool,
    verbose: u8,
}

static REPORTER: OnceLock<Reporter> = OnceLock::new();

fn reporter() -> Reporter {
    *REPORTER.get_or_init(|| Reporter {
        quiet: false,
        verbose: 0,
    })
}

/// Sets verbosity and colour once, at start-up.
pub fn init(quiet: bool, verbose: u8, color: ColorChoice) {
    match color {
        ColorChoice::Always => console::set_colors_enabled_stderr(true),
        ColorChoice::Never => console::set_colors_enabled_stderr(false),
        ColorChoice::Auto => {}
    }
    let _ = REPORTER.set(Reporter { quiet, verbose });
}

/// Whether `-v` was given (at least `level` times).
pub fn is_verbose(level: u8) -> bool {
    reporter().verbose >= level
}

/// A cargo-style status line: a right-aligned green verb and a message.
pub fn status(verb: &str, message: impl AsRef<str>) {
    if reporter().quiet {
        return;
    }
    eprintln!(
        "{} {}",
        style(format!("{verb:>12}")).green().bold(),
        message.as_ref()
    );
}

/// Detail shown with `-v`.
pub fn verbose(message: impl AsRef<str>) {
    if is_verbose(1) {
        eprintln!(
            "{} {}",
            style(format!("{:>12}", "Detail")).cyan(),
            message.as_ref()
        );
    }
}

/// A warning, shown unless `--quiet`.
pub fn warn(message: impl AsRef<str>) {
    if reporter().quiet {
        return;
    }
    eprintln!("{} {}", style("warning:").yellow().bold(), message.as_ref());
}

/// The one error line printed before a non-zero exit.
pub fn error(message: impl AsRef<str>) {
    eprintln!("{} {}", style("error:").red().bold(), message.as_ref());
}
