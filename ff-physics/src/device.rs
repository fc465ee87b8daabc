//! Hardware in the loop: a [`PhysicalSystem`] answered by an external device process.
//!
//! A real instrument (or a simulator in another process or on another machine behind an SSH
//! tunnel) is driven through a small binary protocol, so the trainer cannot tell it from an
//! in-process simulator. [`DeviceSystem`] is the client; [`serve`] and [`serve_listener`] make
//! any [`PhysicalSystem`] a device. The same text is in `docs/device-protocol.md`.
//!
//! ## Transports
//! - **stdio**: the client starts a child process ([`Transport::Command`]) and speaks on its
//!   stdin (requests) and stdout (replies); the child's stderr is inherited (for its logs).
//! - **TCP**: the client connects to an address ([`Transport::Tcp`]), typically loopback.
//!
//! ## Framing (protocol version 1)
//! Every message is a frame: a `u32` little-endian payload length `n` (at most
//! [`MAX_FRAME_BYTES`]) followed by `n` payload bytes. The first payload byte is the message
//! kind; all integers are little-endian; values are IEEE floats of the *device's* width `w`
//! (4 for `f32`, 8 for `f64`), little-endian, row-major.
//!
//! | kind | direction | payload after the kind byte |
//! |---|---|---|
//! | `b'H'` hello | client -> device | nothing |
//! | `b'H'` hello | device -> client | `u32` protocol version (1), `u8` `w`, `u64` input_len, `u64` output_len, UTF-8 name (rest of the frame) |
//! | `b'Q'` query | client -> device | `u32` rows, `rows x input_len` values |
//! | `b'R'` reply | device -> client | `u32` rows, `rows x output_len` values |
//! | `b'E'` error | device -> client | UTF-8 message (the query failed; the device stays usable) |
//!
//! A session opens with the hello exchange, then alternates one query and one reply. The client
//! closes the session by closing its end (EOF); the device then exits (stdio) or waits for the
//! next connection (TCP). When the client's precision differs from `w`, it converts through
//! `f64` (exact from `f32` to `f64`, rounded the other way).
//!
//! ## Client behaviour
//! Every request has a timeout ([`DeviceConfig::timeout_ms`]). Every reply is validated: its
//! kind, its row count, its length, and the finiteness of every value. A failed attempt
//! (timeout, disconnect, child exit, malformed or invalid reply, device error) tears the
//! connection down (the child is killed, the socket shut down) and the next attempt reconnects
//! (restarting the child), up to [`DeviceConfig::attempts`] attempts. Then the query fails
//! with [`SystemError::Timeout`] (when the last attempt timed out),
//! [`SystemError::NonFinite`] (a NaN/inf reply) or [`SystemError::Device`] naming the problem
//! and the number of attempts. A malformed input batch is rejected before anything is sent.
//!
//! ## Example
//! ```
//! use ff_core::{Identity, Matrix, PhysicalSystem};
//! use ff_physics::device::{serve_listener, DeviceConfig, DeviceSystem, Transport};
//! use std::net::TcpListener;
//!
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let addr = listener.local_addr()?;
//! std::thread::spawn(move || serve_listener::<f32, _>(&mut Identity::new(3), &listener, Some(1)));
//! let mut dev = DeviceSystem::<f32>::connect(DeviceConfig::new(Transport::Tcp(addr)))?;
//! let x = Matrix::from_fn(2, 3, |r, c| (r * 3 + c) as f32);
//! assert_eq!(dev.forward(x.view())?, x);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use ff_core::{check_batch, MatMut, MatRef, PhysicalSystem, Real, SystemError};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::marker::PhantomData;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Mutex;
use std::time::Duration;

/// The protocol version spoken by this module.
pub const PROTOCOL_VERSION: u32 = 1;
/// Largest accepted frame payload (1 GiB): a corrupt length prefix cannot exhaust memory.
pub const MAX_FRAME_BYTES: u32 = 1 << 30;

const HELLO: u8 = b'H';
const QUERY: u8 = b'Q';
const REPLY: u8 = b'R';
const ERROR: u8 = b'E';

/// How to reach the device.
#[derive(Clone, Debug, PartialEq)]
pub enum Transport {
    /// Start `program args...` and speak on its stdin/stdout.
    Command {
        /// The executable.
        program: String,
        /// Its arguments.
        args: Vec<String>,
    },
    /// Connect to a TCP address.
    Tcp(SocketAddr),
}

