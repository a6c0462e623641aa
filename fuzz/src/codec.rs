//! Codec targets: frame header parsing and streaming UTF-8 validation.

use wsrelay_codec::{
    apply_mask, apply_mask_reference, FrameHeader, Parse, ParseConfig, Role, Utf8Validator,
    MAX_HEADER_LEN, RSV1,
};

/// Header parsing for both roles, with and without RSV1 allowed: what parses re-encodes to the
/// same bytes (only minimal encodings are accepted), control frames obey §5.5, "need more" is
/// honest; masking split anywhere equals the per-byte reference.
pub fn frame_header(data: &[u8]) {
    for role in [Role::Server, Role::Client] {
        for rsv in [0, RSV1] {
            let config = ParseConfig::new(role).with_allowed_rsv(rsv);
            match FrameHeader::parse(data, config) {
                Ok(Parse::Complete(h, n)) => {
                    assert!(n <= data.len() && n <= MAX_HEADER_LEN);
                    assert_eq!(n, h.encoded_len());
                    let mut buf = [0u8; MAX_HEADER_LEN];
                    assert_eq!(h.encode(&mut buf), &data[..n], "re-encoding differs");
                    assert_eq!(h.mask.is_some(), role == Role::Server);
                    assert_eq!(h.rsv & !rsv, 0);
                    if h.opcode.is_control() {
                        assert!(h.fin && h.payload_len <= 125);
                    }
                    assert!(h.payload_len < 1 << 63);
                }
                Ok(Parse::Incomplete(need)) => {
                    assert!(need >= 1 && data.len() + need <= MAX_HEADER_LEN);
                    // Supplying exactly what was asked for moves the parse on.
                    let mut more = data.to_vec();
                    more.resize(data.len() + need, 0);
                    if let Ok(Parse::Incomplete(again)) = FrameHeader::parse(&more, config) {
                        assert!(more.len() + again <= MAX_HEADER_LEN && again >= 1);
                    }
                }
                Err(_) => {}
            }
        }
    }
    if data.len() >= 5 {
        let key = [data[0], data[1], data[2], data[3]];
        let rest = &data[4..];
        let split = usize::from(data[4]) % (rest.len() + 1);
        let offset = u64::from(data[0]);
        let mut expected = rest.to_vec();
        apply_mask_reference(&mut expected, key, offset);
        let mut chunked = rest.to_vec();
        let (a, b) = chunked.split_at_mut(split);
        apply_mask(a, key, offset);
        apply_mask(b, key, offset + split as u64);
        assert_eq!(chunked, expected);
    }
}

/// Streaming UTF-8: chunked validation agrees with `std::str::from_utf8`, and byte-by-byte
/// feeding fails exactly at the first byte after which no continuation can be valid.
pub fn utf8_stream(data: &[u8]) {
    let (cuts, text) = match data.split_first() {
        Some((c, t)) => (*c, t),
        None => return,
    };
    let mut validator = Utf8Validator::new();
    let step = usize::from(cuts % 7) + 1;
    let mut result = Ok(());
    for chunk in text.chunks(step) {
        result = result.and_then(|_| validator.feed(chunk));
    }
    let result = result.and_then(|_| validator.finish());
    assert_eq!(result.is_ok(), std::str::from_utf8(text).is_ok());

    let mut validator = Utf8Validator::new();
    let failed_at = (0..text.len()).find(|&i| validator.feed(&text[i..=i]).is_err());
    let expected = (0..text.len())
        .find(|&i| matches!(std::str::from_utf8(&text[..=i]), Err(e) if e.error_len().is_some()));
    assert_eq!(failed_at, expected);
}
