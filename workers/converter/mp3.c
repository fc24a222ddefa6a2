/*
 * audex-converter: MP3 frame headers and the LAME encoder, see mp3.h.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lame/lame.h>

#include "log.h"
#include "mp3.h"


/* samples handed to LAME per call; its output bound follows from it */
#define AUDEX_MP3_SLICE    4608
#define AUDEX_MP3_OUT_MAX  (AUDEX_MP3_SLICE * 5 / 4 + 7200)


struct audex_mp3_enc_s {
    lame_global_flags  *gfp;
    int                 channels;
    int                 vbr;
    u_char              out[AUDEX_MP3_OUT_MAX];
};


static void audex_mp3_lame_error(const char *fmt, va_list args);
static void audex_mp3_lame_debug(const char *fmt, va_list args);
static int audex_mp3_enc_put(audex_mp3_enc_t *enc, int n, audex_sink_t *sink);


/* Layer III bitrates in kbit/s by [lsf][index] */
static const int  audex_mp3_bitrates[2][15] = {
    { 0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320 },
    { 0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160 }
};

/* sample rates by [version field][index]; field 1 is reserved */
static const int  audex_mp3_rates[4][3] = {
    { 11025, 12000, 8000 },
    { 0, 0, 0 },
    { 22050, 24000, 16000 },
    { 44100, 48000, 32000 }
};

/* every rate MPEG-1, MPEG-2 and MPEG-2.5 Layer III can carry */
static const int  audex_mp3_valid_rates[] = {
    8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000
};


/*
 * The rule, documented in the README of the converter:
 *
 * - 8000 .. 48000 Hz rates that MP3 has (MPEG-2.5 included, so 8 kHz
 *   telephone audio stays 8 kHz) are kept;
 * - above 48 kHz, multiples of 11025 Hz (88.2, 176.4 kHz) go to 44.1 kHz,
 *   where the ratio is an integer, and everything else to 48 kHz;
 * - below 8 kHz, 8 kHz;
 * - anything else to the nearest MP3 rate, ties going up.
 */

int
audex_mp3_rate(int rate)
{
    int     best, d, bd;
    size_t  i;

    if (rate > 48000) {
        return (rate % 11025 == 0) ? 44100 : 48000;
    }

    if (rate <= 8000) {
        return 8000;
    }

    best = audex_mp3_valid_rates[0];
    bd = abs(rate - best);

    for (i = 1; i < sizeof(audex_mp3_valid_rates) / sizeof(int); i++) {
        d = abs(rate - audex_mp3_valid_rates[i]);

        if (d <= bd) {
            best = audex_mp3_valid_rates[i];
            bd = d;
        }
    }

    return best;
}


int
audex_mp3_header_parse(uint32_t h, audex_mp3_header_t *hdr)
{
    int  version, layer, bi, ri, mono;

    if ((h & 0xffe00000) != 0xffe00000) {
        return -1;
    }

    version = (h >> 19) & 3;
    layer = (h >> 17) & 3;
    bi = (h >> 12) & 0xf;
    ri = (h >> 10) & 3;

    /* reserved version, not Layer III, free format, bad index, emphasis */
    if (version == 1 || layer != 1 || bi == 0 || bi == 15 || ri == 3
        || (h & 3) == 2)
    {
        return -1;
    }

    mono = (((h >> 6) & 3) == 3);

    hdr->lsf = (version != 3);
    hdr->mpeg25 = (version == 0);
    hdr->bitrate_index = bi;
    hdr->bitrate = audex_mp3_bitrates[hdr->lsf][bi];
    hdr->rate_index = ri;
    hdr->sample_rate = audex_mp3_rates[version][ri];
    hdr->channels = mono ? 1 : 2;
    hdr->samples = hdr->lsf ? 576 : 1152;
    hdr->side_info = hdr->lsf ? (mono ? 9 : 17) : (mono ? 17 : 32);
    hdr->size = audex_mp3_frame_size(hdr, bi) + ((h >> 9) & 1);

    return 0;
}


int
audex_mp3_bitrate(const audex_mp3_header_t *hdr, int bitrate_index)
{
    return audex_mp3_bitrates[hdr->lsf][bitrate_index];
}


int
audex_mp3_frame_size(const audex_mp3_header_t *hdr, int bitrate_index)
{
    int  br;

    br = audex_mp3_bitrates[hdr->lsf][bitrate_index];

    return (hdr->lsf ? 72000 : 144000) * br / hdr->sample_rate;
}


/*
 * The CRC of each byte value (polynomial 0x8005 reflected: 0xa001), one
 * lookup a byte instead of eight shifts: a join or a copy runs it over
 * the whole MP3 for the LAME tag's music CRC
 */
