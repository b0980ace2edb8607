#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| serac::catalog::fuzzing::commit_table_body(data));
