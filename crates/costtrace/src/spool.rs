//! The local spool: where records go when the sink fails, so nothing is lost.
//!
//! Layout: `DIR/<pid>-<nonce>/seg-<n>.jsonl`, one JSON record per line. Each
//! process owns one subdirectory, held by an exclusive lock on its `lock`
//! file for the life of the recorder; it is made as `.<pid>-<nonce>` (a name
//! scanners ignore), locked, and only then renamed, so no other process can
//! take it for a dead one's. Appends are fsynced before a flush is
//! acknowledged. Segments are replayed oldest first when the sink works again;
//! a segment is deleted only after every record in it was written and the
//! sink flushed (a failed flush keeps the segment for later), and since
//! sinks write idempotently by record id, replaying a segment twice (after a
//! crash between the write and the delete) never double-counts.
//!
//! At start-up the recorder adopts the subdirectories of processes that died
//! (their lock is free) and replays them too: that is how records spooled
//! before a `SIGKILL` reach the store. A directory is deleted only when
//! nothing but its lock is left in it.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use costtrace_core::Record;

use crate::sink::{Sink, SinkError};

/// Records per segment before a new one is started.
const SEGMENT_RECORDS: u64 = 10_000;

struct Segment {
    path: PathBuf,
    /// Records the spool counted for this segment (what replaying it takes
    /// off [`Spool::records`]).
    records: u64,
    /// The owning directory's lock, for adopted directories (released, and
    /// the directory removed, when its last segment is replayed).
    adopted_dir: Option<(PathBuf, File)>,
}

struct Current {
    file: File,
    records: u64,
    len: u64,
}

pub(crate) struct Spool {
    own_dir: PathBuf,
    _own_lock: File,
    next_seq: u64,
    /// The segment being appended to: its file, the records in it and its
    /// length in bytes (where a failed append is cut back to).
    current: Option<Current>,
    /// Closed segments waiting to be replayed, oldest first.
    pending: VecDeque<Segment>,
    /// Records currently in the spool.
    pub(crate) records: u64,
}

fn seg_seq(p: &Path) -> Option<u64> {
    p.file_name()?
        .to_str()?
        .strip_prefix("seg-")?
        .strip_suffix(".jsonl")?
        .parse()
        .ok()
}

fn segments_in(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut segs: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| seg_seq(p).is_some())
        .collect();
    segs.sort_by_key(|p| seg_seq(p));
    Ok(segs)
}

fn count_lines(p: &Path) -> u64 {
    File::open(p).map_or(0, |f| BufReader::new(f).lines().count() as u64)
}

