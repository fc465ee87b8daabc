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
//!   On Unix the child runs in a process group of its own, and the whole group is killed when
//!   the connection closes (after a failure, or when the [`DeviceSystem`] is dropped); on Linux
//!   the child also gets `SIGKILL` when the client process dies (a parent-death signal), so a
//!   hung device does not outlive a killed trainer.
//! - **TCP**: the client connects to an address ([`Transport::Tcp`]), typically loopback.
//!
//! ## Framing (protocol version 2)
//! Every message is a frame: a `u32` little-endian payload length `n` (at most
//! [`MAX_FRAME_BYTES`]) followed by `n` payload bytes. The first payload byte is the message
//! kind; all integers are little-endian; values are IEEE floats of the *device's* width `w`
//! (4 for `f32`, 8 for `f64`), little-endian, row-major.
//!
//! | kind | direction | payload after the kind byte |
//! |---|---|---|
//! | `b'H'` hello | client -> device | `u32` protocol version of the client (2) |
//! | `b'H'` hello | device -> client | `u32` protocol version (2), `u8` `w`, `u64` input_len, `u64` output_len, UTF-8 name (rest of the frame) |
//! | `b'Q'` query | client -> device | `u64` query number, `u32` rows, `rows x input_len` values |
//! | `b'R'` reply | device -> client | `u64` query number (echoed), `u32` rows, `rows x output_len` values |
//! | `b'E'` error | device -> client | `u64` query number (echoed; 0 if the request could not be read), UTF-8 message (the query failed; the device stays usable) |
//!
//! A session opens with the hello exchange, then alternates one query and one reply. The client
//! closes the session by closing its end (EOF); the device then exits (stdio) or waits for the
//! next connection (TCP). When the client's precision differs from `w`, it converts through
//! `f64` (exact from `f32` to `f64`, rounded the other way).
//!
//! ## Query numbers
//! The client numbers its queries 1, 2, 3, ... over the life of a [`DeviceSystem`] (the count
//! does not restart when it reconnects; a retry is a new query with a new number). A device
//! answers each query with one `R` or `E` frame carrying that query's number. While the client
//! waits for query `n`, a frame numbered below `n` is *stale* (the reply to a query already
//! answered, failed or timed out, e.g. a duplicated reply): it is discarded, counted
//! ([`DeviceSystem::stale_replies`]) and reported on stderr (at the 1st, 2nd, 4th, 8th, ...
//! stale reply), and the client goes on waiting for `n` within the same timeout. A frame
//! numbered above `n` (a query never sent), an `R` numbered 0, or an `E` numbered 0 fails the
//! attempt. A reply is therefore never taken for another query's.
//!
//! ## Versions
//! The client refuses, with a message saying which version it speaks, a device announcing any
//! version other than [`PROTOCOL_VERSION`]. Version 1 (no query numbers) is not supported: its
//! replies cannot be matched to their queries. A device may ignore the client's version in the
//! hello; [`serve`] answers every hello with its own, and the client decides.
//!
//! ## Sizes
//! A hello announcing `input_len` or `output_len` of 0 or above [`MAX_SAMPLE_LEN`] is refused
//! before anything is allocated. The client splits a batch into queries whose request and
//! reply each fit in one frame (at most `(MAX_FRAME_BYTES - 13) / (max(input_len, output_len)
//! x w)` rows per query); [`serve`] answers a query whose reply would not fit with an `E` frame.
//!
//! ## Client behaviour
//! Every request has a timeout ([`DeviceConfig::timeout_ms`]). Every reply is validated: its
//! kind, its query number, its row count, its length, and the finiteness of every value. A
//! failed attempt (timeout, disconnect, child exit, malformed or invalid reply, device error)
//! tears the connection down (the child's process group is killed, the socket shut down) and
//! the next attempt reconnects (restarting the child), up to [`DeviceConfig::attempts`]
//! attempts. Then the query fails with [`SystemError::Timeout`] (when the last attempt timed
//! out), [`SystemError::NonFinite`] (a NaN/inf reply) or [`SystemError::Device`] naming the
//! problem and the number of attempts. A device of another protocol version, value width or
//! announcing impossible lengths is refused at once (no retry). A malformed input batch is
//! rejected before anything is sent.
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
use std::time::{Duration, Instant};

