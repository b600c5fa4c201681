//! Deterministic layers: a sorted list of entries becomes a tar stream with
//! fixed ownership, modes and mtimes, gzip-compressed on all cores with a
//! fixed level and block size (see [`super::gzip`]), written straight to the
//! blob store. The sha256 of the uncompressed tar (diff_id) and of the
//! compressed bytes (digest) are computed in the same pass, so the data is
//! read once and never held whole in memory.
//!
//! Layers are cached: a record keyed by the hash of everything that goes into
//! the layer (entry paths, modes, the identity of each file's content, mtime,
//! media type, compression settings) points at the stored blob, so an
//! unchanged binary is neither re-tarred nor re-compressed.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::gzip::{BLOCK_SIZE, ParallelGzip};
use crate::oci::{Blob, BlobSource, LayerCompression};
use crate::store::BlobStore;

/// The gzip (libdeflate) level of every layer: fixed, so the same input
/// always gives the same bytes. Level 1 was chosen by measurement on a 50 MiB
/// binary (README, "Performance"): 206 MB/s per core at a ratio of 0.41,
/// where level 6 gives 0.38 at 94 MB/s, and miniz's level 1 0.46 at 173 MB/s.
pub const GZIP_LEVEL: i32 = 1;

/// The zstd level of zstd layers (zstd's default: fast, better than gzip -6).
pub const ZSTD_LEVEL: i32 = 3;

/// Uncompressed bytes per zstd job: fixed, so the output does not depend
/// on the number of workers, and small enough to use every core.
const ZSTD_JOB_SIZE: u32 = 1 << 20;

/// Bumped whenever the bytes a layer is made of change for the same inputs,
/// so that old cache records are not reused.
const LAYER_FORMAT: u32 = 3;

/// Layers kept in the store per slot (the same entries from the same source
/// paths, whatever their content): the newest and the two before it, for a
/// quick revert. Older ones are deleted when a newer one is written, so the
/// store does not grow with every rebuild.
const LAYERS_KEPT_PER_SLOT: usize = 3;

/// One entry of a layer, with its path inside the image (no leading `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir {
        path: String,
        mode: u32,
    },
    File {
        path: String,
        mode: u32,
        source: PathBuf,
    },
    Symlink {
        path: String,
        target: PathBuf,
    },
}

impl Entry {
    fn path(&self) -> &str {
        match self {
            Entry::Dir { path, .. } | Entry::File { path, .. } | Entry::Symlink { path, .. } => {
                path
            }
        }
    }
}

/// A layer written to the store.
#[derive(Debug, Clone)]
pub struct LayerBlob {
    pub blob: Blob,
    pub diff_id: String,
}

impl LayerBlob {
    /// A layer whose compressed bytes are the store's file at `path`.
    fn stored(media_type: &str, digest: String, size: u64, path: PathBuf, diff_id: String) -> Self {
        LayerBlob {
            blob: Blob {
                media_type: media_type.to_string(),
                digest,
                size,
                source: BlobSource::File(path),
            },
            diff_id,
        }
    }
}

/// The entries of the binary layer: `/app/` and `/app/<bin>`, both 0755.
pub fn binary_entries(bin: &str, executable: &Path) -> Vec<Entry> {
    vec![
        Entry::Dir {
            path: "app/".into(),
            mode: 0o755,
        },
        Entry::File {
            path: format!("app/{bin}"),
            mode: 0o755,
            source: executable.to_path_buf(),
        },
    ]
}

/// Sees a layer's compressed bytes as they are written.
pub type Observer<'o> = &'o mut dyn FnMut(&[u8]);

/// Everything a layer is made of, and its cache key.
pub struct LayerInputs {
    entries: Vec<Entry>,
    media_type: String,
    mtime: u64,
    key: String,
    /// The same entries from the same sources, whatever their content.
    slot: String,
    /// Bytes of file content, before compression.
    content_size: u64,
}

