/*
 * audex: JSON Web Tokens, signed and verified with OpenSSL; their JSON
 * is parsed by jansson.
 *
 * Why not libjwt: it takes the algorithm from the token's own header and
 * checks neither "exp" nor "nbf" (libjwt 1.10.2).  Here the key alone
 * decides which primitive runs; the header's "alg" must merely agree.
 *
 * jansson is held to strict RFC 8259: one object and nothing after it
 * (its end-of-input check stays on), valid UTF-8, no duplicate member
 * names at any depth, and no "\u0000" (JSON_ALLOW_NUL is not given), so
 * every string we hand out is a C string with no surprise inside.  The
 * number of members and the depth are bounded on top of that.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* memmem() */
#endif

#include "audex_jwt.h"
#include "audex_utf8.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>


/* key files are small; anything bigger is a mistake in the path */
#define AUDEX_JWT_MAX_KEY_FILE    65536

/* an RSA signature of an 8192-bit key */
#define AUDEX_JWT_MAX_SIG         1024

#define AUDEX_JWT_ES256_SIG       64
#define AUDEX_JWT_HS256_SIG       32

/* claims nest only as deep as a sane issuer would ever go (jansson
 * itself stops at 2048) */
#define AUDEX_JWT_MAX_DEPTH       32

/*
 * Duplicates: RFC 7515 4 allows refusing them, and taking either would
 * be a guess that another parser may make the other way.
 */
#define AUDEX_JWT_JSON_FLAGS      JSON_REJECT_DUPLICATES

/* a claim as text: scalars too, no spaces, reals as a person writes them */
#define AUDEX_JWT_DUMP_FLAGS                                                 \
    (JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(15))

#define audex_jwt_b64_len(n)      (((n) / 3) * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))


/* a header or a claim set: a JSON object, owned */
struct audex_jwt_claims_s {
    json_t               *json;
};


/* where audex_jwt_claim_get() copies to: size - 1 bytes at most */
typedef struct {
    char                 *buf;
    size_t                size;
    size_t                len;
} audex_jwt_text_t;


struct audex_jwt_key_s {
    audex_jwt_alg_e       alg;
    int                   can_sign;
    EVP_PKEY             *pkey;
    size_t                sig_len;
    size_t                secret_len;
    unsigned char         secret[];
};


static const char  audex_jwt_b64_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";


/* each names the part of the token at fault: these reach the client */
static const char  *audex_jwt_errors[] = {
    "ok",
    "malformed token: not three base64url parts",
    "token too long",
    "malformed token: JOSE header is not a JSON object with alg",
    "JOSE header: algorithm not allowed",
    "JOSE header: unsupported typ",
    "JOSE header: unsupported crit",
    "token signature does not verify",
    "malformed token: claims are not a valid JSON object",
    "token claims: no exp",
    "token expired (exp)",
    "token not yet valid (nbf)",
    "token issued in the future (iat)",
    "token issuer (iss) not allowed",
    "token audience (aud) not allowed",
    "token claims: control characters in a string or a name",
    "key cannot sign",
    "out of memory",
    "crypto library failure"
};


static void
audex_jwt_set_err(char *err, size_t errlen, const char *fmt, const char *a,
    const char *b)
{
    if (err != NULL && errlen > 0) {
        snprintf(err, errlen, fmt, a ? a : "", b ? b : "");
    }
}


const char *
audex_jwt_strerror(audex_jwt_err_e err)
{
    if ((unsigned) err >= AUDEX_JWT_ERR_LAST) {
        return "unknown error";
    }

    return audex_jwt_errors[err];
}


audex_jwt_alg_e
audex_jwt_alg_parse(const char *name, size_t len)
{
    if (len != 5 || name == NULL) {
        return AUDEX_JWT_ALG_UNSET;
    }

    if (memcmp(name, "HS256", 5) == 0) {
        return AUDEX_JWT_HS256;
    }

    if (memcmp(name, "RS256", 5) == 0) {
        return AUDEX_JWT_RS256;
    }

    if (memcmp(name, "ES256", 5) == 0) {
        return AUDEX_JWT_ES256;
    }

    return AUDEX_JWT_ALG_UNSET;
}


const char *
audex_jwt_alg_name(audex_jwt_alg_e alg)
{
    switch (alg) {
    case AUDEX_JWT_HS256:
        return "HS256";
    case AUDEX_JWT_RS256:
        return "RS256";
    case AUDEX_JWT_ES256:
        return "ES256";
    default:
        return "unset";
    }
}


/* base64url, no padding (RFC 7515 section 2) */

static size_t
audex_jwt_b64_encode(unsigned char *dst, const unsigned char *src,
    size_t len)
{
    unsigned char  *d;

    d = dst;

    while (len >= 3) {
        *d++ = audex_jwt_b64_chars[src[0] >> 2];
        *d++ = audex_jwt_b64_chars[((src[0] & 0x03) << 4) | (src[1] >> 4)];
        *d++ = audex_jwt_b64_chars[((src[1] & 0x0f) << 2) | (src[2] >> 6)];
        *d++ = audex_jwt_b64_chars[src[2] & 0x3f];
        src += 3;
        len -= 3;
    }

    if (len == 1) {
        *d++ = audex_jwt_b64_chars[src[0] >> 2];
        *d++ = audex_jwt_b64_chars[(src[0] & 0x03) << 4];

    } else if (len == 2) {
        *d++ = audex_jwt_b64_chars[src[0] >> 2];
        *d++ = audex_jwt_b64_chars[((src[0] & 0x03) << 4) | (src[1] >> 4)];
        *d++ = audex_jwt_b64_chars[(src[1] & 0x0f) << 2];
    }

    return d - dst;
}


