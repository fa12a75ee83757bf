//! The group-commit writer: one thread owns the sinks, and each batch it writes holds every
//! event that was waiting when the batch started.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::event::AuditEvent;
use super::sinks::AuditSink;
use crate::Error;
use crate::metrics::AuditMetrics;

/// How many jobs may wait for the writer; also the largest batch.
pub(super) const QUEUE_CAPACITY: usize = 4096;

/// The name of the writer thread.
const THREAD_NAME: &str = "svctoken-audit";

/// The sinks, shared by the writer thread and [`Auditor::record_now`](super::Auditor::record_now)
/// (each sink orders concurrent batches itself).
pub(super) type Sinks = Arc<[Box<dyn AuditSink>]>;

/// Where the writer sends a batch's result to a caller that waits for it.
pub(super) type Reply = oneshot::Sender<Result<(), Error>>;

/// What a caller asks of the writer.
#[expect(
    clippy::large_enum_variant,
    reason = "a flush is rare; boxing the event would cost an allocation per event"
)]
pub(super) enum Job {
    /// Record an event, and send the batch's result to `reply` if there is one.
    Record {
        event: AuditEvent,
        reply: Option<Reply>,
    },
    /// Answer once every job queued before this one is done.
    Flush(oneshot::Sender<()>),
}

/// The handle on the writer thread: the sending end of its queue. Dropping it closes the queue
/// and waits for the thread to write what is queued and drop its share of the sinks (a
/// [`ChainedFile`] logs its head once the last share is dropped).
///
/// [`ChainedFile`]: super::ChainedFile
pub(super) struct Writer {
    /// `None` once dropping, or if the thread could not be started.
    queue: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the writer thread over `sinks`; it counts each event a sink fails to record, and
    /// each batch's size and time, in `metrics`. If the thread cannot be started, that is logged and every job fails with
    /// [`Error::AuditWriterStopped`].
    #[cfg(test)]
    pub(super) fn start(sinks: Vec<Box<dyn AuditSink>>, metrics: AuditMetrics) -> Writer {
        Writer::paced(sinks.into(), metrics, Duration::ZERO)
    }

    /// Like [`Writer::start`], but a batch that nobody waits for (only events queued without
    /// a reply) starts no sooner than `pace` after the previous batch started: it gathers
    /// meanwhile, so the sinks' per-batch cost is paid at most once per `pace`.
    pub(super) fn paced(sinks: Sinks, metrics: AuditMetrics, pace: Duration) -> Writer {
        let (queue, jobs) = mpsc::channel(QUEUE_CAPACITY);
        let spawned = thread::Builder::new()
            .name(THREAD_NAME.to_owned())
            .spawn(move || run(jobs, &sinks, &metrics, pace));
        match spawned {
            Ok(thread) => Writer {
                queue: Some(queue),
                thread: Some(thread),
            },
            Err(error) => {
                tracing::error!(%error, "the audit writer thread could not be started");
                Writer {
                    queue: None,
                    thread: None,
                }
            }
        }
    }

    /// Queues `job`, waiting for room while the queue is full.
    pub(super) async fn send(&self, job: Job) -> Result<(), Error> {
        let queue = self.queue.as_ref().ok_or(Error::AuditWriterStopped)?;
        queue.send(job).await.map_err(|_| Error::AuditWriterStopped)
    }

    /// Queues `job` if there is room.
    pub(super) fn try_send(&self, job: Job) -> Result<(), Error> {
        let queue = self.queue.as_ref().ok_or(Error::AuditWriterStopped)?;
        queue.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Error::AuditQueueFull,
            mpsc::error::TrySendError::Closed(_) => Error::AuditWriterStopped,
        })
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the audit writer thread panicked");
        }
    }
}

/// The writer thread: waits for a job, takes every job waiting behind it (up to
/// [`QUEUE_CAPACITY`]), commits them as one batch; until the queue is closed and empty. A job
/// nobody waits for first waits out the rest of `pace` since the previous batch started.
fn run(
    mut queue: mpsc::Receiver<Job>,
    sinks: &[Box<dyn AuditSink>],
    metrics: &AuditMetrics,
    pace: Duration,
) {
    let mut jobs = Vec::new();
    let mut last_batch: Option<Instant> = None;
    while let Some(job) = queue.blocking_recv() {
        if matches!(job, Job::Record { reply: None, .. })
            && let Some(wait) = last_batch.map(|at| pace.saturating_sub(at.elapsed()))
            && !wait.is_zero()
        {
            thread::sleep(wait);
        }
        last_batch = Some(Instant::now());
        jobs.push(job);
        while jobs.len() < QUEUE_CAPACITY
            && let Ok(job) = queue.try_recv()
        {
            jobs.push(job);
        }
        commit(sinks, jobs.drain(..), metrics);
    }
}

/// Records the events of `jobs` as one batch, then answers every caller waiting on it.
fn commit(sinks: &[Box<dyn AuditSink>], jobs: impl Iterator<Item = Job>, metrics: &AuditMetrics) {
    let mut events = Vec::new();
    let mut replies = Vec::new();
    let mut flushes = Vec::new();
    for job in jobs {
        match job {
            Job::Record { event, reply } => {
                events.push(event);
                replies.extend(reply);
            }
            Job::Flush(done) => flushes.push(done),
        }
    }
    let result = record_batch(sinks, &events, metrics);
    for reply in replies {
        // A caller that stopped waiting (its request was dropped) needs no answer.
        let _ = reply.send(result.clone());
    }
    for done in flushes {
        let _ = done.send(());
    }
}

