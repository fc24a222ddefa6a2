/*
 * The web page end to end, in Debian's headless Chromium driven by
 * playwright-core; run by t/web.t while its nginx serves html/.
 *
 * usage: node e2e.js BASE EMAIL PASSWORD OUTDIR OPERATIONS [VIDEO]
 *
 * Prints one line a check: "ok NAME", "not ok NAME # DETAIL", or
 * "skip REASON"; t/web.t turns them into TAP.  Screenshots go to OUTDIR.
 * OPERATIONS is how many operations docs/openapi.yaml has (Swagger UI
 * must list them all); VIDEO, when given, is uploaded if POST /upload
 * exists.
 */

'use strict';

const fs = require('fs');
const path = require('path');

const web = process.env.AUDEX_WEB_DIR;
const { chromium } = require(path.join(web, 'node_modules', 'playwright-core'));

const [base, email, password, outdir, operations, video] =
    process.argv.slice(2);

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
        const r = await fetch('/upload', {
            method: 'POST',
            headers: { Authorization: 'Bearer ' + s.token }
        });
        return r.status;
    });

    if (probe === 404) {
        skip('upload, conversion and download: POST /upload answers 404 '
             + '(no upload handler yet)');
        return;
    }

    if (!video) {
        check('a video to upload was given', false);
        return;
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
        return;
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
    page.on('pageerror', (e) => problems.push(String(e)));
    page.on('console', (m) => {
        /* the browser's own line for an answer the page expects (401) */
        if (m.type() === 'error' && !/status of 4\d\d/.test(m.text())) {
            problems.push(m.text());
        }
    });
    page.on('request', (r) => {
        if (!r.url().startsWith(base) && !r.url().startsWith('data:')) {
            foreign.push(r.url());
        }
    });

    try {
        await loginFlow(page);
        await uploadFlow(page);
        await docsFlow(page);
        await logoutFlow(page);
    } finally {
        check('no script errors', problems.length === 0, problems.join(' | '));
        check('no request leaves the server', foreign.length === 0,
              foreign.join(' '));
        await context.close();
        fs.rmSync(profile, { recursive: true, force: true });
    }
}


main().then(() => process.exit(failures ? 1 : 0), (e) => {
    console.log('not ok the browser run finished # ' + String(e.stack || e)
                .replace(/\s+/g, ' '));
    process.exit(2);
});
