//! A worker thread with a ring of its own: it relays both directions of every connection handed
//! to it. Each loop turn submits every SQE queued since the last turn and waits for completions
//! in one `io_uring_enter`, so the receives and sends of all its connections are batched.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{Receiver, TryRecvError};

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use wsrelay::codec::Role;
use wsrelay::relay::{Forwarder, ForwarderConfig};

use super::direction::{Checked, Direction};
use super::handshake::Upgraded;
use super::provided::ProvidedBuffers;
use super::RecvMode;

/// `user_data` of the receive on the wake-up socket.
const WAKE: u64 = u64::MAX;
/// Bits of `user_data` below the connection's slot: direction and operation.
const SLOT_SHIFT: u32 = 2;
/// Submission queue entries per ring (the completion queue gets twice as many).
const RING_ENTRIES: u32 = 4096;
/// Provided buffers per worker, and their size, in multishot mode.
const PROVIDED_ENTRIES: u16 = 1024;
const PROVIDED_SIZE: usize = 16 * 1024;
/// The buffer group of the provided buffers.
const GROUP: u16 = 0;

/// Which operation a completion belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Recv,
    Send,
}

fn user_data(slot: usize, dir: usize, op: Op) -> u64 {
    ((slot as u64) << SLOT_SHIFT) | ((dir as u64) << 1) | u64::from(op == Op::Send)
}

fn decode(user_data: u64) -> (usize, usize, Op) {
    let op = if user_data & 1 == 1 {
        Op::Send
    } else {
        Op::Recv
    };
    (
        (user_data >> SLOT_SHIFT) as usize,
        ((user_data >> 1) & 1) as usize,
        op,
    )
}

/// A relayed connection: `fds[0]` is the client, `fds[1]` the upstream; direction 0 reads the
/// client and sends to the upstream, direction 1 the reverse.
struct Conn {
    fds: [TcpStream; 2],
    dirs: [Direction; 2],
    /// Operations submitted and not completed: the connection (and its buffers) is dropped only
    /// at zero, so the kernel never touches freed memory.
    in_flight: u32,
    /// Ending: both sockets were shut down, nothing new is submitted.
    closing: bool,
    /// Multishot mode: provided buffers received while the direction's buffer was full
    /// (buffer id, length, bytes already taken), handed back as they are copied.
    held: [VecDeque<(u16, usize, usize)>; 2],
    /// Multishot mode: the direction's receive ended for lack of provided buffers; it is armed
    /// again at the end of a turn that handed buffers back.
    starved: [bool; 2],
}

/// One worker: its ring, its connections, and the channel new connections arrive on.
pub(crate) struct Worker {
    // Declared before `provided`: the ring goes first, then the buffer memory it used.
    ring: IoUring,
    provided: Option<ProvidedBuffers>,
    mode: RecvMode,
    buffer_size: usize,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    inbox: Receiver<Upgraded>,
    wake: UnixStream,
    wake_buf: Box<[u8; 64]>,
    /// Completions of one loop turn, copied out of the queue so handlers can submit.
    cqes: Vec<(u64, i32, u32)>,
    /// Multishot receives ended for lack of buffers, to arm again once buffers come back.
    rearm: Vec<(usize, usize)>,
    /// Provided buffers were handed back this turn (publish the tail once).
    returned: bool,
}

/// The write end of a worker's wake-up socket and the channel to it, for the acceptor.
pub(crate) struct Handle {
    pub(crate) sender: std::sync::mpsc::Sender<Upgraded>,
    pub(crate) wake: UnixStream,
}

