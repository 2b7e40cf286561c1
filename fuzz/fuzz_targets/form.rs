//! Token endpoint form body → ExchangeRequest::parse.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| trustbridge_fuzz::form(data));
