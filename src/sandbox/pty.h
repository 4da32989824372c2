/* Terminals for sandboxed processes: a pty pair opened through a ptmx (in
 * a container's mount namespace, its own devpts), the master handed to
 * whoever drives the terminal over a unix socket (runc's console socket:
 * SCM_RIGHTS, the pty's name as the payload, what containerd's shim and
 * conmon read), and the slave made a process's controlling terminal and
 * stdio in a new session. Open, send and make_controlling allocate
 * nothing: a forked child may call them. All return 0 or -errno. */
#pragma once
#include <stddef.h>

#define SB_PTY_NAME_MAX 32

/* A new pty through ptmx ("/dev/ptmx"): master and slave CLOEXEC, the
 * slave not yet anyone's controlling terminal, its window rows x cols when
 * both are > 0, its name ("/dev/pts/N") into name. */
int sb_pty_open(const char *ptmx, unsigned rows, unsigned cols, int *ret_master, int *ret_slave,
                char name[SB_PTY_NAME_MAX]);
/* Send fd over the connected unix socket sock (SCM_RIGHTS) with name as
 * the message. */
int sb_pty_send_fd(int sock, int fd, const char *name);
/* Receive one fd so sent (CLOEXEC), and its name into name (size bytes)
 * when not NULL. -EBADMSG when the message holds no fd. */
int sb_pty_recv_fd(int sock, int *ret_fd, char *name, size_t size);
/* A new session with slave as its controlling terminal, dup'ed onto 0, 1
 * and 2 (slave itself closed when above 2). The caller must not lead a
 * process group already. */
int sb_pty_make_controlling(int slave);
