//! JWKS document → parse_jwks, then a genuine token verified against it.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| trustbridge_fuzz::jwks(data));
