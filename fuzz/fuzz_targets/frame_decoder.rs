//! Feeds arbitrary bytes through the server's decode path: four-letter-word
//! detection, the frame codec, the ConnectRequest reader for the first frame
//! and `decode_request` for the rest, plus the client's reply decoders.
//! Nothing may panic, and every request that decodes must re-encode to bytes
//! that decode to the same request.

#![no_main]

use bytes::BytesMut;
use corral_proto::records::ConnectRequest;
use corral_proto::response::read_multi_response;
use corral_proto::{
    decode_frame, decode_record, decode_reply, decode_request, FourLetterWord, JuteReader, OpCode,
    Response,
};
use libfuzzer_sys::fuzz_target;

/// Small limits so the fuzzer reaches the "too long" paths quickly.
const MAX_FRAME_BYTES: usize = 4096;
const FIELD_LEN_MAX: usize = 1024;

fuzz_target!(|data: &[u8]| {
    let _ = FourLetterWord::detect(data);

    let mut buf = BytesMut::from(data);
    let mut first = true;
    while let Ok(Some(frame)) = decode_frame(&mut buf, MAX_FRAME_BYTES) {
        if first {
            first = false;
            if let Ok(connect) = decode_record::<ConnectRequest>(&frame, FIELD_LEN_MAX) {
                let again = corral_proto::encode_record(&connect);
                assert_eq!(
                    decode_record::<ConnectRequest>(&again, FIELD_LEN_MAX),
                    Ok(connect)
                );
            }
        }
        if let Ok((header, request)) = decode_request(&frame, FIELD_LEN_MAX) {
            let mut out = BytesMut::new();
            request.encode(header.xid, &mut out);
            let again = decode_frame(&mut out, usize::MAX)
                .expect("our own frame has a valid length")
                .expect("our own frame is complete");
            let (header_again, request_again) =
                decode_request(&again, FIELD_LEN_MAX).expect("re-encoded request decodes");
            assert_eq!(header_again, header);
            assert_eq!(request_again, request);
        }
    }

    if let Ok((_, r)) = decode_reply(data, FIELD_LEN_MAX) {
        let _ = read_multi_response(&mut r.clone());
        for opcode in [
            OpCode::GetData,
            OpCode::GetAcl,
            OpCode::GetChildren2,
            OpCode::WhoAmI,
        ] {
            let _ = Response::read(opcode, &mut r.clone());
        }
    }
    let _ = read_multi_response(&mut JuteReader::new(data, FIELD_LEN_MAX));
});
