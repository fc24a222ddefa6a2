/*
 * audex: JSON Web Tokens, signed and verified with OpenSSL.
 *
 * Why not libjwt for verification: it picks the algorithm from the
 * token's own header, parsed by jansson.  Even after we check that
 * header ourselves, any difference between the two parsers (a duplicate
 * "alg" member is the classic one) would let a token choose HMAC over an
 * RSA public key again.  Here the key alone decides which primitive
 * runs, so the header check is a second fence rather than the only one.
 *
 * The JSON parser below is strict RFC 8259: one object, no trailing
 * bytes, valid UTF-8, no duplicate member names at the top level, and a
 * bounded depth.  libbson's parser was not used because it accepts
 * trailing documents, NaN, and silently wraps integers that overflow.
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

/* claims nest only as deep as a sane issuer would ever go */
#define AUDEX_JWT_MAX_DEPTH       32

#define audex_jwt_b64_len(n)      (((n) / 3) * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))


typedef enum {
    AUDEX_JWT_JSON_STRING = 0,
    AUDEX_JWT_JSON_NUMBER,
    AUDEX_JWT_JSON_TRUE,
    AUDEX_JWT_JSON_FALSE,
    AUDEX_JWT_JSON_NULL,
    AUDEX_JWT_JSON_OBJECT,
    AUDEX_JWT_JSON_ARRAY
} audex_jwt_json_type_e;


typedef struct {
    const unsigned char  *p;
    const unsigned char  *end;
} audex_jwt_json_t;


typedef struct {
    const char             *name;     /* unescaped, NUL-terminated */
    size_t                  name_len;
    audex_jwt_json_type_e   type;
    const unsigned char    *raw;      /* the value as written */
    size_t                  raw_len;
    const char             *str;      /* a string, unescaped */
    size_t                  str_len;
} audex_jwt_member_t;


/*
 * One malloc() holds the struct, the member table, the decoded JSON and
 * an arena for unescaped strings, so freeing is a single free().
 */
struct audex_jwt_claims_s {
    audex_jwt_member_t   *members;
    size_t                nmembers;
    unsigned char        *json;
    size_t                json_len;
};


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


static const char  *audex_jwt_errors[] = {
    "ok",
    "malformed token",
    "token too long",
    "malformed header",
    "algorithm not allowed",
    "unsupported token type",
    "unsupported critical header",
    "bad signature",
    "malformed claims",
    "missing exp claim",
    "token expired",
    "token not yet valid",
    "token issued in the future",
    "issuer not allowed",
    "audience not allowed",
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


/* strict JSON */

static void
audex_jwt_json_ws(audex_jwt_json_t *j)
{
    while (j->p < j->end
           && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n'
               || *j->p == '\r'))
    {
        j->p++;
    }
}


static int
audex_jwt_json_hex4(const unsigned char *p, unsigned *cp)
{
    int       i;
    unsigned  v, c;

    v = 0;

    for (i = 0; i < 4; i++) {
        c = p[i];

        if (c >= '0' && c <= '9') {
            c -= '0';
        } else if (c >= 'a' && c <= 'f') {
            c = c - 'a' + 10;
        } else if (c >= 'A' && c <= 'F') {
            c = c - 'A' + 10;
        } else {
            return -1;
        }

        v = (v << 4) | c;
    }

    *cp = v;

    return 0;
}


static unsigned char *
audex_jwt_json_put_utf8(unsigned char *d, unsigned cp)
{
    if (cp < 0x80) {
        *d++ = (unsigned char) cp;

    } else if (cp < 0x800) {
        *d++ = (unsigned char) (0xc0 | (cp >> 6));
        *d++ = (unsigned char) (0x80 | (cp & 0x3f));

    } else if (cp < 0x10000) {
        *d++ = (unsigned char) (0xe0 | (cp >> 12));
        *d++ = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
        *d++ = (unsigned char) (0x80 | (cp & 0x3f));

    } else {
        *d++ = (unsigned char) (0xf0 | (cp >> 18));
        *d++ = (unsigned char) (0x80 | ((cp >> 12) & 0x3f));
        *d++ = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
        *d++ = (unsigned char) (0x80 | (cp & 0x3f));
    }

    return d;
}


