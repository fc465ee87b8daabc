//! `phyff config`: the configuration as TOML with a comment on every key.
//!
//! [`KEY_DOCS`] documents every key and table of [`ExperimentConfig`] by its dotted path
//! (`"lr"`, `"optics.field_size"`, `"fiber.grid.points"`, `"emulator.twin.hidden"`): what it
//! means, its unit and the values it accepts. [`annotate`] walks the TOML text of a
//! configuration and writes the same keys and values back with a `#` comment above every key
//! and every `[section]` header. Optional keys that are unset (absent from the TOML, `None` in
//! the configuration) are written as commented-out example lines (`# skip = true`), so that
//! they can be found and set by removing the `# `.
//!
//! Keys are written in the order of [`KEY_DOCS`] (the order of the fields in the structs), the
//! keys of a table before its sub-tables; a key missing from the table is still written (after
//! the documented ones, without a comment) so that the text always parses back to the same
//! configuration. The tests fail on such a key, and on a documented key that no longer exists.

use crate::config::ExperimentConfig;

/// Comment lines are wrapped to at most this many columns (a single longer word stays whole).
pub const WRAP_COLUMNS: usize = 100;

/// The documentation of one key or table of the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyDoc {
    /// Dotted path from the top of the file: `"seed"`, `"optics"`, `"optics.pooling.kernel"`.
    pub path: &'static str,
    /// What the key means, its unit and the values it accepts: one paragraph, wrapped when
    /// written (a `\n` starts a new comment line).
    pub doc: &'static str,
    /// For an optional key that is unset in the default configuration (absent from its TOML):
    /// a TOML value, written as a commented-out example line. `None` for every other key.
    pub example: Option<&'static str>,
}

/// A key or table present in the default configuration.
const fn key(path: &'static str, doc: &'static str) -> KeyDoc {
    KeyDoc { path, doc, example: None }
}

/// An optional key, unset (absent) in the default configuration, shown as `# key = example`.
const fn opt(path: &'static str, example: &'static str, doc: &'static str) -> KeyDoc {
    KeyDoc { path, doc, example: Some(example) }
}

/// The comment at the top of the file.
pub const FILE_HEADER: &str = "phyff configuration: the defaults. Pass a file like this one to \
`phyff train --config FILE` (or to phyff compare or phyff drift): command-line flags override its \
values and keys left out take their defaults. Lines `# key = value` are optional settings, unset by \
default: remove the `# ` to set one. Physical systems use normalised or SI units as noted; \
each [section] is used only by its system.";

