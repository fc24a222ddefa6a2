/*
 * The web page end to end, in Debian's headless Chromium driven by
 * playwright-core; run by t/web.t while its nginx serves html/.
 *
 * usage: node e2e.js BASE EMAIL PASSWORD OUTDIR OPERATIONS [VIDEO [BIG]]
 *
 * Prints one line a check: "ok NAME", "not ok NAME # DETAIL", or
 * "skip REASON"; t/web.t turns them into TAP, and "data NAME VALUE" lines
 * into facts it checks itself.  Screenshots go to OUTDIR.  OPERATIONS is
 * how many operations docs/openapi.yaml has (Swagger UI must list them
 * all); VIDEO, when given, is uploaded if the server has tus uploads
 * (/files/), and BIG, a few MB, is uploaded with its connection taken
 * away three times: offline, reset, and by a reload of the page.  The
 * browser reaches nginx (SERVER) through a TCP relay of this script's.
 */

'use strict';

const fs = require('fs');
const net = require('net');
const path = require('path');

const web = process.env.AUDEX_WEB_DIR;
const { chromium } = require(path.join(web, 'node_modules', 'playwright-core'));

const [server, email, password, outdir, operations, video, big] =
    process.argv.slice(2);

/* BIG's upload through the relay, bytes a second */
const RATE = 2000000;

/* where the browser goes: the relay in front of nginx (SERVER) */
let base = server;

/* while the test takes connections away, the browser says so: fine */
let cutting = false;

let failures = 0;


function check(name, cond, detail) {
    if (cond) {
        console.log('ok ' + name);
    } else {
        failures++;
        console.log('not ok ' + name
                    + (detail === undefined ? '' : ' # ' + String(detail)
                                                      .replace(/\s+/g, ' ')));
    }
}


function skip(reason) {
    console.log('skip ' + reason);
}


function data(name, value) {
    console.log('data ' + name + ' ' + value);
}


async function session(page) {
    return page.evaluate(() => {
        try {
            return JSON.parse(sessionStorage.getItem('audex.session'));
        } catch (e) {
            return null;
        }
    });
}


async function loginFlow(page) {
    await page.goto(base + '/');

    check('the page loads with its title',
          (await page.title()).includes('audex'));
    check('the email field has the focus',
          await page.evaluate(() => document.activeElement.id) === 'email');

    const unlabeled = await page.evaluate(() =>
        [...document.querySelectorAll('input, select, textarea')]
            .filter((e) => !(e.labels && e.labels.length)
                           && !e.getAttribute('aria-label'))
            .map((e) => e.id || e.name));
    check('every form control has a label', unlabeled.length === 0,
          unlabeled.join(', '));

    check('the status line is an aria-live region',
          await page.getAttribute('#status', 'aria-live') === 'polite');

    /* a wrong password: the API's words, in an alert */
    await page.fill('#email', email);
    await page.fill('#password', 'not-' + password);
    await page.click('#login-button');
    await page.locator('#error').waitFor({ state: 'visible' });
    const text = await page.textContent('#error');
    check('a wrong password is reported in words',
          /invalid credentials/i.test(text), text);
    check('... and says accounts are made with audex-user',
          /audex-user/.test(text), text);
    check('the login form tells a newcomer how accounts are made',
          /audex-user add EMAIL/.test(await page.textContent('#login-hint')));
    check('the error is an alert',
          await page.getAttribute('#error', 'role') === 'alert');
    check('the password field has the focus again',
          await page.evaluate(() => document.activeElement.id)
          === 'password');
    await page.screenshot({ path: path.join(outdir, 'login-error.png') });

    /* the right one, submitted with the keyboard */
    await page.fill('#password', password);
    await page.press('#password', 'Enter');
    await page.locator('#app-view').waitFor({ state: 'visible' });
    await page.locator('#jobs-empty').waitFor({ state: 'visible' });

    check('the login form is gone',
          !(await page.locator('#login-view').isVisible()));
    check('the error is gone', !(await page.locator('#error').isVisible()));
    check('the (empty) job list is shown',
          (await page.textContent('#jobs-empty')).trim() === 'No jobs yet.'
          && await page.locator('#jobs li').count() === 0);
    check('the user is named', (await page.textContent('#whoami')) === email);
    check('the focus moves to the upload section',
          await page.evaluate(() => document.activeElement.id)
          === 'upload-title');

    const s = await session(page);
    check('the token is kept in sessionStorage',
          s && /^[\w-]+\.[\w-]+\.[\w-]+$/.test(s.token), JSON.stringify(s));
    check('and not in localStorage',
          await page.evaluate(() => localStorage.length) === 0);

    check('nothing is wider than a phone screen',
          await page.evaluate(() => document.documentElement.scrollWidth
                                    <= window.innerWidth));

    await page.screenshot({ path: path.join(outdir, 'jobs-empty.png'),
                            fullPage: true });

    await page.reload();
    await page.locator('#app-view').waitFor({ state: 'visible' });
    check('the session survives a reload', true);
}


