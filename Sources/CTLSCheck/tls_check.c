#include "tls_check.h"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#include <stdio.h>
#include <string.h>

static void say(char *out, size_t size, const char *prefix, int code) {
    if (out == NULL || size == 0) return;
    char text[160];
    mbedtls_strerror(code, text, sizeof text);
    snprintf(out, size, "%s: %s", prefix, text);
}

static uint32_t translate(uint32_t x509) {
    uint32_t out = 0;
    if (x509 & MBEDTLS_X509_BADCERT_EXPIRED) out |= L2PD_TLS_EXPIRED;
    if (x509 & MBEDTLS_X509_BADCERT_FUTURE) out |= L2PD_TLS_NOT_YET_VALID;
    if (x509 & MBEDTLS_X509_BADCERT_NOT_TRUSTED) out |= L2PD_TLS_NOT_TRUSTED;
    if (x509 & MBEDTLS_X509_BADCERT_CN_MISMATCH) out |= L2PD_TLS_NAME_MISMATCH;
    if (x509 & ~(uint32_t)(MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE | MBEDTLS_X509_BADCERT_NOT_TRUSTED |
                           MBEDTLS_X509_BADCERT_CN_MISMATCH))
        out |= L2PD_TLS_OTHER;
    return out;
}

// mbedTLS parses PEM only with the terminating NUL counted in the length.
static size_t pem_length(const char *pem) { return strlen(pem) + 1; }

int l2pd_tls_check_identity(const char *cert_pem, const char *key_pem, uint32_t *flags, char *not_after,
                            size_t not_after_size, char *reason, size_t reason_size) {
    mbedtls_x509_crt crt;
    mbedtls_pk_context key;
    mbedtls_x509_crt_init(&crt);
    mbedtls_pk_init(&key);
    int result = -1;
    *flags = 0;
    int rc = mbedtls_x509_crt_parse(&crt, (const unsigned char *)cert_pem, pem_length(cert_pem));
    if (rc != 0) {
        say(reason, reason_size, "not a PEM certificate", rc);
        goto done;
    }
    const mbedtls_x509_time *t = &crt.valid_to;
    if (not_after != NULL && not_after_size > 0)
        snprintf(not_after, not_after_size, "%04d-%02d-%02d %02d:%02d:%02d", t->year, t->mon, t->day, t->hour, t->min, t->sec);
    if (mbedtls_x509_time_is_past(&crt.valid_to)) *flags |= L2PD_TLS_EXPIRED;
    if (mbedtls_x509_time_is_future(&crt.valid_from)) *flags |= L2PD_TLS_NOT_YET_VALID;
    rc = mbedtls_pk_parse_key(&key, (const unsigned char *)key_pem, pem_length(key_pem), NULL, 0);
    if (rc != 0) {
        say(reason, reason_size, "not a PEM private key", rc);
        goto done;
    }
    rc = mbedtls_pk_check_pair(&crt.pk, &key);
    if (rc != 0) {
        snprintf(reason, reason_size, "the private key does not belong to the certificate");
        goto done;
    }
    if (*flags != 0) {
        snprintf(reason, reason_size, "%s", (*flags & L2PD_TLS_EXPIRED) ? "the certificate has expired" : "the certificate is not valid yet");
        goto done;
    }
    result = 0;
done:
    mbedtls_pk_free(&key);
    mbedtls_x509_crt_free(&crt);
    return result;
}

int l2pd_tls_check_ca(const char *ca_pem, char *reason, size_t reason_size) {
    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    int rc = mbedtls_x509_crt_parse(&crt, (const unsigned char *)ca_pem, pem_length(ca_pem));
    int count = 0;
    if (rc < 0) {
        say(reason, reason_size, "not a PEM certificate", rc);
        count = -1;
    } else if (rc > 0) {
        snprintf(reason, reason_size, "%d certificate(s) in it could not be parsed", rc);
        count = -1;
    } else {
        for (mbedtls_x509_crt *c = &crt; c != NULL && c->raw.len > 0; c = c->next) count++;
    }
    mbedtls_x509_crt_free(&crt);
    return count;
}

