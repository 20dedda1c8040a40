"""A build, here or in worker processes: ``workers=N`` splits the partitions over N
processes, each with its own consumer and connection (decoding is CPU-bound: one Python
process uses one core).

A worker is ``python -c`` running :func:`worker_main`; it gets what it needs pickled on its
stdin (secrets included, so never on its command line or in its environment), speaks
``progress N``, ``done {json}`` or ``failed {json}`` lines on its stdout, and its log goes
to stderr, which the coordinating process passes on. Every copy of an event is on its key's
partition, so each process dedupes its own share in memory; the coordinator's
``finish()`` checks that when it builds the dedupe table's key.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import json
import os
import pickle
import resource
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from zhucun.shared.pipeline import PoisonRecord, Projection
from zhucun.shared.replay.engine import Replay, Tuning, together
from zhucun.shared.replay.report import Built, Progress, RejectedRecord, ReplayError
from zhucun.shared.settings import KafkaSettings


async def build(
    replay: Replay,
    progress: Progress | None,
    *,
    workers: int,
    dsn: str | None,
    factory: Factory | None,
) -> Built:
    """Every held partition from its start to its stop offset, here or in ``workers``
    processes (``factory`` given); then the dedupe table's key."""
    built = replay.totals()
    total = sum(replay.stop[tp] - replay.start[tp] for tp in replay.start)
    advance = _counter(progress, total)
    began = time.perf_counter()
    if factory is None:
        await replay.stream(replay.stop, built, advance)
    else:
        assert dsn is not None
        await _run_workers(replay, factory, dsn, workers, built, advance)
        replay.position = dict(replay.stop)
    await replay.finish()
    built.seconds = time.perf_counter() - began
    return built


def _counter(progress: Progress | None, total: int) -> Callable[[int], None]:
    """``advance(n)``: n more records done, told to ``progress`` as done/total."""
    if progress is None:
        return lambda n: None
    done = 0
    progress(0, total)

    def advance(n: int) -> None:
        nonlocal done
        done += n
        progress(done, total)

    return advance


@dataclass(frozen=True, slots=True)
class Factory:
    """``make_projection`` pickled for a worker, with the file of the module defining it
    for when that module is not importable by name there: a script run as ``__main__``, a
    test module imported by path."""

    pickled: bytes
    module: str
    module_file: str | None


def factory(
    make_projection: Callable[[str], Projection], workers: int, dsn: str | None
) -> Factory | None:
    """None for a build in this process; else what workers need, checked up front."""
    if workers < 1:
        raise ValueError("workers must be at least 1")
    if workers == 1:
        return None
    if not dsn:
        raise ValueError("workers > 1 needs the database's dsn (each worker connects itself)")
    try:
        pickled = pickle.dumps(make_projection)
    except (pickle.PicklingError, AttributeError, TypeError) as error:
        raise ValueError(
            "workers > 1 needs make_projection picklable by reference: a module-level class "
            f"or function, or a functools.partial of one; not {make_projection!r}"
        ) from error
    target = getattr(make_projection, "func", make_projection)  # functools.partial
    module = getattr(target, "__module__", None) or ""
    defining = sys.modules.get(module)
    return Factory(pickled, module, getattr(defining, "__file__", None))


def _load_factory(factory: Factory) -> Callable[[str], Projection]:
    name = factory.module
    try:
        importable = name != "__main__" and importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        importable = False
    if not importable and factory.module_file is not None:
        # Loaded under a name of its own, so a script's `if __name__ == "__main__"` part
        # does not run, then registered where pickle looks for it.
        alias = "__zhucun_replay_main__" if name == "__main__" else name
        spec = importlib.util.spec_from_file_location(alias, factory.module_file)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[alias] = module
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return cast(Callable[[str], Projection], pickle.loads(factory.pickled))


@dataclass(frozen=True, slots=True)
class _WorkerSpec:
    """What a worker process needs, sent pickled on its stdin."""

    dsn: str
    schema: str
    factory: Factory
    kafka: KafkaSettings
    group_id: str
    tuning: Tuning
    parts: tuple[tuple[str, int, int, int], ...]
    sys_path: tuple[str, ...]


def _split(replay: Replay, workers: int) -> list[list[tuple[str, int, int, int]]]:
    """Partitions dealt to workers, largest first, each to the least loaded."""
    shares: list[list[tuple[str, int, int, int]]] = [[] for _ in range(workers)]
    loads = [0] * workers
    for tp in sorted(replay.start, key=lambda t: replay.start[t] - replay.stop[t]):
        index = loads.index(min(loads))
        shares[index].append((tp.topic, tp.partition, replay.start[tp], replay.stop[tp]))
        loads[index] += replay.stop[tp] - replay.start[tp]
    return [share for share in shares if share]


_WORKER_COMMAND = "from zhucun.shared.replay.workers import worker_main; worker_main()"