impl LayerInputs {
    pub fn new(mut entries: Vec<Entry>, media_type: &str, mtime: u64) -> Result<LayerInputs> {
        entries.sort_by(|a, b| a.path().cmp(b.path()));
        let Keys {
            cache: key,
            slot,
            content_size,
        } = keys(&entries, media_type, mtime)?;
        Ok(LayerInputs {
            entries,
            media_type: media_type.to_string(),
            mtime,
            key,
            slot,
            content_size,
        })
    }

    /// Bytes of file content in the layer, before compression.
    pub fn content_size(&self) -> u64 {
        self.content_size
    }

    /// The layer made of the same inputs before, if its blob is still stored.
    pub fn cached(&self, store: &BlobStore) -> Option<LayerBlob> {
        let record = store
            .read_record("layers", &self.key)
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())?;
        let field = |name: &str| record.get(name).and_then(|v| v.as_str()).map(String::from);
        let (digest, diff_id, size) = (
            field("digest")?,
            field("diff_id")?,
            record.get("size").and_then(|v| v.as_u64())?,
        );
        // Pinned before it is looked at: once pinned, no run evicts it. A
        // store that cannot pin cannot write either; the write says why.
        if !store.pin(&digest).ok()? {
            return None;
        }
        let path = store.get(&digest)?;
        if !std::fs::metadata(&path).is_ok_and(|m| m.len() == size) {
            return None;
        }
        crate::progress::verbose(format!("layer {digest} reused from the cache"));
        Some(LayerBlob::stored(
            &self.media_type,
            digest,
            size,
            path,
            diff_id,
        ))
    }

    /// Writes the layer into the store and records it in the cache.
    /// `observer`, when given, sees the compressed bytes as they are
    /// written (for an upload that runs meanwhile). The slot's older layers
    /// stay until [`LayerInputs::evict_older_layers`].
    pub fn write(&self, store: &BlobStore, observer: Option<Observer<'_>>) -> Result<LayerBlob> {
        let layer = write_layer(store, &self.entries, &self.media_type, self.mtime, observer)?;
        let record = json!({
            "digest": layer.blob.digest,
            "diff_id": layer.diff_id,
            "size": layer.blob.size,
        });
        store.write_record("layers", &self.key, record.to_string().as_bytes())?;
        Ok(layer)
    }

    /// Records `newest`, just written, as the slot's latest layer and
    /// deletes the blobs of the slot's layers beyond
    /// `LAYERS_KEPT_PER_SLOT` (their records then simply miss), unless a
    /// live run, this one or another sharing the store, pinned them (another
    /// slot's layer may be the same blob): those stay in the slot, to go
    /// with a later eviction. Then prunes the gzip member cache. Deleting a
    /// 20 MB file takes milliseconds, which an upload should not wait for.
    /// Best effort: a layer that stays only costs space.
    pub fn evict_older_layers(&self, store: &BlobStore, newest: &LayerBlob) {
        if let Ok(eviction) = store.eviction() {
            // Under the store lock, so that two runs do not both rewrite
            // the slot record from what they read.
            let newest = newest.blob.digest.as_str();
            let mut kept: Vec<String> = store
                .read_record("layer-slots", &self.slot)
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                .unwrap_or_default();
            kept.retain(|digest| digest != newest);
            kept.insert(0, newest.to_string());
            let older = kept.split_off(LAYERS_KEPT_PER_SLOT.min(kept.len()));
            for digest in older {
                if eviction.remove(&digest) {
                    crate::progress::trace(format!("layer {digest} leaves the cache"));
                } else {
                    kept.push(digest);
                }
            }
            if let Ok(record) = serde_json::to_vec(&kept) {
                // A lost slot record only means older layers stay.
                let _ = store.write_record("layer-slots", &self.slot, &record);
            }
        }
        super::gzip::prune_members(&store.cache_dir("gzip-members"));
    }
}

