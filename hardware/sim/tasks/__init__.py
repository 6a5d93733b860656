"""Simulated manipulation tasks for the SO-101: a registry, scene variations, scripted experts.

``get_task(name)`` -> a ``Task`` (``pick_place``, ``stack``, ``push``, ``insert``);
``task.reset(seed, spec)`` -> a ``TaskEnv``; ``run_episode(task, seed, spec)`` -> an ``Episode`` of the
scripted expert (joint targets, states, phase labels, success). See ``base``, ``expert``, ``runner``
and ``hardware.sim.variations``.
"""

from __future__ import annotations

from hardware.sim.tasks.base import CONTROL_HZ, Task, TaskEnv
from hardware.sim.tasks.expert import Episode, Expert, phase_labels
from hardware.sim.tasks.insert import InsertTask
from hardware.sim.tasks.pick_place import PickPlaceTask
from hardware.sim.tasks.push import PushTask
from hardware.sim.tasks.runner import run_episode
from hardware.sim.tasks.stack import StackTask

_REGISTRY: dict[str, type[Task]] = {t.name: t for t in (PickPlaceTask, StackTask, PushTask, InsertTask)}


def task_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def get_task(name: str) -> Task:
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise KeyError(f"no task {name!r} (tasks: {', '.join(_REGISTRY)})") from None


__all__ = [
    "CONTROL_HZ",
    "Episode",
    "Expert",
    "Task",
    "TaskEnv",
    "get_task",
    "phase_labels",
    "run_episode",
    "task_names",
]