impl Transport {
    /// A command transport from a whitespace-separated command line (no shell quoting: wrap
    /// the command in `sh -c '...'` when quoting is needed).
    ///
    /// # Errors
    /// [`SystemError::Device`] for an empty command line.
    pub fn command_line(line: &str) -> Result<Self, SystemError> {
        let mut words = line.split_whitespace().map(str::to_string);
        let program = words.next().ok_or_else(|| SystemError::Device {
            system: "device".into(),
            message: "empty device command; give the program and its arguments, e.g. \"phyff-device --stdio\"".into(),
        })?;
        Ok(Transport::Command { program, args: words.collect() })
    }

    fn describe(&self) -> String {
        match self {
            Transport::Command { program, .. } => format!("stdio of {program}"),
            Transport::Tcp(a) => format!("tcp {a}"),
        }
    }
}

/// Settings of a [`DeviceSystem`].
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceConfig {
    /// How to reach the device.
    pub transport: Transport,
    /// Time allowed for one request (connection and handshake, or one query and its reply), in ms.
    pub timeout_ms: u64,
    /// Attempts per request (>= 1); between attempts the connection is re-established.
    pub attempts: u32,
}

impl DeviceConfig {
    /// Defaults: 10 s per request, 3 attempts.
    pub fn new(transport: Transport) -> Self {
        DeviceConfig { transport, timeout_ms: 10_000, attempts: 3 }
    }
}

/// The kill switch of a live connection: closes it so that blocked I/O threads end.
enum Endpoint {
    Child(Child),
    Tcp(TcpStream),
}

struct Connection {
    endpoint: Endpoint,
    to_device: mpsc::Sender<Vec<u8>>,
    from_device: Receiver<io::Result<Vec<u8>>>,
}

