//! The OCI image layout sink (`--oci-layout-path`): blobs under
//! `blobs/sha256/`, `oci-layout`, and `index.json` with one entry per
//! (image, tag), named `<name>:<tag>` by `org.opencontainers.image.ref.name`.
//! Existing entries of other images are kept; an entry with the same name is
//! replaced. Files are written to temporaries and renamed into place.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::assemble::ImageIndex;
use crate::oci::{ANNOTATION_REF_NAME, Blob, MEDIA_TYPE_OCI_INDEX, canonical_json, digest_hex};
use crate::store::BlobStore;

use super::download;
use crate::registry::RegistryClient;

pub struct OciLayout {
    dir: PathBuf,
}

/// The annotation containerd and others use for the full image name.
const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";

impl OciLayout {
    pub fn new(dir: &Path) -> OciLayout {
        OciLayout {
            dir: dir.to_path_buf(),
        }
    }

    /// Writes every blob of the image, then updates index.json.
    pub async fn write(
        &self,
        image: &ImageIndex,
        client: &RegistryClient,
        store: &BlobStore,
    ) -> Result<()> {
        let blobs_dir = self.dir.join("blobs").join("sha256");
        fs::create_dir_all(&blobs_dir)
            .with_context(|| format!("cannot create OCI layout at {}", self.dir.display()))?;
        write_atomic(
            &self.dir.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )?;

        for platform_image in &image.images {
            for blob in platform_image
                .layers
                .iter()
                .chain([&platform_image.config, &platform_image.manifest])
            {
                self.put_blob(blob, client, store).await?;
            }
        }
        self.put_blob(&image.index, client, store).await?;
        self.update_index(image)
    }

    async fn put_blob(
        &self,
        blob: &Blob,
        client: &RegistryClient,
        store: &BlobStore,
    ) -> Result<()> {
        let hex = digest_hex(&blob.digest).context("malformed digest")?;
        let path = self.dir.join("blobs").join("sha256").join(hex);
        if path.is_file() {
            return Ok(());
        }
        let temp = path.with_extension("partial");
        match blob.bytes() {
            Some(bytes) => write_atomic(&path, bytes)?,
            None => {
                let source = download(client, store, blob).await?;
                fs::copy(&source, &temp)
                    .and_then(|_| fs::rename(&temp, &path))
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
        }
        Ok(())
    }

    fn update_index(&self, image: &ImageIndex) -> Result<()> {
        let index_path = self.dir.join("index.json");
        let mut index: Value = match fs::read(&index_path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not valid JSON", index_path.display()))?,
            Err(_) => {
                json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_OCI_INDEX, "manifests": []})
            }
        };
        let names: Vec<String> = image
            .tags
            .iter()
            .map(|tag| format!("{}:{tag}", image.name.short_name()))
            .collect();
        let mut manifests: Vec<Value> = index
            .get("manifests")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|entry| {
                let name = entry.pointer(&format!(
                    "/annotations/{}",
                    ANNOTATION_REF_NAME.replace('/', "~1")
                ));
                !name
                    .and_then(Value::as_str)
                    .is_some_and(|n| names.iter().any(|x| x == n))
            })
            .collect();
        for (tag, ref_name) in image.tags.iter().zip(&names) {
            let mut entry = image.index.descriptor();
            entry["annotations"] = json!({
                ANNOTATION_REF_NAME: ref_name,
                ANNOTATION_IMAGE_NAME: format!("{}:{tag}", image.name),
            });
            manifests.push(entry);
        }
        index["manifests"] = Value::Array(manifests);
        write_atomic(&index_path, &canonical_json(&index))
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("path has no directory")?;
    let mut temp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    temp.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    temp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
