//! Policy YAML (NUL-separated files) → load_texts (parse, compile, CEL, globs) → decide.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| trustbridge_fuzz::policy(data));
