/*
 * audex_jwt: signing, verification and every way a token is refused.
 *
 * Keys are made fresh by OpenSSL at start-up and written as PEM files to
 * a temporary directory, so the file loader is what every test uses.
 * Hostile tokens are built here by hand (header and claims JSON, HMAC)
 * rather than through audex_jwt_sign(), which would never produce them.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "audex_jwt.h"


#define T_NOW        1700000000
#define T_SECRET     "0123456789abcdef0123456789abcdef-audex-test"


typedef struct {
    char              dir[64];
    char              path[8][128];
    audex_jwt_key_t  *hs;
    audex_jwt_key_t  *rs_priv;
    audex_jwt_key_t  *rs_pub;
    audex_jwt_key_t  *rs_other;
    audex_jwt_key_t  *es_priv;
    audex_jwt_key_t  *es_pub;
    audex_jwt_key_t  *es_other;
} t_state_t;


enum {
    P_RS_PRIV = 0, P_RS_PUB, P_RS_OTHER, P_ES_PRIV, P_ES_PUB, P_ES_OTHER,
    P_SCRATCH, P_SCRATCH2
};


static t_state_t  st;


static char *
b64url(const void *data, size_t len)
{
    char   *out, *p;
    size_t  n;

    out = malloc(len * 4 / 3 + 8);
    assert_non_null(out);

    n = EVP_EncodeBlock((unsigned char *) out, data, (int) len);
    out[n] = '\0';

    for (p = out; *p; p++) {
        if (*p == '+') {
            *p = '-';
        } else if (*p == '/') {
            *p = '_';
        } else if (*p == '=') {
            *p = '\0';
            break;
        }
    }

    return out;
}


/* "<h64>.<p64>.<HMAC-SHA256 under secret>" from already encoded parts */
static char *
hs_token_raw(const void *secret, size_t secret_len, const char *h64,
    const char *p64)
{
    char           *input, *sig, *tok;
    size_t          n;
    unsigned int    mac_len;
    unsigned char   mac[EVP_MAX_MD_SIZE];

    n = strlen(h64) + strlen(p64) + 2;
    input = malloc(n);
    assert_non_null(input);
    snprintf(input, n, "%s.%s", h64, p64);

    assert_non_null(HMAC(EVP_sha256(), secret, (int) secret_len,
                         (unsigned char *) input, strlen(input), mac,
                         &mac_len));

    sig = b64url(mac, mac_len);
    tok = malloc(n + strlen(sig) + 1);
    assert_non_null(tok);
    sprintf(tok, "%s.%s", input, sig);

    free(input);
    free(sig);

    return tok;
}


static char *
hs_token(const char *header, const char *payload)
{
    char  *h, *p, *tok;

    h = b64url(header, strlen(header));
    p = b64url(payload, strlen(payload));
    tok = hs_token_raw(T_SECRET, strlen(T_SECRET), h, p);

    free(h);
    free(p);

    return tok;
}


/* the base64url character after c, which differs in the lowest bit */
static char
audex_b64_next(char c)
{
    static const char  a[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    return a[(strchr(a, c) - a) ^ 1];
}


static char *
b64s(const char *s)
{
    return b64url(s, strlen(s));
}


#define HS_HDR  "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"


/* verify a hand-made HS256 token against the HS256 key */
static audex_jwt_err_e
hs_check(const char *header, const char *payload, int64_t now,
    int64_t leeway, const char *iss, const char *aud)
{
    char             *tok;
    audex_jwt_err_e   rc;

    tok = hs_token(header, payload);
    rc = audex_jwt_verify(st.hs, tok, strlen(tok), now, leeway, iss, aud,
                          NULL);
    free(tok);

    return rc;
}


/*
 * Each of n JSON texts, signed as the header (over fixed claims) or as
 * the claims (under HS_HDR), is refused as that part being malformed.
 */
static void
all_malformed(const char *const *json, size_t n, int as_header)
{
    size_t           i;
    audex_jwt_err_e  rc;

    for (i = 0; i < n; i++) {
        rc = as_header
             ? hs_check(json[i], "{\"exp\":1800000000}", T_NOW, 0, NULL,
                        NULL)
             : hs_check(HS_HDR, json[i], T_NOW, 0, NULL, NULL);

        if (rc != (as_header ? AUDEX_JWT_ERR_BAD_HEADER
                             : AUDEX_JWT_ERR_BAD_CLAIMS))
        {
            print_error("%s '%s': %s\n", as_header ? "header" : "claims",
                        json[i], audex_jwt_strerror(rc));
            fail();
        }
    }
}


static void
write_file(const char *path, const void *data, size_t len)
{
    FILE  *f;

    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}


static void
write_pem(const char *path, EVP_PKEY *pkey, int private, const char *pass)
{
    BIO  *bio;

    bio = BIO_new_file(path, "w");
    assert_non_null(bio);

    if (!private) {
        assert_int_equal(PEM_write_bio_PUBKEY(bio, pkey), 1);

    } else if (pass) {
        assert_int_equal(PEM_write_bio_PrivateKey(bio, pkey,
                                                  EVP_aes_128_cbc(),
                                                  (unsigned char *) pass,
                                                  (int) strlen(pass), NULL,
                                                  NULL), 1);
    } else {
        assert_int_equal(PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0,
                                                  NULL, NULL), 1);
    }

    BIO_free(bio);
}


static audex_jwt_key_t *
load(audex_jwt_alg_e alg, int which)
{
    char              err[256];
    audex_jwt_key_t  *key;

    err[0] = '\0';
    key = audex_jwt_key_load(alg, st.path[which], err, sizeof(err));
    if (key == NULL) {
        print_error("load %s: %s\n", st.path[which], err);
    }

    return key;
}


/* expect a load failure whose message contains "want" */
static void
load_fails(audex_jwt_alg_e alg, const char *path, const char *want)
{
    char              err[256];
    audex_jwt_key_t  *key;

    err[0] = '\0';
    key = audex_jwt_key_load(alg, path, err, sizeof(err));

    if (key != NULL || strstr(err, want) == NULL) {
        print_error("load %s as %s: key %p, error \"%s\", wanted \"%s\"\n",
                    path, audex_jwt_alg_name(alg), (void *) key, err, want);
        audex_jwt_key_free(key);
        fail();
    }
}


static int
setup(void **state)
{
    int        i;
    EVP_PKEY  *rsa, *rsa2, *ec, *ec2;

    static const char  *names[] = {
        "rs.pem", "rs.pub", "rs2.pub", "es.pem", "es.pub", "es2.pub",
        "scratch", "scratch2"
    };

    strcpy(st.dir, "/tmp/audex-test-jwt-XXXXXX");
    assert_non_null(mkdtemp(st.dir));

    for (i = 0; i < 8; i++) {
        /* via a local copy: gcc -O1 takes st.dir and st.path to overlap */
        char  path[sizeof(st.path[i])];

        snprintf(path, sizeof(path), "%s/%s", st.dir, names[i]);
        memcpy(st.path[i], path, sizeof(path));
    }

    rsa = EVP_RSA_gen(2048);
    rsa2 = EVP_RSA_gen(2048);
    ec = EVP_EC_gen("P-256");
    ec2 = EVP_EC_gen("P-256");
    assert_true(rsa && rsa2 && ec && ec2);

    write_pem(st.path[P_RS_PRIV], rsa, 1, NULL);
    write_pem(st.path[P_RS_PUB], rsa, 0, NULL);
    write_pem(st.path[P_RS_OTHER], rsa2, 0, NULL);
    write_pem(st.path[P_ES_PRIV], ec, 1, NULL);
    write_pem(st.path[P_ES_PUB], ec, 0, NULL);
    write_pem(st.path[P_ES_OTHER], ec2, 0, NULL);

    EVP_PKEY_free(rsa);
    EVP_PKEY_free(rsa2);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(ec2);

    st.hs = audex_jwt_key_from_mem(AUDEX_JWT_HS256, T_SECRET,
                                   strlen(T_SECRET), NULL, 0);
    st.rs_priv = load(AUDEX_JWT_RS256, P_RS_PRIV);
    st.rs_pub = load(AUDEX_JWT_RS256, P_RS_PUB);
    st.rs_other = load(AUDEX_JWT_RS256, P_RS_OTHER);
    st.es_priv = load(AUDEX_JWT_ES256, P_ES_PRIV);
    st.es_pub = load(AUDEX_JWT_ES256, P_ES_PUB);
    st.es_other = load(AUDEX_JWT_ES256, P_ES_OTHER);

    assert_true(st.hs && st.rs_priv && st.rs_pub && st.rs_other
                && st.es_priv && st.es_pub && st.es_other);

    return 0;
}


