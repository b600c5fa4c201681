//! Acceptance of `cargo krust resolve`, `apply` and `create` with the real
//! binary and the shared test registry:
//!
//! - golden files (tests/fixtures/resolve/golden): comments, anchors and an
//!   alias, tags, every quoting style, flow sequences and maps, several
//!   documents with `---` and `...`, CRLF line endings, a `.json` file without
//!   a final newline, the same reference many times, `#bin`, files skipped by
//!   extension and a subdirectory not read without `-R`. The output equals the
//!   golden file, differs from the inputs only in the replaced scalars (a
//!   line diff), and every image is in the registry and runs;
//! - stdin (`-f -`), paths relative to the current dir, platforms of the
//!   base (arm64 run under qemu); one package named three ways is one image;
//! - `apply`/`create` with a stand-in kubectl (PATH, `--kubectl`,
//!   `KRUST_KUBECTL`): arguments after `--`, stdin = the resolved YAML, its
//!   exit code, and never started when a build fails;
//! - `-l/--selector` (resolve, apply, create): only the documents whose
//!   `metadata.labels` match are printed, byte for byte, and only their
//!   references built (another document's names a package that does not
//!   exist, another a block scalar); every form of kubectl's syntax; a bad
//!   selector is refused before any file is read;
//! - bad input: missing path, not a package, library only, unknown or
//!   ambiguous bin, invalid YAML, unreadable or non-UTF-8 files, a block
//!   scalar, a selection flag — each one clear error and an empty stdout.
//!
//! The example packages (examples/hello-krust, fixtures greeter and broken)
//! compile once into the shared target dir; everything is linux/amd64 except
//! the one multi-platform check.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cargo_krust::resolve::scan;
use support::image::{self, PushedRef, run_platform};
use support::krust::{Krust, KrustRun, hello_krust, krust};
use support::{cargo_new_lib, repo_root, shared, unique_name};

fn fixtures() -> PathBuf {
    repo_root().join("tests").join("fixtures").join("resolve")
}

/// `cargo-krust COMMAND` for linux/amd64 onto the shared multi-platform
/// base, pushing into `repo`.
fn pushing(command: &str, repo: &str) -> Krust {
    krust([command, "--platform", "linux/amd64"])
        .env("KRUST_REPO", repo)
        .env("KRUST_BASE_IMAGE", &shared().bases.multi_ref)
}

/// `cargo-krust COMMAND` that needs no registry: scratch base, no push.
fn offline(command: &str) -> Krust {
    krust([
        command,
        "--no-push",
        "--base-image",
        "scratch",
        "--platform",
        "linux/amd64",
    ])
}

/// A fresh repository prefix in the shared registry.
fn fresh_repo(prefix: &str) -> String {
    format!("{}/{}", shared().registry.host(), unique_name(prefix))
}

/// What each fixture image prints when run without arguments.
fn greeting(name: &str) -> &'static str {
    match name {
        "hello-krust" => "Hello from krust!\narch: x86_64\nargs: \n",
        "hi" => "hi from greeter\n",
        "bye" => "bye from greeter\n",
        other => panic!("no greeting known for {other}"),
    }
}

/// The image name a fixture reference builds: its bin, or the last path
/// component for single-bin packages.
fn image_name_of(token: &str) -> Option<&'static str> {
    if token.ends_with("examples/hello-krust") {
        Some("hello-krust")
    } else if token.ends_with("greeter#hi") {
        Some("hi")
    } else if token.ends_with("greeter#bye") {
        Some("bye")
    } else {
        None
    }
}

/// The `krust://…` tokens of a line: byte offset and text.
fn tokens(line: &str) -> Vec<(usize, &str)> {
    line.match_indices("krust://")
        .map(|(at, _)| {
            let len = line[at..]
                .find(|c: char| "\"' ,]}\r\n".contains(c))
                .unwrap_or(line.len() - at);
            (at, &line[at..at + len])
        })
        .collect()
}

/// `line` with every fixture reference replaced by its image reference
/// (other tokens, like prose that mentions krust://, stay as they are).
fn substitute(line: &str, refs: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut copied = 0;
    for (at, token) in tokens(line) {
        if let Some(name) = image_name_of(token) {
            out.push_str(&line[copied..at]);
            out.push_str(&refs[name]);
            copied = at + token.len();
        }
    }
    out.push_str(&line[copied..]);
    out
}

