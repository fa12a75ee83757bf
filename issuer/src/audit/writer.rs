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
        Writer::paced(sinks.into(), metrics, Pace::EVERY_BATCH_SYNCED)
    }

    /// Like [`Writer::start`], but batches that nobody waits for (only events queued without
    /// a reply) are spaced and synced as `pace` says.
    pub(super) fn paced(sinks: Sinks, metrics: AuditMetrics, pace: Pace) -> Writer {
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

/// How a writer spaces and syncs the batches nobody waits for (those of events queued without a
/// reply). A batch with a waiter, or with a [`Job::Flush`], starts at once and is synced, and so
/// is everything written before it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Pace {
    /// The least time between the start of the previous batch and such a batch: events gather
    /// meanwhile, so the sinks' per-batch cost is paid at most once per `batches`.
    pub(super) batches: Duration,
    /// With `Some`, such batches are written unsynced ([`AuditSink::record_batch_unsynced`])
    /// and synced at most this long after the first of them; with `None`, each is synced.
    pub(super) sync_within: Option<Duration>,
}

impl Pace {
    /// Every batch at once, and synced.
    pub(super) const EVERY_BATCH_SYNCED: Pace = Pace {
        batches: Duration::ZERO,
        sync_within: None,
    };
}

/// Events written unsynced: how many, and when they must be synced.
struct Unsynced {
    events: usize,
    due: Instant,
}

/// The writer thread: waits for a job, takes every job waiting behind it (up to
/// [`QUEUE_CAPACITY`]), commits them as one batch; until the queue is closed and empty, then
/// syncs what is unsynced. A job nobody waits for first waits out the rest of `pace.batches`
/// since the previous batch started; unsynced events are synced when due, whether or not more
/// jobs come.
fn run(
    mut queue: mpsc::Receiver<Job>,
    sinks: &[Box<dyn AuditSink>],
    metrics: &AuditMetrics,
    mut pace: Pace,
) {
    // Waiting for a job or a due sync, whichever is first, takes a timer: a runtime of the
    // thread's own. Without one, every batch is synced.
    let timer = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(runtime) => Some(runtime),
        Err(error) => {
            if pace.sync_within.take().is_some() {
                tracing::warn!(%error, "the audit writer has no timer: it syncs every batch");
            }
            None
        }
    };
    let mut jobs = Vec::new();
    let mut last_batch: Option<Instant> = None;
    let mut unsynced: Option<Unsynced> = None;
    loop {
        let next = match (&unsynced, &timer) {
            (Some(due), Some(timer)) => {
                // The timeout is made inside the runtime, whose timer it needs.
                let due = due.due.into();
                let waited =
                    timer.block_on(async { tokio::time::timeout_at(due, queue.recv()).await });
                match waited {
                    Ok(next) => next,
                    Err(_due) => {
                        sync(sinks, metrics, unsynced.take());
                        continue;
                    }
                }
            }
            _ => queue.blocking_recv(),
        };
        let Some(job) = next else { break };
        if matches!(job, Job::Record { reply: None, .. })
            && let Some(wait) = last_batch.map(|at| pace.batches.saturating_sub(at.elapsed()))
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
        commit(sinks, jobs.drain(..), metrics, pace, &mut unsynced);
        if unsynced.as_ref().is_some_and(|u| u.due <= Instant::now()) {
            sync(sinks, metrics, unsynced.take());
        }
    }
    sync(sinks, metrics, unsynced.take());
}

/// Syncs every sink, if events were written unsynced; each failure is logged, and counted as
/// a failure of each of those events.
fn sync(sinks: &[Box<dyn AuditSink>], metrics: &AuditMetrics, unsynced: Option<Unsynced>) {
    let Some(unsynced) = unsynced else { return };
    // Each sink's error is logged and counted there; there is nobody to return it to.
    let _ = each_sink(sinks, unsynced.events, None, metrics, |sink| sink.sync());
}

