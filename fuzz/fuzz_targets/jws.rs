//! The `jws` target: see `svctoken_tests::fuzz::jws`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = svctoken_tests::fuzz::jws(data);
});
