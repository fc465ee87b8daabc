//! Fake devices (loopback TCP threads and `sh` children) that hang, crash, disconnect and
//! lie, and a round trip through the real server helper.

use super::*;
use crate::optics::{OpticsConfig, OpticsSystem};
use ff_core::conformance::{check_conformance, Conformance};
use ff_core::{Identity, Matrix};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

const N_IN: usize = 3;
const N_OUT: usize = 2;

/// Starts a fake device on a loopback port: every connection runs `behaviour(index, stream)`
/// on its own thread. Returns the address and the number of connections accepted so far.
fn fake(behaviour: impl Fn(usize, TcpStream) + Send + Sync + 'static) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let (c, b) = (count.clone(), Arc::new(behaviour));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(s) = stream else { return };
            let i = c.fetch_add(1, Ordering::SeqCst);
            let b = b.clone();
            std::thread::spawn(move || b(i, s));
        }
    });
    (addr, count)
}

fn hello_of_version(version: u32, n_in: u64, n_out: u64) -> Vec<u8> {
    let mut h = vec![HELLO];
    h.extend_from_slice(&version.to_le_bytes());
    h.push(4);
    h.extend_from_slice(&n_in.to_le_bytes());
    h.extend_from_slice(&n_out.to_le_bytes());
    h.extend_from_slice(b"fake");
    h
}

fn hello(n_in: usize, n_out: usize) -> Vec<u8> {
    hello_of_version(PROTOCOL_VERSION, n_in as u64, n_out as u64)
}

/// A query as a fake device sees it.
struct Query {
    id: u64,
    x: Matrix<f32>,
}

fn parse_query(q: &[u8]) -> Query {
    assert_eq!(q[0], QUERY);
    let id = u64::from_le_bytes(q[1..9].try_into().unwrap());
    let rows = u32::from_le_bytes(q[9..13].try_into().unwrap()) as usize;
    assert_eq!(q.len(), HEADER + rows * N_IN * 4);
    let x = Matrix::from_fn(rows, N_IN, |r, c| {
        f32::from_le_bytes(q[HEADER + 4 * (r * N_IN + c)..][..4].try_into().unwrap())
    });
    Query { id, x }
}

/// Answers the hello (checking that the client announces version 2), then returns the next
/// query (None at EOF).
fn handshake_then_query(s: &mut TcpStream) -> Option<Query> {
    let h = read_frame(s).ok()?;
    let mut want = vec![HELLO];
    want.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    assert_eq!(h, want);
    write_frame(s, &hello(N_IN, N_OUT)).ok()?;
    next_query(s)
}

fn next_query(s: &mut TcpStream) -> Option<Query> {
    read_frame(s).ok().map(|q| parse_query(&q))
}

fn reply(id: u64, rows: usize, values: &[f32]) -> Vec<u8> {
    let mut f = vec![REPLY];
    f.extend_from_slice(&id.to_le_bytes());
    f.extend_from_slice(&(rows as u32).to_le_bytes());
    values.iter().for_each(|v| f.extend_from_slice(&v.to_le_bytes()));
    f
}

/// What the fake devices compute: output `j` of a row is the row's sum plus `j`, so a reply
/// that belongs to another batch is visible.
fn truth(x: &Matrix<f32>) -> Matrix<f32> {
    Matrix::from_fn(x.rows(), N_OUT, |r, j| (0..N_IN).map(|c| x.data()[r * N_IN + c]).sum::<f32>() + j as f32)
}

/// The correct reply to `q`.
fn answer(q: &Query) -> Vec<u8> {
    reply(q.id, q.x.rows(), truth(&q.x).data())
}

fn config(addr: SocketAddr) -> DeviceConfig {
    DeviceConfig { transport: Transport::Tcp(addr), timeout_ms: 150, attempts: 2 }
}

fn batch() -> Matrix<f32> {
    Matrix::from_fn(4, N_IN, |r, c| (r + c) as f32 * 0.25)
}

