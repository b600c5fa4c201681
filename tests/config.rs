//! Workspaces and configuration (SPEC §2 selection, §4 keys and layers):
//!
//! - selection with cargo's semantics on examples/workspace: the default and
//!   `--workspace` (every member with bins, minus `skip = true` and bins with
//!   unmet `required-features`), `-p`, `--bin`, `--exclude`, `--features`;
//! - one pushed build of the workspace, and a test per configuration key that
//!   finds it in the pushed image with skopeo;
//! - images with args, env, user, workdir and data run under runc and print the
//!   configured values; extra run arguments replace Cmd and keep Entrypoint;
//! - the precedence layers wired end to end (global file, environment,
//!   command line, workspace, package, bin);
//! - invalid configuration: exit code, empty stdout, an error naming the file
//!   and the key, and nothing pushed.

mod support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;
use support::image::{
    PushedIndex, PushedRef, expect_ran, fetch_index, inspect_raw, pull_and_unpack, run_chroot,
    run_chroot_qemu_aarch64, run_runc,
};
use support::krust::{Krust, build_on_scratch, krust};
use support::{Registry, copy_tree, example, sha256_digest, shared, unique_name};

/// The bin names the workspace example's default selection builds, in order:
/// members in declaration order, bins in manifest order.
const WORKSPACE_IMAGES: [&str; 3] = ["api", "jobs-cron", "worker"];

/// `cargo-krust build DIR --no-push` on scratch for linux/amd64.
fn build_local(dir: &Path) -> Krust {
    build_on_scratch(dir).arg("--no-push")
}

/// The image names (last path component) of a run's references, in order.
fn image_names(refs: &[PushedRef]) -> Vec<String> {
    refs.iter()
        .map(|r| {
            let name = r.full.split('@').next().unwrap_or_default();
            name.rsplit('/').next().unwrap_or_default().to_string()
        })
        .collect()
}

#[test]
fn workspace_selection_follows_cargo() {
    let ws = example("workspace");

    let default = build_local(&ws).run();
    assert_eq!(
        image_names(&default.refs()),
        WORKSPACE_IMAGES,
        "{}",
        default.describe()
    );

    let workspace = build_local(&ws).arg("--workspace").run();
    assert_eq!(image_names(&workspace.refs()), WORKSPACE_IMAGES);
    assert_eq!(
        workspace.stdout, default.stdout,
        "the default at a virtual root is --workspace"
    );

    let one = build_local(&ws)
        .args(["-p", "jobs", "--bin", "worker"])
        .run();
    assert_eq!(image_names(&one.refs()), ["worker"]);

    let two_bins = build_local(&ws).args(["-p", "jobs"]).run();
    assert_eq!(image_names(&two_bins.refs()), ["jobs-cron", "worker"]);

    let excluded = build_local(&ws)
        .args(["--workspace", "--exclude", "api"])
        .run();
    assert_eq!(image_names(&excluded.refs()), ["jobs-cron", "worker"]);

    // `skip = true` only leaves a package out of the default selection.
    let skipped = build_local(&ws).args(["-p", "internal-tool"]).run();
    assert_eq!(image_names(&skipped.refs()), ["internal-tool"]);

    // `admin` has required-features = ["admin"]: left out until enabled.
    let admin = build_local(&ws)
        .args(["-p", "jobs", "--features", "jobs/admin"])
        .run();
    assert_eq!(image_names(&admin.refs()), ["admin", "jobs-cron", "worker"]);
    build_local(&ws)
        .args(["-p", "jobs", "--bin", "admin"])
        .run()
        .expect_clean_error(&["bin `admin`", "requires the features admin", "--features"]);

    // The same digest whatever selection produced it.
    assert_eq!(one.refs()[0], default.refs()[2]);
}

/// The workspace example pushed once (onto the multi-platform base of the
/// shared registry) and fetched back with skopeo, for the per-key tests.
struct PushedWorkspace {
    /// One fetched index per image, keyed by image name.
    images: Vec<(String, PushedIndex)>,
    /// What the run printed.
    refs: Vec<PushedRef>,
    /// The repository prefix used.
    repo: String,
}

