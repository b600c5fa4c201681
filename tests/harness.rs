//! Self-test of the test harness (tests/support), independent of cargo-krust:
//! the registry starts, answers and logs; the base images are built and pushed
//! intact; skopeo, umoci, runc, chroot and qemu work; per-test registries stop.
//! When these fail, the machine is not set up (run `scripts/test`) or the harness
//! is broken — not the tool.

mod support;

use serde_json::Value;
use support::base::{INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE};
use support::image::{self, expect_ran};
use support::{Registry, elf, sha256_digest, shared, tools};

/// The shared registry holds both bases exactly as built, and its access log
/// records the push.
#[test]
fn bases_are_pushed_intact() {
    let shared = shared();
    let bases = &shared.bases;
    let index = image::inspect_json(&bases.multi_ref);
    assert_eq!(index["mediaType"], INDEX_MEDIA_TYPE);
    let platforms: Vec<String> = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| {
            let p = &m["platform"];
            format!(
                "{}/{}{}",
                p["os"].as_str().unwrap_or(""),
                p["architecture"].as_str().unwrap_or(""),
                p["variant"]
                    .as_str()
                    .map(|v| format!("/{v}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64/v8"]);

    for base in &bases.multi {
        let raw = image::inspect_raw(&format!(
            "{}/base@{}",
            shared.registry.host(),
            base.manifest.digest
        ));
        assert_eq!(sha256_digest(&raw), base.manifest.digest);
        let config = shared.registry.blob("base", &base.config.digest);
        let config: Value = serde_json::from_slice(&config).expect("config JSON");
        assert_eq!(config["krustTestExtra"]["keep"], true);
        for (layer, diff_id) in base.layers.iter().zip(&base.diff_ids) {
            let blob = shared.registry.blob("base", &layer.digest);
            assert_eq!(&sha256_digest(&image::gunzip(&blob)), diff_id);
        }
    }
    let amd = &bases.multi_for("amd64").layers;
    let arm = &bases.multi_for("arm64").layers;
    assert_eq!(amd[0], arm[0], "the common layer is shared");
    assert_ne!(amd[1], arm[1], "the arch layer differs");

    let single = image::inspect_json(&bases.single_ref);
    assert_eq!(single["mediaType"], MANIFEST_MEDIA_TYPE);
    assert!(single["config"]["digest"] == bases.single.config.digest.as_str());

    let requests = shared.registry.all_requests();
    assert!(
        requests
            .iter()
            .any(|r| r.method == "PUT" && r.uri == "/v2/base/manifests/latest"),
        "access log lacks the base push: {requests:#?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.is_blob_upload() && r.is_for_repo("base"))
    );
}

/// A base image unpacks with umoci into a rootfs shaped like distroless, and a
/// static binary (qemu-aarch64-static itself) runs in it via chroot and runc.
#[test]
fn unpack_and_run_tools_work() {
    let shared = shared();
    let base = shared.bases.multi_for("amd64");
    let reference = format!(
        "{}/base@{}",
        shared.registry.host(),
        shared.bases.multi_index_digest
    );
    let unpacked = image::pull_and_unpack(&reference, "amd64", None);
    let passwd = std::fs::read_to_string(unpacked.file("/etc/passwd")).expect("passwd");
    assert!(passwd.contains("nonroot:x:65532:65532"));
    assert_eq!(
        std::fs::read_to_string(unpacked.file("/etc/krust-base-arch")).expect("arch marker"),
        "amd64\n"
    );
    use std::os::unix::fs::PermissionsExt;
    let tmp_mode = std::fs::metadata(unpacked.file("/tmp"))
        .expect("tmp")
        .permissions()
        .mode();
    assert_eq!(tmp_mode & 0o7777, 0o1777);
    assert_eq!(base.config_json["config"]["User"], "65532");

    // Any static x86_64 program works as a stand-in for a cargo-krust binary.
    let qemu = tools::qemu_aarch64();
    let info = elf::read(&qemu).expect("read qemu ELF");
    assert_eq!(info.machine, elf::EM_X86_64);
    assert!(
        info.is_static(),
        "qemu-aarch64-static should be static: {info:?}"
    );
    let inside = unpacked.file("/qemu-copy");
    std::fs::copy(&qemu, &inside).expect("copy qemu into rootfs");
    let out = image::run_chroot(&unpacked.rootfs, &["/qemu-copy".into(), "--version".into()]);
    assert!(expect_ran(&out, "chroot").contains("qemu-aarch64 version"));

    let config_path = unpacked.bundle.join("config.json");
    let mut config: Value =
        serde_json::from_slice(&std::fs::read(&config_path).expect("read config.json"))
            .expect("config.json");
    config["process"]["args"] = serde_json::json!(["/qemu-copy"]);
    std::fs::write(&config_path, serde_json::to_vec(&config).expect("json")).expect("write");
    let out = image::run_runc(&unpacked, &["--version"]);
    assert!(expect_ran(&out, "runc run").contains("qemu-aarch64 version"));
}

/// The arm64 base unpacks too (the arch layer says arm64).
#[test]
fn arm64_platform_is_selected_by_skopeo() {
    let shared = shared();
    let reference = format!(
        "{}/base@{}",
        shared.registry.host(),
        shared.bases.multi_index_digest
    );
    let unpacked = image::pull_and_unpack(&reference, "arm64", Some("v8"));
    assert_eq!(
        std::fs::read_to_string(unpacked.file("/etc/krust-base-arch")).expect("arch marker"),
        "arm64\n"
    );
}

/// A per-test registry is independent, counts requests between marks, and is
/// really gone (process and storage) after Drop.
#[test]
fn own_registry_starts_counts_and_stops() {
    let registry = Registry::start();
    let host = registry.host();
    let pid = registry.pid();
    let work_dir = registry.work_dir().to_path_buf();
    let mark = registry.mark();
    support::http::get(
        &host,
        &format!("/v2/some/repo/blobs/sha256:{}", "0".repeat(64)),
    )
    .expect("request");
    let requests = registry.requests_since(mark);
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!(requests[0].status, 404);
    assert!(requests[0].is_for_repo("some/repo"));
    drop(registry);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "registry pid {pid} still running after drop"
    );
    assert!(!work_dir.exists(), "registry storage left behind");
    assert!(
        support::http::get(&host, "/v2/").is_err(),
        "port still answers"
    );
}

/// The ELF reader recognises aarch64 and PT_INTERP in a hand-made header (a real
/// x86_64 static binary is checked in `unpack_and_run_tools_work`).
#[test]
fn elf_reader_parses_headers() {
    let mut fake = vec![0u8; 64 + 56];
    fake[..4].copy_from_slice(b"\x7fELF");
    fake[4] = 2;
    fake[5] = 1;
    fake[16] = 3;
    fake[18..20].copy_from_slice(&elf::EM_AARCH64.to_le_bytes());
    fake[32..40].copy_from_slice(&64u64.to_le_bytes());
    fake[54..56].copy_from_slice(&56u16.to_le_bytes());
    fake[56..58].copy_from_slice(&1u16.to_le_bytes());
    fake[64..68].copy_from_slice(&3u32.to_le_bytes());
    let info = elf::parse(&fake).expect("parse");
    assert_eq!(info.machine, elf::EM_AARCH64);
    assert!(!info.is_static(), "PT_INTERP present means dynamic");
    fake[64..68].copy_from_slice(&1u32.to_le_bytes());
    assert!(elf::parse(&fake).expect("parse").is_static());
}