/// Every key and table of [`ExperimentConfig`], in the order of the struct fields.
pub static KEY_DOCS: &[KeyDoc] = &[
    // ---- the run ----
    key(
        "seed",
        "Seed of every random choice of the run: data split, initial weights, label prototypes, \
         negatives (whole number >= 0). The physical systems have their own `seed` in their sections.",
    ),
    key("precision", "Numerical precision of the whole run: \"f32\" or \"f64\"."),
    key(
        "data",
        "Dataset: \"digits\" (built in, 8 x 8), \"vowels\" (built in, 7 Hillenbrand vowels) or \
         \"vowels:FILE\", \"mnist\" or \"mnist:DIR\", \"fashion\" or \"fashion:DIR\", \"csv:FILE\" \
         (RFC 4180, label in the last column, or \"csv:FILE#label=NAME|INDEX\"; cells separated by \
         another character with \"#delim=;\" or \"#delim=tab\").",
    ),
    key(
        "system",
        "Physical system of every block: \"optics\", \"microwave\", \"acoustic\", \"freespace\", \
         \"fiber\", \"device\" (an external process, see [device]), \"emulator\" (an MLP fitted to \
         measured pairs, see [emulator]) or \"digital\" (no physics: each block is its affine map).",
    ),
    key("blocks", "Number of blocks (physical layers), >= 1."),
    key(
        "hidden",
        "Output size of each block's trainable affine map (>= 1). With system = \"optics\" it must \
         be a perfect square (the next block shows it as a square image), e.g. 256 = 16 x 16.",
    ),
    opt(
        "skip",
        "true",
        "Concatenate each block's input after its physical output (true or false). Unset: the \
         system's default, false for optics, freespace, device and digital, true for microwave, \
         acoustic, fiber and emulator (as in the paper).",
    ),
    key("epochs", "Training epochs (>= 1)."),
    key("batch_size", "Mini-batch size, in samples; 0 = the full training set in one batch."),
    key("lr", "Adam learning rate of the blocks (> 0)."),
    key(
        "lr_schedule",
        "How the learning rate changes over the epochs: \"constant\", or \"linear-decay\" (Hinton's \
         code: constant for the first half, then linearly down to lr / epochs in the last epoch). \
         phyff compare and phyff drift need \"constant\".",
    ),
    key(
        "weight_decay",
        "Decoupled weight decay (AdamW), >= 0 with lr x weight_decay < 1: every step multiplies \
         each parameter by 1 - lr x weight_decay. 0 = plain Adam (the paper); Hinton's code \
         amounts to 0.01 at lr = 1e-3. phyff compare and phyff drift need 0.",
    ),
    key("n_inner", "Optimiser steps per block per mini-batch, physical outputs held fixed (>= 1)."),
    key("alpha", "SymBa sharpness alpha of the PhyLL objective (> 0; the paper: 4, 5 for optics)."),
    key(
        "theta",
        "Goodness threshold theta of the Hinton objective (finite; goodness units). With \
         squares = \"sum\", a value near the layer width plays the part of 1 with the mean.",
    ),
    opt(
        "squares",
        "\"sum\"",
        "Goodness of the Hinton objective: \"mean\" or \"sum\" of the squared rectified outputs \
         (only with objective = \"hinton\"; unset: \"mean\"). Hinton's code uses \"sum\" with \
         theta = the layer width.",
    ),
    key(
        "objective",
        "Local objective: \"phyll\" (cosine goodness, SymBa loss, raw outputs passed on) or \
         \"hinton\" (sum-of-squares goodness with threshold theta, normalised outputs passed on).",
    ),
    key(
        "negatives",
        "How the wrong label of a negative sample is chosen (supervised mode): \"random\" (the \
         paper), \"hardest\" (the best-scoring wrong label) or \"sampled\" (drawn from the softmax \
         of the network's scores); the last two cost K x L extra queries per sample. \
         Unsupervised mode needs \"random\".",
    ),
    opt(
        "negative_temperature",
        "1.0",
        "Temperature of negatives = \"sampled\", in goodness units (> 0; only with \"sampled\"; \
         unset: 1). Large values tend to \"random\", small ones to \"hardest\".",
    ),
    key(
        "mode",
        "\"supervised\" (labels written into the inputs) or \"unsupervised\" (hybrid negatives \
         without labels, then a linear read-out fitted on the block activities).",
    ),
    key(
        "readout_epochs",
        "Epochs of the linear read-out fitted after unsupervised training (>= 1 in unsupervised \
         mode; Adam, mini-batches of 128).",
    ),
    key("blur_passes", "Blur passes of the hybrid-negative masks (unsupervised mode; Hinton's recipe: 6)."),
    key(
        "supervised_baseline",
        "In unsupervised mode, also train the supervised network (same seed, data and epochs) \
         and report it beside the unsupervised one (true or false).",
    ),
    key(
        "band_rows",
        "Rows of the label band written above and below an image (image data only; at least the \
         number of classes).",
    ),
    key("eval_every", "Measure test accuracy every this many epochs (>= 1)."),
    key("ablation", "Also train the physics-removed ablation for comparison (true or false)."),
    key(
        "train_eval",
        "Measure train accuracy after the last epoch (true or false; costs K x L queries per \
         training sample).",
    ),
    key(
        "standardize",
        "CSV data only: map each feature to (x - mean) / sd with the training split's mean and \
         standard deviation, dropping features constant over it (true or false; the statistics \
         are saved in the model). Other data keep their own preprocessing.",
    ),
    key(
        "keep_best",
        "Hold out validation_fraction of the training split (stratified, seeded) and keep the \
         network of the epoch with the best validation accuracy, for the PNN and its ablation \
         (true or false; supervised mode only; the test split never takes part).",
    ),
    key("validation_fraction", "Share of the training split held out for keep_best, in (0, 0.5]."),
    key(
        "checkpoint_every",
        "With --out: seconds between checkpoint.json writes (also after the last epoch, and with the \
         last completed epoch when training stops on an error); 0: after every epoch.",
    ),
    opt("train_limit", "1000", "Use only the first this many training samples (>= 1; unset: all of them)."),
    opt("test_limit", "500", "Use only the first this many test samples (>= 1; unset: all of them)."),
    // ---- optics ----
    key(
        "optics",
        "Multimode optical system, used when system = \"optics\": SLM -> input pupil -> seeded \
         transmission matrix -> output pupil -> camera -> pooling. The same medium serves every \
         block.",
    ),
    key("optics.field_size", "Side N of the square SLM and camera field, in pixels (>= 1)."),
    key(
        "optics.input_shape",
        "Shape [rows, cols] of the input image on the SLM. Set per block by phyff (block 1: the \
         labelled sample; later blocks: the previous output as a square image): the value here \
         is not used.",
    ),
    key(
        "optics.placement",
        "Layout of the image on the field: \"tile\" (repeated and cropped), \"center\" (once, \
         zero-padded) or a table [optics.placement.upsample] with factor = K (each pixel a K x K \
         block). Set per block by phyff (block 1: tile; later blocks: upsample to fill the field): the value here is \
         not used.",
    ),
    key(
        "optics.encoding",
        "How an SLM pixel value v becomes a field: \"amplitude\" (E = v) or \"phase\" \
         (E = exp(i pi v)).",
    ),
    key(
        "optics.input_pupil_radius_px",
        "Radius of the circular input pupil, in frequency pixels of the centred N x N spectrum \
         (>= 0); the modes inside drive the medium. Above N / sqrt(2) all N^2 modes pass.",
    ),
    key(
        "optics.output_pupil_radius_px",
        "Radius of the circular output pupil, in frequency pixels (>= 0). A unitary medium needs \
         both pupils to pass the same number of modes (the defaults pass 293 each).",
    ),
    key(
        "optics.medium",
        "Ensemble of the transmission matrix: \"unitary\" (Haar-random, lossless; as many output \
         as input modes) or \"gaussian\" (i.i.d. complex Gaussian entries of variance \
         1 / input modes; any mode counts).",
    ),
    key(
        "optics.detection",
        "What the camera reads from the field E: \"amplitude\" (|E|, the nonlinearity PhyLL feeds \
         forward) or \"intensity\" (|E|^2).",
    ),
    key(
        "optics.seed",
        "Seed of the transmission matrix (the medium is the same device for every block and does \
         not change with the top-level seed).",
    ),
    key(
        "optics.pooling",
        "Average pooling of the detected N x N image (PyTorch AvgPool2d; padded pixels count in \
         the divisor): output side floor((N + 2 padding - kernel) / stride) + 1, 16 x 16 = 256 \
         outputs by default. kernel = stride = 1, padding = 0 is no pooling.",
    ),
    key("optics.pooling.kernel", "Window side, in pixels (>= 1)."),
    key("optics.pooling.stride", "Step between windows, in pixels (>= 1)."),
    key("optics.pooling.padding", "Zeros added on every side, in pixels (at most kernel / 2)."),
    // ---- microwave ----
    key(
        "microwave",
        "Reverberating 2-D microwave cavity with a programmable metasurface, used when \
         system = \"microwave\" (coupled-dipole model of PhysFad). Normalised units: wave speed 1, \
         lengths in wavelengths at frequency 1. Each block's input is resampled onto n_inputs \
         values; the outputs are |S21| at n_freqs frequencies. Every block queries the same cavity.",
    ),
    key(
        "microwave.n_inputs",
        "Input values per sample (>= 1); each is quantised to 2 bits that set two metasurface \
         elements.",
    ),
    key("microwave.n_freqs", "Frequency points = output values per sample (>= 1)."),
    key("microwave.freq_min", "Lowest frequency point (normalised frequency, > 0)."),
    key(
        "microwave.freq_max",
        "Highest frequency point (normalised, > freq_min when n_freqs > 1); points are evenly \
         spaced, both ends included.",
    ),
    key("microwave.cavity_width", "Cavity extent along x, in wavelengths (> 0)."),
    key("microwave.cavity_height", "Cavity extent along y, in wavelengths (> 0)."),
    key("microwave.wall_spacing", "Largest distance between neighbouring wall dipoles, in wavelengths (> 0)."),
    key(
        "microwave.n_scatterers",
        "Interior scatterers at seeded positions, with the walls' dipole parameters; they make \
         the cavity irregular (>= 0).",
    ),
    key(
        "microwave.meta_chi",
        "Coupling strength chi of a metasurface element (> 0). At 50 both states scatter \
         strongly and |S21| varies by ~2 % over configurations; at 5, by ~27 %.",
    ),
    key("microwave.meta_gamma", "Absorption loss gamma of a metasurface element (>= 0; 0 = lossless)."),
    key(
        "microwave.meta_f_on",
        "Resonance frequency of an element whose bit is 1, \"on\" (normalised, > 0; inside the \
         band it scatters resonantly).",
    ),
    key(
        "microwave.meta_f_off",
        "Resonance frequency of an element whose bit is 0, \"off\" (normalised, > 0, different \
         from meta_f_on; far from the band).",
    ),
    key(
        "microwave.meta_spacing",
        "Distance between neighbouring metasurface elements, in wavelengths (> 0; the row of \
         2 n_inputs elements must fit in the cavity).",
    ),
    key("microwave.meta_offset", "Height of the metasurface row above the bottom wall, in wavelengths (> 0)."),
    key("microwave.seed", "Seed of the geometry (antenna and scatterer positions); independent of the top-level seed."),
    key("microwave.wall", "Dipole parameters of the wall and interior scatterers."),
    key("microwave.wall.f_res", "Resonance frequency f_res (normalised, > 0)."),
    key("microwave.wall.chi", "Coupling strength chi (> 0); larger is a stronger scatterer."),
    key("microwave.wall.gamma", "Absorption loss gamma (>= 0); 0 is lossless (radiation damping only)."),
    key("microwave.antenna", "Dipole parameters of the two antennas (identical, so the channel is reciprocal)."),
    key("microwave.antenna.f_res", "Resonance frequency f_res (normalised, > 0)."),
    key("microwave.antenna.chi", "Coupling strength chi (> 0)."),
    key("microwave.antenna.gamma", "Absorption loss gamma (>= 0); 0 is lossless (radiation damping only)."),
    // ---- acoustic ----
    key(
        "acoustic",
        "Chaotic 2-D acoustic cavity with nonlinear membrane scatterers, driven by a multi-tone \
         loudspeaker and read by a microphone, used when system = \"acoustic\". Normalised units: \
         sound speed 1, lengths in wavelengths at frequency 1. Each block's input is resampled \
         onto n_tones values (the tone amplitudes); the outputs are the n_tones spectral \
         amplitudes at the microphone. Every block queries the same cavity.",
    ),
    key("acoustic.n_tones", "Number of tones = input values = output values per sample (>= 1)."),
    key("acoustic.freq_min", "Lowest tone frequency (normalised, > 0)."),
    key(
        "acoustic.freq_max",
        "Highest tone frequency (normalised, > freq_min when n_tones > 1; with tone_spacing = \
         \"sidon\", < 3 freq_min). The lowest and highest tones lie at freq_min and freq_max.",
    ),
    key(
        "acoustic.tone_spacing",
        "How the tones are placed between freq_min and freq_max: \"sidon\" (default: on a Sidon \
         set, so no third-order mixing product w_a + w_b - w_c lands on a tone and the model is \
         exact on the comb) or \"uniform\" (evenly spaced: mixing products land on tones and are \
         neglected, an approximation).",
    ),
    key("acoustic.cavity_width", "Cavity extent along x, in wavelengths (> 1.1, room for the speaker and microphone)."),
    key(
        "acoustic.cavity_height",
        "Cavity extent along y, in wavelengths (> 1.1, room for the speaker and microphone).",
    ),
    key("acoustic.wall_spacing", "Largest distance between neighbouring wall scatterers, in wavelengths (> 0)."),
    key("acoustic.n_rigid", "Interior rigid scatterers at seeded positions; they make the cavity chaotic (>= 0)."),
    key("acoustic.rigid_reactance", "Real part of a rigid scatterer's inverse polarisability (dimensionless, finite)."),
    key(
        "acoustic.rigid_absorption",
        "Extra loss of a rigid scatterer beyond radiation damping, -Im(1/alpha) - 1/4 \
         (dimensionless, >= 0; 0 = lossless).",
    ),
    key("acoustic.n_membranes", "Number of nonlinear membrane scatterers (seeded positions and resonances)."),
    key(
        "acoustic.membrane_strength",
        "Membrane oscillator strength, in units of omega^2 (> 0); larger is a broader, stronger \
         resonance.",
    ),
    key("acoustic.membrane_damping", "Membrane damping rate Gamma, in units of omega (>= 0)."),
    key(
        "acoustic.nonlinearity",
        "Duffing nonlinearity: relative stiffness increase per unit intensity, in 1/|p|^2 (>= 0); \
         0 makes the cavity linear.",
    ),
    key(
        "acoustic.input_power",
        "Total source power of one sample, the sum of the squared tone amplitudes (> 0; in units \
         of the source strength squared).",
    ),
    key("acoustic.relaxation", "Relaxation factor of the self-consistent solve, in (0, 1]."),
    key(
        "acoustic.tolerance",
        "Relative convergence tolerance of the membrane intensities in the self-consistent solve (> 0).",
    ),
    key(
        "acoustic.max_iterations",
        "Iteration limit of the self-consistent solve (>= 1); a query that does not converge is \
         an error.",
    ),
    key("acoustic.seed", "Seed of the geometry and of the membrane resonances; independent of the top-level seed."),
    // ---- free space ----
    key(
        "freespace",
        "Free-space diffractive optics, used when system = \"freespace\": SLM -> distance -> \
         phase plane -> ... -> distance -> camera, angular-spectrum propagation, the camera image \
         binned to output_shape. SI units (metres).",
    ),
    key("freespace.grid", "Sampling of the SLM, the phase planes and the camera (all n x n pixels, same pitch)."),
    key("freespace.grid.n", "Pixels per side of the square field (>= 1)."),
    key("freespace.grid.dx_m", "Pixel pitch, in metres (> 0)."),
    key("freespace.grid.wavelength_m", "Vacuum wavelength of the light, in metres (> 0)."),
    key(
        "freespace.grid.padding_factor",
        "The FFT window is padding_factor x n pixels per side (>= 1): 1 = periodic, no padding; \
         2 = the usual guard against wrap-around.",
    ),
    key(
        "freespace.input_shape",
        "Shape [rows, cols] of the input image on the SLM. Set per block by phyff (block 1: the \
         labelled sample; later blocks: the previous output): the value here is not used.",
    ),
    key(
        "freespace.placement",
        "Layout of the image on the SLM: \"tile\", \"center\" or a table [freespace.placement.upsample] \
         with factor = K. Set per block by phyff (block 1: tile; later blocks: upsample to fill \
         the field): the value here is not used.",
    ),
    key(
        "freespace.placement.upsample",
        "Nearest-neighbour upsampling: each image pixel becomes a factor x factor block.",
    ),
    key("freespace.placement.upsample.factor", "Upsampling factor (>= 1)."),
    key(
        "freespace.encoding",
        "How an SLM pixel value v becomes a field: \"phase\" (E = exp(i pi v)) or \"amplitude\" \
         (E = v).",
    ),
    key(
        "freespace.masks",
        "The phase planes between SLM and camera: a table [freespace.masks.random] (planes, \
         feature_px) or [freespace.masks.custom] with phases_rad = one list of n x n phases in \
         radians per plane.",
    ),
    key(
        "freespace.masks.random",
        "Fixed random phase masks, phases uniform in [0, 2 pi), drawn from the section's seed.",
    ),
    key("freespace.masks.random.planes", "Number of phase planes D (>= 0)."),
    key(
        "freespace.masks.random.feature_px",
        "Mask feature size: the phase is constant over blocks of this many grid pixels per side (>= 1).",
    ),
    key(
        "freespace.distances_m",
        "Distances in metres: SLM -> plane 1, plane 1 -> plane 2, ..., plane D -> camera \
         (D + 1 values, each >= 0 and within the grid's alias-free distance).",
    ),
    key("freespace.detection", "What the camera reads from the field E: \"intensity\" (|E|^2) or \"amplitude\" (|E|)."),
    key(
        "freespace.output_shape",
        "Camera output grid [rows, cols] = the outputs per sample: the n x n image is summed in \
         blocks of n/rows x n/cols pixels (both must divide n).",
    ),
    key("freespace.seed", "Seed of the random phase masks; independent of the top-level seed."),
    // ---- fibre ----
    key(
        "fiber",
        "Nonlinear optical fibre, used when system = \"fiber\": the input shapes the spectrum of \
         a pulse (pulse shaper), the pulse propagates by the nonlinear Schroedinger equation \
         (split-step), a spectrometer bins the output spectrum. Each block's input is resampled \
         onto input_len values. Units: ps, km, W.",
    ),
    key("fiber.params", "Linear and nonlinear constants of the fibre."),
    key(
        "fiber.params.beta2_ps2_per_km",
        "Group-velocity dispersion beta2, in ps^2/km (negative = anomalous, e.g. -20 for standard \
         single-mode fibre at 1550 nm).",
    ),
    key("fiber.params.gamma_per_w_km", "Kerr coefficient gamma, in 1/(W km) (about 1.3 for standard fibre)."),
    key("fiber.params.alpha_per_km", "Power attenuation alpha, in 1/km (>= 0; 0.2 dB/km is 0.046/km)."),
    key("fiber.length_km", "Fibre length, in km (the default 0.0008 km = 0.8 m is one soliton period)."),
    key("fiber.steps", "Split-step steps over the length (>= 1; the error falls as 1/steps^2)."),
    key("fiber.grid", "The periodic time window of the pulse and its sampling."),
    key("fiber.grid.points", "Number of time samples n (>= 2; powers of two are fastest)."),
    key(
        "fiber.grid.window_ps",
        "Window length, in ps (> 0, at least 10 x pulse.t0_ps); the sample spacing is \
         window_ps / points.",
    ),
    key("fiber.pulse", "The launched pulse before encoding, centred in the window."),
    key(
        "fiber.pulse.shape",
        "Temporal shape: \"sech\" (sqrt(P0) sech(T/T0), the soliton shape) or \"gaussian\" \
         (sqrt(P0) exp(-T^2/(2 T0^2))).",
    ),
    key("fiber.pulse.t0_ps", "Width parameter T0, in ps (at least 2 sample spacings, window_ps / points)."),
    key("fiber.pulse.peak_power_w", "Peak power P0, in W (>= 0; the default makes a soliton of order 2)."),
    key("fiber.input_len", "Number of input values (>= 1); each drives one group of spectral bins."),
    key(
        "fiber.encoding",
        "How input value v acts on its group of bins: \"phase\" (adds the spectral phase pi v) \
         or \"amplitude\" (multiplies the spectral amplitude by v).",
    ),
    key(
        "fiber.encoded_bins",
        "Spectral bins around the carrier that carry the input, split into input_len contiguous \
         groups, lowest optical frequency first (input_len <= encoded_bins <= grid.points).",
    ),
    key("fiber.output_len", "Number of output values (>= 1)."),
    key(
        "fiber.output_bins",
        "Spectral bins around the carrier read by the spectrometer, split into output_len \
         contiguous groups (output_len <= output_bins <= grid.points).",
    ),
    key(
        "fiber.output_sqrt",
        "Output the square root of each group's energy, in sqrt(pJ), instead of the energy in pJ \
         (true or false).",
    ),
    // ---- device ----
    key(
        "device",
        "How system = \"device\" reaches the external device of each block (hardware in the loop, \
         see phyff-device): set exactly one of command and tcp.",
    ),
    opt(
        "device.command",
        "\"phyff-device --stdio --system optics --block {block} --input-shape {rows}x{cols}\"",
        "Command line that starts a device speaking the protocol on stdin/stdout, one child \
         process per block; {block} (from 0), {rows} and {cols} (the block's input shape) are \
         replaced.",
    ),
    opt(
        "device.tcp",
        "\"127.0.0.1:7000,127.0.0.1:7001\"",
        "TCP address HOST:PORT of running devices: one for every block, or one per block \
         separated by commas (see docs/device-protocol.md).",
    ),
    key("device.timeout_ms", "Time allowed for one request, in milliseconds (>= 1)."),
    key(
        "device.attempts",
        "Attempts per request (>= 1); the connection is re-established (the child restarted) \
         between attempts.",
    ),
    // ---- emulator ----
    key(
        "emulator",
        "The emulator of system = \"emulator\": an MLP fitted once to measured input/output pairs \
         and shared by every block, its queries counted as physical. Each block's input is \
         resampled onto the emulator's input width.",
    ),
    opt(
        "emulator.inputs",
        "\"x_data.csv\"",
        "CSV file of the inputs sent to the hardware, one measurement per row, no header. With \
         emulator.outputs, or neither: unset, the emulator is fitted to the measured acoustic \
         pairs built into phyff.",
    ),
    opt(
        "emulator.outputs",
        "\"y_data.csv\"",
        "CSV file of the outputs measured for each input, row for row, no header (with \
         emulator.inputs, or neither).",
    ),
    key(
        "emulator.twin",
        "The fit of the emulator: an MLP with SiLU hidden layers trained with Adam on \
         standardised pairs (the public code's acoustic emulator: 20 -> 100 -> 200 -> 100 -> 20).",
    ),
    key(
        "emulator.twin.hidden",
        "Hidden layer widths, e.g. [100, 200, 100]; [] = one hidden layer as wide as the wider \
         of input and output.",
    ),
    key(
        "emulator.twin.samples",
        "Inputs sampled from a simulated system when a twin is fitted to one (>= 2); not used by \
         the emulator, whose pairs are the CSV rows.",
    ),
    key(
        "emulator.twin.repeats",
        "Queries per sampled input when a twin is fitted to a simulated system (>= 1); not used \
         by the emulator.",
    ),
    key("emulator.twin.epochs", "Training epochs of the fit (>= 1)."),
    key("emulator.twin.batch_size", "Mini-batch size of the fit, in pairs (>= 1)."),
    key("emulator.twin.lr", "Adam learning rate of the fit (> 0)."),
    key("emulator.twin.val_fraction", "Fraction of the pairs held out for the validation error, in [0, 1)."),
    key("emulator.twin.seed", "Seed of the held-out split, the initial weights and the shuffles of the fit."),
];

