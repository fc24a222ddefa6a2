/*
 * audex: JSON Web Tokens (RFC 7519), compact JWS form only.
 *
 * The algorithm is a property of the key, set when the key is loaded:
 * a token whose header names any other algorithm ("none", HS256 against
 * an RS256 key, ...) is refused before its signature is looked at.
 * Signing and verification are done here with OpenSSL, and the JSON is
 * parsed by jansson, strictly (no duplicate names, no "\u0000"); libjwt
 * is not used, because it takes the algorithm from the token and checks
 * neither "exp" nor "nbf".
 *
 * Memory: everything this API returns belongs to the caller.
 *   audex_jwt_key_t      audex_jwt_key_free()
 *   audex_jwt_claims_t   audex_jwt_claims_free()
 *   token from sign      free()
 * Pointers returned by the claim accessors live inside the claims object
 * and are valid until it is freed.
 *
 * Threads: a loaded key is never modified and may be used by several
 * threads at once; a claims object belongs to one thread at a time.
 * There is no global state.
 */

#ifndef _AUDEX_JWT_H_INCLUDED_
#define _AUDEX_JWT_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>


/* tokens longer than this are refused unread; it bounds every buffer */
#define AUDEX_JWT_MAX_TOKEN       8192

/* HS256 secrets shorter than the hash output are refused */
#define AUDEX_JWT_MIN_SECRET      32

/* more members than this in a header or a claim set: malformed */
#define AUDEX_JWT_MAX_MEMBERS     128

/* our claim: the moment of "iat" in milliseconds since the epoch (an
 * integer: audex_jwt_claims_time() reads it as it is) */
#define AUDEX_JWT_IAT_MS  "audex_iat_ms"

/* "jti": 128 random bits as 32 hex digits */
#define AUDEX_JWT_JTI_LEN         32


typedef enum {
    AUDEX_JWT_ALG_UNSET = 0,
    AUDEX_JWT_HS256,
    AUDEX_JWT_RS256,
    AUDEX_JWT_ES256
} audex_jwt_alg_e;


typedef enum {
    AUDEX_JWT_OK = 0,
    AUDEX_JWT_ERR_MALFORMED,        /* not three base64url parts */
    AUDEX_JWT_ERR_TOO_LONG,
    AUDEX_JWT_ERR_BAD_HEADER,
    AUDEX_JWT_ERR_ALG,              /* alg is not the pinned one */
    AUDEX_JWT_ERR_TYP,
    AUDEX_JWT_ERR_CRIT,
    AUDEX_JWT_ERR_SIGNATURE,
    AUDEX_JWT_ERR_BAD_CLAIMS,
    AUDEX_JWT_ERR_NO_EXP,
    AUDEX_JWT_ERR_EXPIRED,
    AUDEX_JWT_ERR_NOT_YET_VALID,    /* nbf in the future */
    AUDEX_JWT_ERR_IAT_FUTURE,
    AUDEX_JWT_ERR_ISSUER,
    AUDEX_JWT_ERR_AUDIENCE,
    AUDEX_JWT_ERR_CONTROL,          /* a control character in the claims */
    AUDEX_JWT_ERR_CANNOT_SIGN,      /* a public key, or bad sign args */
    AUDEX_JWT_ERR_NOMEM,
    AUDEX_JWT_ERR_CRYPTO,           /* OpenSSL failed */
    AUDEX_JWT_ERR_LAST
} audex_jwt_err_e;


typedef struct audex_jwt_key_s     audex_jwt_key_t;
typedef struct audex_jwt_claims_s  audex_jwt_claims_t;


typedef struct {
    const char  *sub;        /* required: the user id */
    const char  *email;      /* required: also written as "username" */
    int          admin;
    int64_t      now;        /* becomes "iat" */
    int          now_ms;     /* 0..999: with now, AUDEX_JWT_IAT_MS */
    int64_t      lifetime;   /* seconds, > 0: "exp" = now + lifetime */
    const char  *iss;        /* NULL: no "iss" claim */
    const char  *aud;        /* NULL: no "aud" claim */
} audex_jwt_sign_args_t;


/* "HS256", "RS256", "ES256" (case-sensitive, as in a JWS header) */
audex_jwt_alg_e audex_jwt_alg_parse(const char *name, size_t len);
const char *audex_jwt_alg_name(audex_jwt_alg_e alg);

/* a short human message, never NULL */
const char *audex_jwt_strerror(audex_jwt_err_e err);


