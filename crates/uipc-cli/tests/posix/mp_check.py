"""Python multiprocessing over POSIX semaphores and shared memory.

Queue, Lock, Semaphore, Pool.map and shared_memory.SharedMemory across
processes; prints only what is the same on every run (no names, pids,
addresses), so a run under uipc and a native run compare line by line.
"""
import multiprocessing as mp
import os
import stat
from multiprocessing import shared_memory


def square(x):
    return x * x


def producer(q, n):
    for i in range(n):
        q.put(i)
    q.put(None)


def add_under_lock(lock, counter_name, times):
    shm = shared_memory.SharedMemory(name=counter_name)
    for _ in range(times):
        with lock:
            v = int.from_bytes(shm.buf[:8], "little")
            shm.buf[:8] = (v + 1).to_bytes(8, "little")
    shm.close()


def limited(sem, active_name, peak_name):
    active = shared_memory.SharedMemory(name=active_name)
    with sem:
        n = active.buf[0] + 1
        active.buf[0] = n
        peak = shared_memory.SharedMemory(name=peak_name)
        peak.buf[0] = max(peak.buf[0], n)
        peak.close()
        active.buf[0] -= 1
    active.close()


def writer(name, size):
    shm = shared_memory.SharedMemory(name=name)
    shm.buf[:size] = bytes((i * 7) % 251 for i in range(size))
    shm.close()


def main():
    mp.set_start_method("fork")
    # Queue: a producer process, FIFO order.
    q = mp.Queue()
    p = mp.Process(target=producer, args=(q, 1000))
    p.start()
    got = []
    while (item := q.get()) is not None:
        got.append(item)
    p.join()
    print("queue:", len(got), got == list(range(1000)), "exit", p.exitcode)

    # Lock: four processes increment a shared counter.
    lock = mp.Lock()
    counter = shared_memory.SharedMemory(create=True, size=8)
    counter.buf[:8] = bytes(8)
    procs = [mp.Process(target=add_under_lock, args=(lock, counter.name, 500)) for _ in range(4)]
    for pr in procs:
        pr.start()
    for pr in procs:
        pr.join()
    print("lock: counter", int.from_bytes(counter.buf[:8], "little"))
    counter.close()
    counter.unlink()

    # Semaphore(2): never more than two inside.
    sem = mp.Semaphore(2)
    active = shared_memory.SharedMemory(create=True, size=1)
    peak = shared_memory.SharedMemory(create=True, size=1)
    active.buf[0] = 0
    peak.buf[0] = 0
    procs = [mp.Process(target=limited, args=(sem, active.name, peak.name)) for _ in range(6)]
    for pr in procs:
        pr.start()
    for pr in procs:
        pr.join()
    print("semaphore: value back to", sem.get_value(), "peak <= 2:", peak.buf[0] <= 2)
    for s in (active, peak):
        s.close()
        s.unlink()

    # Pool.map
    with mp.Pool(3) as pool:
        print("pool.map:", pool.map(square, range(10)))

    # SharedMemory: size, fstat, another process writes, unlink.
    shm = shared_memory.SharedMemory(create=True, size=10000)
    st = os.fstat(shm._fd)
    print("shared_memory: size", shm.size, "fstat size", st.st_size, "mode", oct(stat.S_IMODE(st.st_mode)),
          "owner is me", st.st_uid == os.geteuid())
    w = mp.Process(target=writer, args=(shm.name, 10000))
    w.start()
    w.join()
    print("shared_memory: written by another process", bytes(shm.buf[:10000]) == bytes((i * 7) % 251 for i in range(10000)))
    name = shm.name
    shm.close()
    shm.unlink()
    try:
        shared_memory.SharedMemory(name=name)
        print("shared_memory: still there after unlink")
    except FileNotFoundError:
        print("shared_memory: gone after unlink")
    print("ok")


if __name__ == "__main__":
    main()