static int
audex_jwt_b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }

    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }

    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }

    if (c == '-') {
        return 62;
    }

    if (c == '_') {
        return 63;
    }

    return -1;
}


/*
 * Strict: only the URL-safe alphabet, no padding, and the unused low
 * bits of the last character must be zero, so every byte string has
 * exactly one encoding and a signature cannot be re-spelled.
 */
static ssize_t
audex_jwt_b64_decode(unsigned char *dst, const unsigned char *src,
    size_t len)
{
    int             v[4];
    size_t          i, n, k;
    unsigned char  *d;

    if (len % 4 == 1) {
        return -1;
    }

    d = dst;

    for (i = 0; i < len; i += 4) {
        n = len - i < 4 ? len - i : 4;

        for (k = 0; k < n; k++) {
            v[k] = audex_jwt_b64_value(src[i + k]);
            if (v[k] < 0) {
                return -1;
            }
        }

        *d++ = (unsigned char) ((v[0] << 2) | (v[1] >> 4));

        if (n == 2) {
            if (v[1] & 0x0f) {
                return -1;
            }
            break;
        }

        *d++ = (unsigned char) (((v[1] & 0x0f) << 4) | (v[2] >> 2));

        if (n == 3) {
            if (v[2] & 0x03) {
                return -1;
            }
            break;
        }

        *d++ = (unsigned char) (((v[2] & 0x03) << 6) | v[3]);
    }

    return d - dst;
}


/* JSON */

static int
audex_jwt_json_depth_ok(json_t *value, int depth)
{
    size_t       i;
    json_t      *v;
    const char  *name;

    if (depth > AUDEX_JWT_MAX_DEPTH) {
        return 0;
    }

    if (json_is_array(value)) {
        json_array_foreach(value, i, v) {
            if (!audex_jwt_json_depth_ok(v, depth + 1)) {
                return 0;
            }
        }

    } else if (json_is_object(value)) {
        json_object_foreach(value, name, v) {
            if (!audex_jwt_json_depth_ok(v, depth + 1)) {
                return 0;
            }
        }
    }

    return 1;
}


/*
 * Control characters (below 0x20, and DEL) in any string or member name
 * of the claims, at any depth.  A string claim reaches nginx variables
 * verbatim, and from there request headers, log lines and JSON: a CR LF
 * would start a header of the token holder's choosing upstream.  Deeper
 * strings are written back escaped today, but a claim set with nothing
 * to escape is the one rule every consumer can rely on.  The depth was
 * bounded when the claims were parsed.
 */
static int
audex_jwt_text_ok(const char *s, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if ((unsigned char) s[i] < 0x20 || s[i] == 0x7f) {
            return 0;
        }
    }

    return 1;
}


static int
audex_jwt_json_text_ok(json_t *value)
{
    size_t       i;
    json_t      *v;
    const char  *name;

    if (json_is_string(value)) {
        return audex_jwt_text_ok(json_string_value(value),
                                 json_string_length(value));
    }

    if (json_is_array(value)) {
        json_array_foreach(value, i, v) {
            if (!audex_jwt_json_text_ok(v)) {
                return 0;
            }
        }

    } else if (json_is_object(value)) {
        json_object_foreach(value, name, v) {
            if (!audex_jwt_text_ok(name, strlen(name))
                || !audex_jwt_json_text_ok(v))
            {
                return 0;
            }
        }
    }

    return 1;
}


/*
 * Decode one base64url part and parse it as a JSON object.  Returns
 * AUDEX_JWT_OK, AUDEX_JWT_ERR_MALFORMED (base64), AUDEX_JWT_ERR_BAD_CLAIMS
 * (JSON) or AUDEX_JWT_ERR_NOMEM.
 */
static audex_jwt_err_e
audex_jwt_object_decode(const char *b64, size_t b64_len,
    audex_jwt_claims_t **out)
{
    ssize_t              n;
    json_t              *json;
    json_error_t         error;
    unsigned char       *buf;
    audex_jwt_claims_t  *obj;

    buf = malloc(b64_len / 4 * 3 + 2);
    if (buf == NULL) {
        return AUDEX_JWT_ERR_NOMEM;
    }

    n = audex_jwt_b64_decode(buf, (const unsigned char *) b64, b64_len);
    if (n < 0) {
        free(buf);
        return AUDEX_JWT_ERR_MALFORMED;
    }

    json = json_loadb((const char *) buf, n, AUDEX_JWT_JSON_FLAGS, &error);
    free(buf);

    if (json == NULL) {
        return json_error_code(&error) == json_error_out_of_memory
               ? AUDEX_JWT_ERR_NOMEM : AUDEX_JWT_ERR_BAD_CLAIMS;
    }

    if (!json_is_object(json)
        || json_object_size(json) > AUDEX_JWT_MAX_MEMBERS
        || !audex_jwt_json_depth_ok(json, 0))
    {
        json_decref(json);
        return AUDEX_JWT_ERR_BAD_CLAIMS;
    }

    obj = malloc(sizeof(audex_jwt_claims_t));
    if (obj == NULL) {
        json_decref(json);
        return AUDEX_JWT_ERR_NOMEM;
    }

    obj->json = json;
    *out = obj;

    return AUDEX_JWT_OK;
}


