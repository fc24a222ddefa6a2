#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "audex_sniff.h"


/*
 * The bytes below were cut from small files made with the ffmpeg 5.1 CLI
 * (lavfi testsrc + sine, a few hundred ms), e.g.
 *   ffmpeg -f lavfi -i testsrc=size=32x32:rate=5:duration=0.4
 *          -f lavfi -i sine=duration=0.3 -c:v mpeg4 -c:a aac a.mp4
 * Formats recognised by later frames keep those frames' real headers at
 * their real offsets; the bytes in between are pseudo-random filler.
 */

typedef struct {
    size_t         off;
    const u_char  *bytes;
    size_t         len;
} piece_t;


typedef struct {
    const char          *what;
    audex_sniff_type_t   type;
    size_t               decided;     /* bytes needed without eof */
    piece_t              pieces[3];
} sample_t;


#define B(...)  (const u_char[]) { __VA_ARGS__ }, \
                sizeof((const u_char[]) { __VA_ARGS__ })


static const sample_t  samples[] = {

    { "mp4 (ftyp isom)", AUDEX_SNIFF_MP4, 64, {
      { 0, B(0x00, 0x00, 0x00, 0x1c, 0x66, 0x74, 0x79, 0x70, 0x69, 0x73,
             0x6f, 0x6d, 0x00, 0x00, 0x02, 0x00, 0x69, 0x73, 0x6f, 0x6d,
             0x69, 0x73, 0x6f, 0x32, 0x6d, 0x70, 0x34, 0x31, 0x00, 0x00,
             0x00, 0x08, 0x66, 0x72, 0x65, 0x65) } } },

    { "m4a (ftyp M4A)", AUDEX_SNIFF_MP4, 64, {
      { 0, B(0x00, 0x00, 0x00, 0x1c, 0x66, 0x74, 0x79, 0x70, 0x4d, 0x34,
             0x41, 0x20, 0x00, 0x00, 0x02, 0x00) } } },

    { "mov (ftyp qt)", AUDEX_SNIFF_MOV, 64, {
      { 0, B(0x00, 0x00, 0x00, 0x14, 0x66, 0x74, 0x79, 0x70, 0x71, 0x74,
             0x20, 0x20, 0x00, 0x00, 0x02, 0x00, 0x71, 0x74, 0x20, 0x20,
             0x00, 0x00, 0x00, 0x08, 0x77, 0x69, 0x64, 0x65) } } },

    /* the same file with its ftyp box cut off, as old QuickTime wrote */
    { "mov (wide first)", AUDEX_SNIFF_MOV, 64, {
      { 0, B(0x00, 0x00, 0x00, 0x08, 0x77, 0x69, 0x64, 0x65, 0x00, 0x00,
             0x10, 0xae, 0x6d, 0x64, 0x61, 0x74) } } },

    { "mov (mdat first)", AUDEX_SNIFF_MOV, 64, {
      { 0, B(0x00, 0x00, 0x10, 0xae, 0x6d, 0x64, 0x61, 0x74, 0xde, 0x02,
             0x00, 0x4c) } } },

    { "3gp (ftyp 3gp4)", AUDEX_SNIFF_3GP, 64, {
      { 0, B(0x00, 0x00, 0x00, 0x1c, 0x66, 0x74, 0x79, 0x70, 0x33, 0x67,
             0x70, 0x34, 0x00, 0x00, 0x02, 0x00, 0x33, 0x67, 0x70, 0x34) } } },

    { "3g2 (ftyp 3g2a)", AUDEX_SNIFF_3GP, 64, {
      { 0, B(0x00, 0x00, 0x00, 0x1c, 0x66, 0x74, 0x79, 0x70, 0x33, 0x67,
             0x32, 0x61, 0x00, 0x01, 0x00, 0x00) } } },

    { "webm", AUDEX_SNIFF_WEBM, 64, {
      { 0, B(0x1a, 0x45, 0xdf, 0xa3, 0x9f, 0x42, 0x86, 0x81, 0x01, 0x42,
             0xf7, 0x81, 0x01, 0x42, 0xf2, 0x81, 0x04, 0x42, 0xf3, 0x81,
             0x08, 0x42, 0x82, 0x84, 0x77, 0x65, 0x62, 0x6d, 0x42, 0x87,
             0x81, 0x04, 0x42, 0x85, 0x81, 0x02, 0x18, 0x53, 0x80,
             0x67) } } },

    { "matroska", AUDEX_SNIFF_MATROSKA, 64, {
      { 0, B(0x1a, 0x45, 0xdf, 0xa3, 0xa3, 0x42, 0x86, 0x81, 0x01, 0x42,
             0xf7, 0x81, 0x01, 0x42, 0xf2, 0x81, 0x04, 0x42, 0xf3, 0x81,
             0x08, 0x42, 0x82, 0x88, 0x6d, 0x61, 0x74, 0x72, 0x6f, 0x73,
             0x6b, 0x61, 0x42, 0x87, 0x81, 0x04, 0x42, 0x85, 0x81, 0x02,
             0x18, 0x53, 0x80, 0x67) } } },

    /*
     * A WebM header whose DocType sits behind a 70-byte EBML Void
     * element (ID 0xec), past AUDEX_SNIFF_MIN: it needs a longer look.
     */
    { "webm, late DocType", AUDEX_SNIFF_WEBM, 100, {
      { 0, B(0x1a, 0x45, 0xdf, 0xa3, 0xe5, 0x42, 0x86, 0x81, 0x01, 0x42,
             0xf7, 0x81, 0x01, 0x42, 0xf2, 0x81, 0x04, 0x42, 0xf3, 0x81,
             0x08, 0xec, 0xc6) },
      { 93, B(0x42, 0x82, 0x84, 0x77, 0x65, 0x62, 0x6d, 0x42, 0x87, 0x81,
              0x04) } } },

    { "avi", AUDEX_SNIFF_AVI, 64, {
      { 0, B(0x52, 0x49, 0x46, 0x46, 0x84, 0x38, 0x00, 0x00, 0x41, 0x56,
             0x49, 0x20, 0x4c, 0x49, 0x53, 0x54) } } },

    { "wav", AUDEX_SNIFF_WAV, 64, {
      { 0, B(0x52, 0x49, 0x46, 0x46, 0xa2, 0x67, 0x00, 0x00, 0x57, 0x41,
             0x56, 0x45, 0x66, 0x6d, 0x74, 0x20) } } },

    { "flv", AUDEX_SNIFF_FLV, 64, {
      { 0, B(0x46, 0x4c, 0x56, 0x01, 0x05, 0x00, 0x00, 0x00, 0x09, 0x00,
             0x00, 0x00, 0x00, 0x12, 0x00, 0x01) } } },

    { "mpeg-ps (vob)", AUDEX_SNIFF_MPEGPS, 64, {
      { 0, B(0x00, 0x00, 0x01, 0xba, 0x44, 0x00, 0x04, 0x00, 0x04, 0x01,
             0x43, 0x43, 0x5b, 0xf8, 0x00, 0x00) } } },

    { "ogg vorbis", AUDEX_SNIFF_OGG, 64, {
      { 0, B(0x4f, 0x67, 0x67, 0x53, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00,
             0x00, 0x00, 0x00, 0x00, 0x21, 0xd7) } } },

    { "flac", AUDEX_SNIFF_FLAC, 64, {
      { 0, B(0x66, 0x4c, 0x61, 0x43, 0x00, 0x00, 0x00, 0x22, 0x12, 0x00,
             0x12, 0x00, 0x00, 0x04, 0x49, 0x00) } } },

    { "asf (wmv)", AUDEX_SNIFF_ASF, 64, {
      { 0, B(0x30, 0x26, 0xb2, 0x75, 0x8e, 0x66, 0xcf, 0x11, 0xa6, 0xd9,
             0x00, 0xaa, 0x00, 0x62, 0xce, 0x6c, 0xf7, 0x02, 0x00, 0x00) } } },

    { "mp3 (ID3v2.4)", AUDEX_SNIFF_MP3, 64, {
      { 0, B(0x49, 0x44, 0x33, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x23,
             0x54, 0x53, 0x53, 0x45, 0x00, 0x00) } } },

    /* MPEG-1 layer III 64 kb/s 44.1 kHz: frames of 208 and 209 bytes */
    { "mp3 (frames)", AUDEX_SNIFF_MP3, 212, {
      { 0, B(0xff, 0xfb, 0x50, 0xc4, 0x00, 0x00, 0x0a, 0x2c) },
      { 208, B(0xff, 0xfb, 0x52, 0xc4, 0x04, 0x82, 0x0a, 0x60) } } },

    /* MPEG-2 layer III 32 kb/s 22.05 kHz: 72 * 32000 / 22050 = 104 */
    { "mp3 (MPEG-2 frames)", AUDEX_SNIFF_MP3, 108, {
      { 0, B(0xff, 0xf3, 0x40, 0xc4, 0x00, 0x14, 0x68, 0x86) },
      { 104, B(0xff, 0xf3, 0x40, 0xc4) } } },

    /* MPEG-1 layer II 384 kb/s: 1253 bytes, the longest look there is */
    { "mp2 (frames)", AUDEX_SNIFF_MP3, 1257, {
      { 0, B(0xff, 0xfd, 0xe0, 0xc4, 0xec, 0xcc, 0xbd, 0xcb) },
      { 1253, B(0xff, 0xfd, 0xe2, 0xc4) } } },

    /* AAC LC 44.1 kHz mono ADTS: the first frame is 265 bytes */
    { "aac (adts)", AUDEX_SNIFF_AAC, 272, {
      { 0, B(0xff, 0xf1, 0x50, 0x40, 0x21, 0x3f, 0xfc, 0xde) },
      { 265, B(0xff, 0xf1, 0x50, 0x40, 0x21, 0x3f, 0xfc, 0x01) } } },

    { "mpeg-ts", AUDEX_SNIFF_MPEGTS, 377, {
      { 0, B(0x47, 0x40, 0x11, 0x10, 0x00, 0x42, 0xf0, 0x25) },
      { 188, B(0x47, 0x40, 0x00, 0x10) },
      { 376, B(0x47, 0x50, 0x00, 0x10) } } },

    { "m2ts (192-byte packets)", AUDEX_SNIFF_MPEGTS, 389, {
      { 0, B(0x0e, 0xbf, 0x46, 0x22, 0x47, 0x40, 0x11, 0x10) },
      { 192, B(0x03, 0x2c, 0x2e, 0x48, 0x47, 0x40, 0x00, 0x10) },
      { 384, B(0x37, 0x99, 0x16, 0x6d, 0x47, 0x41, 0x00, 0x10) } } },
};