impl PushedWorkspace {
    fn image(&self, name: &str) -> &PushedIndex {
        self.images
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, i)| i)
            .unwrap_or_else(|| panic!("no image {name} was pushed"))
    }

    fn config(&self, name: &str) -> &Value {
        &self.image(name).image("amd64").config["config"]
    }
}

/// Copies the workspace example into a temp dir, adding the test registry's
/// base image and two platforms to its workspace table, and pushes it.
fn pushed_workspace() -> &'static PushedWorkspace {
    static PUSHED: OnceLock<PushedWorkspace> = OnceLock::new();
    PUSHED.get_or_init(|| {
        let shared = shared();
        let dir = tempfile::Builder::new()
            .prefix("krust-ws-")
            .tempdir()
            .expect("tempdir")
            .keep();
        let ws = dir.join("workspace");
        copy_tree(&example("workspace"), &ws);
        append(
            &ws.join("Cargo.toml"),
            &format!(
                "base-image = \"{}\"\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\n",
                shared.bases.multi_ref
            ),
        );
        // A package-level override of the workspace's platforms.
        let jobs = ws.join("jobs/Cargo.toml");
        let text = std::fs::read_to_string(&jobs).expect("read jobs/Cargo.toml");
        let text = text.replacen(
            "[package.metadata.krust]\n",
            "[package.metadata.krust]\nplatforms = [\"linux/amd64\"]\n",
            1,
        );
        std::fs::write(&jobs, text).expect("write jobs/Cargo.toml");

        let repo = format!("{}/{}", shared.registry.host(), unique_name("ws"));
        let run = krust(["build", "--workspace"])
            .arg(&ws)
            .env("KRUST_REPO", &repo)
            .run();
        let refs = run.refs();
        let images = image_names(&refs)
            .into_iter()
            .zip(&refs)
            .map(|(name, r)| (name, fetch_index(&shared.registry, r)))
            .collect();
        PushedWorkspace { images, refs, repo }
    })
}

/// Appends lines to the last table of a TOML file (the example's files end
/// with their krust table).
fn append(file: &Path, text: &str) {
    let mut content = std::fs::read_to_string(file).expect("read Cargo.toml");
    content.push_str(text);
    std::fs::write(file, content).expect("write Cargo.toml");
}