/// The lines of `text`, each keeping its `\r` (split on `\n` only).
fn lines(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = text.split('\n').collect();
    if text.ends_with('\n') {
        lines.pop();
    }
    lines
}

/// The golden inputs, read independently of the tool: the files of `dir`
/// with a YAML or JSON extension, in name order.
fn golden_inputs(dir: &Path) -> Vec<String> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read golden inputs")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml" | "json")
                )
        })
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("read golden input"))
        .collect()
}

#[test]
fn golden_files_change_only_the_references_and_every_image_runs() {
    let repo = fresh_repo("golden");
    let inputs = fixtures().join("golden").join("in");
    let refs_file = tempfile::NamedTempFile::new().expect("temp file");
    let run = pushing("resolve", &repo)
        .arg("-f")
        .arg(&inputs)
        .arg("--image-refs")
        .arg(refs_file.path())
        .run();
    run.expect_success();

    // --image-refs lists the distinct images, in order of first appearance.
    let refs: Vec<PushedRef> = std::fs::read_to_string(refs_file.path())
        .expect("read --image-refs file")
        .lines()
        .map(|l| PushedRef::parse(l).expect("a reference"))
        .collect();
    let by_name: BTreeMap<String, String> = refs
        .iter()
        .map(|r| {
            (
                r.repo.rsplit('/').next().unwrap().to_string(),
                r.full.clone(),
            )
        })
        .collect();
    let names: Vec<&str> = refs
        .iter()
        .map(|r| r.repo.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(names, ["hello-krust", "hi", "bye"], "{}", run.describe());

    // The golden output, placeholders filled with this run's references.
    let mut expected = std::fs::read_to_string(fixtures().join("golden").join("expected.yaml"))
        .expect("read expected.yaml");
    for (name, reference) in &by_name {
        expected = expected.replace(&format!("{{{{{name}}}}}"), reference);
    }
    assert_eq!(run.stdout, expected, "{}", run.describe());

    // A line diff against the inputs: every file's lines then its `---`
    // line; only lines holding a reference differ, and only by it.
    let mut wanted: Vec<String> = Vec::new();
    let mut references = 0;
    for text in golden_inputs(&inputs) {
        for line in lines(&text) {
            references += tokens(line)
                .iter()
                .filter(|(_, token)| image_name_of(token).is_some())
                .count();
            wanted.push(substitute(line, &by_name));
        }
        wanted.push(
            if text.contains("\r\n") {
                "---\r"
            } else {
                "---"
            }
            .to_string(),
        );
    }
    let got = lines(&run.stdout);
    assert_eq!(got.len(), wanted.len(), "line count\n{}", run.describe());
    for (number, (got, wanted)) in got.iter().zip(&wanted).enumerate() {
        assert_eq!(got, wanted, "output line {}", number + 1);
    }
    assert_eq!(references, 10, "the fixtures hold ten references");

    // The output is YAML whose replaced scalars are exactly the references,
    // and no krust:// scalar is left.
    let resolved = scan::find(&run.stdout, &repo).expect("the output parses as YAML");
    assert_eq!(resolved.len(), references);
    for scalar in &resolved {
        assert!(
            by_name.values().any(|r| r == &scalar.value),
            "{} is not one of the built references",
            scalar.value
        );
    }
    assert!(scan::find(&run.stdout, "krust://").unwrap().is_empty());

    // Every image is in the registry, for linux/amd64 only, and runs.
    for reference in &refs {
        let name = reference.repo.rsplit('/').next().unwrap();
        let pushed = image::fetch_index(&shared().registry, reference);
        assert_eq!(pushed.platforms(), ["linux/amd64"], "{}", reference.full);
        let amd64 = pushed.image("amd64");
        assert_eq!(
            run_platform(reference, amd64, &[]),
            greeting(name),
            "{name}"
        );
        // resolve attaches what build attaches: the SBOM and the provenance,
        // listed under the platform manifest's fallback tag.
        let listed: serde_json::Value = serde_json::from_slice(&image::inspect_raw(&format!(
            "{}/{}:{}",
            reference.host,
            reference.repo,
            amd64.manifest_digest.replacen(':', "-", 1)
        )))
        .expect("the fallback tag holds JSON");
        let mut types: Vec<&str> = listed["manifests"]
            .as_array()
            .expect("a referrers list")
            .iter()
            .filter_map(|entry| entry["artifactType"].as_str())
            .collect();
        types.sort_unstable();
        assert_eq!(
            types,
            [
                "application/spdx+json",
                "application/vnd.dsse.envelope.v1+json"
            ],
            "{name}: {listed}"
        );
    }
}

#[test]
fn stdin_is_relative_to_the_current_dir_and_platforms_come_from_the_base() {
    let repo = fresh_repo("stdin");
    let run = krust(["resolve", "-f", "-"])
        .env("KRUST_REPO", &repo)
        .env("KRUST_BASE_IMAGE", &shared().bases.multi_ref)
        .current_dir(&repo_root())
        .stdin("# from stdin\nimage: krust://examples/hello-krust # ok\n")
        .run();
    run.expect_success();
    let got = lines(&run.stdout);
    assert_eq!(got.len(), 3, "{}", run.describe());
    assert_eq!(got[0], "# from stdin");
    assert_eq!(got[2], "---");
    let reference = got[1]
        .strip_prefix("image: ")
        .and_then(|rest| rest.strip_suffix(" # ok"))
        .unwrap_or_else(|| panic!("unexpected line {:?}", got[1]));
    let reference = PushedRef::parse(reference).expect("a reference");
    assert_eq!(
        reference.repo,
        format!("{}/hello-krust", repo.split_once('/').unwrap().1)
    );

    let pushed = image::fetch_index(&shared().registry, &reference);
    assert_eq!(pushed.platforms(), ["linux/amd64", "linux/arm64/v8"]);
    assert_eq!(
        run_platform(&reference, pushed.image("arm64"), &["x"]),
        "Hello from krust!\narch: aarch64\nargs: x\n"
    );
}

/// An offline `resolve -f YAML EXTRA…` that must succeed having built one
/// image, hello-krust: the run and that image's reference (from
/// `--image-refs`, written in `dir`).
fn resolve_to_hello(dir: &Path, yaml: &Path, extra: &[&str]) -> (KrustRun, String) {
    let refs_file = dir.join("refs");
    let run = offline("resolve")
        .arg("-f")
        .arg(yaml)
        .args(extra)
        .arg("--image-refs")
        .arg(&refs_file)
        .run();
    run.expect_success();
    let refs = std::fs::read_to_string(&refs_file).expect("read --image-refs file");
    let reference = refs.trim_end().to_string();
    assert_eq!(refs.lines().count(), 1, "{refs}");
    assert!(
        reference.starts_with("krust.local/hello-krust@sha256:"),
        "{refs}"
    );
    (run, reference)
}

#[test]
fn one_package_spelled_three_ways_is_one_image() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hello = hello_krust();
    let yaml = app_yaml(
        dir.path(),
        &format!(
            "a: krust://{0}\nb: 'krust://{0}/../hello-krust/'\nc: \"krust://{0}#hello-krust\"\n",
            hello.display()
        ),
    );
    let (run, reference) = resolve_to_hello(dir.path(), &yaml, &[]);
    assert_eq!(
        run.stdout,
        format!("a: {reference}\nb: '{reference}'\nc: \"{reference}\"\n---\n")
    );
}

