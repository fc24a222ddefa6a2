/*
 * Swagger UI at /docs/, reading this server's own /openapi.yaml.  nginx
 * serves this file in place of the one swagger-ui-dist ships (which
 * points at a demo API elsewhere).
 */

'use strict';

window.addEventListener('load', function () {
    window.ui = SwaggerUIBundle({
        url: '/openapi.yaml',
        dom_id: '#swagger-ui',
        deepLinking: true,
        presets: [
            SwaggerUIBundle.presets.apis,
            SwaggerUIStandalonePreset
        ],
        layout: 'StandaloneLayout',
        /* no badge fetched from an outside validator service */
        validatorUrl: null,
        /* tokens typed into "Authorize" leave with the tab */
        persistAuthorization: false
    });
});