/* a top-level member by a name that need not be NUL-terminated */
static json_t *
audex_jwt_member(const audex_jwt_claims_t *obj, const char *name,
    size_t len)
{
    if (obj == NULL || name == NULL) {
        return NULL;
    }

    return json_object_getn(obj->json, name, len);
}


static int
audex_jwt_string_is(const json_t *value, const char *s)
{
    size_t  len;

    len = strlen(s);

    return json_is_string(value) && json_string_length(value) == len
           && memcmp(json_string_value(value), s, len) == 0;
}


/*
 * A NumericDate as a whole number of seconds: an integer as it is, a
 * real rounded down, or up when round_up is set.  Not floor()/ceil(),
 * which would need libm for two comparisons.
 */
static int
audex_jwt_json_time(const json_t *value, int round_up, int64_t *out)
{
    double   d;
    int64_t  t;

    if (json_is_integer(value)) {
        *out = json_integer_value(value);
        return 0;
    }

    if (!json_is_real(value)) {
        return -1;
    }

    d = json_real_value(value);

    /* the range of int64_t; written so that a NaN fails too */
    if (!(d > -9223372036854775808.0 && d < 9223372036854775808.0)) {
        return -1;
    }

    t = (int64_t) d;

    if (round_up && d > (double) t) {
        t++;

    } else if (!round_up && d < (double) t) {
        t--;
    }

    *out = t;

    return 0;
}


/* OpenSSL */

static int
audex_jwt_no_passphrase(char *buf, int size, int rwflag, void *u)
{
    /* never prompt on a terminal for an encrypted key */
    return 0;
}


static audex_jwt_err_e
audex_jwt_pkey_sign(EVP_PKEY *pkey, const unsigned char *msg, size_t len,
    unsigned char *der, size_t *der_len)
{
    int          rc;
    EVP_MD_CTX  *ctx;

    ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        return AUDEX_JWT_ERR_NOMEM;
    }

    rc = EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pkey) == 1
         && EVP_DigestSign(ctx, der, der_len, msg, len) == 1;

    EVP_MD_CTX_free(ctx);

    return rc ? AUDEX_JWT_OK : AUDEX_JWT_ERR_CRYPTO;
}


static audex_jwt_err_e
audex_jwt_crypto_sign(const audex_jwt_key_t *key, const unsigned char *msg,
    size_t len, unsigned char *sig, size_t *sig_len)
{
    size_t                der_len;
    unsigned int          md_len;
    ECDSA_SIG            *es;
    const BIGNUM         *r, *s;
    audex_jwt_err_e       rc;
    const unsigned char  *dp;
    unsigned char         der[AUDEX_JWT_MAX_SIG];

    switch (key->alg) {

    case AUDEX_JWT_HS256:
        md_len = AUDEX_JWT_HS256_SIG;
        if (HMAC(EVP_sha256(), key->secret, (int) key->secret_len, msg, len,
                 sig, &md_len) == NULL)
        {
            return AUDEX_JWT_ERR_CRYPTO;
        }
        *sig_len = md_len;
        return AUDEX_JWT_OK;

    case AUDEX_JWT_RS256:
        *sig_len = AUDEX_JWT_MAX_SIG;
        return audex_jwt_pkey_sign(key->pkey, msg, len, sig, sig_len);

    case AUDEX_JWT_ES256:
        /* OpenSSL writes ECDSA-Sig-Value (DER); JWS wants R || S */
        der_len = sizeof(der);
        rc = audex_jwt_pkey_sign(key->pkey, msg, len, der, &der_len);
        if (rc != AUDEX_JWT_OK) {
            return rc;
        }

        dp = der;
        es = d2i_ECDSA_SIG(NULL, &dp, (long) der_len);
        if (es == NULL) {
            return AUDEX_JWT_ERR_CRYPTO;
        }

        ECDSA_SIG_get0(es, &r, &s);

        rc = (BN_bn2binpad(r, sig, 32) == 32
              && BN_bn2binpad(s, sig + 32, 32) == 32)
             ? AUDEX_JWT_OK : AUDEX_JWT_ERR_CRYPTO;

        ECDSA_SIG_free(es);
        *sig_len = AUDEX_JWT_ES256_SIG;

        return rc;

    default:
        return AUDEX_JWT_ERR_CANNOT_SIGN;
    }
}


