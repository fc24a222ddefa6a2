/*
 * audex workers: signals, see signals.h.
 */

#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "signals.h"


volatile sig_atomic_t  audex_stop;


static void audex_signal_handler(int signo);


int
audex_signals_install(void)
{
    struct sigaction  sa;

    memset(&sa, 0, sizeof(struct sigaction));
    sigemptyset(&sa.sa_mask);

    /* no SA_RESTART: a blocking call should return and see the flag */
    sa.sa_handler = audex_signal_handler;

    if (sigaction(SIGTERM, &sa, NULL) == -1
        || sigaction(SIGINT, &sa, NULL) == -1)
    {
        return -1;
    }

    sa.sa_handler = SIG_IGN;

    return sigaction(SIGPIPE, &sa, NULL);
}


void
audex_signals_block(sigset_t *old)
{
    sigset_t  set;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, old);
}


void
audex_signals_restore(const sigset_t *old)
{
    pthread_sigmask(SIG_SETMASK, old, NULL);
}


static void
audex_signal_handler(int signo)
{
    if (audex_stop) {
        /* the second one: the user (or kubelet) has lost patience */
        _exit(128 + signo);
    }

    audex_stop = signo;
}
