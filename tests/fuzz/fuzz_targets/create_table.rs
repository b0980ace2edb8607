#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| serac::catalog::fuzzing::create_table_body(data));
