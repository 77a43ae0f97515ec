"""The Celery app's tasks, routes and reliability settings, as ARCHITECTURE.md lists them."""

from __future__ import annotations

import pytest

from worker.app import EventApp, LeaseStep, create_app
from worker.events.catalogue import CATALOGUE
from worker.execution.celeryconfig import all_queues, queue_for
from worker.settings import Settings


@pytest.fixture
def app() -> EventApp:
    return create_app(Settings(broker_url="redis://127.0.0.1:1/0"))


def test_one_task_per_catalogue_type_named_as_the_type(app: EventApp) -> None:
    ours = {name for name in app.tasks if not name.startswith("celery.")}
    assert ours == set(CATALOGUE)
    task = app.tasks["ims.ProduceMediaComplete"]
    assert task.acks_late and task.reject_on_worker_lost and task.ignore_result


def test_reliability_settings(app: EventApp) -> None:
    conf = app.conf
    settings = app.settings
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.task_acks_on_timeout is False
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_serializer == "json" and conf.accept_content == ["json"]
    assert conf.task_ignore_result is True and conf.result_backend is None
    assert conf.task_send_sent_event is True and conf.worker_send_task_events is True
    assert conf.task_soft_time_limit == settings.task_soft_time_limit
    assert conf.task_time_limit == settings.task_time_limit
    options = conf.broker_transport_options
    # A short lease renewed by the worker's heartbeat, not a timeout sized for the longest task.
    assert options["visibility_timeout"] == settings.visibility_timeout == 60
    assert settings.lease_heartbeat_seconds == 10
    assert options["unacked_restore_interval"] == 10 and options["unacked_restore_throttle"] == 1
    assert options["unacked_mutex_expire"] == 30
    # Recovery bound at these defaults: the lease since the last beat, plus one restore interval, < 90 s.
    assert options["visibility_timeout"] + options["unacked_restore_interval"] < 90
    assert LeaseStep in app.steps["consumer"]


def test_short_visibility_timeout_sweeps_often() -> None:
    app = create_app(Settings(broker_url="redis://127.0.0.1:1/0", broker_visibility_timeout=8))
    options = app.conf.broker_transport_options
    assert options["visibility_timeout"] == 8
    assert options["unacked_restore_interval"] == 1 and options["unacked_restore_throttle"] == 1
    assert app.settings.lease_heartbeat_seconds == 2


def test_amqp_broker_uses_publisher_confirms() -> None:
    amqp = Settings(broker_url="amqp://guest:guest@127.0.0.1:5672//", redis_url="redis://127.0.0.1:1/0")
    app = create_app(amqp)
    assert app.conf.broker_transport_options == {"confirm_publish": True}
    assert {q.queue_arguments["x-queue-type"] for q in app.conf.task_queues} == {"quorum"}


def test_one_queue_per_source_and_unknown(app: EventApp) -> None:
    assert [q.name for q in app.conf.task_queues] == ["ims", "live", "rtc", "tencent", "unknown"]
    routes = app.conf.task_routes
    assert routes["ims.FileUploadComplete"] == {"queue": "ims"}
    assert routes["live.caster.OperateCallback"] == routes["live.record.file_created"] == {"queue": "live"}
    assert routes["rtc.UserEvent"] == {"queue": "rtc"}
    assert routes["tencent.relay.TaskExit"] == {"queue": "tencent"}
    assert routes["unknown.ims"] == routes["unknown.rtc"] == {"queue": "unknown"}
    assert all(q.exchange.name == "" and q.routing_key == q.name for q in app.conf.task_queues)


def test_routes_follow_settings() -> None:
    settings = Settings(queue_routes={"rtc": "realtime", "unknown": "triage"})
    app = create_app(settings)
    assert app.conf.task_routes["rtc.ChannelEvent"] == {"queue": "realtime"}
    assert app.conf.task_routes["unknown.tencent"] == {"queue": "triage"}
    assert all_queues(settings) == ["ims", "live", "realtime", "tencent", "triage"]
    assert queue_for(settings, "unknown.ims", "ims") == "triage"