/// The two keys of a layer's inputs, in one pass over its entries.
struct Keys {
    /// sha256 over every input: format, compression settings, media type,
    /// mtime, and each entry's kind, path, mode and the identity of its
    /// content (size, mtime, ctime, device and inode).
    cache: String,
    /// sha256 over the media type and each entry's kind, path, mode and
    /// source path, not their content: successive builds of the same
    /// binary share it.
    slot: String,
    /// Total size of the files' content.
    content_size: u64,
}

fn keys(entries: &[Entry], media_type: &str, mtime: u64) -> Result<Keys> {
    let mut content_size = 0;
    let mut cache = Sha256::new();
    let mut slot = Sha256::new();
    cache.update(
        format!(
            "krust-layer/{LAYER_FORMAT}/libdeflate-{GZIP_LEVEL}-{BLOCK_SIZE}/zstd-{ZSTD_LEVEL}-{ZSTD_JOB_SIZE}/{media_type}/{mtime}\n"
        )
            .as_bytes(),
    );
    slot.update(format!("krust-layer-slot/{media_type}\n").as_bytes());
    for entry in entries {
        let (line, content) = match entry {
            Entry::Dir { path, mode } => (format!("dir {path} {mode:o}"), String::new()),
            Entry::File { path, mode, source } => {
                // The file's identity (size, mtime, ctime, inode), not its
                // hash: hashing a 50 MiB binary would cost more than the rest
                // of a no-op rebuild. The ctime is what catches a file
                // rewritten in place with its mtime put back (`cp -p`,
                // `rsync -a`): no one can set it, every write moves it. A
                // ctime that moved with the same bytes (a chmod, cargo
                // linking the binary again) costs a re-read, the same layer.
                use std::os::unix::fs::MetadataExt;
                let meta = std::fs::metadata(source)
                    .with_context(|| format!("cannot read {}", source.display()))?;
                content_size += meta.len();
                (
                    format!("file {path} {mode:o} {}", source.display()),
                    format!(
                        " {} {}.{} {}.{} {}:{}",
                        meta.len(),
                        meta.mtime(),
                        meta.mtime_nsec(),
                        meta.ctime(),
                        meta.ctime_nsec(),
                        meta.dev(),
                        meta.ino()
                    ),
                )
            }
            Entry::Symlink { path, target } => {
                (format!("link {path} {}", target.display()), String::new())
            }
        };
        slot.update(format!("{line}\n").as_bytes());
        cache.update(format!("{line}{content}\n").as_bytes());
    }
    Ok(Keys {
        cache: hex::encode(cache.finalize()),
        slot: hex::encode(slot.finalize()),
        content_size,
    })
}

/// Writes the entries (sorted by path) as a gzip layer of the given media
/// type into the store.
fn write_layer(
    store: &BlobStore,
    entries: &[Entry],
    media_type: &str,
    mtime: u64,
    observer: Option<Observer<'_>>,
) -> Result<LayerBlob> {
    let temp = store.temp_file()?;
    let file = temp
        .as_file()
        .try_clone()
        .context("cannot reopen layer file")?;

    // No buffering: both compressors write their output in large pieces
    // (a gzip member, a zstd job).
    let compressed = HashingWriter::new(Tee {
        inner: file,
        observer,
    });
    let compressor = Compressor::new(
        LayerCompression::of_media_type(media_type),
        compressed,
        Some(store.cache_dir("gzip-members")),
    )?;
    let mut tar = tar::Builder::new(compressor);
    for entry in entries {
        append(&mut tar, entry, mtime)?;
    }
    let (compressed, diff_id) = tar
        .into_inner()
        .context("cannot finish layer tar")?
        .finish()
        .context("cannot finish layer compression")?;
    let digest = compressed.digest();
    let size = compressed.count;
    // No fsync: like cargo's own outputs, the cache is rebuilt if lost, and
    // a registry verifies every digest it receives.
    drop(compressed);

    let path = store.commit(temp, &digest)?;
    Ok(LayerBlob::stored(media_type, digest, size, path, diff_id))
}

