/*
 * The page's resumable upload tried by hand (issue #16): a big video
 * uploaded from the page in headless Chromium, its connections killed
 * twice and nginx restarted once, as the server's offset passes a
 * quarter, a half and three quarters; then the job followed to its MP3.
 * Run by bench/tus-trial.sh, which starts the system, gives the commands
 * that interrupt, and has nginx log every request with its length.
 *
 * usage: node tus-trial.js URL EMAIL PASSWORD VIDEO OUTDIR LOG
 *
 *   AUDEX_TRIAL_KILL     shell command: kill the browser's connections
 *   AUDEX_TRIAL_RESTART  shell command: stop nginx (SIGTERM), start it
 *   AUDEX_TRIAL_PID      nginx's pid file
 *
 * LOG is nginx's log of the trial: "$msec $request_time $request_method
 * $uri $status $request_length $http_upload_offset $content_length".
 * Prints what happened and, for each interruption, the bytes that
 * reached nginx and had to be sent again.
 */

'use strict';

const fs = require('fs');
const path = require('path');
const { execSync } = require('child_process');

const web = process.env.AUDEX_WEB_DIR;
const { chromium } = require(path.join(web, 'node_modules', 'playwright-core'));

const [base, email, password, video, outdir, logfile] = process.argv.slice(2);
const size = fs.statSync(video).size;

const steps = [
    { at: 0.25, what: 'connection killed', cmd: process.env.AUDEX_TRIAL_KILL },
    { at: 0.50, what: 'connection killed', cmd: process.env.AUDEX_TRIAL_KILL },
    { at: 0.75, what: 'nginx restarted', cmd: process.env.AUDEX_TRIAL_RESTART }
];


function say(line) {
    console.log(new Date().toISOString().slice(11, 23) + ' ' + line);
}


/* the upload's PATCHes nginx logged: start, offset, status, body bytes
 * (the request's length less its header: that of a PATCH that
 * completed, give or take the digits of Upload-Offset) */
function logged(url) {
    const all = fs.readFileSync(logfile, 'utf8').split('\n')
        .map((l) => l.split(' '))
        .filter((f) => f[2] === 'PATCH' && f[3] === url)
        .map((f) => ({ start: 1000 * (Number(f[0]) - Number(f[1])),
                       end: 1000 * Number(f[0]),
                       offset: Number(f[6]), status: Number(f[4]),
                       length: Number(f[5]), declared: Number(f[7]) }));
    const done = all.find((p) => p.status === 204);
    const head = done.length - done.declared;

    return all.map((p) => ({ ...p, bytes: p.length - head
        - (String(p.offset).length - String(done.offset).length) }))
        .sort((x, y) => x.start - y.start);
}


/*
 * For each interruption: the PATCH it caught (in progress at that
 * moment: nginx logs a request when it ends, with how long it took; a
 * killed nginx logs nothing, and then only a bound is known: the rest of
 * that PATCH), where the upload went on (the first PATCH after it that
 * nginx completed), and the PATCHes refused meanwhile (409, 423).  Their
 * bodies are not in the log: nginx reads and drops what the browser
 * sends of them (up to a whole PATCH each).
 */
function report(url, sent, times) {
    const p = logged(url);
    let total = 0;

    steps.forEach((s, i) => {
        const [t, done] = times[i];
        const next = p.find((x) => x.start > done && x.status === 204);
        const caught = p.find((x) => x.start < done && x.end > t
                                     && x.status === 499);
        const lost = sent.filter((b) => b.start < done
            && !p.some((x) => x.offset === b.offset
                              && Math.abs(x.start - b.start) < 1000)).pop();
        const refused = p.filter((x) => x.end > t && x.start < next.start
                                        && x.bytes <= 0);
        let again;

        if (caught) {
            again = 'PATCH from ' + caught.offset + ' ' + caught.status
                + ' after ' + caught.bytes + ' bytes; sent again: '
                + (caught.offset + caught.bytes - next.offset) + ' bytes';
        } else if (lost) {
            again = 'PATCH from ' + lost.offset + ' killed with nginx, not'
                + ' logged; sent again: at most '
                + (Math.min(lost.offset + next.declared, size) - next.offset)
                + ' bytes (the rest of it)';
        } else {
            again = 'no PATCH broke off (the one on the wire had all its'
                + ' bytes in nginx\'s socket already); sent again: 0 bytes';
        }

        say('interruption ' + (i + 1) + ' (' + s.what + '): ' + again
            + '; went on at ' + next.offset + ' ' + ((next.start - t) / 1000)
                .toFixed(1) + ' s later, after ' + refused.length
            + ' refused PATCHes (' + refused.map((x) => x.status).join(' ')
            + ')');
    });

    for (const x of p) {
        total += Math.max(x.bytes, 0);
    }
    say('in all: ' + p.length + ' PATCHes logged, their bodies ' + total
        + ' bytes for a file of ' + size);
}


