"""The TensorFlow implementations: the Keras twins of the torch UResNets (2D, 3D) behind the harness interface.

They mirror `implementations.torch.implementation.TorchDense2D`/`3D`: the same
optimizers with torch's update rules (written out here, since Keras' Adam
and RMSprop place epsilon differently), the L2 term over conv kernels added
to the loss, gradient accumulation in non-trainable variables, float32
weights in every precision, and voxels scattered into dense tensors on the
device. `framework.xla` compiles the training and evaluation steps with
XLA (`jit_compile`); the optimizer update stays outside, as it is cheap.
"""
from __future__ import annotations

import contextlib
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf
import keras
from omegaconf import DictConfig

from benchmark.config.schema import ComputeMode, OptimizerKind, Precision
from benchmark.data.batch import N_PLANES, VoxelBatch
from benchmark.errors import BenchmarkError, ConfigError, DataError
from benchmark.implementation import SINGLE, Implementation, ModelCost, Parallel, StepResult, published

from .confusion import confusion, predictions
from .convert import keras_to_arrays, torch_to_keras
from .loss import SegmentationLoss
from .uresnet2d import build_uresnet, count_parameters

_FORMAT_VERSION = 1


def set_threads(intra: int, inter: int, cores: int) -> int:
    """Apply the thread settings, capped at this rank's `cores`; ignored once TF has started."""
    threads = min(intra, cores) if intra > 0 else cores
    with contextlib.suppress(RuntimeError):
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    if inter > 0:
        with contextlib.suppress(RuntimeError):
            tf.config.threading.set_inter_op_parallelism_threads(min(inter, cores))
    return threads


def _horovod(parallel: Optional[Parallel]):
    """horovod.tensorflow, initialised on the instance's ranks; None for one process."""
    if parallel is None or not parallel.distributed:
        return None
    try:
        import horovod.tensorflow as hvd
    except ImportError as exc:
        raise BenchmarkError(f"framework.distributed_mode=horovod but horovod.tensorflow cannot be imported ({exc})") from exc
    hvd.init(comm=parallel.mpi_comm)
    return hvd


def select_device(compute_mode: ComputeMode, local_rank: int = 0) -> str:
    """The CPU, or the GPU of this rank on its node (`local_rank` modulo the GPUs visible)."""
    gpus = tf.config.list_physical_devices("GPU")
    if compute_mode == ComputeMode.CPU:
        return "/CPU:0"
    if gpus:
        return f"/GPU:{local_rank % len(gpus)}"
    if compute_mode == ComputeMode.GPU:
        raise BenchmarkError("run.compute_mode=GPU but tensorflow sees no GPU (use run.compute_mode=CPU or auto)")
    return "/CPU:0"


def is_gpu(device: str) -> bool:
    """Whether a TensorFlow device string ("/GPU:0", "/device:GPU:1", "/CPU:0") names a GPU."""
    return tf.DeviceSpec.from_string(device).device_type == "GPU"


