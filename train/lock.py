"""One training process per workdir: a lock file naming its holder (WORKDIR/.lock).

The file holds the holder's host, PID and process start time. A second process on the same
workdir refuses with one line naming the holder. A lock whose process is gone (killed, crashed:
no process with that PID, or one started at another time, i.e. a reused PID) is stale and is
taken over, so a killed run resumes. A lock held from another host cannot be checked from here;
it is refused, and the message says how to clear it.
"""

import json
import os
import socket

LOCK_NAME = '.lock'


class LockError(RuntimeError):
  """The workdir is held by another process; the message names it."""


def _start_time(pid):
  """The process's start time in clock ticks since boot (Linux /proc), or None if unknown."""
  try:
    with open(f'/proc/{pid}/stat') as f:
      return int(f.read().rsplit(')', 1)[1].split()[19])
  except (OSError, IndexError, ValueError):
    return None


def _alive(holder):
  pid = holder.get('pid')
  if not isinstance(pid, int) or pid <= 0:
    return False
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    pass  # someone else's process: it exists
  started = _start_time(pid)
  return started is None or holder.get('start_time') in (None, started)


def _me():
  return {'host': socket.gethostname(), 'pid': os.getpid(), 'start_time': _start_time(os.getpid())}


def acquire(workdir):
  """Takes WORKDIR/.lock for this process (again, if it holds it already); LockError if a live
  process holds it. Remote paths (gs://...) are not locked."""
  if '://' in workdir:
    return
  path = os.path.join(workdir, LOCK_NAME)
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise LockError(f'--workdir={workdir} is a file, not a folder: pass a folder (it is created '
                    'if it does not exist).')
  me = _me()
  for _ in range(2):  # a stale lock is removed once, then created afresh
    try:
      fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
      holder = _read(path)
      if holder == me:
        return
      if holder is not None:
        if holder.get('host') != me['host']:
          raise LockError(f'{workdir} is in use by process {holder.get("pid")} on host '
                          f'{holder.get("host")}. If that run has stopped, remove {path}.')
        if _alive(holder):
          raise LockError(f'{workdir} is in use by process {holder["pid"]} (another training run '
                          'on this workdir); wait for it to finish or stop it.')
      os.remove(path)  # stale, or unreadable (a write cut short)
      continue
    except OSError as e:  # read-only, no permission, no space
      raise LockError(f'Cannot write in {workdir} ({e.strerror}): a run writes its checkpoints '
                      'there. Pass a --workdir you can write to.') from e
    with os.fdopen(fd, 'w') as f:
      json.dump(me, f)
    return
  raise LockError(f'Could not take {path}: another process keeps creating it.')


def release(workdir):
  """Removes WORKDIR/.lock if this process holds it."""
  path = os.path.join(workdir, LOCK_NAME)
  if '://' not in workdir and _read(path) == _me():
    os.remove(path)


def _read(path):
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None
