"""One writer per run directory: the lock a training process holds on its run directory.

Every training process (`awmp.train`, `awmp train`, `awmp train --resume`, each attempt of
`awmp sweep`, each cell of `awmp experiment`) takes `<run_dir>/.awmp.lock` before it writes
anything into the directory and holds it for its whole life. A second writer is refused
(RunLockError, exit 2) with one line naming the holder (host and PID) and how to wait for it
or stop it.

The lock file is JSON: the holder's host, boot id, PID namespace, PID and the PID's start time,
a random token, when it was taken, and a heartbeat (seconds since the epoch) that a thread of
the holder rewrites every `heartbeat_interval()` seconds. A lock whose holder is gone is taken
over with a one-line message:

- the holder ran on this machine (same host name, boot id and PID namespace): gone when its PID
  no longer exists, is a zombie, or now belongs to a process started at another time;
- another machine (run directories on a shared filesystem): gone when its heartbeat is older
  than `stale_after()` seconds (STALE_AFTER_S, or the environment variable
  AWMP_LOCK_STALE_SECONDS) by this machine's clock, which assumes the machines' clocks agree to
  well within that age (NTP).

The lock is created atomically (a complete temp file hard-linked to the lock's name, which
fails when it exists; safe on NFS; where a filesystem has no hard links, an exclusive create),
refreshed by atomic replacement, and released at the end
only when it still carries the holder's token. A holder whose lock was taken over (it stopped
refreshing for longer than the stale age: a suspended process, a partitioned node) notices at
its next heartbeat and stops at the next step with RunLockError, without a checkpoint
(docs/CLUSTER.md "One writer per run directory" says what is and is not guaranteed).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import secrets
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from awmp.callbacks import Callback
from awmp.rundir import RunDirError, say

LOCK_FILE = ".awmp.lock"
STALE_AFTER_S = 120.0  # a heartbeat older than this, from another machine: the holder is gone
HEARTBEAT_S = 15.0  # how often the holder refreshes its heartbeat (at most stale_after / 4)
STALE_ENV = "AWMP_LOCK_STALE_SECONDS"


class RunLockError(RunDirError):
    """Another live process holds the run directory's lock, or this process lost it."""


# ----------------------------------------------------------------------------- who holds it


def stale_after() -> float:
    """Seconds after which another machine's heartbeat is too old: AWMP_LOCK_STALE_SECONDS or
    STALE_AFTER_S."""
    text = os.environ.get(STALE_ENV)
    if text is None or not text.strip():
        return STALE_AFTER_S
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value > 0 and value < float("inf")):
        raise RunDirError(f"invalid {STALE_ENV}={text!r}: must be a number of seconds > 0")
    return value


def heartbeat_interval() -> float:
    """Seconds between the holder's heartbeats: HEARTBEAT_S, at most a quarter of stale_after()."""
    return min(HEARTBEAT_S, stale_after() / 4)


def _read_text(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def this_machine() -> dict[str, Any]:
    """What tells this machine (and PID namespace) from another: host name, boot id, PID
    namespace (the last two where /proc has them, else None)."""
    try:
        pid_ns = os.readlink("/proc/self/ns/pid")
    except OSError:
        pid_ns = None
    return {
        "host": socket.gethostname(),
        "boot_id": _read_text("/proc/sys/kernel/random/boot_id"),
        "pid_ns": pid_ns,
    }


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks) of a process from /proc, or None where unknown."""
    text = _read_text(f"/proc/{pid}/stat")
    if not text or ")" not in text:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return (fields[0], fields[19]) if len(fields) > 19 else None


def _pid_alive(pid: int, start: str | None) -> bool:
    """Whether process `pid` of this machine still runs (not a zombie, not a reused PID)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    except OSError:
        return False
    stat = _proc_stat(pid)
    if stat is None:
        return True
    state, started = stat
    if state in ("Z", "X"):
        return False
    return start is None or started == start


def _same_machine(info: dict) -> bool:
    here = this_machine()
    return (
        all(
            info.get(k) == here[k] or info.get(k) is None or here[k] is None
            for k in ("boot_id", "pid_ns")
        )
        and info.get("host") == here["host"]
    )


def holder_gone(info: dict, now: float | None = None) -> str | None:
    """Why the holder of a lock is gone (taking it over is safe), or None while it lives."""
    pid = info.get("pid")
    # (os.kill(pid, 0) probes a PID on POSIX only; on Windows it would send CTRL_C_EVENT.)
    if _same_machine(info) and isinstance(pid, int) and os.name == "posix":
        if not _pid_alive(pid, info.get("pid_start")):
            return "no such process"
        return None
    age = (time.time() if now is None else now) - float(info.get("heartbeat", 0.0))
    limit = max(stale_after(), 3 * float(info.get("heartbeat_interval", 0.0)))
    if age > limit:
        return f"its heartbeat is {age:.0f} s old, more than {limit:.0f} s"
    return None


