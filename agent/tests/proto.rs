//! Frame decoding: what one end encodes the other decodes, and no input makes it panic.

use bytes::BytesMut;
use enclave_agent::proto::{self, Command, ExecRequest, Frame, OutputStream, Reply, Request};
use proptest::prelude::*;

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        any::<Vec<u8>>().prop_map(Request::Data),
        any::<u32>().prop_map(Request::Credit),
        any::<i32>().prop_map(Request::Signal),
        Just(Request::End),
        Just(Request::Cancel),
        (".*", any::<bool>()).prop_map(|(path, recursive)| Request::Remove { path, recursive }),
        (
            prop::collection::vec(".*", 0..4),
            prop::collection::vec((".*", ".*"), 0..3),
            proptest::option::of(".*"),
            any::<bool>(),
            proptest::option::of(any::<u64>()),
        )
            .prop_map(|(argv, env, cwd, stdin, timeout_ms)| {
                Request::Exec(ExecRequest {
                    command: Command::Argv(argv),
                    env,
                    cwd,
                    stdin,
                    timeout_ms,
                })
            }),
    ]
}

proptest! {
    #[test]
    fn requests_round_trip(call in any::<u32>(), body in request()) {
        let frame = Frame { call, body };
        let bytes = BytesMut::from(&proto::encode(&frame)[..]);
        prop_assert_eq!(proto::decode::<Request>(&bytes).unwrap(), frame);
    }

    #[test]
    fn output_round_trips(call in any::<u32>(), data in any::<Vec<u8>>(), err in any::<bool>()) {
        let stream = if err { OutputStream::Stderr } else { OutputStream::Stdout };
        let frame = Frame { call, body: Reply::Output { stream, data } };
        let bytes = BytesMut::from(&proto::encode(&frame)[..]);
        prop_assert_eq!(proto::decode::<Reply>(&bytes).unwrap(), frame);
    }

    #[test]
    fn garbage_never_panics(bytes in any::<Vec<u8>>()) {
        let bytes = BytesMut::from(&bytes[..]);
        let _ = proto::decode::<Request>(&bytes);
        let _ = proto::decode::<Reply>(&bytes);
    }

    #[test]
    fn damaged_frames_never_panic(body in request(), flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4)) {
        let mut bytes = BytesMut::from(&proto::encode(&Frame { call: 1, body })[..]);
        for (at, byte) in flips {
            let at = at % bytes.len();
            bytes[at] = byte;
        }
        let _ = proto::decode::<Request>(&bytes);
        bytes.truncate(bytes.len() / 2);
        let _ = proto::decode::<Request>(&bytes);
    }
}
