//! CEL source → Expression::compile → eval over sample claims.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| trustbridge_fuzz::cel(data));
