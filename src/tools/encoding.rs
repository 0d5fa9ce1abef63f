//! The `encoding` parameter of `file_operation`: how text becomes file bytes and back.
//!
//! ms-enclave encodes written content with any Python codec and decodes reads as UTF-8 with
//! replacement whatever `encoding` says. enclave honours `encoding` both ways for the codecs
//! below, and adds `base64` so binary files travel exactly in a JSON string.

use base64::alphabet;
use base64::engine::general_purpose::{self, GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;

/// A supported `encoding` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Encoding {
    Utf8,
    Latin1,
    Ascii,
    Base64,
}

/// The names `Encoding::parse` understands, for messages.
pub(super) const SUPPORTED: &str = "utf-8, latin-1, ascii, base64";

impl Encoding {
    /// Python's spellings are accepted (`utf8`, `UTF_8`, `iso-8859-1`, …).
    pub(super) fn parse(name: &str) -> Result<Self, String> {
        let key = name.trim().to_ascii_lowercase().replace('_', "-");
        match key.as_str() {
            "utf-8" | "utf8" | "u8" => Ok(Encoding::Utf8),
            "latin-1" | "latin1" | "iso-8859-1" | "iso8859-1" | "l1" => Ok(Encoding::Latin1),
            "ascii" | "us-ascii" => Ok(Encoding::Ascii),
            "base64" => Ok(Encoding::Base64),
            _ => Err(format!("unknown encoding: {name} (supported: {SUPPORTED})")),
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf-8",
            Encoding::Latin1 => "latin-1",
            Encoding::Ascii => "ascii",
            Encoding::Base64 => "base64",
        }
    }

    /// Content given as text to the bytes to write.
    pub(super) fn encode(self, text: &str) -> Result<Vec<u8>, String> {
        match self {
            Encoding::Utf8 => Ok(text.as_bytes().to_vec()),
            Encoding::Latin1 | Encoding::Ascii => {
                let max = if self == Encoding::Ascii { 0x7f } else { 0xff };
                text.chars()
                    .enumerate()
                    .map(|(i, c)| {
                        u8::try_from(u32::from(c))
                            .ok()
                            .filter(|b| u32::from(*b) <= max)
                            .ok_or_else(|| {
                                format!(
                                    "'{}' codec can't encode character {c:?} in position {i}",
                                    self.name()
                                )
                            })
                    })
                    .collect()
            }
            Encoding::Base64 => base64_decode(text),
        }
    }

    /// File bytes to text; `true` when bytes that did not fit were replaced with U+FFFD.
    pub(super) fn decode(self, bytes: &[u8]) -> (String, bool) {
        match self {
            Encoding::Utf8 => match std::str::from_utf8(bytes) {
                Ok(s) => (s.to_string(), false),
                Err(_) => (String::from_utf8_lossy(bytes).into_owned(), true),
            },
            Encoding::Latin1 => (bytes.iter().map(|b| char::from(*b)).collect(), false),
            Encoding::Ascii => {
                let lossy = !bytes.is_ascii();
                let text = bytes
                    .iter()
                    .map(|b| {
                        if b.is_ascii() {
                            char::from(*b)
                        } else {
                            '\u{fffd}'
                        }
                    })
                    .collect();
                (text, lossy)
            }
            Encoding::Base64 => (base64_encode(bytes), false),
        }
    }
}

/// Decoding accepts what people paste: missing padding, line breaks.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Standard base64 with padding.
pub(super) fn base64_encode(bytes: &[u8]) -> String {
    general_purpose::STANDARD.encode(bytes)
}

/// Standard base64; whitespace is ignored and padding is optional.
pub(super) fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    LENIENT
        .decode(compact)
        .map_err(|e| format!("invalid base64 content: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_known_vectors() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(plain.as_bytes()), coded);
            assert_eq!(base64_decode(coded).unwrap(), plain.as_bytes());
        }
        assert_eq!(base64_decode("Zm9v\nYmE").unwrap(), b"fooba");
    }

    #[test]
    fn base64_round_trips_every_byte() {
        let bytes: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        assert_eq!(base64_decode(&base64_encode(&bytes)).unwrap(), bytes);
    }

    #[test]
    fn bad_base64_is_refused() {
        assert!(base64_decode("Zm9v!").is_err());
        assert!(base64_decode("Z").is_err());
        assert!(base64_decode("Zg==Zg").is_err());
    }

    #[test]
    fn encodings() {
        assert_eq!(Encoding::parse("UTF_8").unwrap(), Encoding::Utf8);
        assert_eq!(Encoding::parse("ISO-8859-1").unwrap(), Encoding::Latin1);
        assert!(Encoding::parse("ebcdic")
            .unwrap_err()
            .starts_with("unknown encoding: ebcdic"));

        assert_eq!(Encoding::Latin1.encode("é").unwrap(), [0xe9]);
        assert_eq!(Encoding::Latin1.decode(&[0xe9, 0xff]), ("éÿ".into(), false));
        assert!(Encoding::Ascii.encode("é").is_err());
        assert_eq!(
            Encoding::Utf8.decode(&[b'a', 0xff]),
            ("a\u{fffd}".into(), true)
        );
        assert_eq!(Encoding::Base64.decode(&[0, 255]), ("AP8=".into(), false));
    }
}
