//! The audit log's writer: calls hand their entries to one thread that
//! commits whatever has queued up in one transaction (group commit), so no
//! call waits for SQLite.
//!
//! After a commit the writer waits [`WINDOW`] before it takes the next
//! batch, so under load it wakes once per window rather than once per
//! call: a wake-up costs a context switch on the call's core.
//!
//! What is lost when: nothing on a clean shutdown ([`AuditLog::flush`]
//! returns once every entry handed over before it is committed, and
//! dropping the last handle commits the rest); on a crash, the entries of
//! the last [`WINDOW`] at most, and never more than [`QUEUE`]. A full
//! queue is not dropped: the call writes its entry itself.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use super::{AuditEntry, Database};

/// Most entries waiting for the writer.
pub const QUEUE: usize = 4096;

/// How long the writer lets entries gather after a commit.
pub const WINDOW: std::time::Duration = std::time::Duration::from_millis(10);

/// What the writer receives.
enum Message {
    Entry(AuditEntry),
    /// Answer once everything sent before is committed.
    Flush(SyncSender<()>),
}

/// A handle to the audit writer; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    db: Database,
    queue: SyncSender<Message>,
}

impl AuditLog {
    /// Start the writer thread over `db`.
    pub fn start(db: Database) -> anyhow::Result<AuditLog> {
        let (queue, incoming) = sync_channel(QUEUE);
        let writer_db = db.clone();
        std::thread::Builder::new()
            .name("berth-audit".into())
            .spawn(move || write_batches(&writer_db, &incoming))?;
        Ok(AuditLog { db, queue })
    }

    /// Record `entry` without waiting for the disk.
    pub fn record(&self, entry: AuditEntry) {
        match self.queue.try_send(Message::Entry(entry)) {
            Ok(()) => {}
            Err(TrySendError::Full(Message::Entry(entry))) => self.write_now(&[entry]),
            Err(TrySendError::Disconnected(Message::Entry(entry))) => self.write_now(&[entry]),
            Err(_) => {}
        }
    }

    /// Wait until every entry recorded before this call is committed.
    pub fn flush(&self) {
        let (done, wait) = sync_channel(1);
        if self.queue.send(Message::Flush(done)).is_ok() {
            let _ = wait.recv();
        }
    }

    fn write_now(&self, entries: &[AuditEntry]) {
        if let Err(err) = self.db.audit_batch(entries) {
            tracing::warn!("audit log write failed: {err:#}");
        }
    }
}

/// The writer: block for one message, take everything queued behind it,
/// commit the entries in one transaction, then answer the flushes.
fn write_batches(db: &Database, incoming: &Receiver<Message>) {
    let mut entries = Vec::new();
    let mut flushes = Vec::new();
    while let Ok(first) = incoming.recv() {
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                Message::Entry(entry) => entries.push(entry),
                Message::Flush(done) => flushes.push(done),
            }
            next = if entries.len() < QUEUE {
                incoming.try_recv().ok()
            } else {
                None
            };
        }
        if !entries.is_empty()
            && let Err(err) = db.audit_batch(&entries)
        {
            tracing::warn!(lost = entries.len(), "audit log write failed: {err:#}");
        }
        entries.clear();
        let flushed = !flushes.is_empty();
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
        // A flush means someone is about to exit or read the log: no
        // reason to wait for more.
        if !flushed {
            std::thread::sleep(WINDOW);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(tool: &str) -> AuditEntry {
        AuditEntry {
            plugin: "p".into(),
            tool: tool.into(),
            outcome: "ok".into(),
            duration_ms: 1,
        }
    }

    #[test]
    fn a_flush_returns_once_everything_before_it_is_committed() {
        let db = Database::in_memory().unwrap();
        let log = AuditLog::start(db.clone()).unwrap();
        for i in 0..1000 {
            log.record(entry(&format!("t{i}")));
        }
        log.flush();
        let recent = db.recent_audit(2000).unwrap();
        assert_eq!(recent.len(), 1000);
        assert_eq!(recent[0].tool, "t999");
    }

    #[test]
    fn entries_from_many_threads_are_all_kept() {
        let db = Database::in_memory().unwrap();
        let log = AuditLog::start(db.clone()).unwrap();
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..(QUEUE / 2) {
                        log.record(entry(&format!("w{w}-{i}")));
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        log.flush();
        assert_eq!(
            db.recent_audit(usize::MAX >> 1).unwrap().len(),
            8 * (QUEUE / 2)
        );
    }
}
