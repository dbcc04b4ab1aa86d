"""TensorFlow for the tests: quiet, two threads. A missing TensorFlow must fail, not skip."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import tensorflow as tf  # noqa: E402

try:  # must precede the first TF op; an error if another test already started TF
    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(1)
except RuntimeError:
    pass
tf.get_logger().setLevel("ERROR")
