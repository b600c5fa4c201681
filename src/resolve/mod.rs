//! `resolve`, `apply` and `create` (SPEC §8): Kubernetes YAML in, the same
//! YAML out with every `krust://PATH[#bin]` string scalar replaced by the
//! `REPO/NAME@sha256:…` of its image, and not one other byte changed.
//!
//! [`input`] reads the files, [`scan`] finds the scalars and their exact
//! bytes, [`reference`](mod@reference) turns each into a package request; every distinct
//! one becomes a job of ONE plan run through the ordinary pipeline (shared
//! base pulls, one cargo build per workspace and triple); [`rewrite`] splices
//! the digests in. [`kubectl`] pipes the result for `apply`/`create`.

pub mod documents;
pub mod input;
pub mod kubectl;
pub mod reference;
pub mod rewrite;
pub mod scan;
pub mod selector;

use std::ops::Range;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::compile::BuildFailed;
use crate::pipeline;
use crate::plan::packages::PackagePlanner;
use crate::plan::{Options, Plan};
use crate::progress;
use reference::KrustRef;
use scan::Found;
use selector::Selector;

/// The outcome of a resolve.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Every input file, references replaced, each followed by a `---` line.
    pub text: String,
    /// The distinct image references, in order of first appearance.
    pub references: Vec<String>,
}

/// Reads the inputs, builds every distinct reference once, and rewrites the
/// text. With a `selector`, only the documents whose labels it matches are
/// kept, and only their references built. Nothing is returned unless every
/// image was built and published.
pub fn resolve(
    files: &[PathBuf],
    recursive: bool,
    selector: Option<&str>,
    options: &Options,
) -> Result<Resolved> {
    reject_selection(options)?;
    let selector = selector.map(Selector::parse).transpose()?;
    let sources = input::read_sources(files, recursive, std::io::stdin().lock())?;
    let kept: Vec<Vec<Kept>> = sources
        .iter()
        .map(|source| {
            kept_documents(&source.text, selector.as_ref()).with_context(|| source.name.clone())
        })
        .collect::<Result<_>>()?;

    let mut planner = PackagePlanner::new(options);
    // The first reference that asked for each job, to name it in errors.
    let mut origins: Vec<String> = Vec::new();
    let mut hits: Vec<Vec<(Found, usize)>> = Vec::new();
    for (source, kept) in sources.iter().zip(&kept) {
        let in_kept = |at: usize| kept.iter().any(|k| k.range.contains(&at));
        let found = scan::find_where(&source.text, reference::SCHEME, in_kept)
            .with_context(|| source.name.clone())?;
        let mut file_hits = Vec::new();
        for found in found {
            let origin = format!(
                "{} ({}:{}:{})",
                found.value, source.name, found.line, found.column
            );
            let job = KrustRef::parse(&found.value)
                .and_then(|krust| planner.add(&krust.request(&source.dir)))
                .with_context(|| origin.clone())?;
            if job == origins.len() {
                origins.push(origin);
            }
            file_hits.push((found, job));
        }
        hits.push(file_hits);
    }

    let references: Vec<String> = if origins.is_empty() {
        Vec::new()
    } else {
        let plan = planner.finish(&[])?;
        let indexes =
            pipeline::run_blocking(&plan).map_err(|err| name_failed(err, &plan, &origins))?;
        indexes
            .iter()
            .map(|index| index.printed_reference(options.prints_tags()))
            .collect()
    };
    for (origin, reference) in origins.iter().zip(&references) {
        progress::verbose(format!("{origin} → {reference}"));
    }

    let mut text = String::new();
    for ((source, file_hits), kept) in sources.iter().zip(&hits).zip(&kept) {
        if !kept.is_empty() {
            let file_text = join_kept(&source.text, kept, file_hits, &references);
            rewrite::push_file(&mut text, &file_text);
        }
    }
    progress::status(
        "Resolved",
        format!(
            "{} reference(s) to {} image(s) in {} file(s)",
            hits.iter().map(Vec::len).sum::<usize>(),
            references.len(),
            sources.len()
        ),
    );
    Ok(Resolved { text, references })
}

/// A document (or the whole text) to print.
struct Kept {
    /// Its bytes in the input text.
    range: Range<usize>,
    /// Whether it opens with its own `---` marker.
    explicit_start: bool,
}

/// The whole text without a selector; else the documents it selects
/// (never an empty one).
fn kept_documents(text: &str, selector: Option<&Selector>) -> Result<Vec<Kept>> {
    let Some(selector) = selector else {
        return Ok(vec![Kept {
            range: 0..text.len(),
            explicit_start: false,
        }]);
    };
    Ok(documents::split(text)?
        .into_iter()
        .filter(|document| !document.empty && selector.matches(&document.labels))
        .map(|document| Kept {
            range: document.range,
            explicit_start: document.explicit_start,
        })
        .collect())
}

/// The kept documents of one file, each with its references replaced, a
/// `---` line put before one that follows another without a marker of its
/// own (so that two documents never run together).
fn join_kept(text: &str, kept: &[Kept], hits: &[(Found, usize)], references: &[String]) -> String {
    let mut out = String::with_capacity(text.len());
    for (n, document) in kept.iter().enumerate() {
        if n > 0 && !document.explicit_start {
            out.push_str("---");
            out.push_str(rewrite::newline_of(text));
        }
        let start = document.range.start;
        let replacements: Vec<_> = hits
            .iter()
            .filter(|(found, _)| document.range.contains(&found.range.start))
            .map(|(found, job)| {
                (
                    found.range.start - start..found.range.end - start,
                    references[*job].as_str(),
                )
            })
            .collect();
        out.push_str(&rewrite::splice(
            &text[document.range.clone()],
            &replacements,
        ));
    }
    out
}

/// `build`'s package selection has no meaning here: the references select.
fn reject_selection(options: &Options) -> Result<()> {
    let given = [
        ("--manifest-path", options.manifest_path.is_some()),
        ("--package", !options.packages.is_empty()),
        ("--workspace", options.workspace),
        ("--exclude", !options.exclude.is_empty()),
        ("--bin", !options.bins.is_empty()),
        ("--image", options.image.is_some()),
    ];
    if let Some((flag, _)) = given.iter().find(|(_, on)| *on) {
        bail!(
            "{flag} does not apply to resolve, apply or create: the krust://PATH[#BIN] references in the YAML say what to build"
        );
    }
    Ok(())
}

/// Names the references whose bins a failed cargo build did not produce.
fn name_failed(err: anyhow::Error, plan: &Plan, origins: &[String]) -> anyhow::Error {
    let Some(failed) = err.chain().find_map(|e| e.downcast_ref::<BuildFailed>()) else {
        return err;
    };
    let named: Vec<&str> = plan
        .images
        .iter()
        .zip(origins)
        .filter(|(job, _)| failed.not_built.contains(&pipeline::unit(job)))
        .map(|(_, origin)| origin.as_str())
        .collect();
    if named.is_empty() {
        return err;
    }
    err.context(format!("cannot build {}", named.join(", ")))
}
