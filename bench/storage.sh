#!/usr/bin/env bash
# Does audex's cost grow with the file or with the store?  One run of the
# whole system as `make run` starts it (FerretDB on SQLite, unless
# MONGODB_URI names a MongoDB), a 15-minute video of about 110 MB, and
# for each step a reference measured in the same run on the same backend:
#
#   upload     POST /upload           vs  raw insert of 255 KiB chunks
#              (each the median of 3)
#   job        upload done -> "done"  vs  ffmpeg CLI, same file, 192k CBR
#   download   GET /download          vs  a client reading the same chunks
#              (MB/s and first byte)      by _id, one find per chunk
#   DELETE     DELETE /jobs/<id>
#
# first with empty buckets, then again after filling both buckets with
# FILL_MB (default 1024) of other users' files.  Prints the figures, the
# ratios and how much each got worse with the full store.  Timings vary
# between runs and machines; the ratios are the point.
#
# usage: bench/storage.sh [FILL_MB]
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
fill_mb=${1:-1024}
work=$top/build/bench/storage
video=$top/build/bench/15min.mp4

cd "$top"
make -s all >/dev/null

# 15 minutes, 640x360 MPEG-4 video and 128k AAC: some 110 MB (made once)
if [ ! -s "$video" ]; then
    echo "bench/storage.sh: making $video (once)" >&2
    mkdir -p "$(dirname "$video")"
    ffmpeg -loglevel error -y \
        -f lavfi -i testsrc2=size=640x360:rate=25:duration=900 \
        -f lavfi -i sine=frequency=440:duration=900:sample_rate=48000 \
        -c:v mpeg4 -b:v 850k -c:a aac -b:a 128k -ac 2 \
        -movflags +faststart "$video.part.mp4"
    mv "$video.part.mp4" "$video"
fi

