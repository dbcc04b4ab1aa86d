"""The configuration tree: every key, its type, default and allowed values.

The names and defaults follow the listing of the original CosmicTagger
(`-- CONFIG --`), with two deliberate changes: `framework.name` defaults to
torch and `run.compute_mode` defaults to `auto`. OmegaConf checks types and
enumerations against these dataclasses; `help` strings feed `--help`.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Dict

from omegaconf import MISSING


class ModeKind(enum.Enum):
    train = "train"
    iotest = "iotest"
    inference = "inference"
    summary = "summary"


class FrameworkKind(enum.Enum):
    torch = "torch"
    tensorflow = "tensorflow"


class DistributedMode(enum.Enum):
    DDP = "DDP"
    horovod = "horovod"


class ComputeMode(enum.Enum):
    auto = "auto"
    CPU = "CPU"
    GPU = "GPU"


class Precision(enum.Enum):
    float32 = "float32"
    tf32 = "tf32"
    mixed = "mixed"
    bfloat16 = "bfloat16"


class Validation(enum.Enum):
    batch = "batch"
    full = "full"


class DataFormat(enum.Enum):
    channels_last = "channels_last"
    channels_first = "channels_first"


class OptimizerKind(enum.Enum):
    adam = "adam"
    rmsprop = "rmsprop"


class LossBalanceScheme(enum.Enum):
    none = "none"
    light = "light"
    even = "even"
    focal = "focal"


class LRSchedule(enum.Enum):
    reference = "reference"
    flat = "flat"
    warmup_cosine = "warmup_cosine"


class Connection(enum.Enum):
    concat = "concat"
    sum = "sum"
    none = "none"


class GrowthRate(enum.Enum):
    additive = "additive"
    multiplicative = "multiplicative"


class Downsampling(enum.Enum):
    max_pooling = "max_pooling"
    convolutional = "convolutional"


class Upsampling(enum.Enum):
    interpolation = "interpolation"
    convolutional = "convolutional"


class CompileMode(enum.Enum):
    auto = "auto"  # reduce-overhead (CUDA graphs) on CUDA, default elsewhere
    default = "default"
    reduce_overhead = "reduce-overhead"
    max_autotune = "max-autotune"
    max_autotune_no_cudagraphs = "max-autotune-no-cudagraphs"


class ConvMode(enum.Enum):
    conv_2D = "2D"
    conv_3D = "3D"
    sparse = "sparse"


def _doc(text: str) -> dict:
    return {"help": text}


@dataclass
class DataConfig:
    aux_file: str = field(default="cosmic_tagging_test.h5", metadata=_doc("file used for validation during training (the original's default is the test set)"))
    data_directory: str = field(default="/grand/projects/datascience/cadams/datasets/SBND/", metadata=_doc("folder holding data.file and data.aux_file"))
    data_format: DataFormat = field(default=DataFormat.channels_last, metadata=_doc("memory layout of image tensors"))
    downsample: int = field(default=1, metadata=_doc("images are reduced by 2^downsample per axis (charge: block mean, label: block max)"))
    file: str = field(default="cosmic_tagging_train.h5", metadata=_doc("training file (inference: the file to evaluate)"))
    synthetic: bool = field(default=False, metadata=_doc("generated sparse events instead of files (see data.synthetic_pool)"))
    seed: int = field(default=0, metadata=_doc("seed of the data order and of synthetic events; 0 draws one from the clock (logged)"))
    max_voxels: int = field(default=0, metadata=_doc("most charged voxels a plane may hold at full resolution (0: no limit); more stops the run, nothing is truncated"))
    workers: int = field(default=2, metadata=_doc("background workers preparing batches ahead (threads; see worker_processes)"))
    worker_processes: bool = field(default=False, metadata=_doc("workers are processes: parallel HDF5 reads, but batches are pickled (a synthetic pool is gathered by threads)"))
    synthetic_events: int = field(default=0, metadata=_doc("events per synthetic split (0: the real dataset's 43,075 training / 7,362 validation)"))
    aux_events: int = field(default=0, metadata=_doc("validate on the first this many events of data.aux_file (0: all), a fixed subset"))
    synthetic_pool: int = field(default=512, metadata=_doc("synthetic events per split made once, before run_start, at the run's resolution and cycled (entry e is pool event e mod N), so a batch costs a gather and the input side outpaces any accelerator; 0: every event made when read (all distinct)"))


@dataclass
class FrameworkConfig:
    distributed_mode: DistributedMode = field(default=DistributedMode.DDP, metadata=_doc("run.distributed: DDP (PyTorch's DistributedDataParallel; NCCL on GPUs, gloo on CPUs) or horovod (PyTorch and TensorFlow)"))
    environment_variables: Dict[str, str] = field(default_factory=lambda: {"TF_XLA_FLAGS": "--tf_xla_auto_jit=2"}, metadata=_doc("exported before the framework is imported"))
    inter_op_parallelism_threads: int = field(default=2, metadata=_doc("threads running independent operations (0: framework default)"))
    intra_op_parallelism_threads: int = field(default=24, metadata=_doc("threads inside one operation (0: framework default)"))
    name: FrameworkKind = field(default=FrameworkKind.torch, metadata=_doc("deep learning framework"))
    optimized: bool = field(default=False, metadata=_doc("torch: the same model and function through the fast path (torch.compile; CUDA graphs on a GPU)"))
    compile_mode: CompileMode = field(default=CompileMode.auto, metadata=_doc("framework.optimized: torch.compile's mode for the model (auto: reduce-overhead on CUDA, default elsewhere)"))
    xla: bool = field(default=False, metadata=_doc("tensorflow: compile the training and evaluation steps with XLA"))


@dataclass
class OptimizerConfig:
    gradient_accumulation: int = field(default=1, metadata=_doc("forward/backward passes of run.minibatch_size images per weight update"))
    learning_rate: float = field(default=0.0003, metadata=_doc("peak learning rate"))
    loss_balance_scheme: LossBalanceScheme = field(default=LossBalanceScheme.light, metadata=_doc("per-pixel loss weights"))
    name: OptimizerKind = field(default=OptimizerKind.adam, metadata=_doc("optimizer"))
    lr_schedule: LRSchedule = field(default=LRSchedule.reference, metadata=_doc("reference: linear warm-up over epoch 0, flat to epoch 21, then exponential decay; flat: constant; warmup_cosine: linear warm-up over warmup_epochs, then a cosine down to final_lr_fraction x learning_rate at decay_end_epoch, constant after"))
    warmup_epochs: float = field(default=0.5, metadata=_doc("lr_schedule=warmup_cosine: epochs of linear warm-up from 0 to learning_rate"))
    decay_end_epoch: float = field(default=4.0, metadata=_doc("lr_schedule=warmup_cosine: epoch where the cosine decay ends (> warmup_epochs)"))
    final_lr_fraction: float = field(default=0.01, metadata=_doc("lr_schedule=warmup_cosine: the rate at and after decay_end_epoch, as a fraction of learning_rate (0 to 1)"))


@dataclass
class ModeConfig:
    checkpoint_iteration: int = field(default=500, metadata=_doc("steps between checkpoints (0: none)"))
    logging_iteration: int = field(default=1, metadata=_doc("steps between metric lines and CSV rows"))
    name: ModeKind = field(default=ModeKind.train, metadata=_doc("what to run"))
    no_summary_images: bool = field(default=False, metadata=_doc("kept for compatibility with the original; this harness writes no summary images"))
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    summary_iteration: int = field(default=1, metadata=_doc("kept for compatibility with the original; metrics go to CSV every logging_iteration"))
    weights_location: str = field(default="", metadata=_doc("checkpoint to start from (inference: the weights to evaluate)"))


@dataclass
class NetworkConfig:
    batch_norm: bool = field(default=True, metadata=_doc("batch normalisation after each convolution"))
    bias: bool = field(default=True, metadata=_doc("convolutions carry a bias"))
    block_concat: bool = field(default=False, metadata=_doc("deepest block per plane (no cross-plane mixing)"))
    blocks_deepest_layer: int = field(default=5, metadata=_doc("blocks in the deepest layer"))
    blocks_final: int = field(default=5, metadata=_doc("blocks after the U-Net at full resolution"))
    blocks_per_layer: int = field(default=2, metadata=_doc("blocks on each side of every level"))
    bottleneck_deepest: int = field(default=256, metadata=_doc("channels in the deepest layer"))
    connections: Connection = field(default=Connection.concat, metadata=_doc("skip connections between the down and up paths"))
    conv_mode: ConvMode = field(default=ConvMode.conv_2D, metadata=_doc("2D: planes through shared 2D convolutions; 3D: planes as a depth axis; sparse: submanifold convolutions on the charged pixels (torch, spconv)"))
    data_format: DataFormat = field(default=DataFormat.channels_last, metadata=_doc("kept for compatibility with the original; the layout is data.data_format"))
    downsampling: Downsampling = field(default=Downsampling.max_pooling, metadata=_doc("how each level halves the resolution"))
    filter_size_deepest: int = field(default=5, metadata=_doc("kernel size in the deepest layer"))
    growth_rate: GrowthRate = field(default=GrowthRate.additive, metadata=_doc("channels per level: +n_initial_filters or x2"))
    n_initial_filters: int = field(default=16, metadata=_doc("channels at full resolution"))
    name: str = field(default="uresnet", metadata=_doc("preset the network started from"))
    network_depth: int = field(default=6, metadata=_doc("number of halvings"))
    residual: bool = field(default=True, metadata=_doc("residual blocks (two convolutions and a shortcut) instead of single convolutions"))
    upsampling: Upsampling = field(default=Upsampling.interpolation, metadata=_doc("how each level doubles the resolution"))
    weight_decay: float = field(default=0.0, metadata=_doc("L2 weight decay, applied the same way in every framework"))


@dataclass
class RunConfig:
    aux_iterations: int = field(default=10, metadata=_doc("steps between validations on data.aux_file (0: none)"))
    validation: Validation = field(default=Validation.batch, metadata=_doc("batch: one batch of aux_minibatch_size per validation (the original); full: every event of data.aux_file"))
    benchmark: str = field(default="", metadata=_doc("the benchmark whose rules this run follows (closed, mini, throughput; set with benchmark=NAME); empty: none"))
    system: str = field(default="", metadata=_doc("system description (systems/NAME.json or a path) named in the MLPerf log"))
    aux_minibatch_size: int = field(default=16, metadata=_doc("images per validation"))
    compute_mode: ComputeMode = field(default=ComputeMode.auto, metadata=_doc("auto: the GPU when one is present"))
    distributed: bool = field(default=False, metadata=_doc("data-parallel over the ranks of mpirun, srun or torchrun"))
    distributed_port: int = field(default=29500, metadata=_doc("TCP port of the rendezvous on rank 0's host (mpirun/srun; torchrun sets its own); instance k uses port + k"))
    distributed_timeout: int = field(default=600, metadata=_doc("seconds a rank waits in a collective before the job is ended"))
    instances: int = field(default=1, metadata=_doc("weak scaling: concurrent benchmark instances in one job, each on world size / instances ranks with its own seeds and log"))
    id: str = field(default=MISSING, metadata=_doc("name of the run (required); output goes to run.output_dir"))
    iterations: int = field(default=50, metadata=_doc("training steps (inference/iotest: batches)"))
    minibatch_size: int = field(default=16, metadata=_doc("images per forward pass, over all ranks"))
    output_dir: str = field(default="output/{framework}/{network}/{id}/", metadata=_doc("where the configuration, metrics and checkpoints go ({framework}, {network} and {id} are filled in)"))
    precision: Precision = field(default=Precision.float32, metadata=_doc("float32, tf32 (GPU), mixed (float16 autocast + loss scaling), bfloat16 (autocast, float32 weights)"))
    profile: bool = field(default=False, metadata=_doc("profile the training loop"))
    seed: int = field(default=0, metadata=_doc("seed of weights and framework randomness; 0 draws one from the clock (logged)"))


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    framework: FrameworkConfig = field(default_factory=FrameworkConfig)
    mode: ModeConfig = field(default_factory=ModeConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    run: RunConfig = field(default_factory=RunConfig)