async function uploadFlow(page) {
    const probe = await page.evaluate(async () => {
        const s = JSON.parse(sessionStorage.getItem('audex.session'));
        const r = await fetch('/files/', {
            method: 'OPTIONS',
            headers: { Authorization: 'Bearer ' + s.token }
        });
        return r.status;
    });

    if (probe === 404) {
        skip('upload, conversion and download: OPTIONS /files/ answers 404 '
             + '(no tus uploads)');
        return false;
    }

    if (!video) {
        check('a video to upload was given', false);
        return false;
    }

    await page.setInputFiles('#file', video);
    check('the chosen file is named',
          (await page.textContent('#file-name'))
              .includes(path.basename(video)));
    check('the convert button is enabled',
          await page.isEnabled('#upload-button'));

    /* every text the status line and the bars take, for the record */
    await page.evaluate(() => {
        window.seen = [];
        const note = (m) => window.seen.push(m.target.id + ': '
            + (m.target.getAttribute('aria-valuetext')
               || m.target.textContent));
        const o = new MutationObserver((ms) => ms.forEach(note));
        o.observe(document.getElementById('status'),
                  { childList: true, characterData: true, subtree: true });
        /* what the job list said whenever the status line changed */
        window.pairs = [];
        new MutationObserver(() => {
            const line = document.querySelector('#jobs li .job-state');
            window.pairs.push([document.getElementById('status').textContent,
                               line ? line.textContent : null]);
        }).observe(document.getElementById('status'),
                   { childList: true, characterData: true, subtree: true });
        o.observe(document.getElementById('upload-progress'),
                  { attributes: true, attributeFilter: ['aria-valuetext'] });
        o.observe(document.getElementById('convert-progress'),
                  { attributes: true, attributeFilter: ['aria-valuetext'] });
    });

    /* the first polls of the job answer "converting 18%" (the real job
     * is too short to be seen converting): the status line and the job
     * list must both say so */
    let faked = 0;
    await page.route(/\/jobs\/[0-9a-f]{24}$/, async (route) => {
        if (route.request().method() !== 'GET' || faked >= 3) {
            return route.continue();
        }
        faked++;
        const id = route.request().url().slice(-24);
        return route.fulfill({
            status: 200, contentType: 'application/json',
            body: JSON.stringify({ job_id: id, state: 'converting',
                                   progress: 18,
                                   filename: path.basename(video) })
        });
    });

    await page.selectOption('#encoding', 'bitrate=128');
    await page.click('#upload-button');

    await page.locator('#progress-box').waitFor({ state: 'visible' });
    await Promise.race([
        page.locator('#result').waitFor({ state: 'visible',
                                          timeout: 180000 }),
        page.locator('#error').waitFor({ state: 'visible',
                                         timeout: 180000 })
    ]);

    const seen = await page.evaluate(() => window.seen);
    const err = await page.locator('#error').isVisible()
                ? await page.textContent('#error') : '';

    check('the conversion ends with a download button',
          await page.locator('#result').isVisible(), err);
    if (!(await page.locator('#result').isVisible())) {
        await page.screenshot({ path: path.join(outdir, 'upload-failed.png'),
                                fullPage: true });
        return false;
    }

    check('the upload bar reached 100%',
          await page.evaluate(() =>
              document.getElementById('upload-progress').value) === 100);
    check('upload progress was reported',
          seen.some((s) => /^upload-progress: /.test(s)), seen.join(' | '));
    check('the upload percentage is shown as text',
          (await page.textContent('#upload-pct')) === '100%',
          await page.textContent('#upload-pct'));
    check('the conversion percentage is shown as text',
          (await page.textContent('#convert-pct')) === '100%',
          await page.textContent('#convert-pct'));
    check('the conversion bar reached 100%',
          await page.evaluate(() =>
              document.getElementById('convert-progress').value) === 100);
    const pairs = await page.evaluate(() => window.pairs);
    const converting = pairs.filter((p) => /^Converting .*: 18%$/.test(p[0]));
    check('the status line showed the job converting',
          converting.length > 0, JSON.stringify(pairs));
    check('... and the job list said the same each time it was listed',
          converting.some((p) => p[1] !== null)
          && converting.every((p) => p[1] === null
                                     || p[1] === 'Converting 18%'),
          JSON.stringify(converting));
    await page.unroute(/\/jobs\/[0-9a-f]{24}$/);
    check('the status line followed the job',
          seen.some((s) => /^status: Uploaded/.test(s))
          && seen.some((s) => /^status: .* is converted\.$/.test(s)),
          seen.join(' | '));

    const href = await page.getAttribute('#download', 'href');
    check('the button is a signed link',
          /^\/download\?fid=[0-9a-f]{24}&exp=\d+&sig=[\w-]{43}$/.test(href),
          href);

    const [dl] = await Promise.all([
        page.waitForEvent('download'),
        page.click('#download')
    ]);
    const file = path.join(outdir, 'download.mp3');
    await dl.saveAs(file);
    const mp3 = fs.readFileSync(file);
    check('the download is an MP3',
          mp3.length > 1000
          && (mp3.subarray(0, 3).toString('latin1') === 'ID3'
              || (mp3[0] === 0xff && (mp3[1] & 0xe0) === 0xe0)),
          mp3.length + ' bytes');
    check('it is named after the video',
          /^clip.*\.mp3$/.test(dl.suggestedFilename()),
          dl.suggestedFilename());

    await page.locator('#jobs li.job-done').first().waitFor();
    check('the job is listed as done',
          await page.locator('#jobs li').count() === 1
          && (await page.textContent('#jobs li .job-state')) === 'Done');

    await page.screenshot({ path: path.join(outdir, 'done.png'),
                            fullPage: true });
    return true;
}