impl Handle {
    /// Hands `conn` to the worker and wakes it.
    pub(crate) fn send(&mut self, conn: Upgraded) -> Result<(), String> {
        self.sender
            .send(conn)
            .map_err(|_| "worker gone".to_string())?;
        match self.wake.write(&[1]) {
            Ok(_) => Ok(()),
            // Full: a wake-up is pending anyway.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl Worker {
    /// Sets up a ring (and, in multishot mode, its provided buffers); the error is the kernel's.
    ///
    /// With `defer_taskrun` (Linux 6.1+) the kernel runs completion work only when this thread
    /// enters the ring to wait, instead of interrupting it; the ring then belongs to the thread
    /// that creates it, so the worker is built on its own thread.
    pub(crate) fn new(
        mode: RecvMode,
        buffer_size: usize,
        defer_taskrun: bool,
    ) -> Result<(Worker, Handle), String> {
        let mut builder = IoUring::builder();
        builder.setup_cqsize(RING_ENTRIES * 2);
        if defer_taskrun {
            builder.setup_single_issuer().setup_defer_taskrun();
        }
        let ring = builder
            .build(RING_ENTRIES)
            .map_err(|e| format!("io_uring setup: {e}"))?;
        let provided = match mode {
            RecvMode::Single => None,
            RecvMode::Multishot => Some(
                ProvidedBuffers::register(&ring, GROUP, PROVIDED_ENTRIES, PROVIDED_SIZE)
                    .map_err(|e| format!("io_uring provided buffer ring: {e}"))?,
            ),
        };
        let (sender, inbox) = std::sync::mpsc::channel();
        let (wake_tx, wake) = UnixStream::pair().map_err(|e| e.to_string())?;
        wake_tx.set_nonblocking(true).map_err(|e| e.to_string())?;
        let worker = Worker {
            ring,
            provided,
            mode,
            buffer_size,
            conns: Vec::new(),
            free: Vec::new(),
            inbox,
            wake,
            wake_buf: Box::new([0u8; 64]),
            cqes: Vec::with_capacity(RING_ENTRIES as usize * 2),
            rearm: Vec::new(),
            returned: false,
        };
        let handle = Handle {
            sender,
            wake: wake_tx,
        };
        Ok((worker, handle))
    }

    /// Runs the loop until the acceptor is gone and no connection is left.
    pub(crate) fn run(mut self) -> io::Result<()> {
        self.arm_wake()?;
        let mut accepting = true;
        loop {
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
                Err(e) => return Err(e),
            }
            self.cqes.clear();
            for cqe in self.ring.completion() {
                self.cqes.push((cqe.user_data(), cqe.result(), cqe.flags()));
            }
            for i in 0..self.cqes.len() {
                let (data, result, flags) = self.cqes[i];
                if data == WAKE {
                    accepting = self.take_new(result)?;
                } else {
                    self.complete(data, result, flags)?;
                }
            }
            self.after_turn()?;
            if !accepting && self.conns.iter().all(Option::is_none) {
                return Ok(());
            }
        }
    }

    /// Queues an SQE; when the queue is full, submits what it holds first.
    ///
    /// # Safety
    /// Every buffer the entry points to must stay valid until its completion is reaped.
    unsafe fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        while self.ring.submission().push(entry).is_err() {
            self.ring.submit()?;
        }
        Ok(())
    }

    fn arm_wake(&mut self) -> io::Result<()> {
        let entry = opcode::Recv::new(
            types::Fd(self.wake.as_raw_fd()),
            self.wake_buf.as_mut_ptr(),
            self.wake_buf.len() as u32,
        )
        .build()
        .user_data(WAKE);
        // SAFETY: the wake buffer is boxed in the worker, which outlives its ring's operations.
        unsafe { self.push(&entry) }
    }