static int
teardown(void **state)
{
    int  i;

    audex_jwt_key_free(st.hs);
    audex_jwt_key_free(st.rs_priv);
    audex_jwt_key_free(st.rs_pub);
    audex_jwt_key_free(st.rs_other);
    audex_jwt_key_free(st.es_priv);
    audex_jwt_key_free(st.es_pub);
    audex_jwt_key_free(st.es_other);

    for (i = 0; i < 8; i++) {
        unlink(st.path[i]);
    }

    rmdir(st.dir);

    return 0;
}


static audex_jwt_sign_args_t
args_default(void)
{
    audex_jwt_sign_args_t  a;

    memset(&a, 0, sizeof(a));
    a.sub = "65a1b2c3d4e5f60718293a4b";
    a.email = "alice@example.com";
    a.admin = 1;
    a.now = T_NOW;
    a.lifetime = 3600;

    return a;
}


static char *
sign(const audex_jwt_key_t *key, const audex_jwt_sign_args_t *a)
{
    char             *tok;
    size_t            len;
    audex_jwt_err_e   rc;

    tok = NULL;
    rc = audex_jwt_sign(key, a, &tok, &len);
    assert_int_equal(rc, AUDEX_JWT_OK);
    assert_non_null(tok);
    assert_int_equal(strlen(tok), len);

    return tok;
}


static audex_jwt_err_e
verify(const audex_jwt_key_t *key, const char *tok, int64_t now)
{
    return audex_jwt_verify(key, tok, strlen(tok), now, 0, NULL, NULL, NULL);
}


static void
test_names(void **state)
{
    int  i, j;

    assert_int_equal(audex_jwt_alg_parse("HS256", 5), AUDEX_JWT_HS256);
    assert_int_equal(audex_jwt_alg_parse("RS256", 5), AUDEX_JWT_RS256);
    assert_int_equal(audex_jwt_alg_parse("ES256", 5), AUDEX_JWT_ES256);
    assert_int_equal(audex_jwt_alg_parse("hs256", 5), AUDEX_JWT_ALG_UNSET);
    assert_int_equal(audex_jwt_alg_parse("none", 4), AUDEX_JWT_ALG_UNSET);
    assert_int_equal(audex_jwt_alg_parse("HS2560", 6), AUDEX_JWT_ALG_UNSET);

    assert_string_equal(audex_jwt_strerror(AUDEX_JWT_ERR_EXPIRED),
                        "token expired (exp)");
    assert_string_equal(audex_jwt_strerror(AUDEX_JWT_ERR_SIGNATURE),
                        "token signature does not verify");
    assert_string_equal(audex_jwt_strerror(AUDEX_JWT_ERR_ALG),
                        "JOSE header: algorithm not allowed");
    assert_string_equal(audex_jwt_strerror(AUDEX_JWT_ERR_BAD_HEADER),
                        "malformed token: JOSE header is not a JSON object "
                        "with alg");
    assert_string_equal(audex_jwt_strerror(AUDEX_JWT_ERR_LAST),
                        "unknown error");

    /* every code has a message of its own */
    for (i = 0; i < AUDEX_JWT_ERR_LAST; i++) {
        for (j = i + 1; j < AUDEX_JWT_ERR_LAST; j++) {
            assert_string_not_equal(audex_jwt_strerror(i),
                                    audex_jwt_strerror(j));
        }
    }
}


static void
test_hs256_roundtrip(void **state)
{
    int                     i;
    char                   *tok, *dot, *hdr, buf[64];
    size_t                  n;
    int64_t                 t;
    ssize_t                 len;
    const char             *s;
    audex_jwt_err_e         rc;
    audex_jwt_claims_t     *c;
    audex_jwt_sign_args_t   a;

    a = args_default();
    a.iss = "audex";
    a.aud = "audex-web";
    tok = sign(st.hs, &a);

    /* the header is exactly what every JWT library expects */
    dot = strchr(tok, '.');
    assert_non_null(dot);
    hdr = b64url(HS_HDR, strlen(HS_HDR));
    assert_int_equal(dot - tok, strlen(hdr));
    assert_memory_equal(tok, hdr, strlen(hdr));
    free(hdr);

    rc = audex_jwt_verify(st.hs, tok, strlen(tok), T_NOW + 10, 0, "audex",
                          "audex-web", &c);
    assert_int_equal(rc, AUDEX_JWT_OK);
    assert_non_null(c);

    assert_string_equal(audex_jwt_claims_sub(c), "65a1b2c3d4e5f60718293a4b");
    assert_string_equal(audex_jwt_claims_email(c), "alice@example.com");
    assert_string_equal(audex_jwt_claims_string(c, "username", &n),
                        "alice@example.com");
    assert_int_equal(n, 17);
    assert_int_equal(audex_jwt_claims_admin(c), 1);
    assert_int_equal(audex_jwt_claims_time(c, "iat", &t), 0);
    assert_int_equal(t, T_NOW);
    assert_int_equal(audex_jwt_claims_time(c, "exp", &t), 0);
    assert_int_equal(t, T_NOW + 3600);
    assert_int_equal(audex_jwt_claims_time(c, "sub", &t), -1);
    assert_int_equal(audex_jwt_claims_time(c, "nbf", &t), -1);
    assert_int_equal(audex_jwt_claims_time_ms(c, "iat", &t), 0);
    assert_int_equal(t, (int64_t) T_NOW * 1000);
    assert_int_equal(audex_jwt_claims_time_ms(c, "sub", &t), -1);

    s = audex_jwt_claims_string(c, "jti", &n);
    assert_non_null(s);
    assert_int_equal(n, AUDEX_JWT_JTI_LEN);
    for (i = 0; i < AUDEX_JWT_JTI_LEN; i++) {
        assert_non_null(strchr("0123456789abcdef", s[i]));
    }

    assert_int_equal(audex_jwt_claim_get(c, "admin", 5, buf, sizeof(buf)),
                     4);
    assert_string_equal(buf, "true");
    assert_int_equal(audex_jwt_claim_get(c, "exp", 3, buf, sizeof(buf)), 10);
    assert_string_equal(buf, "1700003600");
    assert_int_equal(audex_jwt_claim_get(c, "aud", 3, buf, sizeof(buf)), 9);
    assert_string_equal(buf, "audex-web");
    assert_int_equal(audex_jwt_claim_get(c, "iss", 3, buf, sizeof(buf)), 5);
    assert_string_equal(buf, "audex");
    assert_int_equal(audex_jwt_claim_get(c, "nope", 4, buf, sizeof(buf)), -1);

    /* a short buffer: truncated and terminated, full length returned */
    len = audex_jwt_claim_get(c, "email", 5, buf, 6);
    assert_int_equal(len, 17);
    assert_string_equal(buf, "alice");
    assert_int_equal(audex_jwt_claim_get(c, "email", 5, NULL, 0), 17);

    audex_jwt_claims_free(c);

    /* the same claims, not an admin: false */
    free(tok);
    a.admin = 0;
    a.iss = NULL;
    a.aud = NULL;
    tok = sign(st.hs, &a);
    rc = audex_jwt_verify(st.hs, tok, strlen(tok), T_NOW, 0, NULL, NULL, &c);
    assert_int_equal(rc, AUDEX_JWT_OK);
    assert_int_equal(audex_jwt_claims_admin(c), 0);
    assert_null(audex_jwt_claims_string(c, "iss", NULL));
    assert_int_equal(audex_jwt_claim_get(c, "admin", 5, buf, sizeof(buf)),
                     5);
    assert_string_equal(buf, "false");
    audex_jwt_claims_free(c);
    free(tok);
}


