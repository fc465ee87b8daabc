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

fn hello(n_in: usize, n_out: usize) -> Vec<u8> {
    let mut h = vec![HELLO];
    h.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    h.push(4);
    h.extend_from_slice(&(n_in as u64).to_le_bytes());
    h.extend_from_slice(&(n_out as u64).to_le_bytes());
    h.extend_from_slice(b"fake");
    h
}

/// Answers the hello, then returns the rows of the next query (None at EOF).
fn handshake_then_query(s: &mut TcpStream) -> Option<usize> {
    let h = read_frame(s).ok()?;
    assert_eq!(h, vec![HELLO]);
    write_frame(s, &hello(N_IN, N_OUT)).ok()?;
    let q = read_frame(s).ok()?;
    assert_eq!(q[0], QUERY);
    Some(u32::from_le_bytes(q[1..5].try_into().unwrap()) as usize)
}

fn reply(rows: usize, values: &[f32]) -> Vec<u8> {
    let mut f = vec![REPLY];
    f.extend_from_slice(&(rows as u32).to_le_bytes());
    values.iter().for_each(|v| f.extend_from_slice(&v.to_le_bytes()));
    f
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

#[test]
fn serve_answers_bad_queries_with_error_frames_and_goes_on() {
    let mut req = Vec::new();
    write_frame(&mut req, &[QUERY, 1, 0, 0, 0, 0, 0]).unwrap(); // 2 bytes instead of 3 x 4
    write_frame(&mut req, b"Z").unwrap();
    let mut q = vec![QUERY, 1, 0, 0, 0];
    [1.0f32, 2.0, 3.0].iter().for_each(|v| q.extend_from_slice(&v.to_le_bytes()));
    write_frame(&mut req, &q).unwrap();
    let mut out = Vec::new();
    let stats = serve::<f32, _>(&mut Identity::new(3), req.as_slice(), &mut out).unwrap();
    assert_eq!(stats, ServeStats { queries: 1, errors: 2 });
    let mut r = out.as_slice();
    let e1 = read_frame(&mut r).unwrap();
    assert!(e1[0] == ERROR && String::from_utf8_lossy(&e1).contains("expected 1 x 3 values"));
    assert_eq!(read_frame(&mut r).unwrap()[0], ERROR);
    assert_eq!(read_frame(&mut r).unwrap(), reply(1, &[1.0, 2.0, 3.0]));
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
        while let Some(rows) = handshake_then_query(&mut s) {
            if i == 0 {
                return; // first connection: drop it mid-request
            }
            write_frame(&mut s, &reply(rows, &vec![0.5; rows * N_OUT])).unwrap();
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
        if let Some(rows) = handshake_then_query(&mut s) {
            let _ = write_frame(&mut s, &reply(rows, &vec![1.0; rows * N_OUT - 1]));
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
        if let Some(rows) = handshake_then_query(&mut s) {
            let mut v = vec![1.0; rows * N_OUT];
            v[3] = f32::NAN;
            let _ = write_frame(&mut s, &reply(rows, &v));
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
        while handshake_then_query(&mut s).is_some() {
            write_frame(&mut s, &error_frame("laser interlock open")).unwrap();
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

#[test]
fn a_device_of_another_protocol_version_is_refused() {
    let (addr, _) = fake(|_, mut s| {
        let _ = read_frame(&mut s);
        let mut h = hello(N_IN, N_OUT);
        h[1] = 9;
        let _ = write_frame(&mut s, &h);
        let _ = read_frame(&mut s);
    });
    let err = DeviceSystem::<f32>::connect(config(addr)).err().unwrap().to_string();
    assert!(err.contains("protocol version 9") && err.contains("update one side"), "{err}");
}

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
    let script = "printf '\\027\\000\\000\\000H\\001\\000\\000\\000\\004\\001\\000\\000\\000\\000\\000\\000\\000\\001\\000\\000\\000\\000\\000\\000\\000x'; head -c 6 >/dev/null; echo started >> \"$0\"; exit 1";
    let log = std::env::temp_dir().join(format!("phyff-device-crash-{}", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let mut cfg = sh(script);
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