/*
 * A string at j->p (which points at the opening quote).  When out is
 * not NULL the unescaped bytes are written there; they never take more
 * room than the escaped text.
 */
static int
audex_jwt_json_string(audex_jwt_json_t *j, unsigned char *out,
    size_t *out_len)
{
    size_t                n;
    unsigned              cp, lo;
    unsigned char        *d;
    const unsigned char  *p;

    p = j->p + 1;
    d = out;

    for ( ;; ) {
        if (p >= j->end) {
            return -1;
        }

        if (*p == '"') {
            break;
        }

        if (*p < 0x20) {
            return -1;
        }

        if (*p != '\\') {
            n = audex_utf8_len(p, j->end);
            if (n == 0) {
                return -1;
            }

            if (d) {
                memcpy(d, p, n);
                d += n;
            }

            p += n;
            continue;
        }

        if (j->end - p < 2) {
            return -1;
        }

        switch (p[1]) {
        case '"':
        case '\\':
        case '/':
            cp = p[1];
            break;
        case 'b':
            cp = '\b';
            break;
        case 'f':
            cp = '\f';
            break;
        case 'n':
            cp = '\n';
            break;
        case 'r':
            cp = '\r';
            break;
        case 't':
            cp = '\t';
            break;

        case 'u':
            if (j->end - p < 6 || audex_jwt_json_hex4(p + 2, &cp) != 0) {
                return -1;
            }

            if (cp >= 0xdc00 && cp <= 0xdfff) {
                return -1;
            }

            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (j->end - p < 12 || p[6] != '\\' || p[7] != 'u'
                    || audex_jwt_json_hex4(p + 8, &lo) != 0
                    || lo < 0xdc00 || lo > 0xdfff)
                {
                    return -1;
                }

                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                p += 6;
            }

            p += 4;
            break;

        default:
            return -1;
        }

        p += 2;

        if (d) {
            d = audex_jwt_json_put_utf8(d, cp);
        }
    }

    j->p = p + 1;

    if (out_len) {
        *out_len = d - out;
    }

    return 0;
}


static int
audex_jwt_json_digits(audex_jwt_json_t *j)
{
    const unsigned char  *start;

    start = j->p;

    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        j->p++;
    }

    return j->p > start ? 0 : -1;
}


static int
audex_jwt_json_number(audex_jwt_json_t *j)
{
    if (j->p < j->end && *j->p == '-') {
        j->p++;
    }

    if (j->p >= j->end) {
        return -1;
    }

    if (*j->p == '0') {
        j->p++;

    } else if (audex_jwt_json_digits(j) != 0) {
        return -1;
    }

    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (audex_jwt_json_digits(j) != 0) {
            return -1;
        }
    }

    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-')) {
            j->p++;
        }
        if (audex_jwt_json_digits(j) != 0) {
            return -1;
        }
    }

    return 0;
}


static int
audex_jwt_json_literal(audex_jwt_json_t *j, const char *word, size_t len)
{
    if ((size_t) (j->end - j->p) < len || memcmp(j->p, word, len) != 0) {
        return -1;
    }

    j->p += len;

    return 0;
}