/// The protocol version spoken by this module.
pub const PROTOCOL_VERSION: u32 = 2;
/// Largest accepted frame payload (1 GiB): a corrupt length prefix cannot exhaust memory.
pub const MAX_FRAME_BYTES: u32 = 1 << 30;
/// Largest `input_len` or `output_len` a device may announce (2^24 values per sample, at most
/// 128 MiB per sample on the wire): a corrupt or foreign hello cannot make the client allocate
/// without bound.
pub const MAX_SAMPLE_LEN: u64 = 1 << 24;

const HELLO: u8 = b'H';
const QUERY: u8 = b'Q';
const REPLY: u8 = b'R';
const ERROR: u8 = b'E';
/// Bytes of a query or reply payload before its values: kind, query number, rows.
const HEADER: usize = 1 + 8 + 4;

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
    /// A command transport from a command line split into words by the POSIX shell's quoting
    /// rules: words are separated by blanks; `'...'` keeps everything literally; `"..."` keeps
    /// everything but `\"`, `\\`, `` \` `` and `\$`, which stand for the second character; a
    /// backslash outside quotes makes the next character literal; adjacent pieces join into
    /// one word (`a'b c'` is `ab c`); a backslash-newline is removed. No shell runs: variables,
    /// globs, `~`, redirections and pipes are not expanded, so unquoted `` $ ` | & ; < > ( ) ``
    /// and `$` or `` ` `` inside double quotes are refused; for them run a shell with the script
    /// as one quoted word, e.g. `sh -c 'exec my-device 2>>device.log'`.
    ///
    /// # Errors
    /// [`SystemError::Device`] for an empty command line, an unterminated quote, a trailing
    /// backslash or shell syntax this splitting does not perform.
    pub fn command_line(line: &str) -> Result<Self, SystemError> {
        let error = |message: String| SystemError::Device { system: "device".into(), message };
        let mut words =
            split_command_line(line).map_err(|m| error(format!("device command {line:?}: {m}")))?.into_iter();
        let program = words.next().ok_or_else(|| {
            error("empty device command; give the program and its arguments, e.g. \"phyff-device --stdio\"".into())
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

/// Splits `line` into words by the POSIX shell's quoting rules (see
/// [`Transport::command_line`]).
fn split_command_line(line: &str) -> Result<Vec<String>, String> {
    let refuse = |c: char, at: usize| {
        format!(
            "`{c}` at byte {at} is shell syntax, but the command is not run by a shell; quote it ('{c}') to pass it \
             literally, or run a shell, e.g. sh -c 'exec my-device 2>log'"
        )
    };
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some((_, '\'')) => break,
                        Some((_, c)) => word.push(c),
                        None => return Err(format!("unterminated single quote opened at byte {at}; close it with '")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some((_, '"')) => break,
                        Some((_, '\\')) => match chars.peek() {
                            Some(&(_, e @ ('"' | '\\' | '$' | '`'))) => {
                                word.push(e);
                                chars.next();
                            }
                            Some(&(_, '\n')) => {
                                chars.next();
                            }
                            _ => word.push('\\'),
                        },
                        Some((i, e @ ('$' | '`'))) => return Err(refuse(e, i)),
                        Some((_, c)) => word.push(c),
                        None => return Err(format!("unterminated double quote opened at byte {at}; close it with \"")),
                    }
                }
            }
            '\\' => match chars.next() {
                Some((_, '\n')) => {}
                Some((_, e)) => {
                    in_word = true;
                    word.push(e);
                }
                None => return Err("trailing backslash at the end; remove it or escape it as \\\\".into()),
            },
            '|' | '&' | ';' | '<' | '>' | '(' | ')' | '$' | '`' => return Err(refuse(c, at)),
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
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
    Child {
        child: Child,
        /// Dropped after the child is reaped, which ends the thread that spawned it (see
        /// [`spawn_device`]).
        _keeper: mpsc::Sender<()>,
    },
    Tcp(TcpStream),
}

/// A live session with a device; dropping it ends the session (kills the child's process
/// group and reaps the child, or shuts the socket down).
struct Connection {
    endpoint: Endpoint,
    to_device: mpsc::Sender<Vec<u8>>,
    from_device: Receiver<io::Result<Vec<u8>>>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        match &mut self.endpoint {
            Endpoint::Child { child, .. } => {
                kill_process_group(child);
                let _ = child.kill();
                let _ = child.wait();
            }
            Endpoint::Tcp(s) => {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

/// Kills the process group of `child` (which [`spawn_device`] made its leader), so that
/// processes the device started end with it.
#[cfg(unix)]
fn kill_process_group(child: &Child) {
    let Ok(pgid) = libc::pid_t::try_from(child.id()) else { return };
    // SAFETY: `kill` takes two integers and touches no memory of ours. The group id is the pid
    // of `child`, which is not reaped yet (the caller waits for it afterwards), so the id
    // cannot have been reused by an unrelated process group.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

#[cfg(not(unix))]
fn kill_process_group(_child: &Child) {}

/// Starts the device command with piped stdin/stdout, in a process group of its own (Unix)
/// and with a parent-death signal (Linux).
///
/// Linux sends the parent-death signal when the *thread* that forked the child ends, not the
/// process. The child is therefore spawned by a keeper thread that lives until the returned
/// sender is dropped, i.e. until the connection has killed and reaped the child; if the whole
/// client process dies first, the keeper dies with it and the kernel kills the device.
fn spawn_device(program: &str, args: &[String]) -> io::Result<(Child, mpsc::Sender<()>)> {
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
    isolate(&mut cmd);
    let (tx_child, rx_child) = mpsc::channel();
    let (keeper, until_closed) = mpsc::channel::<()>();
    std::thread::Builder::new().name("phyff-device-keeper".into()).spawn(move || {
        let _ = tx_child.send(cmd.spawn());
        // Returns when the connection drops `keeper` (or sends, which it never does).
        let _ = until_closed.recv();
    })?;
    let child = rx_child.recv().map_err(|_| io::Error::other("the thread starting the device ended"))??;
    Ok((child, keeper))
}

/// Puts the child in its own process group (so that the whole group can be killed) and, on
/// Linux, asks the kernel to kill it when its parent dies.
#[cfg(unix)]
fn isolate(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
    #[cfg(target_os = "linux")]
    {
        let parent = std::process::id();
        let parent_death_signal = move || -> io::Result<()> {
            // SAFETY: `prctl(PR_SET_PDEATHSIG, sig)` takes integers only and changes only the
            // calling (child) process.
            if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) } != 0 {
                return Err(io::Error::last_os_error());
            }
            // The client may have died between the fork and the prctl: then no signal will
            // come, so refuse to start. SAFETY: `getppid` has no arguments and cannot fail.
            let ppid = unsafe { libc::getppid() };
            if u32::try_from(ppid).ok() != Some(parent) {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        };
        // SAFETY: the closure runs in the forked child before `exec`. It allocates nothing,
        // takes no locks and calls only `prctl` and `getppid`, which are async-signal-safe;
        // its errors are built from raw OS codes without allocating.
        unsafe {
            cmd.pre_exec(parent_death_signal);
        }
    }
}

#[cfg(not(unix))]
fn isolate(_cmd: &mut Command) {}

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
    NonFinite {
        row: usize,
        col: usize,
        value: f64,
    },
    Other(String),
    /// The device answered but cannot be used (version, width, sizes): retrying cannot help.
    Refused(String),
}

/// A physical system answered by an external device over the protocol of this module.
///
/// Deterministic when the device is. `Send + Sync`: the connection sits behind a mutex that
/// `forward_batch` (taking `&mut self`) never has to lock.
pub struct DeviceSystem<F> {
    config: DeviceConfig,
    info: DeviceInfo,
    conn: Mutex<Option<Connection>>,
    /// Number of the last query sent (0 before the first).
    last_query: u64,
    /// Stale replies discarded so far.
    stale: u64,
    /// Largest frame payload a query or reply may take ([`MAX_FRAME_BYTES`]; lowered by tests).
    max_frame: usize,
    _f: PhantomData<fn() -> F>,
}

impl<F: Real> DeviceSystem<F> {
    /// Connects (starting the child for a command transport) and performs the handshake,
    /// retrying as configured.
    ///
    /// # Errors
    /// [`SystemError::Timeout`] or [`SystemError::Device`] when no attempt succeeds, or at
    /// once when the device speaks another protocol version, uses an unsupported value width
    /// or announces lengths of 0 or above [`MAX_SAMPLE_LEN`].
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
                    return Ok(DeviceSystem {
                        config,
                        info,
                        conn: Mutex::new(Some(conn)),
                        last_query: 0,
                        stale: 0,
                        max_frame: MAX_FRAME_BYTES as usize,
                        _f: PhantomData,
                    })
                }
                Err(f @ Failure::Refused(_)) => return Err(failure_error(&label, &config, f, "handshake")),
                Err(f) => last = f,
            }
        }
        Err(failure_error(&label, &config, last, "handshake"))
    }

    /// What the device announced in its hello.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// Stale replies (duplicates, or late answers to queries given up) discarded so far.
    pub fn stale_replies(&self) -> u64 {
        self.stale
    }

    /// Sends one query (at most one frame of rows) and waits for its reply.
    fn query_once(&mut self, input: &MatRef<'_, F>, output: &mut MatMut<'_, F>) -> Result<(), Failure> {
        let slot = self.conn.get_mut().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            let (conn, info) = open(&self.config)?;
            if (info.input_len, info.output_len, info.width)
                != (self.info.input_len, self.info.output_len, self.info.width)
            {
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
        self.last_query += 1;
        let id = self.last_query;
        let rows = input.rows();
        let w = self.info.width;
        let mut frame = Vec::with_capacity(HEADER + rows * self.info.input_len * usize::from(w));
        frame.push(QUERY);
        frame.extend_from_slice(&id.to_le_bytes());
        frame.extend_from_slice(&(rows as u32).to_le_bytes());
        encode_values(input.data(), w, &mut frame);
        conn.to_device.send(frame).map_err(|_| Failure::Other("the connection's writer has stopped".into()))?;
        let deadline = Instant::now() + Duration::from_millis(self.config.timeout_ms);
        loop {
            let reply = recv(conn, deadline)?;
            let (kind, got) = match (reply.first(), reply.get(1..9)) {
                (Some(&k @ (REPLY | ERROR)), Some(n)) => (k, u64::from_le_bytes(n.try_into().expect("8 bytes"))),
                (k, _) => {
                    return Err(Failure::Other(format!(
                        "malformed reply (kind {:?}, {} bytes); expected an 'R' or 'E' frame with a query number",
                        k.map(|&b| b as char),
                        reply.len()
                    )))
                }
            };
            let body = &reply[9..];
            if kind == ERROR && got == 0 {
                return Err(Failure::Other(format!(
                    "the device could not read query #{id}: {}",
                    String::from_utf8_lossy(body)
                )));
            }
            if got != 0 && got < id {
                self.stale += 1;
                if self.stale.is_power_of_two() {
                    eprintln!(
                        "phyff: warning: device {} ({}) sent a stale {} for query #{got} while query #{id} waited; \
                         discarded ({} stale so far). A device that repeats replies needs its driver checked.",
                        self.info.name,
                        self.config.transport.describe(),
                        if kind == REPLY { "reply" } else { "error" },
                        self.stale
                    );
                }
                continue;
            }
            if got != id {
                return Err(Failure::Other(format!(
                    "the device answered query #{got}, but the query sent is #{id}: its replies do not match its \
                     queries (a device must echo the number of the query it answers)"
                )));
            }
            if kind == ERROR {
                return Err(Failure::Other(format!("the device reported: {}", String::from_utf8_lossy(body))));
            }
            let got_rows = body.get(..4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize);
            let values = body.get(4..).unwrap_or_default();
            let expected = rows * self.info.output_len * usize::from(w);
            if got_rows != Some(rows) || values.len() != expected {
                return Err(Failure::Other(format!(
                    "reply has {} rows and {} bytes, expected {rows} rows x {} values x {w} bytes = {expected}",
                    got_rows.map_or_else(|| "no".into(), |r| r.to_string()),
                    values.len(),
                    self.info.output_len
                )));
            }
            decode_values(values, w, output.data_mut());
            if let Some((row, col, value)) = output.as_ref().find_non_finite() {
                return Err(Failure::NonFinite { row, col, value });
            }
            return Ok(());
        }
    }
}