def _describe(info: dict) -> str:
    own = " (this process)" if info.get("pid") == os.getpid() and _same_machine(info) else ""
    return f"pid {info.get('pid')}{own} on host {info.get('host')}"


def _refusal(run_dir: Path, info: dict) -> str:
    host, pid = info.get("host"), info.get("pid")
    age = time.time() - float(info.get("heartbeat", 0.0))
    msg = (
        f"run directory {run_dir} is in use: awmp {_describe(info)} holds its lock since "
        f"{info.get('started', '?')} (heartbeat {max(age, 0):.0f} s ago); wait for it to end "
        f"(on {host}: tail --pid={pid} -f /dev/null) or stop it (on {host}: kill {pid}; it "
        "checkpoints first), then run this again"
    )
    if not _same_machine(info):
        msg += f" (if {host} is gone, the lock is taken over once its heartbeat is older than "
        msg += f"{max(stale_after(), 3 * float(info.get('heartbeat_interval', 0.0))):.0f} s)"
    return msg


# ----------------------------------------------------------------------------- the lock file


def lock_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / LOCK_FILE


def read_lock(run_dir: str | Path) -> dict | None:
    """The lock's content; None when there is no lock; {} when it cannot be read as a lock."""
    try:
        text = lock_path(run_dir).read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        info = json.loads(text)
    except ValueError:
        return {}
    return info if isinstance(info, dict) else {}


def _unreadable_gone(run_dir: Path) -> str | None:
    """An unreadable lock (not written by awmp, or damaged): gone once its file is as old as a
    stale heartbeat."""
    try:
        age = time.time() - lock_path(run_dir).stat().st_mtime
    except OSError:
        return "it vanished"
    if age > stale_after():
        return f"the lock file is unreadable and {age:.0f} s old"
    return None


