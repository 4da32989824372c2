/* Structured log lines on stderr (logfmt): ts=... level=... msg="..." k=v ...
 * Only program mains and the daemon's edges log; library code returns errors. */
#pragma once

enum { RR_LOG_DEBUG, RR_LOG_INFO, RR_LOG_WARN, RR_LOG_ERROR };

/* Minimum level printed; default RR_LOG_INFO. */
void rr_log_set_level(int level);
/* msg is a plain sentence; fmt/... appends " k=v" pairs verbatim (caller
 * quotes values with rr_log_quote when they may contain spaces). */
void rr_log(int level, const char *msg, const char *kv_fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Quote s for logfmt into buf (escapes ", \, control bytes). Returns buf. */
const char *rr_log_quote(char *buf, unsigned long size, const char *s);

#define rr_info(msg, ...) rr_log(RR_LOG_INFO, msg, __VA_ARGS__)
#define rr_warn(msg, ...) rr_log(RR_LOG_WARN, msg, __VA_ARGS__)
#define rr_error(msg, ...) rr_log(RR_LOG_ERROR, msg, __VA_ARGS__)
#define rr_debug(msg, ...) rr_log(RR_LOG_DEBUG, msg, __VA_ARGS__)
