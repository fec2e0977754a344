//! HPACK's Huffman code (RFC 7541 Appendix B). Keelson decodes what clients send; it writes raw
//! string literals itself, and encodes only to build test and measurement input.
//!
//! The code is canonical (codes of one length are consecutive, in symbol order, and shorter
//! codes sort first), so it is fully described by each symbol's code length, and decoding walks
//! the lengths as zlib's `puff` does: no tree, no table of codes.

use std::sync::OnceLock;

/// Code length in bits of each symbol 0..=255 and EOS (256), from RFC 7541 Appendix B.
const CODE_BITS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, //
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, //
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, //
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, //
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, //
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, //
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, //
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, //
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, //
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, //
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, //
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, //
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, //
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, //
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, //
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, //
    30,
];
const LONGEST_BITS: usize = 30;
const EOS: u16 = 256;

/// Why a Huffman string could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HuffmanError {
    /// The EOS symbol inside the string (RFC 7541 §5.2 makes it an error).
    Eos,
    /// The string ends in more than 7 bits of padding, or padding that is not EOS's prefix.
    Padding,
}

/// The canonical code in decoding form: how many codes each length has, and the symbols in
/// code order.
struct Canonical {
    count: [u16; LONGEST_BITS + 1],
    symbols: [u16; 257],
}

fn canonical() -> &'static Canonical {
    static CODE: OnceLock<Canonical> = OnceLock::new();
    CODE.get_or_init(|| {
        let mut count = [0u16; LONGEST_BITS + 1];
        for &bits in &CODE_BITS {
            count[usize::from(bits)] += 1;
        }
        let mut order: Vec<u16> = (0..=EOS).collect();
        order.sort_by_key(|&s| (CODE_BITS[usize::from(s)], s));
        let mut symbols = [0u16; 257];
        symbols.copy_from_slice(&order);
        Canonical { count, symbols }
    })
}

/// Appends the Huffman encoding of `text` to `out`, padded with EOS's leading ones.
#[cfg(test)]
pub fn encode(text: &[u8], out: &mut Vec<u8>) {
    // Canonical codes: symbols in (length, symbol) order take consecutive values, shifted
    // left whenever the length grows.
    let mut codes = [0u32; 257];
    let code = canonical();
    let (mut value, mut bits) = (0u32, CODE_BITS[usize::from(code.symbols[0])]);
    for (i, &symbol) in code.symbols.iter().enumerate() {
        let length = CODE_BITS[usize::from(symbol)];
        if i > 0 {
            value = (value + 1) << (length - bits);
        }
        bits = length;
        codes[usize::from(symbol)] = value;
    }
    let (mut pending, mut pending_bits) = (0u64, 0u32);
    for &byte in text {
        let length = u32::from(CODE_BITS[usize::from(byte)]);
        pending = (pending << length) | u64::from(codes[usize::from(byte)]);
        pending_bits += length;
        while pending_bits >= 8 {
            out.push((pending >> (pending_bits - 8)) as u8);
            pending_bits -= 8;
        }
    }
    if pending_bits > 0 {
        out.push(((pending << (8 - pending_bits)) as u8) | (0xff >> pending_bits));
    }
}

/// Appends the decoding of `encoded` to `out`.
pub fn decode(encoded: &[u8], out: &mut Vec<u8>) -> Result<(), HuffmanError> {
    let code = canonical();
    // `value` holds the bits of the symbol being read; `first` is the first code of length
    // `len`, `index` the position of that code's symbol in `symbols` (puff's walk).
    let (mut value, mut len, mut first, mut index) = (0u32, 0usize, 0u32, 0u32);
    // Whether every bit read since the last symbol was 1: only such a tail is valid padding.
    let mut all_ones = true;
    for &byte in encoded {
        for shift in (0..8).rev() {
            let bit = u32::from(byte >> shift) & 1;
            value |= bit;
            all_ones &= bit == 1;
            len += 1;
            let count = u32::from(code.count[len]);
            if value.wrapping_sub(first) < count {
                let symbol = code.symbols[(index + value - first) as usize];
                if symbol == EOS {
                    return Err(HuffmanError::Eos);
                }
                out.push(symbol as u8);
                (value, len, first, index) = (0, 0, 0, 0);
                all_ones = true;
                continue;
            }
            if len == LONGEST_BITS {
                // Only EOS is 30 bits long and it was handled above: unreachable for valid
                // input, but a malformed string must not index past the table.
                return Err(HuffmanError::Padding);
            }
            index += count;
            first = (first + count) << 1;
            value <<= 1;
        }
    }
    if len > 7 || !all_ones {
        return Err(HuffmanError::Padding);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded_hex(hex: &str) -> Vec<u8> {
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    fn decoded(hex: &str) -> Result<Vec<u8>, HuffmanError> {
        let mut out = Vec::new();
        decode(&decoded_hex(hex), &mut out).map(|()| out)
    }

    #[test]
    fn rfc_7541_examples_decode() {
        // Appendix C.4 and C.6.
        assert_eq!(
            decoded("f1e3c2e5f23a6ba0ab90f4ff").unwrap(),
            b"www.example.com"
        );
        assert_eq!(decoded("a8eb10649cbf").unwrap(), b"no-cache");
        assert_eq!(decoded("25a849e95ba97d7f").unwrap(), b"custom-key");
        assert_eq!(decoded("25a849e95bb8e8b4bf").unwrap(), b"custom-value");
        assert_eq!(decoded("6402").unwrap(), b"302");
        assert_eq!(decoded("aec3771a4b").unwrap(), b"private");
        assert_eq!(
            decoded("d07abe941054d444a8200595040b8166e082a62d1bff").unwrap(),
            b"Mon, 21 Oct 2013 20:13:21 GMT"
        );
        assert_eq!(decoded("").unwrap(), b"");
    }

    #[test]
    fn encoding_round_trips_every_byte() {
        let text: Vec<u8> = (0..=255u8).chain(*b"www.example.com").collect();
        let mut encoded = Vec::new();
        encode(&text, &mut encoded);
        let mut decoded_back = Vec::new();
        decode(&encoded, &mut decoded_back).unwrap();
        assert_eq!(decoded_back, text);
        let mut www = Vec::new();
        encode(b"www.example.com", &mut www);
        assert_eq!(www, decoded_hex("f1e3c2e5f23a6ba0ab90f4ff"));
    }

    #[test]
    fn bad_padding_and_eos_are_refused() {
        // "0" is 00000: three 0 bits of padding are not EOS's prefix.
        assert_eq!(decoded("00"), Err(HuffmanError::Padding));
        // A whole byte of 1s after a complete symbol is more than 7 bits of padding.
        assert_eq!(decoded("07ff"), Err(HuffmanError::Padding));
        // EOS itself, 30 ones, then padding.
        assert_eq!(decoded("ffffffff"), Err(HuffmanError::Eos));
    }
}
