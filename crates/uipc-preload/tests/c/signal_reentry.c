/* A signal handler that calls semop, msgsnd or mq_send on the same object
 * as the call its thread was interrupted in. The IPC system calls are
 * async-signal-safe in the kernel: a handler may use a semaphore set,
 * message queue or POSIX queue that the interrupted code was using, and
 * both calls complete with their usual results.
 *
 * A second thread sends SIGUSR1 to the main thread in a loop (with a
 * varying pause, so the signals land at every point of the main thread's
 * calls) while the main thread runs calls that complete at once — under
 * the shim, on the object's state page, whose lock it holds for part of
 * each call. The handler makes its own call with IPC_NOWAIT (O_NONBLOCK)
 * on its own part of the object: semaphore 1 of the set (raised and lowered in turn) (the main thread
 * uses semaphore 0), messages of type 2 (the main thread's are of type 1),
 * messages of priority 1 on another description of the POSIX queue (the
 * main thread's are of priority 0). Each phase runs until the main thread
 * made ITERS pairs of calls and the handler ran MIN_HANDLED times; then
 * every value must add up: the main thread's calls all succeeded, the
 * handler's only failed with EAGAIN (a full queue), and what the handler
 * added is all there. Only those facts are printed (the counts depend on
 * scheduling). */
#include "mqcommon.h"
#include <pthread.h>
#include <sys/msg.h>
#include <sys/sem.h>

#define ITERS 20000
#define MIN_HANDLED 20000

enum kind { SEM, MSG, MQ };

static volatile sig_atomic_t kind;
static int semid = -1, msqid = -1;
static mqd_t handler_mq = (mqd_t)-1;
/* The handler's runs, what its successes added (messages, or semaphore 1's
 * value), EAGAINs, and other failures (the first one's errno). */
static volatile sig_atomic_t handled, h_ok, h_eagain, h_failed, h_first_errno;
static volatile sig_atomic_t stop;
static pthread_t main_thread;

static void on_usr1(int sig) {
    (void)sig;
    int saved = errno;
    int r = 0;
    int delta = 1;
    if (kind == SEM) {
        /* Raises and lowers semaphore 1 in turn (never past SEMVMX). */
        static int raised;
        delta = raised ? -1 : 1;
        struct sembuf b = { 1, (short)delta, IPC_NOWAIT };
        r = semop(semid, &b, 1);
        if (r == 0)
            raised = !raised;
    } else if (kind == MSG) {
        struct { long mtype; char text[4]; } m = { 2, "sig" };
        r = msgsnd(msqid, &m, sizeof m.text, IPC_NOWAIT);
    } else {
        r = mq_send(handler_mq, "h", 1, 1);
    }
    if (r == 0) {
        h_ok += delta;
    } else if (errno == EAGAIN) {
        h_eagain++;
    } else {
        if (h_failed++ == 0)
            h_first_errno = errno;
    }
    handled++;
    errno = saved;
}

/* Sends SIGUSR1 to the main thread until told to stop, pausing a varying
 * few hundred nanoseconds between two. */
static void *signaller(void *arg) {
    (void)arg;
    unsigned x = 12345;
    while (!stop) {
        CHECK(pthread_kill(main_thread, SIGUSR1) == 0, "pthread_kill");
        x = x * 1103515245u + 12345u;
        for (volatile unsigned i = 0; i < (x >> 16) % 2048; i++) {
        }
    }
    return NULL;
}

static pthread_t start_signals(enum kind k) {
    kind = k;
    handled = h_ok = h_eagain = h_failed = h_first_errno = 0;
    stop = 0;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, signaller, NULL) == 0, "pthread_create");
    return t;
}

static void stop_signals(pthread_t t) {
    stop = 1;
    CHECK(pthread_join(t, NULL) == 0, "pthread_join");
}

/* Main-thread failures: how many, and the first one's errno. */
struct fails { int n, first; };

static void failed(struct fails *f) {
    if (f->n++ == 0)
        f->first = errno;
}

/* errno's name ("0" for none). */
static const char *errname(int e) {
    const char *n = e ? strerrorname_np(e) : "0";
    return n ? n : "E?";
}

static void report(const char *what, struct fails main_fails, int handler_all_there) {
    printf("%s: main thread failures %d %s; handler failures other than EAGAIN %d %s; "
           "what the handler added all there: %s\n",
           what, main_fails.n, errname(main_fails.first), (int)h_failed, errname(h_first_errno),
           handler_all_there ? "yes" : "no");
}

/* Semaphore 0 taken and given back by the main thread; semaphore 1
 * raised and lowered by the handler. */
