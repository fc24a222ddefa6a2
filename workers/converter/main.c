/*
 * audex-converter: command line.
 *
 *   audex-converter convert IN OUT [--bitrate N | --quality Q]
 *   audex-converter [run] [options]     the job loop, see job.c
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "convert.h"
#include "id3.h"
#include "log.h"
#include "main.h"
#include "signals.h"


/* exit codes of "convert", one per audex_convert_status_e */
static const int  audex_convert_exit[] = {
    0,      /* ok */
    3,      /* not_found */
    4,      /* no_audio */
    5,      /* unsupported_codec */
    6,      /* corrupt */
    7,      /* io */
    8,      /* internal */
    9       /* cancelled */
};

#define AUDEX_EXIT_USAGE  2


typedef struct {
    int             tty;
    double          last;
    int             drawn;
} audex_progress_bar_t;


static int audex_convert_main(int argc, char **argv);
static void audex_convert_usage(FILE *f);
static int audex_parse_int(const char *s, int min, int max, int *out);
static int audex_progress_draw(void *data, double done);
static double audex_now(void);


int
main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "convert") == 0) {
        return audex_convert_main(argc - 1, argv + 1);
    }

    if (argc >= 2 && strcmp(argv[1], "run") == 0) {
        return audex_job_main(argc - 1, argv + 1);
    }

    /* the container entry point runs the job loop without a command */
    return audex_job_main(argc, argv);
}


