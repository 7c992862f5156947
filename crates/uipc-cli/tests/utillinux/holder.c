/* Attaches segment argv[1], prints its key (IPC_STAT), holds the
 * attachment until standard input ends, then detaches. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/shm.h>
#include <unistd.h>
int main(int argc, char **argv)
{
	if (argc != 2)
		return 2;
	int id = atoi(argv[1]);
	struct shmid_ds ds;
	char *p = shmat(id, NULL, 0);
	if (p == (void *)-1 || shmctl(id, IPC_STAT, &ds) != 0) {
		perror("holder");
		return 1;
	}
	p[0] = 1;
	printf("0x%08x\n", (unsigned)ds.shm_perm.__key);
	fflush(stdout);
	char b;
	while (read(0, &b, 1) > 0)
		;
	return shmdt(p) != 0;
}
