//! Reading gzip on every core: the members of docs/FORMAT.md 2.1 are inflated in parallel, any
//! other gzip serially.
//!
//! `ParallelGunzip` reads a member's header, takes the length from its `S3` field, gathers exactly
//! that many bytes and inflates the member whole on a worker (`whole_member`: the span must be
//! exactly one valid member of its recorded size); results are emitted in stream order. A member
//! WITHOUT the field (gzip written by Node, `gzip`, or before this layout) switches the rest of the
//! stream to the serial `Inflater`, which reads any gzip.
//!
//! The length field is a hint, the gzip data is the truth: a span that is not exactly one member
//! (a damaged length) is not an error by itself. The stream is then read serially from that
//! member's first byte on (the members after it were cut by the wrong length, so their results
//! are dropped and their bytes re-read), and the serial reader reports whatever is really wrong,
//! or reads the data whole, as `gzip -d`, Node and the JS twin do. A stream that ends after a
//! member without the last-member flag, all lengths having held, is truncated (a cut between
//! members would otherwise read as a shorter valid file).
//!
//! Invariants: a member is dispatched only when all its bytes are here; nothing is emitted out of
//! order or twice; a member's output is released only after libdeflate checked its CRC-32; at
//! most `2 x threads` members (each at most `gzip::MAX_MEMBER` stored bytes) are held. A
//! member's output goes to the caller as a piece of its own (`Output::push_piece`), not copied.
//! Member buffers are recycled within the stream (`BufferPool`, at most `threads + 1` idle): a
//! fresh MiB-sized buffer costs a page fault per 4 KiB on every use.
//! Output limit (`Decompressor`): gathering stops once the call's output reaches it, and finished
//! members are emitted only below it (the one that crosses it whole); members in flight finish and
//! come out with later calls. Serial mode keeps the bytes the serial reader has not read in
//! `serial_backlog`. Switching to serial reading emits every member before it regardless of the
//! limit (at most the queue's `2 x threads`): their output must come first.

use std::cell::RefCell;
use std::sync::Arc;

use super::deflate::Inflater;
use super::gzip::{announced, HEADER_LEN};
use super::whole_member::WholeMemberInflater;
use super::{Backlog, Decompressor};
use crate::error::{CodecError, Result};
use crate::output::Output;
use crate::pool::{BufferPool, Ordered, Workers};

/// A member recording more output than this is inflated by the general (streaming) reader.
const MAX_INFLATED: usize = 64 << 20;

thread_local! {
    /// The libdeflate decompressor of this worker thread (made once per thread).
    static INFLATER: RefCell<Option<WholeMemberInflater>> = const { RefCell::new(None) };
}

/// What a worker gives back: the member's bytes (needed again if the stream must be re-read
/// serially from here) and its output, or `None` if the span is not exactly one member.
struct Job {
    member: Vec<u8>,
    output: Option<Vec<u8>>,
}

/// Inflates one gathered member; `None` when the span is not exactly one valid member.
fn inflate_member(member: &[u8]) -> Option<Vec<u8>> {
    let n = member.len();
    let isize = u32::from_le_bytes(member[n - 4..].try_into().ok()?) as usize;
    if isize > MAX_INFLATED {
        // Not a member this project writes (2 MiB of input each): the serial reader takes it.
        return None;
    }
    INFLATER
        .with(|cell| {
            cell.borrow_mut()
                .get_or_insert_with(WholeMemberInflater::new)
                .inflate(member, isize)
        })
        .ok()
}

pub(crate) struct ParallelGunzip {
    /// Bytes of the member being gathered, from its first header byte.
    member: Vec<u8>,
    /// Its announced length and last-member flag once the header is here.
    expected: Option<(usize, bool)>,
    /// Whether the member dispatched last carried the last-member flag.
    ended: bool,
    /// Set from the first member that is not one of ours (or whose length did not hold): it and
    /// the rest of the stream are read serially.
    serial: Option<Inflater>,
    /// Bytes taken from the caller that the serial reader has not read yet (the output limit
    /// stopped it): read before any new input.
    serial_backlog: Backlog,
    /// Members handed to workers so far.
    dispatched: u64,
    workers: Arc<Workers>,
    queue: Ordered<Job>,
    /// Buffers of emitted members' stored bytes, for the next members.
    members: BufferPool,
}

/// How many finished members `drain` takes.
#[derive(Clone, Copy)]
enum Drain {
    /// Those already done.
    Ready,
    /// Until there is room for one more in flight.
    Room,
    /// All, waiting for each.
    All,
}

impl ParallelGunzip {
    pub(crate) fn new(threads: usize, workers: Arc<Workers>) -> ParallelGunzip {
        ParallelGunzip {
            member: Vec::new(),
            expected: None,
            ended: false,
            serial: None,
            serial_backlog: Backlog::default(),
            dispatched: 0,
            workers,
            queue: Ordered::new(2 * threads.max(1)),
            // (none idle for a one-thread decoder: see open.rs's buffers)
            members: BufferPool::new(if threads <= 1 { 0 } else { threads + 1 }),
        }
    }