static int
audex_convert_main(int argc, char **argv)
{
    int                      i, rc, bitrate, quality, level, encoders;
    int                      parallel_min, segment;
    char                     title[1024];
    const char              *in, *out, *arg;
    audex_sink_t            *sink;
    audex_source_t          *src;
    audex_progress_bar_t     bar;
    audex_convert_opts_t     opts;
    audex_convert_error_t    err;
    audex_convert_result_t   res;

    in = NULL;
    out = NULL;
    bitrate = 0;
    quality = -1;
    title[0] = '\0';
    encoders = audex_convert_cores();
    parallel_min = AUDEX_CONVERT_DEFAULT_PARALLEL_MIN;
    segment = (int) AUDEX_CONVERT_DEFAULT_SEGMENT;

    for (i = 1; i < argc; i++) {
        arg = argv[i];

        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            audex_convert_usage(stdout);
            return 0;
        }

        if (strcmp(arg, "-v") == 0 || strcmp(arg, "--verbose") == 0) {
            audex_log_level = AUDEX_LOG_DEBUG;
            continue;
        }

        if (strcmp(arg, "--log-level") == 0 && i + 1 < argc) {
            level = audex_log_level_parse(argv[++i]);
            if (level < 0) {
                fprintf(stderr, "audex-converter: bad --log-level \"%s\"\n",
                        argv[i]);
                return AUDEX_EXIT_USAGE;
            }

            audex_log_level = level;
            continue;
        }

        if (strcmp(arg, "--bitrate") == 0 && i + 1 < argc) {
            if (audex_parse_int(argv[++i], 8, 320, &bitrate) != 0) {
                fprintf(stderr, "audex-converter: --bitrate wants kbit/s, "
                        "8 .. 320, not \"%s\"\n", argv[i]);
                return AUDEX_EXIT_USAGE;
            }

            continue;
        }

        if (strcmp(arg, "--quality") == 0 && i + 1 < argc) {
            if (audex_parse_int(argv[++i], 0, 9, &quality) != 0) {
                fprintf(stderr, "audex-converter: --quality wants 0 (best) "
                        ".. 9, not \"%s\"\n", argv[i]);
                return AUDEX_EXIT_USAGE;
            }

            continue;
        }

        if (strcmp(arg, "--encoders") == 0 && i + 1 < argc) {
            if (audex_parse_int(argv[++i], 1, 64, &encoders) != 0) {
                fprintf(stderr, "audex-converter: --encoders wants 1 .. 64, "
                        "not \"%s\"\n", argv[i]);
                return AUDEX_EXIT_USAGE;
            }

            continue;
        }

        if (strcmp(arg, "--parallel-min") == 0 && i + 1 < argc) {
            if (audex_parse_int(argv[++i], 0, 604800, &parallel_min) != 0) {
                fprintf(stderr, "audex-converter: --parallel-min wants "
                        "seconds, not \"%s\"\n", argv[i]);
                return AUDEX_EXIT_USAGE;
            }

            continue;
        }

        if (strcmp(arg, "--segment") == 0 && i + 1 < argc) {
            if (audex_parse_int(argv[++i], 1, 3600, &segment) != 0) {
                fprintf(stderr, "audex-converter: --segment wants seconds, "
                        "1 .. 3600, not \"%s\"\n", argv[i]);
                return AUDEX_EXIT_USAGE;
            }

            continue;
        }

        if (strcmp(arg, "--title") == 0 && i + 1 < argc) {
            snprintf(title, sizeof(title), "%s", argv[++i]);
            continue;
        }

        if (arg[0] == '-' && arg[1] != '\0') {
            fprintf(stderr, "audex-converter: unknown option \"%s\"\n", arg);
            audex_convert_usage(stderr);
            return AUDEX_EXIT_USAGE;
        }

        if (in == NULL) {
            in = arg;

        } else if (out == NULL) {
            out = arg;

        } else {
            audex_convert_usage(stderr);
            return AUDEX_EXIT_USAGE;
        }
    }

    if (in == NULL || out == NULL) {
        audex_convert_usage(stderr);
        return AUDEX_EXIT_USAGE;
    }

    if (bitrate > 0 && quality >= 0) {
        fprintf(stderr, "audex-converter: --bitrate and --quality exclude "
                "each other\n");
        return AUDEX_EXIT_USAGE;
    }

    if (title[0] == '\0') {
        audex_id3_title_from_path(title, sizeof(title), in);
    }

    audex_convert_init();

    if (audex_signals_install() != 0) {
        fprintf(stderr, "audex-converter: sigaction: %s\n", strerror(errno));
        return audex_convert_exit[AUDEX_CONVERT_INTERNAL];
    }

    src = audex_file_source_open(in);
    if (src == NULL) {
        rc = (audex_io_status_from_errno(errno) == AUDEX_IO_NOT_FOUND)
             ? AUDEX_CONVERT_NOT_FOUND : AUDEX_CONVERT_IO;
        fprintf(stderr, "audex-converter: %s: %s: %s [%s, %s]\n",
                rc == AUDEX_CONVERT_NOT_FOUND ? "file missing"
                                              : "cannot open input",
                in, strerror(errno), audex_convert_status_name(rc),
                audex_convert_status_permanent(rc) ? "permanent"
                                                   : "transient");
        return audex_convert_exit[rc];
    }

    sink = audex_file_sink_open(out);
    if (sink == NULL) {
        fprintf(stderr, "audex-converter: cannot create %s: %s [io, "
                "transient]\n", out, strerror(errno));
        src->close(src);
        return audex_convert_exit[AUDEX_CONVERT_IO];
    }

    memset(&bar, 0, sizeof(audex_progress_bar_t));
    bar.tty = isatty(STDERR_FILENO);

    memset(&opts, 0, sizeof(audex_convert_opts_t));
    opts.bitrate = bitrate;
    opts.quality = quality;
    opts.title = title;
    opts.name = in;
    opts.progress = audex_progress_draw;
    opts.progress_data = &bar;
    opts.encoders = encoders;
    opts.parallel_min = parallel_min;
    opts.segment = segment;

    rc = audex_convert(src, sink, &opts, &res, &err);

    if (bar.drawn) {
        fputs("\r\033[K", stderr);
    }

    sink->close(sink);
    src->close(src);

    if (rc != 0) {
        fprintf(stderr, "audex-converter: %s: %s [%s, %s]\n", in,
                err.message, audex_convert_status_name(err.status),
                audex_convert_status_permanent(err.status) ? "permanent"
                                                           : "transient");
        return audex_convert_exit[err.status];
    }

    if (res.bitrate > 0) {
        snprintf(title, sizeof(title), "CBR %d kbit/s", res.bitrate);

    } else if (res.quality >= 0) {
        snprintf(title, sizeof(title), "VBR quality %d", res.quality);

    } else {
        snprintf(title, sizeof(title), "VBR");
    }

    audex_log(AUDEX_LOG_INFO, NULL, "%s -> %s: %s %s, %d Hz, %d channel(s), "
              "%s, %.3f s, %llu -> %llu bytes", in, out, res.codec,
              res.copied ? "copied" : "encoded", res.sample_rate,
              res.channels, title, res.duration,
              (unsigned long long) res.bytes_in,
              (unsigned long long) res.bytes_out);

    return 0;
}


