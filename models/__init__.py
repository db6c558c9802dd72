"""What a model is: the recurrent sequence model, checkpoint I/O and the task zoo."""

from models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from models.errors import (
    BudgetExceeded,
    CheckpointError,
    ConfigError,
    DataError,
    ExportError,
    ParityError,
    ReportError,
    RnnCompressError,
)
from models.sequence import GATES, ModelConfig, SequenceModel

__all__ = [
    "Checkpoint", "load_checkpoint", "save_checkpoint", "ModelConfig", "SequenceModel", "GATES",
    "RnnCompressError", "ConfigError", "DataError", "CheckpointError", "ExportError", "ParityError",
    "ReportError", "BudgetExceeded",
]
