/*
 * SHA-256 whose state can be saved between blocks and loaded again
 * elsewhere: the digest of a resumable upload is carried in its tus
 * state from one PATCH to the next, on any nginx, so the whole file is
 * hashed once, as it arrives, and never read back.  OpenSSL's EVP
 * interface keeps its state opaque; its SHA256_CTX does not, and it
 * hashes with the CPU's SHA instructions (about 1.4 GB/s here, five
 * times a portable C loop), so this wraps that.
 */

#ifndef AUDEX_SHA256_H
#define AUDEX_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/sha.h>


#define AUDEX_SHA256_LEN        32
#define AUDEX_SHA256_BLOCK      64

/* a saved state: the eight words, big-endian, then the byte count */
#define AUDEX_SHA256_STATE_LEN  40


typedef struct {
    SHA256_CTX  ctx;
} audex_sha256_t;


void audex_sha256_init(audex_sha256_t *s);
void audex_sha256_update(audex_sha256_t *s, const void *data, size_t len);
void audex_sha256_final(audex_sha256_t *s, uint8_t out[AUDEX_SHA256_LEN]);

/* the bytes taken so far */
uint64_t audex_sha256_count(const audex_sha256_t *s);

/*
 * save: only between blocks (a count that is a multiple of 64), else
 * -1.  load: -1 when the bytes cannot be a saved state (a count that is
 * not).
 */
int audex_sha256_save(const audex_sha256_t *s,
    uint8_t out[AUDEX_SHA256_STATE_LEN]);
int audex_sha256_load(audex_sha256_t *s,
    const uint8_t in[AUDEX_SHA256_STATE_LEN]);


#endif /* AUDEX_SHA256_H */
