//! Reporting on stderr: cargo-style status lines, verbose detail and warnings,
//! coloured when stderr is a terminal (or `--color always`), silent but for
//! errors with `--quiet`; byte transfers as one indicatif bar each and
//! concurrent cargo builds as one live line per platform on a terminal, and
//! as plain lines otherwise. Nothing in cargo-krust writes to stderr except
//! through here, cargo's output included ([`Builds`]).

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use console::style;
use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether stderr is coloured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Color {
    /// When stderr is a terminal.
    #[default]
    Auto,
    Always,
    Never,
}

impl Color {
    /// The word cargo's `--color` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Color::Auto => "auto",
            Color::Always => "always",
            Color::Never => "never",
        }
    }
}

#[derive(Debug, Clone)]
struct Reporter {
    quiet: bool,
    verbose: u8,
    /// Where transfer bars are drawn; `None` when stderr is not a terminal
    /// (or `--quiet`), and transfers are plain lines.
    bars: Option<MultiProgress>,
}

static REPORTER: OnceLock<Reporter> = OnceLock::new();

/// When reporting began (about when the process started): `-vv` lines say
/// how long after it they happened, to show where a run spends its time.
static STARTED: OnceLock<Instant> = OnceLock::new();

fn reporter() -> &'static Reporter {
    REPORTER.get_or_init(|| Reporter {
        quiet: false,
        verbose: 0,
        bars: None,
    })
}

/// Sets verbosity and colour once, at start-up.
pub fn init(quiet: bool, verbose: u8, color: Color) {
    STARTED.get_or_init(Instant::now);
    match color {
        Color::Always => console::set_colors_enabled_stderr(true),
        Color::Never => console::set_colors_enabled_stderr(false),
        Color::Auto => {}
    }
    // `console::style` follows stdout's setting, and all it styles here goes
    // to stderr: without this, `--color` would be decided by where stdout goes.
    console::set_colors_enabled(console::colors_enabled_stderr());
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
        Some(bars) => bars.suspend(|| write_stderr(&line)),
        None => write_stderr(&line),
    }
}

/// Writes one line on stderr. A stderr that cannot be written (closed, a
/// full disk) loses the line instead of panicking as `eprintln!` would:
/// the exit status still tells what happened.
fn write_stderr(line: &str) {
    use std::io::Write;
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{line}");
}

/// A byte transfer being shown: a bar on a terminal (removed when the
/// transfer is dropped), nothing more after its one line otherwise.
pub struct Transfer {
    bar: Option<ProgressBar>,
}

/// Starts showing a transfer of `total` bytes (`None`: not known yet, the
/// bytes are still being produced): `verb` as in [`status`], `what` names
/// the blob and where it goes.
pub fn transfer(verb: &str, what: &str, total: Option<u64>) -> Transfer {
    let reporter = reporter();
    if reporter.quiet {
        return Transfer { bar: None };
    }
    match &reporter.bars {
        Some(bars) => {
            let (bar, template) = match total {
                Some(total) => (
                    ProgressBar::new(total),
                    "{prefix:>12.green.bold} {msg} [{bar:25}] {bytes}/{total_bytes} {bytes_per_sec}",
                ),
                None => (
                    ProgressBar::no_length(),
                    "{prefix:>12.green.bold} {msg} {bytes} {bytes_per_sec}",
                ),
            };
            let bar = bars.add(bar);
            bar.set_style(
                ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_prefix(verb.to_string());
            bar.set_message(what.to_string());
            Transfer { bar: Some(bar) }
        }
        None => {
            match total {
                Some(total) => status(verb, format!("{what} ({})", HumanBytes(total))),
                None => status(verb, what),
            }
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

/// Finer detail shown with `-vv` (each registry request, for instance),
/// with the milliseconds since start-up.
pub fn trace(message: impl AsRef<str>) {
    if is_verbose(2) {
        let elapsed = STARTED.get_or_init(Instant::now).elapsed();
        print_line(format!(
            "{} {:>5} ms {}",
            style(format!("{:>12}", "Trace")).dim(),
            elapsed.as_millis(),
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
    multi: Option<MultiProgress>,
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
    /// `count` builds about to run at the same time. Their lines share the
    /// reporter's bars, so status lines and transfers never tear them.
    pub fn new(count: usize) -> Builds {
        Builds {
            multi: reporter().bars.clone(),
            concurrent: count > 1,
        }
    }

    /// Whether live lines are drawn (stderr is a terminal, not quiet).
    pub fn is_live(&self) -> bool {
        self.multi.is_some()
    }

    /// Announces a build (`Building <what>`) and gives its line.
    pub fn start(&self, label: &str, what: &str) -> BuildLine<'_> {
        status("Building", what);
        let bar = match &self.multi {
            Some(multi) => multi.add(ProgressBar::new_spinner()),
            None => ProgressBar::hidden(),
        };
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
        if let Some(multi) = &self.builds.multi {
            multi.remove(&self.bar);
        }
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
