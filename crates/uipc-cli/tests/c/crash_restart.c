/* A program whose IPC objects must come through kill -9 of `uipc run`'s
 * private daemon: it makes a System V segment full of data (attached), a
 * semaphore set with SEM_UNDO adjustments (its own, and a child's that
 * exits later), a message queue with messages, and a POSIX message queue
 * with messages whose descriptor (mqd_t) it keeps open throughout; then,
 * for each round,
 * prints "ready N" and waits for a line on stdin (the test kills the
 * daemon meanwhile and waits for `uipc run` to restart it), and checks
 * everything it was told so far: the segment's bytes through the old
 * mapping and a new attach, nattch, the values, the messages in order,
 * the POSIX queue's attributes and its descriptor's readiness (poll)
 * through the descriptor opened before the first kill, and a
 * SIGEV_THREAD mq_notify registration made before the kill, which fires
 * after it (and is made again for the next round), and a child asleep in
 * semop through the kill (every other round as nobody, through syscall()),
 * whose call returns 0 once the program posts after the restart (not
 * EINTR: it was sent again) and takes the post once;
 * then changes each of them and makes new objects, checked in later
 * rounds. Also runs in a fresh kernel IPC namespace with nobody killed:
 * the checks hold there too.
 *
 *   crash_restart ROUNDS
 *
 * Prints "socket $UIPC_SOCKET" first, "ok" and exits 0 when every check
 * passed; "FAIL: what" on stdout and exits 1 at the first that did not. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <poll.h>
#include <sched.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/wait.h>

#define SEG 65536
#define MESSAGES 8
#define MAX_ROUNDS 16

union semun { int val; struct semid_ds *buf; unsigned short *array; };
struct msg { long mtype; char text[32]; };

static int round_no = -1;

static void fail(const char *what) {
    printf("FAIL: round %d: %s (errno %d %s)\n", round_no, what, errno, strerror(errno));
    fflush(stdout);
    exit(1);
}

#define CHECK(cond, what) do { if (!(cond)) fail(what); } while (0)

/* What the program was told. */
static int shm_id, sem_id, msg_id;
static unsigned char *mapped;
static unsigned char want_seg[SEG];
static unsigned short want_sem[3];
static int next_msg = 1; /* the type of the next message to receive */
static mqd_t mq;          /* opened before the first kill, kept */
static long mq_flags = O_NONBLOCK; /* its O_NONBLOCK, changed by fcntl */
static int mq_sent, mq_received;
/* A queue with a SIGEV_THREAD registration across each kill; its thread
 * writes the registration's sigev_value to `notified`. */
static mqd_t watched;
static int notified[2];

static void on_message(union sigval v) {
    unsigned char b = (unsigned char)v.sival_int;
    if (write(notified[1], &b, 1) != 1) _exit(4);
}

static void watch(int value) {
    struct sigevent sev = { .sigev_notify = SIGEV_THREAD, .sigev_notify_function = on_message };
    sev.sigev_value.sival_int = value;
    CHECK(mq_notify(watched, &sev) == 0, "mq_notify SIGEV_THREAD");
}

/* The registration made before the kill fires after it: once, with its
 * value, in a new thread (a watchdog of 20 s, not a synchronisation). */
static void check_notified(int value) {
    struct pollfd pfd = { .fd = notified[0], .events = POLLIN };
    CHECK(poll(&pfd, 1, 0) == 0, "no notification before the queue has a message");
    char text[32] = "wake";
    CHECK(mq_send(watched, text, sizeof text, 0) == 0, "mq_send to the watched queue");
    CHECK(poll(&pfd, 1, 20000) == 1, "the SIGEV_THREAD notification ran within 20 s");
    unsigned char b;
    CHECK(read(notified[0], &b, 1) == 1 && b == value, "the notification's sigev_value");
    CHECK(mq_receive(watched, text, sizeof text, NULL) == (ssize_t)sizeof text, "mq_receive of the watched queue");
}

/* A set whose semaphore a child sleeps on across each kill. */
static int sleep_sem;

/* Forks a child that sleeps in semop(-1) on sleep_sem and exits 0 when the
 * call returns 0 (10 + errno otherwise); returns once it is asleep. In odd
 * rounds the child first drops root (to nobody, when it has root: the set
 * is 0666) and calls through syscall(SYS_semop) instead of libc's. */