static void
test_jti_unique(void **state)
{
    char                   *t1, *t2;
    const char             *j1, *j2;
    audex_jwt_claims_t     *c1, *c2;
    audex_jwt_sign_args_t   a;

    a = args_default();
    t1 = sign(st.hs, &a);
    t2 = sign(st.hs, &a);
    assert_string_not_equal(t1, t2);

    assert_int_equal(audex_jwt_verify(st.hs, t1, strlen(t1), T_NOW, 0, NULL,
                                      NULL, &c1), AUDEX_JWT_OK);
    assert_int_equal(audex_jwt_verify(st.hs, t2, strlen(t2), T_NOW, 0, NULL,
                                      NULL, &c2), AUDEX_JWT_OK);
    j1 = audex_jwt_claims_string(c1, "jti", NULL);
    j2 = audex_jwt_claims_string(c2, "jti", NULL);
    assert_non_null(j1);
    assert_non_null(j2);
    assert_string_not_equal(j1, j2);

    audex_jwt_claims_free(c1);
    audex_jwt_claims_free(c2);
    free(t1);
    free(t2);
}


static void
test_hs256_key_file(void **state)
{
    char                   *tok;
    audex_jwt_key_t        *k;
    audex_jwt_sign_args_t   a;

    /* a secret written by echo: the newline is not part of it */
    write_file(st.path[P_SCRATCH], T_SECRET "\r\n", strlen(T_SECRET) + 2);
    k = load(AUDEX_JWT_HS256, P_SCRATCH);
    assert_non_null(k);
    assert_int_equal(audex_jwt_key_alg(k), AUDEX_JWT_HS256);
    assert_int_equal(audex_jwt_key_can_sign(k), 1);

    a = args_default();
    tok = sign(k, &a);
    assert_int_equal(verify(st.hs, tok, T_NOW), AUDEX_JWT_OK);
    free(tok);

    tok = sign(st.hs, &a);
    assert_int_equal(verify(k, tok, T_NOW), AUDEX_JWT_OK);
    free(tok);
    audex_jwt_key_free(k);

    /* 31 bytes (and a newline that does not count) */
    write_file(st.path[P_SCRATCH], "0123456789012345678901234567890\n", 32);
    load_fails(AUDEX_JWT_HS256, st.path[P_SCRATCH], "at least 32");

    assert_null(audex_jwt_key_from_mem(AUDEX_JWT_HS256, T_SECRET, 31, NULL,
                                       0));

    /* a PEM public key is not a shared secret */
    load_fails(AUDEX_JWT_HS256, st.path[P_RS_PUB], "not a PEM key");

    load_fails(AUDEX_JWT_HS256, "/nonexistent/audex.key", "cannot open");
    load_fails(AUDEX_JWT_HS256, st.dir, "not a regular file");
    load_fails(AUDEX_JWT_ALG_UNSET, st.path[P_RS_PUB], "unknown algorithm");
}


static void
test_pem_keys_refused(void **state)
{
    EVP_PKEY  *k;

    load_fails(AUDEX_JWT_RS256, st.path[P_ES_PUB], "needs an RSA key");
    load_fails(AUDEX_JWT_RS256, st.path[P_ES_PRIV], "needs an RSA key");
    load_fails(AUDEX_JWT_ES256, st.path[P_RS_PUB], "P-256");
    load_fails(AUDEX_JWT_ES256, st.path[P_RS_PRIV], "P-256");

    k = EVP_RSA_gen(1024);
    assert_non_null(k);
    write_pem(st.path[P_SCRATCH], k, 0, NULL);
    load_fails(AUDEX_JWT_RS256, st.path[P_SCRATCH], "2048 bits");
    EVP_PKEY_free(k);

    k = EVP_EC_gen("P-384");
    assert_non_null(k);
    write_pem(st.path[P_SCRATCH], k, 1, NULL);
    load_fails(AUDEX_JWT_ES256, st.path[P_SCRATCH], "P-256");
    EVP_PKEY_free(k);

    /* an encrypted key must fail, never prompt for a passphrase */
    k = EVP_EC_gen("P-256");
    assert_non_null(k);
    write_pem(st.path[P_SCRATCH], k, 1, "secret");
    load_fails(AUDEX_JWT_ES256, st.path[P_SCRATCH], "encrypted");
    EVP_PKEY_free(k);

    write_file(st.path[P_SCRATCH], "not a key at all\n", 17);
    load_fails(AUDEX_JWT_RS256, st.path[P_SCRATCH], "no PEM");
    write_file(st.path[P_SCRATCH], "", 0);
    load_fails(AUDEX_JWT_ES256, st.path[P_SCRATCH], "empty key");
}


static void
test_rs256_roundtrip(void **state)
{
    char                   *tok, *sig;
    audex_jwt_err_e         rc;
    audex_jwt_claims_t     *c;
    audex_jwt_sign_args_t   a;

    assert_int_equal(audex_jwt_key_can_sign(st.rs_priv), 1);
    assert_int_equal(audex_jwt_key_can_sign(st.rs_pub), 0);
    assert_int_equal(audex_jwt_key_alg(st.rs_pub), AUDEX_JWT_RS256);

    a = args_default();
    tok = sign(st.rs_priv, &a);

    /* 2048-bit RSA: a 256-byte signature, 342 base64url characters */
    sig = strrchr(tok, '.');
    assert_int_equal(strlen(sig + 1), 342);

    rc = audex_jwt_verify(st.rs_pub, tok, strlen(tok), T_NOW, 0, NULL, NULL,
                          &c);
    assert_int_equal(rc, AUDEX_JWT_OK);
    assert_string_equal(audex_jwt_claims_email(c), "alice@example.com");
    audex_jwt_claims_free(c);

    assert_int_equal(verify(st.rs_priv, tok, T_NOW), AUDEX_JWT_OK);
    assert_int_equal(verify(st.rs_other, tok, T_NOW),
                     AUDEX_JWT_ERR_SIGNATURE);

    /* the same bytes under another pinned algorithm */
    assert_int_equal(verify(st.hs, tok, T_NOW), AUDEX_JWT_ERR_ALG);
    assert_int_equal(verify(st.es_pub, tok, T_NOW), AUDEX_JWT_ERR_ALG);
    free(tok);

    tok = NULL;
    assert_int_equal(audex_jwt_sign(st.rs_pub, &a, &tok, NULL),
                     AUDEX_JWT_ERR_CANNOT_SIGN);
    assert_null(tok);
}


static void
test_es256_roundtrip(void **state)
{
    char                    saved, *tok, *sig;
    audex_jwt_err_e         rc;
    audex_jwt_claims_t     *c;
    audex_jwt_sign_args_t   a;

    a = args_default();
    a.admin = 0;
    tok = sign(st.es_priv, &a);

    /* JWS wants R || S, 64 bytes, not DER */
    sig = strrchr(tok, '.');
    assert_int_equal(strlen(sig + 1), 86);

    rc = audex_jwt_verify(st.es_pub, tok, strlen(tok), T_NOW, 0, NULL, NULL,
                          &c);
    assert_int_equal(rc, AUDEX_JWT_OK);
    assert_int_equal(audex_jwt_claims_admin(c), 0);
    audex_jwt_claims_free(c);

    assert_int_equal(verify(st.es_priv, tok, T_NOW), AUDEX_JWT_OK);
    assert_int_equal(verify(st.es_other, tok, T_NOW),
                     AUDEX_JWT_ERR_SIGNATURE);
    assert_int_equal(verify(st.rs_pub, tok, T_NOW), AUDEX_JWT_ERR_ALG);

    /* a flipped bit in the signature */
    saved = sig[5];
    sig[5] = audex_b64_next(saved);
    assert_int_equal(verify(st.es_pub, tok, T_NOW), AUDEX_JWT_ERR_SIGNATURE);

    /* 64 bytes end in a 2-character group whose low 4 bits must be 0:
     * any other last character spells the same bytes a second way */
    sig[5] = saved;
    assert_int_equal(verify(st.es_pub, tok, T_NOW), AUDEX_JWT_OK);
    sig[86] = audex_b64_next(sig[86]);
    assert_int_equal(verify(st.es_pub, tok, T_NOW), AUDEX_JWT_ERR_MALFORMED);

    /* a signature of the wrong length (a DER one would be ~96 chars) */
    sig[20] = '\0';
    assert_int_equal(verify(st.es_pub, tok, T_NOW), AUDEX_JWT_ERR_SIGNATURE);
    free(tok);

    tok = NULL;
    assert_int_equal(audex_jwt_sign(st.es_pub, &a, &tok, NULL),
                     AUDEX_JWT_ERR_CANNOT_SIGN);
}


