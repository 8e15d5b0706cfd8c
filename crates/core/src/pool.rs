//! A small fixed set of worker threads and an order-keeping result queue.
//!
//! Jobs are closures; `Workers::submit` returns a one-shot receiver, and `Ordered` keeps those
//! receivers in submission order so results come back in stream order whatever thread finished
//! first. Memory is bounded by the caller: it never keeps more than `limit` jobs in flight
//! (`Ordered::is_full`). Dropping `Workers` closes the job channel; threads finish their current
//! job and exit (results of abandoned jobs are dropped).
//!
//! A job that panics (a bug here or in a codec crate) does not take its thread down: the panic is
//! caught and its message comes back in the job's place, and `Ordered` turns it into
//! `CodecError::Internal` naming the failure, so the stream fails with a reason and nothing hangs.

use std::collections::VecDeque;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

use crate::error::{CodecError, Result};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// What a job sends back: its result, or the message of the panic that ended it.
pub(crate) type Done<R> = std::result::Result<R, String>;

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// A fixed set of worker threads pulling jobs from one channel. The threads start with the first
/// job: a stream that never submits one (a plain deflate/brotli/zstd/none stream) costs none.
/// An `inline` set (a one-thread decoder's, see `Workers::for_decoding`) runs each job on the caller's
/// thread instead: no thread, and no job held back between two calls.
pub(crate) struct Workers {
    threads: usize,
    inline: bool,
    started: OnceLock<Started>,
}

struct Started {
    tx: Sender<Job>,
    handles: Vec<JoinHandle<()>>,
}

impl Workers {
    pub(crate) fn new(threads: usize) -> Workers {
        Workers {
            threads: threads.max(1),
            inline: false,
            started: OnceLock::new(),
        }
    }

    /// Workers for a decoder: with one thread, its jobs run inline on the calling thread (the
    /// binding's calls already run off the JS thread). A one-thread decoder is what a chain
    /// restore gives each of its members: a worker thread each, and output held back one call
    /// while the next input came, cost ~1-2 MB per member and gained nothing (review
    /// chain-memory). An encoder keeps its one worker: it overlaps compression with the caller.
    pub(crate) fn for_decoding(threads: usize) -> Workers {
        Workers {
            threads: threads.max(1),
            inline: threads <= 1,
            started: OnceLock::new(),
        }
    }

    fn start(threads: usize) -> Started {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let handles = (0..threads)
            .map(|i| {
                let rx = Arc::clone(&rx);
                std::thread::Builder::new()
                    .name(format!("s3db-codec-{i}"))
                    .spawn(move || loop {
                        let job = match rx.lock() {
                            Ok(guard) => guard.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    })
                    .expect("pool: internal error: cannot spawn a codec worker thread")
            })
            .collect();
        Started { tx, handles }
    }

    /// Worker threads running (0 until the first job).
    #[cfg(test)]
    pub(crate) fn running(&self) -> usize {
        self.started.get().map_or(0, |s| s.handles.len())
    }

    /// Runs `f` on a worker; the receiver yields its result (or its panic's message).
    pub(crate) fn submit<R, F>(&self, f: F) -> Receiver<Done<R>>
    where
        R: Send + 'static,
        F: FnOnce() -> R + Send + 'static,
    {
        let (rtx, rrx) = mpsc::sync_channel(1);
        let run = move || {
            let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
                .map_err(|payload| panic_message(payload.as_ref()));
            let _ = rtx.send(done); // (a channel of one: never blocks)
        };
        if self.inline {
            run();
            return rrx;
        }
        let job: Job = Box::new(run);
        let started = self.started.get_or_init(|| Workers::start(self.threads));
        // A send error means every worker died; the receiver then reports it.
        let _ = started.tx.send(job);
        rrx
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        if let Some(Started { tx, handles }) = self.started.take() {
            drop(tx); // closes the channel: each thread ends after its current job
            for h in handles {
                let _ = h.join();
            }
        }
    }
}

/// Results of submitted jobs, in submission order.
pub(crate) struct Ordered<R> {
    queue: VecDeque<Receiver<Done<R>>>,
    limit: usize,
}

impl<R> Ordered<R> {
    pub(crate) fn new(limit: usize) -> Ordered<R> {
        Ordered {
            queue: VecDeque::new(),
            limit: limit.max(1),
        }
    }

    pub(crate) fn push(&mut self, rx: Receiver<Done<R>>) {
        self.queue.push_back(rx);
    }

    /// Jobs in flight.
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn is_full(&self) -> bool {
        self.queue.len() >= self.limit
    }

    /// While `limit` jobs are in flight: blocks for the oldest job's result (the caller consumes
    /// it and asks again); otherwise `None`. `while let Some(r) = q.oldest_if_full()? { .. }` makes
    /// room for one more job.
    pub(crate) fn oldest_if_full(&mut self) -> Result<Option<R>> {
        if self.is_full() {
            self.wait_oldest()
        } else {
            Ok(None)
        }
    }

