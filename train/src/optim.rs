//! AdamW, SGD with momentum and RMSprop, written over tch tensors.
//!
//! tch's built-in optimizers keep their state inside libtorch where it
//! cannot be saved, so a resumed run would restart AdamW's moment estimates
//! and diverge from an uninterrupted one. These follow PyTorch's update
//! rules exactly and expose their state to [`crate::checkpoint`].

use std::{collections::HashMap, f64::consts::PI};

use tch::{Tensor, nn::VarStore};

use crate::{
    Error, Result,
    recipe::{OptimizerKind, Recipe, Schedule},
};

const ADAM_BETAS: (f64, f64) = (0.9, 0.999);
const EPS: f64 = 1e-8;
const RMSPROP_ALPHA: f64 = 0.99;

/// An optimizer over a [`VarStore`]'s trainable variables.
#[derive(Debug)]
pub struct Optimizer {
    kind: OptimizerKind,
    weight_decay: f64,
    momentum: f64,
    /// (name, parameter) sorted by name, so state files are stable.
    params: Vec<(String, Tensor)>,
    /// Per parameter: AdamW (m, v); SGD (momentum buffer); RMSprop (square average).
    state: Vec<Vec<Tensor>>,
    /// Updates applied so far.
    steps: i64,
}

impl Optimizer {
    /// Creates the optimizer the recipe names, with zeroed state.
    pub fn new(vs: &VarStore, recipe: &Recipe) -> Self {
        let mut params: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let buffers = match recipe.optimizer {
            OptimizerKind::Adamw => 2,
            OptimizerKind::Sgd | OptimizerKind::Rmsprop => 1,
        };
        let state = params.iter().map(|(_, p)| (0..buffers).map(|_| p.zeros_like()).collect()).collect();
        Self {
            kind: recipe.optimizer,
            weight_decay: recipe.weight_decay,
            momentum: recipe.momentum,
            params,
            state,
            steps: 0,
        }
    }

    /// Clears the gradients of every parameter.
    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            p.zero_grad();
        }
    }

    /// Applies one update with learning rate `lr`.
    pub fn step(&mut self, lr: f64) {
        self.steps += 1;
        let t = self.steps as i32;
        let (kind, wd, momentum) = (self.kind, self.weight_decay, self.momentum);
        tch::no_grad(|| {
            for ((_, p), state) in self.params.iter_mut().zip(&mut self.state) {
                let grad = p.grad();
                if !grad.defined() {
                    continue;
                }
                match kind {
                    OptimizerKind::Adamw => {
                        let (b1, b2) = ADAM_BETAS;
                        let _ = p.g_mul_scalar_(1.0 - lr * wd);
                        let _ = state[0].g_mul_scalar_(b1).g_add_(&(&grad * (1.0 - b1)));
                        let _ = state[1].g_mul_scalar_(b2).g_add_(&(&grad * &grad * (1.0 - b2)));
                        let bias1 = 1.0 - b1.powi(t);
                        let bias2 = 1.0 - b2.powi(t);
                        let denom = state[1].sqrt() / bias2.sqrt() + EPS;
                        let _ = p.g_sub_(&(&state[0] / denom * (lr / bias1)));
                    }
                    OptimizerKind::Sgd => {
                        let grad = if wd > 0.0 { &grad + &*p * wd } else { grad };
                        let buf = &mut state[0];
                        if t == 1 {
                            buf.copy_(&grad);
                        } else {
                            let _ = buf.g_mul_scalar_(momentum).g_add_(&grad);
                        }
                        let _ = p.g_sub_(&(&*buf * lr));
                    }
                    OptimizerKind::Rmsprop => {
                        let grad = if wd > 0.0 { &grad + &*p * wd } else { grad };
                        let square_avg = &mut state[0];
                        let _ =
                            square_avg.g_mul_scalar_(RMSPROP_ALPHA).g_add_(&(&grad * &grad * (1.0 - RMSPROP_ALPHA)));
                        let _ = p.g_sub_(&(&grad / (square_avg.sqrt() + EPS) * lr));
                    }
                }
            }
        });
    }

    /// Updates applied so far.
    pub fn steps(&self) -> i64 {
        self.steps
    }

    /// The state tensors, named `optim.<buffer>.<parameter>`.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        self.params
            .iter()
            .zip(&self.state)
            .flat_map(|((name, _), bufs)| {
                bufs.iter().enumerate().map(move |(i, b)| (format!("optim.{i}.{name}"), b.shallow_clone()))
            })
            .collect()
    }

    /// Restores state saved by [`Self::state_tensors`] after `steps` updates.
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, steps: i64) -> Result<()> {
        for ((name, _), bufs) in self.params.iter().zip(&mut self.state) {
            for (i, buf) in bufs.iter_mut().enumerate() {
                let key = format!("optim.{i}.{name}");
                let saved = tensors.get(&key).ok_or_else(|| Error::Config(format!("optimizer state {key} missing")))?;
                if saved.size() != buf.size() {
                    return Err(Error::Config(format!("optimizer state {key} has shape {:?}", saved.size())));
                }
                tch::no_grad(|| buf.copy_(saved));
            }
        }
        self.steps = steps;
        Ok(())
    }
}