static void
test_expiry(void **state)
{
    char                   *tok;
    audex_jwt_sign_args_t   a;

    a = args_default();
    a.lifetime = 100;
    tok = sign(st.hs, &a);

    assert_int_equal(verify(st.hs, tok, T_NOW + 99), AUDEX_JWT_OK);
    assert_int_equal(verify(st.hs, tok, T_NOW + 100), AUDEX_JWT_ERR_EXPIRED);
    assert_int_equal(verify(st.hs, tok, T_NOW + 5000), AUDEX_JWT_ERR_EXPIRED);

    /* leeway forgives a clock that runs ahead, and no more */
    assert_int_equal(audex_jwt_verify(st.hs, tok, strlen(tok), T_NOW + 100,
                                      1, NULL, NULL, NULL), AUDEX_JWT_OK);
    assert_int_equal(audex_jwt_verify(st.hs, tok, strlen(tok), T_NOW + 160,
                                      60, NULL, NULL, NULL),
                     AUDEX_JWT_ERR_EXPIRED);
    assert_int_equal(audex_jwt_verify(st.hs, tok, strlen(tok), T_NOW + 159,
                                      60, NULL, NULL, NULL), AUDEX_JWT_OK);
    /* negative leeway counts as none */
    assert_int_equal(audex_jwt_verify(st.hs, tok, strlen(tok), T_NOW + 99,
                                      -50, NULL, NULL, NULL), AUDEX_JWT_OK);
    free(tok);

    /* exp is required, and must be a number */
    assert_int_equal(hs_check(HS_HDR, "{\"sub\":\"x\"}", T_NOW, 0, NULL,
                              NULL), AUDEX_JWT_ERR_NO_EXP);
    assert_int_equal(hs_check(HS_HDR, "{\"exp\":\"1700000100\"}", T_NOW, 0,
                              NULL, NULL), AUDEX_JWT_ERR_BAD_CLAIMS);
    assert_int_equal(hs_check(HS_HDR, "{\"exp\":null}", T_NOW, 0, NULL,
                              NULL), AUDEX_JWT_ERR_BAD_CLAIMS);
    assert_int_equal(hs_check(HS_HDR, "{\"exp\":1e30}", T_NOW, 0, NULL,
                              NULL), AUDEX_JWT_ERR_BAD_CLAIMS);

    /* NumericDate may have a fraction or an exponent */
    assert_int_equal(hs_check(HS_HDR, "{\"exp\":1000.9}", 999, 0, NULL,
                              NULL), AUDEX_JWT_OK);
    assert_int_equal(hs_check(HS_HDR, "{\"exp\":1000.9}", 1000, 0, NULL,
                              NULL), AUDEX_JWT_ERR_EXPIRED);
    assert_int_equal(hs_check(HS_HDR, "{\"exp\":1.7e9}", 1699999999, 0,
                              NULL, NULL), AUDEX_JWT_OK);
    assert_int_equal(hs_check(HS_HDR, "{\"exp\":17E8}", 1700000000, 0,
                              NULL, NULL), AUDEX_JWT_ERR_EXPIRED);
    assert_int_equal(hs_check(HS_HDR, "{\"exp\":170000000000e-2}",
                              1699999999, 0, NULL, NULL), AUDEX_JWT_OK);
    assert_int_equal(hs_check(HS_HDR, "{\"exp\":-5}", 0, 0, NULL, NULL),
                     AUDEX_JWT_ERR_EXPIRED);
}


static void
test_nbf_iat(void **state)
{
    const char  *p;

    p = "{\"exp\":1700001000,\"nbf\":1700000100}";
    assert_int_equal(hs_check(HS_HDR, p, T_NOW, 0, NULL, NULL),
                     AUDEX_JWT_ERR_NOT_YET_VALID);
    assert_int_equal(hs_check(HS_HDR, p, T_NOW, 99, NULL, NULL),
                     AUDEX_JWT_ERR_NOT_YET_VALID);
    assert_int_equal(hs_check(HS_HDR, p, T_NOW, 100, NULL, NULL),
                     AUDEX_JWT_OK);
    assert_int_equal(hs_check(HS_HDR, p, T_NOW + 100, 0, NULL, NULL),
                     AUDEX_JWT_OK);

    /* a fractional nbf is not reached before its next whole second */
    p = "{\"exp\":1700001000,\"nbf\":1700000000.5}";
    assert_int_equal(hs_check(HS_HDR, p, T_NOW, 0, NULL, NULL),
                     AUDEX_JWT_ERR_NOT_YET_VALID);
    assert_int_equal(hs_check(HS_HDR, p, T_NOW + 1, 0, NULL, NULL),
                     AUDEX_JWT_OK);

    p = "{\"exp\":1700001000,\"nbf\":true}";
    assert_int_equal(hs_check(HS_HDR, p, T_NOW, 0, NULL, NULL),
                     AUDEX_JWT_ERR_BAD_CLAIMS);

    p = "{\"exp\":1700001000,\"iat\":1700000050}";
    assert_int_equal(hs_check(HS_HDR, p, T_NOW, 0, NULL, NULL),
                     AUDEX_JWT_ERR_IAT_FUTURE);
    assert_int_equal(hs_check(HS_HDR, p, T_NOW, 50, NULL, NULL),
                     AUDEX_JWT_OK);
    assert_int_equal(hs_check(HS_HDR, p, T_NOW + 50, 0, NULL, NULL),
                     AUDEX_JWT_OK);
}


static void
test_wrong_key(void **state)
{
    char                   *tok;
    audex_jwt_key_t        *k;
    audex_jwt_sign_args_t   a;

    k = audex_jwt_key_from_mem(AUDEX_JWT_HS256,
                               "another secret, long enough to be accepted",
                               42, NULL, 0);
    assert_non_null(k);

    a = args_default();
    tok = sign(k, &a);
    assert_int_equal(verify(st.hs, tok, T_NOW), AUDEX_JWT_ERR_SIGNATURE);
    assert_int_equal(verify(k, tok, T_NOW), AUDEX_JWT_OK);
    free(tok);
    audex_jwt_key_free(k);
}


static void
test_tampered(void **state)
{
    char                   *tok, *forged, *p64, *d1, *d2, *h64;
    audex_jwt_sign_args_t   a;

    a = args_default();
    a.admin = 0;
    tok = sign(st.hs, &a);

    /* keep header and signature, promote ourselves in the claims */
    d1 = strchr(tok, '.');
    d2 = strrchr(tok, '.');
    h64 = strndup(tok, d1 - tok);
    p64 = b64s("{\"sub\":\"65a1b2c3d4e5f60718293a4b\",\"admin\":true,"
               "\"exp\":1700003600}");
    forged = malloc(strlen(h64) + strlen(p64) + strlen(d2) + 2);
    sprintf(forged, "%s.%s%s", h64, p64, d2);
    assert_int_equal(verify(st.hs, forged, T_NOW), AUDEX_JWT_ERR_SIGNATURE);

    /* a signature one character off */
    d2[1] = (d2[1] == 'A') ? 'B' : 'A';
    assert_int_equal(verify(st.hs, tok, T_NOW), AUDEX_JWT_ERR_SIGNATURE);

    free(h64);
    free(p64);
    free(forged);
    free(tok);
}