/* 1: good signature, 0: bad, -1: could not tell (memory) */
static int
audex_jwt_crypto_verify(const audex_jwt_key_t *key, const unsigned char *msg,
    size_t len, const unsigned char *sig, size_t sig_len)
{
    int             rc, der_len;
    BIGNUM         *r, *s;
    ECDSA_SIG      *es;
    EVP_MD_CTX     *ctx;
    unsigned int    md_len;
    unsigned char  *der;
    unsigned char   mac[EVP_MAX_MD_SIZE];

    if (sig_len != key->sig_len) {
        return 0;
    }

    if (key->alg == AUDEX_JWT_HS256) {
        md_len = sizeof(mac);
        if (HMAC(EVP_sha256(), key->secret, (int) key->secret_len, msg, len,
                 mac, &md_len) == NULL)
        {
            return -1;
        }

        rc = (md_len == sig_len && CRYPTO_memcmp(mac, sig, sig_len) == 0);
        OPENSSL_cleanse(mac, sizeof(mac));

        return rc;
    }

    der = NULL;
    der_len = (int) sig_len;

    if (key->alg == AUDEX_JWT_ES256) {
        es = ECDSA_SIG_new();
        r = BN_bin2bn(sig, 32, NULL);
        s = BN_bin2bn(sig + 32, 32, NULL);

        if (es == NULL || r == NULL || s == NULL
            || ECDSA_SIG_set0(es, r, s) != 1)
        {
            ECDSA_SIG_free(es);
            BN_free(r);
            BN_free(s);
            ERR_clear_error();
            return -1;
        }

        der_len = i2d_ECDSA_SIG(es, &der);
        ECDSA_SIG_free(es);

        if (der_len <= 0) {
            ERR_clear_error();
            return -1;
        }

        sig = der;
    }

    ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        OPENSSL_free(der);
        return -1;
    }

    rc = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key->pkey) == 1
         && EVP_DigestVerify(ctx, sig, der_len, msg, len) == 1;

    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);

    /* a rejected signature leaves errors on this thread's queue, where
     * nginx's own SSL code would later find them */
    ERR_clear_error();

    return rc;
}


/* keys */

static audex_jwt_key_t *
audex_jwt_key_pem(audex_jwt_alg_e alg, const void *data, size_t len,
    char *err, size_t errlen)
{
    int               can_sign;
    BIO              *bio;
    char              group[64];
    size_t            dummy_len;
    EVP_PKEY         *pkey;
    audex_jwt_key_t  *key;
    unsigned char     dummy[AUDEX_JWT_MAX_SIG];

    can_sign = 1;

    bio = BIO_new_mem_buf(data, (int) len);
    if (bio == NULL) {
        audex_jwt_set_err(err, errlen, "out of memory", NULL, NULL);
        return NULL;
    }

    pkey = PEM_read_bio_PrivateKey(bio, NULL, audex_jwt_no_passphrase, NULL);
    BIO_free(bio);

    if (pkey == NULL) {
        can_sign = 0;

        bio = BIO_new_mem_buf(data, (int) len);
        if (bio == NULL) {
            audex_jwt_set_err(err, errlen, "out of memory", NULL, NULL);
            return NULL;
        }

        pkey = PEM_read_bio_PUBKEY(bio, NULL, audex_jwt_no_passphrase, NULL);
        BIO_free(bio);
    }

    ERR_clear_error();

    if (pkey == NULL) {
        audex_jwt_set_err(err, errlen,
                          memmem(data, len, "ENCRYPTED", 9)
                          ? "%s: encrypted PEM keys are not supported"
                          : "%s: no PEM private or public key found",
                          audex_jwt_alg_name(alg), NULL);
        return NULL;
    }

    if (alg == AUDEX_JWT_RS256) {
        if (!EVP_PKEY_is_a(pkey, "RSA")) {
            audex_jwt_set_err(err, errlen, "RS256 needs an RSA key, not %s",
                              EVP_PKEY_get0_type_name(pkey), NULL);
            goto failed;
        }

        if (EVP_PKEY_get_bits(pkey) < 2048) {
            audex_jwt_set_err(err, errlen,
                              "RS256 needs an RSA key of 2048 bits or more",
                              NULL, NULL);
            goto failed;
        }

    } else {
        if (!EVP_PKEY_is_a(pkey, "EC")
            || EVP_PKEY_get_group_name(pkey, group, sizeof(group), NULL) != 1
            || strcmp(group, "prime256v1") != 0)
        {
            audex_jwt_set_err(err, errlen,
                              "ES256 needs an EC key on curve P-256", NULL,
                              NULL);
            goto failed;
        }
    }

    if (EVP_PKEY_get_size(pkey) <= 0
        || EVP_PKEY_get_size(pkey) > AUDEX_JWT_MAX_SIG)
    {
        audex_jwt_set_err(err, errlen, "%s: key too large",
                          audex_jwt_alg_name(alg), NULL);
        goto failed;
    }

    key = malloc(sizeof(audex_jwt_key_t));
    if (key == NULL) {
        audex_jwt_set_err(err, errlen, "out of memory", NULL, NULL);
        goto failed;
    }

    key->alg = alg;
    key->can_sign = can_sign;
    key->pkey = pkey;
    key->secret_len = 0;
    key->sig_len = (alg == AUDEX_JWT_ES256) ? AUDEX_JWT_ES256_SIG
                                            : (size_t) EVP_PKEY_get_size(pkey);

    /* a private key proves itself once: a key pair that does not match
     * fails here and not on the first login */
    if (can_sign) {
        if (audex_jwt_crypto_sign(key, (const unsigned char *) "audex", 5,
                                  dummy, &dummy_len) != AUDEX_JWT_OK
            || audex_jwt_crypto_verify(key, (const unsigned char *) "audex",
                                       5, dummy, dummy_len) != 1)
        {
            ERR_clear_error();
            audex_jwt_set_err(err, errlen, "%s: key fails a self-test",
                              audex_jwt_alg_name(alg), NULL);
            free(key);
            goto failed;
        }
    }

    return key;

failed:

    EVP_PKEY_free(pkey);
    ERR_clear_error();

    return NULL;
}