static pid_t start_sleeper(void) {
    pid_t p = fork();
    CHECK(p >= 0, "fork");
    if (p == 0) {
        /* Its inherited attach is not counted in the checks. */
        if (shmdt(mapped) != 0) _exit(3);
        struct sembuf op = { 0, -1, 0 };
        if (round_no % 2 == 1) {
            if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(3);
            _exit(syscall(SYS_semop, sleep_sem, &op, 1) == 0 ? 0 : 10 + errno % 100);
        }
        _exit(semop(sleep_sem, &op, 1) == 0 ? 0 : 10 + errno % 100);
    }
    /* A bound, not a synchronisation: the child is asleep within it. */
    for (long i = 0; semctl(sleep_sem, 0, GETNCNT) != 1; i++) {
        CHECK(i < 20000000, "the sleeper is asleep");
        sched_yield();
    }
    return p;
}

/* Posts to the sleeper: its semop asleep across the kill returns 0. */
static void wake_sleeper(pid_t sleeper) {
    struct sembuf post = { 0, 1, 0 };
    CHECK(semop(sleep_sem, &post, 1) == 0, "the post to the sleeper");
    int st;
    CHECK(waitpid(sleeper, &st, 0) == sleeper, "waitpid of the sleeper");
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        errno = WIFEXITED(st) && WEXITSTATUS(st) >= 10 ? WEXITSTATUS(st) - 10 : 0;
        fail("a semop asleep across the kill returns 0 once woken");
    }
    CHECK(semctl(sleep_sem, 0, GETVAL) == 0 && semctl(sleep_sem, 0, GETNCNT) == 0, "the post taken once");
}

/* Objects made in each round, each with a marker. */
static int round_shm[MAX_ROUNDS], round_sem[MAX_ROUNDS], round_msg[MAX_ROUNDS];

