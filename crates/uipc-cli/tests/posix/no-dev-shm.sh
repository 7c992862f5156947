#!/bin/sh
# A private mount namespace without /dev/shm: a fresh tmpfs on /dev with
# only the character devices and links a program needs, then exec "$@".
set -e
mount --make-rprivate /
old=$(mktemp -d)
mount --rbind /dev "$old"
mount -t tmpfs -o mode=0755 uipc-nodevshm /dev
for n in null zero full random urandom tty; do
	[ -e "$old/$n" ] || continue
	touch "/dev/$n"
	mount --bind "$old/$n" "/dev/$n"
done
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr
umount -l "$old"
rmdir "$old"
mount -o remount,ro /dev
exec "$@"
