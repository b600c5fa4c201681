//! Deterministic parallel gzip. The input is cut into fixed-size blocks, each
//! compressed on its own into a complete gzip member (header mtime 0, fixed
//! level), and the members are written in order: a multi-member gzip stream,
//! which every gzip reader (Go's compress/gzip in containerd, CRI-O and the
//! registries included) reads as one. Block size and level are constants, so
//! the output bytes do not depend on the number of cores. Memory stays
//! bounded: at most two blocks per worker are in flight.
//!
//! Because a member depends on its block alone, members are cached by the
//! sha256 of their block: a rebuilt binary whose bytes are mostly unchanged
//! (assets, large read-only data, an edit near the end) recompresses only
//! the blocks that changed, with the same output as compressing them all.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use std::path::{Path, PathBuf};

use flate2::{Compression, GzBuilder};
use sha2::{Digest as _, Sha256};

/// Uncompressed bytes per gzip member.
pub const BLOCK_SIZE: usize = 1 << 20;

type Job = (u64, Vec<u8>);
type Done = (u64, io::Result<Vec<u8>>);

/// A writer that gzips what it is given on all cores.
pub struct ParallelGzip<W: Write> {
    inner: W,
    block: Vec<u8>,
    jobs: Option<SyncSender<Job>>,
    done: Receiver<Done>,
    workers: Vec<JoinHandle<()>>,
    /// Members compressed but not yet written (they arrive out of order).
    ready: BTreeMap<u64, Vec<u8>>,
    submitted: u64,
    written: u64,
    max_in_flight: u64,
}

impl<W: Write> ParallelGzip<W> {
    /// A stream at `level`; `members`, when given, is the directory of
    /// cached members.
    pub fn new(inner: W, level: u32, members: Option<PathBuf>) -> ParallelGzip<W> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (jobs, job_queue) = sync_channel::<Job>(threads);
        let (done_sender, done) = sync_channel::<Done>(threads * 2);
        let job_queue = Arc::new(Mutex::new(job_queue));
        let workers = (0..threads)
            .map(|_| {
                let queue = Arc::clone(&job_queue);
                let results = done_sender.clone();
                let members = members.clone();
                std::thread::spawn(move || worker(&queue, &results, level, members.as_deref()))
            })
            .collect();
        ParallelGzip {
            inner,
            block: Vec::with_capacity(BLOCK_SIZE),
            jobs: Some(jobs),
            done,
            workers,
            ready: BTreeMap::new(),
            submitted: 0,
            written: 0,
            max_in_flight: threads as u64 * 2,
        }
    }

    /// Compresses what is left, writes every member and returns the inner
    /// writer.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.block.is_empty() || self.submitted == 0 {
            self.submit()?;
        }
        self.jobs = None;
        while self.written < self.submitted {
            self.receive_one()?;
        }
        for worker in self.workers.drain(..) {
            worker
                .join()
                .map_err(|_| io::Error::other("a compression thread panicked"))?;
        }
        self.inner.flush()?;
        Ok(self.inner)
    }

    fn submit(&mut self) -> io::Result<()> {
        while self.submitted - self.written >= self.max_in_flight {
            self.receive_one()?;
        }
        let block = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK_SIZE));
        let jobs = self
            .jobs
            .as_ref()
            .ok_or_else(|| io::Error::other("gzip stream already finished"))?;
        jobs.send((self.submitted, block))
            .map_err(|_| io::Error::other("compression threads stopped"))?;
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

fn worker(
    queue: &Mutex<Receiver<Job>>,
    results: &SyncSender<Done>,
    level: u32,
    members: Option<&Path>,
) {
    loop {
        let job = match queue.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        let Ok((sequence, block)) = job else {
            return;
        };
        let member = match members {
            Some(dir) => cached_member(dir, &block, level),
            None => compress(&block, level),
        };
        if results.send((sequence, member)).is_err() {
            return;
        }
    }
}

/// The member of `block` from the cache, else compressed and cached. A
/// cached member is used only when its trailer (CRC-32 and length of the
/// uncompressed data) matches the block.
fn cached_member(dir: &Path, block: &[u8], level: u32) -> io::Result<Vec<u8>> {
    let name = format!("{}-{level}", hex::encode(Sha256::digest(block)));
    let path = dir.join(&name);
    if let Ok(member) = std::fs::read(&path)
        && trailer_matches(&member, block)
    {
        return Ok(member);
    }
    let member = compress(block, level)?;
    // A cache that cannot be written only costs speed.
    let temp = dir.join(format!(".{name}.{}", std::process::id()));
    if std::fs::create_dir_all(dir).is_ok() && std::fs::write(&temp, &member).is_ok() {
        let _ = std::fs::rename(&temp, &path);
    }
    Ok(member)
}

fn trailer_matches(member: &[u8], block: &[u8]) -> bool {
    let Some(trailer) = member.len().checked_sub(8).map(|at| &member[at..]) else {
        return false;
    };
    let mut crc = flate2::Crc::new();
    crc.update(block);
    trailer[..4] == crc.sum().to_le_bytes() && trailer[4..] == (block.len() as u32).to_le_bytes()
}

/// One complete gzip member: fixed header (mtime 0, no name), deflate, trailer.
fn compress(block: &[u8], level: u32) -> io::Result<Vec<u8>> {
    let mut encoder = GzBuilder::new().mtime(0).write(
        Vec::with_capacity(block.len() / 2 + 64),
        Compression::new(level),
    );
    encoder.write_all(block)?;
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut writer = ParallelGzip::new(Vec::new(), 1, None);
        // Odd-sized writes cross block boundaries.
        for chunk in data.chunks(333_333) {
            writer.write_all(chunk).unwrap();
        }
        writer.finish().unwrap()
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
        assert_eq!(a, gzip(&data), "same input, same bytes");
        // Four members, each a standalone gzip stream with mtime 0.
        assert_eq!(&a[..8], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn cached_members_give_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..(BLOCK_SIZE * 2 + 7)).map(|i| (i % 13) as u8).collect();
        let with_cache = || {
            let mut writer = ParallelGzip::new(Vec::new(), 1, Some(dir.path().to_path_buf()));
            writer.write_all(&data).unwrap();
            writer.finish().unwrap()
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
    fn empty_input_is_one_empty_member() {
        let out = gzip(&[]);
        assert!(gunzip(&out).is_empty());
        assert!(out.starts_with(&[0x1f, 0x8b]));
    }
}
