//! Deterministic parallel gzip. The input is cut into fixed-size blocks, each
//! compressed on its own into a complete gzip member (libdeflate at a fixed
//! level; header mtime 0), and the members are written in order: a
//! multi-member gzip stream, which every gzip reader (Go's compress/gzip in
//! containerd, CRI-O and the registries included) reads as one. Block size,
//! level and library version (pinned by Cargo.lock) are fixed, so the output
//! bytes do not depend on the number of cores. Memory stays bounded: at most
//! two blocks per worker are in flight.
//!
//! Because a member depends on its block alone, members are cached by the
//! BLAKE3 hash of their block: a rebuilt binary whose bytes are mostly
//! unchanged (assets, large read-only data, an edit near the end)
//! recompresses only the blocks that changed, with the same output as
//! compressing them all.
//!
//! The stream also hashes its input (sha256, a layer's diff_id) on a thread
//! of its own: done on the writing thread, that hash alone would take as long
//! as everything else the writer does. Block and member buffers are used
//! again rather than allocated per block, and file content can be read
//! straight into the blocks ([`ParallelGzip::copy_from`]).

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use sha2::{Digest as _, Sha256};

/// Uncompressed bytes per gzip member.
pub const BLOCK_SIZE: usize = 1 << 20;

/// The member cache is pruned back to three quarters of this size, oldest
/// used first, when it grows beyond it: room for the members of a dozen
/// versions of a 50 MiB binary.
const MEMBER_CACHE_BYTES: u64 = 256 << 20;

type Block = Arc<PooledBlock>;
type Job = (u64, Block);
type Done = (u64, io::Result<Vec<u8>>);

/// Buffers for blocks and members, used again once done with: allocated
/// afresh, every 1 MiB costs 256 page faults, a tenth of the CPU a rebuilt
/// 50 MiB layer takes.
#[derive(Clone, Default)]
struct Buffers(Arc<Mutex<Vec<Vec<u8>>>>);

impl Buffers {
    /// Buffers kept for use again; more are simply freed.
    const KEPT: usize = 32;

    fn take(&self) -> Vec<u8> {
        let reused = self.0.lock().ok().and_then(|mut free| free.pop());
        reused.unwrap_or_else(|| Vec::with_capacity(BLOCK_SIZE))
    }

    fn give(&self, mut buffer: Vec<u8>) {
        buffer.clear();
        if let Ok(mut free) = self.0.lock()
            && free.len() < Self::KEPT
        {
            free.push(buffer);
        }
    }
}

/// A block of input, read by the hashing thread and a compression worker;
/// its buffer goes back to the pool when both are done with it.
struct PooledBlock {
    data: Vec<u8>,
    pool: Buffers,
}

impl std::ops::Deref for PooledBlock {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for PooledBlock {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.data));
    }
}

/// A writer that gzips what it is given on all cores.
pub struct ParallelGzip<W: Write> {
    inner: W,
    block: Vec<u8>,
    jobs: Option<SyncSender<Job>>,
    done: Receiver<Done>,
    workers: Vec<JoinHandle<()>>,
    /// Every block, in order, to the thread hashing the input.
    to_digest: Option<SyncSender<Block>>,
    digester: Option<JoinHandle<Sha256>>,
    /// Members compressed but not yet written (they arrive out of order).
    ready: BTreeMap<u64, Vec<u8>>,
    buffers: Buffers,
    submitted: u64,
    written: u64,
    max_in_flight: u64,
}

impl<W: Write> ParallelGzip<W> {
    /// A stream at `level` (a libdeflate level, 1 to 12); `members`, when
    /// given, is the directory of cached members.
    pub fn new(inner: W, level: i32, members: Option<PathBuf>) -> io::Result<ParallelGzip<W>> {
        let level = libdeflater::CompressionLvl::new(level)
            .map_err(|_| io::Error::other(format!("gzip level {level} is out of range")))?;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (jobs, job_queue) = sync_channel::<Job>(threads);
        let (done_sender, done) = sync_channel::<Done>(threads * 2);
        let job_queue = Arc::new(Mutex::new(job_queue));
        let buffers = Buffers::default();
        let workers = (0..threads)
            .map(|_| {
                let queue = Arc::clone(&job_queue);
                let results = done_sender.clone();
                let members = members.clone();
                let buffers = buffers.clone();
                std::thread::spawn(move || {
                    worker(&queue, &results, level, members.as_deref(), &buffers)
                })
            })
            .collect();
        let (to_digest, blocks) = sync_channel::<Block>(threads * 2);
        let digester = std::thread::spawn(move || {
            let mut hasher = Sha256::new();
            for block in blocks {
                hasher.update(&block[..]);
            }
            hasher
        });
        Ok(ParallelGzip {
            inner,
            block: buffers.take(),
            jobs: Some(jobs),
            done,
            workers,
            to_digest: Some(to_digest),
            digester: Some(digester),
            ready: BTreeMap::new(),
            buffers,
            submitted: 0,
            written: 0,
            max_in_flight: threads as u64 * 2,
        })
    }