static uint32_t
xorshift(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}


/* random filler that never holds a TS or MPEG audio sync byte */
static void
fill(u_char *buf, size_t n, uint32_t seed)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        do {
            buf[i] = (u_char) xorshift(&seed);
        } while (buf[i] == 0x47 || buf[i] == 0xff);
    }
}


static void
build(const sample_t *s, u_char *buf)
{
    size_t  i;

    fill(buf, AUDEX_SNIFF_MAX, 7);

    for (i = 0; i < 3 && s->pieces[i].bytes; i++) {
        memcpy(buf + s->pieces[i].off, s->pieces[i].bytes, s->pieces[i].len);
    }
}


static void
test_samples(void **state)
{
    size_t               i, k, decided;
    u_char               buf[AUDEX_SNIFF_MAX];
    audex_sniff_type_t   t;

    for (i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        const sample_t  *s = &samples[i];

        print_message("%s\n", s->what);
        build(s, buf);

        /* a stream that grows: "need more", then one answer for good */
        decided = 0;

        for (k = 0; k <= AUDEX_SNIFF_MAX; k++) {
            t = audex_sniff(buf, k, 0);

            if (decided == 0) {
                if (t == AUDEX_SNIFF_NEED_MORE) {
                    continue;
                }

                decided = k;
            }

            assert_int_equal(t, s->type);
        }

        assert_int_equal(decided, s->decided);

        assert_int_equal(audex_sniff(buf, AUDEX_SNIFF_MAX, 1), s->type);
        assert_int_equal(audex_sniff(buf, decided, 1), s->type);
        assert_string_not_equal(audex_sniff_name(s->type), "unknown");
    }
}


