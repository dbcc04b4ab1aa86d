"""The PyTorch 2D reference implementation: the UResNet trained as upstream defines it."""
from __future__ import annotations

import contextlib
import os
import pickle
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch
from omegaconf import DictConfig

from benchmark.config.schema import DataFormat, OptimizerKind
from benchmark.data.batch import VoxelBatch
from benchmark.errors import DataError
from benchmark.implementation import SINGLE, Implementation, ModelCost, Parallel, StepResult, published

from .confusion import confusion, predictions
from .cost import layer_table, measure_cost
from .data_parallel import data_parallel
from .host_memory import keep_freed_host_memory
from .loss import SegmentationLoss
from .runtime import PrecisionPolicy, cuda_copy_bandwidth_gb_s, device_type, select_device, set_threads
from .uresnet2d import UResNet, count_parameters


class TorchDense2D(Implementation):
    name = "torch-2D"

    @classmethod
    def check(cls, cfg: DictConfig) -> None:
        device_type(cfg.run.compute_mode)

    def __init__(self, cfg: DictConfig, image_shape: Tuple[int, int], parallel: Optional[Parallel] = None):
        self.cfg = cfg
        self.image_shape = tuple(image_shape)
        parallel = parallel or SINGLE
        self.device = select_device(cfg.run.compute_mode, parallel.local_rank)
        if self.device.type == "cpu":
            keep_freed_host_memory()  # the folded batch's large activations, without page faults and zeroing
        self.threads = set_threads(cfg.framework.intra_op_parallelism_threads, cfg.framework.inter_op_parallelism_threads,
                                   parallel.cores)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cudnn.benchmark_limit = 0  # autotune over every cuDNN algorithm, not the 10 first
        torch.manual_seed(cfg.run.seed)
        channels_last = cfg.data.data_format == DataFormat.channels_last
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = self._build().to(self.device, memory_format=self._model_memory_format(channels_last))
        self.policy = PrecisionPolicy(cfg.run.precision, self.device)
        self.scaler = self.policy.grad_scaler()
        self.optimizer = self._optimizer()
        self.training = data_parallel(self.model, parallel, self.device)
        self.evaluation_model = self.model  # the evaluation forward (the optimized path compiles it)
        self.accumulation = cfg.mode.optimizer.gradient_accumulation
        self._micro_batches = 0
        self.loss_fn = SegmentationLoss(cfg.mode.optimizer.loss_balance_scheme)
        self.confusion_fn = confusion
        # Conv kernels only: the L2 term is defined the same way in every framework.
        self._decayed = [m.weight for m in self.model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d))]

    def _build(self) -> torch.nn.Module:
        return UResNet(self.cfg.network)

    def _model_memory_format(self, channels_last: bool) -> torch.memory_format:
        return self.memory_format

    def _optimizer(self) -> torch.optim.Optimizer:
        params = self.model.parameters()
        # The harness sets the learning rate before every update.
        if self.cfg.mode.optimizer.name == OptimizerKind.rmsprop:
            return torch.optim.RMSprop(params, lr=0.0, eps=1e-4)
        return torch.optim.Adam(params, lr=0.0)

    # -- description -------------------------------------------------------
    def device_description(self) -> str:
        if self.device.type == "cuda":
            return f"{self.device} {torch.cuda.get_device_name(self.device)}"
        return f"cpu ({self.threads} threads)"

    def uses_accelerator(self) -> bool:
        return self.device.type == "cuda"

    def parameter_count(self) -> int:
        return count_parameters(self.model)

    def layer_summary(self) -> str:
        return layer_table(self._build, self.image_shape)

    def cost(self, image_shape: Tuple[int, int]) -> ModelCost:
        return measure_cost(self._build, image_shape)

    def describe(self) -> Dict[str, str]:
        info = {"framework": f"PyTorch {torch.__version__}"}
        if self.device.type == "cuda":
            info["cuda"] = str(torch.version.cuda)
            info["cudnn"] = str(torch.backends.cudnn.version())
        return info

    # -- steps -------------------------------------------------------------
    def _to_device(self, batch: VoxelBatch) -> Tuple[torch.Tensor, torch.Tensor]:
        """Scatter the voxels into dense tensors on the device (uint8 labels)."""
        flat = self._host(batch.flat_index()).to(self.device, non_blocking=True)
        image = self._scatter(batch, flat, batch.value, torch.float32)
        return image.contiguous(memory_format=self.memory_format), self._scatter(batch, flat, batch.label, torch.uint8)

    def _scatter(self, batch: VoxelBatch, flat: torch.Tensor, values: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
        """A dense [B, 3, H, W] tensor on the device: `values` at the voxels' flat indices `flat`, zero elsewhere."""
        h, w = batch.image_shape
        dense = torch.zeros(batch.batch_size * 3 * h * w, dtype=dtype, device=self.device)
        dense[flat] = self._host(values).to(self.device, non_blocking=True)
        return dense.view(batch.batch_size, 3, h, w)

    def _host(self, array: np.ndarray) -> torch.Tensor:
        """A host tensor for a copy to the device: pinned for CUDA, so the copy runs asynchronously."""
        tensor = torch.from_numpy(array)
        return tensor.pin_memory() if self.device.type == "cuda" else tensor

    def _l2_penalty(self) -> torch.Tensor:
        return self.cfg.network.weight_decay * sum(w.pow(2).sum() for w in self._decayed)

    def _forward(self, model: torch.nn.Module, batch: VoxelBatch) -> Tuple[torch.Tensor, torch.Tensor]:
        """(logits [B, 3, 3, H, W], labels [B, 3, H, W]) of `batch` through `model`, under the precision's autocast."""
        image, label = self._to_device(batch)
        with self.policy.autocast():
            return model(image), label

    def accumulate(self, batch: VoxelBatch, weight: float) -> StepResult:
        self.model.train()
        self._micro_batches += 1
        with self.training.backward_context(self._micro_batches % self.accumulation == 0):
            logits, label = self._forward(self.training.train_model, batch)
            loss = self.loss_fn(logits, label)
            total = loss + self._l2_penalty() if self.cfg.network.weight_decay > 0 else loss
            self.scaler.scale(total * weight).backward()
        return StepResult(loss=loss.detach(), confusion=self.confusion_fn(logits.detach(), label))

    def apply_update(self, learning_rate: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate
        self.training.before_update(self.model.parameters())
        self._micro_batches = 0
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)

    @torch.no_grad()
    def evaluate(self, batch: VoxelBatch, with_predictions: bool = False) -> StepResult:
        self.model.eval()
        logits, label = self._forward(self.evaluation_model, batch)
        return StepResult(
            loss=self.loss_fn(logits, label),
            confusion=self.confusion_fn(logits, label),
            predictions=predictions(logits) if with_predictions else None,
        )

    def fetch(self, value: Any) -> np.ndarray:
        return value.detach().cpu().numpy()

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextlib.contextmanager
    def profile_steps(self, directory: str):
        """torch.profiler over the steps inside; a Chrome trace and an operator table."""
        activities = [torch.profiler.ProfilerActivity.CPU]
        if self.device.type == "cuda":
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        with torch.profiler.profile(activities=activities, record_shapes=False) as profiler:
            yield
        profiler.export_chrome_trace(os.path.join(directory, "torch_trace.json"))
        sort = "self_device_time_total" if self.device.type == "cuda" else "self_cpu_time_total"
        with open(os.path.join(directory, "torch_operators.txt"), "w") as handle:
            handle.write(profiler.key_averages().table(sort_by=sort, row_limit=40))

    def peak_memory_bytes(self) -> int:
        if self.device.type == "cuda":
            # Reserved, not allocated: CUDA graphs' private pools are allocated once, while recording,
            # and are invisible to the allocated peak of the replays that follow.
            return torch.cuda.max_memory_reserved(self.device)
        return super().peak_memory_bytes()

    def reset_peak_memory(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()  # cached blocks nothing uses (cuDNN's autotuning workspaces) are not the peak
            torch.cuda.reset_peak_memory_stats(self.device)

    def memory_bandwidth_gb_s(self) -> Optional[float]:
        return cuda_copy_bandwidth_gb_s(self.device) if self.device.type == "cuda" else None

    # -- state -------------------------------------------------------------
    def save(self, path: str) -> None:
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": torch.get_rng_state(),
        }
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        with published(path) as temporary:  # a crash never leaves a half-written checkpoint
            torch.save(state, temporary)

    def load(self, path: str, weights_only: bool = False) -> None:
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
            self.model.load_state_dict(state["model"])
        except FileNotFoundError as exc:
            raise DataError(f"{path}: no such checkpoint") from exc
        except pickle.UnpicklingError as exc:  # torch's own text here advises weights_only=False, which is no fix
            raise DataError(f"{path}: not a checkpoint written by this benchmark (it holds more than tensors "
                            "and plain containers, or is not a pickle)") from exc
        except Exception as exc:  # a truncated file, another model, not a checkpoint
            raise DataError(f"{path}: not a checkpoint of this network ({type(exc).__name__}: {_first_problem(exc)})") from exc
        if weights_only:
            return
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"].cpu())
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), self.device)

    def export_weights(self) -> Dict[str, np.ndarray]:
        # copy=True: on the CPU in float32 the conversion would otherwise alias the live weights
        return {key: value.detach().to("cpu", torch.float32, copy=True).numpy()
                for key, value in self.model.state_dict().items() if not key.endswith("num_batches_tracked")}

    def import_weights(self, weights: Dict[str, np.ndarray]) -> None:
        state = {key: torch.from_numpy(np.asarray(value)) for key, value in weights.items()}
        try:
            result = self.model.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # a shape mismatch
            raise DataError(f"the weights do not fit {self.name} with this network configuration ({str(exc)[:300]})") from exc
        missing = [key for key in result.missing_keys if not key.endswith("num_batches_tracked")]
        if missing or result.unexpected_keys:
            raise DataError(f"the weights do not fit {self.name} with this network configuration "
                            f"(missing {missing[:5]}, unexpected {result.unexpected_keys[:5]})")

    def checkpoint_suffix(self) -> str:
        return ".pt"