fn string_list(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn key_base_image() {
    let pushed = pushed_workspace();
    let bases = &shared().bases;
    for (name, index) in &pushed.images {
        let amd64 = index.image("amd64");
        let base = bases.multi_for("amd64");
        let digests: Vec<&str> = amd64
            .layers
            .iter()
            .map(|l| l.descriptor.digest.as_str())
            .collect();
        for base_layer in &base.layers {
            assert!(
                digests.contains(&base_layer.digest.as_str()),
                "{name}: base layer missing"
            );
        }
        assert_eq!(
            index.index["annotations"]["org.opencontainers.image.base.name"],
            bases.multi_ref.as_str(),
            "{name}"
        );
    }
}

#[test]
fn key_platforms() {
    let pushed = pushed_workspace();
    let platforms = |name: &str| -> Vec<String> {
        pushed
            .image(name)
            .platforms()
            .into_iter()
            .map(|p| p.replace("/v8", ""))
            .collect()
    };
    assert_eq!(
        platforms("api"),
        ["linux/amd64", "linux/arm64"],
        "workspace key"
    );
    assert_eq!(
        platforms("worker"),
        ["linux/amd64"],
        "package key overrides workspace"
    );
    assert_eq!(platforms("jobs-cron"), ["linux/amd64"]);
}

#[test]
fn key_name_and_skip() {
    let pushed = pushed_workspace();
    assert_eq!(image_names(&pushed.refs), WORKSPACE_IMAGES);
    assert!(
        pushed.refs[1].repo.ends_with("/jobs-cron"),
        "per-bin `name` names the image: {:?}",
        pushed.refs[1]
    );
    // `skip = true`: no image for internal-tool, not even a repository.
    let catalog =
        support::http::get(&shared().registry.host(), "/v2/_catalog?n=1000").expect("catalog");
    let body = String::from_utf8_lossy(&catalog.body).into_owned();
    let prefix = pushed
        .repo
        .split_once('/')
        .map(|(_, p)| p)
        .unwrap_or_default();
    assert!(body.contains(&format!("{prefix}/api")), "{body}");
    assert!(!body.contains(&format!("{prefix}/internal-tool")), "{body}");
}

#[test]
fn key_tags() {
    let pushed = pushed_workspace();
    let cron = &pushed.refs[1];
    let name = cron.full.split('@').next().unwrap_or_default();
    for tag in ["nightly", "latest"] {
        let raw = inspect_raw(&format!("{name}:{tag}"));
        assert_eq!(
            sha256_digest(&raw),
            cron.digest,
            "tag {tag} points at the index"
        );
    }
}

#[test]
fn key_env() {
    let pushed = pushed_workspace();
    let api = string_list(&pushed.config("api")["Env"]);
    assert!(
        api.contains(&"GREETING=hello from the workspace".into()),
        "{api:?}"
    );
    assert!(api.contains(&"API_MODE=demo".into()), "{api:?}");
    let cron = string_list(&pushed.config("jobs-cron")["Env"]);
    assert!(
        cron.contains(&"GREETING=hello from cron".into()),
        "per-bin env wins: {cron:?}"
    );
    assert!(
        cron[0].starts_with("PATH=") && cron[0].ends_with(":/app"),
        "{cron:?}"
    );
}

#[test]
fn key_args() {
    let pushed = pushed_workspace();
    assert_eq!(
        string_list(&pushed.config("api")["Cmd"]),
        ["--listen", "0.0.0.0:8080"]
    );
    assert_eq!(
        string_list(&pushed.config("worker")["Cmd"]),
        ["--queue", "default"]
    );
    assert!(
        pushed.config("jobs-cron").get("Cmd").is_none(),
        "no args, no Cmd"
    );
    assert_eq!(
        string_list(&pushed.config("worker")["Entrypoint"]),
        ["/app/worker"]
    );
}

#[test]
fn key_ports() {
    let ports = &pushed_workspace().config("api")["ExposedPorts"];
    assert_eq!(ports, &serde_json::json!({"8080/tcp": {}, "9090/tcp": {}}));
}

#[test]
fn key_user_and_workdir() {
    let pushed = pushed_workspace();
    assert_eq!(pushed.config("api")["User"], "65532:65532");
    assert_eq!(pushed.config("api")["WorkingDir"], "/var/run/krust");
    // Not configured for worker: the base's values are kept.
    let base = &shared().bases.multi_for("amd64").config_json["config"];
    assert_eq!(pushed.config("worker").get("User"), base.get("User"));
    assert_eq!(
        pushed.config("worker").get("WorkingDir"),
        base.get("WorkingDir")
    );
}

#[test]
fn key_labels() {
    let labels = &pushed_workspace().config("api")["Labels"];
    assert_eq!(labels["org.example/team"], "platform", "workspace label");
    assert_eq!(labels["org.opencontainers.image.title"], "api");
    assert_eq!(labels["org.opencontainers.image.version"], "0.3.0");
    assert_eq!(
        labels["org.opencontainers.image.licenses"],
        "MIT OR Apache-2.0"
    );
    assert_eq!(
        labels["org.opencontainers.image.source"],
        "https://example.com/krust/workspace-example"
    );
    assert!(
        labels["org.opencontainers.image.description"]
            .as_str()
            .is_some_and(|d| d.contains("API"))
    );
}

#[test]
fn key_annotations() {
    let pushed = pushed_workspace();
    let owner = "org.example/owner";
    for name in ["worker", "jobs-cron"] {
        let index = pushed.image(name);
        assert_eq!(
            index.index["annotations"][owner], "jobs-team",
            "{name} index"
        );
        for image in &index.images {
            assert_eq!(
                image.manifest["annotations"][owner], "jobs-team",
                "{name} manifest"
            );
        }
    }
    assert!(
        pushed.image("api").index["annotations"]
            .get(owner)
            .is_none()
    );
}

#[test]
fn key_data() {
    let pushed = pushed_workspace();
    let api = pushed.image("api").image("amd64");
    let base_layers = shared().bases.multi_for("amd64").layers.len();
    assert_eq!(
        api.layers.len(),
        base_layers + 2,
        "data layer, then binary layer"
    );
    let data = support::image::tar_entries(&api.layers[base_layers].tar);
    let paths: Vec<&str> = data.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "var/run/krust/",
            "var/run/krust/css/",
            "var/run/krust/css/site.css",
            "var/run/krust/home.html",
            "var/run/krust/index.html"
        ]
    );
    assert!(
        string_list(&api.config["config"]["Env"])
            .contains(&"KRUST_DATA_PATH=/var/run/krust".into())
    );
    let binary = support::image::tar_entries(&api.layers[base_layers + 1].tar);
    assert!(binary.iter().any(|e| e.path == "app/api"));
}

