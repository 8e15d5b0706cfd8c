//! A small fixed set of worker threads and an order-keeping result queue.
//!
//! Jobs are closures; `Workers::submit` returns a one-shot receiver, and `Ordered` keeps those
//! receivers in submission order so results come back in stream order whatever thread finished
//! first. Memory is bounded by the caller: it never keeps more than `limit` jobs in flight
//! (`Ordered::is_full`). Dropping `Workers` closes the job channel; threads finish their current
//! job and exit (results of abandoned jobs are dropped).

use std::collections::VecDeque;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::error::{CodecError, Result};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed set of worker threads pulling jobs from one channel.
pub(crate) struct Workers {
    tx: Option<Sender<Job>>,
    handles: Vec<JoinHandle<()>>,
}

impl Workers {
    pub(crate) fn new(threads: usize) -> Workers {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let handles = (0..threads.max(1))
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
        Workers {
            tx: Some(tx),
            handles,
        }
    }

    /// Runs `f` on a worker; the receiver yields its result.
    pub(crate) fn submit<R, F>(&self, f: F) -> Receiver<R>
    where
        R: Send + 'static,
        F: FnOnce() -> R + Send + 'static,
    {
        let (rtx, rrx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move || {
            let _ = rtx.send(f());
        });
        if let Some(tx) = &self.tx {
            // A send error means every worker died; the receiver then reports it.
            let _ = tx.send(job);
        }
        rrx
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.tx.take();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// Results of submitted jobs, in submission order.
pub(crate) struct Ordered<R> {
    queue: VecDeque<Receiver<R>>,
    limit: usize,
}

impl<R> Ordered<R> {
    pub(crate) fn new(limit: usize) -> Ordered<R> {
        Ordered {
            queue: VecDeque::new(),
            limit: limit.max(1),
        }
    }

    pub(crate) fn push(&mut self, rx: Receiver<R>) {
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
            Some(rx) => rx
                .recv()
                .map(Some)
                .map_err(|_| CodecError::Internal("a codec worker thread stopped".into())),
        }
    }

    /// The oldest job's result if it is ready.
    pub(crate) fn try_oldest(&mut self) -> Result<Option<R>> {
        let Some(rx) = self.queue.front() else {
            return Ok(None);
        };
        match rx.try_recv() {
            Ok(r) => {
                self.queue.pop_front();
                Ok(Some(r))
            }
            Err(mpsc::TryRecvError::Empty) => Ok(None),
            Err(mpsc::TryRecvError::Disconnected) => {
                Err(CodecError::Internal("a codec worker thread stopped".into()))
            }
        }
    }
}

/// Recycles the MiB-sized segment buffers of one stream between its threads. Fresh buffers of
/// that size are fresh mmaps under glibc (a page fault per 4 KiB, then munmap): measured, a
/// decoder allocating two per segment spent as much time in the kernel as in inflate. Holds at
/// most `keep` idle buffers, so it adds at most `keep` x segment size to the stream's memory.
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
