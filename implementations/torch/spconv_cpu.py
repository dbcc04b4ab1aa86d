"""spconv set-up: import spconv through this module, which fixes its CPU path once.

Checked with spconv 2.3.8 and cumm 0.7.11 (the CPU wheels; the CUDA builds are
named after their CUDA version, e.g. `spconv-cu124`) under torch 2.13.0+cpu.
Four problems, four fixes, applied once when this module is first imported:

1. Backward on a CPU-only torch raised "Torch not compiled with CUDA enabled":
   `ops.py` asks for `get_current_stream()` (`torch.cuda.current_stream()`)
   even on the CPU path, where the stream is never used.
2. Non-contiguous indices are read as if contiguous, silently giving wrong
   sites (`mask.nonzero()` in torch 2.13 is column-major): every
   SparseConvTensor gets contiguous indices; `spconv_indices` also makes them int32.
3. Thread race, silently wrong results: `GatherCPU::scatter_add` (the
   accumulation step of every sparse convolution on the CPU: forward into the
   output, backward into the input gradient; SubM, regular and inverse alike)
   declares its two row pointers outside the OpenMP loop body, so threads
   overwrite each other's pointers and add a row into another row's place.
   spconv's OpenMP calls bind to torch's libgomp (torch loads it RTLD_GLOBAL),
   so the race shows whenever torch runs with more than one thread: at 2
   threads, on 2x4x48x48 inputs at 30 % occupancy, 73 of 80 trials of a 3x3
   regular conv were wrong, 46 of 80 for SubM 3x3, 21 of 80 for 2x2/stride 2.
   With one thread it is always right. The gather, the matrix products and
   the pair generation are race-free. The fix replaces only that kernel, with
   torch's `index_add_`: within one kernel offset the target rows are
   distinct, so each row gets the same single addition, in the same order,
   and the results are identical. It keeps every thread (serialising spconv
   with torch.set_num_threads(1) would also slow the dense torch ops, and
   would not help if spconv ever bound its own bundled libgomp). Cost: about
   10-30 microseconds of Python per kernel offset and convolution (9 offsets
   for 3x3, 25 for 5x5); a default-network training step on two 640x1024
   events (0.5 % occupancy, 2 threads) took 0.8-1.0 s with either kernel,
   within run-to-run noise.
4. Evaluation mode with a bias failed ("cpu don't support act and bias"):
   out of training, spconv passes the bias to be fused into the kernel, which
   its CPU path refuses. On CPU tensors the bias is added after the kernel,
   as spconv itself does in training mode (the same result).
"""
from __future__ import annotations

import logging
import warnings

import torch

with warnings.catch_warnings():  # ccimport (a build helper spconv imports) calls the deprecated locale.getdefaultlocale
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ccimport\.")
    import spconv.pytorch as spconv
    import spconv.pytorch.cppcore as _cppcore
    import spconv.pytorch.hash as _hash
    import spconv.pytorch.ops as _ops
    import spconv.pytorch.utils as _utils
    from cumm import tensorview as tv
    from spconv.core_cc.csrc.sparse.all import SpconvOps
    from spconv.pytorch.conv import SparseConvolution
    from spconv.pytorch.core import SparseConvTensor

__all__ = ["spconv", "spconv_indices", "SPCONV_ORIGINAL_SCATTER_ADD"]

# the kernel as shipped (racy with more than one thread), kept for the tests
SPCONV_ORIGINAL_SCATTER_ADD = SpconvOps.scatter_add_cpu

# numpy (hence torch.from_numpy) views tensorview CPU tensors of these types
_NUMPY_VIEWABLE = {tv.float32, tv.float64, tv.float16}


def _current_stream() -> int:
    """spconv's get_current_stream, except that without CUDA it answers 0 (the CPU path never uses it)."""
    return torch.cuda.current_stream().cuda_stream if torch.cuda.is_available() else 0


def _as_torch(tensor) -> torch.Tensor:
    """A zero-copy torch view of a CPU tensorview tensor."""
    return torch.from_numpy(tensor.numpy_view())


def _scatter_add_cpu(out, inp, inds) -> None:
    """out[inds[i]] += inp[i] for i < len(inds): spconv's scatter_add_cpu without its race."""
    count = inds.dim(0)
    if count == 0:
        return
    if out.dtype not in _NUMPY_VIEWABLE or inp.dtype not in _NUMPY_VIEWABLE:
        previous = torch.get_num_threads()
        torch.set_num_threads(1)  # other dtypes (bfloat16): the original kernel, on one thread, is race-free
        try:
            SPCONV_ORIGINAL_SCATTER_ADD(out, inp, inds)
        finally:
            torch.set_num_threads(previous)
        return
    rows = _as_torch(inds).long()
    _as_torch(out).index_add_(0, rows, _as_torch(inp)[:count])


def _contiguous_indices_init(init):
    def __init__(self, features, indices, *args, **kwargs):
        init(self, features, indices.contiguous(), *args, **kwargs)

    __init__.__wrapped__ = init
    return __init__


def _cpu_bias_forward(forward):
    def forward_(self, input, add_input=None):
        fusable = self.act_type == tv.gemm.Activation.None_ and not input.features.is_cuda
        if self.bias is not None and not self.training and fusable:
            # spconv's training branch adds the bias after the kernel; its inference branch would fuse it
            return self._conv_forward(True, input, self.weight, self.bias, add_input, name=self.name,
                                      sparse_unique_name=self._sparse_unique_name, act_type=self.act_type,
                                      act_alpha=self.act_alpha, act_beta=self.act_beta)
        return forward(self, input, add_input)

    forward_.__wrapped__ = forward
    return forward_


def _silence_fx_warning() -> None:
    """SparseConvTensor's fx metaclass calls torch's deprecated is_fx_tracing, which logs a warning once; log it to nowhere."""
    try:
        from torch.fx import _symbolic_trace
        warn_once = _symbolic_trace.is_fx_tracing_warning
    except (ImportError, AttributeError):
        return
    logger = logging.getLogger(_symbolic_trace.__name__)
    disabled, logger.disabled = logger.disabled, True
    try:
        warn_once()  # lru-cached: the real call later does nothing
    finally:
        logger.disabled = disabled


def _apply_once() -> None:
    if getattr(spconv, "_cosmictagger_cpu_fixes", False):
        return
    # (1) backward on CPU-only torch called torch.cuda.current_stream(); modules that imported the name get it too
    for module in (_cppcore, _ops, _hash, _utils):
        module.get_current_stream = _current_stream
    # (2) spconv's kernels ignore strides: a non-contiguous index tensor gave wrong results with no error
    SparseConvTensor.__init__ = _contiguous_indices_init(SparseConvTensor.__init__)
    # (3) scatter_add_cpu races between OpenMP threads (shared row pointers); torch's index_add_ does the same sums safely
    SpconvOps.scatter_add_cpu = staticmethod(_scatter_add_cpu)
    # (4) in eval mode spconv fuses the bias into the kernel, which its CPU path refuses: add it afterwards
    SparseConvolution.forward = _cpu_bias_forward(SparseConvolution.forward)
    # noise only: a once-per-process deprecation warning from torch.fx on the first SparseConvTensor
    _silence_fx_warning()
    spconv._cosmictagger_cpu_fixes = True


def spconv_indices(indices: torch.Tensor) -> torch.Tensor:
    """Site indices as spconv reads them: int32 and contiguous."""
    return indices.to(torch.int32).contiguous()


_apply_once()
