//! `application/x-www-form-urlencoded` decoded to raw bytes. Alipay signs the bytes of each
//! value in the message's own charset (UTF-8 or GBK), so values must stay bytes until the
//! signature has been checked. `form_urlencoded` decodes straight into UTF-8 strings, which
//! would corrupt GBK, hence this small decoder.

use percent_encoding::percent_decode;

/// Decoded form parameters as raw bytes, in the order received.
pub type RawParams = Vec<(Vec<u8>, Vec<u8>)>;

/// The undecoded `key=value` pairs of `a=1&b=2`, lazily; empty pairs (`&&`) are skipped.
pub fn pairs(raw: &[u8]) -> impl Iterator<Item = &[u8]> {
    raw.split(|&b| b == b'&').filter(|pair| !pair.is_empty())
}

/// Splits `a=1&b=2` and percent-decodes each key and value exactly once (`+` is a space).
/// Empty pairs (`&&`) are skipped; a pair without `=` has an empty value.
pub fn decode_raw(raw: &[u8]) -> RawParams {
    pairs(raw)
        .map(|pair| match pair.iter().position(|&b| b == b'=') {
            Some(i) => (decode_part(&pair[..i]), decode_part(&pair[i + 1..])),
            None => (decode_part(pair), Vec::new()),
        })
        .collect()
}

fn decode_part(part: &[u8]) -> Vec<u8> {
    let spaced: Vec<u8> = part
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    percent_decode(&spaced).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_once_with_plus_as_space() {
        let expect: RawParams = vec![
            (b"a".to_vec(), b"1 2".to_vec()),
            (b"b".to_vec(), b"+".to_vec()),
            (b"c".to_vec(), b"%2B".to_vec()),
            (b"d".to_vec(), b"".to_vec()),
            (b"e".to_vec(), b"".to_vec()),
            (b"f".to_vec(), vec![0xB2, 0xE2]),
        ];
        assert_eq!(decode_raw(b"a=1+2&b=%2B&c=%252B&&d&e=&f=%B2%E2"), expect);
    }
}