impl Spool {
    /// Opens the spool under `root`, adopting what dead processes left.
    pub(crate) fn open(root: &Path) -> io::Result<Spool> {
        fs::create_dir_all(root)?;
        let nonce = crate::id::v7_at(crate::id::now_micros())
            .simple()
            .to_string();
        let name = format!("{}-{}", std::process::id(), &nonce[20..]);
        // Made under a name scanners ignore, locked, then renamed: another
        // process scanning meanwhile never sees it unlocked (and empty), so
        // never takes it for a dead process's spool and removes it.
        let tmp_dir = root.join(format!(".{name}"));
        let own_dir = root.join(name);
        fs::create_dir_all(&tmp_dir)?;
        let own_lock = lock_new_dir(&tmp_dir, &own_dir).inspect_err(|_| {
            let _ = fs::remove_dir_all(&tmp_dir);
        })?;
        let mut pending = VecDeque::new();
        let mut records = 0;
        let mut others: Vec<PathBuf> = fs::read_dir(root)?
            .filter_map(|e| e.ok())
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .map(|e| e.path())
            .filter(|p| p.is_dir() && *p != own_dir)
            .collect();
        others.sort();
        for dir in others {
            let Ok(lock) = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(dir.join("lock"))
            else {
                continue;
            };
            if lock.try_lock().is_err() {
                continue; // a live process owns it
            }
            #[cfg(test)]
            tests::BEFORE_ADOPT.with(|f| {
                if let Some(f) = f.take() {
                    f(&dir);
                }
            });
            // Another process may have adopted and removed it meanwhile.
            let Ok(segs) = segments_in(&dir) else {
                continue;
            };
            if segs.is_empty() {
                if holds_only_lock(&dir) {
                    let _ = fs::remove_dir_all(&dir);
                }
                continue;
            }
            let n = segs.len();
            let mut lock = Some(lock);
            for (i, path) in segs.into_iter().enumerate() {
                let seg_records = count_lines(&path);
                records += seg_records;
                let adopted_dir = if i + 1 == n {
                    lock.take().map(|l| (dir.clone(), l))
                } else {
                    None
                };
                pending.push_back(Segment {
                    path,
                    records: seg_records,
                    adopted_dir,
                });
            }
            tracing::info!(dir = %dir.display(), "costtrace adopted a spool left by an earlier process");
        }
        Ok(Spool {
            own_dir,
            _own_lock: own_lock,
            next_seq: 0,
            current: None,
            pending,
            records,
        })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Appends records durably (fsync) to the current segment. On an error
    /// the segment is cut back to its length before the append, so that torn
    /// bytes never join the next append's first line; if even that fails the
    /// segment is closed (its torn tail is then its last line, which replay
    /// skips) and the next append starts a new one.
    pub(crate) fn append(&mut self, records: &[Record]) -> io::Result<()> {
        let mut buf = Vec::with_capacity(records.len() * 512);
        for r in records {
            serde_json::to_writer(&mut buf, r).map_err(io::Error::other)?;
            buf.push(b'\n');
        }
        if self.current.is_none() {
            let path = self
                .own_dir
                .join(format!("seg-{:020}.jsonl", self.next_seq));
            self.next_seq += 1;
            let file = OpenOptions::new().create(true).append(true).open(&path)?;
            let len = file.metadata()?.len();
            self.current = Some(Current {
                file,
                records: 0,
                len,
            });
        }
        let Some(cur) = self.current.as_mut() else {
            return Ok(());
        };
        if let Err(e) = write_durably(&mut cur.file, &buf) {
            let cut = cur
                .file
                .set_len(cur.len)
                .and_then(|()| cur.file.sync_data());
            if let Err(cut_err) = cut {
                tracing::warn!("costtrace spool: cannot cut back a failed append: {cut_err}");
                self.close_current();
            }
            return Err(e);
        }
        cur.len += buf.len() as u64;
        cur.records += records.len() as u64;
        self.records += records.len() as u64;
        if cur.records >= SEGMENT_RECORDS {
            self.close_current();
        }
        Ok(())
    }

    fn close_current(&mut self) {
        if let Some(cur) = self.current.take() {
            let path = self
                .own_dir
                .join(format!("seg-{:020}.jsonl", self.next_seq - 1));
            self.pending.push_back(Segment {
                path,
                records: cur.records,
                adopted_dir: None,
            });
        }
    }

    /// Writes spooled records to `sink`, oldest first, deleting each segment
    /// once all of it is written and the sink's flush succeeded. Stops at the first error (the sink is still
    /// down). Returns how many records were replayed.
    pub(crate) fn replay(
        &mut self,
        sink: &mut dyn Sink,
        batch_size: usize,
    ) -> Result<u64, SinkError> {
        self.close_current();
        let mut replayed = 0;
        while let Some(seg) = self.pending.front() {
            let records = read_segment(&seg.path)?;
            for chunk in records.chunks(batch_size.max(1)) {
                sink.write(chunk)?;
            }
            // Durable in the sink before it is gone from here.
            sink.flush()?;
            let _ = fs::remove_file(&seg.path);
            replayed += records.len() as u64;
            self.records = self.records.saturating_sub(seg.records);
            if let Some(seg) = self.pending.pop_front()
                && let Some((dir, lock)) = seg.adopted_dir
            {
                drop(lock);
                let _ = fs::remove_dir_all(dir);
            }
        }
        Ok(replayed)
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        self.close_current();
        // Leave nothing behind when everything was replayed. What is on disk
        // decides, not the counter: a directory that still holds a segment
        // (or a line set aside as corrupt) stays for the next process.
        if holds_only_lock(&self.own_dir) {
            let _ = fs::remove_dir_all(&self.own_dir);
        }
    }
}

/// Locks the new spool directory `tmp` and renames it to `dir`.
fn lock_new_dir(tmp: &Path, dir: &Path) -> io::Result<File> {
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(tmp.join("lock"))?;
    lock.try_lock()
        .map_err(|e| io::Error::other(format!("cannot lock {}: {e}", tmp.display())))?;
    fs::rename(tmp, dir)?;
    Ok(lock)
}

/// Whether `dir` holds nothing but its `lock` file (false when it cannot be
/// read: then nothing is deleted).
fn holds_only_lock(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .into_iter()
            .all(|e| e.is_ok_and(|e| e.file_name() == "lock"))
    })
}

/// Writes `buf` and makes it durable.
fn write_durably(file: &mut File, buf: &[u8]) -> io::Result<()> {
    #[cfg(test)]
    if let Some(n) = tests::FAIL_APPEND_AFTER.with(|f| f.take()) {
        // A disk that fills up part-way through the append.
        file.write_all(&buf[..n.min(buf.len())])?;
        return Err(io::Error::other("injected: no space left on device"));
    }
    file.write_all(buf)?;
    file.sync_data()
}