int l2pd_tls_probe(const char *host, const char *port, const char *server_name, const char *ca_pem, const char *cert_pem,
                   const char *key_pem, uint32_t timeout_ms, uint32_t *flags, char *reason, size_t reason_size) {
    mbedtls_net_context net;
    mbedtls_ssl_context ssl;
    mbedtls_ssl_config conf;
    mbedtls_x509_crt ca, own;
    mbedtls_pk_context key;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_net_init(&net);
    mbedtls_ssl_init(&ssl);
    mbedtls_ssl_config_init(&conf);
    mbedtls_x509_crt_init(&ca);
    mbedtls_x509_crt_init(&own);
    mbedtls_pk_init(&key);
    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&drbg);
    *flags = 0;
    if (reason != NULL && reason_size > 0) reason[0] = 0;
    int outcome = L2PD_PROBE_LOCAL_ERROR;
    int rc = mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy, (const unsigned char *)"l2pd", 4);
    if (rc != 0) { say(reason, reason_size, "random generator", rc); goto done; }
    if (ca_pem != NULL) {
        rc = mbedtls_x509_crt_parse(&ca, (const unsigned char *)ca_pem, pem_length(ca_pem));
        if (rc != 0) { say(reason, reason_size, "CA", rc); goto done; }
    }
    rc = mbedtls_ssl_config_defaults(&conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
    if (rc != 0) { say(reason, reason_size, "TLS configuration", rc); goto done; }
    // Optional verification: the handshake completes and the result says what was wrong.
    // Without a CA (probing a plaintext address) nothing is verified.
    mbedtls_ssl_conf_authmode(&conf, ca_pem != NULL ? MBEDTLS_SSL_VERIFY_OPTIONAL : MBEDTLS_SSL_VERIFY_NONE);
    if (ca_pem != NULL) mbedtls_ssl_conf_ca_chain(&conf, &ca, NULL);
    mbedtls_ssl_conf_rng(&conf, mbedtls_ctr_drbg_random, &drbg);
    mbedtls_ssl_conf_read_timeout(&conf, timeout_ms);
    if (cert_pem != NULL && key_pem != NULL) {
        rc = mbedtls_x509_crt_parse(&own, (const unsigned char *)cert_pem, pem_length(cert_pem));
        if (rc == 0) rc = mbedtls_pk_parse_key(&key, (const unsigned char *)key_pem, pem_length(key_pem), NULL, 0);
        if (rc == 0) rc = mbedtls_ssl_conf_own_cert(&conf, &own, &key);
        if (rc != 0) { say(reason, reason_size, "own certificate", rc); goto done; }
    }
    rc = mbedtls_ssl_setup(&ssl, &conf);
    if (rc == 0 && server_name != NULL) rc = mbedtls_ssl_set_hostname(&ssl, server_name);
    if (rc != 0) { say(reason, reason_size, "TLS setup", rc); goto done; }
    rc = mbedtls_net_connect(&net, host, port, MBEDTLS_NET_PROTO_TCP);
    if (rc != 0) { outcome = L2PD_PROBE_UNREACHABLE; say(reason, reason_size, "connect", rc); goto done; }
    mbedtls_ssl_set_bio(&ssl, &net, mbedtls_net_send, NULL, mbedtls_net_recv_timeout);
    do { rc = mbedtls_ssl_handshake(&ssl); } while (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE);
    if (rc == 0) {
        uint32_t result = mbedtls_ssl_get_verify_result(&ssl);
        *flags = translate(result);
        outcome = *flags ? L2PD_PROBE_BAD_PEER_CERT : L2PD_PROBE_OK;
        mbedtls_ssl_close_notify(&ssl);
    } else if (rc == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE || rc == MBEDTLS_ERR_NET_CONN_RESET || rc == MBEDTLS_ERR_SSL_CONN_EOF) {
        // The peer spoke TLS far enough to hang up on us: it refused what we presented.
        outcome = L2PD_PROBE_REFUSED;
        say(reason, reason_size, "handshake", rc);
    } else if (rc == MBEDTLS_ERR_SSL_TIMEOUT) {
        outcome = L2PD_PROBE_UNREACHABLE;
        say(reason, reason_size, "handshake", rc);
    } else {
        // A plaintext nng peer reads the ClientHello as a bad protocol header and hangs up.
        outcome = L2PD_PROBE_NOT_TLS;
        say(reason, reason_size, "handshake", rc);
    }
done:
    mbedtls_net_free(&net);
    mbedtls_ssl_free(&ssl);
    mbedtls_ssl_config_free(&conf);
    mbedtls_x509_crt_free(&ca);
    mbedtls_x509_crt_free(&own);
    mbedtls_pk_free(&key);
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&entropy);
    return outcome;
}