/// A stand-in kubectl: records its arguments (one per line) and its stdin
/// in `dir`, prints one line and exits with `code`.
fn stand_in_kubectl(dir: &Path, code: i32) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("create bin dir");
    let path = bin.join("kubectl");
    let record = dir.display();
    support::write_script(
        &path,
        &format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{record}/args'\ncat > '{record}/stdin'\necho \"stand-in kubectl: $1\"\nexit {code}\n"
        ),
    );
    path
}

/// What the stand-in kubectl recorded, or `None` if it never ran.
fn recorded(dir: &Path) -> Option<(Vec<String>, String)> {
    let args = std::fs::read_to_string(dir.join("args")).ok()?;
    let stdin = std::fs::read_to_string(dir.join("stdin")).expect("stdin recorded with args");
    Some((args.lines().map(str::to_string).collect(), stdin))
}

/// PATH with `dir` in front.
fn path_with(dir: &Path) -> String {
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Writes `dir/app.yaml` and returns its path.
fn app_yaml(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("app.yaml");
    std::fs::write(&path, text).expect("write app.yaml");
    path
}

/// A Pod YAML in `dir` whose image is `reference`.
fn pod_yaml(dir: &Path, reference: &str) -> PathBuf {
    app_yaml(
        dir,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: app # the app\nspec:\n  containers:\n    - name: app\n      image: {reference}\n"
        ),
    )
}

