/*
 * UTF-8 validation (RFC 3629: no overlong forms, no surrogates, nothing
 * above U+10FFFF), shared by every parser of client bytes; and the ASCII
 * rendering of a name, for the places that can only carry ASCII.
 */

#ifndef AUDEX_UTF8_H
#define AUDEX_UTF8_H

#include <stddef.h>


/* Length of the valid sequence at p (1 to 4), or 0 when it is not one. */
size_t audex_utf8_len(const unsigned char *p, const unsigned char *end);

/* 1 when the n bytes at p are all valid UTF-8, else 0. */
int audex_utf8_valid(const unsigned char *p, size_t n);

/*
 * Writes to dst an ASCII rendering of the UTF-8 name at src (n bytes),
 * printable and without '"' or '\\', so that it fits a quoted-string:
 * Latin letters lose their accents (e acute -> e, sharp s -> ss, AE
 * ligature -> AE), typographic quotes, dashes and the ellipsis become
 * their ASCII forms, and any other character (or invalid byte, control
 * character, '"', '\\') becomes one '_'.  dst needs room for n bytes: no
 * rendering is longer than its UTF-8.  Returns the length written;
 * *exact is 1 when the name was printable ASCII already and is unchanged.
 */
size_t audex_utf8_to_ascii(unsigned char *dst, const unsigned char *src,
    size_t n, int *exact);

#endif /* AUDEX_UTF8_H */
