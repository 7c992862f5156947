/* msgsend ID TYPE TEXT: one msgsnd(2) of TEXT with mtype TYPE to queue ID,
 * then one msgrcv(2) of any message (so the queue shows a last sender, a
 * last receiver and both times), then one more msgsnd; exits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/msg.h>

int main(int argc, char **argv)
{
	if (argc != 4)
		return 2;
	struct { long mtype; char text[256]; } m = { atol(argv[2]), "" };
	size_t len = strlen(argv[3]);
	if (len > sizeof m.text)
		return 2;
	memcpy(m.text, argv[3], len);
	int id = atoi(argv[1]);
	if (msgsnd(id, &m, len, 0) != 0 || msgrcv(id, &m, sizeof m.text, 0, 0) < 0 || msgsnd(id, &m, len, 0) != 0) {
		perror("msgsnd/msgrcv");
		return 1;
	}
	return 0;
}
