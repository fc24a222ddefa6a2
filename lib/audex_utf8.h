/*
 * UTF-8 validation (RFC 3629: no overlong forms, no surrogates, nothing
 * above U+10FFFF), shared by every parser of client bytes.
 */

#ifndef AUDEX_UTF8_H
#define AUDEX_UTF8_H

#include <stddef.h>


/* Length of the valid sequence at p (1 to 4), or 0 when it is not one. */
size_t audex_utf8_len(const unsigned char *p, const unsigned char *end);

/* 1 when the n bytes at p are all valid UTF-8, else 0. */
int audex_utf8_valid(const unsigned char *p, size_t n);

#endif /* AUDEX_UTF8_H */