impl Connection {
    fn close(mut self) {
        match &mut self.endpoint {
            Endpoint::Child(c) => {
                let _ = c.kill();
                let _ = c.wait();
            }
            Endpoint::Tcp(s) => {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

/// What the device announced in its hello.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Protocol version.
    pub version: u32,
    /// Bytes per value on the wire (4 or 8).
    pub width: u8,
    /// Values per input sample.
    pub input_len: usize,
    /// Values per output sample.
    pub output_len: usize,
    /// The device's own name.
    pub name: String,
}

/// One failed attempt.
enum Failure {
    Timeout,
    NonFinite { row: usize, col: usize, value: f64 },
    Other(String),
}

/// A physical system answered by an external device over the protocol of this module.
///
/// Deterministic when the device is. `Send + Sync`: the connection sits behind a mutex that
/// `forward_batch` (taking `&mut self`) never has to lock.
pub struct DeviceSystem<F> {
    config: DeviceConfig,
    info: DeviceInfo,
    conn: Mutex<Option<Connection>>,
    _f: PhantomData<fn() -> F>,
}

impl<F: Real> DeviceSystem<F> {
    /// Connects (starting the child for a command transport) and performs the handshake,
    /// retrying as configured.
    ///
    /// # Errors
    /// [`SystemError::Timeout`] or [`SystemError::Device`] when no attempt succeeds, or when
    /// the device speaks another protocol version or an unsupported value width.
    pub fn connect(config: DeviceConfig) -> Result<Self, SystemError> {
        if config.attempts == 0 || config.timeout_ms == 0 {
            return Err(SystemError::Device {
                system: "device".into(),
                message: format!(
                    "invalid device settings: attempts ({}) and timeout_ms ({}) must be at least 1",
                    config.attempts, config.timeout_ms
                ),
            });
        }
        let label = format!("device ({})", config.transport.describe());
        let mut last = Failure::Other("no attempt made".into());
        for _ in 0..config.attempts {
            match open(&config) {
                Ok((conn, info)) => {
                    if info.version != PROTOCOL_VERSION || !(info.width == 4 || info.width == 8) {
                        conn.close();
                        return Err(SystemError::Device {
                            system: label,
                            message: format!(
                                "the device speaks protocol version {} with {}-byte values; this client speaks version {PROTOCOL_VERSION} with 4- or 8-byte values: update one side",
                                info.version, info.width
                            ),
                        });
                    }
                    return Ok(DeviceSystem { config, info, conn: Mutex::new(Some(conn)), _f: PhantomData });
                }
                Err(f) => last = f,
            }
        }
        Err(failure_error(&label, &config, last, "handshake"))
    }

    /// What the device announced in its hello.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn query_once(&mut self, input: &MatRef<'_, F>, output: &mut MatMut<'_, F>) -> Result<(), Failure> {
        let slot = self.conn.get_mut().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            let (conn, info) = open(&self.config)?;
            if (info.input_len, info.output_len, info.width)
                != (self.info.input_len, self.info.output_len, self.info.width)
            {
                conn.close();
                return Err(Failure::Other(format!(
                    "after reconnecting, the device reports {} -> {} values of {} bytes, before {} -> {} of {}",
                    info.input_len,
                    info.output_len,
                    info.width,
                    self.info.input_len,
                    self.info.output_len,
                    self.info.width
                )));
            }
            *slot = Some(conn);
        }
        let conn = slot.as_ref().expect("connected above");
        let rows = input.rows();
        let w = self.info.width;
        let mut frame = Vec::with_capacity(5 + rows * self.info.input_len * w as usize);
        frame.push(QUERY);
        frame.extend_from_slice(&(rows as u32).to_le_bytes());
        encode_values(input.data(), w, &mut frame);
        conn.to_device.send(frame).map_err(|_| Failure::Other("the connection's writer has stopped".into()))?;
        let reply = recv(conn, self.config.timeout_ms)?;
        match reply.first() {
            Some(&REPLY) if reply.len() >= 5 => {
                let got_rows = u32::from_le_bytes(reply[1..5].try_into().expect("4 bytes")) as usize;
                let body = &reply[5..];
                let expected = rows * self.info.output_len * w as usize;
                if got_rows != rows || body.len() != expected {
                    return Err(Failure::Other(format!(
                        "reply has {got_rows} rows and {} bytes, expected {rows} rows x {} values x {w} bytes = {expected}",
                        body.len(),
                        self.info.output_len
                    )));
                }
                decode_values(body, w, output.data_mut());
                if let Some((row, col, value)) = output.as_ref().find_non_finite() {
                    return Err(Failure::NonFinite { row, col, value });
                }
                Ok(())
            }
            Some(&ERROR) => {
                Err(Failure::Other(format!("the device reported: {}", String::from_utf8_lossy(&reply[1..]))))
            }
            other => Err(Failure::Other(format!(
                "malformed reply (kind {:?}, {} bytes); expected an 'R' frame",
                other.map(|&b| b as char),
                reply.len()
            ))),
        }
    }
}

impl<F> Drop for DeviceSystem<F> {
    fn drop(&mut self) {
        if let Some(c) = self.conn.get_mut().unwrap_or_else(|p| p.into_inner()).take() {
            c.close();
        }
    }
}

impl<F: Real> PhysicalSystem<F> for DeviceSystem<F> {
    fn name(&self) -> String {
        format!("device {} ({})", self.info.name, self.config.transport.describe())
    }
    fn input_len(&self) -> usize {
        self.info.input_len
    }
    fn output_len(&self) -> usize {
        self.info.output_len
    }
    fn forward_batch(&mut self, input: MatRef<'_, F>, mut output: MatMut<'_, F>) -> Result<(), SystemError> {
        let name = PhysicalSystem::<F>::name(self);
        check_batch(&name, self.info.input_len, self.info.output_len, &input, &output)?;
        if input.rows() == 0 {
            return Ok(());
        }
        let mut last = Failure::Other("no attempt made".into());
        for _ in 0..self.config.attempts {
            match self.query_once(&input, &mut output) {
                Ok(()) => return Ok(()),
                Err(f) => {
                    if let Some(c) = self.conn.get_mut().unwrap_or_else(|p| p.into_inner()).take() {
                        c.close();
                    }
                    last = f;
                }
            }
        }
        Err(failure_error(&name, &self.config, last, "query"))
    }
}

fn failure_error(system: &str, config: &DeviceConfig, f: Failure, what: &str) -> SystemError {
    let attempts = config.attempts;
    match f {
        Failure::Timeout => SystemError::Timeout { system: system.into(), timeout_ms: config.timeout_ms, attempts },
        Failure::NonFinite { row, col, value } => {
            SystemError::NonFinite { system: format!("{system} (after {attempts} attempts)"), what: "output", row, col, value }
        }
        Failure::Other(m) => SystemError::Device {
            system: system.into(),
            message: format!("{what} failed after {attempts} attempts: {m}; check that the device is running and speaks protocol version {PROTOCOL_VERSION}"),
        },
    }
}

fn recv(conn: &Connection, timeout_ms: u64) -> Result<Vec<u8>, Failure> {
    match conn.from_device.recv_timeout(Duration::from_millis(timeout_ms)) {
        Ok(Ok(frame)) => Ok(frame),
        Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
            Err(Failure::Other("the device closed the connection (exited or disconnected)".into()))
        }
        Ok(Err(e)) => Err(Failure::Other(format!("cannot read from the device: {e}"))),
        Err(RecvTimeoutError::Timeout) => Err(Failure::Timeout),
        Err(RecvTimeoutError::Disconnected) => Err(Failure::Other("the connection's reader has stopped".into())),
    }
}