#[test]
fn frames_round_trip_and_reject_huge_lengths() {
    let mut buf = Vec::new();
    write_frame(&mut buf, b"Qabc").unwrap();
    assert_eq!(&buf[..4], &4u32.to_le_bytes());
    assert_eq!(read_frame(&mut buf.as_slice()).unwrap(), b"Qabc");
    let huge = (MAX_FRAME_BYTES + 1).to_le_bytes();
    assert_eq!(read_frame(&mut huge.as_slice()).unwrap_err().kind(), io::ErrorKind::InvalidData);
    let truncated = [5u8, 0, 0, 0, b'Q'];
    assert_eq!(read_frame(&mut truncated.as_slice()).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
}

#[test]
fn round_trip_through_serve_matches_the_simulator_bit_for_bit() {
    let cfg = OpticsConfig {
        field_size: 16,
        input_shape: (8, 8),
        input_pupil_radius_px: 5.0,
        output_pupil_radius_px: 5.0,
        ..OpticsConfig::default()
    };
    let mut direct = OpticsSystem::<f64>::new(cfg.clone()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let served = cfg.clone();
    let server = std::thread::spawn(move || {
        let mut sys = OpticsSystem::<f64>::new(served).unwrap();
        serve_listener::<f64, _>(&mut sys, &listener, Some(1)).unwrap()
    });
    let mut dev = DeviceSystem::<f64>::connect(config(addr)).unwrap();
    assert_eq!((dev.input_len(), dev.output_len()), (direct.input_len(), direct.output_len()));
    assert_eq!(dev.info().width, 8);
    assert!(dev.name().contains("optics"), "{}", dev.name());
    for rows in [1, 7] {
        let x = Matrix::<f64>::from_fn(rows, direct.input_len(), |r, c| ((r * 31 + c * 7) % 13) as f64 / 13.0);
        let want = direct.forward(x.view()).unwrap();
        let got = dev.forward(x.view()).unwrap();
        assert!(want.data().iter().zip(got.data()).all(|(a, b)| a.to_bits() == b.to_bits()));
    }
    drop(dev);
    assert_eq!(server.join().unwrap(), ServeStats { queries: 2, errors: 0 });
}

fn query_frame(id: u64, rows: u32, values: &[f32]) -> Vec<u8> {
    let mut q = vec![QUERY];
    q.extend_from_slice(&id.to_le_bytes());
    q.extend_from_slice(&rows.to_le_bytes());
    values.iter().for_each(|v| q.extend_from_slice(&v.to_le_bytes()));
    q
}

#[test]
fn serve_answers_bad_queries_with_error_frames_and_goes_on() {
    let mut req = Vec::new();
    let mut short = query_frame(7, 1, &[]);
    short.extend_from_slice(&[0, 0]); // 2 bytes instead of 3 x 4
    write_frame(&mut req, &short).unwrap();
    write_frame(&mut req, b"Z").unwrap();
    write_frame(&mut req, &[QUERY, 1, 0, 0, 0, 0, 0]).unwrap(); // a version-1 query: no number
    write_frame(&mut req, &query_frame(9, 1, &[1.0, 2.0, 3.0])).unwrap();
    let mut out = Vec::new();
    let stats = serve::<f32, _>(&mut Identity::new(3), req.as_slice(), &mut out).unwrap();
    assert_eq!(stats, ServeStats { queries: 1, errors: 3 });
    let mut r = out.as_slice();
    let e1 = read_frame(&mut r).unwrap();
    assert_eq!(e1[..9], error_frame(7, "")[..], "an error echoes the query number");
    assert!(String::from_utf8_lossy(&e1).contains("query #7 has 2 bytes for 1 rows, expected 1 x 3 values"));
    assert_eq!(read_frame(&mut r).unwrap()[..9], error_frame(0, "")[..]);
    let e3 = read_frame(&mut r).unwrap();
    assert!(e3[..9] == error_frame(0, "")[..] && String::from_utf8_lossy(&e3).contains("shorter than its header"));
    assert_eq!(read_frame(&mut r).unwrap(), reply(9, 1, &[1.0, 2.0, 3.0]));
}

/// 1 input, 2^20 outputs: a query of 1024 rows fits in 4 KiB but its reply would take 4 GiB.
struct Wide;

impl PhysicalSystem<f32> for Wide {
    fn name(&self) -> String {
        "wide".into()
    }
    fn input_len(&self) -> usize {
        1
    }
    fn output_len(&self) -> usize {
        1 << 20
    }
    fn forward_batch(&mut self, _: MatRef<'_, f32>, _: MatMut<'_, f32>) -> Result<(), SystemError> {
        panic!("a query whose reply cannot be sent must be refused before the system runs")
    }
}

#[test]
fn serve_refuses_a_query_whose_reply_would_not_fit_in_a_frame() {
    let mut req = Vec::new();
    let mut q = vec![QUERY];
    q.extend_from_slice(&3u64.to_le_bytes());
    q.extend_from_slice(&1024u32.to_le_bytes());
    q.extend_from_slice(&vec![0u8; 1024 * 4]);
    write_frame(&mut req, &q).unwrap();
    let mut out = Vec::new();
    let stats = serve::<f32, _>(&mut Wide, req.as_slice(), &mut out).unwrap();
    assert_eq!(stats, ServeStats { queries: 0, errors: 1 });
    let e = read_frame(&mut out.as_slice()).unwrap();
    let text = String::from_utf8_lossy(&e[9..]);
    assert!(e[..9] == error_frame(3, "")[..] && text.contains("send at most 255 rows per query"), "{text}");
}

#[test]
fn serve_answers_any_hello_with_its_own_version() {
    let mut req = Vec::new();
    write_frame(&mut req, &[HELLO]).unwrap(); // a version-1 client sends no version
    write_frame(&mut req, &[HELLO, 2, 0, 0, 0]).unwrap();
    let mut out = Vec::new();
    serve::<f32, _>(&mut Identity::new(3), req.as_slice(), &mut out).unwrap();
    let mut r = out.as_slice();
    for _ in 0..2 {
        let h = read_frame(&mut r).unwrap();
        let Ok(info) = parse_hello(&h) else { panic!("not a usable hello") };
        assert_eq!((info.version, info.width, info.input_len, info.output_len), (2, 4, 3, 3));
    }
}

#[test]
fn conformance_over_the_protocol() {
    check_conformance(
        || {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            std::thread::spawn(move || {
                let cfg = OpticsConfig {
                    field_size: 16,
                    input_shape: (4, 4),
                    input_pupil_radius_px: 5.0,
                    output_pupil_radius_px: 5.0,
                    ..OpticsConfig::default()
                };
                let mut sys = OpticsSystem::<f32>::new(cfg).unwrap();
                serve_listener::<f32, _>(&mut sys, &listener, Some(1))
            });
            DeviceSystem::<f32>::connect(DeviceConfig::new(Transport::Tcp(addr))).unwrap()
        },
        &Conformance::default(),
    );
}

#[test]
fn a_hanging_device_times_out_after_every_attempt() {
    let (addr, conns) = fake(|_, mut s| {
        if handshake_then_query(&mut s).is_some() {
            std::thread::sleep(Duration::from_secs(5));
        }
    });
    let mut dev = DeviceSystem::<f32>::connect(config(addr)).unwrap();
    let start = Instant::now();
    let err = dev.forward(batch().view()).unwrap_err();
    assert_eq!(err, SystemError::Timeout { system: dev.name(), timeout_ms: 150, attempts: 2 });
    assert!(err.to_string().contains("after 2 attempts"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(3), "the timeout was not enforced");
    assert_eq!(conns.load(Ordering::SeqCst), 2, "the second attempt must reconnect");
}

#[test]
fn a_device_that_fails_once_is_retried_on_a_new_connection() {
    let (addr, conns) = fake(|i, mut s| {
        while let Some(q) = handshake_then_query(&mut s) {
            if i == 0 {
                return; // first connection: drop it mid-request
            }
            write_frame(&mut s, &reply(q.id, q.x.rows(), &vec![0.5; q.x.rows() * N_OUT])).unwrap();
        }
    });
    let mut dev = DeviceSystem::<f32>::connect(config(addr)).unwrap();
    let y = dev.forward(batch().view()).unwrap();
    assert!(y.data().iter().all(|&v| v == 0.5));
    assert_eq!(conns.load(Ordering::SeqCst), 2);
}

#[test]
fn a_disconnecting_device_is_a_clear_error() {
    let (addr, conns) = fake(|_, mut s| {
        handshake_then_query(&mut s);
        let _ = s.shutdown(Shutdown::Both);
    });
    let mut dev = DeviceSystem::<f32>::connect(config(addr)).unwrap();
    let err = dev.forward(batch().view()).unwrap_err().to_string();
    assert!(err.contains("closed the connection") && err.contains("after 2 attempts"), "{err}");
    assert_eq!(conns.load(Ordering::SeqCst), 2);
}

#[test]
fn a_reply_of_the_wrong_length_is_rejected() {
    let (addr, _) = fake(|_, mut s| {
        if let Some(q) = handshake_then_query(&mut s) {
            let rows = q.x.rows();
            let _ = write_frame(&mut s, &reply(q.id, rows, &vec![1.0; rows * N_OUT - 1]));
            let _ = read_frame(&mut s);
        }
    });
    let mut dev = DeviceSystem::<f32>::connect(config(addr)).unwrap();
    let err = dev.forward(batch().view()).unwrap_err();
    let SystemError::Device { message, .. } = &err else { panic!("expected a device error, got {err}") };
    assert!(message.contains("reply has 4 rows and 28 bytes, expected 4 rows x 2 values x 4 bytes = 32"), "{message}");
}

#[test]
fn a_nan_reply_is_rejected() {
    let (addr, _) = fake(|_, mut s| {
        if let Some(q) = handshake_then_query(&mut s) {
            let rows = q.x.rows();
            let mut v = vec![1.0; rows * N_OUT];
            v[3] = f32::NAN;
            let _ = write_frame(&mut s, &reply(q.id, rows, &v));
            let _ = read_frame(&mut s);
        }
    });
    let mut dev = DeviceSystem::<f32>::connect(config(addr)).unwrap();
    match dev.forward(batch().view()).unwrap_err() {
        SystemError::NonFinite { what, row, col, value, system } => {
            assert_eq!((what, row, col), ("output", 1, 1));
            assert!(value.is_nan() && system.contains("after 2 attempts"), "{system}");
        }
        e => panic!("expected NonFinite, got {e}"),
    }
}

#[test]
fn device_error_frames_and_bad_inputs_are_reported() {
    let (addr, conns) = fake(|_, mut s| {
        while let Some(q) = handshake_then_query(&mut s) {
            write_frame(&mut s, &error_frame(q.id, "laser interlock open")).unwrap();
        }
    });
    let mut dev = DeviceSystem::<f32>::connect(config(addr)).unwrap();
    let err = dev.forward(batch().view()).unwrap_err().to_string();
    assert!(err.contains("the device reported: laser interlock open"), "{err}");
    let before = conns.load(Ordering::SeqCst);
    // A malformed batch never reaches the device.
    let mut bad = batch();
    bad.data_mut()[0] = f32::INFINITY;
    assert!(matches!(dev.forward(bad.view()), Err(SystemError::NonFinite { what: "input", .. })));
    assert!(matches!(dev.forward(Matrix::<f32>::zeros(1, 5).view()), Err(SystemError::Shape { .. })));
    assert_eq!(conns.load(Ordering::SeqCst), before);
}

/// A fake device that answers every hello with `h`; returns its address and connection count.
fn announcing(h: Vec<u8>) -> (SocketAddr, Arc<AtomicUsize>) {
    fake(move |_, mut s| {
        let _ = read_frame(&mut s);
        let _ = write_frame(&mut s, &h);
        let _ = read_frame(&mut s);
    })
}

#[test]
fn a_device_of_another_protocol_version_is_refused_at_once() {
    let (addr, conns) = announcing(hello_of_version(9, 3, 2));
    let err = DeviceSystem::<f32>::connect(config(addr)).err().unwrap().to_string();
    assert!(
        err.contains("protocol version 9") && err.contains("speaks version 2 only") && err.contains("update phyff"),
        "{err}"
    );
    assert_eq!(conns.load(Ordering::SeqCst), 1, "an incompatible device is not retried");
}

/// A version-1 device (the hello layout is the same, the queries carry no number) is refused
/// with the version phyff speaks and how to update the device.
#[test]
fn a_version_1_device_is_refused_with_how_to_update_it() {
    let (addr, _) = announcing(hello_of_version(1, 3, 2));
    let err = DeviceSystem::<f32>::connect(config(addr)).err().unwrap().to_string();
    assert!(err.contains("the device speaks protocol version 1; this phyff speaks version 2 only"), "{err}");
    assert!(err.contains("rebuild phyff-device") && err.contains("echo the query number"), "{err}");
}

#[test]
fn a_hello_with_an_unsupported_width_is_refused() {
    let mut h = hello(N_IN, N_OUT);
    h[5] = 2;
    let (addr, _) = announcing(h);
    let err = DeviceSystem::<f32>::connect(config(addr)).err().unwrap().to_string();
    assert!(err.contains("2-byte values") && err.contains("4-byte (f32) or 8-byte (f64)"), "{err}");
}

/// A version-2 hello framed for `printf`: f32 values, 1 -> 1, named "x".
const HELLO_1_TO_1: &str = "\\027\\000\\000\\000H\\002\\000\\000\\000\\004\\001\\000\\000\\000\\000\\000\\000\\000\\001\\000\\000\\000\\000\\000\\000\\000x";

fn sh(script: &str) -> DeviceConfig {
    DeviceConfig {
        transport: Transport::Command { program: "sh".into(), args: vec!["-c".into(), script.into()] },
        timeout_ms: 300,
        attempts: 3,
    }
}

#[test]
fn a_child_that_exits_at_once_fails_the_handshake_after_all_attempts() {
    let err = DeviceSystem::<f32>::connect(sh("exit 3")).err().unwrap().to_string();
    assert!(err.contains("handshake failed after 3 attempts") && err.contains("closed the connection"), "{err}");
    let err = DeviceSystem::<f32>::connect(DeviceConfig {
        transport: Transport::command_line("/nonexistent/phyff-device --stdio").unwrap(),
        timeout_ms: 300,
        attempts: 1,
    })
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("cannot start /nonexistent/phyff-device"), "{err}");
    assert!(Transport::command_line("  ").is_err());
}

#[test]
fn a_silent_child_times_out_and_is_killed() {
    let start = Instant::now();
    let err = DeviceSystem::<f32>::connect(sh("exec sleep 30")).err().unwrap();
    assert!(matches!(err, SystemError::Timeout { attempts: 3, timeout_ms: 300, .. }), "{err}");
    assert!(start.elapsed() < Duration::from_secs(5));
}

/// A child that answers the hello (1 -> 1 values, f32, named "x") and then crashes: every
/// query restarts it, and after the last attempt the error says what happened.
#[test]
fn a_child_that_crashes_mid_run_is_restarted_then_reported() {
    let script = format!("printf '{HELLO_1_TO_1}'; head -c 9 >/dev/null; echo started >> \"$0\"; exit 1");
    let log = std::env::temp_dir().join(format!("phyff-device-crash-{}", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let mut cfg = sh(&script);
    if let Transport::Command { args, .. } = &mut cfg.transport {
        args.push(log.display().to_string());
    }
    let mut dev = DeviceSystem::<f32>::connect(cfg).unwrap();
    assert_eq!((dev.input_len(), dev.output_len(), dev.info().name.as_str()), (1, 1, "x"));
    let err = dev.forward(Matrix::<f32>::zeros(2, 1).view()).unwrap_err().to_string();
    assert!(err.contains("query failed after 3 attempts") && err.contains("closed the connection"), "{err}");
    // One start for the handshake, then a restart for each of the later attempts.
    let starts = std::fs::read_to_string(&log).unwrap_or_default().lines().count();
    let _ = std::fs::remove_file(&log);
    assert_eq!(starts, 3, "each attempt must run in a (re)started child");
}

#[test]
fn a_hello_announcing_2_pow_40_outputs_is_refused_before_anything_is_allocated() {
    let (addr, _) = announcing(hello(N_IN, 1 << 40));
    let err = DeviceSystem::<f32>::connect(config(addr)).err().expect("a 2^40 hello must be refused").to_string();
    assert!(err.contains("output_len 1099511627776") && err.contains("16777216"), "{err}");
    for (n_in, n_out, field) in [
        (0, 2, "input_len 0"),
        (u64::MAX, 2, "input_len 18446744073709551615"),
        (3, (1 << 24) + 1, "output_len 16777217"),
    ] {
        let (addr, _) = announcing(hello_of_version(PROTOCOL_VERSION, n_in, n_out));
        let err = DeviceSystem::<f32>::connect(config(addr)).err().unwrap().to_string();
        assert!(err.contains(field) && err.contains("accepts 1 to 16777216"), "{err}");
    }
    // The limit itself is accepted.
    let (addr, _) = announcing(hello_of_version(PROTOCOL_VERSION, 3, 1 << 24));
    assert_eq!(DeviceSystem::<f32>::connect(config(addr)).unwrap().output_len(), 1 << 24);
}

#[test]
fn command_lines_follow_shell_quoting() {
    let t = Transport::command_line("sh -c 'exit 3'").unwrap();
    assert_eq!(t, Transport::Command { program: "sh".into(), args: vec!["-c".into(), "exit 3".into()] });
    let words = |line: &str| split_command_line(line).unwrap();
    assert_eq!(words("  a\tb \t c  "), ["a", "b", "c"].map(String::from), "blanks separate words");
    assert_eq!(words("a 'b c' \"d e\" f\\ g"), ["a", "b c", "d e", "f g"].map(String::from));
    assert_eq!(words("x'y z'\"w\"v"), ["xy zwv"].map(String::from), "adjacent pieces join");
    assert_eq!(words("'' \"\""), ["", ""].map(String::from), "empty quotes are empty words");
    assert_eq!(words(r#"'a "b" \c $d'"#), [r#"a "b" \c $d"#].map(String::from), "single quotes keep everything");
    assert_eq!(words(r#""a \" \\ \$ \` \x""#), [r#"a " \ $ ` \x"#].map(String::from), "double-quote escapes");
    assert_eq!(words("a \\'b\\' \\\"c\\\""), ["a", "'b'", "\"c\""].map(String::from), "escaped quotes are literal");
    assert_eq!(words("a\\\nb c"), ["ab", "c"].map(String::from), "backslash-newline continues the line");
    assert_eq!(
        words("p --shape {rows}x{cols} ~/x *.bin"),
        ["p", "--shape", "{rows}x{cols}", "~/x", "*.bin"].map(String::from)
    );
    assert!(words(" \t ").is_empty());
    for (line, want) in [
        ("sh -c 'exit 3", "unterminated single quote opened at byte 6"),
        ("dev --name \"x y", "unterminated double quote opened at byte 11"),
        ("dev \\", "trailing backslash"),
        ("dev 2>log", "`>` at byte 5 is shell syntax"),
        ("dev | tee", "`|` at byte 4"),
        ("dev $HOME", "`$` at byte 4"),
        ("dev \"$HOME\"", "`$` at byte 5"),
        ("dev; rm", "`;` at byte 3"),
    ] {
        let err = split_command_line(line).unwrap_err();
        assert!(err.contains(want), "{line:?}: {err}");
        let err = Transport::command_line(line).unwrap_err().to_string();
        assert!(err.contains(&format!("device command {line:?}")) && err.contains(want), "{err}");
    }
    assert!(Transport::command_line("dev '|' \\; \"a|b\"").is_ok(), "quoted or escaped, the characters are literal");
}

/// `sh -c '...'` as a device command: the script reaches the shell as one word.
#[test]
fn a_quoted_shell_script_runs_as_the_device() {
    let transport = Transport::command_line("sh -c 'echo started; exit 3'").unwrap();
    let err = DeviceSystem::<f32>::connect(DeviceConfig { transport, timeout_ms: 2_000, attempts: 1 }).err().unwrap();
    // `echo started` is the 4-byte prefix "star" + 1.9 GB: a frame over the limit.
    assert!(err.to_string().contains("exceeds the limit"), "{err}");
}

/// Whether process `pid` still runs (a zombie waiting for its reaper counts as ended).
#[cfg(target_os = "linux")]
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(s) => s.rsplit(')').next().and_then(|t| t.split_whitespace().next()) != Some("Z"),
    }
}

/// Waits (at most 30 s, polling) until `pid` has ended; false if it still runs then.
#[cfg(target_os = "linux")]
fn ends(pid: u32) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if !running(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Waits (at most 30 s) for `path` to hold a pid, written by a device script.
#[cfg(target_os = "linux")]
fn pid_from(path: &std::path::Path) -> u32 {
    let start = Instant::now();
    loop {
        if let Some(pid) = std::fs::read_to_string(path).ok().and_then(|s| s.trim().parse().ok()) {
            return pid;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "the device never wrote its pid to {}", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A hung device that started a process of its own (`sleep` in the background): when the
/// handshake times out, the whole process group ends, not only the direct child.
#[cfg(target_os = "linux")]
#[test]
fn a_hung_device_and_its_children_end_when_the_client_gives_up() {
    let file = std::env::temp_dir().join(format!("phyff-device-group-{}", std::process::id()));
    let _ = std::fs::remove_file(&file);
    let background = "sleep 1000 & echo $! > \"$0.tmp\"; mv \"$0.tmp\" \"$0\"; wait";
    // Generous: the script must have written the pid before the client gives up.
    let mut cfg = DeviceConfig { timeout_ms: 2_000, attempts: 1, ..sh(background) };
    if let Transport::Command { args, .. } = &mut cfg.transport {
        args.push(file.display().to_string());
    }
    let err = DeviceSystem::<f32>::connect(cfg).err().unwrap();
    assert!(matches!(err, SystemError::Timeout { .. }), "{err}");
    let pid = pid_from(&file);
    let _ = std::fs::remove_file(&file);
    assert!(ends(pid), "the device's background process {pid} outlived the client");

    // A device that answered its hello, then started a process and hung: dropping the
    // DeviceSystem ends both.
    let mut cfg = sh(&format!("printf '{HELLO_1_TO_1}'; {background}"));
    if let Transport::Command { args, .. } = &mut cfg.transport {
        args.push(file.display().to_string());
    }
    let dev = DeviceSystem::<f32>::connect(cfg).unwrap();
    let pid = pid_from(&file);
    let _ = std::fs::remove_file(&file);
    assert!(running(pid));
    drop(dev);
    assert!(ends(pid), "the device's background process {pid} outlived the dropped client");
}

/// Not a test on its own: the process that [`a_hung_device_ends_when_its_client_is_killed`]
/// starts and kills. It connects to a device that never answers, and waits.
#[test]
#[ignore = "helper process of a_hung_device_ends_when_its_client_is_killed"]
fn helper_waiting_on_a_hung_device() {
    let file = std::env::var("PHYFF_DEVICE_PID_FILE").expect("run by a_hung_device_ends_when_its_client_is_killed");
    let mut cfg = sh("echo $$ > \"$0.tmp\"; mv \"$0.tmp\" \"$0\"; exec sleep 1000");
    cfg.timeout_ms = 600_000;
    cfg.attempts = 1;
    if let Transport::Command { args, .. } = &mut cfg.transport {
        args.push(file);
    }
    let _ = DeviceSystem::<f32>::connect(cfg);
}

/// phyff killed (SIGKILL, no destructor runs) while its device hangs: the parent-death signal
/// ends the device.
#[cfg(target_os = "linux")]
#[test]
fn a_hung_device_ends_when_its_client_is_killed() {
    let file = std::env::temp_dir().join(format!("phyff-device-orphan-{}", std::process::id()));
    let _ = std::fs::remove_file(&file);
    let mut client = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "device::tests::helper_waiting_on_a_hung_device", "--ignored", "--test-threads=1"])
        .env("PHYFF_DEVICE_PID_FILE", &file)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = pid_from(&file);
    let _ = std::fs::remove_file(&file);
    assert!(running(pid));
    client.kill().unwrap();
    client.wait().unwrap();
    assert!(ends(pid), "the device {pid} outlived its killed client");
}

/// A fake device that serves the correct answer to every query after the hello, letting
/// `extra(connection, query, stream)` misbehave first; returns the address and the number of
/// connections.
fn misbehaving(
    extra: impl Fn(usize, &Query, &mut TcpStream) -> Answer + Send + Sync + 'static,
) -> (SocketAddr, Arc<AtomicUsize>) {
    fake(move |i, mut s| {
        let Some(mut q) = handshake_then_query(&mut s) else { return };
        loop {
            match extra(i, &q, &mut s) {
                Answer::Correct => write_frame(&mut s, &answer(&q)).unwrap(),
                Answer::Nothing => {}
                Answer::Hang => return std::thread::sleep(Duration::from_secs(5)),
            }
            match next_query(&mut s) {
                Some(n) => q = n,
                None => return,
            }
        }
    })
}

/// What a [`misbehaving`] device does after its extra frames.
enum Answer {
    Correct,
    Nothing,
    Hang,
}

/// Three different batches in a row must each get their own rows.
fn three_batches(dev: &mut DeviceSystem<f32>) -> Result<(), SystemError> {
    for k in 0..3 {
        let x = Matrix::from_fn(4, N_IN, |r, c| (k * 100 + r * 10 + c) as f32);
        assert_eq!(dev.forward(x.view())?, truth(&x), "batch {k} got another batch's outputs");
    }
    Ok(())
}

/// The defect of issue 19: one duplicated reply used to shift every later reply by one query
/// (the second batch got the first one's outputs). Now the copy is recognised by its number
/// and discarded.
#[test]
fn a_device_that_duplicates_a_reply_never_shifts_later_outputs() {
    let (addr, conns) = misbehaving(|_, q, s| {
        if q.id == 1 {
            write_frame(s, &answer(q)).unwrap();
        }
        Answer::Correct
    });
    let mut dev = DeviceSystem::<f32>::connect(config(addr)).unwrap();
    three_batches(&mut dev).unwrap();
    assert_eq!(dev.stale_replies(), 1);
    assert_eq!(conns.load(Ordering::SeqCst), 1, "a stale reply is not a failure");
}

/// Every reply sent twice, the copy before the original, and stale error frames: all stale
/// frames are discarded, every batch gets its own outputs.
#[test]
fn a_device_that_repeats_every_earlier_reply_still_gives_each_batch_its_rows() {
    let earlier = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
    let (addr, _) = misbehaving(move |_, q, s| {
        let mut seen = earlier.lock().unwrap();
        for old in seen.iter() {
            write_frame(s, old).unwrap();
        }
        if q.id > 1 {
            write_frame(s, &error_frame(q.id - 1, "stale error")).unwrap();
        }
        seen.push(answer(q));
        Answer::Correct
    });
    let mut dev = DeviceSystem::<f32>::connect(config(addr)).unwrap();
    three_batches(&mut dev).unwrap();
    // Before query 2: reply 1 and error 1; before query 3: replies 1 and 2 and error 2.
    assert_eq!(dev.stale_replies(), 5);
}

/// A dropped reply times out; the retry (a new query number on a new connection) gets the
/// right rows, and the late reply could not be mistaken for it.
#[test]
fn a_device_that_drops_a_reply_is_retried_and_gives_the_right_rows() {
    let (addr, conns) = misbehaving(|i, q, _| if i == 0 && q.id == 2 { Answer::Hang } else { Answer::Correct });
    let mut dev = DeviceSystem::<f32>::connect(config(addr)).unwrap();
    three_batches(&mut dev).unwrap();
    assert_eq!(conns.load(Ordering::SeqCst), 2);
    // Always dropping is a timeout error, never someone else's outputs.
    let (addr, _) = misbehaving(|_, _, _| Answer::Nothing);
    let mut dev = DeviceSystem::<f32>::connect(config(addr)).unwrap();
    assert!(matches!(three_batches(&mut dev), Err(SystemError::Timeout { attempts: 2, .. })));
}

/// Replies that arrive out of order: the answer to a query is held back and sent after the
/// next query's (a stale frame then), or a reply carries a number that was never sent.
#[test]
fn a_device_that_reorders_replies_gives_the_right_rows_or_a_clear_error() {
    // The reply to query 2 is held back: the client times out and retries the batch as query
    // 3 on a new connection, where the held-back reply arrives first, then the reply to 3.
    let held = Arc::new(Mutex::new(None::<Vec<u8>>));
    let (addr, _) = misbehaving(move |_, q, s| {
        let mut h = held.lock().unwrap();
        if let Some(old) = h.take() {
            write_frame(s, &old).unwrap();
        }
        if q.id == 2 {
            *h = Some(answer(q));
            return Answer::Nothing;
        }
        Answer::Correct
    });
    let mut dev = DeviceSystem::<f32>::connect(config(addr)).unwrap();
    three_batches(&mut dev).unwrap();
    assert_eq!(dev.stale_replies(), 1, "the held-back reply to query 2 arrived after it was given up");

    // A reply numbered for a query never sent (the device's own counter ran ahead).
    let (addr, conns) = misbehaving(|_, q, s| {
        let mut ahead = answer(q);
        ahead[1..9].copy_from_slice(&(q.id + 1).to_le_bytes());
        write_frame(s, &ahead).unwrap();
        Answer::Nothing
    });
    let mut dev = DeviceSystem::<f32>::connect(config(addr)).unwrap();
    let err = three_batches(&mut dev).unwrap_err().to_string();
    assert!(err.contains("the device answered query #3, but the query sent is #2"), "{err}");
    assert!(err.contains("after 2 attempts"), "{err}");
    assert_eq!(conns.load(Ordering::SeqCst), 2);

    // A reply numbered 0, and an error frame numbered 0 (the device could not read the query).
    for (kind, want) in [(REPLY, "answered query #0"), (ERROR, "could not read query #2")] {
        let (addr, _) = misbehaving(move |_, q, s| {
            let mut f = answer(q);
            f[0] = kind;
            f[1..9].copy_from_slice(&0u64.to_le_bytes());
            write_frame(s, &f).unwrap();
            Answer::Nothing
        });
        let mut dev = DeviceSystem::<f32>::connect(config(addr)).unwrap();
        let err = three_batches(&mut dev).unwrap_err().to_string();
        assert!(err.contains(want), "{err}");
    }
}

/// A batch larger than a frame is split into queries that each fit; the rows come back in
/// order.
#[test]
fn a_batch_larger_than_a_frame_is_split_into_queries_that_fit() {
    assert_eq!(rows_per_query(3, 2, 4, HEADER + 24), 2);
    assert_eq!(rows_per_query(3, 2, 4, HEADER + 23), 1);
    assert_eq!(rows_per_query(3, 2, 4, HEADER + 11), 0);
    assert_eq!(rows_per_query(1, 1, 4, MAX_FRAME_BYTES as usize), (MAX_FRAME_BYTES as usize - HEADER) / 4);
    assert_eq!(rows_per_query(1 << 24, 1, 8, MAX_FRAME_BYTES as usize), 7);
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let seen = sizes.clone();
    let (addr, _) = misbehaving(move |_, q, _| {
        seen.lock().unwrap().push(q.x.rows());
        Answer::Correct
    });
    let mut dev = DeviceSystem::<f32>::connect(config(addr)).unwrap();
    dev.max_frame = HEADER + 2 * N_IN * 4; // two rows a query
    let x = Matrix::from_fn(5, N_IN, |r, c| (r * 10 + c) as f32);
    assert_eq!(dev.forward(x.view()).unwrap(), truth(&x));
    assert_eq!(*sizes.lock().unwrap(), [2, 2, 1]);
    // A NaN in the second query is reported at its row in the whole batch.
    let (addr, _) = misbehaving(|_, q, s| {
        if q.id == 2 {
            let mut v = truth(&q.x);
            v.data_mut()[1] = f32::NAN;
            write_frame(s, &reply(q.id, q.x.rows(), v.data())).unwrap();
            return Answer::Nothing;
        }
        Answer::Correct
    });
    let mut dev = DeviceSystem::<f32>::connect(DeviceConfig { attempts: 1, ..config(addr) }).unwrap();
    dev.max_frame = HEADER + 2 * N_IN * 4;
    match dev.forward(x.view()).unwrap_err() {
        SystemError::NonFinite { row, col, .. } => assert_eq!((row, col), (2, 1)),
        e => panic!("expected NonFinite, got {e}"),
    }
    dev.max_frame = HEADER + N_IN * 4 - 1;
    let err = dev.forward(x.view()).unwrap_err().to_string();
    assert!(err.contains("does not fit in a frame"), "{err}");
}

/// Linux sends the parent-death signal when the *thread* that started the child ends, not the
/// process: a device connected from a thread that has ended since must still answer. (The
/// device answers every 1-row query with an error frame "alive" carrying the query's number.)
#[cfg(target_os = "linux")]
#[test]
fn a_device_started_by_a_thread_that_has_ended_still_answers() {
    let file = std::env::temp_dir().join(format!("phyff-device-thread-{}", std::process::id()));
    let script = format!(
        "printf '{HELLO_1_TO_1}'; head -c 9 >/dev/null; while head -c 21 > \"$0\" && [ -s \"$0\" ]; do \
         printf '\\016\\000\\000\\000E'; dd if=\"$0\" bs=1 skip=5 count=8 2>/dev/null; printf alive; done"
    );
    let mut cfg = DeviceConfig { timeout_ms: 10_000, attempts: 1, ..sh(&script) };
    if let Transport::Command { args, .. } = &mut cfg.transport {
        args.push(file.display().to_string());
    }
    let mut dev = std::thread::spawn(move || DeviceSystem::<f32>::connect(cfg).unwrap()).join().unwrap();
    for _ in 0..2 {
        let err = dev.forward(Matrix::<f32>::zeros(1, 1).view()).unwrap_err().to_string();
        assert!(err.contains("the device reported: alive"), "{err}");
    }
    drop(dev);
    let _ = std::fs::remove_file(&file);
}