static const uint16_t  audex_mp3_crc16_table[256] = {
    0x0000, 0xc0c1, 0xc181, 0x0140, 0xc301, 0x03c0, 0x0280, 0xc241,
    0xc601, 0x06c0, 0x0780, 0xc741, 0x0500, 0xc5c1, 0xc481, 0x0440,
    0xcc01, 0x0cc0, 0x0d80, 0xcd41, 0x0f00, 0xcfc1, 0xce81, 0x0e40,
    0x0a00, 0xcac1, 0xcb81, 0x0b40, 0xc901, 0x09c0, 0x0880, 0xc841,
    0xd801, 0x18c0, 0x1980, 0xd941, 0x1b00, 0xdbc1, 0xda81, 0x1a40,
    0x1e00, 0xdec1, 0xdf81, 0x1f40, 0xdd01, 0x1dc0, 0x1c80, 0xdc41,
    0x1400, 0xd4c1, 0xd581, 0x1540, 0xd701, 0x17c0, 0x1680, 0xd641,
    0xd201, 0x12c0, 0x1380, 0xd341, 0x1100, 0xd1c1, 0xd081, 0x1040,
    0xf001, 0x30c0, 0x3180, 0xf141, 0x3300, 0xf3c1, 0xf281, 0x3240,
    0x3600, 0xf6c1, 0xf781, 0x3740, 0xf501, 0x35c0, 0x3480, 0xf441,
    0x3c00, 0xfcc1, 0xfd81, 0x3d40, 0xff01, 0x3fc0, 0x3e80, 0xfe41,
    0xfa01, 0x3ac0, 0x3b80, 0xfb41, 0x3900, 0xf9c1, 0xf881, 0x3840,
    0x2800, 0xe8c1, 0xe981, 0x2940, 0xeb01, 0x2bc0, 0x2a80, 0xea41,
    0xee01, 0x2ec0, 0x2f80, 0xef41, 0x2d00, 0xedc1, 0xec81, 0x2c40,
    0xe401, 0x24c0, 0x2580, 0xe541, 0x2700, 0xe7c1, 0xe681, 0x2640,
    0x2200, 0xe2c1, 0xe381, 0x2340, 0xe101, 0x21c0, 0x2080, 0xe041,
    0xa001, 0x60c0, 0x6180, 0xa141, 0x6300, 0xa3c1, 0xa281, 0x6240,
    0x6600, 0xa6c1, 0xa781, 0x6740, 0xa501, 0x65c0, 0x6480, 0xa441,
    0x6c00, 0xacc1, 0xad81, 0x6d40, 0xaf01, 0x6fc0, 0x6e80, 0xae41,
    0xaa01, 0x6ac0, 0x6b80, 0xab41, 0x6900, 0xa9c1, 0xa881, 0x6840,
    0x7800, 0xb8c1, 0xb981, 0x7940, 0xbb01, 0x7bc0, 0x7a80, 0xba41,
    0xbe01, 0x7ec0, 0x7f80, 0xbf41, 0x7d00, 0xbdc1, 0xbc81, 0x7c40,
    0xb401, 0x74c0, 0x7580, 0xb541, 0x7700, 0xb7c1, 0xb681, 0x7640,
    0x7200, 0xb2c1, 0xb381, 0x7340, 0xb101, 0x71c0, 0x7080, 0xb041,
    0x5000, 0x90c1, 0x9181, 0x5140, 0x9301, 0x53c0, 0x5280, 0x9241,
    0x9601, 0x56c0, 0x5780, 0x9741, 0x5500, 0x95c1, 0x9481, 0x5440,
    0x9c01, 0x5cc0, 0x5d80, 0x9d41, 0x5f00, 0x9fc1, 0x9e81, 0x5e40,
    0x5a00, 0x9ac1, 0x9b81, 0x5b40, 0x9901, 0x59c0, 0x5880, 0x9841,
    0x8801, 0x48c0, 0x4980, 0x8941, 0x4b00, 0x8bc1, 0x8a81, 0x4a40,
    0x4e00, 0x8ec1, 0x8f81, 0x4f40, 0x8d01, 0x4dc0, 0x4c80, 0x8c41,
    0x4400, 0x84c1, 0x8581, 0x4540, 0x8701, 0x47c0, 0x4680, 0x8641,
    0x8201, 0x42c0, 0x4380, 0x8341, 0x4100, 0x81c1, 0x8081, 0x4040
};


uint16_t
audex_mp3_crc16(uint16_t crc, const u_char *p, size_t len)
{
    while (len--) {
        crc = (crc >> 8) ^ audex_mp3_crc16_table[(crc ^ *p++) & 0xff];
    }

    return crc;
}