fn append<W: Write>(
    tar: &mut tar::Builder<Compressor<W>>,
    entry: &Entry,
    mtime: u64,
) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(mtime);
    match entry {
        Entry::Dir { path, mode } => {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(*mode);
            header.set_size(0);
            tar.append_data(&mut header, path, io::empty())
        }
        Entry::File { path, mode, source } => {
            let file =
                File::open(source).with_context(|| format!("cannot read {}", source.display()))?;
            let size = file
                .metadata()
                .with_context(|| format!("cannot stat {}", source.display()))?
                .len();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(*mode);
            header.set_size(size);
            if header.set_path(path).is_err() {
                // A name too long for the header: tar adds the GNU entry
                // that carries it.
                tar.append_data(&mut header, path, BufReader::with_capacity(1 << 20, file))
            } else {
                // What `append_data` writes (header, content, zero padding
                // to 512 bytes), with the content read straight into the
                // compressor's blocks.
                header.set_cksum();
                let mut file = file;
                let stream = tar.get_mut();
                stream
                    .write_all(header.as_bytes())
                    .and_then(|()| stream.copy_from(&mut file, size))
                    .and_then(|()| {
                        let padding = (512 - size % 512) % 512;
                        stream.write_all(&[0; 512][..padding as usize])
                    })
            }
        }
        Entry::Symlink { path, target } => {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_mode(0o777);
            header.set_size(0);
            tar.append_link(&mut header, path, target)
        }
    }
    .with_context(|| format!("cannot add {} to the layer", entry.path()))
}

/// The entries of a data directory copied to `/var/run/krust`: directories
/// 0755, files 0644 (0755 when executable), symlinks that resolve inside the
/// data directory (as relative links to the same file, so that they resolve
/// the same way in the image). The data directory must resolve inside
/// `root`, the directory of the file that configures it.
pub fn data_entries(data_dir: &Path, root: &Path) -> Result<Vec<Entry>> {
    let data_root = crate::plan::settings::data_directory(data_dir, root)?;
    let mut entries = vec![Entry::Dir {
        path: "var/run/krust/".into(),
        mode: 0o755,
    }];
    collect(&data_root, Path::new(""), &data_root, &mut entries)?;
    Ok(entries)
}

/// What a data directory may hold, for errors.
const DATA_MAY_HOLD: &str =
    "a data directory may hold regular files, directories and symlinks that stay inside it";

/// Adds the entries under `dir`, which is `inner` below `data_root`.
fn collect(dir: &Path, inner: &Path, data_root: &Path, out: &mut Vec<Entry>) -> Result<()> {
    let mut children: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read data directory {}", dir.display()))?
        .collect::<io::Result<_>>()
        .with_context(|| format!("cannot read data directory {}", dir.display()))?;
    children.sort_by_key(|c| c.file_name());
    for child in children {
        let path = child.path();
        let inner = inner.join(child.file_name());
        let Some(image_path) = Path::new("var/run/krust")
            .join(&inner)
            .to_str()
            .map(String::from)
        else {
            bail!("data file name {} is not UTF-8", path.display());
        };
        let meta = std::fs::symlink_metadata(&path)
            .with_context(|| format!("cannot stat {}", path.display()))?;
        let kind = meta.file_type();
        if kind.is_symlink() {
            out.push(Entry::Symlink {
                path: image_path,
                target: symlink_target(&path, &inner, data_root)?,
            });
        } else if kind.is_dir() {
            out.push(Entry::Dir {
                path: format!("{image_path}/"),
                mode: 0o755,
            });
            collect(&path, &inner, data_root, out)?;
        } else if kind.is_file() {
            use std::os::unix::fs::PermissionsExt;
            let executable = meta.permissions().mode() & 0o111 != 0;
            out.push(Entry::File {
                path: image_path,
                mode: if executable { 0o755 } else { 0o644 },
                source: path,
            });
        } else {
            use std::os::unix::fs::FileTypeExt;
            let what = if kind.is_fifo() {
                "a named pipe (FIFO)"
            } else if kind.is_socket() {
                "a socket"
            } else {
                "a device node"
            };
            bail!(
                "data entry {} is {what}, which an image layer cannot carry: remove it ({DATA_MAY_HOLD})",
                path.display()
            );
        }
    }
    Ok(())
}

