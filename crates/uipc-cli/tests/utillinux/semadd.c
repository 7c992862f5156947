/* semadd ID NUM DELTA: one semop(2) of DELTA on semaphore NUM of set ID
 * (so the set shows a value, a last-op pid and an otime), then exit. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/sem.h>

int main(int argc, char **argv)
{
	if (argc != 4)
		return 2;
	struct sembuf op = { .sem_num = (unsigned short)atoi(argv[2]), .sem_op = (short)atoi(argv[3]), .sem_flg = 0 };
	if (semop(atoi(argv[1]), &op, 1) != 0) {
		perror("semop");
		return 1;
	}
	return 0;
}