    /// Emits finished members in order while `out` holds less than `limit` bytes. A member that
    /// was not exactly one member switches the stream to serial reading from its first byte
    /// (`self.serial` is then set).
    fn drain(&mut self, how: Drain, out: &mut Output, limit: usize) -> Result<()> {
        while out.total_len() < limit {
            let job = match how {
                Drain::Ready => self.queue.try_oldest()?,
                Drain::Room => self.queue.oldest_if_full()?,
                Drain::All => self.queue.wait_oldest()?,
            };
            let Some(job) = job else { return Ok(()) };
            match job.output {
                Some(data) => {
                    out.push_piece(data);
                    self.members.put(job.member);
                }
                None => return self.reread_serially(job.member),
            }
        }
        Ok(())
    }

    /// `from` did not hold as one member: everything after it was cut by its length, so the
    /// bytes of every member still in flight and of the one being gathered follow it, in order,
    /// into the serial reader (their parallel results are dropped unseen).
    fn reread_serially(&mut self, mut from: Vec<u8>) -> Result<()> {
        while let Some(job) = self.queue.wait_oldest()? {
            from.extend_from_slice(&job.member);
        }
        from.extend_from_slice(&self.member);
        self.member = Vec::new();
        self.expected = None;
        self.start_serial(from);
        Ok(())
    }

    /// Switches to the serial reader, which reads `bytes` first (in `read_serially`).
    fn start_serial(&mut self, bytes: Vec<u8>) {
        self.serial = Some(Inflater::new(true));
        self.serial_backlog.push(bytes, 0);
    }

    /// Emits every member in flight, then reads the gathered bytes and all that follows serially.
    fn go_serial(&mut self, out: &mut Output) -> Result<()> {
        // The members before the serial part come first, all of them (a rare path: gzip of
        // another writer, or a damaged length).
        self.drain(Drain::All, out, usize::MAX)?;
        if self.serial.is_none() {
            let gathered = std::mem::take(&mut self.member);
            self.start_serial(gathered);
        }
        Ok(())
    }

    /// Serial mode: reads the bytes waiting for the serial reader, then as much of `input` as the
    /// limit lets it; returns the bytes of `input` taken.
    fn read_serially(&mut self, input: &[u8], out: &mut Output, limit: usize) -> Result<usize> {
        let serial = self
            .serial
            .as_mut()
            .expect("gunzip: internal error: serial reading without the serial reader");
        self.serial_backlog.feed(serial, out, limit)?;
        if !self.serial_backlog.is_empty() {
            return Ok(0); // stopped at the limit
        }
        serial.push(input, out, limit)
    }

    fn dispatch(&mut self, out: &mut Output) -> Result<()> {
        self.drain(Drain::Room, out, usize::MAX)?;
        if self.serial.is_some() {
            return Ok(()); // this member's bytes went to the serial reader with the rest
        }
        let member = std::mem::take(&mut self.member);
        self.ended = self.expected.take().is_some_and(|(_, last)| last);
        self.dispatched += 1;
        self.queue.push(self.workers.submit(move || {
            let output = inflate_member(&member);
            Job { member, output }
        }));
        Ok(())
    }
}

impl Decompressor for ParallelGunzip {
    fn writes_in_place(&self) -> bool {
        self.serial.is_some()
    }

    fn push(&mut self, input: &[u8], out: &mut Output, limit: usize) -> Result<usize> {
        let mut rest = input;
        // Gathering stops at the limit; members already in flight still finish (bounded by the
        // queue) and come out with the next call.
        while self.serial.is_none() && !rest.is_empty() && out.total_len() < limit {
            let want = self.expected.map_or(HEADER_LEN, |(total, _)| total);
            let n = (want - self.member.len()).min(rest.len());
            self.member.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            if self.member.len() < want {
                break;
            }
            match self.expected {
                Some(_) => self.dispatch(out)?,
                None => match announced(&self.member) {
                    Some((total, last)) => {
                        if self.member.capacity() < total {
                            let mut recycled = self.members.take(total);
                            recycled.extend_from_slice(&self.member);
                            self.member = recycled;
                        }
                        self.expected = Some((total, last));
                    }
                    None => self.go_serial(out)?,
                },
            }
        }
        if self.serial.is_none() {
            self.drain(Drain::Ready, out, limit)?; // may switch to serial reading
        }
        let taken = input.len() - rest.len();
        if self.serial.is_none() {
            return Ok(taken);
        }
        Ok(taken + self.read_serially(rest, out, limit)?)
    }

    fn finish(&mut self, out: &mut Output, limit: usize) -> Result<bool> {
        // Bytes of an unfinished member (or no member at all): the serial reader reports exactly
        // what is wrong with them (truncated, not gzip), or reads them if only a length was wrong.
        if self.serial.is_none() && (!self.member.is_empty() || self.dispatched == 0) {
            self.go_serial(out)?;
        }
        self.drain(Drain::All, out, limit)?;
        if self.queue.len() > 0 {
            return Ok(false); // members held back by the limit
        }
        if self.serial.is_some() {
            self.read_serially(&[], out, limit)?;
            let serial = self
                .serial
                .as_mut()
                .expect("gunzip: serial reader just seen");
            return match self.serial_backlog.is_empty() {
                true => serial.finish(out, limit),
                false => Ok(false), // bytes held back by the limit
            };
        }
        if !self.ended {
            return Err(CodecError::decompress(
                "gzip",
                "the stream ends after a member that is not its last (truncated between members)",
            ));
        }
        Ok(true)
    }
}
