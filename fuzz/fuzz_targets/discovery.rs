//! Discovery document → jwks_uri_from_document.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| trustbridge_fuzz::discovery(data));
