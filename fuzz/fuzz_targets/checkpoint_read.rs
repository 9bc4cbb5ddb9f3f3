//! The checkpoint readers: table and dense data files, `MANIFEST.json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_engine::fuzz_entry::checkpoint_read(data));