static audex_jwt_key_t *
audex_jwt_key_secret(const void *data, size_t len, char *err, size_t errlen)
{
    char              num[32];
    audex_jwt_key_t  *key;

    if (memmem(data, len, "-----BEGIN", 10) != NULL) {
        audex_jwt_set_err(err, errlen,
                          "HS256 needs a shared secret, not a PEM key", NULL,
                          NULL);
        return NULL;
    }

    if (len < AUDEX_JWT_MIN_SECRET) {
        snprintf(num, sizeof(num), "%zu", len);
        audex_jwt_set_err(err, errlen,
                          "HS256 secret is %s bytes long, "
                          "at least 32 are needed", num, NULL);
        return NULL;
    }

    key = malloc(sizeof(audex_jwt_key_t) + len);
    if (key == NULL) {
        audex_jwt_set_err(err, errlen, "out of memory", NULL, NULL);
        return NULL;
    }

    key->alg = AUDEX_JWT_HS256;
    key->can_sign = 1;
    key->pkey = NULL;
    key->sig_len = AUDEX_JWT_HS256_SIG;
    key->secret_len = len;
    memcpy(key->secret, data, len);

    return key;
}


audex_jwt_key_t *
audex_jwt_key_from_mem(audex_jwt_alg_e alg, const void *data, size_t len,
    char *err, size_t errlen)
{
    if (data == NULL || len == 0) {
        audex_jwt_set_err(err, errlen, "%s: empty key",
                          audex_jwt_alg_name(alg), NULL);
        return NULL;
    }

    if (len > AUDEX_JWT_MAX_KEY_FILE) {
        audex_jwt_set_err(err, errlen, "%s: key too large",
                          audex_jwt_alg_name(alg), NULL);
        return NULL;
    }

    switch (alg) {
    case AUDEX_JWT_HS256:
        return audex_jwt_key_secret(data, len, err, errlen);
    case AUDEX_JWT_RS256:
    case AUDEX_JWT_ES256:
        return audex_jwt_key_pem(alg, data, len, err, errlen);
    default:
        audex_jwt_set_err(err, errlen,
                          "unknown algorithm (HS256, RS256 or ES256)", NULL,
                          NULL);
        return NULL;
    }
}


audex_jwt_key_t *
audex_jwt_key_load(audex_jwt_alg_e alg, const char *path, char *err,
    size_t errlen)
{
    int               fd;
    size_t            len;
    ssize_t           n;
    struct stat       st;
    unsigned char    *buf;
    audex_jwt_key_t  *key;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        audex_jwt_set_err(err, errlen, "cannot open key file \"%s\": %s",
                          path, strerror(errno));
        return NULL;
    }

    if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
        close(fd);
        audex_jwt_set_err(err, errlen, "key file \"%s\" is not a regular file",
                          path, NULL);
        return NULL;
    }

    /* on the heap: this may run on a thread with a small stack */
    buf = malloc(AUDEX_JWT_MAX_KEY_FILE + 1);
    if (buf == NULL) {
        close(fd);
        audex_jwt_set_err(err, errlen, "out of memory", NULL, NULL);
        return NULL;
    }

    len = 0;

    for ( ;; ) {
        n = read(fd, buf + len, AUDEX_JWT_MAX_KEY_FILE + 1 - len);

        if (n == -1 && errno == EINTR) {
            continue;
        }

        if (n <= 0) {
            break;
        }

        len += n;

        if (len == AUDEX_JWT_MAX_KEY_FILE + 1) {
            break;
        }
    }

    close(fd);

    if (n == -1) {
        audex_jwt_set_err(err, errlen, "cannot read key file \"%s\": %s",
                          path, strerror(errno));
        key = NULL;
        goto done;
    }

    if (len > AUDEX_JWT_MAX_KEY_FILE) {
        audex_jwt_set_err(err, errlen, "key file \"%s\" is too large", path,
                          NULL);
        key = NULL;
        goto done;
    }

    if (alg == AUDEX_JWT_HS256) {
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) {
            len--;
        }
    }

    key = audex_jwt_key_from_mem(alg, buf, len, err, errlen);

done:

    OPENSSL_cleanse(buf, AUDEX_JWT_MAX_KEY_FILE + 1);
    free(buf);

    return key;
}


void
audex_jwt_key_free(audex_jwt_key_t *key)
{
    if (key == NULL) {
        return;
    }

    EVP_PKEY_free(key->pkey);
    OPENSSL_cleanse(key->secret, key->secret_len);
    free(key);
}


audex_jwt_alg_e
audex_jwt_key_alg(const audex_jwt_key_t *key)
{
    return key->alg;
}


int
audex_jwt_key_can_sign(const audex_jwt_key_t *key)
{
    return key->can_sign;
}


/* signing */

/*
 * A JSON string literal; NULL when s is not valid UTF-8 or holds a
 * control character, which verification would refuse.
 */
