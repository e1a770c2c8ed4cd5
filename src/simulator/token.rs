//! Opaque `NextToken`s. A token carries where the next page starts (a cursor),
//! which page of the crawl it is (so faults can strike "page K"), and the
//! fingerprint of the filters it was issued for, all sealed with a checksum.
//! Standard base64 with padding, and a fixed first byte pair that encodes to `+/`,
//! so every token holds characters a client must URL-encode, as real ones can.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::fleet::Cursor;
use crate::api::sign::sha256_hex;

const MAGIC: [u8; 2] = [0xfb, 0xff];
const VERSION: u8 = 1;
const LEN: usize = 2 + 1 + 4 + 8 + 8 + 8 + 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    /// The page this token asks for (the first page, asked without token, is 1).
    pub page: u32,
    pub cursor: Cursor,
    pub fingerprint: u64,
}

fn check(body: &[u8], secret: u64) -> [u8; 4] {
    let mut data = body.to_vec();
    data.extend_from_slice(&secret.to_be_bytes());
    let digest = sha256_hex(&data);
    let n = u32::from_str_radix(&digest[..8], 16).expect("hex");
    n.to_be_bytes()
}

impl Token {
    /// `secret` ties tokens to one simulator fleet (its seed).
    pub fn encode(&self, secret: u64) -> String {
        let mut bytes = Vec::with_capacity(LEN);
        bytes.extend_from_slice(&MAGIC);
        bytes.push(VERSION);
        bytes.extend_from_slice(&self.page.to_be_bytes());
        bytes.extend_from_slice(&self.cursor.key.to_be_bytes());
        bytes.extend_from_slice(&self.cursor.index.to_be_bytes());
        bytes.extend_from_slice(&self.fingerprint.to_be_bytes());
        let sum = check(&bytes, secret);
        bytes.extend_from_slice(&sum);
        STANDARD.encode(bytes)
    }

    /// `None` for anything this simulator did not issue (or that was mangled in
    /// transit, such as a `+` decoded as a space).
    pub fn decode(token: &str, secret: u64) -> Option<Token> {
        let bytes = STANDARD.decode(token).ok()?;
        if bytes.len() != LEN || bytes[..2] != MAGIC || bytes[2] != VERSION {
            return None;
        }
        let (body, sum) = bytes.split_at(LEN - 4);
        if check(body, secret) != sum {
            return None;
        }
        let u64_at = |at: usize| u64::from_be_bytes(body[at..at + 8].try_into().expect("8 bytes"));
        Some(Token {
            page: u32::from_be_bytes(body[3..7].try_into().expect("4 bytes")),
            cursor: Cursor {
                key: u64_at(7) as i64,
                index: u64_at(15),
            },
            fingerprint: u64_at(23),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> Token {
        Token {
            page: 7,
            cursor: Cursor {
                key: i64::MAX,
                index: 123_456,
            },
            fingerprint: 0xdead_beef_0000_0001,
        }
    }

    #[test]
    fn round_trips_and_needs_url_encoding() {
        let t = token();
        let s = t.encode(42);
        assert_eq!(Token::decode(&s, 42), Some(t));
        assert!(s.starts_with("+/"), "{s}");
        assert!(s.ends_with('='), "{s}");
    }

    #[test]
    fn foreign_mangled_or_tampered_tokens_are_refused() {
        let s = token().encode(42);
        assert_eq!(Token::decode(&s, 43), None);
        assert_eq!(Token::decode(&s.replace('+', " "), 42), None);
        assert_eq!(Token::decode("tok-page-2", 42), None);
        assert_eq!(Token::decode("", 42), None);
        let mut bytes = STANDARD.decode(&s).unwrap();
        bytes[10] ^= 1;
        assert_eq!(Token::decode(&STANDARD.encode(bytes), 42), None);
    }
}
