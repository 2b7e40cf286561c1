//! Forwarded / X-Forwarded-For chains → http::client::resolve.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| trustbridge_fuzz::forwarded(data));