/// Rows per query such that the request (`input_len` values a row) and the reply
/// (`output_len`) each fit in a frame payload of `max_frame` bytes; 0 when one row does not.
fn rows_per_query(input_len: usize, output_len: usize, width: usize, max_frame: usize) -> usize {
    let per_row = input_len.max(output_len).saturating_mul(width).max(1);
    (max_frame.saturating_sub(HEADER) / per_row).min(u32::MAX as usize)
}

impl<F> Drop for DeviceSystem<F> {
    fn drop(&mut self) {
        // Dropping the connection ends the session (kills the child's group, shuts the socket).
        drop(self.conn.get_mut().unwrap_or_else(|p| p.into_inner()).take());
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
    fn forward_batch(&mut self, input: MatRef<'_, F>, output: MatMut<'_, F>) -> Result<(), SystemError> {
        let name = PhysicalSystem::<F>::name(self);
        check_batch(&name, self.info.input_len, self.info.output_len, &input, &output)?;
        if input.rows() == 0 {
            return Ok(());
        }
        let w = usize::from(self.info.width);
        let per_query = rows_per_query(self.info.input_len, self.info.output_len, w, self.max_frame);
        if per_query == 0 {
            return Err(SystemError::Device {
                system: name,
                message: format!(
                    "one sample ({} -> {} values of {w} bytes) does not fit in a frame of {} bytes",
                    self.info.input_len, self.info.output_len, self.max_frame
                ),
            });
        }
        let mut first_row = 0;
        for mut out in output.into_row_chunks(per_query) {
            let rows = out.rows();
            let x = input.slice_rows(first_row, first_row + rows);
            let mut last = Failure::Other("no attempt made".into());
            let mut answered = false;
            for _ in 0..self.config.attempts {
                match self.query_once(&x, &mut out) {
                    Ok(()) => {
                        answered = true;
                        break;
                    }
                    Err(f) => {
                        // Dropping the connection ends it; the next attempt reconnects.
                        drop(self.conn.get_mut().unwrap_or_else(|p| p.into_inner()).take());
                        let refused = matches!(f, Failure::Refused(_));
                        last = f;
                        if refused {
                            break;
                        }
                    }
                }
            }
            if !answered {
                if let Failure::NonFinite { row, .. } = &mut last {
                    *row += first_row;
                }
                return Err(failure_error(&name, &self.config, last, "query"));
            }
            first_row += rows;
        }
        Ok(())
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
        Failure::Refused(m) => SystemError::Device { system: system.into(), message: format!("{what} refused: {m}") },
    }
}

/// The next frame from the device, waiting until `deadline` at most.
fn recv(conn: &Connection, deadline: Instant) -> Result<Vec<u8>, Failure> {
    let left = deadline.saturating_duration_since(Instant::now());
    match conn.from_device.recv_timeout(left) {
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
    let deadline = Instant::now() + timeout;
    let (endpoint, reader, writer): (Endpoint, Box<dyn Read + Send>, Box<dyn Write + Send>) = match &config.transport {
        Transport::Command { program, args } => {
            let (mut child, keeper) =
                spawn_device(program, args).map_err(|e| Failure::Other(format!("cannot start {program}: {e}")))?;
            let stdin = child.stdin.take().expect("piped stdin");
            let stdout = child.stdout.take().expect("piped stdout");
            (Endpoint::Child { child, _keeper: keeper }, Box::new(stdout), Box::new(stdin))
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
    // On an error `conn` is dropped, which ends the session.
    let conn = Connection { endpoint, to_device, from_device };
    let mut hello = vec![HELLO];
    hello.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    conn.to_device.send(hello).map_err(|_| Failure::Other("the connection's writer has stopped".into()))?;
    let frame = recv(&conn, deadline)?;
    let info = parse_hello(&frame)?;
    Ok((conn, info))
}

/// Reads a device's hello and checks that this client can use the device, before anything
/// is sized by it.
fn parse_hello(frame: &[u8]) -> Result<DeviceInfo, Failure> {
    if frame.len() < 22 || frame[0] != HELLO {
        return Err(Failure::Other(format!(
            "malformed hello ({} bytes); expected an 'H' frame of at least 22 bytes",
            frame.len()
        )));
    }
    let version = u32::from_le_bytes(frame[1..5].try_into().expect("4 bytes"));
    if version != PROTOCOL_VERSION {
        let fix = if version < PROTOCOL_VERSION {
            "update the device: rebuild phyff-device from this phyff, or make the instrument's driver echo the query \
             number of each query in its reply (docs/device-protocol.md)"
        } else {
            "update phyff, or run the device in a mode that speaks this version"
        };
        return Err(Failure::Refused(format!(
            "the device speaks protocol version {version}; this phyff speaks version {PROTOCOL_VERSION} only, in \
             which every query and reply carries a query number: {fix}"
        )));
    }
    let width = frame[5];
    if !(width == 4 || width == 8) {
        return Err(Failure::Refused(format!(
            "the device announces {width}-byte values; this phyff reads 4-byte (f32) or 8-byte (f64) values: fix the \
             device's hello"
        )));
    }
    let mut lens = [0usize; 2];
    for (k, (field, bytes)) in [("input_len", &frame[6..14]), ("output_len", &frame[14..22])].into_iter().enumerate() {
        let n = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
        if n == 0 || n > MAX_SAMPLE_LEN {
            return Err(Failure::Refused(format!(
                "the device announces {field} {n} values per sample; this phyff accepts 1 to {MAX_SAMPLE_LEN} (2^24): \
                 check the device's hello (a corrupt frame, or not a phyff device?)"
            )));
        }
        lens[k] = usize::try_from(n).expect("at most 2^24");
    }
    let name = String::from_utf8_lossy(&frame[22..]).into_owned();
    Ok(DeviceInfo { version, width, input_len: lens[0], output_len: lens[1], name })
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
/// Values travel at the width of `F`. Every hello is answered with this module's hello
/// (version [`PROTOCOL_VERSION`]), whatever version the client announced: the client decides.
/// Bad queries (wrong length, a reply that would not fit in a frame, unknown kind) and
/// failures of the system are answered with an error frame carrying the query's number (0 when
/// the frame is too short to hold one); the session goes on.
///
/// # Errors
/// I/O errors of the streams, and a stream that ends in the middle of a frame.
pub fn serve<F: Real, S: PhysicalSystem<F> + ?Sized>(
    system: &mut S,
    reader: impl Read,
    writer: impl Write,
) -> io::Result<ServeStats> {
    let width = std::mem::size_of::<F>();
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
                h.push(width as u8);
                h.extend_from_slice(&(n_in as u64).to_le_bytes());
                h.extend_from_slice(&(n_out as u64).to_le_bytes());
                h.extend_from_slice(system.name().as_bytes());
                h
            }
            Some(&QUERY) if frame.len() >= HEADER => {
                let id = u64::from_le_bytes(frame[1..9].try_into().expect("8 bytes"));
                let rows = u32::from_le_bytes(frame[9..13].try_into().expect("4 bytes")) as usize;
                let body = &frame[HEADER..];
                let reply_bytes =
                    rows.checked_mul(n_out).and_then(|v| v.checked_mul(width)).and_then(|v| v.checked_add(HEADER));
                if rows.checked_mul(n_in).and_then(|v| v.checked_mul(width)) != Some(body.len()) {
                    stats.errors += 1;
                    error_frame(
                        id,
                        &format!(
                            "query #{id} has {} bytes for {rows} rows, expected {rows} x {n_in} values x {width} bytes",
                            body.len()
                        ),
                    )
                } else if reply_bytes.is_none_or(|b| b > MAX_FRAME_BYTES as usize) {
                    stats.errors += 1;
                    error_frame(
                        id,
                        &format!(
                            "query #{id}: the reply to {rows} rows of {n_out} values x {width} bytes would not fit in a \
                             frame of {MAX_FRAME_BYTES} bytes; send at most {} rows per query",
                            rows_per_query(n_in, n_out, width, MAX_FRAME_BYTES as usize)
                        ),
                    )
                } else {
                    input.resize(rows * n_in, F::zero());
                    output.resize(rows * n_out, F::zero());
                    decode_values(body, width as u8, &mut input);
                    let x = MatRef::new(rows, n_in, &input).expect("sized above");
                    let y = MatMut::new(rows, n_out, &mut output).expect("sized above");
                    match system.forward_batch(x, y) {
                        Ok(()) => {
                            stats.queries += 1;
                            let mut f = Vec::with_capacity(HEADER + output.len() * width);
                            f.push(REPLY);
                            f.extend_from_slice(&id.to_le_bytes());
                            f.extend_from_slice(&(rows as u32).to_le_bytes());
                            encode_values(&output, width as u8, &mut f);
                            f
                        }
                        Err(e) => {
                            stats.errors += 1;
                            error_frame(id, &e.to_string())
                        }
                    }
                }
            }
            Some(&QUERY) => {
                stats.errors += 1;
                error_frame(
                    0,
                    &format!(
                        "query frame of {} bytes is shorter than its header (kind, query number, rows: {HEADER} bytes); \
                         does the client speak protocol version {PROTOCOL_VERSION}?",
                        frame.len()
                    ),
                )
            }
            other => {
                stats.errors += 1;
                error_frame(0, &format!("unknown message kind {:?}; expected 'H' or 'Q'", other.map(|&b| b as char)))
            }
        };
        write_frame(&mut w, &reply)?;
        w.flush()?;
    }
}

/// An `E` frame answering query `id` (0: a request whose number could not be read).
fn error_frame(id: u64, message: &str) -> Vec<u8> {
    let mut f = vec![ERROR];
    f.extend_from_slice(&id.to_le_bytes());
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
