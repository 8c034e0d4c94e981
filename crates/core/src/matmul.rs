//! The one place amisim calls the gemm kernels (the same ones burn's CPU backend uses)
//! directly: the planner's hand-written rollouts and the CPU convolution.

/// A matrix read in place: `data[row · row_stride + col · col_stride]`.
pub(crate) struct Operand<'a> {
    pub data: &'a [f32],
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> Operand<'a> {
    /// A row-major matrix of `cols` columns.
    pub fn row_major(data: &'a [f32], cols: usize) -> Operand<'a> {
        Operand {
            data,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose of a row-major matrix of `cols` columns, read in place.
    pub fn transposed(data: &'a [f32], cols: usize) -> Operand<'a> {
        Operand {
            data,
            row_stride: 1,
            col_stride: cols,
        }
    }

    /// Whether a `rows × cols` view stays inside `data`.
    fn fits(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.row_stride + (cols - 1) * self.col_stride < self.data.len()
    }
}

/// `dst[m×n] = lhs[m×k] · rhs[k×n]`, added to what `dst` holds when `accumulate`; `dst`
/// row-major. `parallel` splits it over rayon's threads, else it runs on this thread alone.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(
    dst: &mut [f32],
    accumulate: bool,
    lhs: Operand,
    rhs: Operand,
    m: usize,
    k: usize,
    n: usize,
    parallel: bool,
) {
    assert!(dst.len() >= m * n && lhs.fits(m, k) && rhs.fits(k, n));
    let par = if parallel {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the assert bounds every index gemm touches: `dst` is row-major `m × n`, `lhs`
    // and `rhs` are read only at `row·row_stride + col·col_stride` inside the views checked.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}