#[test]
fn apply_streams_the_resolved_yaml_into_kubectl_and_returns_its_status() {
    let repo = fresh_repo("apply");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubectl = stand_in_kubectl(dir.path(), 3);
    let yaml = pod_yaml(dir.path(), &format!("krust://{}", hello_krust().display()));

    let run = pushing("apply", &repo)
        .env("PATH", path_with(kubectl.parent().unwrap()))
        .arg("-f")
        .arg(&yaml)
        .args(["--", "--dry-run=server", "-n", "prod"])
        .run();
    assert_eq!(run.status.code(), Some(3), "{}", run.describe());
    assert_eq!(
        run.stdout, "stand-in kubectl: apply\n",
        "kubectl's own output"
    );
    let (args, stdin) = recorded(dir.path()).expect("kubectl ran");
    assert_eq!(args, ["apply", "-f", "-", "--dry-run=server", "-n", "prod"]);

    let resolved = pushing("resolve", &repo).arg("-f").arg(&yaml).run();
    resolved.expect_success();
    assert_eq!(
        stdin, resolved.stdout,
        "kubectl's stdin is the resolved YAML"
    );
    assert!(
        stdin.contains(&format!("image: {repo}/hello-krust@sha256:")),
        "{stdin}"
    );
}

#[test]
fn create_runs_the_kubectl_named_by_flag_or_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kubectl = stand_in_kubectl(dir.path(), 0);
    let yaml = pod_yaml(
        dir.path(),
        &format!("'krust://{}'", hello_krust().display()),
    );

    let run = offline("create")
        .arg("--kubectl")
        .arg(&kubectl)
        .arg("-f")
        .arg(&yaml)
        .run();
    run.expect_success();
    let (args, stdin) = recorded(dir.path()).expect("kubectl ran");
    assert_eq!(args, ["create", "-f", "-"]);
    assert!(
        stdin.contains("image: 'krust.local/hello-krust@sha256:"),
        "{stdin}"
    );

    std::fs::remove_file(dir.path().join("args")).expect("reset the record");
    let run = offline("apply")
        .env("KRUST_KUBECTL", &kubectl)
        .arg("-f")
        .arg(&yaml)
        .arg("--")
        .arg("--server-side")
        .run();
    run.expect_success();
    let (args, _) = recorded(dir.path()).expect("kubectl ran");
    assert_eq!(args, ["apply", "-f", "-", "--server-side"]);
}

#[test]
fn kubectl_never_runs_when_a_build_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kubectl = stand_in_kubectl(dir.path(), 0);
    let broken = fixtures().join("broken");
    let yaml = app_yaml(
        dir.path(),
        &format!(
            "a: krust://{}\nb: krust://{}\n",
            hello_krust().display(),
            broken.display()
        ),
    );

    let run = offline("apply")
        .env("PATH", path_with(kubectl.parent().unwrap()))
        .arg("-f")
        .arg(&yaml)
        .run();
    let line = run.expect_clean_error(&["cannot build", "cargo build failed"]);
    assert!(
        line.contains(&format!(
            "krust://{} ({}:2:4)",
            broken.display(),
            yaml.display()
        )),
        "the error names the reference and the YAML file: {line}"
    );
    assert!(
        !line.contains("hello-krust"),
        "only the failing reference is named: {line}"
    );
    assert!(
        recorded(dir.path()).is_none(),
        "kubectl ran after a failure"
    );

    app_yaml(dir.path(), "image: krust://./missing\n");
    let run = offline("apply")
        .env("PATH", path_with(kubectl.parent().unwrap()))
        .arg("-f")
        .arg(&yaml)
        .run();
    run.expect_clean_error(&["krust://./missing", "does not exist"]);
    assert!(
        recorded(dir.path()).is_none(),
        "kubectl ran after a failure"
    );
}

#[test]
fn missing_kubectl_is_named_with_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = app_yaml(dir.path(), "a: b\n");
    offline("apply")
        .arg("--kubectl")
        .arg(dir.path().join("no-kubectl"))
        .arg("-f")
        .arg(&yaml)
        .run()
        .expect_clean_error(&["cannot run", "no-kubectl", "--kubectl", "KRUST_KUBECTL"]);
}

/// `resolve` of `text` (as `app.yaml` in a temp dir) must fail with a line
/// holding every word.
fn resolve_error(text: &str, words: &[&str]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = app_yaml(dir.path(), text);
    offline("resolve")
        .arg("-f")
        .arg(&yaml)
        .run()
        .expect_clean_error(words);
}

