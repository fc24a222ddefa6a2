#include "audex_json.h"


size_t
audex_json_escape_len(const unsigned char *src, size_t n)
{
    size_t  len;

    for (len = 0; n; n--, src++) {
        if (*src == '"' || *src == '\\' || *src == '\n' || *src == '\r'
            || *src == '\t' || *src == '\b' || *src == '\f')
        {
            len += 2;

        } else if (*src < 0x20 || *src == 0x7f) {
            len += 6;

        } else {
            len++;
        }
    }

    return len;
}


unsigned char *
audex_json_escape(unsigned char *dst, const unsigned char *src, size_t n)
{
    static const char  hex[] = "0123456789abcdef";
    unsigned char      c;

    for ( /* void */ ; n; n--) {
        c = *src++;

        switch (c) {
        case '"':
        case '\\':
            *dst++ = '\\';
            *dst++ = c;
            break;
        case '\n':
            *dst++ = '\\';
            *dst++ = 'n';
            break;
        case '\r':
            *dst++ = '\\';
            *dst++ = 'r';
            break;
        case '\t':
            *dst++ = '\\';
            *dst++ = 't';
            break;
        case '\b':
            *dst++ = '\\';
            *dst++ = 'b';
            break;
        case '\f':
            *dst++ = '\\';
            *dst++ = 'f';
            break;
        default:
            if (c < 0x20 || c == 0x7f) {
                *dst++ = '\\';
                *dst++ = 'u';
                *dst++ = '0';
                *dst++ = '0';
                *dst++ = hex[c >> 4];
                *dst++ = hex[c & 0xf];

            } else {
                *dst++ = c;
            }
        }
    }

    return dst;
}
