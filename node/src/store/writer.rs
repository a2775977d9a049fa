//! The single writer: one OS thread owns every write transaction.
//!
//! Inbox: a bounded channel of [`Job`]s. Each loop turn takes the jobs that are waiting (up to
//! [`MAX_BATCH`]), runs them in order inside one redb write transaction, commits once, and only then
//! releases each job's reply and publishes its events to the [`Hub`] in job order. If the commit
//! fails every job in the batch gets an internal error and no event is published.
//!
//! A job must validate before it writes: a job that returns an error after writing (it called
//! [`TxnCtx::write`]) poisons the batch, which is then aborted as a whole. A job that panics counts
//! as one that failed (its caller gets an internal error), and the thread goes on serving later
//! batches: a bug in one job never stops every write on the node.
//!
//! Shutdown: when every [`Writer`] handle is dropped the channel closes, the thread finishes the
//! batch in hand and exits.

use crate::hub::{Hub, Recipients};
use redb::{Database, WriteTransaction};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use veche_protocol::wire::{ApiError, ErrorCode, Event};

/// Most jobs committed by one transaction.
pub const MAX_BATCH: usize = 512;
/// Jobs waiting for the writer before callers are slowed down.
const INBOX: usize = 4096;

/// What a job sees: the transaction and the events it wants published after the commit.
pub struct TxnCtx<'a> {
    txn: &'a WriteTransaction,
    events: Vec<(Recipients, Event)>,
    /// Chats whose log or record this transaction changed (other nodes may need to hear).
    touched: Vec<veche_protocol::ids::GroupId>,
    wrote: bool,
}

impl<'a> TxnCtx<'a> {
    /// For reads inside the transaction (sees this batch's earlier writes).
    pub fn read(&self) -> &'a WriteTransaction {
        self.txn
    }

    /// For writes. Call only after validation has passed.
    pub fn write(&mut self) -> &'a WriteTransaction {
        self.wrote = true;
        self.txn
    }

    /// Publishes `event` to `to` once the transaction is durable.
    pub fn publish(&mut self, to: Recipients, event: Event) {
        self.events.push((to, event));
    }

    /// Marks a chat as changed once the transaction commits (its member nodes are told).
    pub fn touch(&mut self, group: veche_protocol::ids::GroupId) {
        self.touched.push(group);
    }
}

type Completion = Box<dyn FnOnce(Result<(), ApiError>) + Send>;

/// A unit of work for the writer.
pub struct Job(JobFn);

type JobFn = Box<dyn FnOnce(&mut TxnCtx<'_>) -> (JobStatus, Completion) + Send>;

/// How a job went, for the batch.
struct JobStatus {
    failed: bool,
    wrote: bool,
}

/// Cloneable handle to the writer thread.
#[derive(Clone)]
pub struct Writer {
    inbox: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread.
    pub fn spawn(db: Arc<Database>, hub: Arc<Hub>) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel(INBOX);
        std::thread::Builder::new().name("veche-writer".into()).spawn(move || run(db, hub, rx))?;
        Ok(Writer { inbox: tx })
    }

    /// Runs `f` in the next write transaction and returns its result once committed.
    pub async fn run<R, F>(&self, f: F) -> Result<R, ApiError>
    where
        R: Send + 'static,
        F: FnOnce(&mut TxnCtx<'_>) -> Result<R, ApiError> + Send + 'static,
    {
        let (reply_tx, reply_rx) = oneshot::channel();
        let job = Job(Box::new(move |ctx: &mut TxnCtx<'_>| {
            // A panic is this job's failure (poisoning the batch if it had started writing).
            let result = catch_unwind(AssertUnwindSafe(|| f(ctx))).unwrap_or_else(|panic| {
                tracing::error!(reason = panic_text(&panic), "a write job panicked");
                Err(ApiError::new(ErrorCode::Internal, "the node failed to store this; retry"))
            });
            let status = JobStatus { failed: result.is_err(), wrote: ctx.wrote };
            let completion: Completion = Box::new(move |committed| {
                let _ = reply_tx.send(committed.and(result));
            });
            (status, completion)
        }));
        self.inbox.send(job).await.map_err(|_| shutting_down())?;
        reply_rx.await.map_err(|_| shutting_down())?
    }
}

fn shutting_down() -> ApiError {
    ApiError::new(ErrorCode::Internal, "the node could not store this (shutting down or database unavailable); retry")
}

