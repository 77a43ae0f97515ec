"""A faithful MNS queue emulator, spoken to with the real aliyun-mns-sdk (see ``MnsEmulator``)."""

from worker.devtools.mns_emulator.app import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, MnsEmulator
from worker.devtools.mns_emulator.errors import MnsError
from worker.devtools.mns_emulator.faults import FaultSettings
from worker.devtools.mns_emulator.models import QueueAttributes, QueueStats

__all__ = [
    "DEFAULT_ACCESS_KEY_ID",
    "DEFAULT_ACCESS_KEY_SECRET",
    "FaultSettings",
    "MnsEmulator",
    "MnsError",
    "QueueAttributes",
    "QueueStats",
]