static void
test_alg_none(void **state)
{
    char  *h, *p, *tok;

    static const char  *payload = "{\"sub\":\"x\",\"admin\":true,"
                                  "\"exp\":1800000000}";

    h = b64s("{\"alg\":\"none\",\"typ\":\"JWT\"}");
    p = b64url(payload, strlen(payload));
    tok = malloc(strlen(h) + strlen(p) + 8);
    sprintf(tok, "%s.%s.", h, p);

    assert_int_equal(verify(st.hs, tok, T_NOW), AUDEX_JWT_ERR_ALG);
    assert_int_equal(verify(st.rs_pub, tok, T_NOW), AUDEX_JWT_ERR_ALG);
    assert_int_equal(verify(st.es_pub, tok, T_NOW), AUDEX_JWT_ERR_ALG);

    strcat(tok, "c2ln");
    assert_int_equal(verify(st.hs, tok, T_NOW), AUDEX_JWT_ERR_ALG);

    free(h);
    free(p);
    free(tok);

    /* other spellings and other algorithms */
    assert_int_equal(hs_check("{\"alg\":\"None\"}", payload, T_NOW, 0, NULL,
                              NULL), AUDEX_JWT_ERR_ALG);
    assert_int_equal(hs_check("{\"alg\":\"hs256\"}", payload, T_NOW, 0, NULL,
                              NULL), AUDEX_JWT_ERR_ALG);
    assert_int_equal(hs_check("{\"alg\":\"HS512\"}", payload, T_NOW, 0, NULL,
                              NULL), AUDEX_JWT_ERR_ALG);
    assert_int_equal(hs_check("{\"alg\":\"HS256 \"}", payload, T_NOW, 0,
                              NULL, NULL), AUDEX_JWT_ERR_ALG);
    /* a NUL would end "HS256" early for a C reader: not JSON we take */
    assert_int_equal(hs_check("{\"alg\":\"HS256\\u0000\"}", payload, T_NOW,
                              0, NULL, NULL), AUDEX_JWT_ERR_BAD_HEADER);
    assert_int_equal(hs_check("{\"typ\":\"JWT\"}", payload, T_NOW, 0, NULL,
                              NULL), AUDEX_JWT_ERR_BAD_HEADER);
    assert_int_equal(hs_check("{\"alg\":256}", payload, T_NOW, 0, NULL,
                              NULL), AUDEX_JWT_ERR_BAD_HEADER);
    /* escaped, but the same string: fine */
    assert_int_equal(hs_check("{\"alg\":\"HS\\u0032\\u00356\"}", payload,
                              T_NOW, 0, NULL, NULL), AUDEX_JWT_OK);
}


/*
 * The classic key confusion: an attacker who knows the RSA public key
 * signs with HS256 using the PEM text as the HMAC secret.
 */
static void
test_hs256_with_rsa_public_pem(void **state)
{
    FILE   *f;
    char   *h, *p, *tok, pem[4096];
    size_t  n;

    static const char  *payload = "{\"sub\":\"x\",\"admin\":true,"
                                  "\"exp\":1800000000}";

    f = fopen(st.path[P_RS_PUB], "r");
    assert_non_null(f);
    n = fread(pem, 1, sizeof(pem), f);
    fclose(f);
    assert_true(n > 100);

    p = b64url(payload, strlen(payload));

    h = b64url(HS_HDR, strlen(HS_HDR));
    tok = hs_token_raw(pem, n, h, p);
    assert_int_equal(verify(st.rs_pub, tok, T_NOW), AUDEX_JWT_ERR_ALG);
    assert_int_equal(verify(st.rs_priv, tok, T_NOW), AUDEX_JWT_ERR_ALG);
    free(tok);
    free(h);

    /* a header that says RS256 to one parser and HS256 to another */
    h = b64s("{\"alg\":\"RS256\",\"alg\":\"HS256\"}");
    tok = hs_token_raw(pem, n, h, p);
    assert_int_equal(verify(st.rs_pub, tok, T_NOW), AUDEX_JWT_ERR_BAD_HEADER);
    free(tok);
    free(h);

    /* and an honest RS256 header over an HMAC: the size alone is wrong */
    h = b64s("{\"alg\":\"RS256\"}");
    tok = hs_token_raw(pem, n, h, p);
    assert_int_equal(verify(st.rs_pub, tok, T_NOW), AUDEX_JWT_ERR_SIGNATURE);
    free(tok);
    free(h);

    free(p);
}


static void
test_typ_crit(void **state)
{
    static const char  *payload = "{\"exp\":1800000000}";

    assert_int_equal(hs_check("{\"alg\":\"HS256\",\"typ\":\"jwt\"}", payload,
                              T_NOW, 0, NULL, NULL), AUDEX_JWT_OK);
    assert_int_equal(hs_check("{\"alg\":\"HS256\",\"typ\":\"application/JWT\""
                              "}", payload, T_NOW, 0, NULL, NULL),
                     AUDEX_JWT_OK);
    assert_int_equal(hs_check("{\"alg\":\"HS256\",\"kid\":\"k1\"}", payload,
                              T_NOW, 0, NULL, NULL), AUDEX_JWT_OK);
    assert_int_equal(hs_check("{\"alg\":\"HS256\",\"typ\":\"JOSE\"}", payload,
                              T_NOW, 0, NULL, NULL), AUDEX_JWT_ERR_TYP);
    assert_int_equal(hs_check("{\"alg\":\"HS256\",\"typ\":1}", payload,
                              T_NOW, 0, NULL, NULL), AUDEX_JWT_ERR_TYP);
    assert_int_equal(hs_check("{\"alg\":\"HS256\",\"crit\":[\"exp\"],"
                              "\"exp\":1}", payload, T_NOW, 0, NULL, NULL),
                     AUDEX_JWT_ERR_CRIT);
}


static void
test_malformed(void **state)
{
    size_t        i;
    char         *tok, *p, *h;
    const char   *s;

    static const char  *bad[] = {
        "",
        "abc",
        "a.b",
        "eyJhbGciOiJIUzI1NiJ9.e30",
        "a.b.c.d",
        ".a.b",
        "..",
        "...",
        "eyJhbGciOiJIUzI1NiJ9..c2ln",
        "eyJhbGciOiJIUzI1NiJ9.e30.c2ln.",
        "eyJhbGciOiJIUzI1NiJ9 .e30.c2ln",
        /* padding, the other alphabet, 4n+1 characters */
        "eyJhbGciOiJIUzI1NiJ9=.e30.c2ln",
        "eyJhbGciOiJ+UzI1NiJ9.e30.c2ln",
        "eyJhbGciOiJ/UzI1NiJ9.e30.c2ln",
        "eyJhbGciOiJIUzI1NiJ9a.e30.c2ln",
        /* "{}" spelled with nonzero unused bits: e31 instead of e30 */
        "e31.e30.c2ln",
    };

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (verify(st.hs, bad[i], T_NOW) != AUDEX_JWT_ERR_MALFORMED) {
            print_error("\"%s\": %s\n", bad[i],
                        audex_jwt_strerror(verify(st.hs, bad[i], T_NOW)));
            fail();
        }
    }

    assert_int_equal(audex_jwt_verify(st.hs, NULL, 0, T_NOW, 0, NULL, NULL,
                                      NULL), AUDEX_JWT_ERR_MALFORMED);

    /* a NUL in the middle is just a bad byte */
    s = "eyJhbGciOiJIUzI1NiJ\0.e30.c2ln";
    assert_int_equal(audex_jwt_verify(st.hs, s, 29, T_NOW, 0, NULL, NULL,
                                      NULL), AUDEX_JWT_ERR_MALFORMED);

    /* properly signed, but the claims part is padded base64 */
    h = b64url(HS_HDR, strlen(HS_HDR));
    tok = hs_token_raw(T_SECRET, strlen(T_SECRET), h, "e30=");
    assert_int_equal(verify(st.hs, tok, T_NOW), AUDEX_JWT_ERR_MALFORMED);
    free(tok);
    free(h);

    /* a token made of 16 KB of base64 text */
    p = malloc(16385);
    memset(p, 'A', 16384);
    p[16384] = '\0';
    p[100] = '.';
    p[200] = '.';
    assert_int_equal(verify(st.hs, p, T_NOW), AUDEX_JWT_ERR_TOO_LONG);

    /* the cap is exact: 8192 bytes are read, 8193 are not */
    p[AUDEX_JWT_MAX_TOKEN] = '\0';
    assert_int_equal(verify(st.hs, p, T_NOW), AUDEX_JWT_ERR_BAD_HEADER);
    p[AUDEX_JWT_MAX_TOKEN] = 'A';
    p[AUDEX_JWT_MAX_TOKEN + 1] = '\0';
    assert_int_equal(verify(st.hs, p, T_NOW), AUDEX_JWT_ERR_TOO_LONG);
    free(p);
}