    /// Compresses what is left, writes every member and returns the inner
    /// writer with the sha256 digest (`sha256:…`) of the uncompressed input.
    pub fn finish(mut self) -> io::Result<(W, String)> {
        if !self.block.is_empty() || self.submitted == 0 {
            self.submit()?;
        }
        self.jobs = None;
        self.to_digest = None;
        while self.written < self.submitted {
            self.receive_one()?;
        }
        for worker in self.workers.drain(..) {
            worker
                .join()
                .map_err(|_| io::Error::other("a compression thread panicked"))?;
        }
        let hasher = self
            .digester
            .take()
            .ok_or_else(|| io::Error::other("gzip stream already finished"))?
            .join()
            .map_err(|_| io::Error::other("the hashing thread panicked"))?;
        self.inner.flush()?;
        let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
        Ok((self.inner, digest))
    }

    /// Reads `len` bytes of `reader` straight into the blocks (through a
    /// `Write` they would be copied once more).
    pub fn copy_from(&mut self, reader: &mut impl Read, len: u64) -> io::Result<()> {
        let mut left = len;
        while left > 0 {
            let room = (BLOCK_SIZE - self.block.len()) as u64;
            let read = reader.take(room.min(left)).read_to_end(&mut self.block)?;
            if read == 0 {
                return Err(ended_early(left));
            }
            left -= read as u64;
            if self.block.len() == BLOCK_SIZE {
                self.submit()?;
            }
        }
        Ok(())
    }

    fn submit(&mut self) -> io::Result<()> {
        while self.submitted - self.written >= self.max_in_flight {
            self.receive_one()?;
        }
        let block = Arc::new(PooledBlock {
            data: std::mem::replace(&mut self.block, self.buffers.take()),
            pool: self.buffers.clone(),
        });
        let stopped = || io::Error::other("compression threads stopped");
        self.to_digest
            .as_ref()
            .ok_or_else(stopped)?
            .send(Arc::clone(&block))
            .map_err(|_| stopped())?;
        self.jobs
            .as_ref()
            .ok_or_else(stopped)?
            .send((self.submitted, block))
            .map_err(|_| stopped())?;
        self.submitted += 1;
        Ok(())
    }

    /// Waits for one member and writes every member that is next in order.
    fn receive_one(&mut self) -> io::Result<()> {
        let (sequence, member) = self
            .done
            .recv()
            .map_err(|_| io::Error::other("compression threads stopped"))?;
        self.ready.insert(sequence, member?);
        while let Some(member) = self.ready.remove(&self.written) {
            self.inner.write_all(&member)?;
            self.buffers.give(member);
            self.written += 1;
        }
        Ok(())
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = BLOCK_SIZE - self.block.len();
        let taken = room.min(buf.len());
        self.block.extend_from_slice(&buf[..taken]);
        if self.block.len() == BLOCK_SIZE {
            self.submit()?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A file that had `left` bytes fewer than its size said when it was read.
pub fn ended_early(left: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("the file ended {left} bytes early (it changed while read)"),
    )
}

fn worker(
    queue: &Mutex<Receiver<Job>>,
    results: &SyncSender<Done>,
    level: libdeflater::CompressionLvl,
    members: Option<&Path>,
    buffers: &Buffers,
) {
    let mut compressor = libdeflater::Compressor::new(level);
    let level = i32::from(level);
    loop {
        let job = match queue.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        let Ok((sequence, block)) = job else {
            return;
        };
        let member = buffers.take();
        let member = match members {
            Some(dir) => cached_member(dir, &block, level, &mut compressor, member),
            None => compress(&block, &mut compressor, member),
        };
        // The block's buffer goes back to the pool once the hashing thread
        // is done with it too.
        drop(block);
        if results.send((sequence, member)).is_err() {
            return;
        }
    }
}

/// The member of `block` from the cache, else compressed and cached. A
/// cached member is used only when its trailer (CRC-32 and length of the
/// uncompressed data) matches the block.
/// `buffer` (empty) is where the member goes.
fn cached_member(
    dir: &Path,
    block: &[u8],
    level: i32,
    compressor: &mut libdeflater::Compressor,
    mut buffer: Vec<u8>,
) -> io::Result<Vec<u8>> {
    let name = format!("{}.libdeflate-{level}", blake3::hash(block).to_hex());
    let path = dir.join(&name);
    if let Ok(mut file) = std::fs::File::open(&path)
        && file.read_to_end(&mut buffer).is_ok()
        && trailer_matches(&buffer, block)
    {
        // Its mtime says when it was last used, for pruning (the owner may
        // set it through a read-only handle).
        let _ = file.set_modified(std::time::SystemTime::now());
        return Ok(buffer);
    }
    buffer.clear();
    let member = compress(block, compressor, buffer)?;
    // A cache that cannot be written only costs speed (and leaves no
    // partial member behind).
    if std::fs::create_dir_all(dir).is_ok() {
        let _ = crate::fsutil::write_atomic(&path, &member);
    }
    Ok(member)
}

/// Deletes the least recently used members once the cache holds more than
/// [`MEMBER_CACHE_BYTES`], down to three quarters of that. Best effort.
pub fn prune_members(dir: &Path) {
    prune_to(dir, MEMBER_CACHE_BYTES);
}

fn prune_to(dir: &Path, limit: u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut members: Vec<(std::time::SystemTime, u64, PathBuf)> = entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let meta = entry.metadata().ok()?;
            Some((meta.modified().ok()?, meta.len(), entry.path()))
        })
        .collect();
    let mut total: u64 = members.iter().map(|(_, size, _)| size).sum();
    if total <= limit {
        return;
    }
    members.sort();
    for (_, size, path) in members {
        if total <= limit / 4 * 3 {
            break;
        }
        if std::fs::remove_file(&path).is_ok() {
            total -= size;
        }
    }
}

