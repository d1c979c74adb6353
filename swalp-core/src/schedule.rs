//! Learning-rate schedules, evaluated per epoch or per step (at a fractional
//! epoch).

/// A learning-rate schedule.
///
/// ```
/// use swalp_core::schedule::LrSchedule;
/// let s = LrSchedule::Swalp { lr_init: 0.05, swa_start: 200.0, swa_lr: 0.01 };
/// assert_eq!(s.lr_at(0.0), 0.05);
/// assert!((s.lr_at(140.0) - 0.05 * (1.0 - 0.99 * 0.5)).abs() < 1e-12);
/// assert_eq!(s.lr_at(200.0), 0.01);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum LrSchedule {
    /// The same rate throughout.
    Constant {
        /// The rate.
        lr: f64,
    },
    /// Multiplied by `gamma` at each milestone epoch.
    Step {
        /// Initial rate.
        lr: f64,
        /// Epochs at which the rate drops.
        milestones: Vec<f64>,
        /// Factor per milestone.
        gamma: f64,
    },
    /// Cosine annealing from `lr` to `min_lr` over `epochs`.
    Cosine {
        /// Initial rate.
        lr: f64,
        /// Final rate.
        min_lr: f64,
        /// Length of the schedule in epochs.
        epochs: f64,
    },
    /// The SWALP paper's schedule: constant for the first half of
    /// `swa_start`, linear decay to 1% of `lr_init` by 90% of it, then 1%
    /// until `swa_start`, and `swa_lr` from `swa_start` on.
    Swalp {
        /// Initial rate.
        lr_init: f64,
        /// Epoch at which averaging starts.
        swa_start: f64,
        /// Rate while averaging.
        swa_lr: f64,
    },
}

impl LrSchedule {
    /// The learning rate at (possibly fractional) epoch `epoch`, counted from
    /// 0. Per-step schedules pass `epoch + step / steps_per_epoch`.
    ///
    /// ```
    /// use swalp_core::schedule::LrSchedule;
    /// let step = LrSchedule::Step { lr: 1.0, milestones: vec![10.0, 20.0], gamma: 0.5 };
    /// assert_eq!(step.lr_at(9.5), 1.0);
    /// assert_eq!(step.lr_at(20.0), 0.25);
    /// let cosine = LrSchedule::Cosine { lr: 1.0, min_lr: 0.0, epochs: 10.0 };
    /// assert!((cosine.lr_at(5.0) - 0.5).abs() < 1e-12);
    /// ```
    pub fn lr_at(&self, epoch: f64) -> f64 {
        match self {
            LrSchedule::Constant { lr } => *lr,
            LrSchedule::Step {
                lr,
                milestones,
                gamma,
            } => {
                let passed = milestones.iter().filter(|&&m| epoch >= m).count();
                lr * gamma.powi(passed as i32)
            }
            LrSchedule::Cosine { lr, min_lr, epochs } => {
                let t = (epoch / epochs).clamp(0.0, 1.0);
                min_lr + (lr - min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
            LrSchedule::Swalp {
                lr_init,
                swa_start,
                swa_lr,
            } => {
                let t = epoch / swa_start;
                let factor = if t <= 0.5 {
                    1.0
                } else if t <= 0.9 {
                    1.0 - (1.0 - 0.01) * (t - 0.5) / 0.4
                } else if t < 1.0 {
                    0.01
                } else {
                    swa_lr / lr_init
                };
                lr_init * factor
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swalp_schedule_matches_the_seed_at_every_phase() {
        let s = LrSchedule::Swalp {
            lr_init: 0.05,
            swa_start: 200.0,
            swa_lr: 0.01,
        };
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(s.lr_at(100.0), 0.05));
        assert!(close(s.lr_at(101.0), 0.05 * (1.0 - 0.99 * 0.005 / 0.4)));
        assert!(close(s.lr_at(180.0), 0.05 * 0.01));
        assert!(close(s.lr_at(199.0), 0.05 * 0.01));
        assert!(close(s.lr_at(250.0), 0.01));
    }

    #[test]
    fn step_and_cosine() {
        let s = LrSchedule::Step {
            lr: 1.0,
            milestones: vec![10.0, 20.0],
            gamma: 0.1,
        };
        assert_eq!(s.lr_at(9.9), 1.0);
        assert!((s.lr_at(10.0) - 0.1).abs() < 1e-15);
        assert!((s.lr_at(25.0) - 0.01).abs() < 1e-15);
        let c = LrSchedule::Cosine {
            lr: 1.0,
            min_lr: 0.0,
            epochs: 10.0,
        };
        assert_eq!(c.lr_at(0.0), 1.0);
        assert!((c.lr_at(5.0) - 0.5).abs() < 1e-12);
        assert!(c.lr_at(10.0).abs() < 1e-12);
    }
}
