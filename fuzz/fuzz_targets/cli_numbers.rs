//! The CLI's parsers of sizes, number lists and initializers.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_client::fuzz_entry::cli_numbers(data));