/*
 * Load a key.  HS256: the file holds the shared secret; trailing CR and
 * LF bytes are dropped so that a secret written by echo or an editor
 * works, and at least AUDEX_JWT_MIN_SECRET bytes must remain.  RS256,
 * ES256: an unencrypted PEM private key (can sign and verify) or public
 * key (verify only); RSA keys need 2048 bits, EC keys the P-256 curve.
 * On failure NULL is returned and a message is written to err.
 */
audex_jwt_key_t *audex_jwt_key_load(audex_jwt_alg_e alg, const char *path,
    char *err, size_t errlen);
/* the same from memory; the bytes are copied and used verbatim */
audex_jwt_key_t *audex_jwt_key_from_mem(audex_jwt_alg_e alg,
    const void *data, size_t len, char *err, size_t errlen);
void audex_jwt_key_free(audex_jwt_key_t *key);
audex_jwt_alg_e audex_jwt_key_alg(const audex_jwt_key_t *key);
int audex_jwt_key_can_sign(const audex_jwt_key_t *key);


/*
 * Sign the audex claim set: sub, email, username, admin, iat, exp, jti
 * and the optional iss and aud.  On success *token is a NUL-terminated
 * string allocated with malloc() and *len its length (len may be NULL).
 * Strings that are not UTF-8 or hold a control character are
 * AUDEX_JWT_ERR_CANNOT_SIGN: verification would refuse the token.
 */
audex_jwt_err_e audex_jwt_sign(const audex_jwt_key_t *key,
    const audex_jwt_sign_args_t *args, char **token, size_t *len);


/*
 * Verify a compact token at time "now" (seconds since the epoch), with
 * "leeway" seconds of tolerance for exp, nbf and iat.  "exp" is required.
 * iss: when not NULL the "iss" claim must equal it.  aud: when not NULL
 * the "aud" claim (a string or an array of strings) must contain it;
 * when NULL a token that carries "aud" is refused, as RFC 7519 4.1.3
 * asks.  A control character (below 0x20, or 0x7f) in any string or
 * member name of the claims, at any depth, is AUDEX_JWT_ERR_CONTROL:
 * claims reach nginx variables and, from there, request headers.  On
 * AUDEX_JWT_OK and claims != NULL, *claims is set.
 */
audex_jwt_err_e audex_jwt_verify(const audex_jwt_key_t *key,
    const char *token, size_t len, int64_t now, int64_t leeway,
    const char *iss, const char *aud, audex_jwt_claims_t **claims);


void audex_jwt_claims_free(audex_jwt_claims_t *claims);

/*
 * A claim that is a JSON string, unescaped and NUL-terminated (a token
 * with "\u0000" or another control character in any string is refused,
 * so no NUL hides inside and no CR LF comes out); *len,
 * when len is not NULL, gets its length.  NULL when the claim is absent
 * or not a string.
 */
const char *audex_jwt_claims_string(const audex_jwt_claims_t *claims,
    const char *name, size_t *len);
const char *audex_jwt_claims_sub(const audex_jwt_claims_t *claims);
const char *audex_jwt_claims_email(const audex_jwt_claims_t *claims);
/* 1 only when "admin" is the JSON literal true */
int audex_jwt_claims_admin(const audex_jwt_claims_t *claims);
/* a NumericDate claim, rounded down; 0 on success, -1 when absent/invalid */
int audex_jwt_claims_time(const audex_jwt_claims_t *claims,
    const char *name, int64_t *value);
/* the same in milliseconds (a fraction of a second kept, then rounded
 * down), for comparing with times of that precision */
int audex_jwt_claims_time_ms(const audex_jwt_claims_t *claims,
    const char *name, int64_t *ms);

/*
 * Any top-level claim rendered as text, for $audex_jwt_claim_<name>:
 * strings unescaped, true/false/null as words, numbers, objects and
 * arrays as compact JSON written anew by jansson (1.5e3 becomes 1500.0,
 * reals keep 15 significant digits).  Returns the full length of the
 * rendering (which may exceed size: call with size 0 to learn it), or
 * -1 when the claim is absent.  When size > 0 at most size - 1 bytes
 * are copied and a NUL is appended.
 */
ssize_t audex_jwt_claim_get(const audex_jwt_claims_t *claims,
    const char *name, size_t name_len, char *buf, size_t size);


#endif /* _AUDEX_JWT_H_INCLUDED_ */
