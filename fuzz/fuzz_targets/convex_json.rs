//! The `convex_json` target: see `svctoken_tests::fuzz::convex_json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = svctoken_tests::fuzz::convex_json(data);
});
