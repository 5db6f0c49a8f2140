// Certificate checks and a diagnostic TLS handshake for the cluster's tls+tcp:// links, on
// mbedTLS (the library Debian's nng is built with). nng reports every failed TLS handshake as
// one "cryptographic error"; these functions find out which problem it was, so the user gets
// one line that names it.
#ifndef L2PD_TLS_CHECK_H
#define L2PD_TLS_CHECK_H

#include <stddef.h>
#include <stdint.h>

// Verification problems (a bit set), mirroring mbedTLS's X.509 flags.
enum {
    L2PD_TLS_EXPIRED = 1 << 0,
    L2PD_TLS_NOT_YET_VALID = 1 << 1,
    L2PD_TLS_NOT_TRUSTED = 1 << 2,
    L2PD_TLS_NAME_MISMATCH = 1 << 3,
    L2PD_TLS_OTHER = 1 << 4,
};

// Outcomes of `l2pd_tls_probe`.
enum {
    L2PD_PROBE_OK = 0,             // handshake done and the peer's certificate verified
    L2PD_PROBE_UNREACHABLE = 1,    // no TCP connection (nothing listening, unreachable, timeout)
    L2PD_PROBE_NOT_TLS = 2,        // the peer answered without TLS or closed at once
    L2PD_PROBE_BAD_PEER_CERT = 3,  // handshake done, but the peer's certificate failed (`flags`)
    L2PD_PROBE_REFUSED = 4,        // the peer ended the handshake (an alert or a hang-up; for example it wants a client certificate)
    L2PD_PROBE_LOCAL_ERROR = 5,    // our own certificate, key or CA could not be used (`reason`)
};

// Parses a PEM certificate and its private key: 0 when both parse, match each other and the
// certificate is valid now; otherwise -1 with a reason in `reason` (and `flags` for dates).
// `not_after` receives the expiry as "YYYY-MM-DD hh:mm:ss" when the certificate parses.
int l2pd_tls_check_identity(const char *cert_pem, const char *key_pem, uint32_t *flags, char *not_after,
                            size_t not_after_size, char *reason, size_t reason_size);

// Parses PEM CA certificates: the number parsed, or -1 with a reason.
int l2pd_tls_check_ca(const char *ca_pem, char *reason, size_t reason_size);

// A client handshake with host:port trusting `ca_pem` (NULL: verify nothing), presenting `cert_pem`/`key_pem` when not
// NULL, expecting the peer's certificate to name `server_name`; reads at most `timeout_ms`
// per wait. Returns an L2PD_PROBE_* outcome; `flags` receives L2PD_TLS_* bits for
// L2PD_PROBE_BAD_PEER_CERT, `reason` a short text for the others.
int l2pd_tls_probe(const char *host, const char *port, const char *server_name, const char *ca_pem, const char *cert_pem,
                   const char *key_pem, uint32_t timeout_ms, uint32_t *flags, char *reason, size_t reason_size);

#endif