#[test]
fn missing_path_names_the_reference_and_file() {
    resolve_error(
        "kind: Pod\nimage: krust://./nope\n",
        &["krust://./nope", "app.yaml:2:8", "does not exist"],
    );
}

#[test]
fn directory_without_cargo_toml_is_not_a_package() {
    resolve_error(
        "image: \"krust://.\"\n",
        &[
            "krust://.",
            "app.yaml:1:8",
            "is not a cargo package",
            "no Cargo.toml",
        ],
    );
}

#[test]
fn library_only_package_has_no_bin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lib = cargo_new_lib(dir.path(), "just-a-lib");
    resolve_error(
        &format!("image: krust://{}\n", lib.display()),
        &["just-a-lib", "app.yaml", "no bin target"],
    );
}

#[test]
fn bin_must_exist_and_be_named_when_there_are_several() {
    let greeter = fixtures().join("greeter");
    resolve_error(
        &format!("image: krust://{}#nope\n", greeter.display()),
        &[
            "#nope",
            "app.yaml:1:8",
            "no bin named `nope`",
            "its bins: bye, hi",
        ],
    );
    resolve_error(
        &format!("image: krust://{}\n", greeter.display()),
        &["app.yaml", "several bins (bye, hi)", "#<bin>"],
    );
}

#[test]
fn invalid_yaml_names_file_line_and_column() {
    resolve_error(
        "a: b\n  c: krust://./x\n",
        &["app.yaml", "invalid YAML at line 2, column 4"],
    );
}

#[test]
fn block_scalar_reference_is_refused() {
    resolve_error(
        "image: >\n  krust://./x\n",
        &["app.yaml", "line 2, column 3", "block scalar"],
    );
}

#[test]
fn unreadable_inputs_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    offline("resolve")
        .arg("-f")
        .arg(dir.path().join("missing.yaml"))
        .run()
        .expect_clean_error(&["cannot read", "missing.yaml", "no such file"]);

    let listed = dir.path().join("listed");
    std::fs::create_dir(&listed).expect("mkdir");
    std::os::unix::fs::symlink(dir.path().join("gone"), listed.join("dangling.yaml"))
        .expect("symlink");
    offline("resolve")
        .arg("-f")
        .arg(&listed)
        .run()
        .expect_clean_error(&["cannot read", "dangling.yaml"]);

    let latin1 = dir.path().join("latin1.yaml");
    std::fs::write(&latin1, b"name: caf\xe9\n").expect("write");
    offline("resolve")
        .arg("-f")
        .arg(&latin1)
        .run()
        .expect_clean_error(&["latin1.yaml", "not UTF-8"]);
}

#[test]
fn selection_flags_of_build_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = app_yaml(dir.path(), "a: b\n");
    offline("resolve")
        .arg("-f")
        .arg(&yaml)
        .args(["--bin", "x"])
        .run()
        .expect_clean_error(&["--bin", "does not apply", "krust://PATH[#BIN]"]);
}

/// Four documents: `a` (app=web, tier=front) and `b` (app=api, tier=back)
/// hold a reference to hello-krust, `c` (app=db) one to a package that does
/// not exist, `d` has no labels. The second starts without `---` after a
/// `...`, the others with one; comments sit between them.
fn labelled_yaml(dir: &Path) -> PathBuf {
    let hello = hello_krust();
    app_yaml(
        dir,
        &format!(
            "# a\nkind: Pod\nmetadata:\n  name: a\n  labels: {{app: web, tier: front}}\nspec: {{containers: [{{image: krust://{0}}}]}}\n...\n\
             kind: Pod\nmetadata:\n  name: b\n  labels:\n    app: api\n    tier: back\nimage: 'krust://{0}#hello-krust' # b\n\
             --- # c\nkind: Pod\nmetadata: {{name: c, labels: {{app: db, tier: db}}}}\nimage: krust://./not-a-package\n\
             ---\n{{\"kind\": \"ConfigMap\", \"metadata\": {{\"name\": \"d\"}}}}\n",
            hello.display()
        ),
    )
}

/// The `name:` of every printed document, in order.
fn printed_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in text.lines() {
        for marker in ["  name: ", "{name: ", "\"name\": \""] {
            if let Some((_, rest)) = line.split_once(marker) {
                names.push(rest.chars().take(1).collect());
            }
        }
    }
    names
}

