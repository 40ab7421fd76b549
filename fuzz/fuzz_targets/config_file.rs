#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| belroute_fuzz::config_file(data));