static void
audex_convert_usage(FILE *f)
{
    fprintf(f,
        "usage: audex-converter convert IN OUT [--bitrate N | --quality Q]\n"
        "                               [--title T] [-v] [--log-level L]\n"
        "                               [--encoders N] [--parallel-min S]\n"
        "                               [--segment S]\n"
        "\n"
        "Converts the best audio stream of IN (any container and codec\n"
        "FFmpeg reads) to an MP3 file OUT with an ID3v2 title (IN's name\n"
        "without extension, or --title) and a Xing/LAME frame.\n"
        "\n"
        "  --bitrate N   CBR at N kbit/s (8 .. 320; default %d)\n"
        "  --quality Q   VBR at LAME quality Q (0 best .. 9 smallest)\n"
        "  --encoders N  LAME encoders at once for a long input (default:\n"
        "                the cores, %d here; 1: one encoder)\n"
        "  --parallel-min S  an input of S seconds or more is long\n"
        "                (default %d)\n"
        "  --segment S   seconds per segment a long input is cut into\n"
        "                (default %d)\n"
        "\n"
        "MP3 audio is copied without re-encoding unless --bitrate or\n"
        "--quality is given.  Rates are kept when MP3 has them (8 .. 48\n"
        "kHz); higher rates become 44.1 kHz (multiples of 11025) or 48 kHz;\n"
        "more than two channels are downmixed to stereo.\n"
        "\n"
        "exit status: 0 done, 2 usage, 3 file missing, 4 no audio stream,\n"
        "5 unsupported codec, 6 corrupt or truncated input, 7 I/O error,\n"
        "8 internal error, 9 interrupted.  3 .. 6 are permanent.\n",
        AUDEX_CONVERT_DEFAULT_BITRATE, audex_convert_cores(),
        AUDEX_CONVERT_DEFAULT_PARALLEL_MIN,
        (int) AUDEX_CONVERT_DEFAULT_SEGMENT);
}


static int
audex_parse_int(const char *s, int min, int max, int *out)
{
    long   v;
    char  *end;

    errno = 0;
    v = strtol(s, &end, 10);

    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
        return -1;
    }

    *out = (int) v;

    return 0;
}


static int
audex_progress_draw(void *data, double done)
{
    int                    i, n;
    char                   line[64];
    double                 now;
    audex_progress_bar_t  *bar = data;

    if (audex_stop) {
        return 1;
    }

    if (!bar->tty) {
        return 0;
    }

    /* ten redraws a second are plenty, and cheap on a slow terminal */
    now = audex_now();
    if (now - bar->last < 0.1 && done < 1.0) {
        return 0;
    }

    bar->last = now;
    bar->drawn = 1;

    n = (int) (done * 40);

    for (i = 0; i < 40; i++) {
        line[i] = (i < n) ? '#' : '.';
    }

    line[40] = '\0';

    fprintf(stderr, "\r[%s] %3d%%", line, (int) (done * 100));

    return 0;
}


static double
audex_now(void)
{
    struct timeval  tv;

    gettimeofday(&tv, NULL);

    return tv.tv_sec + tv.tv_usec / 1e6;
}