fn trailer_matches(member: &[u8], block: &[u8]) -> bool {
    let Some(trailer) = member.len().checked_sub(8).map(|at| &member[at..]) else {
        return false;
    };
    let mut crc = flate2::Crc::new();
    crc.update(block);
    trailer[..4] == crc.sum().to_le_bytes() && trailer[4..] == (block.len() as u32).to_le_bytes()
}

/// One complete gzip member: libdeflate's fixed header (mtime 0, no name),
/// deflate, trailer; written into `member` (empty).
fn compress(
    block: &[u8],
    compressor: &mut libdeflater::Compressor,
    mut member: Vec<u8>,
) -> io::Result<Vec<u8>> {
    member.resize(compressor.gzip_compress_bound(block.len()), 0);
    let size = compressor
        .gzip_compress(block, &mut member)
        .map_err(|err| io::Error::other(format!("gzip compression failed: {err:?}")))?;
    member.truncate(size);
    Ok(member)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut writer = ParallelGzip::new(Vec::new(), 1, None).unwrap();
        // Odd-sized writes cross block boundaries.
        for chunk in data.chunks(333_333) {
            writer.write_all(chunk).unwrap();
        }
        writer.finish().unwrap().0
    }

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn round_trips_and_is_deterministic() {
        let data: Vec<u8> = (0..(BLOCK_SIZE * 3 + 12_345))
            .map(|i| (i % 251) as u8 ^ (i / 4093) as u8)
            .collect();
        let a = gzip(&data);
        assert_eq!(gunzip(&a), data);
        let mut writer = ParallelGzip::new(Vec::new(), 1, None).unwrap();
        writer.write_all(&data).unwrap();
        let (_, digest) = writer.finish().unwrap();
        assert_eq!(
            digest,
            crate::oci::sha256_digest(&data),
            "digest of the input"
        );
        assert_eq!(a, gzip(&data), "same input, same bytes");
        // Four members, each a standalone gzip stream with mtime 0.
        assert_eq!(&a[..8], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
        assert_eq!(
            a.windows(8)
                .filter(|w| w == &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0])
                .count(),
            4
        );
    }

    #[test]
    fn cached_members_give_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..(BLOCK_SIZE * 2 + 7)).map(|i| (i % 13) as u8).collect();
        let with_cache = || {
            let mut writer =
                ParallelGzip::new(Vec::new(), 1, Some(dir.path().to_path_buf())).unwrap();
            writer.write_all(&data).unwrap();
            writer.finish().unwrap().0
        };
        let first = with_cache();
        assert_eq!(first, gzip(&data));
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            3,
            "one file per member"
        );
        assert_eq!(with_cache(), first, "members read back from the cache");

        // A damaged member is not used.
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            std::fs::write(entry.unwrap().path(), b"garbage").unwrap();
        }
        assert_eq!(with_cache(), first);
    }

    #[test]
    fn pruning_deletes_the_least_recently_used_members() {
        let dir = tempfile::tempdir().unwrap();
        for (name, age) in [("old", 300), ("middle", 200), ("new", 100)] {
            let path = dir.path().join(name);
            std::fs::write(&path, vec![0u8; 1000]).unwrap();
            let file = std::fs::File::options().write(true).open(&path).unwrap();
            file.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(age))
                .unwrap();
        }
        let names = || {
            let mut names: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        prune_to(dir.path(), 3000);
        assert_eq!(names(), ["middle", "new", "old"], "within the limit");
        prune_to(dir.path(), 2000);
        assert_eq!(names(), ["new"], "down to three quarters of the limit");
    }

    #[test]
    fn empty_input_is_one_empty_member() {
        let out = gzip(&[]);
        assert!(gunzip(&out).is_empty());
        assert!(out.starts_with(&[0x1f, 0x8b]));
    }
}
