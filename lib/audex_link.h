/*
 * Signed download links: /download?fid=<id>&exp=<unix time>&sig=<mac>
 * where mac = base64url(HMAC-SHA256(key, "<fid>\n<owner id>\n<exp>")).
 *
 * The owner is not in the link: the server reads it from the file's
 * metadata, so a link made for one user's file cannot be replayed for
 * another's.  Shared by the module (verify) and the notifier (make).
 */

#ifndef AUDEX_LINK_H
#define AUDEX_LINK_H

#include <stddef.h>
#include <stdint.h>


/* base64url of 32 bytes, without padding */
#define AUDEX_LINK_SIG_LEN  43

/* the secret file must hold at least this many bytes */
#define AUDEX_LINK_MIN_KEY  32


/* Writes AUDEX_LINK_SIG_LEN bytes and a NUL to sig; 0 or -1. */
int audex_link_sign(const unsigned char *key, size_t key_len,
    const char *fid, size_t fid_len, const char *owner, size_t owner_len,
    int64_t exp, char *sig);

/*
 * 0 when sig is the signature of (fid, owner, exp) and exp >= now;
 * -1 for a bad signature, -2 when it has expired.  The comparison takes
 * the same time whatever the signature.
 */
int audex_link_verify(const unsigned char *key, size_t key_len,
    const char *fid, size_t fid_len, const char *owner, size_t owner_len,
    int64_t exp, const char *sig, size_t sig_len, int64_t now);

#endif /* AUDEX_LINK_H */
