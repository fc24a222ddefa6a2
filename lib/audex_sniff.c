#include <stdint.h>
#include <string.h>

#include "audex_sniff.h"


#define AUDEX_SNIFF_TS_PACKET    188
#define AUDEX_SNIFF_M2TS_PACKET  192


static const u_char  audex_sniff_asf_guid[16] = {
    0x30, 0x26, 0xb2, 0x75, 0x8e, 0x66, 0xcf, 0x11,
    0xa6, 0xd9, 0x00, 0xaa, 0x00, 0x62, 0xce, 0x6c
};


/* kb/s by [MPEG-1 or not][layer I, II, III][bitrate index 1..14] */
static const uint16_t  audex_sniff_mpa_kbps[2][3][14] = {
    {
        { 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256 },
        { 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160 },
        { 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160 }
    },
    {
        { 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448 },
        { 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384 },
        { 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320 }
    }
};


static const uint32_t  audex_sniff_mpa_rate[3] = { 44100, 48000, 32000 };


static uint32_t
audex_sniff_be32(const u_char *p)
{
    return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16
           | (uint32_t) p[2] << 8 | p[3];
}


/* ISO BMFF: the major brand tells MP4 from QuickTime and 3GPP */
static audex_sniff_type_t
audex_sniff_ftyp(const u_char *p)
{
    if (audex_sniff_be32(p) < 12) {
        return AUDEX_SNIFF_UNKNOWN;
    }

    if (memcmp(p + 8, "qt  ", 4) == 0) {
        return AUDEX_SNIFF_MOV;
    }

    if (memcmp(p + 8, "3gp", 3) == 0 || memcmp(p + 8, "3g2", 3) == 0) {
        return AUDEX_SNIFF_3GP;
    }

    return AUDEX_SNIFF_MP4;
}


/* old QuickTime files start with an atom other than ftyp */
static int
audex_sniff_qt_atom(const u_char *p)
{
    static const char  *atoms[] = { "moov", "mdat", "wide", "free", "skip",
                                    "pnot" };
    size_t              i;
    uint32_t            size;

    size = audex_sniff_be32(p);

    /* 0: up to the end of the file, 1: a 64-bit size follows */
    if (size != 0 && size != 1 && size < 8) {
        return 0;
    }

    for (i = 0; i < sizeof(atoms) / sizeof(atoms[0]); i++) {
        if (memcmp(p + 4, atoms[i], 4) == 0) {
            return 1;
        }
    }

    return 0;
}


/*
 * An EBML variable-length integer at p[*pos]: returns 1 and advances,
 * 0 when more bytes are needed, -1 when invalid.  The marker bit is kept
 * for element IDs and dropped for sizes.
 */
static int
audex_sniff_vint(const u_char *p, size_t n, size_t *pos, int keep_marker,
    uint64_t *value)
{
    size_t    len, i;
    uint64_t  v;

    if (*pos >= n) {
        return 0;
    }

    for (len = 1; len <= 8; len++) {
        if (p[*pos] & (0x80 >> (len - 1))) {
            break;
        }
    }

    if (len > 8) {
        return -1;
    }

    if (n - *pos < len) {
        return 0;
    }

    v = keep_marker ? p[*pos] : (p[*pos] & (0xff >> len));

    for (i = 1; i < len; i++) {
        v = v << 8 | p[*pos + i];
    }

    *pos += len;
    *value = v;

    return 1;
}


/* EBML header: the DocType element tells WebM from Matroska */
static audex_sniff_type_t
audex_sniff_ebml(const u_char *p, size_t n, int eof)
{
    int       rc;
    size_t    pos, end;
    uint64_t  size, id, len;

    pos = 4;

    rc = audex_sniff_vint(p, n, &pos, 0, &size);

    if (rc == 0) {
        goto short_read;
    }

    if (rc < 0) {
        return AUDEX_SNIFF_MATROSKA;
    }

    end = (size > AUDEX_SNIFF_MAX) ? pos + AUDEX_SNIFF_MAX : pos + size;

    while (pos < end) {
        rc = audex_sniff_vint(p, n, &pos, 1, &id);

        if (rc == 0) {
            goto short_read;
        }

        if (rc < 0) {
            break;
        }

        rc = audex_sniff_vint(p, n, &pos, 0, &len);

        if (rc == 0) {
            goto short_read;
        }

        if (rc < 0) {
            break;
        }

        if (id == 0x4282) {
            if (len > n - pos) {
                goto short_read;
            }

            if (len == 4 && memcmp(p + pos, "webm", 4) == 0) {
                return AUDEX_SNIFF_WEBM;
            }

            return AUDEX_SNIFF_MATROSKA;
        }

        if (len > end - pos) {
            break;
        }

        pos += len;
    }

    return AUDEX_SNIFF_MATROSKA;

short_read:

    if (!eof && n < AUDEX_SNIFF_MAX) {
        return AUDEX_SNIFF_NEED_MORE;
    }

    return AUDEX_SNIFF_MATROSKA;
}


