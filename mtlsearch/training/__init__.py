"""Training and evaluation shared by every strategy."""
from .evaluate import evaluate
from .trainer import TrainConfig, Trainer, TrainingDiverged, device_for, seed_everything

__all__ = ["evaluate", "TrainConfig", "Trainer", "TrainingDiverged", "device_for", "seed_everything"]
