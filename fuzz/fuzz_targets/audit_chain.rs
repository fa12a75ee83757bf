//! The `audit_chain` target: see `svctoken_tests::fuzz::audit_chain`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = svctoken_tests::fuzz::audit_chain(data);
});