/*
 * A sync byte at the start of three packets of stride bytes from off:
 * 1 yes, 0 no, -1 more needed.  Only three, so that one damaged packet
 * early on does not get a real stream rejected.  With the whole stream
 * in hand, min_packets will do.
 */
static int
audex_sniff_ts(const u_char *p, size_t n, int eof, size_t off, size_t stride,
    size_t min_packets)
{
    size_t  i;

    if (n <= off || p[off] != 0x47) {
        return 0;
    }

    if (n < off + 2 * stride + 1 && !eof) {
        return -1;
    }

    if (n < off + (min_packets - 1) * stride + 1) {
        return 0;
    }

    for (i = 1; i < 3 && off + i * stride < n; i++) {
        if (p[off + i * stride] != 0x47) {
            return 0;
        }
    }

    return 1;
}


/*
 * The length of the MPEG audio frame whose header is at h, or 0 when h
 * is not a valid header.  *key gets the fields every frame of a stream
 * shares.
 */
static size_t
audex_sniff_mpa_frame(const u_char *h, unsigned *key)
{
    size_t    kbps, rate, pad;
    u_char    version, layer, bri, sri;

    if (h[0] != 0xff || (h[1] & 0xe0) != 0xe0) {
        return 0;
    }

    version = (h[1] >> 3) & 3;      /* 0: 2.5, 1: reserved, 2: 2, 3: 1 */
    layer = 4 - ((h[1] >> 1) & 3);  /* 4: reserved */
    bri = h[2] >> 4;
    sri = (h[2] >> 2) & 3;
    pad = (h[2] >> 1) & 1;

    if (version == 1 || layer == 4 || bri == 0 || bri == 15 || sri == 3
        || (h[3] & 3) == 2)
    {
        return 0;
    }

    /* MPEG 2.5 is an extension of layer III only */
    if (version == 0 && layer != 3) {
        return 0;
    }

    kbps = audex_sniff_mpa_kbps[version == 3][layer - 1][bri - 1];
    /* MPEG-2 halves the MPEG-1 sample rates, MPEG 2.5 quarters them */
    rate = audex_sniff_mpa_rate[sri] >> (version == 3 ? 0
                                         : version == 2 ? 1 : 2);

    /* version and layer, and the sample rate */
    *key = (unsigned) (h[1] & 0xfe) << 8 | sri;

    if (layer == 1) {
        return (12 * kbps * 1000 / rate + pad) * 4;
    }

    if (layer == 3 && version != 3) {
        return 72 * kbps * 1000 / rate + pad;
    }

    return 144 * kbps * 1000 / rate + pad;
}


/* ADTS: the same idea with AAC's own header */
static size_t
audex_sniff_adts_frame(const u_char *h, unsigned *key)
{
    size_t  len;

    if (h[0] != 0xff || (h[1] & 0xf6) != 0xf0 || ((h[2] >> 2) & 0xf) > 12) {
        return 0;
    }

    len = (size_t) (h[3] & 3) << 11 | (size_t) h[4] << 3 | h[5] >> 5;

    if (len < 7) {
        return 0;
    }

    /* MPEG version, profile, sample rate and channels */
    *key = (unsigned) (h[1] & 0xf8) << 8 | (h[2] & 0xfd);

    return len;
}


static audex_sniff_type_t
audex_sniff_frames(const u_char *p, size_t n, int eof,
    size_t (*frame)(const u_char *h, unsigned *key), size_t header,
    audex_sniff_type_t type)
{
    size_t    len;
    unsigned  key, next;

    if (n < header) {
        return AUDEX_SNIFF_UNKNOWN;
    }

    len = frame(p, &key);

    if (len == 0) {
        return AUDEX_SNIFF_UNKNOWN;
    }

    if (n < len + header) {

        /*
         * Never claim what cannot be checked: this rejects ADTS frames
         * longer than 2 KB (about 700 kb/s), which nobody uploads.
         */
        if (len + header > AUDEX_SNIFF_MAX) {
            return AUDEX_SNIFF_UNKNOWN;
        }

        if (!eof) {
            return AUDEX_SNIFF_NEED_MORE;
        }

        /* a stream of one whole frame is still a stream */
        return n >= len ? type : AUDEX_SNIFF_UNKNOWN;
    }

    if (frame(p + len, &next) == 0 || next != key) {
        return AUDEX_SNIFF_UNKNOWN;
    }

    return type;
}


