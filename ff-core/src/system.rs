//! The black-box physical system: the only thing forward-forward training asks of the physics.

use crate::error::SystemError;
use crate::matrix::{MatMut, MatRef, Matrix};
use crate::real::Real;

/// A physical layer seen as a black box: batched forward queries of real vectors.
///
/// Implemented by the simulators of `ff-physics`, by the imperfection wrappers (noise, drift,
/// quantisation) and by adapters to real hardware. The trainer never differentiates it.
///
/// Conventions:
/// - a batch is row-major, `batch x input_len` in, `batch x output_len` out;
/// - the system owns its encoding of the input vector for the hardware (documented by each
///   implementation) and its detection (the output is what a detector reads);
/// - failures a real device can have (timeouts, wrong replies, NaN) are `Err`, never panics;
/// - `&mut self`: a query may advance internal state (drift, noise streams, query counters).
///   Two systems built from the same configuration and seed answer the same query sequence
///   with the same bits.
///
/// To train your own system, implement this trait, put it in a [`crate::BlockSpec`] and build
/// a [`crate::Network`] (see the crate documentation, "Your own system").
///
/// # Examples
/// A toy medium in which neighbouring inputs interfere on a square-law detector:
/// `y_j = (x_j + x_{j+1 mod n})^2`.
/// ```
/// use ff_core::{check_batch, MatMut, MatRef, Matrix, PhysicalSystem, SystemError};
///
/// struct Interferometer {
///     n: usize,
/// }
///
/// impl PhysicalSystem<f64> for Interferometer {
///     fn name(&self) -> String {
///         format!("interferometer({})", self.n)
///     }
///     fn input_len(&self) -> usize {
///         self.n
///     }
///     fn output_len(&self) -> usize {
///         self.n
///     }
///     fn forward_batch(&mut self, input: MatRef<'_, f64>, mut output: MatMut<'_, f64>) -> Result<(), SystemError> {
///         // Wrong widths, mismatched batches and NaN inputs become errors naming the system.
///         check_batch(&self.name(), self.n, self.n, &input, &output)?;
///         for i in 0..input.rows() {
///             let x = input.row(i);
///             for (j, y) in output.row_mut(i).iter_mut().enumerate() {
///                 *y = (x[j] + x[(j + 1) % self.n]).powi(2);
///             }
///         }
///         Ok(())
///     }
/// }
///
/// let mut medium = Interferometer { n: 3 };
/// let x = Matrix::from_vec(1, 3, vec![1.0, 0.5, -1.0])?;
/// assert_eq!(medium.forward(x.view())?.data(), &[2.25, 0.25, 0.0]);
/// assert!(medium.forward(Matrix::zeros(1, 4).view()).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait PhysicalSystem<F: Real>: Send + Sync {
    /// A short human-readable name (e.g. `"optics 32x32"`), used in errors and reports.
    fn name(&self) -> String;
    /// Number of real values per input sample.
    fn input_len(&self) -> usize;
    /// Number of real values per output sample.
    fn output_len(&self) -> usize;
    /// Runs a batch through the system, writing `input.rows() x output_len()` values into `output`.
    ///
    /// # Errors
    /// [`SystemError::Shape`]/[`SystemError::BatchMismatch`] for buffers of the wrong shape,
    /// [`SystemError::NonFinite`] for NaN/inf inputs, and any device failure.
    fn forward_batch(&mut self, input: MatRef<'_, F>, output: MatMut<'_, F>) -> Result<(), SystemError>;

    /// Whether queries to this system are physical queries (counted and priced by the
    /// accounting). `false` for the digital stand-ins used in ablations.
    fn is_physical(&self) -> bool {
        true
    }

    /// Allocating convenience wrapper around [`PhysicalSystem::forward_batch`].
    ///
    /// # Errors
    /// As [`PhysicalSystem::forward_batch`].
    fn forward(&mut self, input: MatRef<'_, F>) -> Result<Matrix<F>, SystemError> {
        let mut out = Matrix::zeros(input.rows(), self.output_len());
        self.forward_batch(input, out.view_mut())?;
        Ok(out)
    }
}

/// Validates the shapes and finiteness of a batch against a system's declared lengths.
/// Every implementation calls this first, so bad input is rejected with a clear message.
///
/// # Errors
/// The first problem found, as a [`SystemError`].
pub fn check_batch<F: Real>(
    system: &str,
    input_len: usize,
    output_len: usize,
    input: &MatRef<'_, F>,
    output: &MatMut<'_, F>,
) -> Result<(), SystemError> {
    if input.cols() != input_len {
        return Err(SystemError::Shape {
            system: system.into(),
            what: "input",
            expected: input_len,
            got: input.cols(),
        });
    }
    if output.cols() != output_len {
        return Err(SystemError::Shape {
            system: system.into(),
            what: "output",
            expected: output_len,
            got: output.cols(),
        });
    }
    if input.rows() != output.rows() {
        return Err(SystemError::BatchMismatch {
            system: system.into(),
            input_rows: input.rows(),
            output_rows: output.rows(),
        });
    }
    if let Some((row, col, value)) = input.find_non_finite() {
        return Err(SystemError::NonFinite { system: system.into(), what: "input", row, col, value });
    }
    Ok(())
}

/// The identity map: the "physics removed" ablation for blocks without a skip connection
/// (each block sees its input directly). Not a physical system.
#[derive(Clone, Debug)]
pub struct Identity {
    len: usize,
}

impl Identity {
    /// An identity map on vectors of length `len`.
    pub fn new(len: usize) -> Self {
        Identity { len }
    }
}

