/*
 * audex: argon2id password hashes through libargon2.
 *
 * The encoded string is checked against our own limits before libargon2
 * sees it: a hash comes from the database, and a damaged or planted one
 * asking for terabytes of memory must fail as a bad hash, not as an
 * allocation storm on a login thread.
 */

#include "audex_password.h"

#include <string.h>

#include <argon2.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>


static const char  *audex_password_errors[] = {
    "ok",
    "password mismatch",
    "invalid password or parameters",
    "unusable password hash",
    "password hashing failed"
};


void
audex_password_params_default(audex_password_params_t *params)
{
    params->t_cost = AUDEX_PASSWORD_T_COST;
    params->m_cost_kib = AUDEX_PASSWORD_M_COST_KIB;
    params->parallelism = AUDEX_PASSWORD_PARALLELISM;
}


const char *
audex_password_strerror(audex_password_rc_e rc)
{
    if ((unsigned) rc >= sizeof(audex_password_errors) / sizeof(char *)) {
        return "unknown error";
    }

    return audex_password_errors[rc];
}


static int
audex_password_params_ok(const audex_password_params_t *p)
{
    return p->t_cost >= 1 && p->t_cost <= AUDEX_PASSWORD_MAX_T_COST
           && p->parallelism >= 1 && p->parallelism <= AUDEX_PASSWORD_MAX_P
           && p->m_cost_kib >= 8 * p->parallelism
           && p->m_cost_kib <= AUDEX_PASSWORD_MAX_M_KIB;
}


/* "<name>=<decimal>" at *s, advancing *s past it */
static int
audex_password_param(const char **s, const char *name, uint32_t *value)
{
    size_t       n;
    uint64_t     v;
    const char  *p;

    n = strlen(name);
    p = *s;

    if (strncmp(p, name, n) != 0 || p[n] != '=') {
        return -1;
    }

    p += n + 1;
    v = 0;

    if (*p < '0' || *p > '9') {
        return -1;
    }

    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (*p++ - '0');
        if (v > UINT32_MAX) {
            return -1;
        }
    }

    *value = (uint32_t) v;
    *s = p;

    return 0;
}


static int
audex_password_decode_params(const char *encoded,
    audex_password_params_t *params)
{
    uint32_t     version;
    const char  *p;

    static const char  prefix[] = "$argon2id$";

    if (strncmp(encoded, prefix, sizeof(prefix) - 1) != 0) {
        return -1;
    }

    p = encoded + sizeof(prefix) - 1;

    if (audex_password_param(&p, "v", &version) != 0
        || version != ARGON2_VERSION_13 || *p++ != '$'
        || audex_password_param(&p, "m", &params->m_cost_kib) != 0
        || *p++ != ','
        || audex_password_param(&p, "t", &params->t_cost) != 0
        || *p++ != ','
        || audex_password_param(&p, "p", &params->parallelism) != 0
        || *p != '$')
    {
        return -1;
    }

    return audex_password_params_ok(params) ? 0 : -1;
}


audex_password_rc_e
audex_password_hash(const audex_password_params_t *params, const char *pw,
    size_t len, char *encoded, size_t size)
{
    int                      rc;
    audex_password_params_t  def;
    unsigned char            salt[AUDEX_PASSWORD_SALT_LEN];

    if (params == NULL) {
        audex_password_params_default(&def);
        params = &def;
    }

    if (pw == NULL || len == 0 || len > AUDEX_PASSWORD_MAX_LEN
        || !audex_password_params_ok(params))
    {
        return AUDEX_PASSWORD_INVALID;
    }

    if (size < argon2_encodedlen(params->t_cost, params->m_cost_kib,
                                 params->parallelism, sizeof(salt),
                                 AUDEX_PASSWORD_HASH_LEN, Argon2_id))
    {
        return AUDEX_PASSWORD_INVALID;
    }

    if (RAND_bytes(salt, sizeof(salt)) != 1) {
        ERR_clear_error();
        return AUDEX_PASSWORD_ERROR;
    }

    rc = argon2id_hash_encoded(params->t_cost, params->m_cost_kib,
                               params->parallelism, pw, len, salt,
                               sizeof(salt), AUDEX_PASSWORD_HASH_LEN,
                               encoded, size);

    OPENSSL_cleanse(salt, sizeof(salt));

    return rc == ARGON2_OK ? AUDEX_PASSWORD_OK : AUDEX_PASSWORD_ERROR;
}


audex_password_rc_e
audex_password_verify(const char *encoded, const char *pw, size_t len)
{
    int                      rc;
    audex_password_params_t  params;

    if (encoded == NULL
        || audex_password_decode_params(encoded, &params) != 0)
    {
        return AUDEX_PASSWORD_BAD_HASH;
    }

    if (pw == NULL || len > AUDEX_PASSWORD_MAX_LEN) {
        return AUDEX_PASSWORD_INVALID;
    }

    rc = argon2id_verify(encoded, pw, len);

    switch (rc) {
    case ARGON2_OK:
        return AUDEX_PASSWORD_OK;
    case ARGON2_VERIFY_MISMATCH:
        return AUDEX_PASSWORD_MISMATCH;
    case ARGON2_MEMORY_ALLOCATION_ERROR:
    case ARGON2_THREAD_FAIL:
        return AUDEX_PASSWORD_ERROR;
    default:
        return AUDEX_PASSWORD_BAD_HASH;
    }
}


void
audex_password_dummy_verify(const audex_password_params_t *params,
    const char *pw, size_t len)
{
    audex_password_params_t  def;
    unsigned char            out[AUDEX_PASSWORD_HASH_LEN];

    /* the salt needs no secrecy: the result is thrown away */
    static const char  salt[] = "audex-dummy-salt";

    if (params == NULL || !audex_password_params_ok(params)) {
        audex_password_params_default(&def);
        params = &def;
    }

    if (pw == NULL || len > AUDEX_PASSWORD_MAX_LEN) {
        pw = "";
        len = 0;
    }

    /* a real verify decodes, hashes with the same costs, then compares:
     * the hash is all of its cost */
    (void) argon2id_hash_raw(params->t_cost, params->m_cost_kib,
                             params->parallelism, pw, len, salt,
                             AUDEX_PASSWORD_SALT_LEN, out, sizeof(out));

    OPENSSL_cleanse(out, sizeof(out));
}
