"""The worker app's Celery configuration: the broker half (``worker.delivery.routing.broker_config``) plus the
worker's reliability settings of ARCHITECTURE.md (acks late, prefetch 1, time limits, the pool).
"""

from __future__ import annotations

from typing import Any

from worker.delivery.routing import all_queues, broker_config, declare_queue, queue_for
from worker.execution.profile import pool_config
from worker.settings import Settings

__all__ = ["all_queues", "celery_config", "declare_queue", "queue_for"]


def celery_config(settings: Settings) -> dict[str, Any]:
    return {
        **broker_config(settings),
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # A hard time limit kills the child: requeue, so the redelivery cap (not a silent ack) decides.
        "task_acks_on_timeout": False,
        "worker_prefetch_multiplier": 1,
        # Lost connection: the broker redelivers acks-late tasks anyway, so stop running them here.
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "worker_send_task_events": True,
        "task_soft_time_limit": settings.task_soft_time_limit,
        "task_time_limit": settings.task_time_limit,
        # IMS_WORKER_WORKER_PROFILE: used when the worker is started without -P / -c.
        **pool_config(settings),
    }
