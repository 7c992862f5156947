/* A small MIT-SHM client for scripts/e2e/x11-mitshm.sh: every way the X
 * server can share a System V segment with a client, each checked by
 * reading the pixels back another way.
 *
 *  1. XShmPutImage: the client fills a segment, the server reads it (the
 *     request carries no pixels) into a pixmap; plain XGetImage (pixels over
 *     the socket) must return the same pattern.
 *  2. XShmGetImage: the server writes the pixmap into a second segment; the
 *     client compares the memory with the pattern.
 *  3. XShmCreatePixmap (if the server offers shared pixmaps): a pixmap whose
 *     storage is the client's segment. The client writes the memory, the
 *     server returns it with XGetImage; the server draws (XFillRectangle),
 *     the client sees the new pixels in its memory.
 *  4. Permissions: with a segment of mode 0400 the server must refuse a
 *     read-write XShmAttach (BadAccess) and accept a read-only one; the
 *     server's check is shmctl(IPC_STAT) against the client's credentials,
 *     so this only bites when the client is not root (the server's check
 *     lets root through; then the line says so).
 *
 * While the first segment is attached by both sides it prints
 * "ATTACHED <shmid> nattch=<n>" and, with --hold, waits for a line on
 * stdin, so that the caller can look at `ipcs -m` at that moment. The
 * segments are marked IPC_RMID while still attached (what most clients do),
 * so they must vanish when both sides detach.
 *
 * Every other line of output is the same on any kernel or uipc (no ids, no
 * addresses). Exit status 0 only if every check passed.
 *
 *   cc -O2 -o xshm-client xshm-client.c -lXext -lX11
 */
#include <X11/Xlib.h>
#include <X11/Xutil.h>
#include <X11/extensions/XShm.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <unistd.h>

#define W 256
#define H 128

static int x_errors;
static int last_error;

static int on_error(Display *dpy, XErrorEvent *e)
{
	char text[128];
	XGetErrorText(dpy, e->error_code, text, sizeof text);
	last_error = e->error_code;
	x_errors++;
	printf("X error: %s (request %d.%d)\n", text, e->request_code, e->minor_code);
	return 0;
}

static int failures;
static void check(int ok, const char *what)
{
	printf("%s: %s\n", what, ok ? "ok" : "FAILED");
	if (!ok)
		failures++;
}

static unsigned long pattern(int x, int y, int salt)
{
	return ((unsigned long)((x * 7 + salt) & 0xff) << 16) | ((unsigned long)((y * 13 + salt) & 0xff) << 8) |
	       (unsigned long)((x ^ y ^ salt) & 0xff);
}

/* Number of pixels of img (masked to the depth) differing from pattern(salt). */
static long differences(XImage *img, unsigned long mask, int salt)
{
	long bad = 0;
	for (int y = 0; y < H; y++)
		for (int x = 0; x < W; x++)
			if ((XGetPixel(img, x, y) & mask) != (pattern(x, y, salt) & mask))
				bad++;
	return bad;
}

static void fill(XImage *img, int salt)
{
	for (int y = 0; y < H; y++)
		for (int x = 0; x < W; x++)
			XPutPixel(img, x, y, pattern(x, y, salt));
}

static int nattch(int shmid)
{
	struct shmid_ds ds;
	if (shmctl(shmid, IPC_STAT, &ds) != 0)
		return -errno;
	return (int)ds.shm_nattch;
}

/* An XImage in a fresh segment of the given mode, attached by the client. */
static XImage *shm_image(Display *dpy, Visual *vis, int depth, XShmSegmentInfo *si, int mode)
{
	XImage *img = XShmCreateImage(dpy, vis, depth, ZPixmap, NULL, si, W, H);
	if (!img)
		return NULL;
	si->shmid = shmget(IPC_PRIVATE, (size_t)img->bytes_per_line * img->height, IPC_CREAT | mode);
	if (si->shmid < 0) {
		printf("shmget: %s\n", strerror(errno));
		return NULL;
	}
	si->shmaddr = img->data = shmat(si->shmid, NULL, (mode & 0200) ? 0 : SHM_RDONLY);
	if (si->shmaddr == (void *)-1) {
		printf("shmat: %s\n", strerror(errno));
		return NULL;
	}
	si->readOnly = False;
	return img;
}

