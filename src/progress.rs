//! Reporting on stderr: cargo-style status lines, verbose detail and warnings,
//! coloured when stderr is a terminal (or `--color always`), silent but for
//! errors with `--quiet`. Nothing in cargo-krust writes to stderr except
//! through here, cargo's output included ([`Builds`]).

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use console::style;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::ColorChoice;

#[derive(Debug, Clone, Copy)]
struct Reporter {
    quiet: bool,
    verbose: u8,
}

static REPORTER: OnceLock<Reporter> = OnceLock::new();

/// The live build lines being drawn, if any: every other line printed while
/// they are on screen goes through them so that nothing tears.
static LIVE: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// Writes one line to stderr, above the live lines when there are some.
fn print_line(line: String) {
    let live = LIVE.lock().ok().and_then(|live| live.clone());
    match live {
        Some(multi) => multi.suspend(|| eprintln!("{line}")),
        None => eprintln!("{line}"),
    }
}

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

/// Cargo runs that go on at the same time, one line per platform.
///
/// On a terminal each platform gets a live line showing cargo's latest
/// status (`Compiling zstd-sys …`); everything else cargo prints (warnings,
/// errors) is held and printed as one block when that platform's build ends.
/// Elsewhere (CI logs, tests) cargo's lines pass straight through, prefixed
/// with the platform when several builds run at once.
pub struct Builds {
    multi: MultiProgress,
    concurrent: bool,
}

/// One platform's build in [`Builds`].
pub struct BuildLine<'a> {
    builds: &'a Builds,
    label: String,
    bar: ProgressBar,
    held: Mutex<Vec<String>>,
    started: Instant,
}

impl Builds {
    /// `count` builds about to run at the same time.
    pub fn new(count: usize) -> Builds {
        let target = if reporter().quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let multi = MultiProgress::with_draw_target(target);
        if !multi.is_hidden()
            && let Ok(mut live) = LIVE.lock()
        {
            *live = Some(multi.clone());
        }
        Builds {
            multi,
            concurrent: count > 1,
        }
    }

    /// Whether live lines are drawn (stderr is a terminal, not quiet).
    pub fn is_live(&self) -> bool {
        !self.multi.is_hidden()
    }

    /// Announces a build (`Building <what>`) and gives its line.
    pub fn start(&self, label: &str, what: &str) -> BuildLine<'_> {
        status("Building", what);
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix:.bold} {elapsed:>4} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(label.to_string());
        if self.is_live() {
            bar.enable_steady_tick(Duration::from_millis(120));
        }
        BuildLine {
            builds: self,
            label: label.to_string(),
            bar,
            held: Mutex::new(Vec::new()),
            started: Instant::now(),
        }
    }
}

impl Drop for Builds {
    fn drop(&mut self) {
        if let Ok(mut live) = LIVE.lock() {
            *live = None;
        }
    }
}

impl BuildLine<'_> {
    /// One line cargo wrote on stderr.
    pub fn cargo_line(&self, line: &str) {
        if !self.builds.is_live() {
            if self.builds.concurrent {
                print_line(format!(
                    "{} {line}",
                    style(format!("[{}]", self.label)).dim()
                ));
            } else {
                print_line(line.to_string());
            }
            return;
        }
        let plain = console::strip_ansi_codes(line);
        if is_cargo_status(&plain) {
            self.bar.set_message(plain.trim().to_string());
        } else if let Ok(mut held) = self.held.lock() {
            held.push(line.to_string());
        }
    }

    /// Ends the line: held output is printed, then `Built …` on success.
    pub fn finish(self, ok: bool) {
        self.bar.finish_and_clear();
        self.builds.multi.remove(&self.bar);
        let held = self.held.into_inner().unwrap_or_default();
        if !held.is_empty() {
            print_line(held.join("\n"));
        }
        if ok {
            status(
                "Built",
                format!(
                    "{} in {:.1}s",
                    self.label,
                    self.started.elapsed().as_secs_f64()
                ),
            );
        }
    }
}

/// A cargo status line: a right-aligned verb in 12 columns, then a space.
fn is_cargo_status(line: &str) -> bool {
    let Some((verb, rest)) = line.split_at_checked(12) else {
        return false;
    };
    let word = verb.trim_start();
    !word.is_empty()
        && word.len() < 12
        && word.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && word.chars().all(|c| c.is_ascii_alphabetic())
        && rest.starts_with(' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_status_lines() {
        for line in [
            "   Compiling zstd-sys v2.1.2+zstd.1.5.7",
            "    Finished `release` profile [optimized] target(s) in 1.2s",
            "    Blocking waiting for file lock on build directory",
            "  Downloaded cc v1.2.0",
        ] {
            assert!(is_cargo_status(line), "{line:?}");
        }
        for line in [
            "warning: unused variable: `x`",
            "error[E0425]: cannot find value `y` in this scope",
            "  --> src/main.rs:3:5",
            "   |",
            "",
            "Compiling",
        ] {
            assert!(!is_cargo_status(line), "{line:?}");
        }
    }
}