#[test]
fn selector_prints_only_matching_documents_and_builds_only_their_references() {
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = labelled_yaml(dir.path());
    let text = std::fs::read_to_string(&yaml).expect("read app.yaml");
    let (run, reference) = resolve_to_hello(dir.path(), &yaml, &["-l", "app=web"]);
    // Document a, byte for byte up to and including its `...`, then the
    // separator line after the file.
    let a_end = text.find("...\n").expect("a ends with ...") + 4;
    let a = text[..a_end].replace(&format!("krust://{}", hello_krust().display()), &reference);
    assert_eq!(run.stdout, format!("{a}---\n"), "{}", run.describe());

    // kubectl's other forms; `c`'s reference is never built, `d` (no
    // labels) is selected by the negative forms.
    let table: &[(&str, &[&str])] = &[
        ("app==web", &["a"]),
        ("app in (web, api)", &["a", "b"]),
        ("app,tier notin (db)", &["a", "b"]),
        ("app!=db,tier", &["a", "b"]),
        ("tier notin (back,db)", &["a", "d"]),
        ("!tier", &["d"]),
        ("app=nothing", &[]),
    ];
    let mut printed = BTreeMap::new();
    for (selector, names) in table {
        let run = offline("resolve")
            .arg("-f")
            .arg(&yaml)
            .args(["--selector", selector])
            .run();
        run.expect_success();
        assert_eq!(
            printed_names(&run.stdout),
            *names,
            "{selector}: {}",
            run.describe()
        );
        if names.is_empty() {
            assert_eq!(
                run.stdout, "",
                "{selector} selects nothing: nothing printed"
            );
        }
        printed.insert(*selector, run.stdout);
    }

    // b follows a without a marker of its own: a `---` line is put between;
    // d follows a with its own `---` line, and nothing is added.
    let both = &printed["app in (web, api)"];
    assert!(
        both.contains("...\n---\nkind: Pod\nmetadata:\n  name: b\n"),
        "{both}"
    );
    let a_and_d = &printed["tier notin (back,db)"];
    assert!(
        a_and_d.ends_with(
            "...\n---\n{\"kind\": \"ConfigMap\", \"metadata\": {\"name\": \"d\"}}\n---\n"
        ),
        "{a_and_d}"
    );
}

#[test]
fn apply_pipes_only_the_selected_documents() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kubectl = stand_in_kubectl(dir.path(), 0);
    let yaml = labelled_yaml(dir.path());
    let run = offline("apply")
        .arg("--kubectl")
        .arg(&kubectl)
        .arg("-f")
        .arg(&yaml)
        .args(["-l", "tier=back"])
        .run();
    run.expect_success();
    let (args, stdin) = recorded(dir.path()).expect("kubectl ran");
    assert_eq!(args, ["apply", "-f", "-"]);
    assert_eq!(printed_names(&stdin), ["b"], "{stdin}");
    assert!(
        stdin.contains("image: 'krust.local/hello-krust@sha256:"),
        "{stdin}"
    );
}

#[test]
fn bad_selector_is_refused_before_anything_is_read_or_built() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kubectl = stand_in_kubectl(dir.path(), 0);
    for selector in ["app in (web", "=web", "app web", "app=w@b"] {
        // The file does not exist: the selector is checked first.
        let stderr = offline("resolve")
            .arg("-f")
            .arg(dir.path().join("missing.yaml"))
            .args(["-l", selector])
            .run()
            .expect_clean_error(&["invalid --selector", selector, "app=web"]);
        assert!(!stderr.contains("missing.yaml"), "{stderr}");
    }
    let yaml = labelled_yaml(dir.path());
    offline("create")
        .arg("--kubectl")
        .arg(&kubectl)
        .arg("-f")
        .arg(&yaml)
        .args(["--selector", "tier notin ()"])
        .run()
        .expect_clean_error(&["invalid --selector", "tier notin ()"]);
    assert_eq!(recorded(dir.path()), None, "kubectl never ran");
}

#[test]
fn documents_left_out_are_not_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let web = "kind: ConfigMap\nmetadata: {name: web, labels: {app: web}}\n";
    let yaml = app_yaml(
        dir.path(),
        &format!("{web}---\nmetadata: {{labels: {{app: other}}}}\nimage: |\n  krust://./x\n"),
    );
    let run = offline("resolve")
        .arg("-f")
        .arg(&yaml)
        .args(["-l", "app=web"])
        .run();
    run.expect_success();
    assert_eq!(run.stdout, format!("{web}---\n"));
    offline("resolve")
        .arg("-f")
        .arg(&yaml)
        .run()
        .expect_clean_error(&["app.yaml", "line 6, column 3", "block scalar"]);
}
