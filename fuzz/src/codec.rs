//! Codec fuzz bodies: frame header parsing (with masking and close payloads riding along) and
//! streaming UTF-8 validation. Each body asserts invariants with `assert!`, so a wrong answer
//! is a crash, not only a panic inside the codec.

use wsrelay_codec::{
    apply_mask, apply_mask_reference, is_valid_close_code, rotate_key, CloseFrame, FrameHeader,
    OpCode, Parse, ParseConfig, ProtocolError, Role, Utf8Validator, MAX_HEADER_LEN, RSV1, RSV2,
    RSV3,
};

/// Header parsing, for both roles and with and without RSV1 allowed, then masking and close
/// payloads over the same bytes.
///
/// Parsing: the result equals a plain reference parser's; a complete header fits the input,
/// its length is `encoded_len()`, it re-encodes to exactly the bytes it came from (so only
/// minimal lengths are accepted), masking follows the role, RSV bits are only the allowed ones,
/// control frames are final and at most 125 bytes. "Need k more" is honest: `k >= 1`, never
/// beyond 14 bytes in all, and once two bytes are there, `k` more bytes of any value finish the
/// header. Every prefix of the input gives a consistent answer (errors and headers are final,
/// no prefix asks for more than the header turns out to need).
pub fn frame_header(data: &[u8]) {
    for role in [Role::Server, Role::Client] {
        for allowed_rsv in [0, RSV1] {
            check_parse(data, ParseConfig::new(role).with_allowed_rsv(allowed_rsv));
        }
    }
    check_mask(data);
    check_close_payload(data);
}

fn check_parse(data: &[u8], config: ParseConfig) {
    let outcome = FrameHeader::parse(data, config);
    assert_eq!(
        outcome,
        reference_parse(data, config),
        "parse disagrees with the reference for {config:?}"
    );
    // How many bytes the header turns out to need, when that is known.
    let mut header_len = None;
    match outcome {
        Ok(Parse::Complete(h, n)) => {
            assert!(n <= data.len() && n <= MAX_HEADER_LEN);
            assert_eq!(n, h.encoded_len());
            let mut buf = [0u8; MAX_HEADER_LEN];
            assert_eq!(h.encode(&mut buf), &data[..n], "re-encoding differs");
            assert_eq!(h.mask.is_some(), config.role == Role::Server);
            assert_eq!(h.rsv & !config.allowed_rsv, 0, "a forbidden RSV bit passed");
            assert_eq!(h.fin, data[0] & 0x80 != 0);
            assert_eq!(h.opcode as u8, data[0] & 0x0F);
            assert!(h.payload_len < 1 << 63);
            if h.opcode.is_control() {
                assert!(h.fin, "fragmented control frame accepted");
                assert!(h.payload_len <= 125, "long control frame accepted");
            }
            // Only the header's own bytes were read.
            assert_eq!(FrameHeader::parse(&data[..n], config), outcome);
            header_len = Some(n);
        }
        Ok(Parse::Incomplete(need)) => {
            assert!(need >= 1, "incomplete but needs nothing");
            assert!(data.len() + need <= MAX_HEADER_LEN, "asks beyond 14 bytes");
            for fill in [0x00, 0xFF] {
                let mut more = data.to_vec();
                more.resize(data.len() + need, fill);
                if let Ok(Parse::Incomplete(again)) = FrameHeader::parse(&more, config) {
                    // Only the first two bytes can leave the length open; after them the
                    // header's length is known and "need" is exact.
                    assert!(
                        data.len() < 2,
                        "{need} more bytes did not finish the header"
                    );
                    assert!(again >= 1 && more.len() + again <= MAX_HEADER_LEN);
                }
            }
            if data.len() >= 2 {
                header_len = Some(data.len() + need);
            }
        }
        Err(_) => assert!(data.len() >= 2, "an error before two bytes were seen"),
    }
    // Prefixes: a shorter input never contradicts a longer one.
    for cut in 0..data.len().min(MAX_HEADER_LEN) {
        match FrameHeader::parse(&data[..cut], config) {
            Ok(Parse::Incomplete(need)) => {
                if let Some(total) = header_len {
                    assert!(cut + need <= total, "prefix of {cut} asks for too much");
                    if cut >= 2 {
                        assert_eq!(
                            cut + need,
                            total,
                            "prefix of {cut} asks for the wrong amount"
                        );
                    }
                }
            }
            other => assert_eq!(other, outcome, "prefix of {cut} bytes decided differently"),
        }
    }
}