impl<F: Real> PhysicalSystem<F> for Identity {
    fn name(&self) -> String {
        format!("identity({})", self.len)
    }
    fn input_len(&self) -> usize {
        self.len
    }
    fn output_len(&self) -> usize {
        self.len
    }
    fn is_physical(&self) -> bool {
        false
    }
    fn forward_batch(&mut self, input: MatRef<'_, F>, mut output: MatMut<'_, F>) -> Result<(), SystemError> {
        check_batch(&PhysicalSystem::<F>::name(self), self.len, self.len, &input, &output)?;
        output.data_mut().copy_from_slice(input.data());
        Ok(())
    }
}

/// A system that outputs zeros: the "physical output zeroed" ablation for blocks with a
/// skip connection. Not a physical system.
#[derive(Clone, Debug)]
pub struct Zeros {
    input_len: usize,
    output_len: usize,
}

impl Zeros {
    /// Maps `input_len` values to `output_len` zeros.
    pub fn new(input_len: usize, output_len: usize) -> Self {
        Zeros { input_len, output_len }
    }
}

impl<F: Real> PhysicalSystem<F> for Zeros {
    fn name(&self) -> String {
        format!("zeros({} -> {})", self.input_len, self.output_len)
    }
    fn input_len(&self) -> usize {
        self.input_len
    }
    fn output_len(&self) -> usize {
        self.output_len
    }
    fn is_physical(&self) -> bool {
        false
    }
    fn forward_batch(&mut self, input: MatRef<'_, F>, mut output: MatMut<'_, F>) -> Result<(), SystemError> {
        check_batch(&PhysicalSystem::<F>::name(self), self.input_len, self.output_len, &input, &output)?;
        output.data_mut().fill(F::zero());
        Ok(())
    }
}

impl<F: Real, S: PhysicalSystem<F> + ?Sized> PhysicalSystem<F> for Box<S> {
    fn name(&self) -> String {
        (**self).name()
    }
    fn input_len(&self) -> usize {
        (**self).input_len()
    }
    fn output_len(&self) -> usize {
        (**self).output_len()
    }
    fn is_physical(&self) -> bool {
        (**self).is_physical()
    }
    fn forward_batch(&mut self, input: MatRef<'_, F>, output: MatMut<'_, F>) -> Result<(), SystemError> {
        (**self).forward_batch(input, output)
    }
}

/// A system with an exact vector-Jacobian product: available in simulation (and for a
/// fitted digital twin), never from real hardware. Backprop and physics-aware training
/// (PAT) baselines ask for this capability; forward-forward training never does.
pub trait Differentiable<F: Real>: PhysicalSystem<F> {
    /// For every row `i`: `grad_input_i = J(x_i)^T grad_output_i`, where `J(x_i)` is the
    /// `output_len x input_len` Jacobian of the map at `input_i`.
    ///
    /// Where the map is not differentiable (a kink of `|.|`), any subgradient is allowed.
    ///
    /// # Errors
    /// Shape mismatches (`grad_output` must be `batch x output_len`, `grad_input`
    /// `batch x input_len`) and NaN inputs, as for [`PhysicalSystem::forward_batch`].
    fn vjp(
        &mut self,
        input: MatRef<'_, F>,
        grad_output: MatRef<'_, F>,
        grad_input: MatMut<'_, F>,
    ) -> Result<(), SystemError>;
}

impl<F: Real> Differentiable<F> for Identity {
    fn vjp(
        &mut self,
        input: MatRef<'_, F>,
        grad_output: MatRef<'_, F>,
        mut grad_input: MatMut<'_, F>,
    ) -> Result<(), SystemError> {
        check_vjp_shapes(&PhysicalSystem::<F>::name(self), self.len, self.len, &input, &grad_output, &grad_input)?;
        grad_input.data_mut().copy_from_slice(grad_output.data());
        Ok(())
    }
}

impl<F: Real> Differentiable<F> for Zeros {
    fn vjp(
        &mut self,
        input: MatRef<'_, F>,
        grad_output: MatRef<'_, F>,
        mut grad_input: MatMut<'_, F>,
    ) -> Result<(), SystemError> {
        check_vjp_shapes(
            &PhysicalSystem::<F>::name(self),
            self.input_len,
            self.output_len,
            &input,
            &grad_output,
            &grad_input,
        )?;
        grad_input.data_mut().fill(F::zero());
        Ok(())
    }
}

/// Validates the buffers of a [`Differentiable::vjp`] call.
///
/// # Errors
/// The first shape problem or NaN input found.
pub fn check_vjp_shapes<F: Real>(
    system: &str,
    input_len: usize,
    output_len: usize,
    input: &MatRef<'_, F>,
    grad_output: &MatRef<'_, F>,
    grad_input: &MatMut<'_, F>,
) -> Result<(), SystemError> {
    let (n, gi_rows) = (input.rows(), grad_input.rows());
    let go = grad_output;
    if go.cols() != output_len {
        return Err(SystemError::Shape { system: system.into(), what: "output", expected: output_len, got: go.cols() });
    }
    if go.rows() != n || gi_rows != n {
        return Err(SystemError::BatchMismatch {
            system: system.into(),
            input_rows: n,
            output_rows: go.rows().max(gi_rows),
        });
    }
    if grad_input.cols() != input_len {
        return Err(SystemError::Shape {
            system: system.into(),
            what: "input",
            expected: input_len,
            got: grad_input.cols(),
        });
    }
    if input.cols() != input_len {
        return Err(SystemError::Shape {
            system: system.into(),
            what: "input",
            expected: input_len,
            got: input.cols(),
        });
    }
    if let Some((row, col, value)) = input.find_non_finite() {
        return Err(SystemError::NonFinite { system: system.into(), what: "input", row, col, value });
    }
    Ok(())
}