/// The learning rate at `step` (0-based) of `total` steps.
pub fn learning_rate(schedule: Schedule, lr: f64, step: usize, total: usize) -> f64 {
    let total = total.max(1) as f64;
    let step = step as f64;
    match schedule {
        Schedule::Constant => lr,
        Schedule::Cosine => 0.5 * lr * (1.0 + (PI * step / total).cos()),
        Schedule::Onecycle => {
            // PyTorch's OneCycleLR: pct_start 0.3, div_factor 25, final_div_factor 1e4.
            let initial = lr / 25.0;
            let minimum = initial / 1e4;
            let warmup_end = 0.3 * total - 1.0;
            let anneal = |from: f64, to: f64, pct: f64| to + (from - to) / 2.0 * (1.0 + (PI * pct).cos());
            if step <= warmup_end {
                anneal(initial, lr, step / warmup_end.max(1.0))
            } else {
                anneal(lr, minimum, (step - warmup_end) / (total - 1.0 - warmup_end).max(1.0))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tch::{Device, Kind};

    use super::*;

    /// Minimises (w - 3)^2 from w = 0 and checks every optimizer gets close.
    #[test]
    fn every_optimizer_minimises_a_quadratic() {
        for optimizer in [OptimizerKind::Adamw, OptimizerKind::Sgd, OptimizerKind::Rmsprop] {
            let vs = VarStore::new(Device::Cpu);
            let w = vs.root().zeros("w", &[1]);
            let recipe = Recipe { optimizer, weight_decay: 0.0, ..Recipe::default() };
            let mut opt = Optimizer::new(&vs, &recipe);
            for _ in 0..2000 {
                opt.zero_grad();
                (&w - 3.0).square().sum(Kind::Float).backward();
                opt.step(0.01);
            }
            let value = w.double_value(&[0]);
            assert!((value - 3.0).abs() < 0.05, "{optimizer:?} reached {value}");
        }
    }

    /// One AdamW step from zero state moves each weight by lr in the sign of
    /// its gradient (bias correction makes m/sqrt(v) = sign(g)).
    #[test]
    fn adamw_first_step_matches_pytorch() {
        let vs = VarStore::new(Device::Cpu);
        let w = vs.root().var_copy("w", &Tensor::from_slice(&[1.0f32, -2.0]));
        let mut opt = Optimizer::new(&vs, &Recipe::default());
        opt.zero_grad();
        (&w * Tensor::from_slice(&[2.0f32, -0.5])).sum(Kind::Float).backward();
        opt.step(0.1);
        // p * (1 - lr*wd) - lr * sign(g)
        let expected = [1.0 * (1.0 - 0.1 * 0.01) - 0.1, -2.0 * (1.0 - 0.1 * 0.01) + 0.1];
        for (i, e) in expected.iter().enumerate() {
            assert!((w.double_value(&[i as i64]) - e).abs() < 1e-6);
        }
    }

    #[test]
    fn state_round_trips() {
        let vs = VarStore::new(Device::Cpu);
        let _net = crate::model::Net::new(&vs.root(), crate::model::Arch::Reference);
        let mut opt = Optimizer::new(&vs, &Recipe::default());
        let saved: HashMap<String, Tensor> =
            opt.state_tensors().into_iter().map(|(k, t)| (k, t.ones_like() * 2.0)).collect();
        opt.load_state(&saved, 17).unwrap();
        assert_eq!(opt.steps(), 17);
        assert!(opt.state_tensors().iter().all(|(_, t)| t.mean(Kind::Float).double_value(&[]) == 2.0));
    }

    #[test]
    fn schedules_have_the_documented_shape() {
        assert_eq!(learning_rate(Schedule::Constant, 0.1, 50, 100), 0.1);
        assert!((learning_rate(Schedule::Cosine, 0.1, 0, 100) - 0.1).abs() < 1e-12);
        assert!(learning_rate(Schedule::Cosine, 0.1, 99, 100) < 1e-3);
        let one = |s| learning_rate(Schedule::Onecycle, 1.0, s, 1000);
        assert!((one(0) - 0.04).abs() < 1e-9);
        assert!((one(299) - 1.0).abs() < 1e-9);
        assert!(one(999) < 1e-5);
        assert!(one(150) > one(0) && one(600) < one(299));
    }
}
