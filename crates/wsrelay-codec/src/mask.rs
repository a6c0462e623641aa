//! Payload masking (RFC 6455 §5.3): XOR with a 4-byte key, resumable at any payload offset.

/// XORs `buf` with `key`, where `buf` starts `offset` bytes into the frame's payload.
///
/// Masking and unmasking are the same operation. Because the key position is derived from
/// `offset`, a payload processed in chunks of any size gives the same bytes as one call over
/// the whole payload. This is the only per-byte work on the relay's hot path, so the main loop
/// works on 32-byte blocks of 64-bit words (which the compiler turns into vector instructions).
///
/// ```
/// use wsrelay_codec::apply_mask;
/// let key = [1, 2, 3, 4];
/// let mut whole = *b"Hello, world";
/// apply_mask(&mut whole, key, 0);
/// let mut split = *b"Hello, world";
/// let (a, b) = split.split_at_mut(5);
/// apply_mask(a, key, 0);
/// apply_mask(b, key, 5);
/// assert_eq!(whole, split);
/// ```
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: u64) {
    let key = rotate_key(key, offset);
    let word = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut blocks = buf.chunks_exact_mut(32);
    for block in &mut blocks {
        for lane in block.chunks_exact_mut(8) {
            xor_word(lane, word);
        }
    }
    let rest = blocks.into_remainder();
    let mut words = rest.chunks_exact_mut(8);
    for lane in &mut words {
        xor_word(lane, word);
    }
    // Fewer than 8 bytes remain; every 8-byte step kept the key phase, so the tail starts at key[0].
    for (byte, k) in words.into_remainder().iter_mut().zip(key.iter().cycle()) {
        *byte ^= k;
    }
}

/// The key as seen from a position `offset` bytes into the payload.
#[inline]
pub fn rotate_key(key: [u8; 4], offset: u64) -> [u8; 4] {
    let mut k = key;
    k.rotate_left((offset % 4) as usize);
    k
}

#[inline(always)]
fn xor_word(lane: &mut [u8], word: u64) {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(lane);
    lane.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
}

/// The simple per-byte masking loop that [`apply_mask`] is tested against.
pub fn apply_mask_reference(buf: &mut [u8], key: [u8; 4], offset: u64) {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte ^= key[((offset + i as u64) % 4) as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc_example() {
        // RFC 6455 §5.7: "Hello" masked with 37 fa 21 3d.
        let mut hello = *b"Hello";
        apply_mask(&mut hello, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(hello, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }

    #[test]
    fn every_length_and_offset_matches_reference() {
        let key = [0xde, 0xad, 0xbe, 0xef];
        for len in 0..100 {
            for offset in 0..8u64 {
                let data: Vec<u8> = (0..len as u8).collect();
                let mut fast = data.clone();
                let mut slow = data.clone();
                apply_mask(&mut fast, key, offset);
                apply_mask_reference(&mut slow, key, offset);
                assert_eq!(fast, slow, "len {len} offset {offset}");
            }
        }
    }

    proptest! {
        #[test]
        fn split_at_random_points_equals_one_shot(
            data in proptest::collection::vec(any::<u8>(), 0..2048),
            key in any::<[u8; 4]>(),
            start in 0u64..1_000_000,
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let mut one_shot = data.clone();
            apply_mask(&mut one_shot, key, start);
            let mut naive = data.clone();
            apply_mask_reference(&mut naive, key, start);
            prop_assert_eq!(&one_shot, &naive);

            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(data.len() + 1)).collect();
            points.sort_unstable();
            let mut chunked = data.clone();
            let mut done = 0usize;
            for p in points.into_iter().chain(std::iter::once(data.len())) {
                apply_mask(&mut chunked[done..p], key, start + done as u64);
                done = p;
            }
            prop_assert_eq!(&chunked, &naive);
        }
    }
}
