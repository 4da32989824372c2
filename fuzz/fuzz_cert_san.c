/* Certificate SAN matching: a client certificate (DER) through the SAN
 * extraction rund uses after the TLS handshake (rpc_tls_cert_sans) and the
 * identity and admin decision (authz_identify). Every principal made from a
 * certificate must be one an --admin flag can name, and match itself. */
#include <openssl/err.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "auth/authz.h"
#include "rpc/tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const unsigned char *p = data;
  X509 *cert = d2i_X509(NULL, &p, (long)size);
  if (!cert) {
    ERR_clear_error();
    return 0;
  }
  rpc_peer peer = {.family = AF_INET, .tls = true, .tls_cert = true}; /* a verified certificate */
  rr_err e = {0};
  if (rpc_tls_cert_sans(cert, &peer.sans, &peer.nsans, &e) < 0) {
    X509_free(cert);
    return 0;
  }
  char *admins[] = {(char *)"san:dns:Admin.Example.com", (char *)"san:uri:spiffe://a/b",
                    (char *)"san:ip:127.0.0.1", (char *)"san:email:root@example.com"};
  authz_config cfg = {.admins = admins, .nadmins = 4};
  authz_identity id = {0};
  if (authz_identify(&cfg, &peer, NULL, &id, &e) == 0) {
    bool admin = false;
    for (size_t i = 0; i < id.n; i++) {
      rr_err pe = {0};
      if (authz_principal_check(id.principals[i], &pe) < 0 ||
          !authz_principal_equal(id.principals[i], id.principals[i]))
        abort();
      for (size_t k = 0; k < cfg.nadmins; k++)
        admin |= authz_principal_equal(id.principals[i], admins[k]);
    }
    if (admin != id.admin || !authz_can_see(&id, id.principals, id.n))
      abort();
    authz_identity_clear(&id);
  } else if (peer.nsans || !e.msg[0]) {
    abort(); /* a certificate with names must identify its holder */
  }
  rpc_tls_sans_free(peer.sans, peer.nsans);
  X509_free(cert);
  return 0;
}