static void release(Display *dpy, XImage *img, XShmSegmentInfo *si, int attached)
{
	if (attached)
		XShmDetach(dpy, si);
	XSync(dpy, False);
	shmdt(si->shmaddr);
	shmctl(si->shmid, IPC_RMID, NULL); /* if not already */
	img->data = NULL;
	XDestroyImage(img);
}

int main(int argc, char **argv)
{
	int hold = argc > 1 && strcmp(argv[1], "--hold") == 0;
	setvbuf(stdout, NULL, _IOLBF, 0);
	Display *dpy = XOpenDisplay(NULL);
	if (!dpy) {
		printf("cannot open display %s\n", XDisplayName(NULL));
		return 2;
	}
	XSetErrorHandler(on_error);
	int major, minor;
	Bool pixmaps;
	if (!XShmQueryExtension(dpy) || !XShmQueryVersion(dpy, &major, &minor, &pixmaps)) {
		printf("no MIT-SHM extension\n");
		return 1;
	}
	printf("MIT-SHM %d.%d, shared pixmaps %s\n", major, minor, pixmaps ? "yes" : "no");
	int scr = DefaultScreen(dpy);
	Visual *vis = DefaultVisual(dpy, scr);
	int depth = DefaultDepth(dpy, scr);
	Window root = RootWindow(dpy, scr);
	unsigned long mask = depth >= 32 ? ~0UL : (1UL << depth) - 1;
	printf("depth %d, %dx%d images\n", depth, W, H);
	Pixmap pix = XCreatePixmap(dpy, root, W, H, depth);
	GC gc = XCreateGC(dpy, pix, 0, NULL);

	/* 1. XShmPutImage */
	XShmSegmentInfo put_si;
	XImage *put = shm_image(dpy, vis, depth, &put_si, 0600);
	if (!put)
		return 1;
	int before = x_errors;
	XShmAttach(dpy, &put_si);
	XSync(dpy, False);
	check(x_errors == before, "XShmAttach (read-write, mode 0600)");
	int n = nattch(put_si.shmid);
	printf("ATTACHED %d nattch=%d\n", put_si.shmid, n);
	check(n == 2, "nattch is 2 while the client and the server are attached");
	if (hold) {
		char line[64];
		if (!fgets(line, sizeof line, stdin))
			printf("--hold: end of input\n");
	}
	/* Removed while attached: the segment lives on until both detach. */
	check(shmctl(put_si.shmid, IPC_RMID, NULL) == 0, "IPC_RMID while attached");
	fill(put, 1);
	before = x_errors;
	XShmPutImage(dpy, pix, gc, put, 0, 0, 0, 0, W, H, False);
	XSync(dpy, False);
	check(x_errors == before, "XShmPutImage");
	XImage *plain = XGetImage(dpy, pix, 0, 0, W, H, AllPlanes, ZPixmap);
	long bad = plain ? differences(plain, mask, 1) : -1;
	printf("XGetImage after XShmPutImage: %ld pixels differ\n", bad);
	check(bad == 0, "the server read the client's segment");
	if (plain)
		XDestroyImage(plain);

	/* 2. XShmGetImage */
	XShmSegmentInfo get_si;
	XImage *get = shm_image(dpy, vis, depth, &get_si, 0600);
	if (!get)
		return 1;
	memset(get->data, 0, (size_t)get->bytes_per_line * get->height);
	before = x_errors;
	XShmAttach(dpy, &get_si);
	shmctl(get_si.shmid, IPC_RMID, NULL);
	int ok = XShmGetImage(dpy, pix, get, 0, 0, AllPlanes);
	XSync(dpy, False);
	check(ok && x_errors == before, "XShmGetImage");
	bad = differences(get, mask, 1);
	printf("XShmGetImage: %ld pixels differ\n", bad);
	check(bad == 0, "the server wrote the client's segment");
	release(dpy, get, &get_si, 1);
	release(dpy, put, &put_si, 1);

	/* 3. Shared pixmap */
	if (pixmaps && XShmPixmapFormat(dpy) == ZPixmap) {
		XShmSegmentInfo pm_si;
		XImage *pm = shm_image(dpy, vis, depth, &pm_si, 0600);
		if (!pm)
			return 1;
		before = x_errors;
		XShmAttach(dpy, &pm_si);
		Pixmap spix = XShmCreatePixmap(dpy, root, pm_si.shmaddr, &pm_si, W, H, depth);
		XSync(dpy, False);
		shmctl(pm_si.shmid, IPC_RMID, NULL);
		check(x_errors == before, "XShmCreatePixmap");
		fill(pm, 2); /* plain stores into the segment, no request */
		plain = XGetImage(dpy, spix, 0, 0, W, H, AllPlanes, ZPixmap);
		bad = plain ? differences(plain, mask, 2) : -1;
		printf("shared pixmap, client stores -> server XGetImage: %ld pixels differ\n", bad);
		check(bad == 0, "the server sees the client's stores");
		if (plain)
			XDestroyImage(plain);
		XSetForeground(dpy, gc, 0x123456);
		XFillRectangle(dpy, spix, gc, 0, 0, W, H);
		XSync(dpy, False);
		long drawn = 0;
		for (int y = 0; y < H; y++)
			for (int x = 0; x < W; x++)
				drawn += (XGetPixel(pm, x, y) & mask) == (0x123456 & mask);
		printf("shared pixmap, server XFillRectangle -> client loads: %ld of %d pixels\n", drawn, W * H);
		check(drawn == W * H, "the client sees the server's drawing");
		XFreePixmap(dpy, spix);
		release(dpy, pm, &pm_si, 1);
	} else {
		printf("shared pixmaps: not offered, skipped\n");
	}

	/* 4. Permissions: a segment of mode 0400 */
	XShmSegmentInfo ro_si;
	XImage *ro = shm_image(dpy, vis, depth, &ro_si, 0400);
	if (!ro)
		return 1;
	before = x_errors;
	last_error = 0;
	ro_si.readOnly = False;
	XShmAttach(dpy, &ro_si);
	XSync(dpy, False);
	if (geteuid() == 0) {
		check(x_errors == before, "mode 0400, read-write XShmAttach as root: accepted");
	} else {
		check(x_errors == before + 1 && last_error == BadAccess,
		      "mode 0400, read-write XShmAttach as non-root: BadAccess");
	}
	int rw_attached = x_errors == before;
	if (rw_attached)
		XShmDetach(dpy, &ro_si);
	XSync(dpy, False);
	before = x_errors;
	ro_si.readOnly = True;
	XShmAttach(dpy, &ro_si);
	XSync(dpy, False);
	check(x_errors == before, "mode 0400, read-only XShmAttach: accepted");
	/* A read-only attach can still be a source (XShmPutImage). */
	XShmPutImage(dpy, pix, gc, ro, 0, 0, 0, 0, W, H, False);
	XSync(dpy, False);
	check(x_errors == before, "XShmPutImage from a read-only attach");
	release(dpy, ro, &ro_si, x_errors == before);

	XFreeGC(dpy, gc);
	XFreePixmap(dpy, pix);
	XCloseDisplay(dpy);
	printf("%s: %d check(s) failed\n", failures ? "FAIL" : "PASS", failures);
	return failures ? 1 : 0;
}
