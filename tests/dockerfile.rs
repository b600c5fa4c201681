//! `cargo krust dockerfile`, with the real binary:
//!
//! - on the test registry's base, `FROM` names the base by the digest
//!   skopeo reads for its tag, and the Dockerfile's instructions, applied to
//!   the base's config as a Docker build applies them, give the Entrypoint,
//!   Cmd, User, WorkingDir, Env, ExposedPorts and Labels of the config that
//!   `build --no-push --oci-layout-path` writes for the same package;
//!   values with quotes, spaces and `$` come out escaped;
//! - the same on scratch, and a multi-platform Dockerfile copies the binary
//!   by `$TARGETPLATFORM`;
//! - bad options (several bins, an output flag, an unknown platform, a
//!   value a Dockerfile cannot carry) are one clean error.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Map, Value, json};
use support::image::inspect_raw;
use support::krust::{Krust, hello_krust, krust};
use support::process::run_ok;
use support::{copy_tree, example, sha256_digest, shared, tools};

/// hello-krust copied to `parent/hello-krust`, configured with every key a
/// Dockerfile carries, values with quotes, spaces and `$` among them.
fn configured_package(parent: &Path, extra_toml: &str) -> PathBuf {
    let pkg = parent.join("hello-krust");
    copy_tree(&hello_krust(), &pkg);
    std::fs::create_dir_all(pkg.join("krust-data")).expect("create data dir");
    std::fs::write(pkg.join("krust-data/greeting.txt"), "hi\n").expect("write data file");
    let manifest = pkg.join("Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).expect("read Cargo.toml");
    text.push_str(concat!(
        "\n[package.metadata.krust]\n",
        "env = { RUST_LOG = \"info\", QUOTED = 'say \"hi\" to $HOME \\ now' }\n",
        "args = [\"--name\", \"two words\", \"it's \\\"quoted\\\"\"]\n",
        "ports = [\"8080/tcp\", \"9090\"]\n",
        "user = \"65532:65532\"\n",
        "workdir = \"/srv/my app\"\n",
        "data = \"krust-data\"\n",
        "labels = { \"org.example/team\" = \"core \\\"infra\\\"\", \"org.example/cost\" = \"$5\" }\n",
    ));
    text.push_str(extra_toml);
    std::fs::write(&manifest, text).expect("write Cargo.toml");
    pkg
}

/// `cargo-krust COMMAND --base-image BASE --platform PLATFORMS`.
fn on_base(command: &str, base: &str, platforms: &str) -> Krust {
    krust([command, "--base-image", base, "--platform", platforms])
}

/// The amd64 config `build --no-push --oci-layout-path` writes for `pkg`.
fn built_config(pkg: &Path, base: &str, layout: &Path) -> Value {
    on_base("build", base, "linux/amd64")
        .arg("--no-push")
        .arg("--oci-layout-path")
        .arg(layout)
        .arg(pkg)
        .run()
        .single_ref();
    let skopeo = tools::require("skopeo", "skopeo");
    let output = run_ok(
        Command::new(skopeo)
            .args(["inspect", "--config", "--raw"])
            .arg(format!("oci:{}:hello-krust:latest", layout.display())),
        Duration::from_secs(60),
        "skopeo inspect --config oci:LAYOUT:hello-krust:latest",
    );
    serde_json::from_slice(&output.stdout).expect("config is JSON")
}

/// The `dockerfile` printed for `pkg`, checked to have succeeded; cargo's
/// target dir is the package's own (the tests share one elsewhere), as a
/// user's would be.
fn dockerfile(pkg: &Path, base: &str, platforms: &str) -> String {
    let run = on_base("dockerfile", base, platforms)
        .env_remove("CARGO_TARGET_DIR")
        .arg(pkg)
        .run();
    run.expect_success();
    run.stdout.clone()
}

/// One Dockerfile word: double-quoted with `\` escapes, or bare.
fn take_word(text: &str) -> (String, &str) {
    let mut word = String::new();
    let mut chars = text.char_indices();
    if text.starts_with('"') {
        chars.next();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => word.push(chars.next().expect("escape at end of line").1),
                '"' => return (word, &text[i + 1..]),
                c => word.push(c),
            }
        }
        panic!("unterminated quote in {text:?}");
    }
    let end = text.find(char::is_whitespace).unwrap_or(text.len());
    assert!(
        !text[..end].contains(['"', '\\', '$']),
        "unquoted word with a special character: {text:?}"
    );
    (text[..end].to_string(), &text[end..])
}