audex_sniff_type_t
audex_sniff(const u_char *p, size_t n, int eof)
{
    int                 rc;
    audex_sniff_type_t  type;

    if (n < AUDEX_SNIFF_MIN && !eof) {
        return AUDEX_SNIFF_NEED_MORE;
    }

    if (n >= 12 && memcmp(p + 4, "ftyp", 4) == 0) {
        return audex_sniff_ftyp(p);
    }

    if (n >= 8 && audex_sniff_qt_atom(p)) {
        return AUDEX_SNIFF_MOV;
    }

    if (n >= 4 && memcmp(p, "\x1a\x45\xdf\xa3", 4) == 0) {
        return audex_sniff_ebml(p, n, eof);
    }

    if (n >= 12
        && (memcmp(p, "RIFF", 4) == 0 || memcmp(p, "RF64", 4) == 0))
    {
        if (memcmp(p + 8, "AVI ", 4) == 0) {
            return AUDEX_SNIFF_AVI;
        }

        if (memcmp(p + 8, "WAVE", 4) == 0) {
            return AUDEX_SNIFF_WAV;
        }

        return AUDEX_SNIFF_UNKNOWN;
    }

    if (n >= 16 && memcmp(p, audex_sniff_asf_guid, 16) == 0) {
        return AUDEX_SNIFF_ASF;
    }

    if (n >= 9 && memcmp(p, "FLV\x01", 4) == 0) {
        return AUDEX_SNIFF_FLV;
    }

    if (n >= 5 && memcmp(p, "OggS\0", 5) == 0) {
        return AUDEX_SNIFF_OGG;
    }

    if (n >= 4 && memcmp(p, "fLaC", 4) == 0) {
        return AUDEX_SNIFF_FLAC;
    }

    if (n >= 4 && memcmp(p, "\0\0\x01\xba", 4) == 0) {
        return AUDEX_SNIFF_MPEGPS;
    }

    /* ID3v2: version and revision below 0xff, a syncsafe size */
    if (n >= 10 && memcmp(p, "ID3", 3) == 0 && p[3] != 0xff && p[4] != 0xff
        && ((p[6] | p[7] | p[8] | p[9]) & 0x80) == 0)
    {
        return AUDEX_SNIFF_MP3;
    }

    if (n >= 4 && memcmp(p, "ADIF", 4) == 0) {
        return AUDEX_SNIFF_AAC;
    }

    rc = audex_sniff_ts(p, n, eof, 0, AUDEX_SNIFF_TS_PACKET, 1);

    if (rc == 0) {
        rc = audex_sniff_ts(p, n, eof, 4, AUDEX_SNIFF_M2TS_PACKET, 2);
    }

    if (rc != 0) {
        return rc < 0 ? AUDEX_SNIFF_NEED_MORE : AUDEX_SNIFF_MPEGTS;
    }

    type = audex_sniff_frames(p, n, eof, audex_sniff_adts_frame, 7,
                              AUDEX_SNIFF_AAC);

    if (type != AUDEX_SNIFF_UNKNOWN) {
        return type;
    }

    return audex_sniff_frames(p, n, eof, audex_sniff_mpa_frame, 4,
                              AUDEX_SNIFF_MP3);
}


const char *
audex_sniff_name(audex_sniff_type_t type)
{
    switch (type) {
    case AUDEX_SNIFF_NEED_MORE:
        return "need more";
    case AUDEX_SNIFF_UNKNOWN:
        return "unknown";
    case AUDEX_SNIFF_MP4:
        return "mp4";
    case AUDEX_SNIFF_MOV:
        return "mov";
    case AUDEX_SNIFF_3GP:
        return "3gp";
    case AUDEX_SNIFF_MATROSKA:
        return "matroska";
    case AUDEX_SNIFF_WEBM:
        return "webm";
    case AUDEX_SNIFF_AVI:
        return "avi";
    case AUDEX_SNIFF_WAV:
        return "wav";
    case AUDEX_SNIFF_FLV:
        return "flv";
    case AUDEX_SNIFF_MPEGTS:
        return "mpegts";
    case AUDEX_SNIFF_MPEGPS:
        return "mpeg";
    case AUDEX_SNIFF_OGG:
        return "ogg";
    case AUDEX_SNIFF_MP3:
        return "mp3";
    case AUDEX_SNIFF_FLAC:
        return "flac";
    case AUDEX_SNIFF_AAC:
        return "aac";
    case AUDEX_SNIFF_ASF:
        return "asf";
    }

    return "unknown";
}


const char *
audex_sniff_mime(audex_sniff_type_t type)
{
    switch (type) {
    case AUDEX_SNIFF_MP4:
        return "video/mp4";
    case AUDEX_SNIFF_MOV:
        return "video/quicktime";
    case AUDEX_SNIFF_3GP:
        return "video/3gpp";
    case AUDEX_SNIFF_MATROSKA:
        return "video/x-matroska";
    case AUDEX_SNIFF_WEBM:
        return "video/webm";
    case AUDEX_SNIFF_AVI:
        return "video/x-msvideo";
    case AUDEX_SNIFF_WAV:
        return "audio/wav";
    case AUDEX_SNIFF_FLV:
        return "video/x-flv";
    case AUDEX_SNIFF_MPEGTS:
        return "video/mp2t";
    case AUDEX_SNIFF_MPEGPS:
        return "video/mpeg";
    case AUDEX_SNIFF_OGG:
        return "application/ogg";
    case AUDEX_SNIFF_MP3:
        return "audio/mpeg";
    case AUDEX_SNIFF_FLAC:
        return "audio/flac";
    case AUDEX_SNIFF_AAC:
        return "audio/aac";
    case AUDEX_SNIFF_ASF:
        return "video/x-ms-asf";
    case AUDEX_SNIFF_NEED_MORE:
    case AUDEX_SNIFF_UNKNOWN:
        break;
    }

    return "application/octet-stream";
}
