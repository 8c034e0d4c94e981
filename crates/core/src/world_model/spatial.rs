//! The spatial predictor: the world model rolled forward on the encoder's feature map rather
//! than on its latent vector, as PLDM does. A convolution sees each cell with its neighbours,
//! so what stops the agent (a wall next to it) and where it may pass (a door) are local rules
//! it learns once for the whole frame; a predictor on the flat latent has to learn them for
//! every wall column and door row it reads out of the latent.
//!
//! One step jumps `k` environment steps: the `k` actions are broadcast over the map as `2k`
//! extra input channels, and `map[t+k] = map[t] + conv(relu(conv(... [map[t], a[t..t+k]])))`,
//! 3×3 convolutions with padding 1 (same size). The planner's states are the encoder's
//! read-out of the predicted maps, so the cost and everything else read the usual latent.
//!
//! Anchored (`anchor`): every jump also reads the observed map the rollout started from,
//! `f([map[t], map[0], a[t..t+k]])`. The walls do not move, so the observation says where they
//! are at every step of the rollout, however far the predicted map has drifted from them.

use crate::perception::conv3x3;
use crate::perception::gemm_conv::conv2d;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::activation::relu;

/// Settings of a [`SpatialPredictor`].
#[derive(Config, Debug, PartialEq)]
pub struct SpatialConfig {
    /// Channels of the spatial state (the encoder's `spatial_state`).
    pub channels: usize,
    /// Environment steps one prediction jumps (its actions are all inputs).
    #[config(default = 4)]
    pub k: usize,
    /// Channels of the hidden convolutions.
    #[config(default = 32)]
    pub hidden: usize,
    /// Hidden convolutions (each 3×3, then ReLU) before the output one.
    #[config(default = 1)]
    pub depth: usize,
    /// Each jump also reads the rollout's observed start map (see the module docs).
    #[config(default = false)]
    pub anchor: bool,
}

impl SpatialConfig {
    pub fn init(&self, device: &Device) -> SpatialPredictor {
        let conv = |i: usize, o: usize| conv3x3(i, o, 1, device);
        let mut convs = Vec::new();
        let mut c_in = self.channels * if self.anchor { 2 } else { 1 } + 2 * self.k;
        for _ in 0..self.depth {
            convs.push(conv(c_in, self.hidden));
            c_in = self.hidden;
        }
        convs.push(conv(c_in, self.channels));
        SpatialPredictor {
            convs,
            k: self.k,
            anchor: self.anchor,
        }
    }
}

/// `map[t+k] = map[t] + f([map[t], (map[0],) a[t..t+k]])`, `f` a stack of 3×3 convolutions.
#[derive(Module, Debug)]
pub struct SpatialPredictor {
    pub convs: Vec<Conv2d>,
    pub k: usize,
    /// Whether each jump reads the start map too.
    pub anchor: bool,
}

impl SpatialPredictor {
    /// One jump: `map` `[b, c, s, s]`, the rollout's start map `map0` (read when anchored),
    /// `actions` `[b, k, 2]` → the map `k` steps on.
    pub fn forward(&self, map: Tensor<4>, map0: &Tensor<4>, actions: Tensor<3>) -> Tensor<4> {
        let [b, _, h, w] = map.dims();
        let [_, k, na] = actions.dims();
        let a = actions.reshape([b, k * na, 1, 1]).expand([b, k * na, h, w]);
        let mut x = if self.anchor {
            Tensor::cat(vec![map.clone(), map0.clone(), a], 1)
        } else {
            Tensor::cat(vec![map.clone(), a], 1)
        };
        let last = self.convs.len() - 1;
        for (i, conv) in self.convs.iter().enumerate() {
            x = conv2d(conv, x);
            if i < last {
                x = relu(x);
            }
        }
        map + x
    }

    /// Open-loop rollout from `map0` `[b, c, s, s]` with `actions` `[b, steps, 2]`, `steps` a
    /// multiple of `k`: the maps after each jump, `[b, steps / k, c, s, s]`.
    pub fn rollout(&self, map0: Tensor<4>, actions: Tensor<3>) -> Tensor<5> {
        let [b, steps, na] = actions.dims();
        let k = self.k;
        let mut map = map0.clone();
        let mut out = Vec::with_capacity(steps / k);
        for j in 0..steps / k {
            let a = actions.clone().slice([0..b, j * k..(j + 1) * k, 0..na]);
            map = self.forward(map, &map0, a);
            out.push(map.clone());
        }
        Tensor::stack(out, 1)
    }
}
