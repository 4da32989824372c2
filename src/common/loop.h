/* Single-threaded epoll event loop: fd watches, timers (min-heap), and
 * before-sleep hooks. All callbacks run on the loop's thread. Every callback
 * must do a bounded amount of work per call (a source with more to do asks
 * to be called again): the loop serves fds, then the timers due at the start
 * of the turn, and measures each callback for the stall watchdog. */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "err.h"

typedef struct loop loop;
/* events: EPOLLIN/EPOLLOUT/EPOLLERR/EPOLLHUP/EPOLLRDHUP bits that fired. */
typedef void (*loop_fd_fn)(loop *l, int fd, uint32_t events, void *data);
typedef void (*loop_timer_fn)(loop *l, void *data);
typedef void (*loop_hook_fn)(loop *l, void *data);
/* A loop turn took turn_ms; its longest callback was source's (a watch's
 * name, "timer" or "hook"), source_ms of it. */
typedef void (*loop_stall_fn)(void *data, const char *source, uint64_t source_ms, uint64_t turn_ms);

int loop_new(loop **ret, rr_err *e);
void loop_free(loop *l);

/* Watch fd for events (EPOLLIN|EPOLLOUT...). One watch per fd. name (a
 * static string) says what it is in stall reports. */
int loop_fd_add(loop *l, int fd, uint32_t events, const char *name, loop_fd_fn fn, void *data,
                rr_err *e);
/* Change the events watched on fd. */
int loop_fd_mod(loop *l, int fd, uint32_t events, rr_err *e);
/* Stop watching fd (before closing it). Safe from inside fn: no further
 * callbacks for fd are delivered in the current iteration. */
void loop_fd_del(loop *l, int fd);

/* Call fn once after ms milliseconds. Returns a non-zero timer id. */
uint64_t loop_timer_add(loop *l, uint64_t ms, loop_timer_fn fn, void *data);
/* Make sure the next n loop_timer_add calls cannot fail (no allocation):
 * -1 on ENOMEM. For a request that must not start unless its deadline can
 * be armed. */
int loop_timer_reserve(loop *l, unsigned n);
/* Cancel a pending timer in O(log n); no-op for 0 or an id that already
 * fired. */
void loop_timer_cancel(loop *l, uint64_t id);

/* Call fn before every sleep (e.g. to flush HTTP/2 sessions). Returns an id. */
uint64_t loop_hook_add(loop *l, loop_hook_fn fn, void *data);
void loop_hook_del(loop *l, uint64_t id);

/* Run until loop_stop. Returns 0, or -1 on an epoll failure. */
int loop_run(loop *l, rr_err *e);
/* Run one iteration, waiting at most timeout_ms (-1 = until something). */
int loop_run_once(loop *l, int timeout_ms, rr_err *e);
void loop_stop(loop *l);
bool loop_stopping(const loop *l);
/* Monotonic time cached at the start of the iteration, in ms. */
uint64_t loop_now_ms(loop *l);

/* Call fn after each turn that takes at least threshold_ms (callbacks only,
 * not the sleep in epoll_wait); fn NULL turns it off. */
void loop_stall_set(loop *l, uint64_t threshold_ms, loop_stall_fn fn, void *data);
/* The longest single callback and the longest whole turn (from the end of
 * epoll_wait to the next one) seen so far, in microseconds. */
uint64_t loop_longest_callback_us(const loop *l);
uint64_t loop_longest_turn_us(const loop *l);
