"""Where a lost event was lost, read from Redis's append-only file (every write Redis acknowledged, in order).

A task message carries ``argsrepr`` ``[<Event TYPE id=ID>]`` in clear text, so the AOF shows for an event
id: the publish (``LPUSH <queue> <message>`` after the dedupe ``SET``), and, once a worker took the message,
kombu's ack emulation writing it to the ``unacked`` hash (``HSET unacked <tag> <message>``). kombu's Redis
transport takes a message with BRPOP and only then, in a separate command, records it in ``unacked``: a
message whose LPUSH is in the file but that never reached ``unacked`` was popped by a worker that lost Redis
(or its reply) in between. Nothing in Redis remembers it any more.
"""

from __future__ import annotations

from pathlib import Path


def _aof_bytes(redis_dir: Path) -> bytes:
    parts = sorted((redis_dir / "appendonlydir").glob("*.aof")) or sorted(redis_dir.glob("*.aof"))
    return b"".join(path.read_bytes() for path in parts)


def _commands_mentioning(data: bytes, needle: bytes) -> list[bytes]:
    """The command name (``LPUSH``, ``HSET``...) of each AOF command whose arguments contain ``needle``."""
    found = []
    start = 0
    while (index := data.find(needle, start)) >= 0:
        start = index + len(needle)
        head = data.rfind(b"\r\n*", 0, index)  # the start of the command holding this argument
        fields = data[head + 2 : head + 64].split(b"\r\n")
        if len(fields) > 2:
            found.append(fields[2].upper())
    return found


def diagnose(redis_dir: Path, event_ids: list[str]) -> dict[str, str]:
    """For each lost id: what the AOF says happened to its task message."""
    data = _aof_bytes(redis_dir)
    verdicts = {}
    for event_id in event_ids:
        commands = _commands_mentioning(data, f"id={event_id}>".encode())
        pushed, unacked = commands.count(b"LPUSH"), commands.count(b"HSET")
        if not pushed:
            verdicts[event_id] = "never published to Redis (not in the AOF)"
        elif not unacked:
            verdicts[event_id] = (
                "published (LPUSH in the AOF), never recorded in 'unacked': taken by a worker's BRPOP that "
                "lost Redis before kombu's separate HSET unacked (kombu Redis transport window)"
            )
        else:
            verdicts[event_id] = f"published, recorded in 'unacked' {unacked} time(s), then dropped"
    return verdicts