static unsigned char *
audex_jwt_put_string(unsigned char *d, const char *str)
{
    size_t                n;
    const unsigned char  *s, *end;

    s = (const unsigned char *) str;
    end = s + strlen(str);

    *d++ = '"';

    while (s < end) {
        if (*s == '"' || *s == '\\') {
            *d++ = '\\';
            *d++ = *s++;
            continue;
        }

        if (*s < 0x20 || *s == 0x7f) {
            return NULL;
        }

        n = audex_utf8_len(s, end);
        if (n == 0) {
            return NULL;
        }

        memcpy(d, s, n);
        d += n;
        s += n;
    }

    *d++ = '"';

    return d;
}


static unsigned char *
audex_jwt_put_member(unsigned char *d, const char *name, const char *value)
{
    d += sprintf((char *) d, ",\"%s\":", name);

    return audex_jwt_put_string(d, value);
}


audex_jwt_err_e
audex_jwt_sign(const audex_jwt_key_t *key, const audex_jwt_sign_args_t *args,
    char **token, size_t *len)
{
    size_t           i, n, max, sig_len;
    unsigned char   *json, *p, *t, *tp;
    audex_jwt_err_e  rc;
    unsigned char    rnd[AUDEX_JWT_JTI_LEN / 2];
    unsigned char    sig[AUDEX_JWT_MAX_SIG];
    char             jti[AUDEX_JWT_JTI_LEN + 1], hdr[48];

    static const char  hex[] = "0123456789abcdef";

    if (key == NULL || !key->can_sign) {
        return AUDEX_JWT_ERR_CANNOT_SIGN;
    }

    if (args == NULL || args->sub == NULL || args->email == NULL
        || args->lifetime <= 0 || args->now < 0
        || args->now > INT64_MAX - args->lifetime)
    {
        return AUDEX_JWT_ERR_CANNOT_SIGN;
    }

    n = strlen(args->sub) + 2 * strlen(args->email)
        + (args->iss ? strlen(args->iss) : 0)
        + (args->aud ? strlen(args->aud) : 0);

    if (n > AUDEX_JWT_MAX_TOKEN) {
        return AUDEX_JWT_ERR_TOO_LONG;
    }

    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        ERR_clear_error();
        return AUDEX_JWT_ERR_CRYPTO;
    }

    for (i = 0; i < sizeof(rnd); i++) {
        jti[2 * i] = hex[rnd[i] >> 4];
        jti[2 * i + 1] = hex[rnd[i] & 0x0f];
    }

    jti[AUDEX_JWT_JTI_LEN] = '\0';

    /* every byte of a string may become \" or \\ */
    max = 2 * n + 256;

    json = malloc(max);
    if (json == NULL) {
        return AUDEX_JWT_ERR_NOMEM;
    }

    p = json;
    p += sprintf((char *) p, "{\"sub\":");

    p = audex_jwt_put_string(p, args->sub);
    p = p ? audex_jwt_put_member(p, "email", args->email) : NULL;
    p = p ? audex_jwt_put_member(p, "username", args->email) : NULL;

    if (p && args->iss) {
        p = audex_jwt_put_member(p, "iss", args->iss);
    }

    if (p && args->aud) {
        p = audex_jwt_put_member(p, "aud", args->aud);
    }

    if (p == NULL) {
        free(json);
        return AUDEX_JWT_ERR_CANNOT_SIGN;
    }

    /*
     * "iat" in whole seconds, as every JWT library expects it, and the
     * same moment to the millisecond in a claim of ours, which tells a
     * token from a revocation made in the same second
     */
    p += sprintf((char *) p,
                 ",\"admin\":%s,\"iat\":%lld,\"" AUDEX_JWT_IAT_MS
                 "\":%lld,\"exp\":%lld,\"jti\":\"%s\"}",
                 args->admin ? "true" : "false", (long long) args->now,
                 (long long) args->now * 1000
                 + (args->now_ms > 0 && args->now_ms < 1000
                    ? args->now_ms : 0),
                 (long long) (args->now + args->lifetime), jti);

    n = snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"typ\":\"JWT\"}",
                 audex_jwt_alg_name(key->alg));

    max = audex_jwt_b64_len(n) + 1 + audex_jwt_b64_len((size_t) (p - json))
          + 1 + audex_jwt_b64_len(AUDEX_JWT_MAX_SIG) + 1;

    t = malloc(max);
    if (t == NULL) {
        free(json);
        return AUDEX_JWT_ERR_NOMEM;
    }

    tp = t;
    tp += audex_jwt_b64_encode(tp, (unsigned char *) hdr, n);
    *tp++ = '.';
    tp += audex_jwt_b64_encode(tp, json, p - json);

    free(json);

    rc = audex_jwt_crypto_sign(key, t, tp - t, sig, &sig_len);
    if (rc != AUDEX_JWT_OK) {
        ERR_clear_error();
        free(t);
        return rc;
    }

    *tp++ = '.';
    tp += audex_jwt_b64_encode(tp, sig, sig_len);
    *tp = '\0';

    /* a token we would refuse to read back is no use to anyone */
    if ((size_t) (tp - t) > AUDEX_JWT_MAX_TOKEN) {
        free(t);
        return AUDEX_JWT_ERR_TOO_LONG;
    }

    *token = (char *) t;

    if (len) {
        *len = tp - t;
    }

    return AUDEX_JWT_OK;
}


