#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "audex_link.h"


static int
audex_link_mac(const unsigned char *key, size_t key_len, const char *fid,
    size_t fid_len, const char *owner, size_t owner_len, int64_t exp,
    char *sig)
{
    static const char  b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    int            n;
    char           num[24];
    size_t         i, o;
    uint32_t       v;
    unsigned int   mac_len;
    unsigned char  mac[EVP_MAX_MD_SIZE], *p;
    unsigned char  msg[512];

    if (fid_len + owner_len + sizeof(num) + 2 > sizeof(msg)) {
        return -1;
    }

    p = msg;
    memcpy(p, fid, fid_len);
    p += fid_len;
    *p++ = '\n';
    memcpy(p, owner, owner_len);
    p += owner_len;
    *p++ = '\n';
    n = snprintf(num, sizeof(num), "%lld", (long long) exp);
    memcpy(p, num, n);
    p += n;

    if (HMAC(EVP_sha256(), key, (int) key_len, msg, p - msg, mac, &mac_len)
        == NULL || mac_len != 32)
    {
        return -1;
    }

    /* 32 bytes: ten 3-byte groups and a 2-byte tail, 43 characters */

    for (i = 0, o = 0; i + 3 <= 32; i += 3) {
        v = (uint32_t) mac[i] << 16 | (uint32_t) mac[i + 1] << 8 | mac[i + 2];
        sig[o++] = b64[v >> 18 & 63];
        sig[o++] = b64[v >> 12 & 63];
        sig[o++] = b64[v >> 6 & 63];
        sig[o++] = b64[v & 63];
    }

    v = (uint32_t) mac[30] << 16 | (uint32_t) mac[31] << 8;
    sig[o++] = b64[v >> 18 & 63];
    sig[o++] = b64[v >> 12 & 63];
    sig[o++] = b64[v >> 6 & 63];
    sig[o] = '\0';

    OPENSSL_cleanse(mac, sizeof(mac));

    return 0;
}


int
audex_link_sign(const unsigned char *key, size_t key_len, const char *fid,
    size_t fid_len, const char *owner, size_t owner_len, int64_t exp,
    char *sig)
{
    return audex_link_mac(key, key_len, fid, fid_len, owner, owner_len, exp,
                          sig);
}


int
audex_link_verify(const unsigned char *key, size_t key_len, const char *fid,
    size_t fid_len, const char *owner, size_t owner_len, int64_t exp,
    const char *sig, size_t sig_len, int64_t now)
{
    char  want[AUDEX_LINK_SIG_LEN + 1];

    if (audex_link_mac(key, key_len, fid, fid_len, owner, owner_len, exp,
                       want)
        != 0)
    {
        return -1;
    }

    if (sig_len != AUDEX_LINK_SIG_LEN
        || CRYPTO_memcmp(want, sig, AUDEX_LINK_SIG_LEN) != 0)
    {
        return -1;
    }

    return exp >= now ? 0 : -2;
}
