//! `phyff-device`: serves a simulator over the device protocol of `ff_physics::device`, so
//! that `phyff train --system device` (or any other client) drives it as external hardware.
//!
//! ```text
//! phyff-device --system optics --stdio --block 0 --input-shape 28x8
//! phyff-device --system microwave --tcp 127.0.0.1:7000
//! ```
//! Logs go to stderr; with `--stdio`, stdout carries only protocol frames. It speaks the
//! protocol version of the `ff_physics` it is built with (`PROTOCOL_VERSION`, 2: every reply
//! echoes its query's number), so a client of another version refuses it with a message.

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use ff_core::{MatMut, MatRef, PhysicalSystem, Real, SystemError};
use ff_physics::device::{serve, serve_listener, PROTOCOL_VERSION};
use ff_physics::fft::FftReal;
use ff_physics::{AcousticCavity, AcousticConfig, MicrowaveCavity, MicrowaveConfig, OpticsConfig, OpticsSystem};
use ff_train::config::Precision;
use ff_train::systems::optics_for_block;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Sim {
    /// Multimode optics with the `phyff train` defaults (block geometry from --block/--input-shape).
    Optics,
    /// The microwave cavity with its default configuration.
    Microwave,
    /// The acoustic cavity with its default configuration.
    Acoustic,
}

#[derive(Parser)]
#[command(name = "phyff-device", version, about = "Serve a simulated physical system over the phyff device protocol")]
struct Args {
    /// The simulator to serve.
    #[arg(long, value_enum, default_value = "optics")]
    system: Sim,
    /// Speak the protocol on stdin/stdout (one session; exits when stdin closes).
    #[arg(long, conflicts_with = "tcp", required_unless_present = "tcp")]
    stdio: bool,
    /// Listen on this address (loopback recommended) and serve clients one at a time.
    #[arg(long, value_name = "HOST:PORT")]
    tcp: Option<SocketAddr>,
    /// With --tcp: exit after this many sessions (default: serve forever).
    #[arg(long)]
    sessions: Option<u64>,
    /// Value precision on the wire and in the simulator.
    #[arg(long, value_enum, default_value = "f32")]
    precision: Precision,
    /// Optics: the block this device plays (0 tiles the input, later blocks upsample it), as in `phyff train`.
    #[arg(long, default_value_t = 0)]
    block: usize,
    /// Optics: the input shape ROWSxCOLS shown on the SLM (default 28x8, the labelled digits).
    #[arg(long, value_name = "ROWSxCOLS", value_parser = parse_shape)]
    input_shape: Option<(usize, usize)>,
    /// Optics: side of the optical field in pixels.
    #[arg(long)]
    field: Option<usize>,
    /// Fault injection for tests and demos: exit with status 3 when query N+1 arrives.
    #[arg(long, value_name = "N")]
    fail_after: Option<u64>,
    /// Fault injection for tests and demos (with --stdio): send the reply to query N (from 1)
    /// twice, as a flaky instrument driver might.
    #[arg(long, value_name = "N", requires = "stdio")]
    duplicate_reply: Option<u64>,
}

fn parse_shape(s: &str) -> Result<(usize, usize), String> {
    let (r, c) = s.split_once('x').ok_or_else(|| format!("expected ROWSxCOLS (e.g. 28x8), got {s:?}"))?;
    let p = |v: &str| v.trim().parse::<usize>().map_err(|e| format!("invalid dimension {v:?} in {s:?}: {e}"));
    Ok((p(r)?, p(c)?))
}

/// Exits the process when query `limit + 1` arrives (simulates a crashing instrument).
struct FailAfter<F> {
    inner: Box<dyn PhysicalSystem<F>>,
    limit: Option<u64>,
    seen: u64,
}

impl<F: Real> PhysicalSystem<F> for FailAfter<F> {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn input_len(&self) -> usize {
        self.inner.input_len()
    }
    fn output_len(&self) -> usize {
        self.inner.output_len()
    }
    fn forward_batch(&mut self, input: MatRef<'_, F>, output: MatMut<'_, F>) -> Result<(), SystemError> {
        if self.limit.is_some_and(|l| self.seen >= l) {
            eprintln!("phyff-device: --fail-after {}: exiting (injected fault)", self.seen);
            std::process::exit(3);
        }
        self.seen += 1;
        self.inner.forward_batch(input, output)
    }
}

/// Sends the `n`-th reply frame twice: buffers what `serve` writes and, at the flush that ends
/// the frame (one flush per frame, the hello's first), writes it once more when it is reply `n`.
struct DuplicateReply<W: Write> {
    inner: W,
    frame: Vec<u8>,
    flushes: u64,
    nth: Option<u64>,
}

impl<W: Write> Write for DuplicateReply<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.frame.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.write_all(&self.frame)?;
        // Flush 0 ends the hello; flush n ends the reply to query n.
        if self.nth == Some(self.flushes) && !self.frame.is_empty() {
            eprintln!("phyff-device: --duplicate-reply {}: sending that reply twice (injected fault)", self.flushes);
            self.inner.write_all(&self.frame)?;
        }
        self.frame.clear();
        self.flushes += 1;
        self.inner.flush()
    }
}

fn build<F: FftReal>(a: &Args) -> Result<Box<dyn PhysicalSystem<F>>> {
    Ok(match a.system {
        Sim::Optics => {
            let mut base = OpticsConfig::default();
            if let Some(f) = a.field {
                base.field_size = f;
            }
            let o = optics_for_block(&base, a.block, a.input_shape.unwrap_or(base.input_shape));
            Box::new(OpticsSystem::<F>::new(o)?)
        }
        Sim::Microwave => Box::new(MicrowaveCavity::new(MicrowaveConfig::default())?),
        Sim::Acoustic => Box::new(AcousticCavity::new(AcousticConfig::default())?),
    })
}

fn run<F: FftReal>(a: &Args) -> Result<()> {
    let mut sys = FailAfter { inner: build::<F>(a)?, limit: a.fail_after, seen: 0 };
    let name = sys.name();
    eprintln!(
        "phyff-device: serving {name} ({} -> {} values, {}) over protocol version {PROTOCOL_VERSION}",
        sys.input_len(),
        sys.output_len(),
        F::NAME
    );
    let stats = match a.tcp {
        Some(addr) => {
            let l = TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
            eprintln!("phyff-device: listening on {}", l.local_addr()?);
            serve_listener::<F, _>(&mut sys, &l, a.sessions)?
        }
        None => {
            let out = DuplicateReply {
                inner: std::io::stdout().lock(),
                frame: Vec::new(),
                flushes: 0,
                nth: a.duplicate_reply,
            };
            serve::<F, _>(&mut sys, std::io::stdin().lock(), out)?
        }
    };
    eprintln!("phyff-device: {} queries answered, {} errors", stats.queries, stats.errors);
    Ok(())
}

fn main() {
    let a = Args::parse();
    let r = match a.precision {
        Precision::F32 => run::<f32>(&a),
        Precision::F64 => run::<f64>(&a),
    };
    if let Err(e) = r {
        eprintln!("phyff-device: error: {e:#}");
        std::process::exit(2);
    }
}