/// The documentation of the key or table at `path` (dotted), if [`KEY_DOCS`] has it.
pub fn doc_for(path: &str) -> Option<&'static KeyDoc> {
    KEY_DOCS.iter().find(|d| d.path == path)
}

/// The default configuration as TOML with a comment on every key: what `phyff config` prints.
pub fn default_toml_with_comments() -> String {
    annotate(&ExperimentConfig::default().to_toml()).expect("the default configuration's TOML parses")
}

/// Writes the configuration `toml_text` back with the comments of [`KEY_DOCS`]: a comment at
/// the top of the file, above every key and above every `[section]` header, and every unset
/// optional key as a commented-out example. The result parses to the same values.
///
/// # Errors
/// `toml_text` is not valid TOML.
pub fn annotate(toml_text: &str) -> Result<String, toml::de::Error> {
    let table: toml::Table = toml_text.parse()?;
    let mut out = String::new();
    write_comment(&mut out, FILE_HEADER);
    out.push('\n');
    write_table(&mut out, &[], &table, Vec::new());
    Ok(out)
}

/// One key of a table, as written.
enum Line<'a> {
    /// A key with its value (and its documentation, if any).
    Set(&'a str, &'a toml::Value, Option<&'static KeyDoc>),
    /// An optional key without a value: written commented out.
    Unset(&'static KeyDoc),
}

/// The dotted path of `segments`.
fn dotted(segments: &[&str]) -> String {
    segments.join(".")
}

/// The part of `path` before its last dot (`""` at the top).
fn parent_of(path: &str) -> &str {
    path.rsplit_once('.').map_or("", |(p, _)| p)
}

/// The last segment of `path`.
fn leaf_of(path: &str) -> &str {
    path.rsplit_once('.').map_or(path, |(_, l)| l)
}

/// Whether an optional key is documented somewhere under the table `path`.
fn has_optional_under(path: &str) -> bool {
    KEY_DOCS.iter().any(|d| d.example.is_some() && d.path.strip_prefix(path).is_some_and(|rest| rest.starts_with('.')))
}

/// Writes the keys of the table at `segments` (none: the top of the file), preceded by its
/// header and `intro` comment lines when it has keys of its own, then its sub-tables. A table
/// without keys of its own passes `intro` on to its first sub-table.
fn write_table(out: &mut String, segments: &[&str], table: &toml::Table, intro: Vec<String>) {
    let path = dotted(segments);
    let documented: Vec<&'static KeyDoc> = KEY_DOCS.iter().filter(|d| parent_of(d.path) == path).collect();
    let is_documented = |name: &str| documented.iter().any(|d| leaf_of(d.path) == name);
    let mut lines = Vec::new();
    for d in &documented {
        match table.get(leaf_of(d.path)) {
            Some(v) if !v.is_table() => lines.push(Line::Set(leaf_of(d.path), v, Some(*d))),
            None if d.example.is_some() => lines.push(Line::Unset(d)),
            _ => {}
        }
    }
    for (name, v) in table {
        if !v.is_table() && !is_documented(name) {
            lines.push(Line::Set(name, v, None));
        }
    }
    let empty = toml::Table::new();
    let mut subtables: Vec<(&str, &toml::Table)> = Vec::new();
    for d in &documented {
        let name = leaf_of(d.path);
        match table.get(name) {
            Some(toml::Value::Table(t)) => subtables.push((name, t)),
            None if has_optional_under(d.path) => subtables.push((name, &empty)),
            _ => {}
        }
    }
    for (name, v) in table {
        if let toml::Value::Table(t) = v {
            if !is_documented(name) {
                subtables.push((name, t));
            }
        }
    }

    let mut carried = intro;
    if !segments.is_empty() && (!lines.is_empty() || subtables.is_empty()) {
        out.push('\n');
        for line in carried.drain(..) {
            out.push_str(&line);
            out.push('\n');
        }
        out.push('[');
        out.push_str(&segments.iter().map(|s| toml_key(s)).collect::<Vec<_>>().join("."));
        out.push_str("]\n");
    }
    for line in &lines {
        match line {
            Line::Set(name, value, doc) => {
                if let Some(d) = doc {
                    write_comment(out, d.doc);
                }
                out.push_str(&format!("{} = {value}\n", toml_key(name)));
            }
            Line::Unset(d) => {
                write_comment(out, d.doc);
                out.push_str(&format!("# {} = {}\n", toml_key(leaf_of(d.path)), d.example.unwrap_or_default()));
            }
        }
    }
    for (name, sub) in subtables {
        let mut child: Vec<&str> = segments.to_vec();
        child.push(name);
        let mut intro = std::mem::take(&mut carried);
        if let Some(d) = doc_for(&dotted(&child)) {
            let mut text = String::new();
            write_comment(&mut text, d.doc);
            intro.extend(text.lines().map(str::to_string));
        }
        write_table(out, &child, sub, intro);
    }
}

/// `name` as a TOML key: bare when it can be, quoted otherwise.
fn toml_key(name: &str) -> String {
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        name.to_string()
    } else {
        toml::Value::String(name.to_string()).to_string()
    }
}

/// Writes `text` as `# ` comment lines of at most [`WRAP_COLUMNS`] columns; a `\n` in `text`
/// starts a new line.
fn write_comment(out: &mut String, text: &str) {
    for paragraph in text.split('\n') {
        let mut line = String::from("#");
        for word in paragraph.split_whitespace() {
            if line.len() > 1 && line.len() + 1 + word.len() > WRAP_COLUMNS {
                out.push_str(&line);
                out.push('\n');
                line.truncate(1);
            }
            line.push(' ');
            line.push_str(word);
        }
        out.push_str(&line);
        out.push('\n');
    }
}

#[cfg(test)]
mod tests;