static void
test_bad_json(void **state)
{
    int     i;
    char    deep[256], *d;
    size_t  n;

    static const char  *bad_header[] = {
        "{\"alg\":\"HS256\"",
        "{\"alg\":\"HS256\"}x",
        "{\"alg\":\"HS256\"}{}",
        "[\"HS256\"]",
        "\"HS256\"",
        "{alg:\"HS256\"}",
        "{\"alg\":'HS256'}",
        "{\"alg\":\"HS256\",}",
    };

    static const char  *bad_claims[] = {
        "{\"exp\":1800000000",
        "[1800000000]",
        "{\"exp\":1800000000}x",
        "{\"exp\":1800000000,\"exp\":1}",
        "{\"exp\":1800000000,\"a\":NaN}",
        "{\"exp\":01800000000}",
        "{\"exp\":1800000000,\"a\":1.}",
        "{\"exp\":1800000000,\"a\":-}",
        "{\"exp\":1800000000,\"a\":\"\\ud800\"}",
        "{\"exp\":1800000000,\"a\":\"\\udc00\\ud800\"}",
        "{\"exp\":1800000000,\"a\":\"\\udc00\"}",
        "{\"exp\":1800000000,\"a\":\"\\ud800x\"}",
        "{\"exp\":1800000000,\"a\":\"\\ud800\\u0041\"}",
        "{\"exp\":1800000000,\"a\":\"\xf0\x8f\xbf\xbf\"}",
        "{\"exp\":1800000000,\"a\":\"\xe0\x80\xaf\"}",
        "{\"exp\":1800000000,\"a\":\"\\x41\"}",
        "{\"exp\":1800000000,\"a\":\"\xc0\xaf\"}",
        "{\"exp\":1800000000,\"a\":\"\xed\xa0\x80\"}",
        "{\"exp\":1800000000,\"a\":\"\xf4\x90\x80\x80\"}",
        "{\"exp\":1800000000,\"a\":\"tab\there\"}",
        "{\"exp\":1800000000,\"a\":tru}",
        "{\"exp\":1800000000,\"a\":[1,]}",
        "{\"exp\":1800000000,\"a\":{\"b\"}}",
    };

    all_malformed(bad_header, sizeof(bad_header) / sizeof(char *), 1);
    all_malformed(bad_claims, sizeof(bad_claims) / sizeof(char *), 0);

    /* valid but unusual JSON is fine */
    assert_int_equal(hs_check(" {\"alg\" : \"HS256\"}\r\n", " { \"exp\" :\t"
                              "1800000000 , \"a\":[ ] , \"b\" : { } } ",
                              T_NOW, 0, NULL, NULL), AUDEX_JWT_OK);
    assert_int_equal(hs_check(HS_HDR, "{\"exp\":1800000000,\"\xf0\x9f\x8e\xb5"
                              "\":\"\\ud83c\\udfb5\",\"z\":-0.0e+0}",
                              T_NOW, 0, NULL, NULL), AUDEX_JWT_OK);

    /* nesting: 20 levels are fine, 40 are not */
    for (i = 0; i < 2; i++) {
        n = i ? 40 : 20;
        strcpy(deep, "{\"exp\":1800000000,\"a\":");
        d = deep + strlen(deep);
        memset(d, '[', n);
        memset(d + n, ']', n);
        strcpy(d + 2 * n, "}");

        assert_int_equal(hs_check(HS_HDR, deep, T_NOW, 0, NULL, NULL),
                         i ? AUDEX_JWT_ERR_BAD_CLAIMS : AUDEX_JWT_OK);
    }
}


/*
 * jansson as we call it: duplicate names are refused at every depth, and
 * so is "\u0000" (it would cut a C string short) in any string or name.
 */
static void
test_strict_json(void **state)
{
    static const char  *claims[] = {
        "{\"exp\":1800000000,\"sub\":\"a\",\"sub\":\"a\"}",
        "{\"exp\":1800000000,\"sub\":\"a\",\"s\\u0075b\":\"b\"}",
        "{\"exp\":1800000000,\"o\":{\"k\":1,\"k\":2}}",
        "{\"exp\":1800000000,\"a\":[{\"k\":1,\"k\":1}]}",

        "{\"exp\":1800000000,\"sub\":\"a\\u0000b\"}",
        "{\"exp\":1800000000,\"sub\":\"\\u0000\"}",
        "{\"exp\":1800000000,\"email\":\"a@b\\u0000.evil\"}",
        "{\"exp\":1800000000,\"sub\\u0000\":\"a\"}",
        "{\"exp\":1800000000,\"a\":[\"\\u0000\"]}",
        "{\"exp\":1800000000,\"o\":{\"k\":\"\\u0000\"}}",
    };

    static const char  *headers[] = {
        "{\"alg\":\"HS256\",\"alg\":\"HS256\"}",
        "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"typ\":\"JWT\"}",
        "{\"alg\":\"HS256\",\"kid\":\"\\u0000\"}",
    };

    all_malformed(claims, sizeof(claims) / sizeof(claims[0]), 0);
    all_malformed(headers, sizeof(headers) / sizeof(headers[0]), 1);

    /* the same name in two different objects is no duplicate */
    assert_int_equal(hs_check(HS_HDR, "{\"exp\":1800000000,\"k\":{\"k\":1},"
                              "\"sub\":\"a\"}", T_NOW, 0, NULL, NULL),
                     AUDEX_JWT_OK);
}


/*
 * A control character, escaped or raw, in any string or member name of
 * the claims: "bob\r\nX-Audex-Admin: 1" as a name would become a header
 * upstream through proxy_set_header ... $audex_jwt_claim_name.
 */
static void
test_control_chars(void **state)
{
    size_t  i;

    static const char  *claims[] = {
        "{\"exp\":1800000000,\"name\":\"bob\\r\\nX-Audex-Admin: 1\"}",
        "{\"exp\":1800000000,\"name\":\"bob\\n\"}",
        "{\"exp\":1800000000,\"name\":\"bob\\r\"}",
        "{\"exp\":1800000000,\"sub\":\"a\\u0001b\"}",
        "{\"exp\":1800000000,\"sub\":\"a\\u001fb\"}",
        "{\"exp\":1800000000,\"email\":\"a\\tb@example.com\"}",
        "{\"exp\":1800000000,\"email\":\"a\\u007fb@example.com\"}",
        "{\"exp\":1800000000,\"email\":\"ab@example.com\x7f\"}",
        "{\"exp\":1800000000,\"o\":{\"k\":\"\\n\"}}",
        "{\"exp\":1800000000,\"a\":[1,[\"x\\r\"]]}",
        "{\"exp\":1800000000,\"na\\nme\":1}",
        "{\"exp\":1800000000,\"o\":{\"k\\u0001\":1}}",
    };

    for (i = 0; i < sizeof(claims) / sizeof(claims[0]); i++) {
        if (hs_check(HS_HDR, claims[i], T_NOW, 0, NULL, NULL)
            != AUDEX_JWT_ERR_CONTROL)
        {
            print_error("claims '%s': %s\n", claims[i],
                        audex_jwt_strerror(hs_check(HS_HDR, claims[i], T_NOW,
                                                    0, NULL, NULL)));
            fail();
        }
    }

    /* the rule comes before the others: no exp, yet this answer */
    assert_int_equal(hs_check(HS_HDR, "{\"name\":\"\\n\"}", T_NOW, 0, NULL,
                              NULL), AUDEX_JWT_ERR_CONTROL);

    /* space, the rest of ASCII, and UTF-8 beyond it are text */
    assert_int_equal(hs_check(HS_HDR, "{\"exp\":1800000000,\"name\":"
                              "\" ~!\\\"\\\\\\/\\u00e9\\u0080\\u2028\"}",
                              T_NOW, 0, NULL, NULL), AUDEX_JWT_OK);
}


