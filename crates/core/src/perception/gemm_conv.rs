//! A 2-D convolution as im2col + gemm, forward and backward, for burn's CPU backend.
//!
//! burn's CPU backend computes a convolution's weight gradient as a second convolution with
//! the batch as channels and the output gradient as a huge dilated kernel, and its input
//! gradient as a transposed convolution; in the encoder's training step those two took more
//! time than every other kernel together. Here every product is one gemm per image, on
//! NCHW data as it lies (no layout change):
//!
//! - forward: `out[n] = W · cols(x[n]) + b`, `W` `[c_out, c_in·k·k]`, `cols` `[c_in·k·k, h'·w']`;
//! - weight gradient: `gW = Σ_n g[n] · cols(x[n])ᵀ`, `gb = Σ_n Σ_pixels g[n]`;
//! - input gradient: `gx[n] = col2im(Wᵀ · g[n])`.
//!
//! `cols` is rebuilt per image in a small per-thread buffer (it fits in cache), never stored
//! for the whole batch. The sums over images run in a fixed number of chunks added in order,
//! so the result does not depend on how the threads share the work.
//!
//! [`conv2d`] takes this path for a `Conv2d` on burn's CPU backend (`flex`, with or without
//! autodiff) with a bias, square kernel and stride, symmetric padding, no dilation or groups;
//! anything else goes through `Conv2d::forward`.

use crate::matmul::Operand;
use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Dispatch, DispatchDevice, Flex};
use burn::nn::conv::Conv2d;
use burn::nn::PaddingConfig2d;
use burn::prelude::*;
use burn::tensor::DType;
use rayon::prelude::*;

/// The convolution as a backend operation (burn's CPU backend and its autodiff only).
#[backend_extension(Flex, Autodiff)]
pub trait GemmConv: burn::backend::Backend {
    /// `x` `[n, c_in, h, w]`, `weight` `[c_out, c_in, k, k]`, `bias` `[c_out]` → `[n, c_out,
    /// h', w']`, `h' = (h + 2·padding − k) / stride + 1`.
    fn gemm_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride: usize,
        padding: usize,
    ) -> FloatTensor<Self>;
}

/// `conv.forward(x)`, through the im2col + gemm kernels where they apply (see the module
/// documentation); the same values up to float rounding.
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let padding = match conv.padding {
        PaddingConfig2d::Explicit(t, l, b, r) if t == l && l == b && b == r => Some(t),
        PaddingConfig2d::Valid => Some(0),
        _ => None,
    };
    let on_cpu = matches!(x.device().as_dispatch().clone().inner(), DispatchDevice::Flex(_));
    match (padding, &conv.bias) {
        (Some(p), Some(bias))
            if on_cpu
                && conv.kernel_size[0] == conv.kernel_size[1]
                && conv.stride[0] == conv.stride[1]
                && conv.dilation == [1, 1]
                && conv.groups == 1
                && x.dtype() == DType::F32 =>
        {
            let out = <Dispatch as GemmConv>::gemm_conv2d(
                x.into_dispatch(),
                conv.weight.val().into_dispatch(),
                bias.val().into_dispatch(),
                conv.stride[0],
                p,
            );
            Tensor::from_dispatch(out)
        }
        _ => conv.forward(x),
    }
}

/// Shapes of one convolution.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    n: usize,
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    k: usize,
    stride: usize,
    padding: usize,
    ho: usize,
    wo: usize,
}

impl Geometry {
    fn new(x: &[usize], weight: &[usize], stride: usize, padding: usize) -> Geometry {
        let (n, c_in, h, w) = (x[0], x[1], x[2], x[3]);
        let (c_out, k) = (weight[0], weight[2]);
        assert!(
            weight[1] == c_in && weight[3] == k && stride > 0 && h + 2 * padding >= k && w + 2 * padding >= k,
            "gemm_conv2d: input {x:?}, weight {weight:?}, stride {stride}, padding {padding}"
        );
        let ho = (h + 2 * padding - k) / stride + 1;
        let wo = (w + 2 * padding - k) / stride + 1;
        Geometry {
            n,
            c_in,
            h,
            w,
            c_out,
            k,
            stride,
            padding,
            ho,
            wo,
        }
    }

    /// Rows of `cols`: `c_in·k·k`.
    fn taps(&self) -> usize {
        self.c_in * self.k * self.k
    }

    /// Output pixels per image.
    fn pixels(&self) -> usize {
        self.ho * self.wo
    }

    /// The output columns `ox` whose input column `ox·stride + kx − padding` lies in the image.
    fn columns(&self, kx: usize) -> (usize, usize) {
        self.inside(kx, self.w, self.wo)
    }

    /// The output rows `oy` whose input row `oy·stride + ky − padding` lies in the image.
    fn rows(&self, ky: usize) -> (usize, usize) {
        self.inside(ky, self.h, self.ho)
    }

