//! `system = "device"`: an external device process (hardware in the loop) speaking the
//! protocol of `ff_physics::device`, reached as configured in `[device]`: one child process per
//! block started from `device.command`, or running devices at `device.tcp`.

use super::{SystemKindBuilder, SystemKindSpec};
use crate::config::{ExperimentConfig, SystemKind};
use crate::memory::Size;
use anyhow::{bail, Context, Result};
use ff_core::PhysicalSystem;
use ff_physics::device::{DeviceConfig, DeviceSystem, Transport};
use ff_physics::fft::FftReal;

/// An external device.
pub(crate) struct Device;

impl SystemKindSpec for Device {
    fn kind(&self) -> SystemKind {
        SystemKind::Device
    }

    fn name(&self) -> &'static str {
        "device"
    }

    fn default_skip(&self) -> bool {
        false
    }

    fn validate(&self, cfg: &ExperimentConfig) -> Result<()> {
        let d = &cfg.device;
        if d.command.is_some() == d.tcp.is_some() {
            bail!("invalid device: system \"device\" needs exactly one of --device-cmd \"PROGRAM ARGS\" and --device-tcp HOST:PORT (device.command / device.tcp)");
        }
        if d.timeout_ms == 0 || d.attempts == 0 {
            bail!("invalid device: timeout_ms ({}) and attempts ({}) must be at least 1", d.timeout_ms, d.attempts);
        }
        Ok(())
    }

    /// Not known before the device answers its hello.
    fn output_len(&self, _cfg: &ExperimentConfig, _input: Size) -> Size {
        Size(Some(0))
    }

    /// An instrument: 10 ms a query at the assumed rate of [`crate::sweep::time_estimate`]
    /// (1 GFLOP/s).
    fn query_flops(&self, _cfg: &ExperimentConfig) -> f64 {
        5e6
    }
}

impl<F: FftReal> SystemKindBuilder<F> for Device {
    /// Connects block `block`'s device and checks that it takes the block's input width.
    fn build(&self, cfg: &ExperimentConfig, block: usize, shape: (usize, usize)) -> Result<Box<dyn PhysicalSystem<F>>> {
        let k = block;
        let d = &cfg.device;
        let transport = match (&d.command, &d.tcp) {
            (Some(cmd), _) => {
                let line = cmd
                    .replace("{block}", &k.to_string())
                    .replace("{rows}", &shape.0.to_string())
                    .replace("{cols}", &shape.1.to_string());
                Transport::command_line(&line)?
            }
            (None, Some(list)) => {
                let addrs: Vec<&str> = list.split(',').map(str::trim).collect();
                let a = if addrs.len() == 1 { addrs[0] } else { addrs.get(k).copied().unwrap_or("") };
                let addr = a.parse().map_err(|e| {
                    anyhow::anyhow!(
                        "block {}: invalid device address {a:?} in {list:?} ({e}); give HOST:PORT, one for all blocks or one per block",
                        k + 1
                    )
                })?;
                Transport::Tcp(addr)
            }
            (None, None) => bail!("system \"device\" needs --device-cmd or --device-tcp"),
        };
        let dev =
            DeviceSystem::<F>::connect(DeviceConfig { transport, timeout_ms: d.timeout_ms, attempts: d.attempts })
                .with_context(|| format!("block {}", k + 1))?;
        let want = shape.0 * shape.1;
        anyhow::ensure!(
            dev.input_len() == want,
            "block {}: the device {} takes {} inputs but the block feeds it {want} ({} x {}); start the device for this block's input shape",
            k + 1,
            dev.name(),
            dev.input_len(),
            shape.0,
            shape.1
        );
        Ok(Box::new(dev))
    }
}