/// Opens a connection and performs the hello exchange within the timeout.
fn open(config: &DeviceConfig) -> Result<(Connection, DeviceInfo), Failure> {
    let timeout = Duration::from_millis(config.timeout_ms);
    let (endpoint, reader, writer): (Endpoint, Box<dyn Read + Send>, Box<dyn Write + Send>) = match &config.transport {
        Transport::Command { program, args } => {
            let mut child = Command::new(program)
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(|e| Failure::Other(format!("cannot start {program}: {e}")))?;
            let stdin = child.stdin.take().expect("piped stdin");
            let stdout = child.stdout.take().expect("piped stdout");
            (Endpoint::Child(child), Box::new(stdout), Box::new(stdin))
        }
        Transport::Tcp(addr) => {
            let s = TcpStream::connect_timeout(addr, timeout)
                .map_err(|e| Failure::Other(format!("cannot connect to {addr}: {e}")))?;
            let _ = s.set_nodelay(true);
            let r = s.try_clone().map_err(|e| Failure::Other(format!("cannot clone the socket: {e}")))?;
            let w = s.try_clone().map_err(|e| Failure::Other(format!("cannot clone the socket: {e}")))?;
            (Endpoint::Tcp(s), Box::new(r), Box::new(w))
        }
    };
    // Reader and writer threads turn blocking pipes and sockets into channels with timeouts;
    // they end when the connection is closed (child killed, socket shut down).
    let (tx_frames, from_device) = mpsc::channel();
    std::thread::spawn(move || {
        let mut r = BufReader::new(reader);
        loop {
            let f = read_frame(&mut r);
            let stop = f.is_err();
            if tx_frames.send(f).is_err() || stop {
                break;
            }
        }
    });
    let (to_device, rx_out) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut w = BufWriter::new(writer);
        for payload in rx_out {
            if write_frame(&mut w, &payload).and_then(|()| w.flush()).is_err() {
                break;
            }
        }
    });
    let conn = Connection { endpoint, to_device, from_device };
    let hello = (|| {
        conn.to_device.send(vec![HELLO]).map_err(|_| Failure::Other("the connection's writer has stopped".into()))?;
        let frame = recv(&conn, config.timeout_ms)?;
        parse_hello(&frame).map_err(Failure::Other)
    })();
    match hello {
        Ok(info) => Ok((conn, info)),
        Err(f) => {
            conn.close();
            Err(f)
        }
    }
}

fn parse_hello(frame: &[u8]) -> Result<DeviceInfo, String> {
    if frame.len() < 22 || frame[0] != HELLO {
        return Err(format!("malformed hello ({} bytes); expected an 'H' frame of at least 22 bytes", frame.len()));
    }
    let version = u32::from_le_bytes(frame[1..5].try_into().expect("4 bytes"));
    let width = frame[5];
    let input_len = u64::from_le_bytes(frame[6..14].try_into().expect("8 bytes")) as usize;
    let output_len = u64::from_le_bytes(frame[14..22].try_into().expect("8 bytes")) as usize;
    if input_len == 0 || output_len == 0 {
        return Err(format!("the device reports lengths {input_len} -> {output_len}; both must be positive"));
    }
    let name = String::from_utf8_lossy(&frame[22..]).into_owned();
    Ok(DeviceInfo { version, width, input_len, output_len, name })
}

/// Reads one frame payload.
///
/// # Errors
/// `UnexpectedEof` at a clean end of stream (before a length prefix) and for a truncated
/// frame; `InvalidData` for a length above [`MAX_FRAME_BYTES`].
pub fn read_frame(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let n = u32::from_le_bytes(len);
    if n > MAX_FRAME_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {n} bytes exceeds the limit of {MAX_FRAME_BYTES}"),
        ));
    }
    let mut payload = vec![0u8; n as usize];
    r.read_exact(&mut payload)?;
    Ok(payload)
}

/// Writes one frame (length prefix and payload); the caller flushes.
///
/// # Errors
/// Any I/O error; `InvalidInput` for a payload above [`MAX_FRAME_BYTES`].
pub fn write_frame(w: &mut impl Write, payload: &[u8]) -> io::Result<()> {
    let n = u32::try_from(payload.len())
        .ok()
        .filter(|&n| n <= MAX_FRAME_BYTES)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "frame too large; send smaller batches"))?;
    w.write_all(&n.to_le_bytes())?;
    w.write_all(payload)
}

