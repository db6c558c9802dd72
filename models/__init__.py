"""What a model is: the recurrent sequence model, checkpoint I/O and the task zoo."""

from models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from models.errors import (
    BudgetExceeded,
    CheckpointError,
    ConfigError,
    DataError,
    ExportError,
    InvariantError,
    ParityError,
    ReportError,
    RnnCompressError,
)
from models.progress import SILENT, Progress
from models.sequence import GATES, ModelConfig, SequenceModel
from models.tasks import TASKS, Task, TaskData, make_task, task_from_checkpoint

__all__ = [
    "Checkpoint", "load_checkpoint", "save_checkpoint", "ModelConfig", "SequenceModel", "GATES",
    "RnnCompressError", "ConfigError", "DataError", "CheckpointError", "ExportError", "ParityError",
    "ReportError", "BudgetExceeded", "InvariantError", "Progress", "SILENT",
    "TASKS", "Task", "TaskData", "make_task", "task_from_checkpoint",
]
