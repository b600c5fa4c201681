//! Reporting on stderr: cargo-style status lines, verbose detail and warnings,
//! coloured when stderr is a terminal (or `--color always`), silent but for
//! errors with `--quiet`; byte transfers as one indicatif bar each on a
//! terminal and as one plain line each otherwise. Nothing in cargo-krust
//! writes to stderr except through here (and cargo's own output, which is
//! passed through).

use std::sync::OnceLock;

use console::style;
use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::ColorChoice;

#[derive(Debug, Clone)]
struct Reporter {
    quiet: bool,
    verbose: u8,
    /// Where transfer bars are drawn; `None` when stderr is not a terminal
    /// (or `--quiet`), and transfers are plain lines.
    bars: Option<MultiProgress>,
}

static REPORTER: OnceLock<Reporter> = OnceLock::new();

fn reporter() -> &'static Reporter {
    REPORTER.get_or_init(|| Reporter {
        quiet: false,
        verbose: 0,
        bars: None,
    })
}

/// Sets verbosity and colour once, at start-up.
pub fn init(quiet: bool, verbose: u8, color: ColorChoice) {
    match color {
        ColorChoice::Always => console::set_colors_enabled_stderr(true),
        ColorChoice::Never => console::set_colors_enabled_stderr(false),
        ColorChoice::Auto => {}
    }
    let bars = (!quiet && console::Term::stderr().is_term())
        .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
    let _ = REPORTER.set(Reporter {
        quiet,
        verbose,
        bars,
    });
}

/// Prints a line above any bars, so they are redrawn below it intact.
fn print_line(line: String) {
    match &reporter().bars {
        Some(bars) => bars.suspend(|| eprintln!("{line}")),
        None => eprintln!("{line}"),
    }
}

/// A byte transfer being shown: a bar on a terminal (removed when the
/// transfer is dropped), nothing more after its one line otherwise.
pub struct Transfer {
    bar: Option<ProgressBar>,
}

/// Starts showing a transfer of `total` bytes: `verb` as in [`status`],
/// `what` names the blob and where it goes.
pub fn transfer(verb: &str, what: &str, total: u64) -> Transfer {
    let reporter = reporter();
    if reporter.quiet {
        return Transfer { bar: None };
    }
    match &reporter.bars {
        Some(bars) => {
            let bar = bars.add(ProgressBar::new(total));
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:>12.green.bold} {msg} [{bar:25}] {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(verb.to_string());
            bar.set_message(what.to_string());
            Transfer { bar: Some(bar) }
        }
        None => {
            status(verb, format!("{what} ({})", HumanBytes(total)));
            Transfer { bar: None }
        }
    }
}

impl Transfer {
    /// Bytes done so far (set again when a retry starts over).
    pub fn set_position(&self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(bytes);
        }
    }

    /// More bytes done.
    pub fn advance(&self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
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
    print_line(format!(
        "{} {}",
        style(format!("{verb:>12}")).green().bold(),
        message.as_ref()
    ));
}

/// Detail shown with `-v`.
pub fn verbose(message: impl AsRef<str>) {
    if is_verbose(1) {
        print_line(format!(
            "{} {}",
            style(format!("{:>12}", "Detail")).cyan(),
            message.as_ref()
        ));
    }
}

/// Finer detail shown with `-vv` (each registry request, for instance).
pub fn trace(message: impl AsRef<str>) {
    if is_verbose(2) {
        print_line(format!(
            "{} {}",
            style(format!("{:>12}", "Trace")).dim(),
            message.as_ref()
        ));
    }
}

/// A warning, shown unless `--quiet`.
pub fn warn(message: impl AsRef<str>) {
    if reporter().quiet {
        return;
    }
    print_line(format!(
        "{} {}",
        style("warning:").yellow().bold(),
        message.as_ref()
    ));
}

/// The one error line printed before a non-zero exit.
pub fn error(message: impl AsRef<str>) {
    print_line(format!(
        "{} {}",
        style("error:").red().bold(),
        message.as_ref()
    ));
}