static void
test_text_and_noise(void **state)
{
    size_t               i, k;
    u_char               buf[AUDEX_SNIFF_MAX];
    uint32_t             seed;
    static const char    text[] =
        "Good morning.  This is a plain text file that a client uploaded by "
        "mistake instead of a video.  It is long enough that every check "
        "which looks further into the stream gets to see all it wants to "
        "see, including three MPEG transport stream packets of 188 bytes "
        "each, which is why this sentence keeps going for a while longer "
        "than anyone would like to read.  Lorem ipsum dolor sit amet, "
        "consectetur adipiscing elit, sed do eiusmod tempor incididunt ut "
        "labore et dolore magna aliqua.  Ut enim ad minim veniam, quis "
        "nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo "
        "consequat.  The end.\n";
    static const char    html[] =
        "<!DOCTYPE html>\n<html><head><title>x</title></head><body></body>"
        "</html>\n";

    assert_true(sizeof(text) - 1 > 3 * 188);

    /* it starts with 'G', the TS sync byte: a longer look is needed */
    assert_int_equal(audex_sniff((const u_char *) text, 376, 0),
                     AUDEX_SNIFF_NEED_MORE);
    assert_int_equal(audex_sniff((const u_char *) text, sizeof(text) - 1, 0),
                     AUDEX_SNIFF_UNKNOWN);
    assert_int_equal(audex_sniff((const u_char *) text, sizeof(text) - 1, 1),
                     AUDEX_SNIFF_UNKNOWN);
    assert_int_equal(audex_sniff((const u_char *) text + 1,
                                 sizeof(text) - 2, 1),
                     AUDEX_SNIFF_UNKNOWN);
    assert_int_equal(audex_sniff((const u_char *) html, sizeof(html) - 1, 1),
                     AUDEX_SNIFF_UNKNOWN);

    /* nothing at all, and a few bytes, at the end of the stream */
    assert_int_equal(audex_sniff((const u_char *) "", 0, 1),
                     AUDEX_SNIFF_UNKNOWN);
    assert_int_equal(audex_sniff((const u_char *) "", 0, 0),
                     AUDEX_SNIFF_NEED_MORE);
    assert_int_equal(audex_sniff((const u_char *) "abc", 3, 1),
                     AUDEX_SNIFF_UNKNOWN);

    /* random bytes, sync bytes included */
    seed = 2024;

    for (i = 0; i < 500; i++) {
        for (k = 0; k < sizeof(buf); k++) {
            buf[k] = (u_char) xorshift(&seed);
        }

        assert_int_equal(audex_sniff(buf, sizeof(buf), 0),
                         AUDEX_SNIFF_UNKNOWN);

        /* and every one with a sync byte in front */
        buf[0] = 0xff;
        assert_int_equal(audex_sniff(buf, sizeof(buf), 1),
                         AUDEX_SNIFF_UNKNOWN);
        buf[0] = 0x47;
        assert_int_equal(audex_sniff(buf, sizeof(buf), 1),
                         AUDEX_SNIFF_UNKNOWN);
    }
}