async function main() {
    const browser = await chromium.launch({
        executablePath: process.env.AUDEX_CHROMIUM || '/usr/bin/chromium',
        args: ['--headless', '--no-sandbox', '--disable-gpu']
    });
    const page = await browser.newPage();
    const times = [];
    const sent = [];
    let url = null;
    let job = null;

    page.setDefaultTimeout(60000);
    page.on('request', (r) => {
        if (r.method() === 'PATCH') {
            url = new URL(r.url()).pathname;
            sent.push({ offset: Number(r.headers()['upload-offset']),
                        start: Date.now() });
            say('PATCH from ' + r.headers()['upload-offset']);
        }
    });
    page.on('response', (r) => {
        if (r.request().method() === 'PATCH') {
            job = r.headers()['audex-job-id'] || job;
        }
    });

    await page.goto(base + '/');
    await page.fill('#email', email);
    await page.fill('#password', password);
    await page.click('#login-button');
    await page.locator('#app-view').waitFor({ state: 'visible' });
    await page.evaluate(() => new MutationObserver(() => console.log(
        'status: ' + document.getElementById('status').textContent))
        .observe(document.getElementById('status'),
                 { childList: true, characterData: true, subtree: true }));
    page.on('console', (m) => {
        if (!/Uploading .*: \d+%$/.test(m.text())) {
            say(m.text());
        }
    });
    const token = await page.evaluate(() =>
        JSON.parse(sessionStorage.getItem('audex.session')).token);

    await page.setInputFiles('#file', video);
    await page.click('#upload-button');
    const t0 = Date.now();

    for (const s of steps) {
        for (;;) {
            let at = -1;
            if (url) {
                try {
                    const r = await fetch(base + url, { method: 'HEAD',
                        headers: { Authorization: 'Bearer ' + token,
                                   'Tus-Resumable': '1.0.0' } });
                    at = Number(r.headers.get('upload-offset'));
                } catch (e) {
                    /* nginx restarting */
                }
            }
            if (at >= s.at * size) {
                say(s.what + ' at offset ' + at + '; its nginx workers\''
                    + ' RSS (KB): ' + execSync('ps -o rss= --ppid '
                        + fs.readFileSync(process.env.AUDEX_TRIAL_PID))
                        .toString().trim().split(/\s+/).join(' ')
                    + '; bytes received on '
                    + "nginx's connections (ss -ti): " + [...execSync(
                        "ss -tinH state established '( sport = :"
                        + new URL(base).port + " )'").toString()
                        .matchAll(/bytes_received:(\d+)/g)]
                        .map((m) => m[1]).join(' '));
                const t = Date.now();
                execSync(s.cmd, { stdio: 'inherit' });
                times.push([t, Date.now()]);
                break;
            }
            await new Promise((f) => setTimeout(f, 100));
        }
    }

    await Promise.race([
        page.locator('#result').waitFor({ state: 'visible',
                                          timeout: 1800000 }),
        page.locator('#error').waitFor({ state: 'visible',
                                         timeout: 1800000 })
    ]);
    say('upload and conversion took ' + ((Date.now() - t0) / 1000)
        .toFixed(1) + ' s');

    if (await page.locator('#error').isVisible()) {
        say('FAILED: ' + await page.textContent('#error'));
        process.exitCode = 1;
    } else {
        const href = await page.getAttribute('#download', 'href');
        const mp3 = Buffer.from(await (await fetch(base + href))
                                .arrayBuffer());
        fs.writeFileSync(path.join(outdir, 'trial.mp3'), mp3);
        say('job ' + job + ' done: its MP3, ' + mp3.length + ' bytes, in '
            + path.join(outdir, 'trial.mp3'));
        console.log('job ' + job);
    }

    await browser.close();
    report(url, sent, times);
}


main().catch((e) => {
    console.error(e);
    process.exit(2);
});