static int
audex_jwt_json_value(audex_jwt_json_t *j, int depth,
    audex_jwt_json_type_e *type)
{
    audex_jwt_json_type_e  dummy;

    if (depth > AUDEX_JWT_MAX_DEPTH || j->p >= j->end) {
        return -1;
    }

    switch (*j->p) {

    case '"':
        *type = AUDEX_JWT_JSON_STRING;
        return audex_jwt_json_string(j, NULL, NULL);

    case 't':
        *type = AUDEX_JWT_JSON_TRUE;
        return audex_jwt_json_literal(j, "true", 4);

    case 'f':
        *type = AUDEX_JWT_JSON_FALSE;
        return audex_jwt_json_literal(j, "false", 5);

    case 'n':
        *type = AUDEX_JWT_JSON_NULL;
        return audex_jwt_json_literal(j, "null", 4);

    case '[':
        *type = AUDEX_JWT_JSON_ARRAY;
        j->p++;
        audex_jwt_json_ws(j);

        if (j->p < j->end && *j->p == ']') {
            j->p++;
            return 0;
        }

        for ( ;; ) {
            if (audex_jwt_json_value(j, depth + 1, &dummy) != 0) {
                return -1;
            }

            audex_jwt_json_ws(j);

            if (j->p >= j->end) {
                return -1;
            }

            if (*j->p == ']') {
                j->p++;
                return 0;
            }

            if (*j->p != ',') {
                return -1;
            }

            j->p++;
            audex_jwt_json_ws(j);
        }

    case '{':
        *type = AUDEX_JWT_JSON_OBJECT;
        j->p++;
        audex_jwt_json_ws(j);

        if (j->p < j->end && *j->p == '}') {
            j->p++;
            return 0;
        }

        for ( ;; ) {
            if (j->p >= j->end || *j->p != '"'
                || audex_jwt_json_string(j, NULL, NULL) != 0)
            {
                return -1;
            }

            audex_jwt_json_ws(j);

            if (j->p >= j->end || *j->p != ':') {
                return -1;
            }

            j->p++;
            audex_jwt_json_ws(j);

            if (audex_jwt_json_value(j, depth + 1, &dummy) != 0) {
                return -1;
            }

            audex_jwt_json_ws(j);

            if (j->p >= j->end) {
                return -1;
            }

            if (*j->p == '}') {
                j->p++;
                return 0;
            }

            if (*j->p != ',') {
                return -1;
            }

            j->p++;
            audex_jwt_json_ws(j);
        }

    default:
        *type = AUDEX_JWT_JSON_NUMBER;
        return audex_jwt_json_number(j);
    }
}


/*
 * Parse the top-level object of obj->json into obj->members, unescaping
 * names and string values into the arena.
 */
static int
audex_jwt_json_members(audex_jwt_claims_t *obj, size_t max,
    unsigned char *arena)
{
    size_t               i, n;
    audex_jwt_json_t     j;
    audex_jwt_member_t  *m;

    j.p = obj->json;
    j.end = obj->json + obj->json_len;

    audex_jwt_json_ws(&j);

    if (j.p >= j.end || *j.p != '{') {
        return -1;
    }

    j.p++;
    audex_jwt_json_ws(&j);

    if (j.p < j.end && *j.p == '}') {
        j.p++;
        goto done;
    }

    for ( ;; ) {
        if (obj->nmembers == max || j.p >= j.end || *j.p != '"') {
            return -1;
        }

        m = &obj->members[obj->nmembers];

        if (audex_jwt_json_string(&j, arena, &n) != 0) {
            return -1;
        }

        m->name = (char *) arena;
        m->name_len = n;
        arena[n] = '\0';
        arena += n + 1;

        /* RFC 7515 4 allows refusing duplicates; taking either would be
         * a guess at what the issuer meant */
        for (i = 0; i < obj->nmembers; i++) {
            if (obj->members[i].name_len == n
                && memcmp(obj->members[i].name, m->name, n) == 0)
            {
                return -1;
            }
        }

        audex_jwt_json_ws(&j);

        if (j.p >= j.end || *j.p != ':') {
            return -1;
        }

        j.p++;
        audex_jwt_json_ws(&j);

        m->raw = j.p;
        m->str = NULL;
        m->str_len = 0;

        if (j.p < j.end && *j.p == '"') {
            m->type = AUDEX_JWT_JSON_STRING;

            if (audex_jwt_json_string(&j, arena, &n) != 0) {
                return -1;
            }

            m->str = (char *) arena;
            m->str_len = n;
            arena[n] = '\0';
            arena += n + 1;

        } else if (audex_jwt_json_value(&j, 1, &m->type) != 0) {
            return -1;
        }

        m->raw_len = j.p - m->raw;
        obj->nmembers++;

        audex_jwt_json_ws(&j);

        if (j.p >= j.end) {
            return -1;
        }

        if (*j.p == '}') {
            j.p++;
            break;
        }

        if (*j.p != ',') {
            return -1;
        }

        j.p++;
        audex_jwt_json_ws(&j);
    }

done:

    audex_jwt_json_ws(&j);

    return j.p == j.end ? 0 : -1;
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
    size_t               max, json_max, arena_len, size;
    ssize_t              n;
    unsigned char       *p;
    audex_jwt_claims_t  *obj;

    json_max = b64_len / 4 * 3 + 2;

    /* each member takes at least 4 bytes ("":0) plus a separator */
    max = json_max / 4 + 1;
    if (max > AUDEX_JWT_MAX_MEMBERS) {
        max = AUDEX_JWT_MAX_MEMBERS;
    }

    /* unescaped strings are no longer than their text, plus a NUL each */
    arena_len = json_max + 2 * max;

    size = sizeof(audex_jwt_claims_t) + max * sizeof(audex_jwt_member_t)
           + json_max + arena_len;

    p = malloc(size);
    if (p == NULL) {
        return AUDEX_JWT_ERR_NOMEM;
    }

    obj = (audex_jwt_claims_t *) p;
    obj->members = (audex_jwt_member_t *) (p + sizeof(audex_jwt_claims_t));
    obj->nmembers = 0;
    obj->json = (unsigned char *) (obj->members + max);

    n = audex_jwt_b64_decode(obj->json, (const unsigned char *) b64,
                             b64_len);
    if (n < 0) {
        free(p);
        return AUDEX_JWT_ERR_MALFORMED;
    }

    obj->json_len = n;

    if (audex_jwt_json_members(obj, max, obj->json + json_max) != 0) {
        free(p);
        return AUDEX_JWT_ERR_BAD_CLAIMS;
    }

    *out = obj;

    return AUDEX_JWT_OK;
}


