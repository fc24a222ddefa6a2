/*
 * libFuzzer target for audex_jwt_verify() with a fixed HS256 key.
 *
 * Each input is tried three ways:
 *   1. as a token, verbatim;
 *   2. as the claims JSON of a token we sign, so the claim parser and
 *      the checks behind the signature see fuzzed bytes;
 *   3. as the header JSON of a token we sign over fixed claims.
 * Without 2 and 3 the fuzzer would almost never get past the HMAC.
 */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "audex_jwt.h"


#define FUZZ_SECRET  "audex-fuzz-secret-0123456789abcdef"
#define FUZZ_HEADER  "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
#define FUZZ_CLAIMS  "{\"sub\":\"u\",\"exp\":2000000000,\"aud\":[\"web\"]}"
#define FUZZ_NOW     1700000000


static audex_jwt_key_t  *fuzz_key;


static size_t
fuzz_b64(char *dst, const uint8_t *src, size_t len)
{
    size_t  i, n;

    static const char  chars[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    n = 0;

    for (i = 0; i + 2 < len; i += 3) {
        dst[n++] = chars[src[i] >> 2];
        dst[n++] = chars[((src[i] & 3) << 4) | (src[i + 1] >> 4)];
        dst[n++] = chars[((src[i + 1] & 15) << 2) | (src[i + 2] >> 6)];
        dst[n++] = chars[src[i + 2] & 63];
    }

    if (len - i == 1) {
        dst[n++] = chars[src[i] >> 2];
        dst[n++] = chars[(src[i] & 3) << 4];

    } else if (len - i == 2) {
        dst[n++] = chars[src[i] >> 2];
        dst[n++] = chars[((src[i] & 3) << 4) | (src[i + 1] >> 4)];
        dst[n++] = chars[(src[i + 1] & 15) << 2];
    }

    return n;
}


static void
fuzz_claims(const audex_jwt_claims_t *c, const uint8_t *data, size_t size)
{
    size_t        i, len;
    int64_t       t;
    char          buf[64];

    static const char  *names[] = {
        "sub", "email", "username", "admin", "exp", "nbf", "iat", "aud",
        "iss", "jti", "x"
    };

    (void) audex_jwt_claims_sub(c);
    (void) audex_jwt_claims_email(c);
    (void) audex_jwt_claims_admin(c);

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        len = strlen(names[i]);
        (void) audex_jwt_claim_get(c, names[i], len, buf, sizeof(buf));
        (void) audex_jwt_claim_get(c, names[i], len, buf, 1);
        (void) audex_jwt_claims_time(c, names[i], &t);
        (void) audex_jwt_claims_string(c, names[i], &len);
    }

    /* a name taken from the input itself */
    (void) audex_jwt_claim_get(c, (const char *) data, size < 8 ? size : 8,
                               buf, sizeof(buf));
}


static void
fuzz_signed(const uint8_t *hdr, size_t hdr_len, const uint8_t *claims,
    size_t claims_len, const uint8_t *data, size_t size)
{
    char                 *tok;
    size_t                n;
    unsigned int          mac_len;
    unsigned char         mac[EVP_MAX_MD_SIZE];
    audex_jwt_claims_t   *c;

    tok = malloc((hdr_len + claims_len) / 3 * 4 + 64);
    if (tok == NULL) {
        return;
    }

    n = fuzz_b64(tok, hdr, hdr_len);
    tok[n++] = '.';
    n += fuzz_b64(tok + n, claims, claims_len);

    HMAC(EVP_sha256(), FUZZ_SECRET, sizeof(FUZZ_SECRET) - 1,
         (unsigned char *) tok, n, mac, &mac_len);

    tok[n++] = '.';
    n += fuzz_b64(tok + n, mac, mac_len);

    if (audex_jwt_verify(fuzz_key, tok, n, FUZZ_NOW, 60, NULL, "web", &c)
        == AUDEX_JWT_OK)
    {
        fuzz_claims(c, data, size);
        audex_jwt_claims_free(c);
    }

    (void) audex_jwt_verify(fuzz_key, tok, n, FUZZ_NOW, 0, "iss", NULL, NULL);

    free(tok);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    audex_jwt_claims_t  *c;

    if (fuzz_key == NULL) {
        fuzz_key = audex_jwt_key_from_mem(AUDEX_JWT_HS256, FUZZ_SECRET,
                                          sizeof(FUZZ_SECRET) - 1, NULL, 0);
        if (fuzz_key == NULL) {
            abort();
        }
    }

    if (audex_jwt_verify(fuzz_key, (const char *) data, size, FUZZ_NOW, 60,
                         NULL, NULL, &c) == AUDEX_JWT_OK)
    {
        fuzz_claims(c, data, size);
        audex_jwt_claims_free(c);
    }

    /* both must fit the token size cap once encoded */
    if (size <= 6000) {
        fuzz_signed((const uint8_t *) FUZZ_HEADER, sizeof(FUZZ_HEADER) - 1,
                    data, size, data, size);
        fuzz_signed(data, size, (const uint8_t *) FUZZ_CLAIMS,
                    sizeof(FUZZ_CLAIMS) - 1, data, size);
    }

    return 0;
}