/*
 * A TCP relay between the browser and nginx: a slow network (limit: so
 * many bytes a second towards nginx) that can stall (freeze: nothing
 * more on the connections open now) and drop (cut: every connection
 * reset).  What it holds back it keeps reading, so that it sees the
 * browser give up a connection, and drops it when either side closes.
 * Chromium's throttling cannot stand in for it: it paces what the page
 * is told, not what its sockets send.
 */
function relay(port) {
    const conns = new Set();
    const r = { rate: 0, budget: Infinity };

    function flush(c) {
        while (c.pending.length && r.budget > 0 && !c.frozen) {
            let d = c.pending.shift();
            if (d.length > r.budget) {
                c.pending.unshift(d.subarray(r.budget));
                d = d.subarray(0, r.budget);
            }
            r.budget -= d.length;
            c.up.write(d);
        }
    }

    const server = net.createServer((client) => {
        const c = { client, up: net.connect(port, '127.0.0.1'), pending: [],
                    frozen: false };
        const end = () => {
            conns.delete(c);
            c.pending = [];
            c.client.destroy();
            c.up.destroy();
        };
        conns.add(c);
        client.on('data', (d) => {
            c.pending.push(d);
            flush(c);
        });
        c.up.on('data', (d) => client.write(d));
        for (const s of [client, c.up]) {
            s.on('end', end);
            s.on('close', end);
            s.on('error', () => {});
        }
    });

    /* the budget grows every 20 ms, by at most a tenth of a second's */
    const tick = setInterval(() => {
        if (r.rate) {
            r.budget = Math.min(r.budget + r.rate / 50, r.rate / 10);
            conns.forEach(flush);
        }
    }, 20);

    r.limit = (rate) => {
        r.rate = rate;
        r.budget = rate ? 0 : Infinity;
        conns.forEach(flush);
    };
    r.freeze = () => conns.forEach((c) => { c.frozen = true; });
    r.cut = () => conns.forEach((c) => {
        conns.delete(c);
        c.pending = [];
        c.client.resetAndDestroy();
        c.up.resetAndDestroy();
    });
    r.close = () => {
        clearInterval(tick);
        r.cut();
        server.close();
    };

    return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
        r.port = server.address().port;
        resolve(r);
    }));
}


function uploadBar(page) {
    return page.evaluate(() =>
        document.getElementById('upload-progress').value);
}


/* every text the status line and the upload bar take from now on */
function watch(page) {
    return page.evaluate(() => {
        window.seen = [];
        window.bars = [];
        new MutationObserver(() => window.seen.push(
            document.getElementById('status').textContent))
            .observe(document.getElementById('status'),
                     { childList: true, characterData: true, subtree: true });
        new MutationObserver(() => window.bars.push(
            document.getElementById('upload-progress').value))
            .observe(document.getElementById('upload-progress'),
                     { attributes: true, attributeFilter: ['value'] });
    });
}


