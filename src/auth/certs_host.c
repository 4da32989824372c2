/* The names a server certificate of this host carries: loopback, the host
 * name, the addresses of its interfaces and any the admin adds; and the
 * names an existing certificate already has. */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "auth/certs.h"
#include "common/util.h"

bool certs_san_list_has(const certs_san_list *l, const char *san) {
  for (size_t i = 0; i < l->n; i++)
    if (!strcmp(l->items[i], san))
      return true;
  return false;
}

int certs_san_list_add(certs_san_list *l, const char *san, rr_err *e) {
  if (certs_san_list_has(l, san))
    return 0;
  if (certs_san_check(san, e) < 0)
    return -1;
  if (l->n == CERTS_MAX_SANS)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED,
                      "cannot add \"%s\": a certificate has at most %d names", san, CERTS_MAX_SANS);
  if (strlen(san) >= sizeof l->items[0])
    return rr_err_set(e, RR_INVALID_ARGUMENT, "name \"%.60s...\" is too long", san);
  strcpy(l->items[l->n++], san);
  return 0;
}

/* ip:ADDR of one interface address; false for those no client can name
 * (IPv6 link-local needs a zone, which certificates cannot carry). */
static bool host_addr_san(const struct sockaddr *sa, char *buf, size_t size) {
  char text[INET6_ADDRSTRLEN];
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    if (!inet_ntop(AF_INET, &in->sin_addr, text, sizeof text))
      return false;
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    if (IN6_IS_ADDR_LINKLOCAL(&in6->sin6_addr) ||
        !inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text))
      return false;
  } else {
    return false;
  }
  snprintf(buf, size, "ip:%s", text);
  return true;
}

int certs_host_sans(certs_san_list *l, rr_err *e) {
  static const char *const loopback[] = {"dns:localhost", "ip:127.0.0.1", "ip:::1"};
  for (size_t i = 0; i < RR_ARRAY_SIZE(loopback); i++)
    if (certs_san_list_add(l, loopback[i], e) < 0)
      return -1;
  char host[HOST_NAME_MAX + 1], san[CERTS_SAN_TEXT];
  if (gethostname(host, sizeof host) == 0) {
    host[HOST_NAME_MAX] = '\0';
    snprintf(san, sizeof san, "dns:%s", host);
    /* a host name that is no DNS name (e.g. with '_') is left out, not fatal */
    if (certs_san_check(san, NULL) == 0 && certs_san_list_add(l, san, e) < 0)
      return -1;
  }
  struct ifaddrs *ifs;
  if (getifaddrs(&ifs) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot list this host's network addresses");
  int rc = 0;
  for (struct ifaddrs *i = ifs; i && rc == 0; i = i->ifa_next)
    if (i->ifa_addr && host_addr_san(i->ifa_addr, san, sizeof san) && l->n < CERTS_MAX_SANS)
      rc = certs_san_list_add(l, san, e);
  freeifaddrs(ifs);
  return rc;
}

int certs_san_list_of_cert(X509 *x, certs_san_list *l) {
  GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
  if (!gens)
    return 0;
  char san[CERTS_SAN_TEXT], text[INET6_ADDRSTRLEN];
  for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
    const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
    int type;
    const ASN1_STRING *s = GENERAL_NAME_get0_value(g, &type);
    const char *kind = type == GEN_DNS     ? "dns"
                       : type == GEN_URI   ? "uri"
                       : type == GEN_EMAIL ? "email"
                                           : NULL;
    int len = ASN1_STRING_length(s);
    const unsigned char *d = ASN1_STRING_get0_data(s);
    if (type == GEN_IPADD && (len == 4 || len == 16) &&
        inet_ntop(len == 4 ? AF_INET : AF_INET6, d, text, sizeof text))
      snprintf(san, sizeof san, "ip:%s", text);
    else if (kind && len > 0 && (size_t)len < sizeof san - 8 && !memchr(d, 0, (size_t)len))
      snprintf(san, sizeof san, "%s:%.*s", kind, len, (const char *)d);
    else
      continue;
    if (l->n < CERTS_MAX_SANS && certs_san_check(san, NULL) == 0)
      certs_san_list_add(l, san, NULL);
  }
  GENERAL_NAMES_free(gens);
  return 0;
}