/// Records the events of `jobs` as one batch (synced if someone waits for it or `pace` says
/// so), then answers every caller waiting on it.
fn commit(
    sinks: &[Box<dyn AuditSink>],
    jobs: impl Iterator<Item = Job>,
    metrics: &AuditMetrics,
    pace: Pace,
    unsynced: &mut Option<Unsynced>,
) {
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
    let result = match pace.sync_within {
        Some(within) if replies.is_empty() && flushes.is_empty() => {
            let result = timed_batch(sinks, &events, metrics, |sink| {
                sink.record_batch_unsynced(&events)
            });
            if !events.is_empty() {
                let first = unsynced.get_or_insert_with(|| Unsynced {
                    events: 0,
                    due: Instant::now() + within,
                });
                first.events += events.len();
            }
            result
        }
        _ if events.is_empty() => {
            sync(sinks, metrics, unsynced.take());
            Ok(())
        }
        _ => {
            let result = record_batch(sinks, &events, metrics);
            // A synced batch syncs what was written before it too; if it failed, those lines
            // are still synced when due.
            if result.is_ok() {
                *unsynced = None;
            }
            result
        }
    };
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
    timed_batch(sinks, events, metrics, |sink| sink.record_batch(events))
}

/// Runs `record` (which records `events`) in each sink, counting the batch's size and time;
/// the first error.
fn timed_batch(
    sinks: &[Box<dyn AuditSink>],
    events: &[AuditEvent],
    metrics: &AuditMetrics,
    record: impl Fn(&dyn AuditSink) -> Result<(), Error>,
) -> Result<(), Error> {
    if events.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    let result = each_sink(sinks, events.len(), Some(events), metrics, record);
    metrics.batch(events.len(), started.elapsed());
    result
}