static const audex_jwt_member_t *
audex_jwt_member(const audex_jwt_claims_t *obj, const char *name,
    size_t len)
{
    size_t  i;

    for (i = 0; i < obj->nmembers; i++) {
        if (obj->members[i].name_len == len
            && memcmp(obj->members[i].name, name, len) == 0)
        {
            return &obj->members[i];
        }
    }

    return NULL;
}


/*
 * A JSON number (already validated) as a whole number of seconds,
 * rounded down, or up when round_up is set.  Done by hand on the digits
 * rather than with strtod(), which follows LC_NUMERIC and rounds.
 */
static int
audex_jwt_number_to_int(const unsigned char *p, size_t len, int round_up,
    int64_t *out)
{
    int                   neg, frac, eneg;
    long                  e, shift, keep, i, ndigits;
    int64_t               v;
    unsigned char         digits[64];
    const unsigned char  *end;

    end = p + len;
    neg = 0;
    ndigits = 0;
    e = 0;
    shift = 0;

    if (p < end && *p == '-') {
        neg = 1;
        p++;
    }

    for ( ; p < end && *p >= '0' && *p <= '9'; p++) {
        if (ndigits == (long) sizeof(digits)) {
            return -1;
        }
        digits[ndigits++] = *p - '0';
    }

    if (p < end && *p == '.') {
        for (p++; p < end && *p >= '0' && *p <= '9'; p++) {
            if (ndigits == (long) sizeof(digits)) {
                return -1;
            }
            digits[ndigits++] = *p - '0';
            shift--;
        }
    }

    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        eneg = 0;

        if (*p == '+' || *p == '-') {
            eneg = (*p == '-');
            p++;
        }

        for ( ; p < end; p++) {
            e = e * 10 + (*p - '0');
            if (e > 1000) {
                return -1;
            }
        }

        shift += eneg ? -e : e;
    }

    /* the number is digits * 10^shift; its integer part has keep digits */
    keep = ndigits + shift;
    v = 0;
    frac = 0;

    for (i = 0; i < keep; i++) {
        if (v > (INT64_MAX - 9) / 10) {
            return -1;
        }
        v = v * 10 + (i < ndigits ? digits[i] : 0);
    }

    for (i = keep < 0 ? 0 : keep; i < ndigits; i++) {
        if (digits[i] != 0) {
            frac = 1;
        }
    }

    if (neg) {
        v = -v;
        if (frac && !round_up) {
            v--;
        }

    } else if (frac && round_up) {
        v++;
    }

    *out = v;

    return 0;
}


