"""Python's sysv_ipc module (PyPI "sysv_ipc", a C extension over shmget,
shmat, semget, semop, ...) exercised for scripts/e2e/python-sysv-ipc.sh.

The same script runs under `uipc run --deny-kernel-ipc` and natively in a
fresh IPC namespace; its output must be identical, so it prints no ids, keys
or pids (only facts about them, e.g. "last_pid is the child: True"). Exits
non-zero if any check failed. Message queues are left out: uipc does not
serve them (docs/deviations.md).
"""

import os
import signal
import sys
import time

import sysv_ipc

failures = 0


def check(ok, what):
    global failures
    print(f"{what}: {'ok' if ok else 'FAILED'}", flush=True)
    if not ok:
        failures += 1


def raises(exc, fn, what):
    """Checks that fn() raises exc; prints the exception's class."""
    try:
        fn()
    except sysv_ipc.Error as e:
        print(f"{what}: {type(e).__name__}", flush=True)
        check(isinstance(e, exc), f"{what} is {exc.__name__}")
        return
    except ValueError as e:
        print(f"{what}: ValueError", flush=True)
        check(exc is ValueError, f"{what} is {exc.__name__}")
        return
    print(f"{what}: no exception", flush=True)
    check(False, f"{what} is {exc.__name__}")


def nowait(op):
    """op() with IPC_NOWAIT: sysv_ipc's `block = False` (its timeout argument
    needs semtimedop support, which its build may not detect)."""
    sem_obj = op.__self__
    sem_obj.block = False
    try:
        return op()
    finally:
        sem_obj.block = True


def wait_child(pid, what):
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    check(code == 0, f"{what} exited 0 (got {code})")


def until(pred, what, limit=30.0):
    """Polls pred (a state another process reaches) with a deadline."""
    deadline = time.monotonic() + limit
    while not pred():
        if time.monotonic() > deadline:
            check(False, f"{what} within {limit} s")
            return
        time.sleep(0.01)
    check(True, what)


# A watchdog: nothing here may block for long.
signal.alarm(120)
uid = os.getuid()
print(f"sysv_ipc {sysv_ipc.VERSION}, running as {'root' if uid == 0 else 'non-root'}")

# --- Create: a semaphore (value 0) and a 4096-byte segment (attached) -----
sem = sysv_ipc.Semaphore(None, sysv_ipc.IPC_CREX, mode=0o600, initial_value=0)
shm = sysv_ipc.SharedMemory(None, sysv_ipc.IPC_CREX, mode=0o600, size=4096)
print(f"semaphore: value {sem.value}, mode {sem.mode:o}, owner is us {sem.uid == uid and sem.cuid == uid}")
print(f"segment: size {shm.size}, mode {shm.mode:o}, nattch {shm.number_attached}, owner is us {shm.uid == uid}")
# sysv_ipc fills a segment it creates with init_character (a space).
check(shm.read(16) == b" " * 16, "a new segment reads as spaces")
raises(sysv_ipc.BusyError, lambda: nowait(sem.acquire), "acquire of a 0 semaphore without blocking")

# --- Fork: the child writes and releases, the parent acquires and reads ----
message = b"written by the child through its inherited attachment"
r, w = os.pipe()
child = os.fork()
if child == 0:
    os.close(r)
    try:
        # The attachment came through fork: the segment has two now.
        n = shm.number_attached
        shm.write(message, 100)
        sem.release()
        os.write(w, f"{n}\n".encode())
        os._exit(0)
    except BaseException as e:  # noqa: BLE001 - report anything to the parent
        os.write(w, f"child: {e!r}\n".encode())
        os._exit(1)
os.close(w)
sem.acquire()  # blocks until the child's release
print("parent: acquired the semaphore the child released")
check(shm.read(len(message), 100) == message, "the parent reads what the child wrote")
check(sem.last_pid == os.getpid(), "sem last_pid is the parent (its acquire came last)")
child_said = os.read(r, 100).decode().strip()
os.close(r)
print(f"child saw nattch {child_said}")
check(child_said == "2", "nattch is 2 in the child after fork")
wait_child(child, "the writer child")
check(shm.number_attached == 1, "nattch back to 1 after the child exited")
check(shm.last_pid == child, "shm last_pid is the child (its exit detached)")
check(sem.value == 0, "semaphore value 0 after release + acquire")

# --- A blocked waiter, seen by the semaphore's ncount ------------------------
child = os.fork()
if child == 0:
    signal.alarm(60)
    sem.acquire()
    os._exit(0)
until(lambda: sem.waiting_for_nonzero == 1, "a blocked acquire is counted in waiting_for_nonzero")
sem.release()
wait_child(child, "the blocked child")
check(sem.waiting_for_nonzero == 0 and sem.value == 0, "the blocked child took the release")

