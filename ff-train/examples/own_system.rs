//! Your own physical system, trained through the library rather than the `phyff` command line.
//!
//! `Speckle` is a toy black box written here: a fixed random complex mixing of the input (light
//! through a scattering medium) read by a square-law detector, `y = |M x|^2`. Two blocks of it,
//! each with a skip connection, are trained by forward-forward on the built-in 8x8 digits; the
//! ablation is the same network with the physics replaced by zeros. `cargo run --example own_system`

use ff_core::{check_batch, rng::rng_for, BlockSpec, FitPlan, LabelEmbedding, MatMut, MatRef, Matrix, Network};
use ff_core::{OptimizerConfig, PhysicalSystem, SystemError, TrainConfig, Zeros};
use rand_distr::{Distribution, StandardNormal};

/// `y = |M x|^2` for a fixed complex `d_out x d_in` matrix `M = re + i im` of Gaussian entries.
struct Speckle {
    re: Matrix<f32>,
    im: Matrix<f32>,
}

impl Speckle {
    fn new(d_in: usize, d_out: usize, seed: u64) -> Self {
        let mut rng = rng_for(seed, "speckle");
        let scale = 1.0 / (2.0 * d_in as f32).sqrt();
        let mut draw = |_, _| scale * Distribution::<f32>::sample(&StandardNormal, &mut rng);
        Speckle { re: Matrix::from_fn(d_out, d_in, &mut draw), im: Matrix::from_fn(d_out, d_in, &mut draw) }
    }
}

impl PhysicalSystem<f32> for Speckle {
    fn name(&self) -> String {
        format!("speckle {} -> {}", self.input_len(), self.output_len())
    }
    fn input_len(&self) -> usize {
        self.re.cols()
    }
    fn output_len(&self) -> usize {
        self.re.rows()
    }
    fn forward_batch(&mut self, x: MatRef<'_, f32>, mut y: MatMut<'_, f32>) -> Result<(), SystemError> {
        check_batch(&self.name(), self.input_len(), self.output_len(), &x, &y)?;
        for i in 0..x.rows() {
            for (o, out) in y.row_mut(i).iter_mut().enumerate() {
                let field = |m: &Matrix<f32>| m.row(o).iter().zip(x.row(i)).map(|(a, b)| a * b).sum::<f32>();
                *out = field(&self.re).powi(2) + field(&self.im).powi(2);
            }
        }
        Ok(())
    }
}

/// Two blocks `u = [P(h); h]` of 100 outputs, `P` a speckle of twice its input width, or zeros
/// of the same width for the ablation. Labels are prepended to the 64 pixels (74 values).
fn network(raw_len: usize, classes: usize, physics: bool) -> ff_core::Result<Network<f32>> {
    let embedding = LabelEmbedding::Prepend { num_classes: classes };
    let widths = [embedding.embedded_len(raw_len), 100];
    let specs = widths.iter().enumerate().map(|(b, &d)| {
        let system: Box<dyn PhysicalSystem<f32>> =
            if physics { Box::new(Speckle::new(d, 2 * d, b as u64)) } else { Box::new(Zeros::new(d, 2 * d)) };
        BlockSpec { system, skip: true, out_dim: 100 }
    });
    let config = TrainConfig { optimizer: OptimizerConfig::adam(1e-3), ..TrainConfig::default() };
    Network::new(raw_len, embedding, config, specs.collect(), 0)
}

fn main() -> anyhow::Result<()> {
    let data = ff_data::load::<f32>(&"digits".parse()?, 0)?;
    let (train, test) = (&data.train, &data.test);
    let plan = FitPlan { epochs: 20, batch_size: 64, seed: 0 };
    for (name, physics) in [("speckle + FF", true), ("physics removed (ablation)", false)] {
        let mut net = network(train.dim(), train.num_classes, physics)?;
        net.fit(train.x.view(), &train.y, plan, |net, r| {
            if r.epoch % 5 == 0 {
                println!("  {name}, epoch {:2}: test accuracy {:.4}", r.epoch, net.accuracy(test.x.view(), &test.y)?);
            }
            Ok(())
        })?;
        let acc = net.accuracy(test.x.view(), &test.y)?;
        println!("{name:<27} test accuracy {acc:.4}, {} physical queries", net.counters().physical_queries);
    }
    Ok(())
}