/* a sample with one of its bytes changed: no longer that format */
static audex_sniff_type_t
sniff_changed(const char *what, size_t off, u_char value, int eof)
{
    size_t  i;
    u_char  buf[AUDEX_SNIFF_MAX];

    for (i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        if (strcmp(samples[i].what, what) == 0) {
            build(&samples[i], buf);
            buf[off] = value;
            return audex_sniff(buf, sizeof(buf), eof);
        }
    }

    fail_msg("no sample %s", what);

    return AUDEX_SNIFF_NEED_MORE;
}


static void
test_near_misses(void **state)
{
    /* each magic with one byte off */
    assert_int_equal(sniff_changed("mp4 (ftyp isom)", 7, 'x', 0),
                     AUDEX_SNIFF_UNKNOWN);
    assert_int_equal(sniff_changed("mp4 (ftyp isom)", 3, 0x04, 0),
                     AUDEX_SNIFF_UNKNOWN);
    assert_int_equal(sniff_changed("mov (wide first)", 3, 0x05, 0),
                     AUDEX_SNIFF_UNKNOWN);
    assert_int_equal(sniff_changed("matroska", 3, 0xa4, 0),
                     AUDEX_SNIFF_UNKNOWN);
    assert_int_equal(sniff_changed("avi", 11, 'X', 0), AUDEX_SNIFF_UNKNOWN);
    assert_int_equal(sniff_changed("wav", 8, 'w', 0), AUDEX_SNIFF_UNKNOWN);
    assert_int_equal(sniff_changed("flv", 3, 0x02, 0), AUDEX_SNIFF_UNKNOWN);
    assert_int_equal(sniff_changed("mpeg-ps (vob)", 3, 0xbb, 0),
                     AUDEX_SNIFF_UNKNOWN);
    assert_int_equal(sniff_changed("ogg vorbis", 4, 0x01, 0),
                     AUDEX_SNIFF_UNKNOWN);
    assert_int_equal(sniff_changed("flac", 0, 'F', 0), AUDEX_SNIFF_UNKNOWN);
    assert_int_equal(sniff_changed("asf (wmv)", 15, 0x6d, 0),
                     AUDEX_SNIFF_UNKNOWN);
    assert_int_equal(sniff_changed("mp3 (ID3v2.4)", 3, 0xff, 0),
                     AUDEX_SNIFF_UNKNOWN);
    assert_int_equal(sniff_changed("mp3 (ID3v2.4)", 9, 0x80, 0),
                     AUDEX_SNIFF_UNKNOWN);
    assert_int_equal(sniff_changed("mp3 (ID3v2.4)", 4, 0xff, 0),
                     AUDEX_SNIFF_UNKNOWN);

    /* another DocType of the same length is not WebM */
    assert_int_equal(sniff_changed("webm", 24, 'x', 0),
                     AUDEX_SNIFF_MATROSKA);

    /* the second frame or packet is what makes the difference */
    assert_int_equal(sniff_changed("mp3 (frames)", 208, 0x00, 0),
                     AUDEX_SNIFF_UNKNOWN);
    assert_int_equal(sniff_changed("mp3 (frames)", 209, 0xf3, 0),
                     AUDEX_SNIFF_UNKNOWN);
    assert_int_equal(sniff_changed("mp3 (frames)", 210, 0x58, 0),
                     AUDEX_SNIFF_UNKNOWN);
    assert_int_equal(sniff_changed("mp2 (frames)", 1253, 0x00, 0),
                     AUDEX_SNIFF_UNKNOWN);
    assert_int_equal(sniff_changed("aac (adts)", 266, 0xf9, 0),
                     AUDEX_SNIFF_UNKNOWN);
    assert_int_equal(sniff_changed("aac (adts)", 267, 0x4c, 0),
                     AUDEX_SNIFF_UNKNOWN);
    assert_int_equal(sniff_changed("mpeg-ts", 376, 0x48, 0),
                     AUDEX_SNIFF_UNKNOWN);
    assert_int_equal(sniff_changed("mpeg-ts", 188, 0x48, 0),
                     AUDEX_SNIFF_UNKNOWN);
    assert_int_equal(sniff_changed("m2ts (192-byte packets)", 196, 0x46, 0),
                     AUDEX_SNIFF_UNKNOWN);

    /* invalid MPEG audio headers: bad bitrate, rate, layer, version */
    assert_int_equal(sniff_changed("mp3 (frames)", 2, 0xf0, 1),
                     AUDEX_SNIFF_UNKNOWN);
    assert_int_equal(sniff_changed("mp3 (frames)", 2, 0x0c, 1),
                     AUDEX_SNIFF_UNKNOWN);
    assert_int_equal(sniff_changed("mp3 (frames)", 2, 0x5c, 1),
                     AUDEX_SNIFF_UNKNOWN);
    assert_int_equal(sniff_changed("mp3 (frames)", 1, 0xf9, 1),
                     AUDEX_SNIFF_UNKNOWN);
    assert_int_equal(sniff_changed("mp3 (frames)", 1, 0xeb, 1),
                     AUDEX_SNIFF_UNKNOWN);
    assert_int_equal(sniff_changed("aac (adts)", 2, 0x74, 1),
                     AUDEX_SNIFF_UNKNOWN);
    /* reserved emphasis */
    assert_int_equal(sniff_changed("mp3 (frames)", 3, 0xc6, 1),
                     AUDEX_SNIFF_UNKNOWN);

    /*
     * Headers that are consistent from frame to frame but invalid:
     * MPEG 2.5 layer II (522-byte frames at 40 kb/s, 11025 Hz), ADTS at
     * sample rate index 13, ADTS frames shorter than their header.
     */
    {
        u_char  buf[1024];

        memset(buf, 0, sizeof(buf));
        memcpy(buf, "\xff\xe5\x50\xc4", 4);
        memcpy(buf + 522, "\xff\xe5\x50\xc4", 4);
        assert_int_equal(audex_sniff(buf, sizeof(buf), 1),
                         AUDEX_SNIFF_UNKNOWN);

        /* the same as MPEG-2 layer III is fine: 72 * 40000 / 22050 */
        memset(buf, 0, sizeof(buf));
        memcpy(buf, "\xff\xf3\x50\xc4", 4);
        memcpy(buf + 130, "\xff\xf3\x50\xc4", 4);
        assert_int_equal(audex_sniff(buf, sizeof(buf), 1), AUDEX_SNIFF_MP3);

        memset(buf, 0, sizeof(buf));
        memcpy(buf, "\xff\xf1\x74\x40\x21\x3f\xfc", 7);
        memcpy(buf + 265, "\xff\xf1\x74\x40\x21\x3f\xfc", 7);
        assert_int_equal(audex_sniff(buf, sizeof(buf), 1),
                         AUDEX_SNIFF_UNKNOWN);

        /* a 6-byte "frame", shorter than its header, then a real one */
        memset(buf, 0, sizeof(buf));
        memcpy(buf, "\xff\xf1\x50\x40\x00\xc0"
                    "\xff\xf1\x50\x40\x21\x3f\xfc", 13);
        assert_int_equal(audex_sniff(buf, sizeof(buf), 1),
                         AUDEX_SNIFF_UNKNOWN);
    }

    /* a RIFF that is neither AVI nor WAVE (here WebP) */
    assert_int_equal(audex_sniff((const u_char *) "RIFF\x24\0\0\0WEBPVP8 ",
                                 16, 1),
                     AUDEX_SNIFF_UNKNOWN);
}


