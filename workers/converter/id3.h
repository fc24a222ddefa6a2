/*
 * audex-converter: the ID3v2 tag in front of every MP3.
 */

#ifndef _AUDEX_ID3_H_INCLUDED_
#define _AUDEX_ID3_H_INCLUDED_


#include <stddef.h>
#include <sys/types.h>


/* titles longer than this many characters are cut */
#define AUDEX_ID3_TITLE_MAX  512

/* enough for a tag with the longest title and a short encoder name */
#define AUDEX_ID3_TAG_MAX    (10 + 2 * (10 + 3 + 4 * AUDEX_ID3_TITLE_MAX) + 64)


/*
 * Builds an ID3v2.3 tag with a TIT2 (title) and a TSSE (encoder) frame
 * into buf; either may be NULL or empty and is then left out.  Text in
 * ISO-8859-1 range is stored as such, anything else as UTF-16 with a BOM,
 * which every ID3v2.3 reader understands.  Bad UTF-8 becomes U+FFFD.
 * Returns the tag length, 0 when there is nothing to write or buf is too
 * small.
 */
size_t audex_id3_build(u_char *buf, size_t len, const char *title,
    const char *encoder);

/* "dir/My Song.final.mkv" -> "My Song.final", into buf */
void audex_id3_title_from_path(char *buf, size_t len, const char *path);


#endif /* _AUDEX_ID3_H_INCLUDED_ */
