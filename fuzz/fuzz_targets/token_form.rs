//! The `token_form` target: see `svctoken_tests::fuzz::token_form`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = svctoken_tests::fuzz::token_form(data);
});