def _first_problem(exc: Exception, width: int = 200) -> str:
    """The first line of `exc` that says what is wrong: load_state_dict's first line only announces a list."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [""]
    first = lines[1] if lines[0].endswith(":") and len(lines) > 1 else lines[0]
    return first[:width]


class TorchDense3D(TorchDense2D):
    """The 3D variant: planes as a depth axis of 3, mixed only in the deepest block."""

    name = "torch-3D"

    def _build(self) -> torch.nn.Module:
        from .uresnet3d import UResNet3D

        return UResNet3D(self.cfg.network)

    def _model_memory_format(self, channels_last: bool) -> torch.memory_format:
        # 5-D weights: channels_last_3d is the 3-D counterpart of NHWC.
        return torch.channels_last_3d if channels_last else torch.contiguous_format


class _Compiled:
    """The reference models, executed by torch.compile.

    Shared with the reference: the model definition (2D: per-plane batch
    statistics, as upstream), the weights' layout and checkpoints, the
    optimizer, loss and metrics; so it computes the same function. Different:
    how the work is done. The 2D model's bilinear upsampling is written
    pointwise (the same function; its compiled backward needs no atomics), the
    per-plane batch norm is plain ops that Inductor fuses, and the training and
    evaluation forwards are compiled (on CUDA in "reduce-overhead" mode, i.e.
    CUDA graphs over the static shapes).
    """

    def _compile(self) -> None:
        mode = self.cfg.framework.compile_mode.value
        if mode == "auto":
            mode = "reduce-overhead" if self.device.type == "cuda" else "default"
        if (self.device.type == "cpu" and torch.backends.cpu.get_cpu_capability() == "AVX512"
                and self.cfg.network.n_initial_filters < 16):
            # Channels_last rows of 8 channels fill half an AVX-512 vector: Inductor's kernels over them run
            # faster 256 bits wide (a21 at 640x1024 on 2 AVX-512 cores, alternating runs: 0.66 and 0.69
            # images/s against 0.55 and 0.62). Process-wide, as Inductor's settings are.
            import torch._inductor.config as inductor_config
            inductor_config.cpp.simdlen = 256
        self.training.train_model = torch.compile(self.training.train_model, mode=mode, dynamic=False)
        self.evaluation_model = torch.compile(self.model, mode=mode, dynamic=False)
        # Loss and confusion counts: a few fused kernels instead of some thirty eager ones per step
        # (without CUDA graphs, whose outputs a later replay would overwrite while the harness still holds them).
        self.loss_fn = torch.compile(self.loss_fn, dynamic=False)
        self.confusion_fn = torch.compile(confusion, dynamic=False)


class TorchOptimized2D(_Compiled, TorchDense2D):
    name = "torch-2D-optimized"

    def __init__(self, cfg: DictConfig, image_shape: Tuple[int, int], parallel: Optional[Parallel] = None):
        super().__init__(cfg, image_shape, parallel)
        self._compile()

    def _build(self) -> torch.nn.Module:
        return UResNet(self.cfg.network, pointwise_upsampling=True, project_first=True)


class TorchOptimized3D(_Compiled, TorchDense3D):
    """The 3D model compiled (its BatchNorm3d pools the planes, in both paths, as upstream's 3D network does)."""

    name = "torch-3D-optimized"

    def __init__(self, cfg: DictConfig, image_shape: Tuple[int, int], parallel: Optional[Parallel] = None):
        super().__init__(cfg, image_shape, parallel)
        self._compile()
