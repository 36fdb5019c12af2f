//! Data parallelism over the devices of one machine (`--replicas N`): each optimizer
//! step splits its batch into N parts, runs forward and backward of each part on its own
//! device (a copy of the model forked there, one thread per device), and sums the
//! parts' gradients on the main device, each part's loss weighted by its share of the
//! batch — for a loss that is a mean over samples, exactly the gradient of the whole
//! batch. The optimizer then steps once, on the main device.
//!
//! The mix-supervised contrastive term compares samples within a part only (no
//! all-gather of projections across devices), so with N > 1 it sees N smaller batches.
//!
//! burn's own multi-device strategy (burn-train's DDP learner) drives burn's `Learner`;
//! mimic-train's loops are its own (resumable slices, seeded streams), so they split
//! the batch themselves with burn's module forking and gradient accumulation.

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Tensor};

/// The loss of one part of a batch, and the figures it reports (summed over parts,
/// each weighted by its share).
pub struct PartLoss<T> {
    pub loss: Tensor<1>,
    pub report: T,
}

/// What the parts report, combined with weights.
pub trait Report: Default + Send {
    fn add_weighted(&mut self, other: &Self, weight: f64);
}

impl Report for () {
    fn add_weighted(&mut self, _: &Self, _: f64) {}
}

impl Report for Vec<f64> {
    fn add_weighted(&mut self, other: &Self, weight: f64) {
        if self.is_empty() {
            self.resize(other.len(), 0.0);
        }
        for (a, b) in self.iter_mut().zip(other) {
            *a += weight * b;
        }
    }
}

/// The gradients of the whole batch, on `devices[0]`, from `parts` (one per device, with
/// its number of samples): `loss(replica, part, device)` on each device in its own
/// thread. Also returns the parts' reports, weighted by their shares.
pub fn data_parallel_gradients<M, P, T>(
    model: &M,
    devices: &[Device],
    parts: Vec<(P, usize)>,
    loss: impl Fn(&M, P, &Device) -> PartLoss<T> + Sync,
) -> (GradientsParams, T)
where
    M: Module + Send + Sync,
    P: Send,
    T: Report,
{
    assert_eq!(parts.len(), devices.len(), "one part per device");
    let total: usize = parts.iter().map(|(_, n)| n).sum();
    let main = &devices[0];
    let one_part = |replica: &M, part: P, n: usize, device: &Device| {
        let share = n as f64 / total.max(1) as f64;
        let PartLoss { loss: l, report } = loss(replica, part, device);
        let grads = GradientsParams::from_grads(l.mul_scalar(share).backward(), replica);
        (grads.to_device(main, replica), report, share)
    };
    // Replicas on one device (the CPU, to test the path) take turns: one device draws
    // its random numbers (stochastic depth) in a fixed order only then.
    let one_device = devices.windows(2).all(|w| w[0] == w[1]);
    let results: Vec<(GradientsParams, T, f64)> = if one_device {
        parts
            .into_iter()
            .map(|(part, n)| one_part(model, part, n, main))
            .collect()
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = parts
                .into_iter()
                .zip(devices)
                .map(|((part, n), device)| {
                    let one_part = &one_part;
                    scope.spawn(move || {
                        let replica = model.clone().fork(device);
                        one_part(&replica, part, n, device)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a replica's step panicked"))
                .collect()
        })
    };
    let mut accumulator = GradientsAccumulator::<M>::new();
    let mut report = T::default();
    for (grads, part_report, share) in results {
        accumulator.accumulate(model, grads);
        report.add_weighted(&part_report, share);
    }
    (accumulator.grads(), report)
}

/// Seeds each replica's random generator (stochastic depth) for optimizer step `step`:
/// its own stream of the run's `seed`.
pub fn seed_replicas(replicas: &[Device], seed: u64, step: usize) {
    for (i, device) in replicas.iter().enumerate() {
        device.seed(crate::run::derive_seed(
            seed,
            crate::run::stream::DEVICE,
            (step * replicas.len() + i) as u64,
        ));
    }
}

/// `n` nearly equal consecutive ranges covering `0..len` (the first ones one longer).
pub fn split_evenly(len: usize, n: usize) -> Vec<std::ops::Range<usize>> {
    let n = n.max(1);
    let (base, extra) = (len / n, len % n);
    let mut start = 0;
    (0..n)
        .map(|i| {
            let size = base + usize::from(i < extra);
            let r = start..start + size;
            start += size;
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::{Module, Param};
    use burn::tensor::TensorData;

    #[derive(Module, Debug)]
    struct Net {
        w: Param<Tensor<2>>,
    }

    #[test]
    fn two_replicas_give_the_gradient_of_the_whole_batch() {
        let device = Device::flex().autodiff();
        let net = Net {
            w: Param::from_tensor(Tensor::from_data(
                TensorData::new(vec![0.5f32, -1.0, 2.0, 0.25, 1.5, -0.75], [3, 2]),
                &device,
            )),
        };
        let x: Vec<f32> = (0..7 * 3)
            .map(|i| ((i * 37 % 11) as f32 - 5.0) / 4.0)
            .collect();
        // Mean over rows of (x·w)², a per-sample mean like the training losses.
        let loss = |m: &Net, rows: std::ops::Range<usize>, d: &Device| {
            let n = rows.len();
            let data = x[rows.start * 3..rows.end * 3].to_vec();
            let xt = Tensor::<2>::from_data(TensorData::new(data, [n, 3]), d);
            let l = xt
                .matmul(m.w.val())
                .square()
                .sum()
                .div_scalar(n as f64)
                .reshape([1]);
            PartLoss {
                report: vec![l.clone().into_scalar::<f32>() as f64],
                loss: l,
            }
        };
        let whole = data_parallel_gradients(&net, &[device.clone()], vec![(0..7, 7)], loss);
        let parts: Vec<_> = split_evenly(7, 2)
            .into_iter()
            .map(|r| (r.clone(), r.len()))
            .collect();
        assert_eq!(parts.iter().map(|p| p.1).collect::<Vec<_>>(), vec![4, 3]);
        let split = data_parallel_gradients(&net, &[device.clone(), device.clone()], parts, loss);
        let g1 = whole.0.get::<2>(net.w.id).unwrap().into_data();
        let g2 = split.0.get::<2>(net.w.id).unwrap().into_data();
        g1.assert_approx_eq::<f32>(&g2, burn::tensor::Tolerance::absolute(1e-5));
        assert!(
            (whole.1[0] - split.1[0]).abs() < 1e-5,
            "the weighted report is the whole batch's"
        );
    }
}