#[test]
fn key_features() {
    let pushed = pushed_workspace();
    let worker = &pushed.refs[2];
    let unpacked = pull_and_unpack(&worker.full, "amd64", None);
    let out = expect_ran(
        &run_chroot(&unpacked.rootfs, &["/app/worker".into()]),
        "worker",
    );
    assert!(
        out.contains("fancy: true"),
        "features key reached cargo: {out}"
    );
}

#[test]
fn configured_image_runs_with_its_settings() {
    let pushed = pushed_workspace();
    let api = &pushed.refs[0];
    let unpacked = pull_and_unpack(&api.full, "amd64", None);
    let out = expect_ran(&run_runc(&unpacked, &[]), "api under runc");
    for line in [
        "bin: api",
        "args: --listen 0.0.0.0:8080",
        "env GREETING: hello from the workspace",
        "env API_MODE: demo",
        "env KRUST_DATA_PATH: /var/run/krust",
        "ids: 65532 65532",
        "cwd: /var/run/krust",
        "data css/site.css: body { color: teal }",
        "data home.html: <h1>hello from krust data</h1>",
        "data index.html: <h1>hello from krust data</h1>",
    ] {
        assert!(
            out.lines().any(|l| l == line),
            "missing {line:?} in:\n{out}"
        );
    }

    // Extra arguments replace Cmd and keep the Entrypoint.
    let unpacked = pull_and_unpack(&api.full, "amd64", None);
    let out = runc_with_args(&unpacked, &["--extra", "x"]);
    assert!(out.lines().any(|l| l == "bin: api"), "{out}");
    assert!(out.lines().any(|l| l == "args: --extra x"), "{out}");

    // And the arm64 image of the same index runs too.
    let unpacked = pull_and_unpack(&api.full, "arm64", Some("v8"));
    let out = expect_ran(
        &run_chroot_qemu_aarch64(&unpacked.rootfs, &["/app/api".into(), "arm".into()]),
        "api arm64",
    );
    assert!(out.lines().any(|l| l == "args: arm"), "{out}");
}

/// Runs the bundle with its process args replaced by Entrypoint + `args`, as
/// `docker run IMAGE ARGS…` does.
fn runc_with_args(unpacked: &support::image::Unpacked, args: &[&str]) -> String {
    let config_path = unpacked.bundle.join("config.json");
    let mut config: Value =
        serde_json::from_slice(&std::fs::read(&config_path).expect("read config.json"))
            .expect("config.json");
    let entrypoint = config["process"]["args"][0].clone();
    let mut argv = vec![entrypoint];
    argv.extend(args.iter().map(|a| Value::String(a.to_string())));
    config["process"]["args"] = Value::Array(argv);
    std::fs::write(&config_path, serde_json::to_vec(&config).expect("json")).expect("write");
    expect_ran(&run_runc(unpacked, &[]), "runc with extra args")
}