/// The target a data symlink gets in the image: the file it resolves to,
/// relative to the link's directory. Followed here, a link's own text could
/// be absolute or leave the data directory and come back, and would then
/// point elsewhere (or nowhere) under /var/run/krust.
fn symlink_target(link: &Path, inner: &Path, data_root: &Path) -> Result<PathBuf> {
    let target =
        std::fs::read_link(link).with_context(|| format!("cannot read link {}", link.display()))?;
    let resolved = link.canonicalize().ok();
    let Some(inside) = resolved
        .as_deref()
        .and_then(|resolved| resolved.strip_prefix(data_root).ok())
    else {
        bail!(
            "data symlink {} points outside the data directory {} ({}); copy the file into the data directory instead ({DATA_MAY_HOLD})",
            link.display(),
            data_root.display(),
            target.display()
        );
    };
    let from = inner.parent().unwrap_or(Path::new(""));
    let common = from
        .components()
        .zip(inside.components())
        .take_while(|(a, b)| a == b)
        .count();
    let mut relative: PathBuf = from.components().skip(common).map(|_| "..").collect();
    relative.extend(inside.components().skip(common));
    if relative.as_os_str().is_empty() {
        relative.push(".");
    }
    Ok(relative)
}

/// The compression stream of a layer, which also hashes the uncompressed
/// tar (the diff_id). Both are deterministic: fixed levels, and for zstd a
/// fixed job size whatever the number of workers.
enum Compressor<W: Write> {
    Gzip(ParallelGzip<W>),
    Zstd(HashingWriter<zstd::Encoder<'static, W>>),
}

impl<W: Write> Compressor<W> {
    fn new(
        compression: LayerCompression,
        inner: W,
        members: Option<PathBuf>,
    ) -> Result<Compressor<W>> {
        Ok(match compression {
            LayerCompression::Gzip => Compressor::Gzip(
                ParallelGzip::new(inner, GZIP_LEVEL, members)
                    .context("cannot start gzip compression")?,
            ),
            LayerCompression::Zstd => {
                let mut encoder =
                    zstd::Encoder::new(inner, ZSTD_LEVEL).context("cannot start zstd")?;
                // zstd's output is the same for any number of workers >= 1
                // (never 0, the single-threaded mode, which differs).
                let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
                encoder
                    .multithread(workers as u32)
                    .and_then(|()| {
                        encoder.set_parameter(zstd::zstd_safe::CParameter::JobSize(ZSTD_JOB_SIZE))
                    })
                    .context("cannot start zstd workers")?;
                Compressor::Zstd(HashingWriter::new(encoder))
            }
        })
    }

    /// Compresses `len` bytes of `file`.
    fn copy_from(&mut self, file: &mut File, len: u64) -> io::Result<()> {
        match self {
            Compressor::Gzip(gzip) => gzip.copy_from(file, len),
            Compressor::Zstd(zstd) => {
                let copied = io::copy(&mut Read::take(file, len), zstd)?;
                if copied < len {
                    return Err(super::gzip::ended_early(len - copied));
                }
                Ok(())
            }
        }
    }

    /// The inner writer, with the digest of the uncompressed input.
    fn finish(self) -> io::Result<(W, String)> {
        match self {
            Compressor::Gzip(gzip) => gzip.finish(),
            Compressor::Zstd(zstd) => {
                let digest = zstd.digest();
                Ok((zstd.inner.finish()?, digest))
            }
        }
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::Gzip(gzip) => gzip.write(buf),
            Compressor::Zstd(zstd) => zstd.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::Gzip(gzip) => gzip.flush(),
            Compressor::Zstd(zstd) => zstd.flush(),
        }
    }
}