/// Reads a segment's records. A torn last line (the process died mid-append, before the append
/// was acknowledged) is skipped with a warning.
fn read_segment(path: &Path) -> Result<Vec<Record>, SinkError> {
    let f =
        File::open(path).map_err(|e| SinkError::new(format!("spool {}: {e}", path.display())))?;
    let lines: Vec<String> = BufReader::new(f)
        .lines()
        .collect::<Result<_, _>>()
        .map_err(|e| SinkError::new(format!("spool {}: {e}", path.display())))?;
    let n = lines.len();
    let mut out = Vec::with_capacity(n);
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str::<Record>(line) {
            Ok(r) => out.push(r),
            Err(e) if i + 1 == n => {
                tracing::warn!(spool = %path.display(), "skipping a torn last spool line: {e}");
            }
            Err(e) => {
                tracing::error!(spool = %path.display(), line = i + 1, "unreadable spool line kept aside: {e}");
                let aside = path.with_extension(format!("corrupt-{}", i + 1));
                let _ = fs::write(aside, line);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use costtrace_core::{Environment, PricingTier, ScopeRecord, Timestamp};

    /// A scope record named `s{i}` (for the crate's unit tests).
    pub(crate) fn rec(i: u64) -> Record {
        Record::Scope(ScopeRecord {
            id: crate::id::v7_at(i as i64 * 1000),
            parent_id: None,
            name: format!("s{i}"),
            attrs: Default::default(),
            environment: Environment::Development,
            started_at: Timestamp(0),
            duration_ms: 1.0,
            error_occurred: false,
            error_message: None,
            success_count: 0,
            failure_count: 0,
            errors: vec![],
            pricing_tier: PricingTier::Standard,
            item_count: None,
        })
    }

    struct Collect(Vec<Record>, bool);
    impl Sink for Collect {
        fn write(&mut self, r: &[Record]) -> Result<(), SinkError> {
            if self.1 {
                return Err(SinkError::new("down"));
            }
            self.0.extend_from_slice(r);
            Ok(())
        }
        fn describe(&self) -> String {
            "collect".into()
        }
    }

    #[test]
    fn spooled_records_replay_in_order_and_a_dead_process_spool_is_adopted() {
        let root = tempfile::tempdir().unwrap();
        let mut a = Spool::open(root.path()).unwrap();
        let recs: Vec<Record> = (0..25_000).map(rec).collect();
        for chunk in recs.chunks(1000) {
            a.append(chunk).unwrap();
        }
        assert_eq!(a.records, 25_000);
        let mut down = Collect(vec![], true);
        assert!(a.replay(&mut down, 512).is_err());
        assert_eq!(a.records, 25_000, "nothing removed on failure");
        // The process dies: its lock is released, its segments stay.
        drop(a);
        let mut b = Spool::open(root.path()).unwrap();
        assert_eq!(b.records, 25_000, "adopted");
        let mut up = Collect(vec![], false);
        assert_eq!(b.replay(&mut up, 512).unwrap(), 25_000);
        assert_eq!(up.0, recs, "in order, exactly once");
        assert!(b.is_empty());
        drop(b);
        assert_eq!(
            std::fs::read_dir(root.path()).unwrap().count(),
            0,
            "nothing left behind"
        );
    }

    /// Accepts writes but cannot make them durable.
    struct FlushFails(Vec<Record>);
    impl Sink for FlushFails {
        fn write(&mut self, r: &[Record]) -> Result<(), SinkError> {
            self.0.extend_from_slice(r);
            Ok(())
        }
        fn flush(&mut self) -> Result<(), SinkError> {
            Err(SinkError::new("fsync failed"))
        }
        fn describe(&self) -> String {
            "flush-fails".into()
        }
    }

    #[test]
    fn a_segment_stays_until_the_sink_flush_succeeds() {
        let root = tempfile::tempdir().unwrap();
        let mut s = Spool::open(root.path()).unwrap();
        let recs = [rec(1), rec(2)];
        s.append(&recs).unwrap();
        let mut sink = FlushFails(vec![]);
        let e = s.replay(&mut sink, 10).unwrap_err();
        assert_eq!(e.message, "fsync failed");
        assert_eq!(s.records, 2, "still counted");
        assert_eq!(segments_in(&s.own_dir).unwrap().len(), 1, "still on disk");
        let mut up = Collect(vec![], false);
        assert_eq!(s.replay(&mut up, 10).unwrap(), 2);
        assert_eq!(up.0, recs);
        assert!(segments_in(&s.own_dir).unwrap().is_empty());
    }

    thread_local! {
        /// Makes the next append write this many bytes, then fail.
        pub(super) static FAIL_APPEND_AFTER: std::cell::Cell<Option<usize>> =
            const { std::cell::Cell::new(None) };
    }

    #[test]
    fn a_failed_append_leaves_no_torn_bytes_behind() {
        let root = tempfile::tempdir().unwrap();
        let mut s = Spool::open(root.path()).unwrap();
        let first = [rec(1), rec(2)];
        s.append(&first).unwrap();
        FAIL_APPEND_AFTER.with(|f| f.set(Some(40)));
        assert!(s.append(&[rec(3)]).is_err());
        assert_eq!(s.records, 2, "the failed append is not counted");
        let later = [rec(4), rec(5)];
        s.append(&later).unwrap();
        assert_eq!(s.records, 4);
        let mut up = Collect(vec![], false);
        assert_eq!(s.replay(&mut up, 10).unwrap(), 4);
        let want: Vec<Record> = first.iter().chain(&later).cloned().collect();
        assert_eq!(up.0, want, "no record lost to a torn line");
        assert_eq!(s.records, 0);
        let names: Vec<String> = fs::read_dir(&s.own_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["lock"], "nothing set aside as corrupt");
    }

    #[test]
    fn drop_keeps_a_directory_that_still_holds_segments() {
        let root = tempfile::tempdir().unwrap();
        let mut s = Spool::open(root.path()).unwrap();
        s.append(&[rec(1)]).unwrap();
        let dir = s.own_dir.clone();
        // However the counter came to say so, the segment is still there.
        s.records = 0;
        drop(s);
        assert_eq!(segments_in(&dir).unwrap().len(), 1, "not deleted");
        let mut b = Spool::open(root.path()).unwrap();
        assert_eq!(b.records, 1, "adopted by the next process");
        let mut up = Collect(vec![], false);
        assert_eq!(b.replay(&mut up, 10).unwrap(), 1);
    }

    type Hook = Box<dyn FnOnce(&Path)>;

    thread_local! {
        /// Runs once during the next `Spool::open`, after it locked a
        /// directory to adopt and before it reads it.
        pub(super) static BEFORE_ADOPT: std::cell::Cell<Option<Hook>> =
            std::cell::Cell::new(None);
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn directories_being_created_are_ignored_and_unlocked_ones_adopted() {
        let root = tempfile::tempdir().unwrap();
        // Another process between creating its directory and renaming it.
        let creating = root.path().join(".4242-0123456789ab");
        fs::create_dir(&creating).unwrap();
        // A dead process's spool without a lock file, one with nothing in it.
        let dead = root.path().join("4243-0123456789ab");
        fs::create_dir(&dead).unwrap();
        let line = serde_json::to_string(&rec(7)).unwrap();
        fs::write(dead.join("seg-00000000000000000000.jsonl"), line + "\n").unwrap();
        let empty = root.path().join("4244-0123456789ab");
        fs::create_dir(&empty).unwrap();

        let mut s = Spool::open(root.path()).unwrap();
        assert!(creating.is_dir(), "a directory being created is left alone");
        assert_eq!(names_in(&creating), Vec::<String>::new(), "not even locked");
        assert!(!empty.exists(), "an empty unlocked directory is removed");
        assert_eq!(s.records, 1, "the dead process's segment is adopted");
        let own = s
            .own_dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(!own.starts_with('.'), "{own}");
        assert_eq!(
            names_in(root.path()).len(),
            3,
            "{:?}",
            names_in(root.path())
        );
        let mut up = Collect(vec![], false);
        assert_eq!(s.replay(&mut up, 10).unwrap(), 1);
        match &up.0[..] {
            [Record::Scope(sc)] => assert_eq!(sc.name, "s7"),
            other => panic!("{other:?}"),
        }
        assert!(!dead.exists(), "removed once replayed");
    }

    #[test]
    fn a_directory_that_vanishes_during_the_scan_does_not_fail_open() {
        let root = tempfile::tempdir().unwrap();
        let dead = root.path().join("4245-0123456789ab");
        fs::create_dir(&dead).unwrap();
        BEFORE_ADOPT.with(|f| {
            f.set(Some(Box::new(|d: &Path| {
                // Another process adopted and removed it.
                fs::remove_dir_all(d).unwrap();
            })))
        });
        let s = Spool::open(root.path()).unwrap();
        assert_eq!(s.records, 0);
        assert!(!dead.exists());
    }

    #[test]
    fn a_torn_last_line_is_skipped() {
        let root = tempfile::tempdir().unwrap();
        let mut s = Spool::open(root.path()).unwrap();
        s.append(&[rec(1), rec(2)]).unwrap();
        let cur = s.current.as_mut().unwrap();
        cur.file
            .write_all(b"{\"kind\":\"scope\",\"id\":\"0190")
            .unwrap();
        let mut up = Collect(vec![], false);
        assert_eq!(s.replay(&mut up, 10).unwrap(), 2);
    }
}
