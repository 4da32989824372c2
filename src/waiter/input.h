/* A background job's input, held by its keeper (rund-waiter): the write end
 * of the command's stdin pipe, or its pty's master, and a unix socket in the
 * job's directory (STATE/jobs/<ID>/stdin, mode 0600) through which rund
 * (also a later one, after a restart) sends frames:
 *   'D' LEN(4, little endian) then LEN bytes   stdin bytes
 *   'C' 0 0 0 0                                 close stdin (a tty: VEOF)
 *   'W' ROWS(2) COLS(2)                         the window (tty only)
 * one connection at a time (a new one replaces the old: a restarted rund).
 * Back-pressure: the socket is read only while the job's stdin can take
 * what was read, so a command that does not read stalls rund's writer, never
 * grows the keeper. Written against sys.h's calls only. */
#pragma once
#include <poll.h>
#include <stdbool.h>

enum {
  INPUT_FRAME = 5, /* type + 4 bytes */
  INPUT_BUF = 65536,
};

typedef struct input {
  int lfd;  /* listening socket; -1 none */
  int cfd;  /* rund's connection; -1 none */
  int in;   /* stdin's write end or the pty master; -1 once closed */
  bool tty; /* in is a pty master */
  unsigned char hdr[INPUT_FRAME];
  unsigned hdr_len;
  unsigned long left; /* of the current 'D' frame, still to read */
  unsigned pend_off, pend_len;
  char *buf; /* INPUT_BUF bytes, the caller's */
} input;

/* in: stdin's write end (or the master, tty); lfd: the listening socket. */
void input_init(input *x, int in, int lfd, bool tty, char *buf);
/* Fill up to 3 pollfds for what x waits for; returns how many. */
unsigned long input_poll_fill(const input *x, struct pollfd *p);
/* Act on those pollfds' revents. */
void input_poll_done(input *x, const struct pollfd *p, unsigned long n);
