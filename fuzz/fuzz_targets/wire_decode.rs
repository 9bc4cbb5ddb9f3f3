//! Every hand-framed wire decoder (gRPC framing, `Pull`/`Push` views, packed payloads).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_proto::fuzz_entry::wire_decode(data));
