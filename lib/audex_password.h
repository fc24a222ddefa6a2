/*
 * audex: password hashing with argon2id (RFC 9106).
 *
 * A hash is stored as the PHC string argon2 itself writes, e.g.
 *   $argon2id$v=19$m=65536,t=3,p=1$<salt>$<hash>
 * so the cost parameters travel with every hash, and raising the
 * defaults later leaves older hashes verifiable.
 *
 * Memory: the caller owns every buffer; nothing is allocated for it.
 * The password is never copied, so wiping it is the caller's job.
 *
 * Threads: no global state.  Each call allocates m_cost_kib KiB of
 * memory (64 MiB by default) for its duration, which bounds how many may
 * usefully run at once.
 */

#ifndef _AUDEX_PASSWORD_H_INCLUDED_
#define _AUDEX_PASSWORD_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define AUDEX_PASSWORD_T_COST        3
#define AUDEX_PASSWORD_M_COST_KIB    65536
#define AUDEX_PASSWORD_PARALLELISM   1

#define AUDEX_PASSWORD_SALT_LEN      16
#define AUDEX_PASSWORD_HASH_LEN      32

/* refused when hashing, and on verify, since argon2's cost is paid per
 * byte of password and such a password was never stored */
#define AUDEX_PASSWORD_MAX_LEN       1024

/* limits on the parameters of a hash, made here or read from storage */
#define AUDEX_PASSWORD_MAX_T_COST    64
#define AUDEX_PASSWORD_MAX_M_KIB     (1024 * 1024)
#define AUDEX_PASSWORD_MAX_P         16

/* room for an encoded hash with any parameters within the limits */
#define AUDEX_PASSWORD_ENCODED_MAX   128


typedef struct {
    uint32_t  t_cost;         /* passes */
    uint32_t  m_cost_kib;     /* memory, KiB */
    uint32_t  parallelism;    /* lanes (and threads) */
} audex_password_params_t;


typedef enum {
    AUDEX_PASSWORD_OK = 0,
    AUDEX_PASSWORD_MISMATCH,
    AUDEX_PASSWORD_INVALID,    /* empty or too long, or bad parameters */
    AUDEX_PASSWORD_BAD_HASH,   /* not an argon2id string within limits */
    AUDEX_PASSWORD_ERROR       /* out of memory, no randomness */
} audex_password_rc_e;


void audex_password_params_default(audex_password_params_t *params);

const char *audex_password_strerror(audex_password_rc_e rc);

/*
 * Hash pw with a fresh 16-byte random salt; params NULL means the
 * defaults.  The NUL-terminated PHC string goes to encoded, which
 * should have AUDEX_PASSWORD_ENCODED_MAX bytes.
 */
audex_password_rc_e audex_password_hash(const audex_password_params_t *params,
    const char *pw, size_t len, char *encoded, size_t size);

/* AUDEX_PASSWORD_OK when pw matches the encoded hash */
audex_password_rc_e audex_password_verify(const char *encoded,
    const char *pw, size_t len);

/*
 * Do the work of one verification against a hash made with params
 * (NULL: the defaults) and throw the result away, so that a login for
 * an unknown account costs what a wrong password costs.
 */
void audex_password_dummy_verify(const audex_password_params_t *params,
    const char *pw, size_t len);


#endif /* _AUDEX_PASSWORD_H_INCLUDED_ */
