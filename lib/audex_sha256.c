/*
 * SHA-256 with a state saved and loaded between blocks; see
 * audex_sha256.h.  OpenSSL 3 marks SHA256_Init/Update/Final deprecated
 * in favour of EVP, which cannot hand its state out: they are used here
 * on purpose, and only here.  The state is SHA256_CTX's public fields:
 * h (the eight words), Nl and Nh (the bit count, low and high 32 bits),
 * num (bytes of a partial block held in data).  t/unit/test_sha256.c
 * checks every use of them against EVP's digests.
 */

#define OPENSSL_SUPPRESS_DEPRECATED 1

#include <string.h>

#include "audex_sha256.h"


static uint32_t
audex_sha256_be32(const uint8_t *p)
{
    return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16)
           | ((uint32_t) p[2] << 8) | (uint32_t) p[3];
}


static void
audex_sha256_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t) (v >> 24);
    p[1] = (uint8_t) (v >> 16);
    p[2] = (uint8_t) (v >> 8);
    p[3] = (uint8_t) v;
}


void
audex_sha256_init(audex_sha256_t *s)
{
    (void) SHA256_Init(&s->ctx);
}


void
audex_sha256_update(audex_sha256_t *s, const void *data, size_t len)
{
    (void) SHA256_Update(&s->ctx, data, len);
}


void
audex_sha256_final(audex_sha256_t *s, uint8_t out[AUDEX_SHA256_LEN])
{
    (void) SHA256_Final(out, &s->ctx);
}


uint64_t
audex_sha256_count(const audex_sha256_t *s)
{
    return (((uint64_t) s->ctx.Nh << 32) | s->ctx.Nl) / 8;
}


int
audex_sha256_save(const audex_sha256_t *s,
    uint8_t out[AUDEX_SHA256_STATE_LEN])
{
    int       i;
    uint64_t  count;

    if (s->ctx.num != 0) {
        return -1;
    }

    for (i = 0; i < 8; i++) {
        audex_sha256_put32(out + 4 * i, s->ctx.h[i]);
    }

    count = audex_sha256_count(s);

    audex_sha256_put32(out + 32, (uint32_t) (count >> 32));
    audex_sha256_put32(out + 36, (uint32_t) count);

    return 0;
}


int
audex_sha256_load(audex_sha256_t *s,
    const uint8_t in[AUDEX_SHA256_STATE_LEN])
{
    int       i;
    uint64_t  count, bits;

    count = ((uint64_t) audex_sha256_be32(in + 32) << 32)
            | audex_sha256_be32(in + 36);

    if (count % AUDEX_SHA256_BLOCK != 0 || count > UINT64_MAX / 8) {
        return -1;
    }

    /* a fresh context (md_len, an empty block), then the saved words */
    (void) SHA256_Init(&s->ctx);

    for (i = 0; i < 8; i++) {
        s->ctx.h[i] = audex_sha256_be32(in + 4 * i);
    }

    bits = count * 8;
    s->ctx.Nl = (SHA_LONG) bits;
    s->ctx.Nh = (SHA_LONG) (bits >> 32);
    s->ctx.num = 0;

    return 0;
}