# --- Wait for zero, and SEM_UNDO at exit ------------------------------------
sem.value = 1
raises(sysv_ipc.BusyError, lambda: nowait(sem.Z), "wait-for-zero on 1 without blocking")
child = os.fork()
if child == 0:
    sem.undo = True
    sem.acquire()  # value 0, undone at exit
    os._exit(0 if sem.value == 0 else 1)
wait_child(child, "the SEM_UNDO child")
check(sem.value == 1, "SEM_UNDO restored the value at the child's exit")
sem.value = 0
nowait(sem.Z)
print("wait-for-zero on 0: returned")

# --- Range errors ---------------------------------------------------------
sem.value = 32767
raises(ValueError, sem.release, "release above SEMVMX (32767)")

def set_too_big():
    sem.value = 32768

raises(ValueError, set_too_big, "setting 32768")
sem.value = 0

# --- Keys: missing, exclusive create, open by key ---------------------------
key = 0x5EED1000
raises(sysv_ipc.ExistentialError, lambda: sysv_ipc.Semaphore(key), "open a missing semaphore key")
raises(sysv_ipc.ExistentialError, lambda: sysv_ipc.SharedMemory(key), "open a missing segment key")
ksem = sysv_ipc.Semaphore(key, sysv_ipc.IPC_CREX, mode=0o600, initial_value=3)
kshm = sysv_ipc.SharedMemory(key, sysv_ipc.IPC_CREX, mode=0o600, size=100)
raises(sysv_ipc.ExistentialError, lambda: sysv_ipc.Semaphore(key, sysv_ipc.IPC_CREX), "IPC_CREX on an existing semaphore key")
raises(sysv_ipc.ExistentialError, lambda: sysv_ipc.SharedMemory(key, sysv_ipc.IPC_CREX), "IPC_CREX on an existing segment key")
check(sysv_ipc.Semaphore(key).id == ksem.id, "open by key finds the semaphore")
check(sysv_ipc.SharedMemory(key).id == kshm.id, "open by key finds the segment")
print(f"segment of size 100 reports size {kshm.size}")

# --- Another user: PermissionsError ------------------------------------------
if uid == 0:
    child = os.fork()
    if child == 0:
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            results = []
            # EACCES is sysv_ipc.PermissionsError; semctl(IPC_RMID)'s EPERM
            # comes out as Python's own PermissionError.
            bad = 0
            for what, fn, expected in [
                ("open the 0600 semaphore", lambda: sysv_ipc.Semaphore(key), "PermissionsError"),
                ("open the 0600 segment", lambda: sysv_ipc.SharedMemory(key), "PermissionsError"),
                ("remove the semaphore", lambda: sysv_ipc.remove_semaphore(ksem.id), "PermissionError"),
                ("remove the segment", lambda: sysv_ipc.remove_shared_memory(kshm.id), "PermissionsError"),
            ]:
                try:
                    fn()
                    got = "no exception"
                except Exception as e:  # noqa: BLE001 - the class is the answer
                    got = type(e).__name__
                results.append(f"as nobody, {what}: {got}")
                bad += got != expected
            print("\n".join(results), flush=True)
            os._exit(1 if bad else 0)
        except BaseException as e:  # noqa: BLE001
            print(f"as nobody: {e!r}", flush=True)
            os._exit(2)
    wait_child(child, "the nobody child (every call refused)")
    ksem.mode = 0o666
    kshm.mode = 0o666
    child = os.fork()
    if child == 0:
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
        s = sysv_ipc.Semaphore(key)
        m = sysv_ipc.SharedMemory(key)
        s.block = False
        s.acquire()
        m.write(b"nobody")
        os._exit(0)
    wait_child(child, "the nobody child after mode 0666 (open, acquire, write)")
    check(ksem.value == 2 and kshm.read(6) == b"nobody", "its acquire and write are seen")
else:
    print("not root: the other-user checks are skipped")

# --- Removal ----------------------------------------------------------------
ksem.remove()
kshm.detach()
kshm.remove()
raises(sysv_ipc.ExistentialError, lambda: nowait(ksem.acquire), "acquire on a removed semaphore")
raises(sysv_ipc.ExistentialError, lambda: sysv_ipc.SharedMemory(key), "open a removed segment's key")

# A removed segment that is still attached lives on, and (Linux) can still
# be attached by id.
shm.remove()
again = sysv_ipc.attach(shm.id)
check(again.read(len(message), 100) == message, "attach by id after IPC_RMID (still attached) sees the data")
check(shm.number_attached == 2, "nattch 2 with the second attachment")
again.detach()
shm.detach()
# shmat's EINVAL: sysv_ipc.attach raises ValueError ("invalid id").
raises(ValueError, lambda: sysv_ipc.attach(shm.id), "attach after the last detach")
sem.remove()
raises(sysv_ipc.ExistentialError, lambda: sem.value, "value of a removed semaphore")

print(f"{'PASS' if failures == 0 else 'FAIL'}: {failures} check(s) failed")
sys.exit(1 if failures else 0)