port() {
    /usr/bin/python3 -c 'import socket; s = socket.socket();
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

rm -rf "$work"
mkdir -p "$work"

export AUDEX_RUN_DIR=$work/run
export AUDEX_PORT=$(port) AUDEX_REDIS_PORT=$(port) AUDEX_SMTP_PORT=$(port)
export AUDEX_MONGO_PORT=$(port)
export AUDEX_CONVERTER_METRICS_PORT=$(port)
export AUDEX_NOTIFIER_METRICS_PORT=$(port)

trap 'scripts/run.sh stop >/dev/null 2>&1 || true' EXIT
scripts/run.sh start >/dev/null

uri=${MONGODB_URI:-mongodb://127.0.0.1:$AUDEX_MONGO_PORT/audex}
echo -n 'bench-pw' | MONGODB_URI=$uri build/bin/audex-user add \
    bench@example.com >/dev/null

/usr/bin/python3 - "$uri" "$AUDEX_PORT" "$video" "$fill_mb" "$work" <<'PY'
import hashlib, http.client, json, os, struct, subprocess, sys, time
import base64
import bson, pymongo

uri, port, video, fill_mb, work = sys.argv[1:6]
port, fill_mb = int(port), int(fill_mb)
db = pymongo.MongoClient(uri).get_default_database()
CHUNK = 255 * 1024
size = os.path.getsize(video)


def chunk_id(fid, n):
    # lib/audex_schema.h
    return bson.ObjectId(hashlib.sha256(fid.binary
                                        + struct.pack(">i", n)).digest()[:12])


def call(method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def token():
    auth = base64.b64encode(b"bench@example.com:bench-pw").decode()
    st, body = call("POST", "/login", headers={
        "Authorization": "Basic " + auth, "Accept": "text/plain"})
    assert st == 200, (st, body)
    return body.decode().strip()


def insert_files(bucket, total_mb, file_mb):
    """other users' files, written chunk by chunk as audex writes them;
    returns the insert rate in MB/s"""
    data = os.urandom(CHUNK)
    chunks = db[bucket + ".chunks"]
    files = db[bucket + ".files"]
    done = 0
    t0 = time.monotonic()
    while done < total_mb * 2**20:
        fid = bson.ObjectId()
        n = 0
        while n * CHUNK < file_mb * 2**20:
            chunks.insert_one({"_id": chunk_id(fid, n), "files_id": fid,
                               "n": n, "data": data})
            n += 1
        files.insert_one({"_id": fid, "length": n * CHUNK,
                          "chunkSize": CHUNK, "filename": "other.bin",
                          "metadata": {"owner_id": "0" * 24}})
        done += n * CHUNK
    return done / 2**20 / (time.monotonic() - t0)


def raw_read(fid, length):
    """a plain client reading a file's chunks by _id: MB/s, first chunk"""
    chunks = db["mp3s.chunks"]
    t0 = time.monotonic()
    first = None
    got = 0
    n = 0
    while got < length:
        c = chunks.find_one({"_id": chunk_id(fid, n)})
        got += len(c["data"])
        if first is None:
            first = time.monotonic() - t0
        n += 1
    return got / 2**20 / (time.monotonic() - t0), first


def ffmpeg_cli():
    out = os.path.join(work, "cli.mp3")
    t0 = time.monotonic()
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", video,
                    "-vn", "-c:a", "libmp3lame", "-b:a", "192k", out],
                   check=True)
    return time.monotonic() - t0


def upload(auth):
    """one POST /upload streamed from disk: (MB/s, job id)"""
    with open(video, "rb") as f:
        t0 = time.monotonic()
        st, body = call("POST", "/upload?filename=15min.mp4", body=f,
                        headers=dict(auth, **{
                            "Content-Type": "video/mp4",
                            "Content-Length": str(size)}))
        t = time.monotonic() - t0
    assert st == 202, (st, body)
    return size / 2**20 / t, json.loads(body)["job_id"]


def wait_job(auth, job):
    while True:
        st, body = call("GET", "/jobs/" + job, headers=auth)
        doc = json.loads(body)
        if doc.get("state") in ("done", "failed"):
            return doc
        time.sleep(0.1)


def median(xs):
    return sorted(xs)[len(xs) // 2]


def one_round(tok):
    auth = {"Authorization": "Bearer " + tok}
    r = {}

    # the reference for uploads: the same size inserted raw (median of 3)
    rates = []
    for _ in range(3):
        rates.append(insert_files("rawbench", size // 2**20, size // 2**20))
        db["rawbench.chunks"].drop()
        db["rawbench.files"].drop()
    r["raw_insert"] = median(rates)

    # the job of the first upload, from the upload's answer to "done"
    rate, job = upload(auth)
    t0 = time.monotonic()
    doc = wait_job(auth, job)
    r["job"] = time.monotonic() - t0
    assert doc["state"] == "done", doc
    r["cli"] = ffmpeg_cli()

    # two more uploads for the median; their jobs finish and go before
    # anything else is measured
    rates = [rate]
    for _ in range(2):
        rate, extra = upload(auth)
        rates.append(rate)
        wait_job(auth, extra)
        call("DELETE", "/jobs/" + extra, headers=auth)
    r["upload"] = median(rates)

    # the download, and a client reading the same chunks by _id
    fid = doc["mp3_fid"]
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    t0 = time.monotonic()
    c.request("GET", "/download?fid=" + fid, headers=auth)
    resp = c.getresponse()
    first = resp.read(1)
    r["ttfb"] = time.monotonic() - t0
    n = len(first) + len(resp.read())
    r["download"] = n / 2**20 / (time.monotonic() - t0)
    c.close()
    r["raw_read"], r["raw_first"] = raw_read(bson.ObjectId(fid), n)
    r["mp3_mb"] = n / 2**20

    t0 = time.monotonic()
    st, body = call("DELETE", "/jobs/" + job, headers=auth)
    r["delete"] = time.monotonic() - t0
    assert st in (200, 204), (st, body)
    return r


tok = token()
print("video: %.1f MB, 15 min; backend: %s" % (size / 2**20, uri))
empty = one_round(tok)
print("filling both buckets with %d MB of other files..." % fill_mb,
      flush=True)
fill = insert_files("videos", fill_mb // 2, 100)
fill = (fill + insert_files("mp3s", fill_mb // 2, 10)) / 2
print("  raw insert while filling: %.1f MB/s" % fill)
full = one_round(tok)

rows = [
    ("upload MB/s", "upload", "raw insert MB/s", "raw_insert", 1),
    ("job s", "job", "ffmpeg CLI s", "cli", 1),
    ("download MB/s", "download", "raw read by _id MB/s", "raw_read", 1),
    ("first byte ms", "ttfb", "raw first chunk ms", "raw_first", 1000),
    ("DELETE ms", "delete", None, None, 1000),
]
print()
print("%-15s %10s %10s %8s   %-22s %10s %10s" % (
    "", "empty", "full", "change", "reference", "empty", "full"))
for name, k, ref, rk, scale in rows:
    change = (full[k] - empty[k]) / empty[k] * 100
    line = "%-15s %10.2f %10.2f %+7.0f%%" % (name, empty[k] * scale,
                                            full[k] * scale, change)
    if ref:
        line += "   %-22s %10.2f %10.2f" % (ref, empty[rk] * scale,
                                            full[rk] * scale)
    print(line)
print()
print("ratios (empty / full):")
print("  upload / raw insert       %.2f / %.2f" % (
    empty["upload"] / empty["raw_insert"], full["upload"] / full["raw_insert"]))
print("  job / ffmpeg CLI          %.2f / %.2f" % (
    empty["job"] / empty["cli"], full["job"] / full["cli"]))
print("  download / raw read       %.2f / %.2f" % (
    empty["download"] / empty["raw_read"], full["download"] / full["raw_read"]))
print("  MP3: %.1f MB" % full["mp3_mb"])
PY