    /// Along one axis of `size` input and `out` output pixels: the outputs `o` whose input
    /// `o·stride + tap − padding` lies in `0..size`.
    fn inside(&self, tap: usize, size: usize, out: usize) -> (usize, usize) {
        let (s, p) = (self.stride, self.padding);
        let lo = p.saturating_sub(tap).div_ceil(s);
        // o·s + tap − p ≤ size − 1  ⇔  o ≤ (size − 1 + p − tap) / s
        let hi = if size + p > tap {
            ((size - 1 + p - tap) / s + 1).min(out)
        } else {
            0
        };
        (lo.min(hi), hi)
    }

    /// For each row of `cols` (tap `(c, ky, kx)`), with the image in `x` and `cols` both
    /// per image: the runs of output pixels `[start, start + len)` in the row that read
    /// `len` input pixels from `x[src]` on, every `stride`-th. Taps outside the image are
    /// left out: those cells of `cols` are zero for every image.
    fn runs(&self, mut f: impl FnMut(usize, usize, usize, usize)) {
        let (s, p) = (self.stride, self.padding);
        let l = self.pixels();
        for c in 0..self.c_in {
            for ky in 0..self.k {
                let (ylo, yhi) = self.rows(ky);
                for kx in 0..self.k {
                    let (lo, hi) = self.columns(kx);
                    if lo == hi {
                        continue;
                    }
                    let row = (c * self.k + ky) * self.k + kx;
                    for oy in ylo..yhi {
                        let iy = oy * s + ky - p;
                        let src = (c * self.h + iy) * self.w + lo * s + kx - p;
                        f(row * l + oy * self.wo + lo, src, hi - lo, s);
                    }
                }
            }
        }
    }
}

/// `cols[(c·k + ky)·k + kx][oy·w' + ox] = x[c][oy·s + ky − p][ox·s + kx − p]` where that pixel
/// lies in the image. The other cells (the padding) are not written: they are the same cells
/// for every image of one geometry, so `cols` must come zeroed and be filled only by this
/// geometry (as the callers' per-thread buffers are).
fn im2col(g: &Geometry, x: &[f32], cols: &mut [f32]) {
    g.runs(|dst, src, len, stride| {
        let out = &mut cols[dst..dst + len];
        let src = &x[src..src + (len - 1) * stride + 1];
        match stride {
            1 => out.copy_from_slice(src),
            // Every other pixel, written as pairs so that the compiler vectorises it.
            2 => {
                let (last, head) = out.split_last_mut().expect("a run of at least one pixel");
                for (o, pair) in head.iter_mut().zip(src.chunks_exact(2)) {
                    *o = pair[0];
                }
                *last = src[src.len() - 1];
            }
            _ => {
                for (i, o) in out.iter_mut().enumerate() {
                    *o = src[i * stride];
                }
            }
        }
    });
}

/// The adjoint of [`im2col`]: adds each `cols` entry back onto the input pixel it was read from.
fn col2im(g: &Geometry, cols: &[f32], x: &mut [f32]) {
    g.runs(|src, dst, len, stride| {
        let from = &cols[src..src + len];
        let to = &mut x[dst..dst + (len - 1) * stride + 1];
        match stride {
            1 => to.iter_mut().zip(from).for_each(|(t, v)| *t += v),
            2 => {
                let (last, head) = from.split_last().expect("a run of at least one pixel");
                for (pair, v) in to.chunks_exact_mut(2).zip(head) {
                    pair[0] += v;
                }
                to[to.len() - 1] += last;
            }
            _ => {
                for (i, v) in from.iter().enumerate() {
                    to[i * stride] += v;
                }
            }
        }
    });
}

/// One gemm on this thread alone (the callers run one per image, in parallel).
fn gemm(dst: &mut [f32], accumulate: bool, lhs: Operand, rhs: Operand, m: usize, k: usize, n: usize) {
    crate::matmul::gemm(dst, accumulate, lhs, rhs, m, k, n, false);
}

/// Forward on plain slices: `out` `[n, c_out, h', w']`.
fn forward(g: &Geometry, x: &[f32], weight: &[f32], bias: &[f32]) -> Vec<f32> {
    let (taps, l) = (g.taps(), g.pixels());
    let mut out = vec![0.0f32; g.n * g.c_out * l];
    out.par_chunks_mut(g.c_out * l)
        .zip(x.par_chunks(g.c_in * g.h * g.w))
        .for_each_init(
            || vec![0.0f32; taps * l],
            |cols, (o, xi)| {
                im2col(g, xi, cols);
                for (row, b) in o.chunks_mut(l).zip(bias) {
                    row.fill(*b);
                }
                let (w, c) = (Operand::row_major(weight, taps), Operand::row_major(cols, l));
                gemm(o, true, w, c, g.c_out, taps, l);
            },
        );
    out
}

/// Images per chunk of the weight-gradient sum: a fixed split, so the sum's order is too.
const GRAD_CHUNKS: usize = 16;