    /// Takes the connections the acceptor sent; false once the acceptor is gone.
    fn take_new(&mut self, result: i32) -> io::Result<bool> {
        loop {
            match self.inbox.try_recv() {
                Ok(upgraded) => self.add(upgraded)?,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return Ok(false),
            }
        }
        if result > 0 {
            self.arm_wake()?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn add(&mut self, upgraded: Upgraded) -> io::Result<()> {
        let config = |role| ForwarderConfig {
            // The same checks as `wsrelay --no-utf8-validation --max-frame-size 0
            // --max-message-size 0`: strict RFC 6455, no size limits, no UTF-8 validation.
            validate_utf8: false,
            ..ForwarderConfig::new(role)
        };
        let Upgraded {
            client,
            upstream,
            client_early,
            upstream_early,
        } = upgraded;
        let conn = Conn {
            fds: [client, upstream],
            dirs: [
                Direction::new(
                    Forwarder::new(config(Role::Server)),
                    self.buffer_size,
                    &client_early,
                    self.mode == RecvMode::Single,
                ),
                Direction::new(
                    Forwarder::new(config(Role::Client)),
                    self.buffer_size,
                    &upstream_early,
                    self.mode == RecvMode::Single,
                ),
            ],
            in_flight: 0,
            closing: false,
            held: [VecDeque::new(), VecDeque::new()],
            starved: [false; 2],
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.conns[slot] = Some(conn);
                slot
            }
            None => {
                self.conns.push(Some(conn));
                self.conns.len() - 1
            }
        };
        for dir in 0..2 {
            let checked = match self.conns[slot].as_mut() {
                Some(conn) if conn.dirs[dir].end > 0 => conn.dirs[dir].check(),
                _ => Checked::Forward,
            };
            if checked == Checked::Fail {
                self.end(slot);
                return Ok(());
            }
        }
        self.drive(slot)
    }

    /// Handles one completion of a connection's receive or send.
    fn complete(&mut self, data: u64, result: i32, flags: u32) -> io::Result<()> {
        let (slot, dir, op) = decode(data);
        let mode = self.mode;
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return Ok(());
        };
        let multishot = op == Op::Recv && mode == RecvMode::Multishot;
        // A multishot receive stays armed (one operation) while the kernel says more follow.
        if !multishot || !cqueue::more(flags) {
            conn.in_flight = conn.in_flight.saturating_sub(1);
            match op {
                Op::Recv => conn.dirs[dir].recv_in_flight = false,
                Op::Send => conn.dirs[dir].send_in_flight = false,
            }
        }
        let mut fail = false;
        match op {
            Op::Recv if multishot => {
                if let Some(bid) = cqueue::buffer_select(flags) {
                    let len = usize::try_from(result).unwrap_or(0);
                    if conn.closing || !conn.dirs[dir].reading {
                        // Dropped unread: the connection is ending or its close was seen.
                        give_back(&mut self.provided, bid, &mut self.returned);
                    } else {
                        conn.held[dir].push_back((bid, len, 0));
                        fail = take_held(conn, dir, &mut self.provided, &mut self.returned);
                    }
                }
                if result == -libc::ENOBUFS {
                    if !conn.closing {
                        conn.starved[dir] = true;
                        self.rearm.push((slot, dir));
                    }
                } else if result <= 0 && !conn.closing {
                    // EOF or an error: the prototype ends both sides without a close frame.
                    fail = true;
                }
            }
            Op::Recv => {
                if result > 0 && !conn.closing {
                    let d = &mut conn.dirs[dir];
                    d.received(result as usize);
                    fail = d.check() == Checked::Fail;
                } else if !conn.closing {
                    fail = true;
                }
            }
            Op::Send => {
                if result < 0 {
                    fail = !conn.closing;
                } else {
                    conn.dirs[dir].sent(result as usize);
                }
            }
        }
        if fail {
            self.end(slot);
            return Ok(());
        }
        self.drive(slot)
    }

