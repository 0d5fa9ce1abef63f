//! Random names: sandbox ids, exec tokens, temporary paths in a sandbox.

use rand::Rng;

/// ms-enclave's id alphabet: no `0`, `1` or `l`, so ids survive being read aloud or retyped.
const ID_ALPHABET: &[u8] = b"23456789abcdefghijkmnopqrstuvwxyz";
const ID_LEN: usize = 8;

pub fn new_sandbox_id() -> String {
    let mut rng = rand::rng();
    (0..ID_LEN)
        .map(|_| char::from(ID_ALPHABET[rng.random_range(0..ID_ALPHABET.len())]))
        .collect()
}

/// 128 random bits as 32 lower-case hex digits: unguessable, and safe in paths and shell words.
pub fn random_hex() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_use_the_unambiguous_alphabet() {
        for _ in 0..200 {
            let id = new_sandbox_id();
            assert_eq!(id.len(), 8);
            assert!(id.bytes().all(|b| ID_ALPHABET.contains(&b)), "{id}");
        }
    }

    #[test]
    fn hex_is_fresh_and_plain() {
        let a = random_hex();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()), "{a}");
        assert_ne!(a, random_hex());
    }
}
