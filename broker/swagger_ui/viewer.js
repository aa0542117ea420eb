// Starts Swagger UI on the broker's own schema. A file, not an inline script: the viewer's
// Content-Security-Policy runs scripts from the broker's origin only.
"use strict";

(function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.specUrl,
    domNode: root,
    deepLinking: true,
    // The default asks validator.swagger.io about the schema: a third-party request.
    validatorUrl: null,
    // ?url= and ?configUrl= would load another document into a page of the broker's origin.
    queryConfigEnabled: false,
  });
})();
