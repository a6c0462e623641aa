//! Per-thread pool of pipes for splicing (Linux), so a connection holds a pipe only while a
//! spliced payload is in flight and idle connections hold none.
//!
//! A pump takes a pipe when it starts splicing a payload and gives it back once the pipe is
//! empty again. A pipe left holding bytes that can no longer be delivered (the destination
//! failed) is closed instead, never pooled: its bytes would reach the next connection.

use std::cell::RefCell;
use std::io;
use std::os::fd::OwnedFd;

use rustix::pipe::{fcntl_getpipe_size, fcntl_setpipe_size, pipe_with, PipeFlags};

/// Empty pipes kept per thread for reuse; beyond this they are closed. Each costs two file
/// descriptors and its ring of buffer slots in the kernel (about 10 KiB for 1 MiB), no data
/// pages while empty.
const MAX_POOLED_PIPES: usize = 4;

/// A pipe's two ends and what it holds at most.
pub(crate) struct Pipe {
    /// The end spliced from, towards the destination.
    pub(crate) read: OwnedFd,
    /// The end spliced into, from the source.
    pub(crate) write: OwnedFd,
    /// The capacity that was asked for (pipes are pooled by it).
    asked: usize,
    /// The capacity it got, in bytes: what one splice into it moves at most.
    pub(crate) capacity: usize,
}

thread_local! {
    static PIPES: RefCell<Vec<Pipe>> = const { RefCell::new(Vec::new()) };
}

/// An empty pipe asked to hold `size` bytes, reused when one is pooled. The kernel may give
/// less (`fs.pipe-max-size`, or a user over `fs.pipe-user-pages-soft`): the pipe keeps what
/// it got. An error when no pipe can be made (out of file descriptors).
pub(crate) fn take(size: usize) -> io::Result<Pipe> {
    let pooled = PIPES.with(|p| {
        let mut pipes = p.borrow_mut();
        let at = pipes.iter().rposition(|pipe| pipe.asked == size)?;
        Some(pipes.swap_remove(at))
    });
    if let Some(pipe) = pooled {
        return Ok(pipe);
    }
    let (read, write) = pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC)?;
    // A refused size leaves the default one (64 KiB), which still works, only slower.
    let _ = fcntl_setpipe_size(&write, size);
    let capacity = fcntl_getpipe_size(&write)?;
    Ok(Pipe {
        read,
        write,
        asked: size,
        capacity,
    })
}

/// Returns an empty pipe for reuse on this thread (closed if the pool is full).
pub(crate) fn give(pipe: Pipe) {
    PIPES.with(|p| {
        let mut pipes = p.borrow_mut();
        if pipes.len() < MAX_POOLED_PIPES {
            pipes.push(pipe);
        }
    });
}