/// Every layer of SPEC §4 wired end to end: the global file, `KRUST_*`
/// variables, the command line, the workspace, package and bin tables.
#[test]
fn precedence_layers_reach_the_image() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pkg = tmp.path().join("prec");
    std::fs::create_dir_all(pkg.join("src/bin")).expect("mkdir");
    std::fs::write(
        pkg.join("Cargo.toml"),
        r#"[package]
name = "prec"
version = "0.1.0"
edition = "2021"

[workspace]

[workspace.metadata.krust]
workdir = "/workspace"
env = { LAYER = "workspace", FROM_WORKSPACE = "1" }

[package.metadata.krust]
args = ["package"]
env = { LAYER = "package" }
tags = ["package-tag"]

[package.metadata.krust.bin.two]
args = ["bin"]

[package.metadata.krust.bin.three]
skip = true
"#,
    )
    .expect("write Cargo.toml");
    for bin in ["one", "two", "three"] {
        std::fs::write(pkg.join(format!("src/bin/{bin}.rs")), "fn main() {}\n").expect("bin");
    }
    let xdg = tmp.path().join("xdg");
    std::fs::create_dir_all(xdg.join("krust")).expect("mkdir xdg");
    std::fs::write(
        xdg.join("krust/config.toml"),
        "user = \"1:1\"\nworkdir = \"/global\"\nlabels = { g = \"global\" }\nbase-image = \"scratch\"\n",
    )
    .expect("write global config");

    let layout = tmp.path().join("layout");
    let run = krust(["build", "--no-push", "--platform", "linux/amd64"])
        .arg(&pkg)
        .arg("--oci-layout-path")
        .arg(&layout)
        .env("XDG_CONFIG_HOME", &xdg)
        .env("KRUST_TAGS", "env-tag")
        .env("KRUST_PLATFORMS", "linux/arm64")
        .run();
    let names: Vec<String> = run.refs().iter().map(|r| r.repo.clone()).collect();
    assert_eq!(names, ["one", "two"], "bin `three` has skip = true");

    let config = |name: &str| -> Value {
        let out = std::process::Command::new("skopeo")
            .args(["inspect", "--config"])
            .arg(format!("oci:{}:{name}:env-tag", layout.display()))
            .output()
            .expect("run skopeo");
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "skopeo inspect {name}:env-tag ({e}): {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    };
    let one = config("one");
    assert_eq!(
        one["architecture"], "amd64",
        "--platform beats KRUST_PLATFORMS"
    );
    assert_eq!(
        one["config"]["User"], "1:1",
        "global file when nothing else sets it"
    );
    assert_eq!(
        one["config"]["WorkingDir"], "/workspace",
        "workspace beats global"
    );
    assert_eq!(one["config"]["Labels"]["g"], "global");
    let env = string_list(&one["config"]["Env"]);
    assert!(
        env.contains(&"LAYER=package".into()),
        "package beats workspace: {env:?}"
    );
    assert!(
        env.contains(&"FROM_WORKSPACE=1".into()),
        "maps merge: {env:?}"
    );
    assert_eq!(string_list(&one["config"]["Cmd"]), ["package"]);
    let two = config("two");
    assert_eq!(
        string_list(&two["config"]["Cmd"]),
        ["bin"],
        "bin table beats package"
    );
    // KRUST_TAGS beat the package's tags: the layout has only env-tag entries.
    let index = std::fs::read_to_string(layout.join("index.json")).expect("index.json");
    assert!(
        index.contains("one:env-tag") && !index.contains("package-tag"),
        "{index}"
    );

    // And the command line beats the environment.
    let run = krust([
        "build",
        "--no-push",
        "--platform",
        "linux/amd64",
        "--tag",
        "cli-tag",
    ])
    .arg(&pkg)
    .arg("--oci-layout-path")
    .arg(&layout)
    .env("XDG_CONFIG_HOME", &xdg)
    .env("KRUST_TAGS", "env-tag")
    .run();
    run.refs();
    let index = std::fs::read_to_string(layout.join("index.json")).expect("index.json");
    assert!(index.contains("one:cli-tag"), "{index}");

    // A skipped bin is still built when named.
    let run = build_local(&pkg)
        .args(["--bin", "three"])
        .env("XDG_CONFIG_HOME", &xdg)
        .run();
    assert_eq!(image_names(&run.refs()), ["three"]);
}

