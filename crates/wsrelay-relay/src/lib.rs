//! Cut-through WebSocket frame relay.
//!
//! Relays one client connection and one upstream connection, both past their opening handshake,
//! over any `AsyncRead + AsyncWrite + Unpin` streams (TCP, TLS, in-memory pipes). Messages are
//! never reassembled: each frame header is parsed and checked, and payload bytes are forwarded as
//! they arrive, the client's masking key included, so a frame of any size streams through a
//! bounded buffer. Text is validated as UTF-8 on the fly; control frames pass at once, also between
//! fragments; a slow reader on one side slows the reading of the other (back-pressure).
//!
//! ## Closing
//!
//! | what happens | to the side that caused it | to the other side |
//! |---|---|---|
//! | a side sends close | the other side's close, forwarded | the close, forwarded unchanged |
//! | client breaks the protocol | close 1002 / 1007 / 1009 | close 1001 |
//! | upstream breaks the protocol | close 1002 / 1007 / 1009 | close 1014 |
//! | client vanishes (EOF or error, no close) | — | close 1001 |
//! | upstream vanishes | — | close 1011 |
//! | idle timeout or shutdown | close 1001 | close 1001 |
//!
//! After a close, the relay waits up to the close timeout for the other side's close, then shuts
//! both connections down. Replies to closes the relay sent itself are absorbed, not forwarded.
//! A violation found inside a frame that was partly forwarded already leaves the other stream
//! mid-frame, where no close frame can follow: that connection is shut down without one.
//!
//! ```no_run
//! # async fn example(client: tokio::net::TcpStream, upstream: tokio::net::TcpStream) {
//! use wsrelay_relay::{Relay, RelayOptions};
//! let options = RelayOptions { client_max_message_size: 1 << 20, ..RelayOptions::default() };
//! let outcome = Relay::new(client, upstream, &options)
//!     .with_shutdown(async { let _ = tokio::signal::ctrl_c().await; })
//!     .run()
//!     .await;
//! println!("ended: {:?} after {:?}", outcome.end, outcome.duration);
//! # }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod error;
pub mod forwarder;
pub mod hook;
mod options;
mod outcome;
mod pool;
mod pump;
mod relay;

pub use error::Violation;
pub use forwarder::{Forwarder, ForwarderConfig};
pub use hook::{Chunk, Frame, FrameHook, NoHook, Verdict};
pub use options::RelayOptions;
pub use outcome::{CloseInfo, EndReason, RelayOutcome, Side, Traffic};
pub use relay::{relay, Relay};
