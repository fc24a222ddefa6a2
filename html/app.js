/*
 * audex web page: log in, upload a video, follow its conversion, download
 * the MP3, list recent jobs.  Plain browser JavaScript, no framework but
 * tus-js-client for the uploads (/tus.min.js); the API is the one in
 * /openapi.yaml.
 *
 * The token lives in sessionStorage: it is gone when the tab closes, and
 * other tabs of the same site do not see it.
 */

'use strict';

(function () {

var POLL_MS = 1000;
var POLL_MAX_MS = 10000;
var KEY = 'audex.session';
var TUS_ENDPOINT = '/files/';

/*
 * Waits between tries of an upload, ms: three minutes in all, well past
 * the 60 s lease an nginx killed mid-PATCH leaves on its upload (423
 * until it runs out; bench/tus-trial.sh saw 69 s from the kill).
 */
var RETRY_MS = [0, 1000, 3000, 5000, 10000, 10000, 15000, 15000, 30000,
                30000, 60000];

/*
 * Bytes a PATCH: 16 GridFS chunks (4 MB), so that a PATCH ends on a
 * chunk and the server writes no tail.  The bar shows what the server
 * answered after each PATCH: Chromium's progress events within one run
 * far ahead of what left the machine (a 300 MB upload read 100% while
 * the server had 25%).
 */
var CHUNK_BYTES = 16 * 255 * 1024;

var $ = function (id) { return document.getElementById(id); };

var session = null;     /* { token, email, expires } */
var upload = null;      /* the tus.Upload in flight */
var paused = null;      /* the upload waiting for the network */
var pollTimer = null;
var pollJob = null;
var pollFailures = 0;


/* Words for answers that carry no {"error"} (nginx's own pages). */

var STATUS_WORDS = {
    0: 'The server cannot be reached. Check your connection.',
    401: 'Your session has ended. Please log in again.',
    413: 'The file is too large for this server.',
    429: 'Too many attempts. Wait a moment and try again.',
    502: 'The server is not answering. Try again shortly.',
    503: 'The service is busy. Try again shortly.',
    504: 'The server took too long to answer. Try again shortly.'
};


function errorText(status, body) {
    var msg = null;

    try {
        msg = JSON.parse(body).error;
    } catch (e) {
        /* not JSON: words of our own below */
    }

    if (typeof msg === 'string' && msg.length) {
        return msg.charAt(0).toUpperCase() + msg.slice(1) + '.';
    }

    return STATUS_WORDS[status] || 'Something went wrong (HTTP ' + status + ').';
}


function showError(text) {
    var box = $('error');

    box.textContent = text || '';
    box.hidden = !text;
}


function say(text) {
    $('status').textContent = text;
}


/* fetch() with the token; resolves to { status, body, json } */

function api(method, path, extra) {
    var headers = (extra && extra.headers) || {};

    if (session && !headers.Authorization) {
        headers.Authorization = 'Bearer ' + session.token;
    }

    return fetch(path, {
        method: method,
        headers: headers,
        cache: 'no-store',
        /*
         * The token travels in our own header.  Without credentials, a
         * 401 from /login (which challenges Basic) comes back to us
         * instead of opening the browser's password dialog.
         */
        credentials: 'omit'
    }).then(function (res) {
        return res.text().then(function (body) {
            var json = null;
            try { json = JSON.parse(body); } catch (e) { /* not JSON */ }
            return { status: res.status, body: body, json: json };
        });
    }, function () {
        return { status: 0, body: '', json: null };
    });
}


/* A 401 on a call made with our token: the session is over. */

function expired(r) {
    if (r.status === 401 && session) {
        logout(errorText(401, ''));
        return true;
    }
    return false;
}


/* Session */

function basic(email, password) {
    /* btoa() takes Latin-1 only: encode UTF-8 bytes first */
    var bytes = new TextEncoder().encode(email + ':' + password);
    var s = '';
    for (var i = 0; i < bytes.length; i++) {
        s += String.fromCharCode(bytes[i]);
    }
    return 'Basic ' + btoa(s);
}


function loadSession() {
    try {
        var s = JSON.parse(sessionStorage.getItem(KEY));
        if (s && s.token && s.expires > Date.now()) {
            return s;
        }
    } catch (e) {
        /* nothing usable stored */
    }
    sessionStorage.removeItem(KEY);
    return null;
}


function login(ev) {
    var email = $('email').value.trim();
    var password = $('password').value;
    var button = $('login-button');

    ev.preventDefault();

    if (!email || !password) {
        showError('Enter your email and your password.');
        $(email ? 'password' : 'email').focus();
        return;
    }

    button.disabled = true;
    showError('');
    say('Logging in…');

    api('POST', '/login', {
        headers: { Authorization: basic(email, password) }
    }).then(function (r) {
        button.disabled = false;
        say('');

        if (r.status !== 200 || !r.json || !r.json.token) {
            showError('Login failed: ' + errorText(r.status, r.body)
                      + (r.status === 401
                         ? ' No account yet? Accounts are made on the'
                           + ' server with audex-user.' : ''));
            $('password').select();
            $('password').focus();
            return;
        }

        session = {
            token: r.json.token,
            email: email,
            expires: Date.now() + 1000 * (r.json.expires_in || 3600)
        };
        sessionStorage.setItem(KEY, JSON.stringify(session));
        $('password').value = '';
        enter();
        $('upload-title').focus();
    });
}


function logout(why) {
    stopPolling();
    if (upload) {
        upload.abort();
        upload = null;
    }
    session = null;
    sessionStorage.removeItem(KEY);
    showError(why || '');
    say(why ? '' : 'You are logged out.');
    $('app-view').hidden = true;
    $('login-view').hidden = false;
    $('whoami').hidden = true;
    $('logout').hidden = true;
    $('email').focus();
}


function enter() {
    $('login-view').hidden = true;
    $('app-view').hidden = false;
    $('whoami').textContent = session.email;
    $('whoami').hidden = false;
    $('logout').hidden = false;
    say('');
    loadJobs();
    showUnfinished();
}


/* Choosing a file: the picker or a drop */

function choose(file) {
    var name = $('file-name');

    if (!file) {
        name.textContent = '';
        $('upload-button').disabled = true;
        return;
    }

    name.textContent = file.name + ' (' + size(file.size) + ')';
    $('upload-button').disabled = false;
    $('result').hidden = true;
    say(file.name + ' is ready to convert.');

    if (window.tus) {
        newUpload(file, {}).findPreviousUploads().then(function (previous) {
            if (previous.length && !upload
                && $('file').files[0] === file)
            {
                say(file.name + ' was partly uploaded: converting it goes'
                    + ' on where the upload stopped.');
            }
        });
    }
}


function size(n) {
    var units = ['bytes', 'KB', 'MB', 'GB'];
    var i = 0;
    while (n >= 1024 && i < units.length - 1) {
        n /= 1024;
        i++;
    }
    return (i ? n.toFixed(1) : n) + ' ' + units[i];
}


function setupDrop() {
    var drop = $('drop');
    var input = $('file');

    input.addEventListener('change', function () {
        choose(input.files[0]);
    });

    ['dragenter', 'dragover'].forEach(function (t) {
        drop.addEventListener(t, function (ev) {
            ev.preventDefault();
            drop.classList.add('over');
        });
    });

    ['dragleave', 'drop'].forEach(function (t) {
        drop.addEventListener(t, function () {
            drop.classList.remove('over');
        });
    });

    /* a file dropped beside the zone must not replace the page */
    ['dragover', 'drop'].forEach(function (t) {
        window.addEventListener(t, function (ev) {
            ev.preventDefault();
        });
    });

    drop.addEventListener('drop', function (ev) {
        var files = ev.dataTransfer && ev.dataTransfer.files;
        ev.preventDefault();
        if (files && files.length) {
            /* keep the input in step, so the form and a retry see it */
            try { input.files = files; } catch (e) { /* old browsers */ }
            choose(files[0]);
        }
    });
}


/*
 * Upload: tus (README "Resumable uploads"), with tus-js-client, in
 * PATCHes of CHUNK_BYTES; the server keeps every byte it got, so after a
 * dropped connection the client asks where to go on (HEAD) and sends
 * only the rest.  The upload's URL is kept in localStorage under a
 * fingerprint of the account and the file: after a reload, or a browser
 * that was closed, choosing the same file again goes on where it
 * stopped.  The token is not kept there, and the URL is worth nothing
 * without it.
 */

function fingerprintPrefix() {
    /* another account's upload of the same file is not ours to resume */
    return 'audex ' + session.email + ' ';
}


function fingerprint(file, options) {
    return Promise.resolve(fingerprintPrefix()
                           + [file.name, file.type, file.size,
                              file.lastModified, options.endpoint].join(' '));
}


function newUpload(file, metadata) {
    var up = new tus.Upload(file, {
        endpoint: TUS_ENDPOINT,
        headers: { Authorization: 'Bearer ' + session.token },
        metadata: metadata,
        fingerprint: fingerprint,
        removeFingerprintOnSuccess: true,
        chunkSize: CHUNK_BYTES,
        retryDelays: RETRY_MS,
        onShouldRetry: function (err) {
            return retrying(up, file, err);
        },
        onProgress: function (sent, total) {
            var bar = $('upload-progress');
            if (up === upload) {
                setBar(bar, Math.floor(100 * sent / total), 'uploaded');
                say('Uploading ' + file.name + ': ' + bar.value + '%');
            }
        },
        onSuccess: function (payload) {
            uploadDone(up, payload.lastResponse);
        },
        onError: function (err) {
            uploadFailed(up, file, err);
        }
    });

    return up;
}


/* the unfinished uploads of this account, as localStorage has them */

function unfinished() {
    var key = 'tus::' + fingerprintPrefix();

    if (!window.tus || !tus.canStoreURLs) {
        return Promise.resolve([]);
    }

    return tus.defaultOptions.urlStorage.findAllUploads().then(function (all) {
        return all.filter(function (u) {
            return u.urlStorageKey.indexOf(key) === 0;
        });
    });
}


function showUnfinished() {
    unfinished().then(function (list) {
        var box = $('unfinished');
        var names = list.map(function (u) {
            return (u.metadata && u.metadata.filename) || 'a video';
        });

        box.textContent = names.length
            ? 'Not finished: ' + names.join(', ') + '. Choose the same file'
              + ' again to go on where it stopped.'
            : '';
        box.hidden = !names.length;
    });
}


function newest(list) {
    return list.reduce(function (a, b) {
        return Date.parse(b.creationTime) > Date.parse(a.creationTime) ? b : a;
    });
}


function startUpload(ev) {
    var file = $('file').files[0];
    var enc = $('encoding').value;
    var metadata;
    var up;

    ev.preventDefault();

    if (!file) {
        showError('Choose a video first.');
        return;
    }

    if (!window.tus || !tus.isSupported) {
        showError('This browser cannot upload here (no tus-js-client).');
        return;
    }

    /* the options count when the upload is created, not when resumed */
    metadata = { filename: file.name };
    if (enc) {
        metadata[enc.split('=')[0]] = enc.split('=')[1];
    }

    stopPolling();
    showError('');
    $('result').hidden = true;
    $('progress-box').hidden = false;
    setBar($('upload-progress'), 0, 'uploaded');
    setBar($('convert-progress'), 0, 'converted');
    $('upload-button').disabled = true;
    $('cancel-button').hidden = false;
    say('Uploading ' + file.name + '…');

    up = newUpload(file, metadata);
    upload = up;

    up.findPreviousUploads().then(function (previous) {
        if (up !== upload) {
            return;     /* cancelled meanwhile */
        }
        if (previous.length) {
            up.resumeFromPreviousUpload(newest(previous));
            say('Resuming the upload of ' + file.name + '…');
        }
        up.start();
    });
}


/* the upload's end, the state of the form back to "choose" */

function uploadEnded() {
    upload = null;
    $('cancel-button').hidden = true;
    $('upload-button').disabled = false;
}


/*
 * Whether tus-js-client tries again: a network error, a server error,
 * and 409 or 423 (the server still holds the upload for the request that
 * broke off, or has more of it than we thought): it asks (HEAD) where
 * to go on.  Offline, it stops, and the page goes on when the browser is
 * back online.
 */

function retrying(up, file, err) {
    var status = err.originalResponse ? err.originalResponse.getStatus() : 0;

    if (!navigator.onLine
        || !(status === 0 || status === 409 || status === 423
             || status >= 500))
    {
        return false;
    }

    if (up === upload) {
        say('The upload of ' + file.name + ' broke off at '
            + $('upload-progress').value + '%. Trying again…');
    }

    return true;
}


function uploadFailed(up, file, err) {
    var res = err.originalResponse;
    var r = { status: res ? res.getStatus() : 0,
              body: res ? res.getBody() : '' };

    if (up !== upload || expired(r)) {
        return;
    }

    if (r.status === 0 && !navigator.onLine) {
        pauseOffline(up);
        return;
    }

    uploadEnded();
    $('progress-box').hidden = true;
    say('');
    showError('Upload failed: ' + errorText(r.status, r.body)
              + (r.status === 0 || r.status >= 500
                 ? ' Convert again to go on where it stopped.' : ''));
    showUnfinished();
}


/*
 * Offline: the upload stops at once (a request in flight may otherwise
 * hang on a connection that went nowhere), and goes on by itself when
 * the browser is back online.
 */

function pauseOffline(up) {
    if (paused === up) {
        return;
    }
    paused = up;
    up.abort();
    say('You are offline. The upload of ' + up.file.name + ' goes on'
        + ' where it stopped when the connection is back.');
}


function resumeOnline() {
    var up = paused;

    paused = null;

    if (up && up === upload) {
        say('Online again: resuming the upload of ' + up.file.name + '…');
        up.start();
    }
}


/* the last byte is in: the answer names the job (Audex-Job-Id) */

function uploadDone(up, res) {
    var job = res.getHeader('Audex-Job-Id');

    if (up !== upload) {
        return;
    }

    uploadEnded();
    showUnfinished();

    if (!/^[0-9a-f]{24}$/.test(job || '')) {
        $('progress-box').hidden = true;
        showError('Upload failed: the server named no job.');
        return;
    }

    setBar($('upload-progress'), 100, 'uploaded');
    say('Uploaded. Waiting for a converter…');
    poll('/jobs/' + job);
    loadJobs();
}


function cancelUpload() {
    var up = upload;

    if (!up) {
        return;
    }

    uploadEnded();
    $('progress-box').hidden = true;
    say('Upload cancelled.');

    /* DELETE: the server forgets it, and so does localStorage */
    up.abort(true).then(showUnfinished, showUnfinished);
}


/* Conversion: GET /jobs/<id> every second until done or failed */

function poll(url) {
    pollJob = url;

    api('GET', url).then(function (r) {
        var job = r.json;

        if (pollJob !== url) {
            return;     /* a newer upload took over */
        }

        if (expired(r)) {
            return;
        }

        if (r.status !== 200 || !job) {
            /* a hiccup (503, network): say so, keep trying, less often */
            pollFailures++;
            say('Checking the conversion: ' + errorText(r.status, r.body)
                + ' Retrying…');
            pollTimer = setTimeout(function () { poll(url); },
                                   Math.min(POLL_MS << pollFailures,
                                            POLL_MAX_MS));
            return;
        }

        pollFailures = 0;

        showJob(job);

        if (job.state === 'done' || job.state === 'failed') {
            pollJob = null;
            loadJobs();
            return;
        }

        pollTimer = setTimeout(function () { poll(url); }, POLL_MS);
    });
}


function stopPolling() {
    clearTimeout(pollTimer);
    pollTimer = null;
    pollJob = null;
    pollFailures = 0;
}


/* a bar, its percentage as text beside it, and for screen readers */

function setBar(bar, value, what) {
    bar.value = value;
    bar.setAttribute('aria-valuetext', value + '% ' + what);
    $(bar.id.replace('-progress', '-pct')).textContent = value + '%';
}


/* The job followed: its bar, the status line and its line in the list
 * (one state everywhere, from the same answer). */

function showJob(job) {
    var bar = $('convert-progress');
    var name = job.filename || 'your video';

    setBar(bar, job.state === 'done' ? 100 : job.progress || 0, 'converted');
    updateJobLine(job);

    if (job.state === 'done') {
        say(name + ' is converted.');
        $('download').href = job.download_url;
        $('result').hidden = !job.download_url;
        $('download').focus();

    } else if (job.state === 'failed') {
        say('');
        showError('The conversion of ' + name + ' failed: '
                  + (job.error || 'no reason given') + '.');

    } else if (job.state === 'converting') {
        say('Converting ' + name + ': ' + (job.progress || 0) + '%');

    } else {
        say(name + ' is waiting for a converter…');
    }
}


/* Recent jobs */

var STATE_WORDS = {
    queued: 'Waiting',
    converting: 'Converting',
    done: 'Done',
    failed: 'Failed',
    deleting: 'Deleting'
};


function stateText(job) {
    return (STATE_WORDS[job.state] || job.state)
           + (job.state === 'converting' ? ' ' + (job.progress || 0) + '%'
                                         : '');
}


/* the list's line of a job, brought to the state the status line shows */

function updateJobLine(job) {
    var li = document.querySelector('#jobs li[data-job-id="'
                                    + job.job_id + '"]');

    if (!li || (job.state !== 'queued' && job.state !== 'converting')) {
        return;     /* done and failed: loadJobs() redraws the list */
    }

    li.className = 'job job-' + job.state;
    li.querySelector('.job-state').textContent = stateText(job);
}


function loadJobs() {
    api('GET', '/jobs?limit=20').then(function (r) {
        if (expired(r)) {
            return;
        }
        if (r.status !== 200 || !r.json) {
            showError('Cannot list your jobs: ' + errorText(r.status, r.body));
            return;
        }
        renderJobs(r.json.jobs || []);
    });
}


function renderJobs(jobs) {
    var list = $('jobs');

    list.textContent = '';
    $('jobs-empty').hidden = jobs.length > 0;

    jobs.forEach(function (job) {
        var li = document.createElement('li');
        var name = document.createElement('span');
        var state = document.createElement('span');
        var when = document.createElement('time');

        li.className = 'job job-' + job.state;
        li.dataset.jobId = job.job_id;

        name.className = 'job-name';
        name.textContent = job.filename || job.job_id;

        state.className = 'job-state';
        state.textContent = stateText(job);

        li.appendChild(name);
        li.appendChild(state);

        if (job.created_at) {
            when.dateTime = job.created_at;
            when.textContent = new Date(job.created_at).toLocaleString();
            li.appendChild(when);
        }

        if (job.state === 'failed' && job.error) {
            var err = document.createElement('span');
            err.className = 'job-error';
            err.textContent = job.error;
            li.appendChild(err);
        }

        if (job.download_url) {
            var a = document.createElement('a');
            a.href = job.download_url;
            a.className = 'button small';
            a.setAttribute('download', '');
            a.textContent = 'Download';
            a.setAttribute('aria-label', 'Download ' + name.textContent);
            li.appendChild(a);
        }

        if (job.state === 'done' || job.state === 'failed') {
            var del = document.createElement('button');
            del.type = 'button';
            del.className = 'secondary small';
            del.textContent = 'Delete';
            del.setAttribute('aria-label', 'Delete ' + name.textContent);
            del.addEventListener('click', function () {
                deleteJob(job, del);
            });
            li.appendChild(del);
        }

        list.appendChild(li);
    });
}


function deleteJob(job, button) {
    button.disabled = true;

    api('DELETE', '/jobs/' + job.job_id).then(function (r) {
        if (expired(r)) {
            return;
        }
        if (r.status !== 204) {
            button.disabled = false;
            showError('Cannot delete ' + (job.filename || 'the job') + ': '
                      + errorText(r.status, r.body));
            return;
        }
        say((job.filename || 'The job') + ' is deleted.');
        loadJobs();
        $('jobs-title').focus();
    });
}


function init() {
    $('login-form').addEventListener('submit', login);
    $('logout').addEventListener('click', function () {
        /* the server revokes the token: a copy of it is worth nothing */
        api('POST', '/logout');
        logout('');
    });
    $('upload-form').addEventListener('submit', startUpload);
    $('cancel-button').addEventListener('click', cancelUpload);
    window.addEventListener('offline', function () {
        if (upload) {
            pauseOffline(upload);
        }
    });
    window.addEventListener('online', resumeOnline);
    $('refresh').addEventListener('click', loadJobs);
    $('jobs-title').tabIndex = -1;
    setupDrop();

    session = loadSession();
    if (session) {
        enter();
    } else {
        $('email').focus();
    }
}


document.addEventListener('DOMContentLoaded', init);

})();
