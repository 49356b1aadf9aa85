//! Random identifiers (subject epochs, connection ids) from the platform's CSPRNG
//! (`crypto.getRandomValues` on Workers): uniqueness is what they need, and a weak generator
//! such as `Math.random` can repeat across isolates started from the same seed.

/// `bytes` random bytes as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    getrandom::getrandom(&mut buffer).expect("crypto.getRandomValues is always available on Workers");
    crate::hex::encode(&buffer)
}

// Natively and, under Node, through getrandom's JavaScript source (`crypto.getRandomValues`).
#[cfg(test)]
mod tests {
    use super::*;

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn is_lowercase_hex_of_the_asked_length() {
        let hex = random_hex(12);
        assert_eq!(hex.len(), 24);
        assert!(hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')), "{hex}");
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn two_values_differ() {
        assert_ne!(random_hex(16), random_hex(16));
    }
}
