//! `phyff export`: a model's tensors as safetensors or npz (see `ff_train::export`).

use anyhow::Result;
use clap::Args;
use ff_train::export::{default_out, export, ExportFormat};
use ff_train::run::SavedModel;
use std::path::PathBuf;

/// Flags of `phyff export`.
#[derive(Args)]
pub struct ExportArgs {
    /// The model file written by `phyff train --out DIR` (DIR/model.json), or the run's
    /// DIR/checkpoint.json (the model after its last completed epoch).
    #[arg(long)]
    pub model: PathBuf,
    /// File format: safetensors (PyTorch, numpy through the safetensors package) or npz
    /// (numpy's np.load).
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// Output file (written atomically); default: beside the model, with the format's
    /// extension (DIR/model.safetensors, DIR/model.npz).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs `phyff export`: writes the file and lists its tensors.
pub fn export_cmd(args: &ExportArgs) -> Result<()> {
    let saved = SavedModel::read(&args.model)?;
    let out = args.out.clone().unwrap_or_else(|| default_out(&args.model, args.format));
    let e = export(&saved, args.format, &out)?;
    let from = match e.checkpoint_epochs {
        Some(n) => format!(" (a checkpoint: the model after epoch {n})"),
        None => String::new(),
    };
    println!(
        "wrote {} ({} bytes, {}, {}) from {}{from}",
        e.path.display(),
        e.bytes,
        args.format.extension(),
        format!("{:?}", e.precision).to_lowercase(),
        args.model.display()
    );
    let width = e.tensors.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    for (name, shape) in &e.tensors {
        println!("  {name:<width$}  {shape:?}");
    }
    println!("tensor layout and metadata: docs/export.md");
    Ok(())
}