static void sem_phase(void) {
    semid = semget(IPC_PRIVATE, 2, IPC_CREAT | 0600);
    CHECK(semid >= 0, "semget");
    CHECK(semctl(semid, 0, SETVAL, 1) == 0, "SETVAL");
    struct sembuf down = { 0, -1, 0 }, up = { 0, 1, 0 };
    /* Warm: the first call is served by the daemon (and grants the page). */
    CHECK(semop(semid, &down, 1) == 0 && semop(semid, &up, 1) == 0, "warm semop");
    struct fails f = { 0, 0 };
    pthread_t t = start_signals(SEM);
    for (int i = 0; i < ITERS || handled < MIN_HANDLED; i++) {
        if (semop(semid, &down, 1) != 0)
            failed(&f);
        if (semop(semid, &up, 1) != 0)
            failed(&f);
    }
    stop_signals(t);
    int v0 = semctl(semid, 0, GETVAL), v1 = semctl(semid, 1, GETVAL);
    CHECK(v0 == 1 || f.n > 0, "sem0 %d", v0);
    report("semop", f, v1 == h_ok);
    CHECK(semctl(semid, 0, IPC_RMID) == 0, "IPC_RMID");
}

/* Messages of type 1 sent and received back by the main thread, which
 * also takes the handler's messages of type 2 off the queue as they come. */
static void msg_phase(void) {
    msqid = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    CHECK(msqid >= 0, "msgget");
    struct { long mtype; char text[64]; } m = { 1, "main" }, in;
    CHECK(msgsnd(msqid, &m, sizeof m.text, 0) == 0 && msgrcv(msqid, &in, sizeof in.text, 1, 0) == 64, "warm");
    struct fails f = { 0, 0 };
    long taken = 0;
    pthread_t t = start_signals(MSG);
    for (int i = 0; i < ITERS || handled < MIN_HANDLED; i++) {
        if (msgsnd(msqid, &m, sizeof m.text, 0) != 0)
            failed(&f);
        if (msgrcv(msqid, &in, sizeof in.text, 1, 0) != 64)
            failed(&f);
        while (msgrcv(msqid, &in, sizeof in.text, 2, IPC_NOWAIT) == 4)
            taken++;
        if (errno != ENOMSG)
            failed(&f);
    }
    stop_signals(t);
    while (msgrcv(msqid, &in, sizeof in.text, 2, IPC_NOWAIT) == 4)
        taken++;
    struct msqid_ds ds;
    CHECK(msgctl(msqid, IPC_STAT, &ds) == 0, "IPC_STAT");
    report("msgsnd", f, taken == h_ok && ds.msg_qnum == 0);
    CHECK(msgctl(msqid, IPC_RMID, NULL) == 0, "IPC_RMID");
}

/* Messages of priority 0 sent and received back by the main thread
 * through one description; the handler's of priority 1 (received first)
 * sent through another, with O_NONBLOCK. The main thread's description
 * has O_NONBLOCK too, so that a queue the handler filled makes its send
 * fail with EAGAIN (then it empties the queue and sends again) instead
 * of sleeping for ever. */
static void mq_phase(void) {
    struct mq_attr attr = { .mq_maxmsg = 10, .mq_msgsize = 64 };
    mqd_t q = mq_open("/uipc-signal-reentry", O_CREAT | O_EXCL | O_RDWR | O_NONBLOCK, 0600, &attr);
    CHECK(q != (mqd_t)-1, "mq_open");
    handler_mq = mq_open("/uipc-signal-reentry", O_WRONLY | O_NONBLOCK);
    CHECK(handler_mq != (mqd_t)-1, "mq_open (the handler's)");
    char buf[64];
    unsigned prio;
    /* Warm both descriptions. */
    CHECK(mq_send(handler_mq, "h", 1, 1) == 0 && mq_receive(q, buf, sizeof buf, &prio) == 1 && prio == 1, "warm");
    CHECK(mq_send(q, "m", 1, 0) == 0 && mq_receive(q, buf, sizeof buf, &prio) == 1 && prio == 0, "warm");
    struct fails f = { 0, 0 };
    long taken = 0;
    pthread_t t = start_signals(MQ);
    for (int i = 0; i < ITERS || handled < MIN_HANDLED; i++) {
        int sent;
        while ((sent = mq_send(q, "m", 1, 0)) != 0 && errno == EAGAIN) {
            while (mq_receive(q, buf, sizeof buf, &prio) == 1 && prio == 1)
                taken++;
        }
        if (sent != 0) {
            failed(&f);
            continue;
        }
        for (;;) {
            ssize_t n = mq_receive(q, buf, sizeof buf, &prio);
            if (n != 1) {
                failed(&f);
                break;
            }
            if (prio == 0)
                break;
            taken++;
        }
    }
    stop_signals(t);
    while (mq_receive(q, buf, sizeof buf, &prio) == 1 && prio == 1)
        taken++;
    CHECK(mq_getattr(q, &attr) == 0, "mq_getattr");
    report("mq_send", f, taken == h_ok && attr.mq_curmsgs == 0);
    CHECK(mq_close(handler_mq) == 0 && mq_close(q) == 0, "mq_close");
    CHECK(mq_unlink("/uipc-signal-reentry") == 0, "mq_unlink");
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1 && strcmp(argv[1], "deny") == 0) {
        deny_kernel_ipc();
        deny_mq();
    }
    watchdog(120);
    main_thread = pthread_self();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
    sem_phase();
    msg_phase();
    mq_phase();
    printf("ok\n");
    return 0;
}