/// A package in a temp dir with `extra` appended to its Cargo.toml.
fn package_with(tmp: &Path, extra: &str) -> PathBuf {
    let pkg = support::cargo_new_bin(tmp, "cfg");
    append(&pkg.join("Cargo.toml"), extra);
    pkg
}

#[test]
fn invalid_configuration_names_file_and_key() {
    let cases: &[(&str, &[&str])] = &[
        (
            "[package.metadata.krust]\nbase_image = \"scratch\"\n",
            &[
                "[package.metadata.krust]",
                "Cargo.toml",
                "unknown key `base_image`",
                "did you mean `base-image`",
            ],
        ),
        (
            "[package.metadata.krust]\nplaforms = [\"linux/amd64\"]\n",
            &["Cargo.toml", "`plaforms`", "did you mean `platforms`"],
        ),
        (
            "[package.metadata.krust]\ntags = \"v1\"\n",
            &["Cargo.toml", "key `tags`", "wrong type"],
        ),
        (
            "[package.metadata.krust]\nskip = \"yes\"\n",
            &["Cargo.toml", "key `skip`", "wrong type"],
        ),
        (
            "[package.metadata.krust]\nplatforms = [\"linux/mips\"]\n",
            &["Cargo.toml", "key `platforms`", "linux/mips"],
        ),
        (
            "[package.metadata.krust]\nname = \"Not A Name!\"\n",
            &["Cargo.toml", "key `name`"],
        ),
        (
            "[package.metadata.krust]\nbase-image = \"UPPER CASE!!\"\n",
            &["Cargo.toml", "key `base-image`"],
        ),
        (
            "[package.metadata.krust]\nports = [\"http\"]\n",
            &["Cargo.toml", "key `ports`", "http"],
        ),
        (
            "[package.metadata.krust]\nworkdir = \"relative\"\n",
            &["Cargo.toml", "key `workdir`", "absolute"],
        ),
        (
            "[package.metadata.krust]\ndata = \"no-such-dir\"\n",
            &["Cargo.toml", "key `data`", "no-such-dir", "does not exist"],
        ),
        (
            "[package.metadata.krust]\ndata = \"src/main.rs\"\n",
            &["Cargo.toml", "key `data`", "main.rs", "is not a directory"],
        ),
        (
            "[package.metadata.krust]\ndata = \"..\"\n",
            &[
                "Cargo.toml",
                "key `data`",
                "outside",
                "move or copy the data into it",
            ],
        ),
        (
            "[package.metadata.krust.bin.nope]\nargs = []\n",
            &["Cargo.toml", "no bin target named `nope`"],
        ),
        (
            "[package.metadata.krust.bin.cfg]\nusr = \"1\"\n",
            &[
                "[package.metadata.krust.bin.cfg]",
                "Cargo.toml",
                "did you mean `user`",
            ],
        ),
        (
            "[workspace]\n[workspace.metadata.krust]\nenvv = {}\n",
            &[
                "[workspace.metadata.krust]",
                "Cargo.toml",
                "did you mean `env`",
            ],
        ),
    ];
    for (extra, words) in cases {
        let tmp = tempfile::tempdir().expect("tempdir");
        let pkg = package_with(tmp.path(), extra);
        let line = krust(["build"])
            .arg(&pkg)
            .env("KRUST_REPO", "127.0.0.1:1/never-used")
            .run()
            .expect_clean_error(words);
        assert!(
            line.contains(&pkg.join("Cargo.toml").display().to_string()),
            "{line}"
        );
    }
}

