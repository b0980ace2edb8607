#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // Refused or accepted, both are fine; a panic or a hang is the finding.
    let _ = serac::catalog::fuzzing::commit_table_body(data);
});
