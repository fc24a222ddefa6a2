/*
 * audex workers: secret files.
 *
 * A key or a password is given as the name of a file (a mounted secret),
 * never on the command line.  The file is read whole; a trailing newline
 * from echo or an editor is not part of the secret.
 */

#ifndef _AUDEX_SECRET_H_INCLUDED_
#define _AUDEX_SECRET_H_INCLUDED_


#include <stddef.h>
#include <sys/types.h>


/* the longest secret file read; like audex_link_secret in nginx */
#define AUDEX_SECRET_MAX  1024


/*
 * Reads path into buf (AUDEX_SECRET_MAX bytes) and its length into *len;
 * fewer than min bytes is an error.  0, or -1 with err filled and buf
 * wiped.
 */
int audex_secret_read(const char *path, u_char *buf, size_t *len,
    size_t min, char *err, size_t errlen);


#endif /* _AUDEX_SECRET_H_INCLUDED_ */