async def _run_workers(
    replay: Replay,
    factory: Factory,
    dsn: str,
    workers: int,
    built: Built,
    advance: Callable[[int], None],
) -> None:
    """Streams the partitions in worker processes, each its share of partitions with its own
    consumer and connection, into ``built``'s totals. A failed worker stops the others."""
    processes: list[asyncio.subprocess.Process] = []
    try:
        for parts in _split(replay, workers):
            spec = _WorkerSpec(
                dsn=dsn,
                schema=replay.schema,
                factory=factory,
                kafka=replay.kafka,
                group_id=replay.group_id,
                tuning=replay.tuning,
                parts=tuple(parts),
                sys_path=tuple(sys.path),
            )
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                _WORKER_COMMAND,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            processes.append(process)
            assert process.stdin is not None
            process.stdin.write(pickle.dumps(spec))
            await process.stdin.drain()
            process.stdin.close()
        await together(*(_watch(process, built, advance) for process in processes))
    finally:
        for process in processes:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()


async def _watch(
    process: asyncio.subprocess.Process, built: Built, advance: Callable[[int], None]
) -> None:
    """Follows one worker: progress lines, its result, its log (passed on to stderr)."""
    assert process.stdout is not None
    assert process.stderr is not None
    tail: deque[str] = deque(maxlen=40)

    async def relay_log(stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            text = line.decode(errors="replace")
            tail.append(text)
            sys.stderr.write(text)

    log_task = asyncio.create_task(relay_log(process.stderr))
    outcome: dict[str, Any] | None = None
    while line := await process.stdout.readline():
        kind, _, payload = line.decode().partition(" ")
        if kind == "progress":
            advance(int(payload))
        elif kind in ("done", "failed"):
            outcome = {"kind": kind, **json.loads(payload)}
    await process.wait()
    await log_task
    if outcome is None or outcome["kind"] == "failed" or process.returncode != 0:
        failure = outcome or {}
        if failure.get("error") == "PoisonRecord":
            raise PoisonRecord(
                failure["topic"],
                failure["partition"],
                failure["offset"],
                failure["poison_kind"],
                Exception(failure.get("message", "")),
            )
        raise ReplayError(
            f"a replay worker failed (exit {process.returncode}): "
            f"{failure.get('error', '')} {failure.get('message', '')}\n" + "".join(tail)
        )
    built.worker_peak_rss_kib = max(built.worker_peak_rss_kib or 0, outcome["peak_rss_kib"])
    built.add(
        events=outcome["events"],
        applied=outcome["applied"],
        duplicates=outcome["duplicates"],
        rejected=outcome["rejected"],
        rejects=[RejectedRecord(*item) for item in outcome["rejects"]],
    )


def worker_main() -> None:
    """A worker process: streams its share of partitions (see :func:`_run_workers`). Speaks
    on its original stdout; everything else printed goes to stderr."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    spec: _WorkerSpec = pickle.load(sys.stdin.buffer)
    sys.path[:0] = [entry for entry in spec.sys_path if entry not in sys.path]
    try:
        _event_loop_runner()(_worker(spec, out))
    except PoisonRecord as error:
        out.write(
            "failed "
            + json.dumps(
                {
                    "error": "PoisonRecord",
                    "topic": error.topic,
                    "partition": error.partition,
                    "offset": error.offset,
                    "poison_kind": error.kind,
                    "message": str(error),
                }
            )
            + "\n"
        )
        sys.exit(1)
    except BaseException as error:
        out.write(
            "failed " + json.dumps({"error": type(error).__name__, "message": str(error)}) + "\n"
        )
        raise


def _peak_rss_kib() -> int:
    """This process's peak resident memory. Linux keeps ``ru_maxrss`` across ``execve``
    (a worker would report its parent's peak); ``VmHWM`` belongs to the address space."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _event_loop_runner() -> Callable[[Awaitable[None]], None]:
    """uvloop where installed (as under uvicorn): its I/O costs the Kafka client less CPU."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a dependency of zhucun-shared
        return cast(Callable[[Awaitable[None]], None], asyncio.run)
    return cast(Callable[[Awaitable[None]], None], uvloop.run)


async def _worker(spec: _WorkerSpec, out: Any) -> None:
    from zhucun.shared.store import create_pool

    projection = _load_factory(spec.factory)(spec.schema)
    pool = await create_pool(spec.dsn, min_size=1, max_size=2)
    try:
        async with Replay(
            pool,
            projection,
            spec.kafka,
            schema=spec.schema,
            tuning=spec.tuning,
            group_id=spec.group_id,
        ) as replay:
            replay.assign(spec.parts)
            built = replay.totals()
            # Deduped in this process's memory: every copy of an event is on its key's
            # partition (the coordinator's finish() checks it).
            await replay.stream(replay.stop, built, lambda n: out.write(f"progress {n}\n"))
    finally:
        await pool.close()
    result = {
        "peak_rss_kib": _peak_rss_kib(),
        "events": built.events,
        "applied": built.applied,
        "duplicates": built.duplicates,
        "rejected": built.rejected,
        "rejects": [[r.topic, r.partition, r.offset, r.kind] for r in built.rejects],
    }
    out.write("done " + json.dumps(result) + "\n")
