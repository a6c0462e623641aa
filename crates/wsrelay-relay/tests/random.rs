//! The failure policy of the random source (`wsrelay_codec::random`): when no masking key or
//! ping token can be drawn, the relay sends nothing predictable. It ends the connection with
//! 1011, shuts the upstream down without a close frame it could not mask, and names the failure
//! in the outcome. Traffic that needs no randomness is unaffected until then.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::AsyncWriteExt;
use wsrelay_codec::close::code;
use wsrelay_codec::random::fault;
use wsrelay_codec::{OpCode, Role};
use wsrelay_relay::{EndReason, Frame, RelayOptions, RelayOutcome, Verdict};

/// The client got `client_code`, the upstream nothing (its connection was shut down), and the
/// outcome names the random source.
async fn ends_for_lack_of_randomness(mut s: Setup, client_code: u16) -> RelayOutcome {
    expect_close(&mut s.client, Role::Client, client_code).await;
    drop(s.client);
    expect_eof(&mut s.upstream).await;
    drop(s.upstream);
    let outcome = s.relay.await.unwrap();
    assert!(
        matches!(outcome.end, EndReason::RandomSource { .. }),
        "{:?}",
        outcome.end
    );
    assert_eq!(outcome.sent_to_upstream, None);
    outcome
}

#[tokio::test(start_paused = true)]
async fn no_ping_tokens_no_connection() {
    let _failing = fault::fail_on_this_thread();
    let s = start(RelayOptions {
        keep_alive: Some(Duration::from_secs(10)),
        ..RelayOptions::default()
    });
    ends_for_lack_of_randomness(s, code::INTERNAL_ERROR).await;
}

#[tokio::test(start_paused = true)]
async fn a_hook_rewrite_towards_the_upstream_needs_a_masking_key() {
    let _failing = fault::fail_on_this_thread();
    let mut s = start_hooked(RelayOptions::default(), |frame: &mut Frame<'_>| {
        frame.payload_mut().make_ascii_uppercase();
        Verdict::Replace
    });
    // Towards the client nothing is masked: rewriting works without randomness.
    let (h, p) = send_and_read(
        &mut s.upstream,
        &mut s.client,
        Role::Client,
        &server_frame(OpCode::Text, b"down"),
    )
    .await;
    assert_eq!((h.opcode, p.as_slice()), (OpCode::Text, &b"DOWN"[..]));
    // Towards the upstream the rewritten frame would need a fresh key: it is never sent.
    s.client
        .write_all(&frame(OpCode::Text, true, b"up", Some(KEY)))
        .await
        .unwrap();
    ends_for_lack_of_randomness(s, code::INTERNAL_ERROR).await;
}

#[tokio::test(start_paused = true)]
async fn pass_through_needs_no_randomness_but_a_close_to_the_upstream_does() {
    let _failing = fault::fail_on_this_thread();
    let (mut s, shutdown) = start_with_shutdown(RelayOptions::default());
    // The client's frames travel with the client's own key.
    let (h, p) = send_and_read(
        &mut s.client,
        &mut s.upstream,
        Role::Server,
        &frame(OpCode::Binary, true, b"as is", Some(KEY)),
    )
    .await;
    assert_eq!((h.opcode, p.as_slice()), (OpCode::Binary, &b"as is"[..]));
    // Shutting down sends 1001 to the client; the upstream's close cannot be masked, so the
    // upstream is shut down without one and the outcome says why.
    shutdown.send(()).unwrap();
    let outcome = ends_for_lack_of_randomness(s, code::GOING_AWAY).await;
    assert_eq!(outcome.client_to_upstream.frames, 1);
}

#[tokio::test(start_paused = true)]
async fn a_predictable_key_that_cannot_be_replaced_is_never_forwarded() {
    let _failing = fault::fail_on_this_thread();
    let mut s = start(RelayOptions::default());
    // A zero key puts the payload on the wire as it is: it must be re-masked, and cannot be.
    s.client
        .write_all(&frame(
            OpCode::Binary,
            true,
            b"GET / HTTP/1.1",
            Some([0; 4]),
        ))
        .await
        .unwrap();
    let outcome = ends_for_lack_of_randomness(s, code::INTERNAL_ERROR).await;
    assert_eq!(outcome.client_to_upstream.frames, 0);
    assert_eq!(outcome.client_to_upstream.bytes, 0);
}