fn encode_values<F: Real>(values: &[F], width: u8, out: &mut Vec<u8>) {
    for v in values {
        let x = v.to_f64().expect("reals convert to f64");
        if width == 4 {
            out.extend_from_slice(&(x as f32).to_le_bytes());
        } else {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
}

fn decode_values<F: Real>(bytes: &[u8], width: u8, out: &mut [F]) {
    for (o, b) in out.iter_mut().zip(bytes.chunks_exact(width as usize)) {
        let x = if width == 4 {
            f64::from(f32::from_le_bytes(b.try_into().expect("4 bytes")))
        } else {
            f64::from_le_bytes(b.try_into().expect("8 bytes"))
        };
        *o = F::from_f64(x).unwrap_or_else(F::nan);
    }
}

/// What a [`serve`] session did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServeStats {
    /// Queries answered with a reply.
    pub queries: u64,
    /// Queries answered with an error frame.
    pub errors: u64,
}

/// Serves `system` over the protocol on one session until the client closes its end.
///
/// Values travel at the width of `F`. Bad queries (wrong length, unknown kind) and failures
/// of the system are answered with an error frame; the session goes on.
///
/// # Errors
/// I/O errors of the streams, and a stream that ends in the middle of a frame.
pub fn serve<F: Real, S: PhysicalSystem<F> + ?Sized>(
    system: &mut S,
    reader: impl Read,
    writer: impl Write,
) -> io::Result<ServeStats> {
    let width = std::mem::size_of::<F>() as u8;
    let (n_in, n_out) = (system.input_len(), system.output_len());
    let mut r = BufReader::new(reader);
    let mut w = BufWriter::new(writer);
    let mut stats = ServeStats::default();
    let mut input = Vec::new();
    let mut output = Vec::new();
    loop {
        let frame = match read_frame(&mut r) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(stats),
            Err(e) => return Err(e),
        };
        let reply = match frame.first() {
            Some(&HELLO) => {
                let mut h = vec![HELLO];
                h.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
                h.push(width);
                h.extend_from_slice(&(n_in as u64).to_le_bytes());
                h.extend_from_slice(&(n_out as u64).to_le_bytes());
                h.extend_from_slice(system.name().as_bytes());
                h
            }
            Some(&QUERY) if frame.len() >= 5 => {
                let rows = u32::from_le_bytes(frame[1..5].try_into().expect("4 bytes")) as usize;
                let body = &frame[5..];
                if body.len() != rows * n_in * width as usize {
                    stats.errors += 1;
                    error_frame(&format!(
                        "query has {} bytes for {rows} rows, expected {rows} x {n_in} values x {width} bytes",
                        body.len()
                    ))
                } else {
                    input.resize(rows * n_in, F::zero());
                    output.resize(rows * n_out, F::zero());
                    decode_values(body, width, &mut input);
                    let x = MatRef::new(rows, n_in, &input).expect("sized above");
                    let y = MatMut::new(rows, n_out, &mut output).expect("sized above");
                    match system.forward_batch(x, y) {
                        Ok(()) => {
                            stats.queries += 1;
                            let mut f = Vec::with_capacity(5 + output.len() * width as usize);
                            f.push(REPLY);
                            f.extend_from_slice(&(rows as u32).to_le_bytes());
                            encode_values(&output, width, &mut f);
                            f
                        }
                        Err(e) => {
                            stats.errors += 1;
                            error_frame(&e.to_string())
                        }
                    }
                }
            }
            other => {
                stats.errors += 1;
                error_frame(&format!("unknown message kind {:?}; expected 'H' or 'Q'", other.map(|&b| b as char)))
            }
        };
        write_frame(&mut w, &reply)?;
        w.flush()?;
    }
}

fn error_frame(message: &str) -> Vec<u8> {
    let mut f = vec![ERROR];
    f.extend_from_slice(message.as_bytes());
    f
}

/// Serves `system` to the clients of `listener`, one session at a time, until
/// `max_sessions` sessions have ended (forever when `None`). A session that fails with an
/// I/O error (a client that disconnects mid-frame) ends; the next client is served.
///
/// # Errors
/// Errors accepting connections.
pub fn serve_listener<F: Real, S: PhysicalSystem<F> + ?Sized>(
    system: &mut S,
    listener: &TcpListener,
    max_sessions: Option<u64>,
) -> io::Result<ServeStats> {
    let mut total = ServeStats::default();
    let mut sessions = 0u64;
    while max_sessions.is_none_or(|m| sessions < m) {
        let (stream, _) = listener.accept()?;
        let _ = stream.set_nodelay(true);
        let reader = stream.try_clone()?;
        if let Ok(s) = serve(system, reader, &stream) {
            total.queries += s.queries;
            total.errors += s.errors;
        }
        sessions += 1;
    }
    Ok(total)
}

#[cfg(test)]
mod tests;
