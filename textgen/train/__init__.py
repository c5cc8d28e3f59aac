"""Training: the task-agnostic loop (`loop.train`), the learning-rate schedule and optimizer, checkpoints
(atomic save, weights_only load) and data parallelism across ranks."""