#[test]
fn invalid_global_file_and_environment_are_named() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pkg = support::cargo_new_bin(tmp.path(), "cfg");
    let xdg = tmp.path().join("xdg");
    std::fs::create_dir_all(xdg.join("krust")).expect("mkdir");
    std::fs::write(xdg.join("krust/config.toml"), "base_image = \"scratch\"\n").expect("write");
    build_local(&pkg)
        .env("XDG_CONFIG_HOME", &xdg)
        .run()
        .expect_clean_error(&["krust/config.toml", "did you mean `base-image`"]);

    let tmp2 = tempfile::tempdir().expect("tempdir");
    let pkg2 = support::cargo_new_bin(tmp2.path(), "cfg");
    krust(["build", "--no-push", "--base-image", "scratch"])
        .arg(&pkg2)
        .env("KRUST_PLATFORMS", "linux/mips")
        .run()
        .expect_clean_error(&["KRUST_PLATFORMS", "linux/mips"]);
}

/// A data symlink out of the data directory is refused, even into the
/// package: it would dangle in the image.
#[test]
fn data_symlink_leaving_the_data_directory_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pkg = package_with(tmp.path(), "[package.metadata.krust]\ndata = \"data\"\n");
    std::fs::create_dir(pkg.join("data")).expect("mkdir data");
    let link = pkg.join("data/escape");
    for target in ["/etc/hostname", "../Cargo.toml"] {
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(target, &link).expect("symlink");
        build_local(&pkg).run().expect_clean_error(&[
            "data symlink",
            "escape",
            "outside the data directory",
        ]);
    }
}

/// A data directory that is a symlink out of the package, and a FIFO in
/// one, are errors naming them (they used to be copied, and vanish).
#[test]
fn data_directory_linked_out_of_the_package_or_holding_a_fifo_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).expect("mkdir outside");
    std::fs::write(outside.join("secret"), "not for the image").expect("write");
    let pkg = package_with(tmp.path(), "[package.metadata.krust]\ndata = \"data\"\n");
    std::os::unix::fs::symlink(&outside, pkg.join("data")).expect("symlink");
    let line =
        build_local(&pkg)
            .run()
            .expect_clean_error(&["key `data`", "resolves to", "outside"]);
    assert!(line.contains(&outside.display().to_string()), "{line}");

    std::fs::remove_file(pkg.join("data")).expect("remove link");
    std::fs::create_dir(pkg.join("data")).expect("mkdir data");
    std::fs::write(pkg.join("data/kept.txt"), "kept").expect("write");
    let fifo = pkg.join("data/pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success(), "mkfifo failed");
    let line = build_local(&pkg).run().expect_clean_error(&[
        "data entry",
        "named pipe",
        "regular files, directories and symlinks",
    ]);
    assert!(line.contains(&fifo.display().to_string()), "{line}");
}

/// One member with an invalid key: nothing is built for any member and the
/// registry sees no request.
#[test]
fn invalid_member_stops_everything_before_any_push() {
    let registry = Registry::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let ws = tmp.path();
    std::fs::write(
        ws.join("Cargo.toml"),
        "[workspace]\nmembers = [\"good\", \"bad\"]\nresolver = \"2\"\n",
    )
    .expect("write workspace");
    support::cargo_new_bin(ws, "good");
    let bad = support::cargo_new_bin(ws, "bad");
    append(
        &bad.join("Cargo.toml"),
        "[package.metadata.krust]\nuser = 65532\n",
    );
    let mark = registry.mark();
    krust([
        "build",
        "--workspace",
        "--base-image",
        "scratch",
        "--platform",
        "linux/amd64",
    ])
    .arg(ws)
    .env("KRUST_REPO", format!("{}/ws", registry.host()))
    .run()
    .expect_clean_error(&["bad", "Cargo.toml", "key `user`", "wrong type"]);
    assert!(
        registry.requests_since(mark).is_empty(),
        "the registry saw requests: {:?}",
        registry.requests_since(mark)
    );
}