/* verification */

static audex_jwt_err_e
audex_jwt_check_header(const audex_jwt_key_t *key, const char *b64,
    size_t len)
{
    json_t              *m;
    const char          *typ;
    audex_jwt_err_e      rc;
    audex_jwt_claims_t  *hdr;

    rc = audex_jwt_object_decode(b64, len, &hdr);
    if (rc != AUDEX_JWT_OK) {
        return rc == AUDEX_JWT_ERR_BAD_CLAIMS ? AUDEX_JWT_ERR_BAD_HEADER : rc;
    }

    m = audex_jwt_member(hdr, "alg", 3);

    if (!json_is_string(m)) {
        rc = AUDEX_JWT_ERR_BAD_HEADER;
        goto done;
    }

    if (!audex_jwt_string_is(m, audex_jwt_alg_name(key->alg))) {
        rc = AUDEX_JWT_ERR_ALG;
        goto done;
    }

    /* media type names are case-insensitive (RFC 7519 5.1); strings hold
     * no NUL, so the C string is the whole value */
    m = audex_jwt_member(hdr, "typ", 3);

    if (m != NULL) {
        typ = json_string_value(m);

        if (typ == NULL
            || (strcasecmp(typ, "JWT") != 0
                && strcasecmp(typ, "application/jwt") != 0))
        {
            rc = AUDEX_JWT_ERR_TYP;
            goto done;
        }
    }

    /* we implement no header extension, so any "crit" must be refused
     * (RFC 7515 4.1.11) */
    if (audex_jwt_member(hdr, "crit", 4) != NULL) {
        rc = AUDEX_JWT_ERR_CRIT;
        goto done;
    }

done:

    audex_jwt_claims_free(hdr);

    return rc;
}


/* aud may be one string or an array of strings (RFC 7519 4.1.3) */
static int
audex_jwt_aud_match(json_t *m, const char *aud)
{
    size_t   i;
    json_t  *v;

    if (json_is_string(m)) {
        return audex_jwt_string_is(m, aud);
    }

    json_array_foreach(m, i, v) {
        if (audex_jwt_string_is(v, aud)) {
            return 1;
        }
    }

    return 0;
}


static audex_jwt_err_e
audex_jwt_check_claims(const audex_jwt_claims_t *c, int64_t now,
    int64_t leeway, const char *iss, const char *aud)
{
    json_t   *m;
    int64_t   t;

    m = audex_jwt_member(c, "exp", 3);
    if (m == NULL) {
        return AUDEX_JWT_ERR_NO_EXP;
    }

    if (audex_jwt_json_time(m, 0, &t) != 0) {
        return AUDEX_JWT_ERR_BAD_CLAIMS;
    }

    /* RFC 7519 4.1.4: the current time must be before exp */
    if (now - leeway >= t) {
        return AUDEX_JWT_ERR_EXPIRED;
    }

    m = audex_jwt_member(c, "nbf", 3);

    if (m != NULL) {
        if (audex_jwt_json_time(m, 1, &t) != 0) {
            return AUDEX_JWT_ERR_BAD_CLAIMS;
        }

        if (t > now + leeway) {
            return AUDEX_JWT_ERR_NOT_YET_VALID;
        }
    }

    m = audex_jwt_member(c, "iat", 3);

    if (m != NULL) {
        if (audex_jwt_json_time(m, 1, &t) != 0) {
            return AUDEX_JWT_ERR_BAD_CLAIMS;
        }

        if (t > now + leeway) {
            return AUDEX_JWT_ERR_IAT_FUTURE;
        }
    }

    if (iss != NULL
        && !audex_jwt_string_is(audex_jwt_member(c, "iss", 3), iss))
    {
        return AUDEX_JWT_ERR_ISSUER;
    }

    m = audex_jwt_member(c, "aud", 3);

    if (aud == NULL) {
        return m == NULL ? AUDEX_JWT_OK : AUDEX_JWT_ERR_AUDIENCE;
    }

    return audex_jwt_aud_match(m, aud) ? AUDEX_JWT_OK
                                       : AUDEX_JWT_ERR_AUDIENCE;
}