/// What a panic said, for the log.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
    panic.downcast_ref::<&str>().copied().or_else(|| panic.downcast_ref::<String>().map(String::as_str)).unwrap_or("?")
}

fn run(db: Arc<Database>, hub: Arc<Hub>, mut rx: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // Jobs catch their own panics; this catches the rest (the transaction is dropped, which
        // aborts it, and the dropped replies answer their callers with an internal error).
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| run_batch(&db, &hub, &mut batch))) {
            tracing::error!(reason = panic_text(&panic), "the writer panicked in a batch; its jobs failed");
            batch.clear();
        }
    }
    tracing::debug!("writer stopped");
}

fn run_batch(db: &Database, hub: &Hub, batch: &mut Vec<Job>) {
    let txn = match db.begin_write() {
        Ok(txn) => txn,
        Err(e) => {
            tracing::error!(error = %e, "cannot begin write transaction");
            // Dropping the jobs answers their callers with an internal error ("retry").
            batch.clear();
            return;
        }
    };
    let mut ctx = TxnCtx { txn: &txn, events: Vec::new(), touched: Vec::new(), wrote: false };
    let mut completions = Vec::with_capacity(batch.len());
    let mut poisoned = false;
    for job in batch.drain(..) {
        ctx.wrote = false;
        let before = ctx.events.len();
        let (status, completion) = (job.0)(&mut ctx);
        if status.failed {
            // A job that failed publishes nothing; one that failed after writing poisons the batch.
            ctx.events.truncate(before);
            poisoned |= status.wrote;
        }
        completions.push(completion);
    }
    let events = std::mem::take(&mut ctx.events);
    let mut touched = std::mem::take(&mut ctx.touched);
    let outcome = if poisoned {
        tracing::error!("a write job failed after writing; aborting its batch");
        let _ = txn.abort();
        Err(ApiError::new(ErrorCode::Internal, "the node failed to store this; retry"))
    } else {
        txn.commit().map_err(|e| {
            tracing::error!(error = %e, "commit failed");
            ApiError::new(ErrorCode::Internal, "the node failed to store this; retry")
        })
    };
    let committed = outcome.is_ok();
    for completion in completions {
        completion(outcome.clone());
    }
    if committed {
        for (to, event) in events {
            hub.publish(&to, event);
        }
        touched.sort_unstable();
        touched.dedup();
        for group in touched {
            hub.chat_changed(group);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::tables::COUNTERS;
    use redb::ReadableTable;

    fn writer(dir: &std::path::Path) -> (Store, Writer) {
        let store = Store::open(&dir.join("veche.redb")).unwrap();
        let writer = Writer::spawn(store.database().clone(), Arc::new(Hub::default())).unwrap();
        (store, writer)
    }

    fn count(ctx: &mut TxnCtx<'_>, name: &'static str) -> Result<(), ApiError> {
        let internal = |e: redb::Error| ApiError::new(ErrorCode::Internal, e.to_string());
        let mut counters = ctx.write().open_table(COUNTERS).map_err(|e| internal(e.into()))?;
        let value = counters.get(name).map_err(|e| internal(e.into()))?.map(|g| g.value()).unwrap_or(0);
        counters.insert(name, value + 1).map_err(|e| internal(e.into()))?;
        Ok(())
    }

    fn counter(store: &Store, name: &str) -> u64 {
        let txn = store.read().unwrap();
        let counters = txn.open_table(COUNTERS).unwrap();
        counters.get(name).unwrap().map(|g| g.value()).unwrap_or(0)
    }

    /// A job that panics (before or after writing) fails alone or with its batch; the writer
    /// goes on and commits the next batch.
    #[tokio::test]
    async fn writer_survives_a_panicking_job() {
        let dir = std::env::temp_dir().join(format!("veche-writer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (store, writer) = writer(&dir);
        let e = writer.run(|_ctx| -> Result<(), ApiError> { panic!("a bug before writing") }).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::Internal);
        assert!(!e.message.contains("shutting down"), "the writer is not shutting down: {}", e.message);
        let e = writer
            .run(|ctx| -> Result<(), ApiError> {
                count(ctx, "test_panicked")?;
                panic!("a bug after writing")
            })
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::Internal);
        assert_eq!(counter(&store, "test_panicked"), 0, "the panicking job's batch was aborted");
        writer.run(|ctx| count(ctx, "test_good")).await.expect("a later batch still commits");
        assert_eq!(counter(&store, "test_good"), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