/// A writer that shows what passes through it to an observer.
struct Tee<'o, W> {
    inner: W,
    observer: Option<Observer<'o>>,
}

impl<W: Write> Write for Tee<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        if let Some(observer) = &mut self.observer {
            observer(&buf[..written]);
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A writer that hashes and counts what passes through it.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W> HashingWriter<W> {
    fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    fn digest(&self) -> String {
        format!("sha256:{}", hex::encode(self.hasher.clone().finalize()))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        self.count += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// The layer for these entries: from the cache when the same inputs were
    /// layered before (and the blob is still stored), else written and recorded.
    fn cached_layer(
        store: &BlobStore,
        entries: Vec<Entry>,
        media_type: &str,
        mtime: u64,
    ) -> Result<LayerBlob> {
        let inputs = LayerInputs::new(entries, media_type, mtime)?;
        match inputs.cached(store) {
            Some(layer) => Ok(layer),
            None => {
                let layer = inputs.write(store, None)?;
                inputs.evict_older_layers(store, &layer);
                Ok(layer)
            }
        }
    }

    fn layer_of(bytes: &[u8], mtime: u64) -> (LayerBlob, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(&dir.path().join("store")).unwrap();
        let exe = dir.path().join("exe");
        std::fs::write(&exe, bytes).unwrap();
        let layer = cached_layer(
            &store,
            binary_entries("hello", &exe),
            crate::oci::MEDIA_TYPE_OCI_LAYER_GZIP,
            mtime,
        )
        .unwrap();
        (layer, dir)
    }

    #[test]
    fn same_input_same_bytes_and_digests_match_content() {
        let (a, _da) = layer_of(b"binary", 0);
        let (b, _db) = layer_of(b"binary", 0);
        assert_eq!(a.blob.digest, b.blob.digest);
        assert_eq!(a.diff_id, b.diff_id);
        let (c, _dc) = layer_of(b"binary", 1);
        assert_ne!(a.blob.digest, c.blob.digest);

        let BlobSource::File(path) = &a.blob.source else {
            panic!("layer not on disk")
        };
        let compressed = std::fs::read(path).unwrap();
        assert_eq!(crate::oci::sha256_digest(&compressed), a.blob.digest);
        assert_eq!(compressed.len() as u64, a.blob.size);
        let mut tar_bytes = Vec::new();
        flate2::read::GzDecoder::new(&compressed[..])
            .read_to_end(&mut tar_bytes)
            .unwrap();
        assert_eq!(crate::oci::sha256_digest(&tar_bytes), a.diff_id);

        let mut archive = tar::Archive::new(&tar_bytes[..]);
        let entries: Vec<(String, u32, u64, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.mtime().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            entries,
            vec![
                ("app/".to_string(), 0o755, 0, 0),
                ("app/hello".to_string(), 0o755, 0, 0)
            ]
        );
    }

    #[test]
    fn unchanged_inputs_reuse_the_cached_layer() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(&dir.path().join("store")).unwrap();
        let exe = dir.path().join("exe");
        std::fs::write(&exe, b"v1").unwrap();
        let layer = |store: &BlobStore| {
            cached_layer(
                store,
                binary_entries("hello", &exe),
                crate::oci::MEDIA_TYPE_OCI_LAYER_GZIP,
                0,
            )
            .unwrap()
        };
        let first = layer(&store);
        let BlobSource::File(path) = &first.blob.source else {
            panic!("layer not on disk")
        };
        let written = std::fs::metadata(path).unwrap().modified().unwrap();
        let second = layer(&store);
        assert_eq!(second.blob.digest, first.blob.digest);
        assert_eq!(second.diff_id, first.diff_id);
        assert_eq!(
            std::fs::metadata(path).unwrap().modified().unwrap(),
            written
        );

        // A lost blob is written again.
        std::fs::remove_file(path).unwrap();
        assert_eq!(layer(&store).blob.digest, first.blob.digest);
        assert!(path.is_file());

        // A rewritten binary (a new mtime, as every write gives one; set
        // here because the clock may not tick between two writes) is a new
        // layer, and writing the old bytes back gives the old layer again.
        let rewrite = |bytes: &[u8], seconds: u64| {
            std::fs::write(&exe, bytes).unwrap();
            let file = std::fs::File::options().write(true).open(&exe).unwrap();
            file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds))
                .unwrap();
        };
        rewrite(b"v2", 1_000);
        assert_ne!(layer(&store).blob.digest, first.blob.digest);
        rewrite(b"v1", 2_000);
        assert_eq!(layer(&store).blob.digest, first.blob.digest);
    }

    #[test]
    fn a_file_rewritten_in_place_with_its_mtime_put_back_is_a_new_layer() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(&dir.path().join("store")).unwrap();
        let exe = dir.path().join("exe");
        std::fs::write(&exe, b"v1").unwrap();
        const MEDIA_TYPE: &str = crate::oci::MEDIA_TYPE_OCI_LAYER_GZIP;
        let entries = || binary_entries("hello", &exe);
        let inputs = || LayerInputs::new(entries(), MEDIA_TYPE, 0).unwrap();
        let layer = || cached_layer(&store, entries(), MEDIA_TYPE, 0).unwrap();
        let first = layer();
        // The ctime comes from a clock that ticks every few milliseconds.
        let tick = || std::thread::sleep(std::time::Duration::from_millis(20));

        tick();
        let mtime = std::fs::metadata(&exe).unwrap().modified().unwrap();
        let mut file = std::fs::File::options().write(true).open(&exe).unwrap();
        file.write_all(b"v2").unwrap();
        file.set_modified(mtime).unwrap();
        drop(file);
        let second = layer();
        assert_ne!(second.blob.digest, first.blob.digest, "not the stale layer");

        // A new ctime alone: a cache miss, the same layer.
        tick();
        let mode = std::fs::metadata(&exe).unwrap().permissions();
        std::fs::set_permissions(&exe, mode).unwrap();
        assert!(inputs().cached(&store).is_none(), "read again");
        assert_eq!(layer().blob.digest, second.blob.digest);
    }

    #[test]
    fn older_layers_of_a_binary_leave_the_store_but_not_during_their_run() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let exe = dir.path().join("exe");
        let build = |store: &BlobStore, version: u64| {
            std::fs::write(&exe, format!("binary v{version}")).unwrap();
            let file = std::fs::File::options().write(true).open(&exe).unwrap();
            file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(version))
                .unwrap();
            cached_layer(
                store,
                binary_entries("hello", &exe),
                crate::oci::MEDIA_TYPE_OCI_LAYER_GZIP,
                0,
            )
            .unwrap()
            .blob
            .digest
        };
        // One run per version: each a store of its own.
        let digests: Vec<String> = (1..=5)
            .map(|v| build(&BlobStore::open(&root).unwrap(), v))
            .collect();
        let store = BlobStore::open(&root).unwrap();
        let stored: Vec<bool> = digests.iter().map(|d| store.get(d).is_some()).collect();
        assert_eq!(stored, [false, false, true, true, true]);

        // Version 1 again is written again, and pushes version 3 out.
        assert_eq!(build(&store, 1), digests[0]);
        assert!(store.get(&digests[2]).is_none());

        // Within one run nothing it used is deleted.
        let run = BlobStore::open(&root).unwrap();
        let used: Vec<String> = (6..=10).map(|v| build(&run, v)).collect();
        assert!(used.iter().all(|d| run.get(d).is_some()));
    }

    #[test]
    fn zstd_layer_has_the_same_diff_id_and_worker_count_does_not_matter() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(&dir.path().join("store")).unwrap();
        let exe = dir.path().join("exe");
        let data: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i % 7 + i / 5000) as u8)
            .collect();
        std::fs::write(&exe, &data).unwrap();
        let layer =
            |media_type| cached_layer(&store, binary_entries("x", &exe), media_type, 0).unwrap();
        let gzip = layer(crate::oci::MEDIA_TYPE_OCI_LAYER_GZIP);
        let zstd = layer(crate::oci::MEDIA_TYPE_OCI_LAYER_ZSTD);
        assert_eq!(zstd.diff_id, gzip.diff_id, "same tar inside");
        assert_ne!(zstd.blob.digest, gzip.blob.digest);
        let BlobSource::File(path) = &zstd.blob.source else {
            panic!("layer not on disk")
        };
        let tar = zstd::decode_all(std::fs::File::open(path).unwrap()).unwrap();
        assert_eq!(crate::oci::sha256_digest(&tar), zstd.diff_id);

        let compress = |workers: u32| {
            let mut encoder = zstd::Encoder::new(Vec::new(), ZSTD_LEVEL).unwrap();
            encoder.multithread(workers).unwrap();
            encoder
                .set_parameter(zstd::zstd_safe::CParameter::JobSize(ZSTD_JOB_SIZE))
                .unwrap();
            encoder.write_all(&tar).unwrap();
            encoder.finish().unwrap()
        };
        assert_eq!(compress(1), compress(4), "same bytes for 1 and 4 workers");
    }

    #[test]
    fn data_symlinks_stay_inside_the_data_directory_and_become_relative() {
        let dir = tempfile::tempdir().unwrap();
        let package = dir.path().join("pkg");
        let data = package.join("data");
        std::fs::create_dir_all(data.join("sub/deep")).unwrap();
        std::fs::write(data.join("a.txt"), "a").unwrap();
        std::fs::write(package.join("README"), "r").unwrap();
        let link = |target: &Path, at: &str| std::os::unix::fs::symlink(target, data.join(at));
        link(Path::new("a.txt"), "inside").unwrap();
        link(&data.join("sub"), "absolute").unwrap();
        link(Path::new("../../../data/a.txt"), "sub/deep/up").unwrap();
        link(Path::new("."), "sub/here").unwrap();
        link(Path::new(".."), "sub/deep/parent").unwrap();
        let links: Vec<(String, PathBuf)> = data_entries(&data, &package)
            .unwrap()
            .into_iter()
            .filter_map(|entry| match entry {
                Entry::Symlink { path, target } => Some((path, target)),
                _ => None,
            })
            .collect();
        let expected = [
            ("var/run/krust/absolute", "sub"),
            ("var/run/krust/inside", "a.txt"),
            ("var/run/krust/sub/deep/parent", ".."),
            ("var/run/krust/sub/deep/up", "../../a.txt"),
            ("var/run/krust/sub/here", "."),
        ]
        .map(|(path, target)| (path.to_string(), PathBuf::from(target)));
        assert_eq!(links, expected);

        for (target, at) in [
            ("/etc/passwd", "outside"),
            ("../README", "package"),
            ("missing", "dangling"),
        ] {
            link(Path::new(target), at).unwrap();
            let err = format!("{:#}", data_entries(&data, &package).unwrap_err());
            assert!(
                err.contains(&format!("data symlink {}", data.join(at).display()))
                    && err.contains("outside the data directory"),
                "{err}"
            );
            std::fs::remove_file(data.join(at)).unwrap();
        }
    }

    #[test]
    fn data_special_files_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let fifo = data.join("pipe");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let err = format!("{:#}", data_entries(&data, dir.path()).unwrap_err());
        assert!(
            err.contains(&format!("data entry {} is a named pipe", fifo.display()))
                && err.contains("regular files, directories and symlinks"),
            "{err}"
        );
        std::fs::remove_file(&fifo).unwrap();
        let socket = std::os::unix::net::UnixListener::bind(data.join("sock")).unwrap();
        let err = format!("{:#}", data_entries(&data, dir.path()).unwrap_err());
        assert!(err.contains("is a socket"), "{err}");
        drop(socket);
    }
}
