//! Frame header parsing: every rule of RFC 6455 §5.2 and encode/parse round trips.

use proptest::prelude::*;
use wsrelay_codec::{
    FrameHeader, OpCode, Parse, ParseConfig, ProtocolError, Role, MAX_HEADER_LEN, RSV1, RSV2, RSV3,
};

const SERVER: ParseConfig = ParseConfig::new(Role::Server);
const CLIENT: ParseConfig = ParseConfig::new(Role::Client);

fn parse(bytes: &[u8], config: ParseConfig) -> Result<Parse, ProtocolError> {
    FrameHeader::parse(bytes, config)
}

#[test]
fn incomplete_reports_bytes_needed() {
    assert_eq!(parse(&[], CLIENT), Ok(Parse::Incomplete(2)));
    assert_eq!(parse(&[0x82], CLIENT), Ok(Parse::Incomplete(1)));
    assert_eq!(parse(&[0x82, 126], CLIENT), Ok(Parse::Incomplete(2)));
    assert_eq!(parse(&[0x82, 127, 0], CLIENT), Ok(Parse::Incomplete(7)));
    assert_eq!(
        parse(&[0x82, 0x80 | 5, 1], SERVER),
        Ok(Parse::Incomplete(3))
    );
    assert_eq!(
        parse(&[0x82, 0x80 | 127, 0, 0, 0, 0, 0, 1, 0, 0, 1], SERVER),
        Ok(Parse::Incomplete(3))
    );
}

#[test]
fn length_encodings() {
    let cases: &[(&[u8], u64, usize)] = &[
        (&[0x82, 0], 0, 2),
        (&[0x82, 125], 125, 2),
        (&[0x82, 126, 0, 126], 126, 4),
        (&[0x82, 126, 0xff, 0xff], 65535, 4),
        (&[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0], 65536, 10),
        (
            &[0x82, 127, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            i64::MAX as u64,
            10,
        ),
    ];
    for (bytes, len, header_len) in cases {
        match parse(bytes, CLIENT) {
            Ok(Parse::Complete(h, n)) => {
                assert_eq!((h.payload_len, n), (*len, *header_len), "{bytes:?}");
            }
            other => panic!("{bytes:?}: {other:?}"),
        }
    }
}

#[test]
fn protocol_errors() {
    let cases: &[(&[u8], ParseConfig, ProtocolError)] = &[
        (&[0x83, 0], CLIENT, ProtocolError::ReservedOpcode(3)),
        (&[0x87, 0], CLIENT, ProtocolError::ReservedOpcode(7)),
        (&[0x8B, 0], CLIENT, ProtocolError::ReservedOpcode(0xB)),
        (&[0x8F, 0], CLIENT, ProtocolError::ReservedOpcode(0xF)),
        (&[0xC1, 0], CLIENT, ProtocolError::ReservedBits(0b100)),
        (&[0xA1, 0], CLIENT, ProtocolError::ReservedBits(0b010)),
        (&[0x91, 0], CLIENT, ProtocolError::ReservedBits(0b001)),
        (
            &[0x89, 126, 0, 126],
            CLIENT,
            ProtocolError::ControlFrameTooLong(126),
        ),
        (
            &[0x88, 127],
            CLIENT,
            ProtocolError::ControlFrameTooLong(127),
        ),
        (&[0x09, 0], CLIENT, ProtocolError::FragmentedControlFrame),
        (&[0x08, 0], CLIENT, ProtocolError::FragmentedControlFrame),
        (
            &[0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0],
            CLIENT,
            ProtocolError::LengthTopBitSet,
        ),
        (
            &[0x82, 126, 0, 125],
            CLIENT,
            ProtocolError::NonMinimalLength(125),
        ),
        (
            &[0x82, 127, 0, 0, 0, 0, 0, 0, 0xff, 0xff],
            CLIENT,
            ProtocolError::NonMinimalLength(65535),
        ),
        (&[0x82, 0], SERVER, ProtocolError::UnmaskedClientFrame),
        (&[0x82, 0x80], CLIENT, ProtocolError::MaskedServerFrame),
    ];
    for (bytes, config, expected) in cases {
        assert_eq!(parse(bytes, *config), Err(*expected), "{bytes:x?}");
    }
}

#[test]
fn allowed_rsv_bits_pass() {
    let deflate = CLIENT.with_allowed_rsv(RSV1);
    assert!(matches!(parse(&[0xC1, 0], deflate), Ok(Parse::Complete(h, 2)) if h.rsv == RSV1));
    assert_eq!(
        parse(&[0xE1, 0], deflate),
        Err(ProtocolError::ReservedBits(0b010))
    );
}

#[test]
fn close_codes_for_errors() {
    assert_eq!(ProtocolError::InvalidUtf8.close_code(), 1007);
    assert_eq!(ProtocolError::ReservedOpcode(3).close_code(), 1002);
}

fn opcode() -> impl Strategy<Value = OpCode> {
    prop_oneof![
        Just(OpCode::Continuation),
        Just(OpCode::Text),
        Just(OpCode::Binary),
        Just(OpCode::Close),
        Just(OpCode::Ping),
        Just(OpCode::Pong),
    ]
}

fn payload_len() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..=130,
        65530u64..=65540,
        Just(65535u64),
        Just(65536u64),
        any::<u64>().prop_map(|n| n >> 1),
    ]
}

prop_compose! {
    fn header()(
        opcode in opcode(),
        fin in any::<bool>(),
        rsv in prop::sample::select(vec![0, RSV1, RSV2, RSV3, RSV1 | RSV2 | RSV3]),
        mask in any::<Option<[u8; 4]>>(),
        len in payload_len(),
    ) -> FrameHeader {
        let (fin, len) = if opcode.is_control() { (true, len % 126) } else { (fin, len) };
        FrameHeader { fin, rsv, opcode, mask, payload_len: len }
    }
}

proptest! {
    #[test]
    fn encode_then_parse_round_trips(h in header(), trailing in proptest::collection::vec(any::<u8>(), 0..4)) {
        let mut buf = [0u8; MAX_HEADER_LEN];
        let mut bytes = h.encode(&mut buf).to_vec();
        let header_len = bytes.len();
        prop_assert_eq!(header_len, h.encoded_len());
        bytes.extend_from_slice(&trailing);
        let role = if h.mask.is_some() { Role::Server } else { Role::Client };
        let config = ParseConfig::new(role).with_allowed_rsv(RSV1 | RSV2 | RSV3);
        prop_assert_eq!(FrameHeader::parse(&bytes, config), Ok(Parse::Complete(h, header_len)));
        // Every proper prefix asks for exactly enough more bytes, never more than the header needs.
        for cut in 0..header_len {
            match FrameHeader::parse(&bytes[..cut], config) {
                Ok(Parse::Incomplete(n)) => prop_assert!(cut + n <= header_len),
                other => prop_assert!(false, "prefix {} gave {:?}", cut, other),
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_reencode(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
        for role in [Role::Server, Role::Client] {
            let config = ParseConfig::new(role).with_allowed_rsv(RSV1);
            if let Ok(Parse::Complete(h, n)) = FrameHeader::parse(&bytes, config) {
                prop_assert!(n <= bytes.len());
                let mut buf = [0u8; MAX_HEADER_LEN];
                // A header that parsed was minimally encoded, so it re-encodes to the same bytes.
                prop_assert_eq!(h.encode(&mut buf), &bytes[..n]);
            }
        }
    }
}