class RunLock:
    """This process's lock on one run directory."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = lock_path(run_dir)
        self.token = secrets.token_hex(8)
        stat = _proc_stat(os.getpid())
        self.info = {
            **this_machine(),
            "pid": os.getpid(),
            "pid_start": stat[1] if stat else None,
            "token": self.token,
            "argv": sys.argv,
            "started": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "heartbeat_interval": heartbeat_interval(),
        }
        self.held = False

    def _content(self) -> bytes:
        now = time.time()
        info = {**self.info, "heartbeat": now}
        info["heartbeat_utc"] = _dt.datetime.fromtimestamp(now, _dt.timezone.utc).isoformat(
            timespec="seconds"
        )
        return (json.dumps(info, indent=1) + "\n").encode()

    def _tmp(self) -> Path:
        return self.path.with_name(f"{LOCK_FILE}.{self.token}.tmp")

    def _write_tmp(self) -> Path:
        tmp = self._tmp()
        # No fsync: close() publishes it to other NFS clients, and a lock outliving a crash of
        # its machine is judged stale anyway.
        with open(tmp, "wb") as f:
            f.write(self._content())
        return tmp

    def _create(self) -> bool:
        """Create the lock file atomically (complete, or not at all); False when it exists."""
        tmp = self._write_tmp()
        try:
            os.link(tmp, self.path)
            return True
        except FileExistsError:
            return False
        except OSError:  # no hard links here (some FUSE or SMB mounts): exclusive create
            return self._create_exclusive()
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def _create_exclusive(self) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(self._content())
        return True

    def acquire(self) -> None:
        """Take the lock, taking over one whose holder is gone; RunLockError when it lives."""
        try:
            for _ in range(5):
                if self._create():
                    self.held = True
                    return
                info = read_lock(self.run_dir)
                if info is None:
                    continue  # released meanwhile
                gone = holder_gone(info) if info else _unreadable_gone(self.run_dir)
                if gone is None:
                    if not info:
                        raise RunLockError(
                            f"run directory {self.run_dir} has an unreadable lock file "
                            f"{self.path}, less than {stale_after():.0f} s old; if no awmp "
                            "process is writing this run, remove that file and run this again"
                        )
                    raise RunLockError(_refusal(self.run_dir, info))
                if self._set_aside(info):
                    who = _describe(info) if info else "its unknown holder"
                    say(f"taking over the lock of {self.run_dir}: {who} is gone ({gone})")
        except OSError as e:
            raise RunDirError(
                f"cannot lock run directory {self.run_dir}: {e.strerror or e}"
            ) from None
        raise RunLockError(
            f"cannot lock run directory {self.run_dir}: other processes keep taking its lock; "
            "is another sweep or `awmp train --resume` running on it?"
        )

    def _set_aside(self, judged: dict) -> bool:
        """Move the stale lock out of the way; True when the moved file was the one judged (a
        lock taken meanwhile by a live process is put back)."""
        aside = self.path.with_name(f"{LOCK_FILE}.{self.token}.stale")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return False
        try:
            moved = json.loads(aside.read_text())
        except (OSError, ValueError):
            moved = {}
        if not isinstance(moved, dict) or moved.get("token") != judged.get("token"):
            with contextlib.suppress(FileExistsError):
                os.link(aside, self.path)  # not ours to take: put it back
            aside.unlink()
            return False
        aside.unlink()
        with contextlib.suppress(OSError):  # a heartbeat the dead holder left half done
            self.path.with_name(f"{LOCK_FILE}.{judged.get('token')}.tmp").unlink()
        return True

    def owned(self) -> bool | None:
        """True while the lock file carries our token; False when it does not; None when it
        cannot be read now (a filesystem hiccup: decide later)."""
        try:
            info = json.loads(self.path.read_text())
        except FileNotFoundError:
            return False
        except (OSError, ValueError):
            return None
        return isinstance(info, dict) and info.get("token") == self.token

    def refresh(self) -> bool:
        """Rewrite the heartbeat; False when the lock is no longer ours."""
        if self.owned() is False:
            return False
        try:
            os.replace(self._write_tmp(), self.path)
        except OSError:
            pass  # try again at the next heartbeat
        return True

    def release(self) -> None:
        if self.held and self.owned():
            with contextlib.suppress(OSError):
                self.path.unlink()
        self.held = False


class RunLocks:
    """The locks of one training process (one per run directory of a seed group) and the
    thread that refreshes their heartbeats; a context manager that releases them all."""

    def __init__(self) -> None:
        self.locks: list[RunLock] = []
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> RunLocks:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self, run_dir: str | Path) -> Path:
        """Lock `run_dir` for the life of this object; RunLockError when another holds it."""
        lock = RunLock(run_dir)
        lock.acquire()
        self.locks.append(lock)
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._beat, name="awmp-run-lock", args=(lock.info["heartbeat_interval"],)
            )
            self._thread.daemon = True
            self._thread.start()
        return Path(run_dir)

    def _beat(self, interval: float) -> None:
        while not self._stop.wait(interval):
            for lock in list(self.locks):
                if lock.held and not lock.refresh() and self.lost is None:
                    info = read_lock(lock.run_dir) or {}
                    who = _describe(info) if info.get("pid") else "another process"
                    self.lost = (
                        f"lost the lock of {lock.run_dir} to {who}: this process did not "
                        f"refresh it for longer than the stale age (suspended, or cut off from "
                        "the filesystem?); stopped without writing more"
                    )
                    lock.held = False

    def check(self) -> None:
        """Raise RunLockError when a lock was taken over by another process."""
        if self.lost is not None:
            raise RunLockError(self.lost)

    def watch(self) -> Callback:
        """A callback that stops the run (RunLockError) at the step after a lock was lost."""
        return _LockWatch(self)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        for lock in self.locks:
            lock.release()


class _LockWatch(Callback):
    def __init__(self, locks: RunLocks) -> None:
        self.locks = locks

    def on_step(self, step: int) -> None:
        self.locks.check()


def lock_wait() -> float:
    """How long a sweep's retry waits for a lock held by another machine: until a heartbeat
    the lost holder wrote just before it went would be stale, plus two heartbeats."""
    return stale_after() + 2 * heartbeat_interval()


def wait_until_free(run_dir: str | Path, timeout: float, poll: float = 2.0) -> None:
    """Wait up to `timeout` seconds until `run_dir`'s lock is released or its holder is gone
    (for a retry that may start on another machine while the lost one's heartbeat is fresh)."""
    deadline = time.monotonic() + timeout
    announced = False
    while time.monotonic() < deadline:
        info = read_lock(run_dir)
        if info is None:
            return
        gone = holder_gone(info) if info else _unreadable_gone(Path(run_dir))
        if gone is not None:
            return
        if not announced:
            say(f"waiting up to {timeout:.0f} s for the lock of {run_dir} ({_describe(info)})")
            announced = True
        time.sleep(poll)