/// A deliberately plain parser written from RFC 6455 §5.2: the rules of the first two bytes in
/// the order the RFC lists them (opcode, RSV, masking, control-frame rules), then the extended
/// length once all of the header is there.
fn reference_parse(data: &[u8], config: ParseConfig) -> Result<Parse, ProtocolError> {
    if data.len() < 2 {
        return Ok(Parse::Incomplete(2 - data.len()));
    }
    let (b0, b1) = (data[0], data[1]);
    let opcode = match b0 & 0x0F {
        0 => OpCode::Continuation,
        1 => OpCode::Text,
        2 => OpCode::Binary,
        8 => OpCode::Close,
        9 => OpCode::Ping,
        10 => OpCode::Pong,
        other => return Err(ProtocolError::ReservedOpcode(other)),
    };
    let rsv = b0 & (RSV1 | RSV2 | RSV3);
    if rsv & !config.allowed_rsv != 0 {
        return Err(ProtocolError::ReservedBits(
            (rsv & !config.allowed_rsv) >> 4,
        ));
    }
    let masked = b1 & 0x80 != 0;
    if config.role == Role::Server && !masked {
        return Err(ProtocolError::UnmaskedClientFrame);
    }
    if config.role == Role::Client && masked {
        return Err(ProtocolError::MaskedServerFrame);
    }
    let fin = b0 & 0x80 != 0;
    let len7 = u64::from(b1 & 0x7F);
    if matches!(opcode, OpCode::Close | OpCode::Ping | OpCode::Pong) {
        if !fin {
            return Err(ProtocolError::FragmentedControlFrame);
        }
        if len7 > 125 {
            return Err(ProtocolError::ControlFrameTooLong(len7));
        }
    }
    let extended = match len7 {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let total = 2 + extended + if masked { 4 } else { 0 };
    if data.len() < total {
        return Ok(Parse::Incomplete(total - data.len()));
    }
    let mut payload_len = len7;
    if extended > 0 {
        payload_len = data[2..2 + extended]
            .iter()
            .fold(0u64, |n, b| (n << 8) | u64::from(*b));
        if extended == 8 && payload_len >= 1 << 63 {
            return Err(ProtocolError::LengthTopBitSet);
        }
        let smallest = if extended == 2 { 126 } else { 0x1_0000 };
        if payload_len < smallest {
            return Err(ProtocolError::NonMinimalLength(payload_len));
        }
    }
    let mask = masked.then(|| {
        let k = &data[2 + extended..total];
        [k[0], k[1], k[2], k[3]]
    });
    Ok(Parse::Complete(
        FrameHeader {
            fin,
            rsv,
            opcode,
            mask,
            payload_len,
        },
        total,
    ))
}

/// Masking with a key from the first four bytes, at an offset from the next eight, over the rest
/// split at two data-chosen points, equals the per-byte reference; masking twice restores the
/// bytes; a key rotated to the offset masks the same from offset 0.
fn check_mask(data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let key = [data[0], data[1], data[2], data[3]];
    let offset_bytes = &data[4..data.len().min(12)];
    // Offsets stay below 2^62, far beyond any real payload and clear of overflow in the reference.
    let offset = offset_bytes
        .iter()
        .fold(0u64, |n, b| (n << 8) | u64::from(*b))
        >> 2;
    let payload = &data[4..];
    let len = payload.len();
    let mut expected = payload.to_vec();
    apply_mask_reference(&mut expected, key, offset);

    let a = usize::from(data[len % 4]) * (len + 1) / 256;
    let b = usize::from(data[(len / 2) % 4]) * (len + 1) / 256;
    let (a, b) = (a.min(b), a.max(b));
    let mut chunked = payload.to_vec();
    for (start, end) in [(0, a), (a, b), (b, len)] {
        apply_mask(&mut chunked[start..end], key, offset + start as u64);
    }
    assert_eq!(
        chunked, expected,
        "chunked masking differs from the reference"
    );

    let mut one_shot = payload.to_vec();
    apply_mask(&mut one_shot, key, offset);
    assert_eq!(one_shot, expected, "masking differs from the reference");
    apply_mask(&mut one_shot, key, offset);
    assert_eq!(one_shot, payload, "masking twice is not the identity");

    let mut rotated = payload.to_vec();
    apply_mask(&mut rotated, rotate_key(key, offset), 0);
    assert_eq!(rotated, expected, "rotate_key disagrees with the offset");
}

/// The bytes as a close payload: accepted exactly when empty, or a valid code and UTF-8 reason;
/// an accepted payload of at most 125 bytes encodes back to itself.
fn check_close_payload(data: &[u8]) {
    let parsed = CloseFrame::parse(data);
    let expected_ok = match data {
        [] => true,
        [_] => false,
        [hi, lo, reason @ ..] => {
            is_valid_close_code(u16::from_be_bytes([*hi, *lo]))
                && std::str::from_utf8(reason).is_ok()
        }
    };
    assert_eq!(parsed.is_ok(), expected_ok, "close payload judged wrongly");
    if let Ok(close) = parsed {
        assert_eq!(close.code.is_some(), !data.is_empty());
        if let Some(code) = close.code {
            assert!(is_valid_close_code(code));
            let mut buf = [0u8; 125];
            let encoded = CloseFrame::encode(code, close.reason, &mut buf);
            if data.len() <= 125 {
                assert_eq!(encoded, data, "close payload does not round-trip");
            } else {
                // Too long for a control frame: cut on a character boundary, still valid.
                assert!(encoded.len() <= 125 && data.starts_with(encoded));
                assert!(CloseFrame::parse(encoded).is_ok());
            }
        }
    }
}

/// Streaming UTF-8 over chunks split where the first bytes say, then byte by byte.
///
/// The first byte gives how many of the following bytes (0-3) are cut points; the rest is the
/// text. Fed in those chunks and finished, the validator agrees with `std::str::from_utf8`, and
/// if it fails, it fails in the chunk holding the first byte after which no valid text can
/// follow (an incomplete last character fails only at `finish`). Fed byte by byte, the first
/// failing byte is the first `i` for which `from_utf8(&text[..=i])` reports an error with
/// `error_len() == Some(_)`, and `is_mid_character` is true exactly while the text so far ends
/// inside a character. `finish` resets the validator for the next message.
pub fn utf8_stream(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let cut_count = usize::from(first % 4).min(rest.len());
    let (cut_bytes, text) = rest.split_at(cut_count);
    let expected_fail = first_fatal_byte(text);
    let whole_ok = std::str::from_utf8(text).is_ok();

    // Chunks at data-chosen points.
    let mut points: Vec<usize> = cut_bytes
        .iter()
        .map(|b| usize::from(*b) * (text.len() + 1) / 256)
        .collect();
    points.sort_unstable();
    points.push(text.len());
    let mut validator = Utf8Validator::new();
    let mut start = 0;
    let mut failed = false;
    for end in points {
        if validator.feed(&text[start..end]).is_err() {
            let at = expected_fail.expect("failed on text that std accepts up to here");
            assert!(
                (start..end).contains(&at),
                "failed in chunk {start}..{end}, first fatal byte is {at}"
            );
            failed = true;
            break;
        }
        start = end;
    }
    if !failed {
        assert_eq!(expected_fail, None, "missed a fatal byte");
        assert_eq!(
            validator.finish().is_ok(),
            whole_ok,
            "finish disagrees with std"
        );
    }

    // Byte by byte, against std on each prefix. `boundary` is where the last complete character
    // of the prefix ends; std on `text[boundary..=i]` judges `text[..=i]` without rescanning.
    let mut validator = Utf8Validator::new();
    let mut boundary = 0;
    for i in 0..text.len() {
        let fed = validator.feed(&text[i..=i]);
        let (fatal, mid) = match std::str::from_utf8(&text[boundary..=i]) {
            Ok(_) => {
                boundary = i + 1;
                (false, false)
            }
            Err(e) => {
                boundary += e.valid_up_to();
                (e.error_len().is_some(), e.error_len().is_none())
            }
        };
        assert_eq!(fed.is_err(), fatal, "byte-by-byte verdict wrong at {i}");
        if fatal {
            assert_eq!(expected_fail, Some(i), "first fatal byte");
            return;
        }
        assert_eq!(
            validator.is_mid_character(),
            mid,
            "mid-character state wrong at {i}"
        );
    }
    assert_eq!(expected_fail, None, "no byte was fatal");
    assert_eq!(validator.finish().is_ok(), whole_ok);
    // The validator is reset: a new message starts clean.
    assert!(!validator.is_mid_character());
    assert!(validator.feed("ok κ".as_bytes()).is_ok() && validator.finish().is_ok());
}

/// The first index `i` such that no continuation can make `text[..=i]` valid UTF-8.
fn first_fatal_byte(text: &[u8]) -> Option<usize> {
    // std reports the first error; an error with a length is fatal where that sequence ends.
    // Checking each prefix would be quadratic; instead find the first invalid sequence and then
    // the shortest prefix that std already calls fatal (at most 4 candidates).
    let e = std::str::from_utf8(text).err()?;
    e.error_len()?;
    let from = e.valid_up_to();
    (from..text.len().min(from + 4))
        .find(|&i| matches!(std::str::from_utf8(&text[..=i]), Err(e) if e.error_len().is_some()))
}