/// Records `events` in every sink, in order, even after one fails; never panics (a sink's
/// panic counts as its failure). Each failure is logged and counted in `metrics` once per
/// event, with the batch's size and the time the sinks took; the first is returned.
pub(super) fn record_batch(
    sinks: &[Box<dyn AuditSink>],
    events: &[AuditEvent],
    metrics: &AuditMetrics,
) -> Result<(), Error> {
    if events.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    let result = record_in_each(sinks, events, metrics);
    metrics.batch(events.len(), started.elapsed());
    result
}

/// Records `events` in each sink in turn; the first error.
fn record_in_each(
    sinks: &[Box<dyn AuditSink>],
    events: &[AuditEvent],
    metrics: &AuditMetrics,
) -> Result<(), Error> {
    let mut first = None;
    for sink in sinks {
        let result = catch_unwind(AssertUnwindSafe(|| sink.record_batch(events)))
            .unwrap_or(Err(Error::AuditSinkPanicked));
        if let Err(error) = result {
            metrics.failed(events.len() as u64);
            tracing::error!(
                %error,
                events = events.len(),
                first_jti = events.iter().find_map(|e| e.jti.as_deref()).unwrap_or(""),
                "audit sink failed to record a batch of events"
            );
            first.get_or_insert(error);
        }
    }
    first.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::audit::testing::{event, gate};

    async fn record(writer: &Writer, i: u64) -> oneshot::Receiver<Result<(), Error>> {
        let (reply, result) = oneshot::channel();
        let job = Job::Record {
            event: event(i),
            reply: Some(reply),
        };
        writer.send(job).await.unwrap();
        result
    }

    #[tokio::test]
    async fn a_batch_takes_every_waiting_event_and_answers_each_waiter() {
        let (gate, control) = gate();
        let metrics = AuditMetrics::default();
        let writer = Writer::start(vec![Box::new(gate)], metrics.clone());

        let first = record(&writer, 1).await;
        assert_eq!(
            control.entered.recv().unwrap(),
            1,
            "the first event is a batch of one"
        );
        // While that batch is on its way to the disk, twenty more callers queue up.
        let mut waiting = Vec::new();
        for i in 2..=21 {
            waiting.push(record(&writer, i).await);
        }
        let (done, flushed) = oneshot::channel();
        writer.send(Job::Flush(done)).await.unwrap();
        control.release.send(()).unwrap();
        assert_eq!(
            control.entered.recv().unwrap(),
            20,
            "the next batch takes all of them"
        );
        control.release.send(()).unwrap();

        assert!(first.await.unwrap().is_ok());
        for result in waiting {
            assert!(matches!(
                result.await.unwrap(),
                Err(Error::AuditPoisoned { .. })
            ));
        }
        flushed.await.unwrap();
        assert_eq!(metrics.failures(), 20);
        drop(writer);
        assert_eq!(*control.batches.lock().unwrap(), [1, 20]);
    }

    #[tokio::test]
    async fn paced_batches_gather_what_nobody_waits_for_and_never_delay_a_waiter() {
        let (gate, control) = gate();
        let pace = Duration::from_millis(300);
        let sinks: Vec<Box<dyn AuditSink>> = vec![Box::new(gate)];
        let writer = Writer::paced(sinks.into(), AuditMetrics::default(), pace);
        let job = |i| Job::Record {
            event: event(i),
            reply: None,
        };
        let started = Instant::now();
        writer.try_send(job(1)).unwrap();
        assert_eq!(
            control.entered.recv().unwrap(),
            1,
            "an idle writer starts at once"
        );
        control.release.send(()).unwrap();
        for i in 2..=11 {
            writer.try_send(job(i)).unwrap();
        }
        assert_eq!(
            control.entered.recv().unwrap(),
            10,
            "they gather into one batch"
        );
        assert!(started.elapsed() >= pace, "no sooner than the pace");
        control.release.send(()).unwrap();
        // A caller waiting for its batch is never held back by the pace.
        let waiting = Instant::now();
        let _result = record(&writer, 12).await;
        assert_eq!(control.entered.recv().unwrap(), 1);
        assert!(waiting.elapsed() < pace, "{:?}", waiting.elapsed());
        control.release.send(()).unwrap();
    }

    #[tokio::test]
    async fn a_full_queue_refuses_without_waiting() {
        let (gate, control) = gate();
        let writer = Writer::start(vec![Box::new(gate)], AuditMetrics::default());
        let job = |i| Job::Record {
            event: event(i),
            reply: None,
        };
        writer.try_send(job(0)).unwrap();
        control.entered.recv().unwrap();
        for i in 1..=QUEUE_CAPACITY as u64 {
            writer.try_send(job(i)).unwrap();
        }
        assert!(matches!(
            writer.try_send(job(0)),
            Err(Error::AuditQueueFull)
        ));
        control.release.send(()).unwrap();
        control.release.send(()).unwrap();
    }
}