/*
 * BIG, through the relay at RATE, its connection taken away three times
 * as the server's offset passes a quarter, a half and three quarters:
 * offline, the connection reset, the page reloaded.  The server's offset
 * is asked with HEAD, past the relay.  t/web.t then checks what the
 * server got.
 */
async function resumeFlow(page, context, net) {
    const name = path.basename(big);
    const size = fs.statSync(big).size;
    const cdp = await context.newCDPSession(page);
    const patches = [];
    const uploads = new Set();
    let url = null;
    let job = null;

    page.on('request', (r) => {
        if (r.method() === 'PATCH') {
            patches.push(Number(r.headers()['upload-offset']));
            url = new URL(r.url()).pathname;
            uploads.add(url);
        }
    });
    page.on('response', (r) => {
        if (r.request().method() === 'PATCH'
            && r.headers()['audex-job-id'])
        {
            job = r.headers()['audex-job-id'];
        }
    });

    const token = await page.evaluate(() =>
        JSON.parse(sessionStorage.getItem('audex.session')).token);

    async function offset() {
        const r = await fetch(server + url, { method: 'HEAD', headers: {
            Authorization: 'Bearer ' + token, 'Tus-Resumable': '1.0.0' } });
        return Number(r.headers.get('upload-offset'));
    }

    async function passes(fraction) {
        for (let t = Date.now(); Date.now() - t < 60000;) {
            const at = url ? await offset() : 0;
            if (at >= fraction * size) {
                return at;
            }
            await new Promise((f) => setTimeout(f, 20));
        }
        throw new Error('the upload did not pass ' + fraction);
    }

    await page.goto(base + '/');
    await page.locator('#app-view').waitFor({ state: 'visible' });
    await watch(page);

    cutting = true;
    net.limit(RATE);
    await page.setInputFiles('#file', big);
    await page.click('#upload-button');

    /* one: offline */
    await passes(0.25);
    await cdp.send('Network.emulateNetworkConditions', { offline: true,
        latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
    await page.waitForFunction(() =>
        /You are offline/.test(document.getElementById('status').textContent));
    const stopped = await uploadBar(page);
    check('offline, the page says the upload goes on when it is back', true);
    await page.waitForTimeout(1000);
    check('... and the bar stands still meanwhile',
          await uploadBar(page) === stopped, stopped);
    await cdp.send('Network.emulateNetworkConditions', { offline: false,
        latency: 0, downloadThroughput: -1, uploadThroughput: -1 });

    /* two: the connection is reset */
    const first = patches.length;
    await passes(0.5);
    check('back online, the upload went on by itself',
          patches.length > first && patches[first] > 0, patches.join(' '));
    const second = patches.length;
    net.cut();

    /* three: the page is reloaded, the upload's connection held */
    const held = await passes(0.75);
    check('after a reset connection it went on by itself',
          patches.length > second && patches[second] > patches[first],
          patches.join(' '));
    const seen = await page.evaluate(() => window.seen);
    check('... saying it broke off and tries again',
          seen.some((t) => /broke off at \d+%\. Trying again/.test(t)),
          seen.join(' | '));

    net.freeze();
    await page.reload();
    await page.locator('#app-view').waitFor({ state: 'visible' });
    await page.locator('#unfinished').waitFor({ state: 'visible' });
    check('after a reload the page names the unfinished upload',
          (await page.textContent('#unfinished')).includes(name),
          await page.textContent('#unfinished'));
    const stored = await page.evaluate(() => Object.keys(localStorage)
        .filter((k) => k.startsWith('tus::')));
    check('its URL is in localStorage, under the account and the file',
          stored.length === 1 && stored[0].startsWith('tus::audex ' + email
                                                      + ' ' + name + ' '),
          stored.join(' '));
    check('... and the token is not',
          await page.evaluate(() => Object.keys(localStorage).every((k) =>
              !localStorage.getItem(k).includes(
                  JSON.parse(sessionStorage.getItem('audex.session'))
                      .token))));

    const third = patches.length;
    await page.setInputFiles('#file', big);
    await page.waitForFunction(() => /partly uploaded/.test(
        document.getElementById('status').textContent));
    check('choosing the file again says it goes on where it stopped', true);
    await watch(page);
    await page.click('#upload-button');

    await Promise.race([
        page.locator('#result').waitFor({ state: 'visible',
                                          timeout: 180000 }),
        page.locator('#error').waitFor({ state: 'visible',
                                         timeout: 180000 })
    ]);
    cutting = false;
    net.limit(0);
    const err = await page.locator('#error').isVisible()
                ? await page.textContent('#error') : '';
    check('the resumed upload ends with its MP3',
          await page.locator('#result').isVisible(), err);

    const after = patches.slice(third);
    check('after the reload it went on from where it stopped (' + held
          + ' or later)', after.length > 0 && after[0] >= held,
          patches.join(' '));

    /* the bar is set to 0 when the upload starts, then to the offset */
    const bars = (await page.evaluate(() => window.bars))
        .filter((v) => v > 0);
    check('... and the bar showed it',
          after.length > 0 && bars.length > 0
          && bars[0] === Math.floor(100 * after[0] / size),
          bars.join(' ') + ' for ' + after[0]);
    check('no unfinished upload is left in localStorage',
          await page.evaluate(() => Object.keys(localStorage)
              .every((k) => !k.startsWith('tus::'))));
    check('nor named on the page',
          !(await page.locator('#unfinished').isVisible()));

    data('patches', patches.join(','));
    data('uploads', [...uploads].join(','));
    data('job', job);

    await page.screenshot({ path: path.join(outdir, 'resumed.png'),
                            fullPage: true });
}


async function docsFlow(page) {
    await page.goto(base + '/docs/');
    await page.locator('.swagger-ui .info .title').waitFor();
    check('Swagger UI shows the API',
          (await page.textContent('.swagger-ui .info .title'))
              .includes('audex'));
    await page.locator('.opblock').first().waitFor();
    const n = await page.locator('.opblock').count();
    check('Swagger UI lists every operation', n === Number(operations),
          n + ' of ' + operations);
    await page.screenshot({ path: path.join(outdir, 'docs.png') });
}


async function logoutFlow(page) {
    await page.goto(base + '/');
    await page.locator('#app-view').waitFor({ state: 'visible' });
    await page.click('#logout');
    await page.locator('#login-view').waitFor({ state: 'visible' });
    check('logging out forgets the token', (await session(page)) === null);
    check('and puts the focus on the email field',
          await page.evaluate(() => document.activeElement.id) === 'email');
}


async function main() {
    const relayed = await relay(new URL(server).port);
    base = 'http://127.0.0.1:' + relayed.port;

    const profile = fs.mkdtempSync(path.join(outdir, 'profile-'));
    const context = await chromium.launchPersistentContext(profile, {
        executablePath: process.env.AUDEX_CHROMIUM || '/usr/bin/chromium',
        headless: true,
        args: [
            '--headless', '--no-sandbox', '--disable-gpu',
            '--disable-background-networking', '--disable-component-update',
            '--no-first-run', '--disable-sync'
        ],
        viewport: { width: 390, height: 844 },
        acceptDownloads: true
    });

    const page = context.pages()[0] || await context.newPage();
    page.setDefaultTimeout(20000);

    const problems = [];
    const foreign = [];
    const tus = [];
    page.on('pageerror', (e) => problems.push(String(e)));
    page.on('console', (m) => {
        /* the browser's own line for an answer the page expects (401),
         * or for a request whose connection the test took away */
        if (m.type() === 'error' && !/status of 4\d\d/.test(m.text())
            && !(cutting && /net::ERR_/.test(m.text())))
        {
            problems.push(m.text());
        }
    });
    page.on('request', (r) => {
        if (!r.url().startsWith(base) && !r.url().startsWith('data:')) {
            foreign.push(r.url());
        }
        if (new URL(r.url()).pathname.startsWith('/files/')) {
            tus.push(r.method() + ' '
                     + (/^Bearer [\w-]+\.[\w-]+\.[\w-]+$/.test(
                            r.headers().authorization) ? 'token' : 'none'));
        }
    });

    try {
        await loginFlow(page);
        if (await uploadFlow(page) && big) {
            await resumeFlow(page, context, relayed);
        }
        await docsFlow(page);
        await logoutFlow(page);
    } finally {
        check('no script errors', problems.length === 0, problems.join(' | '));
        check('no request leaves the server', foreign.length === 0,
              foreign.join(' '));
        check('every tus request carries the token',
              !big || (tus.filter((t) => / token$/.test(t)).length > 10
                       && tus.every((t) => / token$/.test(t))),
              tus.join(' '));
        await context.close();
        relayed.close();
        fs.rmSync(profile, { recursive: true, force: true });
    }
}


main().then(() => process.exit(failures ? 1 : 0), (e) => {
    console.log('not ok the browser run finished # ' + String(e.stack || e)
                .replace(/\s+/g, ' '));
    process.exit(2);
});
