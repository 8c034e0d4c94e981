//! The encoder's im2col + gemm convolution against burn's own: the same outputs and the same
//! gradients for the input, the weight and the bias.

use amisim::perception::gemm_conv::conv2d;
use burn::module::Param;
use burn::nn::conv::Conv2dConfig;
use burn::nn::PaddingConfig2d;
use burn::prelude::*;
use burn::tensor::Distribution;

fn max_abs_diff(a: Tensor<4>, b: Tensor<4>) -> f32 {
    (a - b).abs().max().into_scalar()
}

fn close(what: &str, got: Vec<f32>, want: Vec<f32>) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!((g - w).abs() <= 1e-4 * scale, "{what}[{i}]: {g} against burn's {w}");
    }
}

#[test]
fn gemm_convolution_matches_burn_forward_and_backward() {
    let device = Device::flex().autodiff();
    // (batch, c_in, side, c_out, kernel, stride, padding)
    let cases = [
        (3, 3, 13, 5, 3, 2, 1),
        (2, 4, 9, 6, 3, 1, 1),
        (2, 2, 8, 3, 3, 2, 1),
        (1, 3, 7, 2, 1, 1, 0),
        (2, 2, 10, 4, 3, 3, 0),
        (2, 1, 6, 2, 5, 1, 2),
        (2, 5, 6, 3, 1, 1, usize::MAX), // `Valid` padding, as the encoder's 1×1 squeeze has
        (1, 2, 1, 2, 5, 1, 2),          // a 1-pixel image: some taps see no pixel at all
    ];
    for (n, c_in, side, c_out, k, s, p) in cases {
        let what = format!("n {n}, c_in {c_in}, side {side}, c_out {c_out}, k {k}, stride {s}, padding {p}");
        let conv = Conv2dConfig::new([c_in, c_out], [k, k])
            .with_stride([s, s])
            .with_padding(if p == usize::MAX {
                PaddingConfig2d::Valid
            } else {
                PaddingConfig2d::Explicit(p, p, p, p)
            })
            .init(&device);
        // A bias that is not zero, so its gradient and its place in the output are both seen.
        let bias = Tensor::<1>::random([c_out], Distribution::Normal(0.0, 1.0), &device);
        let conv = burn::nn::conv::Conv2d {
            bias: Some(Param::from_tensor(bias)),
            ..conv
        };
        let x0 = Tensor::<4>::random([n, c_in, side, side], Distribution::Normal(0.0, 1.0), &device);

        let run = |gemm: bool| {
            let x = x0.clone().detach().require_grad();
            let out = if gemm {
                conv2d(&conv, x.clone())
            } else {
                conv.forward(x.clone())
            };
            // A loss that weighs every output differently.
            let w = Tensor::<4>::from_data(
                TensorData::new(
                    (0..out.shape().num_elements())
                        .map(|i| ((i * 7919) % 13) as f32 - 6.0)
                        .collect::<Vec<f32>>(),
                    out.dims(),
                ),
                &device,
            );
            let grads = (out.clone() * w).sum().backward();
            let v = |t: Option<Tensor<4>>| t.expect("a gradient").into_data().try_to_vec::<f32>().unwrap();
            let gx = v(x.grad(&grads));
            let gw = v(conv.weight.val().grad(&grads));
            let gb = conv
                .bias
                .as_ref()
                .unwrap()
                .val()
                .grad(&grads)
                .unwrap()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            (out.inner(), gx, gw, gb)
        };
        let (out_g, gx_g, gw_g, gb_g) = run(true);
        let (out_b, gx_b, gw_b, gb_b) = run(false);
        assert_eq!(out_g.dims(), out_b.dims(), "{what}: output shape");
        let d = max_abs_diff(out_g, out_b);
        assert!(d < 1e-4, "{what}: outputs differ by {d}");
        close(&format!("{what}: input gradient"), gx_g, gx_b);
        close(&format!("{what}: weight gradient"), gw_g, gw_b);
        close(&format!("{what}: bias gradient"), gb_g, gb_b);
    }
}
