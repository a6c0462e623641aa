//! Cut-through WebSocket frame relay.
//!
//! Relays one client connection and one upstream connection, both past their opening handshake,
//! over any `AsyncRead + AsyncWrite + Unpin` streams (TCP, TLS, in-memory pipes). Messages are
//! never reassembled: each frame header is parsed and checked, and payload bytes are forwarded as
//! they arrive, so a frame of any size streams through a bounded buffer. Text is validated as UTF-8 on the fly; control frames pass at once, also between
//! fragments; a slow reader on one side slows the reading of the other (back-pressure).
//!
//! ## What is forwarded, and when a frame is re-masked
//!
//! A frame leaves as it came, header and payload byte for byte, with one exception. Towards the
//! upstream the relay is the client, and a client's masking key must be unpredictable (RFC 6455
//! §5.3; §10.3 explains the cache-poisoning attack masking prevents). A browser's keys are, so
//! they are forwarded; a client whose key is `00 00 00 00`, or the same as on its previous frame,
//! is predictable, and from that frame on ([`Remask::Auto`], the default) the relay gives each of
//! its frames a key of its own: the new key goes into the header and the payload gets one XOR
//! pass with `old_key ^ new_key` as it streams through, in the read buffer, never unmasked into a
//! copy. [`Remask::Always`] re-masks every client frame, [`Remask::Never`] none. Keys come from
//! [`wsrelay_codec::random::masking_key`] (a per-thread ChaCha12 generator seeded from the OS);
//! [`Traffic::remasked`] counts re-masked frames. Frames from the upstream are unmasked (§5.1)
//! and always pass as they are.
//!
//! ## Closing
//!
//! | what happens | to the side that caused it | to the other side |
//! |---|---|---|
//! | a side sends close | the other side's close, forwarded | the close, forwarded unchanged |
//! | client breaks the protocol | what the upstream sends until its close, then close 1002 / 1007 / 1009 | close 1001 |
//! | upstream breaks the protocol | what the client sends until its close, then close 1002 / 1007 / 1009 | close 1014 |
//! | client vanishes (EOF or error, no close) | — | close 1001 |
//! | upstream vanishes | — | close 1014 |
//! | idle timeout or shutdown | close 1001 | close 1001 |
//!
//! After a close, the relay waits up to the close timeout for the other side's close, then shuts
//! both connections down. Replies to closes the relay sent itself are absorbed, not forwarded.
//!
//! When a side breaks the protocol, the relay stops reading it and sends the other side its
//! close (1001 or 1014) at once, but frames already on their way from the other side (replies
//! to the offender's valid messages, say) are not dropped: they are delivered to the offender
//! until the other side's close arrives, and only then does the offender get its close with
//! the code of the failure (RFC 6455 §7.1.7). The other side's close is absorbed, not
//! forwarded (the offender gets one close, the relay's, §5.5.1), and recorded in
//! [`RelayOutcome::client_close`] / [`RelayOutcome::upstream_close`]. If the other side does
//! not close within the close timeout, the offender gets its close anyway
//! ([`RelayOutcome::close_timed_out`] is set) and has one more close timeout to take it before
//! both are shut down; if the other side vanishes, or the relay closes for another reason
//! (shutdown, idle timeout, a hook's close), the offender's close goes out at once. Back-pressure
//! holds meanwhile: the other side is read only as fast as the offender takes its frames.
//!
//! A violation found inside a frame that was partly forwarded already leaves the other stream
//! mid-frame, where no close frame can follow: that connection is shut down without one, and
//! since no close will come back from it, the offender gets its close at once.
//! With a [frame hook](hook) the rule is the same; the other side's absorbed close is not shown
//! to the hook, like any answer to a close of the relay's own.
//!
//! When the OS random source fails as the relay needs a masking key (towards the upstream) or a
//! keep-alive token, nothing predictable is sent instead: the client gets close 1011, the
//! upstream too if a key for that close can still be drawn (else it is shut down without a
//! close), and the outcome ends with [`EndReason::RandomSource`]. See [`wsrelay_codec::random`].
//!
//! ## Frame hooks and keep-alive
//!
//! [`Relay::with_hook`] shows every frame to a [`FrameHook`] that may forward, rewrite, drop it
//! or close the connection (see [`hook`] for chunks, fragments and aggregation); without one the
//! relay is the plain cut-through path, compiled without any hook code. [`RelayOptions::keep_alive`]
//! pings quiet sides and absorbs the answers.
//!
//! A runnable example over in-memory pipes: a hook upper-cases the client's text.
//!
//! ```
//! use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt};
//! use wsrelay_codec::{write_frame, FrameHeader, OpCode};
//! use wsrelay_relay::{Frame, Relay, RelayOptions, Verdict};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let (mut client, client_side) = duplex(4096);
//! let (mut upstream, upstream_side) = duplex(4096);
//! let relay = tokio::spawn(async move {
//!     Relay::new(client_side, upstream_side, &RelayOptions::default())
//!         .with_hook(|frame: &mut Frame<'_>| {
//!             frame.payload_mut().make_ascii_uppercase();
//!             Verdict::Replace
//!         })
//!         .run()
//!         .await
//! });
//! // The client sends a masked "hi"...
//! let mut wire = Vec::new();
//! let header = FrameHeader { mask: Some([1, 2, 3, 4]), ..FrameHeader::new(OpCode::Text, 0) };
//! write_frame(&mut wire, header, b"hi");
//! client.write_all(&wire).await?;
//! // ...and the upstream gets "HI", masked with a key of the relay's own.
//! let mut got = [0u8; 8];
//! upstream.read_exact(&mut got).await?;
//! let key = [got[2], got[3], got[4], got[5]];
//! assert_eq!([got[0], got[1] & 0x7F], [0x81, 2]);
//! assert_eq!([got[6] ^ key[0], got[7] ^ key[1]], *b"HI");
//! drop((client, upstream));
//! relay.await.unwrap();
//! # Ok::<(), std::io::Error>(())
//! # }).unwrap();
//! ```
//!
//! With a shutdown signal, on TCP:
//!
//! ```no_run
//! # async fn example(client: tokio::net::TcpStream, upstream: tokio::net::TcpStream) {
//! use wsrelay_relay::{Relay, RelayOptions};
//! let options = RelayOptions { client_max_message_size: Some(1 << 20), ..RelayOptions::default() };
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
mod gate;
pub mod hook;
mod keep_alive;
mod live;
mod options;
mod outcome;
mod pool;
mod pump;
pub mod rate;
mod relay;
mod remask;
mod side;

pub use error::Violation;
pub use forwarder::{Forwarder, ForwarderConfig};
pub use hook::{Chunk, Frame, FrameHook, NoHook, Verdict};
pub use live::LiveTraffic;
pub use options::RelayOptions;
pub use outcome::{CloseInfo, EndReason, RelayOutcome, Side, Traffic};
pub use rate::{Budget, RateAction, RateLimit};
pub use relay::{relay, Relay};
pub use remask::Remask;