/// `KEY=VALUE` with a quoted or bare value (ENV, LABEL).
fn key_value(rest: &str) -> (String, String) {
    let (key, after) = take_word(rest.split_once('=').map_or(rest, |(k, _)| k));
    assert!(after.is_empty(), "key with trailing text: {rest:?}");
    let value_text = &rest[rest.find('=').expect("KEY=VALUE") + 1..];
    let (value, after) = take_word(value_text);
    assert!(after.trim().is_empty(), "text after the value: {rest:?}");
    (key, value)
}

fn object<'a>(config: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    config
        .entry(key)
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("an object")
}

/// The `config` object a Docker build gives the image: the base's, with
/// the Dockerfile's instructions applied as Docker applies them. Returns it
/// with the FROM and COPY lines.
fn apply(dockerfile: &str, base_config: &Value) -> (Map<String, Value>, String, Vec<String>) {
    let mut config = base_config["config"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut from = String::new();
    let mut copies = Vec::new();
    for line in dockerfile.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (instruction, rest) = line.split_once(' ').expect("INSTRUCTION ARGS");
        match instruction {
            "FROM" => from = rest.to_string(),
            "COPY" => copies.push(rest.to_string()),
            "ARG" => assert_eq!(rest, "TARGETPLATFORM"),
            "ENV" => {
                let (key, value) = key_value(rest);
                let line = format!("{key}={value}");
                let env = config.entry("Env").or_insert_with(|| json!([]));
                let env = env.as_array_mut().expect("Env array");
                match env.iter_mut().find(|e| {
                    e.as_str().and_then(|e| e.split_once('=')).map(|(k, _)| k) == Some(&key)
                }) {
                    Some(existing) => *existing = json!(line),
                    None => env.push(json!(line)),
                }
            }
            "LABEL" => {
                let (key, value) = key_value(rest);
                object(&mut config, "Labels").insert(key, json!(value));
            }
            "EXPOSE" => {
                let (port, _) = take_word(rest);
                let port = if port.contains('/') {
                    port
                } else {
                    format!("{port}/tcp")
                };
                object(&mut config, "ExposedPorts").insert(port, json!({}));
            }
            "USER" => {
                config.insert("User".into(), json!(take_word(rest).0));
            }
            "WORKDIR" => {
                config.insert("WorkingDir".into(), json!(take_word(rest).0));
            }
            "ENTRYPOINT" => {
                let value: Value = serde_json::from_str(rest).expect("ENTRYPOINT in JSON form");
                config.insert("Entrypoint".into(), value);
                // Docker: setting ENTRYPOINT resets an inherited CMD.
                config.remove("Cmd");
            }
            "CMD" => {
                let value: Value = serde_json::from_str(rest).expect("CMD in JSON form");
                config.insert("Cmd".into(), value);
            }
            other => panic!("unexpected instruction {other} in:\n{dockerfile}"),
        }
    }
    (config, from, copies)
}

/// Compares, field by field, the config the Dockerfile makes with the built one.
fn assert_same_run_config(made: &Map<String, Value>, built: &Value, dockerfile: &str) {
    for field in [
        "Entrypoint",
        "Cmd",
        "User",
        "WorkingDir",
        "Env",
        "ExposedPorts",
        "Labels",
    ] {
        assert_eq!(
            made.get(field),
            built["config"].get(field),
            "{field} differs between the Dockerfile and the build:\n{dockerfile}"
        );
    }
}