    /// Submits what a connection can do next: each direction's checked bytes are sent, and
    /// its source read while there is room; a connection whose closes crossed is ended.
    fn drive(&mut self, slot: usize) -> io::Result<()> {
        let mode = self.mode;
        let group = self.provided.as_ref().map_or(GROUP, |p| p.group);
        let mut entries: [Option<squeue::Entry>; 4] = [None, None, None, None];
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return Ok(());
        };
        if conn.closing {
            return self.free_if_done(slot);
        }
        let closed = conn.dirs.iter().all(|d| d.close_seen && d.start == d.ready);
        if closed {
            self.end(slot);
            return Ok(());
        }
        for dir in 0..2 {
            let from = conn.fds[dir].as_raw_fd();
            let to = conn.fds[1 - dir].as_raw_fd();
            if mode == RecvMode::Multishot
                && !conn.held[dir].is_empty()
                && take_held(conn, dir, &mut self.provided, &mut self.returned)
            {
                self.end(slot);
                return Ok(());
            }
            let d = &mut conn.dirs[dir];
            if d.start < d.ready && !d.send_in_flight {
                let (ptr, len) = d.checked();
                d.send_in_flight = true;
                conn.in_flight += 1;
                entries[dir * 2] = Some(
                    opcode::Send::new(types::Fd(to), ptr, len)
                        .flags(libc::MSG_NOSIGNAL)
                        .build()
                        .user_data(user_data(slot, dir, Op::Send)),
                );
            }
            if d.reading && !d.recv_in_flight {
                d.compact();
                let armed = match mode {
                    RecvMode::Single if d.end < d.capacity() => {
                        let (ptr, len) = d.room();
                        Some(
                            opcode::Recv::new(types::Fd(from), ptr, len)
                                .build()
                                .user_data(user_data(slot, dir, Op::Recv)),
                        )
                    }
                    RecvMode::Multishot if conn.held[dir].is_empty() && !conn.starved[dir] => Some(
                        opcode::RecvMulti::new(types::Fd(from), group)
                            .build()
                            .user_data(user_data(slot, dir, Op::Recv)),
                    ),
                    _ => None,
                };
                if armed.is_some() {
                    d.recv_in_flight = true;
                    conn.in_flight += 1;
                }
                entries[dir * 2 + 1] = armed;
            }
        }
        for entry in entries.iter().flatten() {
            // SAFETY: sends and single-shot receives point into a direction's boxed buffer,
            // which lives until the connection is dropped, and that waits for `in_flight` to
            // reach zero; multishot receives use the worker's provided buffers.
            unsafe { self.push(entry)? };
        }
        Ok(())
    }

    /// Ends a connection: both sockets are shut down, which completes its pending receives;
    /// it is dropped once nothing is in flight. No close frame is sent (prototype).
    fn end(&mut self, slot: usize) {
        if let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) {
            if !conn.closing {
                conn.closing = true;
                for fd in &conn.fds {
                    let _ = fd.shutdown(Shutdown::Both);
                }
                for dir in 0..2 {
                    while let Some((bid, _, _)) = conn.held[dir].pop_front() {
                        give_back(&mut self.provided, bid, &mut self.returned);
                    }
                }
            }
        }
        let _ = self.free_if_done(slot);
    }

    fn free_if_done(&mut self, slot: usize) -> io::Result<()> {
        let done = self
            .conns
            .get(slot)
            .and_then(Option::as_ref)
            .is_some_and(|c| c.closing && c.in_flight == 0);
        if done {
            self.conns[slot] = None;
            self.free.push(slot);
        }
        Ok(())
    }

    /// End of a loop turn: publishes the provided buffers handed back, and re-arms the
    /// multishot receives that had run out of them.
    fn after_turn(&mut self) -> io::Result<()> {
        if !self.returned {
            return Ok(());
        }
        self.returned = false;
        if let Some(p) = self.provided.as_ref() {
            p.publish();
        }
        let rearm = std::mem::take(&mut self.rearm);
        for &(slot, dir) in &rearm {
            if let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) {
                conn.starved[dir] = false;
            }
            self.drive(slot)?;
        }
        self.rearm = rearm;
        self.rearm.clear();
        Ok(())
    }
}

/// Hands provided buffer `bid` back to the kernel (published at the end of the turn).
fn give_back(provided: &mut Option<ProvidedBuffers>, bid: u16, returned: &mut bool) {
    if let Some(p) = provided.as_mut() {
        p.push(bid);
        *returned = true;
    }
}

/// Multishot mode: copies held provided buffers into the direction's buffer while it has room,
/// handing each back once taken, and checks what arrived; true if the peer broke a rule.
fn take_held(
    conn: &mut Conn,
    dir: usize,
    provided: &mut Option<ProvidedBuffers>,
    returned: &mut bool,
) -> bool {
    let d = &mut conn.dirs[dir];
    if !d.reading {
        // The source's close was seen: what it sent after is dropped.
        while let Some((bid, _, _)) = conn.held[dir].pop_front() {
            give_back(provided, bid, returned);
        }
        return false;
    }
    let mut took = false;
    while let Some((bid, len, taken)) = conn.held[dir].front_mut() {
        d.compact();
        let Some(p) = provided.as_mut() else {
            break;
        };
        let bytes = p.get(*bid, *len);
        let n = d.append(bytes.get(*taken..).unwrap_or_default());
        took |= n > 0;
        *taken += n;
        if *taken < *len {
            break;
        }
        let bid = *bid;
        conn.held[dir].pop_front();
        p.push(bid);
        *returned = true;
    }
    took && d.check() == Checked::Fail
}