static void
test_short_streams(void **state)
{
    u_char  buf[AUDEX_SNIFF_MAX];

    /* fewer than AUDEX_SNIFF_MIN bytes: wait, unless that is all */
    assert_int_equal(audex_sniff((const u_char *) "fLaC", 4, 0),
                     AUDEX_SNIFF_NEED_MORE);
    assert_int_equal(audex_sniff((const u_char *) "fLaC", 4, 1),
                     AUDEX_SNIFF_FLAC);
    assert_int_equal(audex_sniff((const u_char *) "fLa", 3, 1),
                     AUDEX_SNIFF_UNKNOWN);

    /* an ftyp box cut before its brand is nothing */
    assert_int_equal(audex_sniff((const u_char *) "\0\0\0\x1c" "ftypis", 10,
                                 1),
                     AUDEX_SNIFF_UNKNOWN);

    /* one TS packet at the end: the sync byte is all there is to go on */
    memset(buf, 0xff, 188);
    buf[0] = 0x47;
    assert_int_equal(audex_sniff(buf, 188, 1), AUDEX_SNIFF_MPEGTS);
    assert_int_equal(audex_sniff(buf, 188, 0), AUDEX_SNIFF_NEED_MORE);

    /* two packets and a bit: both syncs must be there */
    memset(buf, 0xff, 300);
    buf[0] = 0x47;
    buf[188] = 0x47;
    assert_int_equal(audex_sniff(buf, 300, 1), AUDEX_SNIFF_MPEGTS);
    buf[188] = 0x46;
    assert_int_equal(audex_sniff(buf, 300, 1), AUDEX_SNIFF_UNKNOWN);

    /* one M2TS packet is not enough: a 'G' at offset 4 is too common */
    memset(buf, 'a', 192);
    buf[4] = 0x47;
    assert_int_equal(audex_sniff(buf, 192, 1), AUDEX_SNIFF_UNKNOWN);

    /* a single MP3 frame that ends the stream */
    memset(buf, 0, 208);
    memcpy(buf, "\xff\xfb\x50\xc4", 4);
    assert_int_equal(audex_sniff(buf, 208, 0), AUDEX_SNIFF_NEED_MORE);
    assert_int_equal(audex_sniff(buf, 208, 1), AUDEX_SNIFF_MP3);
    assert_int_equal(audex_sniff(buf, 207, 1), AUDEX_SNIFF_UNKNOWN);

    /* an ADTS frame too long to see the next one behind it */
    memset(buf, 0, sizeof(buf));
    memcpy(buf, "\xff\xf1\x50\x40\xff\xff\xfc", 7);
    assert_int_equal(audex_sniff(buf, sizeof(buf), 0), AUDEX_SNIFF_UNKNOWN);

    /* an EBML header cut before its DocType, at the end: still Matroska */
    assert_int_equal(audex_sniff((const u_char *) "\x1a\x45\xdf\xa3\x9f\x42",
                                 6, 1),
                     AUDEX_SNIFF_MATROSKA);
}


