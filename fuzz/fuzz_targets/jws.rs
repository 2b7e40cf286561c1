//! Compact JWS → peek → verify (fixed keys and issuer) → exchange::decide (fixed policies).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| trustbridge_fuzz::jws(data));
