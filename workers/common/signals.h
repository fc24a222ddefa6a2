/*
 * audex workers: signals.
 *
 * SIGTERM and SIGINT only set audex_stop; the worker's loops look at it at
 * least once a second and wind down.  A second signal means "now": the
 * process exits at once.  SIGPIPE is ignored, write errors are handled.
 */

#ifndef _AUDEX_SIGNALS_H_INCLUDED_
#define _AUDEX_SIGNALS_H_INCLUDED_


#include <signal.h>


/* the signal that asked us to stop, or 0 */
extern volatile sig_atomic_t  audex_stop;


/* 0 or -1 with errno set */
int audex_signals_install(void);

/*
 * Blocks SIGTERM and SIGINT in this thread, the old mask into *old: the
 * threads started until audex_signals_restore(old) inherit the block and
 * leave the signals to the main thread.
 */
void audex_signals_block(sigset_t *old);
void audex_signals_restore(const sigset_t *old);


#endif /* _AUDEX_SIGNALS_H_INCLUDED_ */