/// Runs `f` on each sink in turn, even after one fails (a panic counts as a failure); each
/// failure is logged and counted as a failure of each of the `count` events it concerns
/// (`events`, or those written unsynced before a sync). The first error.
fn each_sink(
    sinks: &[Box<dyn AuditSink>],
    count: usize,
    events: Option<&[AuditEvent]>,
    metrics: &AuditMetrics,
    f: impl Fn(&dyn AuditSink) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut first = None;
    for sink in sinks {
        let result = catch_unwind(AssertUnwindSafe(|| f(sink.as_ref())))
            .unwrap_or(Err(Error::AuditSinkPanicked));
        if let Err(error) = result {
            metrics.failed(count as u64);
            match events {
                Some(events) => tracing::error!(
                    %error,
                    events = count,
                    first_jti = events.iter().find_map(|e| e.jti.as_deref()).unwrap_or(""),
                    "audit sink failed to record a batch of events"
                ),
                None => tracing::error!(
                    %error,
                    events = count,
                    "audit sink failed to sync the events it had written unsynced"
                ),
            }
            first.get_or_insert(error);
        }
    }
    first.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Mutex;

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
        let paced = Pace {
            batches: pace,
            sync_within: None,
        };
        let writer = Writer::paced(sinks.into(), AuditMetrics::default(), paced);
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

    /// What the writer asked of a [`Calls`] sink.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Call {
        Synced(usize),
        Unsynced(usize),
        Sync,
    }

    /// A sink that tells the test each call, and fails what it is asked to fail.
    struct Calls {
        calls: Mutex<std::sync::mpsc::Sender<(Call, Instant)>>,
        failing: Option<Call>,
    }

    fn calls(failing: Option<Call>) -> (Sinks, std::sync::mpsc::Receiver<(Call, Instant)>) {
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Calls {
            calls: Mutex::new(tx),
            failing,
        };
        let sinks: Vec<Box<dyn AuditSink>> = vec![Box::new(sink)];
        (sinks.into(), rx)
    }

    impl Calls {
        fn tell(&self, call: Call) -> Result<(), Error> {
            let _ = self.calls.lock().unwrap().send((call, Instant::now()));
            let fails = match (self.failing, call) {
                (Some(Call::Synced(_)), Call::Synced(_)) => true,
                (failing, call) => failing == Some(call),
            };
            if fails {
                return Err(Error::AuditPoisoned {
                    path: "audit.log".into(),
                });
            }
            Ok(())
        }
    }

    impl AuditSink for Calls {
        fn record(&self, event: &AuditEvent) -> Result<(), Error> {
            self.record_batch(std::slice::from_ref(event))
        }

        fn record_batch(&self, events: &[AuditEvent]) -> Result<(), Error> {
            self.tell(Call::Synced(events.len()))
        }

        fn record_batch_unsynced(&self, events: &[AuditEvent]) -> Result<(), Error> {
            self.tell(Call::Unsynced(events.len()))
        }

        fn sync(&self) -> Result<(), Error> {
            self.tell(Call::Sync)
        }
    }

    const WAIT: Duration = Duration::from_secs(10);

    fn unsynced_job(i: u64) -> Job {
        Job::Record {
            event: event(i),
            reply: None,
        }
    }

    #[tokio::test]
    async fn unsynced_batches_are_synced_within_the_bound_with_no_more_events() {
        let (sinks, calls) = calls(None);
        let within = Duration::from_millis(200);
        let pace = Pace {
            batches: Duration::ZERO,
            sync_within: Some(within),
        };
        let writer = Writer::paced(sinks, AuditMetrics::default(), pace);
        writer.try_send(unsynced_job(1)).unwrap();
        let (call, written) = calls.recv_timeout(WAIT).unwrap();
        assert_eq!(call, Call::Unsynced(1));
        // Nothing else is queued: the sync comes from the timer, once the bound is near.
        let (call, synced) = calls.recv_timeout(WAIT).unwrap();
        assert_eq!(call, Call::Sync);
        let after = synced - written;
        assert!(
            after >= within - Duration::from_millis(20),
            "synced too early: {after:?}"
        );
        drop(writer);
        assert!(calls.try_recv().is_err(), "nothing left to sync at close");
    }

    #[tokio::test]
    async fn a_waiter_a_flush_or_closing_syncs_what_was_written_unsynced() {
        let (sinks, calls) = calls(None);
        let pace = Pace {
            batches: Duration::ZERO,
            sync_within: Some(Duration::from_secs(3600)),
        };
        let writer = Writer::paced(sinks, AuditMetrics::default(), pace);
        let next = || calls.recv_timeout(WAIT).unwrap().0;

        writer.try_send(unsynced_job(1)).unwrap();
        assert_eq!(next(), Call::Unsynced(1));
        // A batch someone waits for is synced, and with it what came before.
        assert!(record(&writer, 2).await.await.unwrap().is_ok());
        assert_eq!(next(), Call::Synced(1));

        writer.try_send(unsynced_job(3)).unwrap();
        assert_eq!(next(), Call::Unsynced(1));
        let (done, flushed) = oneshot::channel();
        writer.send(Job::Flush(done)).await.unwrap();
        flushed.await.unwrap();
        assert_eq!(next(), Call::Sync, "a flush syncs");

        writer.try_send(unsynced_job(4)).unwrap();
        assert_eq!(next(), Call::Unsynced(1));
        drop(writer);
        assert_eq!(next(), Call::Sync, "closing syncs");
    }

    #[tokio::test]
    async fn a_failed_sync_counts_each_unsynced_event_as_lost() {
        let (sinks, calls) = calls(Some(Call::Sync));
        let pace = Pace {
            batches: Duration::from_millis(50),
            sync_within: Some(Duration::from_millis(100)),
        };
        let metrics = AuditMetrics::default();
        let writer = Writer::paced(sinks, metrics.clone(), pace);
        for i in 1..=3 {
            writer.try_send(unsynced_job(i)).unwrap();
        }
        let mut written = 0;
        while written < 3 {
            match calls.recv_timeout(WAIT).unwrap().0 {
                Call::Unsynced(n) => written += n,
                other => panic!("{other:?} before the events were written"),
            }
        }
        assert_eq!(calls.recv_timeout(WAIT).unwrap().0, Call::Sync);
        drop(writer);
        assert_eq!(metrics.failures(), 3);
    }

    #[tokio::test]
    async fn lines_written_unsynced_before_a_failed_synced_batch_are_still_synced_when_due() {
        let (sinks, calls) = calls(Some(Call::Synced(0)));
        let pace = Pace {
            batches: Duration::ZERO,
            sync_within: Some(Duration::from_millis(200)),
        };
        let writer = Writer::paced(sinks, AuditMetrics::default(), pace);
        writer.try_send(unsynced_job(1)).unwrap();
        assert_eq!(calls.recv_timeout(WAIT).unwrap().0, Call::Unsynced(1));
        assert!(record(&writer, 2).await.await.unwrap().is_err());
        assert_eq!(calls.recv_timeout(WAIT).unwrap().0, Call::Synced(1));
        assert_eq!(calls.recv_timeout(WAIT).unwrap().0, Call::Sync);
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
