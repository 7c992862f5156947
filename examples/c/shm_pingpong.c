/* An unmodified System V shared memory program: a parent creates a
 * segment, a forked child writes into it, the parent reads it back and
 * prints the segment's status. Run it under `uipc run` and it uses uipc
 * instead of the kernel (with --deny-kernel-ipc the kernel refuses). */
#include <stdio.h>
#include <errno.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
	int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
	if (id < 0) { perror("shmget"); return 1; }
	char *mem = shmat(id, NULL, 0);
	if (mem == (void *)-1) { perror("shmat"); return 1; }
	struct shmid_ds ds;
	pid_t child = fork();
	if (child == 0) {
		shmctl(id, IPC_STAT, &ds);
		snprintf(mem, 4096, "hello from child %d (it saw nattch=%lu)", getpid(), (unsigned long)ds.shm_nattch);
		shmdt(mem);
		return 0;
	}
	waitpid(child, NULL, 0);
	printf("parent %d read: %s\n", getpid(), mem);
	if (shmctl(id, IPC_STAT, &ds) != 0) { perror("shmctl"); return 1; }
	printf("segment %d: size=%zu nattch=%lu cpid=%d lpid=%d mode=%o\n", id, ds.shm_segsz,
	       (unsigned long)ds.shm_nattch, ds.shm_cpid, ds.shm_lpid, ds.shm_perm.mode & 0777);
	shmdt(mem);
	shmctl(id, IPC_RMID, NULL);
	printf("removed; IPC_STAT now: %s\n", shmctl(id, IPC_STAT, &ds) == 0 ? "still there" : strerror(errno));
	return 0;
}