    /// Blocks for the oldest job's result.
    pub(crate) fn wait_oldest(&mut self) -> Result<Option<R>> {
        match self.queue.pop_front() {
            None => Ok(None),
            Some(rx) => match rx.recv() {
                Ok(done) => done.map(Some).map_err(job_panicked),
                Err(_) => Err(worker_stopped()),
            },
        }
    }

    /// The oldest job's result if it is ready.
    pub(crate) fn try_oldest(&mut self) -> Result<Option<R>> {
        let Some(rx) = self.queue.front() else {
            return Ok(None);
        };
        match rx.try_recv() {
            Ok(done) => {
                self.queue.pop_front();
                done.map(Some).map_err(job_panicked)
            }
            Err(mpsc::TryRecvError::Empty) => Ok(None),
            Err(mpsc::TryRecvError::Disconnected) => Err(worker_stopped()),
        }
    }
}

fn job_panicked(message: String) -> CodecError {
    CodecError::Internal(format!("a codec worker failed: {message}"))
}

fn worker_stopped() -> CodecError {
    CodecError::Internal("a codec worker thread stopped".into())
}

/// Recycles the MiB-sized buffers that stay inside one stream (opened segments, gathered gzip
/// members) between its threads. Fresh buffers of that size are fresh mmaps under glibc (a page
/// fault per 4 KiB, then munmap): measured, a decoder allocating two per segment spent as much
/// time in the kernel as in inflate. Buffers handed to the caller as output pieces leave the
/// stream and are not recycled. Holds at most `keep` idle buffers, so it adds at most `keep` x
/// segment size to the stream's memory.
#[derive(Clone)]
pub(crate) struct BufferPool {
    idle: Arc<Mutex<Vec<Vec<u8>>>>,
    keep: usize,
}

impl BufferPool {
    pub(crate) fn new(keep: usize) -> BufferPool {
        BufferPool {
            idle: Arc::new(Mutex::new(Vec::new())),
            keep,
        }
    }

    /// An empty buffer with room for at least `capacity` bytes (a recycled one when available).
    pub(crate) fn take(&self, capacity: usize) -> Vec<u8> {
        let recycled = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        match recycled {
            Some(mut v) => {
                v.clear();
                v.reserve(capacity);
                v
            }
            None => Vec::with_capacity(capacity),
        }
    }

    /// Gives `v` back for reuse (dropped when `keep` buffers are already idle).
    pub(crate) fn put(&self, v: Vec<u8>) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < self.keep {
                idle.push(v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_job_fails_its_stream_with_the_reason_and_the_worker_lives_on() {
        let workers = Workers::new(1);
        let mut queue: Ordered<u32> = Ordered::new(4);
        queue.push(workers.submit(|| -> u32 { panic!("index out of bounds: the len is 24") }));
        queue.push(workers.submit(|| 7));
        let err = queue.wait_oldest().unwrap_err();
        assert_eq!(err.code(), "ERR_INTERNAL");
        assert!(
            err.to_string()
                .contains("a codec worker failed: index out of bounds"),
            "{err}"
        );
        // The only worker thread caught the panic and ran the next job.
        assert_eq!(queue.wait_oldest().unwrap(), Some(7));
        assert_eq!(queue.wait_oldest().unwrap(), None);
    }

    #[test]
    fn a_one_thread_decoding_set_runs_jobs_inline_with_no_thread() {
        let workers = Workers::for_decoding(1);
        let caller = std::thread::current().id();
        let rx = workers.submit(move || std::thread::current().id() == caller);
        assert_eq!(
            rx.try_recv().unwrap(),
            Ok(true),
            "done before submit returned, on the caller's thread"
        );
        let panicked: Receiver<Done<u32>> = workers.submit(|| panic!("inline panic"));
        assert!(panicked
            .try_recv()
            .unwrap()
            .unwrap_err()
            .contains("inline panic"));
        assert_eq!(workers.running(), 0);
        assert_eq!(Workers::for_decoding(2).submit(|| 1).recv().unwrap(), Ok(1));
    }

    #[test]
    fn threads_start_with_the_first_job() {
        let workers = Workers::new(3);
        assert_eq!(workers.running(), 0, "no job, no thread");
        assert_eq!(workers.submit(|| 5).recv().unwrap(), Ok(5));
        assert_eq!(workers.running(), 3);
    }

    #[test]
    fn results_come_back_in_submission_order() {
        let workers = Workers::new(2);
        let mut queue: Ordered<usize> = Ordered::new(8);
        for i in 0..8 {
            // Earlier jobs sleep longer, so they finish last.
            queue.push(workers.submit(move || {
                std::thread::sleep(std::time::Duration::from_millis((8 - i) as u64 * 3));
                i
            }));
        }
        let got: Vec<usize> = std::iter::from_fn(|| queue.wait_oldest().unwrap()).collect();
        assert_eq!(got, (0..8).collect::<Vec<_>>());
    }
}