#[test]
fn dockerfile_on_a_base_names_its_digest_and_makes_the_built_config() {
    tools::require_default_rust_targets();
    let tmp = tempfile::tempdir().expect("tempdir");
    let pkg = configured_package(tmp.path(), "");
    let shared = shared();
    let base_ref = &shared.bases.multi_ref;

    let text = dockerfile(&pkg, base_ref, "linux/amd64");
    let base_amd64 = &shared.bases.multi[0];
    assert_eq!(base_amd64.architecture, "amd64");
    let (made, from, copies) = apply(&text, &base_amd64.config_json);

    let digest = sha256_digest(&inspect_raw(base_ref));
    let repository = base_ref.strip_suffix(":latest").expect("a :latest base");
    assert_eq!(from, format!("{repository}@{digest}"), "FROM:\n{text}");
    assert_eq!(
        copies,
        [
            "krust-data/ /var/run/krust/".to_string(),
            "--chmod=0755 target/x86_64-unknown-linux-musl/release/hello-krust /app/hello-krust"
                .to_string()
        ],
        "COPY lines:\n{text}"
    );
    assert!(
        text.contains("cargo build --profile release --target x86_64-unknown-linux-musl -p hello-krust --bin hello-krust"),
        "the cargo command in the comments:\n{text}"
    );
    // Escaped, not merely present: the raw value would end the quotes early.
    assert!(
        text.contains(r#"ENV QUOTED="say \"hi\" to \$HOME \\ now""#),
        "ENV escaping:\n{text}"
    );
    assert!(
        text.contains(r#"LABEL "org.example/cost"="\$5""#),
        "LABEL escaping:\n{text}"
    );
    assert!(
        text.contains(r#"WORKDIR "/srv/my app""#),
        "WORKDIR:\n{text}"
    );

    let built = built_config(&pkg, base_ref, &tmp.path().join("layout"));
    assert_same_run_config(&made, &built, &text);
}

#[test]
fn dockerfile_on_scratch_makes_the_built_config_and_copies_by_platform() {
    tools::require_default_rust_targets();
    let tmp = tempfile::tempdir().expect("tempdir");
    let pkg = configured_package(tmp.path(), "");

    let text = dockerfile(&pkg, "scratch", "linux/amd64");
    let (made, from, _) = apply(&text, &json!({}));
    assert_eq!(from, "scratch");
    let built = built_config(&pkg, "scratch", &tmp.path().join("layout"));
    assert_same_run_config(&made, &built, &text);

    // Two platforms: one Dockerfile for buildx, the binary by platform.
    let text = dockerfile(&pkg, "scratch", "linux/amd64,linux/arm64");
    let (made_multi, from, copies) = apply(&text, &json!({}));
    assert_eq!(from, "scratch");
    assert_eq!(made_multi, made, "the same config on every platform");
    assert_eq!(
        copies.last().map(String::as_str),
        Some("--chmod=0755 krust-bin/${TARGETPLATFORM}/hello-krust /app/hello-krust"),
        "{text}"
    );
    for line in [
        "docker buildx build --platform linux/amd64,linux/arm64",
        "--target aarch64-unknown-linux-musl",
        "cp target/aarch64-unknown-linux-musl/release/hello-krust krust-bin/linux/arm64/",
    ] {
        assert!(text.contains(line), "missing {line:?}:\n{text}");
    }

    // The cargo command carries the feature flags a build would pass.
    let run = on_base("dockerfile", "scratch", "linux/amd64")
        .args(["--features", "extra", "--no-default-features"])
        .arg(&pkg)
        .run();
    run.expect_success();
    assert!(
        run.stdout
            .contains("--bin hello-krust --features extra --no-default-features\n"),
        "feature flags in the cargo command:\n{}",
        run.stdout
    );
}

#[test]
fn bad_options_are_clean_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    on_base("dockerfile", "scratch", "linux/amd64")
        .arg(example("workspace"))
        .run()
        .expect_clean_error(&["3 bins", "--bin"]);
    on_base("dockerfile", "scratch", "linux/amd64")
        .arg("--tarball")
        .arg(tmp.path().join("image.tar"))
        .arg(hello_krust())
        .run()
        .expect_clean_error(&["--tarball", "dockerfile"]);
    assert!(!tmp.path().join("image.tar").exists(), "nothing written");
    for flag in ["--tag-only", "--no-push", "--local"] {
        on_base("dockerfile", "scratch", "linux/amd64")
            .arg(flag)
            .arg(hello_krust())
            .run()
            .expect_clean_error(&[flag, "dockerfile"]);
    }
    on_base("dockerfile", "scratch", "linux/sparc")
        .arg(hello_krust())
        .run()
        .expect_clean_error(&["linux/sparc"]);

    let newline = tmp.path().join("newline");
    let pkg = configured_package(
        &newline,
        "[package.metadata.krust.bin.hello-krust]\nenv = { BROKEN = \"a\\nb\" }\n",
    );
    on_base("dockerfile", "scratch", "linux/amd64")
        .arg(&pkg)
        .run()
        .expect_clean_error(&["BROKEN", "line break"]);
}