static void
test_names(void **state)
{
    int          t, u;
    const char  *name;

    for (t = AUDEX_SNIFF_MP4; t <= AUDEX_SNIFF_ASF; t++) {
        name = audex_sniff_name((audex_sniff_type_t) t);
        assert_string_not_equal(name, "unknown");
        assert_string_not_equal(audex_sniff_mime((audex_sniff_type_t) t),
                                "application/octet-stream");

        for (u = AUDEX_SNIFF_MP4; u < t; u++) {
            assert_string_not_equal(name,
                                    audex_sniff_name((audex_sniff_type_t) u));
        }
    }

    assert_string_equal(audex_sniff_name(AUDEX_SNIFF_UNKNOWN), "unknown");
    assert_string_equal(audex_sniff_name(AUDEX_SNIFF_MPEGTS), "mpegts");
    assert_string_equal(audex_sniff_name(AUDEX_SNIFF_MATROSKA), "matroska");
    assert_string_equal(audex_sniff_mime(AUDEX_SNIFF_UNKNOWN),
                        "application/octet-stream");
    assert_string_equal(audex_sniff_mime(AUDEX_SNIFF_WEBM), "video/webm");
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_samples),
        cmocka_unit_test(test_text_and_noise),
        cmocka_unit_test(test_near_misses),
        cmocka_unit_test(test_short_streams),
        cmocka_unit_test(test_names),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