class TorchAdam(keras.optimizers.Optimizer):
    """Adam exactly as torch.optim.Adam computes it (eps added to sqrt(v)/sqrt(1-b2^t))."""

    def __init__(self, beta_1=0.9, beta_2=0.999, epsilon=1e-8, name="torch_adam", **kwargs):
        super().__init__(learning_rate=0.0, name=name, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._m = [self.add_variable_from_reference(v, "m") for v in var_list]
        self._v = [self.add_variable_from_reference(v, "v") for v in var_list]

    def update_step(self, gradient, variable, learning_rate):
        lr = tf.cast(learning_rate, variable.dtype)
        g = tf.cast(gradient, variable.dtype)
        t = tf.cast(self.iterations + 1, variable.dtype)
        index = self._get_variable_index(variable)
        m, v = self._m[index], self._v[index]
        self.assign(m, m + (g - m) * (1.0 - self.beta_1))
        self.assign(v, v * self.beta_2 + (1.0 - self.beta_2) * g * g)
        step_size = lr / (1.0 - tf.pow(tf.constant(self.beta_1, variable.dtype), t))
        bias_correction2_sqrt = tf.sqrt(1.0 - tf.pow(tf.constant(self.beta_2, variable.dtype), t))
        denom = tf.sqrt(v) / bias_correction2_sqrt + self.epsilon
        self.assign_sub(variable, step_size * m / denom)


class TorchRMSprop(keras.optimizers.Optimizer):
    """RMSprop exactly as torch.optim.RMSprop computes it (eps added to sqrt(avg))."""

    def __init__(self, alpha=0.99, epsilon=1e-4, name="torch_rmsprop", **kwargs):
        super().__init__(learning_rate=0.0, name=name, **kwargs)
        self.alpha, self.epsilon = alpha, epsilon

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._square_avg = [self.add_variable_from_reference(v, "square_avg") for v in var_list]

    def update_step(self, gradient, variable, learning_rate):
        lr = tf.cast(learning_rate, variable.dtype)
        g = tf.cast(gradient, variable.dtype)
        avg = self._square_avg[self._get_variable_index(variable)]
        self.assign(avg, avg * self.alpha + (1.0 - self.alpha) * g * g)
        self.assign_sub(variable, lr * g / (tf.sqrt(avg) + self.epsilon))


_POLICIES = {Precision.float32: "float32", Precision.tf32: "float32",
             Precision.mixed: "mixed_float16", Precision.bfloat16: "mixed_bfloat16"}


class TensorFlowDense2D(Implementation):
    name = "tensorflow-2D"

    @classmethod
    def check(cls, cfg: DictConfig) -> None:
        select_device(cfg.run.compute_mode)

    def __init__(self, cfg: DictConfig, image_shape: Tuple[int, int], parallel: Optional[Parallel] = None):
        self.cfg = cfg
        self.image_shape = tuple(image_shape)
        parallel = parallel or SINGLE
        self.threads = set_threads(cfg.framework.intra_op_parallelism_threads, cfg.framework.inter_op_parallelism_threads,
                                   parallel.cores)
        self.hvd = _horovod(parallel)
        self.device = select_device(cfg.run.compute_mode, parallel.local_rank)
        self.precision = Precision(cfg.run.precision)
        if is_gpu(self.device):
            # TF enables TF32 by default; float32 means true float32 as in torch.
            tf.config.experimental.enable_tensor_float_32_execution(self.precision != Precision.float32)
        keras.utils.set_random_seed(cfg.run.seed)
        with tf.device(self.device):
            self.model = self._build()
            self.trainable = list(self.model.trainable_variables)
            self.inner_optimizer = self._optimizer()
            if self.precision == Precision.mixed:
                self.optimizer = keras.optimizers.LossScaleOptimizer(self.inner_optimizer)
            else:
                self.optimizer = self.inner_optimizer
            self.optimizer.build(self.trainable)
            self.accumulators = [tf.Variable(tf.zeros_like(v), trainable=False, name=f"accumulated_{i}")
                                 for i, v in enumerate(self.trainable)]
            if self.hvd is not None:  # every rank starts from rank 0's weights
                for variable in self.model.weights:
                    variable.assign(self.hvd.broadcast(tf.convert_to_tensor(variable), root_rank=0))
        self.loss_fn = SegmentationLoss(cfg.mode.optimizer.loss_balance_scheme)
        # Conv kernels only (not transposed ones): the L2 term is defined the same way in every framework.
        self._decayed = [layer.kernel for layer in self.model.layers
                         if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv3D))]
        self.weight_decay = float(cfg.network.weight_decay)
        jit_compile = bool(cfg.framework.xla)
        self._train_step = tf.function(self._train_step_fn, jit_compile=jit_compile, reduce_retracing=True)
        self._eval_step = tf.function(self._eval_step_fn, jit_compile=jit_compile, reduce_retracing=True)
        self._apply = tf.function(self._apply_fn, jit_compile=False)

    def _build(self) -> keras.Model:
        policy = keras.config.dtype_policy()
        keras.config.set_dtype_policy(_POLICIES[self.precision])
        try:
            return self._network()
        finally:
            keras.config.set_dtype_policy(policy)

    def _network(self) -> keras.Model:
        return build_uresnet(self.cfg.network)

    def _optimizer(self) -> keras.optimizers.Optimizer:
        # The harness sets the learning rate before every update.
        if self.cfg.mode.optimizer.name == OptimizerKind.rmsprop:
            return TorchRMSprop()
        return TorchAdam()

    # -- description -------------------------------------------------------
    def uses_accelerator(self) -> bool:
        return is_gpu(self.device)

    def device_description(self) -> str:
        if is_gpu(self.device):
            details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
            return f"{self.device} {details.get('device_name', 'GPU')}"
        return f"cpu ({self.threads} threads)"

    def parameter_count(self) -> int:
        return count_parameters(self.model)

    def _shapes(self, image_shape: Tuple[int, int]) -> List[Tuple[keras.layers.Layer, Tuple[int, ...]]]:
        """(layer, output shape for one event) of every layer, computed symbolically."""
        probe_layers = [layer for layer in self.model.layers if not isinstance(layer, keras.layers.InputLayer)]
        probe = keras.Model(self.model.inputs, [layer.output for layer in probe_layers])
        specs = probe.compute_output_spec(keras.KerasTensor((1, N_PLANES, *image_shape)))
        return [(layer, tuple(spec.shape)) for layer, spec in zip(probe_layers, specs)]

    def layer_summary(self) -> str:
        lines = [f"{'layer':<60} {'type':<18} {'output (per image)':<24} {'parameters':>10}"]
        for layer, shape in self._shapes(self.image_shape):
            params = sum(int(np.prod(w.shape)) for w in layer.trainable_weights)
            lines.append(f"{layer.name:<60} {type(layer).__name__:<18} {str(list(shape)):<24} {params:>10}")
        lines.append(f"total trainable parameters: {self.parameter_count()}")
        return "\n".join(lines)

    def cost(self, image_shape: Tuple[int, int]) -> ModelCost:
        """FLOP and activation bytes per image, counted analytically at `image_shape`.

        Forward FLOP: 2 x kernel volume x Cin x Cout per output pixel of every
        convolution (per input pixel of every transposed one) over the shapes
        the layer sees for one event (2D: 3 folded planes, the plane-mixing
        deepest block sees the event once; 3D: the plane axis is part of the
        shape); other layers (norms, activations, adds) are not counted. Training: estimated as 3 x forward,
        not counted (the cost says so). Activation bytes approximate the
        tensors kept for backward as the sum of every layer's output size in
        float32, whatever the precision.
        """
        forward = 0.0
        activations = 0.0
        for layer, shape in self._shapes(tuple(image_shape)):
            elements = float(np.prod(shape))
            activations += 4.0 * elements
            if isinstance(layer, (keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose)):
                k = int(np.prod(layer.kernel_size))
                cin = layer.kernel.shape[-1]
                inputs = elements / int(np.prod(layer.strides)) / layer.filters * cin
                forward += 2.0 * k * layer.filters * inputs
            elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv3D)):
                k = int(np.prod(layer.kernel_size))
                cin = layer.kernel.shape[-2]
                forward += 2.0 * k * cin * elements
        return ModelCost.from_forward(forward, activations)

    def describe(self) -> Dict[str, str]:
        return {"framework": f"TensorFlow {tf.__version__}", "keras": keras.__version__}

    # -- steps -------------------------------------------------------------
    def _dense(self, batch: VoxelBatch) -> Tuple[tf.Tensor, tf.Tensor]:
        """Scatter the voxels into dense tensors on the device (uint8 labels)."""
        h, w = batch.image_shape
        shape = (batch.batch_size, N_PLANES, h, w)
        flat = tf.constant(batch.flat_index()[:, None])
        size = tf.constant([batch.batch_size * N_PLANES * h * w], tf.int64)
        image = tf.scatter_nd(flat, tf.constant(batch.value), size)
        label = tf.scatter_nd(flat, tf.constant(batch.label), size)
        return tf.reshape(image, shape), tf.reshape(label, shape)

    def _l2_penalty(self):
        return self.weight_decay * tf.add_n([tf.reduce_sum(tf.square(w)) for w in self._decayed])

    def _train_step_fn(self, image, label, weight):
        with tf.GradientTape() as tape:
            logits = self.model(image, training=True)
            loss = self.loss_fn(logits, label)
            total = loss + self._l2_penalty() if self.weight_decay > 0 else loss
            scaled = total * weight
            if self.precision == Precision.mixed:
                scaled = self.optimizer.scale_loss(scaled)
        gradients = tape.gradient(scaled, self.trainable)
        for accumulator, gradient in zip(self.accumulators, gradients):
            accumulator.assign_add(tf.cast(gradient, accumulator.dtype))
        return loss, confusion(logits, label)

    def _apply_fn(self, learning_rate):
        self.inner_optimizer.learning_rate.assign(learning_rate)
        gradients = [a.read_value() for a in self.accumulators]
        if self.hvd is not None:  # the mean over the ranks' equal shares: one update on the global batch
            gradients = [self.hvd.allreduce(g, op=self.hvd.Average) for g in gradients]
        self.optimizer.apply(gradients, self.trainable)
        for accumulator in self.accumulators:
            accumulator.assign(tf.zeros_like(accumulator))

    def _eval_step_fn(self, image, label):
        logits = self.model(image, training=False)
        return self.loss_fn(logits, label), confusion(logits, label), predictions(logits)

    def accumulate(self, batch: VoxelBatch, weight: float) -> StepResult:
        with tf.device(self.device):
            image, label = self._dense(batch)
            loss, counts = self._train_step(image, label, tf.constant(weight, tf.float32))
        return StepResult(loss=loss, confusion=counts)

    def apply_update(self, learning_rate: float) -> None:
        with tf.device(self.device):
            self._apply(tf.constant(learning_rate, tf.float32))

    def evaluate(self, batch: VoxelBatch, with_predictions: bool = False) -> StepResult:
        with tf.device(self.device):
            image, label = self._dense(batch)
            loss, counts, predicted = self._eval_step(image, label)
        return StepResult(loss=loss, confusion=counts, predictions=predicted if with_predictions else None)

    def fetch(self, value: Any) -> np.ndarray:
        return np.asarray(value.numpy() if hasattr(value, "numpy") else value)

    def synchronize(self) -> None:
        # Reading a value back waits for the queued work on its device.
        with tf.device(self.device):
            tf.constant(0.0).numpy()
        if hasattr(tf.experimental, "async_wait"):
            tf.experimental.async_wait()

    @contextlib.contextmanager
    def profile_steps(self, directory: str):
        """tf.profiler over the steps inside: a TensorBoard trace in `directory`/plugins/profile/<time>/*.xplane.pb."""
        tf.profiler.experimental.start(directory)
        try:
            yield
        finally:
            tf.profiler.experimental.stop()

    # -- state -------------------------------------------------------------
    def _model_variables(self) -> List[tf.Variable]:
        return list(self.model.weights)

    def _state_groups(self) -> Dict[str, List[tf.Variable]]:
        return {"model": self._model_variables(), "optimizer": list(self.optimizer.variables),
                "accumulated": self.accumulators}

    def save(self, path: str) -> None:
        arrays = {"format": np.asarray(_FORMAT_VERSION)}
        for group, variables in self._state_groups().items():
            for index, variable in enumerate(variables):
                arrays[f"{group}/{index}"] = np.asarray(variable.numpy())
        generator = tf.random.get_global_generator()
        arrays["rng/tf_global"] = generator.state.numpy()
        # a crash never leaves a half-written checkpoint; a file handle, since np.savez adds .npz to a name
        with published(path) as temporary, open(temporary, "wb") as handle:
            np.savez(handle, **arrays)

    def load(self, path: str, weights_only: bool = False) -> None:
        groups = self._state_groups()
        wanted = ["model"] if weights_only else list(groups)
        try:
            with np.load(path, allow_pickle=False) as archive:
                if int(archive["format"]) != _FORMAT_VERSION:
                    raise ValueError(f"checkpoint format {int(archive['format'])}")
                values = {}
                for group in wanted:
                    for index, variable in enumerate(groups[group]):
                        value = archive[f"{group}/{index}"]
                        if tuple(value.shape) != tuple(variable.shape):
                            raise ValueError(f"{group} variable {index} has shape {value.shape}, expected {tuple(variable.shape)}")
                        values[(group, index)] = value
                    if f"{group}/{len(groups[group])}" in archive.files:
                        raise ValueError(f"more {group} variables than this network has")
                rng = None if weights_only else archive["rng/tf_global"]
        except FileNotFoundError as exc:
            raise DataError(f"{path}: no such checkpoint") from exc
        except Exception as exc:  # a truncated file, another model, not a checkpoint
            raise DataError(f"{path}: not a checkpoint of this network ({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''})") from exc
        for (group, index), value in values.items():
            groups[group][index].assign(value)
        if rng is not None:
            tf.random.get_global_generator().reset(rng)

    def export_weights(self) -> Dict[str, np.ndarray]:
        return keras_to_arrays(self.model)

    def import_weights(self, weights: Dict[str, np.ndarray]) -> None:
        try:
            torch_to_keras(weights, self.model)
        except (KeyError, ValueError) as exc:
            raise DataError(f"the weights do not fit {self.name} with this network configuration ({str(exc)[:300]})") from exc

    def checkpoint_suffix(self) -> str:
        return ".tf.npz"


class TensorFlowDense3D(TensorFlowDense2D):
    """The 3D variant: planes as a depth axis of 3, mixed only in the deepest block."""

    name = "tensorflow-3D"

    @classmethod
    def check(cls, cfg: DictConfig) -> None:
        super().check(cfg)
        if Precision(cfg.run.precision) == Precision.mixed and not is_gpu(select_device(cfg.run.compute_mode)):
            # TensorFlow's CPU MaxPool3D has float32 and bfloat16 kernels only: the first step would fail
            raise ConfigError("run.precision=mixed: TensorFlow has no float16 3D max pooling on the CPU; use float32, "
                              "tf32 or bfloat16 with framework.name=tensorflow network.conv_mode=3D here")

    def _network(self) -> keras.Model:
        from .uresnet3d import build_uresnet3d

        return build_uresnet3d(self.cfg.network)
