//! `--sbom-dir DIR`: every SBOM of a run also written to disk, as
//! `<repository-last-part>-<os>-<arch>[-<variant>].spdx.json` (or
//! `.cdx.json`). Checked before anything is built (the directory can be
//! written, no two images name the same file), written after every sink
//! has published, and all or nothing: every file is written to a temporary
//! first, and a failure removes what this run added (the directory too when
//! it made it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::{extension, platform_slug};
use crate::fsutil;
use crate::image_name::ImageName;
use crate::oci::Blob;
use crate::plan::SbomFormat;
use crate::platform::Platform;

/// The file name of one platform image's SBOM (`None` without one).
pub fn file_name(image: &ImageName, platform: &Platform, format: SbomFormat) -> Option<String> {
    Some(format!(
        "{}-{}.{}",
        image.short_name(),
        platform_slug(platform),
        extension(format)?
    ))
}

/// Refuses, before anything is built, a DIR that cannot be written and two
/// images whose SBOMs would take the same file. `planned` holds every
/// (image, platform, format) of the run.
pub fn check(dir: &Path, planned: &[(&ImageName, &Platform, SbomFormat)]) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        bail!(
            "--sbom-dir {}: it is not a directory; name a directory (it is created when missing)",
            dir.display()
        );
    }
    let mut owners: BTreeMap<String, &ImageName> = BTreeMap::new();
    for &(image, platform, format) in planned {
        let Some(name) = file_name(image, platform, format) else {
            continue;
        };
        if let Some(other) = owners.insert(name.clone(), image)
            && other != image
        {
            bail!(
                "--sbom-dir {}: the SBOMs of {other} and {image} would both be written to {name}; give one of the images another last name part, or build them in two runs",
                dir.display()
            );
        }
    }
    if let Some(existing) = dir.ancestors().find(|d| d.is_dir()) {
        // Made and dropped at once: only whether it can be made counts.
        fsutil::temp_file_in(existing)
            .with_context(|| format!("cannot write SBOMs into {} (--sbom-dir)", dir.display()))?;
    }
    Ok(())
}

/// Writes every `(file name, document)` into `dir`, all or nothing.
pub fn write(dir: &Path, files: &[(String, Blob)]) -> Result<()> {
    let created = dir.ancestors().take_while(|d| !d.exists()).last();
    let created = created.map(Path::to_path_buf);
    let written = write_all(dir, files);
    if let (Err(_), Some(created)) = (&written, &created) {
        // What the failed run added, and nothing else, since it made it.
        let _ = std::fs::remove_dir_all(created);
    }
    written.with_context(|| format!("cannot write SBOMs into {} (--sbom-dir)", dir.display()))
}

fn write_all(dir: &Path, files: &[(String, Blob)]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut staged = Vec::new();
    for (name, document) in files {
        let bytes = document
            .bytes()
            .with_context(|| format!("{name}: the SBOM is not in memory"))?;
        let mut temp = fsutil::temp_file_in(dir)?;
        std::io::Write::write_all(temp.as_file_mut(), bytes)
            .with_context(|| format!("cannot write {name}"))?;
        staged.push((dir.join(name), temp));
    }
    // Every file is written: only renames are left, which undo cleanly.
    let mut added: Vec<PathBuf> = Vec::new();
    for (path, temp) in staged {
        let new = !path.exists();
        if let Err(err) = temp.persist(&path) {
            for path in &added {
                let _ = std::fs::remove_file(path);
            }
            return Err(err.error).with_context(|| format!("cannot write {}", path.display()));
        }
        if new {
            added.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(name: &str, text: &'static str) -> (String, Blob) {
        (
            name.to_string(),
            Blob::from_bytes("application/spdx+json", text),
        )
    }

    fn name(text: &str) -> ImageName {
        ImageName::parse(text).unwrap()
    }

    #[test]
    fn names_carry_image_platform_and_format() {
        let image = name("127.0.0.1:5000/team/app");
        let arm = Platform::new("linux", "arm", Some("v7"));
        assert_eq!(
            file_name(&image, &arm, SbomFormat::Spdx).as_deref(),
            Some("app-linux-arm-v7.spdx.json")
        );
        let amd = Platform::new("linux", "amd64", None);
        assert_eq!(
            file_name(&image, &amd, SbomFormat::Cyclonedx).as_deref(),
            Some("app-linux-amd64.cdx.json")
        );
        assert_eq!(file_name(&image, &amd, SbomFormat::None), None);
    }

    #[test]
    fn check_refuses_a_file_and_two_images_on_one_name() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let err = format!("{:#}", check(&file, &[]).unwrap_err());
        assert!(err.contains("not a directory"), "{err}");
        let amd = Platform::new("linux", "amd64", None);
        let (a, b) = (name("r.example/a/app"), name("r.example/b/app"));
        let planned = [(&a, &amd, SbomFormat::Spdx), (&b, &amd, SbomFormat::Spdx)];
        let err = format!("{:#}", check(tmp.path(), &planned).unwrap_err());
        assert!(err.contains("app-linux-amd64.spdx.json"), "{err}");
        let planned = [
            (&a, &amd, SbomFormat::Spdx),
            (&b, &amd, SbomFormat::Cyclonedx),
        ];
        check(&tmp.path().join("new/dir"), &planned).unwrap();
    }

    #[test]
    fn writes_all_or_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("made/sboms");
        let files = [document("a.spdx.json", "{}"), document("b.spdx.json", "[]")];
        write(&dir, &files).unwrap();
        assert_eq!(std::fs::read(dir.join("b.spdx.json")).unwrap(), b"[]");

        // A directory in the way of the second file: nothing of this run stays.
        let again = tmp.path().join("again");
        std::fs::create_dir_all(again.join("b.spdx.json/inside")).unwrap();
        let err = format!("{:#}", write(&again, &files).unwrap_err());
        assert!(err.contains("--sbom-dir"), "{err}");
        let left: Vec<_> = std::fs::read_dir(&again)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["b.spdx.json"]);

        // A directory this run made goes with its failure.
        let fresh = tmp.path().join("fresh/deeper");
        let unwritable = [
            document("a.spdx.json", "{}"),
            document("missing/b.spdx.json", "{}"),
        ];
        assert!(write(&fresh, &unwritable).is_err());
        assert!(!tmp.path().join("fresh").exists());
    }
}