static void check_all(void) {
    CHECK(memcmp(mapped, want_seg, SEG) == 0, "the segment's bytes through the old mapping");
    unsigned char *again = shmat(shm_id, NULL, SHM_RDONLY);
    CHECK(again != (void *)-1, "shmat again");
    CHECK(memcmp(again, want_seg, SEG) == 0, "the segment's bytes through a new attach");
    struct shmid_ds ds;
    CHECK(shmctl(shm_id, IPC_STAT, &ds) == 0, "shmctl IPC_STAT");
    CHECK(ds.shm_nattch == 2, "nattch 2 with the old and the new attach");
    CHECK(ds.shm_segsz == SEG, "shm_segsz");
    CHECK(shmdt(again) == 0, "shmdt");

    unsigned short got[3];
    union semun arg = { .array = got };
    CHECK(semctl(sem_id, 0, GETALL, arg) == 0, "semctl GETALL");
    for (int i = 0; i < 3; i++) {
        if (got[i] != want_sem[i]) {
            printf("FAIL: round %d: semaphore %d is %d, want %d\n", round_no, i, got[i], want_sem[i]);
            exit(1);
        }
    }

    struct msqid_ds q;
    CHECK(msgctl(msg_id, IPC_STAT, &q) == 0, "msgctl IPC_STAT");
    CHECK((int)q.msg_qnum == MESSAGES + 1 - next_msg, "msg_qnum is what was sent and not received");

    struct mq_attr a;
    CHECK(mq_getattr(mq, &a) == 0, "mq_getattr through the descriptor from before");
    CHECK(a.mq_flags == mq_flags && a.mq_maxmsg == 10 && a.mq_msgsize == 32, "the POSIX queue's attributes");
    CHECK((fcntl((int)mq, F_GETFL) & O_NONBLOCK) == mq_flags, "the descriptor's O_NONBLOCK");
    CHECK(a.mq_curmsgs == mq_sent - mq_received, "mq_curmsgs is what was sent and not received");
    struct pollfd pfd = { .fd = (int)mq, .events = POLLIN };
    CHECK(poll(&pfd, 1, 0) >= 0, "poll of the queue's descriptor");
    CHECK(((pfd.revents & POLLIN) != 0) == (a.mq_curmsgs > 0), "the descriptor is readable iff the queue holds messages");

    for (int r = 0; r < round_no; r++) {
        char *p = shmat(round_shm[r], NULL, SHM_RDONLY);
        CHECK(p != (void *)-1, "shmat of an earlier round's segment");
        CHECK(p[0] == 'A' + r, "an earlier round's segment's marker");
        CHECK(shmdt(p) == 0, "shmdt");
        CHECK(semctl(round_sem[r], 0, GETVAL) == 100 + r, "an earlier round's set's value");
        CHECK(msgctl(round_msg[r], IPC_STAT, &q) == 0 && q.msg_qnum == 1 && q.msg_cbytes == 32,
              "an earlier round's queue holds its message");
    }
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 1;
    if (rounds < 1 || rounds > MAX_ROUNDS) return 2;
    const char *socket = getenv("UIPC_SOCKET");
    printf("socket %s\n", socket ? socket : "(none)");
    fflush(stdout);

    shm_id = shmget(IPC_PRIVATE, SEG, IPC_CREAT | 0600);
    CHECK(shm_id >= 0, "shmget");
    mapped = shmat(shm_id, NULL, 0);
    CHECK(mapped != (void *)-1, "shmat");
    for (int i = 0; i < SEG; i++) want_seg[i] = (unsigned char)(i * 7 + 3);
    memcpy(mapped, want_seg, SEG);

    sem_id = semget(IPC_PRIVATE, 3, IPC_CREAT | 0600);
    CHECK(sem_id >= 0, "semget");
    unsigned short init[3] = { 10, 20, 30 };
    union semun arg = { .array = init };
    CHECK(semctl(sem_id, 0, SETALL, arg) == 0, "semctl SETALL");
    struct sembuf own = { 0, 2, SEM_UNDO };
    CHECK(semop(sem_id, &own, 1) == 0, "semop +2 SEM_UNDO");
    memcpy(want_sem, init, sizeof init);
    want_sem[0] += 2;

    msg_id = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    CHECK(msg_id >= 0, "msgget");
    for (int i = 1; i <= MESSAGES; i++) {
        struct msg m = { .mtype = i };
        snprintf(m.text, sizeof m.text, "message %d", i);
        CHECK(msgsnd(msg_id, &m, sizeof m.text, IPC_NOWAIT) == 0, "msgsnd");
    }

    struct mq_attr qa = { .mq_maxmsg = 10, .mq_msgsize = 32 };
    mq_unlink("/crash_restart_q");
    mq = mq_open("/crash_restart_q", O_RDWR | O_CREAT | O_EXCL | O_NONBLOCK, 0600, &qa);
    CHECK(mq != (mqd_t)-1, "mq_open");
    for (; mq_sent < MESSAGES; mq_sent++) {
        char text[32];
        snprintf(text, sizeof text, "posix %d", mq_sent);
        CHECK(mq_send(mq, text, sizeof text, 0) == 0, "mq_send");
    }

    mq_unlink("/crash_restart_watched");
    watched = mq_open("/crash_restart_watched", O_RDWR | O_CREAT | O_EXCL | O_NONBLOCK, 0600, &qa);
    CHECK(watched != (mqd_t)-1, "mq_open of the watched queue");
    CHECK(pipe(notified) == 0, "pipe");
    watch(1);

    /* A child holding a SEM_UNDO adjustment, ended after the first kill. */
    int up[2], down[2];
    CHECK(pipe(up) == 0 && pipe(down) == 0, "pipe");
    pid_t child = fork();
    CHECK(child >= 0, "fork");
    if (child == 0) {
        close(up[0]);
        close(down[1]);
        /* Its inherited attach is not counted in the checks. */
        if (shmdt(mapped) != 0) _exit(3);
        struct sembuf op = { 1, 5, SEM_UNDO };
        if (semop(sem_id, &op, 1) != 0) _exit(3);
        if (write(up[1], "x", 1) != 1) _exit(3);
        char c;
        /* Until the parent closes its end. */
        while (read(down[0], &c, 1) > 0) {}
        _exit(0);
    }
    close(up[1]);
    close(down[0]);
    char c;
    CHECK(read(up[0], &c, 1) == 1, "the child's SEM_UNDO increment");
    want_sem[1] += 5;

    sleep_sem = semget(IPC_PRIVATE, 1, IPC_CREAT | 0666);
    CHECK(sleep_sem >= 0, "semget of the sleepers' set");

    for (round_no = 0; round_no < rounds; round_no++) {
        pid_t sleeper = start_sleeper();
        printf("ready %d\n", round_no);
        fflush(stdout);
        char line[16];
        if (!fgets(line, sizeof line, stdin)) fail("stdin closed");

        check_all();
        wake_sleeper(sleeper);
        check_notified(round_no + 1);
        watch(round_no + 2);
        if (round_no == 1 || (rounds == 1 && round_no == 0)) {
            /* The child exits: its undo (recorded by a daemon before the
             * kill) is applied by the restarted one. */
            close(down[1]);
            int st;
            CHECK(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child");
            want_sem[1] -= 5;
            CHECK(semctl(sem_id, 1, GETVAL) == want_sem[1], "the exited child's SEM_UNDO adjustment undone");
        }

        /* Receive two messages, in order. */
        for (int k = 0; k < 2 && next_msg <= MESSAGES; k++, next_msg++) {
            struct msg m;
            ssize_t n = msgrcv(msg_id, &m, sizeof m.text, 0, IPC_NOWAIT);
            CHECK(n == (ssize_t)sizeof m.text, "msgrcv");
            char want[32];
            snprintf(want, sizeof want, "message %d", next_msg);
            CHECK(m.mtype == next_msg && strcmp(m.text, want) == 0, "the messages come in order, each once");
        }
        /* Receive two POSIX messages, in order, and send one. */
        for (int k = 0; k < 2; k++, mq_received++) {
            char text[32], want[32];
            unsigned prio;
            CHECK(mq_receive(mq, text, sizeof text, &prio) == (ssize_t)sizeof text, "mq_receive");
            snprintf(want, sizeof want, "posix %d", mq_received);
            CHECK(strcmp(text, want) == 0 && prio == 0, "the POSIX messages come in order, each once");
        }
        {
            char text[32];
            snprintf(text, sizeof text, "posix %d", mq_sent++);
            CHECK(mq_send(mq, text, sizeof text, 0) == 0, "mq_send after a restart");
        }
        /* O_NONBLOCK changed by fcntl, not mq_setattr: kept across the kill. */
        int fl = fcntl((int)mq, F_GETFL);
        mq_flags = mq_flags ? 0 : O_NONBLOCK;
        CHECK(fcntl((int)mq, F_SETFL, (fl & ~O_NONBLOCK) | (int)mq_flags) == 0, "fcntl F_SETFL of the queue descriptor");
        /* Change what exists. */
        mapped[round_no * 4099 % SEG] ^= 0xff;
        want_seg[round_no * 4099 % SEG] ^= 0xff;
        struct sembuf ops[2] = { { 2, 1, 0 }, { 0, 1, SEM_UNDO } };
        CHECK(semop(sem_id, ops, 2) == 0, "semop");
        want_sem[2] += 1;
        want_sem[0] += 1;
        /* And make new objects. */
        round_shm[round_no] = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
        CHECK(round_shm[round_no] >= 0, "shmget of a new segment");
        char *p = shmat(round_shm[round_no], NULL, 0);
        CHECK(p != (void *)-1, "shmat of the new segment");
        p[0] = (char)('A' + round_no);
        CHECK(shmdt(p) == 0, "shmdt");
        round_sem[round_no] = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
        CHECK(round_sem[round_no] >= 0, "semget of a new set");
        CHECK(semctl(round_sem[round_no], 0, SETVAL, 100 + round_no) == 0, "SETVAL");
        round_msg[round_no] = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
        CHECK(round_msg[round_no] >= 0, "msgget of a new queue");
        struct msg m = { .mtype = 1 };
        strcpy(m.text, "new");
        CHECK(msgsnd(round_msg[round_no], &m, sizeof m.text, IPC_NOWAIT) == 0, "msgsnd to the new queue");
    }
    check_all();

    for (int r = 0; r < rounds; r++) {
        CHECK(shmctl(round_shm[r], IPC_RMID, NULL) == 0, "IPC_RMID");
        CHECK(semctl(round_sem[r], 0, IPC_RMID) == 0, "IPC_RMID");
        CHECK(msgctl(round_msg[r], IPC_RMID, NULL) == 0, "IPC_RMID");
    }
    CHECK(shmdt(mapped) == 0 && shmctl(shm_id, IPC_RMID, NULL) == 0, "IPC_RMID");
    CHECK(semctl(sem_id, 0, IPC_RMID) == 0 && semctl(sleep_sem, 0, IPC_RMID) == 0, "IPC_RMID");
    CHECK(msgctl(msg_id, IPC_RMID, NULL) == 0, "IPC_RMID");
    CHECK(mq_close(mq) == 0 && mq_unlink("/crash_restart_q") == 0, "mq_close, mq_unlink");
    CHECK(mq_close(watched) == 0 && mq_unlink("/crash_restart_watched") == 0, "mq_close, mq_unlink");
    printf("ok\n");
    return 0;
}
