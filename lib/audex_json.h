/*
 * Minimal JSON output helpers shared by the module and the workers.
 */

#ifndef AUDEX_JSON_H
#define AUDEX_JSON_H

#include <stddef.h>


/* Bytes needed to write src as the inside of a JSON string. */
size_t audex_json_escape_len(const unsigned char *src, size_t n);

/*
 * Writes src escaped (without the surrounding quotes) and returns the
 * end of what was written; dst must hold audex_json_escape_len() bytes.
 * Control characters become \u00XX; bytes >= 0x80 are copied as they are
 * (the caller passes UTF-8).
 */
unsigned char *audex_json_escape(unsigned char *dst, const unsigned char *src,
    size_t n);

#endif /* AUDEX_JSON_H */