/// Backward on plain slices: `(gx, gW, gb)`, `gx` only when asked.
fn backward(
    g: &Geometry,
    x: &[f32],
    weight: &[f32],
    grad: &[f32],
    want_x: bool,
) -> (Option<Vec<f32>>, Vec<f32>, Vec<f32>) {
    let (taps, l) = (g.taps(), g.pixels());
    let (x_len, g_len) = (g.c_in * g.h * g.w, g.c_out * l);
    let per_chunk = g.n.div_ceil(GRAD_CHUNKS).max(1);
    let partial: Vec<(Vec<f32>, Vec<f32>)> = (0..g.n.div_ceil(per_chunk))
        .into_par_iter()
        .map(|chunk| {
            let mut gw = vec![0.0f32; g.c_out * taps];
            let mut gb = vec![0.0f32; g.c_out];
            let mut cols = vec![0.0f32; taps * l];
            for i in chunk * per_chunk..((chunk + 1) * per_chunk).min(g.n) {
                let gi = &grad[i * g_len..(i + 1) * g_len];
                im2col(g, &x[i * x_len..(i + 1) * x_len], &mut cols);
                // gW += g[i] · colsᵀ.
                let (lhs, rhs) = (Operand::row_major(gi, l), Operand::transposed(&cols, l));
                gemm(&mut gw, true, lhs, rhs, g.c_out, l, taps);
                for (b, row) in gb.iter_mut().zip(gi.chunks(l)) {
                    *b += row.iter().sum::<f32>();
                }
            }
            (gw, gb)
        })
        .collect();
    let mut gw = vec![0.0f32; g.c_out * taps];
    let mut gb = vec![0.0f32; g.c_out];
    for (pw, pb) in &partial {
        gw.iter_mut().zip(pw).for_each(|(a, b)| *a += b);
        gb.iter_mut().zip(pb).for_each(|(a, b)| *a += b);
    }
    let gx = want_x.then(|| {
        let mut gx = vec![0.0f32; g.n * x_len];
        gx.par_chunks_mut(x_len).zip(grad.par_chunks(g_len)).for_each_init(
            || vec![0.0f32; taps * l],
            |cols, (gxi, gi)| {
                // cols = Wᵀ · g[i].
                let (lhs, rhs) = (Operand::transposed(weight, taps), Operand::row_major(gi, l));
                gemm(cols, false, lhs, rhs, taps, g.c_out, l);
                col2im(g, cols, gxi);
            },
        );
        gx
    });
    (gx, gw, gb)
}

fn values(t: &FlexTensor) -> FlexTensor {
    assert_eq!(t.dtype(), DType::F32, "gemm_conv2d: f32 tensors only");
    t.to_contiguous()
}

fn slice(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("a contiguous f32 tensor")
}

fn tensor(v: Vec<f32>, shape: [usize; 4]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(v, shape))
}

fn dims(t: &FlexTensor) -> Vec<usize> {
    t.layout().shape().iter().copied().collect()
}

impl GemmConv for Flex {
    fn gemm_conv2d(x: FlexTensor, weight: FlexTensor, bias: FlexTensor, stride: usize, padding: usize) -> FlexTensor {
        let (x, weight, bias) = (values(&x), values(&weight), values(&bias));
        let g = Geometry::new(&dims(&x), &dims(&weight), stride, padding);
        let out = forward(&g, slice(&x), slice(&weight), slice(&bias));
        tensor(out, [g.n, g.c_out, g.ho, g.wo])
    }
}

#[derive(Debug)]
struct GemmConvBackward;

impl Backward<Flex, 3> for GemmConvBackward {
    /// The input, the weight, stride and padding.
    type State = (FlexTensor, FlexTensor, usize, usize);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let grad = values(&grads.consume::<Flex>(&ops.node));
        let (x, weight, stride, padding) = ops.state;
        let g = Geometry::new(&dims(&x), &dims(&weight), stride, padding);
        let (gx, gw, gb) = backward(&g, slice(&x), slice(&weight), slice(&grad), node_x.is_some());
        if let (Some(node), Some(gx)) = (node_x, gx) {
            grads.register::<Flex>(node.id, tensor(gx, [g.n, g.c_in, g.h, g.w]));
        }
        if let Some(node) = node_w {
            grads.register::<Flex>(node.id, tensor(gw, [g.c_out, g.c_in, g.k, g.k]));
        }
        if let Some(node) = node_b {
            grads.register::<Flex>(node.id, FlexTensor::from_data(TensorData::new(gb, [g.c_out])));
        }
    }
}

impl<C: CheckpointStrategy> GemmConv for Autodiff<Flex, C> {
    fn gemm_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride: usize,
        padding: usize,
    ) -> FloatTensor<Self> {
        match GemmConvBackward
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (xs, ws) = (values(x.primitive()), values(weight.primitive()));
                let out = Flex::gemm_conv2d(xs.clone(), ws.clone(), bias.into_primitive(), stride, padding);
                prep.finish((xs, ws, stride, padding), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::gemm_conv2d(
                x.into_primitive(),
                weight.into_primitive(),
                bias.into_primitive(),
                stride,
                padding,
            )),
        }
    }
}
