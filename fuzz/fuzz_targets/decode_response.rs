//! `decode::<Response>` on arbitrary bytes: never panics, and whatever it
//! accepts survives an encode/decode round trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uipc_proto::{decode, encode, Response, HEADER, MAX_FRAME};

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((msg, used))) = decode::<Response>(data) {
        assert!(used >= HEADER && used <= data.len() && used - HEADER <= MAX_FRAME);
        let frame = encode(&msg).expect("a decoded response must re-encode");
        match decode::<Response>(&frame) {
            Ok(Some((again, used2))) => {
                assert_eq!(again, msg, "round trip changed the response");
                assert_eq!(used2, frame.len(), "re-decode did not use the whole frame");
            }
            other => panic!("re-encoded response {msg:?} does not decode: {other:?}"),
        }
    }
});
