"""Tasks behind one protocol (:class:`~polydistill.tasks.base.Task`), one module each, found by name."""

from polydistill.tasks.base import EvaluationSet, Task, TaskData, TrainedModels, get_task, register_task, task_names

__all__ = ["EvaluationSet", "Task", "TaskData", "TrainedModels", "get_task", "register_task", "task_names"]