audex_jwt_err_e
audex_jwt_verify(const audex_jwt_key_t *key, const char *token, size_t len,
    int64_t now, int64_t leeway, const char *iss, const char *aud,
    audex_jwt_claims_t **claims)
{
    int                  ok;
    size_t               dot1, dot2, dots, i, sig_b64;
    ssize_t              n;
    audex_jwt_err_e      rc;
    audex_jwt_claims_t  *c;
    unsigned char        sig[AUDEX_JWT_MAX_SIG];

    if (claims) {
        *claims = NULL;
    }

    if (key == NULL || token == NULL || len == 0) {
        return AUDEX_JWT_ERR_MALFORMED;
    }

    if (len > AUDEX_JWT_MAX_TOKEN) {
        return AUDEX_JWT_ERR_TOO_LONG;
    }

    /* a year of leeway is already absurd; the bound keeps now + leeway
     * from overflowing */
    if (leeway < 0) {
        leeway = 0;
    } else if (leeway > 366 * 86400) {
        leeway = 366 * 86400;
    }

    dot1 = 0;
    dot2 = 0;
    dots = 0;

    for (i = 0; i < len; i++) {
        if (token[i] != '.') {
            continue;
        }

        if (++dots == 1) {
            dot1 = i;
        } else {
            dot2 = i;
        }
    }

    if (dots != 2 || dot1 == 0 || dot2 == dot1 + 1) {
        return AUDEX_JWT_ERR_MALFORMED;
    }

    /* the header first, so that "alg" decides before any crypto runs */
    rc = audex_jwt_check_header(key, token, dot1);
    if (rc != AUDEX_JWT_OK) {
        return rc;
    }

    sig_b64 = len - dot2 - 1;

    if (sig_b64 != audex_jwt_b64_len(key->sig_len)) {
        return AUDEX_JWT_ERR_SIGNATURE;
    }

    n = audex_jwt_b64_decode(sig, (const unsigned char *) token + dot2 + 1,
                             sig_b64);
    if (n < 0) {
        return AUDEX_JWT_ERR_MALFORMED;
    }

    ok = audex_jwt_crypto_verify(key, (const unsigned char *) token, dot2,
                                 sig, n);
    if (ok < 0) {
        return AUDEX_JWT_ERR_NOMEM;
    }

    if (ok == 0) {
        return AUDEX_JWT_ERR_SIGNATURE;
    }

    rc = audex_jwt_object_decode(token + dot1 + 1, dot2 - dot1 - 1, &c);
    if (rc != AUDEX_JWT_OK) {
        return rc;
    }

    rc = audex_jwt_json_text_ok(c->json)
         ? audex_jwt_check_claims(c, now, leeway, iss, aud)
         : AUDEX_JWT_ERR_CONTROL;

    if (rc != AUDEX_JWT_OK || claims == NULL) {
        audex_jwt_claims_free(c);
        return rc;
    }

    *claims = c;

    return AUDEX_JWT_OK;
}


/* claims */

void
audex_jwt_claims_free(audex_jwt_claims_t *claims)
{
    if (claims == NULL) {
        return;
    }

    json_decref(claims->json);
    free(claims);
}


const char *
audex_jwt_claims_string(const audex_jwt_claims_t *claims, const char *name,
    size_t *len)
{
    json_t  *m;

    m = audex_jwt_member(claims, name, strlen(name));

    if (!json_is_string(m)) {
        return NULL;
    }

    if (len) {
        *len = json_string_length(m);
    }

    return json_string_value(m);
}


const char *
audex_jwt_claims_sub(const audex_jwt_claims_t *claims)
{
    return audex_jwt_claims_string(claims, "sub", NULL);
}


const char *
audex_jwt_claims_email(const audex_jwt_claims_t *claims)
{
    return audex_jwt_claims_string(claims, "email", NULL);
}


int
audex_jwt_claims_admin(const audex_jwt_claims_t *claims)
{
    return json_is_true(audex_jwt_member(claims, "admin", 5));
}


int
audex_jwt_claims_time(const audex_jwt_claims_t *claims, const char *name,
    int64_t *value)
{
    json_t  *m;

    m = audex_jwt_member(claims, name, strlen(name));

    if (m == NULL) {
        return -1;
    }

    return audex_jwt_json_time(m, 0, value);
}


int
audex_jwt_claims_time_ms(const audex_jwt_claims_t *claims, const char *name,
    int64_t *ms)
{
    double   d;
    json_t  *m;

    m = audex_jwt_member(claims, name, strlen(name));

    if (m == NULL) {
        return -1;
    }

    if (!json_is_real(m)) {
        if (audex_jwt_json_time(m, 0, ms) != 0
            || *ms > INT64_MAX / 1000 || *ms < INT64_MIN / 1000)
        {
            return -1;
        }

        *ms *= 1000;
        return 0;
    }

    d = json_real_value(m) * 1000.0;

    /* within int64_t, written so that a NaN fails too */
    if (!(d > -9.2e18 && d < 9.2e18)) {
        return -1;
    }

    *ms = (int64_t) d;

    if (d < (double) *ms) {
        (*ms)--;
    }

    return 0;
}


/* a json_dump_callback_t: keeps what fits, counts all */
static int
audex_jwt_text_add(const char *data, size_t len, void *ctx)
{
    size_t             room, n;
    audex_jwt_text_t  *t;

    t = ctx;
    room = t->size > 0 ? t->size - 1 : 0;

    if (t->len < room) {
        n = room - t->len < len ? room - t->len : len;
        memcpy(t->buf + t->len, data, n);
    }

    t->len += len;

    return 0;
}


ssize_t
audex_jwt_claim_get(const audex_jwt_claims_t *claims, const char *name,
    size_t name_len, char *buf, size_t size)
{
    json_t            *m;
    audex_jwt_text_t   t;

    m = audex_jwt_member(claims, name, name_len);

    if (m == NULL) {
        return -1;
    }

    t.buf = buf;
    t.size = size;
    t.len = 0;

    if (json_is_string(m)) {
        (void) audex_jwt_text_add(json_string_value(m),
                                  json_string_length(m), &t);

    } else if (json_dump_callback(m, audex_jwt_text_add, &t,
                                  AUDEX_JWT_DUMP_FLAGS) != 0)
    {
        return -1;
    }

    if (size > 0) {
        buf[t.len < size ? t.len : size - 1] = '\0';
    }

    return t.len;
}