audex_mp3_enc_t *
audex_mp3_enc_create(int rate, int channels, int bitrate, int quality,
    int info_frame, char *err, size_t errlen)
{
    audex_mp3_enc_t    *enc;
    lame_global_flags  *gfp;

    enc = calloc(1, sizeof(audex_mp3_enc_t));
    if (enc == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }

    gfp = lame_init();
    if (gfp == NULL) {
        snprintf(err, errlen, "lame_init() failed");
        free(enc);
        return NULL;
    }

    enc->gfp = gfp;
    enc->channels = channels;
    enc->vbr = (bitrate <= 0);

    lame_set_errorf(gfp, audex_mp3_lame_error);
    lame_set_debugf(gfp, audex_mp3_lame_debug);
    lame_set_msgf(gfp, audex_mp3_lame_debug);

    lame_set_num_channels(gfp, channels);
    lame_set_in_samplerate(gfp, rate);

    /*
     * the converter resamples with libswresample beforehand; left alone,
     * LAME would pick its own output rate from the bitrate
     */
    lame_set_out_samplerate(gfp, rate);
    lame_set_mode(gfp, channels == 1 ? MONO : JOINT_STEREO);

    if (enc->vbr) {
        lame_set_VBR(gfp, vbr_default);
        lame_set_VBR_quality(gfp, (float) quality);

    } else {
        lame_set_VBR(gfp, vbr_off);
        lame_set_brate(gfp, bitrate);
    }

    /* the ID3v2 tag is ours; ID3v1 is not wanted */
    lame_set_write_id3tag_automatic(gfp, 0);

    /*
     * the Xing/LAME frame carries frame count and delays, for gapless; a
     * segment's encoder (mp3par.c) goes without, the joined stream gets one
     */
    lame_set_bWriteVbrTag(gfp, info_frame);

    if (lame_init_params(gfp) < 0) {
        snprintf(err, errlen, "LAME rejected %d Hz, %d channel(s), %s %d",
                 rate, channels, enc->vbr ? "VBR quality" : "bitrate",
                 enc->vbr ? quality : bitrate);
        audex_mp3_enc_free(enc);
        return NULL;
    }

    return enc;
}


int
audex_mp3_enc_encode(audex_mp3_enc_t *enc, const float *left,
    const float *right, int nsamples, audex_sink_t *sink)
{
    int  n, rc;

    while (nsamples > 0) {
        n = (nsamples > AUDEX_MP3_SLICE) ? AUDEX_MP3_SLICE : nsamples;

        rc = lame_encode_buffer_ieee_float(enc->gfp, left,
                                           enc->channels == 2 ? right : NULL,
                                           n, enc->out, sizeof(enc->out));
        if (audex_mp3_enc_put(enc, rc, sink) != 0) {
            return -1;
        }

        left += n;
        if (enc->channels == 2) {
            right += n;
        }

        nsamples -= n;
    }

    return 0;
}


int
audex_mp3_enc_flush(audex_mp3_enc_t *enc, audex_sink_t *sink)
{
    int  rc;

    rc = lame_encode_flush(enc->gfp, enc->out, sizeof(enc->out));

    return audex_mp3_enc_put(enc, rc, sink);
}


static int
audex_mp3_enc_put(audex_mp3_enc_t *enc, int n, audex_sink_t *sink)
{
    if (n < 0) {
        /* only a too small buffer or bad parameters: a bug of ours */
        audex_sink_fail(sink, AUDEX_IO_PERMANENT, "LAME failed: %d", n);
        return -1;
    }

    if (n == 0) {
        return 0;
    }

    return sink->write(sink, enc->out, n);
}


int
audex_mp3_enc_write_tag(audex_mp3_enc_t *enc, audex_sink_t *sink,
    int64_t offset)
{
    size_t  n;

    n = lame_get_lametag_frame(enc->gfp, enc->out, sizeof(enc->out));

    /*
     * LAME leaves the frame out when it would not fit a CBR frame (low
     * bitrates at high rates): then there is no placeholder either
     */
    if (n == 0) {
        audex_log(AUDEX_LOG_DEBUG, NULL, "LAME wrote no info frame");
        return 0;
    }

    if (n > sizeof(enc->out)) {
        audex_sink_fail(sink, AUDEX_IO_PERMANENT,
                        "LAME info frame of %zu bytes", n);
        return -1;
    }

    return sink->rewrite(sink, offset, enc->out, n);
}


int
audex_mp3_enc_bitrate(audex_mp3_enc_t *enc)
{
    return enc->vbr ? 0 : lame_get_brate(enc->gfp);
}


void
audex_mp3_enc_delays(audex_mp3_enc_t *enc, int *delay, int *padding)
{
    *delay = lame_get_encoder_delay(enc->gfp);
    *padding = lame_get_encoder_padding(enc->gfp);
}


int
audex_mp3_enc_frame_samples(audex_mp3_enc_t *enc)
{
    return lame_get_framesize(enc->gfp);
}


void
audex_mp3_enc_free(audex_mp3_enc_t *enc)
{
    if (enc == NULL) {
        return;
    }

    if (enc->gfp) {
        lame_close(enc->gfp);
    }

    free(enc);
}


static void
audex_mp3_lame_error(const char *fmt, va_list args)
{
    audex_log_va(AUDEX_LOG_WARN, NULL, fmt, args);
}


static void
audex_mp3_lame_debug(const char *fmt, va_list args)
{
    audex_log_va(AUDEX_LOG_DEBUG, NULL, fmt, args);
}