static int
audex_jwt_member_time(const audex_jwt_member_t *m, int round_up,
    int64_t *out)
{
    if (m->type != AUDEX_JWT_JSON_NUMBER) {
        return -1;
    }

    return audex_jwt_number_to_int(m->raw, m->raw_len, round_up, out);
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

/* a JSON string literal; NULL when s is not valid UTF-8 */
static unsigned char *
audex_jwt_put_string(unsigned char *d, const char *str)
{
    size_t                n;
    const unsigned char  *s, *end;

    static const char  hex[] = "0123456789abcdef";

    s = (const unsigned char *) str;
    end = s + strlen(str);

    *d++ = '"';

    while (s < end) {
        if (*s == '"' || *s == '\\') {
            *d++ = '\\';
            *d++ = *s++;
            continue;
        }

        if (*s < 0x20) {
            *d++ = '\\';
            *d++ = 'u';
            *d++ = '0';
            *d++ = '0';
            *d++ = hex[*s >> 4];
            *d++ = hex[*s & 0x0f];
            s++;
            continue;
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

    /* every byte of a string may become \u00XX */
    max = 6 * n + 256;

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

    p += sprintf((char *) p,
                 ",\"admin\":%s,\"iat\":%lld,\"exp\":%lld,\"jti\":\"%s\"}",
                 args->admin ? "true" : "false", (long long) args->now,
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
    const char                *name;
    audex_jwt_err_e            rc;
    audex_jwt_claims_t        *hdr;
    const audex_jwt_member_t  *m;

    rc = audex_jwt_object_decode(b64, len, &hdr);
    if (rc != AUDEX_JWT_OK) {
        return rc == AUDEX_JWT_ERR_BAD_CLAIMS ? AUDEX_JWT_ERR_BAD_HEADER : rc;
    }

    m = audex_jwt_member(hdr, "alg", 3);

    if (m == NULL || m->type != AUDEX_JWT_JSON_STRING) {
        rc = AUDEX_JWT_ERR_BAD_HEADER;
        goto done;
    }

    name = audex_jwt_alg_name(key->alg);

    if (m->str_len != strlen(name) || memcmp(m->str, name, m->str_len) != 0) {
        rc = AUDEX_JWT_ERR_ALG;
        goto done;
    }

    /* media type names are case-insensitive (RFC 7519 5.1) */
    m = audex_jwt_member(hdr, "typ", 3);

    if (m != NULL
        && (m->type != AUDEX_JWT_JSON_STRING
            || !((m->str_len == 3 && strncasecmp(m->str, "JWT", 3) == 0)
                 || (m->str_len == 15
                     && strncasecmp(m->str, "application/jwt", 15) == 0))))
    {
        rc = AUDEX_JWT_ERR_TYP;
        goto done;
    }

    /* we implement no header extension, so any "crit" must be refused
     * (RFC 7515 4.1.11) */
    if (audex_jwt_member(hdr, "crit", 4) != NULL) {
        rc = AUDEX_JWT_ERR_CRIT;
        goto done;
    }

done:

    free(hdr);

    return rc;
}


/* aud may be one string or an array of strings (RFC 7519 4.1.3) */
static int
audex_jwt_aud_match(const audex_jwt_member_t *m, const char *aud)
{
    int                     found;
    size_t                  n, len;
    unsigned char          *buf;
    audex_jwt_json_t        j;
    audex_jwt_json_type_e   type;

    len = strlen(aud);

    if (m->type == AUDEX_JWT_JSON_STRING) {
        return m->str_len == len && memcmp(m->str, aud, len) == 0;
    }

    if (m->type != AUDEX_JWT_JSON_ARRAY) {
        return 0;
    }

    buf = malloc(m->raw_len);
    if (buf == NULL) {
        return -1;
    }

    found = 0;
    j.p = m->raw + 1;
    j.end = m->raw + m->raw_len - 1;

    /* the array was validated when the claims were parsed */
    for ( ;; ) {
        audex_jwt_json_ws(&j);

        if (j.p >= j.end) {
            break;
        }

        if (*j.p == '"') {
            if (audex_jwt_json_string(&j, buf, &n) != 0) {
                break;
            }

            if (n == len && memcmp(buf, aud, len) == 0) {
                found = 1;
                break;
            }

        } else if (audex_jwt_json_value(&j, 1, &type) != 0) {
            break;
        }

        audex_jwt_json_ws(&j);

        if (j.p < j.end && *j.p == ',') {
            j.p++;
        }
    }

    free(buf);

    return found;
}


static audex_jwt_err_e
audex_jwt_check_claims(const audex_jwt_claims_t *c, int64_t now,
    int64_t leeway, const char *iss, const char *aud)
{
    int                        rc;
    int64_t                    t;
    const audex_jwt_member_t  *m;

    m = audex_jwt_member(c, "exp", 3);
    if (m == NULL) {
        return AUDEX_JWT_ERR_NO_EXP;
    }

    if (audex_jwt_member_time(m, 0, &t) != 0) {
        return AUDEX_JWT_ERR_BAD_CLAIMS;
    }

    /* RFC 7519 4.1.4: the current time must be before exp */
    if (now - leeway >= t) {
        return AUDEX_JWT_ERR_EXPIRED;
    }

    m = audex_jwt_member(c, "nbf", 3);

    if (m != NULL) {
        if (audex_jwt_member_time(m, 1, &t) != 0) {
            return AUDEX_JWT_ERR_BAD_CLAIMS;
        }

        if (t > now + leeway) {
            return AUDEX_JWT_ERR_NOT_YET_VALID;
        }
    }

    m = audex_jwt_member(c, "iat", 3);

    if (m != NULL) {
        if (audex_jwt_member_time(m, 1, &t) != 0) {
            return AUDEX_JWT_ERR_BAD_CLAIMS;
        }

        if (t > now + leeway) {
            return AUDEX_JWT_ERR_IAT_FUTURE;
        }
    }

    if (iss != NULL) {
        m = audex_jwt_member(c, "iss", 3);

        if (m == NULL || m->type != AUDEX_JWT_JSON_STRING
            || m->str_len != strlen(iss)
            || memcmp(m->str, iss, m->str_len) != 0)
        {
            return AUDEX_JWT_ERR_ISSUER;
        }
    }

    m = audex_jwt_member(c, "aud", 3);

    if (aud == NULL) {
        return m == NULL ? AUDEX_JWT_OK : AUDEX_JWT_ERR_AUDIENCE;
    }

    if (m == NULL) {
        return AUDEX_JWT_ERR_AUDIENCE;
    }

    rc = audex_jwt_aud_match(m, aud);

    if (rc < 0) {
        return AUDEX_JWT_ERR_NOMEM;
    }

    return rc ? AUDEX_JWT_OK : AUDEX_JWT_ERR_AUDIENCE;
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

    rc = audex_jwt_check_claims(c, now, leeway, iss, aud);

    if (rc != AUDEX_JWT_OK || claims == NULL) {
        free(c);
        return rc;
    }

    *claims = c;

    return AUDEX_JWT_OK;
}


/* claims */

void
audex_jwt_claims_free(audex_jwt_claims_t *claims)
{
    free(claims);
}


const char *
audex_jwt_claims_string(const audex_jwt_claims_t *claims, const char *name,
    size_t *len)
{
    const audex_jwt_member_t  *m;

    m = audex_jwt_member(claims, name, strlen(name));

    if (m == NULL || m->type != AUDEX_JWT_JSON_STRING) {
        return NULL;
    }

    if (len) {
        *len = m->str_len;
    }

    return m->str;
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
    const audex_jwt_member_t  *m;

    m = audex_jwt_member(claims, "admin", 5);

    return m != NULL && m->type == AUDEX_JWT_JSON_TRUE;
}


int
audex_jwt_claims_time(const audex_jwt_claims_t *claims, const char *name,
    int64_t *value)
{
    const audex_jwt_member_t  *m;

    m = audex_jwt_member(claims, name, strlen(name));

    if (m == NULL) {
        return -1;
    }

    return audex_jwt_member_time(m, 0, value);
}


ssize_t
audex_jwt_claim_get(const audex_jwt_claims_t *claims, const char *name,
    size_t name_len, char *buf, size_t size)
{
    size_t                     n;
    const void                *v;
    const audex_jwt_member_t  *m;

    m = audex_jwt_member(claims, name, name_len);

    if (m == NULL) {
        return -1;
    }

    if (m->type == AUDEX_JWT_JSON_STRING) {
        v = m->str;
        n = m->str_len;

    } else {
        v = m->raw;
        n = m->raw_len;
    }

    if (size > 0) {
        memcpy(buf, v, n < size ? n : size - 1);
        buf[n < size ? n : size - 1] = '\0';
    }

    return n;
}