/* a JSON text that is not an object is no JOSE header */
static void
test_header_not_object(void **state)
{
    static const char  *hdr[] = {
        "[{\"alg\":\"HS256\"}]", "[]", "\"HS256\"", "256", "true", "null",
        " ",
    };

    all_malformed(hdr, sizeof(hdr) / sizeof(hdr[0]), 1);

    assert_int_equal(hs_check(HS_HDR, "[{\"exp\":1800000000}]", T_NOW, 0,
                              NULL, NULL), AUDEX_JWT_ERR_BAD_CLAIMS);
}


/* {"exp":...,"a":V}, V nesting depth arrays, or depth objects */
static char *
nested(int objects, size_t depth)
{
    char    *s, *p;
    size_t   i;

    s = malloc(32 + depth * 6);
    assert_non_null(s);
    p = s + sprintf(s, "{\"exp\":1800000000,\"a\":");

    for (i = 0; i < depth; i++) {
        if (!objects) {
            *p++ = '[';
        } else {
            p += sprintf(p, i + 1 < depth ? "{\"a\":" : "{");
        }
    }

    memset(p, objects ? '}' : ']', depth);
    strcpy(p + depth, "}");

    return s;
}


/* our depth bound, past jansson's own, and numbers too big to hold */
static void
test_json_limits(void **state)
{
    int      i;
    char    *s, *p;
    size_t   k;

    static const struct {
        size_t           depth;
        audex_jwt_err_e  want;
    } deep[] = {
        { 32, AUDEX_JWT_OK },
        { 33, AUDEX_JWT_ERR_BAD_CLAIMS },
        /* past jansson's JSON_PARSER_MAX_DEPTH (2048), still < 8 KB */
        { 2100, AUDEX_JWT_ERR_BAD_CLAIMS },
    };

    for (k = 0; k < sizeof(deep) / sizeof(deep[0]); k++) {
        for (i = 0; i < 2; i++) {
            if (i == 1 && deep[k].depth > 600) {
                continue;       /* {"a": costs 5 bytes a level */
            }

            s = nested(i, deep[k].depth);

            if (hs_check(HS_HDR, s, T_NOW, 0, NULL, NULL) != deep[k].want) {
                print_error("%zu levels of %s: %s\n", deep[k].depth,
                            i ? "objects" : "arrays",
                            audex_jwt_strerror(hs_check(HS_HDR, s, T_NOW, 0,
                                                        NULL, NULL)));
                fail();
            }

            free(s);
        }
    }

    /* numbers beyond a double or an int64_t: refused, not wrapped */
    assert_int_equal(hs_check(HS_HDR, "{\"exp\":1800000000,\"n\":"
                              "99999999999999999999}", T_NOW, 0, NULL,
                              NULL), AUDEX_JWT_ERR_BAD_CLAIMS);
    assert_int_equal(hs_check(HS_HDR, "{\"exp\":1800000000,\"n\":1e400}",
                              T_NOW, 0, NULL, NULL),
                     AUDEX_JWT_ERR_BAD_CLAIMS);
    assert_int_equal(hs_check(HS_HDR, "{\"exp\":-1e400}", T_NOW, 0, NULL,
                              NULL), AUDEX_JWT_ERR_BAD_CLAIMS);
    assert_int_equal(hs_check(HS_HDR, "{\"exp\":9223372036854775808}",
                              T_NOW, 0, NULL, NULL),
                     AUDEX_JWT_ERR_BAD_CLAIMS);
    assert_int_equal(hs_check(HS_HDR, "{\"exp\":9.3e18}", T_NOW, 0, NULL,
                              NULL), AUDEX_JWT_ERR_BAD_CLAIMS);

    /* the extremes that do fit, with the largest leeway */
    assert_int_equal(hs_check(HS_HDR, "{\"exp\":9223372036854775807}",
                              T_NOW, 366 * 86400, NULL, NULL),
                     AUDEX_JWT_OK);
    assert_int_equal(hs_check(HS_HDR, "{\"exp\":1800000000,\"nbf\":"
                              "-9223372036854775808,\"iat\":-9.2e18}",
                              T_NOW, 366 * 86400, NULL, NULL),
                     AUDEX_JWT_OK);
    assert_int_equal(hs_check(HS_HDR, "{\"exp\":-9223372036854775808}",
                              T_NOW, 366 * 86400, NULL, NULL),
                     AUDEX_JWT_ERR_EXPIRED);

    /* AUDEX_JWT_MAX_MEMBERS members are fine, one more is not */
    for (i = 0; i < 2; i++) {
        s = malloc(32 + (AUDEX_JWT_MAX_MEMBERS + 1) * 12);
        assert_non_null(s);
        p = s + sprintf(s, "{\"exp\":1800000000");

        for (k = 1; k < (size_t) AUDEX_JWT_MAX_MEMBERS + i; k++) {
            p += sprintf(p, ",\"m%zu\":0", k);
        }

        strcpy(p, "}");
        assert_int_equal(hs_check(HS_HDR, s, T_NOW, 0, NULL, NULL),
                         i ? AUDEX_JWT_ERR_BAD_CLAIMS : AUDEX_JWT_OK);
        free(s);
    }
}


static void
test_iss_aud(void **state)
{
    char                   *tok;
    audex_jwt_sign_args_t   a;

    a = args_default();
    a.iss = "https://audex.example";
    a.aud = "web";
    tok = sign(st.hs, &a);

#define V(iss, aud)                                                          \
    audex_jwt_verify(st.hs, tok, strlen(tok), T_NOW, 0, iss, aud, NULL)

    assert_int_equal(V("https://audex.example", "web"), AUDEX_JWT_OK);
    assert_int_equal(V(NULL, "web"), AUDEX_JWT_OK);
    assert_int_equal(V("https://audex.example/", "web"),
                     AUDEX_JWT_ERR_ISSUER);
    assert_int_equal(V("https://audex.exampl", "web"), AUDEX_JWT_ERR_ISSUER);
    assert_int_equal(V(NULL, "mobile"), AUDEX_JWT_ERR_AUDIENCE);
    assert_int_equal(V(NULL, "we"), AUDEX_JWT_ERR_AUDIENCE);

    /* a token meant for someone must name us when we check nothing */
    assert_int_equal(V(NULL, NULL), AUDEX_JWT_ERR_AUDIENCE);

#undef V

    free(tok);

    a.iss = NULL;
    a.aud = NULL;
    tok = sign(st.hs, &a);
    assert_int_equal(audex_jwt_verify(st.hs, tok, strlen(tok), T_NOW, 0,
                                      "audex", NULL, NULL),
                     AUDEX_JWT_ERR_ISSUER);
    assert_int_equal(audex_jwt_verify(st.hs, tok, strlen(tok), T_NOW, 0,
                                      NULL, "web", NULL),
                     AUDEX_JWT_ERR_AUDIENCE);
    free(tok);

#define A(claims, aud)                                                       \
    hs_check(HS_HDR, "{\"exp\":1800000000,\"aud\":" claims "}", T_NOW, 0,    \
             NULL, aud)

    assert_int_equal(A("[\"mobile\",\"web\"]", "web"), AUDEX_JWT_OK);
    assert_int_equal(A("[\"web\"]", "web"), AUDEX_JWT_OK);
    assert_int_equal(A("[ 1 , {\"x\":\"web\"} , [\"web\"], \"w\\u0065b\" ]",
                       "web"), AUDEX_JWT_OK);
    assert_int_equal(A("[\"mobile\",\"cli\"]", "web"),
                     AUDEX_JWT_ERR_AUDIENCE);
    assert_int_equal(A("[[\"web\"],{\"web\":\"web\"}]", "web"),
                     AUDEX_JWT_ERR_AUDIENCE);
    assert_int_equal(A("[]", "web"), AUDEX_JWT_ERR_AUDIENCE);
    assert_int_equal(A("\"webx\"", "web"), AUDEX_JWT_ERR_AUDIENCE);
    assert_int_equal(A("null", "web"), AUDEX_JWT_ERR_AUDIENCE);
    assert_int_equal(A("[\"web\"]", NULL), AUDEX_JWT_ERR_AUDIENCE);

#undef A

    assert_int_equal(hs_check(HS_HDR, "{\"exp\":1800000000,\"iss\":7}",
                              T_NOW, 0, "7", NULL), AUDEX_JWT_ERR_ISSUER);
}


