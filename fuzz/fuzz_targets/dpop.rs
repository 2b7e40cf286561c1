//! `DPoP` proof header → dpop::verify.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| trustbridge_fuzz::dpop(data));