static void
test_claim_get(void **state)
{
    char                 *tok, buf[128];
    size_t                n;
    const char           *s;
    audex_jwt_claims_t   *c;

    tok = hs_token(HS_HDR,
                   "{\"exp\":1800000000,"
                   "\"s\":\"a\\\"b\\u00e9/\","
                   "\"n\":-1.5e3,"
                   "\"t\":true,\"f\":false,\"z\":null,"
                   "\"o\":{\"k\":[1, 2]},"
                   "\"a\":[ \"x\" ],"
                   "\"e\":\"\","
                   "\"r\":0.1,\"big\":1e300,"
                   "\"abc\":3,"
                   "\"k\\u00e9y\":1,"
                   "\"admin\":\"true\"}");

    assert_int_equal(audex_jwt_verify(st.hs, tok, strlen(tok), T_NOW, 0,
                                      NULL, NULL, &c), AUDEX_JWT_OK);

#define G(name, want)                                                        \
    assert_int_equal(audex_jwt_claim_get(c, name, strlen(name), buf,         \
                                         sizeof(buf)), strlen(want));        \
    assert_string_equal(buf, want)

    G("s", "a\"b\xc3\xa9/");
    /* numbers and structures as jansson writes them back, compactly */
    G("n", "-1500.0");
    G("r", "0.1");
    G("big", "1e300");
    G("t", "true");
    G("f", "false");
    G("z", "null");
    G("o", "{\"k\":[1,2]}");
    G("a", "[\"x\"]");
    G("e", "");
    G("k\xc3\xa9y", "1");
    G("exp", "1800000000");

#undef G

    s = audex_jwt_claims_string(c, "s", &n);
    assert_int_equal(n, 6);
    assert_memory_equal(s, "a\"b\xc3\xa9/", 6);

    /* names are compared by length too */
    assert_int_equal(audex_jwt_claim_get(c, "abcx", 3, buf, sizeof(buf)), 1);
    assert_int_equal(audex_jwt_claim_get(c, "ab", 2, buf, sizeof(buf)), -1);

    /* a structure in a short buffer: truncated, terminated, full length */
    assert_int_equal(audex_jwt_claim_get(c, "o", 1, buf, 4), 11);
    assert_string_equal(buf, "{\"k");
    assert_int_equal(audex_jwt_claim_get(c, "o", 1, NULL, 0), 11);

    /* "admin" is only the literal true, never the string */
    assert_int_equal(audex_jwt_claims_admin(c), 0);
    assert_null(audex_jwt_claims_sub(c));
    assert_null(audex_jwt_claims_string(c, "n", NULL));

    audex_jwt_claims_free(c);
    free(tok);
}


static void
test_sign_args(void **state)
{
    char                   *tok, buf[128];
    audex_jwt_claims_t     *c;
    audex_jwt_sign_args_t   a;

    /* strings that need escaping survive the round trip */
    a = args_default();
    a.email = "o\"brien\\x@exampl\xc3\xa9.com";
    tok = sign(st.hs, &a);
    assert_int_equal(audex_jwt_verify(st.hs, tok, strlen(tok), T_NOW, 0,
                                      NULL, NULL, &c), AUDEX_JWT_OK);
    assert_string_equal(audex_jwt_claims_email(c), a.email);
    assert_int_equal(audex_jwt_claim_get(c, "username", 8, buf, sizeof(buf)),
                     strlen(a.email));
    audex_jwt_claims_free(c);
    free(tok);

    tok = NULL;
    a = args_default();
    a.email = "bad\xff@example.com";
    assert_int_equal(audex_jwt_sign(st.hs, &a, &tok, NULL),
                     AUDEX_JWT_ERR_CANNOT_SIGN);

    /* what verification would refuse is not signed either */
    a.email = "bob@example.com\r\nX-Audex-Admin: 1";
    assert_int_equal(audex_jwt_sign(st.hs, &a, &tok, NULL),
                     AUDEX_JWT_ERR_CANNOT_SIGN);

    a = args_default();
    a.sub = "u\x7f";
    assert_int_equal(audex_jwt_sign(st.hs, &a, &tok, NULL),
                     AUDEX_JWT_ERR_CANNOT_SIGN);

    a = args_default();
    a.lifetime = 0;
    assert_int_equal(audex_jwt_sign(st.hs, &a, &tok, NULL),
                     AUDEX_JWT_ERR_CANNOT_SIGN);

    a = args_default();
    a.sub = NULL;
    assert_int_equal(audex_jwt_sign(st.hs, &a, &tok, NULL),
                     AUDEX_JWT_ERR_CANNOT_SIGN);

    a = args_default();
    a.lifetime = INT64_MAX;
    assert_int_equal(audex_jwt_sign(st.hs, &a, &tok, NULL),
                     AUDEX_JWT_ERR_CANNOT_SIGN);

    assert_int_equal(audex_jwt_sign(st.hs, NULL, &tok, NULL),
                     AUDEX_JWT_ERR_CANNOT_SIGN);
    assert_null(tok);
}


/* the moment to the millisecond, for revocations in the same second */

static void
test_iat_ms(void **state)
{
    char                   *tok;
    int64_t                 t;
    audex_jwt_claims_t     *c;
    audex_jwt_sign_args_t   a;

    a = args_default();
    a.now_ms = 7;
    tok = sign(st.hs, &a);

    assert_int_equal(audex_jwt_verify(st.hs, tok, strlen(tok), T_NOW, 0,
                                      NULL, NULL, &c), AUDEX_JWT_OK);
    assert_int_equal(audex_jwt_claims_time(c, AUDEX_JWT_IAT_MS, &t), 0);
    assert_int_equal(t, (int64_t) T_NOW * 1000 + 7);
    /* "iat" stays whole seconds, for every other library */
    assert_int_equal(audex_jwt_claims_time_ms(c, "iat", &t), 0);
    assert_int_equal(t, (int64_t) T_NOW * 1000);
    /* exp stays whole */
    assert_int_equal(audex_jwt_claims_time_ms(c, "exp", &t), 0);
    assert_int_equal(t, ((int64_t) T_NOW + 3600) * 1000);

    audex_jwt_claims_free(c);
    free(tok);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_hs256_roundtrip),
        cmocka_unit_test(test_jti_unique),
        cmocka_unit_test(test_hs256_key_file),
        cmocka_unit_test(test_pem_keys_refused),
        cmocka_unit_test(test_rs256_roundtrip),
        cmocka_unit_test(test_es256_roundtrip),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_nbf_iat),
        cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_tampered),
        cmocka_unit_test(test_alg_none),
        cmocka_unit_test(test_hs256_with_rsa_public_pem),
        cmocka_unit_test(test_typ_crit),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_strict_json),
        cmocka_unit_test(test_control_chars),
        cmocka_unit_test(test_header_not_object),
        cmocka_unit_test(test_json_limits),
        cmocka_unit_test(test_iss_aud),
        cmocka_unit_test(test_claim_get),
        cmocka_unit_test(test_sign_args),
        cmocka_unit_test(test_iat_ms),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
